//! The state machine behind `plan apply`: one loop, one arm per phase, each arm doing
//! its work and committing the next phase in the same transaction as its last write.
//! A run stopped anywhere (kill -9, lost connection, Ctrl-C) resumes from the journal.

use tokio_postgres::Client;

use crate::backfill::{self, Backfill};
use crate::conn::ConnectOptions;
use crate::cutover;
use crate::error::{Context, Error, Result};
use crate::journal::{self, PlanRecord};
use crate::model::Job;
use crate::parity::{self, ParityReport};
use crate::phase::{Phase, Until};
use crate::plan::Plan;
use crate::progress::{Cancel, Progress};
use crate::stmt::{
    self, backoff, is_lock_conflict, lock_holders, set_lock_timeout, LockPolicy, SqlLog, Stmt,
};
use crate::{target, trigger, validate};

/// What a run of `plan apply` ended with.
#[derive(Debug)]
pub struct ApplyOutcome {
    pub phase: Phase,
    /// The parity check this run made, if any; unequal means the run stopped before cutover.
    pub parity: Option<ParityReport>,
}

/// Phase 1's statements: every target, in one transaction.
pub fn create_phase(jobs: &[Job], lock: &LockPolicy) -> Vec<Stmt> {
    std::iter::once(set_lock_timeout(lock.lock_timeout))
        .chain(jobs.iter().flat_map(target::statements))
        .collect()
}

/// Phase 2's statements: every copy trigger, in one transaction.
pub fn trigger_phase(plan: &str, jobs: &[Job], lock: &LockPolicy) -> Vec<Stmt> {
    std::iter::once(set_lock_timeout(lock.lock_timeout))
        .chain(jobs.iter().flat_map(|j| trigger::statements(j, plan)))
        .collect()
}

pub fn lock_policy(plan: &Plan) -> LockPolicy {
    LockPolicy {
        lock_timeout: plan.cutover.lock_timeout,
        attempts: plan.cutover.attempts,
        backoff: plan.cutover.backoff,
    }
}

/// Connects as `hyperswap <cmd> <plan>`, takes the plan's lock and returns its journal
/// record, for the commands that act on a started plan (`rollback`, `abort`,
/// `finalize`).
pub async fn open_started(
    connect: &ConnectOptions,
    plan: &Plan,
    cmd: &str,
) -> Result<(Client, PlanRecord)> {
    let client = connect
        .connect(&format!("hyperswap {cmd} {}", plan.name))
        .await?;
    journal::lock_plan(&client, &plan.name).await?;
    let record = journal::load(&client, &plan.name).await?;
    check_frozen(plan, record.as_ref())?;
    let record = record.ok_or_else(|| {
        Error::WrongPhase(format!(
            "plan `{}` has not started in this database (or was already removed): nothing to {cmd}",
            plan.name
        ))
    })?;
    Ok((client, record))
}

/// Refuses a plan file that changed since its run started.
pub fn check_frozen(plan: &Plan, record: Option<&PlanRecord>) -> Result<()> {
    match record {
        Some(r) if r.sha256 != plan.sha256 => Err(Error::invalid(
            format!(
                "plan file {} changed since plan `{}` started (journal sha256 {}, file sha256 {}); a plan is frozen once it runs",
                plan.path.display(),
                plan.name,
                &r.sha256[..12],
                &plan.sha256[..12]
            ),
            "restore the file as it was (the journal keeps its text: SELECT plan_text FROM hyperswap.plans WHERE name = '<plan>'), or give the changed plan a new `name`",
        )),
        _ => Ok(()),
    }
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
        check_frozen(self.plan, record.as_ref())?;
        let start = record.as_ref().map(|r| r.phase);
        if let Some(p @ (Phase::Aborting | Phase::Finalizing)) = start {
            let cmd = if p == Phase::Aborting {
                "abort"
            } else {
                "finalize"
            };
            return Err(Error::WrongPhase(format!(
                "plan `{}` is being removed ({p}); run `hyperswap {cmd} {}` to finish that",
                self.plan.name,
                self.plan.path.display()
            )));
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
        while rank(phase) < rank(stop) {
            if self.cancel.is_cancelled() {
                return Err(Error::Interrupted);
            }
            phase = match phase {
                // Nothing created yet: create every target in one transaction.
                Phase::Planned => {
                    self.progress.step("creating the target hypertables");
                    let stmts = create_phase(jobs, &lock);
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
            resume_within: self.plan.parity.resume_within,
            repair: false,
            cancel: self.cancel.clone(),
            progress: self.progress,
        };
        checker.run(client).await
    }
}

/// Refuses cutover outside the plan's maintenance window, saying when it opens. The
/// database's clock decides, in the window's time zone.
async fn check_window(client: &Client, plan: &Plan) -> Result<()> {
    let Some(w) = &plan.cutover.window else {
        return Ok(());
    };
    let row = client
        .query_one(
            "SELECT (extract(hour FROM t) * 60 + extract(minute FROM t))::int, to_char(t, 'HH24:MI')
             FROM (SELECT now() AT TIME ZONE $1 AS t) AS s",
            &[&w.time_zone],
        )
        .await
        .context("reading the database's clock for the maintenance window")?;
    let (minute, now): (i32, String) = (row.get(0), row.get(1));
    if w.contains(minute as u32) {
        return Ok(());
    }
    let wait = w.opens_in(minute as u32);
    Err(Error::RetryLater {
        problem: format!(
            "cutover is outside the plan's window {} (it is {now} {} now); the window opens in {}h{:02}m. Everything before cutover is done",
            w.text,
            w.time_zone,
            wait / 60,
            wait % 60,
        ),
        fix: format!(
            "run `hyperswap plan apply {}` again then (`--until parity` stops just before cutover)",
            plan.path.display()
        ),
    })
}

/// Order of phases for `--until`; a rolled-back plan stands where backfill ended.
fn rank(phase: Phase) -> u8 {
    match phase {
        Phase::Planned => 0,
        Phase::TargetCreated => 1,
        Phase::TriggerInstalled => 2,
        Phase::Backfilling => 3,
        Phase::Backfilled | Phase::RolledBack => 4,
        Phase::Verified => 5,
        Phase::CutOver => 6,
        Phase::Aborting | Phase::Finalizing => 7,
    }
}

/// Runs a phase's statements and the journal's move to its next phase in one
/// transaction, waiting at most the policy's lock_timeout for locks each attempt and
/// retrying with jittered backoff; Ctrl-C stops between attempts.
#[derive(Clone, Copy)]
pub struct PhaseTx<'a> {
    pub log: &'a SqlLog,
    pub lock: &'a LockPolicy,
    pub jobs: &'a [Job],
    pub plan: &'a str,
    pub cancel: &'a Cancel,
    /// The plan whose maintenance window every attempt must fall in (cutover only).
    pub window: Option<&'a Plan>,
}

impl PhaseTx<'_> {
    /// `reverse_sql` is stored with the phase (the cutover records its rollback).
    pub async fn run(
        &self,
        client: &mut Client,
        stmts: &[Stmt],
        to: Phase,
        reverse_sql: Option<&str>,
    ) -> Result<()> {
        let (lock, plan) = (self.lock, self.plan);
        // The tables and the sequences they own: a session that called nextval() on one
        // holds a lock the cutover's ALTER SEQUENCE waits for.
        let tables: Vec<String> = self
            .jobs
            .iter()
            .flat_map(|j| {
                [j.source.quoted(), j.target.quoted(), j.retired.quoted()]
                    .into_iter()
                    .chain(j.table.sequences.iter().map(|s| s.name.quoted()))
            })
            .collect();
        for attempt in 1..=lock.attempts {
            if self.cancel.is_cancelled() {
                return Err(Error::Interrupted);
            }
            if let Some(plan) = self.window {
                check_window(client, plan).await?;
            }
            // Say who is in the way before queueing behind them.
            let holders = lock_holders(client, &tables, std::time::Duration::from_secs(1))
                .await
                .unwrap_or_default();
            if !holders.is_empty() {
                tracing::info!(
                    "phase {to}, attempt {attempt}: sessions holding locks on the tables: {}",
                    holders.join("; ")
                );
            }
            match try_tx(client, self.log, stmts, plan, to, reverse_sql).await {
                Ok(()) => return Ok(()),
                Err(e) if is_lock_conflict(&e) => {
                    let holders = lock_holders(client, &tables, std::time::Duration::ZERO)
                        .await
                        .unwrap_or_default();
                    let who = if holders.is_empty() {
                        "no holder seen any more".to_string()
                    } else {
                        holders.join("; ")
                    };
                    if e.sqlstate() == Some("40P01") {
                        tracing::warn!(
                            "phase {to}: attempt {attempt} of {} deadlocked with another session and was rolled back; sessions holding locks: {who}",
                            lock.attempts
                        );
                    } else {
                        tracing::warn!(
                            "phase {to}: attempt {attempt} of {} could not take its locks within {:?}; blocked by: {who}",
                            lock.attempts,
                            lock.lock_timeout
                        );
                    }
                    journal::event(
                        &*client,
                        plan,
                        to,
                        &format!(
                            "attempt {attempt} {}: {who}",
                            crate::stmt::conflict_kind(&e)
                        ),
                    )
                    .await?;
                    if attempt < lock.attempts {
                        self.pause(backoff(lock.backoff, attempt)).await?;
                    }
                }
                Err(e) => return Err(e),
            }
        }
        Err(Error::RetryLater {
            problem: format!(
                "could not take the locks for phase {to} in {} attempts of {:?} each; nothing was changed, the source is still live",
                lock.attempts, lock.lock_timeout
            ),
            fix: "end or wait out the blocking transactions named above (see pg_stat_activity), then run `hyperswap plan apply` again".into(),
        })
    }

    /// Sleeps, waking early (with `Interrupted`) on Ctrl-C.
    async fn pause(&self, d: std::time::Duration) -> Result<()> {
        let step = std::time::Duration::from_millis(50);
        let until = std::time::Instant::now() + d;
        while std::time::Instant::now() < until {
            if self.cancel.is_cancelled() {
                return Err(Error::Interrupted);
            }
            tokio::time::sleep(
                step.min(until.saturating_duration_since(std::time::Instant::now())),
            )
            .await;
        }
        Ok(())
    }
}

async fn try_tx(
    client: &mut Client,
    log: &SqlLog,
    stmts: &[Stmt],
    plan: &str,
    to: Phase,
    reverse_sql: Option<&str>,
) -> Result<()> {
    let ctx = || format!("entering phase {to}");
    let tx = client.transaction().await.with_context(ctx)?;
    for s in stmts {
        stmt::exec(&tx, log, s).await?;
    }
    journal::set_phase(&tx, plan, to).await?;
    if let Some(sql) = reverse_sql {
        tx.execute(
            "UPDATE hyperswap.plans SET reverse_sql = $2, cutover_at = now(), cutover_parity_digest = parity_digest
             WHERE name = $1",
            &[&plan, &sql],
        )
        .await
        .with_context(ctx)?;
    }
    tx.commit().await.with_context(ctx)
}
