//! Issue 7, "messages": validate reports every problem of every table at once, names
//! columns the way the plan must write them, tells "not unique" from "allows NULL";
//! a deadlock is reported as a deadlock.
#![cfg(db_tests)]

mod common;

use std::time::{Duration, Instant};

use common::*;

/// Acceptance 5: three broken tables, three problems in one run (and more: each
/// table's every problem), and the database unchanged.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn validate_reports_every_broken_table() {
    let db = TestDb::new("three_broken").await;
    let client = db.client().await;
    client
        .batch_execute(
            "CREATE TABLE keyless (\"Time\" timestamptz NOT NULL, v int);
             CREATE TABLE nullable_key (id int, ts timestamptz NOT NULL);
             CREATE UNIQUE INDEX nullable_key_id ON nullable_key (id);
             CREATE TABLE not_unique (id int NOT NULL, ts timestamptz NOT NULL, PRIMARY KEY (id, ts));
             CREATE TABLE good (id bigint PRIMARY KEY, ts timestamptz NOT NULL);",
        )
        .await
        .unwrap();
    let before = fingerprint(&client).await;
    let plan = db.plan(
        "p.yaml",
        "name: broken\ntables:\n  - source: keyless\n    time_column: time\n    chunk_time_interval: 1 day\n  - source: nullable_key\n    time_column: ts\n    chunk_time_interval: 1 day\n  - source: not_unique\n    time_column: ts\n    chunk_time_interval: 1 day\n    key: id\n  - source: missing\n    time_column: ts\n    chunk_time_interval: 1 day\n  - source: good\n    time_column: ts\n    chunk_time_interval: 1 day\n",
    );
    // The same as data: `plan validate --json` lists every problem with its fix.
    let run = db.hyperswap(&["plan", "validate", "--json", path_str(&plan)]);
    assert_eq!(run.code, 2, "{}", run.stderr);
    let doc: serde_json::Value = serde_json::from_str(&run.stdout).unwrap();
    assert_eq!(doc["valid"], false, "{doc:#}");
    assert_eq!(doc["exit_code"], 2, "{doc:#}");
    let listed = doc["problems"].as_array().unwrap();
    assert!(listed.len() >= 5, "{doc:#}");
    assert!(listed.iter().all(|p| p["problem"].is_string()), "{doc:#}");
    let good = db.plan(
        "good.yaml",
        "name: fine\ntables:\n  - source: good\n    time_column: ts\n    chunk_time_interval: 1 day\n",
    );
    let run = db.hyperswap(&["plan", "validate", "--json", path_str(&good)]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    let doc: serde_json::Value = serde_json::from_str(&run.stdout).unwrap();
    assert_eq!(doc["valid"], true, "{doc:#}");
    assert_eq!(doc["tables"][0]["source"], "public.good", "{doc:#}");
    for cmd in ["validate", "apply"] {
        let run = db.hyperswap(&["plan", cmd, path_str(&plan)]);
        assert_eq!(run.code, 2, "{cmd}: {}", run.stderr);
        let e = &run.stderr;
        assert!(e.contains("5 problems"), "{cmd}: {e}");
        // keyless: its time column is spelled as the plan must write it, and the key
        // problem is reported too.
        assert!(e.contains("public.keyless has no column time "), "{e}");
        assert!(
            e.contains("'\"Time\"'"),
            "the suggestion must be spelled '\"Time\"': {e}"
        );
        assert!(
            e.contains("public.keyless has no primary key and no unique index on NOT NULL columns"),
            "{e}"
        );
        // A unique column that allows NULL, and a NOT NULL column that is not unique.
        assert!(
            e.contains("nullable_key_id on (id) would do, but id allow(s) NULL"),
            "{e}"
        );
        assert!(
            e.contains("(id) (tables[2].key) is not unique in public.not_unique"),
            "{e}"
        );
        assert!(!e.contains("not NOT NULL"), "{e}");
        assert!(e.contains("table public.missing does not exist"), "{e}");
        assert!(
            !e.contains("public.good"),
            "the good table has no problem: {e}"
        );
        assert_eq!(
            fingerprint(&client).await,
            before,
            "{cmd} changed the database"
        );
    }
}

/// The backfill takes no row lock and waits for none: an application transaction that
/// holds a row of the table open (uncommitted) for the whole backfill holds nothing up,
/// on either side; its change, committed afterwards, reaches the copy through the change
/// log. (Before the change log, batches locked their rows FOR SHARE, waited for such a
/// row, and could deadlock with the application.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_open_application_transaction_holds_up_no_batch() {
    let db = TestDb::new("open_tx").await;
    let client = db.client().await;
    client.batch_execute(&seed_sql("m", 2000)).await.unwrap();
    let plan = db.plan(
        "p.yaml",
        &one_table_plan("dl", "m", "    key: id\nbackfill:\n  batch_rows: 500\n"),
    );
    db.hyperswap(&["plan", "apply", path_str(&plan), "--until", "trigger"])
        .ok();
    let app = db.client().await;
    app.batch_execute("BEGIN; UPDATE m SET v = -1 WHERE id = 1500; DELETE FROM m WHERE id = 700")
        .await
        .unwrap();
    let started = Instant::now();
    let run = spawn_binary(
        &db.url,
        &["plan", "apply", path_str(&plan), "--until", "backfill"],
    )
    .await
    .unwrap()
    .ok();
    assert!(
        started.elapsed() < Duration::from_secs(30),
        "the backfill took {:?} beside an open transaction",
        started.elapsed()
    );
    assert!(!run.stderr.contains("retrying"), "{}", run.stderr);
    // The copy has the rows as they were committed; the open change is in no one's way.
    app.batch_execute("UPDATE m SET v = -2 WHERE id = 10; COMMIT")
        .await
        .expect("the application's transaction commits");
    assert_eq!(
        db.settled_difference(&plan, "public.m", "public.m_hs_new")
            .await,
        0
    );
    assert_eq!(count(&client, "public.m_hs_new WHERE id = 700").await, 0);
    assert_eq!(count(&client, "public.m_hs_new WHERE v < 0").await, 2);
}

/// `-infinity`/`infinity` in the time column pass no chunk: refused by validate, rows
/// counted, before anything is created.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn infinite_times_are_refused_up_front() {
    let db = TestDb::new("infinite_times").await;
    let client = db.client().await;
    client
        .batch_execute(
            "CREATE TABLE m (id bigint PRIMARY KEY, ts timestamptz NOT NULL);
             INSERT INTO m SELECT g, '2026-01-01'::timestamptz + g * interval '1 minute' FROM generate_series(1, 100) g;
             INSERT INTO m VALUES (1001, 'infinity'), (1002, '-infinity'), (1003, 'infinity');",
        )
        .await
        .unwrap();
    let before = fingerprint(&client).await;
    let plan = db.plan("p.yaml", &one_table_plan("inf", "m", ""));
    for cmd in ["validate", "apply"] {
        let run = db.hyperswap(&["plan", cmd, path_str(&plan)]);
        assert_eq!(run.code, 2, "{}", run.stderr);
        assert!(
            run.stderr
                .contains("holds -infinity and infinity in 3 row(s)"),
            "{}",
            run.stderr
        );
        assert!(run.stderr.contains("NOT isfinite"), "{}", run.stderr);
        assert_eq!(fingerprint(&client).await, before);
    }
}

/// Exit code 4: the connection failed (here: nothing listens on the port); running the
/// same command again once the server is back resumes. The message names the server.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connection_failure_exits_4() {
    let db = TestDb::new("exit_four").await;
    let plan = db.plan("p.yaml", &one_table_plan("four", "t", ""));
    let run = run_binary(
        "postgres://postgres@127.0.0.1:1/postgres?connect_timeout=5",
        &["plan", "validate", path_str(&plan)],
    );
    assert_eq!(run.code, 4, "{}", run.stderr);
    assert!(run.stderr.contains("127.0.0.1:1"), "{}", run.stderr);
}

/// Exit code 4 as well when the connection is lost mid-run (the server ends the
/// session): the plan resumes from the journal.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lost_connection_exits_4_and_resumes() {
    let db = TestDb::new("exit_four_lost").await;
    let client = db.client().await;
    small_table(&client, 50000, "1 minute").await;
    let plan = db.plan(
        "p.yaml",
        &one_table_plan(
            "lost",
            "t",
            "backfill:\n  workers: 1\n  batch_rows: 200\n  max_batch_rows: 200\n  pause: 20ms\n",
        ),
    );
    let run = spawn_binary(
        &db.url,
        &["plan", "apply", path_str(&plan), "--until", "backfill"],
    );
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    loop {
        let killed: i64 = client
            .query_one(
                "SELECT count(*) FROM (SELECT pg_terminate_backend(pid) FROM pg_stat_activity
                 WHERE datname = current_database() AND application_name LIKE 'hyperswap backfill%') k",
                &[],
            )
            .await
            .unwrap()
            .get(0);
        if killed > 0 {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the backfill never started"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    let run = run.await.unwrap();
    assert_eq!(run.code, 4, "{}", run.stderr);
    db.hyperswap(&["plan", "apply", path_str(&plan), "--until", "parity"])
        .ok();
    assert_eq!(
        db.settled_difference(&plan, "public.t", "public.t_hs_new")
            .await,
        0
    );
}

/// Issue 9: a cutover window in a time zone the server does not know is refused by
/// `plan validate` (it used to fail only at cutover, after the whole backfill).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unknown_window_time_zone_is_refused_by_validate() {
    let db = TestDb::new("window_zone").await;
    let client = db.client().await;
    small_table(&client, 10, "1 hour").await;
    let plan = db.plan(
        "p.yaml",
        &one_table_plan(
            "zone",
            "t",
            "cutover:\n  window: \"01:00-03:00 Mars/Olympus\"\n",
        ),
    );
    let run = db.hyperswap(&["plan", "validate", path_str(&plan)]);
    assert_eq!(run.code, 2, "{}", run.stderr);
    assert!(
        run.stderr.contains("no time zone `Mars/Olympus`"),
        "{}",
        run.stderr
    );
}

/// Issue 10: finalize drops the way back, so off a terminal it needs `--yes`; without it
/// nothing is changed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn finalize_needs_yes_off_a_terminal() {
    let db = TestDb::new("finalize_yes").await;
    let client = db.client().await;
    small_table(&client, 100, "1 hour").await;
    let plan = db.plan("p.yaml", &one_table_plan("yes", "t", ""));
    db.hyperswap(&["plan", "apply", path_str(&plan)]).ok();
    let before = fingerprint(&client).await;
    let run = db.hyperswap(&["finalize", path_str(&plan)]);
    assert_eq!(run.code, 2, "{}", run.stderr);
    assert!(run.stderr.contains("needs --yes"), "{}", run.stderr);
    assert_eq!(fingerprint(&client).await, before);
    db.hyperswap(&["finalize", "--yes", path_str(&plan)]).ok();
    assert_eq!(
        count(&client, "pg_class WHERE relname = 't_hs_old'").await,
        0
    );
}

/// `--log-format json` writes one JSON object per log line; `-v` adds the statements run.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_logs_and_verbose() {
    let db = TestDb::new("json_logs").await;
    let client = db.client().await;
    small_table(&client, 100, "1 hour").await;
    let plan = db.plan("p.yaml", &one_table_plan("logs", "t", ""));
    let run = db
        .hyperswap(&[
            "plan",
            "apply",
            path_str(&plan),
            "--until",
            "target",
            "--log-format",
            "json",
            "-v",
        ])
        .ok();
    let lines: Vec<serde_json::Value> = run
        .stderr
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect();
    assert!(lines.iter().any(|l| l["level"] == "INFO"), "{}", run.stderr);
    assert!(
        lines.iter().any(|l| l["level"] == "DEBUG"
            && l["fields"]["message"]
                .as_str()
                .is_some_and(|m| m.contains("CREATE TABLE"))),
        "{}",
        run.stderr
    );
}

/// `status --watch` prints again every interval until Ctrl-C, then exits 0.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_watch_repeats_until_ctrl_c() {
    let db = TestDb::new("status_watch").await;
    let client = db.client().await;
    small_table(&client, 100, "1 hour").await;
    let plan = db.plan("p.yaml", &one_table_plan("watched", "t", ""));
    db.hyperswap(&["plan", "apply", path_str(&plan), "--until", "backfill"])
        .ok();
    let child = db
        .command(&["status", "--watch", "200ms", "--json"])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    std::process::Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(0));
    let text = String::from_utf8_lossy(&out.stdout);
    let docs: Vec<serde_json::Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert!(docs.len() >= 3, "{text}");
    assert!(text.contains("watched"), "{text}");
}
