//! Phase 4, parity: do the live table and its mirror hold the same rows? Both are read
//! in one REPEATABLE READ snapshot, so the answer is exact while the application writes:
//! the copy trigger runs in the writer's transaction, so every snapshot sees both sides
//! of each write or neither.

use serde::Serialize;
use tokio_postgres::Client;

use crate::error::{Context, Result};
use crate::ident::QualifiedName;
use crate::model::Job;
use crate::phase::Phase;
use crate::stmt::{SqlLog, Stmt};

/// The pair parity compares: `live` carries the application; `mirror` is kept in step.
pub fn pair(job: &Job, phase: Phase) -> (&QualifiedName, &QualifiedName) {
    if phase.source_is_live() {
        (&job.source, &job.target)
    } else {
        (&job.source, &job.retired)
    }
}

/// The statements of one table's comparison.
pub fn statements(job: &Job, phase: Phase) -> Vec<Stmt> {
    let (live, mirror) = pair(job, phase);
    vec![
        Stmt::new(format!("SELECT count(*) FROM {}", live.quoted())),
        Stmt::new(format!("SELECT count(*) FROM {}", mirror.quoted())),
    ]
}

/// Statistics for the new table before it takes traffic.
pub fn analyze_statement(job: &Job) -> Stmt {
    Stmt::noted(
        format!("ANALYZE {}", job.target.quoted()),
        "fresh statistics before the new table takes traffic",
    )
}

#[derive(Debug, Clone, Serialize)]
pub struct TableParity {
    pub table: String,
    pub live: String,
    pub mirror: String,
    pub live_rows: i64,
    pub mirror_rows: i64,
    pub equal: bool,
}

#[derive(Debug, Clone, Serialize)]
pub struct ParityReport {
    pub plan: String,
    pub phase: String,
    pub equal: bool,
    pub tables: Vec<TableParity>,
}

/// Compares every table of the plan, each in its own read-only snapshot.
pub async fn check(
    client: &mut Client,
    log: &SqlLog,
    plan: &str,
    jobs: &[Job],
    phase: Phase,
) -> Result<ParityReport> {
    let mut tables = Vec::new();
    for job in jobs {
        tables.push(check_table(client, log, job, phase).await?);
    }
    let equal = tables.iter().all(|t| t.equal);
    Ok(ParityReport {
        plan: plan.to_string(),
        phase: phase.to_string(),
        equal,
        tables,
    })
}

async fn check_table(
    client: &mut Client,
    log: &SqlLog,
    job: &Job,
    phase: Phase,
) -> Result<TableParity> {
    let ctx = || format!("checking parity of {}", job.source);
    let tx = client
        .build_transaction()
        .isolation_level(tokio_postgres::IsolationLevel::RepeatableRead)
        .read_only(true)
        .start()
        .await
        .with_context(ctx)?;
    let mut counts = Vec::new();
    for stmt in statements(job, phase) {
        log.record(&stmt.sql);
        counts.push(
            tx.query_one(&stmt.sql, &[])
                .await
                .with_context(ctx)?
                .get::<_, i64>(0),
        );
    }
    tx.commit().await.with_context(ctx)?;
    let (live, mirror) = pair(job, phase);
    Ok(TableParity {
        table: job.source.to_string(),
        live: live.to_string(),
        mirror: mirror.to_string(),
        live_rows: counts[0],
        mirror_rows: counts[1],
        equal: counts[0] == counts[1],
    })
}

/// Records a passing result in the journal.
pub async fn record_pass(client: &Client, plan: &str) -> Result<()> {
    client
        .execute(
            "UPDATE hyperswap.plans SET parity_passed_at = now() WHERE name = $1",
            &[&plan],
        )
        .await
        .context("recording parity in the journal")?;
    Ok(())
}
