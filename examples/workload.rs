//! Seeds a sample table and plays a live application against it.
//!
//!     cargo run --release --example workload -- seed --table public.metrics --rows 1000000
//!     cargo run --release --example workload -- write --table public.metrics \
//!         --connections 4 --rate 300 [--seconds N]
//!
//! `write` runs until Ctrl-C (or SIGTERM, or N seconds) and then prints its statistics as
//! one JSON line on stdout. The connection comes from `--database-url` or `DATABASE_URL`
//! and is never printed.

use std::time::{Duration, Instant};

use anyhow::Context;
use clap::{Parser, Subcommand};
use hyperswap::ident::QualifiedName;
use hyperswap_workload::{create_sample_table, spawn_writer, OpMix, WriterConfig};
use tokio_postgres::NoTls;

#[derive(Parser)]
#[command(about = "Sample data and a synthetic live writer for hyperswap")]
struct Cli {
    /// PostgreSQL connection URL.
    #[arg(long, env = "DATABASE_URL", hide_env_values = true, global = true)]
    database_url: Option<String>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Create the sample table (it must not exist) and fill it.
    Seed {
        /// Table to create, `schema.table` or `table`.
        #[arg(long, value_parser = QualifiedName::parse)]
        table: QualifiedName,
        /// Rows to insert.
        #[arg(long, default_value_t = 1_000_000)]
        rows: u64,
    },
    /// Insert, update and delete rows until stopped, then print the statistics as JSON.
    Write {
        /// Table to write to (by name: it may be swapped underneath).
        #[arg(long, value_parser = QualifiedName::parse)]
        table: QualifiedName,
        /// Concurrent connections.
        #[arg(long, default_value_t = 4)]
        connections: usize,
        /// Total operations per second over all connections; 0 = as fast as possible.
        #[arg(long, default_value_t = 300)]
        rate: u32,
        /// Stop after this many seconds instead of waiting for Ctrl-C.
        #[arg(long)]
        seconds: Option<u64>,
        /// Let time updates move rows to another day (fails on a hypertable with daily
        /// chunks; by default they stay within the row's UTC day).
        #[arg(long)]
        time_updates_cross_days: bool,
    },
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    match run().await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("workload: {err:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

async fn run() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    let cli = Cli::parse();
    let url = cli
        .database_url
        .filter(|url| !url.is_empty())
        .context("no database: pass --database-url or set DATABASE_URL")?;
    match cli.command {
        Command::Seed { table, rows } => seed(&url, &table, rows).await,
        Command::Write {
            table,
            connections,
            rate,
            seconds,
            time_updates_cross_days,
        } => {
            write(
                url,
                table,
                connections,
                rate,
                seconds,
                time_updates_cross_days,
            )
            .await
        }
    }
}

async fn seed(url: &str, table: &QualifiedName, rows: u64) -> anyhow::Result<()> {
    let (client, connection) = tokio_postgres::connect(url, NoTls)
        .await
        .context("could not connect to the database")?;
    tokio::spawn(async move {
        if let Err(err) = connection.await {
            tracing::warn!("connection ended: {err}");
        }
    });
    let started = Instant::now();
    create_sample_table(&client, table, rows)
        .await
        .with_context(|| format!("could not seed {table}"))?;
    eprintln!(
        "seeded {table} with {rows} rows in {:.1?}",
        started.elapsed()
    );
    Ok(())
}

async fn write(
    url: String,
    table: QualifiedName,
    connections: usize,
    rate: u32,
    seconds: Option<u64>,
    time_updates_cross_days: bool,
) -> anyhow::Result<()> {
    eprintln!("writing to {table}: {connections} connections, {rate} ops/s; Ctrl-C to stop");
    let started = Instant::now();
    let writer = spawn_writer(WriterConfig {
        url,
        table,
        connections,
        ops_per_sec: rate,
        mix: OpMix::default(),
        time_updates_cross_days,
    });
    match seconds {
        Some(secs) => tokio::select! {
            _ = tokio::time::sleep(Duration::from_secs(secs)) => {}
            signal = shutdown_signal() => signal?,
        },
        None => shutdown_signal().await?,
    }
    let stats = writer.stop().await;
    let elapsed = started.elapsed().as_secs_f64();
    eprintln!(
        "wrote for {elapsed:.1} s: {} ops ({:.0}/s), {} errors, longest statement {:.1?}",
        stats.total_ops(),
        stats.total_ops() as f64 / elapsed.max(1e-9),
        stats.errors,
        stats.max_latency,
    );
    println!("{}", serde_json::to_string(&stats)?);
    Ok(())
}

/// Ctrl-C (SIGINT) or, on Unix, SIGTERM.
async fn shutdown_signal() -> anyhow::Result<()> {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        let mut term = signal(SignalKind::terminate())?;
        let mut int = signal(SignalKind::interrupt())?;
        tokio::select! {
            _ = int.recv() => {}
            _ = term.recv() => {}
        }
        Ok(())
    }
    #[cfg(not(unix))]
    {
        tokio::signal::ctrl_c().await?;
        Ok(())
    }
}
