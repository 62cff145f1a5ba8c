//! Phase 1, create the target: a hypertable with the source's columns, defaults,
//! constraints, indexes, owner, grants and comments, adjusted to hypertable rules
//! (every unique key gains the time column). Runs in one transaction with the phase
//! change, so a crash leaves either nothing or the whole empty target.

use crate::catalog::{Column, Constraint, ConstraintKind, Index};
use crate::ident::{quote_ident, quote_literal};
use crate::model::Job;
use crate::stmt::Stmt;

/// Every statement that creates `job`'s target, in order.
pub fn statements(job: &Job) -> Vec<Stmt> {
    let mut out = vec![
        create_table(job),
        create_hypertable(job),
        Stmt::noted(
            format!("ALTER TABLE {} SET (autovacuum_enabled = false)", job.target.quoted()),
            "until the backfill's indexes are built: an autovacuum of a freshly filled chunk would hold up the build of each chunk's index (reset after it)",
        ),
    ];
    out.extend(
        job.table
            .indexes
            .iter()
            .filter(|i| !i.backs_constraint && !deferred(i))
            .map(|i| create_index(job, i)),
    );
    out.push(Stmt::noted(
        format!(
            "ALTER TABLE {} OWNER TO {}",
            job.target.quoted(),
            quote_ident(&job.table.owner)
        ),
        "same owner as the source",
    ));
    out.extend(grants(job));
    out.extend(comments(job));
    out.extend(policies(job));
    out
}

/// Row-level security: the source's policies, and RLS enabled from the start when the
/// source has it, so a role the source restricts to some rows sees no more in the new
/// table (it has the source's grants). The copy runs as the owner, whom RLS does not
/// restrict unless FORCE, which the new table takes only at cutover.
fn policies(job: &Job) -> Vec<Stmt> {
    let mut out: Vec<Stmt> = job
        .table
        .policies
        .iter()
        .map(|p| {
            let mut sql = format!(
                "CREATE POLICY {} ON {} AS {} FOR {} TO {}",
                quote_ident(&p.name),
                job.target.quoted(),
                if p.permissive {
                    "PERMISSIVE"
                } else {
                    "RESTRICTIVE"
                },
                p.command,
                p.roles.join(", ")
            );
            if let Some(e) = &p.using_expr {
                sql.push_str(&format!(" USING ({e})"));
            }
            if let Some(e) = &p.check_expr {
                sql.push_str(&format!(" WITH CHECK ({e})"));
            }
            Stmt::new(sql)
        })
        .collect();
    if job.table.row_security {
        out.push(Stmt::noted(
            format!(
                "ALTER TABLE {} ENABLE ROW LEVEL SECURITY",
                job.target.quoted()
            ),
            "as on the source: the new table's rows are never more visible than the source's",
        ));
    }
    out
}

fn create_table(job: &Job) -> Stmt {
    let mut lines: Vec<String> = job
        .table
        .columns
        .iter()
        .map(|c| column_def(job, c))
        .collect();
    let mut notes = Vec::new();
    for con in &job.table.constraints {
        if let Some((line, note)) = constraint_def(job, con) {
            lines.push(line);
            notes.extend(note);
        }
    }
    let time = &job.time.name;
    if job.table.column(time).is_some_and(|c| !c.not_null) {
        notes.push(format!(
            "adjusted: {} is NOT NULL on the target (a hypertable's time column cannot be NULL)",
            quote_ident(time)
        ));
    }
    for c in job
        .table
        .columns
        .iter()
        .filter(|c| c.identity != crate::catalog::Identity::None)
    {
        notes.push(format!(
            "adjusted: identity column {} becomes an identity column of the new table at cutover, continuing its sequence",
            quote_ident(&c.name)
        ));
    }
    let sql = format!(
        "CREATE TABLE {} (\n    {}\n){}",
        job.target.quoted(),
        lines.join(",\n    "),
        with_storage_parameters(&job.table)
    );
    let head = format!("new table for {}, made a hypertable below", job.source);
    let note = std::iter::once(head)
        .chain(notes)
        .collect::<Vec<_>>()
        .join("\n");
    Stmt::noted(sql, note)
}

fn column_def(job: &Job, c: &Column) -> String {
    let mut def = format!("{} {}", quote_ident(&c.name), c.type_sql);
    if let Some(coll) = &c.collation_sql {
        def.push_str(&format!(" COLLATE {coll}"));
    }
    match (&c.default_sql, c.generated) {
        (Some(expr), true) => def.push_str(&format!(" GENERATED ALWAYS AS ({expr}) STORED")),
        (Some(expr), _) => def.push_str(&format!(" DEFAULT {expr}")),
        (None, _) => {}
    }
    if c.not_null || c.name == job.time.name {
        def.push_str(" NOT NULL");
    }
    def
}

/// Constraints carried inside CREATE TABLE; unique keys gain the time column.
fn constraint_def(job: &Job, con: &Constraint) -> Option<(String, Option<String>)> {
    let name = quote_ident(&con.name);
    match con.kind {
        ConstraintKind::PrimaryKey | ConstraintKind::Unique => Some(unique_key(job, con)),
        ConstraintKind::Check if !con.definition.ends_with("NOT VALID") => {
            Some((format!("CONSTRAINT {name} {}", con.definition), None))
        }
        ConstraintKind::ForeignKey if !con.definition.ends_with("NOT VALID") => {
            Some((format!("CONSTRAINT {name} {}", con.definition), None))
        }
        _ => None,
    }
}

fn unique_key(job: &Job, con: &Constraint) -> (String, Option<String>) {
    let kind = if con.kind == ConstraintKind::PrimaryKey {
        "PRIMARY KEY"
    } else {
        "UNIQUE"
    };
    let mut cols = con.columns.clone();
    let mut note = None;
    if !cols.contains(&job.time.name) {
        cols.push(job.time.name.clone());
        note = Some(format!(
            "adjusted: {} {} ({}) becomes ({}) on the target: a hypertable's unique keys must include its time column",
            kind.to_lowercase(),
            quote_ident(&con.name),
            quote_cols(&con.columns),
            quote_cols(&cols)
        ));
    }
    let index = con
        .index_name
        .as_deref()
        .and_then(|n| job.table.indexes.iter().find(|i| i.name == n));
    let include = index.map(included_columns).unwrap_or_default();
    let mut def = format!(
        "CONSTRAINT {} {kind} ({}){include}",
        quote_ident(&job.new_index_name(&con.name)),
        quote_cols(&cols)
    );
    if con.deferrable {
        def.push_str(if con.deferred {
            " DEFERRABLE INITIALLY DEFERRED"
        } else {
            " DEFERRABLE"
        });
    }
    (def, note)
}

/// ` INCLUDE (...)` of an index definition, or "".
fn included_columns(index: &Index) -> String {
    index
        .definition
        .find(" INCLUDE (")
        .map(|at| {
            let rest = &index.definition[at..];
            let end = matching_paren(rest, rest.find('(').unwrap_or(0))
                .map(|e| e + 1)
                .unwrap_or(rest.len());
            rest[..end].to_string()
        })
        .unwrap_or_default()
}

fn create_hypertable(job: &Job) -> Stmt {
    let secs = job.chunk_time_interval.as_secs().max(1);
    let interval = if job.time.type_sql == "date" {
        format!("INTERVAL '{} days'", (secs / 86_400).max(1))
    } else {
        format!("INTERVAL '{secs} seconds'")
    };
    Stmt::noted(
        format!(
            "SELECT {0}.create_hypertable({1}, {0}.by_range({2}, {interval}), create_default_indexes => false)",
            job.timescaledb,
            job.target.literal(),
            quote_literal(&job.time.name)
        ),
        format!("chunk_time_interval {}", humantime::format_duration(job.chunk_time_interval)),
    )
}

/// A source index re-created on the target under a new name; a unique index gains the
/// time column when it lacks it.
fn create_index(job: &Job, index: &Index) -> Stmt {
    let body = index
        .definition
        .strip_prefix(&index.prefix)
        .unwrap_or(&index.definition);
    let mut note = None;
    let body = if index.unique && !index.key_columns.contains(&job.time.name) {
        note = Some(format!(
            "adjusted: unique index {} gains {}: a hypertable's unique keys must include its time column",
            quote_ident(&index.name),
            quote_ident(&job.time.name)
        ));
        append_key_column(body, &quote_ident(&job.time.name))
    } else {
        body.to_string()
    };
    let sql = format!(
        "CREATE {}INDEX {} ON {} USING {body}",
        if index.unique { "UNIQUE " } else { "" },
        quote_ident(&job.new_index_name(&index.name)),
        job.target.quoted()
    );
    Stmt { sql, note }
}

/// `btree (a, b) WHERE ...` -> `btree (a, b, "ts") WHERE ...`.
fn append_key_column(body: &str, column: &str) -> String {
    let Some(open) = body.find('(') else {
        return body.to_string();
    };
    match matching_paren(body, open) {
        Some(close) => format!("{}, {column}{}", &body[..close], &body[close..]),
        None => body.to_string(),
    }
}

/// Index of the `)` closing the `(` at `open`, skipping quoted text.
fn matching_paren(s: &str, open: usize) -> Option<usize> {
    let mut depth = 0usize;
    let mut quote: Option<char> = None;
    for (i, ch) in s.char_indices().skip_while(|(i, _)| *i < open) {
        match (quote, ch) {
            (Some(q), c) if c == q => quote = None,
            (Some(_), _) => {}
            (None, '"') | (None, '\'') => quote = Some(ch),
            (None, '(') => depth += 1,
            (None, ')') => {
                depth -= 1;
                if depth == 0 {
                    return Some(i);
                }
            }
            _ => {}
        }
    }
    None
}

/// The source's NOT VALID checks and foreign keys, added to the target once the
/// backfill is done, in the transaction that records its end: the old rows the source
/// never checked are copied first (a constraint checks every row inserted, so on the
/// target from the start it would fail the backfill); every row the copy trigger wrote
/// meanwhile passed the source's check. Each is added only if missing (a plan started
/// by an earlier version has its checks already).
pub fn not_valid_constraints(job: &Job) -> Vec<Stmt> {
    job.table
        .constraints
        .iter()
        .filter(|c| {
            matches!(c.kind, ConstraintKind::Check | ConstraintKind::ForeignKey)
                && c.definition.ends_with("NOT VALID")
        })
        .map(|c| {
            let body = format!(
                "\nBEGIN\n    IF NOT EXISTS (SELECT FROM pg_catalog.pg_constraint WHERE conrelid OPERATOR(pg_catalog.=) {}::pg_catalog.regclass AND conname OPERATOR(pg_catalog.=) {}) THEN\n        ALTER TABLE {} ADD CONSTRAINT {} {};\n    END IF;\nEND\n",
                quote_literal(&job.target.quoted()),
                quote_literal(&c.name),
                job.target.quoted(),
                quote_ident(&c.name),
                c.definition
            );
            Stmt::noted(
                format!("DO {}", crate::ident::dollar_quote(&body)),
                "NOT VALID on the source too: checked for new rows only; added after the copy of the old rows, which the source never checked",
            )
        })
        .collect()
}

/// The source's grants, on the target (again at cutover, for any granted since).
pub fn grants(job: &Job) -> Vec<Stmt> {
    job.table
        .grants
        .iter()
        .map(|g| {
            let to = g
                .grantee
                .as_deref()
                .map(quote_ident)
                .unwrap_or_else(|| "PUBLIC".into());
            let cols = g
                .column
                .as_deref()
                .map(|c| format!(" ({})", quote_ident(c)))
                .unwrap_or_default();
            let option = if g.grantable {
                " WITH GRANT OPTION"
            } else {
                ""
            };
            Stmt::new(format!(
                "GRANT {}{cols} ON {} TO {to}{option}",
                g.privilege,
                job.target.quoted()
            ))
        })
        .collect()
}

fn comments(job: &Job) -> Vec<Stmt> {
    let t = job.target.quoted();
    let mut out = Vec::new();
    if let Some(c) = &job.table.comment {
        out.push(Stmt::new(format!(
            "COMMENT ON TABLE {t} IS {}",
            quote_literal(c)
        )));
    }
    for col in &job.table.columns {
        if let Some(c) = &col.comment {
            out.push(Stmt::new(format!(
                "COMMENT ON COLUMN {t}.{} IS {}",
                quote_ident(&col.name),
                quote_literal(c)
            )));
        }
    }
    for con in job
        .table
        .constraints
        .iter()
        .filter(|c| matches!(c.kind, ConstraintKind::Check | ConstraintKind::ForeignKey))
    {
        if let Some(c) = &con.comment {
            out.push(Stmt::new(format!(
                "COMMENT ON CONSTRAINT {} ON {t} IS {}",
                quote_ident(&con.name),
                quote_literal(c)
            )));
        }
    }
    for idx in job
        .table
        .indexes
        .iter()
        .filter(|i| !i.backs_constraint && !deferred(i))
    {
        out.extend(index_comment(job, idx));
    }
    out
}

fn index_comment(job: &Job, idx: &Index) -> Option<Stmt> {
    let c = idx.comment.as_ref()?;
    let name = job.target.sibling(job.new_index_name(&idx.name));
    Some(Stmt::new(format!(
        "COMMENT ON INDEX {} IS {}",
        name.quoted(),
        quote_literal(c)
    )))
}

/// Whether an index is built after the backfill rather than with the table: a plain
/// (not unique, no constraint) index. Built once over the copied rows it costs a third
/// of keeping it up to date row by row, in time and in WAL; the copy needs only the
/// unique keys meanwhile. Indexes with storage parameters or a tablespace of their own
/// are made with the table, as written.
pub fn deferred(index: &Index) -> bool {
    !index.unique
        && !index.backs_constraint
        && !index.definition.contains(" WITH (")
        && !index.definition.contains(" TABLESPACE ")
}

/// The indexes built after the backfill, each one chunk per transaction
/// (`timescaledb.transaction_per_chunk`): a chunk is locked against writes only while
/// its own part is built. Run outside a transaction block. Then autovacuum is turned
/// back on for the new table.
pub fn deferred_indexes(job: &Job) -> Vec<(String, Stmt)> {
    let mut out = Vec::new();
    for idx in job.table.indexes.iter().filter(|i| deferred(i)) {
        let body = idx
            .definition
            .strip_prefix(&idx.prefix)
            .unwrap_or(&idx.definition);
        let with = " WITH (timescaledb.transaction_per_chunk)";
        let body = match body.find(" WHERE ") {
            Some(at) if idx.partial => format!("{}{with}{}", &body[..at], &body[at..]),
            _ => format!("{body}{with}"),
        };
        let name = job.new_index_name(&idx.name);
        let sql = format!(
            "CREATE INDEX IF NOT EXISTS {} ON {} USING {body}",
            quote_ident(&name),
            job.target.quoted()
        );
        out.push((
            name.clone(),
            Stmt::noted(
                sql,
                "built after the backfill over the copied rows, one chunk per transaction: cheaper than keeping it up to date row by row",
            ),
        ));
        if let Some(c) = index_comment(job, idx) {
            out.push((name, c));
        }
    }
    let restore = match storage_parameter(&job.table, "autovacuum_enabled") {
        Some(v) => format!("SET (autovacuum_enabled = {})", quote_literal(v)),
        None => "RESET (autovacuum_enabled)".to_string(),
    };
    out.push((
        String::new(),
        Stmt::noted(
            format!("ALTER TABLE {} {restore}", job.target.quoted()),
            "autovacuum as on the source again, now that the copy is in",
        ),
    ));
    out
}

/// The value of one of `table`'s storage parameters, if it is set.
pub fn storage_parameter<'a>(table: &'a crate::catalog::Table, name: &str) -> Option<&'a str> {
    table
        .reloptions
        .iter()
        .find_map(|o| o.strip_prefix(name).and_then(|rest| rest.strip_prefix('=')))
}

/// ` WITH (name = 'value', ...)`: the source's storage parameters, which TimescaleDB
/// carries to every chunk; "" when it has none. Names are checked by `validate`.
fn with_storage_parameters(table: &crate::catalog::Table) -> String {
    if table.reloptions.is_empty() {
        return String::new();
    }
    let options: Vec<String> = table
        .reloptions
        .iter()
        .map(|o| match o.split_once('=') {
            Some((k, v)) => format!("{k} = {}", quote_literal(v)),
            None => o.clone(),
        })
        .collect();
    format!(" WITH ({})", options.join(", "))
}

fn quote_cols(cols: &[String]) -> String {
    cols.iter()
        .map(|c| quote_ident(c))
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn appends_time_column_to_the_key_list_only() {
        assert_eq!(
            append_key_column("btree (a, lower(b)) WHERE (c > 0)", "\"ts\""),
            "btree (a, lower(b), \"ts\") WHERE (c > 0)"
        );
        assert_eq!(
            append_key_column("btree (\"we)ird\")", "\"ts\""),
            "btree (\"we)ird\", \"ts\")"
        );
    }
}
