//! Step 3: the backfill. First every table's key range is captured and cut into ranges
//! (one REPEATABLE READ transaction, committed with the move to `backfilling`); then
//! workers copy the ranges batch by batch, each batch with its journal record, so a
//! stopped run resumes after its last committed batch (see [`crate::backfill`]). At the
//! end the change log is replayed, the indexes left for after the copy are built, and
//! the source's NOT VALID constraints are added, in the transaction that moves the plan
//! to `backfilled`. Undone with the target (nothing of its own stays).

use futures_util::future::LocalBoxFuture;
use tokio_postgres::IsolationLevel;

use super::{Flow, Script, Show, Step, StepRun};
use crate::backfill;
use crate::capture;
use crate::error::{Context as _, Error, Result};
use crate::journal;
use crate::model::Job;
use crate::phase::Phase;
use crate::stmt::Stmt;

pub struct Backfill;

/// The end of the backfill, in the transaction that records it: the source's NOT VALID
/// constraints (see [`crate::target::not_valid_constraints`]) and the target's new
/// record of definitions. Empty when there are none.
pub fn end_statements(plan: &str, jobs: &[Job]) -> Vec<Stmt> {
    jobs.iter()
        .flat_map(|j| {
            let mut s = crate::target::not_valid_constraints(j);
            if !s.is_empty() {
                s.push(journal::record_target_definitions(plan, j));
            }
            s
        })
        .collect()
}

impl Step for Backfill {
    fn name(&self) -> &'static str {
        "backfill"
    }

    fn runs_from(&self, phase: Phase) -> bool {
        matches!(phase, Phase::TriggerInstalled | Phase::Backfilling)
    }

    fn leaves(&self) -> Phase {
        Phase::Backfilled
    }

    fn run<'a>(
        &'a self,
        run: &'a mut StepRun<'_>,
        from: Phase,
    ) -> LocalBoxFuture<'a, Result<Flow>> {
        Box::pin(async move {
            let cx = run.cx;
            let plan = &cx.plan.name;
            let workers =
                backfill::worker_count(&*run.client, run.workers.or(cx.plan.backfill.workers))
                    .await?;
            // Triggers committed: capture the key ranges to copy.
            if from == Phase::TriggerInstalled {
                let ctx = "capturing the backfill's key ranges";
                let tx = run
                    .client
                    .build_transaction()
                    .isolation_level(IsolationLevel::RepeatableRead)
                    .start()
                    .await
                    .context(ctx)?;
                backfill::prepare(&tx, cx.log, plan, run.jobs, workers).await?;
                journal::set_phase(&tx, plan, Phase::Backfilling).await?;
                tx.commit().await.context(ctx)?;
                if cx.cancel.is_cancelled() {
                    return Err(Error::Interrupted);
                }
            }
            // Ranges recorded: copy the batches not yet committed.
            let summary = backfill::Backfill {
                connect: cx.connect,
                workers,
                client: &mut *run.client,
                log: cx.log,
                plan,
                jobs: run.jobs,
                opts: &cx.plan.backfill,
                progress: cx.progress,
                cancel: &cx.cancel,
                settings: cx.plan,
            }
            .run()
            .await?;
            let ctx = "finishing the backfill";
            let tx = run.client.transaction().await.context(ctx)?;
            // The NOT VALID constraints, now that the old rows are in (see
            // target::not_valid_constraints), and what the target carries now.
            let later = end_statements(plan, run.jobs);
            if !later.is_empty() {
                let timeout = Stmt::new(format!(
                    "SET LOCAL lock_timeout = '{}ms'",
                    cx.plan.backfill.lock_timeout.as_millis().max(1)
                ));
                crate::stmt::exec(&tx, cx.log, &timeout).await?;
                for s in &later {
                    crate::stmt::exec(&tx, cx.log, s).await?;
                }
            }
            if let Some(summary) = &summary {
                let message = format!("backfill: {summary}");
                journal::event(&tx, plan, Phase::Backfilling, &message).await?;
            }
            journal::set_phase(&tx, plan, self.leaves()).await?;
            tx.commit().await.context(ctx)?;
            Ok(Flow::Next(self.leaves()))
        })
    }

    fn show(&self, show: &Show<'_>, out: &mut Script) {
        let (plan, jobs) = (show.plan, show.jobs);
        out.section("phase 3, backfill: key bounds captured once, in one transaction");
        out.stmts(
            &jobs
                .iter()
                .map(|j| Stmt::new(backfill::bounds_sql(j)))
                .collect::<Vec<_>>(),
        );
        out.section("phase 3, backfill: session settings of the backfill connection");
        out.stmts(&backfill::session_statements(&plan.backfill));
        out.stmts(&[Stmt::noted(
            journal::ADVANCE_RANGE,
            "after each batch, in its transaction: the range's cursor",
        )]);
        for job in jobs {
            show_table(show, job, out);
        }
        out.section(
            "phase 3, end of the backfill: indexes left for after the copy, one chunk per transaction (an invalid one from an interrupted build is dropped first)",
        );
        out.stmts(
            &jobs
                .iter()
                .flat_map(|j| {
                    crate::target::deferred_indexes(j)
                        .into_iter()
                        .map(|(_, s)| s)
                })
                .collect::<Vec<_>>(),
        );
        let later = end_statements(&plan.name, jobs);
        if !later.is_empty() {
            out.section(
                "phase 3, end of the backfill: the source's NOT VALID constraints, in the transaction that records the end of the backfill",
            );
            out.stmts(&later);
        }
    }
}

/// One table's batches, and the replay of its change log at the end.
fn show_table(show: &Show<'_>, job: &Job, out: &mut Script) {
    let opts = &show.plan.backfill;
    let note = format!(
        "{} on {}: the key space up to its last key is cut into ranges from a sample of the keys; each worker batches through one range at a time, each batch in its own transaction with its journal record (first the batch's last key, then the batch). The first batch has {} rows; later ones are sized to take about {}\nkey values are bound as text[], one element per key column: $1 = range start (first batch) or last key copied, $2 = the range's end captured at start, then the batch's last key, $3 = batch rows - 1",
        match opts.workers {
            Some(n) => format!("{n} worker(s)"),
            None => "workers sized to the server (max_parallel_workers_per_gather, 2 to 8)".into(),
        },
        job.source,
        opts.batch_rows,
        humantime::format_duration(opts.batch_duration)
    );
    out.section(&format!("phase 3, backfill {}", job.source));
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
    out.stmts(&list);
    out.section(&format!(
        "phase 3, backfill {}: run only when a batch meets a stale row of the copy on a unique index (unique violation), in its place",
        job.source
    ));
    out.stmts(
        &[backfill::From::RangeStart, backfill::From::Cursor]
            .map(|from| Stmt::new(backfill::batch_sql(job, from, backfill::Conflicts::Skip))),
    );
    if show.plan.catch_up.during_backfill {
        out.section(&format!(
            "phase 3, backfill {}: the catch-up, on a session of its own, run only when the workers have ranges to copy (catch_up.during_backfill); the VACUUM below whenever it has taken 200,000 entries",
            job.source
        ));
        out.stmts(&capture::of(job).catch_up_statements(job));
    }
    out.section(&format!(
        "phase 3, end of the backfill {}: the change log replayed, in passes of {} entries ($1), before the indexes below and again after them; parity replays each range's entries (the same statement, taking those in the range) in the range's snapshot",
        job.source,
        capture::PASS_ENTRIES
    ));
    let sessions = show.plan.catch_up.sessions;
    let (pass, lanes, after) = capture::of(job).drain_statements(job, sessions);
    out.stmts(&pass);
    if !lanes.is_empty() {
        out.section(&format!(
            "phase 3, end of the backfill {}: run only when {} entries or more wait: the drain shared by catch_up.sessions ({sessions}) sessions, each taking the keys of its share (cut points sampled from the log's keys), in place of the pass above; also before parity and before each cutover attempt",
            job.source,
            capture::LANES_FROM
        ));
        out.stmts(&lanes);
    }
    out.section(&format!(
        "phase 3, end of the backfill {}: run only when a drain took 20,000 entries or more (the VACUUM), or a replay met a unique violation (the replay after it)",
        job.source
    ));
    out.stmts(&after);
}
