//! The YAML plan: what to move, and how. Parsed strictly (unknown keys are errors) and
//! frozen by its sha256 once a run has started.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;
use sha2::{Digest, Sha256};

use crate::error::{Error, Result};
use crate::ident::{with_suffix, QualifiedName};

/// A parsed plan file.
#[derive(Debug, Clone)]
pub struct Plan {
    pub path: PathBuf,
    /// The file's exact text, kept in the journal.
    pub text: String,
    /// Hex sha256 of `text`.
    pub sha256: String,
    pub name: String,
    pub tables: Vec<TablePlan>,
    pub backfill: BackfillOptions,
    pub parity: ParityOptions,
    pub cutover: CutoverOptions,
    pub catch_up: CatchUpOptions,
}

/// One table of a plan, with defaults filled in.
#[derive(Debug, Clone)]
pub struct TablePlan {
    pub source: QualifiedName,
    pub time_column: String,
    pub chunk_time_interval: Duration,
    /// `None`: the source's primary key. Otherwise the columns of a unique index.
    pub key: Option<Vec<String>>,
    pub target: QualifiedName,
    pub retired: QualifiedName,
    pub inbound_foreign_keys: InboundForeignKeys,
}

/// What to do with other tables' foreign keys that reference a moved table: after the
/// move its key is no longer unique without the time column, so they cannot follow.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum InboundForeignKeys {
    /// Refuse the plan (the default): the DBA decides first.
    #[default]
    Refuse,
    /// Drop them in the cutover transaction; rollback adds them back (valid).
    Drop,
    /// Drop them in the cutover transaction and keep their meaning with triggers
    /// (existence check, ON DELETE / ON UPDATE actions) until the DBA ends it.
    Emulate,
}

/// A daily window, in a time zone, outside which cutover is refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Window {
    /// Minutes after midnight.
    pub start: u32,
    pub end: u32,
    pub time_zone: String,
    pub text: String,
}

impl Window {
    pub fn parse(text: &str) -> std::result::Result<Window, String> {
        let bad = || {
            format!("`{text}` is not a window: write it like `01:00-03:30 UTC` (the zone is optional, UTC by default)")
        };
        let mut parts = text.split_whitespace();
        let span = parts.next().ok_or_else(bad)?;
        let time_zone = parts.next().unwrap_or("UTC").to_string();
        if parts.next().is_some() {
            return Err(bad());
        }
        let (a, b) = span.split_once('-').ok_or_else(bad)?;
        let minutes = |t: &str| -> Option<u32> {
            let (h, m) = t.split_once(':')?;
            let (h, m): (u32, u32) = (h.parse().ok()?, m.parse().ok()?);
            (h < 24 && m < 60).then_some(h * 60 + m)
        };
        let (start, end) = (minutes(a).ok_or_else(bad)?, minutes(b).ok_or_else(bad)?);
        if start == end {
            return Err(format!("`{text}`: the window is empty"));
        }
        Ok(Window {
            start,
            end,
            time_zone,
            text: text.to_string(),
        })
    }

    /// Whether `minute` (after midnight, in the window's zone) is inside; a window may
    /// cross midnight.
    pub fn contains(&self, minute: u32) -> bool {
        if self.start < self.end {
            (self.start..self.end).contains(&minute)
        } else {
            minute >= self.start || minute < self.end
        }
    }

    /// Minutes from `minute` until the window opens.
    pub fn opens_in(&self, minute: u32) -> u32 {
        (self.start + 24 * 60 - minute) % (24 * 60)
    }
}

impl<'de> Deserialize<'de> for Window {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        Window::parse(&text).map_err(serde::de::Error::custom)
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BackfillOptions {
    /// Sessions copying at once, each on key ranges of its own; none: sized to the
    /// server (its `max_parallel_workers_per_gather`, at least 2, at most 8).
    #[serde(default)]
    pub workers: Option<u32>,
    /// Rows of each worker's first batch; later batches are sized to take about
    /// `batch_duration` each.
    #[serde(default = "default_batch_rows")]
    pub batch_rows: u32,
    /// The largest batch, whatever its speed.
    #[serde(default = "default_max_batch_rows")]
    pub max_batch_rows: u32,
    /// How long one batch transaction should take: batches grow slowly while faster
    /// than this and shrink at once when slower.
    #[serde(default = "default_batch_duration", with = "humantime_serde_compat")]
    pub batch_duration: Duration,
    /// How long a batch waits for a row lock held by the application before it backs off.
    #[serde(
        default = "default_batch_lock_timeout",
        with = "humantime_serde_compat"
    )]
    pub lock_timeout: Duration,
    /// Retries of one batch after a lock timeout or deadlock, before giving up.
    #[serde(default = "default_batch_retries")]
    pub retries: u32,
    /// Sleep between batches, to leave the server room (a simple throttle).
    #[serde(default, with = "humantime_serde_opt")]
    pub pause: Option<Duration>,
    /// While this file exists, the backfill waits before its next batch (`touch` it to
    /// pause, remove it to go on).
    #[serde(default)]
    pub pause_file: Option<PathBuf>,
    /// Wait while a replica's replay lag (`pg_stat_replication.replay_lag`) is above this.
    #[serde(default, with = "humantime_serde_opt")]
    pub max_replica_lag: Option<Duration>,
    /// Stop the backfill (resumable) when a replica's replay lag is above this.
    #[serde(default, with = "humantime_serde_opt")]
    pub abort_replica_lag: Option<Duration>,
    /// Wait while more than this many other backends are active (running a statement).
    #[serde(default)]
    pub max_active_backends: Option<u32>,
    /// Stop the backfill (resumable) when more than this many other backends are active.
    #[serde(default)]
    pub abort_active_backends: Option<u32>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ParityOptions {
    /// About how many rows one range covers: each range is one short transaction.
    #[serde(default = "default_parity_range_rows")]
    pub range_rows: u64,
    /// An interrupted parity run resumes (keeps its compared ranges) only within this
    /// time of its start; older results are not trusted and the run starts over.
    #[serde(
        default = "default_parity_resume_within",
        with = "humantime_serde_compat"
    )]
    pub resume_within: Duration,
    /// Connections comparing ranges at once, each a busy backend while parity runs.
    #[serde(default = "default_parity_lanes")]
    pub lanes: usize,
}

impl Default for ParityOptions {
    fn default() -> Self {
        ParityOptions {
            range_rows: default_parity_range_rows(),
            resume_within: default_parity_resume_within(),
            lanes: default_parity_lanes(),
        }
    }
}

fn default_parity_lanes() -> usize {
    2
}

fn default_parity_range_rows() -> u64 {
    200_000
}
fn default_parity_resume_within() -> Duration {
    Duration::from_secs(3600)
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CutoverOptions {
    /// The longest the application's queries may queue behind one cutover attempt.
    #[serde(
        default = "default_cutover_lock_timeout",
        with = "humantime_serde_compat"
    )]
    pub lock_timeout: Duration,
    /// Attempts before cutover gives up and leaves the source live.
    #[serde(default = "default_cutover_attempts")]
    pub attempts: u32,
    /// Base pause between attempts; each retry doubles it, with jitter.
    #[serde(default = "default_cutover_backoff", with = "humantime_serde_compat")]
    pub backoff: Duration,
    /// When cutover may happen, e.g. `01:00-03:00 UTC`; none: any time.
    #[serde(default)]
    pub window: Option<Window>,
    /// The longest the cutover may replay the change log while it holds the tables'
    /// locks (the application waits that long on top of the lock wait). The cutover
    /// takes its locks only once what is left can be replayed within it, at the rate
    /// measured just before, and gives them back when the replay runs over. Default:
    /// 150ms, or half of `lock_timeout` when that is shorter.
    #[serde(default, with = "humantime_serde_opt")]
    pub catch_up_budget: Option<Duration>,
}

impl CutoverOptions {
    /// The replay budget under the locks (see [`CutoverOptions::catch_up_budget`]).
    pub fn budget(&self) -> Duration {
        self.catch_up_budget
            .unwrap_or_else(|| Duration::from_millis(150).min(self.lock_timeout / 2))
    }
}

/// How the change log is caught up with the application's writes.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CatchUpOptions {
    /// Replay the change log while the backfill's batches run (entries of keys already
    /// copied, or beyond the copy's range), so that little is left when it ends. `false`:
    /// only at the end of the backfill, as earlier builds did.
    #[serde(default = "default_true")]
    pub during_backfill: bool,
    /// How long the replay may stay behind the application (every pass finding more
    /// than it can take) before the run stops, resumable, saying so.
    #[serde(default = "default_max_behind", with = "humantime_serde_compat")]
    pub max_behind: Duration,
    /// The most the change logs may hold: `25%` (of the source table's size, the
    /// default) or a size such as `2GB` or `500MB`. The run stops, resumable, before a
    /// log grows past it.
    #[serde(default)]
    pub max_log_size: LogSize,
    /// Sessions that drain a change log together once the backfill has ended (before
    /// parity, and before each cutover attempt), each replaying the entries of its own
    /// share of the keys: a replay writes more per entry than the application did, and
    /// one session cannot follow several writers.
    #[serde(default = "default_catch_up_sessions")]
    pub sessions: usize,
}

fn default_catch_up_sessions() -> usize {
    3
}

impl Default for CatchUpOptions {
    fn default() -> Self {
        CatchUpOptions {
            during_backfill: true,
            max_behind: default_max_behind(),
            max_log_size: LogSize::default(),
            sessions: default_catch_up_sessions(),
        }
    }
}

/// A change log's size limit.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum LogSize {
    /// A fraction of the source table's size (indexes and TOAST included).
    OfSource(f64),
    Bytes(u64),
}

impl Default for LogSize {
    fn default() -> Self {
        LogSize::OfSource(0.25)
    }
}

impl LogSize {
    /// `25%`, `2GB`, `500MB`, `64kB`, `1TB`, or a number of bytes.
    pub fn parse(text: &str) -> std::result::Result<LogSize, String> {
        let t = text.trim();
        let bad = || {
            format!("`{text}` is neither a percentage of the source's size (`25%`) nor a size (`2GB`, `500MB`)")
        };
        if let Some(p) = t.strip_suffix('%') {
            let p: f64 = p.trim().parse().map_err(|_| bad())?;
            if !(p > 0.0 && p <= 1000.0) {
                return Err(format!("`{text}`: a percentage between 0 and 1000"));
            }
            return Ok(LogSize::OfSource(p / 100.0));
        }
        let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
        let (n, unit) = t.split_at(split);
        let n: u64 = n.parse().map_err(|_| bad())?;
        let factor: u64 = match unit.trim().to_ascii_lowercase().as_str() {
            "" | "b" => 1,
            "kb" => 1 << 10,
            "mb" => 1 << 20,
            "gb" => 1 << 30,
            "tb" => 1 << 40,
            _ => return Err(bad()),
        };
        match n.checked_mul(factor) {
            Some(b) if b >= 1 << 20 => Ok(LogSize::Bytes(b)),
            Some(_) => Err(format!("`{text}`: at least 1MB")),
            None => Err(bad()),
        }
    }

    /// The limit in bytes for a source of `source_bytes`.
    pub fn bytes(self, source_bytes: i64) -> i64 {
        match self {
            // Never below 64MB: a small table's log may hold more than the table.
            LogSize::OfSource(f) => ((source_bytes as f64 * f) as i64).max(64 << 20),
            LogSize::Bytes(b) => b as i64,
        }
    }
}

impl<'de> Deserialize<'de> for LogSize {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        LogSize::parse(&text).map_err(serde::de::Error::custom)
    }
}

fn default_true() -> bool {
    true
}
fn default_max_behind() -> Duration {
    Duration::from_secs(600)
}

fn default_batch_rows() -> u32 {
    10_000
}
fn default_max_batch_rows() -> u32 {
    1_000_000
}
fn default_batch_duration() -> Duration {
    Duration::from_millis(500)
}
fn default_batch_lock_timeout() -> Duration {
    Duration::from_secs(5)
}
fn default_batch_retries() -> u32 {
    20
}
fn default_cutover_lock_timeout() -> Duration {
    Duration::from_secs(2)
}
fn default_cutover_attempts() -> u32 {
    10
}
fn default_cutover_backoff() -> Duration {
    Duration::from_millis(500)
}

impl Default for BackfillOptions {
    fn default() -> Self {
        BackfillOptions {
            workers: None,
            batch_rows: default_batch_rows(),
            max_batch_rows: default_max_batch_rows(),
            batch_duration: default_batch_duration(),
            lock_timeout: default_batch_lock_timeout(),
            retries: default_batch_retries(),
            pause: None,
            pause_file: None,
            max_replica_lag: None,
            abort_replica_lag: None,
            max_active_backends: None,
            abort_active_backends: None,
        }
    }
}

impl Default for CutoverOptions {
    fn default() -> Self {
        CutoverOptions {
            lock_timeout: default_cutover_lock_timeout(),
            attempts: default_cutover_attempts(),
            backoff: default_cutover_backoff(),
            window: None,
            catch_up_budget: None,
        }
    }
}

/// The file as written; turned into [`Plan`] after the checks serde cannot express.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct PlanFile {
    name: String,
    tables: Vec<TableFile>,
    #[serde(default)]
    backfill: BackfillOptions,
    #[serde(default)]
    parity: ParityOptions,
    #[serde(default)]
    cutover: CutoverOptions,
    #[serde(default)]
    catch_up: CatchUpOptions,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct TableFile {
    source: Name,
    time_column: Column,
    #[serde(with = "humantime_serde_compat")]
    chunk_time_interval: Duration,
    #[serde(default)]
    key: Option<KeyColumns>,
    #[serde(default)]
    target: Option<Name>,
    #[serde(default)]
    retired: Option<Name>,
    #[serde(default)]
    inbound_foreign_keys: InboundForeignKeys,
}

/// A table name, checked while parsing so errors carry the line.
#[derive(Debug)]
struct Name(QualifiedName);

impl<'de> Deserialize<'de> for Name {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        QualifiedName::parse(&text)
            .map(Name)
            .map_err(serde::de::Error::custom)
    }
}

/// A column name, read as SQL reads identifiers.
#[derive(Debug)]
struct Column(String);

impl<'de> Deserialize<'de> for Column {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        crate::ident::parse_ident(&text)
            .map(Column)
            .map_err(serde::de::Error::custom)
    }
}

/// `key: id` or `key: [trace_id, span_id]`: one column or a list of them.
#[derive(Debug)]
struct KeyColumns(Vec<String>);

impl<'de> Deserialize<'de> for KeyColumns {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        struct Visitor;
        impl<'de> serde::de::Visitor<'de> for Visitor {
            type Value = KeyColumns;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a column name or a list of column names")
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> std::result::Result<KeyColumns, E> {
                crate::ident::parse_ident(v)
                    .map(|c| KeyColumns(vec![c]))
                    .map_err(E::custom)
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(
                self,
                mut seq: A,
            ) -> std::result::Result<KeyColumns, A::Error> {
                let mut out = Vec::new();
                while let Some(Column(c)) = seq.next_element()? {
                    if out.contains(&c) {
                        return Err(serde::de::Error::custom(format!(
                            "column `{c}` is listed twice in the key"
                        )));
                    }
                    out.push(c);
                }
                if out.is_empty() {
                    return Err(serde::de::Error::custom(
                        "the key lists no column; name at least one, or leave `key` out for the primary key",
                    ));
                }
                Ok(KeyColumns(out))
            }
        }
        d.deserialize_any(Visitor)
    }
}

/// humantime durations ("1 day", "500ms") for serde, without another dependency.
mod humantime_serde_compat {
    use serde::Deserialize;
    use std::time::Duration;

    pub fn deserialize<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        let text = String::deserialize(d)?;
        let d = humantime::parse_duration(&text).map_err(|e| {
            serde::de::Error::custom(format!(
                "`{text}` is not a duration ({e}); write it like `1 day`, `6h` or `500ms`"
            ))
        })?;
        if d.is_zero() {
            return Err(serde::de::Error::custom(
                "a duration of zero is not allowed here",
            ));
        }
        Ok(d)
    }
}

/// An optional humantime duration, where zero means "none".
mod humantime_serde_opt {
    use serde::Deserialize;
    use std::time::Duration;

    pub fn deserialize<'de, D: serde::Deserializer<'de>>(
        d: D,
    ) -> Result<Option<Duration>, D::Error> {
        let text = String::deserialize(d)?;
        let d = humantime::parse_duration(&text).map_err(|e| {
            serde::de::Error::custom(format!(
                "`{text}` is not a duration ({e}); write it like `10ms` or `0s`"
            ))
        })?;
        Ok(Some(d).filter(|d| !d.is_zero()))
    }
}

impl Plan {
    /// Reads and parses a plan file. Errors name the file, line and field.
    pub fn load(path: &Path) -> Result<Plan> {
        let text = std::fs::read_to_string(path).map_err(|e| Error::Plan {
            file: path.to_path_buf(),
            message: format!("cannot read the plan file: {e}"),
        })?;
        Plan::parse(path, text)
    }

    pub fn parse(path: &Path, text: String) -> Result<Plan> {
        let at = |message: String| Error::Plan {
            file: path.to_path_buf(),
            message,
        };
        check_shape(&text).map_err(at)?;
        let file: PlanFile =
            serde_yaml_ng::from_str(&text).map_err(|e| at(yaml_error(&text, &e)))?;
        check_plan_name(&file.name).map_err(|m| at(format!("name: {m}")))?;
        if file.tables.is_empty() {
            return Err(at(
                "tables: the plan lists no table; add at least one".into()
            ));
        }
        check_backfill(&file.backfill).map_err(|m| at(format!("backfill.{m}")))?;
        check_durations(&file.backfill, &file.cutover).map_err(at)?;
        if !(1..=32).contains(&file.parity.lanes) {
            return Err(at("parity.lanes: must be between 1 and 32".into()));
        }
        if file.parity.range_rows == 0 {
            return Err(at("parity.range_rows: must be at least 1".into()));
        }
        if file.cutover.attempts == 0 {
            return Err(at("cutover.attempts: must be at least 1".into()));
        }
        let budget = file.cutover.budget();
        if budget < Duration::from_millis(1) || budget >= file.cutover.lock_timeout {
            return Err(at(format!(
                "cutover.catch_up_budget: {} must be at least 1ms and below cutover.lock_timeout ({}): the application waits for the replay under the locks on top of the wait for them",
                humantime::format_duration(budget),
                humantime::format_duration(file.cutover.lock_timeout)
            )));
        }
        if file.catch_up.max_behind < Duration::from_secs(1) {
            return Err(at("catch_up.max_behind: must be at least 1s".into()));
        }
        if !(1..=16).contains(&file.catch_up.sessions) {
            return Err(at(format!(
                "catch_up.sessions: {} is out of range: use 1 to 16 (each is a connection)",
                file.catch_up.sessions
            )));
        }
        let tables = file
            .tables
            .into_iter()
            .enumerate()
            .map(|(i, t)| table_plan(t).map_err(|m| at(format!("tables[{i}].{m}"))))
            .collect::<Result<Vec<_>>>()?;
        check_distinct_names(&tables).map_err(at)?;
        let sha256 = hex(&Sha256::digest(text.as_bytes()));
        Ok(Plan {
            path: path.to_path_buf(),
            text,
            sha256,
            name: file.name,
            tables,
            backfill: file.backfill,
            parity: file.parity,
            cutover: file.cutover,
            catch_up: file.catch_up,
        })
    }
}

/// The backfill settings serde cannot check, as `field: problem; fix`.
fn check_backfill(b: &BackfillOptions) -> std::result::Result<(), String> {
    if b.batch_rows == 0 {
        return Err("batch_rows: must be at least 1".into());
    }
    if b.max_batch_rows < b.batch_rows {
        return Err(format!(
            "max_batch_rows: {} is below batch_rows ({}); raise it or lower batch_rows",
            b.max_batch_rows, b.batch_rows
        ));
    }
    if let Some(w) = b.workers {
        if !(1..=64).contains(&w) {
            return Err(format!("workers: {w} is not between 1 and 64"));
        }
    }
    if b.batch_duration < Duration::from_millis(10) || b.batch_duration > Duration::from_secs(60) {
        return Err(format!(
            "batch_duration: {} is not between 10ms and 1min; batches are meant to be short transactions",
            humantime::format_duration(b.batch_duration)
        ));
    }
    if let (Some(wait), Some(stop)) = (b.max_replica_lag, b.abort_replica_lag) {
        if stop <= wait {
            return Err("abort_replica_lag: must be above max_replica_lag (the backfill waits at the one and stops at the other)".into());
        }
    }
    if let (Some(wait), Some(stop)) = (b.max_active_backends, b.abort_active_backends) {
        if stop <= wait {
            return Err("abort_active_backends: must be above max_active_backends (the backfill waits at the one and stops at the other)".into());
        }
    }
    Ok(())
}

/// serde_yaml_ng places errors of a field's value at the enclosing mapping; ours name the
/// bad value in backticks, so find the line holding it and name its field there.
fn yaml_error(text: &str, e: &serde_yaml_ng::Error) -> String {
    let msg = e.to_string();
    let from_line = e.location().map(|l| l.line()).unwrap_or(1);
    let refined = backticked(&msg).and_then(|value| {
        text.lines()
            .enumerate()
            .skip(from_line.saturating_sub(1))
            .find_map(|(i, line)| {
                let (key, v) = line.split_once(':')?;
                let v = v.trim().trim_matches(|c| c == '"' || c == '\'');
                (v == value).then(|| {
                    (
                        i + 1,
                        key.trim().trim_start_matches("- ").trim().to_string(),
                    )
                })
            })
    });
    match refined {
        Some((line, key)) => {
            let base = msg.rsplit_once(" at line ").map(|(b, _)| b).unwrap_or(&msg);
            let base = match base.split_once(": ") {
                Some((prefix, rest)) if !prefix.contains(' ') => format!("{prefix}.{key}: {rest}"),
                _ => format!("{key}: {base}"),
            };
            format!("line {line}: {base}")
        }
        None => msg,
    }
}

fn backticked(msg: &str) -> Option<&str> {
    let start = msg.find('`')? + 1;
    let len = msg[start..].find('`')?;
    Some(&msg[start..start + len])
}

fn table_plan(t: TableFile) -> std::result::Result<TablePlan, String> {
    let source = t.source.0;

    let target = t
        .target
        .map(|n| n.0)
        .unwrap_or_else(|| source.sibling(with_suffix(&source.name, "_hs_new")));
    let retired = t
        .retired
        .map(|n| n.0)
        .unwrap_or_else(|| source.sibling(with_suffix(&source.name, "_hs_old")));
    if t.chunk_time_interval < MIN_CHUNK_INTERVAL {
        return Err(format!(
            "chunk_time_interval: {} is below one minute; chunks that narrow make a table of thousands of chunks per day (each a table with its indexes); use hours or days",
            humantime::format_duration(t.chunk_time_interval)
        ));
    }
    if target.schema != source.schema {
        return Err(format!(
            "target: must be in the source's schema `{}` (the cutover is a rename)",
            source.schema
        ));
    }
    if retired.schema != source.schema {
        return Err(format!(
            "retired: must be in the source's schema `{}` (the cutover is a rename)",
            source.schema
        ));
    }
    Ok(TablePlan {
        source,
        time_column: t.time_column.0,
        chunk_time_interval: t.chunk_time_interval,
        key: t.key.map(|k| k.0),
        target,
        retired,
        inbound_foreign_keys: t.inbound_foreign_keys,
    })
}

/// The narrowest chunk interval a plan may ask for.
const MIN_CHUNK_INTERVAL: Duration = Duration::from_secs(60);
/// A plan is a few lines; a file larger than this, or nested deeper, is not one (and a
/// YAML parser can spend minutes on a deeply nested one).
const MAX_PLAN_BYTES: usize = 256 * 1024;
const MAX_PLAN_DEPTH: usize = 32;

/// Refuses files too large or too deeply nested to be plans, before parsing them.
fn check_shape(text: &str) -> std::result::Result<(), String> {
    if text.len() > MAX_PLAN_BYTES {
        return Err(format!(
            "the file has {} bytes, more than a plan's {MAX_PLAN_BYTES}; is it the right file?",
            text.len()
        ));
    }
    let (mut depth, mut deepest) = (0usize, 0usize);
    for c in text.chars() {
        match c {
            '[' | '{' => {
                depth += 1;
                deepest = deepest.max(depth);
            }
            ']' | '}' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    let indent = text
        .lines()
        .map(|l| l.len() - l.trim_start().len())
        .max()
        .unwrap_or(0);
    if deepest > MAX_PLAN_DEPTH || indent > MAX_PLAN_DEPTH * 4 {
        return Err(format!(
            "the file nests deeper than a plan ever does (more than {MAX_PLAN_DEPTH} levels); is it the right file?"
        ));
    }
    Ok(())
}

/// Bounds on durations, so that no setting can leave a plan stuck (a lock timeout of
/// years) or run wild: `field: problem`.
fn check_durations(b: &BackfillOptions, c: &CutoverOptions) -> std::result::Result<(), String> {
    let bounds: [(&str, Option<Duration>, Duration); 6] = [
        (
            "backfill.lock_timeout",
            Some(b.lock_timeout),
            Duration::from_secs(600),
        ),
        ("backfill.pause", b.pause, Duration::from_secs(60)),
        (
            "cutover.lock_timeout",
            Some(c.lock_timeout),
            Duration::from_secs(60),
        ),
        ("cutover.backoff", Some(c.backoff), Duration::from_secs(600)),
        (
            "backfill.max_replica_lag",
            b.max_replica_lag,
            Duration::from_secs(86_400),
        ),
        (
            "backfill.abort_replica_lag",
            b.abort_replica_lag,
            Duration::from_secs(86_400),
        ),
    ];
    for (field, value, most) in bounds {
        if let Some(v) = value.filter(|v| *v > most) {
            return Err(format!(
                "{field}: {} is more than the {} allowed",
                humantime::format_duration(v),
                humantime::format_duration(most)
            ));
        }
    }
    if c.attempts > 1000 {
        return Err(format!(
            "cutover.attempts: {} is more than 1000",
            c.attempts
        ));
    }
    Ok(())
}

fn check_plan_name(name: &str) -> std::result::Result<(), String> {
    let ok = !name.is_empty()
        && name.len() <= 63
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.');
    if ok {
        Ok(())
    } else {
        Err(format!(
            "`{name}` is not a plan name: use 1-63 letters, digits, `-`, `_` or `.`"
        ))
    }
}

fn check_distinct_names(tables: &[TablePlan]) -> std::result::Result<(), String> {
    let mut seen = std::collections::HashMap::new();
    for (i, t) in tables.iter().enumerate() {
        for (field, name) in [
            ("source", &t.source),
            ("target", &t.target),
            ("retired", &t.retired),
        ] {
            if let Some((j, other)) = seen.insert(name.clone(), (i, field)) {
                return Err(format!(
                    "tables[{i}].{field}: `{name}` is already used as tables[{j}].{other}; every source, target and retired name must be distinct"
                ));
            }
        }
    }
    Ok(())
}

pub use crate::ident::hex;

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Plan> {
        Plan::parse(Path::new("p.yaml"), text.to_string())
    }

    const GOOD: &str = "name: m\ntables:\n  - source: public.metrics\n    time_column: ts\n    chunk_time_interval: 1 day\n";

    #[test]
    fn durations_that_make_no_sense_are_refused() {
        let e = parse(&GOOD.replace("1 day", "1ns"))
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("chunk_time_interval") && e.contains("below one minute"),
            "{e}"
        );
        let e = parse(&format!("{GOOD}cutover:\n  lock_timeout: 100 years\n"))
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("cutover.lock_timeout") && e.contains("more than"),
            "{e}"
        );
        let e = parse(&format!("{GOOD}backfill:\n  lock_timeout: 2h\n"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("backfill.lock_timeout"), "{e}");
        assert!(parse(&format!("{GOOD}cutover:\n  lock_timeout: 30s\n")).is_ok());
    }

    #[test]
    fn catch_up_settings_have_sensible_defaults_and_bounds() {
        let p = parse(GOOD).unwrap();
        assert!(p.catch_up.during_backfill);
        assert_eq!(p.catch_up.max_log_size, LogSize::OfSource(0.25));
        assert_eq!(p.cutover.budget(), Duration::from_millis(150));
        let short = parse(&format!("{GOOD}cutover:\n  lock_timeout: 100ms\n")).unwrap();
        assert_eq!(short.cutover.budget(), Duration::from_millis(50));
        let e = parse(&format!(
            "{GOOD}cutover:\n  lock_timeout: 1s\n  catch_up_budget: 2s\n"
        ))
        .unwrap_err()
        .to_string();
        assert!(e.contains("cutover.catch_up_budget"), "{e}");
        let p = parse(&format!(
            "{GOOD}catch_up:\n  during_backfill: false\n  max_behind: 30s\n  max_log_size: 2GB\n"
        ))
        .unwrap();
        assert!(!p.catch_up.during_backfill);
        assert_eq!(p.catch_up.sessions, 3);
        assert!(parse(&format!("{GOOD}catch_up:\n  sessions: 0\n")).is_err());
        assert_eq!(
            parse(&format!("{GOOD}catch_up:\n  sessions: 4\n"))
                .unwrap()
                .catch_up
                .sessions,
            4
        );
        assert_eq!(p.catch_up.max_behind, Duration::from_secs(30));
        assert_eq!(p.catch_up.max_log_size, LogSize::Bytes(2 << 30));
        assert!(parse(&format!("{GOOD}catch_up:\n  max_log_size: lots\n")).is_err());
        assert_eq!(LogSize::parse("10%").unwrap(), LogSize::OfSource(0.1));
        assert_eq!(LogSize::parse("500MB").unwrap(), LogSize::Bytes(500 << 20));
        assert!(LogSize::parse("10kB").is_err(), "below 1MB");
        assert_eq!(LogSize::OfSource(0.25).bytes(1 << 40), 1 << 38);
        assert_eq!(LogSize::OfSource(0.25).bytes(1000), 64 << 20);
    }

    #[test]
    fn parity_lanes_default_to_two_and_are_bounded() {
        assert_eq!(parse(GOOD).unwrap().parity.lanes, 2);
        assert_eq!(
            parse(&format!("{GOOD}parity:\n  lanes: 4\n"))
                .unwrap()
                .parity
                .lanes,
            4
        );
        for bad in ["0", "33"] {
            let e = parse(&format!("{GOOD}parity:\n  lanes: {bad}\n"))
                .unwrap_err()
                .to_string();
            assert!(e.contains("parity.lanes: must be between 1 and 32"), "{e}");
        }
    }

    #[test]
    fn files_too_large_or_too_deep_are_refused_before_parsing() {
        let deep = format!("{GOOD}x: {}{}\n", "[".repeat(200_000), "]".repeat(200_000));
        let started = std::time::Instant::now();
        let e = parse(&deep).unwrap_err().to_string();
        assert!(started.elapsed() < std::time::Duration::from_secs(1));
        assert!(
            e.contains("more than a plan's") || e.contains("nests deeper"),
            "{e}"
        );
        let nested = format!("{GOOD}x: {}{}\n", "[".repeat(100), "]".repeat(100));
        let e = parse(&nested).unwrap_err().to_string();
        assert!(e.contains("nests deeper"), "{e}");
    }

    #[test]
    fn parses_a_minimal_plan_with_defaults() {
        let p = parse(GOOD).unwrap();
        assert_eq!(
            p.tables[0].target,
            QualifiedName::new("public", "metrics_hs_new")
        );
        assert_eq!(
            p.tables[0].retired,
            QualifiedName::new("public", "metrics_hs_old")
        );
        assert_eq!(p.tables[0].chunk_time_interval, Duration::from_secs(86_400));
        assert_eq!(p.backfill.batch_rows, 10_000);
        assert_eq!(p.sha256.len(), 64);
    }

    #[test]
    fn unknown_keys_name_file_line_and_field() {
        let e = parse(&GOOD.replace("time_column", "time_col"))
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("p.yaml: "), "{e}");
        assert!(e.contains("time_col"), "{e}");
        assert!(e.contains("line 4"), "{e}");
    }

    #[test]
    fn bad_durations_and_names_are_refused() {
        let e = parse(&GOOD.replace("1 day", "one day"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("not a duration") && e.contains("line 5"), "{e}");
        let e = parse(&GOOD.replace("public.metrics", "a.b.c"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("not a table name"), "{e}");
    }

    #[test]
    fn windows_parse_and_wrap_midnight() {
        let w = Window::parse("23:00-01:30 Europe/Paris").unwrap();
        assert_eq!(
            (w.start, w.end, w.time_zone.as_str()),
            (23 * 60, 90, "Europe/Paris")
        );
        assert!(w.contains(23 * 60 + 5) && w.contains(10) && !w.contains(2 * 60));
        assert_eq!(w.opens_in(22 * 60), 60);
        assert!(Window::parse("1am-3am").is_err());
        assert_eq!(Window::parse("01:00-03:00").unwrap().time_zone, "UTC");
    }

    #[test]
    fn column_names_follow_sql() {
        let p = parse(&GOOD.replace("time_column: ts", "time_column: TS")).unwrap();
        assert_eq!(p.tables[0].time_column, "ts");
        let p = parse(&GOOD.replace("time_column: ts", "time_column: '\"Ts\"'")).unwrap();
        assert_eq!(p.tables[0].time_column, "Ts");
    }

    #[test]
    fn keys_are_a_column_or_a_list() {
        let with = |k: &str| parse(&format!("{GOOD}    key: {k}\n"));
        assert_eq!(
            with("ID").unwrap().tables[0].key,
            Some(vec!["id".to_string()])
        );
        assert_eq!(
            with("[trace_id, '\"SpanId\"']").unwrap().tables[0].key,
            Some(vec!["trace_id".to_string(), "SpanId".to_string()])
        );
        let e = with("[]").unwrap_err().to_string();
        assert!(e.contains("lists no column"), "{e}");
        let e = with("[a, a]").unwrap_err().to_string();
        assert!(e.contains("twice"), "{e}");
    }

    #[test]
    fn duplicate_names_are_refused() {
        let text = format!(
            "{GOOD}  - source: metrics\n    time_column: ts\n    chunk_time_interval: 1h\n"
        );
        let e = parse(&text).unwrap_err().to_string();
        assert!(e.contains("tables[1].source"), "{e}");
    }
}
