//! What every command of a plan runs with, built once: the connection settings, the
//! plan, the SQL log, cancellation, progress and the lock policy; and the one way a
//! command opens a plan (connect, take the plan's lock, read its journal record, refuse
//! a plan file changed since it started).

use tokio_postgres::Client;

use crate::conn::ConnectOptions;
use crate::error::{Error, Result};
use crate::journal::{self, PlanRecord};
use crate::model::Job;
use crate::parity::Checker;
use crate::phase::Phase;
use crate::plan::Plan;
use crate::progress::{Cancel, Progress};
use crate::runner::PhaseTx;
use crate::stmt::{LockPolicy, SqlLog};

/// A command's run context (gh-ost's `MigrationContext`): built once, handed to every
/// step and component, never rebuilt field by field.
pub struct Context<'a> {
    pub connect: &'a ConnectOptions,
    pub plan: &'a Plan,
    pub log: &'a SqlLog,
    pub cancel: Cancel,
    pub progress: &'a dyn Progress,
    /// The plan's `cutover` lock settings, which every locking transaction follows.
    pub lock: LockPolicy,
}

/// Whether [`Context::open`] takes the plan's lock (see [`journal::lock_plan`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PlanLock {
    /// Commands that change the database or replay the change log: one at a time.
    Take,
    /// Commands that only read (`plan validate`, `plan show`).
    None,
}

/// A connection to the plan's database and the journal's record of the plan, if any.
pub struct Opened {
    pub client: Client,
    pub record: Option<PlanRecord>,
}

impl Opened {
    /// The plan's phase (`None`: not started).
    pub fn phase(&self) -> Option<Phase> {
        self.record.as_ref().map(|r| r.phase)
    }

    /// The record of a started plan; refuses one the journal does not hold, for the
    /// commands that act on a started plan (`rollback`, `abort`, `finalize`).
    pub fn started(self, plan: &Plan, cmd: &str) -> Result<(Client, PlanRecord)> {
        let Some(record) = self.record else {
            return Err(Error::WrongPhase {
                plan: plan.name.clone(),
                phase: None,
                problem: format!("there is nothing to {cmd}"),
                fix: "check the plan file and the database the connection points at (`hyperswap status` lists the plans it holds)".into(),
            });
        };
        Ok((self.client, record))
    }
}

impl<'a> Context<'a> {
    pub fn new(
        connect: &'a ConnectOptions,
        plan: &'a Plan,
        log: &'a SqlLog,
        cancel: Cancel,
        progress: &'a dyn Progress,
    ) -> Self {
        Context {
            connect,
            plan,
            log,
            cancel,
            progress,
            lock: lock_policy(plan),
        }
    }

    /// Connects (`application_name` as `pg_stat_activity` shows it), takes the plan's
    /// lock when asked, reads the plan's record and refuses a plan file that changed
    /// since the plan started. The lock is taken before the record is read, so what is
    /// read stays true while the lock is held.
    pub async fn open(&self, application_name: &str, lock: PlanLock) -> Result<Opened> {
        let client = self.connect.connect(application_name).await?;
        if lock == PlanLock::Take {
            journal::lock_plan(&client, &self.plan.name).await?;
        }
        let record = journal::load(&client, &self.plan.name).await?;
        journal::check_frozen(self.plan, record.as_ref())?;
        Ok(Opened { client, record })
    }

    /// The sessions that drain the change logs beside the command's own (see
    /// `catch_up.sessions`).
    pub async fn replay_sessions(&self) -> Result<Vec<Client>> {
        crate::pool::replay_sessions(
            self.connect,
            self.log,
            &self.plan.name,
            self.plan.catch_up.sessions,
        )
        .await
    }

    /// The runner of a phase's transaction over `jobs`' tables.
    pub fn phase_tx<'b>(&'b self, jobs: &'b [Job]) -> PhaseTx<'b> {
        PhaseTx {
            log: self.log,
            lock: &self.lock,
            jobs,
            plan: &self.plan.name,
            cancel: &self.cancel,
            window: None,
        }
    }

    /// A parity check of `jobs` as they stand in `phase`, with the plan's settings.
    pub fn checker<'b>(&'b self, jobs: &'b [Job], phase: Phase, repair: bool) -> Checker<'b> {
        let p = &self.plan.parity;
        Checker {
            connect: self.connect,
            log: self.log,
            plan: &self.plan.name,
            jobs,
            phase,
            range_rows: p.range_rows,
            lanes: p.lanes,
            replay_sessions: self.plan.catch_up.sessions,
            resume_within: p.resume_within,
            repair,
            cancel: self.cancel.clone(),
            progress: self.progress,
            watch: None,
        }
    }
}

/// The plan's lock settings (its `cutover` section), which every locking transaction of
/// the tool follows.
pub fn lock_policy(plan: &Plan) -> LockPolicy {
    LockPolicy {
        lock_timeout: plan.cutover.lock_timeout,
        attempts: plan.cutover.attempts,
        backoff: plan.cutover.backoff,
    }
}
