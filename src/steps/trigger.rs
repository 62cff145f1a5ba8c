//! Step 2: change capture installed on every source (see [`crate::capture`]), in one
//! transaction with the journal's move to `trigger_installed`. From its commit every
//! write the application makes reaches the copy. Undone by `abort` and `finalize`,
//! which drop what capture installed.

use futures_util::future::LocalBoxFuture;
use tokio_postgres::Client;

use super::{Flow, Script, Show, Step, StepRun};
use crate::capture::{self, Stage};
use crate::context::Context;
use crate::error::Result;
use crate::model::{Job, Removal};
use crate::phase::Phase;
use crate::stmt::{LockPolicy, Stmt};

pub struct Trigger;

/// The step's statements: capture for every table, in one transaction.
pub fn statements(plan: &str, jobs: &[Job], lock: &LockPolicy) -> Vec<Stmt> {
    super::per_table(lock, jobs, |j| capture::of(j).install(j, plan))
}

impl Step for Trigger {
    fn name(&self) -> &'static str {
        "trigger"
    }

    fn runs_from(&self, phase: Phase) -> bool {
        phase == Phase::TargetCreated
    }

    fn leaves(&self) -> Phase {
        Phase::TriggerInstalled
    }

    // Targets exist and are empty: install the copy triggers.
    fn run<'a>(&'a self, run: &'a mut StepRun<'_>, _: Phase) -> LocalBoxFuture<'a, Result<Flow>> {
        let stmts = statements(&run.cx.plan.name, run.jobs, &run.cx.lock);
        Box::pin(async move {
            super::one_transaction(run, "installing the copy triggers", &stmts, self.leaves()).await
        })
    }

    fn show(&self, show: &Show<'_>, out: &mut Script) {
        out.section("phase 2, copy trigger: one transaction, with the journal's phase change");
        out.stmts(&statements(&show.plan.name, show.jobs, show.lock));
    }

    fn removal(&self, kind: Removal, job: &Job) -> Vec<(Stage, Stmt)> {
        capture::of(job).removal(kind, job)
    }
}

/// A plan whose capture was installed by an earlier build that this one replaces (see
/// [`capture::Capture::needs_reinstall`]) is brought to this build's before anything
/// else runs: the step's statements again (each idempotent) for those tables, in one
/// lock-polite transaction that leaves the phase as it is. Nothing to do after cutover
/// (the reverse direction is the same) or before the step.
pub async fn reinstall_if_needed(
    cx: &Context<'_>,
    client: &mut Client,
    jobs: &[Job],
    phase: Phase,
) -> Result<()> {
    if !phase.source_is_live() || phase.step() < Phase::TriggerInstalled.step() {
        return Ok(());
    }
    let mut legacy = Vec::new();
    for job in jobs {
        if capture::of(job).needs_reinstall(client, job).await? {
            legacy.push(job.clone());
        }
    }
    if legacy.is_empty() {
        return Ok(());
    }
    tracing::warn!(
        "plan `{}` was started by an earlier hyperswap, whose copy trigger writes the copy in the application's transaction: replacing it with the change-log trigger of this version",
        cx.plan.name
    );
    let stmts = statements(&cx.plan.name, &legacy, &cx.lock);
    cx.phase_tx(jobs).run(client, &stmts, phase, None).await
}
