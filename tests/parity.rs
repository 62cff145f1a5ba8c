//! Issue 3's acceptance: parity pinpoints every kind of difference injected behind the
//! trigger's back, stays exact under live writes, resumes, repairs, and speaks JSON.
#![cfg(db_tests)]

mod common;

use std::time::{Duration, Instant};

use common::*;
use hyperswap::ident::QualifiedName;
use hyperswap_workload::{create_sample_table, spawn_writer, OpMix, WriterConfig};
use serde_json::Value;

/// A table with one column of each kind the issue names, migrated up to parity.
async fn migrated_kinds(test: &str, extra: &str) -> (TestDb, std::path::PathBuf) {
    let db = TestDb::new(test).await;
    db.client()
        .await
        .batch_execute(
            "CREATE TABLE kinds (id bigserial PRIMARY KEY, ts timestamptz NOT NULL, n numeric, t text,
                                 f float8, j jsonb, a int[]);
             INSERT INTO kinds (ts, n, t, f, j, a)
             SELECT timestamptz '2024-01-01' + g * interval '7 minutes', g * 1.5,
                    CASE WHEN g % 10 = 0 THEN NULL ELSE 'x' || g END,
                    CASE WHEN g % 10 = 0 THEN 0 ELSE g / 7.0 END,
                    jsonb_build_object('a', jsonb_build_object('b', g)), ARRAY[g, g + 1, g + 2]
             FROM generate_series(1, 20000) g;
             ANALYZE kinds;",
        )
        .await
        .unwrap();
    let plan = db.plan(
        "p.yaml",
        &one_table_plan(
            "kinds",
            "kinds",
            &format!("parity:\n  range_rows: 3000\n{extra}"),
        ),
    );
    let run = db
        .hyperswap(&["plan", "apply", path_str(&plan), "--until", "parity"])
        .ok();
    assert!(run.stdout.contains("EQUAL"), "{}", run.stdout);
    (db, plan)
}

fn parity_json(db: &TestDb, plan: &std::path::Path, extra: &[&str]) -> (i32, Value) {
    let mut args = vec!["parity", path_str(plan), "--json"];
    args.extend(extra);
    let run = db.hyperswap(&args);
    assert!(
        run.code == 0 || run.code == 1,
        "parity failed ({}):\n{}",
        run.code,
        run.stderr
    );
    let doc: Value = serde_json::from_str(&run.stdout)
        .unwrap_or_else(|e| panic!("not JSON ({e}):\n{}", run.stdout));
    (run.code, doc)
}

/// Acceptance 1: each injected difference is reported as exactly that key, kind and column.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_injected_difference_is_pinpointed() {
    let (db, plan) = migrated_kinds("pinpoint", "").await;
    let client = db.client().await;
    let cases: &[(&str, &str, &str, &str, &[&str])] = &[
        (
            "deleted row",
            "DELETE FROM kinds_hs_new WHERE id = 11",
            "11",
            "missing",
            &[],
        ),
        (
            "extra row",
            "INSERT INTO kinds_hs_new (id, ts, n) VALUES (900000, '2024-01-05', 1)",
            "900000",
            "extra",
            &[],
        ),
        (
            "changed number",
            "UPDATE kinds_hs_new SET n = n + 0.0001 WHERE id = 1234",
            "1234",
            "different",
            &["n"],
        ),
        (
            "NULL vs empty text",
            "UPDATE kinds_hs_new SET t = '' WHERE id = 20",
            "20",
            "different",
            &["t"],
        ),
        (
            "-0 vs 0",
            "UPDATE kinds_hs_new SET f = '-0' WHERE id = 30",
            "30",
            "different",
            &["f"],
        ),
        (
            "NaN",
            "UPDATE kinds_hs_new SET f = 'NaN' WHERE id = 31",
            "31",
            "different",
            &["f"],
        ),
        (
            "timestamptz shifted by 1us",
            "UPDATE kinds_hs_new SET ts = ts + interval '1 microsecond' WHERE id = 4000",
            "4000",
            "different",
            &["ts"],
        ),
        (
            "nested jsonb value",
            "UPDATE kinds_hs_new SET j = jsonb_set(j, '{a,b}', '0') WHERE id = 15000",
            "15000",
            "different",
            &["j"],
        ),
        (
            "array element",
            "UPDATE kinds_hs_new SET a[2] = -1 WHERE id = 19999",
            "19999",
            "different",
            &["a"],
        ),
        // Equal to the type's equality (and hash) but not the same stored value: the
        // checksum reads these through the type's binary form, not its hash.
        (
            "numeric scale 750.0 vs 750.0000",
            "UPDATE kinds_hs_new SET n = round(n, 4) WHERE id = 500",
            "500",
            "different",
            &["n"],
        ),
        (
            "jsonb number 600 vs 600.0",
            "UPDATE kinds_hs_new SET j = jsonb_set(j, '{a,b}', '600.0') WHERE id = 600",
            "600",
            "different",
            &["j"],
        ),
        (
            "array lower bound",
            "UPDATE kinds_hs_new SET a = ('[0:2]=' || a::text)::int[] WHERE id = 700",
            "700",
            "different",
            &["a"],
        ),
    ];
    for (what, inject, key, kind, columns) in cases {
        client.batch_execute(inject).await.unwrap();
        let (code, doc) = parity_json(&db, &plan, &[]);
        assert_eq!(code, 1, "{what}: parity should exit 1\n{doc:#}");
        assert_eq!(doc["equal"], false);
        let diffs = doc["tables"][0]["differences"].as_array().unwrap();
        assert_eq!(
            diffs.len(),
            1,
            "{what}: expected exactly one difference: {diffs:#?}"
        );
        assert_eq!(diffs[0]["key"], *key, "{what}");
        assert_eq!(diffs[0]["kind"], *kind, "{what}");
        let got: Vec<&str> = diffs[0]["columns"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c.as_str().unwrap())
            .collect();
        assert_eq!(&got, columns, "{what}");
        assert_eq!(doc["tables"][0]["ranges_different"], 1, "{what}");

        // --repair re-copies the key from the source and checks again.
        let (code, doc) = parity_json(&db, &plan, &["--repair"]);
        assert_eq!(code, 0, "{what}: repair did not restore parity\n{doc:#}");
        assert_eq!(doc["repaired"][0][1], 1, "{what}: {doc:#}");
    }
    assert_eq!(except_both_ways(&client, "kinds", "kinds_hs_new").await, 0);
}

/// Acceptance 2: under a concurrent writer, repeated parity runs on a correctly migrated
/// table report no difference, every time.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn parity_is_exact_under_live_writes() {
    let db = TestDb::new("parity_live").await;
    create_sample_table(
        &db.client().await,
        &QualifiedName::new("public", "metrics"),
        50_000,
    )
    .await
    .unwrap();
    let plan = db.plan(
        "p.yaml",
        &one_table_plan(
            "live",
            "public.metrics",
            "parity:\n  range_rows: 5000\n  lanes: 4\n",
        ),
    );
    db.hyperswap(&["plan", "apply", path_str(&plan), "--until", "parity"])
        .ok();
    let writer = spawn_writer(WriterConfig {
        url: db.url.clone(),
        table: QualifiedName::new("public", "metrics"),
        connections: 3,
        ops_per_sec: 600,
        mix: OpMix::default(),
        time_updates_cross_days: true,
    });
    wait_for_writes(&writer, 30).await;
    let mut runs = 0;
    let started = Instant::now();
    while runs < 5 || started.elapsed() < Duration::from_secs(5) {
        let run = spawn_binary(&db.url, &["parity", path_str(&plan), "--json"])
            .await
            .unwrap();
        assert_eq!(
            run.code, 0,
            "parity run {runs} under live writes found a difference:\n{}\n{}",
            run.stdout, run.stderr
        );
        let doc: Value = serde_json::from_str(&run.stdout).unwrap();
        assert!(doc["tables"][0]["ranges"].as_u64().unwrap() >= 5, "{doc:#}");
        runs += 1;
    }
    let stats = writer.stop().await;
    let ops = stats.total_ops();
    assert!(
        ops as f64 / started.elapsed().as_secs_f64() > 200.0,
        "the writer was too slow to matter: {stats:?}"
    );
    assert!(
        stats.deletes > 0 && stats.updates_time > 0 && stats.inserts > 0,
        "{stats:?}"
    );
}

/// Acceptance 5: the JSON document's shape, as the README documents it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn parity_json_is_the_documented_document() {
    let (db, plan) = migrated_kinds("parity_json", "").await;
    let (code, doc) = parity_json(&db, &plan, &[]);
    assert_eq!(code, 0);
    for field in [
        "plan",
        "phase",
        "equal",
        "run_id",
        "resumed_ranges",
        "digest",
        "elapsed_ms",
        "longest_transaction_ms",
        "tables",
    ] {
        assert!(doc.get(field).is_some(), "missing `{field}`: {doc:#}");
    }
    assert_eq!(doc["plan"], "kinds");
    assert_eq!(doc["phase"], "verified");
    assert_eq!(doc["digest"].as_str().unwrap().len(), 64);
    let t = &doc["tables"][0];
    for field in [
        "table",
        "live",
        "mirror",
        "live_rows",
        "mirror_rows",
        "ranges",
        "ranges_different",
        "equal",
        "differences",
        "differences_truncated",
    ] {
        assert!(t.get(field).is_some(), "missing tables[0].{field}: {t:#}");
    }
    assert_eq!(t["live"], "public.kinds");
    assert_eq!(t["mirror"], "public.kinds_hs_new");
    assert_eq!(t["live_rows"], 20000);
    assert!(t["ranges"].as_u64().unwrap() >= 5, "{t:#}");
    // The same data gives the same digest.
    let (_, again) = parity_json(&db, &plan, &[]);
    assert_eq!(again["digest"], doc["digest"]);
    // status shows when parity last passed.
    let status: Value = serde_json::from_str(
        &db.hyperswap(&["status", path_str(&plan), "--json"])
            .ok()
            .stdout,
    )
    .unwrap();
    assert!(status[0]["parity_passed_at"].is_string(), "{status:#}");
}

/// An interrupted parity run resumes: its recorded ranges are not checked again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn interrupted_parity_run_resumes() {
    let (db, plan) = migrated_kinds("parity_resume", "").await;
    let client = db.client().await;
    // A run that recorded some ranges and never finished, as a killed run leaves it.
    let (_, first) = parity_json(&db, &plan, &[]);
    let run_id = first["run_id"].as_i64().unwrap();
    client
        .execute(
            "UPDATE hyperswap.parity_runs SET finished_at = NULL, equal = NULL WHERE id = $1",
            &[&run_id],
        )
        .await
        .unwrap();
    client
        .execute(
            "DELETE FROM hyperswap.parity_ranges WHERE run_id = $1 AND range_no >= 3",
            &[&run_id],
        )
        .await
        .unwrap();
    let (code, resumed) = parity_json(&db, &plan, &[]);
    assert_eq!(code, 0);
    assert_eq!(
        resumed["run_id"], run_id,
        "the unfinished run was not resumed"
    );
    assert_eq!(resumed["resumed_ranges"], 3);
    assert_eq!(resumed["digest"], first["digest"]);
}

/// apply refuses to cut over on a difference, saying how to inspect and what to do.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn apply_refuses_cutover_on_a_difference() {
    let (db, plan) = migrated_kinds("refuse_cutover", "").await;
    db.client()
        .await
        .batch_execute("DELETE FROM kinds_hs_new WHERE id = 77")
        .await
        .unwrap();
    let run = db.hyperswap(&["plan", "apply", path_str(&plan)]);
    assert_eq!(run.code, 1, "{}\n{}", run.stdout, run.stderr);
    assert!(
        run.stderr.contains("cutover refused") && run.stderr.contains("hyperswap parity"),
        "{}",
        run.stderr
    );
    assert!(
        run.stdout.contains("77") && run.stdout.contains("missing"),
        "{}",
        run.stdout
    );
    let client = db.client().await;
    let phase: String = client
        .query_one("SELECT phase FROM hyperswap.plans", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(phase, "verified", "no cutover happened");
    let relkind: String = client
        .query_one(
            "SELECT relkind::text FROM pg_class WHERE oid = 'kinds'::regclass",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(relkind, "r", "the source is still the live plain table");
}

/// Issue 9: `--repair` repairs every differing key, not only the first 1,000 a
/// comparison names: it repairs and compares again until equal.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn repair_has_no_thousand_key_limit() {
    let (db, plan) = migrated_kinds("repair_many", "").await;
    let client = db.client().await;
    // Behind the trigger's back: 2,500 rows gone from the mirror, 300 changed.
    client
        .batch_execute(
            "DELETE FROM kinds_hs_new WHERE id % 8 = 0;
             UPDATE kinds_hs_new SET t = 'tampered' WHERE id % 8 = 1 AND id < 2400;",
        )
        .await
        .unwrap();
    let (code, doc) = parity_json(&db, &plan, &[]);
    assert_eq!(code, 1, "{doc:#}");
    let (code, doc) = parity_json(&db, &plan, &["--repair"]);
    assert_eq!(code, 0, "repair did not restore parity\n{doc:#}");
    assert_eq!(doc["repaired"][0][1], 2800, "{doc:#}");
    assert_eq!(
        except_both_ways(&client, "public.kinds", "public.kinds_hs_new").await,
        0
    );
}

/// Issue 10: one phase order with named predicates; parity refuses a plan being aborted
/// (the derived order let it run in `aborting`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn parity_refuses_a_plan_being_aborted() {
    let (db, plan) = migrated_kinds("parity_aborting", "").await;
    let client = db.client().await;
    client
        .batch_execute("UPDATE hyperswap.plans SET phase = 'aborting'")
        .await
        .unwrap();
    let run = db.hyperswap(&["parity", path_str(&plan)]);
    assert_eq!(run.code, 2, "{}", run.stderr);
    assert!(
        run.stderr.contains("is in phase aborting"),
        "{}",
        run.stderr
    );
}
