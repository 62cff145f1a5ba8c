//! Phase 3, backfill: copy history in key-ordered batches, by several workers at once.
//!
//! When the backfill starts, each table's key space (up to its last key then: later rows
//! reach the copy through the change log) is cut into ranges of about equal rows, from a
//! sample of its keys, and recorded in `hyperswap.ranges`. Workers, each on a connection
//! of its own, take the ranges in order, one at a time, and batch through them. A batch:
//!
//! - reads its last key from the key's index (`OFFSET n-1`), so gaps in the key make no
//!   empty batches;
//! - copies the interval as its snapshot shows it, without locking a row: a change the
//!   application commits after the snapshot has its key in the change log, replayed
//!   once the batch's range is copied past it (see `marks.rs`), or at the latest when
//!   every batch has committed (see [`crate::capture`]), so no stale copy survives;
//! - advances its range's cursor in the same transaction, so a stopped run resumes after
//!   its last committed batch, with any number of workers.
//!
//! Each worker sizes its batches to take about `batch_duration`: growing by at most a
//! quarter while faster, shrinking at once when slower.
//!
//! # Layout
//!
//! - `sql.rs`: the statements, for `plan show` and the workers;
//! - `ranges.rs`: the key ranges, cut and recorded when the backfill starts;
//! - `worker.rs`: a worker, one session of the pool, and its retries; `batch.rs`: one
//!   batch's transaction and the sizing of the next; `throttle.rs`: the brakes;
//! - `marks.rs`: which logged keys may be replayed while batches run, and which must
//!   wait; `catch_up.rs`: the session that replays them meanwhile;
//! - `indexes.rs`: the indexes built after the copy.

mod batch;
mod catch_up;
mod indexes;
mod marks;
mod ranges;
mod sql;
mod throttle;
mod worker;

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use tokio_postgres::Client;

use crate::conn::ConnectOptions;
use crate::error::{Context, Result};
use crate::journal::{self, RangeRecord};
use crate::model::Job;
use crate::phase::Phase;
use crate::plan::BackfillOptions;
use crate::pool::{self, Sessions};
use crate::progress::{Cancel, Progress};
use crate::stmt::SqlLog;
use crate::watch::Watch;

pub use batch::next_batch_rows;
pub use ranges::{prepare, ranges_for, worker_count};
pub use sql::{batch_sql, bounds_sql, next_sql, session_statements, Conflicts, From};
pub use throttle::throttle_verdict;

use catch_up::CatchUp;
use marks::{Mark, State};
use worker::Worker;

/// Copies every range not yet done, replays what the application changed meanwhile and
/// builds the indexes left for after the copy ([`Backfill::run`] returns the batches'
/// figures; the step records the end of the backfill).
pub struct Backfill<'a> {
    pub connect: &'a ConnectOptions,
    /// The orchestrator's connection (it holds the plan's lock).
    pub client: &'a mut Client,
    pub log: &'a SqlLog,
    pub plan: &'a str,
    pub jobs: &'a [Job],
    pub opts: &'a BackfillOptions,
    pub workers: usize,
    pub progress: &'a dyn Progress,
    pub cancel: &'a Cancel,
    /// The whole plan: its `catch_up` settings.
    pub settings: &'a crate::plan::Plan,
}

/// What the workers share (the ranges' queue is the pool's).
struct Shared<'a> {
    run: &'a Backfill<'a>,
    /// Ranges not done yet, per table: the table's bar ends when they are.
    left: Mutex<HashMap<i32, usize>>,
    /// Statements already written to the SQL log (each once, not every batch).
    logged: Mutex<HashSet<String>>,
    /// Every batch transaction's duration, for the closing figures.
    took: Mutex<Vec<Duration>>,
    /// The workers' server process ids: the throttle does not count them as load.
    pids: Vec<i32>,
    /// Where each range stands, for the catch-up (see `marks.rs`).
    marks: tokio::sync::Mutex<Vec<Mark>>,
}

fn locked<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Shared<'_> {
    fn log_once(&self, sql: &str) {
        if locked(&self.logged).insert(sql.to_string()) {
            self.run.log.record(sql);
        }
    }

    fn job(&self, ord: i32) -> &Job {
        &self.run.jobs[ord as usize]
    }

    /// A worker takes `range`: from now on its keys past the cursor wait (see
    /// `marks.rs`). Before the range's first batch starts.
    async fn taken(&self, range: &RangeRecord) {
        self.mark(range, State::Copying, range.cursor.clone()).await;
    }

    /// A batch of `range` committed, having copied up to `last` (all of it: `done`).
    async fn copied(&self, range: &RangeRecord, last: &[String], done: bool) {
        let state = if done { State::Done } else { State::Copying };
        self.mark(range, state, Some(last.to_vec())).await;
    }

    async fn mark(&self, range: &RangeRecord, state: State, cursor: Option<Vec<String>>) {
        let mut marks = self.marks.lock().await;
        if let Some(m) = marks
            .iter_mut()
            .find(|m| m.ord == range.ord && m.range_no == range.range_no)
        {
            m.state = state;
            m.cursor = cursor;
        }
    }

    /// A range is done: end its table's bar when it was the last.
    fn range_done(&self, ord: i32) {
        let mut left = locked(&self.left);
        let n = left.entry(ord).or_insert(1);
        *n -= 1;
        if *n == 0 {
            self.run
                .progress
                .backfill_finish(&self.job(ord).source.to_string());
        }
    }
}

impl<'a> Backfill<'a> {
    pub async fn run(self) -> Result<Option<String>> {
        let ranges = journal::ranges(&*self.client, self.plan).await?;
        let left = self.start_bars(&ranges).await?;
        let ranges_all = ranges.clone();
        let queue: Vec<RangeRecord> = ranges.into_iter().filter(|r| !r.done).collect();
        let n = self.workers.clamp(1, queue.len().max(1));
        let sessions = if queue.is_empty() {
            Vec::new()
        } else {
            self.open(n).await?
        };
        let pids = pids(&sessions).await?;
        let shared = Shared {
            run: &self,
            left: Mutex::new(left),
            logged: Mutex::default(),
            took: Mutex::default(),
            pids,
            marks: tokio::sync::Mutex::new(ranges_all.iter().map(Mark::of).collect()),
        };
        if !sessions.is_empty() {
            tracing::info!("backfill of plan `{}`: {n} worker(s)", self.plan);
        }
        let catch_up = if self.settings.catch_up.during_backfill && !sessions.is_empty() {
            let client = self
                .connect
                .connect(&format!("hyperswap catch-up {}", self.plan))
                .await?;
            let watch = Watch::new(&client, self.settings, self.jobs, Phase::Backfilling).await?;
            Some(CatchUp::new(&shared, client, watch))
        } else {
            None
        };
        let workers = sessions.into_iter().map(|c| Worker::new(c, &shared));
        let finished = AtomicBool::new(false);
        let copy = async {
            let r = pool::run(workers, queue, self.cancel).await;
            finished.store(true, Ordering::SeqCst);
            r
        };
        let watch = match catch_up {
            Some(c) => Some(futures_util::try_join!(copy, c.run(&finished))?.1),
            None => {
                copy.await?;
                None
            }
        };
        let summary = batch::summary(&locked(&shared.took), n);
        drop(shared);
        if let Some(w) = &watch {
            for job in self.jobs {
                let seen = w.seen(job.ord as i32);
                tracing::info!(
                    "caught up {} logged change(s) of {} while copying; at most {} waited",
                    seen.taken,
                    job.source,
                    seen.largest
                );
            }
        }
        // Every batch has committed: what the application changed meanwhile is the
        // change log's, replayed now (before the deferred indexes, which it would feed),
        // and again after them.
        self.replay().await?;
        self.build_indexes().await?;
        self.replay().await?;
        if let Some(summary) = &summary {
            tracing::info!("backfill of plan `{}`: {summary}", self.plan);
        }
        Ok(summary)
    }

    /// Starts each table's bar at what its ranges have copied (and ends the bar of a
    /// table already done); returns the ranges left per table.
    async fn start_bars(&self, ranges: &[RangeRecord]) -> Result<HashMap<i32, usize>> {
        let mut left: HashMap<i32, usize> = HashMap::new();
        for job in self.jobs {
            let ord = job.ord as i32;
            let mine: Vec<&RangeRecord> = ranges.iter().filter(|r| r.ord == ord).collect();
            let total = journal::rows_total(&*self.client, self.plan, ord).await?;
            let done: i64 = mine.iter().map(|r| r.rows_copied).sum();
            let label = job.source.to_string();
            self.progress
                .backfill_start(&label, total.max(done) as u64, done as u64);
            let open = mine.iter().filter(|r| !r.done).count();
            if open == 0 {
                self.progress.backfill_finish(&label);
            }
            left.insert(ord, open);
        }
        Ok(left)
    }

    /// The workers' `n` connections, with the backfill's session settings.
    async fn open(&self, n: usize) -> Result<Vec<Client>> {
        let sessions = Sessions {
            connect: self.connect,
            log: self.log,
            statements: session_statements(self.opts),
            context: "setting up a backfill session",
        };
        let plan = self.plan;
        sessions
            .open((1..=n).map(|i| format!("hyperswap backfill {plan} #{i}")))
            .await
    }

    /// Drains the change logs (see [`crate::capture::drain`]).
    async fn replay(&self) -> Result<()> {
        self.progress
            .step("replaying the changes the application made during the copy");
        let more = crate::pool::replay_sessions(
            self.connect,
            self.log,
            self.plan,
            self.settings.catch_up.sessions,
        )
        .await?;
        let r = crate::capture::drain(&crate::pool::with(self.client, &more), self.log, self.jobs)
            .await?;
        if r.taken > 0 {
            tracing::info!(
                "replayed {} logged change(s) of plan `{}`: {} row(s) written, {} removed",
                r.taken,
                self.plan,
                r.written,
                r.deleted
            );
        }
        Ok(())
    }
}

/// The server process ids of `sessions`.
async fn pids(sessions: &[Client]) -> Result<Vec<i32>> {
    let mut pids = Vec::with_capacity(sessions.len());
    for s in sessions {
        let pid: i32 = s
            .query_one("SELECT pg_catalog.pg_backend_pid()", &[])
            .await
            .context("setting up a backfill session")?
            .get(0);
        pids.push(pid);
    }
    Ok(pids)
}
