//! Each table's backfill: its estimated rows and its key ranges, with the cursor each
//! batch advances.

use tokio_postgres::GenericClient;

use crate::error::{Context, Result};

/// One backfill range of one table.
#[derive(Debug, Clone)]
pub struct RangeRecord {
    pub ord: i32,
    pub range_no: i32,
    /// Key values as text, one per key column.
    pub lo: Option<Vec<String>>,
    pub hi: Vec<String>,
    pub cursor: Option<Vec<String>>,
    pub rows_copied: i64,
    pub done: bool,
}

/// Backfill ranges of the plan, in table and range order.
pub async fn ranges(client: &impl GenericClient, plan: &str) -> Result<Vec<RangeRecord>> {
    let rows = client
        .query(
            "SELECT ord, range_no, lo, hi, cursor, rows_copied, done FROM hyperswap.ranges
             WHERE plan_name = $1 ORDER BY ord, range_no",
            &[&plan],
        )
        .await
        .context("reading backfill progress from the journal")?;
    Ok(rows
        .iter()
        .map(|r| RangeRecord {
            ord: r.get(0),
            range_no: r.get(1),
            lo: r.get(2),
            hi: r.get(3),
            cursor: r.get(4),
            rows_copied: r.get(5),
            done: r.get(6),
        })
        .collect())
}

/// Records a table's estimated rows when its backfill starts, for progress and ETA.
pub async fn set_rows_total(
    tx: &impl GenericClient,
    plan: &str,
    ord: i32,
    rows: i64,
) -> Result<()> {
    tx.execute(
        "UPDATE hyperswap.tables SET rows_total = $3 WHERE plan_name = $1 AND ord = $2",
        &[&plan, &ord, &rows],
    )
    .await
    .context("recording the backfill's size in the journal")?;
    Ok(())
}

/// The estimated rows recorded when the table's backfill started (0 if none).
pub async fn rows_total(client: &impl GenericClient, plan: &str, ord: i32) -> Result<i64> {
    Ok(client
        .query_one(
            "SELECT coalesce(rows_total, 0) FROM hyperswap.tables WHERE plan_name = $1 AND ord = $2",
            &[&plan, &ord],
        )
        .await
        .context("reading backfill progress")?
        .get(0))
}

/// Records one backfill range (kept as it is when already recorded).
pub async fn add_range(tx: &impl GenericClient, plan: &str, range: &RangeRecord) -> Result<()> {
    tx.execute(
        "INSERT INTO hyperswap.ranges (plan_name, ord, range_no, lo, hi, cursor, done)
         VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT DO NOTHING",
        &[
            &plan,
            &range.ord,
            &range.range_no,
            &range.lo,
            &range.hi,
            &range.cursor,
            &range.done,
        ],
    )
    .await
    .context("recording the backfill's key ranges")?;
    Ok(())
}

/// Statement advancing a range's cursor after a batch, prepared once per session:
/// $1 plan, $2 ord, $3 range_no, $4 last key copied, $5 rows, $6 done.
pub const ADVANCE_RANGE: &str = "UPDATE hyperswap.ranges
     SET cursor = $4, rows_copied = rows_copied + $5, batches = batches + 1,
         done = $6, updated_at = now()
     WHERE plan_name = $1 AND ord = $2 AND range_no = $3";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn advance_range_takes_its_parameters_in_the_documented_order() {
        // The backfill binds (plan, ord, range_no, last key copied, rows, done).
        let sql = ADVANCE_RANGE;
        assert!(sql.starts_with("UPDATE hyperswap.ranges\n"), "{sql}");
        assert!(
            sql.contains("WHERE plan_name = $1 AND ord = $2 AND range_no = $3"),
            "{sql}"
        );
        assert!(sql.contains("SET cursor = $4,"), "{sql}");
        assert!(sql.contains("rows_copied = rows_copied + $5,"), "{sql}");
        assert!(sql.contains("batches = batches + 1,"), "{sql}");
        assert!(sql.contains("done = $6,"), "{sql}");
        assert!(!sql.contains("$7"), "{sql}");
    }
}
