//! The catch-up, watched: while the tool replays a change log, every few seconds it
//! reads what waits (from the statistics, without a scan), works out the arrival and
//! replay rates, records a sample in the journal (`status` shows the last), shows it on
//! the progress display, and stops the run, resumable (exit 3), before a log grows past
//! `catch_up.max_log_size` or when the replay has stayed behind the application for
//! longer than `catch_up.max_behind`.

use std::time::{Duration, Instant};

use tokio_postgres::Client;

use crate::capture::{self, Backlog};
use crate::error::{Context as _, Error, Result};
use crate::journal::{self, CatchUpSample};
use crate::model::Job;
use crate::phase::Phase;
use crate::plan::Plan;
use crate::progress::Progress;

/// How often the backlog is read.
const EVERY: Duration = Duration::from_secs(2);

/// One table's catch-up.
struct Watched {
    ord: i32,
    label: String,
    /// The log's size limit, in bytes.
    limit: i64,
    /// The last reading, and what had been replayed then.
    last: Option<(Instant, Backlog, i64)>,
    /// Entries taken from the log so far (replayed or dropped).
    taken: i64,
    /// When a pass last reached the end of what it may take (or the watch began).
    caught_up_at: Instant,
    /// The fewest entries seen waiting since the replay last caught up, and when the
    /// log went a tenth below the fewest before: a large backlog that goes down is
    /// being caught up, though no pass reaches its end for a while.
    low: Option<(i64, Instant)>,
    /// The most entries seen waiting.
    pub largest: i64,
}

/// The catch-up of a plan's tables.
pub struct Watch {
    plan: String,
    path: String,
    phase: Phase,
    max_behind: Duration,
    max_log_text: String,
    tables: Vec<Watched>,
    checked: Option<Instant>,
}

/// What a watch saw, for the closing line.
#[derive(Debug, Clone, Copy, Default)]
pub struct Seen {
    pub largest: i64,
    pub taken: i64,
}

impl Watch {
    /// Reads each source's size (for a limit given as a share of it).
    pub async fn new(client: &Client, plan: &Plan, jobs: &[Job], phase: Phase) -> Result<Watch> {
        let mut tables = Vec::new();
        for job in jobs {
            let size: i64 = client
                .query_one(
                    "SELECT pg_catalog.pg_total_relation_size(pg_catalog.to_regclass($1))",
                    &[&job.source.quoted()],
                )
                .await
                .with_context(|| format!("reading the size of {}", job.source))?
                .get::<_, Option<i64>>(0)
                .unwrap_or(0);
            tables.push(Watched {
                ord: job.ord as i32,
                label: job.source.to_string(),
                limit: plan.catch_up.max_log_size.bytes(size),
                last: None,
                taken: 0,
                caught_up_at: Instant::now(),
                low: None,
                largest: 0,
            });
        }
        let max_log_text = match plan.catch_up.max_log_size {
            crate::plan::LogSize::OfSource(f) => format!("{:.0}% of the source", f * 100.0),
            crate::plan::LogSize::Bytes(b) => bytes(b as i64),
        };
        Ok(Watch {
            plan: plan.name.clone(),
            path: plan.path.display().to_string(),
            phase,
            max_behind: plan.catch_up.max_behind,
            max_log_text,
            tables,
            // The first reading after a while: the statistics lag a moment behind.
            checked: Some(Instant::now()),
        })
    }

    fn table(&mut self, ord: i32) -> Option<&mut Watched> {
        self.tables.iter_mut().find(|t| t.ord == ord)
    }

    /// `n` entries of table `ord` were taken from its log.
    pub fn taken(&mut self, ord: i32, n: i64) {
        if let Some(t) = self.table(ord) {
            t.taken += n;
        }
    }

    /// A pass over table `ord`'s log reached the end of what it may take.
    pub fn caught_up(&mut self, ord: i32) {
        if let Some(t) = self.table(ord) {
            t.caught_up_at = Instant::now();
            t.low = None;
        }
    }

    /// What was seen of table `ord`.
    pub fn seen(&self, ord: i32) -> Seen {
        self.tables
            .iter()
            .find(|t| t.ord == ord)
            .map(|t| Seen {
                largest: t.largest,
                taken: t.taken,
            })
            .unwrap_or_default()
    }

    /// When due: reads every log's backlog, records and shows it, and stops the run
    /// (`Error::RetryLater`) on a limit.
    pub async fn check(
        &mut self,
        client: &Client,
        jobs: &[Job],
        progress: &dyn Progress,
    ) -> Result<()> {
        self.check_with(client, jobs, progress, true).await
    }

    /// [`Watch::check`] without `catch_up.max_behind`: while parity compares its ranges,
    /// each range's entries wait for the range's turn, and the log grows by design; only
    /// its size limit holds.
    pub async fn check_size(&mut self, client: &Client, jobs: &[Job]) -> Result<()> {
        self.check_with(client, jobs, &crate::progress::NoProgress, false)
            .await
    }

    async fn check_with(
        &mut self,
        client: &Client,
        jobs: &[Job],
        progress: &dyn Progress,
        behind_too: bool,
    ) -> Result<()> {
        if self.checked.is_some_and(|t| t.elapsed() < EVERY) {
            return Ok(());
        }
        self.checked = Some(Instant::now());
        for job in jobs {
            let Some(b) = capture::of(job).backlog(client, job).await? else {
                continue;
            };
            let (plan, phase, max_behind) = (self.plan.clone(), self.phase, self.max_behind);
            let Some(t) = self.table(job.ord as i32) else {
                continue;
            };
            let now = Instant::now();
            // The first reading only sets the baseline: whether the log goes down (a
            // resumed run replaying it) shows at the next.
            let first = t.last.is_none();
            let shrinking = t.last.is_some_and(|(_, last, _)| b.waiting < last.waiting);
            let (arrived, replayed) = match t.last {
                Some((at, last, taken)) => {
                    let secs = now.duration_since(at).as_secs_f64().max(0.001);
                    (
                        (b.arrived - last.arrived).max(0) as f64 / secs,
                        (t.taken - taken).max(0) as f64 / secs,
                    )
                }
                None => (0.0, 0.0),
            };
            t.last = Some((now, b, t.taken));
            t.largest = t.largest.max(b.waiting);
            match t.low {
                // A tenth below the fewest seen: the replay gains on the application.
                Some((low, _)) if b.waiting.saturating_mul(10) < low.saturating_mul(9) => {
                    t.low = Some((b.waiting, now));
                }
                Some(_) => {}
                None => t.low = Some((b.waiting, t.caught_up_at)),
            }
            let gained_at = t
                .low
                .map_or(t.caught_up_at, |(_, at)| at.max(t.caught_up_at));
            let behind = gained_at.elapsed();
            let converging = t.caught_up_at.elapsed() < (EVERY * 5).max(Duration::from_secs(10))
                || behind < Duration::from_secs(30);
            let sample = CatchUpSample {
                ord: t.ord,
                at: String::new(),
                waiting: b.waiting,
                log_bytes: b.bytes,
                arrived_per_s: arrived,
                replayed_per_s: replayed,
                converging,
            };
            journal::record_catch_up(client, &plan, phase, &sample).await?;
            progress.catch_up(&t.label, &line(&sample));
            // Over the limit and not going down (a resumed run replays what waits).
            if b.bytes > t.limit && !shrinking && !first {
                return Err(self.stop(
                    job,
                    format!(
                        "its change log holds {} ({} entries), past catch_up.max_log_size ({}, {})",
                        bytes(b.bytes),
                        b.waiting,
                        self.max_log_text,
                        bytes(
                            self.tables
                                .iter()
                                .find(|t| t.ord == job.ord as i32)
                                .map_or(0, |t| t.limit)
                        )
                    ),
                    &sample,
                ));
            }
            if behind_too && behind > max_behind {
                return Err(self.stop(
                    job,
                    format!(
                        "the replay has neither caught up with the application nor gained on it for {}, past catch_up.max_behind ({})",
                        humantime::format_duration(Duration::from_secs(behind.as_secs())),
                        humantime::format_duration(max_behind)
                    ),
                    &sample,
                ));
            }
        }
        Ok(())
    }

    fn stop(&self, job: &Job, why: String, s: &CatchUpSample) -> Error {
        Error::RetryLater {
            problem: format!(
                "stopped catching up {}: {why}; the application writes faster than hyperswap replays ({:.0} entries/s arriving, {:.0}/s replayed). Nothing is lost: the plan stays where it is, and its change log keeps every write",
                job.source, s.arrived_per_s, s.replayed_per_s
            ),
            fix: format!(
                "run `hyperswap plan apply {0}` again once the writes slow down: it resumes where it stopped and replays the log, and stops again only while the log keeps growing past the limit; or `hyperswap abort {0}`, which ends the capture and drops the log (catch_up.max_log_size and catch_up.max_behind belong to the plan, which is frozen once started)",
                self.path
            ),
        }
    }
}

/// A drain's passes (after the backfill: parity's, the cutover's) are watched too.
impl capture::Passes for Watch {
    fn after<'a>(
        &'a mut self,
        client: &'a Client,
        job: &'a Job,
        taken: i64,
        caught_up: bool,
    ) -> futures_util::future::LocalBoxFuture<'a, Result<()>> {
        Box::pin(async move {
            let ord = job.ord as i32;
            self.taken(ord, taken);
            if caught_up {
                self.caught_up(ord);
            }
            self.check(
                client,
                std::slice::from_ref(job),
                &crate::progress::NoProgress,
            )
            .await
        })
    }
}

/// `1234 waiting, 5000/s in, 7000/s replayed, catching up`.
pub fn line(s: &CatchUpSample) -> String {
    format!(
        "change log: {} waiting ({}), {:.0}/s in, {:.0}/s replayed, {}",
        s.waiting,
        bytes(s.log_bytes),
        s.arrived_per_s,
        s.replayed_per_s,
        if s.converging {
            "keeping up"
        } else {
            "falling behind"
        }
    )
}

/// `12.3 MB`.
fn bytes(b: i64) -> String {
    let b = b as f64;
    if b >= (1u64 << 30) as f64 {
        format!("{:.1} GB", b / (1u64 << 30) as f64)
    } else if b >= (1 << 20) as f64 {
        format!("{:.1} MB", b / (1 << 20) as f64)
    } else {
        format!("{:.0} kB", b / 1024.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_line_says_what_waits_and_whether_it_keeps_up() {
        let s = CatchUpSample {
            ord: 0,
            at: String::new(),
            waiting: 1234,
            log_bytes: 3 << 20,
            arrived_per_s: 5000.4,
            replayed_per_s: 7000.0,
            converging: false,
        };
        assert_eq!(
            line(&s),
            "change log: 1234 waiting (3.0 MB), 5000/s in, 7000/s replayed, falling behind"
        );
        assert_eq!(bytes(2048), "2 kB");
        assert_eq!(bytes(5 << 30), "5.0 GB");
    }
}
