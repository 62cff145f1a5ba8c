//! `bench catch-up`: a table moved while writers write as fast as the machine lets
//! them, in three mixes, with the cores also busy with other work (a CPU-bound query in
//! a loop), with and without a reader that holds the table in 2.5 s transactions; the
//! change log replayed while batches run (`catch_up.during_backfill: true`, today's
//! default) against only at the end of the backfill (`false`, earlier builds), in the
//! same round. Per run: the write rate, the entries logged, the largest residual, the
//! time from the end of the copy to `verified`, whether it got there, the writers'
//! longest statement during the cutover against `lock_timeout`, and an independent
//! EXCEPT ALL after the cutover.

use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use hyperswap::ident::QualifiedName;
use hyperswap_workload::create_sample_table;
use tokio_postgres::{Client, NoTls};

use super::{run_tool, Cli};

/// The three mixes: each a list of statements a writer runs in turn (`{n}`: the
/// table's rows, `{r}` a random row).
const MIXES: [(&str, &[&str]); 3] = [
    (
        "single-row inserts",
        &["INSERT INTO bench_cu (ts, device_id, value, status) VALUES (now(), {r} % 1000, 1, 'ok')"],
    ),
    (
        "100-row inserts and updates",
        &[
            "INSERT INTO bench_cu (ts, device_id, value, status) SELECT now(), g, g, 'ok' FROM generate_series(1, 100) g",
            "UPDATE bench_cu SET value = value + 1 WHERE id IN (SELECT 1 + (random() * {n})::bigint FROM generate_series(1, 100))",
        ],
    ),
    (
        "inserts, deletes, key and time updates",
        &[
            "INSERT INTO bench_cu (ts, device_id, value, status) VALUES (now(), 1, 1, 'ok')",
            "DELETE FROM bench_cu WHERE id = {r}",
            "UPDATE bench_cu SET id = id + {n} * 10 WHERE id = {r}",
            "UPDATE bench_cu SET ts = date_trunc('day', ts) + (ts - date_trunc('day', ts)) / 2, value = -value WHERE id = {r}",
        ],
    ),
];

const LOCK_TIMEOUT_MS: u64 = 2000;

fn plan(during_backfill: bool, sessions: Option<usize>) -> String {
    let sessions = sessions
        .map(|n| format!("  sessions: {n}\n"))
        .unwrap_or_default();
    format!(
        "name: bench-catch-up\ntables:\n  - source: public.bench_cu\n    time_column: ts\n    chunk_time_interval: 1 day\nbackfill:\n  batch_rows: 20000\ncutover:\n  lock_timeout: {LOCK_TIMEOUT_MS}ms\n  attempts: 100\ncatch_up:\n  during_backfill: {during_backfill}\n  max_behind: 5min\n{sessions}"
    )
}

pub async fn catch_up(
    cli: &Cli,
    client: &Client,
    rows: u64,
    rounds: usize,
    only: Option<u8>,
    sessions: Option<usize>,
    no_end_only: bool,
) -> anyhow::Result<()> {
    let plan_path = std::env::temp_dir().join("hyperswap-bench-catch-up.yaml");
    if !super::seeded(client, "bench_cu_seed", rows, &["public.bench_cu_seed"]).await? {
        // The copies take their ids from the seed's sequence.
        client
            .batch_execute(
                "DROP TABLE IF EXISTS bench_cu_hs_old; DROP TABLE IF EXISTS bench_cu_hs_new; DROP TABLE IF EXISTS bench_cu; DROP TABLE IF EXISTS bench_cu_seed",
            )
            .await?;
        create_sample_table(client, &QualifiedName::new("public", "bench_cu_seed"), rows).await?;
    }
    println!("| round | mix | reader | catch-up | writes/s | entries logged | entries/s in | replay rate (entries/s, median of samples) | largest residual | converged | end of copy to verified | longest write during cutover (lock_timeout {LOCK_TIMEOUT_MS} ms) | EXCEPT ALL after cutover | writer errors |");
    println!("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|");
    for round in 1..=rounds {
        for (n, (mix, statements)) in MIXES.into_iter().enumerate() {
            if only.is_some_and(|o| o as usize != n + 1) {
                continue;
            }
            // The replay during the backfill against at its end only, then with a
            // reader holding the table (what the cutover meets).
            for (during, reader) in [(true, false), (false, false), (true, true)] {
                if no_end_only && !during {
                    continue;
                }
                {
                    std::fs::write(&plan_path, plan(during, sessions))?;
                    let r = one(cli, client, rows, statements, reader, &plan_path).await?;
                    println!(
                        "| {round} | {mix} | {} | {} | {:.0} | {} | {:.0} | {} | {} | {} | {} | {:.0} ms | {} | {} |",
                        if reader { "2.5 s transactions" } else { "none" },
                        if during {
                            "during the backfill"
                        } else {
                            "at the end only"
                        },
                        r.writes_per_s,
                        r.logged,
                        r.logged as f64 / r.logging.as_secs_f64(),
                        r.replay_rate
                            .map(|x| format!("{x:.0}"))
                            .unwrap_or_else(|| "-".into()),
                        r.largest,
                        if r.to_verified.is_some() { "yes" } else { "no" },
                        r.to_verified
                            .map(|d| format!("{:.1} s", d.as_secs_f64()))
                            .unwrap_or_else(
                                || "not reached: stopped, resumable (see stderr)".into()
                            ),
                        r.longest_cutover_write.as_secs_f64() * 1000.0,
                        r.difference
                            .map(|d| d.to_string())
                            .unwrap_or_else(|| "-".into()),
                        r.errors
                    );
                }
            }
        }
    }
    Ok(())
}

struct Outcome {
    writes_per_s: f64,
    logged: i64,
    /// From the start of the move to `verified` (or its stop): while `logged` came.
    logging: std::time::Duration,
    /// The median replay rate of the catch-up's samples that saw a replay.
    replay_rate: Option<f64>,
    largest: i64,
    to_verified: Option<Duration>,
    longest_cutover_write: Duration,
    difference: Option<i64>,
    errors: u64,
}

/// One move of a fresh copy of the seed table under the writers.
async fn one(
    cli: &Cli,
    client: &Client,
    rows: u64,
    statements: &[&str],
    reader: bool,
    plan: &std::path::Path,
) -> anyhow::Result<Outcome> {
    let plan_arg = plan.to_str().unwrap().to_string();
    clean(cli, client).await?;
    client
        .batch_execute(
            // A hypertable is dropped in a statement of its own.
            "DROP TABLE IF EXISTS bench_cu_hs_old; DROP TABLE IF EXISTS bench_cu_hs_new; DROP TABLE IF EXISTS bench_cu;
             CREATE TABLE bench_cu (LIKE bench_cu_seed INCLUDING ALL);
             INSERT INTO bench_cu SELECT * FROM bench_cu_seed;
             SELECT setval(pg_get_serial_sequence('bench_cu', 'id'), (SELECT max(id) FROM bench_cu));
             ANALYZE bench_cu;",
        )
        .await?;
    super::apply_plan(&cli.hyperswap, &cli.database_url, plan, Some("trigger"))?;
    let stop = Arc::new(AtomicBool::new(false));
    let statements: Vec<String> = statements
        .iter()
        .map(|s| s.replace("{n}", &rows.to_string()))
        .collect();
    let mut writers = Vec::new();
    for lane in 0..2 {
        writers.push(tokio::spawn(write(
            cli.database_url.clone(),
            statements.clone(),
            rows,
            lane,
            stop.clone(),
        )));
    }
    let burner = tokio::spawn(burn(cli.database_url.clone(), stop.clone()));
    let holder = reader.then(|| tokio::spawn(hold(cli.database_url.clone(), stop.clone())));
    let largest = Arc::new(AtomicI64::new(0));
    let sampler = tokio::spawn(sample(
        cli.database_url.clone(),
        stop.clone(),
        largest.clone(),
    ));
    let started = Instant::now();
    let verified = {
        let (bin, url, p) = (
            cli.hyperswap.clone(),
            cli.database_url.clone(),
            plan_arg.clone(),
        );
        tokio::task::spawn_blocking(move || {
            run_tool(
                &bin,
                &url,
                &["plan", "apply", &p, "--until", "parity", "-q"],
            )
        })
        .await?
    };
    let to_verified = match &verified {
        Ok(()) => Some(copy_end_to_verified(client).await?),
        Err(e) => {
            eprintln!("did not reach verified: {e:#}");
            None
        }
    };
    let logged = entries_logged(client).await?;
    let logging = started.elapsed();
    let replay_rate: Option<f64> = client
        .query_one(
            "SELECT percentile_cont(0.5) WITHIN GROUP (ORDER BY replayed_per_s)
             FROM hyperswap.catch_up WHERE plan_name = 'bench-catch-up' AND replayed_per_s > 0",
            &[],
        )
        .await?
        .get(0);
    let cut_started = Instant::now();
    let (bin, url, p) = (
        cli.hyperswap.clone(),
        cli.database_url.clone(),
        plan_arg.clone(),
    );
    let cut = if verified.is_ok() {
        tokio::task::spawn_blocking(move || run_tool(&bin, &url, &["plan", "apply", &p, "-q"]))
            .await?
    } else {
        Ok(())
    };
    let cut_took = cut_started.elapsed();
    tokio::time::sleep(Duration::from_millis(300)).await;
    stop.store(true, Ordering::SeqCst);
    let elapsed = started.elapsed();
    let (mut writes, mut errors, mut longest) = (0u64, 0u64, Duration::ZERO);
    for w in writers {
        let s = w.await??;
        writes += s.writes;
        errors += s.errors;
        for (at, d) in s.timed {
            if at + d >= cut_started && at <= cut_started + cut_took {
                longest = longest.max(d);
            }
        }
    }
    burner.await??;
    if let Some(h) = holder {
        h.await??;
    }
    sampler.await??;
    let difference = if verified.is_ok() && cut.is_ok() {
        Some(
            client
                .query_one(
                    "SELECT (SELECT count(*) FROM (SELECT * FROM bench_cu EXCEPT ALL SELECT * FROM bench_cu_hs_old) a)
                          + (SELECT count(*) FROM (SELECT * FROM bench_cu_hs_old EXCEPT ALL SELECT * FROM bench_cu) b)",
                    &[],
                )
                .await?
                .get(0),
        )
    } else {
        None
    };
    if let Err(e) = cut {
        eprintln!("cutover failed: {e:#}");
    }
    Ok(Outcome {
        writes_per_s: writes as f64 / elapsed.as_secs_f64(),
        logged,
        logging,
        replay_rate,
        largest: largest.load(Ordering::SeqCst),
        to_verified,
        longest_cutover_write: longest,
        difference,
        errors,
    })
}

/// Ends the previous run's plan (as the journal keeps it: its file has changed since):
/// abort before cutover, finalize after it.
async fn clean(cli: &Cli, client: &Client) -> anyhow::Result<()> {
    let text: Option<String> = client
        .query_opt(
            "SELECT plan_text FROM hyperswap.plans WHERE name = 'bench-catch-up'",
            &[],
        )
        .await
        .ok()
        .flatten()
        .map(|r| r.get(0));
    let Some(text) = text else {
        return Ok(());
    };
    let old = std::env::temp_dir().join("hyperswap-bench-catch-up-previous.yaml");
    std::fs::write(&old, text)?;
    let old = old.to_str().unwrap();
    let _ = run_tool(&cli.hyperswap, &cli.database_url, &["abort", old, "-q"]);
    let _ = run_tool(
        &cli.hyperswap,
        &cli.database_url,
        &["finalize", old, "--yes", "--drop-history", "-q"],
    );
    Ok(())
}

/// From the last batch's commit to the plan's move to `verified`, by the database's
/// clock (the journal's).
async fn copy_end_to_verified(client: &Client) -> anyhow::Result<Duration> {
    let secs: f64 = client
        .query_one(
            "SELECT extract(epoch FROM (SELECT updated_at FROM hyperswap.plans WHERE name = 'bench-catch-up')
                                     - (SELECT max(updated_at) FROM hyperswap.ranges WHERE plan_name = 'bench-catch-up'))::float8",
            &[],
        )
        .await?
        .get(0);
    Ok(Duration::from_secs_f64(secs.max(0.0)))
}

/// Entries the copy trigger appended to the table's change log so far.
async fn entries_logged(client: &Client) -> anyhow::Result<i64> {
    Ok(client
        .query_one(
            "SELECT coalesce(n_tup_ins, 0) FROM pg_stat_user_tables
             WHERE relid = to_regclass('hyperswap.changes_' || 'bench_cu'::regclass::oid)",
            &[],
        )
        .await?
        .get(0))
}

struct Written {
    writes: u64,
    errors: u64,
    timed: Vec<(Instant, Duration)>,
}

/// The mix's statements in turn, as fast as they go, each timed.
async fn write(
    url: String,
    statements: Vec<String>,
    rows: u64,
    lane: u64,
    stop: Arc<AtomicBool>,
) -> anyhow::Result<Written> {
    let (c, conn) = tokio_postgres::connect(&url, NoTls).await?;
    tokio::spawn(conn);
    let mut out = Written {
        writes: 0,
        errors: 0,
        timed: Vec::new(),
    };
    let mut state = 0x9E37_79B9_7F4A_7C15u64 ^ (lane + 1);
    let mut i = 0;
    while !stop.load(Ordering::Relaxed) {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        let r = 1 + state % rows.max(1);
        let sql = statements[i % statements.len()].replace("{r}", &r.to_string());
        i += 1;
        let at = Instant::now();
        match c.batch_execute(&sql).await {
            Ok(()) => {
                out.writes += 1;
                out.timed.push((at, at.elapsed()));
            }
            Err(e) => {
                if out.errors == 0 {
                    eprintln!("writer: {e:?}");
                }
                out.errors += 1;
            }
        }
    }
    Ok(out)
}

/// Other work on the machine: a CPU-bound query, again and again.
async fn burn(url: String, stop: Arc<AtomicBool>) -> anyhow::Result<()> {
    let (c, conn) = tokio_postgres::connect(&url, NoTls).await?;
    tokio::spawn(conn);
    while !stop.load(Ordering::Relaxed) {
        c.batch_execute("SELECT count(*) FROM generate_series(1, 3000000)")
            .await?;
    }
    Ok(())
}

/// A report holding the table in 2.5 s transactions, half a second apart.
async fn hold(url: String, stop: Arc<AtomicBool>) -> anyhow::Result<()> {
    let (c, conn) = tokio_postgres::connect(&url, NoTls).await?;
    tokio::spawn(conn);
    while !stop.load(Ordering::Relaxed) {
        c.batch_execute(
            "BEGIN; SELECT count(*) FROM bench_cu WHERE id < 1000; SELECT pg_sleep(2.5); COMMIT",
        )
        .await?;
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    Ok(())
}

/// The change log's waiting entries, every half second (the statistics' count), the
/// largest kept.
async fn sample(url: String, stop: Arc<AtomicBool>, largest: Arc<AtomicI64>) -> anyhow::Result<()> {
    let (c, conn) = tokio_postgres::connect(&url, NoTls).await?;
    tokio::spawn(conn);
    while !stop.load(Ordering::Relaxed) {
        let n: Option<i64> = c
            .query_opt(
                "SELECT n_live_tup FROM pg_stat_user_tables
                 WHERE relid = to_regclass('hyperswap.changes_' || 'bench_cu'::regclass::oid)",
                &[],
            )
            .await
            .ok()
            .flatten()
            .map(|r| r.get(0));
        if let Some(n) = n {
            largest.fetch_max(n, Ordering::SeqCst);
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    Ok(())
}
