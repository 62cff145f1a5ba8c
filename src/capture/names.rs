//! The names of the objects change capture creates per table, in the tool's schema, and
//! of its triggers on the tables. Nothing outside [`crate::capture`] names them.

use crate::ident::{with_suffix, QualifiedName};
use crate::model::{CaptureId, Job, TOOL_SCHEMA};

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
        self.tool_object("copy")
    }

    /// The reverse trigger's function (live hypertable -> retired table after cutover).
    pub(super) fn reverse_function(&self) -> QualifiedName {
        self.tool_object("reverse")
    }

    /// The guard on the new table after a rollback: refuses the application's writes that
    /// reach it directly (a COPY that waited for the rollback's lock does).
    pub(super) fn guard_function(&self) -> QualifiedName {
        self.tool_object("guard")
    }

    /// A view of the tool's reading every column of both tables: while it exists, the
    /// database refuses to drop a column the copy reads or to change its type.
    pub(super) fn columns_view(&self) -> QualifiedName {
        self.tool_object("columns")
    }

    /// The change log: the key of every row the application writes on the source while
    /// the copy is behind, appended by the forward trigger and replayed by the tool (see
    /// `log.rs`).
    pub(super) fn change_log(&self) -> QualifiedName {
        change_log_of(&self.source, self.capture_id)
    }

    fn tool_object(&self, kind: &str) -> QualifiedName {
        object(kind, &self.source, self.capture_id)
    }
}

/// `LIKE` pattern of every change log's name (see [`change_log_of`]), of either form.
pub(super) const CHANGE_LOG_PATTERN: &str = "changes\\_%";

/// The change log of the plan's table `source` (by the application's name).
pub(super) fn change_log_of(source: &QualifiedName, id: CaptureId) -> QualifiedName {
    object("changes", source, id)
}

/// `<kind>_<oid>`, or for plans of earlier builds `<kind>__<schema>__<table>`.
fn object(kind: &str, source: &QualifiedName, id: CaptureId) -> QualifiedName {
    match id {
        CaptureId::Oid(oid) => QualifiedName::new(TOOL_SCHEMA, format!("{kind}_{oid}")),
        CaptureId::ByName => tool_function(kind, source),
    }
}

/// `<kind>__<schema>__<table>`, the names of earlier builds. The separator is ambiguous
/// when a part contains `__`, or the schema ends or the table starts with `_` (`a__b.c`
/// and `a.b__c` would share a function): such names end with a hash of the two parts.
/// Beyond 63 bytes a name is cut and ends with a 32-bit hash: two long names can share
/// one, which is why plans now name their objects after the table's OID.
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

    #[test]
    fn objects_are_named_after_the_tables_oid() {
        let source = QualifiedName::new("public", "metrics");
        let oid = |n| object("changes", &source, CaptureId::Oid(n)).name;
        assert_eq!(oid(16384), "changes_16384");
        assert_ne!(oid(16384), oid(16385));
        // Plans of earlier builds keep their names.
        assert_eq!(
            object("changes", &source, CaptureId::ByName).name,
            "changes__public__metrics"
        );
        // Both forms match the pattern the journal's check leaves to the owner.
        for name in [oid(1), object("changes", &source, CaptureId::ByName).name] {
            assert!(name.starts_with("changes_"), "{name}");
        }
        assert_eq!(
            CaptureId::from_recorded(CaptureId::Oid(4_000_000_000).recorded()),
            CaptureId::Oid(4_000_000_000)
        );
        assert_eq!(CaptureId::from_recorded(None), CaptureId::ByName);
    }
}
