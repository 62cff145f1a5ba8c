//! The lanes of a comparison: connections that each take the next range from a shared
//! queue and read both sides of it in one read-only REPEATABLE READ transaction, and
//! the narrowing of a differing range to its keys, in a snapshot of its own.

use std::collections::{HashSet, VecDeque};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use tokio_postgres::types::ToSql;
use tokio_postgres::{Client, IsolationLevel, Transaction};

use crate::error::{Context, Error, Result};
use crate::ident::QualifiedName;
use crate::journal::RangeSums as Sums;
use crate::model::Job;
use crate::stmt::{self, SqlLog};

use super::check::{Checker, Results, MAX_DIFFERENCES};
use super::diff::classify;
use super::ranges::KeyRange;
use super::sql::{checksum_sql, pinpoint_sql, session_statements, RowText};
use super::{pair, Difference};

pub(super) struct Lanes {
    pub(super) conns: Vec<Client>,
    pub(super) stats: LaneStats,
}

/// What every lane records: the statements logged once, the longest transaction.
pub(super) struct LaneStats {
    logged: Mutex<HashSet<String>>,
    pub(super) longest: Mutex<Duration>,
}

/// A REPEATABLE READ transaction: one snapshot for both sides of a range. Before
/// cutover it first replays the range's entries of the change log (in this snapshot:
/// the copy is then the source there, and the reads below see it so); after cutover the
/// reverse trigger keeps the mirror in step, and the transaction only reads.
async fn snapshot<'c>(
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

/// How many times a range whose replay met another's (a serialization failure) is tried.
const ATTEMPTS: u32 = 5;

impl LaneStats {
    fn log_once(&self, log: &SqlLog, sql: &str) {
        if self
            .logged
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(sql.to_string())
        {
            log.record(sql);
        }
    }

    fn took(&self, d: Duration) {
        let mut l = self.longest.lock().unwrap_or_else(|p| p.into_inner());
        *l = (*l).max(d);
    }
}

/// One range still to compare.
pub(super) struct Work {
    pub(super) job: usize,
    pub(super) range_no: usize,
    pub(super) range: KeyRange,
    pub(super) text: RowText,
}

/// What the lanes of one comparison share.
struct Shared<'a> {
    journal: &'a Client,
    stats: &'a LaneStats,
    run_id: i64,
    queue: &'a Mutex<VecDeque<Work>>,
    results: &'a Mutex<Results>,
}

impl Checker<'_> {
    pub(super) async fn open(&self) -> Result<Lanes> {
        let name = format!("hyperswap parity {}", self.plan);
        let mut conns = Vec::new();
        for lane in 0..self.lanes.max(1) {
            let conn = self.connect.connect(&name).await?;
            for s in session_statements() {
                if lane == 0 {
                    stmt::exec(&conn, self.log, &s).await?;
                } else {
                    conn.batch_execute(&s.sql)
                        .await
                        .context("setting up the parity session")?;
                }
            }
            conns.push(conn);
        }
        Ok(Lanes {
            conns,
            stats: LaneStats {
                logged: Mutex::new(HashSet::new()),
                longest: Mutex::new(Duration::ZERO),
            },
        })
    }

    /// Every lane takes ranges from the queue until it is empty; each result is
    /// recorded as soon as it is known, so an interrupted run keeps it.
    pub(super) async fn checksum_all(
        &self,
        journal: &Client,
        lanes: &mut Lanes,
        run_id: i64,
        work: VecDeque<Work>,
    ) -> Result<Results> {
        let queue = Mutex::new(work);
        let results = Mutex::new(Results::new());
        let shared = Shared {
            journal,
            stats: &lanes.stats,
            run_id,
            queue: &queue,
            results: &results,
        };
        futures_util::future::try_join_all(
            lanes.conns.iter_mut().map(|conn| self.lane(conn, &shared)),
        )
        .await?;
        Ok(results.into_inner().unwrap_or_else(|p| p.into_inner()))
    }

    async fn lane(&self, conn: &mut Client, shared: &Shared<'_>) -> Result<()> {
        loop {
            if self.cancel.is_cancelled() {
                return Err(Error::Interrupted);
            }
            let Some(w) = shared
                .queue
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .pop_front()
            else {
                return Ok(());
            };
            let job = &self.jobs[w.job];
            let sums = self
                .checksum(conn, shared.stats, job, &w.range, w.text)
                .await?;
            let key = (job.ord as i32, w.range_no as i32);
            self.record(shared.journal, shared.run_id, key, &sums)
                .await?;
            shared
                .results
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .insert(key, sums);
            self.progress.parity_advance();
        }
    }

    /// Both sides of one range in one REPEATABLE READ snapshot, on one connection.
    pub(super) async fn checksum(
        &self,
        conn: &mut Client,
        stats: &LaneStats,
        job: &Job,
        range: &KeyRange,
        text: RowText,
    ) -> Result<(Sums, Sums)> {
        let ctx = || format!("checking parity of {}", job.source);
        let (live, mirror) = pair(job, self.phase);
        let (live_sql, params) = checksum_sql(job, live, range, text);
        let (mirror_sql, _) = checksum_sql(job, mirror, range, text);
        stats.log_once(self.log, &live_sql);
        stats.log_once(self.log, &mirror_sql);
        let params: Vec<&(dyn ToSql + Sync)> =
            params.iter().map(|p| p as &(dyn ToSql + Sync)).collect();
        let mut first = self.range_replay(stats, job, range);
        let (l, m) = loop {
            let started = Instant::now();
            let read = async {
                let tx = snapshot(
                    conn,
                    crate::capture::of(job),
                    first.replay(&params),
                    first.owner(),
                )
                .await?;
                let l = tx.query_one(&live_sql, &params).await?;
                let m = tx.query_one(&mirror_sql, &params).await?;
                tx.commit().await?;
                Ok::<_, tokio_postgres::Error>((l, m))
            }
            .await;
            stats.took(started.elapsed());
            match read {
                Ok(both) => break both,
                Err(e) => first.recover(e, conn, self.log, job, ctx()).await?,
            }
        };
        let sums = |r: &tokio_postgres::Row| Sums {
            rows: r.get(0),
            sum: r.get(1),
            xor: r.get(2),
        };
        Ok((sums(&l), sums(&m)))
    }

    /// The exact keys of a differing range, in a snapshot of their own.
    pub(super) async fn pinpoint(
        &self,
        conn: &mut Client,
        stats: &LaneStats,
        job: &Job,
        live: &QualifiedName,
        mirror: &QualifiedName,
        range: &KeyRange,
    ) -> Result<Vec<Difference>> {
        let ctx = || format!("narrowing down the differences in {}", job.source);
        let (sql, params) = pinpoint_sql(job, live, mirror, range);
        stats.log_once(self.log, &sql);
        let limit = (MAX_DIFFERENCES as i64 + 1) * 2;
        let mut values: Vec<&(dyn ToSql + Sync)> =
            params.iter().map(|p| p as &(dyn ToSql + Sync)).collect();
        values.push(&limit);
        let mut first = self.range_replay(stats, job, range);
        let rows = loop {
            let started = Instant::now();
            let read = async {
                let tx = snapshot(
                    conn,
                    crate::capture::of(job),
                    first.replay(&values),
                    first.owner(),
                )
                .await?;
                let rows = tx.query(&sql, &values).await?;
                tx.commit().await?;
                Ok::<_, tokio_postgres::Error>(rows)
            }
            .await;
            stats.took(started.elapsed());
            match read {
                Ok(rows) => break rows,
                Err(e) => first.recover(e, conn, self.log, job, ctx()).await?,
            }
        };
        let names: Vec<&str> = job.table.columns.iter().map(|c| c.name.as_str()).collect();
        Ok(classify(
            &names,
            rows.iter().map(|r| (r.get(0), r.get(1), r.get(2))),
        ))
    }

    /// What a range's transaction runs first (logged once per run): before cutover,
    /// the replay of the range's change-log entries, as the table's owner.
    fn range_replay(&self, stats: &LaneStats, job: &Job, range: &KeyRange) -> RangeReplay {
        let replay = self.phase.source_is_live().then(|| {
            let (clause, params) = range.clause(job, 1);
            (
                crate::capture::of(job).range_replay_sql(job, &clause),
                params.len(),
            )
        });
        let owner = job.as_owner_sql().filter(|_| replay.is_some());
        for sql in replay.iter().map(|(s, _)| s).chain(owner.iter()) {
            stats.log_once(self.log, sql);
        }
        RangeReplay {
            replay,
            owner,
            attempts: 0,
            replayed_whole: false,
        }
    }
}

/// The replay a range's transaction starts with (its parameters are the range's, `$1`
/// on, as the range's reads bind them), and how a failed attempt is met.
struct RangeReplay {
    /// The statement and the number of parameters it binds.
    replay: Option<(String, usize)>,
    owner: Option<String>,
    attempts: u32,
    replayed_whole: bool,
}

impl RangeReplay {
    fn replay<'p>(
        &self,
        params: &'p [&'p (dyn ToSql + Sync)],
    ) -> Option<(&str, &'p [&'p (dyn ToSql + Sync)])> {
        self.replay
            .as_ref()
            .map(|(sql, n)| (sql.as_str(), &params[..*n]))
    }

    fn owner(&self) -> Option<&str> {
        self.owner.as_deref()
    }

    /// After a failed attempt: `Ok` to try again, or the error. A serialization failure
    /// (another replay took the same entries) is tried again. A replay that met a stale
    /// row of another range on a unique index, or had to create a chunk (which
    /// TimescaleDB refuses to a REPEATABLE READ transaction whose snapshot is older than
    /// another session's chunk), is preceded once by a replay of the whole log, READ
    /// COMMITTED.
    async fn recover(
        &mut self,
        e: tokio_postgres::Error,
        conn: &Client,
        log: &SqlLog,
        job: &Job,
        ctx: String,
    ) -> Result<()> {
        self.attempts += 1;
        if e.code() == Some(&tokio_postgres::error::SqlState::T_R_SERIALIZATION_FAILURE)
            && self.attempts < ATTEMPTS
        {
            return Ok(());
        }
        if self.replay.is_some() && !self.replayed_whole {
            if let Some(db) = e.as_db_error() {
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
        Err(e).with_context(|| ctx)
    }
}
