//! The names of the objects change capture creates per table, in the tool's schema, and
//! of its triggers on the tables. Nothing outside [`crate::capture`] names them.

use crate::ident::{with_suffix, QualifiedName};
use crate::model::{Job, TOOL_SCHEMA};

/// The change log's column for the time an old row had (NULL for a new row's entry).
pub(super) const LOG_TIME_COLUMN: &str = "hyperswap_old_time";
/// Trigger names on the tables (names are per table, so fixed names are unique): one
/// statement trigger per event, as transition tables require, for each direction.
pub const COPY_TRIGGERS: Triggers = Triggers::named("hyperswap_copy");
pub const REVERSE_TRIGGERS: Triggers = Triggers::named("hyperswap_reverse");

/// The names of one direction's triggers.
#[derive(Debug, Clone, Copy)]
pub struct Triggers {
    pub prefix: &'static str,
}

impl Triggers {
    const fn named(prefix: &'static str) -> Self {
        Triggers { prefix }
    }

    /// (name, event, REFERENCING clause) of each trigger.
    pub fn each(&self) -> [(String, &'static str, &'static str); 4] {
        let p = self.prefix;
        [
            (
                format!("{p}_insert"),
                "INSERT",
                " REFERENCING NEW TABLE AS hyperswap_new",
            ),
            (
                format!("{p}_update"),
                "UPDATE",
                " REFERENCING OLD TABLE AS hyperswap_old NEW TABLE AS hyperswap_new",
            ),
            (
                format!("{p}_delete"),
                "DELETE",
                " REFERENCING OLD TABLE AS hyperswap_old",
            ),
            (format!("{p}_truncate"), "TRUNCATE", ""),
        ]
    }

    /// Every name, including the row trigger of hyperswap 0.1, for removal.
    pub fn all_names(&self) -> Vec<String> {
        let mut out: Vec<String> = self.each().into_iter().map(|(n, _, _)| n).collect();
        out.push(self.prefix.to_string());
        out
    }
}
impl Job {
    /// The forward copy trigger's function.
    pub(super) fn copy_function(&self) -> QualifiedName {
        tool_function("copy", &self.source)
    }

    /// The reverse trigger's function (live hypertable -> retired table after cutover).
    pub(super) fn reverse_function(&self) -> QualifiedName {
        tool_function("reverse", &self.source)
    }

    /// The guard on the new table after a rollback: refuses the application's writes that
    /// reach it directly (a COPY that waited for the rollback's lock does).
    pub(super) fn guard_function(&self) -> QualifiedName {
        tool_function("guard", &self.source)
    }

    /// A view of the tool's reading every column of both tables: while it exists, the
    /// database refuses to drop a column the copy reads or to change its type.
    pub(super) fn columns_view(&self) -> QualifiedName {
        tool_function("columns", &self.source)
    }

    /// The change log: the key of every row the application writes on the source while
    /// the copy is behind, appended by the forward trigger and replayed by the tool (see
    /// [`crate::replay`]).
    pub(super) fn change_log(&self) -> QualifiedName {
        change_log_of(&self.source)
    }
}

/// The change log of the plan's table `source` (by the application's name).
/// `LIKE` pattern of every change log's name (see [`change_log_of`]).
pub(super) const CHANGE_LOG_PATTERN: &str = "changes\\_\\_%";

pub(super) fn change_log_of(source: &QualifiedName) -> QualifiedName {
    tool_function("changes", source)
}

/// `<kind>__<schema>__<table>`. The separator is ambiguous when a part contains `__`, or
/// the schema ends or the table starts with `_` (`a__b.c` and `a.b__c` would share a
/// function): such names, and only those (names of plans already running keep their
/// form), end with a hash of the two parts.
fn tool_function(kind: &str, source: &QualifiedName) -> QualifiedName {
    let (schema, table) = (&source.schema, &source.name);
    let name = format!("{kind}__{schema}__{table}");
    let ambiguous = schema.contains("__")
        || table.contains("__")
        || schema.ends_with('_')
        || table.starts_with('_');
    let suffix = if ambiguous {
        use sha2::{Digest, Sha256};
        let mut h = Sha256::new();
        h.update(schema.as_bytes());
        h.update([0u8]);
        h.update(table.as_bytes());
        format!("_h{}", crate::ident::hex(&h.finalize()[..4]))
    } else {
        String::new()
    };
    QualifiedName::new(TOOL_SCHEMA, with_suffix(&name, &suffix))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn function_names_never_collide() {
        let f = |s: &str, t: &str| tool_function("copy", &QualifiedName::new(s, t)).name;
        assert_eq!(f("public", "metrics"), "copy__public__metrics");
        assert_ne!(f("a__b", "c"), f("a", "b__c"));
        assert_ne!(f("a_", "b"), f("a", "_b"));
        assert!(f("a__b", "c").starts_with("copy__a__b__c_h"));
    }
}
