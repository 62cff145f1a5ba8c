//! Operations: off a terminal the backfill logs a progress line every few seconds (the
//! bars are hidden there), and a pause file holds the backfill between batches.
#![cfg(db_tests)]

mod common;

use std::time::{Duration, Instant};

use common::scenario::rows_copied;
use common::*;

async fn seeded(test: &str, rows: i64) -> TestDb {
    let db = TestDb::new(test).await;
    db.client()
        .await
        .batch_execute(&format!(
            "CREATE TABLE m (id bigint PRIMARY KEY, ts timestamptz NOT NULL, v int);
             INSERT INTO m SELECT g, '2026-01-01'::timestamptz + g * interval '1 minute', g FROM generate_series(1, {rows}) g;"
        ))
        .await
        .unwrap();
    db
}

/// Under nohup, cron or CI (stderr a file), progress lines with rows, rate and ETA
/// appear at the chosen interval, counting up.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn progress_lines_off_a_terminal() {
    let db = seeded("progress_lines", 20_000).await;
    let plan = db.plan(
        "p.yaml",
        &one_table_plan(
            "pl",
            "m",
            "backfill:\n  batch_rows: 500\n  max_batch_rows: 500\n  pause: 30ms\nparity:\n  range_rows: 2000\n",
        ),
    );
    let run = db
        .hyperswap(&[
            "plan",
            "apply",
            path_str(&plan),
            "--until",
            "backfill",
            "--progress-every",
            "200ms",
        ])
        .ok();
    let lines: Vec<&str> = run
        .stderr
        .lines()
        .filter(|l| l.contains("backfill public.m: ") && l.contains("rows/s, ETA"))
        .collect();
    assert!(lines.len() >= 3, "too few progress lines:\n{}", run.stderr);
    let counts: Vec<u64> = lines
        .iter()
        .map(|l| {
            l.split("backfill public.m: ")
                .nth(1)
                .unwrap()
                .split(' ')
                .next()
                .unwrap()
                .parse()
                .unwrap()
        })
        .collect();
    assert!(counts.windows(2).all(|w| w[0] < w[1]), "{counts:?}");
    // Parity reports its ranges the same way.
    let run = db
        .hyperswap(&["parity", path_str(&plan), "--progress-every", "1ms"])
        .ok();
    assert!(
        run.stderr.contains("parity: ") && run.stderr.contains("ranges/s, ETA"),
        "{}",
        run.stderr
    );
    // And none with --progress-every 0s.
    let quiet = seeded("progress_lines_off", 2_000).await;
    let plan = quiet.plan("p.yaml", &one_table_plan("pl0", "m", ""));
    let run = quiet
        .hyperswap(&[
            "plan",
            "apply",
            path_str(&plan),
            "--until",
            "backfill",
            "--progress-every",
            "0s",
        ])
        .ok();
    assert!(!run.stderr.contains("rows/s, ETA"), "{}", run.stderr);
}

/// While the plan's pause file exists the backfill copies nothing and says why; once it
/// is removed the backfill goes on and finishes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pause_file_holds_the_backfill() {
    let db = seeded("pause_file", 5_000).await;
    let pause = db.dir.join("pause");
    std::fs::write(&pause, "").unwrap();
    let plan = db.plan(
        "p.yaml",
        &one_table_plan(
            "pf",
            "m",
            &format!(
                "backfill:\n  batch_rows: 500\n  pause_file: {}\n",
                pause.display()
            ),
        ),
    );
    let run = spawn_binary(
        &db.url,
        &["plan", "apply", path_str(&plan), "--until", "backfill"],
    );
    let client = db.client().await;
    // The backfill reaches its first batch and waits there.
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        // Nothing can fail here before the file is removed: a panic would leave the
        // paused run, and the test, waiting for ever.
        let waiting = match client
            .query_one(
                "SELECT phase = 'backfilling' FROM hyperswap.plans WHERE name = 'pf'",
                &[],
            )
            .await
        {
            Ok(row) => row.get::<_, bool>(0),
            Err(_) => false, // no journal yet
        };
        if waiting {
            break;
        }
        if Instant::now() > deadline {
            let _ = std::fs::remove_file(&pause);
            panic!("the backfill never started");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let copied_while_paused = rows_copied(&client).await;
    std::fs::remove_file(&pause).unwrap();
    assert_eq!(copied_while_paused, 0, "a batch ran while paused");
    let run = run.await.unwrap().ok();
    assert!(
        run.stderr.contains("waits: the pause file"),
        "{}",
        run.stderr
    );
    assert!(run.stderr.contains("goes on"), "{}", run.stderr);
    assert_eq!(rows_copied(&client).await, 5_000);
    assert_eq!(
        db.settled_difference(&plan, "public.m", "public.m_hs_new")
            .await,
        0
    );
}
