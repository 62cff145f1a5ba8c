//! Phase 3, backfill: copy history in key-ordered batches. Each batch locks its source
//! rows (`FOR SHARE`, so a concurrent UPDATE or DELETE cannot slip between the batch's
//! read and its commit and leave a stale copy), inserts them with `ON CONFLICT DO
//! NOTHING` (the trigger may have copied a row first), and advances its range's cursor
//! in the same transaction: a killed run resumes after its last committed batch.
//!
//! The work is kept as key ranges in `hyperswap.ranges`, with bounds in the key's text
//! form, so several workers and other key types can share this layout later.

use tokio_postgres::{Client, GenericClient, Statement};

use crate::error::{Context, Error, Result};
use crate::journal::{self, RangeRecord};
use crate::model::{Job, Key};
use crate::phase::Phase;
use crate::plan::BackfillOptions;
use crate::progress::{Cancel, Progress};
use crate::stmt::{backoff, is_lock_conflict, SqlLog, Stmt};

/// Session settings of the backfill connection.
pub fn session_statements(opts: &BackfillOptions) -> Vec<Stmt> {
    vec![
        Stmt::noted(
            format!("SET lock_timeout = '{}ms'", opts.lock_timeout.as_millis().max(1)),
            "a batch waits at most this long for a row the application holds, then backs off and retries",
        ),
        Stmt::noted(
            "SELECT set_config('deadlock_timeout', '100ms', false) FROM pg_roles WHERE rolname = current_user AND rolsuper",
            "as a superuser, detect deadlocks sooner than the application does, so the batch (not the application) is the one aborted",
        ),
        Stmt::noted(
            "SELECT set_config('session_replication_role', 'replica', false) WHERE has_parameter_privilege('session_replication_role', 'SET')",
            "where allowed, the batches' inserts do not fire the target's triggers (the reverse trigger, idle until cutover)",
        ),
    ]
}

/// Where a batch starts: at the range's first key (inclusive) or after the cursor.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum From {
    RangeStart,
    Cursor,
}

impl From {
    fn op(self) -> &'static str {
        match self {
            From::RangeStart => ">=",
            From::Cursor => ">",
        }
    }
}

/// The statement that finds a batch's last key. $1 = range start or cursor, $2 = the
/// range's end, $3 = batch rows - 1.
pub fn next_sql(job: &Job, from: From) -> String {
    crate::template::render(
        include_str!("../sql/backfill_next.sql"),
        &[
            ("key_text", job.key.text_array(None)),
            ("source", job.source.quoted()),
            ("key", job.key.row(None)),
            ("after", from.op().into()),
            ("from", job.key.param_row(1)),
            ("upto", job.key.param_row(2)),
            ("order", job.key.order_by(None, false)),
        ],
    )
}

/// The batch statement. $1 = range start or cursor, $2 = the batch's last key.
pub fn batch_sql(job: &Job, from: From) -> String {
    crate::template::render(
        include_str!("../sql/backfill_batch.sql"),
        &[
            ("columns", job.column_list()),
            ("source", job.source.quoted()),
            ("target", job.target.quoted()),
            ("key", job.key.row(None)),
            ("after", from.op().into()),
            ("from", job.key.param_row(1)),
            ("upto", job.key.param_row(2)),
        ],
    )
}

/// The statement that captures a table's first and last key when the backfill starts.
pub fn bounds_sql(job: &Job) -> String {
    let q = |desc| {
        format!(
            "(SELECT {} FROM {} ORDER BY {} LIMIT 1)",
            job.key.text_array(None),
            job.source.quoted(),
            job.key.order_by(None, desc)
        )
    };
    format!("SELECT {}, {}", q(false), q(true))
}

/// Captures every table's key range (after the copy triggers are committed, so rows
/// beyond the upper bound are the triggers' to copy) and enters `backfilling`.
pub async fn prepare(client: &mut Client, log: &SqlLog, plan: &str, jobs: &[Job]) -> Result<()> {
    let ctx = "capturing the backfill's key ranges";
    let tx = client.transaction().await.context(ctx)?;
    for job in jobs {
        let sql = bounds_sql(job);
        log.record(&sql);
        let row = tx.query_one(&sql, &[]).await.context(ctx)?;
        let (lo, hi): (Option<Vec<String>>, Option<Vec<String>>) = (row.get(0), row.get(1));
        let total = estimated_rows(&tx, job).await?;
        tx.execute(
            "UPDATE hyperswap.tables SET rows_total = $3 WHERE plan_name = $1 AND ord = $2",
            &[&plan, &(job.ord as i32), &total],
        )
        .await
        .context(ctx)?;
        // An empty table has nothing to copy: its range is done from the start.
        let done = hi.is_none();
        tx.execute(
            "INSERT INTO hyperswap.ranges (plan_name, ord, range_no, lo, hi, done) VALUES ($1, $2, 0, $3, $4, $5)
             ON CONFLICT DO NOTHING",
            &[&plan, &(job.ord as i32), &lo, &hi.unwrap_or_default(), &done],
        )
        .await
        .context(ctx)?;
    }
    journal::set_phase(&tx, plan, Phase::Backfilling).await?;
    tx.commit().await.context(ctx)
}

async fn estimated_rows(client: &impl GenericClient, job: &Job) -> Result<i64> {
    if job.table.estimated_rows >= 1.0 {
        return Ok(job.table.estimated_rows as i64);
    }
    // Never analysed: count, which is what the estimate would have been for.
    let sql = format!("SELECT count(*) FROM {}", job.source.quoted());
    Ok(client
        .query_one(&sql, &[])
        .await
        .context("counting the source's rows")?
        .get(0))
}

/// Copies every range not yet done, then enters `backfilled`.
pub struct Backfill<'a> {
    pub client: &'a mut Client,
    pub log: &'a SqlLog,
    pub plan: &'a str,
    pub jobs: &'a [Job],
    pub opts: &'a BackfillOptions,
    pub progress: &'a dyn Progress,
    pub cancel: &'a Cancel,
}

impl Backfill<'_> {
    pub async fn run(mut self) -> Result<()> {
        for stmt in session_statements(self.opts) {
            crate::stmt::exec(&*self.client, self.log, &stmt).await?;
        }
        let ranges = journal::ranges(&*self.client, self.plan).await?;
        for job in self.jobs {
            let mine: Vec<&RangeRecord> =
                ranges.iter().filter(|r| r.ord == job.ord as i32).collect();
            let total = self.rows_total(job).await?;
            let done: i64 = mine.iter().map(|r| r.rows_copied).sum();
            let label = job.source.to_string();
            self.progress
                .backfill_start(&label, total.max(done) as u64, done as u64);
            for range in mine.into_iter().filter(|r| !r.done) {
                self.copy_range(job, range.clone(), &label).await?;
            }
            self.progress.backfill_finish(&label);
        }
        let tx = self
            .client
            .transaction()
            .await
            .context("finishing the backfill")?;
        journal::set_phase(&tx, self.plan, Phase::Backfilled).await?;
        tx.commit().await.context("finishing the backfill")
    }

    async fn rows_total(&self, job: &Job) -> Result<i64> {
        let row = self
            .client
            .query_one(
                "SELECT coalesce(rows_total, 0) FROM hyperswap.tables WHERE plan_name = $1 AND ord = $2",
                &[&self.plan, &(job.ord as i32)],
            )
            .await
            .context("reading backfill progress")?;
        Ok(row.get(0))
    }

    /// Batches through one range until it is exhausted.
    async fn copy_range(&mut self, job: &Job, mut range: RangeRecord, label: &str) -> Result<()> {
        let ctx = "preparing the backfill batch";
        let mut prepared = Vec::new();
        for from in [From::RangeStart, From::Cursor] {
            let next = self
                .client
                .prepare(&next_sql(job, from))
                .await
                .context(ctx)?;
            let batch = self
                .client
                .prepare(&batch_sql(job, from))
                .await
                .context(ctx)?;
            prepared.push((next, batch));
        }
        let mut logged = [false, false];
        loop {
            if self.cancel.is_cancelled() {
                return Err(Error::Interrupted);
            }
            self.wait_while_paused(label).await?;
            let (from, start) = match &range.cursor {
                None => (From::RangeStart, range.lo.clone().unwrap_or_default()),
                Some(c) => (From::Cursor, c.clone()),
            };
            let i = (from == From::Cursor) as usize;
            // Log each statement once: the log shows what ran, not every batch.
            if !logged[i] {
                self.log.record(&next_sql(job, from));
                self.log.record(&batch_sql(job, from));
                logged[i] = true;
            }
            let copied = self
                .batch_with_retries(job, &range, &prepared[i], &start)
                .await?;
            self.progress.backfill_advance(label, copied.rows as u64);
            range.rows_copied += copied.rows;
            range.cursor = Some(copied.last_key);
            if copied.exhausted {
                return Ok(());
            }
            if let Some(pause) = self.opts.pause {
                tokio::time::sleep(pause).await;
            }
        }
    }

    /// Waits while the plan's pause file exists, saying so every ten seconds; Ctrl-C
    /// still stops the run.
    async fn wait_while_paused(&self, label: &str) -> Result<()> {
        let Some(file) = &self.opts.pause_file else {
            return Ok(());
        };
        let mut said: Option<std::time::Instant> = None;
        while file.exists() {
            if self.cancel.is_cancelled() {
                return Err(Error::Interrupted);
            }
            if said.is_none_or(|t| t.elapsed() >= std::time::Duration::from_secs(10)) {
                tracing::info!(
                    "backfill {label} paused: the pause file {} exists; remove it to go on",
                    file.display()
                );
                said = Some(std::time::Instant::now());
            }
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
        if said.is_some() {
            tracing::info!("backfill {label} goes on: the pause file is gone");
        }
        Ok(())
    }

    async fn batch_with_retries(
        &mut self,
        job: &Job,
        range: &RangeRecord,
        stmts: &(Statement, Statement),
        from: &[String],
    ) -> Result<Batch> {
        let mut attempt = 0;
        loop {
            match self.batch(range, stmts, from).await {
                Err(e)
                    if (is_lock_conflict(&e) || e.sqlstate() == Some("40001"))
                        && attempt < self.opts.retries =>
                {
                    attempt += 1;
                    let pause = backoff(std::time::Duration::from_millis(200), attempt);
                    tracing::warn!(
                        "batch on {} after key {} {} (attempt {attempt} of {}); retrying in {pause:?}",
                        job.source,
                        Key::display(from),
                        crate::stmt::conflict_kind(&e),
                        self.opts.retries
                    );
                    tokio::time::sleep(pause).await;
                }
                other => return other,
            }
        }
    }

    /// One batch and its journal record, in one transaction.
    async fn batch(
        &mut self,
        range: &RangeRecord,
        (next, batch): &(Statement, Statement),
        from: &[String],
    ) -> Result<Batch> {
        let ctx = "copying a backfill batch";
        let tx = self.client.transaction().await.context(ctx)?;
        let skip = self.opts.batch_rows as i64 - 1;
        let last: Option<Vec<String>> = tx
            .query_opt(next, &[&from, &range.hi, &skip])
            .await
            .context(ctx)?
            .map(|r| r.get(0));
        let exhausted = last.is_none();
        let last_key = last.unwrap_or_else(|| range.hi.clone());
        let row = tx
            .query_one(batch, &[&from, &last_key])
            .await
            .context(ctx)?;
        let rows: i64 = row.get(0);
        tx.execute(
            "UPDATE hyperswap.ranges
             SET cursor = $4, rows_copied = rows_copied + $5, batches = batches + 1,
                 done = $6, updated_at = now()
             WHERE plan_name = $1 AND ord = $2 AND range_no = $3",
            &[
                &self.plan,
                &range.ord,
                &range.range_no,
                &last_key,
                &rows,
                &exhausted,
            ],
        )
        .await
        .context(ctx)?;
        tx.commit().await.context(ctx)?;
        Ok(Batch {
            rows,
            last_key,
            exhausted,
        })
    }
}

struct Batch {
    rows: i64,
    last_key: Vec<String>,
    exhausted: bool,
}
