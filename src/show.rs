//! `hyperswap plan show`: the exact SQL each phase runs, from the same functions
//! `plan apply` calls. Changes nothing.

use std::collections::HashMap;
use std::fmt::Write;

use tokio_postgres::Client;

use crate::backfill;
use crate::cutover;
use crate::error::Result;
use crate::journal;
use crate::journal::check_frozen;
use crate::model::Job;
use crate::parity;
use crate::phase::Phase;
use crate::phases::{create_phase, lock_policy, trigger_phase};
use crate::plan::Plan;
use crate::stmt::Stmt;
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
    if phase == Some(Phase::CutOver) {
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
    section(
        out,
        "phase 1, create target: one transaction, with the journal's phase change",
    );
    stmts(out, &create_phase(&plan.name, jobs, &lock));
    section(
        out,
        "phase 2, copy trigger: one transaction, with the journal's phase change",
    );
    stmts(out, &trigger_phase(&plan.name, jobs, &lock));
    section(
        out,
        "phase 3, backfill: key bounds captured once, in one transaction",
    );
    stmts(
        out,
        &jobs
            .iter()
            .map(|j| Stmt::new(backfill::bounds_sql(j)))
            .collect::<Vec<_>>(),
    );
    section(
        out,
        "phase 3, backfill: session settings of the backfill connection",
    );
    stmts(out, &backfill::session_statements(&plan.backfill));
    stmts(
        out,
        &[Stmt::noted(
            journal::ADVANCE_RANGE,
            "after each batch, in its transaction: the range's cursor",
        )],
    );
    for job in jobs {
        let note = format!(
            "{} on {}: the key space up to its last key is cut into ranges from a sample of the keys; each worker batches through one range at a time, each batch in its own transaction with its journal record (first the batch's last key, then the batch). The first batch has {} rows; later ones are sized to take about {}\nkey values are bound as text[], one element per key column: $1 = range start (first batch) or last key copied, $2 = the range's end captured at start, then the batch's last key, $3 = batch rows - 1",
            match plan.backfill.workers {
                Some(n) => format!("{n} worker(s)"),
                None => "workers sized to the server (max_parallel_workers_per_gather, 2 to 8)".into(),
            },
            job.source,
            plan.backfill.batch_rows,
            humantime::format_duration(plan.backfill.batch_duration)
        );
        section(out, &format!("phase 3, backfill {}", job.source));
        let mut list = Vec::new();
        if let Some(owner) = job.as_owner_sql() {
            list.push(Stmt::noted(
                owner,
                "first in each batch's transaction (and in each replay's, below and in parity): when hyperswap runs as a superuser, what it writes into the copy runs as the table's owner, so nothing the owner attached to the copy runs with a superuser's rights",
            ));
        }
        for from in [backfill::From::RangeStart, backfill::From::Cursor] {
            list.push(Stmt::new(backfill::next_sql(job, from)));
            list.push(Stmt::new(backfill::batch_sql(
                job,
                from,
                backfill::Conflicts::Fail,
            )));
        }
        list.push(Stmt::noted(
            crate::model::AS_SELF_SQL,
            "before the journal record, which is the tool's to write",
        ));
        list[0].note = Some(match &list[0].note {
            Some(n) => format!("{note}\n{n}"),
            None => note,
        });
        stmts(out, &list);
        section(
            out,
            &format!(
                "phase 3, backfill {}: run only when a batch meets a stale row of the copy on a unique index (unique violation), in its place",
                job.source
            ),
        );
        stmts(
            out,
            &[backfill::From::RangeStart, backfill::From::Cursor]
                .map(|from| Stmt::new(backfill::batch_sql(job, from, backfill::Conflicts::Skip))),
        );
        section(
            out,
            &format!(
                "phase 3, end of the backfill {}: the change log replayed, in passes of {} entries ($1), before the indexes below and again after them; parity replays each range's entries (the same statement, taking those in the range) in the range's snapshot",
                job.source,
                crate::replay::PASS_ENTRIES
            ),
        );
        let mut replay: Vec<Stmt> = crate::replay::owner_grants(job).into_iter().collect();
        replay.push(Stmt::new(crate::replay::replay_sql(
            job,
            crate::replay::Take::Limit,
        )));
        stmts(out, &replay);
        section(
            out,
            &format!(
                "phase 3, end of the backfill {}: run only when a drain took 20,000 entries or more",
                job.source
            ),
        );
        stmts(out, &[crate::replay::vacuum_statement(job)]);
    }
    section(
        out,
        "phase 3, end of the backfill: indexes left for after the copy, one chunk per transaction (an invalid one from an interrupted build is dropped first)",
    );
    stmts(
        out,
        &jobs
            .iter()
            .flat_map(|j| {
                crate::target::deferred_indexes(j)
                    .into_iter()
                    .map(|(_, s)| s)
            })
            .collect::<Vec<_>>(),
    );
    let later = crate::phases::end_of_backfill(&plan.name, jobs);
    if !later.is_empty() {
        section(
            out,
            "phase 3, end of the backfill: the source's NOT VALID constraints, in the transaction that records the end of the backfill",
        );
        stmts(out, &later);
    }
    section(out, "phase 4, parity: ANALYZE the targets");
    stmts(
        out,
        &jobs
            .iter()
            .map(parity::analyze_statement)
            .collect::<Vec<_>>(),
    );
    section(out, "phase 4, parity: session settings of its connections");
    stmts(out, &parity::sql::session_statements());
    for job in jobs {
        let b = bounds.get(&job.ord).map(Vec::as_slice).unwrap_or_default();
        section(
            out,
            &format!(
                "phase 4, parity {}: {} key range(s), each in one REPEATABLE READ transaction that first replays the range's change-log entries, then reads both sides; two connections taking ranges from a queue ($1, $2 = range bounds)",
                job.source,
                b.len() + 1
            ),
        );
        let text = texts
            .get(&job.ord)
            .copied()
            .unwrap_or(parity::sql::RowText::Columns);
        stmts(
            out,
            &parity::checksum_statements(job, Phase::Backfilled, b, text),
        );
    }
    for job in jobs {
        let (live, mirror) = parity::pair(job, Phase::Backfilled);
        let whole = parity::ranges::KeyRange {
            lo: Some(vec!["$lo".into()]),
            hi: Some(vec!["$hi".into()]),
        };
        let (sql, _) = parity::sql::pinpoint_sql(job, live, mirror, &whole);
        section(
            out,
            &format!(
                "phase 4, parity {}: only when a range differs, the rows that differ",
                job.source
            ),
        );
        stmts(out, &[Stmt::new(sql)]);
    }
    let cut = cutover::statements(&plan.name, jobs, &lock);
    section(
        out,
        &format!(
            "phase 5, cutover: one transaction for all tables, up to {} attempts, lock_timeout {:?}",
            plan.cutover.attempts, plan.cutover.lock_timeout
        ),
    );
    stmts(out, &cut);
    for (kind, title) in [
        (
            crate::remove::Removal::Abort,
            "abort: only when you run `hyperswap abort` (before cutover)",
        ),
        (
            crate::remove::Removal::Finalize,
            "finalize: only when you run `hyperswap finalize` (after cutover)",
        ),
    ] {
        let (first, second) = crate::remove::statements(kind, jobs, &lock);
        section(
            out,
            &format!("{title}; first one lock-polite transaction, then one more"),
        );
        stmts(out, &first);
        stmts(out, &second);
    }
    let end = crate::fk_emulation::end_statements(jobs, &lock);
    if !end.is_empty() {
        section(
            out,
            "end of the foreign-key emulation: it stays after finalize, until you run `hyperswap finalize --end-fk-emulation`; one lock-polite transaction",
        );
        stmts(out, &end);
    }
    section(
        out,
        "rollback: recorded in the journal by the cutover transaction; run by `hyperswap rollback`",
    );
    stmts(out, &cutover::reverse_statements(jobs, &lock));
    let after = cutover::after_rollback_statements(jobs, &lock);
    if !after.is_empty() {
        section(
            out,
            "rollback, then: each statement in a transaction of its own, right after the rollback commits (`hyperswap rollback` or `plan apply` runs them again if interrupted)",
        );
        stmts(out, &after);
    }
}

fn section(out: &mut String, title: &str) {
    let _ = writeln!(out, "\n-- ==== {title}");
}

fn stmts(out: &mut String, list: &[Stmt]) {
    for s in list {
        out.push('\n');
        out.push_str(&s.render());
    }
}
