//! Issue 4's acceptance: cutover and rollback keep the application whole.
#![cfg(db_tests)]

mod common;

use std::time::{Duration, Instant};

use common::*;
use hyperswap::ident::QualifiedName;
use hyperswap_workload::{create_sample_table, spawn_writer, OpMix, WriterConfig};

async fn scalar<T: for<'a> tokio_postgres::types::FromSql<'a>>(
    c: &tokio_postgres::Client,
    sql: &str,
) -> T {
    c.query_one(sql, &[])
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"))
        .get(0)
}

/// The application's view of `orders` through a second role, checked after cutover
/// (against the hypertable) and after rollback (against the original).
async fn app_checks(db: &TestDb, admin: &tokio_postgres::Client, stage: &str, expect_hyper: bool) {
    let hyper: bool = scalar(admin, "SELECT EXISTS (SELECT 1 FROM timescaledb_information.hypertables WHERE hypertable_name = 'orders')").await;
    assert_eq!(hyper, expect_hyper, "{stage}: orders is the wrong table");
    let view_reads: String = scalar(
        admin,
        "SELECT string_agg(DISTINCT d.refobjid::regclass::text, ',') FROM pg_depend d JOIN pg_rewrite r ON r.oid = d.objid
         WHERE r.ev_class = 'big_orders'::regclass AND d.refobjid <> 'big_orders'::regclass AND d.refclassid = 'pg_class'::regclass",
    )
    .await;
    assert_eq!(view_reads, "orders", "{stage}: the view reads {view_reads}");
    let comment: Option<String> = scalar(
        admin,
        "SELECT obj_description('orders'::regclass, 'pg_class')",
    )
    .await;
    assert_eq!(comment.as_deref(), Some("customer orders"), "{stage}");

    let app = connect(&db_url(&db.name).replace("postgres@", "hs_app4@")).await;
    let total: i64 = scalar(admin, "SELECT count(*) FROM orders").await;
    let mine: i64 = scalar(&app, "SELECT count(*) FROM orders").await;
    let mine_expected: i64 = scalar(
        admin,
        "SELECT count(*) FROM orders WHERE tenant = 'hs_app4'",
    )
    .await;
    assert_eq!(
        mine, mine_expected,
        "{stage}: row-level security lets the app see {mine} rows"
    );
    assert!(
        mine < total,
        "{stage}: RLS is not filtering ({mine} of {total})"
    );
    let audits: i64 = scalar(admin, "SELECT count(*) FROM audit").await;
    let max_id: i64 = scalar(admin, "SELECT max(id) FROM orders").await;
    let max_n: i64 = scalar(admin, "SELECT max(n) FROM orders").await;
    let row = app
        .query_one("INSERT INTO orders (ts, tenant, amount) VALUES (now(), 'hs_app4', 500) RETURNING id, n", &[])
        .await
        .unwrap_or_else(|e| panic!("{stage}: the app's insert failed: {e}"));
    let (id, n): (i64, i64) = (row.get(0), row.get(1));
    assert!(
        id > max_id,
        "{stage}: identity handed out {id}, not past {max_id}"
    );
    assert!(
        n > max_n,
        "{stage}: serial handed out {n}, not past {max_n}"
    );
    let in_view: i64 = app
        .query_one("SELECT count(*) FROM big_orders WHERE id = $1", &[&id])
        .await
        .unwrap()
        .get(0);
    assert_eq!(
        in_view, 1,
        "{stage}: the new row is not seen through the view"
    );
    let audits_after: i64 = scalar(admin, "SELECT count(*) FROM audit").await;
    assert_eq!(
        audits_after,
        audits + 1,
        "{stage}: the user's trigger fired {} times",
        audits_after - audits
    );
}

/// Acceptance 1: view, grant to a second role, comment, RLS policy, user trigger,
/// identity and serial columns all work after cutover, and after rollback.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn application_objects_follow_cutover_and_rollback() {
    let db = TestDb::new("app_objects").await;
    let admin = db.client().await;
    admin.batch_execute("DO $$ BEGIN CREATE ROLE hs_app4 LOGIN; EXCEPTION WHEN duplicate_object THEN NULL; END $$").await.unwrap();
    admin
        .batch_execute(
            "CREATE TABLE audit (order_id bigint, at timestamptz DEFAULT now());
             CREATE TABLE orders (
                 id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
                 n bigserial,
                 ts timestamptz NOT NULL,
                 tenant text NOT NULL,
                 amount numeric);
             INSERT INTO orders (ts, tenant, amount)
             SELECT now() - g * interval '10 minutes', CASE WHEN g % 3 = 0 THEN 'hs_app4' ELSE 'other' END, g
             FROM generate_series(1, 3000) g;
             COMMENT ON TABLE orders IS 'customer orders';
             CREATE VIEW big_orders AS SELECT * FROM orders WHERE amount > 100;
             CREATE FUNCTION audit_order() RETURNS trigger LANGUAGE plpgsql AS
               $$BEGIN INSERT INTO audit (order_id) VALUES (NEW.id); RETURN NULL; END$$;
             CREATE TRIGGER audit_insert AFTER INSERT ON orders FOR EACH ROW EXECUTE FUNCTION audit_order();
             ALTER TABLE orders ENABLE ROW LEVEL SECURITY;
             CREATE POLICY tenant_rows ON orders USING (tenant = current_user);
             GRANT SELECT, INSERT ON orders, big_orders TO hs_app4;
             GRANT USAGE ON SEQUENCE orders_n_seq TO hs_app4;
             GRANT INSERT ON audit TO hs_app4;",
        )
        .await
        .unwrap();
    let plan = db.plan("p.yaml", &one_table_plan("app", "orders", ""));
    db.hyperswap(&["plan", "apply", path_str(&plan)]).ok();
    app_checks(&db, &admin, "after cutover", true).await;
    let rb = db.hyperswap(&["rollback", path_str(&plan)]).ok();
    assert!(rb.stdout.contains("EQUAL"), "{}", rb.stdout);
    app_checks(&db, &admin, "after rollback", false).await;
    assert_eq!(
        db.settled_difference(&plan, "orders", "orders_hs_new")
            .await,
        0
    );
    // And forward again, to finalize: nothing of the tool is left.
    db.hyperswap(&["plan", "apply", path_str(&plan)]).ok();
    app_checks(&db, &admin, "after the second cutover", true).await;
    let run = db.hyperswap(&["finalize", "--yes", path_str(&plan)]).ok();
    assert!(run.stdout.contains("its events are kept"), "{}", run.stdout);
    // Issue 10: finalize keeps the plan's history (its events, the last one saying so)
    // and nothing else of the tool's; `--drop-history` drops that too.
    assert_eq!(
        tool_objects(&admin).await,
        "hyperswap",
        "finalize left objects behind"
    );
    let last: String = scalar(
        &admin,
        "SELECT phase || ': ' || message FROM hyperswap.events WHERE plan_name = 'app' ORDER BY id DESC LIMIT 1",
    )
    .await;
    assert!(last.starts_with("finalized: cut over at "), "{last}");
    let plans: i64 = scalar(&admin, "SELECT count(*) FROM hyperswap.plans").await;
    assert_eq!(plans, 0);
    let run = db
        .hyperswap(&["finalize", "--yes", "--drop-history", path_str(&plan)])
        .ok();
    assert!(run.stdout.contains("already finalized"), "{}", run.stdout);
    assert_eq!(
        tool_objects(&admin).await,
        "",
        "the history outlived --drop-history"
    );
    let run = db.hyperswap(&["finalize", "--yes", "--drop-history", path_str(&plan)]);
    assert_eq!(run.code, 2, "nothing left to drop: {}", run.stdout);
    app_checks(&db, &admin, "after finalize", true).await;
}

/// Everything named the tool's way: its schema, functions, triggers, and tables.
async fn tool_objects(c: &tokio_postgres::Client) -> String {
    scalar(
        c,
        "SELECT concat_ws(' ',
            (SELECT string_agg(nspname, ',') FROM pg_namespace WHERE nspname = 'hyperswap'),
            (SELECT string_agg(proname, ',') FROM pg_proc WHERE proname LIKE 'copy\\_\\_%' OR proname LIKE 'reverse\\_\\_%'),
            (SELECT string_agg(tgname, ',') FROM pg_trigger WHERE tgname LIKE 'hyperswap\\_%'),
            (SELECT string_agg(relname, ',') FROM pg_class WHERE relname LIKE '%\\_hs\\_new%' OR relname LIKE '%\\_hs\\_old%'))",
    )
    .await
}

/// Acceptance 2: writes made after cutover (inserts, updates, deletes) are all present
/// after rollback, by an independent EXCEPT.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writes_after_cutover_survive_rollback() {
    let db = TestDb::new("writes_survive").await;
    create_sample_table(
        &db.client().await,
        &QualifiedName::new("public", "metrics"),
        20_000,
    )
    .await
    .unwrap();
    let plan = db.plan("p.yaml", &one_table_plan("keep", "public.metrics", ""));
    db.hyperswap(&["plan", "apply", path_str(&plan), "--until", "parity"])
        .ok();
    let writer = spawn_writer(WriterConfig {
        url: db.url.clone(),
        table: QualifiedName::new("public", "metrics"),
        connections: 3,
        ops_per_sec: 400,
        mix: OpMix::default(),
        time_updates_cross_days: false,
    });
    let p = path_str(&plan).to_string();
    spawn_binary(&db.url, &["plan", "apply", &p])
        .await
        .unwrap()
        .ok();
    let before = writer.stats();
    wait_for_writes(&writer, 100).await;
    let during = writer.stats();
    assert!(
        during.inserts > before.inserts
            && during.deletes > before.deletes
            && during.updates_value > before.updates_value
    );
    spawn_binary(&db.url, &["rollback", &p]).await.unwrap().ok();
    wait_for_writes(&writer, 50).await;
    let stats = writer.stop().await;
    assert_eq!(stats.errors, 0, "the application saw errors: {stats:?}");

    assert_eq!(
        db.settled_difference(&plan, "public.metrics", "public.metrics_hs_new")
            .await,
        0
    );
}

/// Acceptance 3: a session holding a conflicting lock: cutover retries and reports it,
/// the application's longest stall stays under lock_timeout + 100 ms, and with the
/// blocker never released, cutover gives up cleanly and leaves the source live.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cutover_waits_politely_behind_a_blocker() {
    let db = TestDb::new("lock_safety").await;
    create_sample_table(
        &db.client().await,
        &QualifiedName::new("public", "metrics"),
        20_000,
    )
    .await
    .unwrap();
    let cutover = "cutover:\n  lock_timeout: 300ms\n  attempts: 20\n  backoff: 100ms\n";
    let plan = db.plan(
        "p.yaml",
        &one_table_plan("polite", "public.metrics", cutover),
    );
    db.hyperswap(&["plan", "apply", path_str(&plan), "--until", "parity"])
        .ok();

    let blocker = db.client().await;
    blocker
        .batch_execute("BEGIN; INSERT INTO public.metrics (ts, device_id) VALUES (now(), 1);")
        .await
        .unwrap();
    let writer = spawn_writer(WriterConfig {
        url: db.url.clone(),
        table: QualifiedName::new("public", "metrics"),
        connections: 3,
        ops_per_sec: 300,
        mix: OpMix::default(),
        time_updates_cross_days: false,
    });
    wait_for_writes(&writer, 50).await;
    let started = Instant::now();
    let run = spawn_binary(&db.url, &["plan", "apply", path_str(&plan)]);
    // Release the blocker once an attempt has met it (parity runs first: how long it
    // takes depends on the machine, so wait for the event, not for a fixed time).
    let client = db.client().await;
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let blocked: bool = client
            .query_one(
                "SELECT EXISTS (SELECT 1 FROM hyperswap.events WHERE message LIKE 'attempt % blocked by%' OR message LIKE 'attempt % waited too long%')",
                &[],
            )
            .await
            .unwrap()
            .get(0);
        if blocked {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "no cutover attempt ever met the blocker"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    blocker.batch_execute("COMMIT").await.unwrap();
    let run = run.await.unwrap();
    let took = started.elapsed();
    wait_for_writes(&writer, 50).await;
    let stats = writer.stop().await;
    assert_eq!(run.code, 0, "{}\n{}", run.stdout, run.stderr);
    assert!(
        run.stderr.contains("blocked by: pid"),
        "the blocker was not reported:\n{}",
        run.stderr
    );
    assert_eq!(stats.errors, 0, "{stats:?}");
    let limit = Duration::from_millis(300 + 100);
    assert!(
        stats.max_latency < limit,
        "the application stalled {:?} (limit {limit:?}) during a cutover of {took:?}",
        stats.max_latency
    );
    eprintln!(
        "longest application stall during cutover: {:?}",
        stats.max_latency
    );

    // A blocker that never lets go: cutover gives up and the source stays live.
    let plan2 = db.plan("p2.yaml", "");
    let _ = plan2;
    let db2 = TestDb::new("lock_giveup").await;
    create_sample_table(
        &db2.client().await,
        &QualifiedName::new("public", "metrics"),
        5_000,
    )
    .await
    .unwrap();
    let plan = db2.plan(
        "p.yaml",
        &one_table_plan(
            "giveup",
            "public.metrics",
            "cutover:\n  lock_timeout: 200ms\n  attempts: 3\n  backoff: 50ms\n",
        ),
    );
    db2.hyperswap(&["plan", "apply", path_str(&plan), "--until", "parity"])
        .ok();
    let blocker = db2.client().await;
    blocker
        .batch_execute("BEGIN; SELECT count(*) FROM public.metrics_hs_new;")
        .await
        .unwrap();
    let run = db2.hyperswap(&["plan", "apply", path_str(&plan)]);
    assert_eq!(run.code, 3, "locks not taken: retry later: {}", run.stderr);
    assert!(
        run.stderr.contains("in 3 attempts") && run.stderr.contains("the source is still live"),
        "{}",
        run.stderr
    );
    blocker.batch_execute("ROLLBACK").await.unwrap();
    let client = db2.client().await;
    let relkind: String = scalar(
        &client,
        "SELECT relkind::text FROM pg_class WHERE oid = 'public.metrics'::regclass",
    )
    .await;
    assert_eq!(relkind, "r");
    let phase: String = scalar(&client, "SELECT phase FROM hyperswap.plans").await;
    assert_eq!(phase, "verified");
}

/// Acceptance 4: abort after backfill leaves nothing of the tool behind, and the source
/// as it was.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn abort_after_backfill_leaves_nothing_behind() {
    let db = TestDb::new("abort").await;
    let client = db.client().await;
    create_sample_table(&client, &QualifiedName::new("public", "metrics"), 5_000)
        .await
        .unwrap();
    let before = fingerprint(&client).await;
    let rows = count(&client, "public.metrics").await;
    let plan = db.plan("p.yaml", &one_table_plan("gone", "public.metrics", ""));
    db.hyperswap(&["plan", "apply", path_str(&plan), "--until", "backfill"])
        .ok();
    db.hyperswap(&["abort", path_str(&plan)]).ok();
    assert_eq!(tool_objects(&client).await, "");
    assert_eq!(fingerprint(&client).await, before);
    assert_eq!(count(&client, "public.metrics").await, rows);
    let again = db.hyperswap(&["abort", path_str(&plan)]);
    assert_eq!(again.code, 2, "{}", again.stderr);
}

/// Acceptance 5: a two-table plan cuts over atomically: a failure injected at the
/// second table's rename leaves both tables as they were.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_tables_cut_over_together_or_not_at_all() {
    let db = TestDb::new("two_tables").await;
    let client = db.client().await;
    for t in ["first", "second"] {
        client
            .batch_execute(&format!(
                "CREATE TABLE {t} (id bigserial PRIMARY KEY, ts timestamptz NOT NULL, v int);
                 INSERT INTO {t} (ts, v) SELECT now() - g * interval '1 hour', g FROM generate_series(1, 1000) g;"
            ))
            .await
            .unwrap();
    }
    let plan = db.plan(
        "p.yaml",
        "name: pair\ntables:\n  - source: first\n    time_column: ts\n    chunk_time_interval: 1 day\n  - source: second\n    time_column: ts\n    chunk_time_interval: 1 day\n",
    );
    db.hyperswap(&["plan", "apply", path_str(&plan), "--until", "parity"])
        .ok();
    // The injected failure: an event trigger that refuses the rename of `second`.
    client
        .batch_execute(
            "CREATE FUNCTION refuse_second() RETURNS event_trigger LANGUAGE plpgsql AS $$
             BEGIN
                 IF EXISTS (SELECT 1 FROM pg_event_trigger_ddl_commands()
                            WHERE object_identity = 'public.second_hs_old') THEN
                     RAISE EXCEPTION 'injected failure renaming second';
                 END IF;
             END $$;
             CREATE EVENT TRIGGER refuse_second ON ddl_command_end WHEN TAG IN ('ALTER TABLE')
             EXECUTE FUNCTION refuse_second();",
        )
        .await
        .unwrap();
    let run = db.hyperswap(&["plan", "apply", path_str(&plan)]);
    assert_eq!(run.code, 2, "{}", run.stderr);
    assert!(run.stderr.contains("injected failure"), "{}", run.stderr);
    for t in ["first", "second"] {
        let relkind: String = scalar(
            &client,
            &format!("SELECT relkind::text FROM pg_class WHERE oid = '{t}'::regclass"),
        )
        .await;
        assert_eq!(relkind, "r", "{t} is no longer the original table");
        let hyper: bool = scalar(&client, &format!("SELECT EXISTS (SELECT 1 FROM timescaledb_information.hypertables WHERE hypertable_name = '{t}_hs_new')")).await;
        assert!(hyper, "{t}_hs_new is no longer the new hypertable");
    }
    client
        .batch_execute("DROP EVENT TRIGGER refuse_second")
        .await
        .unwrap();
    db.hyperswap(&["plan", "apply", path_str(&plan)]).ok();
    for t in ["first", "second"] {
        let hyper: bool = scalar(&client, &format!("SELECT EXISTS (SELECT 1 FROM timescaledb_information.hypertables WHERE hypertable_name = '{t}')")).await;
        assert!(hyper, "{t} was not cut over");
    }
}

/// Cutover outside the plan's window is refused with when it opens; --until parity
/// still runs up to it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cutover_outside_the_window_is_refused() {
    let db = TestDb::new("window").await;
    let client = db.client().await;
    create_sample_table(&client, &QualifiedName::new("public", "metrics"), 2_000)
        .await
        .unwrap();
    let hour: i32 = scalar(
        &client,
        "SELECT extract(hour FROM now() AT TIME ZONE 'UTC')::int",
    )
    .await;
    let (a, b) = ((hour + 2) % 24, (hour + 3) % 24);
    let window = format!("cutover:\n  window: \"{a:02}:00-{b:02}:00 UTC\"\n");
    let plan = db.plan(
        "p.yaml",
        &one_table_plan("window", "public.metrics", &window),
    );
    db.hyperswap(&["plan", "apply", path_str(&plan), "--until", "parity"])
        .ok();
    let run = db.hyperswap(&["plan", "apply", path_str(&plan)]);
    assert_eq!(run.code, 3, "retry later: {}", run.stderr);
    assert!(
        run.stderr.contains("outside the plan's window") && run.stderr.contains("opens in"),
        "{}",
        run.stderr
    );
    let relkind: String = scalar(
        &client,
        "SELECT relkind::text FROM pg_class WHERE oid = 'public.metrics'::regclass",
    )
    .await;
    assert_eq!(relkind, "r");
}

/// Inbound foreign keys are refused unless the plan chooses to drop them; then cutover
/// drops them and rollback puts them back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn inbound_foreign_keys_need_the_plans_choice() {
    let db = TestDb::new("inbound_fk").await;
    let client = db.client().await;
    client
        .batch_execute(
            "CREATE TABLE m (id bigserial PRIMARY KEY, ts timestamptz NOT NULL);
             INSERT INTO m (ts) SELECT now() - g * interval '1 hour' FROM generate_series(1, 100) g;
             CREATE TABLE notes (id serial PRIMARY KEY, m_id bigint REFERENCES m (id));
             INSERT INTO notes (m_id) VALUES (1), (2);",
        )
        .await
        .unwrap();
    let plan = db.plan("p.yaml", &one_table_plan("fk", "m", ""));
    let run = db.hyperswap(&["plan", "validate", path_str(&plan)]);
    assert_eq!(run.code, 2);
    assert!(
        run.stderr.contains("notes_m_id_fkey") && run.stderr.contains("inbound_foreign_keys: drop"),
        "{}",
        run.stderr
    );
    let plan = db.plan(
        "p.yaml",
        &one_table_plan("fk", "m", "    inbound_foreign_keys: drop\n"),
    );
    db.hyperswap(&["plan", "apply", path_str(&plan)]).ok();
    let fks: i64 = scalar(
        &client,
        "SELECT count(*) FROM pg_constraint WHERE conname = 'notes_m_id_fkey'",
    )
    .await;
    assert_eq!(fks, 0);
    db.hyperswap(&["rollback", path_str(&plan)]).ok();
    let back: String = scalar(
        &client,
        "SELECT confrelid::regclass::text FROM pg_constraint WHERE conname = 'notes_m_id_fkey'",
    )
    .await;
    assert_eq!(back, "m");
}

/// Issue 9, acceptance 3: a hyperswap frozen (SIGSTOP) inside its cutover transaction
/// releases the application within `cutover.lock_timeout` + 5 s: the transaction's
/// `idle_in_transaction_session_timeout` ends it on the server. The writer's longest
/// stall is measured.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_frozen_cutover_releases_the_application() {
    let db = TestDb::new("frozen_cutover").await;
    let client = db.client().await;
    client
        .batch_execute(
            "CREATE TABLE f (id bigint GENERATED BY DEFAULT AS IDENTITY (START WITH 100000) PRIMARY KEY, ts timestamptz NOT NULL);
             INSERT INTO f (id, ts) SELECT g, now() - g * interval '1 minute' FROM generate_series(1, 2000) g;",
        )
        .await
        .unwrap();
    let plan = db.plan(
        "p.yaml",
        &one_table_plan(
            "frozen",
            "f",
            "cutover:\n  lock_timeout: 2s\n  attempts: 1\n",
        ),
    );
    db.hyperswap(&["plan", "apply", path_str(&plan), "--until", "parity"])
        .ok();
    // A reader of the new table makes the cutover wait inside its transaction, holding
    // the source's lock already.
    let reader = db.client().await;
    reader
        .batch_execute("BEGIN; SELECT count(*) FROM f_hs_new")
        .await
        .unwrap();
    let mut child = db
        .command(&["plan", "apply", path_str(&plan), "-q"])
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let waiting: bool = client
            .query_one(
                "SELECT EXISTS (SELECT FROM pg_stat_activity WHERE application_name LIKE 'hyperswap apply%'
                                AND wait_event_type = 'Lock')",
                &[],
            )
            .await
            .unwrap()
            .get(0);
        if waiting {
            break;
        }
        assert!(Instant::now() < deadline, "the cutover never waited");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // Freeze the tool, then start writing: the writes queue behind its lock.
    std::process::Command::new("kill")
        .args(["-STOP", &child.id().to_string()])
        .status()
        .unwrap();
    let writer = db.client().await;
    let write = tokio::spawn(async move {
        let started = Instant::now();
        writer
            .batch_execute("INSERT INTO f (ts) VALUES (now())")
            .await
            .unwrap();
        started.elapsed()
    });
    wait_for_lock_wait(&client, "INSERT INTO f (ts) VALUES (now())").await;
    reader.batch_execute("COMMIT").await.unwrap();
    let stalled = tokio::time::timeout(Duration::from_secs(30), write)
        .await
        .expect("the application stayed blocked for 30 s")
        .unwrap();
    std::process::Command::new("kill")
        .args(["-KILL", &child.id().to_string()])
        .status()
        .unwrap();
    let _ = child.wait();
    eprintln!("the write waited {stalled:?}");
    assert!(
        stalled < Duration::from_secs(2 + 5),
        "the write waited {stalled:?}, more than lock_timeout + 5 s"
    );
    // Nothing was cut over: the frozen transaction was rolled back; the plan resumes.
    let phase: String = client
        .query_one("SELECT phase FROM hyperswap.plans", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(phase, "verified");
    db.hyperswap(&["plan", "apply", path_str(&plan)]).ok();
    assert_eq!(
        except_both_ways(&client, "public.f", "public.f_hs_old").await,
        0
    );
}

/// Issue 9: the lock-blocker report named innocent sessions when the real blocker was an
/// idle transaction that had called nextval() on the table's sequence (the cutover
/// moves the sequence to the new table). It must name that session, and not a session
/// idle in a transaction on another table.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_blocker_report_names_the_session_holding_the_sequence() {
    let db = TestDb::new("blocker_sequence").await;
    let admin = db.client().await;
    create_sample_table(&admin, &QualifiedName::new("public", "metrics"), 2_000)
        .await
        .unwrap();
    admin
        .batch_execute("CREATE TABLE elsewhere (x int); INSERT INTO elsewhere VALUES (1)")
        .await
        .unwrap();
    let plan = db.plan(
        "p.yaml",
        &one_table_plan(
            "seq",
            "public.metrics",
            "cutover:\n  lock_timeout: 1s\n  attempts: 1\n",
        ),
    );
    db.hyperswap(&["plan", "apply", path_str(&plan), "--until", "parity"])
        .ok();
    let culprit = db.client().await;
    culprit
        .batch_execute("BEGIN; SELECT nextval('public.metrics_id_seq')")
        .await
        .unwrap();
    let culprit_pid = backend_pid(&culprit).await;
    let innocent = db.client().await;
    innocent
        .batch_execute("BEGIN; SELECT count(*) FROM elsewhere")
        .await
        .unwrap();
    let innocent_pid = backend_pid(&innocent).await;
    let run = db.hyperswap(&["plan", "apply", path_str(&plan)]);
    assert_eq!(run.code, 3, "{}\n{}", run.stdout, run.stderr);
    assert!(
        run.stderr.contains(&format!("pid {culprit_pid} ")),
        "the culprit (pid {culprit_pid}) is not named:\n{}",
        run.stderr
    );
    assert!(
        !run.stderr.contains(&format!("pid {innocent_pid} ")),
        "an innocent session (pid {innocent_pid}) is named:\n{}",
        run.stderr
    );
    culprit.batch_execute("ROLLBACK").await.unwrap();
    innocent.batch_execute("ROLLBACK").await.unwrap();
    let run = db.hyperswap(&["plan", "apply", path_str(&plan)]).ok();
    assert!(run.stdout.contains("EQUAL"), "{}", run.stdout);
    // The notices of the tool's own idempotent DROP ... IF EXISTS are not shown by
    // default (they puzzled a first-time user).
    assert!(
        !run.stderr.contains("does not exist, skipping"),
        "{}",
        run.stderr
    );
    let status = db.hyperswap(&["status", path_str(&plan)]).ok();
    assert!(
        status
            .stdout
            .contains("backfill of public.metrics (the hypertable now)"),
        "{}",
        status.stdout
    );
}
