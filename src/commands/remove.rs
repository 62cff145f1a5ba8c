//! `hyperswap abort` (before cutover: the source as it was, the target gone) and
//! `hyperswap finalize` (after cutover: the retired table gone). Each first removes the
//! trigger from the table the application writes to, in a short lock-polite transaction
//! that also records the phase, then drops the rest, then the plan's journal; a run
//! stopped anywhere is finished by running the same command again.

use tokio_postgres::Client;

use crate::context::{Context, PlanLock};
use crate::error::{Context as _, Error, Result};
use crate::fk_emulation;
use crate::journal;
use crate::model::Job;
use crate::phase::Phase;
use crate::stmt::{self, Stmt};
use crate::validate;

pub use crate::model::Removal;

/// The statements of both transactions, for `plan show` and the run: what every step
/// made, removed (see [`crate::steps::removal`]).
pub fn statements(
    kind: Removal,
    jobs: &[Job],
    lock: &crate::stmt::LockPolicy,
) -> (Vec<Stmt>, Vec<Stmt>) {
    crate::steps::removal(kind, jobs, lock)
}

/// What `remove` left in place on purpose.
#[derive(Debug, Default)]
pub struct Removed {
    /// The foreign-key emulation functions of the plan that stay after `finalize`
    /// (`inbound_foreign_keys: emulate`): a real key cannot reference the hypertable.
    pub fk_emulation: Vec<String>,
}

/// `keep_history`: the plan's events stay in the journal (`finalize`, unless told to
/// drop them); otherwise every record of the plan goes, and the journal with the last.
pub async fn remove(cx: &Context<'_>, kind: Removal, keep_history: bool) -> Result<Removed> {
    let (plan, log) = (cx.plan, cx.log);
    let (cmd, allowed, doing) = match kind {
        Removal::Abort => (
            "abort",
            "any phase before cut_over, or rolled_back",
            Phase::Aborting,
        ),
        Removal::Finalize => ("finalize", "cut_over", Phase::Finalizing),
    };
    let (mut client, record) = cx
        .open(&format!("hyperswap {cmd} {}", plan.name), PlanLock::Take)
        .await?
        .started(plan, cmd)?;
    let ok = match kind {
        Removal::Abort => record.phase.source_is_live() || record.phase == Phase::Aborting,
        Removal::Finalize => record.phase.cut_over() || record.phase == Phase::Finalizing,
    };
    if !ok {
        let hint = match kind {
            Removal::Abort => "after cutover, run `hyperswap rollback` first, then abort",
            Removal::Finalize => {
                "finalize follows a cutover; before it, `hyperswap abort` undoes the plan"
            }
        };
        return Err(Error::WrongPhase {
            plan: plan.name.clone(),
            phase: Some(record.phase),
            problem: format!("`{cmd}` works in {allowed}"),
            fix: hint.into(),
        });
    }
    // Resolve as the tables stand: after a cutover the original is the retired table.
    let as_phase = if kind == Removal::Finalize {
        Phase::CutOver
    } else {
        Phase::RolledBack
    };
    let jobs = validate::resolve_for_removal(&client, plan, as_phase).await?;
    crate::privileges::check(&client, &jobs, crate::privileges::Scope::Remove).await?;
    let (first, second) = statements(kind, &jobs, &cx.lock);
    // Before anything commits: what would stop the drop? (Afterwards the plan could
    // neither go back nor finish.)
    for job in &jobs {
        let doomed = if kind == Removal::Abort {
            &job.target
        } else {
            &job.retired
        };
        check_droppable(&client, doomed).await?;
    }
    if kind == Removal::Abort {
        // After a rollback stopped before validating the foreign keys it added back
        // (the journal, which says which, is about to go).
        super::rollback::finish(&client, log, &record).await?;
    }
    if record.phase != doing {
        cx.phase_tx(&jobs)
            .run(&mut client, &first, doing, None)
            .await?;
    }
    let t = client
        .transaction()
        .await
        .context("removing the plan's tables")?;
    for s in &second {
        stmt::exec(&t, log, s).await?;
    }
    t.commit().await.context("removing the plan's tables")?;
    journal::forget(&mut client, &plan.name, keep_history).await?;
    Ok(Removed {
        fk_emulation: fk_emulation::functions_of(&client, &plan.name).await?,
    })
}

/// `hyperswap finalize --end-fk-emulation`: finalizes the plan if it is still cut over,
/// then drops its foreign-key emulation (functions and their triggers), and the tool's
/// schema once nothing is left in it. Returns the functions dropped.
pub async fn end_fk_emulation(cx: &Context<'_>, keep_history: bool) -> Result<Vec<String>> {
    let (connect, plan, log) = (cx.connect, cx.plan, cx.log);
    let mut client = connect
        .connect(&format!(
            "hyperswap finalize --end-fk-emulation {}",
            plan.name
        ))
        .await?;
    let started = crate::journal::exists(&client).await?
        && crate::journal::load(&client, &plan.name).await?.is_some();
    if started {
        drop(client);
        remove(cx, Removal::Finalize, keep_history).await?;
        client = connect
            .connect(&format!(
                "hyperswap finalize --end-fk-emulation {}",
                plan.name
            ))
            .await?;
    }
    let ended = fk_emulation::end(&mut client, &plan.name, log, &cx.lock, &cx.cancel).await?;
    if !started && !keep_history {
        // Finalized earlier with its history kept: drop that too, if there is one.
        match journal::drop_history(&mut client, &plan.name).await {
            Ok(_) | Err(Error::WrongPhase { .. }) => {}
            Err(e) => return Err(e),
        }
    }
    if ended.is_empty() && !started {
        return Err(Error::invalid(
            format!("plan `{}` has no foreign-key emulation in this database (and is not in the journal)", plan.name),
            "nothing to end: check the database and the plan file (`inbound_foreign_keys: emulate` creates it at cutover)",
        ));
    }
    journal::drop_schema_if_empty(&client).await?;
    Ok(ended)
}

/// `finalize --drop-history` of a plan finalized earlier with its events kept: drops
/// those events (`Some(count)`); `None` when the plan is not finalized that way (its
/// finalize then drops them).
pub async fn drop_history(cx: &Context<'_>) -> Result<Option<u64>> {
    let name = &cx.plan.name;
    let mut client = cx
        .connect
        .connect(&format!("hyperswap finalize {name}"))
        .await?;
    journal::drop_history(&mut client, name).await
}

/// Refuses when objects of the user's depend on `table` (views, foreign keys, functions
/// bound to it): `DROP TABLE` without CASCADE would fail halfway through the removal.
async fn check_droppable(client: &Client, table: &crate::ident::QualifiedName) -> Result<()> {
    let row = client
        .query_one("SELECT to_regclass($1)::oid", &[&table.quoted()])
        .await
        .context("looking up the table to drop")?;
    let Some(oid) = row.get::<_, Option<tokio_postgres::types::Oid>>(0) else {
        return Ok(());
    };
    let blockers: Vec<String> = crate::catalog::dependents(client, oid)
        .await?
        .into_iter()
        .map(|(o, _)| o)
        .collect();
    if blockers.is_empty() {
        return Ok(());
    }
    Err(Error::invalid(
        format!("{table} cannot be dropped: {} depend(s) on it", blockers.join("; ")),
        format!("drop or re-point those objects (they still use {table}), then run the command again; nothing was changed"),
    ))
}
