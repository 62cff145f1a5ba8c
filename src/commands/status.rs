//! `hyperswap status`: where each plan stands, from the journal alone.

use serde::Serialize;
use tokio_postgres::Client;

use crate::error::Result;
use crate::journal;
use crate::model::CaptureId;

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
    /// The step `plan apply` runs next (`None`: none is left, or the plan is being
    /// removed).
    pub next_step: Option<String>,
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
    /// Keys in the change log, waiting for replay (before cutover; `None` when there is
    /// no change log, or it could not be counted).
    pub changes_waiting: Option<i64>,
    /// The catch-up as last sampled, while the tool was replaying the change log.
    pub catch_up: Option<CatchUpStatus>,
}

/// The last sample of a table's catch-up (see [`crate::watch`]).
#[derive(Debug, Clone, Serialize)]
pub struct CatchUpStatus {
    /// When it was taken.
    pub at: String,
    pub waiting: i64,
    pub log_bytes: i64,
    pub arrived_per_second: f64,
    pub replayed_per_second: f64,
    /// Whether the replay was keeping up with the application then.
    pub converging: bool,
    /// The same, in words.
    pub summary: String,
}

/// Every plan in the journal, or just `only`.
pub async fn status(client: &Client, only: Option<&str>) -> Result<Vec<PlanStatus>> {
    let mut out = Vec::new();
    for name in journal::plan_names(client).await? {
        if only.is_some_and(|o| o != name) {
            continue;
        }
        out.push(plan_status(client, &name).await?);
    }
    Ok(out)
}

async fn plan_status(client: &Client, name: &str) -> Result<PlanStatus> {
    let p = journal::plan_times(client, name).await?;
    let progress = journal::table_progress(client, name).await?;
    let recorded = journal::capture_ids(client, name).await?;
    let ids: Vec<CaptureId> = (0..progress.len())
        .map(|ord| CaptureId::from_recorded(recorded.get(&(ord as i32)).copied().flatten()))
        .collect();
    let mut tables: Vec<TableStatus> = progress
        .into_iter()
        .map(|t| TableStatus {
            source: t.source,
            target: t.target,
            retired: t.retired,
            rows_copied: t.rows_copied,
            rows_total: t.rows_total,
            batches: t.batches,
            rows_per_second: if t.seconds > 0.0 {
                t.rows_copied as f64 / t.seconds
            } else {
                0.0
            },
            changes_waiting: None,
            catch_up: None,
        })
        .collect();
    for s in journal::latest_catch_up(client, name).await? {
        if let Some(t) = tables.get_mut(s.ord as usize) {
            t.catch_up = Some(CatchUpStatus {
                summary: crate::watch::line(&s),
                at: s.at,
                waiting: s.waiting,
                log_bytes: s.log_bytes,
                arrived_per_second: s.arrived_per_s,
                replayed_per_second: s.replayed_per_s,
                converging: s.converging,
            });
        }
    }
    if p.phase != "cut_over" {
        for (t, id) in tables.iter_mut().zip(ids) {
            t.changes_waiting = match crate::ident::QualifiedName::parse(&t.source) {
                Ok(source) => crate::capture::waiting(client, &source, id).await,
                Err(_) => None,
            };
        }
    }
    let next_step = p
        .phase
        .parse::<crate::phase::Phase>()
        .ok()
        .and_then(crate::steps::next)
        .map(|(_, s)| s.name().to_string());
    Ok(PlanStatus {
        next_step,
        plan: name.to_string(),
        phase: p.phase,
        last_progress_at: p.last_progress_at,
        started_at: p.started_at,
        updated_at: p.updated_at,
        parity_passed_at: p.parity_passed_at,
        cutover_at: p.cutover_at,
        tables,
    })
}
