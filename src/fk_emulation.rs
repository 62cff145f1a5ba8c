//! `inbound_foreign_keys: emulate`: other tables' foreign keys to a table that becomes a
//! hypertable are dropped at cutover (the hypertable's key is not unique without its time
//! column, so no real key can reference it) and triggers keep their meaning:
//!
//! - on the referencing (child) table, an INSERT or an UPDATE of the referencing columns
//!   needs a referenced row, locked `FOR KEY SHARE` as a real key's check locks it;
//! - on the hypertable, a DELETE or an UPDATE of the referenced columns that leaves no row
//!   with the old key does what ON DELETE / ON UPDATE said.
//!
//! Both functions live in the tool's schema, named per constraint by a hash of the
//! child's qualified name, the constraint's name and the parent's, so no two keys share
//! one. Rollback drops them (with their triggers, wherever those are) and adds the keys
//! back; after `finalize` they stay until `hyperswap finalize --end-fk-emulation`.
//!
//! Where the hypertable's triggers are created: in the cutover transaction, like the
//! user's own triggers that move there. Creating a row trigger on a hypertable writes
//! one catalog row per chunk, under the lock the cutover holds anyway: measured here,
//! 0.3 s for 1,000 chunks (a statement trigger, 3 ms), so about 0.1 s for a year of daily
//! chunks. Installing them before cutover, idle until the table carries the
//! application's name, would instead fire them (for a name lookup) on every row the
//! backfill and the copy trigger write into the new table, for the whole migration, and
//! keep triggers on a table the plan may still abort; the cutover swaps the copy
//! triggers in the same transaction for the same reason.

use tokio_postgres::{Client, Transaction};

use crate::catalog::{FkAction, InboundFk};
use crate::error::{Context, Result};
use crate::ident::{dollar_quote, quote_ident, quote_literal, with_suffix, QualifiedName};
use crate::model::{Job, TOOL_SCHEMA};
use crate::progress::Cancel;
use crate::retry::{Policy, Retry};
use crate::stmt::{self, LockPolicy, SqlLog, Stmt};
use crate::template::render;

/// The start of every emulation function's comment for `plan`: how `--end-fk-emulation`
/// finds them after `finalize` has removed the plan from the journal.
pub fn comment_prefix(plan: &str) -> String {
    format!("hyperswap plan {plan}: emulates foreign key ")
}

/// One emulated key: its functions and triggers.
pub struct Emulation<'a> {
    pub job: &'a Job,
    pub fk: &'a InboundFk,
}

impl<'a> Emulation<'a> {
    pub fn new(job: &'a Job, fk: &'a InboundFk) -> Self {
        Emulation { job, fk }
    }

    /// A short hash of the child's qualified name, the constraint's and the parent's:
    /// collision-free where joined names are not.
    fn hash(&self) -> String {
        use sha2::{Digest, Sha256};
        let whole = format!(
            "{} {} {}",
            self.fk.table_name.quoted(),
            quote_ident(&self.fk.name),
            self.job.source.quoted()
        );
        crate::ident::hex(&Sha256::digest(whole.as_bytes())[..8])
    }

    fn name(&self, side: &str) -> String {
        with_suffix(
            &format!("fk_{}", self.fk.name),
            &format!("_{}_{side}", self.hash()),
        )
    }

    /// The check on the referencing table.
    pub fn child_function(&self) -> QualifiedName {
        QualifiedName::new(TOOL_SCHEMA, self.name("child"))
    }

    /// The actions on the hypertable.
    pub fn parent_function(&self) -> QualifiedName {
        QualifiedName::new(TOOL_SCHEMA, self.name("parent"))
    }

    fn trigger(&self, side: &str) -> String {
        with_suffix("hyperswap_fk", &format!("_{}_{side}", self.hash()))
    }

    fn child(&self) -> &QualifiedName {
        &self.fk.table_name
    }

    /// Cutover: both functions, their comments, and the three triggers (the check on the
    /// child; the actions and the TRUNCATE guard on the hypertable).
    pub fn install(&self, plan: &str) -> Vec<Stmt> {
        let (child_fn, parent_fn) = (self.child_function(), self.parent_function());
        let what = format!(
            "{}{} on {} ({}) -> {} ({})",
            comment_prefix(plan),
            self.fk.name,
            self.child(),
            self.fk.columns.join(", "),
            self.job.source,
            self.fk.referenced_columns.join(", ")
        );
        vec![
            Stmt::noted(
                function_sql(&child_fn, &self.child_body()),
                format!(
                    "inbound_foreign_keys: emulate: {} on {} checks its reference from now on",
                    self.fk.name,
                    self.child()
                ),
            ),
            comment(&child_fn, &format!("{what}: the referencing side")),
            Stmt::noted(
                function_sql(&parent_fn, &self.parent_body()),
                format!(
                    "inbound_foreign_keys: emulate: ON DELETE {}, ON UPDATE {} of {}",
                    self.fk.on_delete.sql(),
                    self.fk.on_update.sql(),
                    self.fk.name
                ),
            ),
            comment(&parent_fn, &format!("{what}: the referenced side")),
            Stmt::new(format!(
                "CREATE OR REPLACE TRIGGER {} AFTER INSERT OR UPDATE OF {} ON {} FOR EACH ROW EXECUTE FUNCTION {}()",
                quote_ident(&self.trigger("child")),
                quote_list(&self.fk.columns),
                self.child().quoted(),
                child_fn.quoted()
            )),
            Stmt::noted(
                format!(
                    "CREATE OR REPLACE TRIGGER {} AFTER DELETE OR UPDATE OF {} ON {} FOR EACH ROW EXECUTE FUNCTION {}()",
                    quote_ident(&self.trigger("parent")),
                    quote_list(&self.fk.referenced_columns),
                    self.job.source.quoted(),
                    parent_fn.quoted()
                ),
                "on the hypertable, now named like the original (this touches every chunk)",
            ),
            Stmt::noted(
                format!(
                    "CREATE OR REPLACE TRIGGER {} AFTER TRUNCATE ON {} FOR EACH STATEMENT EXECUTE FUNCTION {}()",
                    quote_ident(&self.trigger("truncate")),
                    self.job.source.quoted(),
                    parent_fn.quoted()
                ),
                "a TRUNCATE that would leave children referencing nothing fails, as with a real key",
            ),
        ]
    }

    /// Rollback and `--end-fk-emulation`: both functions, with the triggers that call
    /// them wherever those now are (CASCADE drops exactly those triggers).
    pub fn uninstall(&self) -> Vec<Stmt> {
        [self.child_function(), self.parent_function()]
            .iter()
            .map(drop_function)
            .collect()
    }

    fn child_body(&self) -> String {
        let fk = self.fk;
        let new = |cols: &[String]| prefixed("NEW", cols);
        render(
            include_str!("../sql/fk_emulation_child.sql"),
            &[
                ("constraint_text", quote_literal(&fk.name)),
                ("new_columns", new(&fk.columns)),
                ("old_columns", prefixed("OLD", &fk.columns)),
                ("null_rule", self.null_rule()),
                ("parent", self.job.source.quoted()),
                (
                    "parent_matches_new",
                    matches("p", &fk.referenced_columns, "NEW", &fk.columns, &fk.eq_ops),
                ),
                ("child_text", quote_literal(&self.child().to_string())),
                ("columns_text", quote_literal(&fk.columns.join(", "))),
                ("parent_text", quote_literal(&self.job.source.to_string())),
            ],
        )
    }

    /// MATCH SIMPLE: a NULL in any referencing column passes. MATCH FULL: all NULL
    /// passes, some NULL fails.
    fn null_rule(&self) -> String {
        let any_null = is_null("NEW", &self.fk.columns, " OR ");
        if !self.fk.match_full {
            return format!("    IF {any_null} THEN\n        RETURN NULL;\n    END IF;");
        }
        let all_null = is_null("NEW", &self.fk.columns, " AND ");
        format!(
            "    IF {all_null} THEN\n        RETURN NULL;\n    END IF;\n    IF {any_null} THEN\n        RAISE EXCEPTION USING ERRCODE = 'foreign_key_violation', MESSAGE = pg_catalog.format('insert or update on table %s violates foreign key constraint %s (emulated by hyperswap)', {}, {}), DETAIL = 'MATCH FULL does not allow mixing of null and nonnull key values.', CONSTRAINT = {};\n    END IF;",
            quote_literal(&self.child().to_string()),
            quote_literal(&self.fk.name),
            quote_literal(&self.fk.name)
        )
    }

    fn parent_body(&self) -> String {
        let fk = self.fk;
        let refs = &fk.referenced_columns;
        let event = match (fk.on_delete, fk.on_update) {
            (d, u) if d == u => format!("DELETE / ON UPDATE ({})", d.sql()),
            (d, u) => format!("DELETE ({}) / ON UPDATE ({})", d.sql(), u.sql()),
        };
        render(
            include_str!("../sql/fk_emulation_parent.sql"),
            &[
                ("event", event),
                ("child", self.child().quoted()),
                ("child_has_null", is_null("c", &fk.columns, " OR ")),
                ("child_text", quote_literal(&self.child().to_string())),
                ("parent_text", quote_literal(&self.job.source.to_string())),
                ("constraint_text", quote_literal(&fk.name)),
                ("new_referenced", prefixed("NEW", refs)),
                ("old_referenced", prefixed("OLD", refs)),
                ("old_has_null", is_null("OLD", refs, " OR ")),
                ("parent", self.job.source.quoted()),
                (
                    "parent_matches_old",
                    matches("p", refs, "OLD", refs, &fk.referenced_eq_ops),
                ),
                ("on_delete", self.action(fk.on_delete, false)),
                ("on_update", self.action(fk.on_update, true)),
            ],
        )
    }

    /// What the key's action does to the children of the old key.
    fn action(&self, kind: FkAction, update: bool) -> String {
        let fk = self.fk;
        let child = self.child().quoted();
        let which = matches("OLD", &fk.referenced_columns, "c", &fk.columns, &fk.eq_ops);
        let set_columns = if !update && !fk.delete_set_columns.is_empty() {
            &fk.delete_set_columns
        } else {
            &fk.columns
        };
        let set = |value: &str| {
            format!(
                "        UPDATE {child} AS c SET ({}) = ROW({}) WHERE {which};",
                quote_list(set_columns),
                vec![value; set_columns.len()].join(", ")
            )
        };
        match kind {
            FkAction::Cascade if update => format!(
                "        UPDATE {child} AS c SET ({}) = ROW({}) WHERE {which};",
                quote_list(&fk.columns),
                prefixed("NEW", &fk.referenced_columns)
            ),
            FkAction::Cascade => format!("        DELETE FROM {child} AS c WHERE {which};"),
            FkAction::SetNull => set("NULL"),
            FkAction::SetDefault => set("DEFAULT"),
            // NO ACTION and RESTRICT: refuse while a child still references the key.
            _ => format!(
                "        PERFORM FROM {child} AS c WHERE {which} LIMIT 1 FOR KEY SHARE OF c;\n        IF FOUND THEN\n            RAISE EXCEPTION USING\n                ERRCODE = 'foreign_key_violation',\n                MESSAGE = pg_catalog.format('update or delete on table %s violates foreign key constraint %s on table %s (emulated by hyperswap)', {parent}, {con}, {child_text}),\n                DETAIL = pg_catalog.format('Key (%s)=(%s) is still referenced from table %s.', {cols}, pg_catalog.concat_ws(', ', {old}), {child_text}),\n                CONSTRAINT = {con},\n                SCHEMA = TG_TABLE_SCHEMA,\n                TABLE = TG_TABLE_NAME;\n        END IF;",
                parent = quote_literal(&self.job.source.to_string()),
                con = quote_literal(&fk.name),
                child_text = quote_literal(&self.child().to_string()),
                cols = quote_literal(&fk.referenced_columns.join(", ")),
                old = prefixed("OLD", &fk.referenced_columns),
            ),
        }
    }
}

/// Before the plan runs: the emulation compares the referencing columns with the
/// referenced ones by the key's own equality operators, schema-qualified; should one not
/// resolve so, the application's first write after cutover would fail. Planning the
/// comparison (nothing is executed) finds that now.
pub async fn check_comparable(
    client: &impl tokio_postgres::GenericClient,
    referenced: &QualifiedName,
    fk: &InboundFk,
) -> Result<()> {
    let sql = format!(
        "SELECT FROM {} AS c JOIN {} AS p ON {} WHERE false",
        fk.table_name.quoted(),
        referenced.quoted(),
        matches("p", &fk.referenced_columns, "c", &fk.columns, &fk.eq_ops)
    );
    client.prepare(&sql).await.map(|_| ()).map_err(|e| {
        crate::error::Error::invalid(
            format!(
                "foreign key {} on {} cannot be emulated: its columns ({}) cannot be compared with ({}) of {referenced} by the key's equality operators: {e}",
                fk.name,
                fk.table_name,
                fk.columns.join(", "),
                fk.referenced_columns.join(", ")
            ),
            "choose `inbound_foreign_keys: drop` for this table (and enforce the reference otherwise), or drop the key before the move",
        )
    })
}

/// Roles that write the referencing table (or delete from / update the referenced
/// one) without the privileges the emulation's checks and actions need as the writing
/// role (SECURITY INVOKER): after cutover their writes would fail. For a warning.
pub async fn roles_lacking_privileges(
    client: &impl tokio_postgres::GenericClient,
    referenced: &QualifiedName,
    fk: &InboundFk,
) -> Result<Vec<String>> {
    let rows = client
        .query(
            "SELECT r.rolname::text FROM pg_catalog.pg_roles r
             WHERE NOT r.rolsuper AND NOT pg_catalog.starts_with(r.rolname::text, 'pg_')
               AND (((pg_catalog.has_table_privilege(r.oid, $1::text::pg_catalog.regclass, 'INSERT')
                      OR pg_catalog.has_any_column_privilege(r.oid, $1::text::pg_catalog.regclass, 'UPDATE'))
                     AND NOT (pg_catalog.has_table_privilege(r.oid, $2::text::pg_catalog.regclass, 'SELECT')
                              AND pg_catalog.has_any_column_privilege(r.oid, $2::text::pg_catalog.regclass, 'UPDATE')))
                 OR ((pg_catalog.has_table_privilege(r.oid, $2::text::pg_catalog.regclass, 'DELETE')
                      OR pg_catalog.has_any_column_privilege(r.oid, $2::text::pg_catalog.regclass, 'UPDATE'))
                     AND NOT (pg_catalog.has_table_privilege(r.oid, $1::text::pg_catalog.regclass, 'SELECT')
                              AND pg_catalog.has_table_privilege(r.oid, $1::text::pg_catalog.regclass, $3))))
             ORDER BY 1",
            &[
                &fk.table_name.quoted(),
                &referenced.quoted(),
                &if fk.on_delete == FkAction::Cascade { "DELETE" } else { "UPDATE" },
            ],
        )
        .await
        .context("checking the privileges the foreign-key emulation needs")?;
    Ok(rows.iter().map(|r| r.get(0)).collect())
}

/// What `--end-fk-emulation` runs, for `plan show` (the run finds the same functions
/// by their comments, since the keys are gone from the catalog by then).
pub fn end_statements(jobs: &[Job], lock: &LockPolicy) -> Vec<Stmt> {
    let drops: Vec<Stmt> = jobs
        .iter()
        .filter(|j| j.emulate_inbound_fks)
        .flat_map(|j| {
            j.table
                .inbound_fks
                .iter()
                .flat_map(move |fk| Emulation::new(j, fk).uninstall())
        })
        .collect();
    if drops.is_empty() {
        return drops;
    }
    std::iter::once(stmt::set_lock_timeout(lock.lock_timeout))
        .chain(drops)
        .collect()
}

/// `hyperswap finalize --end-fk-emulation`: drops every emulation function of `plan`
/// (and so their triggers) in one lock-polite transaction, tried again (quietly) on a
/// lock conflict; returns what it dropped.
pub async fn end(
    client: &mut Client,
    plan: &str,
    log: &SqlLog,
    lock: &LockPolicy,
    cancel: &Cancel,
) -> Result<Vec<String>> {
    let functions = functions_of(client, plan).await?;
    if functions.is_empty() {
        return Ok(functions);
    }
    if lock.attempts == 0 {
        // No attempt allowed (a plan has at least one; a library caller may not).
        return Err(crate::error::Error::invalid(
            format!(
                "could not take the locks to end the foreign-key emulation in {} attempt(s)",
                lock.attempts
            ),
            "end or wait out the transactions holding locks on the tables, then run the command again",
        ));
    }
    let mut stmts = vec![stmt::set_lock_timeout(lock.lock_timeout)];
    stmts.extend(functions.iter().map(|f| drop_function_text(f)));
    let mut retry = Retry::new(Policy::locks(lock));
    loop {
        let tx = client
            .transaction()
            .await
            .context("ending the foreign-key emulation")?;
        match exec_all(&tx, log, &stmts).await {
            Ok(()) => {
                tx.commit()
                    .await
                    .context("ending the foreign-key emulation")?;
                return Ok(functions);
            }
            Err(e) => {
                // Rolled back before the pause: its locks are not held while it waits.
                drop(tx);
                // The last attempt's lock error is the command's.
                retry.after(e, cancel, |_| None).await?;
            }
        }
    }
}

/// Runs `stmts` in `tx`, stopping at the first that fails.
async fn exec_all(tx: &Transaction<'_>, log: &SqlLog, stmts: &[Stmt]) -> Result<()> {
    for s in stmts {
        stmt::exec(tx, log, s).await?;
    }
    Ok(())
}

/// The emulation functions `plan` created, as `schema.name()` (regprocedure text).
pub async fn functions_of(client: &Client, plan: &str) -> Result<Vec<String>> {
    let rows = client
        .query(
            "SELECT p.oid::pg_catalog.regprocedure::text FROM pg_catalog.pg_proc p
             JOIN pg_catalog.pg_namespace n ON n.oid = p.pronamespace
             WHERE n.nspname = $1
               AND pg_catalog.starts_with(pg_catalog.obj_description(p.oid, 'pg_proc'), $2)
             ORDER BY 1",
            &[&TOOL_SCHEMA, &comment_prefix(plan)],
        )
        .await
        .context("looking for the foreign-key emulation functions")?;
    Ok(rows.iter().map(|r| r.get(0)).collect())
}

fn drop_function(f: &QualifiedName) -> Stmt {
    drop_function_text(&format!("{}()", f.quoted()))
}

fn drop_function_text(f: &str) -> Stmt {
    Stmt::noted(
        format!("DROP FUNCTION IF EXISTS {f} CASCADE"),
        "CASCADE drops the triggers calling it, on whichever table they are",
    )
}

fn function_sql(f: &QualifiedName, body: &str) -> String {
    format!(
        "CREATE OR REPLACE FUNCTION {}() RETURNS trigger\n    LANGUAGE plpgsql SECURITY INVOKER SET search_path = pg_catalog, pg_temp\nAS {}",
        f.quoted(),
        dollar_quote(&format!("\n{body};\n"))
    )
}

fn comment(f: &QualifiedName, text: &str) -> Stmt {
    Stmt::new(format!(
        "COMMENT ON FUNCTION {}() IS {}",
        f.quoted(),
        quote_literal(text)
    ))
}

fn quote_list(cols: &[String]) -> String {
    cols.iter()
        .map(|c| quote_ident(c))
        .collect::<Vec<_>>()
        .join(", ")
}

/// `NEW."a", NEW."b"`.
fn prefixed(row: &str, cols: &[String]) -> String {
    cols.iter()
        .map(|c| format!("{row}.{}", quote_ident(c)))
        .collect::<Vec<_>>()
        .join(", ")
}

/// `NEW."a" IS NULL OR NEW."b" IS NULL` (with `joiner`).
fn is_null(row: &str, cols: &[String], joiner: &str) -> String {
    cols.iter()
        .map(|c| format!("{row}.{} IS NULL", quote_ident(c)))
        .collect::<Vec<_>>()
        .join(joiner)
}

/// `left."x" OPERATOR(schema.=) right."y" AND ...`, pairing `left_cols` with
/// `right_cols` by the key's own equality operators `ops` (schema-qualified, so nothing
/// on a search_path can shadow them; the key's, so a type such as citext compares as the
/// key compared). With fewer operators than columns (never for a key read from the
/// catalog), `OPERATOR(pg_catalog.=)`.
fn matches(
    left: &str,
    left_cols: &[String],
    right: &str,
    right_cols: &[String],
    ops: &[String],
) -> String {
    left_cols
        .iter()
        .zip(right_cols)
        .enumerate()
        .map(|(i, (l, r))| {
            let op = ops
                .get(i)
                .map(String::as_str)
                .unwrap_or("OPERATOR(pg_catalog.=)");
            format!("{left}.{} {op} {right}.{}", quote_ident(l), quote_ident(r))
        })
        .collect::<Vec<_>>()
        .join(" AND ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_per_constraint_and_within_the_limit() {
        let long = "k".repeat(63);
        let n = with_suffix(&format!("fk_{long}"), "_0123456789abcdef_parent");
        assert!(n.len() <= 63, "{n}");
        assert!(n.ends_with("_parent"));
    }
}
