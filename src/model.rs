//! A plan's tables resolved against the live database: the names, key, time column and
//! source definition every phase's SQL is generated from.

use std::time::Duration;

use crate::catalog::Table;
use crate::ident::{quote_ident, with_suffix, QualifiedName};

/// Schema of the tool's own objects (journal tables, trigger functions).
pub const TOOL_SCHEMA: &str = "hyperswap";
/// Trigger names on the live table; names are per table, so fixed names are unique.
pub const COPY_TRIGGER: &str = "hyperswap_copy";
pub const COPY_TRUNCATE_TRIGGER: &str = "hyperswap_copy_truncate";
pub const REVERSE_TRIGGER: &str = "hyperswap_reverse";
pub const REVERSE_TRUNCATE_TRIGGER: &str = "hyperswap_reverse_truncate";
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

/// One table of the plan, resolved.
#[derive(Debug, Clone)]
pub struct Job {
    pub ord: usize,
    /// The application's name for the table: the source now, the hypertable after cutover.
    pub source: QualifiedName,
    pub target: QualifiedName,
    pub retired: QualifiedName,
    pub key: ColumnRef,
    pub time: ColumnRef,
    pub chunk_time_interval: Duration,
    /// The original table's definition, read from the catalog.
    pub table: Table,
    /// Drop other tables' foreign keys to this one at cutover (the plan's choice).
    pub drop_inbound_fks: bool,
    /// With `drop_inbound_fks`: keep their meaning with triggers (`emulate`).
    pub emulate_inbound_fks: bool,
    /// The tool's role may set session_replication_role: the copy functions then write
    /// without firing the other table's triggers.
    pub replica_role: bool,
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

    /// The forward copy trigger's function.
    pub fn copy_function(&self) -> QualifiedName {
        tool_function("copy", &self.source)
    }

    /// The reverse trigger's function (live hypertable -> retired table after cutover).
    pub fn reverse_function(&self) -> QualifiedName {
        tool_function("reverse", &self.source)
    }

    /// The name an index or constraint of the source gets on the new table.
    pub fn new_index_name(&self, name: &str) -> String {
        with_suffix(name, NEW_SUFFIX)
    }

    pub fn old_index_name(&self, name: &str) -> String {
        with_suffix(name, OLD_SUFFIX)
    }
}

fn tool_function(kind: &str, source: &QualifiedName) -> QualifiedName {
    QualifiedName::new(
        TOOL_SCHEMA,
        with_suffix(&format!("{kind}__{}__{}", source.schema, source.name), ""),
    )
}
