//! Issue 2's acceptance: the forward path end to end on a real PostgreSQL + TimescaleDB,
//! under live writes, with a crash in the middle, cutover and rollback.
#![cfg(db_tests)]

mod common;

use std::time::{Duration, Instant};

use common::*;
use hyperswap::ident::QualifiedName;
use hyperswap_workload::{create_sample_table, spawn_writer, OpMix, WriterConfig};

async fn seeded(test: &str, rows: u64) -> TestDb {
    let db = TestDb::new(test).await;
    create_sample_table(
        &db.client().await,
        &QualifiedName::new("public", "metrics"),
        rows,
    )
    .await
    .unwrap();
    db
}

fn writer(db: &TestDb, connections: usize, rate: u32) -> hyperswap_workload::WriterHandle {
    spawn_writer(WriterConfig {
        url: db.url.clone(),
        table: QualifiedName::new("public", "metrics"),
        connections,
        ops_per_sec: rate,
        mix: OpMix::default(),
        // Before cutover the source is a plain table: moving rows across days is exactly
        // what the copy trigger must handle.
        time_updates_cross_days: true,
    })
}

/// Acceptance 2: INSERT, UPDATE (ordinary columns, time column, key) and DELETE traffic
/// during the whole backfill; afterwards an independent EXCEPT finds no difference.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn live_writes_during_backfill_leave_no_difference() {
    let db = seeded("live_writes", 60_000).await;
    let plan = db.plan(
        "p.yaml",
        &one_table_plan(
            "live",
            "public.metrics",
            "backfill:\n  batch_rows: 500\n  max_batch_rows: 500\n  pause: 5ms\n",
        ),
    );
    let w = writer(&db, 3, 0);
    wait_for_writes(&w, 30).await;
    let run = spawn_binary(
        &db.url,
        &["plan", "apply", path_str(&plan), "--until", "parity"],
    )
    .await
    .unwrap();
    let stats = w.stop().await;
    let run = run.ok();
    assert!(run.stdout.contains("EQUAL"), "{}", run.stdout);
    for (what, n) in [
        ("inserts", stats.inserts),
        ("value updates", stats.updates_value),
        ("time updates", stats.updates_time),
        ("key updates", stats.updates_key),
        ("deletes", stats.deletes),
    ] {
        assert!(
            n > 20,
            "the writer made too few {what} during the backfill: {stats:?}"
        );
    }
    let client = db.client().await;
    assert_eq!(
        db.settled_difference(&plan, "public.metrics", "public.metrics_hs_new")
            .await,
        0
    );
    assert_eq!(
        count(&client, "public.metrics").await,
        count(&client, "public.metrics_hs_new").await
    );
}

/// Acceptance 3: kill -9 in the middle of the backfill; the next run resumes after the
/// last committed batch instead of starting over, and ends with no difference.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_backfill_resumes_from_its_last_batch() {
    let rows = 40_000;
    let db = seeded("kill_resume", rows).await;
    let plan = db.plan(
        "p.yaml",
        &one_table_plan(
            "kill",
            "public.metrics",
            "backfill:\n  batch_rows: 500\n  max_batch_rows: 500\n  pause: 20ms\n",
        ),
    );
    let w = writer(&db, 2, 200);
    let client = db.client().await;
    let mut child = db
        .command(&["plan", "apply", path_str(&plan), "--until", "parity", "-q"])
        .spawn()
        .unwrap();
    let copied_at_kill = wait_for_progress(&client, rows as i64 / 4).await;
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    let (copied_before, cursor_before) = progress(&client).await;
    assert!(
        copied_before >= copied_at_kill && copied_before < rows as i64,
        "killed too late: {copied_before}"
    );
    let run = spawn_binary(
        &db.url,
        &["plan", "apply", path_str(&plan), "--until", "parity"],
    )
    .await
    .unwrap();
    w.stop().await;
    let run = run.ok();
    let (copied_total, _) = progress(&client).await;
    // Starting over would copy the first `copied_before` rows (a quarter at least)
    // twice; a few rows are read twice legitimately (a key the writer moved past the
    // cursor).
    assert!(
        copied_total < rows as i64 + copied_before / 2,
        "resumed run copied {copied_total} rows in all for a {rows}-row table (cursor was {cursor_before:?}): it started over"
    );
    assert!(run.stdout.contains("EQUAL"), "{}", run.stdout);
    assert_eq!(
        db.settled_difference(&plan, "public.metrics", "public.metrics_hs_new")
            .await,
        0
    );
    let phase: String = client
        .query_one("SELECT phase FROM hyperswap.plans", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(phase, "verified");
}

async fn progress(client: &tokio_postgres::Client) -> (i64, Option<String>) {
    let row = client
        .query_one(
            "SELECT coalesce(sum(rows_copied), 0)::bigint, max(cursor::text) FROM hyperswap.ranges",
            &[],
        )
        .await
        .unwrap();
    (row.get(0), row.get(1))
}

async fn wait_for_progress(client: &tokio_postgres::Client, at_least: i64) -> i64 {
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let exists: bool = client
            .query_one("SELECT to_regclass('hyperswap.ranges') IS NOT NULL", &[])
            .await
            .unwrap()
            .get(0);
        if exists {
            let (copied, _) = progress(client).await;
            if copied >= at_least {
                return copied;
            }
        }
        assert!(
            Instant::now() < deadline,
            "the backfill never reached {at_least} rows"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Acceptance 4: after cutover the source name is a hypertable with every row, the old
/// nextval default keeps working, and rollback makes the original live with every row.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cutover_then_rollback_keeps_every_row() {
    let db = seeded("cutover_rollback", 20_000).await;
    let plan = db.plan("p.yaml", &one_table_plan("swap", "public.metrics", ""));
    let client = db.client().await;
    let before = count(&client, "public.metrics").await;
    db.hyperswap(&["plan", "apply", path_str(&plan)]).ok();

    let is_hyper: bool = client
        .query_one(
            "SELECT EXISTS (SELECT 1 FROM timescaledb_information.hypertables WHERE hypertable_name = 'metrics')",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert!(is_hyper, "public.metrics is not a hypertable after cutover");
    assert_eq!(count(&client, "public.metrics").await, before);
    assert_eq!(
        except_both_ways(&client, "public.metrics", "public.metrics_hs_old").await,
        0
    );
    // The application's INSERT, relying on the id default, after cutover.
    let id: i64 = client
        .query_one(
            "INSERT INTO public.metrics (ts, device_id) VALUES (now(), 7) RETURNING id",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert!(
        id > before,
        "nextval default handed out {id}, not past the existing ids"
    );
    let owner: String = client
        .query_one("SELECT pg_get_serial_sequence('public.metrics', 'id')", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(
        owner, "public.metrics_id_seq",
        "the live table owns the id sequence"
    );
    client
        .execute("UPDATE public.metrics SET value = -1 WHERE id = $1", &[&id])
        .await
        .unwrap();
    client
        .execute("DELETE FROM public.metrics WHERE id = 1", &[])
        .await
        .unwrap();

    let rb = db.hyperswap(&["rollback", path_str(&plan)]).ok();
    assert!(rb.stdout.contains("EQUAL"), "{}", rb.stdout);
    let relkind: String = client
        .query_one(
            "SELECT relkind::text FROM pg_class WHERE oid = 'public.metrics'::regclass",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(relkind, "r");
    let is_hyper: bool = client
        .query_one(
            "SELECT EXISTS (SELECT 1 FROM timescaledb_information.hypertables WHERE hypertable_name = 'metrics')",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert!(!is_hyper, "the original plain table is live again");
    // Every row it had, plus the writes made while the hypertable was live.
    assert_eq!(count(&client, "public.metrics").await, before);
    let v: Option<f64> = client
        .query_one("SELECT value FROM public.metrics WHERE id = $1", &[&id])
        .await
        .unwrap()
        .get(0);
    assert_eq!(v, Some(-1.0));
    assert_eq!(count(&client, "public.metrics WHERE id = 1").await, 0);
    assert_eq!(
        db.settled_difference(&plan, "public.metrics", "public.metrics_hs_new")
            .await,
        0
    );
    let id2: i64 = client
        .query_one(
            "INSERT INTO public.metrics (ts, device_id) VALUES (now(), 7) RETURNING id",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert!(id2 > id);
}

/// Acceptance 5: a second orchestrator on the same plan fails at once naming the holder;
/// an edited plan file is refused mid-flight.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn second_orchestrator_and_edited_plan_are_refused() {
    let db = seeded("second_orchestrator", 20_000).await;
    let text = one_table_plan(
        "busy",
        "public.metrics",
        "backfill:\n  batch_rows: 200\n  max_batch_rows: 200\n  pause: 50ms\n",
    );
    let plan = db.plan("p.yaml", &text);
    let client = db.client().await;
    let mut first = db
        .command(&[
            "plan",
            "apply",
            path_str(&plan),
            "--until",
            "backfill",
            "-q",
        ])
        .spawn()
        .unwrap();
    wait_for_progress(&client, 1).await;

    let started = Instant::now();
    let second = db.hyperswap(&["plan", "apply", path_str(&plan)]);
    let took = started.elapsed();
    assert_eq!(second.code, 3, "busy, retry later: {}", second.stderr);
    assert!(
        second.stderr.contains("being run by another hyperswap"),
        "{}",
        second.stderr
    );
    assert!(
        second.stderr.contains("pid ") && second.stderr.contains("hyperswap apply busy"),
        "{}",
        second.stderr
    );
    assert!(
        took < Duration::from_secs(5),
        "the second run waited {took:?}"
    );

    first.kill().unwrap();
    first.wait().unwrap();
    let edited = db.plan("p.yaml", &format!("{text}# an edit\n"));
    let run = db.hyperswap(&["plan", "apply", path_str(&edited)]);
    assert_eq!(run.code, 2, "{}", run.stderr);
    assert!(
        run.stderr.contains("changed since plan `busy` started"),
        "{}",
        run.stderr
    );
    // Restoring the file lets the run go on.
    db.plan("p.yaml", &text);
    db.hyperswap(&["plan", "apply", path_str(&plan), "--until", "backfill"])
        .ok();
}

/// Acceptance 6: bad input gets a clear message, exit 2, and an unchanged database.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_is_refused_and_changes_nothing() {
    let db = TestDb::new("bad_input").await;
    let client = db.client().await;
    client
        .batch_execute(
            "CREATE TABLE good (id bigserial PRIMARY KEY, ts timestamptz NOT NULL, v int);
             INSERT INTO good (ts, v) SELECT now(), g FROM generate_series(1, 100) g;
             CREATE TABLE with_nulls (id bigserial PRIMARY KEY, ts timestamptz, v int);
             INSERT INTO with_nulls (ts, v) VALUES (now(), 1), (NULL, 2);
             CREATE TABLE keyless (ts timestamptz NOT NULL, v int);
             CREATE TABLE composite (a int, b int, ts timestamptz NOT NULL, PRIMARY KEY (a, b));
             CREATE TABLE taken (id bigserial PRIMARY KEY, ts timestamptz NOT NULL);
             CREATE TABLE taken_hs_new (x int);",
        )
        .await
        .unwrap();
    let before = fingerprint(&client).await;
    let cases: Vec<(&str, String, &str)> = vec![
        ("malformed YAML", "name: x\ntables: [\n".into(), "p.yaml"),
        (
            "unknown key",
            one_table_plan("x", "good", "    chunk_size: 3\n"),
            "unknown field `chunk_size`",
        ),
        (
            "missing table",
            one_table_plan("x", "nope", ""),
            "table public.nope does not exist",
        ),
        (
            "missing time column",
            one_table_plan("x", "good", "").replace("time_column: ts", "time_column: tz"),
            "has no column tz",
        ),
        (
            "time column with NULLs",
            one_table_plan("x", "with_nulls", ""),
            "holds NULLs",
        ),
        (
            "no usable key",
            one_table_plan("x", "keyless", ""),
            "has no primary key and no unique index on NOT NULL columns",
        ),
        (
            "key that is not unique",
            one_table_plan("x", "composite", "    key: a\n"),
            "is not unique in public.composite",
        ),
        (
            "target taken",
            one_table_plan("x", "taken", ""),
            "already taken",
        ),
    ];
    for (what, text, expected) in cases {
        let plan = db.plan("p.yaml", &text);
        for cmd in [&["plan", "validate"][..], &["plan", "apply"][..]] {
            let args: Vec<&str> = cmd.iter().copied().chain([path_str(&plan)]).collect();
            let run = db.hyperswap(&args);
            assert_eq!(
                run.code, 2,
                "{what}: {args:?} exited {}\n{}",
                run.code, run.stderr
            );
            assert!(
                run.stderr.contains(expected),
                "{what}: expected `{expected}` in:\n{}",
                run.stderr
            );
            assert!(run.stderr.contains("error: "), "{what}: {}", run.stderr);
            if !matches!(what, "malformed YAML" | "unknown key") {
                assert!(
                    run.stderr.contains("fix: "),
                    "{what}: no fix offered:\n{}",
                    run.stderr
                );
            }
        }
        assert_eq!(
            fingerprint(&client).await,
            before,
            "{what} changed the database"
        );
    }
    let unknown = db.hyperswap(&[
        "plan",
        "validate",
        path_str(&db.plan(
            "p.yaml",
            &one_table_plan("x", "good", "    chunk_size: 3\n"),
        )),
    ]);
    assert!(
        unknown.stderr.contains("line 6"),
        "unknown key error names the line: {}",
        unknown.stderr
    );
}

/// Acceptance 7: `plan show` prints the SQL that `plan apply` runs.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plan_show_is_the_sql_apply_runs() {
    let db = seeded("show_is_apply", 3_000).await;
    let client = db.client().await;
    client
        .batch_execute(
            "CREATE ROLE hs_show_reader; GRANT SELECT ON public.metrics TO hs_show_reader;
             COMMENT ON COLUMN public.metrics.value IS 'reading';",
        )
        .await
        .ok();
    let plan = db.plan(
        "p.yaml",
        &one_table_plan("show", "public.metrics", "backfill:\n  batch_rows: 1000\n"),
    );
    let shown = db.hyperswap(&["plan", "show", path_str(&plan)]).ok().stdout;
    let log = db.dir.join("apply.sql");
    db.hyperswap(&[
        "plan",
        "apply",
        path_str(&plan),
        "--sql-log",
        path_str(&log),
    ])
    .ok();
    let ran = std::fs::read_to_string(&log).unwrap();
    // The settings every session runs with are shown too, the pinned search_path first.
    assert!(
        shown.contains(
            "-- every session of hyperswap first runs: SET search_path = pg_catalog, pg_temp;"
        ),
        "{shown}"
    );

    let (forward, rollback) = shown
        .split_once("\n-- ==== rollback")
        .expect("show has a rollback section");
    let rollback = rollback.split_once('\n').unwrap().1;
    // Statements that run only when a range differs are printed but not run here.
    let unconditional: String = forward
        .split("\n-- ==== ")
        .filter(|s| !s.contains("only when"))
        .map(|s| format!("-- ==== {s}"))
        .collect::<Vec<_>>()
        .join("\n\n");
    let shown_stmts = statements(&unconditional);
    let shown_all = statements(forward);
    let ran_stmts = statements(&ran);
    for s in &ran_stmts {
        assert!(
            shown_all.contains(s),
            "apply ran a statement plan show did not print:\n{s}"
        );
    }
    for s in &shown_stmts {
        assert!(
            ran_stmts.contains(s),
            "plan show printed a statement apply did not run:\n{s}"
        );
    }
    let recorded: String = client
        .query_one("SELECT reverse_sql FROM hyperswap.plans", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(statements(rollback), statements(&recorded));
}

/// Statements of a show output or SQL log: paragraphs, without leading comment lines,
/// without the final `;`.
fn statements(text: &str) -> Vec<String> {
    text.split("\n\n")
        .map(|p| {
            p.lines()
                .skip_while(|l| l.starts_with("--") || l.trim().is_empty())
                .collect::<Vec<_>>()
                .join("\n")
                .trim()
                .trim_end_matches(';')
                .to_string()
        })
        .filter(|s| !s.is_empty())
        .collect()
}
