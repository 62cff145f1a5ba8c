//! Shared test harness: one database per test on the throwaway cluster that
//! `scripts/test.sh` starts (its admin URL in HYPERSWAP_TEST_URL), dropped when the test
//! passes and kept for inspection when it fails; and a runner for the real binary.
#![allow(dead_code)]

pub mod scenario;
pub mod writer;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use tokio_postgres::{Client, NoTls};

pub fn admin_url() -> String {
    std::env::var("HYPERSWAP_TEST_URL").unwrap_or_else(|_| {
        panic!("HYPERSWAP_TEST_URL is not set: run the tests with `bash scripts/test.sh`, which starts the test cluster")
    })
}

pub async fn connect(url: &str) -> Client {
    let (client, conn) = tokio_postgres::connect(url, NoTls)
        .await
        .unwrap_or_else(|e| panic!("connect: {e}"));
    tokio::spawn(async move {
        let _ = conn.await;
    });
    client
}

/// A database of its own for one test, with TimescaleDB.
pub struct TestDb {
    pub name: String,
    pub url: String,
    pub dir: PathBuf,
}

impl TestDb {
    pub async fn new(test: &str) -> TestDb {
        let name = format!("hs_test_{test}");
        let admin = connect(&admin_url()).await;
        admin
            .batch_execute(&format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"))
            .await
            .unwrap();
        admin
            .batch_execute(&format!("CREATE DATABASE \"{name}\""))
            .await
            .unwrap();
        let url = db_url(&name);
        let client = connect(&url).await;
        client
            .batch_execute("CREATE EXTENSION timescaledb")
            .await
            .unwrap();
        let dir = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join(&name);
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        TestDb { name, url, dir }
    }

    pub async fn client(&self) -> Client {
        connect(&self.url).await
    }

    /// Writes a plan file in the test's directory and returns its path.
    pub fn plan(&self, file: &str, text: &str) -> PathBuf {
        let path = self.dir.join(file);
        std::fs::write(&path, text).unwrap();
        path
    }

    /// Runs the hyperswap binary against this database.
    pub fn hyperswap(&self, args: &[&str]) -> Run {
        run_binary(&self.url, args)
    }

    /// Rows that differ between `live` and its copy `copy` once the change log is
    /// replayed, counted independently of the tool: writers to `live` are held off by
    /// an EXCLUSIVE lock in a transaction of the test's, `hyperswap parity` (which
    /// replays the log) runs, EXCEPT ALL counts both ways, and the lock goes. The copy
    /// trails the source by the log until a replay: only then is a count meaningful.
    pub async fn settled_difference(&self, plan: &Path, live: &str, copy: &str) -> i64 {
        self.settled_difference_as(&self.url, plan, live, copy)
            .await
    }

    /// [`TestDb::settled_difference`], running `hyperswap parity` on `url` (as the role
    /// the test runs the tool as).
    pub async fn settled_difference_as(
        &self,
        url: &str,
        plan: &Path,
        live: &str,
        copy: &str,
    ) -> i64 {
        let holder = self.client().await;
        holder
            .batch_execute(&format!("BEGIN; LOCK TABLE {live} IN EXCLUSIVE MODE"))
            .await
            .unwrap();
        let run = run_binary(url, &["parity", path_str(plan)]);
        assert!(
            run.stdout.contains("EQUAL"),
            "parity after the writers stopped: {}\n{}",
            run.stdout,
            run.stderr
        );
        let n = except_both_ways(&holder, live, copy).await;
        holder.batch_execute("COMMIT").await.unwrap();
        n
    }

    /// The binary as a command, for tests that spawn and kill it.
    pub fn command(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_hyperswap"));
        cmd.args(args)
            .env("DATABASE_URL", &self.url)
            .env("HYPERSWAP_LOG", "info")
            .env_remove("PGPASSWORD");
        cmd
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("test database {} kept for inspection", self.name);
            return;
        }
        let name = self.name.clone();
        // Drop from a thread of its own: we may be inside the test's runtime.
        let _ = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async {
                let admin = connect(&admin_url()).await;
                let _ = admin
                    .batch_execute(&format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"))
                    .await;
            });
        })
        .join();
    }
}

pub fn db_url(name: &str) -> String {
    let admin = admin_url();
    let base = admin.rsplit_once('/').map(|(b, _)| b).unwrap_or(&admin);
    format!("{base}/{name}")
}

/// The result of one run of the binary.
pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    pub fn ok(self) -> Run {
        assert_eq!(
            self.code, 0,
            "expected success\nstdout:\n{}\nstderr:\n{}",
            self.stdout, self.stderr
        );
        self
    }
}

pub fn run_binary(url: &str, args: &[&str]) -> Run {
    let out: Output = Command::new(env!("CARGO_BIN_EXE_hyperswap"))
        .args(args)
        .env("DATABASE_URL", url)
        .env_remove("PGPASSWORD")
        .output()
        .expect("run hyperswap");
    Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// Runs the binary on a blocking thread, for a test that does other work meanwhile.
pub fn spawn_binary(url: &str, args: &[&str]) -> tokio::task::JoinHandle<Run> {
    let url = url.to_string();
    let args: Vec<String> = args.iter().map(|a| a.to_string()).collect();
    tokio::task::spawn_blocking(move || {
        run_binary(&url, &args.iter().map(String::as_str).collect::<Vec<_>>())
    })
}

pub fn path_str(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// The standard one-table plan for `table`, with extra YAML appended.
pub fn one_table_plan(name: &str, table: &str, extra: &str) -> String {
    format!("name: {name}\ntables:\n  - source: {table}\n    time_column: ts\n    chunk_time_interval: 1 day\n{extra}")
}

/// `public.t (id bigint PRIMARY KEY, ts timestamptz NOT NULL)` with ids 1..=rows, one
/// row every `step` back from now (an interval, e.g. `1 hour`): the smallest table a
/// plan can move.
pub async fn small_table(client: &Client, rows: u32, step: &str) {
    client
        .batch_execute(&format!(
            "CREATE TABLE t (id bigint PRIMARY KEY, ts timestamptz NOT NULL);
             INSERT INTO t SELECT g, now() - g * interval '{step}' FROM generate_series(1, {rows}) g;"
        ))
        .await
        .unwrap();
}

/// `CREATE TABLE table (id bigint PRIMARY KEY, ts timestamptz NOT NULL, v int)` with
/// ids 1..=rows, one a minute from 2026-01-01 and `v = id`: the seed most tests move.
pub fn seed_sql(table: &str, rows: u32) -> String {
    format!(
        "CREATE TABLE {table} (id bigint PRIMARY KEY, ts timestamptz NOT NULL, v int);
         INSERT INTO {table} SELECT g, '2026-01-01'::timestamptz + g * interval '1 minute', g FROM generate_series(1, {rows}) g;"
    )
}

/// Rows in `a` but not `b` plus rows in `b` but not `a`, over all columns, counting
/// duplicates: an independent check, not the tool's parity.
pub async fn except_both_ways(client: &Client, a: &str, b: &str) -> i64 {
    let sql = format!(
        "SELECT (SELECT count(*) FROM (SELECT * FROM {a} EXCEPT ALL SELECT * FROM {b}) x)
              + (SELECT count(*) FROM (SELECT * FROM {b} EXCEPT ALL SELECT * FROM {a}) y)"
    );
    client.query_one(&sql, &[]).await.unwrap().get(0)
}

pub async fn count(client: &Client, table: &str) -> i64 {
    client
        .query_one(&format!("SELECT count(*) FROM {table}"), &[])
        .await
        .unwrap()
        .get(0)
}

/// Names of the user's relations, triggers and functions, and whether the journal
/// exists: what "the database is unchanged" is checked against.
pub async fn fingerprint(client: &Client) -> String {
    let row = client
        .query_one(
            "SELECT concat_ws(' | ',
                (SELECT string_agg(n.nspname || '.' || c.relname || ':' || c.relkind::text, ',' ORDER BY n.nspname, c.relname)
                 FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
                 WHERE n.nspname IN ('public', 'hyperswap')),
                (SELECT string_agg(tgname, ',' ORDER BY tgname) FROM pg_trigger WHERE NOT tgisinternal),
                (SELECT string_agg(proname, ',' ORDER BY proname, p.oid) FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
                 WHERE n.nspname IN ('public', 'hyperswap')),
                (SELECT count(*)::text FROM pg_namespace WHERE nspname = 'hyperswap'))",
            &[],
        )
        .await
        .unwrap();
    row.get(0)
}

/// Waits until `cond` holds, checking every 20 ms; panics naming `what` after 60 s. Tests
/// wait on conditions, never for a fixed time.
pub async fn wait_until<F, Fut>(what: &str, mut cond: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while !cond().await {
        assert!(
            std::time::Instant::now() < deadline,
            "gave up waiting for {what}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}

/// Waits until a session of this database whose statement contains `needle` waits for a
/// lock (queued behind another transaction).
pub async fn wait_for_lock_wait(client: &Client, needle: &str) {
    wait_until(
        &format!("a statement like {needle:?} to wait for a lock"),
        || async {
            client
                .query_one(
                    "SELECT EXISTS (SELECT FROM pg_stat_activity
                                WHERE datname = current_database() AND wait_event_type = 'Lock'
                                  AND strpos(query, $1) > 0)",
                    &[&needle],
                )
                .await
                .unwrap()
                .get(0)
        },
    )
    .await
}

/// Waits until a hyperswap session of this database waits for a lock.
pub async fn wait_for_tool_lock_wait(client: &Client) {
    wait_until("a hyperswap session to wait for a lock", || async {
        client
            .query_one(
                "SELECT EXISTS (SELECT FROM pg_stat_activity
                                WHERE datname = current_database() AND wait_event_type = 'Lock'
                                  AND application_name LIKE 'hyperswap %')",
                &[],
            )
            .await
            .unwrap()
            .get(0)
    })
    .await
}

/// Waits until the workload writer has made `n` more statements (of every kind) than
/// when called.
pub async fn wait_for_writes(writer: &hyperswap_workload::WriterHandle, n: u64) {
    let total = |s: hyperswap_workload::WriterStats| {
        s.inserts + s.updates_value + s.updates_time + s.updates_key + s.deletes
    };
    let start = total(writer.stats());
    wait_until(&format!("{n} more writes"), || async {
        total(writer.stats()) >= start + n
    })
    .await
}

/// The start most database tests share: a database of their own, seeded, and a one-table
/// plan; then commands run on that plan by name.
pub struct Scenario {
    pub db: TestDb,
    /// A connection as the superuser, for seeding, probing and changing things behind
    /// the tool's back.
    pub client: Client,
    pub plan: PathBuf,
}

impl Scenario {
    /// A database for `test`, seeded with `seed` (SQL), and the plan `name` moving
    /// `table`, with `extra` YAML appended to it.
    pub async fn new(test: &str, seed: &str, name: &str, table: &str, extra: &str) -> Scenario {
        let db = TestDb::new(test).await;
        let client = db.client().await;
        client
            .batch_execute(seed)
            .await
            .unwrap_or_else(|e| panic!("seeding {test}: {e:?}"));
        let plan = db.plan("p.yaml", &one_table_plan(name, table, extra));
        Scenario { db, client, plan }
    }

    /// `hyperswap <command...> <plan> <flags...>`: the plan's path goes after the words
    /// before the first flag.
    pub fn run(&self, args: &[&str]) -> Run {
        let at = args
            .iter()
            .position(|a| a.starts_with('-'))
            .unwrap_or(args.len());
        let mut full: Vec<&str> = args[..at].to_vec();
        full.push(path_str(&self.plan));
        full.extend(&args[at..]);
        self.db.hyperswap(&full)
    }

    /// `plan apply`, up to `until` (`None`: through cutover), which must succeed.
    pub fn apply(&self, until: Option<&str>) -> Run {
        match until {
            Some(u) => self.run(&["plan", "apply", "--until", u]),
            None => self.run(&["plan", "apply"]),
        }
        .ok()
    }

    /// With one row of the copy (`<table>_hs_new`) changed behind the tool's back:
    /// parity exits 1 naming `key`, `--repair` mends it, and the plan cuts over and rolls
    /// back, with 0 differences by EXCEPT ALL after the repair and after the rollback.
    pub async fn repair_cut_over_and_back(&self, key: &str, table: &str) {
        let copy = format!("{table}_hs_new");
        let run = self.run(&["parity"]);
        assert_eq!(run.code, 1, "{}{}", run.stdout, run.stderr);
        assert!(run.stdout.contains(key), "{}", run.stdout);
        self.run(&["parity", "--repair"]).ok();
        assert_eq!(except_both_ways(&self.client, table, &copy).await, 0);
        let run = self.apply(None);
        assert!(run.stdout.contains("cut over"), "{}", run.stdout);
        self.run(&["rollback"]).ok();
        assert_eq!(except_both_ways(&self.client, table, &copy).await, 0);
    }
}

/// What planted functions recorded of their calls (`table` has one column `what`), once
/// each.
pub async fn planted_calls(client: &Client, table: &str) -> Vec<String> {
    client
        .query(&format!("SELECT DISTINCT what FROM {table}"), &[])
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect()
}

/// Whether `public.<name>` is a hypertable.
pub async fn is_hypertable(client: &Client, name: &str) -> bool {
    client
        .query_one(
            "SELECT EXISTS (SELECT FROM timescaledb_information.hypertables
                            WHERE hypertable_schema = 'public' AND hypertable_name = $1)",
            &[&name],
        )
        .await
        .unwrap()
        .get(0)
}

/// The server process of `client`'s session.
pub async fn backend_pid(client: &Client) -> i32 {
    client
        .query_one("SELECT pg_backend_pid()", &[])
        .await
        .unwrap()
        .get(0)
}

/// Waits until no session of hyperswap's is left in this database (a killed or failed
/// run's server session may outlive its process for a moment).
pub async fn wait_for_no_tool_session(client: &Client) {
    wait_until("hyperswap's sessions to end", || async {
        client
            .query_one(
                "SELECT NOT EXISTS (SELECT FROM pg_stat_activity
                                    WHERE datname = current_database() AND application_name LIKE 'hyperswap %')",
                &[],
            )
            .await
            .unwrap()
            .get(0)
    })
    .await
}
