//! The backfill's key ranges: when it starts, each table's key space (up to its last
//! key then) is cut into ranges of about equal rows, from a sample of its keys, and
//! recorded in the journal, where the workers take them and advance their cursors.

use tokio_postgres::{GenericClient, Transaction};

use crate::error::{Context, Result};
use crate::journal::{self, RangeRecord};
use crate::keyspace;
use crate::model::Job;
use crate::stmt::SqlLog;

use super::sql::bounds_sql;

/// Rows per range at least: smaller tables are not worth cutting.
const MIN_RANGE_ROWS: f64 = 50_000.0;
/// Rows per range at most, so that a resumed run with more workers finds work to share.
const MAX_RANGE_ROWS: f64 = 2_000_000.0;

/// How many ranges a table of `rows` is cut into for `workers`: enough for every worker
/// to have several (the last ranges finish at about the same time), none tiny.
pub fn ranges_for(rows: f64, workers: usize) -> usize {
    let by_workers = (workers * 4) as f64;
    let by_size = (rows / MAX_RANGE_ROWS).ceil();
    let most = (rows / MIN_RANGE_ROWS).floor().max(1.0);
    by_workers.max(by_size).min(most).clamp(1.0, 1024.0) as usize
}

/// The worker count: the plan's (or the command line's), else sized to the server.
pub async fn worker_count(client: &impl GenericClient, asked: Option<u32>) -> Result<usize> {
    if let Some(n) = asked {
        return Ok(n as usize);
    }
    let n: i32 = client
        .query_one(
            "SELECT pg_catalog.current_setting('max_parallel_workers_per_gather')::pg_catalog.int4",
            &[],
        )
        .await
        .context("sizing the backfill to the server")?
        .get(0);
    Ok(n.clamp(2, 8) as usize)
}

/// Captures every table's key range (after the copy triggers are committed, so rows
/// beyond the last key are the triggers' to copy) and cuts it for `workers`, inside
/// `tx`: a REPEATABLE READ transaction, so that bounds and sample agree. The step
/// commits it with its move to `backfilling`.
pub async fn prepare(
    tx: &Transaction<'_>,
    log: &SqlLog,
    plan: &str,
    jobs: &[Job],
    workers: usize,
) -> Result<()> {
    let ctx = "capturing the backfill's key ranges";
    for job in jobs {
        let sql = bounds_sql(job);
        log.record(&sql);
        let row = tx.query_one(&sql, &[]).await.context(ctx)?;
        let (lo, hi): (Option<Vec<String>>, Option<Vec<String>>) = (row.get(0), row.get(1));
        let ord = job.ord as i32;
        let Some(hi) = hi else {
            // An empty table has nothing to copy: its range is done from the start.
            journal::set_rows_total(tx, plan, ord, 0).await?;
            let range = RangeRecord::new(ord, 0, lo, vec![], None);
            journal::add_range(
                tx,
                plan,
                &RangeRecord {
                    done: true,
                    ..range
                },
            )
            .await?;
            continue;
        };
        let size = keyspace::size(tx, &job.source).await?;
        // The planner's count when the table was analysed (closer), else the sample's.
        let rows = if job.table.estimated_rows >= 1.0 {
            job.table.estimated_rows
        } else {
            size.rows
        };
        journal::set_rows_total(tx, plan, ord, rows as i64).await?;
        let pieces = ranges_for(rows, workers);
        let cuts = keyspace::cut_points(tx, &job.source, &job.key, size, pieces).await?;
        for range in cut_ranges(ord, lo, hi, cuts) {
            journal::add_range(tx, plan, &range).await?;
        }
    }
    Ok(())
}

/// The ranges `[lo, c1], (c1, c2], ..., (cn, hi]`: each after the first starts with its
/// cursor on the previous range's last key.
fn cut_ranges(
    ord: i32,
    lo: Option<Vec<String>>,
    hi: Vec<String>,
    cuts: Vec<Vec<String>>,
) -> Vec<RangeRecord> {
    let mut ends: Vec<Vec<String>> = cuts.into_iter().filter(|c| *c != hi).collect();
    ends.push(hi);
    let mut out = Vec::with_capacity(ends.len());
    let mut start: Option<Vec<String>> = None;
    for (i, end) in ends.into_iter().enumerate() {
        let range = match start.take() {
            None => RangeRecord::new(ord, i as i32, lo.clone(), end.clone(), None),
            Some(after) => {
                RangeRecord::new(ord, i as i32, Some(after.clone()), end.clone(), Some(after))
            }
        };
        out.push(range);
        start = Some(end);
    }
    out
}

impl RangeRecord {
    fn new(
        ord: i32,
        range_no: i32,
        lo: Option<Vec<String>>,
        hi: Vec<String>,
        cursor: Option<Vec<String>>,
    ) -> Self {
        RangeRecord {
            ord,
            range_no,
            lo,
            hi,
            cursor,
            rows_copied: 0,
            done: false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn k(s: &str) -> Vec<String> {
        vec![s.to_string()]
    }

    #[test]
    fn ranges_are_cut_for_the_workers_but_never_tiny() {
        assert_eq!(ranges_for(5_000_000.0, 2), 8);
        assert_eq!(ranges_for(40_000_000.0, 2), 20);
        assert_eq!(ranges_for(120_000.0, 4), 2);
        assert_eq!(ranges_for(10.0, 8), 1);
    }

    #[test]
    fn cut_ranges_chain_cursor_to_previous_end() {
        let r = cut_ranges(0, Some(k("1")), k("100"), vec![k("30"), k("60"), k("100")]);
        assert_eq!(r.len(), 3);
        assert_eq!(
            (r[0].lo.clone(), r[0].cursor.clone(), r[0].hi.clone()),
            (Some(k("1")), None, k("30"))
        );
        assert_eq!(
            (r[1].cursor.clone(), r[1].hi.clone()),
            (Some(k("30")), k("60"))
        );
        assert_eq!(
            (r[2].cursor.clone(), r[2].hi.clone()),
            (Some(k("60")), k("100"))
        );
        assert_eq!(
            r.iter().map(|r| r.range_no).collect::<Vec<_>>(),
            vec![0, 1, 2]
        );
        let one = cut_ranges(0, Some(k("1")), k("9"), vec![]);
        assert_eq!(one.len(), 1);
        assert_eq!(one[0].hi, k("9"));
    }
}
