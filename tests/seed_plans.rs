//! Issue 7, "plans for the seeds' schemas": the example plans in plans/ run as shipped
//! on the seeds' schemas (tests/fixtures/), each through cutover and rollback under a
//! live writer, with nothing lost.
#![cfg(db_tests)]

mod common;

use std::path::PathBuf;

use common::scenario::Move;
use common::*;

fn shipped(plan: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("plans")
        .join(plan)
}

async fn run(test: &str, fixture: &str, plan: &str, table: &str, writes: &[&str]) {
    let db = TestDb::new(test).await;
    let client = db.client().await;
    client.batch_execute(fixture).await.unwrap();
    let plan = shipped(plan);
    let validate = db.hyperswap(&["plan", "validate", path_str(&plan)]).ok();
    assert!(validate.stdout.contains("is valid"), "{}", validate.stdout);
    let (target, retired) = (format!("{table}_hs_new"), format!("{table}_hs_old"));
    Move {
        db: &db,
        plan: &plan,
        table,
        target: &target,
        retired: &retired,
        writes,
        kill_after_rows: None,
    }
    .run()
    .await;
    db.hyperswap(&["plan", "apply", path_str(&plan)]).ok();
    db.hyperswap(&["finalize", "--yes", path_str(&plan)]).ok();
    let is_hypertable: bool = client
        .query_one(
            "SELECT EXISTS (SELECT 1 FROM timescaledb_information.hypertables WHERE hypertable_name = split_part($1, '.', 2))",
            &[&table],
        )
        .await
        .unwrap()
        .get(0);
    assert!(is_hypertable, "{table} is not a hypertable after finalize");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn otel_logs_plan() {
    run(
        "seed_logs",
        include_str!("fixtures/otel.sql"),
        "otel-logs.yaml",
        "public.logs",
        &[
            "INSERT INTO logs (id, timestamp, observed_timestamp, severity_number, severity_text, body, service_name, n)
             VALUES (gen_random_uuid(), '2026-01-02'::timestamptz + {r} * interval '1 minute', now(), 9, 'INFO', 'live', 'svc-live', {r})",
            "INSERT INTO logs (id, timestamp, observed_timestamp, severity_number, severity_text, body, service_name, n)
             SELECT gen_random_uuid(), '2026-01-03'::timestamptz + g * interval '1 second', now(), 13, 'WARN', 'batch', 'svc-batch', {r}
             FROM generate_series(1, 5) g",
            "UPDATE logs SET body = body || '!', attributes = attributes || '{\"seen\": true}' WHERE id = (SELECT id FROM logs WHERE n = {r} LIMIT 1)",
            "UPDATE logs SET timestamp = date_trunc('hour', timestamp) + random() * interval '59 minutes' WHERE id = (SELECT id FROM logs WHERE n = {r} LIMIT 1)",
            "UPDATE logs SET id = gen_random_uuid() WHERE id = (SELECT id FROM logs WHERE n = {r} LIMIT 1)",
            "DELETE FROM logs WHERE id = (SELECT id FROM logs WHERE n = {r} LIMIT 1)",
        ],
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn otel_metric_data_points_plan() {
    run(
        "seed_points",
        include_str!("fixtures/otel.sql"),
        "otel-metric-data-points.yaml",
        "public.metric_data_points",
        &[
            "INSERT INTO metric_data_points (id, metric_id, timestamp, value, n)
             VALUES (gen_random_uuid(), md5('metric' || (1 + {r} % 50))::uuid, '2026-01-02'::timestamptz + {r} * interval '1 minute', {r}, {r})",
            "INSERT INTO metric_data_points (id, metric_id, timestamp, value, n)
             SELECT gen_random_uuid(), md5('metric' || (1 + g))::uuid, '2026-01-02'::timestamptz + g * interval '1 second', g, {r}
             FROM generate_series(1, 5) g",
            "UPDATE metric_data_points SET value = value + 1, quantiles = '[0.5]' WHERE id = (SELECT id FROM metric_data_points WHERE n = {r} LIMIT 1)",
            "UPDATE metric_data_points SET timestamp = date_trunc('hour', timestamp) + random() * interval '59 minutes' WHERE id = (SELECT id FROM metric_data_points WHERE n = {r} LIMIT 1)",
            "UPDATE metric_data_points SET id = gen_random_uuid() WHERE id = (SELECT id FROM metric_data_points WHERE n = {r} LIMIT 1)",
            "DELETE FROM metric_data_points WHERE id = (SELECT id FROM metric_data_points WHERE n = {r} LIMIT 1)",
        ],
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn llm_traces_plan() {
    run(
        "seed_llm",
        include_str!("fixtures/llm.sql"),
        "llm-traces.yaml",
        "public.llm_traces",
        &[
            "INSERT INTO llm_traces (ts, trace_id, span_id, span_name, provider, model, n)
             VALUES ('2026-01-02'::timestamptz + {r} * interval '1 minute', 'live-' || md5(random()::text), 'span-00', 'chat', 'openai', 'model-1', {r})",
            "INSERT INTO llm_traces (ts, trace_id, span_id, span_name, provider, model, n)
             SELECT '2026-01-02'::timestamptz + g * interval '1 second', t, 'span-' || g, 'tool', 'local', 'model-2', {r}
             FROM (SELECT 'batch-' || md5(random()::text) AS t) AS x, generate_series(1, 5) g",
            "UPDATE llm_traces SET output_tokens = coalesce(output_tokens, 0) + 1, status_code = 'ERROR' WHERE (trace_id, span_id) = (SELECT trace_id, span_id FROM llm_traces WHERE n = {r} LIMIT 1)",
            "UPDATE llm_traces SET ts = date_trunc('hour', ts) + random() * interval '59 minutes' WHERE (trace_id, span_id) = (SELECT trace_id, span_id FROM llm_traces WHERE n = {r} LIMIT 1)",
            "UPDATE llm_traces SET span_id = 'moved-' || md5(random()::text) WHERE (trace_id, span_id) = (SELECT trace_id, span_id FROM llm_traces WHERE n = {r} LIMIT 1)",
            "DELETE FROM llm_traces WHERE (trace_id, span_id) = (SELECT trace_id, span_id FROM llm_traces WHERE n = {r} LIMIT 1)",
        ],
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn player_stats_plan() {
    run(
        "seed_sports",
        include_str!("fixtures/sports.sql"),
        "player-stats.yaml",
        "public.player_stats",
        &[
            "INSERT INTO player_stats (player_id, game_id, stat_type, value, game_date, n)
             VALUES (1000 + {r}, 100000 + (random() * 1e9)::int, 'steals', {r} % 5, DATE '2024-03-01' + {r} % 90, {r})",
            "INSERT INTO player_stats (player_id, game_id, stat_type, value, game_date, n)
             SELECT 5000 + g, 100000 + (random() * 1e9)::int, 'blocks', g, DATE '2024-02-01', {r} FROM generate_series(1, 5) g",
            "UPDATE player_stats SET value = value + 1 WHERE (player_id, game_id, stat_type) = (SELECT player_id, game_id, stat_type FROM player_stats WHERE n = {r} LIMIT 1)",
            // Within its week (chunks are 7-day multiples from the Unix epoch).
            "UPDATE player_stats SET game_date = game_date + 1 WHERE (player_id, game_id, stat_type) = (SELECT player_id, game_id, stat_type FROM player_stats WHERE n = {r} AND (game_date - DATE '1970-01-01') % 7 < 6 LIMIT 1)",
            "UPDATE player_stats SET game_id = 200000 + (random() * 1e9)::int WHERE (player_id, game_id, stat_type) = (SELECT player_id, game_id, stat_type FROM player_stats WHERE n = {r} LIMIT 1)",
            "DELETE FROM player_stats WHERE (player_id, game_id, stat_type) = (SELECT player_id, game_id, stat_type FROM player_stats WHERE n = {r} LIMIT 1)",
        ],
    )
    .await;
}
