//! Step 4: parity. The targets are analysed, then every key range of both sides is
//! compared in one snapshot each, after a replay of the range's logged changes (see
//! [`crate::parity`]); equal moves the plan to `verified`, a difference stops the run
//! where it stands (the report names the keys). Nothing to undo.

use futures_util::future::LocalBoxFuture;

use super::{Flow, Script, Show, Step, StepRun};
use crate::error::Result;
use crate::journal;
use crate::parity::{self, ParityReport};
use crate::phase::Phase;
use crate::stmt::{self, Stmt};
use crate::watch::Watch;

pub struct Parity;

impl Step for Parity {
    fn name(&self) -> &'static str {
        "parity"
    }

    // Everything copied (or cutover undone).
    fn runs_from(&self, phase: Phase) -> bool {
        matches!(phase, Phase::Backfilled | Phase::RolledBack)
    }

    fn leaves(&self) -> Phase {
        Phase::Verified
    }

    fn run<'a>(
        &'a self,
        run: &'a mut StepRun<'_>,
        from: Phase,
    ) -> LocalBoxFuture<'a, Result<Flow>> {
        Box::pin(async move {
            let report = verify(run, from).await?;
            let equal = report.equal;
            run.parity = Some(report);
            if !equal {
                return Ok(Flow::Stop);
            }
            journal::set_phase(&*run.client, &run.cx.plan.name, self.leaves()).await?;
            Ok(Flow::Next(self.leaves()))
        })
    }

    fn show(&self, show: &Show<'_>, out: &mut Script) {
        let jobs = show.jobs;
        out.section("phase 4, parity: ANALYZE the targets");
        out.stmts(
            &jobs
                .iter()
                .map(parity::analyze_statement)
                .collect::<Vec<_>>(),
        );
        out.section("phase 4, parity: session settings of its connections");
        out.stmts(&parity::sql::session_statements());
        for job in jobs {
            let b = show
                .bounds
                .get(&job.ord)
                .map(Vec::as_slice)
                .unwrap_or_default();
            out.section(&format!(
                "phase 4, parity {}: {} key range(s), each in one REPEATABLE READ transaction that first replays the range's change-log entries, then reads both sides; two connections taking ranges from a queue ($1, $2 = range bounds)",
                job.source,
                b.len() + 1
            ));
            let text = show
                .texts
                .get(&job.ord)
                .copied()
                .unwrap_or(parity::sql::RowText::Columns);
            out.stmts(&parity::checksum_statements(
                job,
                Phase::Backfilled,
                b,
                text,
            ));
        }
        for job in jobs {
            let (live, mirror) = parity::pair(job, Phase::Backfilled);
            let whole = parity::ranges::KeyRange {
                lo: Some(vec!["$lo".into()]),
                hi: Some(vec!["$hi".into()]),
            };
            let (sql, _) = parity::sql::pinpoint_sql(job, live, mirror, &whole);
            out.section(&format!(
                "phase 4, parity {}: only when a range differs, the rows that differ",
                job.source
            ));
            out.stmts(&[Stmt::new(sql)]);
        }
    }
}

/// Analyzes the targets, then checks parity of the plan's tables as they stand in
/// `phase`.
pub async fn verify(run: &mut StepRun<'_>, phase: Phase) -> Result<ParityReport> {
    let cx = run.cx;
    cx.progress
        .step("analyzing the targets and checking parity");
    for job in run.jobs {
        stmt::exec(&*run.client, cx.log, &parity::analyze_statement(job)).await?;
    }
    if phase.source_is_live() {
        // The backlog first, watched: an application that fills the log faster than
        // it drains stops the run (resumable) before the log passes its limit.
        let mut watch = Watch::new(run.client, cx.plan, run.jobs, phase).await?;
        cx.progress
            .step("replaying the change log before comparing");
        let more = cx.replay_sessions().await?;
        let sessions = crate::pool::with(run.client, &more);
        crate::capture::drain_watched(&sessions, cx.log, run.jobs, &mut watch).await?;
        // The log's size limit holds while the ranges are compared too.
        let watch = tokio::sync::Mutex::new(watch);
        let checker = crate::parity::Checker {
            watch: Some(&watch),
            ..cx.checker(run.jobs, phase, false)
        };
        return checker.run(run.client).await;
    }
    cx.checker(run.jobs, phase, false).run(run.client).await
}
