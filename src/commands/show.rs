//! `hyperswap plan show`: the exact SQL each phase runs, from the same functions
//! `plan apply` calls. Changes nothing.

use std::collections::HashMap;
use std::fmt::Write;

use tokio_postgres::Client;

use crate::context::lock_policy;
use crate::cutover;
use crate::error::Result;
use crate::journal;
use crate::journal::check_frozen;
use crate::model::{Job, Removal};
use crate::parity;
use crate::phase::Phase;
use crate::plan::Plan;
use crate::steps::{Script, Show, STEPS};
use crate::validate;

pub async fn show(client: &Client, plan: &Plan) -> Result<String> {
    let record = journal::load(client, &plan.name).await?;
    check_frozen(plan, record.as_ref())?;
    let phase = record.as_ref().map(|r| r.phase);
    let mut out = String::new();
    let _ = writeln!(
        out,
        "-- hyperswap plan `{}` ({}, sha256 {})",
        plan.name,
        plan.path.display(),
        plan.sha256
    );
    let _ = writeln!(
        out,
        "-- journal phase: {}",
        phase
            .map(|p| p.to_string())
            .unwrap_or_else(|| "not started".into())
    );
    let _ = writeln!(
        out,
        "-- every session of hyperswap first runs: {}",
        crate::stmt::SESSION_SETTINGS
    );
    if phase.is_some_and(Phase::cut_over) {
        let reverse = record.and_then(|r| r.reverse_sql).unwrap_or_default();
        let (_, after) = cutover::split_reverse(&reverse);
        let (main, _) = cutover::rollback_transaction(&reverse);
        section(
            &mut out,
            "rollback: the reverse SQL recorded at cutover (one transaction; `hyperswap rollback`)",
        );
        out.push_str(&main);
        if !after.is_empty() {
            section(
                &mut out,
                "rollback, then: each statement in a transaction of its own, right after the rollback commits",
            );
            for a in after {
                let _ = writeln!(out, "\n{a};");
            }
        }
        return Ok(out);
    }
    let jobs = validate::resolve(client, plan, phase).await?;
    let bounds = parity::plan_bounds(client, &jobs, plan.parity.range_rows).await?;
    let mut texts = HashMap::new();
    for job in &jobs {
        // Before the target exists, it will be created with the source's exact columns.
        let text = match phase {
            Some(p) if p.target_created() => {
                parity::row_text(client, job, Phase::Backfilled).await?
            }
            _ => parity::sql::RowText::WholeRow,
        };
        texts.insert(job.ord, text);
    }
    write_phases(&mut out, plan, &jobs, &bounds, &texts);
    Ok(out)
}

fn write_phases(
    out: &mut String,
    plan: &Plan,
    jobs: &[Job],
    bounds: &HashMap<usize, Vec<parity::ranges::KeyValue>>,
    texts: &HashMap<usize, parity::sql::RowText>,
) {
    let lock = lock_policy(plan);
    let show = Show {
        plan,
        jobs,
        lock: &lock,
        bounds,
        texts,
    };
    let mut script = Script::default();
    for step in &STEPS {
        step.show(&show, &mut script);
    }
    for (kind, title) in [
        (
            Removal::Abort,
            "abort: only when you run `hyperswap abort` (before cutover)",
        ),
        (
            Removal::Finalize,
            "finalize: only when you run `hyperswap finalize` (after cutover)",
        ),
    ] {
        let (first, second) = super::remove::statements(kind, jobs, &lock);
        script.section(&format!(
            "{title}; first one lock-polite transaction, then one more"
        ));
        script.stmts(&first);
        script.stmts(&second);
    }
    let end = crate::fk_emulation::end_statements(jobs, &lock);
    if !end.is_empty() {
        script.section(
            "end of the foreign-key emulation: it stays after finalize, until you run `hyperswap finalize --end-fk-emulation`; one lock-polite transaction",
        );
        script.stmts(&end);
    }
    for step in &STEPS {
        step.show_undo(&show, &mut script);
    }
    out.push_str(&script.0);
}

fn section(out: &mut String, title: &str) {
    let _ = writeln!(out, "\n-- ==== {title}");
}
