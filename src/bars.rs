//! Progress bars (indicatif) on stderr, and a tracing writer that suspends them so log
//! lines and bars do not tear. Bars are hidden when stderr is not a terminal or with
//! `--quiet`; off a terminal (nohup, cron, CI) a plain progress line is logged every
//! few seconds instead, so the log shows how far the backfill is.

use std::collections::HashMap;
use std::io::{IsTerminal, Write};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use tracing_subscriber::fmt::MakeWriter;

use hyperswap::progress::Progress;

#[derive(Clone)]
pub struct Bars {
    multi: MultiProgress,
    bars: Arc<Mutex<HashMap<String, ProgressBar>>>,
    /// Off a terminal: log a progress line per table this often (None: never).
    lines_every: Option<Duration>,
    last_line: Arc<Mutex<HashMap<String, Instant>>>,
}

impl Bars {
    pub fn new(quiet: bool, lines_every: Duration) -> Self {
        let terminal = std::io::stderr().is_terminal();
        let target = if quiet || !terminal {
            ProgressDrawTarget::hidden()
        } else {
            ProgressDrawTarget::stderr()
        };
        Bars {
            multi: MultiProgress::with_draw_target(target),
            bars: Arc::default(),
            lines_every: (!quiet && !terminal && !lines_every.is_zero()).then_some(lines_every),
            last_line: Arc::default(),
        }
    }

    fn bars(&self) -> std::sync::MutexGuard<'_, HashMap<String, ProgressBar>> {
        self.bars.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A plain progress line for `table` (counting `unit`) when one is due.
    fn maybe_line(&self, table: &str, unit: &str, bar: &ProgressBar) {
        let Some(every) = self.lines_every else {
            return;
        };
        let mut last = self.last_line.lock().unwrap_or_else(|p| p.into_inner());
        let due = last.get(table).is_none_or(|t| t.elapsed() >= every);
        if !due {
            return;
        }
        last.insert(table.to_string(), Instant::now());
        let (pos, len) = (bar.position(), bar.length().unwrap_or(0).max(1));
        let secs = bar.elapsed().as_secs_f64().max(0.001);
        let rate = pos as f64 / secs;
        let eta = if rate > 0.0 {
            humantime::format_duration(Duration::from_secs(
                (len.saturating_sub(pos) as f64 / rate) as u64,
            ))
            .to_string()
        } else {
            "?".into()
        };
        tracing::info!(
            "{table}: {pos} of ~{len} {unit} ({:.1}%), {rate:.0} {unit}/s, ETA {eta}",
            pos as f64 * 100.0 / len as f64
        );
    }

    pub fn clear(&self) {
        let _ = self.multi.clear();
    }
}

impl Progress for Bars {
    fn backfill_start(&self, table: &str, total: u64, done: u64) {
        let bar = self.multi.add(ProgressBar::new(total.max(1)));
        bar.set_style(
            ProgressStyle::with_template(
                "{prefix:.bold} [{bar:30}] {human_pos}/~{human_len} rows  {msg}  ETA {eta}",
            )
            .expect("valid template")
            .progress_chars("=> "),
        );
        bar.set_prefix(table.to_string());
        bar.set_position(done);
        self.bars().insert(table.to_string(), bar);
        tracing::info!("backfilling {table}: about {total} rows, {done} already copied");
    }

    fn backfill_advance(&self, table: &str, rows: u64) {
        if let Some(bar) = self.bars().get(table) {
            if bar.position() + rows > bar.length().unwrap_or(0) {
                bar.set_length(bar.position() + rows);
            }
            bar.inc(rows);
            let secs = bar.elapsed().as_secs_f64();
            if secs > 0.0 {
                bar.set_message(format!("{:.0} rows/s", bar.position() as f64 / secs));
            }
            self.maybe_line(&format!("backfill {table}"), "rows", bar);
        }
    }

    fn backfill_finish(&self, table: &str) {
        if let Some(bar) = self.bars().remove(table) {
            bar.finish();
            tracing::info!(
                "backfilled {table}: {} rows in {:.1?}",
                bar.position(),
                bar.elapsed()
            );
        }
    }

    fn backfill_waiting(&self, table: &str, why: Option<&str>) {
        if let Some(bar) = self.bars().get(table) {
            match why {
                Some(why) => bar.set_message(format!("waiting: {why}")),
                None => bar.set_message(String::new()),
            }
        }
    }

    fn parity_start(&self, ranges: u64, resumed: u64) {
        let bar = self.multi.add(ProgressBar::new(ranges.max(1)));
        bar.set_style(
            ProgressStyle::with_template("parity [{bar:30}] {pos}/{len} ranges  ETA {eta}")
                .expect("valid template")
                .progress_chars("=> "),
        );
        bar.set_position(resumed);
        self.bars().insert(PARITY.to_string(), bar);
    }

    fn parity_advance(&self) {
        if let Some(bar) = self.bars().get(PARITY) {
            bar.inc(1);
            self.maybe_line("parity", "ranges", bar);
        }
    }

    fn parity_finish(&self) {
        if let Some(bar) = self.bars().remove(PARITY) {
            bar.finish_and_clear();
        }
    }

    fn step(&self, message: &str) {
        tracing::info!("{message}");
    }

    fn catch_up(&self, table: &str, line: &str) {
        let key = format!("catch-up {table}");
        let bar = self.bars().get(&key).cloned();
        let bar = bar.unwrap_or_else(|| {
            let bar = self.multi.add(ProgressBar::new_spinner());
            bar.set_style(
                ProgressStyle::with_template("{prefix:.bold} {msg}").expect("valid template"),
            );
            bar.set_prefix(table.to_string());
            self.bars().insert(key.clone(), bar.clone());
            bar
        });
        bar.set_message(line.to_string());
        // Off a terminal: a line as often as the backfill's.
        if let Some(every) = self.lines_every {
            let mut last = self.last_line.lock().unwrap_or_else(|p| p.into_inner());
            if last.get(&key).is_none_or(|t| t.elapsed() >= every) {
                last.insert(key, Instant::now());
                tracing::info!("{table}: {line}");
            }
        }
    }
}

/// Writes tracing output to stderr with the bars suspended.
#[derive(Clone)]
pub struct SuspendingWriter(MultiProgress);

impl<'a> MakeWriter<'a> for SuspendingWriter {
    type Writer = LineWriter;
    fn make_writer(&'a self) -> LineWriter {
        LineWriter {
            multi: self.0.clone(),
            buf: Vec::new(),
        }
    }
}

pub struct LineWriter {
    multi: MultiProgress,
    buf: Vec<u8>,
}

impl Write for LineWriter {
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        self.buf.extend_from_slice(data);
        Ok(data.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Drop for LineWriter {
    fn drop(&mut self) {
        let buf = std::mem::take(&mut self.buf);
        self.multi.suspend(|| {
            let _ = std::io::stderr().write_all(&buf);
        });
    }
}

/// The parity bar's key among the bars (a table is never named so: it has a space).
const PARITY: &str = "parity run";

/// How log lines are written.
#[derive(Clone, Copy, Debug, clap::ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

/// `-q`: warnings and errors; default: info; `-v`: debug; `-vv`: trace. HYPERSWAP_LOG
/// (an env-filter directive) overrides all of them.
pub fn init_tracing(bars: &Bars, quiet: bool, verbose: u8, format: LogFormat) {
    let default = match (quiet, verbose) {
        (true, _) => "warn",
        (false, 0) => "info",
        (false, 1) => "debug",
        _ => "trace",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_env("HYPERSWAP_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_target(false)
        .with_writer(SuspendingWriter(bars.multi.clone()));
    match format {
        LogFormat::Text => builder
            .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
            .init(),
        LogFormat::Json => builder.json().with_ansi(false).init(),
    }
}
