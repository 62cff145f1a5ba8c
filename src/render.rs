//! Human-readable rendering of the library's reports.

use std::fmt::Write;

use hyperswap::commands::status::PlanStatus;
use hyperswap::conn::ConnectOptions;
use hyperswap::model::Job;
use hyperswap::parity::ParityReport;
use hyperswap::phase::Phase;
use hyperswap::plan::Plan;

pub fn validated(plan: &Plan, jobs: &[Job], connect: &ConnectOptions) -> String {
    let mut out = format!(
        "plan `{}` is valid against {}\n",
        plan.name,
        connect.describe()
    );
    for job in jobs {
        let _ = writeln!(
            out,
            "  {} -> {} (key {}, time {} in chunks of {}), retired as {}",
            job.source,
            job.target,
            job.key
                .names()
                .iter()
                .map(|c| hyperswap::ident::display_ident(c))
                .collect::<Vec<_>>()
                .join(", "),
            job.time.name,
            humantime::format_duration(job.chunk_time_interval),
            job.retired
        );
    }
    let notes: Vec<String> = jobs
        .iter()
        .flat_map(hyperswap::validate::cutover_notes)
        .collect();
    if !notes.is_empty() {
        out.push_str("after cutover, check the application for:\n");
        for n in notes {
            let _ = writeln!(out, "  - {n}");
        }
    }
    out.trim_end().to_string()
}

pub fn phase_sentence(phase: Phase) -> String {
    match phase {
        Phase::Planned => "recorded, nothing created yet".into(),
        Phase::TargetCreated => "target hypertables created".into(),
        Phase::TriggerInstalled => "copy triggers installed".into(),
        Phase::Backfilling => "backfilling".into(),
        Phase::Backfilled => "backfilled".into(),
        Phase::Verified => "verified: parity passed, ready to cut over".into(),
        Phase::CutOver => {
            "cut over: the hypertables carry the tables' names; `hyperswap rollback` reverses it"
                .into()
        }
        Phase::RolledBack => "rolled back".into(),
        Phase::Aborting => "being aborted".into(),
        Phase::Finalizing => "being finalized".into(),
    }
}

pub fn parity(report: &ParityReport) -> String {
    let verdict = if report.equal { "EQUAL" } else { "DIFFERENT" };
    let mut out = format!(
        "parity of plan `{}` ({}): {verdict}  [run {}, {:.1}s, longest transaction {:.0}ms{}]\n",
        report.plan,
        report.phase,
        report.run_id,
        report.elapsed_ms / 1000.0,
        report.longest_transaction_ms,
        if report.resumed_ranges > 0 {
            format!(", {} ranges resumed", report.resumed_ranges)
        } else {
            String::new()
        }
    );
    for (table, keys) in &report.repaired {
        let _ = writeln!(
            out,
            "  repaired: re-copied {keys} key(s) of {table} before this check"
        );
    }
    let pairs: Vec<String> = report
        .tables
        .iter()
        .map(|t| format!("{} -> {}", t.live, t.mirror))
        .collect();
    let w = pairs
        .iter()
        .map(|p| p.chars().count())
        .max()
        .unwrap_or(0)
        .max("live -> mirror".len());
    let _ = writeln!(
        out,
        "  {:<w$}  {:>12}  {:>12}  {:>6}  result",
        "live -> mirror", "live rows", "mirror rows", "ranges"
    );
    for (t, pair) in report.tables.iter().zip(&pairs) {
        let result = if t.equal {
            "equal".to_string()
        } else {
            format!("{} range(s) differ", t.ranges_different)
        };
        let _ = writeln!(
            out,
            "  {pair:<w$}  {:>12}  {:>12}  {:>6}  {result}",
            t.live_rows, t.mirror_rows, t.ranges
        );
    }
    for t in report.tables.iter().filter(|t| !t.differences.is_empty()) {
        let _ = writeln!(
            out,
            "  rows that differ in {} (missing/extra: seen from {}):",
            t.live, t.mirror
        );
        let _ = writeln!(out, "    {:<24} {:<10} columns", "key", "kind");
        for d in &t.differences {
            let kind = serde_json::to_value(d.kind)
                .ok()
                .and_then(|v| v.as_str().map(String::from))
                .unwrap_or_default();
            let _ = writeln!(
                out,
                "    {:<24} {:<10} {}",
                d.key,
                kind,
                d.columns.join(", ")
            );
        }
        if t.differences_truncated {
            let _ = writeln!(out, "    ... more differences not listed");
        }
    }
    let _ = write!(out, "  digest {}", report.digest);
    out
}

pub fn status(list: &[PlanStatus], only: Option<&str>) -> String {
    if list.is_empty() {
        return match only {
            Some(name) => format!("plan `{name}` has not started in this database"),
            None => "no hyperswap plan has started in this database".into(),
        };
    }
    let mut out = String::new();
    for p in list {
        let _ = writeln!(
            out,
            "plan `{}`: {} (started {}, updated {})",
            p.plan, p.phase, p.started_at, p.updated_at
        );
        if let Some(at) = &p.parity_passed_at {
            let _ = writeln!(out, "  parity last passed {at}");
        }
        if let Some(at) = &p.cutover_at {
            let _ = writeln!(out, "  cut over {at}");
        }
        if let Some(at) = &p.last_progress_at {
            let _ = writeln!(out, "  last batch committed {at}");
        }
        let cut_over = p.phase == "cut_over";
        for t in &p.tables {
            if cut_over {
                let _ = writeln!(
                    out,
                    "  {}: the hypertable is live; the original is {}, kept current",
                    t.source, t.retired
                );
            }
            let pct = if t.rows_total > 0 {
                100.0 * t.rows_copied as f64 / t.rows_total as f64
            } else {
                0.0
            };
            // After cutover the copy carries the source's name: say what was copied.
            let copy = if cut_over {
                format!("backfill of {} (the hypertable now)", t.source)
            } else {
                format!("{} -> {}", t.source, t.target)
            };
            let _ = writeln!(
                out,
                "  {copy}: {} of ~{} rows copied ({:.0}%), {} batches, {:.0} rows/s",
                t.rows_copied,
                t.rows_total,
                pct.min(100.0),
                t.batches,
                t.rows_per_second
            );
            if let Some(n) = t.changes_waiting {
                let _ = writeln!(
                    out,
                    "  {}: {n} logged change(s) waiting for replay (parity and cutover replay them)",
                    t.source
                );
            }
            if let Some(c) = &t.catch_up {
                let _ = writeln!(out, "  {}: at {}, {}", t.source, c.at, c.summary);
            }
        }
    }
    out.trim_end().to_string()
}

/// `plan validate --json`: `{"plan", "valid", "exit_code", "problems": [{"problem",
/// "fix"}], "tables": [...]}`, and the exit code to leave with.
pub fn validated_json(
    path: &std::path::Path,
    checked: &Result<(hyperswap::plan::Plan, Vec<hyperswap::model::Job>), hyperswap::Error>,
) -> (serde_json::Value, u8) {
    use hyperswap::Error;
    use serde_json::json;
    fn problems(e: &Error, out: &mut Vec<serde_json::Value>) {
        match e {
            Error::Problems(many) => many.iter().for_each(|e| problems(e, out)),
            Error::Invalid { problem, fix } | Error::RetryLater { problem, fix } => {
                out.push(json!({"problem": problem, "fix": fix}))
            }
            Error::WrongPhase {
                plan,
                phase,
                problem,
                fix,
            } => out.push(json!({
                "problem": format!("plan `{plan}`: {problem}"),
                "phase": phase.map(|p| p.to_string()),
                "fix": fix,
            })),
            Error::Plan { file, message } => out.push(json!({
                "problem": message,
                "file": file.display().to_string(),
                "fix": null,
            })),
            other => out.push(json!({"problem": other.to_string(), "fix": null})),
        }
    }
    match checked {
        Ok((plan, jobs)) => (
            json!({
                "plan": plan.name,
                "file": path.display().to_string(),
                "valid": true,
                "exit_code": 0,
                "problems": [],
                "tables": jobs.iter().map(|j| json!({
                    "source": j.source.to_string(),
                    "target": j.target.to_string(),
                    "retired": j.retired.to_string(),
                    "key": j.key.names(),
                    "time_column": j.time.name,
                    "estimated_rows": j.table.estimated_rows,
                })).collect::<Vec<_>>(),
            }),
            0,
        ),
        Err(e) => {
            let mut list = Vec::new();
            problems(e, &mut list);
            let code = e.exit_code();
            (
                json!({
                    "file": path.display().to_string(),
                    "valid": false,
                    "exit_code": code,
                    "problems": list,
                }),
                code,
            )
        }
    }
}
