//! Phase 4, parity: do the live table and its mirror hold exactly the same rows?
//!
//! Each table's key space is cut into ranges. Per range, both sides are read in one
//! REPEATABLE READ snapshot: exact `count(*)` plus the sum and xor of a 64-bit hash of
//! every row's text form, with the session settings that shape that text pinned. Two
//! connections ("lanes") take ranges from a shared queue, so both stay busy. Before
//! cutover the copy trails the source by its change log: each range's transaction first
//! replays the range's logged keys in its own snapshot (see [`crate::replay`]), so the
//! copy it then reads is the source as that snapshot shows it; after cutover the
//! reverse trigger writes the retired table in the writer's transaction. Either way the
//! comparison is exact while the application writes, with no lock and only short
//! transactions. A range that differs is narrowed to its exact keys and columns.
//! Per-range results go to the journal, so an interrupted run resumes.

mod check;
mod diff;
mod lanes;
pub mod ranges;
mod read;
mod replay;
mod runs;
pub mod sql;

use serde::Serialize;

use crate::ident::QualifiedName;
use crate::model::Job;
use crate::phase::Phase;
use crate::stmt::Stmt;

pub use check::Checker;
pub use read::row_text;
pub use runs::plan_bounds;

/// Differences listed per table at most.
const MAX_DIFFERENCES: usize = 1000;

/// The distinct checksum statements a run over `bounds` executes for `job`, live then
/// mirror, for `plan show`.
pub fn checksum_statements(
    job: &Job,
    phase: Phase,
    bounds: &[ranges::KeyValue],
    text: sql::RowText,
) -> Vec<Stmt> {
    let (live, mirror) = pair(job, phase);
    let mut out: Vec<Stmt> = Vec::new();
    for range in ranges::from_bounds(bounds) {
        if phase.source_is_live() {
            let (clause, _) = range.clause(job, 1);
            let sql = crate::capture::of(job).range_replay_sql(job, &clause);
            if !out.iter().any(|s| s.sql == sql) {
                out.push(Stmt::new(sql));
            }
        }
        for table in [live, mirror] {
            let (sql, _) = sql::checksum_sql(job, table, &range, text);
            if !out.iter().any(|s| s.sql == sql) {
                out.push(Stmt::new(sql));
            }
        }
    }
    out
}

/// The pair parity compares: `live` carries the application; `mirror` is kept in step.
pub fn pair(job: &Job, phase: Phase) -> (&QualifiedName, &QualifiedName) {
    if phase.source_is_live() {
        (&job.source, &job.target)
    } else {
        (&job.source, &job.retired)
    }
}

/// Statistics for the new table before it takes traffic (and for the range split).
pub fn analyze_statement(job: &Job) -> Stmt {
    Stmt::noted(
        format!("ANALYZE {}", job.target.quoted()),
        "fresh statistics before the new table takes traffic",
    )
}

/// How a row differs, seen from the mirror.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum DiffKind {
    /// In the live table, not in the mirror.
    Missing,
    /// In the mirror, not in the live table.
    Extra,
    /// In both, with different values in `columns`.
    Different,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Difference {
    /// The key, as text: `42`, or `(a, b)` for a composite key.
    pub key: String,
    /// The key's columns, each as text.
    pub key_values: Vec<String>,
    pub kind: DiffKind,
    /// The columns whose values differ (`different` only).
    pub columns: Vec<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct TableParity {
    pub table: String,
    pub live: String,
    pub mirror: String,
    pub live_rows: i64,
    pub mirror_rows: i64,
    pub ranges: usize,
    pub ranges_different: usize,
    pub equal: bool,
    pub differences: Vec<Difference>,
    /// More differences exist than are listed.
    pub differences_truncated: bool,
}

#[derive(Debug, Clone, Serialize)]
pub struct ParityReport {
    pub plan: String,
    pub phase: String,
    pub equal: bool,
    pub run_id: i64,
    /// Ranges taken from an interrupted earlier run of the same comparison.
    pub resumed_ranges: usize,
    /// sha256 over every range's result, in order.
    pub digest: String,
    pub elapsed_ms: f64,
    /// The longest transaction the run held open.
    pub longest_transaction_ms: f64,
    /// Keys re-copied by `--repair` before this check, per table.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub repaired: Vec<(String, usize)>,
    pub tables: Vec<TableParity>,
}
