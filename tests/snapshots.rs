//! Issue 10: snapshots of every phase's generated SQL for a fixture table, without a
//! database (`insta`; the snapshots live in tests/snapshots/). A change to any
//! statement shows up here as a diff to review; `INSTA_UPDATE=always cargo test --test
//! snapshots` accepts it.

use std::time::Duration;

use hyperswap::backfill::{self, Conflicts, From};
use hyperswap::catalog::{
    Column, ColumnHash, Constraint, ConstraintKind, Grant, Identity, Index, OwnedSequence,
    Persistence, RelKind, Table,
};
use hyperswap::ident::QualifiedName;
use hyperswap::model::Removal;
use hyperswap::model::{ColumnRef, Job, Key, KeyColumn};
use hyperswap::parity::ranges::KeyRange;
use hyperswap::stmt::{LockPolicy, Stmt};

fn column(name: &str, type_sql: &str, not_null: bool) -> Column {
    Column {
        name: name.into(),
        type_sql: type_sql.into(),
        type_name: type_sql.into(),
        not_null,
        default_sql: None,
        identity: Identity::None,
        generated: false,
        collation_sql: None,
        comment: None,
        hash: match type_sql {
            "double precision" => ColumnHash::Send("pg_catalog.float8send".into()),
            _ => ColumnHash::Native,
        },
    }
}

/// `public.metrics (id bigint identity PK, ts timestamptz, device int, value float8,
/// note text)`, an index on (device, ts), a grant, comments: the shape of most plans.
fn job() -> Job {
    let source = QualifiedName::new("public", "metrics");
    let mut id = column("id", "bigint", true);
    id.identity = Identity::ByDefault;
    let mut note = column("note", "text", false);
    note.comment = Some("free text".into());
    let table = Table {
        oid: 16384,
        name: source.clone(),
        relkind: RelKind::Table,
        persistence: Persistence::Permanent,
        partitioned: false,
        inherits: false,
        typed: false,
        owner: "app".into(),
        comment: Some("device readings".into()),
        row_security: false,
        force_row_security: false,
        estimated_rows: 1_000_000.0,
        reloptions: vec!["fillfactor=90".into()],
        toast_reloptions: vec![],
        columns: vec![
            id,
            column("ts", "timestamp with time zone", true),
            column("device", "integer", true),
            column("value", "double precision", false),
            note,
        ],
        constraints: vec![Constraint {
            name: "metrics_pkey".into(),
            kind: ConstraintKind::PrimaryKey,
            definition: "PRIMARY KEY (id)".into(),
            columns: vec!["id".into()],
            index_name: Some("metrics_pkey".into()),
            deferrable: false,
            deferred: false,
            comment: None,
            self_reference: false,
            references_table: None,
        }],
        indexes: vec![
            Index {
                name: "metrics_pkey".into(),
                definition: "CREATE UNIQUE INDEX metrics_pkey ON public.metrics USING btree (id)"
                    .into(),
                prefix: "CREATE UNIQUE INDEX metrics_pkey ON public.metrics USING ".into(),
                unique: true,
                backs_constraint: true,
                valid: true,
                key_columns: vec!["id".into()],
                partial: false,
                comment: None,
                key_collates: vec![String::new()],
                key_op_schemas: vec!["pg_catalog".into()],
            },
            Index {
                name: "metrics_device_ts".into(),
                definition:
                    "CREATE INDEX metrics_device_ts ON public.metrics USING btree (device, ts)"
                        .into(),
                prefix: "CREATE INDEX metrics_device_ts ON public.metrics USING ".into(),
                unique: false,
                backs_constraint: false,
                valid: true,
                key_columns: vec!["device".into(), "ts".into()],
                partial: false,
                comment: Some("by device".into()),
                key_collates: vec![String::new(), String::new()],
                key_op_schemas: vec!["pg_catalog".into(); 2],
            },
        ],
        sequences: vec![OwnedSequence {
            name: QualifiedName::new("public", "metrics_id_seq"),
            column: "id".into(),
            identity: true,
        }],
        grants: vec![Grant {
            grantee: Some("reader".into()),
            privilege: "SELECT".into(),
            grantable: false,
            column: None,
        }],
        inbound_fks: vec![],
        views: vec![],
        policies: vec![],
        triggers: vec![],
    };
    Job {
        ord: 0,
        target: source.sibling("metrics_hs_new".to_string()),
        retired: source.sibling("metrics_hs_old".to_string()),
        source,
        key: Key {
            columns: vec![KeyColumn {
                name: "id".into(),
                type_sql: "bigint".into(),
                collate: String::new(),
                op_schema: "pg_catalog".into(),
            }],
        },
        time: ColumnRef {
            name: "ts".into(),
            type_sql: "timestamp with time zone".into(),
        },
        chunk_time_interval: Duration::from_secs(86_400),
        table,
        drop_inbound_fks: false,
        emulate_inbound_fks: false,
        timescaledb: "public".into(),
        capture_id: hyperswap::model::CaptureId::Oid(16384),
    }
}

fn lock() -> LockPolicy {
    LockPolicy {
        lock_timeout: Duration::from_secs(2),
        attempts: 10,
        backoff: Duration::from_millis(500),
    }
}

/// Statements as a script: each with its note as a comment, separated by blank lines.
fn script(stmts: &[Stmt]) -> String {
    stmts
        .iter()
        .map(|s| match &s.note {
            Some(n) => format!("-- {n}\n{};", s.sql),
            None => format!("{};", s.sql),
        })
        .collect::<Vec<_>>()
        .join("\n\n")
}

#[test]
fn phase_1_create_the_target() {
    let jobs = [job()];
    insta::assert_snapshot!(script(&hyperswap::steps::target::statements(
        "demo",
        &jobs,
        &lock()
    )));
}

#[test]
fn phase_2_copy_triggers() {
    let jobs = [job()];
    insta::assert_snapshot!(script(&hyperswap::steps::trigger::statements(
        "demo",
        &jobs,
        &lock()
    )));
}

#[test]
fn phase_3_backfill() {
    let j = job();
    let mut out = vec![Stmt::new(backfill::bounds_sql(&j))];
    out.extend(backfill::session_statements(
        &hyperswap::plan::BackfillOptions::default(),
    ));
    for from in [From::RangeStart, From::Cursor] {
        out.push(Stmt::new(backfill::next_sql(&j, from)));
        for c in [Conflicts::Fail, Conflicts::Skip] {
            out.push(Stmt::new(backfill::batch_sql(&j, from, c)));
        }
    }
    out.push(Stmt::new(hyperswap::capture::drain_sql(&j)));
    out.extend(
        hyperswap::target::deferred_indexes(&j)
            .into_iter()
            .map(|(_, s)| s),
    );
    insta::assert_snapshot!(script(&out));
}

#[test]
fn phase_4_parity() {
    let j = job();
    let mut out = hyperswap::parity::sql::session_statements();
    let range = KeyRange {
        lo: Some(vec!["1000".into()]),
        hi: Some(vec!["2000".into()]),
    };
    for text in [
        hyperswap::parity::sql::RowText::WholeRow,
        hyperswap::parity::sql::RowText::Columns,
    ] {
        out.push(Stmt::new(
            hyperswap::parity::sql::checksum_sql(&j, &j.source, &range, text).0,
        ));
    }
    out.push(Stmt::new(
        hyperswap::parity::sql::pinpoint_sql(&j, &j.source, &j.target, &range).0,
    ));
    out.extend(hyperswap::parity::sql::repair_statements(
        &j, &j.source, &j.target,
    ));
    insta::assert_snapshot!(script(&out));
}

#[test]
fn phase_5_cutover_and_its_rollback() {
    let jobs = [job()];
    insta::assert_snapshot!(
        "cutover",
        script(&hyperswap::cutover::statements(
            "demo",
            &jobs,
            &lock(),
            Duration::from_millis(150)
        ))
    );
    insta::assert_snapshot!(
        "rollback",
        script(&hyperswap::cutover::reverse_statements(&jobs, &lock()))
    );
}

#[test]
fn abort_and_finalize() {
    let jobs = [job()];
    for (name, kind) in [("abort", Removal::Abort), ("finalize", Removal::Finalize)] {
        let (first, second) = hyperswap::commands::remove::statements(kind, &jobs, &lock());
        insta::assert_snapshot!(
            name,
            format!("{}\n\n-- then\n\n{}", script(&first), script(&second))
        );
    }
}
