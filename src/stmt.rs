//! Statements as hyperswap runs them: one type for what `plan show` prints and what
//! `plan apply` executes, an optional audit log of every statement run against the
//! user's tables (`--sql-log`), and transactions that take locks politely.

use std::fs::File;
use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio_postgres::{Client, GenericClient};

use crate::error::{Context, Error, Result};

/// Settings every session of the tool runs with: the text form of values (key bounds
/// kept in the journal, parity's row text) must not depend on the user's defaults.
/// `hyperswap.ddl` lets the tool's own ALTER TABLEs past the guard (sql/ddl_guard.sql).
/// `search_path` is pinned so that no function or operator another role creates (a
/// `public.unnest(smallint[])`, a better match than pg_catalog's for the catalog's
/// queries) runs with the tool's rights; the catalog then prints every name outside
/// pg_catalog schema-qualified, and the tool compares keys with `OPERATOR(schema.op)`.
/// Transactions are READ COMMITTED unless the tool asks otherwise (parity's ranges): the
/// cutover's replay of the change log must see every entry committed while its locks
/// were waited for, which a role's `default_transaction_isolation = 'repeatable read'`
/// would hide from it.
pub const SESSION_SETTINGS: &str = "SET search_path = pg_catalog, pg_temp; \
SET DateStyle = 'ISO, YMD'; SET IntervalStyle = 'postgres'; \
SET TimeZone = 'UTC'; SET extra_float_digits = 1; SET bytea_output = 'hex'; SET hyperswap.ddl = 'on'; \
SET default_transaction_isolation = 'read committed'";

/// One SQL statement, with an optional note for the reader of `plan show`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stmt {
    pub sql: String,
    /// Why the statement differs from the source's definition, or what it is for.
    pub note: Option<String>,
}

impl Stmt {
    pub fn new(sql: impl Into<String>) -> Self {
        Stmt {
            sql: sql.into(),
            note: None,
        }
    }

    pub fn noted(sql: impl Into<String>, note: impl Into<String>) -> Self {
        Stmt {
            sql: sql.into(),
            note: Some(note.into()),
        }
    }

    /// The statement as printed: note lines as comments, then the SQL and `;`.
    pub fn render(&self) -> String {
        let mut out = String::new();
        if let Some(note) = &self.note {
            for line in note.lines() {
                out.push_str("-- ");
                out.push_str(line);
                out.push('\n');
            }
        }
        out.push_str(&self.sql);
        out.push_str(";\n");
        out
    }
}

/// Where executed statements are appended, when the user asked for it.
#[derive(Clone, Default)]
pub struct SqlLog(Option<Arc<Mutex<File>>>);

impl SqlLog {
    pub fn to_file(path: &std::path::Path) -> Result<Self> {
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .map_err(|e| {
                Error::invalid(
                    format!("cannot open the SQL log {}: {e}", path.display()),
                    "pass a writable path to --sql-log",
                )
            })?;
        Ok(SqlLog(Some(Arc::new(Mutex::new(file)))))
    }

    /// Appends `sql;` and a blank line (the format `plan show` uses, without notes).
    pub fn record(&self, sql: &str) {
        tracing::debug!("running: {}", first_line(sql));
        if let Some(file) = &self.0 {
            let mut f = file.lock().unwrap_or_else(|p| p.into_inner());
            let _ = writeln!(f, "{sql};\n");
        }
    }
}

/// Runs `stmt`, recording it in the log first.
pub async fn exec(client: &impl GenericClient, log: &SqlLog, stmt: &Stmt) -> Result<()> {
    log.record(&stmt.sql);
    client
        .batch_execute(&stmt.sql)
        .await
        .with_context(|| format!("running: {}", first_line(&stmt.sql)))
}

/// How a DDL transaction waits for its locks: never longer than `lock_timeout` in the
/// queue (where it would block the application behind it), retried with backoff.
#[derive(Debug, Clone)]
pub struct LockPolicy {
    pub lock_timeout: Duration,
    pub attempts: u32,
    pub backoff: Duration,
}

/// `SET LOCAL lock_timeout`, the first statement of every locking transaction, with an
/// `idle_in_transaction_session_timeout`: should hyperswap freeze (a paused VM, a lost
/// network) while it holds the application's locks, the server ends the transaction
/// and frees them instead of keeping the application waiting.
pub fn set_lock_timeout(timeout: Duration) -> Stmt {
    let ms = timeout.as_millis().max(1);
    Stmt::noted(
        format!(
            "SET LOCAL lock_timeout = '{ms}ms'; SET LOCAL idle_in_transaction_session_timeout = '{}ms'",
            idle_limit(timeout).as_millis()
        ),
        "a frozen hyperswap holding locks is cut off by the server after the idle limit",
    )
}

/// How long a locking transaction of the tool may sit idle: twice its lock timeout, at
/// least five seconds (the tool never waits between statements of one).
pub fn idle_limit(lock_timeout: Duration) -> Duration {
    (lock_timeout * 2).max(Duration::from_secs(5))
}

/// Sessions holding locks on `tables` (other than ours): what a DBA needs to find the
/// transaction in the way.
/// `min_age`: only transactions open at least this long, or idle in one (before an
/// attempt, the application's own short writes are not worth naming).
pub async fn lock_holders(
    client: &Client,
    tables: &[String],
    min_age: Duration,
) -> Result<Vec<String>> {
    let min_age = min_age.as_secs_f64();
    let rows = client
        .query(
            "SELECT DISTINCT format('pid %s (%s, %s, transaction open %s): %s', a.pid, a.usename,
                    coalesce(a.state, '?'),
                    coalesce(date_trunc('second', now() - a.xact_start)::text, '-'),
                    left(regexp_replace(a.query, '\\s+', ' ', 'g'), 120))
             FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid
             WHERE l.granted AND l.pid <> pg_backend_pid()
               AND l.relation IN (SELECT to_regclass(t) FROM unnest($1::text[]) AS t)
               AND (a.state LIKE 'idle in transaction%'
                    OR now() - a.xact_start >= make_interval(secs => $2::float8))",
            &[&tables, &min_age],
        )
        .await
        .context("looking for sessions holding locks on the tables")?;
    Ok(rows.iter().map(|r| r.get(0)).collect())
}

pub fn first_line(sql: &str) -> String {
    let line = sql
        .lines()
        .find(|l| !l.trim().is_empty())
        .unwrap_or("")
        .trim();
    if line.len() > 100 {
        let mut cut = 100;
        while !line.is_char_boundary(cut) {
            cut -= 1;
        }
        format!("{}...", &line[..cut])
    } else {
        line.to_string()
    }
}
