//! Issue 18: change capture's objects cannot collide between plans, `--until parity` on
//! a verified plan checks again, and the catch-up keeps the change log short.
#![cfg(db_tests)]

mod common;

use std::collections::HashMap;

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
