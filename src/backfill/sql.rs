//! The backfill's SQL, built in one place for `plan show` and the workers: the
//! sessions' settings, the statement that finds a batch's last key, the batch itself,
//! and the capture of a table's first and last key.

use crate::model::Job;
use crate::plan::BackfillOptions;
use crate::stmt::Stmt;

/// Session settings of each backfill connection.
pub fn session_statements(opts: &BackfillOptions) -> Vec<Stmt> {
    vec![
        Stmt::noted(
            format!("SET lock_timeout = '{}ms'", opts.lock_timeout.as_millis().max(1)),
            "a batch waits at most this long for a row the application holds, then backs off and retries",
        ),
        Stmt::noted(
            "SET synchronous_commit = off",
            "a batch does not wait for its WAL to reach disk: one lost to a server crash is lost together with its journal record (same transaction) and copied again on resume",
        ),
        Stmt::noted(
            "SELECT pg_catalog.set_config('deadlock_timeout', '100ms', false) FROM pg_catalog.pg_roles WHERE rolname OPERATOR(pg_catalog.=) CURRENT_USER AND rolsuper",
            "as a superuser, detect deadlocks sooner than the application does, so the batch (not the application) is the one aborted",
        ),
        Stmt::noted(
            "SELECT pg_catalog.set_config('session_replication_role', 'replica', false) WHERE pg_catalog.has_parameter_privilege('session_replication_role', 'SET')",
            "where allowed, the batches' inserts do not fire the target's triggers (the reverse trigger, idle until cutover)",
        ),
    ]
}

/// Where a batch starts: at the range's first key (inclusive) or after the cursor.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum From {
    RangeStart,
    Cursor,
}

impl From {
    fn op(self) -> &'static str {
        match self {
            From::RangeStart => ">=",
            From::Cursor => ">",
        }
    }
}

/// The key (under `alias`) after the cursor or from the range's start ($1) and at most
/// the range's end ($2).
fn in_range(job: &Job, alias: Option<&str>, from: From) -> String {
    format!(
        "{} AND {}",
        job.key.compare(alias, from.op(), &job.key.param_values(1)),
        job.key.compare(alias, "<=", &job.key.param_values(2))
    )
}

/// The statement that finds a batch's last key. $1 = range start or cursor, $2 = the
/// range's end, $3 = batch rows - 1.
pub fn next_sql(job: &Job, from: From) -> String {
    crate::template::render(
        include_str!("../../sql/backfill_next.sql"),
        &[
            ("key_text", job.key.text_array(None)),
            ("source", job.source.quoted()),
            ("in_range", in_range(job, None, from)),
            ("order", job.key.order_by(None, false)),
        ],
    )
}

/// How a batch treats a row of the copy that stands in its way on a unique index.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Conflicts {
    /// A plain INSERT, the cheapest (no speculative insertion, which writes a second
    /// WAL record per row): such a row fails the batch (unique violation), which is
    /// then run again as [`Conflicts::Skip`].
    Fail,
    /// `ON CONFLICT DO NOTHING`. Only a stale row of the copy can stand in the way (the
    /// copy of a row the application changed or deleted after its batch, whose
    /// `UNIQUE (device, ts)` a new row of a range not copied yet now has): both keys are
    /// in the change log, whose replay removes the stale row and writes the new one.
    Skip,
}

/// The batch statement. $1 = range start or cursor, $2 = the batch's last key.
pub fn batch_sql(job: &Job, from: From, conflicts: Conflicts) -> String {
    let sql = crate::template::render(
        include_str!("../../sql/backfill_batch.sql"),
        &[
            ("columns", job.column_list()),
            ("source", job.source.quoted()),
            ("target", job.target.quoted()),
            ("in_range", in_range(job, None, from)),
        ],
    );
    match conflicts {
        Conflicts::Fail => sql,
        Conflicts::Skip => format!("{sql}\nON CONFLICT DO NOTHING"),
    }
}

/// The statement that captures a table's first and last key when the backfill starts.
pub fn bounds_sql(job: &Job) -> String {
    let q = |desc| {
        format!(
            "(SELECT {} FROM {} ORDER BY {} LIMIT 1)",
            job.key.text_array(None),
            job.source.quoted(),
            job.key.order_by(None, desc)
        )
    };
    format!("SELECT {}, {}", q(false), q(true))
}
