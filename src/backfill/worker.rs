//! A backfill worker: one session of the backfill's pool (see [`crate::pool`]), on a
//! connection of its own, that batches through each range it takes until the range is
//! exhausted, waiting while the throttle says so and trying a batch again when it met
//! the application (see [`crate::retry`]).

use std::time::{Duration, Instant};

use tokio_postgres::Client;

use crate::error::{Error, Result};
use crate::journal::RangeRecord;
use crate::model::{Job, Key};
use crate::pool::Session;
use crate::retry::{conflict_kind, Class, Policy, Retry};

use super::batch::{next_batch_rows, start_of, Batch, Batches};
use super::sql::{Conflicts, From};
use super::throttle::Throttle;
use super::{locked, Shared};

/// What a batch tries again after: a lock conflict (see [`crate::retry::LOCK_CONFLICT`])
/// or a serialization failure.
const RETRYABLE: &[Class] = &[
    Class::LockTimeout,
    Class::StatementTimeout,
    Class::Deadlock,
    Class::Serialization,
];

/// One backfill session.
pub(super) struct Worker<'s, 'a> {
    shared: &'s Shared<'a>,
    batches: Batches<'s, 'a>,
    /// Rows of the next batch.
    rows: u32,
    /// Batches left to run with ON CONFLICT after a unique violation.
    skip_for: u32,
    throttle: Throttle,
}

impl Session<RangeRecord> for Worker<'_, '_> {
    async fn work(&mut self, range: RangeRecord) -> Result<()> {
        self.copy_range(range).await
    }
}

impl<'s, 'a> Worker<'s, 'a> {
    pub(super) fn new(client: Client, shared: &'s Shared<'a>) -> Self {
        Worker {
            shared,
            batches: Batches::new(client, shared),
            rows: shared.run.opts.batch_rows,
            skip_for: 0,
            throttle: Throttle::default(),
        }
    }

    /// Batches through one range until it is exhausted.
    async fn copy_range(&mut self, mut range: RangeRecord) -> Result<()> {
        let run = self.shared.run;
        let job = self.shared.job(range.ord);
        let label = job.source.to_string();
        // Before the range's first batch (see `marks.rs`: the catch-up no longer drops
        // its keys from here on).
        self.shared.taken(&range).await;
        loop {
            if run.cancel.is_cancelled() {
                return Err(Error::Interrupted);
            }
            self.wait_while_throttled(&label).await?;
            let (from, start) = start_of(&range);
            let copied = self.batch_with_retries(job, &range, from, &start).await?;
            run.progress.backfill_advance(&label, copied.rows as u64);
            range.rows_copied += copied.rows;
            self.shared
                .copied(&range, &copied.last_key, copied.exhausted)
                .await;
            range.cursor = Some(copied.last_key);
            if copied.exhausted {
                self.shared.range_done(range.ord);
                return Ok(());
            }
            if let Some(pause) = run.opts.pause {
                tokio::time::sleep(pause).await;
            }
        }
    }

    /// Waits while the pause file exists or the server is too busy, saying why (on the
    /// bar, and in the log every ten seconds); stops the run on a critical limit.
    async fn wait_while_throttled(&mut self, label: &str) -> Result<()> {
        let run = self.shared.run;
        let mut said: Option<Instant> = None;
        let mut waited = false;
        loop {
            if run.cancel.is_cancelled() {
                return Err(Error::Interrupted);
            }
            let why = self
                .throttle
                .reason(&self.batches.client, run.opts, &self.shared.pids)
                .await?;
            let Some(why) = why else { break };
            waited = true;
            run.progress.backfill_waiting(label, Some(&why));
            if said.is_none_or(|t| t.elapsed() >= Duration::from_secs(10)) {
                tracing::info!("backfill {label} waits: {why}");
                said = Some(Instant::now());
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        if waited {
            run.progress.backfill_waiting(label, None);
            tracing::info!("backfill {label} goes on");
        }
        Ok(())
    }

    /// One batch, sized from the last one's duration; after a unique violation, run
    /// again skipping the stale rows; after a conflict with the application, smaller,
    /// up to `backfill.retries` times.
    async fn batch_with_retries(
        &mut self,
        job: &Job,
        range: &RangeRecord,
        from: From,
        start: &[String],
    ) -> Result<Batch> {
        let run = self.shared.run;
        let opts = run.opts;
        let mut retry = Retry::new(Policy {
            attempts: opts.retries.saturating_add(1),
            pause: Duration::from_millis(200),
            retryable: RETRYABLE,
        });
        loop {
            let conflicts = if self.skip_for > 0 {
                self.skip_for -= 1;
                Conflicts::Skip
            } else {
                Conflicts::Fail
            };
            let started = Instant::now();
            let result = self
                .batches
                .run(job, range, from, start, conflicts, self.rows)
                .await;
            let took = started.elapsed();
            match result {
                Ok(batch) => {
                    locked(&self.shared.took).push(took);
                    self.rows =
                        next_batch_rows(self.rows, took, opts.batch_duration, opts.max_batch_rows);
                    return Ok(batch);
                }
                // A stale row of the copy stood in the way: the same batch again,
                // skipping such rows (and the next few too: the writers are busy here).
                // Not an attempt of the retry's.
                Err(e) if e.sqlstate() == Some("23505") && conflicts == Conflicts::Fail => {
                    self.skip_for = 16;
                }
                Err(e) => {
                    retry
                        .after(e, run.cancel, |r| {
                            Some(format!(
                                "batch on {} after key {} {} (attempt {} of {}); retrying in {:?}",
                                job.source,
                                Key::display(start),
                                conflict_kind(r.error),
                                r.attempt,
                                opts.retries,
                                r.pause
                            ))
                        })
                        .await?;
                    // Smaller batches hold fewer rows the application may want.
                    self.rows = (self.rows / 2).max(1);
                }
            }
        }
    }
}
