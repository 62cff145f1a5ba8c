//! Progress bars (indicatif) on stderr, and a tracing writer that suspends them so log
//! lines and bars do not tear. Bars are hidden when stderr is not a terminal or with
//! `--quiet`.

use std::collections::HashMap;
use std::io::{IsTerminal, Write};
use std::sync::{Arc, Mutex};

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use tracing_subscriber::fmt::MakeWriter;

use hyperswap::progress::Progress;

#[derive(Clone)]
pub struct Bars {
    multi: MultiProgress,
    bars: Arc<Mutex<HashMap<String, ProgressBar>>>,
}

impl Bars {
    pub fn new(quiet: bool) -> Self {
        let target = if quiet || !std::io::stderr().is_terminal() {
            ProgressDrawTarget::hidden()
        } else {
            ProgressDrawTarget::stderr()
        };
        Bars {
            multi: MultiProgress::with_draw_target(target),
            bars: Arc::default(),
        }
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
        self.bars
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(table.to_string(), bar);
        tracing::info!("backfilling {table}: about {total} rows, {done} already copied");
    }

    fn backfill_advance(&self, table: &str, rows: u64) {
        if let Some(bar) = self
            .bars
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(table)
        {
            if bar.position() + rows > bar.length().unwrap_or(0) {
                bar.set_length(bar.position() + rows);
            }
            bar.inc(rows);
            let secs = bar.elapsed().as_secs_f64();
            if secs > 0.0 {
                bar.set_message(format!("{:.0} rows/s", bar.position() as f64 / secs));
            }
        }
    }

    fn backfill_finish(&self, table: &str) {
        if let Some(bar) = self
            .bars
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(table)
        {
            bar.finish();
            tracing::info!(
                "backfilled {table}: {} rows in {:.1?}",
                bar.position(),
                bar.elapsed()
            );
        }
    }

    fn step(&self, message: &str) {
        tracing::info!("{message}");
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

pub fn init_tracing(bars: &Bars, quiet: bool) {
    let default = if quiet { "warn" } else { "info" };
    let filter = tracing_subscriber::EnvFilter::try_from_env("HYPERSWAP_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_target(false)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(SuspendingWriter(bars.multi.clone()))
        .init();
}
