//! The journal's record of each plan (its frozen text and sha256, its phase, the SQL that
//! rolls its cutover back), its event log, and which plan moves a table.

use tokio_postgres::{Client, GenericClient};

use super::schema::exists;
use super::trust::{check_owner, check_writers, unreadable};
use crate::error::{Context, Error, Result};
use crate::ident::QualifiedName;
use crate::model::Job;
use crate::phase::Phase;
use crate::plan::Plan;

/// The journal's record of one plan.
#[derive(Debug, Clone)]
pub struct PlanRecord {
    pub name: String,
    pub sha256: String,
    pub text: String,
    pub phase: Phase,
    pub reverse_sql: Option<String>,
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
            "INSERT INTO hyperswap.tables (plan_name, ord, source, target, retired, key_column, time_column, capture_id)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
            &[
                &plan.name,
                &(ord as i32),
                &job.source.to_string(),
                &job.target.to_string(),
                &job.retired.to_string(),
                &job.key.names().join(", "),
                &job.time.name,
                &job.capture_id.recorded(),
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

/// The capture id each table of a started plan was recorded with, by its place in the
/// plan (`None`: a plan of an earlier build; see [`crate::model::CaptureId`]).
pub async fn capture_ids(
    client: &impl GenericClient,
    plan: &str,
) -> Result<std::collections::HashMap<i32, Option<i64>>> {
    if !super::exists(client).await? {
        return Ok(Default::default());
    }
    let rows = client
        .query(
            // A journal an earlier build made has no capture_id until `plan apply`
            // brings it up to date: every other command reads it as it is.
            "SELECT t.ord, (pg_catalog.to_jsonb(t) OPERATOR(pg_catalog.->>) 'capture_id')::pg_catalog.int8
             FROM hyperswap.tables t WHERE t.plan_name = $1",
            &[&plan],
        )
        .await
        .context("reading the names of the plan's capture objects from the journal")?;
    Ok(rows.iter().map(|r| (r.get(0), r.get(1))).collect())
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

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;

    const PLAN: &str = "name: metrics-move\ntables:\n  - source: public.metrics\n    time_column: ts\n    chunk_time_interval: 1 day\n";

    fn plan(text: &str) -> Plan {
        Plan::parse(Path::new("plans/metrics.yaml"), text.to_string()).unwrap()
    }

    fn record(of: &Plan) -> PlanRecord {
        PlanRecord {
            name: of.name.clone(),
            sha256: of.sha256.clone(),
            text: of.text.clone(),
            phase: Phase::Backfilling,
            reverse_sql: None,
        }
    }

    #[test]
    fn the_plan_as_it_started_passes() {
        let p = plan(PLAN);
        assert!(check_frozen(&p, Some(&record(&p))).is_ok());
    }

    #[test]
    fn a_plan_that_never_started_passes() {
        assert!(check_frozen(&plan(PLAN), None).is_ok());
    }

    #[test]
    fn a_changed_plan_is_refused_naming_the_plan_and_a_fix() {
        let started = plan(PLAN);
        let changed = plan(&format!("{PLAN}backfill:\n  batch_rows: 500\n"));
        assert_eq!(changed.name, started.name);
        assert_ne!(changed.sha256, started.sha256);
        match check_frozen(&changed, Some(&record(&started))) {
            Err(Error::Invalid { problem, fix }) => {
                assert_eq!(
                    problem,
                    format!(
                        "plan file plans/metrics.yaml changed since plan `metrics-move` started (journal sha256 {}, file sha256 {}); a plan is frozen once it runs",
                        &started.sha256[..12],
                        &changed.sha256[..12]
                    )
                );
                assert!(fix.starts_with("restore the file as it was"), "{fix}");
                assert!(fix.contains("plan_text"), "{fix}");
                assert!(fix.contains("give the changed plan a new `name`"), "{fix}");
            }
            other => panic!("expected the changed plan refused, got {other:?}"),
        }
    }

    #[test]
    fn only_the_sha256_is_compared() {
        // The journal's text and phase do not matter: the file's sha256 is the plan.
        let p = plan(PLAN);
        let mut r = record(&p);
        r.text = "something else".into();
        r.phase = Phase::CutOver;
        r.reverse_sql = Some("SELECT 1".into());
        assert!(check_frozen(&p, Some(&r)).is_ok());
        r.sha256 = plan(&PLAN.replace("1 day", "2 days")).sha256;
        assert!(check_frozen(&p, Some(&r)).is_err());
    }
}
