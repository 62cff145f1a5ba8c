//! One batch: its last key found from the key's index, the copy of its interval, and
//! its range's cursor advanced, in one transaction on a worker's connection; how the
//! next batch is sized; the closing figures of every batch's duration.

use std::collections::HashMap;
use std::time::Duration;

use tokio_postgres::{Client, Statement};

use crate::error::{Context, Result};
use crate::journal::{self, RangeRecord};
use crate::model::Job;

use super::sql::{batch_sql, next_sql, Conflicts, From};
use super::Shared;

/// The result of one batch.
pub(super) struct Batch {
    pub(super) rows: i64,
    pub(super) last_key: Vec<String>,
    pub(super) exhausted: bool,
}

/// Where the next batch of `range` starts: at its first key, or after its cursor.
pub(super) fn start_of(range: &RangeRecord) -> (From, Vec<String>) {
    match &range.cursor {
        None => (From::RangeStart, range.lo.clone().unwrap_or_default()),
        Some(c) => (From::Cursor, c.clone()),
    }
}

/// A worker's connection, with the batch statements prepared on it.
pub(super) struct Batches<'s, 'a> {
    pub(super) client: Client,
    shared: &'s Shared<'a>,
    statements: HashMap<(i32, From, Conflicts), Statement>,
    next: HashMap<(i32, From), Statement>,
    advance: Option<Statement>,
}

impl<'s, 'a> Batches<'s, 'a> {
    pub(super) fn new(client: Client, shared: &'s Shared<'a>) -> Self {
        Batches {
            client,
            shared,
            statements: HashMap::new(),
            next: HashMap::new(),
            advance: None,
        }
    }

    /// Prepares (once per session) and logs (once per run) the statements of a batch.
    async fn prepared(
        &mut self,
        job: &Job,
        from: From,
        conflicts: Conflicts,
    ) -> Result<(Statement, Statement, Statement)> {
        let ctx = "preparing the backfill batch";
        let ord = job.ord as i32;
        if !self.next.contains_key(&(ord, from)) {
            let sql = next_sql(job, from);
            self.shared.log_once(&sql);
            let st = self.client.prepare(&sql).await.context(ctx)?;
            self.next.insert((ord, from), st);
        }
        if !self.statements.contains_key(&(ord, from, conflicts)) {
            let sql = batch_sql(job, from, conflicts);
            self.shared.log_once(&sql);
            let st = self.client.prepare(&sql).await.context(ctx)?;
            self.statements.insert((ord, from, conflicts), st);
        }
        if self.advance.is_none() {
            self.shared.log_once(journal::ADVANCE_RANGE);
            let st = self
                .client
                .prepare(journal::ADVANCE_RANGE)
                .await
                .context(ctx)?;
            self.advance = Some(st);
        }
        Ok((
            self.next[&(ord, from)].clone(),
            self.statements[&(ord, from, conflicts)].clone(),
            self.advance.clone().expect("prepared above"),
        ))
    }

    /// One batch of at most `rows` rows from `start` and its journal record, in one
    /// transaction.
    pub(super) async fn run(
        &mut self,
        job: &Job,
        range: &RangeRecord,
        from: From,
        start: &[String],
        conflicts: Conflicts,
        rows: u32,
    ) -> Result<Batch> {
        let (next, batch, advance) = self.prepared(job, from, conflicts).await?;
        let ctx = "copying a backfill batch";
        let plan = self.shared.run.plan;
        let skip = rows as i64 - 1;
        let tx = self.client.transaction().await.context(ctx)?;
        if let Some(owner) = job.as_owner_sql() {
            self.shared.log_once(&owner);
            tx.batch_execute(&owner).await.context(ctx)?;
        }
        let last: Option<Vec<String>> = tx
            .query_opt(&next, &[&start, &range.hi, &skip])
            .await
            .context(ctx)?
            .map(|r| r.get(0));
        let exhausted = last.is_none();
        let last_key = last.unwrap_or_else(|| range.hi.clone());
        let rows = tx
            .execute(&batch, &[&start, &last_key])
            .await
            .context(ctx)? as i64;
        // The journal is the tool's: its record is written as the session's role.
        self.shared.log_once(crate::model::AS_SELF_SQL);
        tx.batch_execute(crate::model::AS_SELF_SQL)
            .await
            .context(ctx)?;
        tx.execute(
            &advance,
            &[
                &plan,
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

/// The next batch's rows after one of `rows` took `took`: at most a quarter more while
/// well under `target`, at once down to what would have taken 80 % of it when over.
pub fn next_batch_rows(rows: u32, took: Duration, target: Duration, max: u32) -> u32 {
    let (t, goal) = (took.as_secs_f64().max(1e-4), target.as_secs_f64());
    let wanted = if t > goal {
        rows as f64 * goal / t * 0.8
    } else if t < goal * 0.8 {
        (rows as f64 * goal * 0.8 / t).min(rows as f64 * 1.25)
    } else {
        rows as f64
    };
    (wanted as u32).clamp(1, max.max(1))
}

/// `N batches by W workers; batch transactions p50 .. ms, p99 .. ms, max .. ms`.
pub(super) fn summary(took: &[Duration], workers: usize) -> Option<String> {
    if took.is_empty() {
        return None;
    }
    let mut ms: Vec<f64> = took.iter().map(|d| d.as_secs_f64() * 1000.0).collect();
    ms.sort_by(f64::total_cmp);
    let at = |q: f64| ms[((ms.len() - 1) as f64 * q).round() as usize];
    Some(format!(
        "{} batches by {workers} worker(s); batch transactions p50 {:.0} ms, p99 {:.0} ms, max {:.0} ms",
        ms.len(),
        at(0.5),
        at(0.99),
        ms[ms.len() - 1]
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn batches_grow_slowly_and_shrink_fast() {
        let target = Duration::from_millis(500);
        // Fast: a quarter more, not the 8x the speed would allow.
        assert_eq!(
            next_batch_rows(10_000, Duration::from_millis(50), target, 1_000_000),
            12_500
        );
        // Never past the maximum.
        assert_eq!(
            next_batch_rows(10_000, Duration::from_millis(50), target, 11_000),
            11_000
        );
        // Slow: at once to what would have taken 80 % of the target.
        assert_eq!(
            next_batch_rows(10_000, Duration::from_secs(2), target, 1_000_000),
            2_000
        );
        // Close to the target: unchanged.
        assert_eq!(
            next_batch_rows(10_000, Duration::from_millis(450), target, 1_000_000),
            10_000
        );
        assert_eq!(next_batch_rows(1, Duration::from_secs(60), target, 10), 1);
    }
}
