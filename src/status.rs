//! `hyperswap status`: where each plan stands, from the journal alone.

use serde::Serialize;
use tokio_postgres::GenericClient;

use crate::error::{Context, Result};
use crate::journal;

#[derive(Debug, Clone, Serialize)]
pub struct PlanStatus {
    pub plan: String,
    pub phase: String,
    /// When a batch last committed (the backfill's heartbeat).
    pub last_progress_at: Option<String>,
    pub started_at: String,
    pub updated_at: String,
    pub parity_passed_at: Option<String>,
    pub cutover_at: Option<String>,
    pub tables: Vec<TableStatus>,
}

#[derive(Debug, Clone, Serialize)]
pub struct TableStatus {
    pub source: String,
    pub target: String,
    pub retired: String,
    pub rows_copied: i64,
    /// Estimated when the backfill started.
    pub rows_total: i64,
    pub batches: i64,
    /// Rows per second over the backfill so far.
    pub rows_per_second: f64,
}

/// Every plan in the journal, or just `only`.
pub async fn status(client: &impl GenericClient, only: Option<&str>) -> Result<Vec<PlanStatus>> {
    let mut out = Vec::new();
    for name in journal::plan_names(client).await? {
        if only.is_some_and(|o| o != name) {
            continue;
        }
        out.push(plan_status(client, &name).await?);
    }
    Ok(out)
}

async fn plan_status(client: &impl GenericClient, name: &str) -> Result<PlanStatus> {
    let ctx = "reading the journal";
    let p = client
        .query_one(
            "SELECT phase, to_char(started_at, 'YYYY-MM-DD HH24:MI:SSOF'), to_char(updated_at, 'YYYY-MM-DD HH24:MI:SSOF'),
                    to_char(parity_passed_at, 'YYYY-MM-DD HH24:MI:SSOF'), to_char(cutover_at, 'YYYY-MM-DD HH24:MI:SSOF')
             FROM hyperswap.plans WHERE name = $1",
            &[&name],
        )
        .await
        .context(ctx)?;
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
            &[&name],
        )
        .await
        .context(ctx)?;
    let tables = rows
        .iter()
        .map(|r| {
            let copied: i64 = r.get(3);
            let secs: f64 = r.get(6);
            TableStatus {
                source: r.get(0),
                target: r.get(1),
                retired: r.get(2),
                rows_copied: copied,
                rows_total: r.get(4),
                batches: r.get(5),
                rows_per_second: if secs > 0.0 {
                    copied as f64 / secs
                } else {
                    0.0
                },
            }
        })
        .collect();
    Ok(PlanStatus {
        plan: name.to_string(),
        phase: p.get(0),
        last_progress_at: client
            .query_one(
                "SELECT to_char(max(updated_at), 'YYYY-MM-DD HH24:MI:SSOF') FROM hyperswap.ranges WHERE plan_name = $1",
                &[&name],
            )
            .await
            .context(ctx)?
            .get(0),
        started_at: p.get(1),
        updated_at: p.get(2),
        parity_passed_at: p.get(3),
        cutover_at: p.get(4),
        tables,
    })
}
