//! Issue 18: change capture's objects cannot collide between plans, `--until parity` on
//! a verified plan checks again, and the catch-up keeps the change log short.
#![cfg(db_tests)]

mod common;

use std::collections::HashMap;

use common::writer;
use common::*;

/// Two 63-byte table names whose change logs shared a name under the names of earlier
/// builds (`changes__<schema>__<table>`, cut to 63 bytes with a 32-bit hash of the
/// whole): found by brute force, as the finding did.
fn colliding_names() -> (String, String) {
    let prefix = "collide_".repeat(8)[..45].to_string();
    let mut seen: HashMap<String, String> = HashMap::new();
    for n in 0u64.. {
        let table = format!("{prefix}{n:018}");
        assert_eq!(table.len(), 63);
        let legacy = hyperswap::ident::with_suffix(&format!("changes__public__{table}"), "");
        if let Some(other) = seen.insert(legacy, table.clone()) {
            return (other, table);
        }
    }
    unreachable!()
}

#[test]
fn the_brute_force_finds_a_collision_of_the_old_names() {
    let (a, b) = colliding_names();
    assert_ne!(a, b);
    let old = |t: &str| hyperswap::ident::with_suffix(&format!("changes__public__{t}"), "");
    assert_eq!(old(&a), old(&b));
}

/// The finding: with a bigint key and a uuid key, the second plan's apply failed with
/// its triggers installed and every INSERT on that table failed; abort of the second
/// plan dropped the shared log and every write to the first plan's table failed. Now
/// each plan's objects are its own: both move exactly, and aborting one leaves the
/// other's writes working.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plans_whose_old_names_collide_move_and_abort_apart() {
    let (a, b) = colliding_names();
    let db = TestDb::new("names_collide").await;
    let client = db.client().await;
    client
        .batch_execute(&format!(
            "CREATE TABLE {a} (id bigint PRIMARY KEY, ts timestamptz NOT NULL, v int);
             INSERT INTO {a} SELECT g, '2026-01-01'::timestamptz + g * interval '1 minute', g
             FROM generate_series(1, 3000) g;
             CREATE TABLE {b} (id uuid PRIMARY KEY, ts timestamptz NOT NULL, v int);
             INSERT INTO {b} SELECT gen_random_uuid(), '2026-01-01'::timestamptz + g * interval '1 minute', g
             FROM generate_series(1, 3000) g;"
        ))
        .await
        .unwrap();
    let plan = |name: &str, table: &str| {
        db.plan(
            &format!("{name}.yaml"),
            &format!(
                "name: {name}\ntables:\n  - source: public.{table}\n    target: public.a_new_{name}\n    retired: public.a_old_{name}\n    time_column: ts\n    chunk_time_interval: 1 day\n"
            ),
        )
    };
    let (pa, pb) = (plan("first", &a), plan("second", &b));
    for p in [&pa, &pb] {
        db.hyperswap(&["plan", "apply", path_str(p), "--until", "backfill"])
            .ok();
    }
    // Writes on both tables reach both logs, each its own.
    client
        .batch_execute(&format!(
            "INSERT INTO {a} VALUES (5001, '2026-02-01', 1);
             UPDATE {a} SET v = v + 1 WHERE id <= 100;
             INSERT INTO {b} VALUES (gen_random_uuid(), '2026-02-01', 1);
             UPDATE {b} SET v = v + 1 WHERE v <= 100;"
        ))
        .await
        .unwrap();
    for p in [&pa, &pb] {
        let run = db.hyperswap(&["parity", path_str(p)]).ok();
        assert!(run.stdout.contains("EQUAL"), "{}", run.stdout);
    }
    assert_eq!(except_both_ways(&client, &a, "a_new_first").await, 0);
    assert_eq!(except_both_ways(&client, &b, "a_new_second").await, 0);
    // Abort the second plan: the first plan's table takes writes, and its log too.
    db.hyperswap(&["abort", path_str(&pb)]).ok();
    client
        .batch_execute(&format!(
            "INSERT INTO {a} VALUES (5002, '2026-02-02', 2);
             UPDATE {a} SET v = v + 1 WHERE id > 2900;
             DELETE FROM {a} WHERE id = 7;
             INSERT INTO {b} VALUES (gen_random_uuid(), '2026-02-02', 2);"
        ))
        .await
        .unwrap();
    let run = db.hyperswap(&["plan", "apply", path_str(&pa)]).ok();
    assert!(run.stdout.contains("cut over"), "{}", run.stdout);
    assert_eq!(except_both_ways(&client, &a, "a_old_first").await, 0);
    client
        .batch_execute(&format!("UPDATE {a} SET v = -v WHERE id <= 10"))
        .await
        .unwrap();
    let run = db.hyperswap(&["rollback", path_str(&pa)]).ok();
    assert!(run.stdout.contains("EQUAL"), "{}", run.stdout);
    assert_eq!(except_both_ways(&client, &a, "a_new_first").await, 0);
    assert!(!is_hypertable(&client, &b).await);
}

/// The finding: `plan apply --until parity` on a verified plan said "parity passed"
/// without replaying a 670k-entry log. It now replays and checks again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn until_parity_on_a_verified_plan_checks_again() {
    let s = Scenario::new("until_parity_again", &seed_sql("pv", 2000), "pv", "pv", "").await;
    s.apply(Some("parity"));
    s.client
        .batch_execute(
            "INSERT INTO pv SELECT g, '2026-03-01'::timestamptz + g * interval '1 second', g FROM generate_series(3001, 3500) g;
             UPDATE pv SET v = -v WHERE id <= 200;",
        )
        .await
        .unwrap();
    let waiting = |s: &Scenario| {
        let status = s.run(&["status", "--json"]).ok();
        let doc: serde_json::Value = serde_json::from_str(&status.stdout).unwrap();
        doc[0]["tables"][0]["changes_waiting"].as_i64().unwrap()
    };
    assert!(waiting(&s) >= 700);
    let run = s.apply(Some("parity"));
    assert!(run.stdout.contains("EQUAL"), "{}", run.stdout);
    assert_eq!(waiting(&s), 0);
    assert_eq!(except_both_ways(&s.client, "pv", "pv_hs_new").await, 0);
}

/// `public.<table>` with ids 1..=rows, one a second from 2026-01-01, `v = id`.
fn seed(table: &str, rows: u32) -> String {
    format!(
        "CREATE TABLE {table} (id bigint PRIMARY KEY, ts timestamptz NOT NULL, v int);
         INSERT INTO {table} SELECT g, '2026-01-01'::timestamptz + g * interval '1 second', g FROM generate_series(1, {rows}) g;"
    )
}

/// The plan's phase, as `status --json` says.
fn phase(s: &Scenario) -> String {
    let status = s.run(&["status", "--json"]).ok();
    let doc: serde_json::Value = serde_json::from_str(&status.stdout).unwrap();
    doc[0]["phase"].as_str().unwrap_or_default().to_string()
}

/// The finding: "a long backfill leaves the whole log for its end: nothing is replayed
/// while batches run". Now a row the application inserts beyond the backfill's last
/// key, and an update of a key the backfill has copied, reach the copy while batches
/// still run; the copy is exact after parity.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_catch_up_replays_while_the_backfill_runs() {
    let s = Scenario::new(
        "catch_up_during_backfill",
        &seed("cu", 200_000),
        "cu",
        "cu",
        "backfill:\n  workers: 1\n  batch_rows: 2000\n  max_batch_rows: 2000\n  pause: 100ms\n",
    )
    .await;
    s.apply(Some("trigger"));
    let mut child =
        s.db.command(&[
            "plan",
            "apply",
            path_str(&s.plan),
            "--until",
            "backfill",
            "-q",
        ])
        .spawn()
        .unwrap();
    // Once the first batches are in: a new row, and a change to a copied row.
    wait_until("the first batches", || async {
        count(&s.client, "cu_hs_new").await >= 4000
    })
    .await;
    s.client
        .batch_execute(
            "INSERT INTO cu VALUES (500001, '2026-06-01', 7);
             UPDATE cu SET v = -1 WHERE id = 10;
             UPDATE cu SET v = -2 WHERE id = 199000;",
        )
        .await
        .unwrap();
    wait_until("the new row and the change in the copy", || async {
        count(
            &s.client,
            "cu_hs_new WHERE (id = 500001 AND v = 7) OR (id = 10 AND v = -1)",
        )
        .await
            == 2
    })
    .await;
    // Reached before the backfill ended.
    assert_eq!(phase(&s), "backfilling");
    assert!(
        child.try_wait().unwrap().is_none(),
        "the backfill had ended"
    );
    assert!(count(&s.client, "cu_hs_new").await < 200_000);
    let status = child.wait().unwrap();
    assert!(status.success());
    // The catch-up was sampled, and status says so.
    let out = s.run(&["status"]).ok().stdout;
    assert!(out.contains("change log:"), "{out}");
    let run = s.apply(Some("parity"));
    assert!(run.stdout.contains("EQUAL"), "{}", run.stdout);
    assert_eq!(except_both_ways(&s.client, "cu", "cu_hs_new").await, 0);
    assert_eq!(
        count(&s.client, "cu_hs_new WHERE id = 199000 AND v = -2").await,
        1
    );
}

/// Acceptance 3: the application outruns the catch-up (here: changes to keys of the
/// range a paused worker holds, which must wait for it): the tool stops before the
/// plan's log limit, resumable, exit 3, saying why; once the writes stop it resumes and
/// the move is exact.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_application_that_outruns_the_catch_up_stops_it_cleanly() {
    let db_name = "catch_up_outrun";
    let pause =
        std::env::temp_dir().join(format!("hyperswap-{db_name}-{}.pause", std::process::id()));
    std::fs::write(&pause, "").unwrap();
    let s = Scenario::new(
        db_name,
        &seed("ou", 60_000),
        "ou",
        "ou",
        &format!(
            "backfill:\n  workers: 1\n  pause_file: {}\ncatch_up:\n  max_log_size: 2MB\n",
            pause.display()
        ),
    )
    .await;
    s.apply(Some("trigger"));
    let child = spawn_apply(&s, "backfill");
    // The worker holds the range, waiting on the pause file: its keys' entries wait.
    wait_for_session(&s.client, "hyperswap catch-up ou").await;
    tokio::time::sleep(std::time::Duration::from_secs(1)).await;
    for _ in 0..3 {
        s.client
            .batch_execute("UPDATE ou SET v = v + 1")
            .await
            .unwrap();
    }
    let stderr = stopped_at_the_log_limit(child);
    assert!(stderr.contains("hyperswap plan apply"), "{stderr}");
    assert_eq!(phase(&s), "backfilling");
    // The writes have stopped: the same command goes on and finishes.
    std::fs::remove_file(&pause).unwrap();
    s.apply(Some("backfill"));
    let run = s.apply(Some("parity"));
    assert!(run.stdout.contains("EQUAL"), "{}", run.stdout);
    assert_eq!(except_both_ways(&s.client, "ou", "ou_hs_new").await, 0);
}

/// `plan apply --until <until>` in the background, its output kept.
fn spawn_apply(s: &Scenario, until: &str) -> std::process::Child {
    s.db.command(&["plan", "apply", path_str(&s.plan), "--until", until])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap()
}

/// Waits for `child` to end, stopped at the change log's size limit (exit 3, the
/// message naming `catch_up.max_log_size`); returns what it wrote to stderr.
fn stopped_at_the_log_limit(child: std::process::Child) -> String {
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(out.status.code(), Some(3), "{stderr}");
    assert!(stderr.contains("catch_up.max_log_size"), "{stderr}");
    stderr
}

/// Waits until a session named `name` exists in this database.
async fn wait_for_session(client: &tokio_postgres::Client, name: &str) {
    wait_until(&format!("a session `{name}`"), || async {
        client
            .query_one(
                "SELECT EXISTS (SELECT FROM pg_stat_activity WHERE datname = current_database() AND application_name = $1)",
                &[&name],
            )
            .await
            .unwrap()
            .get(0)
    })
    .await
}

/// The finding: the drain ran once, before the first lock attempt; while attempts timed
/// out behind the application, entries piled up and the last attempt replayed all of
/// them under ACCESS EXCLUSIVE. Now every attempt is preceded by a drain, and the locks
/// are taken only when what is left fits the budget: the log says how much was left
/// before each attempt.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_cutover_attempt_is_preceded_by_a_drain() {
    let s = Scenario::new(
        "cutover_drains_each_attempt",
        &format!(
            "{}\nCREATE SEQUENCE ca_ids START 1000000;",
            seed("ca", 20_000)
        ),
        "ca",
        "ca",
        "cutover:\n  lock_timeout: 300ms\n  attempts: 30\n  backoff: 100ms\n",
    )
    .await;
    s.apply(Some("parity"));
    let writer = writer::SqlWriter::start(
        &s.db.url,
        1,
        &["INSERT INTO ca SELECT nextval('ca_ids'), '2026-02-01', 1 FROM generate_series(1, 100)"],
        std::time::Duration::from_millis(5),
    );
    // A report holding the table until the tool has waited for its locks and a second
    // more: the first attempts time out behind it.
    let reader = s.db.client().await;
    reader
        .batch_execute("BEGIN; SELECT count(*) FROM ca;")
        .await
        .unwrap();
    let run = spawn_binary(&s.db.url, &["plan", "apply", path_str(&s.plan)]);
    wait_for_tool_lock_wait(&s.client).await;
    tokio::time::sleep(std::time::Duration::from_secs(1)).await;
    reader.batch_execute("COMMIT").await.unwrap();
    let run = run.await.unwrap().ok();
    let counts = writer.stop().await;
    assert!(counts.errors.is_empty(), "{:?}", counts.errors);
    assert!(run.stdout.contains("cut over"), "{}", run.stdout);
    // Attempts timed out, and each later one drained and measured what was left.
    assert!(
        run.stderr.contains("could not take its locks"),
        "{}",
        run.stderr
    );
    let before: Vec<&str> = run
        .stderr
        .lines()
        .filter(|l| l.contains("logged change(s) left, about"))
        .collect();
    assert!(before.len() >= 2, "{}", run.stderr);
    assert_eq!(except_both_ways(&s.client, "ca", "ca_hs_old").await, 0);
}

/// Review finding: on a journal an earlier build made (no `capture_id` column, no
/// `hyperswap.catch_up` table), every command but `plan apply` failed ("column
/// capture_id does not exist"), `abort` included. They read it as it is now.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_journal_of_an_earlier_build_serves_status_and_abort() {
    let s = Scenario::new(
        "journal_of_earlier_build",
        &seed("ej", 2000),
        "ej",
        "ej",
        "",
    )
    .await;
    s.apply(Some("backfill"));
    s.client
        .batch_execute(
            "DO $$
             DECLARE oid oid := 'public.ej'::regclass::oid;
             BEGIN
                 ALTER TABLE hyperswap.tables DROP COLUMN capture_id;
                 DROP TABLE hyperswap.catch_up;
                 EXECUTE format('ALTER TABLE hyperswap.changes_%s RENAME TO changes__public__ej', oid);
                 EXECUTE format('ALTER FUNCTION hyperswap.copy_%s() RENAME TO copy__public__ej', oid);
                 EXECUTE format('ALTER FUNCTION hyperswap.reverse_%s() RENAME TO reverse__public__ej', oid);
                 EXECUTE format('ALTER VIEW hyperswap.columns_%s RENAME TO columns__public__ej', oid);
             END $$;",
        )
        .await
        .unwrap();
    let status = s.run(&["status", "--json"]).ok();
    let doc: serde_json::Value = serde_json::from_str(&status.stdout).unwrap();
    // Its log found under the name of the earlier build.
    assert_eq!(
        doc[0]["tables"][0]["changes_waiting"].as_i64(),
        Some(0),
        "{}",
        status.stdout
    );
    s.run(&["abort"]).ok();
    assert_eq!(count(&s.client, "ej").await, 2000);
    let left: i64 = s
        .client
        .query_one(
            "SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
             WHERE n.nspname = 'hyperswap' OR c.relname LIKE 'ej_hs_%'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(left, 0);
}

/// "Make the replay as fast as the machine allows (several sessions where they help)":
/// a log of 60,000 entries is shared by three sessions, each replaying its own keys
/// (the lane statements are in the SQL log); the changes include deletes, key and time
/// moves and a swap of values of another unique index between keys of different lanes
/// (one lane meets the other's stale row and the whole log is replayed at once), and the
/// copy is exact.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_large_log_is_shared_by_sessions_and_the_copy_stays_exact() {
    let s = Scenario::new(
        "catch_up_lanes",
        "CREATE TABLE cl (id bigint PRIMARY KEY, ts timestamptz NOT NULL, u int NOT NULL, v int, UNIQUE (u, ts));
         INSERT INTO cl SELECT g, '2026-01-01'::timestamptz + (g % 10) * interval '1 day', g, g FROM generate_series(1, 60000) g;",
        "cl",
        "cl",
        "catch_up:\n  during_backfill: false\n  sessions: 3\n",
    )
    .await;
    s.apply(Some("backfill"));
    s.client
        .batch_execute(
            "UPDATE cl SET v = -v;
             DELETE FROM cl WHERE id % 97 = 0;
             UPDATE cl SET id = id + 1000000 WHERE id % 89 = 0;
             UPDATE cl SET ts = ts + interval '1 hour' WHERE id % 83 = 0;
             INSERT INTO cl SELECT g, '2026-02-01', g, g FROM generate_series(2000001, 2005000) g;
             UPDATE cl SET u = -1 WHERE id = 10;
             UPDATE cl SET u = 10 WHERE id = 59990;
             UPDATE cl SET u = 59990 WHERE id = 10;",
        )
        .await
        .unwrap();
    let sql_log = s.db.dir.join("lanes.sql");
    let run = s.db.hyperswap(&[
        "--sql-log",
        path_str(&sql_log),
        "plan",
        "apply",
        path_str(&s.plan),
        "--until",
        "parity",
    ]);
    assert!(run.ok().stdout.contains("EQUAL"));
    let statements = std::fs::read_to_string(&sql_log).unwrap();
    assert!(
        statements.contains("are this session's share")
            && statements.contains("NOT (\"hyperswap\""),
        "no lane statement in the SQL log"
    );
    // The swap: no session could write it; one statement over the whole log did.
    assert!(
        statements.contains("The copy's rows of every taken key go first"),
        "the swap was not replayed over the whole log"
    );
    assert_eq!(except_both_ways(&s.client, "cl", "cl_hs_new").await, 0);
    let run = s.apply(None);
    assert!(run.stdout.contains("EQUAL"), "{}", run.stdout);
    assert_eq!(except_both_ways(&s.client, "cl", "cl_hs_old").await, 0);
}

/// Seen in `bench catch-up` at 5M rows: under writes faster than the replay, the log
/// grew to 937 MB past a 675 MB `catch_up.max_log_size` while parity compared its
/// ranges, and nothing stopped it. Now the limit holds between ranges: the run stops,
/// resumable (exit 3), saying why, and once the writes stop it resumes and is exact.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_log_limit_holds_while_parity_compares_its_ranges() {
    let s = Scenario::new(
        "catch_up_parity_limit",
        &seed("pl", 1_000_000),
        "pl",
        "pl",
        "parity:\n  range_rows: 1000\n  lanes: 1\ncatch_up:\n  max_log_size: 2MB\n",
    )
    .await;
    s.apply(Some("backfill"));
    let child = spawn_apply(&s, "parity");
    wait_until("parity to compare its ranges", || async {
        count(&s.client, "hyperswap.parity_ranges").await >= 5
    })
    .await;
    // Keys of the last ranges: their entries wait for their ranges' turn.
    s.client
        .batch_execute("UPDATE pl SET v = v + 1 WHERE id > 900000")
        .await
        .unwrap();
    stopped_at_the_log_limit(child);
    // The writes have stopped: the same command goes on and finishes.
    let run = s.apply(Some("parity"));
    assert!(run.stdout.contains("EQUAL"), "{}", run.stdout);
    assert_eq!(except_both_ways(&s.client, "pl", "pl_hs_new").await, 0);
}
