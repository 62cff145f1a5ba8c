//! What the journal records of both tables besides columns and indexes (constraints,
//! policies, storage parameters), so that a later change to one side only is named
//! before cutover.

use tokio_postgres::GenericClient;

use crate::error::{Context, Result};
use crate::ident::quote_literal;
use crate::model::Job;
use crate::stmt::Stmt;

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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalog::{Persistence, RelKind, Table};
    use crate::ident::QualifiedName;
    use crate::model::{ColumnRef, Key};

    /// The second table of a plan: public.metrics moving to public.metrics_hs_new.
    fn job() -> Job {
        let source = QualifiedName::new("public", "metrics");
        Job {
            ord: 1,
            source: source.clone(),
            target: QualifiedName::new("public", "metrics_hs_new"),
            retired: QualifiedName::new("public", "metrics_hs_old"),
            key: Key { columns: vec![] },
            time: ColumnRef {
                name: "ts".into(),
                type_sql: "timestamptz".into(),
            },
            chunk_time_interval: std::time::Duration::from_secs(86_400),
            capture_id: crate::model::CaptureId::Oid(1),
            table: Table {
                oid: 1,
                name: source,
                relkind: RelKind::Table,
                persistence: Persistence::Permanent,
                partitioned: false,
                inherits: false,
                typed: false,
                owner: "app".into(),
                comment: None,
                row_security: false,
                force_row_security: false,
                estimated_rows: 0.0,
                reloptions: vec![],
                toast_reloptions: vec![],
                columns: vec![],
                constraints: vec![],
                indexes: vec![],
                sequences: vec![],
                grants: vec![],
                inbound_fks: vec![],
                views: vec![],
                policies: vec![],
                triggers: vec![],
            },
            drop_inbound_fks: false,
            emulate_inbound_fks: false,
            timescaledb: "public".into(),
        }
    }

    #[test]
    fn phase_1_records_both_tables_on_the_plans_row_of_the_table() {
        let s = record_definitions("metrics-move", &job());
        let (source, target) = (
            crate::catalog::definitions_sql(&QualifiedName::new("public", "metrics")),
            crate::catalog::definitions_sql(&QualifiedName::new("public", "metrics_hs_new")),
        );
        assert!(
            source.contains(r#"to_regclass('"public"."metrics"')"#),
            "{source}"
        );
        assert!(
            target.contains(r#"to_regclass('"public"."metrics_hs_new"')"#),
            "{target}"
        );
        assert_eq!(
            s.sql,
            format!(
                "UPDATE hyperswap.tables SET source_definitions = ({source}), target_definitions = ({target})\nWHERE plan_name = 'metrics-move' AND ord = 1"
            )
        );
        assert!(
            s.note
                .as_deref()
                .unwrap()
                .starts_with("the journal records the constraints"),
            "{:?}",
            s.note
        );
    }

    #[test]
    fn after_the_backfill_only_the_target_is_recorded_again() {
        let s = record_target_definitions("metrics-move", &job());
        let target =
            crate::catalog::definitions_sql(&QualifiedName::new("public", "metrics_hs_new"));
        assert_eq!(
            s.sql,
            format!(
                "UPDATE hyperswap.tables SET target_definitions = ({target})\nWHERE plan_name = 'metrics-move' AND ord = 1"
            )
        );
        assert!(!s.sql.contains("source_definitions"), "{}", s.sql);
        assert!(
            !s.sql.contains(r#"to_regclass('"public"."metrics"')"#),
            "{}",
            s.sql
        );
        assert!(s.note.is_some());
    }

    #[test]
    fn the_plan_name_is_a_quoted_literal() {
        let s = record_target_definitions("o'brien", &job());
        assert!(
            s.sql
                .ends_with("\nWHERE plan_name = 'o''brien' AND ord = 1"),
            "{}",
            s.sql
        );
    }
}
