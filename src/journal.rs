//! The journal: hyperswap's own schema in the migrated database. It records each plan's
//! phase, its frozen text and sha256, per-table backfill progress and an event log, and
//! guards a plan with a session advisory lock so only one orchestrator runs it.

use sha2::{Digest, Sha256};
use tokio_postgres::{Client, GenericClient};

use crate::error::{Context, Error, Result};
use crate::ident::{quote_ident, quote_literal, QualifiedName};
use crate::model::{Job, TOOL_SCHEMA};
use crate::phase::Phase;
use crate::plan::Plan;
use crate::stmt::Stmt;

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
    let created: bool = tx
        .query_one(
            "SELECT pg_catalog.to_regclass('hyperswap.plans') IS NULL",
            &[],
        )
        .await
        .context("creating the hyperswap journal")?
        .get(0);
    tx.batch_execute(include_str!("../sql/journal.sql"))
        .await
        .context("creating the hyperswap journal")?;
    if created {
        // Default privileges (ALTER DEFAULT PRIVILEGES ... GRANT ... ON TABLES TO app)
        // may have handed the journal's brand-new tables to other roles (in a schema
        // created now or before): they are the tool's alone.
        revoke_writers(&tx).await?;
    }
    check_writers(&tx).await?;
    tx.batch_execute(include_str!("../sql/ddl_guard.sql"))
        .await
        .context("installing the guard against ALTER TABLE of tables being moved")?;
    tx.commit().await.context("creating the hyperswap journal")
}

/// Creates the journal's schema when it is missing (true when it did). Only then does
/// the role need CREATE on the database: a schema a DBA created for it (`CREATE SCHEMA
/// hyperswap AUTHORIZATION <role>`) is used as it is.
async fn create_schema(tx: &impl GenericClient) -> Result<bool> {
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
    Ok(!exists)
}

/// What lets a role other than the journal's owner change the journal (see
/// sql/journal_writers.sql): (object, privileges or the attached object, grantee or ""),
/// a grantee's privileges on one object together.
async fn writers(client: &impl GenericClient) -> Result<Vec<(String, String, String)>> {
    let rows = client
        .query(include_str!("../sql/journal_writers.sql"), &[&TOOL_SCHEMA])
        .await
        .context("checking who may write the hyperswap journal")?;
    let mut out: Vec<(String, String, String)> = Vec::new();
    for r in rows {
        let (object, what, who): (String, String, String) = (r.get(0), r.get(1), r.get(2));
        match out.last_mut() {
            Some((o, w, g)) if *o == object && *g == who && !who.is_empty() => {
                w.push_str(", ");
                w.push_str(&what);
            }
            _ => out.push((object, what, who)),
        }
    }
    Ok(out)
}

/// The statement that takes a finding away.
fn writer_fix(object: &str, what: &str, who: &str) -> String {
    if let Some(trigger) = what.strip_prefix("trigger ") {
        format!("DROP TRIGGER {trigger} ON {object};")
    } else if let Some(rule) = what.strip_prefix("rule ") {
        format!("DROP RULE {rule} ON {object};")
    } else if let Some(schema) = object.strip_prefix("schema ") {
        format!("REVOKE CREATE ON SCHEMA {schema} FROM {who};")
    } else {
        format!("REVOKE {what} ON {object} FROM {who};")
    }
}

/// Takes away the write privileges that default privileges gave other roles on a
/// journal just created (triggers and rules cannot be there yet).
async fn revoke_writers(tx: &impl GenericClient) -> Result<()> {
    for (object, what, who) in writers(tx).await? {
        if !who.is_empty() {
            tx.batch_execute(&writer_fix(&object, &what, &who))
                .await
                .context("keeping the new hyperswap journal to its owner")?;
        }
    }
    Ok(())
}

/// Refuses a journal that a role other than its owner could change: the journal holds
/// SQL that rollback runs and the results the cutover trusts. Each finding comes with
/// the statement that removes it.
pub async fn check_writers(client: &impl GenericClient) -> Result<()> {
    let found = writers(client).await?;
    if found.is_empty() {
        return Ok(());
    }
    let what: Vec<String> = found
        .iter()
        .map(|(o, w, who)| {
            if who.is_empty() {
                format!("{w} on {o}")
            } else {
                format!("{w} on {o} granted to {who}")
            }
        })
        .collect();
    let fixes: Vec<String> = found
        .iter()
        .map(|(o, w, who)| writer_fix(o, w, who))
        .collect();
    Err(Error::invalid(
        format!(
            "the hyperswap journal can be changed by roles other than its owner, so what it says (the SQL rollback runs, the phases and parity results the cutover trusts) is not trusted: {}",
            what.join("; ")
        ),
        format!(
            "check that the journal holds what hyperswap wrote (`hyperswap plan show` prints the reverse SQL), then take those rights away:\n    {}",
            fixes.join("\n    ")
        ),
    ))
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
    check_writers(client).await?;
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
            phase: r.get::<_, String>(3).parse().map_err(|e: String| {
                Error::invalid(
                    format!("the journal records {e} for plan `{}`", r.get::<_, String>(0)),
                    "this hyperswap does not know that phase: run the version that wrote the journal",
                )
            })?,
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

/// Refuses a plan file that changed since its run started.
pub fn check_frozen(plan: &Plan, record: Option<&PlanRecord>) -> Result<()> {
    match record {
        Some(r) if r.sha256 != plan.sha256 => Err(Error::invalid(
            format!(
                "plan file {} changed since plan `{}` started (journal sha256 {}, file sha256 {}); a plan is frozen once it runs",
                plan.path.display(),
                plan.name,
                &r.sha256[..12],
                &plan.sha256[..12]
            ),
            "restore the file as it was (the journal keeps its text, in the plan_text column of its plans table), or give the changed plan a new `name`",
        )),
        _ => Ok(()),
    }
}

/// Records, in the cutover transaction, the SQL that rolls it back.
pub async fn record_cutover(tx: &impl GenericClient, plan: &str, reverse_sql: &str) -> Result<()> {
    tx.execute(
        "UPDATE hyperswap.plans SET reverse_sql = $2, cutover_at = now(), cutover_parity_digest = parity_digest
         WHERE name = $1",
        &[&plan, &reverse_sql],
    )
    .await
    .context("recording the rollback in the journal")?;
    Ok(())
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

/// The plan in this database's journal, other than finished ones, that names `name` as
/// a source, target or retired table, with its phase.
pub async fn owning_plan(
    client: &impl GenericClient,
    name: &QualifiedName,
) -> Result<Option<(String, String)>> {
    if !exists(client).await? {
        return Ok(None);
    }
    let text = name.to_string();
    let row = client
        .query_opt(
            "SELECT p.name, p.phase FROM hyperswap.tables t JOIN hyperswap.plans p ON p.name = t.plan_name
             WHERE $1 IN (t.source, t.target, t.retired) AND p.phase NOT IN ('finalized', 'aborted')
             ORDER BY p.started_at LIMIT 1",
            &[&text],
        )
        .await
        .context("looking for plans that use the table")?;
    Ok(row.map(|r| (r.get(0), r.get(1))))
}

/// Deletes the plan from the journal, and the journal itself once no plan is left.
pub async fn forget(client: &mut Client, plan: &str, keep_history: bool) -> Result<()> {
    let ctx = "removing the plan from the journal";
    let tx = client.transaction().await.context(ctx)?;
    if keep_history {
        tx.execute(
            "INSERT INTO hyperswap.events (plan_name, phase, message)
             SELECT name, 'finalized',
                    'cut over at ' OPERATOR(pg_catalog.||) coalesce(cutover_at::pg_catalog.text, 'an unknown time')
                    OPERATOR(pg_catalog.||) ' on the parity pass ' OPERATOR(pg_catalog.||) coalesce(cutover_parity_digest, 'not recorded')
                    OPERATOR(pg_catalog.||) '; the retired tables are dropped; the plan''s events are kept, its other records removed'
             FROM hyperswap.plans WHERE name = $1",
            &[&plan],
        )
        .await
        .context(ctx)?;
    } else {
        tx.execute(
            "DELETE FROM hyperswap.events WHERE plan_name = $1",
            &[&plan],
        )
        .await
        .context(ctx)?;
    }
    tx.execute("DELETE FROM hyperswap.plans WHERE name = $1", &[&plan])
        .await
        .context(ctx)?;
    let (plans_left, events_left): (i64, i64) = {
        let r = tx
            .query_one(
                "SELECT (SELECT count(*) FROM hyperswap.plans), (SELECT count(*) FROM hyperswap.events)",
                &[],
            )
            .await
            .context(ctx)?;
        (r.get(0), r.get(1))
    };
    if plans_left == 0 {
        let schema = quote_ident(TOOL_SCHEMA);
        // No table is being moved: nothing for the guard to guard.
        tx.batch_execute(&format!(
            "DROP EVENT TRIGGER IF EXISTS hyperswap_ddl_guard; DROP FUNCTION IF EXISTS {schema}.ddl_guard(); DROP FUNCTION IF EXISTS {schema}.ddl_guard_columns(pg_catalog.oid)"
        ))
        .await
        .context("removing the guard against ALTER TABLE")?;
    }
    if plans_left == 0 && events_left == 0 {
        drop_journal(&tx).await?;
    }
    tx.commit().await.context(ctx)
}

/// Drops the journal's tables, and the schema when nothing else is left in it.
async fn drop_journal(tx: &impl GenericClient) -> Result<()> {
    let schema = quote_ident(TOOL_SCHEMA);
    tx.batch_execute(&format!(
        "DROP TABLE {schema}.parity_ranges, {schema}.parity_runs, {schema}.ranges, {schema}.events, {schema}.tables, {schema}.plans"
    ))
    .await
    .context("removing the hyperswap journal")?;
    // Foreign-key emulation functions (of this plan or another's) outlive the journal;
    // the schema goes with the last of them.
    drop_schema_if_empty(tx).await
}

/// After `finalize` kept a plan's events: drops them (None while the plan itself is
/// still in the journal), and the journal once nothing is left in it. Returns how many
/// events went.
pub async fn drop_history(client: &mut Client, plan: &str) -> Result<Option<u64>> {
    let nothing = || {
        Error::WrongPhase {
        plan: plan.to_string(),
        phase: None,
        problem: "the journal holds no history of it to drop".into(),
        fix: "check the plan file and the database the connection points at (while the journal exists, `SELECT DISTINCT plan_name FROM hyperswap.events` lists the histories kept)".into(),
    }
    };
    if !exists(client).await? {
        return Err(nothing());
    }
    check_owner(client).await?;
    check_writers(client).await?;
    let ctx = "dropping the plan's events from the journal";
    let tx = client.transaction().await.context(ctx)?;
    let r = tx
        .query_one(
            "SELECT EXISTS (SELECT FROM hyperswap.plans WHERE name = $1)",
            &[&plan],
        )
        .await
        .context(ctx)?;
    if r.get::<_, bool>(0) {
        return Ok(None);
    }
    let dropped = tx
        .execute(
            "DELETE FROM hyperswap.events WHERE plan_name = $1",
            &[&plan],
        )
        .await
        .context(ctx)?;
    if dropped == 0 {
        return Err(nothing());
    }
    let r = tx
        .query_one(
            "SELECT NOT EXISTS (SELECT FROM hyperswap.plans) AND NOT EXISTS (SELECT FROM hyperswap.events)",
            &[],
        )
        .await
        .context(ctx)?;
    if r.get::<_, bool>(0) {
        drop_journal(&tx).await?;
    }
    tx.commit().await.context(ctx)?;
    Ok(Some(dropped))
}

/// Drops the tool's schema when nothing is left in it; without CASCADE, so an object
/// someone else put there keeps it.
pub async fn drop_schema_if_empty(client: &impl tokio_postgres::GenericClient) -> Result<()> {
    let row = client
        .query_one(
            "SELECT n.oid IS NOT NULL AND NOT EXISTS (SELECT FROM pg_catalog.pg_depend d
                    WHERE d.refclassid = 'pg_catalog.pg_namespace'::pg_catalog.regclass AND d.refobjid = n.oid)
             FROM (SELECT (SELECT oid FROM pg_catalog.pg_namespace WHERE nspname = $1) AS oid) AS n",
            &[&TOOL_SCHEMA],
        )
        .await
        .context("looking into the hyperswap schema")?;
    if row.get(0) {
        client
            .batch_execute(&format!("DROP SCHEMA {}", quote_ident(TOOL_SCHEMA)))
            .await
            .context(
                "removing the hyperswap schema (it holds objects hyperswap did not create?)",
            )?;
    }
    Ok(())
}

/// A plan's phase and times, as text for people (`YYYY-MM-DD HH24:MI:SS+TZ`).
pub struct PlanTimes {
    pub phase: String,
    pub started_at: String,
    pub updated_at: String,
    pub parity_passed_at: Option<String>,
    pub cutover_at: Option<String>,
    /// The last batch's commit.
    pub last_progress_at: Option<String>,
}

pub async fn plan_times(client: &impl GenericClient, plan: &str) -> Result<PlanTimes> {
    let ctx = "reading the journal";
    let p = client
        .query_one(
            "SELECT phase, to_char(started_at, 'YYYY-MM-DD HH24:MI:SSOF'), to_char(updated_at, 'YYYY-MM-DD HH24:MI:SSOF'),
                    to_char(parity_passed_at, 'YYYY-MM-DD HH24:MI:SSOF'), to_char(cutover_at, 'YYYY-MM-DD HH24:MI:SSOF'),
                    (SELECT to_char(max(updated_at), 'YYYY-MM-DD HH24:MI:SSOF') FROM hyperswap.ranges WHERE plan_name = $1)
             FROM hyperswap.plans WHERE name = $1",
            &[&plan],
        )
        .await
        .context(ctx)?;
    Ok(PlanTimes {
        phase: p.get(0),
        started_at: p.get(1),
        updated_at: p.get(2),
        parity_passed_at: p.get(3),
        cutover_at: p.get(4),
        last_progress_at: p.get(5),
    })
}

/// One table's backfill progress.
pub struct TableProgress {
    pub source: String,
    pub target: String,
    pub retired: String,
    pub rows_copied: i64,
    pub rows_total: i64,
    pub batches: i64,
    /// From the first range's start to the last batch.
    pub seconds: f64,
}

pub async fn table_progress(client: &impl GenericClient, plan: &str) -> Result<Vec<TableProgress>> {
    let rows = client
        .query(
            "SELECT t.source, t.target, t.retired, coalesce(sum(r.rows_copied), 0)::bigint,
                    coalesce(t.rows_total, 0), coalesce(sum(r.batches), 0)::bigint,
                    coalesce(extract(epoch FROM max(r.updated_at) - min(r.started_at)), 0)::float8
             FROM hyperswap.tables t
             LEFT JOIN hyperswap.ranges r ON r.plan_name = t.plan_name AND r.ord = t.ord
             WHERE t.plan_name = $1
             GROUP BY t.ord, t.source, t.target, t.retired, t.rows_total
             ORDER BY t.ord",
            &[&plan],
        )
        .await
        .context("reading the journal")?;
    Ok(rows
        .iter()
        .map(|r| TableProgress {
            source: r.get(0),
            target: r.get(1),
            retired: r.get(2),
            rows_copied: r.get(3),
            rows_total: r.get(4),
            batches: r.get(5),
            seconds: r.get(6),
        })
        .collect())
}

/// count, sum and xor of the row hashes of one side of one parity range.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RangeSums {
    pub rows: i64,
    pub sum: String,
    pub xor: i64,
}

/// The unfinished parity run of this plan and phase started within `within`: its id and
/// its ranges' bounds (JSON).
pub async fn open_parity_run(
    client: &impl GenericClient,
    plan: &str,
    phase: &str,
    within: std::time::Duration,
) -> Result<Option<(i64, String)>> {
    let row = client
        .query_opt(
            "SELECT id, bounds FROM hyperswap.parity_runs
             WHERE plan_name = $1 AND phase = $2 AND finished_at IS NULL
               AND started_at > pg_catalog.now() - pg_catalog.make_interval(secs => $3)
             ORDER BY id DESC LIMIT 1",
            &[&plan, &phase, &within.as_secs_f64()],
        )
        .await
        .context("recording the parity run")?;
    Ok(row.map(|r| (r.get(0), r.get(1))))
}

pub async fn start_parity_run(
    client: &impl GenericClient,
    plan: &str,
    phase: &str,
    bounds: &str,
) -> Result<i64> {
    Ok(client
        .query_one(
            "INSERT INTO hyperswap.parity_runs (plan_name, phase, bounds) VALUES ($1, $2, $3) RETURNING id",
            &[&plan, &phase, &bounds],
        )
        .await
        .context("recording the parity run")?
        .get(0))
}

/// The ranges a parity run has compared: (ord, range_no) -> (live, mirror).
pub async fn parity_range_results(
    client: &impl GenericClient,
    run_id: i64,
) -> Result<std::collections::HashMap<(i32, i32), (RangeSums, RangeSums)>> {
    let rows = client
        .query(
            "SELECT ord, range_no, live_rows, live_sum, live_xor, mirror_rows, mirror_sum, mirror_xor
             FROM hyperswap.parity_ranges WHERE run_id = $1",
            &[&run_id],
        )
        .await
        .context("reading the parity run")?;
    Ok(rows
        .iter()
        .map(|r| {
            let l = RangeSums {
                rows: r.get(2),
                sum: r.get(3),
                xor: r.get(4),
            };
            let m = RangeSums {
                rows: r.get(5),
                sum: r.get(6),
                xor: r.get(7),
            };
            ((r.get(0), r.get(1)), (l, m))
        })
        .collect())
}

pub async fn record_parity_range(
    client: &impl GenericClient,
    run_id: i64,
    key: (i32, i32),
    (l, m): &(RangeSums, RangeSums),
) -> Result<()> {
    client
        .execute(
            "INSERT INTO hyperswap.parity_ranges
                (run_id, ord, range_no, live_rows, live_sum, live_xor, mirror_rows, mirror_sum, mirror_xor, equal)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) ON CONFLICT DO NOTHING",
            &[&run_id, &key.0, &key.1, &l.rows, &l.sum, &l.xor, &m.rows, &m.sum, &m.xor, &(l == m)],
        )
        .await
        .context("recording a parity range")?;
    Ok(())
}

pub async fn forget_parity_range(
    client: &impl GenericClient,
    run_id: i64,
    key: (i32, i32),
) -> Result<()> {
    client
        .execute(
            "DELETE FROM hyperswap.parity_ranges WHERE run_id = $1 AND ord = $2 AND range_no = $3",
            &[&run_id, &key.0, &key.1],
        )
        .await
        .context("recording a parity range")?;
    Ok(())
}

/// Ends a parity run; a passing one is also recorded on the plan, with its digest.
pub async fn finish_parity_run(
    client: &impl GenericClient,
    plan: &str,
    run_id: i64,
    equal: bool,
    digest: &str,
) -> Result<()> {
    let ctx = "recording the parity result";
    client
        .execute(
            "UPDATE hyperswap.parity_runs SET finished_at = now(), equal = $2, digest = $3 WHERE id = $1",
            &[&run_id, &equal, &digest],
        )
        .await
        .context(ctx)?;
    if equal {
        client
            .execute(
                "UPDATE hyperswap.plans SET parity_passed_at = now(), parity_digest = $2 WHERE name = $1",
                &[&plan, &digest],
            )
            .await
            .context(ctx)?;
    }
    Ok(())
}

/// The statement of phase 1 that records what both tables carry besides columns and
/// indexes (sql/definitions.sql), in the transaction that makes the new table.
pub fn record_definitions(plan: &str, job: &Job) -> Stmt {
    Stmt::noted(
        format!(
            "UPDATE hyperswap.tables SET source_definitions = ({}), target_definitions = ({})\nWHERE plan_name = {} AND ord = {}",
            crate::catalog::definitions_sql(&job.source),
            crate::catalog::definitions_sql(&job.target),
            quote_literal(plan),
            job.ord
        ),
        "the journal records the constraints, policies and storage parameters of both tables as they are now: a later change to one side only is named before cutover",
    )
}

/// What phase 1 recorded of both tables (source, target); `None` for a plan started by
/// a version that did not record it.
pub async fn recorded_definitions(
    client: &impl GenericClient,
    plan: &str,
    ord: usize,
) -> Result<Option<(Vec<String>, Vec<String>)>> {
    let row = client
        .query_opt(
            "SELECT source_definitions, target_definitions FROM hyperswap.tables WHERE plan_name = $1 AND ord = $2",
            &[&plan, &(ord as i32)],
        )
        .await
        .context("reading what the journal recorded of the tables")?;
    Ok(row.and_then(|r| {
        let (a, b): (Option<Vec<String>>, Option<Vec<String>>) = (r.get(0), r.get(1));
        a.zip(b)
    }))
}

/// Records again what the target carries (after the backfill added its NOT VALID
/// constraints), leaving the source's record as phase 1 made it.
pub fn record_target_definitions(plan: &str, job: &Job) -> Stmt {
    Stmt::noted(
        format!(
            "UPDATE hyperswap.tables SET target_definitions = ({})\nWHERE plan_name = {} AND ord = {}",
            crate::catalog::definitions_sql(&job.target),
            quote_literal(plan),
            job.ord
        ),
        "the journal records what the new table carries now that its NOT VALID constraints are added",
    )
}
