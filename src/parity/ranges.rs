//! Splitting a table's key space into ranges small enough that each is compared in a
//! short transaction. Boundaries come from a block sample of the table's keys, sorted in
//! key order: no planner statistics are needed (a freshly loaded table has none), any key
//! type and composite keys work, and reading about one block in fifty costs little next
//! to the comparison, which reads every row.

use serde::{Deserialize, Serialize};
use tokio_postgres::GenericClient;

use crate::error::{Context, Result};
use crate::model::Job;

/// A key value: the text form of each key column.
pub type KeyValue = Vec<String>;

/// `[lo, hi)`; `None` is unbounded.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyRange {
    pub lo: Option<KeyValue>,
    pub hi: Option<KeyValue>,
}

impl KeyRange {
    /// The WHERE clause for this range, numbering its parameters from `$first`, and
    /// the values to bind (each a `text[]`).
    pub fn clause(&self, job: &Job, first: usize) -> (String, Vec<KeyValue>) {
        let key = job.key.row(None);
        let mut parts = Vec::new();
        let mut params = Vec::new();
        if let Some(lo) = &self.lo {
            parts.push(format!(
                "{key} >= {}",
                job.key.param_row(first + params.len())
            ));
            params.push(lo.clone());
        }
        if let Some(hi) = &self.hi {
            parts.push(format!(
                "{key} < {}",
                job.key.param_row(first + params.len())
            ));
            params.push(hi.clone());
        }
        let clause = if parts.is_empty() {
            "true".to_string()
        } else {
            parts.join(" AND ")
        };
        (clause, params)
    }
}

/// Ranges covering the whole key space, cut at `bounds`.
pub fn from_bounds(bounds: &[KeyValue]) -> Vec<KeyRange> {
    let mut edges: Vec<Option<KeyValue>> = vec![None];
    edges.extend(bounds.iter().cloned().map(Some));
    edges.push(None);
    edges
        .windows(2)
        .map(|w| KeyRange {
            lo: w[0].clone(),
            hi: w[1].clone(),
        })
        .collect()
}

/// Blocks sampled per range: enough that a range's size is known to about 15 %.
const BLOCKS_PER_RANGE: f64 = 50.0;

/// The boundaries between ranges of about `range_rows` rows for `job`'s original
/// (plain) table, from a sample of its keys.
pub async fn bounds(
    client: &impl GenericClient,
    job: &Job,
    range_rows: u64,
) -> Result<Vec<KeyValue>> {
    let table = job.table.name.quoted();
    let ctx = || {
        format!(
            "sampling the keys of {} for the parity ranges",
            job.table.name
        )
    };
    let row = client
        .query_one(
            "SELECT greatest(pg_catalog.pg_relation_size($1::pg_catalog.text::pg_catalog.regclass)
                             / pg_catalog.current_setting('block_size')::pg_catalog.int8, 1)::pg_catalog.float8",
            &[&table],
        )
        .await
        .with_context(ctx)?;
    let pages: f64 = row.get(0);
    // Rows per block, from a first small sample (the planner's figure may be missing).
    let probe = (100.0 / pages * 100.0).min(100.0);
    let sql = format!(
        "SELECT pg_catalog.count(*)::pg_catalog.float8 FROM {table} TABLESAMPLE SYSTEM ($1::pg_catalog.float8::pg_catalog.float4) REPEATABLE (0)"
    );
    let probed: f64 = client
        .query_one(&sql, &[&probe])
        .await
        .with_context(ctx)?
        .get(0);
    let rows_per_page = (probed / (pages * probe / 100.0)).max(1.0);
    let rows = rows_per_page * pages;
    let ranges = (rows / range_rows.max(1) as f64).ceil().max(1.0);
    if ranges <= 1.0 {
        return Ok(vec![]);
    }
    let pages_per_range = pages / ranges;
    let pct = (BLOCKS_PER_RANGE / pages_per_range * 100.0).min(100.0);
    let sql = format!(
        "SELECT {} FROM {table} TABLESAMPLE SYSTEM ($1::pg_catalog.float8::pg_catalog.float4) REPEATABLE (1) ORDER BY {}",
        job.key.text_array(None),
        job.key.order_by(None, false)
    );
    let sample: Vec<KeyValue> = client
        .query(&sql, &[&pct])
        .await
        .with_context(ctx)?
        .iter()
        .map(|r| r.get(0))
        .collect();
    Ok(quantiles(sample, ranges as usize))
}

/// `ranges - 1` evenly spaced entries of a sorted sample, without repeats.
fn quantiles(sample: Vec<KeyValue>, ranges: usize) -> Vec<KeyValue> {
    if sample.is_empty() || ranges <= 1 {
        return vec![];
    }
    let step = sample.len() as f64 / ranges as f64;
    let mut picked: Vec<KeyValue> = (1..ranges)
        .map(|i| sample[((i as f64 * step) as usize).min(sample.len() - 1)].clone())
        .collect();
    picked.dedup();
    picked
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(s: &str) -> KeyValue {
        vec![s.to_string()]
    }

    #[test]
    fn bounds_become_ranges_covering_everything() {
        let r = from_bounds(&[v("10"), v("20")]);
        assert_eq!(r.len(), 3);
        assert_eq!(
            r[0],
            KeyRange {
                lo: None,
                hi: Some(v("10"))
            }
        );
        assert_eq!(
            r[2],
            KeyRange {
                lo: Some(v("20")),
                hi: None
            }
        );
        assert_eq!(from_bounds(&[]), vec![KeyRange { lo: None, hi: None }]);
    }

    #[test]
    fn quantiles_are_even_and_distinct() {
        let sample: Vec<KeyValue> = (0..100).map(|i| v(&format!("{i:03}"))).collect();
        let q = quantiles(sample, 4);
        assert_eq!(q, vec![v("025"), v("050"), v("075")]);
        let same: Vec<KeyValue> = (0..10).map(|_| v("x")).collect();
        assert_eq!(quantiles(same, 5), vec![v("x")]);
        assert!(quantiles(vec![], 5).is_empty());
    }
}
