//! The checks of a plan that need no database: the table as the catalog described it
//! goes in, the problems (each with its fix) come out. Unit-tested below.

use crate::catalog::{ConstraintKind, Index, Table, ViewKind};
use crate::error::{Error, Result};
use crate::ident::{display_ident, quote_ident};
use crate::model::{Job, Key, KeyColumn};
use crate::plan::InboundForeignKeys;

/// A foreign key from one table of the plan to another: the copy's key would still
/// point at the original, and TimescaleDB rejects keys between hypertables anyway.
pub(super) fn check_no_keys_between(jobs: &[Job]) -> Result<()> {
    for job in jobs {
        for con in job
            .table
            .constraints
            .iter()
            .filter(|c| c.kind == ConstraintKind::ForeignKey)
        {
            let Some(to) = &con.references_table else {
                continue;
            };
            if let Some(other) = jobs.iter().find(|j| {
                &format!("{}.{}", j.source.schema, j.source.name) == to && j.ord != job.ord
            }) {
                return Err(Error::invalid(
                    format!(
                        "foreign key {} on {} references {}, which the same plan moves; a hypertable cannot reference a hypertable",
                        con.name, job.source, other.source
                    ),
                    format!("drop {} before the move (and enforce the reference otherwise), or move the tables in separate plans of which only one is referenced", con.name),
                ));
            }
        }
    }
    Ok(())
}

/// The backfill's key: the plan's `key` columns, else the primary key. Its columns must
/// be NOT NULL and exactly the key columns of a valid, non-partial unique index, whose
/// column order (and collations) the backfill and parity then follow.
pub(super) fn check_key(table: &Table, key: Option<&[String]>, field: &str) -> Result<Key> {
    let name = &table.name;
    let wanted: Vec<String> = match key {
        Some(k) => k.to_vec(),
        None => match table.primary_key() {
            Some(pk) => pk.columns.clone(),
            None => return Err(no_primary_key(table, field)),
        },
    };
    let whose = if key.is_some() {
        format!("{field}.key")
    } else {
        "its primary key".to_string()
    };
    for c in &wanted {
        if table.column(c).is_none() {
            return Err(Error::invalid(
                format!("{name} has no column {} ({field}.key)", display_ident(c)),
                format!(
                    "name its columns as the plan must write them: {}",
                    plan_spellings(table)
                ),
            ));
        }
    }
    let Some(index) = unique_index_on(table, &wanted) else {
        return Err(Error::invalid(
            format!(
                "({}) ({whose}) is not unique in {name}: no valid, non-partial unique index has exactly these columns",
                quote_cols(&wanted)
            ),
            format!(
                "name the columns of a unique index with `key:` under {field}{}, or create one without blocking writes: CREATE UNIQUE INDEX CONCURRENTLY ON {} ({})",
                candidates_hint(table),
                name.quoted(),
                quote_cols(&wanted)
            ),
        ));
    };
    let nullable: Vec<&str> = wanted
        .iter()
        .filter(|c| table.column(c).is_some_and(|col| !col.not_null))
        .map(String::as_str)
        .collect();
    if !nullable.is_empty() {
        return Err(Error::invalid(
            format!(
                "({}) ({whose}) is unique in {name}, but {} allow(s) NULL, so rows could not be told apart",
                quote_cols(&wanted),
                nullable.iter().map(|c| display_ident(c)).collect::<Vec<_>>().join(", ")
            ),
            format!(
                "if no row holds a NULL there: {}",
                nullable
                    .iter()
                    .map(|c| format!("ALTER TABLE {} ALTER COLUMN {} SET NOT NULL;", name.quoted(), quote_ident(c)))
                    .collect::<Vec<_>>()
                    .join(" ")
            ),
        ));
    }
    let columns = index
        .key_columns
        .iter()
        .zip(&index.key_collates)
        .zip(&index.key_op_schemas)
        .map(|((c, collate), op_schema)| {
            let col = table.column(c).expect("checked above");
            KeyColumn {
                name: col.name.clone(),
                type_sql: col.type_sql.clone(),
                collate: collate.clone(),
                op_schema: op_schema.clone(),
            }
        })
        .collect::<Vec<KeyColumn>>();
    // The backfill and parity compare the key with OPERATOR(schema.op): each column's
    // btree operators must be there under the usual names, in one schema.
    if let Some(c) = columns.iter().find(|c| c.op_schema.is_empty()) {
        return Err(Error::invalid(
            format!(
                "key column {} of {name} is of type {}, whose btree operator class has no operators named <, <=, =, >=, > in one schema; hyperswap compares keys with them",
                display_ident(&c.name),
                c.type_sql
            ),
            format!(
                "name another unique key with `key:` under {field}{}",
                candidates_hint(table)
            ),
        ));
    }
    Ok(Key { columns })
}

/// A valid, non-partial unique index whose key columns are exactly `columns` (in any
/// order), preferring the one that backs the primary key.
pub(super) fn unique_index_on<'a>(table: &'a Table, columns: &[String]) -> Option<&'a Index> {
    let same = |i: &Index| {
        i.key_columns.len() == columns.len() && columns.iter().all(|c| i.key_columns.contains(c))
    };
    let pk_index = table.primary_key().and_then(|pk| pk.index_name.clone());
    let mut found: Vec<&Index> = table
        .indexes
        .iter()
        .filter(|i| i.unique && i.valid && !i.partial && same(i))
        .collect();
    found.sort_by_key(|i| Some(&i.name) != pk_index.as_ref());
    found.into_iter().next()
}

/// The unique indexes on NOT NULL columns that could serve as the key.
pub(super) fn key_candidates(table: &Table) -> Vec<&Index> {
    table
        .indexes
        .iter()
        .filter(|i| {
            i.unique
                && i.valid
                && !i.partial
                && i.key_columns
                    .iter()
                    .all(|c| table.column(c).is_some_and(|col| col.not_null))
        })
        .collect()
}

/// `` `key: [a, b]` or `key: [c]` ``: the usable keys as the plan would name them.
pub(super) fn candidate_list(table: &Table) -> String {
    key_candidates(table)
        .iter()
        .map(|i| format!("`key: [{}]`", plan_cols(&i.key_columns)))
        .collect::<Vec<_>>()
        .join(" or ")
}

pub(super) fn candidates_hint(table: &Table) -> String {
    let list = candidate_list(table);
    if list.is_empty() {
        String::new()
    } else {
        format!(" (usable here: {list})")
    }
}

pub(super) fn no_primary_key(table: &Table, field: &str) -> Error {
    let name = &table.name;
    let candidates = candidate_list(table);
    if !candidates.is_empty() {
        return Error::invalid(
            format!("{name} has no primary key; say which unique key hyperswap pages through"),
            format!("add {candidates} under {field}"),
        );
    }
    // Unique indexes whose only flaw is a column that allows NULL.
    let nullable: Vec<String> = table
        .indexes
        .iter()
        .filter(|i| {
            i.unique && i.valid && !i.partial && i.key_columns.iter().all(|c| table.column(c).is_some())
        })
        .map(|i| {
            let open: Vec<&String> = i
                .key_columns
                .iter()
                .filter(|c| table.column(c).is_some_and(|col| !col.not_null))
                .collect();
            format!(
                "unique index {} on ({}) would do, but {} allow(s) NULL: ALTER TABLE {} {}; then `key: [{}]` under {field}",
                display_ident(&i.name),
                quote_cols(&i.key_columns),
                open.iter().map(|c| display_ident(c)).collect::<Vec<_>>().join(", "),
                name.quoted(),
                open.iter()
                    .map(|c| format!("ALTER COLUMN {} SET NOT NULL", quote_ident(c)))
                    .collect::<Vec<_>>()
                    .join(", "),
                plan_cols(&i.key_columns)
            )
        })
        .collect();
    Error::invalid(
        format!("{name} has no primary key and no unique index on NOT NULL columns: hyperswap needs a unique NOT NULL key to copy and compare rows"),
        if nullable.is_empty() {
            format!(
                "add one without blocking writes: CREATE UNIQUE INDEX CONCURRENTLY {idx} ON {t} (<columns>); then ALTER TABLE {t} ADD PRIMARY KEY USING INDEX {idx} (its columns must be NOT NULL)",
                idx = quote_ident(&format!("{}_key", name.name)),
                t = name.quoted(),
            )
        } else {
            nullable.join("; or ")
        },
    )
}

/// A column as the plan must write it: bare when SQL would fold it to itself, else
/// double-quoted inside YAML quotes (`'"Time"'`).
pub fn plan_spelling(column: &str) -> String {
    let shown = display_ident(column);
    if shown.starts_with('"') {
        format!("'{shown}'")
    } else {
        shown
    }
}

pub(super) fn plan_cols(cols: &[String]) -> String {
    cols.iter()
        .map(|c| plan_spelling(c))
        .collect::<Vec<_>>()
        .join(", ")
}

pub(super) fn plan_spellings(table: &Table) -> String {
    plan_cols(
        &table
            .columns
            .iter()
            .map(|c| c.name.clone())
            .collect::<Vec<_>>(),
    )
}

pub(super) fn quote_cols(cols: &[String]) -> String {
    cols.iter()
        .map(|c| display_ident(c))
        .collect::<Vec<_>>()
        .join(", ")
}

pub(super) fn check_constraints(
    table: &Table,
    field: &str,
    choice: InboundForeignKeys,
) -> Result<()> {
    let name = &table.name;
    if let Some(x) = table
        .constraints
        .iter()
        .find(|c| c.kind == ConstraintKind::Exclusion)
    {
        return Err(Error::invalid(
            format!("{name} ({field}) has exclusion constraint {}, which a hypertable cannot carry as is", x.name),
            "drop or rewrite the exclusion constraint to include the time column, then run again",
        ));
    }
    if let Some(f) = table.constraints.iter().find(|c| c.self_reference) {
        return Err(Error::invalid(
            format!(
                "{name} ({field}) has a self-referencing foreign key {}",
                f.name
            ),
            "drop it before the move: a hypertable cannot reference itself",
        ));
    }
    if let (Some(fk), InboundForeignKeys::Refuse) = (table.inbound_fks.first(), choice) {
        let each: Vec<String> = table
            .inbound_fks
            .iter()
            .map(|k| {
                format!(
                    "\n  - {} on {} ({}): `drop` would lose {}",
                    k.name,
                    k.table_name,
                    k.columns.join(", "),
                    crate::inbound_fks::losses(k)
                )
            })
            .collect();
        return Err(Error::invalid(
            format!(
                "{name} ({field}) is referenced by foreign key {} on {}; after the move the key is no longer unique without the time column, so the foreign key cannot follow:{}",
                fk.name, fk.table, each.concat()
            ),
            format!(
                "choose in the plan, under {field}: `inbound_foreign_keys: emulate` replaces such keys with triggers that keep their meaning (existence check, ON DELETE / ON UPDATE), or `inbound_foreign_keys: drop` drops them (both in the cutover transaction; rollback adds them back); or drop {} yourself first",
                fk.name
            ),
        ));
    }
    if let Some(m) = table
        .views
        .iter()
        .find(|v| v.kind == ViewKind::Materialized)
    {
        return Err(Error::invalid(
            format!("materialized view {} reads {name} ({field}); it cannot be re-pointed at the new table in place", m.name),
            format!("drop {} before the move and create it again after cutover", m.name),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalog::{Column, ColumnHash, Constraint, Persistence, View};
    use crate::ident::QualifiedName;

    fn column(name: &str, not_null: bool) -> Column {
        Column {
            name: name.into(),
            type_sql: "bigint".into(),
            type_name: "int8".into(),
            not_null,
            default_sql: None,
            identity: crate::catalog::Identity::None,
            generated: false,
            collation_sql: None,
            comment: None,
            hash: ColumnHash::Native,
        }
    }

    fn index(name: &str, columns: &[&str], unique: bool) -> Index {
        Index {
            name: name.into(),
            definition: String::new(),
            prefix: String::new(),
            unique,
            backs_constraint: false,
            valid: true,
            key_columns: columns.iter().map(|c| c.to_string()).collect(),
            partial: false,
            comment: None,
            key_collates: vec![String::new(); columns.len()],
            key_op_schemas: vec!["pg_catalog".to_string(); columns.len()],
        }
    }

    fn constraint(name: &str, kind: ConstraintKind, columns: &[&str]) -> Constraint {
        Constraint {
            name: name.into(),
            kind,
            definition: String::new(),
            columns: columns.iter().map(|c| c.to_string()).collect(),
            index_name: Some(name.into()),
            deferrable: false,
            deferred: false,
            comment: None,
            self_reference: false,
            references_table: None,
        }
    }

    /// `public.t (id bigint NOT NULL PRIMARY KEY, ts NOT NULL, n nullable)`, a unique
    /// index on (n) and one on (ts, id).
    fn table() -> Table {
        Table {
            oid: 1,
            name: QualifiedName::new("public", "t"),
            relkind: crate::catalog::RelKind::Table,
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
            columns: vec![column("id", true), column("ts", true), column("n", false)],
            constraints: vec![constraint("t_pkey", ConstraintKind::PrimaryKey, &["id"])],
            indexes: vec![
                index("t_pkey", &["id"], true),
                index("t_n_key", &["n"], true),
                index("t_ts_id", &["ts", "id"], true),
                index("t_ts", &["ts"], false),
            ],
            sequences: vec![],
            grants: vec![],
            inbound_fks: vec![],
            views: vec![],
            policies: vec![],
            triggers: vec![],
        }
    }

    fn problem(r: Result<impl std::fmt::Debug>) -> String {
        match r {
            Err(Error::Invalid { problem, fix }) => format!("{problem} / {fix}"),
            other => panic!("expected a problem with a fix, got {other:?}"),
        }
    }

    #[test]
    fn the_primary_key_is_the_default_key() {
        let key = check_key(&table(), None, "tables[0]").unwrap();
        assert_eq!(key.names(), vec!["id".to_string()]);
    }

    #[test]
    fn a_named_key_needs_a_unique_index_with_exactly_its_columns() {
        let t = table();
        // In the unique index's column order, so the index serves every batch.
        let key = check_key(&t, Some(&["id".into(), "ts".into()]), "tables[0]").unwrap();
        assert_eq!(key.names(), vec!["ts".to_string(), "id".to_string()]);
        let p = problem(check_key(&t, Some(&["ts".into()]), "tables[0]"));
        assert!(p.contains("is not unique"), "{p}");
        assert!(p.contains("CREATE UNIQUE INDEX CONCURRENTLY"), "{p}");
    }

    #[test]
    fn a_key_is_compared_with_its_own_operators() {
        let mut t = table();
        let key = check_key(&t, Some(&["id".into(), "ts".into()]), "tables[0]").unwrap();
        let v = vec!["$x".to_string(), "$y".to_string()];
        // One schema: one row comparison, which the index serves as one range.
        assert_eq!(
            key.compare(None, ">", &v),
            "(\"ts\", \"id\") OPERATOR(pg_catalog.>) ($x, $y)"
        );
        // Operators of two schemas (a citext beside a timestamptz): column by column.
        t.indexes[2].key_op_schemas = vec!["public".into(), "pg_catalog".into()];
        let key = check_key(&t, Some(&["id".into(), "ts".into()]), "tables[0]").unwrap();
        assert_eq!(
            key.compare(Some("a"), ">", &v),
            "(a.\"ts\" OPERATOR(public.>=) $x AND (a.\"ts\" OPERATOR(public.>) $x OR (a.\"ts\" OPERATOR(public.=) $x AND a.\"id\" OPERATOR(pg_catalog.>) $y)))"
        );
        assert_eq!(
            key.compare(None, "=", &v),
            "(\"ts\" OPERATOR(public.=) $x AND \"id\" OPERATOR(pg_catalog.=) $y)"
        );
        assert!(key.any_of("s").starts_with(
            "EXISTS (SELECT FROM s AS hyperswap_v (hyperswap_v1, hyperswap_v2) WHERE"
        ));
        // No btree operators under the usual names: refused with the alternatives.
        t.indexes[0].key_op_schemas = vec![String::new()];
        let p = problem(check_key(&t, None, "tables[0]"));
        assert!(p.contains("no operators named <, <=, =, >=, >"), "{p}");
    }

    #[test]
    fn a_key_column_that_is_missing_or_nullable_is_refused() {
        let t = table();
        let p = problem(check_key(&t, Some(&["nope".into()]), "tables[0]"));
        assert!(p.contains("has no column nope (tables[0].key)"), "{p}");
        let p = problem(check_key(&t, Some(&["n".into()]), "tables[0]"));
        assert!(p.contains("allow(s) NULL"), "{p}");
        assert!(p.contains("SET NOT NULL"), "{p}");
    }

    #[test]
    fn without_a_primary_key_the_candidates_are_named() {
        let mut t = table();
        t.constraints.clear();
        let p = problem(check_key(&t, None, "tables[0]"));
        assert!(p.contains("key:"), "{p}");
    }

    #[test]
    fn constraints_a_hypertable_cannot_carry_are_refused() {
        let mut t = table();
        assert!(check_constraints(&t, "tables[0]", InboundForeignKeys::Refuse).is_ok());
        t.constraints
            .push(constraint("no_overlap", ConstraintKind::Exclusion, &["ts"]));
        let p = problem(check_constraints(
            &t,
            "tables[0]",
            InboundForeignKeys::Refuse,
        ));
        assert!(p.contains("exclusion constraint no_overlap"), "{p}");
        let mut t = table();
        let mut fk = constraint("parent", ConstraintKind::ForeignKey, &["n"]);
        fk.self_reference = true;
        t.constraints.push(fk);
        let p = problem(check_constraints(
            &t,
            "tables[0]",
            InboundForeignKeys::Refuse,
        ));
        assert!(p.contains("self-referencing foreign key parent"), "{p}");
        let mut t = table();
        t.views.push(View {
            name: QualifiedName::new("public", "daily"),
            kind: ViewKind::Materialized,
            definition: String::new(),
            options: String::new(),
        });
        let p = problem(check_constraints(
            &t,
            "tables[0]",
            InboundForeignKeys::Refuse,
        ));
        assert!(p.contains("materialized view"), "{p}");
    }
}
