//! The SQL of a parity run, generated in one place for `plan show` and the checker.

use crate::catalog::ColumnHash;
use crate::ident::{quote_ident, QualifiedName};
use crate::model::Job;
use crate::stmt::Stmt;
use crate::template::render;

use super::ranges::{KeyRange, KeyValue};

/// Session settings of both parity connections: the text form of every value, and so
/// every hash, must not depend on the session.
pub fn session_statements() -> Vec<Stmt> {
    let settings = [
        ("TimeZone", "UTC"),
        ("DateStyle", "ISO, YMD"),
        ("IntervalStyle", "postgres"),
        ("extra_float_digits", "1"),
        ("bytea_output", "hex"),
        // Parity runs two backends, one per side, and no more: predictable on a busy server.
        ("max_parallel_workers_per_gather", "0"),
    ];
    let mut out: Vec<Stmt> = settings
        .iter()
        .map(|(k, v)| Stmt::new(format!("SET {k} = '{v}'")))
        .collect();
    if let Some(first) = out.first_mut() {
        first.note = Some(
            "pinned so every value's text form, and so its hash, is the same on both sides".into(),
        );
    }
    out
}

/// Every column of the row as the checksum sees it, cast to the mirror's types.
fn row_expr(job: &Job) -> String {
    job.table
        .columns
        .iter()
        .map(|c| format!("{}::{}", quote_ident(&c.name), c.type_sql))
        .collect::<Vec<_>>()
        .join(", ")
}

/// How a row's columns are read for its hash.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RowText {
    /// As they are: both sides have the same columns, types and order.
    WholeRow,
    /// Each cast to the mirror's type: for sides that differ in shape.
    Columns,
}

/// One column as the row hash reads it (see [`ColumnHash`]).
fn hashed_column(c: &crate::catalog::Column, text: RowText) -> String {
    let col = match text {
        RowText::WholeRow => quote_ident(&c.name),
        RowText::Columns => format!("{}::{}", quote_ident(&c.name), c.type_sql),
    };
    match &c.hash {
        ColumnHash::Native => col,
        ColumnHash::Send(f) => format!("{f}({col})"),
        ColumnHash::Text => format!("{col}::pg_catalog.text"),
    }
}

/// The 64-bit hash of one row: every column hashed by its type (or its binary form),
/// combined by `hash_record_extended`, then mixed once more through
/// `hashtextextended`, because the record hash is a linear combination of its
/// columns' hashes (a sum over rows would not see values swapped between rows).
/// Several times cheaper than hashing the row's text, and exact where the text is.
pub fn row_hash(columns: &[crate::catalog::Column], text: RowText) -> String {
    let columns = columns
        .iter()
        .map(|c| hashed_column(c, text))
        .collect::<Vec<_>>()
        .join(", ");
    format!(
        "pg_catalog.hashtextextended(pg_catalog.hash_record_extended(ROW({columns}), 0::pg_catalog.int8)::pg_catalog.text, 0::pg_catalog.int8)"
    )
}

/// count, sum and xor of a 64-bit hash of each row's text, over one range of `table`.
pub fn checksum_sql(
    job: &Job,
    table: &QualifiedName,
    range: &KeyRange,
    text: RowText,
) -> (String, Vec<KeyValue>) {
    let (clause, params) = range.clause(job, 1);
    let sql = render(
        include_str!("../../sql/parity_checksum.sql"),
        &[
            ("row_hash", row_hash(&job.table.columns, text)),
            ("table", table.quoted()),
            ("range", clause),
        ],
    );
    (sql, params)
}

/// The rows of one range that differ, with each side's cells as text. The last
/// parameter is the most rows to return.
pub fn pinpoint_sql(
    job: &Job,
    live: &QualifiedName,
    mirror: &QualifiedName,
    range: &KeyRange,
) -> (String, Vec<KeyValue>) {
    let (clause, params) = range.clause(job, 1);
    let limit = format!("${}", params.len() + 1);
    let cells = job
        .table
        .columns
        .iter()
        .map(|c| format!("{}::{}::pg_catalog.text", quote_ident(&c.name), c.type_sql))
        .collect::<Vec<_>>()
        .join(", ");
    // Key columns under aliases of their own (k1, k2, ...), so a column of the table
    // named like an alias cannot be confused with them.
    let alias = |i: usize| format!("hyperswap_k{i}");
    let keys: Vec<(String, &crate::model::KeyColumn)> = job
        .key
        .columns
        .iter()
        .enumerate()
        .map(|(i, c)| (alias(i + 1), c))
        .collect();
    let join = |f: &dyn Fn(&str, &crate::model::KeyColumn) -> String, sep: &str| {
        keys.iter()
            .map(|(a, c)| f(a, c))
            .collect::<Vec<_>>()
            .join(sep)
    };
    let sql = render(
        include_str!("../../sql/parity_pinpoint.sql"),
        &[
            (
                "key_columns",
                join(&|a, c| format!("{} AS {a}", quote_ident(&c.name)), ", "),
            ),
            ("row", row_expr(job)),
            ("cells", cells),
            ("live", live.quoted()),
            ("mirror", mirror.quoted()),
            ("range", clause),
            (
                "key_text",
                join(
                    &|a, _| format!("coalesce(live.{a}, mirror.{a})::pg_catalog.text"),
                    ", ",
                ),
            ),
            (
                "key_equal",
                join(
                    &|a, c| format!("live.{a} {} mirror.{a}", c.op("=")),
                    " AND ",
                ),
            ),
            (
                "key_order",
                join(
                    &|a, c| format!("coalesce(live.{a}, mirror.{a}){}", c.collate),
                    ", ",
                ),
            ),
            ("limit", limit),
        ],
    );
    (sql, params)
}

/// Re-copies the given keys from `live` to `mirror` (the `--repair` of a difference).
/// $1, $2, ... = per key column, the keys' values as a `text[]`.
pub fn repair_statements(job: &Job, live: &QualifiedName, mirror: &QualifiedName) -> Vec<Stmt> {
    let arrays = job
        .key
        .columns
        .iter()
        .enumerate()
        .map(|(i, c)| {
            format!(
                "pg_catalog.unnest(${}::pg_catalog.text[]::{}[])",
                i + 1,
                c.type_sql
            )
        })
        .collect::<Vec<_>>()
        .join(", ");
    let any = job.key.any_of(&format!("ROWS FROM ({arrays})"));
    let cols = job.column_list();
    vec![
        Stmt::noted(
            format!(
                "SELECT pg_catalog.count(*) FROM (SELECT 1 FROM {} WHERE {any} FOR SHARE) AS locked",
                live.quoted()
            ),
            "hold the live rows still while their copies are replaced",
        ),
        Stmt::new(format!("DELETE FROM {} WHERE {any}", mirror.quoted())),
        Stmt::new(format!(
            "INSERT INTO {} ({cols}) OVERRIDING SYSTEM VALUE SELECT {cols} FROM {} WHERE {any}",
            mirror.quoted(),
            live.quoted()
        )),
    ]
}
