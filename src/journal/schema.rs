//! The journal's schema: whether it exists, creating it (with the guard against ALTER
//! TABLE of tables being moved), and dropping it once nothing is left in it.

use tokio_postgres::{Client, GenericClient};

use super::lock::LOCK_CLASS;
use super::trust::{check_owner, check_writers, revoke_writers};
use crate::error::{Context, Result};
use crate::ident::quote_ident;
use crate::model::TOOL_SCHEMA;

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
    tx.batch_execute(include_str!("../../sql/journal.sql"))
        .await
        .context("creating the hyperswap journal")?;
    if created {
        // Default privileges (ALTER DEFAULT PRIVILEGES ... GRANT ... ON TABLES TO app)
        // may have handed the journal's brand-new tables to other roles (in a schema
        // created now or before): they are the tool's alone.
        revoke_writers(&tx).await?;
    }
    check_writers(&tx).await?;
    tx.batch_execute(include_str!("../../sql/ddl_guard.sql"))
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

/// Drops the journal's tables, and the schema when nothing else is left in it.
pub(super) async fn drop_journal(tx: &impl GenericClient) -> Result<()> {
    let schema = quote_ident(TOOL_SCHEMA);
    tx.batch_execute(&format!(
        "DROP TABLE IF EXISTS {schema}.catch_up; DROP TABLE {schema}.parity_ranges, {schema}.parity_runs, {schema}.ranges, {schema}.events, {schema}.tables, {schema}.plans"
    ))
    .await
    .context("removing the hyperswap journal")?;
    // Foreign-key emulation functions (of this plan or another's) outlive the journal;
    // the schema goes with the last of them.
    drop_schema_if_empty(tx).await
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
