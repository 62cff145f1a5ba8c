//! hyperswap's benchmarks: each measures the tool against a baseline in the same run,
//! alternating them round by round, and reports the ratio of the medians (the machines
//! are shared and noisy, so only ratios mean anything).
//!
//!   cargo run --release --example bench -- parity --rows 5000000 --rounds 5
//!
//! Run it through `scripts/bench.sh`, which starts the cluster and builds the binary.

#[path = "bench/catch_up.rs"]
mod catch_up;

use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use clap::{Parser, Subcommand};
use hyperswap::ident::QualifiedName;
use hyperswap_workload::create_sample_table;
use tokio_postgres::{Client, NoTls};

#[derive(Parser)]
struct Cli {
    #[arg(long, env = "DATABASE_URL", hide_env_values = true)]
    database_url: String,
    /// The hyperswap binary to measure.
    #[arg(long, default_value = "target/release/hyperswap")]
    hyperswap: PathBuf,
    #[command(subcommand)]
    bench: Bench,
}

#[derive(Subcommand)]
enum Bench {
    /// `hyperswap parity` against `SELECT count(*), sum(hashtextextended(t::text, 0))`
    /// over each table, one after the other.
    Parity {
        #[arg(long, default_value_t = 5_000_000)]
        rows: u64,
        #[arg(long, default_value_t = 5)]
        rounds: usize,
        /// Measure a copy of the table that was never analysed (no planner statistics,
        /// autovacuum off) and its own hypertable instead.
        #[arg(long)]
        never_analysed: bool,
    },
    /// `hyperswap plan apply --until backfill` against a pgslice-style loop (`INSERT INTO
    /// dest SELECT * FROM src WHERE id > $1 AND id <= $1 + 10000`, one session, no
    /// protection against concurrent writes) into an identical empty hypertable; with
    /// `--compare`, also another hyperswap binary (an earlier version) in the same rounds.
    Backfill {
        #[arg(long, default_value_t = 5_000_000)]
        rows: u64,
        #[arg(long, default_value_t = 3)]
        rounds: usize,
        /// Another hyperswap binary to measure in the same rounds.
        #[arg(long)]
        compare: Option<PathBuf>,
    },
    /// INSERT throughput (single-row from 4 clients, 1,000-row from 2 clients) on a
    /// table under migration against an identical twin without triggers, and against a
    /// bare statement trigger that only runs `INSERT INTO hyper SELECT * FROM new_rows`
    /// (the limit to approach): during the backfill (the copy carrying its unique keys
    /// only), after it (all indexes), and after cutover (the reverse trigger).
    Writes {
        #[arg(long, default_value_t = 200_000)]
        rows: u64,
        #[arg(long, default_value_t = 3)]
        rounds: usize,
        /// Seconds each measurement runs.
        #[arg(long, default_value_t = 5)]
        seconds: u64,
    },
    /// The longest stall of a writer (single-row INSERTs, one client, each timed) while
    /// `plan apply` cuts over and while `rollback` goes back, against its longest write
    /// in the 3 s before, in the same round.
    Cutover {
        #[arg(long, default_value_t = 1_000_000)]
        rows: u64,
        #[arg(long, default_value_t = 3)]
        rounds: usize,
    },
    /// The catch-up under writers at full speed (three mixes, the cores busy, with and
    /// without a reader holding the table), replaying while batches run against only at
    /// the end of the backfill, in the same round (see examples/bench/catch_up.rs).
    CatchUp {
        #[arg(long, default_value_t = 5_000_000)]
        rows: u64,
        #[arg(long, default_value_t = 3)]
        rounds: usize,
        /// Only this mix (1: single-row, 2: 100-row batches, 3: deletes and key and time
        /// updates).
        #[arg(long, value_parser = clap::value_parser!(u8).range(1..=3))]
        mix: Option<u8>,
        /// The plan's `catch_up.sessions` (default: the plan's default).
        #[arg(long)]
        sessions: Option<usize>,
        /// Only the runs with the catch-up during the backfill (no end-only run).
        #[arg(long)]
        no_end_only: bool,
    },
}

const TABLE: &str = "bench_metrics";
const RAW_TABLE: &str = "bench_raw";
const RAW_PLAN: &str = "name: bench-parity-raw\ntables:\n  - source: public.bench_raw\n    time_column: ts\n    chunk_time_interval: 1 day\n";
const PLAN: &str = "name: bench-parity\ntables:\n  - source: public.bench_metrics\n    time_column: ts\n    chunk_time_interval: 1 day\nbackfill:\n  batch_rows: 20000\n";

#[tokio::main]
async fn main() -> std::process::ExitCode {
    match run().await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            match e
                .downcast_ref::<tokio_postgres::Error>()
                .and_then(|e| e.as_db_error())
            {
                Some(db) => eprintln!("bench: {e}: {} ({})", db.message(), db.code().code()),
                None => eprintln!("bench: {e:#}"),
            }
            std::process::ExitCode::FAILURE
        }
    }
}

async fn run() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let (client, conn) = tokio_postgres::connect(&cli.database_url, NoTls).await?;
    tokio::spawn(conn);
    match cli.bench {
        Bench::Parity {
            rows,
            rounds,
            never_analysed,
        } => parity(&cli, &client, rows, rounds, never_analysed).await,
        Bench::Backfill {
            rows,
            rounds,
            ref compare,
        } => backfill(&cli, &client, rows, rounds, compare.clone()).await,
        Bench::Writes {
            rows,
            rounds,
            seconds,
        } => writes(&cli, &client, rows, rounds, seconds).await,
        Bench::Cutover { rows, rounds } => cutover(&cli, &client, rows, rounds).await,
        Bench::CatchUp {
            rows,
            rounds,
            mix,
            sessions,
            no_end_only,
        } => catch_up::catch_up(&cli, &client, rows, rounds, mix, sessions, no_end_only).await,
    }
}

async fn parity(
    cli: &Cli,
    client: &Client,
    rows: u64,
    rounds: usize,
    never_analysed: bool,
) -> anyhow::Result<()> {
    let plan = std::env::temp_dir().join("hyperswap-bench-parity.yaml");
    std::fs::write(&plan, PLAN)?;
    prepare_pair(cli, client, rows, &plan).await?;
    let (table, plan, what) = if never_analysed {
        let raw = std::env::temp_dir().join("hyperswap-bench-parity-raw.yaml");
        std::fs::write(&raw, RAW_PLAN)?;
        prepare_raw_pair(cli, client, &raw).await?;
        (RAW_TABLE, raw, "never analysed")
    } else {
        (TABLE, plan, "analysed")
    };
    // Two baselines: the bare text hash, and a bare scan of the row hash parity
    // itself uses (the cost of ranges and short transactions, on the same per-row work).
    let text_hash = "hashtextextended(t::text, 0)".to_string();
    let same_hash = tool_row_hash(client, table).await?;
    let mut text_base = Vec::new();
    let mut same_base = Vec::new();
    let mut tool = Vec::new();
    let mut longest_tx: f64 = 0.0;
    for round in 0..rounds {
        // Rotate which goes first, so a drift in the machine's speed hits all three.
        for i in 0..3 {
            match (round + i) % 3 {
                0 => text_base.push(baseline_once(client, table, &text_hash).await?),
                1 => same_base.push(baseline_once(client, table, &same_hash).await?),
                _ => {
                    let (took, longest) = parity_once(cli, &plan)?;
                    tool.push(took);
                    longest_tx = longest_tx.max(longest);
                }
            }
        }
        eprintln!(
            "round {}: bare text hash {:.2}s, bare row hash {:.2}s, hyperswap parity {:.2}s",
            round + 1,
            secs(text_base[round]),
            secs(same_base[round]),
            secs(tool[round])
        );
    }
    for (baseline, label) in [
        (
            &mut text_base,
            "bare `count(*), sum(hashtextextended(t::text, 0))`".to_string(),
        ),
        (
            &mut same_base,
            "bare `count(*), sum(<parity's row hash>)`".to_string(),
        ),
    ] {
        // Each round measures both back to back: the ratio within a round is the least noisy.
        let mut ratios: Vec<f64> = baseline
            .iter()
            .zip(&tool)
            .map(|(b, t)| secs(*t) / secs(*b))
            .collect();
        ratios.sort_by(|a, b| a.total_cmp(b));
        let paired = ratios[ratios.len() / 2];
        let (b, t) = (median(baseline), median(&mut tool.clone()));
        let rounds_text = ratios
            .iter()
            .map(|r| format!("{r:.2}"))
            .collect::<Vec<_>>()
            .join(", ");
        println!("| parity, {rows} rows ({what}), {rounds} rounds | {label} over each table in turn | {:.2} s | {:.2} s | **{paired:.2}x** (rounds {rounds_text}) | longest transaction {longest_tx:.0} ms |", secs(b), secs(t));
    }
    Ok(())
}

/// Whether `table` holds about `rows` rows (as the planner counts them) and every one of
/// `also` exists: a table seeded by an earlier run, to reuse.
async fn seeded(client: &Client, table: &str, rows: u64, also: &[&str]) -> anyhow::Result<bool> {
    let also: Vec<String> = also.iter().map(|s| s.to_string()).collect();
    Ok(client
        .query_opt(
            "SELECT 1 FROM pg_class WHERE relname = $1::text AND reltuples BETWEEN $2::float8 * 0.95 AND $2::float8 * 1.05
               AND (SELECT bool_and(to_regclass(r) IS NOT NULL) FROM unnest($3::text[]) AS r)",
            &[&table, &(rows as f64), &also],
        )
        .await?
        .is_some())
}

/// A migrated 5M-row pair, made once and reused while it has the right size.
async fn prepare_pair(
    cli: &Cli,
    client: &Client,
    rows: u64,
    plan: &std::path::Path,
) -> anyhow::Result<()> {
    let ready = seeded(
        client,
        TABLE,
        rows,
        &["public.bench_metrics_hs_new", "hyperswap.plans"],
    )
    .await?
        && client
            .query_opt(
                "SELECT 1 FROM hyperswap.plans WHERE name = 'bench-parity' AND phase = 'verified'",
                &[],
            )
            .await?
            .is_some();
    if ready {
        eprintln!("reusing the migrated {rows}-row pair public.{TABLE} / public.{TABLE}_hs_new");
        return Ok(());
    }
    eprintln!("preparing a migrated {rows}-row pair (once; later runs reuse it)");
    client
        .batch_execute(&format!(
            "DROP SCHEMA IF EXISTS hyperswap CASCADE; DROP TABLE IF EXISTS {TABLE}, {TABLE}_hs_new, {TABLE}_hs_old;"
        ))
        .await?;
    let started = Instant::now();
    create_sample_table(client, &QualifiedName::new("public", TABLE), rows).await?;
    eprintln!("seeded in {:.1}s", started.elapsed().as_secs_f64());
    let started = Instant::now();
    let out = Command::new(&cli.hyperswap)
        .args([
            "plan",
            "apply",
            plan.to_str().unwrap(),
            "--until",
            "parity",
            "-q",
        ])
        .env("DATABASE_URL", &cli.database_url)
        .status()?;
    anyhow::ensure!(out.success(), "hyperswap plan apply failed");
    client
        .batch_execute(&format!("VACUUM ANALYZE {TABLE}"))
        .await?;
    client
        .batch_execute(&format!("VACUUM ANALYZE {TABLE}_hs_new"))
        .await?;
    eprintln!("migrated in {:.1}s", started.elapsed().as_secs_f64());
    Ok(())
}

/// A copy of the analysed table that no ANALYZE has seen (autovacuum off from its
/// creation), moved by its own plan up to parity.
async fn prepare_raw_pair(
    cli: &Cli,
    client: &Client,
    plan: &std::path::Path,
) -> anyhow::Result<()> {
    let never: bool = client
        .query_one(
            "SELECT to_regclass($1::text) IS NOT NULL
                AND NOT EXISTS (SELECT FROM pg_statistic WHERE starelid = to_regclass($1::text))
                AND EXISTS (SELECT FROM hyperswap.plans WHERE name = 'bench-parity-raw' AND phase = 'verified')",
            &[&format!("public.{RAW_TABLE}")],
        )
        .await?
        .get(0);
    if never {
        eprintln!("reusing the never-analysed pair public.{RAW_TABLE} / public.{RAW_TABLE}_hs_new");
        return Ok(());
    }
    eprintln!("preparing a never-analysed copy public.{RAW_TABLE} and its hypertable");
    let _ = run_tool(
        &cli.hyperswap,
        &cli.database_url,
        &["abort", plan.to_str().unwrap(), "-q"],
    );
    client
        .batch_execute(&format!(
            "DROP TABLE IF EXISTS {RAW_TABLE}, {RAW_TABLE}_hs_new;
             CREATE TABLE {RAW_TABLE} (LIKE {TABLE} INCLUDING ALL) WITH (autovacuum_enabled = false);
             INSERT INTO {RAW_TABLE} SELECT * FROM {TABLE};"
        ))
        .await?;
    apply_plan(&cli.hyperswap, &cli.database_url, plan, Some("parity"))?;
    let analysed: bool = client
        .query_one(
            "SELECT EXISTS (SELECT FROM pg_statistic WHERE starelid = to_regclass($1::text))",
            &[&format!("public.{RAW_TABLE}")],
        )
        .await?
        .get(0);
    anyhow::ensure!(!analysed, "public.{RAW_TABLE} was analysed after all");
    Ok(())
}

async fn baseline_once(client: &Client, table: &str, row_hash: &str) -> anyhow::Result<Duration> {
    let started = Instant::now();
    for table in [table.to_string(), format!("{table}_hs_new")] {
        client
            .query_one(
                &format!("SELECT count(*), sum({row_hash}) FROM {table} t"),
                &[],
            )
            .await?;
    }
    Ok(started.elapsed())
}

/// The row hash parity uses, for a bare scan of the same per-row work.
async fn tool_row_hash(client: &Client, table: &str) -> anyhow::Result<String> {
    let t = hyperswap::catalog::load(client, &QualifiedName::new("public", table))
        .await?
        .ok_or_else(|| anyhow::anyhow!("no table {table}"))?;
    Ok(hyperswap::parity::sql::row_hash(
        &t.columns,
        hyperswap::parity::sql::RowText::WholeRow,
    ))
}

fn parity_once(cli: &Cli, plan: &std::path::Path) -> anyhow::Result<(Duration, f64)> {
    let started = Instant::now();
    let out = Command::new(&cli.hyperswap)
        .args(["parity", plan.to_str().unwrap(), "--json", "-q"])
        .env("DATABASE_URL", &cli.database_url)
        .output()?;
    let took = started.elapsed();
    anyhow::ensure!(
        out.status.success(),
        "hyperswap parity failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout)?;
    Ok((took, doc["longest_transaction_ms"].as_f64().unwrap_or(0.0)))
}

fn median(v: &mut [Duration]) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn secs(d: Duration) -> f64 {
    d.as_secs_f64()
}

const FILL_TABLE: &str = "bench_fill";
const FILL_PLAN: &str = "name: bench-backfill\ntables:\n  - source: public.bench_fill\n    time_column: ts\n    chunk_time_interval: 1 day\n";

/// One measured run: how long, and how many bytes of WAL the server wrote meanwhile.
struct Measured {
    took: Duration,
    wal: f64,
    /// The tool's own account of its batch transactions (p50, p99, max), if it gave one.
    batches: Option<String>,
}

async fn backfill(
    cli: &Cli,
    client: &Client,
    rows: u64,
    rounds: usize,
    compare: Option<PathBuf>,
) -> anyhow::Result<()> {
    let plan = std::env::temp_dir().join("hyperswap-bench-backfill.yaml");
    std::fs::write(&plan, FILL_PLAN)?;
    prepare_fill_source(cli, client, rows, &plan).await?;
    let mut tools: Vec<(String, PathBuf)> = vec![("hyperswap".into(), cli.hyperswap.clone())];
    if let Some(other) = compare {
        tools.push((format!("compare ({})", other.display()), other));
    }
    let mut loops: Vec<Measured> = Vec::new();
    let mut singles: Vec<Measured> = Vec::new();
    let mut runs: Vec<Vec<Measured>> = tools.iter().map(|_| Vec::new()).collect();
    for round in 0..rounds {
        // 0: the loop, 1: one INSERT ... SELECT, 2..: the tools.
        let mut order: Vec<usize> = (0..tools.len() + 2).collect();
        let n = order.len();
        order.rotate_left(round % n);
        for which in order {
            if which == 0 {
                loops.push(fill_loop(client, false).await?);
            } else if which == 1 {
                singles.push(fill_loop(client, true).await?);
            } else {
                let which = which - 1;
                let (_, bin) = &tools[which - 1];
                runs[which - 1].push(apply_backfill(client, bin, &cli.database_url, &plan).await?);
            }
        }
        let mut line = format!(
            "round {}: loop {:.2}s ({:.0} MB WAL), one INSERT ... SELECT {:.2}s",
            round + 1,
            secs(loops[round].took),
            loops[round].wal / 1e6,
            secs(singles[round].took)
        );
        for ((name, _), r) in tools.iter().zip(&runs) {
            line.push_str(&format!(
                ", {name} {:.2}s ({:.0} MB WAL{})",
                secs(r[round].took),
                r[round].wal / 1e6,
                r[round]
                    .batches
                    .as_deref()
                    .map(|b| format!("; {b}"))
                    .unwrap_or_default()
            ));
        }
        eprintln!("{line}");
    }
    if let [now, other] = runs.as_slice() {
        // The other build's time / this one's, per round: above 1 this build is faster.
        let mut speed: Vec<f64> = other
            .iter()
            .zip(now)
            .map(|(o, n)| secs(o.took) / secs(n.took))
            .collect();
        println!(
            "| backfill, {rows} rows, {rounds} rounds: hyperswap | {} | {:.2}x as fast (rounds {}) |",
            tools[1].0,
            median_f(&mut speed.clone()),
            speed.iter_mut().map(|x| format!("{x:.2}")).collect::<Vec<_>>().join(" ")
        );
    }
    for ((name, _), r) in tools.iter().zip(&runs) {
        // Speed as loop time / tool time per round: above 1 the tool is faster.
        let mut speed: Vec<f64> = loops
            .iter()
            .zip(r)
            .map(|(l, t)| secs(l.took) / secs(t.took))
            .collect();
        let mut wal: Vec<f64> = loops.iter().zip(r).map(|(l, t)| t.wal / l.wal).collect();
        let mut took: Vec<Duration> = r.iter().map(|m| m.took).collect();
        let mut loop_took: Vec<Duration> = loops.iter().map(|m| m.took).collect();
        println!(
            "| backfill, {rows} rows, {rounds} rounds: {name} | pgslice-style loop, 10,000-id batches | {:.2} s | {:.2} s | {:.2}x as fast (rounds {}) | WAL {:.2}x the loop's |",
            secs(median(&mut loop_took)),
            secs(median(&mut took)),
            median_f(&mut speed),
            speed.iter().map(|x| format!("{x:.2}")).collect::<Vec<_>>().join(" "),
            median_f(&mut wal)
        );
        let mut vs_single: Vec<f64> = singles
            .iter()
            .zip(r)
            .map(|(l, t)| secs(l.took) / secs(t.took))
            .collect();
        let mut single_took: Vec<Duration> = singles.iter().map(|m| m.took).collect();
        println!(
            "| backfill, {rows} rows, {rounds} rounds: {name} | one `INSERT ... SELECT` of the whole table | {:.2} s | {:.2} s | {:.2}x as fast (rounds {}) | |",
            secs(median(&mut single_took)),
            secs(median(&mut r.iter().map(|m| m.took).collect::<Vec<_>>())),
            median_f(&mut vs_single),
            vs_single.iter().map(|x| format!("{x:.2}")).collect::<Vec<_>>().join(" ")
        );
    }
    Ok(())
}

/// The source table, seeded once and reused; the loop's empty hypertable is made like
/// hyperswap's target (same columns, keys and indexes).
async fn prepare_fill_source(
    cli: &Cli,
    client: &Client,
    rows: u64,
    plan: &std::path::Path,
) -> anyhow::Result<()> {
    let ready = seeded(client, FILL_TABLE, rows, &["public.bench_fill_template"]).await?;
    if ready {
        eprintln!("reusing the {rows}-row table public.{FILL_TABLE}");
        return Ok(());
    }
    eprintln!("seeding a {rows}-row table (once; later runs reuse it)");
    let _ = run_tool(
        &cli.hyperswap,
        &cli.database_url,
        &["abort", plan.to_str().unwrap()],
    );
    client
        .batch_execute(&format!(
            "DROP TABLE IF EXISTS {FILL_TABLE}, {FILL_TABLE}_hs_new, bench_fill_template, bench_fill_loop"
        ))
        .await?;
    create_sample_table(client, &QualifiedName::new("public", FILL_TABLE), rows).await?;
    client
        .batch_execute(&format!("VACUUM ANALYZE {FILL_TABLE}"))
        .await?;
    apply_plan(&cli.hyperswap, &cli.database_url, plan, Some("target"))?;
    client
        .batch_execute(&format!(
            "CREATE TABLE bench_fill_template (LIKE {FILL_TABLE}_hs_new INCLUDING ALL)"
        ))
        .await?;
    run_tool(
        &cli.hyperswap,
        &cli.database_url,
        &["abort", plan.to_str().unwrap(), "-q"],
    )?;
    Ok(())
}

/// `plan apply PLAN [--until STEP] -q` with the hyperswap binary `bin`, which must succeed.
fn apply_plan(
    bin: &std::path::Path,
    url: &str,
    plan: &std::path::Path,
    until: Option<&str>,
) -> anyhow::Result<()> {
    let plan = plan.to_str().unwrap();
    match until {
        Some(step) => run_tool(bin, url, &["plan", "apply", plan, "--until", step, "-q"]),
        None => run_tool(bin, url, &["plan", "apply", plan, "-q"]),
    }
}

fn run_tool(bin: &std::path::Path, url: &str, args: &[&str]) -> anyhow::Result<()> {
    let out = Command::new(bin)
        .args(args)
        .env("DATABASE_URL", url)
        .output()?;
    anyhow::ensure!(
        out.status.success(),
        "{} {args:?} failed: {}",
        bin.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(())
}

async fn wal_lsn(client: &Client) -> anyhow::Result<f64> {
    Ok(client
        .query_one(
            "SELECT pg_wal_lsn_diff(pg_current_wal_insert_lsn(), '0/0')::float8",
            &[],
        )
        .await?
        .get(0))
}

/// pgslice's `fill`: id batches of 10,000, each its own statement, into a fresh
/// hypertable; with `single`, one `INSERT ... SELECT` of the whole table instead.
async fn fill_loop(client: &Client, single: bool) -> anyhow::Result<Measured> {
    client
        .batch_execute(
            "DROP TABLE IF EXISTS bench_fill_loop;
             CREATE TABLE bench_fill_loop (LIKE bench_fill_template INCLUDING ALL);
             SELECT create_hypertable('bench_fill_loop', by_range('ts', INTERVAL '1 day'), create_default_indexes => false);
             CHECKPOINT;",
        )
        .await?;
    let (lo, hi): (i64, i64) = {
        let r = client
            .query_one(&format!("SELECT min(id), max(id) FROM {FILL_TABLE}"), &[])
            .await?;
        (r.get(0), r.get(1))
    };
    let insert = client
        .prepare(&format!(
            "INSERT INTO bench_fill_loop SELECT * FROM {FILL_TABLE} WHERE id > $1 AND id <= $1 + 10000"
        ))
        .await?;
    let wal = wal_lsn(client).await?;
    let started = Instant::now();
    if single {
        client
            .batch_execute(&format!(
                "INSERT INTO bench_fill_loop SELECT * FROM {FILL_TABLE}"
            ))
            .await?;
    } else {
        let mut at = lo - 1;
        while at < hi {
            client.execute(&insert, &[&at]).await?;
            at += 10_000;
        }
    }
    let took = started.elapsed();
    let wal = wal_lsn(client).await? - wal;
    client.batch_execute("DROP TABLE bench_fill_loop").await?;
    Ok(Measured {
        took,
        wal,
        batches: None,
    })
}

/// `plan apply --until trigger` (not timed: the loop's hypertable is made untimed too),
/// then `plan apply --until backfill` (timed), then `abort` (not timed).
async fn apply_backfill(
    client: &Client,
    bin: &std::path::Path,
    url: &str,
    plan: &std::path::Path,
) -> anyhow::Result<Measured> {
    apply_plan(bin, url, plan, Some("trigger"))?;
    client.batch_execute("CHECKPOINT").await?;
    let wal = wal_lsn(client).await?;
    let started = Instant::now();
    apply_plan(bin, url, plan, Some("backfill"))?;
    let took = started.elapsed();
    let wal = wal_lsn(client).await? - wal;
    // This build records its batch transactions' durations in the journal's events.
    let batches = client
        .query_opt(
            "SELECT substring(message from 'batch transactions (.*)') FROM hyperswap.events
             WHERE message LIKE 'backfill: %batch transactions%' ORDER BY id DESC LIMIT 1",
            &[],
        )
        .await
        .ok()
        .flatten()
        .map(|r| r.get::<_, String>(0));
    run_tool(bin, url, &["abort", plan.to_str().unwrap(), "-q"])?;
    Ok(Measured { took, wal, batches })
}

fn median_f(v: &mut [f64]) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

const WRITES_PLAN: &str = "name: bench-writes\ntables:\n  - source: public.bench_w\n    time_column: ts\n    chunk_time_interval: 1 day\n";

/// The three tables written to: under migration, its twin, the bare trigger's.
const WRITE_TABLES: [(&str, &str); 3] = [
    ("twin (no trigger)", "bench_w_twin"),
    ("under migration", "bench_w"),
    ("bare statement trigger", "bench_w_bare"),
];

async fn writes(
    cli: &Cli,
    client: &Client,
    rows: u64,
    rounds: usize,
    seconds: u64,
) -> anyhow::Result<()> {
    let plan = std::env::temp_dir().join("hyperswap-bench-writes.yaml");
    std::fs::write(&plan, WRITES_PLAN)?;
    let _ = run_tool(
        &cli.hyperswap,
        &cli.database_url,
        &["abort", plan.to_str().unwrap(), "-q"],
    );
    // One at a time (TimescaleDB drops a hypertable only on its own), the twins first:
    // their ids default to the table's sequence.
    for t in [
        "bench_w_twin",
        "bench_w_bare",
        "bench_w_bare_hyper",
        "bench_w_hs_new",
        "bench_w",
    ] {
        client
            .batch_execute(&format!("DROP TABLE IF EXISTS {t}"))
            .await?;
    }
    create_sample_table(client, &QualifiedName::new("public", "bench_w"), rows).await?;
    // Two stages of the migration window. During the backfill (its longest part) the
    // copy carries its unique keys only: its plain indexes are built after the copy
    // (`target::deferred`). After the backfill, until cutover, it carries them all.
    apply_plan(&cli.hyperswap, &cli.database_url, &plan, Some("trigger"))?;
    client
        .batch_execute(
            "CREATE TABLE bench_w_twin (LIKE bench_w INCLUDING ALL);
             INSERT INTO bench_w_twin SELECT * FROM bench_w;
             CREATE TABLE bench_w_bare (LIKE bench_w INCLUDING ALL);
             INSERT INTO bench_w_bare SELECT * FROM bench_w;
             CREATE TABLE bench_w_bare_hyper (LIKE bench_w_hs_new INCLUDING ALL);
             SELECT create_hypertable('bench_w_bare_hyper', by_range('ts', INTERVAL '1 day'), create_default_indexes => false);
             CREATE OR REPLACE FUNCTION bench_w_bare_copy() RETURNS trigger LANGUAGE plpgsql AS
                 $$BEGIN INSERT INTO bench_w_bare_hyper SELECT * FROM new_rows; RETURN NULL; END$$;
             CREATE TRIGGER bench_w_bare_copy AFTER INSERT ON bench_w_bare
                 REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION bench_w_bare_copy();",
        )
        .await?;
    for t in ["bench_w", "bench_w_twin", "bench_w_bare"] {
        client.batch_execute(&format!("VACUUM ANALYZE {t}")).await?;
    }
    measure_writes(
        cli,
        rounds,
        seconds,
        "during the backfill (the copy with its unique keys only)",
        "twin table without triggers",
        &WRITE_TABLES,
    )
    .await?;
    apply_plan(&cli.hyperswap, &cli.database_url, &plan, Some("backfill"))?;
    // The bare trigger's hypertable catches up the same way: the rows, then the indexes.
    client
        .batch_execute(
            "INSERT INTO bench_w_bare_hyper SELECT * FROM bench_w_bare ON CONFLICT DO NOTHING;
             CREATE INDEX ON bench_w_bare_hyper (device_id, ts);
             CREATE INDEX ON bench_w_bare_hyper (ts);",
        )
        .await?;
    for t in [
        "bench_w",
        "bench_w_twin",
        "bench_w_bare",
        "bench_w_hs_new",
        "bench_w_bare_hyper",
    ] {
        client.batch_execute(&format!("VACUUM ANALYZE {t}")).await?;
    }
    measure_writes(
        cli,
        rounds,
        seconds,
        "after the backfill (the copy with all its indexes)",
        "twin table without triggers",
        &WRITE_TABLES,
    )
    .await?;
    // What the writes above left in the change log, replayed by `hyperswap parity`: its
    // time less that of a second run, which finds the log (nearly) empty.
    let oid: u32 = client
        .query_one("SELECT 'public.bench_w'::regclass::oid", &[])
        .await?
        .get(0);
    let waiting: i64 = client
        .query_one(
            &format!("SELECT count(*) FROM hyperswap.changes_{oid}"),
            &[],
        )
        .await?
        .get(0);
    let plan_arg = plan.to_str().unwrap();
    let started = Instant::now();
    run_tool(
        &cli.hyperswap,
        &cli.database_url,
        &["parity", plan_arg, "-q"],
    )?;
    let with_log = started.elapsed();
    let started = Instant::now();
    run_tool(
        &cli.hyperswap,
        &cli.database_url,
        &["parity", plan_arg, "-q"],
    )?;
    let without = started.elapsed();
    let replay = with_log
        .saturating_sub(without)
        .max(Duration::from_millis(1));
    println!(
        "| replay of the change log the writes above left: {waiting} entries | `hyperswap parity` with the log ({:.1} s) less a second run ({:.1} s) | | {:.0} entries/s | |",
        secs(with_log),
        secs(without),
        waiting as f64 / replay.as_secs_f64()
    );
    // After cutover: the hypertable under the application's name, its reverse triggers
    // keeping the retired table in step, against a hypertable twin without triggers.
    apply_plan(&cli.hyperswap, &cli.database_url, &plan, None)?;
    client
        .batch_execute("VACUUM ANALYZE bench_w_bare_hyper")
        .await?;
    measure_writes(
        cli,
        rounds,
        seconds,
        "after cutover",
        "hypertable twin without triggers",
        &[
            ("hypertable twin (no trigger)", "bench_w_bare_hyper"),
            ("reverse trigger", "bench_w"),
        ],
    )
    .await?;
    run_tool(
        &cli.hyperswap,
        &cli.database_url,
        &["rollback", plan.to_str().unwrap(), "-q"],
    )?;
    run_tool(
        &cli.hyperswap,
        &cli.database_url,
        &["abort", plan.to_str().unwrap(), "-q"],
    )?;
    Ok(())
}

/// Single-row and 1,000-row INSERT rates of each of `tables` but the first against the
/// first (the baseline, `baseline` in the output), rounds alternated, printed as rows of
/// the README's table.
async fn measure_writes(
    cli: &Cli,
    rounds: usize,
    seconds: u64,
    stage: &str,
    baseline: &str,
    tables: &[(&str, &str)],
) -> anyhow::Result<()> {
    for (label, batch, clients) in [
        ("single-row INSERT", 1u32, 4usize),
        ("1,000-row INSERT", 1000, 2),
    ] {
        // statements per second, per table, per round
        let mut rates: Vec<Vec<f64>> = vec![Vec::new(); tables.len()];
        for round in 0..rounds {
            let mut order: Vec<usize> = (0..tables.len()).collect();
            let n = order.len();
            order.rotate_left(round % n);
            for i in order {
                let r =
                    insert_rate(&cli.database_url, tables[i].1, batch, clients, seconds).await?;
                rates[i].push(r);
            }
            eprintln!(
                "{label} {stage}, round {}: {}",
                round + 1,
                tables
                    .iter()
                    .zip(&rates)
                    .map(|((name, _), r)| format!("{name} {:.0}/s", r[round]))
                    .collect::<Vec<_>>()
                    .join(", ")
            );
        }
        for i in 1..tables.len() {
            let mut ratios: Vec<f64> = rates[i].iter().zip(&rates[0]).map(|(t, b)| t / b).collect();
            println!(
                "| {label}, {clients} clients, {rounds} rounds of {seconds} s, {stage}: {} | {baseline} | {:.0} statements/s | {:.0} statements/s | {:.2}x (rounds {}) |",
                tables[i].0,
                median_f(&mut rates[0].clone()),
                median_f(&mut rates[i].clone()),
                median_f(&mut ratios),
                ratios.iter().map(|x| format!("{x:.2}")).collect::<Vec<_>>().join(" ")
            );
        }
    }
    Ok(())
}

/// Statements per second that `clients` connections achieve inserting `batch` rows each.
async fn insert_rate(
    url: &str,
    table: &str,
    batch: u32,
    clients: usize,
    seconds: u64,
) -> anyhow::Result<f64> {
    let sql = format!(
        "INSERT INTO {table} (ts, device_id, value, status)
         SELECT now() - random() * interval '1 day', g % 1000, random(), 'ok' FROM generate_series(1, {batch}) g"
    );
    let until = Instant::now() + Duration::from_secs(seconds);
    let mut tasks = Vec::new();
    for _ in 0..clients {
        let (url, sql) = (url.to_string(), sql.clone());
        tasks.push(tokio::spawn(async move {
            let (c, conn) = tokio_postgres::connect(&url, NoTls).await?;
            tokio::spawn(conn);
            let stmt = c.prepare(&sql).await?;
            let mut n = 0u64;
            while Instant::now() < until {
                c.execute(&stmt, &[]).await?;
                n += 1;
            }
            Ok::<u64, tokio_postgres::Error>(n)
        }));
    }
    let mut total = 0;
    for t in tasks {
        total += t.await??;
    }
    Ok(total as f64 / seconds as f64)
}

const CUT_PLAN: &str = "name: bench-cutover\ntables:\n  - source: public.bench_cut\n    time_column: ts\n    chunk_time_interval: 1 day\n";

/// The longest stall of a writer (single-row INSERTs from one client, each timed)
/// while `plan apply` cuts over and while `rollback` goes back, against its longest
/// write in the 3 s just before, in the same round.
async fn cutover(cli: &Cli, client: &Client, rows: u64, rounds: usize) -> anyhow::Result<()> {
    let plan = std::env::temp_dir().join("hyperswap-bench-cutover.yaml");
    std::fs::write(&plan, CUT_PLAN)?;
    let plan_arg = plan.to_str().unwrap().to_string();
    let _ = run_tool(
        &cli.hyperswap,
        &cli.database_url,
        &["abort", &plan_arg, "-q"],
    );
    for t in ["bench_cut_hs_new", "bench_cut"] {
        client
            .batch_execute(&format!("DROP TABLE IF EXISTS {t}"))
            .await?;
    }
    create_sample_table(client, &QualifiedName::new("public", "bench_cut"), rows).await?;
    apply_plan(&cli.hyperswap, &cli.database_url, &plan, Some("parity"))?;
    for round in 1..=rounds {
        for (what, args) in [
            (
                "cutover (`plan apply`: parity, replay, the locked swap)",
                vec!["plan", "apply"],
            ),
            ("rollback", vec!["rollback"]),
        ] {
            let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
            let writer = tokio::spawn(timed_writes(cli.database_url.clone(), stop.clone()));
            tokio::time::sleep(Duration::from_secs(3)).await;
            let started = Instant::now();
            let (bin, url) = (cli.hyperswap.clone(), cli.database_url.clone());
            let mut full: Vec<String> = args.iter().map(|s| s.to_string()).collect();
            full.push(plan_arg.clone());
            full.push("-q".into());
            tokio::task::spawn_blocking(move || {
                let refs: Vec<&str> = full.iter().map(String::as_str).collect();
                run_tool(&bin, &url, &refs)
            })
            .await??;
            let took = started.elapsed();
            tokio::time::sleep(Duration::from_millis(500)).await;
            stop.store(true, std::sync::atomic::Ordering::Relaxed);
            let (writes, errors) = writer.await??;
            let before = writes
                .iter()
                .filter(|(at, _)| *at < started)
                .map(|(_, d)| *d)
                .max()
                .unwrap_or_default();
            let during = writes
                .iter()
                .filter(|(at, d)| *at + *d >= started && *at <= started + took)
                .map(|(_, d)| *d)
                .max()
                .unwrap_or_default();
            println!(
                "| round {round}, {what} of a {rows}-row table, one writer of single-row INSERTs | its longest write in the 3 s before | {:.0} ms | {:.0} ms | the command took {:.1} s; {} writes, {errors} failed |",
                before.as_secs_f64() * 1000.0,
                during.as_secs_f64() * 1000.0,
                took.as_secs_f64(),
                writes.len()
            );
        }
    }
    run_tool(
        &cli.hyperswap,
        &cli.database_url,
        &["abort", &plan_arg, "-q"],
    )?;
    Ok(())
}

/// Single-row INSERTs into `bench_cut` until `stop`, each with its start and duration
/// (simple queries: the name is resolved again by every statement), and the failures.
async fn timed_writes(
    url: String,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
) -> anyhow::Result<(Vec<(Instant, Duration)>, usize)> {
    let (c, conn) = tokio_postgres::connect(&url, NoTls).await?;
    tokio::spawn(conn);
    let mut out = Vec::new();
    let mut errors = 0;
    while !stop.load(std::sync::atomic::Ordering::Relaxed) {
        let at = Instant::now();
        match c
            .batch_execute(
                "INSERT INTO bench_cut (ts, device_id, value, status) VALUES (now(), 1, 1, 'ok')",
            )
            .await
        {
            Ok(()) => out.push((at, at.elapsed())),
            Err(_) => errors += 1,
        }
    }
    Ok((out, errors))
}
