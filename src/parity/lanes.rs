//! The lanes of a comparison: connections, each a session of a pool (see
//! [`crate::pool`]), that take the next range from one queue, read both sides of it and
//! record its result at once, so that an interrupted run keeps it.

use std::collections::HashMap;
use std::sync::Mutex;

use tokio_postgres::Client;

use crate::conn::ConnectOptions;
use crate::error::Result;
use crate::journal::RangeSums as Sums;
use crate::model::Job;
use crate::pool::{self, Session, Sessions};
use crate::progress::Progress;
use crate::stmt::SqlLog;

use super::ranges::KeyRange;
use super::read::{LaneStats, Reader};
use super::sql::{session_statements, RowText};

/// Each range's sums, live then mirror, by (table, range number).
pub(super) type Results = HashMap<(i32, i32), (Sums, Sums)>;

/// The connections of a comparison, kept for its every round (the first also narrows
/// down and repairs), and what they record.
pub(super) struct Lanes {
    pub(super) conns: Vec<Client>,
    pub(super) stats: LaneStats,
}

impl Lanes {
    /// `n` lanes (at least one), with parity's session settings.
    pub(super) async fn open(
        connect: &ConnectOptions,
        log: &SqlLog,
        plan: &str,
        n: usize,
    ) -> Result<Lanes> {
        let sessions = Sessions {
            connect,
            log,
            statements: session_statements(),
            context: "setting up the parity session",
        };
        let name = format!("hyperswap parity {plan}");
        let conns = sessions.open(std::iter::repeat_n(name, n.max(1))).await?;
        Ok(Lanes {
            conns,
            stats: LaneStats::default(),
        })
    }
}

/// One range still to compare.
pub(super) struct Work {
    pub(super) job: usize,
    pub(super) range_no: usize,
    pub(super) range: KeyRange,
    pub(super) text: RowText,
}

/// Where one round of a comparison records its results.
pub(super) struct Round<'a> {
    pub(super) jobs: &'a [Job],
    pub(super) journal: &'a Client,
    pub(super) run_id: i64,
    pub(super) progress: &'a dyn Progress,
    /// The catch-up's watch, whose size limit holds between ranges (see
    /// [`crate::watch::Watch::check_size`]).
    pub(super) watch: Option<&'a tokio::sync::Mutex<crate::watch::Watch>>,
}

/// What the lanes of one round share.
struct Shared<'a> {
    read: Reader<'a>,
    round: Round<'a>,
    stats: &'a LaneStats,
    results: Mutex<Results>,
}

/// One lane at work.
struct Lane<'s, 'a> {
    conn: &'s mut Client,
    shared: &'s Shared<'a>,
}

impl Session<Work> for Lane<'_, '_> {
    /// Reads one range and records its result.
    async fn work(&mut self, w: Work) -> Result<()> {
        let Shared {
            read, round, stats, ..
        } = self.shared;
        let job = &round.jobs[w.job];
        if let Some(watch) = round.watch {
            watch.lock().await.check_size(self.conn, round.jobs).await?;
        }
        let sums = read
            .checksum(self.conn, stats, job, &w.range, w.text)
            .await?;
        let key = (job.ord as i32, w.range_no as i32);
        crate::journal::record_parity_range(round.journal, round.run_id, key, &sums).await?;
        self.shared
            .results
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(key, sums);
        round.progress.parity_advance();
        Ok(())
    }
}

impl Lanes {
    /// Every lane takes ranges from the queue until it is empty (Ctrl-C stops them
    /// between ranges); each result is recorded as soon as it is known.
    pub(super) async fn checksum_all(
        &mut self,
        read: Reader<'_>,
        round: Round<'_>,
        work: Vec<Work>,
    ) -> Result<Results> {
        let shared = Shared {
            read,
            round,
            stats: &self.stats,
            results: Mutex::new(Results::new()),
        };
        let lanes = self.conns.iter_mut().map(|conn| Lane {
            conn,
            shared: &shared,
        });
        pool::run(lanes, work, read.cancel).await?;
        Ok(shared
            .results
            .into_inner()
            .unwrap_or_else(|p| p.into_inner()))
    }
}
