//! The change log's replay. Before cutover the forward trigger does not write the
//! hypertable: it appends the keys the application wrote to the table's change log
//! ([`crate::model::Job::change_log`]). The tool replays the log: it takes entries and
//! writes each key's rows to the copy as the source has them in the same snapshot
//! (sql/replay.sql). Replaying a key twice, or out of order, writes the same rows, so
//! the only rule is that an entry is taken only once the copy of its key is no longer
//! the backfill's to make:
//!
//! - during the backfill nothing is replayed (a batch reading a key from an older
//!   snapshot than a replay could otherwise put back a row the replay removed);
//! - when the backfill ends, the log is drained, in passes of [`PASS_ENTRIES`];
//! - parity replays each range's entries in the range's own snapshot, before it reads
//!   both sides (the copy is then exactly the source there);
//! - the cutover drains the log, then takes its locks and replays what is left in the
//!   transaction that renames.

use tokio_postgres::types::ToSql;
use tokio_postgres::GenericClient;

use crate::error::{Context, Result};
use crate::ident::quote_ident;
use crate::model::Job;
use crate::stmt::{SqlLog, Stmt};

/// Log entries taken by one draining pass (one statement, one transaction).
pub const PASS_ENTRIES: i64 = 20_000;

/// What one replay did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Replayed {
    /// Log entries taken.
    pub taken: i64,
    /// Rows of the copy removed (deleted at the source, or moved).
    pub deleted: i64,
    /// Rows of the copy written (inserted or overwritten).
    pub written: i64,
}

/// Which entries a replay takes.
pub enum Take<'a> {
    /// Every entry (the cutover's, under its locks).
    All,
    /// At most `$1` entries (a draining pass).
    Limit,
    /// The entries whose key satisfies `clause` (a parity range; its parameters are
    /// numbered from `$1`).
    Where(&'a str),
}

/// The replay statement of `job` (see sql/replay.sql).
pub fn replay_sql(job: &Job, take: Take) -> String {
    let (which, filter, limit) = match take {
        Take::All => ("every entry".to_string(), String::new(), String::new()),
        Take::Limit => (
            "at most $1 entries".to_string(),
            String::new(),
            "\n        LIMIT $1".to_string(),
        ),
        Take::Where(clause) => (
            "the entries of one key range".to_string(),
            format!("\n        WHERE {clause}"),
            String::new(),
        ),
    };
    let unique: Vec<&str> = job.unique_columns();
    // The row in the source with the copy's unique key (key and time), each compared
    // by its unique index's equality; the time column's types are pg_catalog's.
    let same_row = unique
        .iter()
        .map(|c| {
            let op = job
                .key
                .columns
                .iter()
                .find(|k| k.name == *c)
                .map(|k| k.op("="))
                .unwrap_or_else(|| "OPERATOR(pg_catalog.=)".to_string());
            format!("hyperswap_s.{0} {op} hyperswap_t.{0}", quote_ident(c))
        })
        .collect::<Vec<_>>()
        .join(" AND ");
    // Columns an upsert overwrites: every written column but the unique key's and an
    // identity GENERATED ALWAYS (which no UPDATE may set, and which never changes).
    let set: Vec<String> = job
        .table
        .columns
        .iter()
        .filter(|c| c.is_written())
        .filter(|c| !unique.contains(&c.name.as_str()))
        .filter(|c| c.identity != crate::catalog::Identity::Always)
        .map(|c| format!("{0} = EXCLUDED.{0}", quote_ident(&c.name)))
        .collect();
    let on_conflict = if set.is_empty() {
        "DO NOTHING".to_string()
    } else {
        format!("DO UPDATE SET {}", set.join(", "))
    };
    crate::template::render(
        include_str!("../sql/replay.sql"),
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
            ("target_key_taken", job.key.any_of("taken")),
            ("source_key_taken", job.key.any_of("taken")),
            ("same_row", same_row),
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
        "\nBEGIN\n    IF (SELECT rolsuper FROM pg_catalog.pg_roles WHERE rolname OPERATOR(pg_catalog.=) CURRENT_USER) THEN\n        GRANT USAGE ON SCHEMA {} TO {owner};\n        GRANT INSERT, SELECT, DELETE ON {} TO {owner};\n    END IF;\nEND\n",
        crate::ident::quote_ident(crate::model::TOOL_SCHEMA),
        job.change_log().quoted(),
    );
    Some(Stmt::noted(
        format!("DO {}", crate::ident::dollar_quote(&body)),
        "when hyperswap runs as a superuser, before replaying: the replays run as the table's owner, which needs to read and take the change log",
    ))
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
    })
}

/// Entries waiting in `job`'s change log (`None` when it has none: a plan whose
/// triggers are not installed yet).
pub async fn pending(client: &impl GenericClient, job: &Job) -> Result<Option<i64>> {
    let exists: bool = client
        .query_one(
            "SELECT pg_catalog.to_regclass($1) IS NOT NULL",
            &[&job.change_log().quoted()],
        )
        .await
        .context("looking for the change log")?
        .get(0);
    if !exists {
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

/// How long a draining pass waits for a lock (an application's TRUNCATE of the source
/// holds one while it waits for the copy) before it gives way and tries again.
const LOCK_TIMEOUT_MS: u32 = 1000;
/// Attempts of one draining pass that gave way.
const ATTEMPTS: u32 = 8;

/// Replays every table's change log in passes of [`PASS_ENTRIES`] until it has taken
/// as many entries as the log held when it began (or a pass finds fewer): under a
/// steady writer the log never empties, and what comes meanwhile is the next
/// replay's. Each pass is a transaction that waits at most [`LOCK_TIMEOUT_MS`] for a
/// lock; one that gave way (or met a parent row deleted after its snapshot, for a copy
/// with foreign keys) is tried again, and the application is never the one that waits.
/// Returns what was done, summed.
pub async fn drain(client: &impl GenericClient, log: &SqlLog, jobs: &[Job]) -> Result<Replayed> {
    let mut total = Replayed::default();
    for job in jobs {
        let Some(waiting) = pending(client, job).await? else {
            continue;
        };
        if let Some(grants) = owner_grants(job) {
            crate::stmt::exec(client, log, &grants).await?;
        }
        let sql = replay_sql(job, Take::Limit);
        if let Some(owner) = job.as_owner_sql() {
            log.record(&owner);
        }
        log.record(&sql);
        let mut taken = 0;
        loop {
            let r = pass(client, job, &sql).await?;
            taken += r.taken;
            total.taken += r.taken;
            total.deleted += r.deleted;
            total.written += r.written;
            if r.taken < PASS_ENTRIES || taken >= waiting {
                break;
            }
        }
    }
    Ok(total)
}

/// One draining pass, in a transaction of its own, tried again when it gave way.
async fn pass(client: &impl GenericClient, job: &Job, sql: &str) -> Result<Replayed> {
    let ctx = || format!("replaying the change log of {}", job.source);
    let mut attempt = 0;
    loop {
        attempt += 1;
        let as_owner = job
            .as_owner_sql()
            .map(|s| format!("; {s}"))
            .unwrap_or_default();
        client
            .batch_execute(&format!(
                "BEGIN; SET LOCAL lock_timeout = '{LOCK_TIMEOUT_MS}ms'{as_owner}"
            ))
            .await
            .with_context(ctx)?;
        let result = run(client, sql, &[&PASS_ENTRIES]).await;
        let result = match result {
            Ok(r) => client.batch_execute("COMMIT").await.map(|()| r),
            Err(e) => {
                let _ = client.batch_execute("ROLLBACK").await;
                Err(e)
            }
        };
        match result {
            Ok(r) => return Ok(r),
            Err(e)
                if attempt < ATTEMPTS
                    && matches!(
                        e.code().map(|c| c.code()),
                        Some("55P03" | "40P01" | "40001" | "23503")
                    ) =>
            {
                let pause = crate::stmt::backoff(std::time::Duration::from_millis(200), attempt);
                tracing::warn!(
                    "replaying the change log of {}: {} (attempt {attempt} of {ATTEMPTS}); retrying in {pause:?}",
                    job.source,
                    e.as_db_error().map_or_else(|| e.to_string(), |d| d.message().to_string())
                );
                tokio::time::sleep(pause).await;
            }
            Err(e) => return Err(e).with_context(ctx),
        }
    }
}
