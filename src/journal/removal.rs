//! A plan leaving the journal (`abort`, `finalize`), its events kept or dropped, and
//! the journal going with the last of them.

use tokio_postgres::Client;

use super::schema::{drop_journal, exists};
use super::trust::{check_owner, check_writers};
use crate::error::{Context, Error, Result};
use crate::ident::quote_ident;
use crate::model::TOOL_SCHEMA;

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
