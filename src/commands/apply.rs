//! `hyperswap plan apply`: walks [`crate::steps::STEPS`] from the plan's phase to the
//! step it stops after, each step doing its work and committing the next phase with its
//! last write. A run stopped anywhere (kill -9, lost connection, Ctrl-C) resumes from
//! the journal.

use crate::context::{Context, PlanLock};
use crate::error::{Error, Result};
use crate::journal;
use crate::parity::ParityReport;
use crate::phase::{Phase, Until};
use crate::steps::{self, Flow, StepRun};
use crate::validate;

/// What a run of `plan apply` ended with.
#[derive(Debug)]
pub struct ApplyOutcome {
    pub phase: Phase,
    /// The parity check this run made, if any; unequal means the run stopped before cutover.
    pub parity: Option<ParityReport>,
}

/// Runs or resumes the plan of `cx` through the step `until` names.
/// `workers`: backfill sessions, in place of the plan's `backfill.workers` (a plan is
/// frozen once it runs; the worker count of a resumed run may change).
pub async fn apply(cx: &Context<'_>, until: Until, workers: Option<u32>) -> Result<ApplyOutcome> {
    let plan = cx.plan;
    let opened = cx
        .open(&format!("hyperswap apply {}", plan.name), PlanLock::Take)
        .await?;
    let start = opened.phase();
    let (mut client, record) = (opened.client, opened.record);
    if let Some(p @ (Phase::Aborting | Phase::Finalizing)) = start {
        let cmd = if p == Phase::Aborting {
            "abort"
        } else {
            "finalize"
        };
        return Err(Error::WrongPhase {
            plan: plan.name.clone(),
            phase: Some(p),
            problem: "it is being removed; `plan apply` cannot move it on".into(),
            fix: format!(
                "run `hyperswap {cmd} {}` to finish that",
                plan.path.display()
            ),
        });
    }
    let jobs = validate::resolve(&client, plan, start).await?;
    if start.is_none_or(|p| p.source_is_live()) {
        validate::check_forward(&client, &jobs).await?;
    }
    // Only now, with the plan checked, may the journal be created (or brought up to
    // this version's columns).
    journal::ensure(&mut client).await?;
    if record.is_none() {
        journal::create(&mut client, plan, &jobs).await?;
    }
    // A rollback interrupted before the keys it added back were validated.
    if let (Some(Phase::RolledBack), Some(r)) = (start, &record) {
        super::rollback::finish(&client, cx.log, r).await?;
    }
    if let Some(phase) = start {
        steps::trigger::reinstall_if_needed(cx, &mut client, &jobs, phase).await?;
    }
    let mut run = StepRun {
        cx,
        client: &mut client,
        jobs: &jobs,
        workers,
        parity: None,
    };
    let phase = drive(&mut run, start.unwrap_or(Phase::Planned), until).await?;
    Ok(ApplyOutcome {
        phase,
        parity: run.parity,
    })
}

/// Runs the steps from `phase` through the one `until` names; returns the phase the
/// plan is left in.
async fn drive(run: &mut StepRun<'_>, mut phase: Phase, until: Until) -> Result<Phase> {
    let last = steps::position(until.step()).expect("every --until names a step");
    while let Some((at, step)) = steps::next(phase) {
        if at > last {
            break;
        }
        if run.cx.cancel.is_cancelled() {
            return Err(Error::Interrupted);
        }
        step.check(run).await?;
        match step.run(run, phase).await? {
            Flow::Next(to) => phase = to,
            Flow::Stop => return Ok(phase),
        }
    }
    // `--until parity` on a plan verified by an earlier run: what the application wrote
    // since is replayed and checked again, as the cutover would, rather than trusting
    // that run.
    if until == Until::Parity && phase == Phase::Verified && run.parity.is_none() {
        let report = steps::parity::verify(run, phase).await?;
        run.parity = Some(report);
    }
    Ok(phase)
}
