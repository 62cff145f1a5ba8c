//! Issue 9: the crash-point matrix, kept holding. hyperswap is killed (SIGKILL: no
//! cleanup of its own) inside each transaction that changes the database's shape: the
//! trigger phase, the cutover, the rollback and abort's first step, each while a
//! writer keeps writing. Each time the database must be as the journal says (the
//! transaction rolled back whole), the application must go on writing, and running the
//! same command again must finish the job with zero differences by an independent
//! comparison.
//!
//! The tool is caught inside its transaction by a blocker: a session holding a lock the
//! transaction's next statement waits for. Killed mid-backfill, mid-parity and with
//! its connection terminated are covered by forward_path.rs, parity.rs and messages.rs.
#![cfg(db_tests)]

mod common;

use common::*;
use hyperswap::ident::QualifiedName;
use hyperswap_workload::{create_sample_table, spawn_writer, OpMix, WriterConfig, WriterHandle};
use tokio_postgres::Client;

fn writer(db: &TestDb) -> WriterHandle {
    spawn_writer(WriterConfig {
        url: db.url.clone(),
        table: QualifiedName::new("public", "metrics"),
        connections: 2,
        ops_per_sec: 200,
        mix: OpMix::default(),
        // Stays valid on the hypertable after cutover (no row moves to another chunk).
        time_updates_cross_days: false,
    })
}

/// Runs hyperswap with `args`, waits until its session waits for the lock that
/// `blocker` holds (taken with `block_sql`), kills it, ends the blocker and waits until
/// the killed run's server session is gone.
async fn kill_inside_transaction(db: &TestDb, args: &[&str], blocker: &Client, block_sql: &str) {
    let client = db.client().await;
    blocker.batch_execute(block_sql).await.unwrap();
    let mut child = db.command(args).spawn().unwrap();
    wait_for_tool_lock_wait(&client).await;
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    blocker.batch_execute("ROLLBACK").await.unwrap();
    wait_for_no_tool_session(&client).await;
}

async fn phase(client: &Client) -> String {
    client
        .query_one(
            "SELECT phase FROM hyperswap.plans WHERE name = 'crash'",
            &[],
        )
        .await
        .unwrap()
        .get(0)
}

async fn copy_triggers_on(client: &Client, table: &str) -> i64 {
    client
        .query_one(
            "SELECT count(*) FROM pg_trigger WHERE tgrelid = to_regclass($1) AND tgname LIKE 'hyperswap_copy_%'",
            &[&table],
        )
        .await
        .unwrap()
        .get(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_inside_each_transaction_the_same_command_finishes_the_job() {
    let db = TestDb::new("crash_points").await;
    let client = db.client().await;
    create_sample_table(&client, &QualifiedName::new("public", "metrics"), 20_000)
        .await
        .unwrap();
    let plan = db.plan(
        "p.yaml",
        &one_table_plan("crash", "public.metrics", "cutover:\n  attempts: 1\n"),
    );
    let plan = path_str(&plan);
    let blocker = db.client().await;
    // Holds ROW EXCLUSIVE on the source, as an open application transaction would: the
    // trigger phase's CREATE TRIGGER and abort's DROP TRIGGER wait for it.
    let hold_writes = "BEGIN; LOCK TABLE public.metrics IN ROW EXCLUSIVE MODE";

    // 1. Inside the trigger phase's transaction.
    db.hyperswap(&["plan", "apply", plan, "--until", "target"])
        .ok();
    let w = writer(&db);
    kill_inside_transaction(
        &db,
        &["plan", "apply", plan, "--until", "trigger"],
        &blocker,
        hold_writes,
    )
    .await;
    assert_eq!(phase(&client).await, "target_created");
    assert_eq!(copy_triggers_on(&client, "public.metrics").await, 0);
    let run = db
        .hyperswap(&["plan", "apply", plan, "--until", "parity"])
        .ok();
    assert!(run.stdout.contains("EQUAL"), "{}", run.stdout);
    let stats = w.stop().await;
    assert_eq!(stats.errors, 0, "{stats:?}");
    assert_eq!(
        db.settled_difference(
            std::path::Path::new(plan),
            "public.metrics",
            "public.metrics_hs_new"
        )
        .await,
        0
    );

    // 2. Inside the cutover transaction: it holds the source and waits for the new
    // table, which a reader holds.
    let w = writer(&db);
    kill_inside_transaction(
        &db,
        &["plan", "apply", plan],
        &blocker,
        "BEGIN; SELECT count(*) FROM public.metrics_hs_new",
    )
    .await;
    assert_eq!(phase(&client).await, "verified");
    assert!(!is_hypertable(&client, "metrics").await);
    assert_eq!(copy_triggers_on(&client, "public.metrics").await, 4);
    let run = db.hyperswap(&["plan", "apply", plan]).ok();
    assert!(run.stdout.contains("EQUAL"), "{}", run.stdout);
    assert!(is_hypertable(&client, "metrics").await);
    let stats = w.stop().await;
    assert_eq!(stats.errors, 0, "{stats:?}");
    assert_eq!(
        except_both_ways(&client, "public.metrics", "public.metrics_hs_old").await,
        0
    );

    // 3. Inside the rollback transaction: it holds the hypertable and waits for the
    // retired table.
    let w = writer(&db);
    kill_inside_transaction(
        &db,
        &["rollback", plan],
        &blocker,
        "BEGIN; SELECT count(*) FROM public.metrics_hs_old",
    )
    .await;
    assert_eq!(phase(&client).await, "cut_over");
    assert!(is_hypertable(&client, "metrics").await);
    let run = db.hyperswap(&["rollback", plan]).ok();
    assert!(run.stdout.contains("EQUAL"), "{}", run.stdout);
    assert!(!is_hypertable(&client, "metrics").await);
    let stats = w.stop().await;
    assert_eq!(stats.errors, 0, "{stats:?}");
    assert_eq!(
        db.settled_difference(
            std::path::Path::new(plan),
            "public.metrics",
            "public.metrics_hs_new"
        )
        .await,
        0
    );

    // 4. Inside abort's first transaction (the copy triggers come off the source).
    let w = writer(&db);
    let before = count(&client, "public.metrics").await;
    kill_inside_transaction(&db, &["abort", plan], &blocker, hold_writes).await;
    assert_eq!(phase(&client).await, "rolled_back");
    assert_eq!(copy_triggers_on(&client, "public.metrics").await, 4);
    db.hyperswap(&["abort", plan]).ok();
    let stats = w.stop().await;
    assert_eq!(stats.errors, 0, "{stats:?}");
    assert_eq!(copy_triggers_on(&client, "public.metrics").await, 0);
    let left: i64 = client
        .query_one(
            "SELECT count(*) FROM pg_class WHERE relname LIKE 'metrics_hs_%'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(left, 0);
    assert!(count(&client, "public.metrics").await > before / 2);
}

/// Issue 9: right after a `kill -9` of `plan apply` inside its cutover, running it again
/// was refused as "a second orchestrator" while the dead run's server session still
/// finished its statement. Now the new run waits for such a holder (bounded, saying
/// so) and then finishes the job. (Under load the dead run's session may be gone by
/// the time the new run looks: either way the new run must not be refused.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_right_after_a_kill_waits_for_the_dead_runs_session() {
    let db = TestDb::new("crash_rerun").await;
    let client = db.client().await;
    create_sample_table(&client, &QualifiedName::new("public", "metrics"), 5_000)
        .await
        .unwrap();
    let plan = db.plan(
        "p.yaml",
        &one_table_plan(
            "crash",
            "public.metrics",
            "cutover:\n  lock_timeout: 10s\n  attempts: 1\n",
        ),
    );
    let plan = path_str(&plan);
    db.hyperswap(&["plan", "apply", plan, "--until", "parity"])
        .ok();
    let blocker = db.client().await;
    blocker
        .batch_execute("BEGIN; SELECT count(*) FROM public.metrics_hs_new")
        .await
        .unwrap();
    let mut child = db.command(&["plan", "apply", plan]).spawn().unwrap();
    wait_for_tool_lock_wait(&client).await;
    child.kill().unwrap(); // SIGKILL: its session goes on waiting for the lock
    child.wait().unwrap();
    // Again at once: the dead run's session still holds the plan while it waits.
    let again = spawn_binary(&db.url, &["plan", "apply", plan]);
    // The new run has looked up the holder of the plan's lock (and said that it waits):
    // its session's last statement is that lookup, finished.
    wait_until("the new run to find the old session holding the plan", || async {
        client
            .query_one(
                "SELECT EXISTS (SELECT FROM pg_stat_activity
                                WHERE datname = current_database() AND pid <> pg_backend_pid()
                                  AND application_name LIKE 'hyperswap apply%' AND state = 'idle'
                                  AND strpos(query, 'JOIN pg_stat_activity a ON a.pid = l.pid') > 0)",
                &[],
            )
            .await
            .unwrap()
            .get(0)
    })
    .await;
    blocker.batch_execute("ROLLBACK").await.unwrap();
    let run = again.await.unwrap();
    // Not refused as a second orchestrator: it waited for the dead run's session
    // ("which is running a statement; waiting up to 30s"), or found it gone already.
    assert_eq!(run.code, 0, "{}\n{}", run.stdout, run.stderr);
    assert!(
        !run.stderr.contains("is being run by another hyperswap"),
        "{}",
        run.stderr
    );
    assert!(is_hypertable(&client, "metrics").await);
    assert_eq!(
        except_both_ways(&client, "public.metrics", "public.metrics_hs_old").await,
        0
    );
}

/// Issue 18: kill points inside the catch-up that runs beside the backfill (its pass's
/// transaction waits for the copy, which a reader holds in SHARE mode) and between two
/// lock attempts of the cutover (after an attempt timed out behind a report). Each time
/// the journal's phase holds, the application goes on writing, and the same command
/// finishes the job with zero differences.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_inside_the_catch_up_and_between_lock_attempts() {
    let db = TestDb::new("crash_catch_up").await;
    let client = db.client().await;
    create_sample_table(&client, &QualifiedName::new("public", "metrics"), 60_000)
        .await
        .unwrap();
    let plan = db.plan(
        "p.yaml",
        &one_table_plan(
            "crash",
            "public.metrics",
            "backfill:\n  workers: 1\n  batch_rows: 1000\n  max_batch_rows: 1000\n  pause: 50ms\ncutover:\n  lock_timeout: 300ms\n  attempts: 50\n  backoff: 200ms\n",
        ),
    );
    let plan = path_str(&plan);
    db.hyperswap(&["plan", "apply", plan, "--until", "trigger"])
        .ok();
    let w = writer(&db);

    // 1. Inside the catch-up's pass, beside the workers.
    let blocker = db.client().await;
    let mut child = db
        .command(&["plan", "apply", plan, "--until", "backfill"])
        .spawn()
        .unwrap();
    wait_until("the first batches", || async {
        count(&client, "public.metrics_hs_new").await >= 3000
    })
    .await;
    blocker
        .batch_execute("BEGIN; LOCK TABLE public.metrics_hs_new IN SHARE MODE")
        .await
        .unwrap();
    wait_until("the catch-up to wait for the copy", || async {
        client
            .query_one(
                "SELECT EXISTS (SELECT FROM pg_stat_activity
                                WHERE datname = current_database() AND wait_event_type = 'Lock'
                                  AND application_name = 'hyperswap catch-up crash')",
                &[],
            )
            .await
            .unwrap()
            .get(0)
    })
    .await;
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    blocker.batch_execute("ROLLBACK").await.unwrap();
    wait_for_no_tool_session(&client).await;
    assert_eq!(phase(&client).await, "backfilling");
    let run = db
        .hyperswap(&["plan", "apply", plan, "--until", "parity"])
        .ok();
    assert!(run.stdout.contains("EQUAL"), "{}", run.stdout);
    assert_eq!(
        db.settled_difference(
            std::path::Path::new(plan),
            "public.metrics",
            "public.metrics_hs_new"
        )
        .await,
        0
    );

    // 2. Between two lock attempts of the cutover: a report holds the new table.
    blocker
        .batch_execute("BEGIN; SELECT count(*) FROM public.metrics_hs_new")
        .await
        .unwrap();
    let mut child = db.command(&["plan", "apply", plan]).spawn().unwrap();
    wait_until("a lock attempt to time out", || async {
        client
            .query_one(
                "SELECT count(*) >= 2 FROM hyperswap.events WHERE plan_name = 'crash' AND message LIKE 'attempt %'",
                &[],
            )
            .await
            .unwrap()
            .get(0)
    })
    .await;
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    blocker.batch_execute("ROLLBACK").await.unwrap();
    wait_for_no_tool_session(&client).await;
    assert_eq!(phase(&client).await, "verified");
    assert!(!is_hypertable(&client, "metrics").await);
    let run = db.hyperswap(&["plan", "apply", plan]).ok();
    assert!(run.stdout.contains("cut over"), "{}", run.stdout);
    let stats = w.stop().await;
    assert_eq!(stats.errors, 0, "{stats:?}");
    assert_eq!(
        except_both_ways(&client, "public.metrics", "public.metrics_hs_old").await,
        0
    );
    let rb = db.hyperswap(&["rollback", plan]).ok();
    assert!(rb.stdout.contains("EQUAL"), "{}", rb.stdout);
}
