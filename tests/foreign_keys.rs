//! Issue 7's acceptance: a parent/child family (the seeds' traces <- trace_spans <-
//! trace_events) keeps its integrity while the parent moves into a hypertable, with
//! `inbound_foreign_keys: emulate`, through cutover, rollback, finalize and the end of
//! the emulation; and a child moved first does not break its parent's move.
#![cfg(db_tests)]

mod common;

use common::*;
use tokio_postgres::error::SqlState;
use tokio_postgres::Client;

async fn scalar<T: for<'a> tokio_postgres::types::FromSql<'a>>(c: &Client, sql: &str) -> T {
    c.query_one(sql, &[])
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"))
        .get(0)
}

/// The SQLSTATE `sql` fails with (panics if it succeeds).
async fn fails_with(c: &Client, sql: &str) -> SqlState {
    let e = c
        .batch_execute(sql)
        .await
        .expect_err(&format!("expected `{sql}` to fail"));
    e.code().cloned().unwrap_or_else(|| panic!("`{sql}`: {e}"))
}

/// The seed schema's traces family, exactly as in the observability migrations' README
/// (uuid keys), with 20 traces, 3 spans each and 2 events per span. Ids are uuids made
/// from numbers: trace n is [`t`]`(n)`, span n is [`s`]`(n)`.
const FAMILY: &str = "
    CREATE TABLE traces (
        id UUID PRIMARY KEY,
        trace_id VARCHAR(32) NOT NULL,
        service_name VARCHAR(255) NOT NULL,
        start_time TIMESTAMPTZ NOT NULL,
        end_time TIMESTAMPTZ,
        duration_us BIGINT,
        status VARCHAR(50) NOT NULL,
        status_message TEXT,
        root_span_name VARCHAR(255),
        attributes JSONB NOT NULL DEFAULT '{}',
        resource_attributes JSONB NOT NULL DEFAULT '{}',
        span_count INTEGER NOT NULL DEFAULT 0,
        created_at TIMESTAMPTZ NOT NULL DEFAULT NOW(),
        updated_at TIMESTAMPTZ NOT NULL DEFAULT NOW()
    );
    CREATE TABLE trace_spans (
        id UUID PRIMARY KEY,
        trace_id UUID NOT NULL REFERENCES traces(id) ON DELETE CASCADE,
        span_id VARCHAR(16) NOT NULL,
        parent_span_id VARCHAR(16),
        name VARCHAR(255) NOT NULL,
        kind VARCHAR(50) NOT NULL,
        service_name VARCHAR(255) NOT NULL,
        start_time TIMESTAMPTZ NOT NULL,
        end_time TIMESTAMPTZ,
        duration_us BIGINT,
        status VARCHAR(50) NOT NULL,
        status_message TEXT,
        attributes JSONB NOT NULL DEFAULT '{}',
        events JSONB,
        links JSONB,
        created_at TIMESTAMPTZ NOT NULL DEFAULT NOW()
    );
    CREATE TABLE trace_events (
        id UUID PRIMARY KEY,
        span_id UUID NOT NULL REFERENCES trace_spans(id) ON DELETE CASCADE,
        name VARCHAR(255) NOT NULL,
        timestamp TIMESTAMPTZ NOT NULL,
        attributes JSONB NOT NULL DEFAULT '{}',
        created_at TIMESTAMPTZ NOT NULL DEFAULT NOW()
    );
    INSERT INTO traces (id, trace_id, service_name, start_time, status, span_count)
        SELECT ('00000000-0000-0000-0000-' || lpad(g::text, 12, '0'))::uuid, md5(g::text),
               'checkout', timestamptz '2024-01-01' + g * interval '5 hours', 'ok', 3
        FROM generate_series(1, 20) g;
    INSERT INTO trace_spans (id, trace_id, span_id, name, kind, service_name, start_time, status)
        SELECT ('00000000-0000-0000-0001-' || lpad(g::text, 12, '0'))::uuid,
               ('00000000-0000-0000-0000-' || lpad(((g - 1) / 3 + 1)::text, 12, '0'))::uuid,
               left(md5(g::text), 16), 'span', 'internal', 'checkout',
               timestamptz '2024-01-01' + g * interval '2 hours', 'ok'
        FROM generate_series(1, 60) g;
    INSERT INTO trace_events (id, span_id, name, timestamp)
        SELECT ('00000000-0000-0000-0002-' || lpad(g::text, 12, '0'))::uuid,
               ('00000000-0000-0000-0001-' || lpad(((g - 1) / 2 + 1)::text, 12, '0'))::uuid,
               'event', timestamptz '2024-01-01' + g * interval '1 hour'
        FROM generate_series(1, 120) g;";

/// Trace `n`'s id, as a SQL literal.
fn t(n: i64) -> String {
    format!("'00000000-0000-0000-0000-{n:012}'::uuid")
}

/// Span `n`'s id, as a SQL literal.
fn s(n: i64) -> String {
    format!("'00000000-0000-0000-0001-{n:012}'::uuid")
}

/// Inserts span `span` of trace `trace`.
fn insert_span(span: i64, trace: i64) -> String {
    format!(
        "INSERT INTO trace_spans (id, trace_id, span_id, name, kind, service_name, start_time, status)
         VALUES ({}, {}, 'ffffffffffffffff', 'late', 'internal', 'checkout', now(), 'ok')",
        s(span),
        t(trace)
    )
}

fn traces_plan(name: &str, choice: &str) -> String {
    format!(
        "name: {name}\ntables:\n  - source: traces\n    time_column: start_time\n    chunk_time_interval: 1 day\n    inbound_foreign_keys: {choice}\n"
    )
}

/// Spans whose trace is missing, and events whose span is missing.
async fn orphans(c: &Client) -> i64 {
    scalar(
        c,
        "SELECT (SELECT count(*) FROM trace_spans s WHERE NOT EXISTS (SELECT FROM traces t WHERE t.id = s.trace_id))
              + (SELECT count(*) FROM trace_events e WHERE NOT EXISTS (SELECT FROM trace_spans s WHERE s.id = e.span_id))",
    )
    .await
}

/// The key `name` on trace_spans: (referenced table, validated), or None.
async fn span_key(c: &Client) -> Option<(String, bool)> {
    c.query_opt(
        "SELECT confrelid::regclass::text, convalidated FROM pg_constraint
         WHERE conname = 'trace_spans_trace_id_fkey' AND conrelid = 'trace_spans'::regclass",
        &[],
    )
    .await
    .unwrap()
    .map(|r| (r.get(0), r.get(1)))
}

/// hyperswap's objects left: its schema, and triggers or functions named like its own.
async fn hyperswap_objects(c: &Client) -> i64 {
    scalar(
        c,
        "SELECT (SELECT count(*) FROM pg_namespace WHERE nspname = 'hyperswap')
              + (SELECT count(*) FROM pg_trigger WHERE tgname LIKE 'hyperswap%')",
    )
    .await
}

/// What the emulation must do once traces is a hypertable: `gone` is a trace to delete.
/// After finalize (no retired table to keep in step), a second row may carry the same
/// id: the spans stay while one of them does.
async fn emulation_holds(c: &Client, gone: i64, finalized: bool) {
    // A span of a missing trace, or moved to one, is refused as a real key would.
    assert_eq!(
        fails_with(c, &insert_span(1000, 999)).await,
        SqlState::FOREIGN_KEY_VIOLATION
    );
    assert_eq!(
        fails_with(
            c,
            &format!(
                "UPDATE trace_spans SET trace_id = {} WHERE id = {}",
                t(999),
                s(1)
            )
        )
        .await,
        SqlState::FOREIGN_KEY_VIOLATION
    );
    // To an existing trace, or without touching the key, it is not.
    c.batch_execute(&format!(
        "UPDATE trace_spans SET trace_id = {} WHERE id = {}; UPDATE trace_spans SET name = 'renamed' WHERE id = {}",
        t(3),
        s(1),
        s(2)
    ))
    .await
    .unwrap();
    let spans = |id: i64| {
        format!(
            "SELECT count(*) FROM trace_spans WHERE trace_id = {}",
            t(id)
        )
    };
    let events = |id: i64| {
        format!("SELECT count(*) FROM trace_events e JOIN trace_spans s ON s.id = e.span_id WHERE s.trace_id = {}", t(id))
    };
    assert_eq!(scalar::<i64>(c, &spans(gone)).await, 3);
    assert_eq!(scalar::<i64>(c, &events(gone)).await, 6);
    let events_before: i64 = scalar(c, "SELECT count(*) FROM trace_events").await;
    if finalized {
        c.batch_execute(&format!(
            "INSERT INTO traces (id, trace_id, service_name, start_time, status)
                 VALUES ({id}, 'again', 'checkout', timestamptz '2030-01-01', 'ok');
             DELETE FROM traces WHERE id = {id} AND start_time < '2030-01-01'",
            id = t(gone)
        ))
        .await
        .unwrap();
        assert_eq!(
            scalar::<i64>(c, &spans(gone)).await,
            3,
            "another trace row keeps id {gone}"
        );
    }
    // Deleting a trace deletes its spans and (by trace_events' own key) their events.
    c.batch_execute(&format!("DELETE FROM traces WHERE id = {}", t(gone)))
        .await
        .unwrap();
    assert_eq!(scalar::<i64>(c, &spans(gone)).await, 0);
    assert_eq!(
        scalar::<i64>(c, "SELECT count(*) FROM trace_events").await,
        events_before - 6
    );
    assert_eq!(orphans(c).await, 0);
}

/// The emulated check locks the trace it found (FOR KEY SHARE) until its transaction
/// ends: a concurrent delete of that trace waits, then removes the new span too; a span
/// inserted while the trace's delete is uncommitted waits, then is refused.
async fn concurrent_delete_cannot_orphan(db: &TestDb, c: &Client, first: i64, second: i64) {
    let app = db.client().await;
    app.batch_execute(&format!("BEGIN; {}", insert_span(2000, first)))
        .await
        .unwrap();
    let other = db.client().await;
    let delete = tokio::spawn(async move {
        other
            .batch_execute(&format!("DELETE FROM traces WHERE id = {}", t(first)))
            .await
    });
    wait_for_lock_wait(c, "DELETE FROM traces WHERE id = ").await;
    assert!(
        !delete.is_finished(),
        "the delete waits for the inserting transaction"
    );
    app.batch_execute("COMMIT").await.unwrap();
    delete.await.unwrap().unwrap();
    assert_eq!(orphans(c).await, 0);
    assert_eq!(
        scalar::<i64>(
            c,
            &format!("SELECT count(*) FROM trace_spans WHERE id = {}", s(2000))
        )
        .await,
        0
    );

    app.batch_execute(&format!(
        "BEGIN; DELETE FROM traces WHERE id = {}",
        t(second)
    ))
    .await
    .unwrap();
    let other = db.client().await;
    let insert = tokio::spawn(async move { other.batch_execute(&insert_span(2001, second)).await });
    wait_for_lock_wait(c, "INSERT INTO trace_spans").await;
    assert!(
        !insert.is_finished(),
        "the insert waits for the deleting transaction"
    );
    app.batch_execute("COMMIT").await.unwrap();
    let err = insert.await.unwrap().unwrap_err();
    assert_eq!(
        err.code(),
        Some(&SqlState::FOREIGN_KEY_VIOLATION),
        "{err:?}"
    );
    assert_eq!(orphans(c).await, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn family_keeps_its_integrity_with_emulated_keys() {
    let db = TestDb::new("fk_family").await;
    let c = db.client().await;
    c.batch_execute(FAMILY).await.unwrap();
    // The example plan, as shipped.
    let shipped = concat!(env!("CARGO_MANIFEST_DIR"), "/plans/traces.yaml");
    let plan = db.plan("traces.yaml", &std::fs::read_to_string(shipped).unwrap());
    let plan = path_str(&plan);

    let run = db.hyperswap(&["plan", "validate", plan]).ok();
    assert!(
        run.stdout.contains("trace_spans_trace_id_fkey")
            && run
                .stdout
                .contains("emulated by triggers (ON DELETE CASCADE"),
        "{}",
        run.stdout
    );
    let show = db.hyperswap(&["plan", "show", plan]).ok().stdout;
    assert!(show.contains("end of the foreign-key emulation"), "{show}");
    for needle in [
        "CREATE OR REPLACE TRIGGER \"hyperswap_fk_",
        "SECURITY INVOKER SET search_path = pg_catalog, pg_temp",
        "FOR KEY SHARE",
        "VALIDATE CONSTRAINT",
        "CASCADE",
    ] {
        assert!(show.contains(needle), "plan show lacks {needle}:\n{show}");
    }

    db.hyperswap(&["plan", "apply", plan]).ok();
    assert_eq!(
        span_key(&c).await,
        None,
        "the real key is dropped at cutover"
    );
    // Cut over, `plan show` prints the recorded rollback and the validation after it.
    let show = db.hyperswap(&["plan", "show", plan]).ok().stdout;
    let after = show
        .find("-- ==== rollback, then")
        .unwrap_or_else(|| panic!("{show}"));
    assert!(
        show[..after].contains("CASCADE") && show[..after].contains("NOT VALID"),
        "{show}"
    );
    assert!(
        show[after..].contains("VALIDATE CONSTRAINT \"trace_spans_trace_id_fkey\""),
        "{show}"
    );
    emulation_holds(&c, 2, false).await;
    concurrent_delete_cannot_orphan(&db, &c, 10, 11).await;
    // The child cannot follow now: the emulation's triggers would stay behind.
    let spans = db.plan(
        "spans.yaml",
        "name: spans\ntables:\n  - source: trace_spans\n    time_column: start_time\n    chunk_time_interval: 1 day\n    inbound_foreign_keys: drop\n",
    );
    let run = db.hyperswap(&["plan", "validate", path_str(&spans)]);
    assert_eq!(run.code, 2, "{}", run.stdout);
    assert!(run.stderr.contains("--end-fk-emulation"), "{}", run.stderr);

    // Rollback: real keys again, valid, with no orphan; the emulation is gone.
    let run = db.hyperswap(&["rollback", plan]);
    assert_eq!(run.code, 0, "{}\n{}", run.stdout, run.stderr);
    assert_eq!(span_key(&c).await, Some(("traces".into(), true)));
    assert_eq!(orphans(&c).await, 0);
    assert_eq!(
        scalar::<i64>(
            &c,
            "SELECT count(*) FROM pg_trigger WHERE tgname LIKE 'hyperswap\\_fk%'"
        )
        .await,
        0
    );
    assert_eq!(
        fails_with(&c, &insert_span(1000, 999)).await,
        SqlState::FOREIGN_KEY_VIOLATION
    );

    // A rollback stopped between its transaction and the validation (simulated by
    // marking the key not validated) is completed by the next `plan apply`.
    c.batch_execute(
        "UPDATE pg_constraint SET convalidated = false WHERE conname = 'trace_spans_trace_id_fkey'",
    )
    .await
    .unwrap();
    db.hyperswap(&["plan", "apply", plan, "--until", "parity"])
        .ok();
    assert_eq!(span_key(&c).await, Some(("traces".into(), true)));

    // Cut over again, then finalize: the emulation outlives the plan and the journal.
    db.hyperswap(&["plan", "apply", plan]).ok();
    let run = db
        .hyperswap(&["finalize", "--yes", "--drop-history", plan])
        .ok();
    assert!(run.stdout.contains("--end-fk-emulation"), "{}", run.stdout);
    assert_eq!(
        scalar::<Option<String>>(&c, "SELECT to_regclass('hyperswap.plans')::text").await,
        None
    );
    emulation_holds(&c, 7, true).await;

    // Ending it leaves nothing of hyperswap behind; the references are unchecked.
    assert_eq!(
        fails_with(&c, "TRUNCATE traces").await,
        SqlState::FEATURE_NOT_SUPPORTED,
        "a TRUNCATE of referenced rows is refused while emulated"
    );
    c.batch_execute("BEGIN; TRUNCATE traces, trace_spans, trace_events; ROLLBACK")
        .await
        .unwrap();
    db.hyperswap(&["finalize", "--yes", plan, "--end-fk-emulation"])
        .ok();
    assert_eq!(hyperswap_objects(&c).await, 0);
    c.batch_execute(&insert_span(1000, 999)).await.unwrap();
    let run = db.hyperswap(&["finalize", "--yes", plan, "--end-fk-emulation"]);
    assert_eq!(run.code, 2, "nothing left to end: {}", run.stdout);
}

/// The child moved first: its hypertable (and its retired table) carry the key to
/// traces, and TimescaleDB copies it onto every chunk. While the child's plan is not
/// finished, the parent's plan is refused by `plan validate`; once it is, the parent
/// moves with `emulate` and with `drop`, and rollback gives the key back, valid.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn child_moved_first_then_parent() {
    let db = TestDb::new("fk_child_first").await;
    let c = db.client().await;
    c.batch_execute(FAMILY).await.unwrap();
    c.batch_execute("DROP TABLE trace_events").await.unwrap();
    let spans = db.plan(
        "spans.yaml",
        "name: spans\ntables:\n  - source: trace_spans\n    time_column: start_time\n    chunk_time_interval: 1 day\n",
    );
    db.hyperswap(&["plan", "apply", path_str(&spans)]).ok();
    let chunk_keys: i64 = scalar(
        &c,
        "SELECT count(*) FROM pg_constraint WHERE confrelid = 'traces'::regclass AND conrelid::regclass::text LIKE '\\_timescaledb%'",
    )
    .await;
    assert!(chunk_keys > 1, "the chunks carry copies of the key");

    let emulate = db.plan("traces.yaml", &traces_plan("traces", "emulate"));
    let emulate = path_str(&emulate);
    let before = fingerprint(&c).await;
    for cmd in [
        &["plan", "validate", emulate][..],
        &["plan", "apply", emulate][..],
    ] {
        let run = db.hyperswap(cmd);
        assert_eq!(run.code, 2, "{}", run.stdout);
        assert!(
            run.stderr.contains("plan `spans`") && run.stderr.contains("hyperswap finalize"),
            "{}",
            run.stderr
        );
    }
    assert_eq!(
        fingerprint(&c).await,
        before,
        "a refused plan changes nothing"
    );

    db.hyperswap(&["finalize", "--yes", path_str(&spans)]).ok();
    db.hyperswap(&["plan", "validate", emulate]).ok();
    db.hyperswap(&["plan", "apply", emulate]).ok();
    assert_eq!(
        scalar::<i64>(&c, "SELECT count(*) FROM pg_constraint WHERE confrelid IN ('traces'::regclass, 'traces_hs_old'::regclass)").await,
        0,
        "no copy of the key is left on a chunk"
    );
    let err = c.batch_execute(&insert_span(1000, 999)).await.unwrap_err();
    assert_eq!(err.code(), Some(&SqlState::FOREIGN_KEY_VIOLATION));
    assert!(
        format!("{:?}", err).contains("emulated by hyperswap"),
        "{err:?}"
    );
    c.batch_execute(&format!("DELETE FROM traces WHERE id = {}", t(1)))
        .await
        .unwrap();
    assert_eq!(orphans_of_spans(&c).await, 0);
    db.hyperswap(&["rollback", emulate]).ok();
    assert_eq!(span_key(&c).await, Some(("traces".into(), true)));
    assert_eq!(
        scalar::<i64>(&c, "SELECT count(*) FROM pg_constraint WHERE confrelid = 'traces'::regclass AND NOT convalidated").await,
        0,
        "the key and its chunks' copies are valid"
    );
    assert_eq!(
        scalar::<i64>(
            &c,
            "SELECT count(*) FROM pg_trigger WHERE tgname LIKE 'hyperswap\\_fk%'"
        )
        .await,
        0,
        "no emulation trigger is left on the child hypertable or its chunks"
    );
    // A rollback stopped before its validation (simulated) is completed by `abort` too.
    c.batch_execute("UPDATE pg_constraint SET convalidated = false WHERE conname = 'trace_spans_trace_id_fkey' AND conrelid = 'trace_spans'::regclass")
        .await
        .unwrap();
    db.hyperswap(&["abort", emulate]).ok();
    assert_eq!(span_key(&c).await, Some(("traces".into(), true)));

    // `drop`, the same way: dropped at cutover, back and valid after rollback.
    let dropping = db.plan("drop.yaml", &traces_plan("traces-drop", "drop"));
    let dropping = path_str(&dropping);
    let run = db.hyperswap(&["plan", "validate", dropping]).ok();
    assert!(
        run.stdout.contains(
            "ON DELETE CASCADE: deleting a referenced row no longer deletes its children"
        ),
        "{}",
        run.stdout
    );
    db.hyperswap(&["plan", "apply", dropping]).ok();
    assert_eq!(span_key(&c).await, None);
    // Nothing stops an orphan now; rollback adds the key back but cannot validate it
    // until the orphan is gone, and says so.
    c.batch_execute(&insert_span(3000, 999)).await.unwrap();
    let run = db.hyperswap(&["rollback", dropping]);
    assert_eq!(run.code, 2, "{}", run.stdout);
    assert!(
        run.stderr
            .contains("does not hold for rows written while it was dropped")
            && run.stderr.contains("run `hyperswap rollback` again"),
        "{}",
        run.stderr
    );
    assert_eq!(span_key(&c).await, Some(("traces".into(), false)));
    c.batch_execute(&format!("DELETE FROM trace_spans WHERE id = {}", s(3000)))
        .await
        .unwrap();
    db.hyperswap(&["rollback", dropping]).ok();
    assert_eq!(span_key(&c).await, Some(("traces".into(), true)));
    db.hyperswap(&["abort", dropping]).ok();
}

async fn orphans_of_spans(c: &Client) -> i64 {
    scalar(
        c,
        "SELECT count(*) FROM trace_spans s WHERE NOT EXISTS (SELECT FROM traces t WHERE t.id = s.trace_id)",
    )
    .await
}

/// The other actions: SET NULL, RESTRICT, ON UPDATE CASCADE, MATCH FULL; and what
/// `drop` would lose, in `plan validate`'s words.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_action_is_emulated_and_every_loss_stated() {
    let db = TestDb::new("fk_actions").await;
    let c = db.client().await;
    c.batch_execute(
        "CREATE TABLE m (id bigint PRIMARY KEY, ts timestamptz NOT NULL, code int NOT NULL, UNIQUE (code, id));
         INSERT INTO m SELECT g, timestamptz '2024-01-01' + g * interval '1 hour', g * 10 FROM generate_series(1, 10) g;
         CREATE TABLE loose (id int PRIMARY KEY, m_id bigint REFERENCES m (id) ON DELETE SET NULL ON UPDATE CASCADE);
         CREATE TABLE strict (id int PRIMARY KEY, m_id bigint REFERENCES m (id) ON DELETE RESTRICT ON UPDATE RESTRICT);
         CREATE TABLE pair (id int PRIMARY KEY, code int, m_id bigint,
                            FOREIGN KEY (code, m_id) REFERENCES m (code, id) MATCH FULL);
         INSERT INTO loose VALUES (1, 1), (2, 2);
         INSERT INTO strict VALUES (1, 3);
         INSERT INTO pair VALUES (1, 40, 4), (2, NULL, NULL);
         CREATE TABLE parted (id int, m_id bigint REFERENCES m (id) ON DELETE CASCADE) PARTITION BY RANGE (id);
         CREATE TABLE parted_1 PARTITION OF parted FOR VALUES FROM (0) TO (100);
         CREATE TABLE parted_2 PARTITION OF parted FOR VALUES FROM (100) TO (200);
         INSERT INTO parted VALUES (1, 7), (150, 7), (2, 8);",
    )
    .await
    .unwrap();
    let text = |choice: &str| {
        format!("name: m\ntables:\n  - source: m\n    time_column: ts\n    chunk_time_interval: 1 day\n    inbound_foreign_keys: {choice}\n")
    };
    let plan = db.plan("m.yaml", &text("drop"));
    let out = db
        .hyperswap(&["plan", "validate", path_str(&plan)])
        .ok()
        .stdout;
    for needle in [
        "ON DELETE SET NULL: deleting a referenced row no longer clears",
        "ON UPDATE CASCADE: changing a referenced key no longer changes",
        "ON DELETE RESTRICT: a referenced row with children can be deleted",
        "ON UPDATE NO ACTION",
        "the check that each new or changed public.pair row's (code, m_id) exists in the referenced table (MATCH FULL)",
        "public.parted is partitioned, so rollback adds the key back checked in full",
    ] {
        assert!(out.contains(needle), "validate lacks `{needle}`:\n{out}");
    }

    let plan = db.plan("m.yaml", &text("emulate"));
    // A role that writes a referencing table but could not lock the referenced rows.
    c.batch_execute(
        "DROP ROLE IF EXISTS hs_fk_writer; CREATE ROLE hs_fk_writer;
         GRANT SELECT, INSERT ON loose TO hs_fk_writer; GRANT SELECT ON m TO hs_fk_writer;",
    )
    .await
    .unwrap();
    let run = db.hyperswap(&["plan", "validate", path_str(&plan)]).ok();
    assert!(
        run.stderr
            .contains("writes by role(s) hs_fk_writer would fail"),
        "{}",
        run.stderr
    );
    c.batch_execute("REVOKE ALL ON loose, m FROM hs_fk_writer; DROP ROLE hs_fk_writer")
        .await
        .unwrap();
    db.hyperswap(&["plan", "apply", path_str(&plan)]).ok();
    // SET NULL on delete; CASCADE on update.
    c.batch_execute("UPDATE m SET id = 102 WHERE id = 2; DELETE FROM m WHERE id = 1")
        .await
        .unwrap();
    let loose: Vec<Option<i64>> = c
        .query("SELECT m_id FROM loose ORDER BY id", &[])
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(loose, vec![None, Some(102)]);
    // RESTRICT both ways.
    assert_eq!(
        fails_with(&c, "DELETE FROM m WHERE id = 3").await,
        SqlState::FOREIGN_KEY_VIOLATION
    );
    assert_eq!(
        fails_with(&c, "UPDATE m SET id = 103 WHERE id = 3").await,
        SqlState::FOREIGN_KEY_VIOLATION
    );
    // MATCH FULL: all NULL passes, some NULL does not; the pair must exist.
    c.batch_execute("INSERT INTO pair VALUES (3, NULL, NULL)")
        .await
        .unwrap();
    assert_eq!(
        fails_with(&c, "INSERT INTO pair VALUES (4, 50, NULL)").await,
        SqlState::FOREIGN_KEY_VIOLATION
    );
    assert_eq!(
        fails_with(&c, "INSERT INTO pair VALUES (5, 50, 4)").await,
        SqlState::FOREIGN_KEY_VIOLATION
    );
    c.batch_execute("INSERT INTO pair VALUES (6, 50, 5)")
        .await
        .unwrap();
    // NO ACTION: the referenced pair cannot go while referenced.
    assert_eq!(
        fails_with(&c, "DELETE FROM m WHERE id = 4").await,
        SqlState::FOREIGN_KEY_VIOLATION
    );
    // A partitioned child: one key (its partitions' copies go with it), on every partition.
    assert_eq!(
        fails_with(&c, "INSERT INTO parted VALUES (160, 999)").await,
        SqlState::FOREIGN_KEY_VIOLATION
    );
    c.batch_execute("DELETE FROM m WHERE id = 7").await.unwrap();
    assert_eq!(
        scalar::<i64>(&c, "SELECT count(*) FROM parted").await,
        1,
        "both partitions' children of 7 are deleted"
    );

    db.hyperswap(&["rollback", path_str(&plan)]).ok();
    let invalid: i64 = scalar(
        &c,
        "SELECT count(*) FROM pg_constraint WHERE confrelid = 'm'::regclass AND contype = 'f' AND NOT convalidated",
    )
    .await;
    let valid: i64 = scalar(
        &c,
        "SELECT count(*) FROM pg_constraint WHERE confrelid = 'm'::regclass AND contype = 'f' AND convalidated AND conparentid = 0",
    )
    .await;
    assert_eq!((valid, invalid), (4, 0));

    // A rollback stopped before its validations (simulated) is completed by `rollback`.
    c.batch_execute(
        "UPDATE pg_constraint SET convalidated = false WHERE conname = 'loose_m_id_fkey'",
    )
    .await
    .unwrap();
    db.hyperswap(&["rollback", path_str(&plan)]).ok();
    let invalid: i64 = scalar(
        &c,
        "SELECT count(*) FROM pg_constraint WHERE confrelid = 'm'::regclass AND contype = 'f' AND NOT convalidated",
    )
    .await;
    assert_eq!(invalid, 0);

    // Straight from cut over to the end of the emulation: finalize, then end it.
    db.hyperswap(&["plan", "apply", path_str(&plan)]).ok();
    let run = db
        .hyperswap(&[
            "finalize",
            "--yes",
            path_str(&plan),
            "--end-fk-emulation",
            "--drop-history",
        ])
        .ok();
    assert!(
        run.stdout.contains("emulation ended (8 function(s)"),
        "{}",
        run.stdout
    );
    assert_eq!(hyperswap_objects(&c).await, 0);
    assert_eq!(
        scalar::<Option<String>>(&c, "SELECT to_regclass('m_hs_old')::text").await,
        None
    );
}

/// A key compares as its own equality operator does: with citext, `ABC` references
/// `abc` (pg_catalog's text = would refuse it, and miss it on delete).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn emulation_compares_with_the_keys_own_operators() {
    let db = TestDb::new("fk_citext").await;
    let c = db.client().await;
    c.batch_execute(
        "CREATE EXTENSION citext;
         CREATE TABLE tags (id bigint PRIMARY KEY, ts timestamptz NOT NULL, code citext NOT NULL UNIQUE);
         INSERT INTO tags VALUES (1, '2024-01-01', 'abc'), (2, '2024-01-02', 'def');
         CREATE TABLE notes (id int PRIMARY KEY, code citext REFERENCES tags (code) ON DELETE CASCADE);
         INSERT INTO notes VALUES (1, 'Def');",
    )
    .await
    .unwrap();
    let plan = db.plan(
        "tags.yaml",
        "name: tags\ntables:\n  - source: tags\n    time_column: ts\n    chunk_time_interval: 1 day\n    inbound_foreign_keys: emulate\n",
    );
    db.hyperswap(&["plan", "apply", path_str(&plan)]).ok();
    c.batch_execute("INSERT INTO notes VALUES (2, 'ABC')")
        .await
        .unwrap();
    assert_eq!(
        fails_with(&c, "INSERT INTO notes VALUES (3, 'xyz')").await,
        SqlState::FOREIGN_KEY_VIOLATION
    );
    c.batch_execute("DELETE FROM tags WHERE code = 'abc'")
        .await
        .unwrap();
    assert_eq!(scalar::<i64>(&c, "SELECT count(*) FROM notes").await, 1);
    db.hyperswap(&["rollback", path_str(&plan)]).ok();
    let valid: bool = scalar(
        &c,
        "SELECT convalidated FROM pg_constraint WHERE conname = 'notes_code_fkey'",
    )
    .await;
    assert!(valid);
}
