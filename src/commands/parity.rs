//! `hyperswap parity`: compares every table of a started plan with its copy now, and
//! with `--repair` re-copies the differing keys first.

use crate::context::{Context, PlanLock};
use crate::error::{Error, Result};
use crate::parity::ParityReport;
use crate::phase::Phase;
use crate::validate;

pub async fn parity(cx: &Context<'_>, repair: bool) -> Result<ParityReport> {
    let plan = cx.plan;
    // Parity replays the change log: never beside another process of the plan that
    // does (a replay from an older snapshot could put back a row the other one
    // removed). The lock is taken before the phase is read.
    let opened = cx.open("hyperswap parity", PlanLock::Take).await?;
    let phase = match opened.phase() {
        Some(p) if p.copy_complete() => p,
        Some(p @ (Phase::Aborting | Phase::Finalizing)) => {
            return Err(Error::WrongPhase {
                plan: plan.name.clone(),
                phase: Some(p),
                problem: "one of its tables is being dropped, so there is nothing to compare"
                    .into(),
                fix: format!(
                    "run `hyperswap {} {}` to finish that",
                    if p == Phase::Aborting {
                        "abort"
                    } else {
                        "finalize --yes"
                    },
                    plan.path.display()
                ),
            })
        }
        phase => {
            return Err(Error::WrongPhase {
                plan: plan.name.clone(),
                phase,
                problem: "its backfill has not finished: parity compares complete copies".into(),
                fix: format!(
                    "run `hyperswap plan apply {} --until backfill` first",
                    plan.path.display()
                ),
            })
        }
    };
    let mut client = opened.client;
    let jobs = validate::resolve(&client, plan, Some(phase)).await?;
    crate::steps::trigger::reinstall_if_needed(cx, &mut client, &jobs, phase).await?;
    cx.checker(&jobs, phase, repair).run(&client).await
}
