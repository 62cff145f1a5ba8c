//! Reading one range of a comparison, on a lane's connection: both sides' checksums in
//! one REPEATABLE READ transaction, or the exact keys of a differing range, in a
//! snapshot of its own (each begun, and tried again, as `replay.rs` says); and what
//! the lanes record meanwhile.

use std::collections::HashSet;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use tokio_postgres::types::ToSql;
use tokio_postgres::Client;

use crate::error::Result;
use crate::journal::RangeSums as Sums;
use crate::model::Job;
use crate::phase::Phase;
use crate::progress::Cancel;
use crate::stmt::SqlLog;

use super::diff::classify;
use super::ranges::KeyRange;
use super::replay::{snapshot, RangeReplay};
use super::sql::{checksum_sql, pinpoint_sql, RowText};
use super::{pair, Difference, MAX_DIFFERENCES};

/// What every lane records: the statements logged once, the longest transaction.
#[derive(Default)]
pub(super) struct LaneStats {
    logged: Mutex<HashSet<String>>,
    pub(super) longest: Mutex<Duration>,
}

impl LaneStats {
    fn log_once(&self, log: &SqlLog, sql: &str) {
        if self
            .logged
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(sql.to_string())
        {
            log.record(sql);
        }
    }

    fn took(&self, d: Duration) {
        let mut l = self.longest.lock().unwrap_or_else(|p| p.into_inner());
        *l = (*l).max(d);
    }
}

/// How a comparison reads its ranges: the pair its phase compares (and whether a range
/// replays first), where statements are logged, Ctrl-C.
#[derive(Clone, Copy)]
pub(super) struct Reader<'a> {
    pub(super) phase: Phase,
    pub(super) log: &'a SqlLog,
    pub(super) cancel: &'a Cancel,
}

impl Reader<'_> {
    /// Both sides of one range in one REPEATABLE READ snapshot, on one connection.
    pub(super) async fn checksum(
        &self,
        conn: &mut Client,
        stats: &LaneStats,
        job: &Job,
        range: &KeyRange,
        text: RowText,
    ) -> Result<(Sums, Sums)> {
        let ctx = || format!("checking parity of {}", job.source);
        let (live, mirror) = pair(job, self.phase);
        let (live_sql, params) = checksum_sql(job, live, range, text);
        let (mirror_sql, _) = checksum_sql(job, mirror, range, text);
        stats.log_once(self.log, &live_sql);
        stats.log_once(self.log, &mirror_sql);
        let params: Vec<&(dyn ToSql + Sync)> =
            params.iter().map(|p| p as &(dyn ToSql + Sync)).collect();
        let mut first = self.range_replay(stats, job, range);
        let (l, m) = loop {
            let started = Instant::now();
            let read = async {
                let tx = snapshot(
                    conn,
                    crate::capture::of(job),
                    first.replay(&params),
                    first.owner(),
                )
                .await?;
                let l = tx.query_one(&live_sql, &params).await?;
                let m = tx.query_one(&mirror_sql, &params).await?;
                tx.commit().await?;
                Ok::<_, tokio_postgres::Error>((l, m))
            }
            .await;
            stats.took(started.elapsed());
            match read {
                Ok(both) => break both,
                Err(e) => {
                    first
                        .recover(e, conn, self.log, self.cancel, job, ctx())
                        .await?
                }
            }
        };
        let sums = |r: &tokio_postgres::Row| Sums {
            rows: r.get(0),
            sum: r.get(1),
            xor: r.get(2),
        };
        Ok((sums(&l), sums(&m)))
    }

    /// The exact keys of a differing range, in a snapshot of their own.
    pub(super) async fn pinpoint(
        &self,
        conn: &mut Client,
        stats: &LaneStats,
        job: &Job,
        range: &KeyRange,
    ) -> Result<Vec<Difference>> {
        let ctx = || format!("narrowing down the differences in {}", job.source);
        let (live, mirror) = pair(job, self.phase);
        let (sql, params) = pinpoint_sql(job, live, mirror, range);
        stats.log_once(self.log, &sql);
        let limit = (MAX_DIFFERENCES as i64 + 1) * 2;
        let mut values: Vec<&(dyn ToSql + Sync)> =
            params.iter().map(|p| p as &(dyn ToSql + Sync)).collect();
        values.push(&limit);
        let mut first = self.range_replay(stats, job, range);
        let rows = loop {
            let started = Instant::now();
            let read = async {
                let tx = snapshot(
                    conn,
                    crate::capture::of(job),
                    first.replay(&values),
                    first.owner(),
                )
                .await?;
                let rows = tx.query(&sql, &values).await?;
                tx.commit().await?;
                Ok::<_, tokio_postgres::Error>(rows)
            }
            .await;
            stats.took(started.elapsed());
            match read {
                Ok(rows) => break rows,
                Err(e) => {
                    first
                        .recover(e, conn, self.log, self.cancel, job, ctx())
                        .await?
                }
            }
        };
        let names: Vec<&str> = job.table.columns.iter().map(|c| c.name.as_str()).collect();
        Ok(classify(
            &names,
            rows.iter().map(|r| (r.get(0), r.get(1), r.get(2))),
        ))
    }

    /// What a range's transaction runs first (logged once per run): before cutover,
    /// the replay of the range's change-log entries, as the table's owner.
    fn range_replay(&self, stats: &LaneStats, job: &Job, range: &KeyRange) -> RangeReplay {
        let replay = self.phase.source_is_live().then(|| {
            let (clause, params) = range.clause(job, 1);
            (
                crate::capture::of(job).range_replay_sql(job, &clause),
                params.len(),
            )
        });
        let owner = job.as_owner_sql().filter(|_| replay.is_some());
        for sql in replay.iter().map(|(s, _)| s).chain(owner.iter()) {
            stats.log_once(self.log, sql);
        }
        RangeReplay::new(replay, owner)
    }
}

/// Whole-row text when both sides have the same columns, types and order (a column
/// named like the alias would shadow it, so then not either).
pub async fn row_text(client: &Client, job: &Job, phase: Phase) -> Result<RowText> {
    let (live, mirror) = pair(job, phase);
    let a = crate::catalog::row_signature(client, live).await?;
    let b = crate::catalog::row_signature(client, mirror).await?;
    Ok(if a.is_some() && a == b {
        RowText::WholeRow
    } else {
        RowText::Columns
    })
}
