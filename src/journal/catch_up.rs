//! The catch-up's samples: per table of a plan, every few seconds while the change log
//! is replayed, what waits and how fast it arrives and goes.

use tokio_postgres::GenericClient;

use crate::error::{Context, Result};
use crate::phase::Phase;

/// One sample of a table's catch-up.
#[derive(Debug, Clone, PartialEq)]
pub struct CatchUpSample {
    pub ord: i32,
    /// When, as the database's clock says (`YYYY-MM-DD HH24:MI:SSOF`).
    pub at: String,
    /// Entries waiting in the log (the statistics' count).
    pub waiting: i64,
    pub log_bytes: i64,
    pub arrived_per_s: f64,
    pub replayed_per_s: f64,
    /// Whether the replay has caught up with what arrived lately.
    pub converging: bool,
}

/// Appends a sample of table `ord` of `plan`.
pub async fn record_catch_up(
    client: &impl GenericClient,
    plan: &str,
    phase: Phase,
    s: &CatchUpSample,
) -> Result<()> {
    client
        .execute(
            "INSERT INTO hyperswap.catch_up (plan_name, ord, phase, waiting, log_bytes, arrived_per_s, replayed_per_s, converging)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
            &[
                &plan,
                &s.ord,
                &phase.as_str(),
                &s.waiting,
                &s.log_bytes,
                &s.arrived_per_s,
                &s.replayed_per_s,
                &s.converging,
            ],
        )
        .await
        .context("recording the catch-up in the journal")?;
    Ok(())
}

/// The last sample of each table of `plan` that has one.
pub async fn latest_catch_up(
    client: &impl GenericClient,
    plan: &str,
) -> Result<Vec<CatchUpSample>> {
    // None in a journal an earlier build made (until `plan apply` brings it up to date).
    let exists: bool = client
        .query_one(
            "SELECT pg_catalog.to_regclass('hyperswap.catch_up') IS NOT NULL",
            &[],
        )
        .await
        .context("reading the catch-up from the journal")?
        .get(0);
    if !exists {
        return Ok(Vec::new());
    }
    let rows = client
        .query(
            "SELECT DISTINCT ON (ord) ord, to_char(at, 'YYYY-MM-DD HH24:MI:SSOF'), waiting, log_bytes,
                    arrived_per_s, replayed_per_s, converging
             FROM hyperswap.catch_up WHERE plan_name = $1
             ORDER BY ord, at DESC",
            &[&plan],
        )
        .await
        .context("reading the catch-up from the journal")?;
    Ok(rows
        .iter()
        .map(|r| CatchUpSample {
            ord: r.get(0),
            at: r.get(1),
            waiting: r.get(2),
            log_bytes: r.get(3),
            arrived_per_s: r.get(4),
            replayed_per_s: r.get(5),
            converging: r.get(6),
        })
        .collect())
}
