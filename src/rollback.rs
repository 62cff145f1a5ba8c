//! `hyperswap rollback`: after cutover, run the reverse SQL the cutover transaction
//! recorded in the journal, as one transaction with the same lock discipline. The
//! retired table was kept current by the reverse trigger, so no write is lost; the copy
//! trigger is re-installed, so the plan can cut over again later.

use crate::apply::{lock_policy, open_started, PhaseTx};
use crate::conn::ConnectOptions;
use crate::error::{Error, Result};
use crate::parity::{self, ParityReport};
use crate::phase::Phase;
use crate::plan::Plan;
use crate::privileges;
use crate::progress::Cancel;
use crate::stmt::{SqlLog, Stmt};
use crate::validate;

pub async fn rollback(connect: &ConnectOptions, plan: &Plan, log: &SqlLog) -> Result<ParityReport> {
    let (mut client, record) = open_started(connect, plan, "rollback").await?;
    if record.phase != Phase::CutOver {
        return Err(Error::WrongPhase(format!(
            "plan `{}` is in phase {}, not cut_over; rollback undoes a cutover only (before cutover the source is still live)",
            plan.name, record.phase
        )));
    }
    let reverse = record.reverse_sql.clone().ok_or_else(|| {
        Error::WrongPhase("the journal holds no reverse SQL for this cutover; it was not written by this hyperswap".into())
    })?;
    let jobs = validate::resolve(&client, plan, Some(Phase::CutOver)).await?;
    privileges::check(&client, &jobs, privileges::Scope::Rollback).await?;
    let stmt = Stmt::new(reverse.trim_end().trim_end_matches(';').to_string());
    let lock = lock_policy(plan);
    let cancel = Cancel::default();
    let tx = PhaseTx {
        log,
        lock: &lock,
        jobs: &jobs,
        plan: &plan.name,
        cancel: &cancel,
        window: None,
    };
    tx.run(&mut client, &[stmt], Phase::RolledBack, None)
        .await?;
    // Back in the pre-cutover shape: check the original against the hypertable.
    let jobs = validate::resolve(&client, plan, Some(Phase::RolledBack)).await?;
    let checker = parity::Checker {
        connect,
        log,
        plan: &plan.name,
        jobs: &jobs,
        phase: Phase::RolledBack,
        range_rows: plan.parity.range_rows,
        repair: false,
        cancel: Default::default(),
    };
    checker.run(&client).await
}
