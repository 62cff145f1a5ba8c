//! A range's transaction: a REPEATABLE READ snapshot that, before cutover, first replays
//! the range's entries of the change log; and how a failed attempt of it is met (tried
//! again, see [`crate::retry`], or preceded once by a replay of the whole log).

use std::time::Duration;

use tokio_postgres::types::ToSql;
use tokio_postgres::{Client, IsolationLevel, Transaction};

use crate::error::{Error, Result};
use crate::model::Job;
use crate::progress::Cancel;
use crate::retry::{Class, Policy, Retry};
use crate::stmt::SqlLog;

/// A REPEATABLE READ transaction: one snapshot for both sides of a range. Before
/// cutover it first replays the range's entries of the change log (in this snapshot:
/// the copy is then the source there, and the reads below see it so); after cutover the
/// reverse trigger keeps the mirror in step, and the transaction only reads.
pub(super) async fn snapshot<'c>(
    conn: &'c mut Client,
    capture: &dyn crate::capture::Capture,
    replay: Option<(&str, &[&(dyn ToSql + Sync)])>,
    as_owner: Option<&str>,
) -> std::result::Result<Transaction<'c>, tokio_postgres::Error> {
    let tx = conn
        .build_transaction()
        .isolation_level(IsolationLevel::RepeatableRead)
        .read_only(replay.is_none())
        .start()
        .await?;
    if let Some((sql, params)) = replay {
        if let Some(owner) = as_owner {
            tx.batch_execute(owner).await?;
        }
        capture.replay_in(&tx, sql, params).await?;
    }
    Ok(tx)
}

/// How a range whose replay met another's (a serialization failure) is tried again: at
/// once (the other replay took the entries; they are gone), five attempts in all.
const AGAIN: Policy = Policy {
    attempts: 5,
    pause: Duration::ZERO,
    retryable: &[Class::Serialization],
};

/// The replay a range's transaction starts with (its parameters are the range's, `$1`
/// on, as the range's reads bind them), and how a failed attempt is met.
pub(super) struct RangeReplay {
    /// The statement and the number of parameters it binds.
    replay: Option<(String, usize)>,
    owner: Option<String>,
    /// Every failed attempt counts, whatever its error (see [`AGAIN`]).
    retry: Retry,
    replayed_whole: bool,
}

impl RangeReplay {
    /// `replay`: the statement and the number of parameters it binds; `owner`: the
    /// role change before it.
    pub(super) fn new(replay: Option<(String, usize)>, owner: Option<String>) -> Self {
        RangeReplay {
            replay,
            owner,
            retry: Retry::new(AGAIN),
            replayed_whole: false,
        }
    }

    pub(super) fn replay<'p>(
        &self,
        params: &'p [&'p (dyn ToSql + Sync)],
    ) -> Option<(&str, &'p [&'p (dyn ToSql + Sync)])> {
        self.replay
            .as_ref()
            .map(|(sql, n)| (sql.as_str(), &params[..*n]))
    }

    pub(super) fn owner(&self) -> Option<&str> {
        self.owner.as_deref()
    }

    /// After a failed attempt: `Ok` to try again, or the error. A serialization failure
    /// (another replay took the same entries) is tried again, quietly. A replay that met
    /// a stale row of another range on a unique index, or had to create a chunk (which
    /// TimescaleDB refuses to a REPEATABLE READ transaction whose snapshot is older than
    /// another session's chunk), is preceded once by a replay of the whole log, READ
    /// COMMITTED.
    pub(super) async fn recover(
        &mut self,
        e: tokio_postgres::Error,
        conn: &Client,
        log: &SqlLog,
        cancel: &Cancel,
        job: &Job,
        ctx: String,
    ) -> Result<()> {
        let e = Error::Db {
            context: ctx,
            source: e,
        };
        let Err(e) = self.retry.after(e, cancel, |_| None).await else {
            return Ok(());
        };
        if self.replay.is_some() && !self.replayed_whole {
            if let Some(db) = server_error(&e) {
                tracing::info!(
                    "parity of {}: the range's replay failed ({}); replaying the whole change log first",
                    job.source,
                    db.message()
                );
                self.replayed_whole = true;
                crate::capture::of(job).replay_whole(conn, log, job).await?;
                return Ok(());
            }
        }
        Err(e)
    }
}

/// The error the server sent, if `e` is one.
fn server_error(e: &Error) -> Option<&tokio_postgres::error::DbError> {
    match e {
        Error::Db { source, .. } => source.as_db_error(),
        _ => None,
    }
}
