//! Step 5: the cutover. Inside the maintenance window, with parity checked in this run,
//! the change log is drained, then one lock-polite transaction swaps every table (see
//! [`crate::cutover`] for the SQL) and records the SQL that undoes it, which `hyperswap
//! rollback` runs. The plan is then `cut_over`.

use std::time::{Duration, Instant};

use futures_util::future::LocalBoxFuture;
use tokio_postgres::Client;

use super::{Flow, Script, Show, Step, StepRun};
use crate::context::Context;
use crate::cutover;
use crate::error::{Error, Result};
use crate::model::Job;
use crate::phase::Phase;
use crate::runner::{check_window, BeforeAttempt, PhaseTx};
use crate::watch::Watch;

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
            cx.progress.step("replaying the change log");
            let budget = cx.plan.cutover.budget();
            let stmts = cutover::statements(&cx.plan.name, run.jobs, &cx.lock, budget);
            let reverse = cutover::reverse_script(run.jobs, &cx.lock);
            let watch = Watch::new(run.client, cx.plan, run.jobs, Phase::Verified).await?;
            let mut first = CatchUpFirst {
                cx,
                more: cx.replay_sessions().await?,
                jobs: run.jobs,
                budget,
                watch,
                rate: None,
            };
            PhaseTx {
                window: Some(cx.plan),
                ..cx.phase_tx(run.jobs)
            }
            .run_with(
                run.client,
                &stmts,
                self.leaves(),
                Some(&reverse),
                &mut first,
            )
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

/// Before each attempt of the cutover: the change log drained until what is left can be
/// replayed under the locks within `cutover.catch_up_budget`, at the rate the drains just
/// measured; so the locks are taken only when the application will wait for no more
/// than the lock wait and the budget. Watched like the backfill's catch-up: a log the
/// application fills faster than the drains empty it stops the run past
/// `catch_up.max_behind` or `catch_up.max_log_size`.
struct CatchUpFirst<'a> {
    cx: &'a Context<'a>,
    /// The sessions that drain beside the cutover's own (`catch_up.sessions`).
    more: Vec<Client>,
    jobs: &'a [Job],
    budget: Duration,
    watch: Watch,
    /// Entries per second one session's drains replayed (`None`: none measured yet):
    /// the replay under the locks is one session's.
    rate: Option<f64>,
}

/// The replay rate assumed before one is measured: low, so a large residual is drained
/// first rather than replayed under the locks.
const ASSUMED_RATE: f64 = 5_000.0;

impl BeforeAttempt for CatchUpFirst<'_> {
    fn before<'a>(
        &'a mut self,
        client: &'a Client,
        attempt: u32,
    ) -> LocalBoxFuture<'a, Result<()>> {
        Box::pin(async move {
            loop {
                if self.cx.cancel.is_cancelled() {
                    return Err(Error::Interrupted);
                }
                let started = Instant::now();
                let sessions = crate::pool::with(client, &self.more);
                let (mut taken, mut lanes) = (0, 1);
                for job in self.jobs {
                    let r = crate::capture::of(job)
                        .drain(&sessions, self.cx.log, job, &mut self.watch)
                        .await?;
                    taken += r.taken;
                    lanes = lanes.max(r.lanes);
                }
                let secs = started.elapsed().as_secs_f64();
                if taken >= 1_000 && secs > 0.0 {
                    self.rate = Some(taken as f64 / secs / lanes as f64);
                }
                let mut left = 0;
                for job in self.jobs {
                    let id = job.capture_id;
                    left += crate::capture::waiting(client, &job.source, id)
                        .await
                        .unwrap_or(0);
                }
                let rate = self.rate.unwrap_or(ASSUMED_RATE);
                let estimate = Duration::from_secs_f64(left as f64 / rate);
                self.watch
                    .check(client, self.jobs, self.cx.progress)
                    .await?;
                if estimate <= self.budget {
                    for job in self.jobs {
                        self.watch.caught_up(job.ord as i32);
                    }
                    if attempt > 1 || left > 0 {
                        tracing::info!(
                            "cutover, attempt {attempt}: {left} logged change(s) left, about {:?} of replay under the locks at {rate:.0}/s (budget {:?})",
                            estimate,
                            self.budget
                        );
                    }
                    self.cx.progress.step("cutting over");
                    return Ok(());
                }
                tracing::info!(
                    "cutover: {left} logged change(s) left would take about {:?} under the locks at {rate:.0}/s, over cutover.catch_up_budget ({:?}); replaying more first",
                    estimate,
                    self.budget
                );
            }
        })
    }
}
