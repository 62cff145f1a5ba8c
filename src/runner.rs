//! Running statements against the application's tables: a phase's statements and the
//! journal's move to the next phase in one transaction, under the lock policy (bounded
//! waits, retries with backoff, the sessions in the way named), inside the maintenance
//! window where one is set. `apply`, `rollback` and `remove` run their transactions here.

use futures_util::future::LocalBoxFuture;
use tokio_postgres::Client;

use crate::error::{Context, Error, Result};
use crate::journal;
use crate::model::Job;
use crate::phase::Phase;
use crate::plan::Plan;
use crate::progress::Cancel;
use crate::retry::{conflict_kind, Policy, Retry};
use crate::stmt::{self, lock_holders, LockPolicy, SqlLog, Stmt};

/// Refuses cutover outside the plan's maintenance window, saying when it opens. The
/// database's clock decides, in the window's time zone.
pub async fn check_window(client: &Client, plan: &Plan) -> Result<()> {
    let Some(w) = &plan.cutover.window else {
        return Ok(());
    };
    let row = client
        .query_one(
            "SELECT (extract(hour FROM t) * 60 + extract(minute FROM t))::int, to_char(t, 'HH24:MI')
             FROM (SELECT now() AT TIME ZONE $1 AS t) AS s",
            &[&w.time_zone],
        )
        .await
        .context("reading the database's clock for the maintenance window")?;
    let (minute, now): (i32, String) = (row.get(0), row.get(1));
    if w.contains(minute as u32) {
        return Ok(());
    }
    let wait = w.opens_in(minute as u32);
    Err(Error::RetryLater {
        problem: format!(
            "cutover is outside the plan's window {} (it is {now} {} now); the window opens in {}h{:02}m. Everything before cutover is done",
            w.text,
            w.time_zone,
            wait / 60,
            wait % 60,
        ),
        fix: format!(
            "run `hyperswap plan apply {}` again then (`--until parity` stops just before cutover)",
            plan.path.display()
        ),
    })
}

/// Runs a phase's statements and the journal's move to its next phase in one
/// transaction, waiting at most the policy's lock_timeout for locks each attempt and
/// retrying with jittered backoff (see [`crate::retry`]); Ctrl-C stops between attempts
/// and while waiting for the next.
#[derive(Clone, Copy)]
pub struct PhaseTx<'a> {
    pub log: &'a SqlLog,
    pub lock: &'a LockPolicy,
    pub jobs: &'a [Job],
    pub plan: &'a str,
    pub cancel: &'a Cancel,
    /// The plan whose maintenance window every attempt must fall in (cutover only).
    pub window: Option<&'a Plan>,
}

/// What runs before each attempt of a phase's transaction, on its connection (the
/// cutover's catch-up: what the locks would hold the application for is replayed
/// first).
pub trait BeforeAttempt {
    fn before<'a>(&'a mut self, client: &'a Client, attempt: u32)
        -> LocalBoxFuture<'a, Result<()>>;
}

/// Nothing before an attempt.
struct Nothing;

impl BeforeAttempt for Nothing {
    fn before<'a>(&'a mut self, _: &'a Client, _: u32) -> LocalBoxFuture<'a, Result<()>> {
        Box::pin(async { Ok(()) })
    }
}

impl PhaseTx<'_> {
    /// `reverse_sql` is stored with the phase (the cutover records its rollback).
    pub async fn run(
        &self,
        client: &mut Client,
        stmts: &[Stmt],
        to: Phase,
        reverse_sql: Option<&str>,
    ) -> Result<()> {
        self.run_with(client, stmts, to, reverse_sql, &mut Nothing)
            .await
    }

    /// [`PhaseTx::run`], with `before` run before each attempt.
    pub async fn run_with(
        &self,
        client: &mut Client,
        stmts: &[Stmt],
        to: Phase,
        reverse_sql: Option<&str>,
        before: &mut dyn BeforeAttempt,
    ) -> Result<()> {
        let (lock, plan) = (self.lock, self.plan);
        // The tables and the sequences they own: a session that called nextval() on one
        // holds a lock the cutover's ALTER SEQUENCE waits for.
        let tables: Vec<String> = self
            .jobs
            .iter()
            .flat_map(|j| {
                [j.source.quoted(), j.target.quoted(), j.retired.quoted()]
                    .into_iter()
                    .chain(j.table.sequences.iter().map(|s| s.name.quoted()))
            })
            .collect();
        if lock.attempts == 0 {
            // No attempt allowed (a plan has at least one; a library caller may not).
            return Err(self.gave_up(to));
        }
        let mut retry = Retry::new(Policy::locks(lock));
        loop {
            let attempt = retry.failed() + 1;
            if self.cancel.is_cancelled() {
                return Err(Error::Interrupted);
            }
            // What runs first may take a while (the cutover's drain): the window is
            // checked after it, right before the locks.
            before.before(client, attempt).await?;
            if let Some(plan) = self.window {
                check_window(client, plan).await?;
            }
            // Say who is in the way before queueing behind them.
            let holders = lock_holders(client, &tables, std::time::Duration::from_secs(1))
                .await
                .unwrap_or_default();
            if !holders.is_empty() {
                tracing::info!(
                    "phase {to}, attempt {attempt}: sessions holding locks on the tables: {}",
                    holders.join("; ")
                );
            }
            match try_tx(client, self.log, stmts, plan, to, reverse_sql).await {
                Ok(()) => return Ok(()),
                Err(e) if retry.is_retryable(&e) => {
                    // Every failed attempt is reported, the last one too.
                    self.report(client, &tables, to, attempt, &e).await?;
                    let overran = over_budget(&e);
                    // The retry says nothing more; when the attempts are spent, the
                    // lock error gives way to one that says what to do.
                    retry
                        .after(e, self.cancel, |_| None)
                        .await
                        .map_err(|e| match e {
                            Error::Interrupted => e,
                            _ if overran => self.overran(to),
                            _ => self.gave_up(to),
                        })?;
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// A failed attempt: who held the locks, in the log and the journal's events.
    async fn report(
        &self,
        client: &Client,
        tables: &[String],
        to: Phase,
        attempt: u32,
        e: &Error,
    ) -> Result<()> {
        let lock = self.lock;
        let holders = lock_holders(client, tables, std::time::Duration::ZERO)
            .await
            .unwrap_or_default();
        let who = if holders.is_empty() {
            "no holder seen any more".to_string()
        } else {
            holders.join("; ")
        };
        if over_budget(e) {
            tracing::warn!(
                "phase {to}: attempt {attempt} of {} ran over cutover.catch_up_budget replaying the change log under its locks, and gave them back",
                lock.attempts
            );
            return journal::event(
                client,
                self.plan,
                to,
                &format!("attempt {attempt}: the replay under the locks ran over its budget"),
            )
            .await;
        }
        if e.sqlstate() == Some("40P01") {
            tracing::warn!(
                "phase {to}: attempt {attempt} of {} deadlocked with another session and was rolled back; sessions holding locks: {who}",
                lock.attempts
            );
        } else {
            tracing::warn!(
                "phase {to}: attempt {attempt} of {} could not take its locks within {:?}; blocked by: {who}",
                lock.attempts,
                lock.lock_timeout
            );
        }
        journal::event(
            client,
            self.plan,
            to,
            &format!("attempt {attempt} {}: {who}", conflict_kind(e)),
        )
        .await
    }

    /// The last attempt took its locks, but its replay under them ran over its budget.
    fn overran(&self, to: Phase) -> Error {
        Error::RetryLater {
            problem: format!(
                "phase {to}: the last of {} attempts took its locks but could not replay what the application had written since the drain before it within cutover.catch_up_budget, and gave the locks back; nothing was changed, the source is still live",
                self.lock.attempts
            ),
            fix: "run `hyperswap plan apply` again when the application writes less (`hyperswap status` shows the change log's rates); a plan with more cutover.attempts or a larger cutover.catch_up_budget holds the application longer".into(),
        }
    }

    /// Every attempt met a lock conflict.
    fn gave_up(&self, to: Phase) -> Error {
        let lock = self.lock;
        Error::RetryLater {
            problem: format!(
                "could not take the locks for phase {to} in {} attempts of {:?} each; nothing was changed, the source is still live",
                lock.attempts, lock.lock_timeout
            ),
            fix: "end or wait out the blocking transactions named above (see pg_stat_activity), then run `hyperswap plan apply` again".into(),
        }
    }
}

/// A statement timeout of the replay under the cutover's locks (not of its LOCK, which
/// waits for the application's locks under the same timeout).
fn over_budget(e: &Error) -> bool {
    e.sqlstate() == Some("57014") && !e.to_string().contains("running: LOCK TABLE")
}

async fn try_tx(
    client: &mut Client,
    log: &SqlLog,
    stmts: &[Stmt],
    plan: &str,
    to: Phase,
    reverse_sql: Option<&str>,
) -> Result<()> {
    let ctx = || format!("entering phase {to}");
    let tx = client.transaction().await.with_context(ctx)?;
    for s in stmts {
        stmt::exec(&tx, log, s).await?;
    }
    journal::set_phase(&tx, plan, to).await?;
    if let Some(sql) = reverse_sql {
        journal::record_cutover(&tx, plan, sql).await?;
    }
    tx.commit().await.with_context(ctx)
}
