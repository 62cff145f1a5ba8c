//! The state machine behind `plan apply`: one loop, one arm per phase, each arm doing
//! its work and committing the next phase in the same transaction as its last write.
//! A run stopped anywhere (kill -9, lost connection, Ctrl-C) resumes from the journal.

use tokio_postgres::Client;

use crate::backfill::{self, Backfill};
use crate::conn::ConnectOptions;
use crate::cutover;
use crate::error::{Error, Result};
use crate::journal;
use crate::model::Job;
use crate::parity::{self, ParityReport};
use crate::phase::{Phase, Until};
use crate::phases::{create_phase, lock_policy, trigger_phase};
use crate::plan::Plan;
use crate::progress::{Cancel, Progress};
use crate::runner::{check_window, PhaseTx};
use crate::stmt::{self, SqlLog};
use crate::validate;

/// What a run of `plan apply` ended with.
#[derive(Debug)]
pub struct ApplyOutcome {
    pub phase: Phase,
    /// The parity check this run made, if any; unequal means the run stopped before cutover.
    pub parity: Option<ParityReport>,
}

pub struct Apply<'a> {
    pub connect: &'a ConnectOptions,
    pub plan: &'a Plan,
    pub until: Until,
    pub log: SqlLog,
    pub progress: &'a dyn Progress,
    pub cancel: Cancel,
    /// Backfill workers, in place of the plan's `backfill.workers` (a plan is frozen once
    /// it runs; the worker count of a resumed run may change).
    pub workers: Option<u32>,
}

impl Apply<'_> {
    async fn workers(&self, client: &Client) -> Result<usize> {
        backfill::worker_count(client, self.workers.or(self.plan.backfill.workers)).await
    }

    pub async fn run(self) -> Result<ApplyOutcome> {
        let mut client = self
            .connect
            .connect(&format!("hyperswap apply {}", self.plan.name))
            .await?;
        journal::lock_plan(&client, &self.plan.name).await?;
        let record = journal::load(&client, &self.plan.name).await?;
        journal::check_frozen(self.plan, record.as_ref())?;
        let start = record.as_ref().map(|r| r.phase);
        if let Some(p @ (Phase::Aborting | Phase::Finalizing)) = start {
            let cmd = if p == Phase::Aborting {
                "abort"
            } else {
                "finalize"
            };
            return Err(Error::WrongPhase {
                plan: self.plan.name.clone(),
                phase: Some(p),
                problem: "it is being removed; `plan apply` cannot move it on".into(),
                fix: format!(
                    "run `hyperswap {cmd} {}` to finish that",
                    self.plan.path.display()
                ),
            });
        }
        let jobs = validate::resolve(&client, self.plan, start).await?;
        if start.is_none_or(|p| p.source_is_live()) {
            validate::check_forward(&client, &jobs).await?;
        }
        // Only now, with the plan checked, may the journal be created (or brought up
        // to this version's columns).
        journal::ensure(&mut client).await?;
        if record.is_none() {
            journal::create(&mut client, self.plan, &jobs).await?;
        }
        // A rollback interrupted before the keys it added back were validated.
        if let (Some(Phase::RolledBack), Some(r)) = (start, &record) {
            crate::rollback::finish(&client, &self.log, r).await?;
        }
        if let Some(phase) = start {
            let lock = lock_policy(self.plan);
            let tx = PhaseTx {
                log: &self.log,
                lock: &lock,
                jobs: &jobs,
                plan: &self.plan.name,
                cancel: &self.cancel,
                window: None,
            };
            crate::replay::upgrade_legacy(&mut client, &tx, phase).await?;
        }
        self.drive(&mut client, &jobs, start.unwrap_or(Phase::Planned))
            .await
    }

    async fn drive(
        &self,
        client: &mut Client,
        jobs: &[Job],
        mut phase: Phase,
    ) -> Result<ApplyOutcome> {
        let name = &self.plan.name;
        let lock = lock_policy(self.plan);
        let stop = self.until.phase();
        let mut parity: Option<ParityReport> = None;
        let tx = PhaseTx {
            log: &self.log,
            lock: &lock,
            jobs,
            plan: name,
            cancel: &self.cancel,
            window: None,
        };
        while phase.step() < stop.step() {
            if self.cancel.is_cancelled() {
                return Err(Error::Interrupted);
            }
            phase = match phase {
                // Nothing created yet: create every target in one transaction.
                Phase::Planned => {
                    self.progress.step("creating the target hypertables");
                    let stmts = create_phase(&self.plan.name, jobs, &lock);
                    tx.run(client, &stmts, Phase::TargetCreated, None).await?;
                    Phase::TargetCreated
                }
                // Targets exist and are empty: install the copy triggers.
                Phase::TargetCreated => {
                    self.progress.step("installing the copy triggers");
                    let stmts = trigger_phase(name, jobs, &lock);
                    tx.run(client, &stmts, Phase::TriggerInstalled, None)
                        .await?;
                    Phase::TriggerInstalled
                }
                // Triggers committed: capture the key ranges to copy.
                Phase::TriggerInstalled => {
                    let workers = self.workers(client).await?;
                    backfill::prepare(client, &self.log, name, jobs, workers).await?;
                    Phase::Backfilling
                }
                // Ranges recorded: copy the batches not yet committed.
                Phase::Backfilling => {
                    let workers = self.workers(client).await?;
                    let run = Backfill {
                        connect: self.connect,
                        workers,
                        client,
                        log: &self.log,
                        plan: name,
                        jobs,
                        opts: &self.plan.backfill,
                        progress: self.progress,
                        cancel: &self.cancel,
                    };
                    run.run().await?;
                    Phase::Backfilled
                }
                // Everything copied (or cutover undone): analyze, then check parity.
                Phase::Backfilled | Phase::RolledBack => {
                    let report = self.verify(client, jobs, phase).await?;
                    let equal = report.equal;
                    parity = Some(report);
                    if !equal {
                        return Ok(ApplyOutcome { phase, parity });
                    }
                    journal::set_phase(&*client, name, Phase::Verified).await?;
                    Phase::Verified
                }
                // Verified: check once more in this run, then cut over.
                Phase::Verified => {
                    check_window(client, self.plan).await?;
                    if parity.is_none() {
                        let report = self.verify(client, jobs, phase).await?;
                        if !report.equal {
                            return Ok(ApplyOutcome {
                                phase,
                                parity: Some(report),
                            });
                        }
                        parity = Some(report);
                    }
                    // What the change log holds now is replayed before the locks, so
                    // that the cutover's own replay, under them, has seconds' worth.
                    self.progress.step("replaying the change log");
                    crate::replay::drain(&*client, &self.log, jobs).await?;
                    self.progress.step("cutting over");
                    let stmts = cutover::statements(name, jobs, &lock);
                    let reverse = cutover::reverse_script(jobs, &lock);
                    PhaseTx {
                        window: Some(self.plan),
                        ..tx
                    }
                    .run(client, &stmts, Phase::CutOver, Some(&reverse))
                    .await?;
                    Phase::CutOver
                }
                Phase::CutOver | Phase::Aborting | Phase::Finalizing => {
                    unreachable!("the loop stops before")
                }
            };
        }
        Ok(ApplyOutcome { phase, parity })
    }

    async fn verify(
        &self,
        client: &mut Client,
        jobs: &[Job],
        phase: Phase,
    ) -> Result<ParityReport> {
        self.progress
            .step("analyzing the targets and checking parity");
        for job in jobs {
            stmt::exec(&*client, &self.log, &parity::analyze_statement(job)).await?;
        }
        let checker = parity::Checker {
            connect: self.connect,
            log: &self.log,
            plan: &self.plan.name,
            jobs,
            phase,
            range_rows: self.plan.parity.range_rows,
            lanes: self.plan.parity.lanes,
            resume_within: self.plan.parity.resume_within,
            repair: false,
            cancel: self.cancel.clone(),
            progress: self.progress,
        };
        checker.run(client).await
    }
}
