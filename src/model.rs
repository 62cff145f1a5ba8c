//! A plan's tables resolved against the live database: the names, key, time column and
//! source definition every phase's SQL is generated from.

use std::time::Duration;

use crate::catalog::Table;
use crate::ident::{quote_ident, with_suffix, QualifiedName};

/// Schema of the tool's own objects (journal tables, trigger functions).
pub const TOOL_SCHEMA: &str = "hyperswap";
/// Ends [`Job::as_owner_sql`]: the rest of the transaction runs as the role in effect
/// before it (saved in `hyperswap.role`; nothing happens where it did not switch).
pub const AS_SELF_SQL: &str = "SELECT pg_catalog.set_config('role', pg_catalog.current_setting('hyperswap.role'), true), pg_catalog.set_config('hyperswap.role', '', true) WHERE pg_catalog.current_setting('hyperswap.role', true) OPERATOR(pg_catalog.<>) ''";
/// How the objects change capture creates for a table (its change log, functions,
/// view) are named.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CaptureId {
    /// After the source table's OID when its plan started, recorded in the journal:
    /// unique among the database's tables at that moment, so two plans' objects never
    /// share a name, whatever the tables are called.
    Oid(u32),
    /// After the source's schema and name: plans started by a build before the OID
    /// names (the journal records no id for them). Long names share a name beyond 63
    /// bytes, told apart by a 32-bit hash only.
    ByName,
}

impl CaptureId {
    /// As the journal records it (`NULL`: by name).
    pub fn recorded(self) -> Option<i64> {
        match self {
            CaptureId::Oid(oid) => Some(oid as i64),
            CaptureId::ByName => None,
        }
    }

    /// From the journal's record.
    pub fn from_recorded(id: Option<i64>) -> Self {
        match id.and_then(|i| u32::try_from(i).ok()) {
            Some(oid) => CaptureId::Oid(oid),
            None => CaptureId::ByName,
        }
    }
}

/// What removes a plan: `abort` before cutover (the copy goes, the source stays as it
/// was) or `finalize` after it (the retired table goes).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Removal {
    Abort,
    Finalize,
}

/// Suffixes of index names on the new table while it is built, and of the retired
/// table's after cutover.
pub const NEW_SUFFIX: &str = "_hs_new";
pub const OLD_SUFFIX: &str = "_hs_old";

#[derive(Debug, Clone)]
pub struct ColumnRef {
    pub name: String,
    /// The column's type as SQL, e.g. `bigint`.
    pub type_sql: String,
}

impl ColumnRef {
    pub fn quoted(&self) -> String {
        quote_ident(&self.name)
    }
}

/// One column of the key the backfill pages through and parity ranges split.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyColumn {
    pub name: String,
    /// The column's type as SQL, e.g. `uuid`, `character varying(32)`.
    pub type_sql: String,
    /// ` COLLATE "schema"."name"` when the unique index orders this column by another
    /// collation than the column's own, else "": comparisons must match the index.
    pub collate: String,
    /// The quoted schema of the unique index's btree operators for this column
    /// (`pg_catalog`, or an extension's for citext or ltree): keys are compared with
    /// `OPERATOR(schema.op)`, which no operator on a search_path can stand in for, and
    /// which the index serves.
    pub op_schema: String,
}

impl KeyColumn {
    /// `OPERATOR(schema.op)` for this column's type.
    pub fn op(&self, op: &str) -> String {
        let schema = if self.op_schema.is_empty() {
            "pg_catalog"
        } else {
            &self.op_schema
        };
        format!("OPERATOR({schema}.{op})")
    }
}

/// The unique NOT NULL key, one or several columns in the unique index's order. Key
/// values travel as text, one string per column (`text[]` in the journal and as bound
/// parameters), so any type with a btree order works: integers, uuid, text, numeric,
/// dates and timestamps, and composites of them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Key {
    pub columns: Vec<KeyColumn>,
}

impl Key {
    pub fn names(&self) -> Vec<&str> {
        self.columns.iter().map(|c| c.name.as_str()).collect()
    }

    pub fn contains(&self, column: &str) -> bool {
        self.columns.iter().any(|c| c.name == column)
    }

    /// The key as a row, for comparisons: `("a", "b")`, or `"t"."a"` with a table alias.
    pub fn row(&self, alias: Option<&str>) -> String {
        format!(
            "({})",
            self.each(|c| format!("{}{}", col(alias, &c.name), c.collate))
        )
    }

    /// `"a", "b"`, for ORDER BY (with the index's collations).
    pub fn order_by(&self, alias: Option<&str>, desc: bool) -> String {
        let dir = if desc { " DESC" } else { "" };
        self.each(|c| format!("{}{}{dir}", col(alias, &c.name), c.collate))
    }

    /// The key value bound as parameter `$n` (a `text[]`), as typed values in key order.
    pub fn param_values(&self, n: usize) -> Vec<String> {
        self.columns
            .iter()
            .enumerate()
            .map(|(i, c)| {
                format!(
                    "(${n}::pg_catalog.text[])[{}]::{}{}",
                    i + 1,
                    c.type_sql,
                    c.collate
                )
            })
            .collect()
    }

    /// `ARRAY["a"::text, "b"::text]`: the key value as the journal keeps it.
    pub fn text_array(&self, alias: Option<&str>) -> String {
        format!(
            "ARRAY[{}]",
            self.each(|c| format!("{}::pg_catalog.text", col(alias, &c.name)))
        )
    }

    /// Whether every key column's operators live in one schema: the key then compares
    /// as one row, `(a, b) OPERATOR(schema.>) (x, y)`, which the index serves as one range.
    fn one_schema(&self) -> bool {
        self.columns
            .windows(2)
            .all(|w| w[0].op_schema == w[1].op_schema)
    }

    /// `OPERATOR(schema.op)` between key rows whose columns share their operators' schema.
    fn row_op(&self, op: &str) -> String {
        match self.columns.first() {
            Some(c) => c.op(op),
            None => format!("OPERATOR(pg_catalog.{op})"),
        }
    }

    /// The key (its columns under `alias`) compared with a row of values in key order,
    /// `op` one of `<`, `<=`, `=`, `>=`, `>`, each column by its own operator class's
    /// operators (`OPERATOR(schema.op)`). A key mixing schemas (a citext column beside a
    /// timestamptz) is compared column by column, with the first column's bound in front
    /// for the index: `a >= x AND (a > x OR (a = x AND b > y))`.
    pub fn compare(&self, alias: Option<&str>, op: &str, values: &[String]) -> String {
        let cols: Vec<String> = self
            .columns
            .iter()
            .map(|c| format!("{}{}", col(alias, &c.name), c.collate))
            .collect();
        if self.one_schema() {
            return format!(
                "({}) {} ({})",
                cols.join(", "),
                self.row_op(op),
                values.join(", ")
            );
        }
        let cmp =
            |i: usize, o: &str| format!("{} {} {}", cols[i], self.columns[i].op(o), values[i]);
        if op == "=" {
            let all: Vec<String> = (0..cols.len()).map(|i| cmp(i, "=")).collect();
            return format!("({})", all.join(" AND "));
        }
        let strict = op.trim_end_matches('=');
        let last = cols.len() - 1;
        let mut expr = cmp(last, op);
        for i in (0..last).rev() {
            expr = format!("({} OR ({} AND {expr}))", cmp(i, strict), cmp(i, "="));
        }
        format!("({} AND {expr})", cmp(0, &format!("{strict}=")))
    }

    /// The key is one of the rows `source` gives (a set-returning FROM item whose
    /// columns are the key's, in order).
    pub fn any_of(&self, source: &str) -> String {
        if self.one_schema() {
            return format!(
                "{} {} ANY (SELECT * FROM {source})",
                self.row(None),
                self.row_op("=")
            );
        }
        let names: Vec<String> = (1..=self.columns.len())
            .map(|i| format!("hyperswap_v{i}"))
            .collect();
        let values: Vec<String> = names.iter().map(|n| format!("hyperswap_v.{n}")).collect();
        format!(
            "EXISTS (SELECT FROM {source} AS hyperswap_v ({}) WHERE {})",
            names.join(", "),
            self.compare(None, "=", &values)
        )
    }

    /// `"a" = OLD."a" AND "b" = OLD."b"`: the key of `left` equals the key of `right`.
    pub fn equals(&self, left: Option<&str>, right: &str) -> String {
        self.columns
            .iter()
            .map(|c| {
                format!(
                    "{} {} {}",
                    col(left, &c.name),
                    c.op("="),
                    col(Some(right), &c.name)
                )
            })
            .collect::<Vec<_>>()
            .join(" AND ")
    }

    /// A key value for people: `42`, or `(a, b)` for a composite key.
    pub fn display(values: &[String]) -> String {
        match values {
            [one] => one.clone(),
            many => format!("({})", many.join(", ")),
        }
    }

    fn each(&self, f: impl FnMut(&KeyColumn) -> String) -> String {
        self.columns.iter().map(f).collect::<Vec<_>>().join(", ")
    }
}

/// `"name"`, or `alias."name"`.
fn col(alias: Option<&str>, name: &str) -> String {
    match alias {
        Some(a) => format!("{a}.{}", quote_ident(name)),
        None => quote_ident(name),
    }
}

/// One table of the plan, resolved.
#[derive(Debug, Clone)]
pub struct Job {
    pub ord: usize,
    /// The application's name for the table: the source now, the hypertable after cutover.
    pub source: QualifiedName,
    pub target: QualifiedName,
    pub retired: QualifiedName,
    pub key: Key,
    pub time: ColumnRef,
    pub chunk_time_interval: Duration,
    /// The original table's definition, read from the catalog.
    pub table: Table,
    /// Drop other tables' foreign keys to this one at cutover (the plan's choice).
    pub drop_inbound_fks: bool,
    /// With `drop_inbound_fks`: keep their meaning with triggers (`emulate`).
    pub emulate_inbound_fks: bool,
    /// TimescaleDB's schema, quoted: its functions are called by it, never through the
    /// search path.
    pub timescaledb: String,
    /// How change capture's objects for this table are named.
    pub capture_id: CaptureId,
}

impl Job {
    /// Columns the copy writes (generated columns are computed by the target).
    pub fn written_columns(&self) -> Vec<&str> {
        self.table
            .columns
            .iter()
            .filter(|c| c.is_written())
            .map(|c| c.name.as_str())
            .collect()
    }

    /// `"a", "b", "c"`.
    pub fn column_list(&self) -> String {
        self.written_columns()
            .iter()
            .map(|c| quote_ident(c))
            .collect::<Vec<_>>()
            .join(", ")
    }

    /// For the rest of the transaction, act as the table's owner when hyperswap runs as a
    /// superuser: what the tool writes into the copy (batches, replays, repairs) then
    /// runs whatever the owner attached to it (a CHECK calling the owner's function)
    /// with the owner's rights, never a superuser's. Not under FORCE ROW LEVEL SECURITY,
    /// whose policies would hide rows from the owner. `SET LOCAL ROLE` in effect.
    pub fn as_owner_sql(&self) -> Option<String> {
        if self.table.force_row_security {
            return None;
        }
        Some(format!(
            "SELECT pg_catalog.set_config('hyperswap.role', pg_catalog.current_setting('role'), true), pg_catalog.set_config('role', {}, true) FROM pg_catalog.pg_roles WHERE rolname OPERATOR(pg_catalog.=) CURRENT_USER AND rolsuper",
            crate::ident::quote_literal(&self.table.owner)
        ))
    }

    /// The target's unique key: the source's key, and the time column unless it is part
    /// of the key already.
    pub fn unique_columns(&self) -> Vec<&str> {
        let mut cols = self.key.names();
        if !self.key.contains(&self.time.name) {
            cols.push(&self.time.name);
        }
        cols
    }

    /// The name an index or constraint of the source gets on the new table.
    pub fn new_index_name(&self, name: &str) -> String {
        with_suffix(name, NEW_SUFFIX)
    }

    pub fn old_index_name(&self, name: &str) -> String {
        with_suffix(name, OLD_SUFFIX)
    }
}
