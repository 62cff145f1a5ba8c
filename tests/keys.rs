//! Issue 7, "any key": tables keyed by a uuid, by text (through a unique index of another
//! collation than the column's), and by a composite (uuid, text) key move under a live
//! writer that inserts (single rows and several at once), updates values, the time
//! column and the key, and deletes; with a kill -9 in the middle of the backfill. An
//! independent EXCEPT ALL both ways finds nothing after parity, after cutover and after
//! rollback.
#![cfg(db_tests)]

mod common;

use common::scenario::Move;
use common::*;

struct Case {
    test: &'static str,
    table: &'static str,
    time: &'static str,
    /// Extra plan lines under the table (`key:`).
    plan_extra: &'static str,
    ddl: &'static str,
    /// Statements of the live writer; `{r}` is a random 0..1000.
    writes: &'static [&'static str],
}

const ROWS: i64 = 30_000;
const RANGE_ROWS: i64 = 3_000;

async fn moves_under_live_writes(case: Case) {
    let db = TestDb::new(case.test).await;
    let client = db.client().await;
    client.batch_execute(case.ddl).await.unwrap();
    let (table, retired, target) = (
        format!("public.{}", case.table),
        format!("public.{}_hs_old", case.table),
        format!("public.{}_hs_new", case.table),
    );
    assert_eq!(count(&client, &table).await, ROWS);
    let plan = db.plan(
        "p.yaml",
        &format!(
            "name: {}\ntables:\n  - source: {}\n    time_column: {}\n    chunk_time_interval: 1 day\n{}backfill:\n  batch_rows: 500\n  max_batch_rows: 500\n  pause: 10ms\nparity:\n  range_rows: {RANGE_ROWS}\n",
            case.test, case.table, case.time, case.plan_extra
        ),
    );
    let (before, total) = Move {
        db: &db,
        plan: &plan,
        table: &table,
        target: &target,
        retired: &retired,
        writes: case.writes,
        kill_after_rows: Some(ROWS / 3),
    }
    .run()
    .await;
    assert!(before < ROWS, "killed too late: {before} rows copied");
    // Starting over would read the first `before` rows (at least a third) a second time.
    assert!(
        total < ROWS + before / 2,
        "{total} rows copied in all after a kill at {before}: the resumed run started over"
    );
    // Parity's ranges come from a sample of the keys: about range_rows each, however
    // the key sorts and whether or not the table was ever analysed.
    let row = client
        .query_one(
            "SELECT count(*) FILTER (WHERE run_id = (SELECT min(id) FROM hyperswap.parity_runs)),
                    max(greatest(live_rows, mirror_rows))
             FROM hyperswap.parity_ranges",
            &[],
        )
        .await
        .unwrap();
    let (ranges, largest): (i64, i64) = (row.get(0), row.get(1));
    assert!(
        ranges as f64 >= 0.6 * (ROWS / RANGE_ROWS) as f64,
        "only {ranges} parity ranges for {ROWS} rows of {RANGE_ROWS}"
    );
    assert!(
        largest as f64 <= 1.6 * RANGE_ROWS as f64,
        "a parity range of {largest} rows for range_rows {RANGE_ROWS}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn uuid_keyed_table_moves() {
    moves_under_live_writes(Case {
        test: "uuid_key",
        table: "events_u",
        time: "ts",
        plan_extra: "",
        // Never analysed: autovacuum off, and no ANALYZE.
        ddl: "CREATE TABLE events_u (id uuid PRIMARY KEY DEFAULT gen_random_uuid(), n int NOT NULL,
                  ts timestamptz NOT NULL, value double precision, note text)
                  WITH (autovacuum_enabled = false);
              CREATE INDEX events_u_n ON events_u (n);
              INSERT INTO events_u (n, ts, value, note)
              SELECT g % 1000, '2026-01-01'::timestamptz + g * interval '97 seconds', random(), md5(g::text)
              FROM generate_series(1, 30000) g;",
        writes: &[
            "INSERT INTO events_u (n, ts, value) VALUES ({r}, '2026-01-01'::timestamptz + {r} * interval '47 minutes', random())",
            "INSERT INTO events_u (n, ts, value) SELECT {r}, '2026-01-02'::timestamptz + g * interval '13 minutes', random() FROM generate_series(1, 3) g",
            "UPDATE events_u SET value = random(), note = 'v' WHERE id = (SELECT id FROM events_u WHERE n = {r} LIMIT 1)",
            "UPDATE events_u SET ts = date_trunc('hour', ts) + random() * interval '59 minutes' WHERE id = (SELECT id FROM events_u WHERE n = {r} LIMIT 1)",
            "UPDATE events_u SET id = gen_random_uuid() WHERE id = (SELECT id FROM events_u WHERE n = {r} LIMIT 1)",
            "DELETE FROM events_u WHERE id = (SELECT id FROM events_u WHERE n = {r} LIMIT 1)",
        ],
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn text_keyed_table_moves() {
    moves_under_live_writes(Case {
        test: "text_key",
        table: "codes_t",
        time: "ts",
        // No primary key: the plan names the unique index's column, whose collation
        // (POSIX) is not the column's.
        plan_extra: "    key: code\n",
        ddl: "CREATE TABLE codes_t (code varchar(40) NOT NULL, n int NOT NULL, ts timestamptz NOT NULL, value numeric(12,3));
              CREATE UNIQUE INDEX codes_t_code ON codes_t (code COLLATE \"POSIX\");
              CREATE INDEX codes_t_n ON codes_t (n);
              INSERT INTO codes_t (code, n, ts, value)
              SELECT CASE WHEN g % 3 = 0 THEN upper(md5(g::text)) ELSE md5(g::text) END, g % 1000,
                     '2026-01-01'::timestamptz + g * interval '97 seconds', g / 7.0
              FROM generate_series(1, 30000) g;",
        writes: &[
            "INSERT INTO codes_t (code, n, ts, value) VALUES (md5(random()::text), {r}, '2026-01-01'::timestamptz + {r} * interval '47 minutes', {r} / 3.0)",
            "INSERT INTO codes_t (code, n, ts, value) SELECT 'Z' || md5(random()::text), {r}, '2026-01-03'::timestamptz + g * interval '1 minute', g FROM generate_series(1, 3) g",
            "UPDATE codes_t SET value = value + 1 WHERE code = (SELECT code FROM codes_t WHERE n = {r} LIMIT 1)",
            "UPDATE codes_t SET ts = date_trunc('hour', ts) + random() * interval '59 minutes' WHERE code = (SELECT code FROM codes_t WHERE n = {r} LIMIT 1)",
            "UPDATE codes_t SET code = md5(random()::text) WHERE code = (SELECT code FROM codes_t WHERE n = {r} LIMIT 1)",
            "DELETE FROM codes_t WHERE code = (SELECT code FROM codes_t WHERE n = {r} LIMIT 1)",
        ],
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn composite_keyed_table_moves() {
    moves_under_live_writes(Case {
        test: "composite_key",
        table: "llm_spans",
        time: "start_time",
        plan_extra: "",
        // The LLM-tracing shape: PRIMARY KEY (trace_id, span_id), ten spans a trace.
        ddl: "CREATE TABLE llm_spans (trace_id uuid NOT NULL, span_id text NOT NULL, n int NOT NULL,
                  start_time timestamptz NOT NULL, model text, tokens int, PRIMARY KEY (trace_id, span_id));
              CREATE INDEX llm_spans_n ON llm_spans (n);
              INSERT INTO llm_spans (trace_id, span_id, n, start_time, model, tokens)
              SELECT md5((g / 10)::text)::uuid, lpad(to_hex(g * 7919), 16, '0'), g % 1000,
                     '2026-01-01'::timestamptz + g * interval '97 seconds', 'model-' || (g % 5), g % 4000
              FROM generate_series(1, 30000) g;",
        writes: &[
            "INSERT INTO llm_spans (trace_id, span_id, n, start_time, tokens) VALUES (gen_random_uuid(), md5(random()::text), {r}, '2026-01-01'::timestamptz + {r} * interval '47 minutes', {r})",
            "INSERT INTO llm_spans (trace_id, span_id, n, start_time, tokens) SELECT t, 'span-' || g, {r}, '2026-01-02'::timestamptz + g * interval '1 minute', g FROM gen_random_uuid() t, generate_series(1, 3) g",
            "UPDATE llm_spans SET tokens = tokens + 1, model = 'updated' WHERE (trace_id, span_id) = (SELECT trace_id, span_id FROM llm_spans WHERE n = {r} LIMIT 1)",
            "UPDATE llm_spans SET start_time = date_trunc('hour', start_time) + random() * interval '59 minutes' WHERE (trace_id, span_id) = (SELECT trace_id, span_id FROM llm_spans WHERE n = {r} LIMIT 1)",
            "UPDATE llm_spans SET span_id = md5(random()::text) WHERE (trace_id, span_id) = (SELECT trace_id, span_id FROM llm_spans WHERE n = {r} LIMIT 1)",
            "DELETE FROM llm_spans WHERE (trace_id, span_id) = (SELECT trace_id, span_id FROM llm_spans WHERE n = {r} LIMIT 1)",
        ],
    })
    .await;
}

/// Parity on a composite key: differences injected behind the trigger's back are named
/// by their whole key, and `--repair` re-copies exactly those rows.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn composite_key_differences_are_pinpointed_and_repaired() {
    let db = TestDb::new("composite_repair").await;
    let client = db.client().await;
    client
        .batch_execute(
            "CREATE TABLE spans (trace_id uuid NOT NULL, span_id text NOT NULL, ts timestamptz NOT NULL, v int,
                 PRIMARY KEY (trace_id, span_id));
             INSERT INTO spans SELECT md5((g / 4)::text)::uuid, 's' || (g % 4), '2026-01-01'::timestamptz + g * interval '1 minute', g
             FROM generate_series(1, 8000) g;",
        )
        .await
        .unwrap();
    let plan = db.plan(
        "p.yaml",
        &one_table_plan("cr", "spans", "parity:\n  range_rows: 1000\n"),
    );
    let run = db
        .hyperswap(&["plan", "apply", path_str(&plan), "--until", "parity"])
        .ok();
    assert!(run.stdout.contains("EQUAL"), "{}", run.stdout);
    // Behind the trigger's back: one row missing, one changed, one extra in the mirror.
    client
        .batch_execute(
            "SET session_replication_role = replica;
             DELETE FROM spans_hs_new WHERE trace_id = md5('100')::uuid AND span_id = 's1';
             UPDATE spans_hs_new SET v = -1 WHERE trace_id = md5('200')::uuid AND span_id = 's2';
             INSERT INTO spans_hs_new VALUES (md5('100')::uuid, 'zz', '2026-01-05', 0);
             RESET session_replication_role;",
        )
        .await
        .unwrap();
    let out = db.hyperswap(&["parity", path_str(&plan), "--json"]);
    assert_eq!(out.code, 1, "{}", out.stderr);
    let doc: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    let mut found: Vec<(String, String, String)> = doc["tables"][0]["differences"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| {
            (
                d["kind"].as_str().unwrap().to_string(),
                d["key_values"][1].as_str().unwrap().to_string(),
                d["columns"].to_string(),
            )
        })
        .collect();
    found.sort();
    assert_eq!(
        found,
        vec![
            ("different".into(), "s2".into(), "[\"v\"]".into()),
            ("extra".into(), "zz".into(), "[]".into()),
            ("missing".into(), "s1".into(), "[]".into()),
        ],
        "{}",
        out.stdout
    );
    let fixed = db.hyperswap(&["parity", path_str(&plan), "--repair"]);
    assert_eq!(fixed.code, 0, "{}\n{}", fixed.stdout, fixed.stderr);
    assert_eq!(
        except_both_ways(&client, "public.spans", "public.spans_hs_new").await,
        0
    );
}
