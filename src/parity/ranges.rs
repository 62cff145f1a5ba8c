//! Splitting a table's key space into ranges small enough that each is compared in a
//! short transaction. Boundaries come from the planner's histogram of the key (free,
//! and even for skewed keys), else from an even split of the key's min..max.

use serde::{Deserialize, Serialize};
use tokio_postgres::GenericClient;

use crate::error::{Context, Result};
use crate::ident::quote_ident;
use crate::model::Job;

/// `[lo, hi)` in the key's text form; `None` is unbounded.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyRange {
    pub lo: Option<String>,
    pub hi: Option<String>,
}

impl KeyRange {
    /// The WHERE clause for this range, numbering its parameters from `$first`, and
    /// the values to bind.
    pub fn clause(&self, job: &Job, first: usize) -> (String, Vec<String>) {
        let key = quote_ident(&job.key.name);
        let ty = &job.key.type_sql;
        let mut parts = Vec::new();
        let mut params = Vec::new();
        if let Some(lo) = &self.lo {
            parts.push(format!("{key} >= ${}::text::{ty}", first + params.len()));
            params.push(lo.clone());
        }
        if let Some(hi) = &self.hi {
            parts.push(format!("{key} < ${}::text::{ty}", first + params.len()));
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

/// Ranges covering the whole key space, of about `range_rows` rows each.
pub fn from_bounds(bounds: &[String]) -> Vec<KeyRange> {
    let mut edges: Vec<Option<String>> = vec![None];
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

/// The boundaries between ranges for `job`'s live table.
pub async fn bounds(
    client: &impl GenericClient,
    job: &Job,
    rows: f64,
    range_rows: u64,
) -> Result<Vec<String>> {
    let ranges = (rows / range_rows.max(1) as f64).ceil().max(1.0) as usize;
    if ranges <= 1 {
        return Ok(vec![]);
    }
    let histogram = histogram(client, job).await?;
    if histogram.len() >= ranges {
        // Evenly spaced histogram entries: each bucket holds about the same rows.
        let step = histogram.len() as f64 / ranges as f64;
        let mut picked: Vec<String> = (1..ranges)
            .map(|i| histogram[(i as f64 * step) as usize].clone())
            .collect();
        picked.dedup();
        return Ok(picked);
    }
    even_split(client, job, ranges).await
}

async fn histogram(client: &impl GenericClient, job: &Job) -> Result<Vec<String>> {
    let row = client
        .query_opt(
            "SELECT histogram_bounds::text::text[] FROM pg_stats
             WHERE schemaname = $1 AND tablename = $2 AND attname = $3 AND NOT inherited",
            &[&job.table.name.schema, &job.table.name.name, &job.key.name],
        )
        .await
        .context("reading the key's histogram")?;
    Ok(row
        .and_then(|r| r.get::<_, Option<Vec<String>>>(0))
        .unwrap_or_default())
}

/// `ranges - 1` boundaries spread evenly between the key's min and max (integer keys).
async fn even_split(client: &impl GenericClient, job: &Job, ranges: usize) -> Result<Vec<String>> {
    let key = quote_ident(&job.key.name);
    let sql = format!(
        "SELECT min({key})::bigint, max({key})::bigint FROM {}",
        job.table.name.quoted()
    );
    let row = client
        .query_one(&sql, &[])
        .await
        .context("reading the key's bounds")?;
    let (Some(min), Some(max)) = (row.get::<_, Option<i64>>(0), row.get::<_, Option<i64>>(1))
    else {
        return Ok(vec![]);
    };
    let width = ((max as i128 - min as i128) / ranges as i128).max(1);
    let mut out: Vec<String> = (1..ranges as i128)
        .map(|i| (min as i128 + i * width).to_string())
        .filter(|b| b.parse::<i128>().is_ok_and(|v| v <= max as i128))
        .collect();
    out.dedup();
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bounds_become_ranges_covering_everything() {
        let r = from_bounds(&["10".into(), "20".into()]);
        assert_eq!(r.len(), 3);
        assert_eq!(
            r[0],
            KeyRange {
                lo: None,
                hi: Some("10".into())
            }
        );
        assert_eq!(
            r[2],
            KeyRange {
                lo: Some("20".into()),
                hi: None
            }
        );
        assert_eq!(from_bounds(&[]), vec![KeyRange { lo: None, hi: None }]);
    }
}
