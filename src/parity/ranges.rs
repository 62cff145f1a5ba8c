//! Parity's ranges: the key space cut (see [`crate::keyspace`]) into ranges small enough
//! that each is compared in a short transaction.

use serde::{Deserialize, Serialize};
use tokio_postgres::GenericClient;

use crate::error::Result;
use crate::keyspace;
pub use crate::keyspace::KeyValue;
use crate::model::Job;

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
        let mut parts = Vec::new();
        let mut params = Vec::new();
        if let Some(lo) = &self.lo {
            parts.push(
                job.key
                    .compare(None, ">=", &job.key.param_values(first + params.len())),
            );
            params.push(lo.clone());
        }
        if let Some(hi) = &self.hi {
            parts.push(
                job.key
                    .compare(None, "<", &job.key.param_values(first + params.len())),
            );
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

/// The boundaries between ranges of about `range_rows` rows for `job`'s original
/// (plain) table, from a sample of its keys.
pub async fn bounds(
    client: &impl GenericClient,
    job: &Job,
    range_rows: u64,
) -> Result<Vec<KeyValue>> {
    let size = keyspace::size(client, &job.table.name).await?;
    let ranges = (size.rows / range_rows.max(1) as f64).ceil().max(1.0) as usize;
    keyspace::cut_points(client, &job.table.name, &job.key, size, ranges).await
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
}
