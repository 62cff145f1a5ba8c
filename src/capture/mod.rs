//! Change capture: how the writes the application makes on a source while it is being
//! moved reach the copy, and after cutover the retired table. Everything else in the
//! tool speaks to capture through [`Capture`] and the few functions below; nothing
//! outside this module names the change log, the trigger functions or their triggers.
//!
//! What a mechanism does, in the order a plan meets it:
//!
//! - **install** (phase 2): whatever catches the writes from then on;
//! - **catch up**: replay what was caught into the copy, in passes ([`Capture::drain`]),
//!   or the part of it in one key range inside a given snapshot ([`Capture::replay_in`],
//!   parity's), or all of it at once ([`Capture::replay_whole`]);
//! - **count what waits** ([`waiting`]), for `status`;
//! - **swap direction** in the cutover transaction (catch up under its locks, then the
//!   other way round: the live hypertable keeps the retired table current) and back in
//!   the rollback transaction;
//! - **remove**: what `abort` and `finalize` drop, in [`Stage`] order.
//!
//! # Layout
//!
//! - `names.rs`: the names of the objects a mechanism creates per table.
//! - `triggers.rs`: the statement triggers and their functions (the copy, the reverse
//!   copy, the guard), and the view that pins the copied columns.
//! - `log.rs`: the change log the forward triggers append keys to, and its replay.
//!
//! Today's one mechanism is [`StatementTriggers`]: statement triggers with transition
//! tables that append keys to a change log before cutover and copy rows after it. A
//! second mechanism (logical decoding, say) is a module of its own implementing
//! [`Capture`], chosen in [`of`].

mod log;
mod names;
mod triggers;

use std::time::Duration;

use futures_util::future::LocalBoxFuture;
use tokio_postgres::types::ToSql;
use tokio_postgres::{Client, Transaction};

use crate::error::Result;
use crate::ident::QualifiedName;
use crate::keyspace::KeyValue;
use crate::model::{CaptureId, Job, Removal};
use crate::stmt::{SqlLog, Stmt};

pub use log::Replayed;

/// Intervals of key values, each from a lower bound (`None`: unbounded; included or
/// not) up to and including its upper bound; each key value as text, one element per
/// key column.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct KeyIntervals {
    pub lo: Vec<Option<KeyValue>>,
    pub lo_inclusive: Vec<bool>,
    pub hi: Vec<KeyValue>,
}

/// One parameter of [`KeyIntervals`], as bound.
enum Param {
    Texts(Vec<Option<String>>),
    Bools(Vec<bool>),
}

impl Param {
    fn as_sql(&self) -> &(dyn ToSql + Sync) {
        match self {
            Param::Texts(t) => t,
            Param::Bools(b) => b,
        }
    }
}

impl KeyIntervals {
    /// As `log::in_intervals_sql` binds them: per key column the lower bounds, per key
    /// column the upper bounds, then whether each lower bound is included.
    fn params(&self, columns: usize) -> Vec<Param> {
        let col = |v: &KeyValue, j: usize| v.get(j).cloned();
        let mut out: Vec<Param> = (0..columns)
            .map(|j| {
                Param::Texts(
                    self.lo
                        .iter()
                        .map(|lo| lo.as_ref().and_then(|v| col(v, j)))
                        .collect(),
                )
            })
            .collect();
        out.extend((0..columns).map(|j| Param::Texts(self.hi.iter().map(|v| col(v, j)).collect())));
        out.push(Param::Bools(self.lo_inclusive.clone()));
        out
    }
}

/// What waits to be replayed for a table, as the statistics count it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Backlog {
    /// Entries waiting (approximate: the statistics' live tuples).
    pub waiting: i64,
    /// Entries appended since capture was installed (for the arrival rate).
    pub arrived: i64,
    /// The bytes its waiting entries take on disk.
    pub bytes: i64,
}

/// Where a statement of a removal goes: the first stage in a short lock-polite
/// transaction over every table (off the table the application writes to), the others
/// in one more transaction, table by table, in this order (a view before the table it
/// reads, a table before the functions its triggers call).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Stage {
    /// Off the live table: the triggers that fire on the application's writes.
    Triggers,
    /// Views over the tables.
    Views,
    /// The tables.
    Tables,
    /// What the tables' triggers called, and what they wrote to.
    Functions,
}

/// A way of capturing changes. Methods that return statements are pure (`plan show`
/// prints them); the others act.
pub trait Capture: Sync {
    /// Phase 2: what installs capture for `job`, in the phase's transaction.
    fn install(&self, job: &Job, plan: &str) -> Vec<Stmt>;

    /// Whether `job` was set up by an earlier build whose capture this one replaces
    /// (its install statements are then run again, each idempotent).
    fn needs_reinstall<'a>(
        &'a self,
        client: &'a Client,
        job: &'a Job,
    ) -> LocalBoxFuture<'a, Result<bool>>;

    /// Replays what was caught for `job` into the copy, in passes, each in a
    /// transaction of its own, until it has taken what waited when it began; the
    /// `sessions` (at least one) share the work when there is much of it.
    fn drain<'a>(
        &'a self,
        sessions: &'a [&'a Client],
        log: &'a SqlLog,
        job: &'a Job,
        watch: &'a mut dyn Passes,
    ) -> LocalBoxFuture<'a, Result<Replayed>>;

    /// Everything caught for `job`, replayed in one transaction of its own.
    fn replay_whole<'a>(
        &'a self,
        client: &'a Client,
        log: &'a SqlLog,
        job: &'a Job,
    ) -> LocalBoxFuture<'a, Result<Replayed>>;

    /// The statement that replays what was caught for the keys satisfying `clause` (a
    /// key range; its parameters numbered from `$1`), run by [`Capture::replay_in`].
    fn range_replay_sql(&self, job: &Job, clause: &str) -> String;

    /// Runs a [`Capture::range_replay_sql`] statement inside `tx` (its snapshot).
    fn replay_in<'a>(
        &'a self,
        tx: &'a Transaction<'a>,
        sql: &'a str,
        params: &'a [&'a (dyn ToSql + Sync)],
    ) -> LocalBoxFuture<'a, std::result::Result<Replayed, tokio_postgres::Error>>;

    /// `plan show`: the statements of one draining pass, those of a drain shared by
    /// `sessions` (one per session; none for one session), and what follows a long
    /// drain.
    fn drain_statements(&self, job: &Job, sessions: usize) -> (Vec<Stmt>, Vec<Stmt>, Vec<Stmt>);

    /// While the backfill runs: replays at most `limit` entries after the entry at
    /// `after` (a position in the log, `(0,0)` from its start) whose key lies in none
    /// of the `pending` intervals (keys the backfill has yet to copy), in a transaction
    /// of its own. `Ok(None)`: it met a stale row of another key on a unique index, and
    /// left its entries for the replay at the end of the backfill. `log_once` is given
    /// the statements.
    fn catch_up<'a>(
        &'a self,
        client: &'a Client,
        log_once: &'a dyn Fn(&str),
        job: &'a Job,
        pending: &'a KeyIntervals,
        after: &'a str,
        limit: i64,
    ) -> LocalBoxFuture<'a, Result<Option<Replayed>>>;

    /// `plan show`: the catch-up's statement while the backfill runs.
    fn catch_up_statements(&self, job: &Job) -> Vec<Stmt>;

    /// Whether anything waits for `job` at all (a look that costs next to nothing,
    /// before a pass whose statement is planned over every chunk of the copy).
    fn any_waiting<'a>(
        &'a self,
        client: &'a Client,
        job: &'a Job,
    ) -> LocalBoxFuture<'a, Result<bool>>;

    /// After many entries were taken: what they leave behind goes (a replay reads the
    /// log through it).
    fn tidy<'a>(
        &'a self,
        client: &'a Client,
        log: &'a SqlLog,
        job: &'a Job,
    ) -> LocalBoxFuture<'a, Result<()>>;

    /// What waits for `job`, from the statistics, without a scan (`None`: nothing is
    /// captured for it).
    fn backlog<'a>(
        &'a self,
        client: &'a Client,
        job: &'a Job,
    ) -> LocalBoxFuture<'a, Result<Option<Backlog>>>;

    /// The cutover transaction, under its locks, before anything is renamed: what is
    /// left to catch up (the copy then equals the source when it takes the name), in
    /// at most `budget` (past it the transaction fails, and the locks go back).
    fn cutover_catch_up(&self, job: &Job, budget: Duration) -> Vec<Stmt>;

    /// The cutover transaction, before the renames: what the rollback it records
    /// relies on.
    fn cutover_prepare(&self, job: &Job) -> Vec<Stmt>;

    /// The cutover transaction, after the renames: capture turned round (the live
    /// hypertable keeps the retired table current).
    fn cutover_turn(&self, job: &Job) -> Vec<Stmt>;

    /// The rollback transaction, before the renames: the reverse direction off.
    fn rollback_unturn(&self, job: &Job) -> Vec<Stmt>;

    /// The rollback transaction, after the renames: forward capture back on.
    fn rollback_turn(&self, job: &Job) -> Vec<Stmt>;

    /// What `abort` (before cutover) or `finalize` (after it) drops of capture's.
    fn removal(&self, kind: Removal, job: &Job) -> Vec<(Stage, Stmt)>;

    /// The functions capture installs for `job` (their owners and EXECUTE are checked
    /// before anything runs).
    fn functions(&self, job: &Job) -> Vec<QualifiedName>;
}

/// The mechanism that captures `job`'s changes: the registration point of mechanisms.
pub fn of(_job: &Job) -> &'static dyn Capture {
    &StatementTriggers
}

/// Statement triggers appending keys to a change log before cutover, copying rows
/// into the retired table after it.
pub struct StatementTriggers;

/// What a drain calls after each of its passes (the catch-up's watch, which may stop
/// the run on a limit).
pub trait Passes {
    /// After a pass (or a round of passes, one per session) that took `taken` entries of
    /// `job`'s log; `caught_up`: it reached the end of what it may take.
    fn after<'a>(
        &'a mut self,
        client: &'a Client,
        job: &'a Job,
        taken: i64,
        caught_up: bool,
    ) -> LocalBoxFuture<'a, Result<()>>;
}

/// Passes nobody watches.
pub struct Unwatched;

impl Passes for Unwatched {
    fn after<'a>(
        &'a mut self,
        _: &'a Client,
        _: &'a Job,
        _: i64,
        _: bool,
    ) -> LocalBoxFuture<'a, Result<()>> {
        Box::pin(async { Ok(()) })
    }
}

/// Drains every table's capture (see [`Capture::drain`]); what was done, summed.
pub async fn drain(sessions: &[&Client], log: &SqlLog, jobs: &[Job]) -> Result<Replayed> {
    drain_watched(sessions, log, jobs, &mut Unwatched).await
}

/// [`drain`], each pass shown to `watch`.
pub async fn drain_watched(
    sessions: &[&Client],
    log: &SqlLog,
    jobs: &[Job],
    watch: &mut dyn Passes,
) -> Result<Replayed> {
    let mut total = Replayed::default();
    for job in jobs {
        total.add(&of(job).drain(sessions, log, job, &mut *watch).await?);
    }
    Ok(total)
}

/// The catch-up statement of one draining pass of `job` (the snapshot tests').
pub fn drain_sql(job: &Job) -> String {
    log::replay_sql(job, log::Take::Limit)
}

/// Entries waiting to be replayed for the table the journal names `source`, with the
/// capture id it recorded (`None` when it has no change log, or it could not be
/// counted).
pub async fn waiting(client: &Client, source: &QualifiedName, id: CaptureId) -> Option<i64> {
    log::pending_by_source(client, source, id).await
}

/// Tables in the tool's schema that a table's owner may write (`LIKE` patterns): the
/// journal's check of who may write the tool's schema leaves them out.
pub const OWNER_WRITABLE: &[&str] = &[names::CHANGE_LOG_PATTERN];

/// Rows one draining pass takes at most.
pub const PASS_ENTRIES: i64 = log::PASS_ENTRIES;

/// Entries waiting from which a drain shares the log among its sessions.
pub const LANES_FROM: i64 = log::LANES_FROM;

impl Capture for StatementTriggers {
    fn install(&self, job: &Job, plan: &str) -> Vec<Stmt> {
        triggers::statements(job, plan)
    }

    fn needs_reinstall<'a>(
        &'a self,
        client: &'a Client,
        job: &'a Job,
    ) -> LocalBoxFuture<'a, Result<bool>> {
        // A build before the change log: its forward trigger writes the copy in the
        // application's transaction, and there is no log.
        Box::pin(async move { Ok(!log::log_exists(client, job).await?) })
    }

    fn drain<'a>(
        &'a self,
        sessions: &'a [&'a Client],
        sql_log: &'a SqlLog,
        job: &'a Job,
        watch: &'a mut dyn Passes,
    ) -> LocalBoxFuture<'a, Result<Replayed>> {
        Box::pin(log::drain(sessions, sql_log, job, watch))
    }

    fn replay_whole<'a>(
        &'a self,
        client: &'a Client,
        sql_log: &'a SqlLog,
        job: &'a Job,
    ) -> LocalBoxFuture<'a, Result<Replayed>> {
        Box::pin(log::replay_whole(client, sql_log, job))
    }

    fn range_replay_sql(&self, job: &Job, clause: &str) -> String {
        log::replay_sql(job, log::Take::Where(clause))
    }

    fn replay_in<'a>(
        &'a self,
        tx: &'a Transaction<'a>,
        sql: &'a str,
        params: &'a [&'a (dyn ToSql + Sync)],
    ) -> LocalBoxFuture<'a, std::result::Result<Replayed, tokio_postgres::Error>> {
        Box::pin(log::run(tx, sql, params))
    }

    fn drain_statements(&self, job: &Job, sessions: usize) -> (Vec<Stmt>, Vec<Stmt>, Vec<Stmt>) {
        let mut pass: Vec<Stmt> = log::owner_grants(job).into_iter().collect();
        pass.push(Stmt::new(drain_sql(job)));
        let lanes = if sessions > 1 {
            (0..sessions)
                .map(|i| {
                    Stmt::noted(
                        log::lane_sql(job, i, sessions),
                        format!(
                            "session {} of {sessions}: $1..${} the cut points bound ({}), then the pass's size and where it starts in the log",
                            i + 1,
                            (i + 1).min(sessions - 1),
                            if i + 1 < sessions {
                                "those of the sessions before it, then its own"
                            } else {
                                "those of every other session: it takes the keys past them all"
                            }
                        ),
                    )
                })
                .collect()
        } else {
            Vec::new()
        };
        let replace = Stmt::noted(
            log::replay_sql(job, log::Take::Replace),
            "only when a replay met, on another unique index, a row of another key (values of a unique column swapped between rows): the whole log at once, the copy's rows of its keys removed first",
        );
        (pass, lanes, vec![log::vacuum_statement(job), replace])
    }

    fn catch_up<'a>(
        &'a self,
        client: &'a Client,
        log_once: &'a dyn Fn(&str),
        job: &'a Job,
        pending: &'a KeyIntervals,
        after: &'a str,
        limit: i64,
    ) -> LocalBoxFuture<'a, Result<Option<Replayed>>> {
        Box::pin(async move {
            let sql = log::catch_up_sql(job);
            if let Some(owner) = job.as_owner_sql() {
                log_once(&owner);
            }
            log_once(&sql);
            let params = pending.params(job.key.columns.len());
            let mut bound: Vec<&(dyn ToSql + Sync)> = params.iter().map(|p| p.as_sql()).collect();
            bound.push(&limit);
            bound.push(&after);
            log::catch_up_pass(client, job, &sql, &bound).await
        })
    }

    fn catch_up_statements(&self, job: &Job) -> Vec<Stmt> {
        vec![Stmt::noted(
            log::catch_up_sql(job),
            "in passes, beside the workers, each in a transaction of its own as the table's owner: entries of keys already copied (or outside every range) are replayed; $1.. = the intervals of the keys not copied yet: per key column their lower bounds (NULL: none), then their upper bounds, then whether each lower bound is included; then the pass's size and where it starts in the log",
        )]
    }

    fn any_waiting<'a>(
        &'a self,
        client: &'a Client,
        job: &'a Job,
    ) -> LocalBoxFuture<'a, Result<bool>> {
        Box::pin(log::any_waiting(client, job))
    }

    fn tidy<'a>(
        &'a self,
        client: &'a Client,
        sql_log: &'a SqlLog,
        job: &'a Job,
    ) -> LocalBoxFuture<'a, Result<()>> {
        Box::pin(
            async move { crate::stmt::exec(client, sql_log, &log::vacuum_statement(job)).await },
        )
    }

    fn backlog<'a>(
        &'a self,
        client: &'a Client,
        job: &'a Job,
    ) -> LocalBoxFuture<'a, Result<Option<Backlog>>> {
        Box::pin(async move {
            Ok(log::backlog(client, job)
                .await?
                .map(|(waiting, arrived, bytes)| Backlog {
                    waiting,
                    arrived,
                    bytes,
                }))
        })
    }

    fn cutover_catch_up(&self, job: &Job, budget: Duration) -> Vec<Stmt> {
        let ms = budget.as_millis().max(1);
        let mut out = vec![Stmt::noted(
            format!("SET LOCAL statement_timeout = '{ms}ms'"),
            "the replay under the locks takes at most cutover.catch_up_budget: past it the transaction rolls back and gives the locks back, and the cutover replays more before its next attempt",
        )];
        out.extend(log::cutover_statements(job));
        out.push(Stmt::new("SET LOCAL statement_timeout = DEFAULT"));
        out
    }

    fn cutover_prepare(&self, job: &Job) -> Vec<Stmt> {
        vec![
            triggers::drop_guard(&job.target),
            triggers::guard_function_sql(job),
        ]
    }

    fn cutover_turn(&self, job: &Job) -> Vec<Stmt> {
        let mut out = triggers::drop_triggers(&job.forward(), &job.retired);
        out.extend(triggers::create_triggers(&job.reverse(), &job.source));
        out
    }

    fn rollback_unturn(&self, job: &Job) -> Vec<Stmt> {
        triggers::drop_triggers(&job.reverse(), &job.source)
    }

    fn rollback_turn(&self, job: &Job) -> Vec<Stmt> {
        let mut out = vec![triggers::create_guard(job, &job.target)];
        out.extend(triggers::create_triggers(&job.forward(), &job.source));
        out
    }

    fn removal(&self, kind: Removal, job: &Job) -> Vec<(Stage, Stmt)> {
        // Before cutover the forward triggers sit on the live source; after it the
        // reverse ones sit on the live hypertable (by then named like the source).
        let live = match kind {
            Removal::Abort => job.forward(),
            Removal::Finalize => job.reverse(),
        };
        let mut out: Vec<(Stage, Stmt)> = triggers::drop_triggers(&live, &job.source)
            .into_iter()
            .map(|s| (Stage::Triggers, s))
            .collect();
        out.push((Stage::Views, triggers::drop_columns_view(job)));
        out.extend(
            [
                triggers::drop_function(&job.forward()),
                Stmt::new(format!(
                    "DROP TABLE IF EXISTS {}",
                    job.change_log().quoted()
                )),
                triggers::drop_function(&job.reverse()),
                triggers::drop_guard_function(job),
            ]
            .map(|s| (Stage::Functions, s)),
        );
        out
    }

    fn functions(&self, job: &Job) -> Vec<QualifiedName> {
        vec![
            job.copy_function(),
            job.reverse_function(),
            job.guard_function(),
        ]
    }
}
