//! Step 5: the cutover. Inside the maintenance window, with parity checked in this run,
//! the change log is drained, then one lock-polite transaction swaps every table (see
//! [`crate::cutover`] for the SQL) and records the SQL that undoes it, which `hyperswap
//! rollback` runs. The plan is then `cut_over`.

use futures_util::future::LocalBoxFuture;

use super::{Flow, Script, Show, Step, StepRun};
use crate::cutover;
use crate::error::Result;
use crate::phase::Phase;
use crate::runner::{check_window, PhaseTx};

pub struct Cutover;

impl Step for Cutover {
    fn name(&self) -> &'static str {
        "cutover"
    }

    fn runs_from(&self, phase: Phase) -> bool {
        phase == Phase::Verified
    }

    fn leaves(&self) -> Phase {
        Phase::CutOver
    }

    fn check<'a>(&'a self, run: &'a StepRun<'_>) -> LocalBoxFuture<'a, Result<()>> {
        Box::pin(check_window(run.client, run.cx.plan))
    }

    // Verified: check once more in this run, then cut over.
    fn run<'a>(
        &'a self,
        run: &'a mut StepRun<'_>,
        from: Phase,
    ) -> LocalBoxFuture<'a, Result<Flow>> {
        Box::pin(async move {
            if run.parity.is_none() {
                let report = super::parity::verify(run, from).await?;
                let equal = report.equal;
                run.parity = Some(report);
                if !equal {
                    return Ok(Flow::Stop);
                }
            }
            let cx = run.cx;
            // What the change log holds now is replayed before the locks, so that the
            // cutover's own replay, under them, has seconds' worth.
            cx.progress.step("replaying the change log");
            crate::capture::drain(&*run.client, cx.log, run.jobs).await?;
            cx.progress.step("cutting over");
            let budget = cx.plan.cutover.budget();
            let stmts = cutover::statements(&cx.plan.name, run.jobs, &cx.lock, budget);
            let reverse = cutover::reverse_script(run.jobs, &cx.lock);
            PhaseTx {
                window: Some(cx.plan),
                ..cx.phase_tx(run.jobs)
            }
            .run(run.client, &stmts, self.leaves(), Some(&reverse))
            .await?;
            Ok(Flow::Next(self.leaves()))
        })
    }

    fn show(&self, show: &Show<'_>, out: &mut Script) {
        let plan = show.plan;
        out.section(&format!(
            "phase 5, cutover: one transaction for all tables, up to {} attempts, lock_timeout {:?}",
            plan.cutover.attempts, plan.cutover.lock_timeout
        ));
        out.stmts(&cutover::statements(
            &plan.name,
            show.jobs,
            show.lock,
            plan.cutover.budget(),
        ));
    }

    fn show_undo(&self, show: &Show<'_>, out: &mut Script) {
        out.section(
            "rollback: recorded in the journal by the cutover transaction; run by `hyperswap rollback`",
        );
        out.stmts(&cutover::reverse_statements(show.jobs, show.lock));
        let after = cutover::after_rollback_statements(show.jobs, show.lock);
        if !after.is_empty() {
            out.section(
                "rollback, then: each statement in a transaction of its own, right after the rollback commits (`hyperswap rollback` or `plan apply` runs them again if interrupted)",
            );
            out.stmts(&after);
        }
    }
}
