//! Phase 2, the copy triggers. Forward statement triggers on the source mirror every
//! INSERT, UPDATE (including of the key and the time column), DELETE and TRUNCATE into
//! the target, in the writer's own transaction, one set-based statement per step from
//! the statement's transition tables: a 1,000-row INSERT costs one INSERT ... SELECT, not
//! a thousand function calls. Reverse triggers on the target do the same into the
//! retired table once the target carries the source's name.
//!
//! Each function acts only while its table carries the application's name and returns
//! at once otherwise. So both directions are installed here, on the still-empty target,
//! and cutover and rollback are only renames: no trigger DDL runs while the application
//! is locked out.

use super::names::{Triggers, COPY_TRIGGERS, REVERSE_TRIGGERS};
use crate::ident::{dollar_quote, quote_ident, quote_literal, QualifiedName};
use crate::model::Job;
use crate::stmt::Stmt;

/// One direction of copying.
pub struct Direction<'a> {
    pub function: QualifiedName,
    /// The table the trigger sits on, by its name when the trigger is installed.
    pub on: &'a QualifiedName,
    /// The table kept in step, by the name it has while the trigger acts.
    pub to: &'a QualifiedName,
    pub triggers: Triggers,
    /// The change log the function appends to (forward), or `None`: it writes `to` in
    /// the writer's transaction (reverse, after cutover, so rollback loses nothing).
    pub log: Option<QualifiedName>,
}

impl Job {
    /// Source -> target, acting before cutover.
    pub fn forward(&self) -> Direction<'_> {
        Direction {
            function: self.copy_function(),
            on: &self.source,
            to: &self.target,
            triggers: COPY_TRIGGERS,
            log: Some(self.change_log()),
        }
    }

    /// Target -> retired table, acting after cutover (installed on the target before).
    pub fn reverse(&self) -> Direction<'_> {
        Direction {
            function: self.reverse_function(),
            on: &self.target,
            to: &self.retired,
            triggers: REVERSE_TRIGGERS,
            log: None,
        }
    }
}

/// Phase 2's statements for one table: both functions, then the forward triggers. The
/// reverse triggers are created by the cutover transaction and the forward ones dropped
/// there (statement triggers are one catalog row each, even on a hypertable), so no
/// idle trigger fires on a mirrored write: each costs a function call per statement.
pub fn statements(job: &Job, plan: &str) -> Vec<Stmt> {
    let mut out = vec![Stmt::noted(
        format!("GRANT USAGE ON SCHEMA {} TO {}", quote_ident(crate::model::TOOL_SCHEMA), quote_ident(&job.table.owner)),
        "TimescaleDB creates each new chunk as the hypertable's owner, copying its row triggers (foreign-key emulation's, whose functions live here) onto it",
    )];
    out.push(change_log_sql(job));
    for (dir, what) in [
        (job.forward(), "before cutover"),
        (job.reverse(), "after cutover"),
    ] {
        out.push(Stmt::noted(
            function_sql(job, &dir),
            format!(
                "{what}: {} every change on the table named {} into {}",
                if dir.log.is_some() {
                    "logs (for replay)"
                } else {
                    "copies"
                },
                job.source,
                dir.to
            ),
        ));
        out.push(Stmt::noted(
            format!(
                "REVOKE ALL ON FUNCTION {}() FROM PUBLIC",
                dir.function.quoted()
            ),
            "no role calls the copy function; the triggers fire it",
        ));
        if !job.table.force_row_security {
            out.push(Stmt::noted(
                owner_sql(
                    &dir.function,
                    dir.log
                        .as_ref()
                        .map(|_| super::log::log_grant_sql(job, &job.table.owner)),
                    &job.table.owner,
                ),
                "when hyperswap runs as a superuser: the copy runs with the rights of the table's owner (who owns both tables), not a superuser's, so nothing the owner attaches to the tables can run with more",
            ));
        }
        out.push(Stmt::new(format!(
            "COMMENT ON FUNCTION {}() IS {}",
            dir.function.quoted(),
            quote_literal(&format!(
                "hyperswap plan {plan}: copies changes on {} into {} {what}",
                job.source, dir.to
            ))
        )));
    }
    out.push(columns_view_sql(job));
    let forward = job.forward();
    out.extend(create_triggers(&forward, forward.on));
    out
}

/// The change log (see [`Job::change_log`]): the key columns, by their names and types,
/// and the time an old row had (NULL for a new row), without index (the tool reads it
/// whole, in replay order of no importance), readable and writable by the tool's role
/// alone.
fn change_log_sql(job: &Job) -> Stmt {
    let log = job.change_log();
    let columns = job
        .key
        .columns
        .iter()
        .map(|c| format!("{} {}{}", quote_ident(&c.name), c.type_sql, c.collate))
        .chain(std::iter::once(format!(
            "{} {}",
            quote_ident(super::names::LOG_TIME_COLUMN),
            job.time.type_sql
        )))
        .collect::<Vec<_>>()
        .join(", ");
    // Default privileges (ALTER DEFAULT PRIVILEGES ... ON TABLES) may have given the
    // new table to other roles: every grant but its owner's goes.
    let revoke = format!(
        "\nDECLARE\n    grantee pg_catalog.text;\nBEGIN\n    FOR grantee IN\n        SELECT DISTINCT CASE WHEN a.grantee OPERATOR(pg_catalog.=) 0 THEN 'PUBLIC'\n                             ELSE pg_catalog.quote_ident(pg_catalog.pg_get_userbyid(a.grantee)) END\n        FROM pg_catalog.pg_class c CROSS JOIN LATERAL pg_catalog.aclexplode(c.relacl) AS a\n        WHERE c.oid OPERATOR(pg_catalog.=) {}::pg_catalog.regclass AND a.grantee OPERATOR(pg_catalog.<>) c.relowner\n    LOOP\n        EXECUTE pg_catalog.format('REVOKE ALL ON %s FROM %s', {}, grantee);\n    END LOOP;\nEND\n",
        quote_literal(&log.quoted()),
        quote_literal(&log.quoted()),
    );
    Stmt::noted(
        format!(
            "CREATE TABLE {} ({columns});\nDO {};\nCOMMENT ON TABLE {} IS {}",
            log.quoted(),
            dollar_quote(&revoke),
            log.quoted(),
            quote_literal(&format!(
                "hyperswap: keys of the rows written on {} that the copy has yet to read again; removed by abort and finalize",
                job.source
            ))
        ),
        "the application's writes append their keys here (a narrow heap insert, no index) instead of writing the hypertable; the tool replays them",
    )
}

/// The view that pins the columns of both tables (see [`Job::columns_view`]).
fn columns_view_sql(job: &Job) -> Stmt {
    let all = job
        .table
        .columns
        .iter()
        .map(|c| quote_ident(&c.name))
        .collect::<Vec<_>>()
        .join(", ");
    let view = job.columns_view();
    Stmt::noted(
        format!(
            "CREATE OR REPLACE VIEW {} WITH (security_invoker = true) AS\nSELECT {all} FROM {} WHERE false\nUNION ALL\nSELECT {all} FROM {} WHERE false;\nREVOKE ALL ON {} FROM PUBLIC;\nCOMMENT ON VIEW {} IS {}",
            view.quoted(),
            job.source.quoted(),
            job.target.quoted(),
            view.quoted(),
            view.quoted(),
            quote_literal(&format!(
                "hyperswap: keeps the columns of {} and {} that the copy triggers read from being dropped or changed in type; removed by abort and finalize",
                job.source, job.target
            ))
        ),
        "never read (it returns no row, and reads with the reader's rights): while it exists the database itself refuses DROP COLUMN and ALTER COLUMN TYPE on either table, for any role (the DDL guard needs a superuser); only an explicit CASCADE gets past it",
    )
}

/// Drops the view that pins the columns, before one of its tables goes.
pub fn drop_columns_view(job: &Job) -> Stmt {
    Stmt::new(format!(
        "DROP VIEW IF EXISTS {}",
        job.columns_view().quoted()
    ))
}

/// EXECUTE on a trigger function of the tool's for the table's owner alone (creating a
/// trigger needs it; firing one does not).
fn owner_only(function: &QualifiedName, owner: &str) -> String {
    format!(
        "REVOKE ALL ON FUNCTION {0}() FROM PUBLIC; GRANT EXECUTE ON FUNCTION {0}() TO {1}",
        function.quoted(),
        quote_ident(owner)
    )
}

/// Hands a copy function to the table's owner when the running role is a superuser (a
/// non-superuser runs as a member of the owner already; the owner could not be given a
/// function in a schema it may not create in), with INSERT on the change log it appends
/// to, and SELECT and DELETE for the replays, which the tool runs as the owner (see
/// [`Job::as_owner_sql`]). Nothing else there: a key appended by hand only makes the
/// tool read that key again, and one deleted is a difference that parity finds (the
/// owner can change its own copy anyway).
fn owner_sql(function: &QualifiedName, log_grant: Option<String>, owner: &str) -> String {
    let grant = log_grant
        .map(|g| format!("\n        {g}"))
        .unwrap_or_default();
    let body = format!(
        "\nBEGIN\n    IF (SELECT rolsuper FROM pg_catalog.pg_roles WHERE rolname OPERATOR(pg_catalog.=) CURRENT_USER) THEN\n        ALTER FUNCTION {}() OWNER TO {};{grant}\n    END IF;\nEND\n",
        function.quoted(),
        quote_ident(owner)
    );
    format!("DO {}", dollar_quote(&body))
}

/// Creates a direction's triggers on `table` (where the table sits now).
pub fn create_triggers(dir: &Direction, table: &QualifiedName) -> Vec<Stmt> {
    dir.triggers
        .each()
        .into_iter()
        .map(|(name, event, referencing)| {
            Stmt::new(format!(
                "CREATE OR REPLACE TRIGGER {} AFTER {event} ON {}{referencing} FOR EACH STATEMENT EXECUTE FUNCTION {}()",
                quote_ident(&name),
                table.quoted(),
                dir.function.quoted()
            ))
        })
        .collect()
}

/// Removes a direction's triggers from `table` (where they sit now).
pub fn drop_triggers(dir: &Direction, table: &QualifiedName) -> Vec<Stmt> {
    dir.triggers
        .all_names()
        .iter()
        .map(|t| {
            Stmt::new(format!(
                "DROP TRIGGER IF EXISTS {} ON {}",
                quote_ident(t),
                table.quoted()
            ))
        })
        .collect()
}

pub fn drop_function(dir: &Direction) -> Stmt {
    Stmt::new(format!(
        "DROP FUNCTION IF EXISTS {}()",
        dir.function.quoted()
    ))
}

fn function_sql(job: &Job, dir: &Direction) -> String {
    let columns = job.column_list();
    // The transition tables' columns by position: hyperswap_c1, hyperswap_c2, ...
    let position = |name: &str| {
        let i = job
            .table
            .columns
            .iter()
            .position(|c| c.name == name)
            .expect("key and time columns are columns of the table");
        format!("hyperswap_c{}", i + 1)
    };
    let positions = (1..=job.table.columns.len())
        .map(|i| format!("hyperswap_c{i}"))
        .collect::<Vec<_>>()
        .join(", ");
    let selected = job
        .table
        .columns
        .iter()
        .filter(|c| c.is_written())
        .map(|c| position(&c.name))
        .collect::<Vec<_>>()
        .join(", ");
    // The row in the other table: its key and time (the hypertable's unique key), each
    // compared by its unique index's equality (a citext or ltree key has none in
    // pg_catalog that the index could use, or none at all); the time column's types
    // (integers, date, timestamps) are pg_catalog's.
    let mut matched: Vec<(&str, String)> = job
        .key
        .columns
        .iter()
        .map(|c| (c.name.as_str(), c.op("=")))
        .collect();
    if !job.key.contains(&job.time.name) {
        matched.push((&job.time.name, "OPERATOR(pg_catalog.=)".to_string()));
    }
    let old_row = matched
        .iter()
        .map(|(c, op)| {
            format!(
                "hyperswap_t.{} {op} hyperswap_o.{}",
                quote_ident(c),
                position(c)
            )
        })
        .collect::<Vec<_>>()
        .join(" AND ");
    let body = match &dir.log {
        Some(log) => crate::template::render(
            include_str!("../../sql/change_log_trigger.sql"),
            &[
                ("live_name", quote_literal(&job.source.name)),
                ("live_schema", quote_literal(&job.source.schema)),
                ("to", dir.to.quoted()),
                ("log", log.quoted()),
                (
                    "key",
                    job.key
                        .columns
                        .iter()
                        .map(|c| position(&c.name))
                        .collect::<Vec<_>>()
                        .join(", "),
                ),
                ("time", position(&job.time.name)),
                ("positions", positions),
            ],
        ),
        None => crate::template::render(
            include_str!("../../sql/copy_trigger.sql"),
            &[
                ("live_name", quote_literal(&job.source.name)),
                ("live_schema", quote_literal(&job.source.schema)),
                ("to", dir.to.quoted()),
                ("columns", columns),
                ("selected", selected),
                ("positions", positions),
                ("old_row", old_row),
            ],
        ),
    };
    // No `SET session_replication_role` here: changing it flushes the session's plan
    // cache, twice per call, which cost a single-row INSERT two thirds of its speed. The
    // other table's triggers stay quiet without it: the other direction's act only while
    // their table carries the application's name, and the user's triggers are disabled
    // on the retired table at cutover.
    // `SET search_path` stays although saving and restoring it costs a single-row INSERT
    // about 8% of its time in the server: the body itself qualifies every name and
    // operator, but what the write runs beneath it (the other table's CHECK constraints,
    // index expressions, domain checks, the owner's functions they call) runs as the
    // table's owner, and must not resolve its names in a schema the caller put first.
    format!(
        "CREATE OR REPLACE FUNCTION {}() RETURNS trigger\n    LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp\nAS {}",
        dir.function.quoted(),
        dollar_quote(&format!("\n{body};\n"))
    )
}

/// The guard trigger's name on the new table while it is the copy again (after rollback).
pub const GUARD_TRIGGER: &str = "hyperswap_guard";

/// The guard's function: a write to the copy that does not come from the copy trigger
/// (which writes at trigger depth 1) or a session of hyperswap's is refused, so no row
/// the application writes can land in the copy alone. Created by the cutover
/// transaction, so that the rollback it records always finds it.
pub fn guard_function_sql(job: &Job) -> Stmt {
    let body = format!(
        "\nBEGIN\n    IF pg_catalog.pg_trigger_depth() OPERATOR(pg_catalog.>) 1\n       OR pg_catalog.current_setting('hyperswap.ddl', true) IS NOT DISTINCT FROM 'on' THEN\n        IF TG_OP OPERATOR(pg_catalog.=) 'DELETE' THEN\n            RETURN OLD;\n        END IF;\n        RETURN NEW;\n    END IF;\n    RAISE EXCEPTION USING\n        ERRCODE = 'object_in_use',\n        MESSAGE = pg_catalog.format('%I.%I is hyperswap''s copy of %s since the rollback; this write did not reach %s', TG_TABLE_SCHEMA, TG_TABLE_NAME, {live}, {live}),\n        HINT = 'a statement that waited for the rollback''s lock can reach the copy: run it again';\nEND\n",
        live = quote_literal(&job.source.to_string())
    );
    Stmt::noted(
        format!(
            "CREATE OR REPLACE FUNCTION {}() RETURNS trigger\n    LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp\nAS {};\n{}",
            job.guard_function().quoted(),
            dollar_quote(&body),
            owner_only(&job.guard_function(), &job.table.owner)
        ),
        "for rollback: the guard it puts on the new table, once it is the copy again",
    )
}

/// Puts the guard on `table` (the new table, by its name after the rollback's renames).
/// A row trigger, because TimescaleDB's COPY decides on the hypertable and its statement
/// triggers before it waits for the lock, but opens each chunk (which carries the
/// hypertable's row triggers) after it; the WHEN clause keeps the copy trigger's own
/// writes (trigger depth 1) from calling it at all.
pub fn create_guard(job: &Job, table: &QualifiedName) -> Stmt {
    Stmt::noted(
        format!(
            "CREATE OR REPLACE TRIGGER {GUARD_TRIGGER} BEFORE INSERT OR UPDATE OR DELETE ON {} FOR EACH ROW WHEN (pg_catalog.pg_trigger_depth() OPERATOR(pg_catalog.=) 0 AND pg_catalog.current_setting('hyperswap.ddl', true) IS DISTINCT FROM 'on') EXECUTE FUNCTION {}()",
            table.quoted(),
            job.guard_function().quoted()
        ),
        "the new table is the copy again: a COPY that waited for this transaction's lock chose it by its old name, and is refused rather than lost",
    )
}

pub fn drop_guard(table: &QualifiedName) -> Stmt {
    Stmt::new(format!(
        "DROP TRIGGER IF EXISTS {GUARD_TRIGGER} ON {}",
        table.quoted()
    ))
}

pub fn drop_guard_function(job: &Job) -> Stmt {
    Stmt::new(format!(
        "DROP FUNCTION IF EXISTS {}()",
        job.guard_function().quoted()
    ))
}
