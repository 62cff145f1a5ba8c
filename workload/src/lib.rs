//! Sample data and a synthetic live writer, for the demo, the tests and the benchmarks.
//!
//! [`create_sample_table`] builds a `metrics`-shaped table and fills it with deterministic
//! rows. [`spawn_writer`] plays the application: a few connections inserting, updating
//! (values, times and keys) and deleting rows through the table's *name*, so that when
//! hyperswap swaps a hypertable in under that name, the writer carries on against it.
//! Its [`WriterStats::max_latency`] is the longest single statement, which is how the
//! cutover's stall is measured.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use rand::rngs::SmallRng;
#[cfg(test)]
use rand::Rng;
use rand::{RngExt, SeedableRng};
use serde::Serialize;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio::time::{Interval, MissedTickBehavior};
use tokio_postgres::types::ToSql;
use tokio_postgres::{Client, NoTls};

use hyperswap::ident::{quote_literal, QualifiedName};

/// Rows per `INSERT ... SELECT` statement when seeding, so no one transaction is huge.
pub const SEED_CHUNK_ROWS: u64 = 500_000;

/// How far back the sample data (and the writer's inserts) reach.
const SPAN_SECS: f64 = 30.0 * 86_400.0;

/// Random-row operations re-read the table's id range after this many operations.
const ID_RANGE_REFRESH_OPS: u32 = 200;

/// ... or after this many while no row is known (every operation is an insert then).
const ID_RANGE_RETRY_OPS: u32 = 10;

/// Pause before reconnecting a lost (or refused) connection.
const RECONNECT_DELAY: Duration = Duration::from_millis(200);

/// How long [`WriterHandle::stop`] waits for in-flight statements before abandoning them.
const STOP_GRACE: Duration = Duration::from_secs(10);

// ---------------------------------------------------------------------------------------
// Sample table
// ---------------------------------------------------------------------------------------

/// Creates `table` (an error if it exists) with the sample `metrics` shape, its indexes,
/// a CHECK constraint and a comment, then inserts `rows` deterministic rows (ids `1..=rows`
/// on a fresh table) in statements of [`SEED_CHUNK_ROWS`] rows, and ANALYZEs it.
///
/// Times spread evenly over the 30 days before the call, rising with the id (with a little
/// jitter); `device_id = n % 1000`; `value`, `status`, `payload` and `tags` vary with `n`
/// and include NULLs (and empty `status` strings).
pub async fn create_sample_table(
    client: &Client,
    table: &QualifiedName,
    rows: u64,
) -> Result<(), tokio_postgres::Error> {
    client.batch_execute(&sample_ddl(table)).await?;
    let anchor: f64 = client
        .query_one(
            "SELECT extract(epoch FROM date_trunc('second', now()))::float8",
            &[],
        )
        .await?
        .get(0);
    let insert = sample_insert_sql(table);
    let total = rows as i64;
    let mut first: u64 = 1;
    while first <= rows {
        let last = rows.min(first + SEED_CHUNK_ROWS - 1);
        let (lo, hi) = (first as i64, last as i64);
        client
            .execute(&insert, &[&lo, &hi, &total, &anchor])
            .await?;
        first = last + 1;
    }
    client
        .batch_execute(&format!("ANALYZE {}", table.quoted()))
        .await
}

/// The table, its CHECK constraint, indexes and comment (one batch, one transaction).
fn sample_ddl(table: &QualifiedName) -> String {
    let t = table.quoted();
    format!(
        "CREATE TABLE {t} (
             id bigserial PRIMARY KEY,
             ts timestamptz NOT NULL,
             device_id integer NOT NULL CHECK (device_id >= 0),
             value double precision,
             status text,
             payload jsonb,
             tags text[]
         );
         CREATE INDEX ON {t} (device_id, ts);
         CREATE INDEX ON {t} (ts);
         COMMENT ON TABLE {t} IS {comment};",
        comment = quote_literal("Sample device metrics, seeded by hyperswap's workload module"),
    )
}

/// Rows `$1..=$2` of `$3`, timed back from the epoch `$4`.
fn sample_insert_sql(table: &QualifiedName) -> String {
    format!(
        "INSERT INTO {t} (ts, device_id, value, status, payload, tags)
         SELECT to_timestamp($4::float8
                    - ($3::bigint - n)::float8 * ({span:.1} - 600.0) / greatest($3::bigint, 1)
                    - ((n * 7919) % 599)::float8),
                (n % 1000)::integer,
                CASE WHEN n % 53 = 0 THEN NULL
                     ELSE round((50 + 40 * sin(n / 360.0) + (n % 17) / 4.0)::numeric, 3)::float8
                END,
                CASE WHEN n % 31 = 0 THEN NULL
                     WHEN n % 37 = 0 THEN ''
                     ELSE (ARRAY['ok', 'ok', 'ok', 'warn', 'error', 'idle'])[1 + n % 6]
                END,
                jsonb_build_object(
                    'seq', n,
                    'firmware', 'v' || (1 + n % 5),
                    'reading', jsonb_build_object('raw', (n * 31) % 4096, 'ok', n % 11 <> 0)),
                ARRAY['region-' || (n % 4), 'rack-' || (n % 16)]
         FROM generate_series($1::bigint, $2::bigint) AS n",
        t = table.quoted(),
        span = SPAN_SECS,
    )
}

// ---------------------------------------------------------------------------------------
// Operation mix and PRNG
// ---------------------------------------------------------------------------------------

/// One kind of writer statement.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    Insert,
    UpdateValue,
    UpdateTime,
    UpdateKey,
    Delete,
}

/// Relative weights of the writer's operations.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OpMix {
    pub insert: u32,
    pub update_value: u32,
    pub update_time: u32,
    pub update_key: u32,
    pub delete: u32,
}

impl Default for OpMix {
    fn default() -> Self {
        OpMix {
            insert: 45,
            update_value: 25,
            update_time: 10,
            update_key: 5,
            delete: 15,
        }
    }
}

impl OpMix {
    fn weighted(&self) -> [(Op, u32); 5] {
        [
            (Op::Insert, self.insert),
            (Op::UpdateValue, self.update_value),
            (Op::UpdateTime, self.update_time),
            (Op::UpdateKey, self.update_key),
            (Op::Delete, self.delete),
        ]
    }

    /// Sum of the weights (computed in u64, so it cannot overflow).
    pub fn total(&self) -> u64 {
        self.weighted().iter().map(|&(_, w)| u64::from(w)).sum()
    }

    /// The operation a roll in `0..total()` lands on; `None` when every weight is zero.
    pub fn pick(&self, roll: u64) -> Option<Op> {
        let mut left = roll % self.total().max(1);
        for (op, weight) in self.weighted() {
            let weight = u64::from(weight);
            if left < weight {
                return Some(op);
            }
            left -= weight;
        }
        None
    }
}

/// The writer's dice: rand's small, fast generator, seeded per task.
#[derive(Debug, Clone)]
struct Dice(SmallRng);

impl Dice {
    fn new(seed: u64) -> Self {
        Dice(SmallRng::seed_from_u64(seed))
    }

    /// Seeded from the clock and the task index.
    fn for_task(index: usize) -> Self {
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as u64);
        Dice::new(nanos ^ (index as u64).wrapping_mul(0xA076_1D64_78BD_642F))
    }

    #[cfg(test)]
    fn next_u64(&mut self) -> u64 {
        self.0.next_u64()
    }

    /// Uniform in `0..n` (`0` when `n == 0`).
    fn below(&mut self, n: u64) -> u64 {
        if n == 0 {
            0
        } else {
            self.0.random_range(0..n)
        }
    }

    /// In `[0, 1)`.
    fn unit(&mut self) -> f64 {
        self.0.random::<f64>()
    }

    /// A random id in `lo..=hi`.
    fn id_between(&mut self, lo: i64, hi: i64) -> i64 {
        self.0.random_range(lo..=hi)
    }
}

// ---------------------------------------------------------------------------------------
// Statistics
// ---------------------------------------------------------------------------------------

/// What a writer has done so far.
#[derive(Debug, Clone, Default, Serialize)]
pub struct WriterStats {
    pub inserts: u64,
    pub updates_value: u64,
    pub updates_time: u64,
    pub updates_key: u64,
    pub deletes: u64,
    /// Failed statements and failed connection attempts.
    pub errors: u64,
    /// The longest single statement (successful or not): the application's worst stall.
    /// Serialized as `max_latency_ms`, a float in milliseconds.
    #[serde(rename = "max_latency_ms", serialize_with = "serialize_millis")]
    pub max_latency: Duration,
}

impl WriterStats {
    /// Successful operations of every kind.
    pub fn total_ops(&self) -> u64 {
        self.inserts + self.updates_value + self.updates_time + self.updates_key + self.deletes
    }
}

fn serialize_millis<S: serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_f64(d.as_secs_f64() * 1000.0)
}

/// Live counters shared by the writer's tasks.
#[derive(Default)]
struct Counters {
    ops: [AtomicU64; 5],
    errors: AtomicU64,
    max_latency_nanos: AtomicU64,
    /// Milliseconds since `epoch` of the last warning logged (+1, so 0 means never).
    last_warn_ms: AtomicU64,
    suppressed_warnings: AtomicU64,
}

impl Counters {
    fn slot(op: Op) -> usize {
        match op {
            Op::Insert => 0,
            Op::UpdateValue => 1,
            Op::UpdateTime => 2,
            Op::UpdateKey => 3,
            Op::Delete => 4,
        }
    }

    fn done(&self, op: Op) {
        self.ops[Self::slot(op)].fetch_add(1, Ordering::Relaxed);
    }

    fn latency(&self, elapsed: Duration) {
        let nanos = u64::try_from(elapsed.as_nanos()).unwrap_or(u64::MAX);
        self.max_latency_nanos.fetch_max(nanos, Ordering::Relaxed);
    }

    fn snapshot(&self) -> WriterStats {
        let op = |o: Op| self.ops[Self::slot(o)].load(Ordering::Relaxed);
        WriterStats {
            inserts: op(Op::Insert),
            updates_value: op(Op::UpdateValue),
            updates_time: op(Op::UpdateTime),
            updates_key: op(Op::UpdateKey),
            deletes: op(Op::Delete),
            errors: self.errors.load(Ordering::Relaxed),
            max_latency: Duration::from_nanos(self.max_latency_nanos.load(Ordering::Relaxed)),
        }
    }

    /// Counts an error and logs it, at most once a second across all tasks.
    fn error(&self, epoch: Instant, what: &str, err: &tokio_postgres::Error) {
        self.errors.fetch_add(1, Ordering::Relaxed);
        let now_ms = epoch.elapsed().as_millis() as u64 + 1;
        let last = self.last_warn_ms.load(Ordering::Relaxed);
        let due = last == 0 || now_ms.saturating_sub(last) >= 1000;
        if due
            && self
                .last_warn_ms
                .compare_exchange(last, now_ms, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
        {
            let unlogged = self.suppressed_warnings.swap(0, Ordering::Relaxed);
            let also = match unlogged {
                0 => String::new(),
                n => format!(" ({n} earlier errors not logged)"),
            };
            tracing::warn!("workload writer: {what} failed: {}{also}", describe(err));
        } else {
            self.suppressed_warnings.fetch_add(1, Ordering::Relaxed);
            tracing::debug!("workload writer: {what} failed: {}", describe(err));
        }
    }
}

/// A one-line description of a driver error, with the server's SQLSTATE when there is one.
fn describe(err: &tokio_postgres::Error) -> String {
    match err.as_db_error() {
        Some(db) => format!("{} {}: {}", db.severity(), db.code().code(), db.message()),
        None => match std::error::Error::source(err) {
            Some(source) => format!("{err}: {source}"),
            None => err.to_string(),
        },
    }
}

// ---------------------------------------------------------------------------------------
// Writer
// ---------------------------------------------------------------------------------------

/// What the synthetic writer does.
#[derive(Debug, Clone)]
pub struct WriterConfig {
    /// Connection URL (or key=value string) for tokio-postgres; never logged.
    pub url: String,
    pub table: QualifiedName,
    /// Concurrent connections, one task each (at least one is used).
    pub connections: usize,
    /// Total target rate over all connections; 0 = as fast as possible.
    pub ops_per_sec: u32,
    pub mix: OpMix,
    /// Whether time updates may move a row to another day. A plain table takes that;
    /// on a hypertable with daily chunks it fails (TimescaleDB cannot move a row to
    /// another chunk by UPDATE), so an application that stays hypertable-friendly
    /// keeps time updates within the row's UTC day.
    pub time_updates_cross_days: bool,
}

/// A running writer: read its counters with [`stats`](Self::stats), end it with
/// [`stop`](Self::stop). Dropping the handle also tells the tasks to stop.
pub struct WriterHandle {
    stop: watch::Sender<bool>,
    tasks: Vec<JoinHandle<()>>,
    counters: Arc<Counters>,
}

impl WriterHandle {
    /// The counters so far.
    pub fn stats(&self) -> WriterStats {
        self.counters.snapshot()
    }

    /// Tells every task to stop, waits for in-flight statements (abandoning any still
    /// running after 10 s), and returns the final counters.
    pub async fn stop(self) -> WriterStats {
        let _ = self.stop.send(true);
        let deadline = tokio::time::Instant::now() + STOP_GRACE;
        for mut task in self.tasks {
            if tokio::time::timeout_at(deadline, &mut task).await.is_err() {
                task.abort();
                tracing::warn!(
                    "workload writer: a task was still busy after {STOP_GRACE:?}; abandoned"
                );
            }
        }
        self.counters.snapshot()
    }
}

/// Starts `cfg.connections` tasks (on the current tokio runtime), each with its own
/// connection, writing to `cfg.table` by name until [`WriterHandle::stop`].
///
/// Every statement is its own autocommit transaction and is re-parsed each time (no
/// cached plans), so a table renamed or replaced under the name is picked up at once.
/// Failed statements are counted and the loop goes on; a lost connection is re-opened
/// after 200 ms.
pub fn spawn_writer(cfg: WriterConfig) -> WriterHandle {
    let (stop, stop_rx) = watch::channel(false);
    let counters = Arc::new(Counters::default());
    let shared = Arc::new(Shared {
        sql: OpSql::new(&cfg.table, cfg.time_updates_cross_days),
        table_text: cfg.table.quoted(),
        mix: cfg.mix,
        url: cfg.url,
        counters: counters.clone(),
        epoch: Instant::now(),
    });
    let connections = cfg.connections.max(1);
    let tasks = (0..connections)
        .map(|index| {
            let pacing = Pacing::new(cfg.ops_per_sec, connections, index);
            tokio::spawn(run_task(shared.clone(), index, pacing, stop_rx.clone()))
        })
        .collect();
    WriterHandle {
        stop,
        tasks,
        counters,
    }
}

/// What every task shares.
struct Shared {
    url: String,
    sql: OpSql,
    /// The quoted table name as text, for `pg_get_serial_sequence`.
    table_text: String,
    mix: OpMix,
    counters: Arc<Counters>,
    epoch: Instant,
}

/// The writer's statements, assembled once from the quoted table name.
struct OpSql {
    insert: String,
    update_value: String,
    update_time: String,
    update_key: String,
    delete: String,
    id_range: String,
}

impl OpSql {
    fn new(table: &QualifiedName, time_updates_cross_days: bool) -> Self {
        let t = table.quoted();
        // $1: a random id; the row hit is the first at or after it.
        let row = format!("id = (SELECT id FROM {t} WHERE id >= $1::bigint ORDER BY id LIMIT 1)");
        OpSql {
            insert: format!(
                "INSERT INTO {t} (ts, device_id, value, status, payload, tags) \
                 VALUES (now() - make_interval(secs => $1::float8), $2::integer, $3::float8, \
                 $4::text, $5::text::jsonb, $6::text[])"
            ),
            update_value: format!(
                "UPDATE {t} SET value = $2::float8, status = $3::text, payload = $4::text::jsonb \
                 WHERE {row}"
            ),
            update_time: if time_updates_cross_days {
                format!("UPDATE {t} SET ts = least(ts + make_interval(secs => $2::float8), now()) WHERE {row}")
            } else {
                // Another time of the same UTC day ($2 folded into 0..86400 s).
                format!(
                    "UPDATE {t} SET ts = least(date_bin('1 day', ts, timestamptz '2000-01-01 00:00+00') \
                     + make_interval(secs => mod(abs($2::float8)::numeric, 86400)::float8), now()) WHERE {row}"
                )
            },
            update_key: format!(
                "UPDATE {t} SET id = nextval(pg_get_serial_sequence($2::text, 'id')) WHERE {row}"
            ),
            delete: format!("DELETE FROM {t} WHERE {row}"),
            id_range: format!("SELECT min(id), max(id) FROM {t}"),
        }
    }
}

/// Per-connection pacing: one tick every `connections / ops_per_sec` seconds, the
/// connections' ticks staggered evenly; `None` = no pacing.
struct Pacing(Option<Interval>);

impl Pacing {
    fn new(ops_per_sec: u32, connections: usize, index: usize) -> Self {
        if ops_per_sec == 0 {
            return Pacing(None);
        }
        let period = Duration::from_secs_f64(connections as f64 / f64::from(ops_per_sec));
        let offset = period.mul_f64(index as f64 / connections as f64);
        let mut interval = tokio::time::interval_at(tokio::time::Instant::now() + offset, period);
        interval.set_missed_tick_behavior(MissedTickBehavior::Skip);
        Pacing(Some(interval))
    }

    /// Waits for the next slot; `false` when told to stop first.
    async fn wait(&mut self, stop: &mut watch::Receiver<bool>) -> bool {
        match &mut self.0 {
            None => !stopping(stop),
            Some(interval) => {
                let ticked = tokio::select! {
                    _ = interval.tick() => true,
                    _ = stop.wait_for(|s| *s) => false,
                };
                ticked && !stopping(stop)
            }
        }
    }
}

/// True once stop was sent or the handle dropped.
fn stopping(stop: &watch::Receiver<bool>) -> bool {
    *stop.borrow() || stop.has_changed().is_err()
}

/// Sleeps `d`; `false` when told to stop first.
async fn pause(d: Duration, stop: &mut watch::Receiver<bool>) -> bool {
    let slept = tokio::select! {
        _ = tokio::time::sleep(d) => true,
        _ = stop.wait_for(|s| *s) => false,
    };
    slept && !stopping(stop)
}

/// One writer task: connect, run operations until the connection is lost, repeat.
async fn run_task(
    shared: Arc<Shared>,
    index: usize,
    mut pacing: Pacing,
    mut stop: watch::Receiver<bool>,
) {
    if shared.mix.total() == 0 {
        tracing::warn!("workload writer: every operation weight is zero; nothing to do");
        return;
    }
    let config = match connect_config(&shared.url) {
        Ok(config) => config,
        Err(err) => {
            shared
                .counters
                .error(shared.epoch, "parsing the connection string", &err);
            return;
        }
    };
    let mut rng = Dice::for_task(index);
    while !stopping(&stop) {
        match config.connect(NoTls).await {
            Ok((client, connection)) => {
                tokio::spawn(async move {
                    if let Err(err) = connection.await {
                        tracing::debug!("workload writer connection ended: {}", describe(&err));
                    }
                });
                let mut session = Session {
                    client,
                    ids: None,
                    ops_until_refresh: 0,
                };
                if !session.run(&shared, &mut rng, &mut pacing, &mut stop).await {
                    return;
                }
            }
            Err(err) => shared.counters.error(shared.epoch, "connecting", &err),
        }
        if !pause(RECONNECT_DELAY, &mut stop).await {
            return;
        }
    }
}

/// The URL, with an application name (unless it sets one) and a connect timeout.
fn connect_config(url: &str) -> Result<tokio_postgres::Config, tokio_postgres::Error> {
    let mut config: tokio_postgres::Config = url.parse()?;
    if config.get_application_name().is_none() {
        config.application_name("hyperswap-workload");
    }
    if config.get_connect_timeout().is_none() {
        config.connect_timeout(Duration::from_secs(5));
    }
    Ok(config)
}

/// One connection's loop state.
struct Session {
    client: Client,
    /// The table's `(min(id), max(id))`, `None` when empty or not yet read.
    ids: Option<(i64, i64)>,
    ops_until_refresh: u32,
}

impl Session {
    /// Runs operations until stop (`false`) or the connection is lost (`true`).
    async fn run(
        &mut self,
        shared: &Shared,
        rng: &mut Dice,
        pacing: &mut Pacing,
        stop: &mut watch::Receiver<bool>,
    ) -> bool {
        loop {
            if !pacing.wait(stop).await {
                return false;
            }
            if self.ops_until_refresh == 0 {
                if let Err(err) = self.refresh_ids(shared).await {
                    shared
                        .counters
                        .error(shared.epoch, "reading the id range", &err);
                    if self.lost(&err) {
                        return true;
                    }
                }
                // An empty (or unreadable) table is looked at again soon.
                self.ops_until_refresh = match self.ids {
                    Some(_) => ID_RANGE_REFRESH_OPS,
                    None => ID_RANGE_RETRY_OPS,
                };
            }
            self.ops_until_refresh -= 1;
            let op = self.choose(&shared.mix, rng);
            if let Err(err) = self.execute(shared, op, rng).await {
                shared.counters.error(shared.epoch, op_name(op), &err);
                if self.lost(&err) {
                    return true;
                }
            } else {
                shared.counters.done(op);
            }
        }
    }

    /// Whether `err` ended the connection (the client may not have noticed yet when the
    /// server sent a FATAL error, e.g. from pg_terminate_backend).
    fn lost(&self, err: &tokio_postgres::Error) -> bool {
        self.client.is_closed()
            || err.is_closed()
            || err
                .as_db_error()
                .is_some_and(|db| matches!(db.severity(), "FATAL" | "PANIC"))
    }

    /// The weighted pick, falling back to an insert while no row is known.
    fn choose(&self, mix: &OpMix, rng: &mut Dice) -> Op {
        let op = mix.pick(rng.below(mix.total())).unwrap_or(Op::Insert);
        if self.ids.is_none() {
            Op::Insert
        } else {
            op
        }
    }

    async fn refresh_ids(&mut self, shared: &Shared) -> Result<(), tokio_postgres::Error> {
        let started = Instant::now();
        let result = self.client.query_one(&shared.sql.id_range, &[]).await;
        shared.counters.latency(started.elapsed());
        let row = result?;
        self.ids = match (row.get::<_, Option<i64>>(0), row.get::<_, Option<i64>>(1)) {
            (Some(lo), Some(hi)) => Some((lo, hi)),
            _ => None,
        };
        Ok(())
    }

    /// Executes one operation as its own statement, timing it.
    async fn execute(
        &self,
        shared: &Shared,
        op: Op,
        rng: &mut Dice,
    ) -> Result<u64, tokio_postgres::Error> {
        let target = self.ids.map_or(0, |(lo, hi)| rng.id_between(lo, hi));
        let sql = &shared.sql;
        match op {
            Op::Insert => {
                let row = NewRow::random(rng);
                let params: [&(dyn ToSql + Sync); 6] = [
                    &row.age_secs,
                    &row.device_id,
                    &row.value,
                    &row.status,
                    &row.payload,
                    &row.tags,
                ];
                self.timed(shared, &sql.insert, &params).await
            }
            Op::UpdateValue => {
                let row = NewRow::random(rng);
                self.timed(
                    shared,
                    &sql.update_value,
                    &[&target, &row.value, &row.status, &row.payload],
                )
                .await
            }
            Op::UpdateTime => {
                // Up to two days either way: sometimes the same day, often another.
                let shift = (rng.unit() * 2.0 - 1.0) * 2.0 * 86_400.0;
                self.timed(shared, &sql.update_time, &[&target, &shift])
                    .await
            }
            Op::UpdateKey => {
                self.timed(shared, &sql.update_key, &[&target, &shared.table_text])
                    .await
            }
            Op::Delete => self.timed(shared, &sql.delete, &[&target]).await,
        }
    }

    /// Runs `sql` (parsed afresh, so names resolve now) and records its latency.
    async fn timed(
        &self,
        shared: &Shared,
        sql: &str,
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<u64, tokio_postgres::Error> {
        let started = Instant::now();
        let result = self.client.execute(sql, params).await;
        shared.counters.latency(started.elapsed());
        result
    }
}

fn op_name(op: Op) -> &'static str {
    match op {
        Op::Insert => "insert",
        Op::UpdateValue => "update (value)",
        Op::UpdateTime => "update (time)",
        Op::UpdateKey => "update (key)",
        Op::Delete => "delete",
    }
}

/// Column values for an insert (or a value update).
struct NewRow {
    /// Seconds before now().
    age_secs: f64,
    device_id: i32,
    value: Option<f64>,
    status: Option<&'static str>,
    /// JSON text, cast to jsonb in SQL.
    payload: String,
    tags: Vec<String>,
}

impl NewRow {
    fn random(rng: &mut Dice) -> Self {
        const STATUSES: [&str; 6] = ["ok", "ok", "ok", "warn", "error", "idle"];
        let device_id = rng.below(1000) as i32;
        let value = (rng.below(50) != 0).then(|| (rng.unit() * 100_000.0).round() / 1000.0);
        let status = match rng.below(30) {
            0 => None,
            1 => Some(""),
            _ => Some(STATUSES[rng.below(STATUSES.len() as u64) as usize]),
        };
        let payload = serde_json::json!({
            "seq": rng.below(1 << 40),
            "firmware": format!("v{}", 1 + rng.below(5)),
            "reading": { "raw": rng.below(4096), "ok": rng.below(11) != 0 },
        })
        .to_string();
        let tags = vec![
            format!("region-{}", rng.below(4)),
            format!("rack-{}", rng.below(16)),
        ];
        NewRow {
            age_secs: rng.unit() * SPAN_SECS,
            device_id,
            value,
            status,
            payload,
            tags,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_mix_picks_each_op_by_weight() {
        let mix = OpMix::default();
        assert_eq!(mix.total(), 100);
        let mut counts = [0u64; 5];
        for roll in 0..mix.total() {
            counts[Counters::slot(mix.pick(roll).unwrap())] += 1;
        }
        assert_eq!(counts, [45, 25, 10, 5, 15]);
        assert_eq!(mix.pick(0), Some(Op::Insert));
        assert_eq!(mix.pick(45), Some(Op::UpdateValue));
        assert_eq!(mix.pick(99), Some(Op::Delete));
    }

    #[test]
    fn zero_weights_are_never_picked() {
        let mix = OpMix {
            insert: 0,
            update_value: 0,
            update_time: 3,
            update_key: 0,
            delete: 1,
        };
        let picks: Vec<_> = (0..4).map(|r| mix.pick(r).unwrap()).collect();
        assert_eq!(
            picks,
            [Op::UpdateTime, Op::UpdateTime, Op::UpdateTime, Op::Delete]
        );
        let none = OpMix {
            insert: 0,
            update_value: 0,
            update_time: 0,
            update_key: 0,
            delete: 0,
        };
        assert_eq!(none.total(), 0);
        assert_eq!(none.pick(0), None);
        let max = OpMix {
            insert: u32::MAX,
            update_value: u32::MAX,
            update_time: 0,
            update_key: 0,
            delete: 0,
        };
        assert_eq!(max.pick(u64::from(u32::MAX)), Some(Op::UpdateValue));
    }

    #[test]
    fn random_picks_follow_the_weights() {
        let mix = OpMix::default();
        let mut rng = Dice::new(7);
        let mut counts = [0u64; 5];
        for _ in 0..100_000 {
            counts[Counters::slot(mix.pick(rng.below(mix.total())).unwrap())] += 1;
        }
        for (count, weight) in counts.iter().zip([45u64, 25, 10, 5, 15]) {
            let expected = weight * 1000;
            assert!(count.abs_diff(expected) < expected / 10, "{counts:?}");
        }
    }

    #[test]
    fn prng_is_deterministic_nonzero_and_in_range() {
        let (mut a, mut b) = (Dice::new(0), Dice::new(0));
        for _ in 0..1000 {
            assert_eq!(a.next_u64(), b.next_u64());
        }
        assert_ne!(Dice::new(1).next_u64(), Dice::new(2).next_u64());
        let mut rng = Dice::new(42);
        for _ in 0..10_000 {
            assert!(rng.below(10) < 10);
            let u = rng.unit();
            assert!((0.0..1.0).contains(&u));
            let id = rng.id_between(5, 8);
            assert!((5..=8).contains(&id));
        }
        assert_eq!(rng.below(0), 0);
        assert_eq!(rng.id_between(3, 3), 3);
        let wide = rng.id_between(i64::MIN, i64::MAX);
        let _ = wide; // any value is in range; it must just not panic
    }

    #[test]
    fn stats_serialize_latency_in_milliseconds() {
        let stats = WriterStats {
            inserts: 2,
            max_latency: Duration::from_micros(1500),
            ..Default::default()
        };
        let json = serde_json::to_value(&stats).unwrap();
        assert_eq!(json["inserts"], 2);
        assert_eq!(json["max_latency_ms"], 1.5);
        assert_eq!(stats.total_ops(), 2);
    }

    #[test]
    fn statements_quote_the_table_name() {
        let sql = OpSql::new(&QualifiedName::new("my schema", "we\"ird"), true);
        assert!(sql
            .delete
            .starts_with("DELETE FROM \"my schema\".\"we\"\"ird\" WHERE id = (SELECT"));
        assert!(
            sample_ddl(&QualifiedName::new("s", "t")).contains("CREATE INDEX ON \"s\".\"t\" (ts)")
        );
    }
}
