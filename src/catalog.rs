//! Reading a table's definition from the system catalogs: everything the target needs
//! to be a faithful copy (columns, defaults, constraints, indexes, sequences, grants,
//! comments).

use tokio_postgres::types::Oid;
use tokio_postgres::{GenericClient, Row};

use crate::error::{Context, Result};
use crate::ident::QualifiedName;

#[derive(Debug, Clone)]
pub struct Table {
    pub oid: Oid,
    pub name: QualifiedName,
    /// 'r' plain table, 'p' partitioned, 'v' view, ...
    pub relkind: String,
    pub persistence: Persistence,
    pub partitioned: bool,
    pub inherits: bool,
    pub typed: bool,
    pub owner: String,
    pub comment: Option<String>,
    pub row_security: bool,
    pub force_row_security: bool,
    pub estimated_rows: f64,
    /// Storage parameters, `name=value` as `pg_class.reloptions` has them.
    pub reloptions: Vec<String>,
    /// The TOAST table's storage parameters (set as `toast.name`).
    pub toast_reloptions: Vec<String>,
    pub columns: Vec<Column>,
    pub constraints: Vec<Constraint>,
    pub indexes: Vec<Index>,
    pub sequences: Vec<OwnedSequence>,
    pub grants: Vec<Grant>,
    pub inbound_fks: Vec<InboundFk>,
    pub views: Vec<View>,
    pub policies: Vec<Policy>,
    pub triggers: Vec<UserTrigger>,
}

/// A foreign key on another table that references this one.
#[derive(Debug, Clone)]
pub struct InboundFk {
    pub name: String,
    /// `schema.table` as PostgreSQL prints it.
    pub table: String,
    /// The table, quoted for SQL.
    pub table_quoted: String,
    /// The referencing table's schema and name.
    pub table_name: QualifiedName,
    /// `FOREIGN KEY (...) REFERENCES ...`, as `pg_get_constraintdef` prints it.
    pub definition: String,
    /// The referencing columns, in key order.
    pub columns: Vec<String>,
    /// The referenced columns (on this table), in the same order.
    pub referenced_columns: Vec<String>,
    /// `confdeltype`: 'a' no action, 'r' restrict, 'c' cascade, 'n' set null, 'd' set default.
    pub on_delete: String,
    /// `confupdtype`, with the same letters.
    pub on_update: String,
    /// `confmatchtype`: 's' simple, 'f' full, 'p' partial.
    pub match_type: String,
    /// `ON DELETE SET NULL (cols)` / `SET DEFAULT (cols)`: only these; empty: all.
    pub delete_set_columns: Vec<String>,
    /// `convalidated`: false for a key added NOT VALID and never validated.
    pub validated: bool,
    pub deferrable: bool,
    pub deferred: bool,
    /// Per column, the key's equality operator between the referenced and the
    /// referencing column (`conpfeqop`), as `OPERATOR(schema.=)`.
    pub eq_ops: Vec<String>,
    /// Per column, the referenced column's equality operator with itself (`conppeqop`).
    pub referenced_eq_ops: Vec<String>,
    /// The referencing table is partitioned: PostgreSQL cannot add a key to it NOT VALID.
    pub referencing_partitioned: bool,
}

/// A view reading the table; its definition names the table by its current name.
#[derive(Debug, Clone)]
pub struct View {
    pub name: QualifiedName,
    pub kind: ViewKind,
    pub definition: String,
    /// `security_barrier=true, check_option=local`, or "".
    pub options: String,
}

#[derive(Debug, Clone)]
pub struct Policy {
    pub name: String,
    pub permissive: bool,
    pub command: String,
    /// Quoted role names, or PUBLIC.
    pub roles: Vec<String>,
    pub using_expr: Option<String>,
    pub check_expr: Option<String>,
}

#[derive(Debug, Clone)]
pub struct UserTrigger {
    pub name: String,
    /// `CREATE TRIGGER ... ON <table> ...`, naming the table by its current name.
    pub definition: String,
    pub state: TriggerState,
}

/// `pg_constraint.contype`, parsed where the row is read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConstraintKind {
    PrimaryKey,
    Unique,
    Check,
    ForeignKey,
    Exclusion,
    /// A constraint trigger, or a kind this version does not know.
    Other,
}

impl ConstraintKind {
    pub fn parse(code: &str) -> Self {
        match code {
            "p" => Self::PrimaryKey,
            "u" => Self::Unique,
            "c" => Self::Check,
            "f" => Self::ForeignKey,
            "x" => Self::Exclusion,
            _ => Self::Other,
        }
    }

    /// A primary key or a unique constraint.
    pub fn is_unique_key(self) -> bool {
        matches!(self, Self::PrimaryKey | Self::Unique)
    }
}

/// `pg_trigger.tgenabled`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TriggerState {
    /// Fires in sessions of the default replication role ('O').
    Enabled,
    Disabled,
    /// Fires only in replica sessions ('R').
    Replica,
    /// Fires always ('A').
    Always,
}

impl TriggerState {
    pub fn parse(code: &str) -> Self {
        match code {
            "O" => Self::Enabled,
            "R" => Self::Replica,
            "A" => Self::Always,
            _ => Self::Disabled,
        }
    }
}

/// `pg_class.relkind` of a view that reads the table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ViewKind {
    View,
    Materialized,
}

/// `pg_class.relpersistence`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Persistence {
    Permanent,
    Unlogged,
    Temporary,
}

impl Persistence {
    pub fn parse(code: &str) -> Self {
        match code {
            "u" => Self::Unlogged,
            "t" => Self::Temporary,
            _ => Self::Permanent,
        }
    }
}

#[derive(Debug, Clone)]
pub struct Column {
    pub name: String,
    /// `format_type` output, e.g. `timestamp with time zone`, `numeric(10,2)`.
    pub type_sql: String,
    /// The base type's name, e.g. `timestamptz`, `int8`.
    pub type_name: String,
    pub not_null: bool,
    pub default_sql: Option<String>,
    /// "" none, "a" GENERATED ALWAYS AS IDENTITY, "d" BY DEFAULT.
    pub identity: String,
    /// "" none, "s" stored generated column.
    pub generated: String,
    pub collation_sql: Option<String>,
    pub comment: Option<String>,
    /// How parity's checksum reads this column.
    pub hash: ColumnHash,
}

/// How parity's checksum reads a column, so that two different stored values never
/// hash alike by the type's design (hash functions follow equality, and equality
/// forgets numeric's scale, jsonb's number forms, an array's bounds, -0.0).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ColumnHash {
    /// The type's own hash tells every stored value apart (integers, timestamps, uuid,
    /// text under a deterministic collation, ...).
    Native,
    /// Through the type's binary send function (schema-qualified), whose bytes do.
    Send(String),
    /// The text form: the type has no send function.
    Text,
}

impl Column {
    /// Whether the copy trigger and backfill write this column (generated ones compute).
    pub fn is_written(&self) -> bool {
        self.generated.is_empty()
    }
}

#[derive(Debug, Clone)]
pub struct Constraint {
    pub name: String,
    pub kind: ConstraintKind,
    pub definition: String,
    pub columns: Vec<String>,
    pub index_name: Option<String>,
    pub deferrable: bool,
    pub deferred: bool,
    pub comment: Option<String>,
    /// A foreign key referencing its own table.
    pub self_reference: bool,
    /// For a foreign key: the referenced table, `schema.name` unquoted.
    pub references_table: Option<String>,
}

#[derive(Debug, Clone)]
pub struct Index {
    pub name: String,
    pub definition: String,
    pub prefix: String,
    pub unique: bool,
    pub backs_constraint: bool,
    pub valid: bool,
    /// Key columns in order; "" for an expression.
    pub key_columns: Vec<String>,
    pub partial: bool,
    pub comment: Option<String>,
    /// Per key column: ` COLLATE ...` where the index's collation is not the column's.
    pub key_collates: Vec<String>,
}

#[derive(Debug, Clone)]
pub struct OwnedSequence {
    pub name: QualifiedName,
    pub column: String,
    /// true: identity column's internal sequence; false: serial / OWNED BY.
    pub identity: bool,
}

#[derive(Debug, Clone)]
pub struct Grant {
    /// None = PUBLIC.
    pub grantee: Option<String>,
    pub privilege: String,
    pub grantable: bool,
    /// None = the whole table.
    pub column: Option<String>,
}

impl Table {
    pub fn column(&self, name: &str) -> Option<&Column> {
        self.columns.iter().find(|c| c.name == name)
    }

    pub fn primary_key(&self) -> Option<&Constraint> {
        self.constraints
            .iter()
            .find(|c| c.kind == ConstraintKind::PrimaryKey)
    }

    pub fn is_plain_table(&self) -> bool {
        self.relkind == "r" && !self.partitioned
    }
}

/// A relation's columns as its whole-row text form sees them (names, types, order), or
/// `None` when it does not exist: two tables with the same signature print the same row
/// as the same text.
pub async fn row_signature(
    client: &impl GenericClient,
    name: &QualifiedName,
) -> Result<Option<String>> {
    let sql = include_str!("../sql/catalog_row_signature.sql");
    Ok(client
        .query_one(sql, &[&name.quoted()])
        .await
        .with_context(|| format!("reading the columns of {name}"))?
        .get(0))
}

/// Objects bound to the relation itself (not its name), with their kind: `view`,
/// `constraint` (another table's foreign key) or `other` (functions, rules, ...).
pub async fn dependents(client: &impl GenericClient, oid: Oid) -> Result<Vec<(String, String)>> {
    let rows = client
        .query(include_str!("../sql/catalog_dependents.sql"), &[&oid])
        .await
        .context("reading what depends on the table")?;
    Ok(rows.iter().map(|r| (r.get(0), r.get(1))).collect())
}

/// Loads `name`'s definition, or `None` when no relation has that name.
pub async fn load(client: &impl GenericClient, name: &QualifiedName) -> Result<Option<Table>> {
    let ctx = || format!("reading the definition of {name}");
    let Some(row) = client
        .query_opt(
            include_str!("../sql/catalog_table.sql"),
            &[&name.schema, &name.name],
        )
        .await
        .with_context(ctx)?
    else {
        return Ok(None);
    };
    let oid: Oid = row.get(0);
    let rows =
        |sql: &'static str| async move { client.query(sql, &[&oid]).await.with_context(ctx) };
    let columns = rows(include_str!("../sql/catalog_columns.sql"))
        .await?
        .iter()
        .map(column)
        .collect();
    let constraints = rows(include_str!("../sql/catalog_constraints.sql"))
        .await?
        .iter()
        .map(constraint)
        .collect();
    let indexes = rows(include_str!("../sql/catalog_indexes.sql"))
        .await?
        .iter()
        .map(index)
        .collect();
    let sequences = rows(include_str!("../sql/catalog_sequences.sql"))
        .await?
        .iter()
        .map(sequence)
        .collect();
    let grants = rows(include_str!("../sql/catalog_grants.sql"))
        .await?
        .iter()
        .map(grant)
        .collect();
    let inbound_fks = rows(include_str!("../sql/catalog_inbound_fks.sql"))
        .await?
        .iter()
        .map(inbound_fk)
        .collect();
    let views = rows(include_str!("../sql/catalog_views.sql"))
        .await?
        .iter()
        .map(|r| View {
            name: QualifiedName::new(r.get::<_, String>(1), r.get::<_, String>(2)),
            kind: if r.get::<_, &str>(3) == "m" {
                ViewKind::Materialized
            } else {
                ViewKind::View
            },
            definition: r.get(4),
            options: r.get(5),
        })
        .collect();
    let policies = rows(include_str!("../sql/catalog_policies.sql"))
        .await?
        .iter()
        .map(|r| Policy {
            name: r.get(0),
            permissive: r.get(1),
            command: r.get(2),
            roles: r.get(3),
            using_expr: r.get(4),
            check_expr: r.get(5),
        })
        .collect();
    let triggers = rows(include_str!("../sql/catalog_triggers.sql"))
        .await?
        .iter()
        .map(|r| UserTrigger {
            name: r.get(0),
            definition: r.get(1),
            state: TriggerState::parse(r.get(2)),
        })
        .collect();
    Ok(Some(Table {
        oid,
        name: name.clone(),
        relkind: row.get(1),
        persistence: Persistence::parse(row.get(2)),
        partitioned: row.get(3),
        inherits: row.get(4),
        typed: row.get(5),
        owner: row.get(6),
        comment: row.get(7),
        row_security: row.get(8),
        force_row_security: row.get(9),
        estimated_rows: row.get(10),
        reloptions: row.get(11),
        toast_reloptions: row.get(12),
        columns,
        constraints,
        indexes,
        sequences,
        grants,
        inbound_fks,
        views,
        policies,
        triggers,
    }))
}

fn column(r: &Row) -> Column {
    Column {
        name: r.get(0),
        type_sql: r.get(1),
        type_name: r.get(2),
        not_null: r.get(3),
        default_sql: r.get(4),
        identity: r.get(5),
        generated: r.get(6),
        collation_sql: r.get(7),
        hash: match r.get::<_, Option<String>>(9) {
            Some(f) if f.is_empty() => ColumnHash::Native,
            Some(f) => ColumnHash::Send(f),
            None => ColumnHash::Text,
        },
        comment: r.get(8),
    }
}

fn constraint(r: &Row) -> Constraint {
    Constraint {
        name: r.get(0),
        kind: ConstraintKind::parse(r.get(1)),
        definition: r.get(2),
        columns: r.get(3),
        index_name: r.get(4),
        deferrable: r.get(5),
        deferred: r.get(6),
        comment: r.get(7),
        self_reference: r.get(8),
        references_table: r.get(9),
    }
}

fn inbound_fk(r: &Row) -> InboundFk {
    InboundFk {
        name: r.get(0),
        table: r.get(1),
        definition: r.get(2),
        table_quoted: r.get(3),
        table_name: QualifiedName::new(r.get::<_, String>(4), r.get::<_, String>(5)),
        columns: r.get(6),
        referenced_columns: r.get(7),
        on_delete: r.get(8),
        on_update: r.get(9),
        match_type: r.get(10),
        delete_set_columns: r.get(11),
        validated: r.get(12),
        deferrable: r.get(13),
        deferred: r.get(14),
        eq_ops: r.get(15),
        referenced_eq_ops: r.get(16),
        referencing_partitioned: r.get(17),
    }
}

fn index(r: &Row) -> Index {
    Index {
        name: r.get(0),
        definition: r.get(1),
        prefix: r.get(2),
        unique: r.get(3),
        backs_constraint: r.get(4),
        valid: r.get(5),
        key_columns: r.get(6),
        partial: r.get(7),
        comment: r.get(8),
        key_collates: r.get(9),
    }
}

fn sequence(r: &Row) -> OwnedSequence {
    OwnedSequence {
        name: QualifiedName::new(r.get::<_, String>(0), r.get::<_, String>(1)),
        column: r.get(2),
        identity: r.get::<_, String>(3) == "i",
    }
}

fn grant(r: &Row) -> Grant {
    Grant {
        grantee: r.get(0),
        privilege: r.get(1),
        grantable: r.get(2),
        column: r.get(3),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn catalog_codes_parse_to_their_kinds() {
        assert_eq!(ConstraintKind::parse("p"), ConstraintKind::PrimaryKey);
        assert_eq!(ConstraintKind::parse("x"), ConstraintKind::Exclusion);
        assert_eq!(ConstraintKind::parse("t"), ConstraintKind::Other);
        assert!(ConstraintKind::parse("u").is_unique_key());
        assert!(!ConstraintKind::parse("c").is_unique_key());
        assert_eq!(TriggerState::parse("O"), TriggerState::Enabled);
        assert_eq!(TriggerState::parse("D"), TriggerState::Disabled);
        assert_eq!(TriggerState::parse("A"), TriggerState::Always);
        assert_eq!(Persistence::parse("u"), Persistence::Unlogged);
        assert_eq!(Persistence::parse("p"), Persistence::Permanent);
    }
}
