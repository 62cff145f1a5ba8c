//! Phase 3, backfill: copy history in key-ordered batches, by several workers at once.
//!
//! When the backfill starts, each table's key space (up to its last key then: later rows
//! reach the copy through the change log) is cut into ranges of about equal rows, from a
//! sample of its keys, and recorded in `hyperswap.ranges`. Workers, each on a connection
//! of its own, take the ranges in order, one at a time, and batch through them. A batch:
//!
//! - reads its last key from the key's index (`OFFSET n-1`), so gaps in the key make no
//!   empty batches;
//! - copies the interval as its snapshot shows it, without locking a row: a change the
//!   application commits after the snapshot has its key in the change log, replayed
//!   once every batch has committed (see [`crate::replay`]), so no stale copy survives;
//! - advances its range's cursor in the same transaction, so a stopped run resumes after
//!   its last committed batch, with any number of workers.
//!
//! Each worker sizes its batches to take about `batch_duration`: growing by at most a
//! quarter while faster, shrinking at once when slower.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use tokio_postgres::{Client, GenericClient, Statement, Transaction};

use crate::conn::ConnectOptions;
use crate::error::{Context, Error, Result};
use crate::journal::{self, RangeRecord};
use crate::keyspace;
use crate::model::{Job, Key};
use crate::plan::BackfillOptions;
use crate::progress::{Cancel, Progress};
use crate::stmt::{backoff, is_lock_conflict, SqlLog, Stmt};

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
        include_str!("../sql/backfill_next.sql"),
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
        include_str!("../sql/backfill_batch.sql"),
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

/// Rows per range at least: smaller tables are not worth cutting.
const MIN_RANGE_ROWS: f64 = 50_000.0;
/// Rows per range at most, so that a resumed run with more workers finds work to share.
const MAX_RANGE_ROWS: f64 = 2_000_000.0;

/// How many ranges a table of `rows` is cut into for `workers`: enough for every worker
/// to have several (the last ranges finish at about the same time), none tiny.
pub fn ranges_for(rows: f64, workers: usize) -> usize {
    let by_workers = (workers * 4) as f64;
    let by_size = (rows / MAX_RANGE_ROWS).ceil();
    let most = (rows / MIN_RANGE_ROWS).floor().max(1.0);
    by_workers.max(by_size).min(most).clamp(1.0, 1024.0) as usize
}

/// The worker count: the plan's (or the command line's), else sized to the server.
pub async fn worker_count(client: &impl GenericClient, asked: Option<u32>) -> Result<usize> {
    if let Some(n) = asked {
        return Ok(n as usize);
    }
    let n: i32 = client
        .query_one(
            "SELECT pg_catalog.current_setting('max_parallel_workers_per_gather')::pg_catalog.int4",
            &[],
        )
        .await
        .context("sizing the backfill to the server")?
        .get(0);
    Ok(n.clamp(2, 8) as usize)
}

/// Captures every table's key range (after the copy triggers are committed, so rows
/// beyond the last key are the triggers' to copy) and cuts it for `workers`, inside
/// `tx`: a REPEATABLE READ transaction, so that bounds and sample agree. The step
/// commits it with its move to `backfilling`.
pub async fn prepare(
    tx: &Transaction<'_>,
    log: &SqlLog,
    plan: &str,
    jobs: &[Job],
    workers: usize,
) -> Result<()> {
    let ctx = "capturing the backfill's key ranges";
    for job in jobs {
        let sql = bounds_sql(job);
        log.record(&sql);
        let row = tx.query_one(&sql, &[]).await.context(ctx)?;
        let (lo, hi): (Option<Vec<String>>, Option<Vec<String>>) = (row.get(0), row.get(1));
        let ord = job.ord as i32;
        let Some(hi) = hi else {
            // An empty table has nothing to copy: its range is done from the start.
            journal::set_rows_total(tx, plan, ord, 0).await?;
            let range = RangeRecord::new(ord, 0, lo, vec![], None);
            journal::add_range(
                tx,
                plan,
                &RangeRecord {
                    done: true,
                    ..range
                },
            )
            .await?;
            continue;
        };
        let size = keyspace::size(tx, &job.source).await?;
        // The planner's count when the table was analysed (closer), else the sample's.
        let rows = if job.table.estimated_rows >= 1.0 {
            job.table.estimated_rows
        } else {
            size.rows
        };
        journal::set_rows_total(tx, plan, ord, rows as i64).await?;
        let pieces = ranges_for(rows, workers);
        let cuts = keyspace::cut_points(tx, &job.source, &job.key, size, pieces).await?;
        for range in cut_ranges(ord, lo, hi, cuts) {
            journal::add_range(tx, plan, &range).await?;
        }
    }
    Ok(())
}

/// The ranges `[lo, c1], (c1, c2], ..., (cn, hi]`: each after the first starts with its
/// cursor on the previous range's last key.
fn cut_ranges(
    ord: i32,
    lo: Option<Vec<String>>,
    hi: Vec<String>,
    cuts: Vec<Vec<String>>,
) -> Vec<RangeRecord> {
    let mut ends: Vec<Vec<String>> = cuts.into_iter().filter(|c| *c != hi).collect();
    ends.push(hi);
    let mut out = Vec::with_capacity(ends.len());
    let mut start: Option<Vec<String>> = None;
    for (i, end) in ends.into_iter().enumerate() {
        let range = match start.take() {
            None => RangeRecord::new(ord, i as i32, lo.clone(), end.clone(), None),
            Some(after) => {
                RangeRecord::new(ord, i as i32, Some(after.clone()), end.clone(), Some(after))
            }
        };
        out.push(range);
        start = Some(end);
    }
    out
}

impl RangeRecord {
    fn new(
        ord: i32,
        range_no: i32,
        lo: Option<Vec<String>>,
        hi: Vec<String>,
        cursor: Option<Vec<String>>,
    ) -> Self {
        RangeRecord {
            ord,
            range_no,
            lo,
            hi,
            cursor,
            rows_copied: 0,
            done: false,
        }
    }
}

/// The next batch's rows after one of `rows` took `took`: at most a quarter more while
/// well under `target`, at once down to what would have taken 80 % of it when over.
pub fn next_batch_rows(rows: u32, took: Duration, target: Duration, max: u32) -> u32 {
    let (t, goal) = (took.as_secs_f64().max(1e-4), target.as_secs_f64());
    let wanted = if t > goal {
        rows as f64 * goal / t * 0.8
    } else if t < goal * 0.8 {
        (rows as f64 * goal * 0.8 / t).min(rows as f64 * 1.25)
    } else {
        rows as f64
    };
    (wanted as u32).clamp(1, max.max(1))
}

/// Copies every range not yet done, replays what the application changed meanwhile and
/// builds the indexes left for after the copy ([`Backfill::run`] returns the batches'
/// figures; the step records the end of the backfill).
pub struct Backfill<'a> {
    pub connect: &'a ConnectOptions,
    /// The orchestrator's connection (it holds the plan's lock).
    pub client: &'a mut Client,
    pub log: &'a SqlLog,
    pub plan: &'a str,
    pub jobs: &'a [Job],
    pub opts: &'a BackfillOptions,
    pub workers: usize,
    pub progress: &'a dyn Progress,
    pub cancel: &'a Cancel,
}

/// What the workers share.
struct Shared<'a> {
    run: &'a Backfill<'a>,
    queue: Mutex<VecDeque<RangeRecord>>,
    /// Ranges not done yet, per table: the table's bar ends when they are.
    left: Mutex<HashMap<i32, usize>>,
    /// Statements already written to the SQL log (each once, not every batch).
    logged: Mutex<HashSet<String>>,
    /// Every batch transaction's duration, for the closing figures.
    took: Mutex<Vec<Duration>>,
    /// The workers' server process ids: the throttle does not count them as load.
    pids: Vec<i32>,
}

fn locked<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Shared<'_> {
    fn log_once(&self, sql: &str) {
        if locked(&self.logged).insert(sql.to_string()) {
            self.run.log.record(sql);
        }
    }

    fn job(&self, ord: i32) -> &Job {
        &self.run.jobs[ord as usize]
    }

    /// A range is done: end its table's bar when it was the last.
    fn range_done(&self, ord: i32) {
        let mut left = locked(&self.left);
        let n = left.entry(ord).or_insert(1);
        *n -= 1;
        if *n == 0 {
            self.run
                .progress
                .backfill_finish(&self.job(ord).source.to_string());
        }
    }
}

impl<'a> Backfill<'a> {
    pub async fn run(self) -> Result<Option<String>> {
        let ranges = journal::ranges(&*self.client, self.plan).await?;
        let mut left: HashMap<i32, usize> = HashMap::new();
        for job in self.jobs {
            let ord = job.ord as i32;
            let mine: Vec<&RangeRecord> = ranges.iter().filter(|r| r.ord == ord).collect();
            let total = journal::rows_total(&*self.client, self.plan, ord).await?;
            let done: i64 = mine.iter().map(|r| r.rows_copied).sum();
            let label = job.source.to_string();
            self.progress
                .backfill_start(&label, total.max(done) as u64, done as u64);
            let open = mine.iter().filter(|r| !r.done).count();
            if open == 0 {
                self.progress.backfill_finish(&label);
            }
            left.insert(ord, open);
        }
        let queue: VecDeque<RangeRecord> = ranges.into_iter().filter(|r| !r.done).collect();
        let n = self.workers.clamp(1, queue.len().max(1));
        let mut sessions = Vec::with_capacity(n);
        if !queue.is_empty() {
            for i in 1..=n {
                let name = format!("hyperswap backfill {} #{i}", self.plan);
                let client = self.connect.connect(&name).await?;
                for stmt in session_statements(self.opts) {
                    if i == 1 {
                        self.log.record(&stmt.sql);
                    }
                    client
                        .batch_execute(&stmt.sql)
                        .await
                        .context("setting up a backfill session")?;
                }
                sessions.push(client);
            }
        }
        let mut pids = Vec::with_capacity(n);
        for s in &sessions {
            let pid: i32 = s
                .query_one("SELECT pg_catalog.pg_backend_pid()", &[])
                .await
                .context("setting up a backfill session")?
                .get(0);
            pids.push(pid);
        }
        let shared = Shared {
            run: &self,
            queue: Mutex::new(queue),
            left: Mutex::new(left),
            logged: Mutex::default(),
            took: Mutex::default(),
            pids,
        };
        if !sessions.is_empty() {
            tracing::info!("backfill of plan `{}`: {n} worker(s)", self.plan);
        }
        futures_util::future::try_join_all(
            sessions
                .into_iter()
                .map(|client| Worker::new(client, &shared).run()),
        )
        .await?;
        let summary = summary(&locked(&shared.took), n);
        drop(shared);
        // Every batch has committed: what the application changed meanwhile is the
        // change log's, replayed now (before the deferred indexes, which it would feed),
        // and again after them.
        self.replay().await?;
        self.build_indexes().await?;
        self.replay().await?;
        if let Some(summary) = &summary {
            tracing::info!("backfill of plan `{}`: {summary}", self.plan);
        }
        Ok(summary)
    }
}

impl Backfill<'_> {
    /// Drains the change logs (see [`crate::capture::drain`]).
    async fn replay(&self) -> Result<()> {
        self.progress
            .step("replaying the changes the application made during the copy");
        let r = crate::capture::drain(&*self.client, self.log, self.jobs).await?;
        if r.taken > 0 {
            tracing::info!(
                "replayed {} logged change(s) of plan `{}`: {} row(s) written, {} removed",
                r.taken,
                self.plan,
                r.written,
                r.deleted
            );
        }
        Ok(())
    }

    /// Builds the indexes left for after the copy (see [`crate::target::deferred`]). A
    /// build interrupted earlier left its index invalid: it is dropped and built again.
    /// Each waits at most `lock_timeout` for a chunk (then backs off and retries), so a
    /// long application transaction never queues writers behind it.
    async fn build_indexes(&self) -> Result<()> {
        let client = &*self.client;
        let timeout = format!(
            "SET lock_timeout = '{}ms'",
            self.opts.lock_timeout.as_millis().max(1)
        );
        let mut said = false;
        for job in self.jobs {
            for (name, stmt) in crate::target::deferred_indexes(job) {
                let ctx = || format!("building index {name} on {}", job.target);
                let drop = format!(
                    "DROP INDEX IF EXISTS {}",
                    job.target.sibling(name.clone()).quoted()
                );
                if stmt.sql.starts_with("CREATE INDEX") {
                    let valid: Option<bool> = client
                        .query_opt(
                            "SELECT i.indisvalid FROM pg_catalog.pg_index i
                             JOIN pg_catalog.pg_class c ON c.oid OPERATOR(pg_catalog.=) i.indexrelid
                             JOIN pg_catalog.pg_namespace n ON n.oid OPERATOR(pg_catalog.=) c.relnamespace
                             WHERE n.nspname OPERATOR(pg_catalog.=) $1 AND c.relname OPERATOR(pg_catalog.=) $2",
                            &[&job.target.schema, &name],
                        )
                        .await
                        .with_context(ctx)?
                        .map(|r| r.get(0));
                    match valid {
                        Some(true) => continue,
                        Some(false) => {
                            self.log.record(&drop);
                            client.batch_execute(&drop).await.with_context(ctx)?;
                        }
                        None => {}
                    }
                    if !said {
                        self.progress.step(
                            "building the indexes left for after the copy, one chunk at a time",
                        );
                        client.batch_execute(&timeout).await.with_context(ctx)?;
                        said = true;
                    }
                }
                self.log.record(&stmt.sql);
                let mut attempt = 0;
                loop {
                    match client.batch_execute(&stmt.sql).await.with_context(ctx) {
                        Ok(()) => break,
                        Err(e) if is_lock_conflict(&e) && attempt < self.opts.retries => {
                            attempt += 1;
                            let pause = backoff(Duration::from_millis(500), attempt);
                            tracing::warn!(
                                "{} (attempt {attempt} of {}); retrying in {pause:?}",
                                crate::stmt::conflict_kind(&e),
                                self.opts.retries
                            );
                            tokio::time::sleep(pause).await;
                            // A build stopped half way left its index invalid.
                            client.batch_execute(&drop).await.with_context(ctx)?;
                        }
                        Err(e) => return Err(e),
                    }
                }
            }
        }
        if said {
            client
                .batch_execute("RESET lock_timeout")
                .await
                .context("building the deferred indexes")?;
        }
        Ok(())
    }
}

/// `N batches by W workers; batch transactions p50 .. ms, p99 .. ms, max .. ms`.
fn summary(took: &[Duration], workers: usize) -> Option<String> {
    if took.is_empty() {
        return None;
    }
    let mut ms: Vec<f64> = took.iter().map(|d| d.as_secs_f64() * 1000.0).collect();
    ms.sort_by(f64::total_cmp);
    let at = |q: f64| ms[((ms.len() - 1) as f64 * q).round() as usize];
    Some(format!(
        "{} batches by {workers} worker(s); batch transactions p50 {:.0} ms, p99 {:.0} ms, max {:.0} ms",
        ms.len(),
        at(0.5),
        at(0.99),
        ms[ms.len() - 1]
    ))
}

/// One backfill session.
struct Worker<'s, 'a> {
    client: Client,
    shared: &'s Shared<'a>,
    /// Rows of the next batch.
    rows: u32,
    /// Batches left to run with ON CONFLICT after a unique violation.
    skip_for: u32,
    statements: HashMap<(i32, From, Conflicts), Statement>,
    next: HashMap<(i32, From), Statement>,
    advance: Option<Statement>,
    throttle: Throttle,
}

/// The result of one batch.
struct Batch {
    rows: i64,
    last_key: Vec<String>,
    exhausted: bool,
}

impl<'s, 'a> Worker<'s, 'a> {
    fn new(client: Client, shared: &'s Shared<'a>) -> Self {
        Worker {
            client,
            rows: shared.run.opts.batch_rows,
            skip_for: 0,
            statements: HashMap::new(),
            next: HashMap::new(),
            advance: None,
            throttle: Throttle::default(),
            shared,
        }
    }

    fn take(&self) -> Option<RangeRecord> {
        locked(&self.shared.queue).pop_front()
    }

    async fn run(mut self) -> Result<()> {
        while let Some(range) = self.take() {
            self.copy_range(range).await?;
        }
        Ok(())
    }

    /// Batches through one range until it is exhausted.
    async fn copy_range(&mut self, mut range: RangeRecord) -> Result<()> {
        let run = self.shared.run;
        let job = self.shared.job(range.ord);
        let label = job.source.to_string();
        loop {
            if run.cancel.is_cancelled() {
                return Err(Error::Interrupted);
            }
            self.wait_while_throttled(&label).await?;
            let (from, start) = match &range.cursor {
                None => (From::RangeStart, range.lo.clone().unwrap_or_default()),
                Some(c) => (From::Cursor, c.clone()),
            };
            let copied = self.batch_with_retries(job, &range, from, &start).await?;
            run.progress.backfill_advance(&label, copied.rows as u64);
            range.rows_copied += copied.rows;
            range.cursor = Some(copied.last_key);
            if copied.exhausted {
                self.shared.range_done(range.ord);
                return Ok(());
            }
            if let Some(pause) = run.opts.pause {
                tokio::time::sleep(pause).await;
            }
        }
    }

    /// Waits while the pause file exists or the server is too busy, saying why (on the
    /// bar, and in the log every ten seconds); stops the run on a critical limit.
    async fn wait_while_throttled(&mut self, label: &str) -> Result<()> {
        let run = self.shared.run;
        let mut said: Option<Instant> = None;
        let mut waited = false;
        loop {
            if run.cancel.is_cancelled() {
                return Err(Error::Interrupted);
            }
            let why = self
                .throttle
                .reason(&self.client, run.opts, &self.shared.pids)
                .await?;
            let Some(why) = why else { break };
            waited = true;
            run.progress.backfill_waiting(label, Some(&why));
            if said.is_none_or(|t| t.elapsed() >= Duration::from_secs(10)) {
                tracing::info!("backfill {label} waits: {why}");
                said = Some(Instant::now());
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        if waited {
            run.progress.backfill_waiting(label, None);
            tracing::info!("backfill {label} goes on");
        }
        Ok(())
    }

    async fn batch_with_retries(
        &mut self,
        job: &Job,
        range: &RangeRecord,
        from: From,
        start: &[String],
    ) -> Result<Batch> {
        let opts = self.shared.run.opts;
        let mut attempt = 0;
        loop {
            let conflicts = if self.skip_for > 0 {
                self.skip_for -= 1;
                Conflicts::Skip
            } else {
                Conflicts::Fail
            };
            let started = Instant::now();
            let result = self.batch(job, range, from, conflicts, start).await;
            let took = started.elapsed();
            match result {
                Ok(batch) => {
                    locked(&self.shared.took).push(took);
                    self.rows =
                        next_batch_rows(self.rows, took, opts.batch_duration, opts.max_batch_rows);
                    return Ok(batch);
                }
                // A stale row of the copy stood in the way: the same batch again,
                // skipping such rows (and the next few too: the writers are busy here).
                Err(e) if e.sqlstate() == Some("23505") && conflicts == Conflicts::Fail => {
                    self.skip_for = 16;
                }
                Err(e)
                    if (is_lock_conflict(&e) || e.sqlstate() == Some("40001"))
                        && attempt < opts.retries =>
                {
                    attempt += 1;
                    // Smaller batches hold fewer rows the application may want.
                    self.rows = (self.rows / 2).max(1);
                    let pause = backoff(Duration::from_millis(200), attempt);
                    tracing::warn!(
                        "batch on {} after key {} {} (attempt {attempt} of {}); retrying in {pause:?}",
                        job.source,
                        Key::display(start),
                        crate::stmt::conflict_kind(&e),
                        opts.retries
                    );
                    tokio::time::sleep(pause).await;
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// Prepares (once per session) and logs (once per run) the statements of a batch.
    async fn prepared(
        &mut self,
        job: &Job,
        from: From,
        conflicts: Conflicts,
    ) -> Result<(Statement, Statement, Statement)> {
        let ctx = "preparing the backfill batch";
        let ord = job.ord as i32;
        if !self.next.contains_key(&(ord, from)) {
            let sql = next_sql(job, from);
            self.shared.log_once(&sql);
            let st = self.client.prepare(&sql).await.context(ctx)?;
            self.next.insert((ord, from), st);
        }
        if !self.statements.contains_key(&(ord, from, conflicts)) {
            let sql = batch_sql(job, from, conflicts);
            self.shared.log_once(&sql);
            let st = self.client.prepare(&sql).await.context(ctx)?;
            self.statements.insert((ord, from, conflicts), st);
        }
        if self.advance.is_none() {
            self.shared.log_once(journal::ADVANCE_RANGE);
            let st = self
                .client
                .prepare(journal::ADVANCE_RANGE)
                .await
                .context(ctx)?;
            self.advance = Some(st);
        }
        Ok((
            self.next[&(ord, from)].clone(),
            self.statements[&(ord, from, conflicts)].clone(),
            self.advance.clone().expect("prepared above"),
        ))
    }

    /// One batch and its journal record, in one transaction.
    async fn batch(
        &mut self,
        job: &Job,
        range: &RangeRecord,
        from: From,
        conflicts: Conflicts,
        start: &[String],
    ) -> Result<Batch> {
        let (next, batch, advance) = self.prepared(job, from, conflicts).await?;
        let ctx = "copying a backfill batch";
        let plan = self.shared.run.plan;
        let skip = self.rows as i64 - 1;
        let tx = self.client.transaction().await.context(ctx)?;
        if let Some(owner) = job.as_owner_sql() {
            self.shared.log_once(&owner);
            tx.batch_execute(&owner).await.context(ctx)?;
        }
        let last: Option<Vec<String>> = tx
            .query_opt(&next, &[&start, &range.hi, &skip])
            .await
            .context(ctx)?
            .map(|r| r.get(0));
        let exhausted = last.is_none();
        let last_key = last.unwrap_or_else(|| range.hi.clone());
        let rows = tx
            .execute(&batch, &[&start, &last_key])
            .await
            .context(ctx)? as i64;
        // The journal is the tool's: its record is written as the session's role.
        self.shared.log_once(crate::model::AS_SELF_SQL);
        tx.batch_execute(crate::model::AS_SELF_SQL)
            .await
            .context(ctx)?;
        tx.execute(
            &advance,
            &[
                &plan,
                &range.ord,
                &range.range_no,
                &last_key,
                &rows,
                &exhausted,
            ],
        )
        .await
        .context(ctx)?;
        tx.commit().await.context(ctx)?;
        Ok(Batch {
            rows,
            last_key,
            exhausted,
        })
    }
}

/// The backfill's brakes: the pause file, replica lag and active backends.
#[derive(Default)]
struct Throttle {
    /// When the server was last asked, and what it said.
    checked: Option<(Instant, Option<String>)>,
}

impl Throttle {
    /// Why the next batch should wait, if it should; an error on a critical limit.
    async fn reason(
        &mut self,
        client: &Client,
        opts: &BackfillOptions,
        ours: &[i32],
    ) -> Result<Option<String>> {
        if let Some(file) = &opts.pause_file {
            if file.exists() {
                return Ok(Some(format!(
                    "the pause file {} exists; remove it to go on",
                    file.display()
                )));
            }
        }
        let watched = opts.max_replica_lag.is_some()
            || opts.abort_replica_lag.is_some()
            || opts.max_active_backends.is_some()
            || opts.abort_active_backends.is_some();
        if !watched {
            return Ok(None);
        }
        // The server is asked at most once a second per worker.
        if let Some((at, why)) = &self.checked {
            if at.elapsed() < Duration::from_secs(1) {
                return Ok(why.clone());
            }
        }
        let row = client
            .query_one(
                "SELECT (SELECT pg_catalog.max(pg_catalog.date_part('epoch', replay_lag)) FROM pg_catalog.pg_stat_replication),
                        (SELECT pg_catalog.count(*) FROM pg_catalog.pg_stat_activity
                         WHERE state OPERATOR(pg_catalog.=) 'active' AND backend_type OPERATOR(pg_catalog.=) 'client backend'
                           AND pid OPERATOR(pg_catalog.<>) ALL ($1::pg_catalog.int4[]))",
                &[&ours],
            )
            .await
            .context("checking replica lag and server load for the backfill's throttle")?;
        let lag: Option<f64> = row.get(0);
        let active: i64 = row.get(1);
        let why = throttle_verdict(opts, lag.map(Duration::from_secs_f64), active)?;
        self.checked = Some((Instant::now(), why.clone()));
        Ok(why)
    }
}

/// What the throttle makes of a replica lag and a count of other active backends.
pub fn throttle_verdict(
    opts: &BackfillOptions,
    lag: Option<Duration>,
    active: i64,
) -> Result<Option<String>> {
    let fmt = |d: Duration| humantime::format_duration(Duration::from_millis(d.as_millis() as u64));
    if let (Some(lag), Some(limit)) = (lag, opts.abort_replica_lag) {
        if lag > limit {
            return Err(Error::RetryLater {
                problem: format!(
                    "backfill stopped: a replica's replay lag is {}, above backfill.abort_replica_lag ({})",
                    fmt(lag),
                    fmt(limit)
                ),
                fix: "find why the replica falls behind; `hyperswap plan apply` resumes where the backfill stopped".into(),
            });
        }
    }
    if let Some(limit) = opts.abort_active_backends {
        if active > limit as i64 {
            return Err(Error::RetryLater {
                problem: format!("backfill stopped: {active} other backends are active, above backfill.abort_active_backends ({limit})"),
                fix: "run the backfill when the server is less busy; `hyperswap plan apply` resumes where it stopped".into(),
            });
        }
    }
    if let (Some(lag), Some(limit)) = (lag, opts.max_replica_lag) {
        if lag > limit {
            return Ok(Some(format!(
                "a replica's replay lag is {}, above backfill.max_replica_lag ({})",
                fmt(lag),
                fmt(limit)
            )));
        }
    }
    if let Some(limit) = opts.max_active_backends {
        if active > limit as i64 {
            return Ok(Some(format!(
                "{active} other backends are active, above backfill.max_active_backends ({limit})"
            )));
        }
    }
    Ok(None)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn k(s: &str) -> Vec<String> {
        vec![s.to_string()]
    }

    #[test]
    fn batches_grow_slowly_and_shrink_fast() {
        let target = Duration::from_millis(500);
        // Fast: a quarter more, not the 8x the speed would allow.
        assert_eq!(
            next_batch_rows(10_000, Duration::from_millis(50), target, 1_000_000),
            12_500
        );
        // Never past the maximum.
        assert_eq!(
            next_batch_rows(10_000, Duration::from_millis(50), target, 11_000),
            11_000
        );
        // Slow: at once to what would have taken 80 % of the target.
        assert_eq!(
            next_batch_rows(10_000, Duration::from_secs(2), target, 1_000_000),
            2_000
        );
        // Close to the target: unchanged.
        assert_eq!(
            next_batch_rows(10_000, Duration::from_millis(450), target, 1_000_000),
            10_000
        );
        assert_eq!(next_batch_rows(1, Duration::from_secs(60), target, 10), 1);
    }

    #[test]
    fn ranges_are_cut_for_the_workers_but_never_tiny() {
        assert_eq!(ranges_for(5_000_000.0, 2), 8);
        assert_eq!(ranges_for(40_000_000.0, 2), 20);
        assert_eq!(ranges_for(120_000.0, 4), 2);
        assert_eq!(ranges_for(10.0, 8), 1);
    }

    #[test]
    fn cut_ranges_chain_cursor_to_previous_end() {
        let r = cut_ranges(0, Some(k("1")), k("100"), vec![k("30"), k("60"), k("100")]);
        assert_eq!(r.len(), 3);
        assert_eq!(
            (r[0].lo.clone(), r[0].cursor.clone(), r[0].hi.clone()),
            (Some(k("1")), None, k("30"))
        );
        assert_eq!(
            (r[1].cursor.clone(), r[1].hi.clone()),
            (Some(k("30")), k("60"))
        );
        assert_eq!(
            (r[2].cursor.clone(), r[2].hi.clone()),
            (Some(k("60")), k("100"))
        );
        assert_eq!(
            r.iter().map(|r| r.range_no).collect::<Vec<_>>(),
            vec![0, 1, 2]
        );
        let one = cut_ranges(0, Some(k("1")), k("9"), vec![]);
        assert_eq!(one.len(), 1);
        assert_eq!(one[0].hi, k("9"));
    }

    #[test]
    fn throttle_waits_then_stops() {
        let opts = BackfillOptions {
            max_replica_lag: Some(Duration::from_secs(10)),
            abort_replica_lag: Some(Duration::from_secs(60)),
            max_active_backends: Some(20),
            abort_active_backends: Some(50),
            ..BackfillOptions::default()
        };
        assert!(throttle_verdict(&opts, None, 3).unwrap().is_none());
        assert!(throttle_verdict(&opts, Some(Duration::from_secs(5)), 3)
            .unwrap()
            .is_none());
        let why = throttle_verdict(&opts, Some(Duration::from_secs(12)), 3)
            .unwrap()
            .unwrap();
        assert!(why.contains("replay lag is 12s"), "{why}");
        let why = throttle_verdict(&opts, None, 21).unwrap().unwrap();
        assert!(why.contains("21 other backends"), "{why}");
        let err = throttle_verdict(&opts, Some(Duration::from_secs(61)), 3).unwrap_err();
        assert!(err.to_string().contains("abort_replica_lag"), "{err}");
        let err = throttle_verdict(&opts, None, 51).unwrap_err();
        assert!(err.to_string().contains("abort_active_backends"), "{err}");
    }
}
