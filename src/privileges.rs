//! Least privilege: every privilege the phases ahead will need, checked before anything
//! changes, and every missing one reported at once with the statement that grants it.
//!
//! [`facts`] reads what the connecting role holds from the catalogs; [`problems`] is a
//! pure function from those facts to what is missing, so the rules are tested without a
//! database. Ownership counts as PostgreSQL counts it: the owner itself or a role that
//! inherits the owner's privileges (`pg_has_role(owner, 'USAGE')`).

use tokio_postgres::GenericClient;

use crate::error::{Error, Result};
use crate::ident::{quote_ident, QualifiedName};
use crate::model::{Job, TOOL_SCHEMA};

mod read;
pub use read::facts;

/// Which commands' needs to check.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    /// `plan validate` and `plan apply`: every phase ahead, through cutover, rollback,
    /// finalize and abort.
    Forward,
    /// `rollback`: the reverse renames.
    Rollback,
    /// `abort` and `finalize`: dropping triggers, tables, functions and the journal.
    Remove,
    /// `plan validate` after cutover: what `rollback` and `finalize` need.
    AfterCutover,
}

impl Scope {
    /// Renames tables (and re-creates views): cutover and rollback.
    fn renames(self) -> bool {
        self != Scope::Remove
    }

    /// Drops the copy functions: finalize and abort.
    fn drops(self) -> bool {
        self != Scope::Rollback
    }
}

/// The kind of an object, as GRANT and ALTER ... OWNER TO name it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Database,
    Schema,
    Table,
    View,
    MaterializedView,
    Sequence,
    Type,
    Function,
}

impl Kind {
    fn sql(self) -> &'static str {
        match self {
            Kind::Database => "DATABASE",
            Kind::Schema => "SCHEMA",
            Kind::Table => "TABLE",
            Kind::View => "VIEW",
            Kind::MaterializedView => "MATERIALIZED VIEW",
            Kind::Sequence => "SEQUENCE",
            Kind::Type => "TYPE",
            Kind::Function => "FUNCTION",
        }
    }

    fn from_relkind(relkind: &str) -> Kind {
        match relkind {
            "v" => Kind::View,
            "m" => Kind::MaterializedView,
            "S" => Kind::Sequence,
            _ => Kind::Table,
        }
    }
}

/// An object the connecting role must act as the owner of.
#[derive(Debug, Clone)]
pub struct Owned {
    pub kind: Kind,
    /// Quoted SQL name (a function with its argument list).
    pub name: String,
    pub owner: String,
    /// The role is the owner or inherits its privileges.
    pub acts_as_owner: bool,
    /// Membership in a superuser is no fix to offer: the owner must change instead.
    pub owner_superuser: bool,
    /// The role is a member of the owner, perhaps without inheriting (NOINHERIT).
    pub member: bool,
}

/// A privilege the role needs on an object it does not own, and USAGE on its schema.
#[derive(Debug, Clone)]
pub struct Use {
    /// `USAGE` on a type or a schema, `REFERENCES` on a table, `EXECUTE` on a function.
    pub privilege: &'static str,
    pub kind: Kind,
    pub name: String,
    pub schema: String,
    pub held: bool,
    pub schema_usage: bool,
}

/// A view that cutover and rollback re-create.
#[derive(Debug, Clone)]
pub struct View {
    pub owned: Owned,
    pub schema: String,
    pub schema_create: bool,
}

/// What the role holds for one table of the plan.
#[derive(Debug, Clone)]
pub struct TableFacts {
    pub source: QualifiedName,
    pub target: QualifiedName,
    /// The tables' schema, quoted.
    pub schema: String,
    pub schema_usage: bool,
    pub schema_create: bool,
    /// The original table's owner, and whether that role may create in the schema.
    pub owner: String,
    pub owner_schema_create: bool,
    /// The new table exists (as the target, or after cutover under the source's name).
    pub copy_exists: bool,
    /// The original enforces row-level security even on its owner (FORCE).
    pub forced_row_security: bool,
    /// The source, target and retired tables that exist.
    pub tables: Vec<Owned>,
    /// Sequences owned by the original's columns (cutover moves their OWNED BY).
    pub sequences: Vec<Owned>,
    pub views: Vec<View>,
    /// Tables whose foreign keys to this one the plan drops at cutover.
    pub inbound: Vec<Owned>,
    pub uses: Vec<Use>,
    /// EXECUTE on the copy functions.
    pub function_uses: Vec<Use>,
    /// The copy and reverse functions that exist.
    pub functions: Vec<Owned>,
}

/// What the connecting role holds, as far as the plan's phases care.
#[derive(Debug, Clone)]
pub struct Facts {
    pub role: String,
    pub superuser: bool,
    /// The role reads and writes past row-level security (BYPASSRLS).
    pub bypass_rls: bool,
    pub database: String,
    pub database_create: bool,
    /// TimescaleDB's schema (quoted) and whether the role may use it.
    pub timescaledb_schema: Option<String>,
    pub timescaledb_usage: bool,
    /// The journal's schema and tables; empty when the schema does not exist.
    pub journal: Vec<Owned>,
    pub tables: Vec<TableFacts>,
}

/// One missing privilege: what it is and what it is needed for, and the fix.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub missing: String,
    pub fix: String,
}

/// Everything the role lacks for `scope`, one entry per statement that fixes it.
pub fn problems(facts: &Facts, scope: Scope) -> Vec<Problem> {
    if facts.superuser {
        return vec![];
    }
    let mut out = Collector::new(&facts.role);
    journal_needs(&mut out, facts, scope);
    for t in &facts.tables {
        table_needs(&mut out, facts, t, scope);
    }
    out.finish()
}

fn journal_needs(out: &mut Collector, facts: &Facts, scope: Scope) {
    if facts.journal.is_empty() {
        if scope == Scope::Forward && !facts.database_create {
            out.grant(
                "CREATE",
                Kind::Database,
                &quote_ident(&facts.database),
                &format!("to create the journal's schema {TOOL_SCHEMA} (it does not exist yet; or have it created with CREATE SCHEMA {} AUTHORIZATION {})", quote_ident(TOOL_SCHEMA), quote_ident(&facts.role)),
            );
        }
        return;
    }
    for o in &facts.journal {
        out.own(
            o,
            "the journal is written, upgraded, and dropped with the last plan",
        );
    }
}

fn table_needs(out: &mut Collector, facts: &Facts, t: &TableFacts, scope: Scope) {
    schema_needs(out, t, scope);
    let why = match scope {
        Scope::Forward => "the tables get triggers and the new one their owner and grants, they are renamed at cutover and rollback, and one is dropped at finalize or abort",
        Scope::Rollback => "the tables are renamed back at rollback",
        Scope::Remove => "the tables' triggers are dropped, and one of the tables",
        Scope::AfterCutover => "the tables are renamed back at rollback, or one is dropped at finalize",
    };
    for o in &t.tables {
        out.own(o, why);
    }
    if scope == Scope::Forward && !t.copy_exists {
        creation_needs(out, facts, t);
    }
    if scope.renames() {
        swap_needs(out, t);
        if t.forced_row_security && !facts.bypass_rls {
            out.bypass_rls(&t.source);
        }
    }
    if scope == Scope::Forward {
        let why = format!(
            "cutover re-creates the trigger that calls it on the new {}",
            t.source
        );
        for u in t.uses.iter().filter(|u| u.privilege == "EXECUTE") {
            use_needs(out, u, &why);
        }
    }
    if scope.renames() {
        for u in &t.function_uses {
            use_needs(
                out,
                u,
                "cutover and rollback create the triggers that call it (no role but the table's owner may execute it)",
            );
        }
    }
    if scope.drops() {
        for f in &t.functions {
            out.own(f, "finalize and abort drop the copy functions");
        }
    }
}

/// The tables' schema: USAGE always; CREATE to create the target and for every rename.
fn schema_needs(out: &mut Collector, t: &TableFacts, scope: Scope) {
    if !t.schema_usage {
        let why = format!("to reach {}", t.source);
        out.grant("USAGE", Kind::Schema, &t.schema, &why);
    }
    let why = match scope {
        Scope::Forward => format!(
            "to create {}, and to rename tables at cutover and rollback",
            t.target
        ),
        Scope::Rollback | Scope::AfterCutover => "to rename tables back at rollback".to_string(),
        Scope::Remove => return,
    };
    if !t.schema_create {
        out.grant("CREATE", Kind::Schema, &t.schema, &why);
    }
}

/// What the cutover transaction and its reverse touch beyond the two tables.
fn swap_needs(out: &mut Collector, t: &TableFacts) {
    let source = &t.source;
    let why =
        format!("cutover and rollback move the sequences' OWNED BY to the table named {source}");
    // A sequence owned by a column has the table's owner (PostgreSQL keeps them the
    // same, and refuses ALTER SEQUENCE ... OWNER TO on it): the table's entry covers it.
    for s in t.sequences.iter().filter(|s| s.owner != t.owner) {
        out.own(s, &why);
    }
    for v in &t.views {
        let why = format!("cutover and rollback re-create view {} (CREATE OR REPLACE VIEW) to read the table named {source}", v.owned.name);
        out.own(&v.owned, &why);
        if !v.schema_create {
            out.grant("CREATE", Kind::Schema, &v.schema, &why);
        }
    }
    let why = format!("cutover drops their foreign keys to {source} (inbound_foreign_keys: drop) and rollback adds them back");
    for o in &t.inbound {
        out.own(o, &why);
    }
}

/// What creating the target needs beyond the schema: the owner's CREATE when the role
/// hands the new table to another owner, the types of its columns, the tables its
/// foreign keys reference, and TimescaleDB's functions.
fn creation_needs(out: &mut Collector, facts: &Facts, t: &TableFacts) {
    if t.owner != facts.role && !t.owner_schema_create {
        out.grant_to(
            "CREATE",
            Kind::Schema,
            &t.schema,
            &t.owner,
            &format!("{} is given to {}, the owner of {}, with ALTER TABLE ... OWNER TO, which PostgreSQL allows only when the new owner may create in the schema", t.target, quote_ident(&t.owner), t.source),
        );
    }
    for u in t.uses.iter().filter(|u| u.privilege != "EXECUTE") {
        let why = match u.kind {
            Kind::Type => format!("{} has columns of this type", t.target),
            Kind::Schema => format!(
                "the definition of {} names objects in it (in defaults, constraints or indexes)",
                t.target
            ),
            _ => format!("a foreign key of {} references it", t.target),
        };
        use_needs(out, u, &why);
    }
    if let (Some(schema), false) = (&facts.timescaledb_schema, facts.timescaledb_usage) {
        out.grant(
            "USAGE",
            Kind::Schema,
            schema,
            "to call TimescaleDB's create_hypertable",
        );
    }
}

fn use_needs(out: &mut Collector, u: &Use, why: &str) {
    if !u.schema_usage {
        out.grant(
            "USAGE",
            Kind::Schema,
            &u.schema,
            &format!("to reach {}", u.name),
        );
    }
    if !u.held {
        out.grant(u.privilege, u.kind, &u.name, why);
    }
}

/// Gathers problems, one per fixing statement, merging what each is needed for.
struct Collector {
    role: String,
    entries: Vec<Entry>,
}

struct Entry {
    fix: String,
    what: String,
    /// For ownership: the objects owned.
    objects: Vec<String>,
    whys: Vec<String>,
    /// For ownership: the ALTER ... OWNER TO statements that would also do.
    alternatives: Vec<String>,
}

impl Collector {
    fn new(role: &str) -> Self {
        Collector {
            role: role.to_string(),
            entries: vec![],
        }
    }

    fn entry(&mut self, fix: String, what: String) -> &mut Entry {
        let at = match self.entries.iter().position(|e| e.fix == fix) {
            Some(at) => at,
            None => {
                self.entries.push(Entry {
                    fix,
                    what,
                    objects: vec![],
                    whys: vec![],
                    alternatives: vec![],
                });
                self.entries.len() - 1
            }
        };
        &mut self.entries[at]
    }

    fn grant(&mut self, privilege: &str, kind: Kind, name: &str, why: &str) {
        let role = self.role.clone();
        self.grant_to(privilege, kind, name, &role, why);
    }

    fn grant_to(&mut self, privilege: &str, kind: Kind, name: &str, to: &str, why: &str) {
        let to = quote_ident(to);
        let (on, what) = (kind.sql(), kind.sql().to_lowercase());
        let fix = format!("GRANT {privilege} ON {on} {name} TO {to};");
        let what = format!("{privilege} on {what} {name} for {to}");
        push_unique(&mut self.entry(fix, what).whys, why);
    }

    /// A table whose row-level security binds its owner too: without BYPASSRLS every
    /// copy and check would see, and write, only what the policies allow.
    fn bypass_rls(&mut self, table: &QualifiedName) {
        let role = quote_ident(&self.role);
        let fix = format!("ALTER ROLE {role} BYPASSRLS;  -- as a superuser; or, as the owner, until finalize or abort: ALTER TABLE {} NO FORCE ROW LEVEL SECURITY;", table.quoted());
        let what = format!("BYPASSRLS for {role}");
        let why = format!("{table} forces row-level security on its owner, so the backfill, the copy triggers and parity would see only the rows its policies allow");
        push_unique(&mut self.entry(fix, what).whys, &why);
    }

    fn own(&mut self, o: &Owned, why: &str) {
        if o.acts_as_owner {
            return;
        }
        let (owner, role) = (quote_ident(&o.owner), quote_ident(&self.role));
        let object = format!("{} {}", o.kind.sql().to_lowercase(), o.name);
        let alter = format!("ALTER {} {} OWNER TO {role};", o.kind.sql(), o.name);
        if o.member {
            // A member that does not inherit: granting membership again changes nothing.
            let what = format!("{role}, a member of {owner} that does not inherit its privileges (NOINHERIT), to act as the owner of");
            let entry = self.entry(format!("ALTER ROLE {role} INHERIT;"), what);
            push_unique(&mut entry.objects, &object);
            push_unique(&mut entry.whys, why);
            return;
        }
        // The copy functions are SECURITY DEFINER: a new owner would change the
        // privileges every copied write runs with. Never offer that.
        let function = o.kind == Kind::Function;
        if o.owner_superuser {
            let fix = if function {
                format!("-- run this command as {owner}, which created the copy functions")
            } else {
                alter
            };
            let what = format!("ownership of {object}, which the superuser {owner} owns");
            push_unique(&mut self.entry(fix, what).whys, why);
            return;
        }
        let entry = self.entry(
            format!("GRANT {owner} TO {role};"),
            format!("the privileges of {owner}, which owns"),
        );
        push_unique(&mut entry.objects, &object);
        push_unique(&mut entry.whys, why);
        if !function {
            push_unique(&mut entry.alternatives, &alter);
        }
    }

    fn finish(self) -> Vec<Problem> {
        self.entries
            .into_iter()
            .map(|e| {
                let mut fix = e.fix;
                if !e.alternatives.is_empty() {
                    fix.push_str(&format!(
                        "  -- or, as a superuser: {}",
                        e.alternatives.join(" ")
                    ));
                }
                let mut missing = e.what;
                if !e.objects.is_empty() {
                    missing.push_str(&format!(" {}", e.objects.join(", ")));
                }
                Problem {
                    missing: format!("{missing}: {}", e.whys.join("; ")),
                    fix,
                }
            })
            .collect()
    }
}

fn push_unique(list: &mut Vec<String>, item: &str) {
    if !list.iter().any(|i| i == item) {
        list.push(item.to_string());
    }
}

/// The error listing every problem and every fix.
pub fn error(role: &str, problems: &[Problem]) -> Error {
    let missing: Vec<String> = problems
        .iter()
        .map(|p| format!("  - {}", p.missing))
        .collect();
    let fixes: Vec<String> = problems.iter().map(|p| format!("    {}", p.fix)).collect();
    Error::invalid(
        format!(
            "the role {} lacks {} privilege(s) that the plan's phases need; nothing was changed:\n{}",
            quote_ident(role),
            problems.len(),
            missing.join("\n")
        ),
        format!(
            "grant them (as a superuser, or as the objects' owners), then run the command again:\n{}",
            fixes.join("\n")
        ),
    )
}

/// Checks `scope`'s needs for `jobs` as resolved; fails listing every missing privilege.
pub async fn check(client: &impl GenericClient, jobs: &[Job], scope: Scope) -> Result<()> {
    let facts = facts(client, jobs).await?;
    let found = problems(&facts, scope);
    if found.is_empty() {
        return Ok(());
    }
    Err(error(&facts.role, &found))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn owned(kind: Kind, name: &str, owner: &str, acts_as_owner: bool) -> Owned {
        Owned {
            kind,
            name: name.into(),
            owner: owner.into(),
            acts_as_owner,
            owner_superuser: owner == "postgres",
            member: false,
        }
    }

    /// The documented least privileges: `app` owns the table, may create in its schema
    /// and in the database; no journal yet, nothing created.
    fn least() -> Facts {
        Facts {
            role: "app".into(),
            superuser: false,
            bypass_rls: false,
            database: "db".into(),
            database_create: true,
            timescaledb_schema: Some("\"public\"".into()),
            timescaledb_usage: true,
            journal: vec![],
            tables: vec![table("metrics")],
        }
    }

    fn table(name: &str) -> TableFacts {
        let source = QualifiedName::new("public", name);
        TableFacts {
            target: source.sibling(format!("{name}_hs_new")),
            schema: "\"public\"".into(),
            schema_usage: true,
            schema_create: true,
            owner: "app".into(),
            owner_schema_create: true,
            copy_exists: false,
            forced_row_security: false,
            tables: vec![owned(Kind::Table, &source.quoted(), "app", true)],
            sequences: vec![],
            views: vec![],
            inbound: vec![],
            uses: vec![],
            function_uses: vec![],
            functions: vec![],
            source,
        }
    }

    fn fixes(facts: &Facts, scope: Scope) -> Vec<String> {
        problems(facts, scope).into_iter().map(|p| p.fix).collect()
    }

    #[test]
    fn the_documented_least_privileges_are_enough_for_every_command() {
        for scope in [Scope::Forward, Scope::Rollback, Scope::Remove] {
            assert_eq!(fixes(&least(), scope), Vec::<String>::new(), "{scope:?}");
        }
    }

    #[test]
    fn a_superuser_lacks_nothing() {
        let mut f = least();
        f.superuser = true;
        f.database_create = false;
        f.tables[0].schema_create = false;
        f.tables[0].tables[0].acts_as_owner = false;
        assert!(problems(&f, Scope::Forward).is_empty());
    }

    #[test]
    fn every_missing_privilege_is_listed_once_with_its_grant() {
        let mut f = least();
        f.database_create = false;
        f.tables.push(table("events"));
        for t in &mut f.tables {
            t.schema_create = false;
        }
        f.tables[1].tables[0] = owned(Kind::Table, "\"public\".\"events\"", "ops", false);
        assert_eq!(
            fixes(&f, Scope::Forward),
            [
                "GRANT CREATE ON DATABASE \"db\" TO \"app\";",
                "GRANT CREATE ON SCHEMA \"public\" TO \"app\";",
                "GRANT \"ops\" TO \"app\";  -- or, as a superuser: ALTER TABLE \"public\".\"events\" OWNER TO \"app\";",
            ]
        );
        let missing = problems(&f, Scope::Forward)[1].missing.clone();
        assert!(
            missing.contains("public.metrics_hs_new") && missing.contains("public.events_hs_new"),
            "both tables' reasons are kept: {missing}"
        );
    }

    #[test]
    fn a_member_of_the_owner_needs_the_owner_to_create_in_the_schema() {
        let mut f = least();
        f.role = "dba".into();
        f.tables[0].owner_schema_create = false;
        assert_eq!(
            fixes(&f, Scope::Forward),
            ["GRANT CREATE ON SCHEMA \"public\" TO \"app\";"]
        );
        // Once the new table exists, its owner was set already.
        f.tables[0].copy_exists = true;
        assert!(fixes(&f, Scope::Forward).is_empty());
        // The owner itself running the plan never changes the owner.
        let mut f = least();
        f.tables[0].owner_schema_create = false;
        assert!(fixes(&f, Scope::Forward).is_empty());
    }

    #[test]
    fn a_journal_of_another_role_needs_its_privileges_not_create_on_the_database() {
        let mut f = least();
        f.database_create = false;
        f.journal = vec![
            owned(Kind::Schema, "\"hyperswap\"", "ops", false),
            owned(Kind::Table, "\"hyperswap\".\"plans\"", "ops", false),
        ];
        for scope in [Scope::Forward, Scope::Rollback, Scope::Remove] {
            assert_eq!(fixes(&f, scope), ["GRANT \"ops\" TO \"app\";  -- or, as a superuser: ALTER SCHEMA \"hyperswap\" OWNER TO \"app\"; ALTER TABLE \"hyperswap\".\"plans\" OWNER TO \"app\";"]);
        }
        // Membership in a superuser is not offered: the owner must change.
        f.journal = vec![owned(Kind::Schema, "\"hyperswap\"", "postgres", false)];
        assert_eq!(
            fixes(&f, Scope::Remove),
            ["ALTER SCHEMA \"hyperswap\" OWNER TO \"app\";"]
        );
    }

    #[test]
    fn each_command_needs_only_its_own_privileges() {
        let mut f = least();
        f.database_create = false;
        f.tables[0].schema_create = false;
        f.tables[0].functions = vec![owned(
            Kind::Function,
            "\"hyperswap\".\"copy__public__metrics\"()",
            "ops",
            false,
        )];
        f.tables[0].uses = vec![Use {
            privilege: "REFERENCES",
            kind: Kind::Table,
            name: "\"s\".\"dev\"".into(),
            schema: "\"s\"".into(),
            held: false,
            schema_usage: false,
        }];
        f.tables[0].views = vec![View {
            owned: owned(Kind::View, "\"public\".\"v\"", "app", true),
            schema: "\"public\"".into(),
            schema_create: false,
        }];
        assert_eq!(
            fixes(&f, Scope::Forward),
            [
                "GRANT CREATE ON DATABASE \"db\" TO \"app\";",
                "GRANT CREATE ON SCHEMA \"public\" TO \"app\";",
                "GRANT USAGE ON SCHEMA \"s\" TO \"app\";",
                "GRANT REFERENCES ON TABLE \"s\".\"dev\" TO \"app\";",
                "GRANT \"ops\" TO \"app\";",
            ]
        );
        // Renames need CREATE on the schema; no function is dropped.
        assert_eq!(
            fixes(&f, Scope::Rollback),
            ["GRANT CREATE ON SCHEMA \"public\" TO \"app\";"]
        );
        // Dropping needs ownership only.
        assert_eq!(fixes(&f, Scope::Remove), ["GRANT \"ops\" TO \"app\";"]);
        // Types and referenced tables matter only while the new table is to be created.
        f.tables[0].copy_exists = true;
        assert!(!fixes(&f, Scope::Forward)
            .iter()
            .any(|x| x.contains("REFERENCES")));
    }

    #[test]
    fn schemas_the_definition_names_need_usage_until_the_copy_exists() {
        let mut f = least();
        f.tables[0].uses = vec![Use {
            privilege: "USAGE",
            kind: Kind::Schema,
            name: "\"util\"".into(),
            schema: "\"util\"".into(),
            held: false,
            schema_usage: true,
        }];
        assert_eq!(
            fixes(&f, Scope::Forward),
            ["GRANT USAGE ON SCHEMA \"util\" TO \"app\";"]
        );
        assert!(fixes(&f, Scope::Rollback).is_empty());
        f.tables[0].copy_exists = true;
        assert!(fixes(&f, Scope::Forward).is_empty());
    }

    #[test]
    fn row_security_forced_on_the_owner_needs_bypassrls() {
        let mut f = least();
        f.tables[0].forced_row_security = true;
        let found = fixes(&f, Scope::Forward);
        assert_eq!(found.len(), 1);
        assert!(
            found[0].starts_with("ALTER ROLE \"app\" BYPASSRLS;")
                && found[0]
                    .contains("ALTER TABLE \"public\".\"metrics\" NO FORCE ROW LEVEL SECURITY;"),
            "{found:?}"
        );
        assert_eq!(fixes(&f, Scope::Rollback).len(), 1);
        assert!(fixes(&f, Scope::Remove).is_empty());
        f.bypass_rls = true;
        assert!(fixes(&f, Scope::Forward).is_empty());
    }

    #[test]
    fn a_member_that_does_not_inherit_is_told_to_inherit() {
        let mut f = least();
        f.role = "dba".into();
        f.tables[0].tables[0].acts_as_owner = false;
        f.tables[0].tables[0].member = true;
        assert_eq!(fixes(&f, Scope::Remove), ["ALTER ROLE \"dba\" INHERIT;"]);
    }

    #[test]
    fn after_cutover_rollback_and_finalize_are_checked_together() {
        let mut f = least();
        f.tables[0].copy_exists = true;
        f.tables[0].schema_create = false;
        f.tables[0].functions = vec![owned(
            Kind::Function,
            "\"hyperswap\".\"reverse__public__metrics\"()",
            "ops",
            false,
        )];
        let found = fixes(&f, Scope::AfterCutover);
        assert_eq!(found.len(), 2, "{found:?}");
        assert_eq!(found[0], "GRANT CREATE ON SCHEMA \"public\" TO \"app\";");
        assert!(found[1].starts_with("GRANT \"ops\" TO \"app\";"));
    }

    #[test]
    fn copy_functions_are_never_given_away() {
        let mut f = least();
        f.tables[0].functions = vec![owned(
            Kind::Function,
            "\"hyperswap\".\"copy__public__metrics\"()",
            "postgres",
            false,
        )];
        let found = fixes(&f, Scope::Remove);
        assert_eq!(found.len(), 1);
        assert!(!found[0].contains("OWNER TO"), "{found:?}");
        assert!(
            found[0].contains("run this command as \"postgres\""),
            "{found:?}"
        );
    }

    #[test]
    fn names_in_fixes_are_quoted() {
        let mut f = least();
        f.role = "we\"ird Role".into();
        f.tables[0].owner = "we\"ird Role".into();
        f.tables[0].schema_create = false;
        assert_eq!(
            fixes(&f, Scope::Forward),
            ["GRANT CREATE ON SCHEMA \"public\" TO \"we\"\"ird Role\";"]
        );
    }
}
