//! Cutting a table's key space into pieces of about equal rows, for the backfill's
//! worker ranges and parity's comparison ranges. Cut points come from a block sample of
//! the table's keys, sorted in key order: no planner statistics are needed (a freshly
//! loaded table has none), any key type and composite keys work, and reading about one
//! block in fifty per piece costs little next to copying or comparing every row.

use tokio_postgres::GenericClient;

use crate::error::{Context, Result};
use crate::ident::QualifiedName;
use crate::model::Key;

/// A key value: the text form of each key column.
pub type KeyValue = Vec<String>;

/// Blocks sampled per piece: enough that a piece's size is known to about 15 %.
const BLOCKS_PER_PIECE: f64 = 50.0;

/// A table's size, measured rather than taken from the planner (which may never have
/// seen the table).
#[derive(Debug, Clone, Copy)]
pub struct Size {
    pub pages: f64,
    pub rows: f64,
}

/// The table's pages, and its rows estimated from a small block sample.
pub async fn size(client: &impl GenericClient, table: &QualifiedName) -> Result<Size> {
    let quoted = table.quoted();
    let ctx = || format!("measuring {table} to cut its key space into ranges");
    let pages: f64 = client
        .query_one(
            "SELECT greatest(pg_catalog.pg_relation_size($1::pg_catalog.text::pg_catalog.regclass)
                             / pg_catalog.current_setting('block_size')::pg_catalog.int8, 1)::pg_catalog.float8",
            &[&quoted],
        )
        .await
        .with_context(ctx)?
        .get(0);
    // About a hundred blocks: rows per block without the planner's figure.
    let probe = (100.0 / pages * 100.0).min(100.0);
    let sql = format!(
        "SELECT pg_catalog.count(*)::pg_catalog.float8 FROM {quoted} TABLESAMPLE SYSTEM ($1::pg_catalog.float8::pg_catalog.float4) REPEATABLE (0)"
    );
    let probed: f64 = client
        .query_one(&sql, &[&probe])
        .await
        .with_context(ctx)?
        .get(0);
    let rows_per_page = (probed / (pages * probe / 100.0)).max(1.0);
    Ok(Size {
        pages,
        rows: rows_per_page * pages,
    })
}

/// Up to `pieces - 1` keys, in key order and distinct, that cut `table` into `pieces`
/// of about equal rows. None for a single piece.
pub async fn cut_points(
    client: &impl GenericClient,
    table: &QualifiedName,
    key: &Key,
    size: Size,
    pieces: usize,
) -> Result<Vec<KeyValue>> {
    if pieces <= 1 {
        return Ok(vec![]);
    }
    let pages_per_piece = size.pages / pieces as f64;
    let pct = (BLOCKS_PER_PIECE / pages_per_piece * 100.0).min(100.0);
    let sql = format!(
        "SELECT {} FROM {} TABLESAMPLE SYSTEM ($1::pg_catalog.float8::pg_catalog.float4) REPEATABLE (1) ORDER BY {}",
        key.text_array(None),
        table.quoted(),
        key.order_by(None, false)
    );
    let sample: Vec<KeyValue> = client
        .query(&sql, &[&pct])
        .await
        .with_context(|| format!("sampling the keys of {table} to cut it into ranges"))?
        .iter()
        .map(|r| r.get(0))
        .collect();
    Ok(quantiles(sample, pieces))
}

/// `pieces - 1` evenly spaced entries of a sorted sample, without repeats.
fn quantiles(sample: Vec<KeyValue>, pieces: usize) -> Vec<KeyValue> {
    if sample.is_empty() || pieces <= 1 {
        return vec![];
    }
    let step = sample.len() as f64 / pieces as f64;
    let mut picked: Vec<KeyValue> = (1..pieces)
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
    fn quantiles_are_even_and_distinct() {
        let sample: Vec<KeyValue> = (0..100).map(|i| v(&format!("{i:03}"))).collect();
        let q = quantiles(sample, 4);
        assert_eq!(q, vec![v("025"), v("050"), v("075")]);
        let same: Vec<KeyValue> = (0..10).map(|_| v("x")).collect();
        assert_eq!(quantiles(same, 5), vec![v("x")]);
        assert!(quantiles(vec![], 5).is_empty());
    }
}
