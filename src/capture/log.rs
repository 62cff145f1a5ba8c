//! The change log's replay. Before cutover the forward trigger does not write the
//! hypertable: it appends the keys the application wrote to the table's change log
//! (see [`super::names`]). The tool replays the log: it takes entries and
//! writes each key's rows to the copy as the source has them in the same snapshot
//! (sql/replay.sql). Replaying a key twice, or out of order, writes the same rows, so
//! the only rule is that an entry is taken only once the copy of its key is no longer
//! the backfill's to make:
//!
//! - while the backfill runs, only the entries of keys its batches have copied (or that
//!   lie outside every range) are replayed (see `src/backfill/marks.rs`): a batch
//!   reading a key from an older snapshot than a replay could otherwise put back a row
//!   the replay removed;
//! - when the backfill ends, the log is drained, in passes of [`PASS_ENTRIES`];
//! - parity replays each range's entries in the range's own snapshot, before it reads
//!   both sides (the copy is then exactly the source there);
//! - the cutover drains the log, then takes its locks and replays what is left in the
//!   transaction that renames.

use tokio_postgres::types::ToSql;
use tokio_postgres::GenericClient;

use crate::error::{Context, Error, Result};
use crate::ident::{quote_ident, QualifiedName};
use crate::model::{CaptureId, Job};
use crate::progress::Cancel;
use crate::retry::{Class, Policy, Retry};
use crate::stmt::{SqlLog, Stmt};

/// Log entries taken by one draining pass (one statement, one transaction).
pub const PASS_ENTRIES: i64 = 20_000;

/// What one replay did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Replayed {
    /// Log entries taken.
    pub taken: i64,
    /// Rows of the copy removed (deleted at the source, or moved).
    pub deleted: i64,
    /// Rows of the copy written (inserted or overwritten).
    pub written: i64,
    /// The ctid of the last entry taken, as text.
    pub last: Option<String>,
    /// The most sessions that replayed at once (0: none counted).
    pub lanes: usize,
}

impl Replayed {
    /// Adds what `other` took, removed and wrote.
    pub fn add(&mut self, other: &Replayed) {
        self.taken += other.taken;
        self.deleted += other.deleted;
        self.written += other.written;
        self.lanes = self.lanes.max(other.lanes);
    }
}

/// Which entries a replay takes.
pub enum Take<'a> {
    /// Every entry (the cutover's, under its locks).
    All,
    /// Every entry, and every row of the copy with a taken key goes before the source's
    /// rows come in: what a replay falls back on when a row it writes meets, on another
    /// unique index, a row of another taken key (values of a unique column swapped
    /// between rows: an upsert writes the rows one after the other, and the first meets
    /// the second's old value).
    Replace,
    /// At most `$1` entries after the entry at ctid `$2` (a draining pass, in the log's
    /// physical order).
    Limit,
    /// The entries whose key satisfies `clause` (a parity range; its parameters are
    /// numbered from `$1`).
    Where(&'a str),
    /// At most `$<n+1>` entries after the entry at ctid `$<n+2>` whose key satisfies
    /// `clause` (whose parameters are `$1` to `$n`): a catch-up pass while the backfill
    /// runs, over the keys already copied (`lane: false`), or one session's pass of a
    /// drain shared by several, over its share of the keys (`lane: true`).
    Pass {
        clause: &'a str,
        n: usize,
        lane: bool,
    },
}

/// The replay statement of `job` (see sql/replay.sql).
pub fn replay_sql(job: &Job, take: Take) -> String {
    let replace_all = matches!(take, Take::Replace);
    let (which, filter, limit) = match take {
        Take::All | Take::Replace => ("every entry".to_string(), String::new(), String::new()),
        Take::Limit => (
            "at most $1 entries after the one at $2 (a ctid)".to_string(),
            "\n        WHERE ctid OPERATOR(pg_catalog.>) $2::pg_catalog.text::pg_catalog.tid"
                .to_string(),
            "\n        LIMIT $1".to_string(),
        ),
        Take::Where(clause) => (
            "the entries of one key range".to_string(),
            format!("\n        WHERE {clause}"),
            String::new(),
        ),
        Take::Pass { clause, n, lane } => (
            format!(
                "at most ${} entries after the one at ${} (a ctid) whose keys {}",
                n + 1,
                n + 2,
                if lane {
                    "are this session's share (the cut points before it and its own)"
                } else {
                    "the backfill has copied"
                }
            ),
            format!(
                "\n        WHERE ctid OPERATOR(pg_catalog.>) ${}::pg_catalog.text::pg_catalog.tid\n          AND ({clause})",
                n + 2
            ),
            format!("\n        LIMIT ${}", n + 1),
        ),
    };
    let unique: Vec<&str> = job.unique_columns();
    let old_time = quote_ident(super::names::LOG_TIME_COLUMN);
    // A row of `table` (an alias) with an old entry's key and time (`hyperswap_o`), each
    // compared by its unique index's equality; the time column's types are pg_catalog's.
    let is_old = |table: &str| {
        job.key
            .columns
            .iter()
            .map(|k| {
                format!(
                    "{table}.{0} {1} hyperswap_o.{0}",
                    quote_ident(&k.name),
                    k.op("=")
                )
            })
            .chain(std::iter::once(format!(
                "{table}.{} OPERATOR(pg_catalog.=) hyperswap_o.{old_time}",
                quote_ident(&job.time.name)
            )))
            .collect::<Vec<_>>()
            .join(" AND ")
    };
    let (gone, replace) = if replace_all {
        (
            format!("\n    WHERE {}", job.key.any_of("keys")),
            "The copy's rows of every taken key go first, whatever they hold (see below).\n-- "
                .to_string(),
        )
    } else {
        (
            format!(
                "\n    USING stale AS hyperswap_o\n    WHERE {}",
                is_old("hyperswap_t")
            ),
            String::new(),
        )
    };
    // Columns an upsert overwrites: every written column but the time column (which
    // picks the chunk) and an identity GENERATED ALWAYS (which no UPDATE may set, and
    // which never changes). The key's columns too: a key equal by its operator class
    // may differ in its stored value (citext 'Bob' and 'bob', numeric 1.0 and 1.00).
    let set: Vec<String> = job
        .table
        .columns
        .iter()
        .filter(|c| c.is_written())
        .filter(|c| c.name != job.time.name)
        .filter(|c| c.identity != crate::catalog::Identity::Always)
        .map(|c| format!("{0} = EXCLUDED.{0}", quote_ident(&c.name)))
        .collect();
    let on_conflict = if set.is_empty() {
        "DO NOTHING".to_string()
    } else {
        format!("DO UPDATE SET {}", set.join(", "))
    };
    crate::template::render(
        include_str!("../../sql/replay.sql"),
        &[
            ("source", job.source.quoted()),
            ("target", job.target.quoted()),
            ("log", job.change_log().quoted()),
            ("which", which),
            ("filter", filter),
            ("limit", limit),
            (
                "key",
                job.key
                    .names()
                    .iter()
                    .map(|n| quote_ident(n))
                    .collect::<Vec<_>>()
                    .join(", "),
            ),
            ("old_time", old_time.clone()),
            ("same_old", is_old("hyperswap_s")),
            ("gone", gone),
            ("replace", replace),
            ("source_key_taken", job.key.any_of("keys")),
            ("columns", job.column_list()),
            (
                "unique",
                unique
                    .iter()
                    .map(|c| quote_ident(c))
                    .collect::<Vec<_>>()
                    .join(", "),
            ),
            ("on_conflict", on_conflict),
        ],
    )
}

/// The cutover's replay, under its locks: every entry left, as the table's owner (see
/// [`Job::as_owner_sql`]).
pub fn cutover_statements(job: &Job) -> Vec<Stmt> {
    let replay = Stmt::noted(
        replay_sql(job, Take::All),
        "the changes logged since the last replay (the writers are locked out now): the copy equals the source when it takes the name",
    );
    match job.as_owner_sql() {
        Some(owner) => vec![
            Stmt::noted(owner, "the replay writes the copy with the table owner's rights (when hyperswap runs as a superuser)"),
            replay,
            Stmt::new(crate::model::AS_SELF_SQL),
        ],
        None => vec![replay],
    }
}

/// Before the replays of a command, when hyperswap runs as a superuser: what they need
/// as the table's owner (see [`Job::as_owner_sql`]), granted to whoever owns the table
/// now (it may have changed hands since phase 2, and its new owner has nothing in the
/// tool's schema). `None` where the replays do not change role.
pub fn owner_grants(job: &Job) -> Option<Stmt> {
    job.as_owner_sql()?;
    let owner = crate::ident::quote_ident(&job.table.owner);
    let body = format!(
        "\nBEGIN\n    IF (SELECT rolsuper FROM pg_catalog.pg_roles WHERE rolname OPERATOR(pg_catalog.=) CURRENT_USER) THEN\n        GRANT USAGE ON SCHEMA {} TO {owner};\n        {}\n    END IF;\nEND\n",
        crate::ident::quote_ident(crate::model::TOOL_SCHEMA),
        log_grant_sql(job, &job.table.owner),
    );
    Some(Stmt::noted(
        format!("DO {}", crate::ident::dollar_quote(&body)),
        "when hyperswap runs as a superuser, before replaying: the replays run as the table's owner, which needs to read and take the change log",
    ))
}

/// What the table's owner holds on the change log: INSERT for its copy trigger, SELECT
/// and DELETE for the replays the tool runs as the owner (given in phase 2 and again
/// before the replays of each command).
pub fn log_grant_sql(job: &Job, owner: &str) -> String {
    format!(
        "GRANT INSERT, SELECT, DELETE ON {} TO {};",
        job.change_log().quoted(),
        crate::ident::quote_ident(owner)
    )
}

/// Runs one replay statement.
pub async fn run(
    client: &impl GenericClient,
    sql: &str,
    params: &[&(dyn ToSql + Sync)],
) -> std::result::Result<Replayed, tokio_postgres::Error> {
    let row = client.query_one(sql, params).await?;
    Ok(Replayed {
        taken: row.get(0),
        deleted: row.get(1),
        written: row.get(2),
        last: row.get(3),
        lanes: 1,
    })
}

/// Whether `job` has a change log (not before phase 2, nor for a plan started by a
/// build before the log).
pub async fn log_exists(client: &impl GenericClient, job: &Job) -> Result<bool> {
    Ok(client
        .query_one(
            "SELECT pg_catalog.to_regclass($1) IS NOT NULL",
            &[&job.change_log().quoted()],
        )
        .await
        .context("looking for the change log")?
        .get(0))
}

/// Entries waiting in `job`'s change log (`None` when it has none).
pub async fn pending(client: &impl GenericClient, job: &Job) -> Result<Option<i64>> {
    if !log_exists(client, job).await? {
        return Ok(None);
    }
    let n: i64 = client
        .query_one(
            &format!(
                "SELECT pg_catalog.count(*) FROM {}",
                job.change_log().quoted()
            ),
            &[],
        )
        .await
        .with_context(|| format!("counting the change log of {}", job.source))?
        .get(0);
    Ok(Some(n))
}

/// Entries waiting in the change log of the table the journal names `source` (`None`
/// when it has none, or it could not be counted).
pub async fn pending_by_source(
    client: &impl GenericClient,
    source: &QualifiedName,
    id: CaptureId,
) -> Option<i64> {
    let log = super::names::change_log_of(source, id).quoted();
    let exists: bool = client
        .query_one("SELECT pg_catalog.to_regclass($1) IS NOT NULL", &[&log])
        .await
        .ok()?
        .get(0);
    if !exists {
        return None;
    }
    client
        .query_one(&format!("SELECT pg_catalog.count(*) FROM {log}"), &[])
        .await
        .ok()
        .map(|r| r.get(0))
}

/// How long a draining pass waits for a lock (an application's TRUNCATE of the source
/// holds one while it waits for the copy) before it gives way and tries again.
const LOCK_TIMEOUT_MS: u32 = 1000;
/// Attempts of one draining pass that gave way.
const ATTEMPTS: u32 = 8;

/// Replays `job`'s change log in passes of [`PASS_ENTRIES`] until it has taken as many
/// entries as the log held when it began (or a pass finds fewer): under a steady writer
/// the log never empties, and what comes meanwhile is the next replay's. Given several
/// `sessions` and a log of [`LANES_FROM`] entries or more, the sessions share the log,
/// each replaying the keys of its own lane (see [`lane_clause`]). Each pass is a
/// transaction that waits at most [`LOCK_TIMEOUT_MS`] for a lock; one that gave way (or
/// met a parent row deleted after its snapshot, for a copy with foreign keys) is tried
/// again, and the application is never the one that waits. Returns what was done,
/// summed.
pub async fn drain(
    sessions: &[&tokio_postgres::Client],
    log: &SqlLog,
    job: &Job,
    watch: &mut dyn super::Passes,
) -> Result<Replayed> {
    let client = sessions[0];
    let mut total = Replayed::default();
    let Some(waiting) = pending(client, job).await? else {
        return Ok(total);
    };
    if let Some(grants) = owner_grants(job) {
        crate::stmt::exec(client, log, &grants).await?;
    }
    if let Some(owner) = job.as_owner_sql() {
        log.record(&owner);
    }
    let cuts = if sessions.len() > 1 && waiting >= LANES_FROM {
        lane_cuts(client, job, sessions.len()).await?
    } else {
        Vec::new()
    };
    if cuts.is_empty() {
        let sql = replay_sql(job, Take::Limit);
        log.record(&sql);
        let mut after = "(0,0)".to_string();
        loop {
            let r = pass(client, log, job, &sql, &[&PASS_ENTRIES, &after]).await?;
            total.add(&r);
            watch
                .after(client, job, r.taken, r.taken < PASS_ENTRIES)
                .await?;
            match r.last {
                Some(last) if r.taken >= PASS_ENTRIES && total.taken < waiting => after = last,
                _ => break,
            }
        }
    } else {
        total = in_lanes(sessions, log, job, watch, &cuts, waiting).await?;
    }
    if total.taken >= PASS_ENTRIES {
        // The entries taken are dead tuples until vacuumed, and every later replay
        // (each parity range's) would read through them.
        crate::stmt::exec(client, log, &vacuum_statement(job)).await?;
    }
    Ok(total)
}

/// Entries waiting from which a drain given several sessions shares the log among them.
pub const LANES_FROM: i64 = 2 * PASS_ENTRIES;

/// Keys that cut the waiting entries of `job`'s log into at most `lanes` shares of
/// about equal entries (a block sample of the log, as the backfill cuts a table).
async fn lane_cuts(
    client: &tokio_postgres::Client,
    job: &Job,
    lanes: usize,
) -> Result<Vec<crate::keyspace::KeyValue>> {
    let log = job.change_log();
    let size = crate::keyspace::size(client, &log).await?;
    crate::keyspace::cut_points(client, &log, &job.key, size, lanes).await
}

/// Which entries lane `lane` of `lanes` takes: those whose key is at or below none of
/// the cut points before the lane's (bound first, from `$1`) and at or below the lane's
/// own (bound last; the last lane has none). A key belongs to the first lane whose cut
/// point it does not pass, and the last lane takes the keys past every cut point: a
/// partition of the keys whatever order the cut points come in, so no key is ever
/// replayed by two sessions at once (a replay from an older snapshot committing after
/// one from a newer could otherwise put back an older row). Returns the clause and how
/// many cut points it binds.
fn lane_clause(job: &Job, lane: usize, lanes: usize) -> (String, usize) {
    let log = job.change_log().quoted();
    let at_or_below = |n: usize| job.key.compare(Some(&log), "<=", &job.key.param_values(n));
    let mut parts: Vec<String> = (1..=lane)
        .map(|n| format!("NOT {}", at_or_below(n)))
        .collect();
    let bound = if lane + 1 < lanes {
        parts.push(at_or_below(lane + 1));
        lane + 1
    } else {
        lane
    };
    (parts.join("\n          AND "), bound)
}

/// The statement of lane `lane` of `lanes` (`plan show`'s too).
pub fn lane_sql(job: &Job, lane: usize, lanes: usize) -> String {
    let (clause, n) = lane_clause(job, lane, lanes);
    replay_sql(
        job,
        Take::Pass {
            clause: &clause,
            n,
            lane: true,
        },
    )
}

/// A drain shared by sessions, each taking the entries of its own keys (see
/// [`lane_clause`]), in rounds: every lane runs a pass at once, and a lane that found
/// less than a full pass is done. A lane whose pass meets, on another unique index, a
/// row of a key another lane holds (a key moved from one share to another) runs it
/// again next round, once the other has committed; when a round moves no lane (values
/// swapped between keys of different shares), or all else is done, one session
/// replays the whole log at once, the copy's rows of its keys removed first.
async fn in_lanes(
    sessions: &[&tokio_postgres::Client],
    log: &SqlLog,
    job: &Job,
    watch: &mut dyn super::Passes,
    cuts: &[crate::keyspace::KeyValue],
    waiting: i64,
) -> Result<Replayed> {
    let lanes = cuts.len() + 1;
    let sqls: Vec<String> = (0..lanes).map(|i| lane_sql(job, i, lanes)).collect();
    for sql in &sqls {
        log.record(sql);
    }
    tracing::debug!(
        "replaying the change log of {} in {lanes} sessions",
        job.source
    );
    let mut after: Vec<Option<String>> = vec![Some("(0,0)".to_string()); lanes];
    let mut total = Replayed::default();
    let mut whole = false;
    loop {
        let passes = (0..lanes)
            .filter_map(|i| after[i].clone().map(|from| (i, from)))
            .map(|(i, from)| {
                let sql = &sqls[i];
                async move {
                    let own = if i + 1 < lanes { i + 1 } else { i };
                    let mut bound: Vec<&(dyn ToSql + Sync)> = cuts[..own]
                        .iter()
                        .map(|c| c as &(dyn ToSql + Sync))
                        .collect();
                    bound.push(&PASS_ENTRIES);
                    bound.push(&from);
                    (
                        i,
                        retried(sessions[i], job, sql, &bound, "replaying", true).await,
                    )
                }
            });
        let done = futures_util::future::join_all(passes).await;
        let (mut round, mut blocked) = (0, 0);
        let mut failed = None;
        for (i, r) in done {
            match r {
                Ok(Ok(r)) => {
                    round += r.taken;
                    total.add(&r);
                    after[i] = if r.taken >= PASS_ENTRIES {
                        r.last
                    } else {
                        None
                    };
                }
                // Its cursor stays: the pass runs again next round, once the others'
                // passes (which may have removed the row in its way) have committed.
                Ok(Err(())) => blocked += 1,
                Err(e) => {
                    after[i] = None;
                    failed = failed.or(Some(e));
                }
            }
        }
        if let Some(e) = failed {
            return Err(e);
        }
        let done = after.iter().all(Option::is_none);
        watch.after(sessions[0], job, round, done).await?;
        if blocked > 0 && (round == 0 || total.taken >= waiting) {
            // No session moved (rows in each other's way: values of a unique column
            // swapped between keys of different sessions), or the drain is done but
            // for the blocked: only one statement over the whole log can write them.
            whole = true;
            break;
        }
        if done || total.taken >= waiting {
            break;
        }
    }
    if whole {
        total.add(&Box::pin(replace_whole(sessions[0], log, job)).await?);
    }
    total.lanes = lanes;
    Ok(total)
}

/// After a drain that took many entries: the log's dead tuples go (and its empty pages
/// at the end), so that later replays, which read the whole log, stay short.
pub fn vacuum_statement(job: &Job) -> Stmt {
    Stmt::noted(
        format!("VACUUM {}", job.change_log().quoted()),
        "only after a drain that took 20,000 entries or more",
    )
}

/// One replay of every entry of `job`'s log, in a transaction of its own (READ
/// COMMITTED, as the table's owner, tried again when it gives way). What a partial
/// replay falls back on when a row it writes meets, on another unique index, a stale
/// row whose own entry it did not take (in another pass, or another parity range).
pub async fn replay_whole(
    client: &impl GenericClient,
    log: &SqlLog,
    job: &Job,
) -> Result<Replayed> {
    if !log_exists(client, job).await? {
        return Ok(Replayed::default());
    }
    let sql = replay_sql(job, Take::All);
    log.record(&sql);
    pass(client, log, job, &sql, &[]).await
}

/// What a draining pass that gave way tries again after: a lock it waited too long
/// for, a deadlock or serialization failure, or (a copy with foreign keys) a parent
/// row deleted after the pass's snapshot.
const RETRYABLE: &[Class] = &[
    Class::LockTimeout,
    Class::Deadlock,
    Class::Serialization,
    Class::ForeignKeyRace,
];

/// How a replay in a transaction of its own is tried again.
fn pass_policy() -> Policy {
    Policy {
        attempts: ATTEMPTS,
        pause: std::time::Duration::from_millis(200),
        retryable: RETRYABLE,
    }
}

/// The server's message of `e`, else `e` as text.
fn message(e: &tokio_postgres::Error) -> String {
    e.as_db_error()
        .map_or_else(|| e.to_string(), |d| d.message().to_string())
}

/// One replay statement in a transaction of its own: a short `lock_timeout`, as the
/// table's owner (see [`Job::as_owner_sql`]); rolled back when it fails. The log is
/// read from its start (`synchronize_seqscans` off): a pass goes on after the last
/// entry the one before took, and a scan joining another's midway would skip what lies
/// before its start. The outer
/// error is the transaction's start; the inner, the statement's or its commit's.
async fn in_transaction(
    client: &impl GenericClient,
    job: &Job,
    sql: &str,
    params: &[&(dyn ToSql + Sync)],
    ctx: &str,
) -> Result<std::result::Result<Replayed, tokio_postgres::Error>> {
    let as_owner = job
        .as_owner_sql()
        .map(|s| format!("; {s}"))
        .unwrap_or_default();
    client
        .batch_execute(&format!(
            "BEGIN; SET LOCAL lock_timeout = '{LOCK_TIMEOUT_MS}ms'; SET LOCAL synchronize_seqscans = off{as_owner}"
        ))
        .await
        .context(ctx.to_string())?;
    Ok(match run(client, sql, params).await {
        Ok(r) => client.batch_execute("COMMIT").await.map(|()| r),
        Err(e) => {
            let _ = client.batch_execute("ROLLBACK").await;
            Err(e)
        }
    })
}

/// A catch-up pass while the backfill runs (see [`Take::Pass`]), in a transaction of its
/// own, tried again when it gave way. `Ok(None)` when a row it writes meets a stale row
/// of another key on a unique index: the entries stay in the log, for the replay at the
/// end of the backfill, which replays the whole log when it meets the same (a replay of
/// the whole log now could take keys the backfill has yet to copy).
pub async fn catch_up_pass(
    client: &impl GenericClient,
    job: &Job,
    sql: &str,
    params: &[&(dyn ToSql + Sync)],
) -> Result<Option<Replayed>> {
    Ok(retried(client, job, sql, params, "catching up", true)
        .await?
        .ok())
}

/// One replay statement in a transaction of its own, tried again when it gave way
/// (`doing` says what, in the messages). With `unique_back`, a unique violation is
/// given back as `Ok(Err(()))`, for the caller to meet; otherwise it is an error.
async fn retried(
    client: &impl GenericClient,
    job: &Job,
    sql: &str,
    params: &[&(dyn ToSql + Sync)],
    doing: &str,
    unique_back: bool,
) -> Result<std::result::Result<Replayed, ()>> {
    let ctx = || format!("{doing} the change log of {}", job.source);
    let mut retry = Retry::new(pass_policy());
    // No Ctrl-C here: the callers stop between their steps.
    let cancel = Cancel::default();
    loop {
        let e = match in_transaction(client, job, sql, params, &ctx()).await? {
            Ok(r) => return Ok(Ok(r)),
            Err(e) if unique_back && e.code().map(|c| c.code()) == Some("23505") => {
                tracing::info!(
                    "{doing} the change log of {}: a stale row stands in the way of another key's ({})",
                    job.source,
                    message(&e)
                );
                return Ok(Err(()));
            }
            Err(e) => e,
        };
        let why = message(&e);
        let e = Error::Db {
            context: ctx(),
            source: e,
        };
        retry
            .after(e, &cancel, |r| {
                Some(format!(
                    "{doing} the change log of {}: {why} (attempt {} of {ATTEMPTS}); retrying in {:?}",
                    job.source, r.attempt, r.pause
                ))
            })
            .await?;
    }
}

/// Whether a log entry's key (its columns qualified by the log's name) lies in one of
/// the intervals bound from `$first` on: per key column the lower bounds (`text[]`,
/// NULL: unbounded below), per key column the upper bounds, then whether each lower
/// bound is included (`bool[]`); each key compared by its unique index's operators.
fn in_intervals_sql(job: &Job, first: usize) -> String {
    let m = job.key.columns.len();
    let log = job.change_log().quoted();
    let names: Vec<String> = (1..=m)
        .map(|i| format!("hyperswap_l{i}"))
        .chain((1..=m).map(|i| format!("hyperswap_h{i}")))
        .chain(std::iter::once("hyperswap_incl".to_string()))
        .collect();
    // ROWS FROM: unnest's own many-array form is special syntax that a
    // schema-qualified call does not get.
    let arrays: Vec<String> = (0..2 * m)
        .map(|i| format!("pg_catalog.unnest(${}::pg_catalog.text[])", first + i))
        .chain(std::iter::once(format!(
            "pg_catalog.unnest(${}::pg_catalog.bool[])",
            first + 2 * m
        )))
        .collect();
    let typed = |prefix: &str| -> Vec<String> {
        job.key
            .columns
            .iter()
            .enumerate()
            .map(|(i, c)| format!("hyperswap_b.{prefix}{}::{}{}", i + 1, c.type_sql, c.collate))
            .collect()
    };
    let (lo, hi) = (typed("hyperswap_l"), typed("hyperswap_h"));
    let key = &job.key;
    format!(
        "EXISTS (SELECT FROM ROWS FROM ({}) AS hyperswap_b({})\n          WHERE (hyperswap_b.hyperswap_l1 IS NULL\n                 OR (hyperswap_b.hyperswap_incl AND {})\n                 OR (NOT hyperswap_b.hyperswap_incl AND {}))\n            AND {})",
        arrays.join(", "),
        names.join(", "),
        key.compare(Some(&log), ">=", &lo),
        key.compare(Some(&log), ">", &lo),
        key.compare(Some(&log), "<=", &hi),
    )
}

/// The catch-up pass while the backfill runs (see [`Take::Pass`]): entries whose key
/// lies in none of the intervals bound from `$1` (the keys not copied yet).
pub fn catch_up_sql(job: &Job) -> String {
    let n = 2 * job.key.columns.len() + 1;
    let clause = format!("NOT {}", in_intervals_sql(job, 1));
    replay_sql(
        job,
        Take::Pass {
            clause: &clause,
            n,
            lane: false,
        },
    )
}

/// Whether `job`'s change log holds an entry (it stops at the first it finds).
pub async fn any_waiting(client: &impl GenericClient, job: &Job) -> Result<bool> {
    Ok(client
        .query_one(
            &format!("SELECT EXISTS (SELECT FROM {})", job.change_log().quoted()),
            &[],
        )
        .await
        .with_context(|| format!("looking into the change log of {}", job.source))?
        .get(0))
}

/// What waits in `job`'s change log, from the statistics (no scan): entries (live
/// tuples), entries ever appended, and the bytes the waiting entries take: their count
/// times an entry's size (a heap tuple's header and line pointer, 28 bytes, and its
/// columns, 32 bytes for one of variable width), not the file's size, which keeps the
/// room of entries taken (reused once vacuumed). `None` without a log.
pub async fn backlog(client: &impl GenericClient, job: &Job) -> Result<Option<(i64, i64, i64)>> {
    let row = client
        .query_opt(
            "SELECT s.n_live_tup, s.n_tup_ins,
                    s.n_live_tup OPERATOR(pg_catalog.*) (28 OPERATOR(pg_catalog.+) (
                        SELECT pg_catalog.sum(CASE WHEN t.typlen OPERATOR(pg_catalog.>) 0 THEN t.typlen ELSE 32 END)::pg_catalog.int8
                        FROM pg_catalog.pg_attribute a JOIN pg_catalog.pg_type t ON t.oid OPERATOR(pg_catalog.=) a.atttypid
                        WHERE a.attrelid OPERATOR(pg_catalog.=) s.relid AND a.attnum OPERATOR(pg_catalog.>) 0 AND NOT a.attisdropped))
             FROM pg_catalog.pg_stat_user_tables s
             WHERE s.relid OPERATOR(pg_catalog.=) pg_catalog.to_regclass($1)",
            &[&job.change_log().quoted()],
        )
        .await
        .with_context(|| format!("reading the size of the change log of {}", job.source))?;
    Ok(row.map(|r| (r.get(0), r.get(1), r.get(2))))
}

/// One replay, in a transaction of its own, tried again when it gave way; one that
/// meets a unique violation (a row of another key in its way on another unique index)
/// is done again over the whole log, the copy's rows of its keys removed first (see
/// [`Take::Replace`]).
async fn pass(
    client: &impl GenericClient,
    log: &SqlLog,
    job: &Job,
    sql: &str,
    params: &[&(dyn ToSql + Sync)],
) -> Result<Replayed> {
    match retried(client, job, sql, params, "replaying", true).await? {
        Ok(r) => Ok(r),
        Err(()) => Box::pin(replace_whole(client, log, job)).await,
    }
}

/// Every entry of `job`'s log at once, the copy's rows of their keys removed first (see
/// [`Take::Replace`]), in a transaction of its own, tried again when it gives way.
async fn replace_whole(client: &impl GenericClient, log: &SqlLog, job: &Job) -> Result<Replayed> {
    tracing::info!(
        "replaying the whole change log of {} at once, the copy's rows of its keys removed first",
        job.source
    );
    let sql = replay_sql(job, Take::Replace);
    log.record(&sql);
    Ok(retried(client, job, &sql, &[], "replaying", false)
        .await?
        .unwrap_or_default())
}
