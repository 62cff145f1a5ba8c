//! The catch-up while the backfill runs: a session of its own that, beside the workers,
//! replays the change log's entries of keys already copied (or outside every range; see
//! `marks.rs` for the rules), so that little is left to replay when the last batch
//! commits. Watched (see
//! [`crate::watch`]): it stops the run, resumable, when the application outruns it.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use tokio_postgres::Client;

use crate::capture::{self, PASS_ENTRIES};
use crate::error::{Error, Result};
use crate::watch::Watch;

use super::marks::Marks;
use super::Shared;

/// How long the session rests once every log is caught up; longer when its last
/// passes found nothing they could take.
const REST: Duration = Duration::from_millis(250);
const IDLE: Duration = Duration::from_secs(1);
/// Entries taken from a log after which it is vacuumed.
const TIDY_AFTER: i64 = 200_000;

/// The catch-up session and what it keeps between passes.
pub(super) struct CatchUp<'s, 'a> {
    shared: &'s Shared<'a>,
    client: Client,
    watch: Watch,
    /// Per table: where its next pass starts in the log, and what was taken since the
    /// last vacuum.
    at: Vec<(String, i64)>,
}

impl<'s, 'a> CatchUp<'s, 'a> {
    pub(super) fn new(shared: &'s Shared<'a>, client: Client, watch: Watch) -> Self {
        let at = shared
            .run
            .jobs
            .iter()
            .map(|_| ("(0,0)".into(), 0))
            .collect();
        CatchUp {
            shared,
            client,
            watch,
            at,
        }
    }

    /// Passes until the workers are `finished` (or one fails, or a limit stops it);
    /// returns the watch, for what it saw.
    pub(super) async fn run(mut self, finished: &AtomicBool) -> Result<Watch> {
        let run = self.shared.run;
        while !finished.load(Ordering::SeqCst) {
            if run.cancel.is_cancelled() {
                return Err(Error::Interrupted);
            }
            let mut caught_up = true;
            let mut took = 0;
            for (i, job) in run.jobs.iter().enumerate() {
                let (done, n) = self.pass(i).await?;
                caught_up &= done;
                took += n;
                if self.at[i].1 >= TIDY_AFTER {
                    capture::of(job).tidy(&self.client, run.log, job).await?;
                    self.at[i].1 = 0;
                }
            }
            self.watch
                .check(&self.client, run.jobs, run.progress)
                .await?;
            if caught_up {
                self.rest(finished, if took == 0 { IDLE } else { REST })
                    .await;
            }
        }
        Ok(self.watch)
    }

    /// One pass over table `i`'s log, of keys already copied; whether it reached the
    /// end of what it may take, and how many entries it took.
    async fn pass(&mut self, i: usize) -> Result<(bool, i64)> {
        let job = &self.shared.run.jobs[i];
        // The pass's statement is planned over every chunk of the copy: not for nothing.
        if !capture::of(job).any_waiting(&self.client, job).await? {
            self.at[i].0 = "(0,0)".into();
            self.watch.caught_up(job.ord as i32);
            return Ok((true, 0));
        }
        let pending = {
            let marks = self.shared.marks.lock().await;
            Marks {
                ranges: marks.iter().filter(|m| m.ord == job.ord as i32).collect(),
            }
            .pending()
        };
        let log_once = |sql: &str| self.shared.log_once(sql);
        let capture = capture::of(job);
        let ord = job.ord as i32;
        let at = self.at[i].0.clone();
        let mut r = capture
            .catch_up(&self.client, &log_once, job, &pending, &at, PASS_ENTRIES)
            .await?;
        if r.is_none() {
            // A stale row of another key stood in the way, whose own entry this pass did
            // not take: every entry it may take, in one statement, which removes the
            // stale row before it writes the other.
            r = capture
                .catch_up(&self.client, &log_once, job, &pending, "(0,0)", i64::MAX)
                .await?;
        }
        let Some(r) = r else {
            // The stale row's own key waits for its range: its entries, and those behind
            // them, wait for the end of the backfill (which replays the whole log), or
            // for that range to be copied. Not a catch-up falling behind.
            self.at[i].0 = "(0,0)".into();
            self.watch.caught_up(ord);
            return Ok((true, 0));
        };
        self.watch.taken(ord, r.taken);
        self.at[i].1 += r.taken;
        match r.last {
            Some(last) if r.taken >= PASS_ENTRIES => {
                self.at[i].0 = last;
                Ok((false, r.taken))
            }
            _ => {
                self.at[i].0 = "(0,0)".into();
                self.watch.caught_up(ord);
                Ok((true, r.taken))
            }
        }
    }

    /// Waits `how_long`, or until the workers are done.
    async fn rest(&self, finished: &AtomicBool, how_long: Duration) {
        let until = Instant::now() + how_long;
        while Instant::now() < until && !finished.load(Ordering::SeqCst) {
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }
}
