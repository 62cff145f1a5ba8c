//! `hyperswap rollback`: after cutover, run the reverse SQL the cutover transaction
//! recorded in the journal, as one transaction with the same lock discipline. The
//! retired table was kept current by the reverse trigger, so no write is lost; the copy
//! trigger is re-installed, so the plan can cut over again later. Foreign keys dropped
//! at cutover come back NOT VALID inside that transaction and are validated right after
//! it, each in a transaction of its own; a rollback interrupted between the two is
//! completed by running `rollback` (or `plan apply`) again.

use tokio_postgres::Client;

use crate::context::{Context, PlanLock};
use crate::cutover;
use crate::error::{Error, Result};
use crate::journal::PlanRecord;
use crate::parity::ParityReport;
use crate::phase::Phase;
use crate::privileges;
use crate::stmt::{self, SqlLog, Stmt};
use crate::validate;

/// Rolls back the cutover of `cx`'s plan, then checks the original against the
/// hypertable (as before cutover) and returns that check.
pub async fn rollback(cx: &Context<'_>) -> Result<ParityReport> {
    let (plan, log) = (cx.plan, cx.log);
    let (mut client, record) = cx
        .open(&format!("hyperswap rollback {}", plan.name), PlanLock::Take)
        .await?
        .started(plan, "rollback")?;
    if !record.phase.cut_over() && record.phase != Phase::RolledBack {
        return Err(Error::WrongPhase {
            plan: plan.name.clone(),
            phase: Some(record.phase),
            problem: "`rollback` undoes a cutover only (before cutover the source is still live)"
                .into(),
            fix: format!(
                "to undo the plan before cutover: `hyperswap abort {}`",
                plan.path.display()
            ),
        });
    }
    let reverse = record.reverse_sql.clone().ok_or_else(|| {
        Error::invalid(
            format!("the journal holds no reverse SQL for the cutover of plan `{}`: it was not written by this hyperswap", plan.name),
            "roll back by hand with the statements `hyperswap plan show` prints for the rollback, or finish the move with the hyperswap that cut it over",
        )
    })?;
    if record.phase.cut_over() {
        let (main, pinned) = cutover::rollback_transaction(&reverse);
        if !pinned {
            tracing::warn!(
                "plan `{}` was cut over by an earlier hyperswap, whose reverse SQL names objects as the search_path of its session showed them: it runs under the role's default search_path",
                plan.name
            );
        }
        let jobs = validate::resolve(&client, plan, Some(Phase::CutOver)).await?;
        privileges::check(&client, &jobs, privileges::Scope::Rollback).await?;
        let stmt = Stmt::new(main.trim_end().trim_end_matches(';').to_string());
        cx.phase_tx(&jobs)
            .run(&mut client, &[stmt], Phase::RolledBack, None)
            .await?;
    }
    // Rolled back (now, or by an earlier run stopped before this step).
    finish(&client, log, &record).await?;
    // Back in the pre-cutover shape: check the original against the hypertable.
    let jobs = validate::resolve(&client, plan, Some(Phase::RolledBack)).await?;
    cx.checker(&jobs, Phase::RolledBack, false)
        .run(&client)
        .await
}

/// The statements recorded to follow the rollback transaction (validating the foreign
/// keys it added back), each in a transaction of its own. Each skips itself once done,
/// so running them again after an interruption is harmless.
pub async fn finish(client: &Client, log: &SqlLog, record: &PlanRecord) -> Result<()> {
    let Some(reverse) = &record.reverse_sql else {
        return Ok(());
    };
    let (_, after) = cutover::split_reverse(reverse);
    for sql in after {
        // One statement outside a transaction block is a transaction of its own.
        stmt::exec(client, log, &Stmt::new(sql))
            .await
            .map_err(|e| {
                if e.sqlstate() == Some("23503") {
                    // Rows written while the key was dropped (inbound_foreign_keys: drop).
                    return Error::invalid(
                        format!("the rollback is done, but a foreign key it added back does not hold for rows written while it was dropped: {e}"),
                        "the key holds for new rows already (NOT VALID); fix or delete the rows that reference missing keys, then run `hyperswap rollback` again to validate it",
                    );
                }
                Error::invalid(
                    format!("the rollback is done, but a foreign key it added back could not be validated yet: {e}"),
                    "the key holds for new rows already (NOT VALID); run `hyperswap rollback` again to validate it (it waits at most the plan's lock_timeout for its lock)",
                )
            })?;
    }
    Ok(())
}
