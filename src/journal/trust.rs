//! Who may read and change the journal: it holds SQL that rollback runs and the results
//! the cutover trusts, so a journal another role could write is refused, naming the
//! statement that takes each right away.

use tokio_postgres::GenericClient;

use crate::error::{Context, Error, Result};
use crate::ident::quote_ident;
use crate::model::TOOL_SCHEMA;

/// A journal this role may not read (another role created it): says whose it is and
/// the statement that lets this role in; other errors pass through.
pub(super) async fn unreadable(client: &impl GenericClient, e: Error) -> Error {
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

/// What lets a role other than the journal's owner change the journal (see
/// sql/journal_writers.sql): (object, privileges or the attached object, grantee or ""),
/// a grantee's privileges on one object together.
async fn writers(client: &impl GenericClient) -> Result<Vec<(String, String, String)>> {
    let rows = client
        .query(
            include_str!("../../sql/journal_writers.sql"),
            &[&TOOL_SCHEMA, &crate::capture::OWNER_WRITABLE],
        )
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
pub(super) async fn revoke_writers(tx: &impl GenericClient) -> Result<()> {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_finding_is_taken_away_by_its_own_statement() {
        // Rows as sql/journal_writers.sql returns them, a grantee's privileges on one
        // object already together.
        assert_eq!(
            writer_fix("hyperswap.plans", "trigger audit", ""),
            "DROP TRIGGER audit ON hyperswap.plans;"
        );
        assert_eq!(
            writer_fix("hyperswap.events", "rule \"no delete\"", ""),
            "DROP RULE \"no delete\" ON hyperswap.events;"
        );
        assert_eq!(
            writer_fix("schema hyperswap", "CREATE", "app"),
            "REVOKE CREATE ON SCHEMA hyperswap FROM app;"
        );
        assert_eq!(
            writer_fix(
                "hyperswap.plans",
                "INSERT, UPDATE (reverse_sql)",
                "\"App Role\""
            ),
            "REVOKE INSERT, UPDATE (reverse_sql) ON hyperswap.plans FROM \"App Role\";"
        );
        assert_eq!(
            writer_fix("hyperswap.ranges_id_seq", "UPDATE", "PUBLIC"),
            "REVOKE UPDATE ON hyperswap.ranges_id_seq FROM PUBLIC;"
        );
    }

    #[test]
    fn only_a_prefix_makes_a_trigger_rule_or_schema() {
        // A privilege list is never read as a trigger or rule, nor a table as a schema.
        assert_eq!(
            writer_fix("hyperswap.plans", "TRIGGER", "app"),
            "REVOKE TRIGGER ON hyperswap.plans FROM app;"
        );
        assert_eq!(
            writer_fix("hyperswap.schema_notes", "DELETE", "app"),
            "REVOKE DELETE ON hyperswap.schema_notes FROM app;"
        );
    }
}
