//! Step 1: the target hypertables, created empty from the sources' definitions, in one
//! transaction with the journal's move to `target_created` (see [`crate::target`] for
//! the SQL). Undone by dropping the new table (`abort`), or after cutover the retired
//! one (`finalize`).

use futures_util::future::LocalBoxFuture;

use super::{Flow, Script, Show, Step, StepRun};
use crate::capture::Stage;
use crate::error::Result;
use crate::model::{Job, Removal};
use crate::phase::Phase;
use crate::stmt::{LockPolicy, Stmt};

pub struct Target;

/// The step's statements: every target, in one transaction.
pub fn statements(plan: &str, jobs: &[Job], lock: &LockPolicy) -> Vec<Stmt> {
    super::per_table(lock, jobs, |j| {
        let mut s = crate::target::statements(j);
        s.push(crate::journal::record_definitions(plan, j));
        s
    })
}

impl Step for Target {
    fn name(&self) -> &'static str {
        "target"
    }

    fn runs_from(&self, phase: Phase) -> bool {
        phase == Phase::Planned
    }

    fn leaves(&self) -> Phase {
        Phase::TargetCreated
    }

    // Nothing created yet: create every target in one transaction.
    fn run<'a>(&'a self, run: &'a mut StepRun<'_>, _: Phase) -> LocalBoxFuture<'a, Result<Flow>> {
        let stmts = statements(&run.cx.plan.name, run.jobs, &run.cx.lock);
        Box::pin(async move {
            super::one_transaction(
                run,
                "creating the target hypertables",
                &stmts,
                self.leaves(),
            )
            .await
        })
    }

    fn show(&self, show: &Show<'_>, out: &mut Script) {
        out.section("phase 1, create target: one transaction, with the journal's phase change");
        out.stmts(&statements(&show.plan.name, show.jobs, show.lock));
    }

    fn removal(&self, kind: Removal, job: &Job) -> Vec<(Stage, Stmt)> {
        let doomed = match kind {
            Removal::Abort => &job.target,
            Removal::Finalize => &job.retired,
        };
        vec![(
            Stage::Tables,
            Stmt::noted(
                format!("DROP TABLE IF EXISTS {}", doomed.quoted()),
                "no CASCADE: anything of yours that still depends on it stops the drop",
            ),
        )]
    }
}
