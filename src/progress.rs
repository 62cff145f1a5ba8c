//! How the library reports progress without printing: the binary implements this trait
//! with progress bars; tests and quiet runs use [`NoProgress`].

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

pub trait Progress: Send + Sync {
    /// A table's backfill starts (or resumes) with `done` of about `total` rows copied.
    fn backfill_start(&self, _table: &str, _total: u64, _done: u64) {}
    /// `rows` more rows copied.
    fn backfill_advance(&self, _table: &str, _rows: u64) {}
    fn backfill_finish(&self, _table: &str) {}
    /// The table's backfill waits for `why` (the pause file, replica lag, load); `None`:
    /// it goes on.
    fn backfill_waiting(&self, _table: &str, _why: Option<&str>) {}
    /// A parity run starts with `ranges` to compare, `resumed` of them already known.
    fn parity_start(&self, _ranges: u64, _resumed: u64) {}
    /// One more range compared.
    fn parity_advance(&self) {}
    fn parity_finish(&self) {}
    /// A step of the run, for a log line that should not tear the bars.
    fn step(&self, _message: &str) {}
    /// The catch-up of `table`'s change log, in words (see [`crate::watch::line`]).
    fn catch_up(&self, _table: &str, _line: &str) {}
}

pub struct NoProgress;
impl Progress for NoProgress {}

/// Set by Ctrl-C; long loops stop at their next safe point.
#[derive(Clone, Default)]
pub struct Cancel(Arc<AtomicBool>);

impl Cancel {
    pub fn cancel(&self) {
        self.0.store(true, Ordering::SeqCst);
    }
    pub fn is_cancelled(&self) -> bool {
        self.0.load(Ordering::SeqCst)
    }
}
