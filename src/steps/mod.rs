//! The steps of a plan, one file each, in the order `plan apply` walks them. A step is a
//! value of [`Step`] (pgroll's `Operation`, reshape's `Action`): the phases it runs
//! from and the phase it leaves, what it checks before it changes anything, the
//! statements `plan show` prints, how it runs and resumes, and what undoes it. `plan
//! apply`, `plan show`, `status`, `abort`, `finalize` and `rollback` walk [`STEPS`];
//! only a step commits its phase (through [`crate::runner`] or with its last write).
//!
//! A new step is a file here implementing [`Step`] and its place in [`STEPS`] (and, if
//! it leaves the plan in a phase of its own, that phase in [`crate::phase`]).
//!
//! # Layout
//!
//! - `target.rs`: phase 1, the hypertables created;
//! - `trigger.rs`: phase 2, change capture installed (see [`crate::capture`]);
//! - `backfill.rs`: phase 3, key ranges captured, then history copied;
//! - `parity.rs`: phase 4, the copy proven equal;
//! - `cutover.rs`: phase 5, the swap and the reverse path it records.

pub mod backfill;
pub mod cutover;
pub mod parity;
pub mod target;
pub mod trigger;

use std::collections::HashMap;
use std::fmt::Write;

use futures_util::future::LocalBoxFuture;
use tokio_postgres::Client;

use crate::capture::Stage;
use crate::context::Context;
use crate::error::Result;
use crate::model::{Job, Removal};
use crate::parity::{ranges::KeyValue, sql::RowText, ParityReport};
use crate::phase::Phase;
use crate::stmt::{LockPolicy, Stmt};

/// One step of a plan.
pub trait Step: Sync {
    /// Its name, as `plan apply --until` names it.
    fn name(&self) -> &'static str;

    /// Whether it runs (or resumes) from a plan in `phase`.
    fn runs_from(&self, phase: Phase) -> bool;

    /// The phase it leaves the plan in.
    fn leaves(&self) -> Phase;

    /// What it checks before it changes anything (on top of `plan validate`'s checks,
    /// which `plan apply` makes first).
    fn check<'a>(&'a self, _run: &'a StepRun<'_>) -> LocalBoxFuture<'a, Result<()>> {
        Box::pin(async { Ok(()) })
    }

    /// Runs it (or resumes it) from `from`; its phase change commits with its last
    /// write.
    fn run<'a>(&'a self, run: &'a mut StepRun<'_>, from: Phase)
        -> LocalBoxFuture<'a, Result<Flow>>;

    /// The statements `plan show` prints for it.
    fn show(&self, show: &Show<'_>, out: &mut Script);

    /// What `abort` (before cutover) or `finalize` (after it) drops of what it made.
    fn removal(&self, _kind: Removal, _job: &Job) -> Vec<(Stage, Stmt)> {
        Vec::new()
    }

    /// `plan show`: how it is undone, where that is a script of its own (the cutover's
    /// recorded reverse).
    fn show_undo(&self, _show: &Show<'_>, _out: &mut Script) {}
}

/// Every step, in order.
pub static STEPS: [&dyn Step; 5] = [
    &target::Target,
    &trigger::Trigger,
    &backfill::Backfill,
    &parity::Parity,
    &cutover::Cutover,
];

/// The step a plan in `phase` runs next, with its place in [`STEPS`] (`None`: nothing
/// is left to run).
pub fn next(phase: Phase) -> Option<(usize, &'static dyn Step)> {
    STEPS
        .iter()
        .copied()
        .enumerate()
        .find(|(_, s)| s.runs_from(phase))
}

/// The place in [`STEPS`] of the step named `name`.
pub fn position(name: &str) -> Option<usize> {
    STEPS.iter().position(|s| s.name() == name)
}

/// How a step ended.
pub enum Flow {
    /// Done: the plan is now in this phase.
    Next(Phase),
    /// Stopped on purpose where it stands (parity found differences).
    Stop,
}

/// What a step runs with: the command's context, the orchestrator's connection (it
/// holds the plan's lock) and the plan's tables.
pub struct StepRun<'a> {
    pub cx: &'a Context<'a>,
    pub client: &'a mut Client,
    pub jobs: &'a [Job],
    /// Backfill sessions, in place of the plan's `backfill.workers`.
    pub workers: Option<u32>,
    /// The parity check this run made, if any.
    pub parity: Option<ParityReport>,
}

/// What `plan show` knows when it prints the steps.
pub struct Show<'a> {
    pub plan: &'a crate::plan::Plan,
    pub jobs: &'a [Job],
    pub lock: &'a LockPolicy,
    /// Parity's range bounds per table.
    pub bounds: &'a HashMap<usize, Vec<KeyValue>>,
    /// How parity reads each table's rows.
    pub texts: &'a HashMap<usize, RowText>,
}

/// The text `plan show` prints: sections of statements.
#[derive(Default)]
pub struct Script(pub String);

impl Script {
    pub fn section(&mut self, title: &str) {
        let _ = writeln!(self.0, "\n-- ==== {title}");
    }

    pub fn stmts(&mut self, list: &[Stmt]) {
        for s in list {
            self.0.push('\n');
            self.0.push_str(&s.render());
        }
    }
}

/// `SET LOCAL lock_timeout`, then each table's statements: the one transaction of a step
/// that only runs DDL.
fn per_table(lock: &LockPolicy, jobs: &[Job], each: impl Fn(&Job) -> Vec<Stmt>) -> Vec<Stmt> {
    std::iter::once(crate::stmt::set_lock_timeout(lock.lock_timeout))
        .chain(jobs.iter().flat_map(each))
        .collect()
}

/// Runs `stmts` with the move to `to` as one lock-polite transaction (see
/// [`crate::runner::PhaseTx`]), saying `title` first.
async fn one_transaction(
    run: &mut StepRun<'_>,
    title: &str,
    stmts: &[Stmt],
    to: Phase,
) -> Result<Flow> {
    let cx = run.cx;
    cx.progress.step(title);
    cx.phase_tx(run.jobs)
        .run(run.client, stmts, to, None)
        .await?;
    Ok(Flow::Next(to))
}

/// What `abort` or `finalize` runs, from every step's [`Step::removal`]: the first
/// transaction (lock-polite, off the tables the application writes to) and the second
/// (table by table, in [`Stage`] order).
pub fn removal(kind: Removal, jobs: &[Job], lock: &LockPolicy) -> (Vec<Stmt>, Vec<Stmt>) {
    let mut first = vec![crate::stmt::set_lock_timeout(lock.lock_timeout)];
    let mut second = Vec::new();
    for job in jobs {
        let mut parts: Vec<(Stage, Stmt)> =
            STEPS.iter().flat_map(|s| s.removal(kind, job)).collect();
        // Stable: each step's own order holds within a stage.
        parts.sort_by_key(|(stage, _)| *stage);
        for (stage, stmt) in parts {
            if stage == Stage::Triggers {
                first.push(stmt);
            } else {
                second.push(stmt);
            }
        }
    }
    (first, second)
}
