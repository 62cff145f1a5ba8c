//! Issue 8, "exact under every writer": writers in READ COMMITTED, REPEATABLE READ and
//! SERIALIZABLE transactions during the backfill and after cutover. A transaction whose
//! snapshot predates a batch cannot see that batch's copies; the copy trigger only logs
//! the keys it wrote, and the replay reads them again from the source, so whatever the
//! writer's snapshot the copy ends up as the source. Retries of serialization failures
//! (the writers' own, between each other) are counted, not hidden; an independent
//! comparison finds nothing.
#![cfg(db_tests)]

mod common;

use std::time::Duration;

use common::writer::SqlWriter;
use common::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn repeatable_read_and_serializable_writers_leave_no_difference() {
    let db = TestDb::new("isolation_mix").await;
    let client = db.client().await;
    client
        .batch_execute(
            "CREATE TABLE iso (id bigint PRIMARY KEY, n int NOT NULL, ts timestamptz NOT NULL, v int);
             CREATE INDEX iso_n ON iso (n);
             INSERT INTO iso SELECT g, g % 1000, '2026-01-01'::timestamptz + g * interval '97 seconds', g
             FROM generate_series(1, 30000) g;",
        )
        .await
        .unwrap();
    let plan = db.plan(
        "p.yaml",
        &one_table_plan(
            "iso",
            "iso",
            "backfill:\n  batch_rows: 300\n  max_batch_rows: 300\n  pause: 5ms\n",
        ),
    );
    // Each transaction takes its snapshot, waits while batches commit, then changes rows
    // whose copies may have been made after its snapshot.
    let pick = "(SELECT id FROM iso WHERE n = {r} ORDER BY id LIMIT 1)";
    let writes: Vec<String> = vec![
        format!("UPDATE iso SET v = v + 1 WHERE id = {pick}"),
        format!("BEGIN ISOLATION LEVEL REPEATABLE READ; SELECT count(*) FROM iso WHERE n = {{r}}; SELECT pg_sleep(0.03); DELETE FROM iso WHERE id = {pick}; COMMIT"),
        format!("BEGIN ISOLATION LEVEL REPEATABLE READ; SELECT count(*) FROM iso WHERE n = {{r}}; SELECT pg_sleep(0.03); UPDATE iso SET id = id + 1000000 WHERE id = {pick}; COMMIT"),
        format!("BEGIN ISOLATION LEVEL REPEATABLE READ; SELECT count(*) FROM iso WHERE n = {{r}}; SELECT pg_sleep(0.03); UPDATE iso SET v = -v WHERE id = {pick}; COMMIT"),
        format!("BEGIN ISOLATION LEVEL SERIALIZABLE; SELECT count(*) FROM iso WHERE n = {{r}}; SELECT pg_sleep(0.03); UPDATE iso SET ts = date_trunc('hour', ts) + interval '7 minutes' WHERE id = {pick}; COMMIT"),
        "BEGIN ISOLATION LEVEL SERIALIZABLE; INSERT INTO iso VALUES (2000000 + (random() * 1e8)::int, {r}, '2026-01-10', 0); COMMIT".to_string(),
    ];
    let writes: Vec<&str> = writes.iter().map(String::as_str).collect();
    let writer = SqlWriter::start(&db.url, 3, &writes, Duration::from_millis(5));
    let run = spawn_binary(
        &db.url,
        &["plan", "apply", path_str(&plan), "--until", "parity"],
    )
    .await
    .unwrap()
    .ok();
    assert!(run.stdout.contains("EQUAL"), "{}", run.stdout);
    assert_eq!(
        db.settled_difference(&plan, "public.iso", "public.iso_hs_new")
            .await,
        0,
        "after parity"
    );
    db.hyperswap(&["plan", "apply", path_str(&plan)]).ok();
    writer.wait_for(50).await;
    let counts = writer.stop().await;
    assert!(
        counts.errors.is_empty(),
        "writer errors: {:#?}",
        counts.errors
    );
    for (sql, n) in writes.iter().zip(&counts.rows) {
        assert!(*n > 0, "never committed: {sql}");
    }
    eprintln!(
        "committed per statement: {:?}; serialization failures retried: {}",
        counts.rows, counts.retried
    );
    assert_eq!(
        except_both_ways(&client, "public.iso", "public.iso_hs_old").await,
        0,
        "after cutover"
    );
}

/// An ALTER TABLE of a table under migration would break the copy triggers and every
/// application write with them: where the tool runs as a superuser, an event trigger
/// refuses it with a message, and the application's writes keep working.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn alter_table_under_migration_is_refused_and_writes_go_on() {
    let db = TestDb::new("ddl_guard").await;
    let client = db.client().await;
    client
        .batch_execute(
            "CREATE TABLE g (id bigint PRIMARY KEY, ts timestamptz NOT NULL, note text);
             INSERT INTO g SELECT x, '2026-01-01'::timestamptz + x * interval '1 minute', 'n' FROM generate_series(1, 1000) x;",
        )
        .await
        .unwrap();
    let plan = db.plan("p.yaml", &one_table_plan("guard", "g", ""));
    db.hyperswap(&["plan", "apply", path_str(&plan), "--until", "backfill"])
        .ok();
    for ddl in [
        "ALTER TABLE g RENAME COLUMN note TO remark",
        "ALTER TABLE g DROP COLUMN note",
        "ALTER TABLE g ADD COLUMN extra int",
    ] {
        let e = client.batch_execute(ddl).await.unwrap_err();
        let db_error = e.as_db_error().unwrap();
        // The guard's message, or (DROP COLUMN, checked by the database before the guard
        // runs) the dependency on the view of the tool's that pins the columns.
        assert!(
            db_error
                .message()
                .contains("is being moved by hyperswap: changing its columns")
                || db_error.detail().is_some_and(|d| {
                    d.contains("view hyperswap.columns_") && d.contains("depends on column")
                }),
            "{ddl}: {db_error:?}"
        );
    }
    // What does not touch the columns is let through.
    client
        .batch_execute("ALTER TABLE g ALTER COLUMN note SET STATISTICS 500; ALTER TABLE g SET (fillfactor = 90)")
        .await
        .expect("an ALTER TABLE that keeps the columns passes");
    // The storage parameter must reach the copy too (validate names it before cutover).
    client
        .batch_execute("ALTER TABLE g_hs_new SET (fillfactor = 90)")
        .await
        .unwrap();
    client
        .batch_execute(
            "INSERT INTO g VALUES (5000, '2026-01-01', 'after'); UPDATE g SET note = 'u' WHERE id = 10;",
        )
        .await
        .expect("the application's writes keep working");
    assert_eq!(
        db.settled_difference(&plan, "public.g", "public.g_hs_new")
            .await,
        0
    );
    // Cutover and abort are the tool's own DDL: they pass; afterwards the table is free.
    db.hyperswap(&["plan", "apply", path_str(&plan)]).ok();
    let e = client
        .batch_execute("ALTER TABLE g RENAME COLUMN note TO remark")
        .await
        .unwrap_err();
    assert!(e
        .as_db_error()
        .unwrap()
        .message()
        .contains("is being moved"));
    db.hyperswap(&["rollback", path_str(&plan)]).ok();
    db.hyperswap(&["abort", path_str(&plan)]).ok();
    client
        .batch_execute("ALTER TABLE g RENAME COLUMN note TO remark")
        .await
        .expect("after abort the table may be altered again");
    let guard: i64 = client
        .query_one(
            "SELECT count(*) FROM pg_event_trigger WHERE evtname = 'hyperswap_ddl_guard'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(guard, 0, "the guard outlived the last plan");
}
