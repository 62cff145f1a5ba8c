//! Running a comparison: its rounds, each table's report in range order, repairs. The
//! run's journal records are in `runs.rs`, the lanes that take the ranges in `lanes.rs`,
//! how one range is read in `read.rs` (and begun and tried again in `replay.rs`), the
//! classification of differing rows in `diff.rs`.

use std::time::Instant;

use sha2::{Digest, Sha256};
use tokio_postgres::types::ToSql;
use tokio_postgres::Client;

use crate::conn::ConnectOptions;
use crate::error::{Context, Error, Result};
use crate::ident::hex;
use crate::model::Job;
use crate::phase::Phase;
use crate::progress::Cancel;
use crate::stmt::SqlLog;

use super::lanes::{Lanes, Results, Round, Work};
use super::ranges::{self, KeyValue};
use super::read::{row_text, Reader};
use super::sql::{repair_statements, RowText};
use super::{pair, ParityReport, TableParity, MAX_DIFFERENCES};

/// One comparison of a plan's tables, live against mirror, in `phase`.
pub struct Checker<'a> {
    pub connect: &'a ConnectOptions,
    pub log: &'a SqlLog,
    pub plan: &'a str,
    pub jobs: &'a [Job],
    pub phase: Phase,
    /// About how many rows one range (one short transaction) covers.
    pub range_rows: u64,
    /// Connections comparing ranges at once.
    pub lanes: usize,
    /// Of the lanes, how many drain the change log together first (`catch_up.sessions`).
    pub replay_sessions: usize,
    /// Range results of an interrupted run are reused only within this time of its start.
    pub resume_within: std::time::Duration,
    /// Re-copy differing keys from live to mirror, then check again.
    pub repair: bool,
    pub cancel: Cancel,
    pub progress: &'a dyn crate::progress::Progress,
    /// While the source is live: the catch-up's watch, whose size limit holds between
    /// ranges (`None`: not watched).
    pub watch: Option<&'a tokio::sync::Mutex<crate::watch::Watch>>,
}

/// The parity run being recorded, and where.
#[derive(Clone, Copy)]
struct Run<'a> {
    journal: &'a Client,
    id: i64,
}

/// One table of a comparison: its ranges' boundaries and how its rows are read.
struct Compared<'a> {
    job: &'a Job,
    bounds: &'a [KeyValue],
    text: RowText,
}

impl Checker<'_> {
    /// Runs (or resumes) the comparison; `journal` is a connection for the records.
    pub async fn run(&self, journal: &Client) -> Result<ParityReport> {
        let started = Instant::now();
        let mut lanes = Lanes::open(self.connect, self.log, self.plan, self.lanes).await?;
        if self.phase.source_is_live() {
            // The backlog first, in passes; each range then replays what came since.
            self.progress
                .step("replaying the change log before comparing");
            let sessions: Vec<&Client> = lanes.conns.iter().take(self.replay_sessions).collect();
            crate::capture::drain(&sessions, self.log, self.jobs).await?;
        }
        let mut repaired: Vec<(String, usize)> = Vec::new();
        let mut report = self.compare(journal, &mut lanes).await?;
        // Each comparison names at most MAX_DIFFERENCES keys: repair them, compare
        // again, until equal (or a round finds nothing it can repair).
        while self.repair && !report.equal {
            let mut fixed = 0;
            for (job, table) in self.jobs.iter().zip(&report.tables) {
                if !table.differences.is_empty() {
                    let keys: Vec<KeyValue> = table
                        .differences
                        .iter()
                        .map(|d| d.key_values.clone())
                        .collect();
                    self.repair_keys(&mut lanes.conns[0], job, &keys).await?;
                    fixed += keys.len();
                    match repaired.iter_mut().find(|(t, _)| *t == table.table) {
                        Some((_, n)) => *n += keys.len(),
                        None => repaired.push((table.table.clone(), keys.len())),
                    }
                }
            }
            if fixed == 0 || self.cancel.is_cancelled() {
                break;
            }
            report = self.compare(journal, &mut lanes).await?;
        }
        report.repaired = repaired;
        report.elapsed_ms = started.elapsed().as_secs_f64() * 1000.0;
        report.longest_transaction_ms = lanes
            .stats
            .longest
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .as_secs_f64()
            * 1000.0;
        Ok(report)
    }

    async fn compare(&self, journal: &Client, lanes: &mut Lanes) -> Result<ParityReport> {
        let (run_id, bounds) = self.find_or_start_run(journal, &lanes.conns[0]).await?;
        let mut results = self.recorded(journal, run_id).await?;
        let resumed_ranges = results.len();
        let mut work = Vec::new();
        let mut texts = Vec::new();
        for (i, job) in self.jobs.iter().enumerate() {
            let text = row_text(journal, job, self.phase).await?;
            texts.push(text);
            let job_bounds = bounds.get(&job.ord).cloned().unwrap_or_default();
            for (range_no, range) in ranges::from_bounds(&job_bounds).into_iter().enumerate() {
                if !results.contains_key(&(job.ord as i32, range_no as i32)) {
                    work.push(Work {
                        job: i,
                        range_no,
                        range,
                        text,
                    });
                }
            }
        }
        let total = (work.len() + resumed_ranges) as u64;
        self.progress.parity_start(total, resumed_ranges as u64);
        let round = Round {
            jobs: self.jobs,
            journal,
            run_id,
            progress: self.progress,
            watch: self.watch,
        };
        let fresh = lanes.checksum_all(self.reader(), round, work).await?;
        self.progress.parity_finish();
        results.extend(fresh);
        let mut digest = Sha256::new();
        let mut tables = Vec::new();
        for (job, text) in self.jobs.iter().zip(texts) {
            let job_bounds = bounds.get(&job.ord).cloned().unwrap_or_default();
            let table = Compared {
                job,
                bounds: &job_bounds,
                text,
            };
            let run = Run {
                journal,
                id: run_id,
            };
            tables.push(
                self.report_table(run, lanes, table, &mut results, &mut digest)
                    .await?,
            );
        }
        let equal = tables.iter().all(|t| t.equal);
        let digest = hex(&digest.finalize());
        self.finish_run(journal, run_id, equal, &digest).await?;
        Ok(ParityReport {
            plan: self.plan.to_string(),
            phase: self.phase.to_string(),
            equal,
            run_id,
            resumed_ranges,
            digest,
            elapsed_ms: 0.0,
            longest_transaction_ms: 0.0,
            repaired: vec![],
            tables,
        })
    }

    /// One table's report, in range order: differing ranges narrowed to their keys.
    async fn report_table(
        &self,
        run: Run<'_>,
        lanes: &mut Lanes,
        table: Compared<'_>,
        results: &mut Results,
        digest: &mut Sha256,
    ) -> Result<TableParity> {
        let Compared { job, bounds, text } = table;
        let (journal, run_id) = (run.journal, run.id);
        let (live, mirror) = pair(job, self.phase);
        let ranges = ranges::from_bounds(bounds);
        let (mut live_rows, mut mirror_rows) = (0, 0);
        let mut differences = Vec::new();
        let mut ranges_different = 0;
        let mut truncated = false;
        for (no, range) in ranges.iter().enumerate() {
            let key = (job.ord as i32, no as i32);
            let Some((mut l, mut m)) = results.remove(&key) else {
                return Err(Error::Interrupted);
            };
            if l != m {
                let found = self
                    .reader()
                    .pinpoint(&mut lanes.conns[0], &lanes.stats, job, range)
                    .await?;
                if found.is_empty() {
                    // Gone since (a concurrent repair?): check the range again.
                    (l, m) = self
                        .reader()
                        .checksum(&mut lanes.conns[0], &lanes.stats, job, range, text)
                        .await?;
                    self.record_again(journal, run_id, key, &(l.clone(), m.clone()))
                        .await?;
                }
                if l != m {
                    ranges_different += 1;
                    truncated |= differences.len() + found.len() > MAX_DIFFERENCES;
                    let room = MAX_DIFFERENCES.saturating_sub(differences.len());
                    differences.extend(found.into_iter().take(room));
                }
            }
            live_rows += l.rows;
            mirror_rows += m.rows;
            digest.update(format!(
                "{}|{no}|{:?}|{:?}|{}|{}|{}|{}|{}|{}\n",
                job.ord, range.lo, range.hi, l.rows, l.sum, l.xor, m.rows, m.sum, m.xor
            ));
        }
        Ok(TableParity {
            table: job.source.to_string(),
            live: live.to_string(),
            mirror: mirror.to_string(),
            live_rows,
            mirror_rows,
            ranges: ranges.len(),
            ranges_different,
            equal: ranges_different == 0,
            differences,
            differences_truncated: truncated,
        })
    }

    /// How this comparison reads a range.
    fn reader(&self) -> Reader<'_> {
        Reader {
            phase: self.phase,
            log: self.log,
            cancel: &self.cancel,
        }
    }

    pub(super) async fn repair_keys(
        &self,
        conn: &mut Client,
        job: &Job,
        keys: &[KeyValue],
    ) -> Result<()> {
        let (from, to) = pair(job, self.phase);
        let ctx = || format!("repairing {} keys of {}", keys.len(), job.source);
        // One text[] per key column: the keys, column by column.
        let columns: Vec<Vec<String>> = (0..job.key.columns.len())
            .map(|i| {
                keys.iter()
                    .map(|k| k.get(i).cloned().unwrap_or_default())
                    .collect()
            })
            .collect();
        let params: Vec<&(dyn ToSql + Sync)> =
            columns.iter().map(|c| c as &(dyn ToSql + Sync)).collect();
        let tx = conn.transaction().await.with_context(ctx)?;
        if let Some(owner) = job.as_owner_sql() {
            tx.batch_execute(&owner).await.with_context(ctx)?;
        }
        for s in repair_statements(job, from, to) {
            self.log.record(&s.sql);
            tx.execute(&s.sql, &params).await.with_context(ctx)?;
        }
        tx.commit().await.with_context(ctx)?;
        tracing::info!(
            "re-copied {} keys of {} from {from} to {to}",
            keys.len(),
            job.source
        );
        Ok(())
    }
}
