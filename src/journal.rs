//! The journal: hyperswap's own schema in the migrated database. It records each plan's
//! phase, its frozen text and sha256, per-table backfill progress and an event log, and
//! guards a plan with a session advisory lock so only one orchestrator runs it.

use sha2::{Digest, Sha256};
use tokio_postgres::{Client, GenericClient};

use crate::error::{Context, Error, Result};
use crate::ident::quote_ident;
use crate::model::{Job, TOOL_SCHEMA};
use crate::phase::Phase;
use crate::plan::Plan;

/// First key of every hyperswap advisory lock: "hyps" in ASCII.
const LOCK_CLASS: i32 = 0x6879_7073;

/// The journal's record of one plan.
#[derive(Debug, Clone)]
pub struct PlanRecord {
    pub name: String,
    pub sha256: String,
    pub text: String,
    pub phase: Phase,
    pub reverse_sql: Option<String>,
}

/// One backfill range of one table.
#[derive(Debug, Clone)]
pub struct RangeRecord {
    pub ord: i32,
    pub range_no: i32,
    /// Key values as text, one per key column.
    pub lo: Option<Vec<String>>,
    pub hi: Vec<String>,
    pub cursor: Option<Vec<String>>,
    pub rows_copied: i64,
    pub done: bool,
}

/// Whether the journal schema exists in this database.
pub async fn exists(client: &impl GenericClient) -> Result<bool> {
    // From the catalogs: to_regclass fails outright on a schema the role may not use.
    let row = client
        .query_one(
            "SELECT EXISTS (SELECT FROM pg_catalog.pg_class c
                            JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
                            WHERE n.nspname = $1 AND c.relname = 'plans')",
            &[&TOOL_SCHEMA],
        )
        .await
        .context("looking for the hyperswap journal")?;
    Ok(row.get(0))
}

/// A journal this role may not read (another role created it): says whose it is and
/// the statement that lets this role in; other errors pass through.
async fn unreadable(client: &impl GenericClient, e: Error) -> Error {
    if e.sqlstate() != Some("42501") {
        return e;
    }
    let Ok(row) = client
        .query_one(
            "SELECT pg_get_userbyid(n.nspowner)::text, current_user::text, r.rolsuper
             FROM pg_catalog.pg_namespace n JOIN pg_catalog.pg_roles r ON r.oid = n.nspowner
             WHERE n.nspname = $1",
            &[&TOOL_SCHEMA],
        )
        .await
    else {
        return e;
    };
    let (owner, role) = (quote_ident(row.get(0)), quote_ident(row.get(1)));
    let fix = if row.get(2) {
        format!("run hyperswap as {owner} too, or finish the journal's plans first (the last one drops it)")
    } else {
        format!("run hyperswap as {owner} or a member of it: GRANT {owner} TO {role};")
    };
    Error::invalid(
        format!("{e}\n  the journal (schema {TOOL_SCHEMA}) belongs to {owner}, and {role} may not read it"),
        format!("{fix} (the README's Privileges section lists what each command needs)"),
    )
}

/// Creates the journal schema if missing (serialised, so two first runs cannot race).
pub async fn ensure(client: &mut Client) -> Result<()> {
    let tx = client
        .transaction()
        .await
        .context("creating the hyperswap journal")?;
    tx.batch_execute("SET LOCAL client_min_messages = warning")
        .await
        .context("creating the hyperswap journal")?;
    tx.execute("SELECT pg_advisory_xact_lock($1, 0)", &[&LOCK_CLASS])
        .await
        .context("creating the hyperswap journal")?;
    create_schema(&tx).await?;
    check_owner(&tx).await?;
    tx.batch_execute(include_str!("../sql/journal.sql"))
        .await
        .context("creating the hyperswap journal")?;
    tx.batch_execute(include_str!("../sql/ddl_guard.sql"))
        .await
        .context("installing the guard against ALTER TABLE of tables being moved")?;
    tx.commit().await.context("creating the hyperswap journal")
}

/// Creates the journal's schema when it is missing. Only then does the role need CREATE
/// on the database: a schema a DBA created for it (`CREATE SCHEMA hyperswap
/// AUTHORIZATION <role>`) is used as it is.
async fn create_schema(tx: &impl GenericClient) -> Result<()> {
    let ctx = "creating the hyperswap journal's schema";
    let exists: bool = tx
        .query_one(
            "SELECT EXISTS (SELECT FROM pg_catalog.pg_namespace WHERE nspname = $1)",
            &[&TOOL_SCHEMA],
        )
        .await
        .context(ctx)?
        .get(0);
    if !exists {
        let sql = format!("CREATE SCHEMA {}", quote_ident(TOOL_SCHEMA));
        tx.batch_execute(&sql).await.context(ctx)?;
    }
    Ok(())
}

/// How long a plan's lock is waited for before its holder is reported as another run. A
/// run that has just ended keeps it until its server session exits (idle: a moment);
/// one whose client was killed mid-statement keeps it until that statement ends
/// (active: a live run may look the same, so the wait is bounded).
const IDLE_GRACE: std::time::Duration = std::time::Duration::from_secs(2);
const ACTIVE_GRACE: std::time::Duration = std::time::Duration::from_secs(30);

/// Refuses, when running as a superuser, a journal a role that is not one could have
/// written: its schema and tables must belong to this role or to a superuser. The
/// journal holds SQL the tool runs later (rollback's reverse path) and decides what the
/// tool trusts; a schema a less trusted role created beforehand is not used.
pub async fn check_owner(client: &impl GenericClient) -> Result<()> {
    let rows = client
        .query(
            "SELECT what, pg_catalog.pg_get_userbyid(owner)::pg_catalog.text, CURRENT_USER::pg_catalog.text,
                    me.rolsuper, o.rolsuper
             FROM (SELECT 'schema ' OPERATOR(pg_catalog.||) pg_catalog.quote_ident(n.nspname) AS what, n.nspowner AS owner
                   FROM pg_catalog.pg_namespace n WHERE n.nspname OPERATOR(pg_catalog.=) $1
                   UNION ALL
                   SELECT 'table ' OPERATOR(pg_catalog.||) c.oid::pg_catalog.regclass::pg_catalog.text, c.relowner
                   FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid OPERATOR(pg_catalog.=) c.relnamespace
                   WHERE n.nspname OPERATOR(pg_catalog.=) $1 AND c.relkind OPERATOR(pg_catalog.=) ANY ('{r,p}')) AS objects
             JOIN pg_catalog.pg_roles o ON o.oid OPERATOR(pg_catalog.=) objects.owner
             CROSS JOIN (SELECT rolsuper FROM pg_catalog.pg_roles WHERE rolname OPERATOR(pg_catalog.=) CURRENT_USER) AS me",
            &[&TOOL_SCHEMA],
        )
        .await
        .context("checking who owns the hyperswap journal")?;
    for r in rows {
        let (what, owner, me): (String, String, String) = (r.get(0), r.get(1), r.get(2));
        let (me_super, owner_super): (bool, bool) = (r.get(3), r.get(4));
        // A role that is not a superuser can be led no further than its own rights;
        // what it needs of the journal is checked with the other privileges.
        let trusted = owner == me || !me_super || owner_super;
        if !trusted {
            return Err(Error::invalid(
                format!(
                    "the journal's {what} belongs to {}, which is not {} (the role running hyperswap){}: a journal another role can write is not trusted (it holds SQL that rollback runs)",
                    quote_ident(&owner),
                    quote_ident(&me),
                    " nor a superuser"
                ),
                format!(
                    "if {0} and what it wrote are trusted, hand the journal over: ALTER SCHEMA {1} OWNER TO {2}; and each of its tables (ALTER TABLE ... OWNER TO {2};); otherwise inspect and drop the schema {1}",
                    quote_ident(&owner),
                    quote_ident(TOOL_SCHEMA),
                    quote_ident(&me)
                ),
            ));
        }
    }
    Ok(())
}

/// Takes this plan's session advisory lock. A holder is waited for a bounded time
/// (saying so), then named in the error.
pub async fn lock_plan(client: &Client, plan: &str) -> Result<()> {
    let key = plan_lock_key(plan);
    let started = std::time::Instant::now();
    let mut said = false;
    loop {
        let got: bool = client
            .query_one(
                "SELECT pg_catalog.pg_try_advisory_lock($1, $2)",
                &[&LOCK_CLASS, &key],
            )
            .await
            .context("taking the plan's advisory lock")?
            .get(0);
        if got {
            return Ok(());
        }
        let holder = lock_holder(client, key).await?;
        let grace = match &holder {
            Some((_, true)) => ACTIVE_GRACE,
            _ => IDLE_GRACE,
        };
        if started.elapsed() >= grace {
            return Err(Error::Busy {
                plan: plan.to_string(),
                holder: holder
                    .map(|(h, _)| h)
                    .unwrap_or_else(|| "a session that has just ended; try again".into()),
            });
        }
        if let Some((holder, true)) = &holder {
            if !said {
                tracing::info!(
                    "plan `{plan}` is held by {holder}, which is running a statement; waiting up to {}s for it (a run whose client was stopped keeps the plan until that statement ends)",
                    ACTIVE_GRACE.as_secs()
                );
                said = true;
            }
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
}

/// The session holding the plan's advisory lock `key`, described for a DBA, and whether
/// it is running a statement.
async fn lock_holder(client: &Client, key: i32) -> Result<Option<(String, bool)>> {
    let row = client
        .query_opt(
            "SELECT format('pid %s, %s, user %s from %s, running since %s',
                           a.pid, coalesce(nullif(a.application_name, ''), 'no application_name'),
                           a.usename, coalesce(host(a.client_addr), 'local socket'),
                           date_trunc('second', a.backend_start)),
                    a.state = 'active'
             FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid
             WHERE l.locktype = 'advisory' AND l.granted AND l.objsubid = 2
               AND l.classid::bigint = $1 AND l.objid::bigint = $2
             LIMIT 1",
            &[&(LOCK_CLASS as u32 as i64), &(key as u32 as i64)],
        )
        .await
        .context("looking up the holder of the plan's advisory lock")?;
    Ok(row.map(|r| (r.get(0), r.get(1))))
}

fn plan_lock_key(plan: &str) -> i32 {
    let d = Sha256::digest(plan.as_bytes());
    i32::from_be_bytes([d[0], d[1], d[2], d[3]])
}

/// The plan's record, or `None` when it never started here.
pub async fn load(client: &impl GenericClient, plan: &str) -> Result<Option<PlanRecord>> {
    if !exists(client).await? {
        return Ok(None);
    }
    check_owner(client).await?;
    let row = match client
        .query_opt(
            "SELECT name, plan_sha256, plan_text, phase, reverse_sql FROM hyperswap.plans WHERE name = $1",
            &[&plan],
        )
        .await
        .context("reading the journal")
    {
        Ok(row) => row,
        Err(e) => return Err(unreadable(client, e).await),
    };
    row.map(|r| {
        Ok(PlanRecord {
            name: r.get(0),
            sha256: r.get(1),
            text: r.get(2),
            phase: r.get::<_, String>(3).parse().map_err(Error::WrongPhase)?,
            reverse_sql: r.get(4),
        })
    })
    .transpose()
}

/// All plans in this database, for `status` without a plan file.
pub async fn plan_names(client: &impl GenericClient) -> Result<Vec<String>> {
    if !exists(client).await? {
        return Ok(vec![]);
    }
    let rows = client
        .query(
            "SELECT name FROM hyperswap.plans ORDER BY started_at, name",
            &[],
        )
        .await
        .context("reading the journal")?;
    Ok(rows.iter().map(|r| r.get(0)).collect())
}

/// Records a new plan and its tables, in phase `planned`.
pub async fn create(client: &mut Client, plan: &Plan, jobs: &[Job]) -> Result<()> {
    let ctx = "recording the plan in the journal";
    let tx = client.transaction().await.context(ctx)?;
    tx.execute(
        "INSERT INTO hyperswap.plans (name, plan_sha256, plan_text, phase) VALUES ($1, $2, $3, $4)",
        &[
            &plan.name,
            &plan.sha256,
            &plan.text,
            &Phase::Planned.as_str(),
        ],
    )
    .await
    .context(ctx)?;
    for (ord, job) in jobs.iter().enumerate() {
        let inserted = tx.execute(
            "INSERT INTO hyperswap.tables (plan_name, ord, source, target, retired, key_column, time_column)
             VALUES ($1, $2, $3, $4, $5, $6, $7)",
            &[
                &plan.name,
                &(ord as i32),
                &job.source.to_string(),
                &job.target.to_string(),
                &job.retired.to_string(),
                &job.key.names().join(", "),
                &job.time.name,
            ],
        )
        .await
        .context(ctx);
        if let Err(e) = inserted {
            if e.sqlstate() == Some("23505") {
                // Another plan holds the table (it committed first); this one recorded
                // nothing: its transaction rolls back with the error.
                return Err(Error::invalid(
                    format!(
                        "table {} is already being moved by another plan in this database (hyperswap.tables)",
                        job.source
                    ),
                    "finish or abort that plan first (`hyperswap status` names it); two plans on one table would undo each other",
                ));
            }
            return Err(e);
        }
    }
    event(&tx, &plan.name, Phase::Planned, "plan recorded").await?;
    tx.commit().await.context(ctx)
}

/// Moves the plan to `to`; call inside the transaction that did the phase's last write.
pub async fn set_phase(tx: &impl GenericClient, plan: &str, to: Phase) -> Result<()> {
    tx.execute(
        "UPDATE hyperswap.plans SET phase = $2, updated_at = now() WHERE name = $1",
        &[&plan, &to.as_str()],
    )
    .await
    .context("recording the phase in the journal")?;
    event(tx, plan, to, &format!("entered phase {to}")).await
}

/// Appends to the plan's event log.
pub async fn event(
    client: &impl GenericClient,
    plan: &str,
    phase: Phase,
    message: &str,
) -> Result<()> {
    client
        .execute(
            "INSERT INTO hyperswap.events (plan_name, phase, message) VALUES ($1, $2, $3)",
            &[&plan, &phase.as_str(), &message],
        )
        .await
        .context("writing the journal's event log")?;
    Ok(())
}

/// Backfill ranges of the plan, in table and range order.
pub async fn ranges(client: &impl GenericClient, plan: &str) -> Result<Vec<RangeRecord>> {
    let rows = client
        .query(
            "SELECT ord, range_no, lo, hi, cursor, rows_copied, done FROM hyperswap.ranges
             WHERE plan_name = $1 ORDER BY ord, range_no",
            &[&plan],
        )
        .await
        .context("reading backfill progress from the journal")?;
    Ok(rows
        .iter()
        .map(|r| RangeRecord {
            ord: r.get(0),
            range_no: r.get(1),
            lo: r.get(2),
            hi: r.get(3),
            cursor: r.get(4),
            rows_copied: r.get(5),
            done: r.get(6),
        })
        .collect())
}

/// Records a table's estimated rows when its backfill starts, for progress and ETA.
pub async fn set_rows_total(
    tx: &impl GenericClient,
    plan: &str,
    ord: i32,
    rows: i64,
) -> Result<()> {
    tx.execute(
        "UPDATE hyperswap.tables SET rows_total = $3 WHERE plan_name = $1 AND ord = $2",
        &[&plan, &ord, &rows],
    )
    .await
    .context("recording the backfill's size in the journal")?;
    Ok(())
}

/// The estimated rows recorded when the table's backfill started (0 if none).
pub async fn rows_total(client: &impl GenericClient, plan: &str, ord: i32) -> Result<i64> {
    Ok(client
        .query_one(
            "SELECT coalesce(rows_total, 0) FROM hyperswap.tables WHERE plan_name = $1 AND ord = $2",
            &[&plan, &ord],
        )
        .await
        .context("reading backfill progress")?
        .get(0))
}

/// Records one backfill range (kept as it is when already recorded).
pub async fn add_range(tx: &impl GenericClient, plan: &str, range: &RangeRecord) -> Result<()> {
    tx.execute(
        "INSERT INTO hyperswap.ranges (plan_name, ord, range_no, lo, hi, cursor, done)
         VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT DO NOTHING",
        &[
            &plan,
            &range.ord,
            &range.range_no,
            &range.lo,
            &range.hi,
            &range.cursor,
            &range.done,
        ],
    )
    .await
    .context("recording the backfill's key ranges")?;
    Ok(())
}

/// Statement advancing a range's cursor after a batch, prepared once per session:
/// $1 plan, $2 ord, $3 range_no, $4 last key copied, $5 rows, $6 done.
pub const ADVANCE_RANGE: &str = "UPDATE hyperswap.ranges
     SET cursor = $4, rows_copied = rows_copied + $5, batches = batches + 1,
         done = $6, updated_at = now()
     WHERE plan_name = $1 AND ord = $2 AND range_no = $3";
