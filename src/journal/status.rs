//! What `status` reads of a plan: its phase and times, and each table's progress.

use tokio_postgres::GenericClient;

use crate::error::{Context, Result};

/// A plan's phase and times, as text for people (`YYYY-MM-DD HH24:MI:SS+TZ`).
pub struct PlanTimes {
    pub phase: String,
    pub started_at: String,
    pub updated_at: String,
    pub parity_passed_at: Option<String>,
    pub cutover_at: Option<String>,
    /// The last batch's commit.
    pub last_progress_at: Option<String>,
}

pub async fn plan_times(client: &impl GenericClient, plan: &str) -> Result<PlanTimes> {
    let ctx = "reading the journal";
    let p = client
        .query_one(
            "SELECT phase, to_char(started_at, 'YYYY-MM-DD HH24:MI:SSOF'), to_char(updated_at, 'YYYY-MM-DD HH24:MI:SSOF'),
                    to_char(parity_passed_at, 'YYYY-MM-DD HH24:MI:SSOF'), to_char(cutover_at, 'YYYY-MM-DD HH24:MI:SSOF'),
                    (SELECT to_char(max(updated_at), 'YYYY-MM-DD HH24:MI:SSOF') FROM hyperswap.ranges WHERE plan_name = $1)
             FROM hyperswap.plans WHERE name = $1",
            &[&plan],
        )
        .await
        .context(ctx)?;
    Ok(PlanTimes {
        phase: p.get(0),
        started_at: p.get(1),
        updated_at: p.get(2),
        parity_passed_at: p.get(3),
        cutover_at: p.get(4),
        last_progress_at: p.get(5),
    })
}

/// One table's backfill progress.
pub struct TableProgress {
    pub source: String,
    pub target: String,
    pub retired: String,
    pub rows_copied: i64,
    pub rows_total: i64,
    pub batches: i64,
    /// From the first range's start to the last batch.
    pub seconds: f64,
}

pub async fn table_progress(client: &impl GenericClient, plan: &str) -> Result<Vec<TableProgress>> {
    let rows = client
        .query(
            "SELECT t.source, t.target, t.retired, coalesce(sum(r.rows_copied), 0)::bigint,
                    coalesce(t.rows_total, 0), coalesce(sum(r.batches), 0)::bigint,
                    coalesce(extract(epoch FROM max(r.updated_at) - min(r.started_at)), 0)::float8
             FROM hyperswap.tables t
             LEFT JOIN hyperswap.ranges r ON r.plan_name = t.plan_name AND r.ord = t.ord
             WHERE t.plan_name = $1
             GROUP BY t.ord, t.source, t.target, t.retired, t.rows_total
             ORDER BY t.ord",
            &[&plan],
        )
        .await
        .context("reading the journal")?;
    Ok(rows
        .iter()
        .map(|r| TableProgress {
            source: r.get(0),
            target: r.get(1),
            retired: r.get(2),
            rows_copied: r.get(3),
            rows_total: r.get(4),
            batches: r.get(5),
            seconds: r.get(6),
        })
        .collect())
}
