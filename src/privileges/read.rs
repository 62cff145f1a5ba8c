//! Reading the facts [`super::problems`] judges from the catalogs, as the connecting role.
//! Objects are looked up by name in the catalogs rather than with `to_regclass`, which
//! fails outright on a schema the role may not use.

use tokio_postgres::GenericClient;

use super::{Facts, Kind, Owned, TableFacts, Use, View};
use crate::error::{Context, Error, Result};
use crate::ident::{quote_ident, QualifiedName};
use crate::model::{Job, TOOL_SCHEMA};

/// Reads what the connecting role holds for `jobs`.
pub async fn facts(client: &impl GenericClient, jobs: &[Job]) -> Result<Facts> {
    let ctx = "reading the connecting role's privileges";
    let row = client
        .query_one(include_str!("../../sql/privileges_role.sql"), &[])
        .await
        .context(ctx)?;
    let journal = client
        .query(
            include_str!("../../sql/privileges_journal.sql"),
            &[&TOOL_SCHEMA],
        )
        .await
        .context(ctx)?
        .iter()
        .map(|r| {
            let (schema, table): (String, Option<String>) = (r.get(0), r.get(1));
            let (kind, name) = match table {
                Some(t) => (Kind::Table, QualifiedName::new(schema, t).quoted()),
                None => (Kind::Schema, quote_ident(&schema)),
            };
            Owned {
                kind,
                name,
                owner: r.get(2),
                acts_as_owner: r.get(3),
                owner_superuser: r.get(4),
                member: r.get(5),
            }
        })
        .collect();
    let superuser: bool = row.get(1);
    let mut tables = Vec::new();
    // A superuser holds every privilege: nothing more to read.
    for job in jobs.iter().filter(|_| !superuser) {
        tables.push(table_facts(client, job).await?);
    }
    Ok(Facts {
        role: row.get(0),
        superuser,
        bypass_rls: row.get(6),
        database: row.get(2),
        database_create: row.get(3),
        timescaledb_schema: row.get::<_, Option<&str>>(4).map(quote_ident),
        timescaledb_usage: row.get(5),
        journal,
        tables,
    })
}

/// One relation's row of `privileges_relation.sql`.
struct Relation {
    owned: Owned,
    schema: String,
    schema_usage: bool,
    schema_create: bool,
    owner_schema_create: bool,
}

async fn relation(client: &impl GenericClient, quoted: &str) -> Result<Option<Relation>> {
    let row = client
        .query_opt(
            include_str!("../../sql/privileges_relation.sql"),
            &[&quoted],
        )
        .await
        .with_context(|| format!("reading the privileges on {quoted}"))?;
    Ok(row.map(|r| Relation {
        owned: Owned {
            kind: Kind::from_relkind(r.get(0)),
            name: QualifiedName::new(r.get::<_, String>(3), r.get::<_, String>(8)).quoted(),
            owner: r.get(1),
            acts_as_owner: r.get(2),
            owner_superuser: r.get(7),
            member: r.get(9),
        },
        schema: quote_ident(r.get(3)),
        schema_usage: r.get(4),
        schema_create: r.get(5),
        owner_schema_create: r.get(6),
    }))
}

async fn relations(
    client: &impl GenericClient,
    names: impl IntoIterator<Item = String>,
) -> Result<Vec<Relation>> {
    let mut out = Vec::new();
    for name in names {
        out.extend(relation(client, &name).await?);
    }
    Ok(out)
}

async fn table_facts(client: &impl GenericClient, job: &Job) -> Result<TableFacts> {
    let original = relation(client, &job.table.name.quoted())
        .await?
        .ok_or_else(|| {
            Error::invalid(
                format!("{} is missing", job.table.name),
                "check the plan's table names",
            )
        })?;
    let names = [&job.source, &job.target, &job.retired].map(|n| n.quoted());
    let tables = relations(client, names.clone()).await?;
    // Before cutover the copy is the target; after it, the original is the retired table.
    let copy_exists = tables
        .iter()
        .any(|r| r.owned.name == names[1] || r.owned.name == names[2]);
    let sequences = relations(
        client,
        job.table
            .sequences
            .iter()
            .filter(|s| !s.identity)
            .map(|s| s.name.quoted()),
    )
    .await?;
    let views = relations(
        client,
        job.table
            .views
            .iter()
            .filter(|v| v.kind == crate::catalog::ViewKind::View)
            .map(|v| v.name.quoted()),
    )
    .await?;
    let inbound = if job.drop_inbound_fks {
        relations(
            client,
            job.table.inbound_fks.iter().map(|f| f.table_quoted.clone()),
        )
        .await?
    } else {
        vec![]
    };
    let functions = functions(client, job).await?;
    Ok(TableFacts {
        source: job.source.clone(),
        target: job.target.clone(),
        schema: original.schema.clone(),
        schema_usage: original.schema_usage,
        schema_create: original.schema_create,
        owner: original.owned.owner.clone(),
        owner_schema_create: original.owner_schema_create,
        copy_exists,
        forced_row_security: job.table.row_security && job.table.force_row_security,
        tables: tables.into_iter().map(|r| r.owned).collect(),
        sequences: sequences.into_iter().map(|r| r.owned).collect(),
        views: views
            .into_iter()
            .map(|r| View {
                schema: r.schema,
                schema_create: r.schema_create,
                owned: r.owned,
            })
            .collect(),
        inbound: inbound.into_iter().map(|r| r.owned).collect(),
        uses: uses(client, job).await?,
        functions: functions.iter().map(|(o, _)| o.clone()).collect(),
        function_uses: functions.into_iter().map(|(_, u)| u).collect(),
    })
}

async fn uses(client: &impl GenericClient, job: &Job) -> Result<Vec<Use>> {
    let rows = client
        .query(
            include_str!("../../sql/privileges_uses.sql"),
            &[&job.table.oid],
        )
        .await
        .with_context(|| format!("reading the privileges on what {} uses", job.table.name))?;
    Ok(rows
        .iter()
        .map(|r| {
            let (privilege, kind) = match r.get::<_, &str>(0) {
                "type" => ("USAGE", Kind::Type),
                "references" => ("REFERENCES", Kind::Table),
                "schema" => ("USAGE", Kind::Schema),
                _ => ("EXECUTE", Kind::Function),
            };
            let name = QualifiedName::new(r.get::<_, String>(1), r.get::<_, String>(2));
            let quoted = match kind {
                Kind::Schema => quote_ident(&name.schema),
                _ => format!("{}{}", name.quoted(), r.get::<_, &str>(3)),
            };
            Use {
                privilege,
                kind,
                name: quoted,
                schema: quote_ident(&name.schema),
                held: r.get(4),
                schema_usage: r.get(5),
            }
        })
        .collect())
}

/// The copy functions: their owners, and EXECUTE on each (to create its triggers).
async fn functions(client: &impl GenericClient, job: &Job) -> Result<Vec<(Owned, Use)>> {
    let mut out = Vec::new();
    for f in crate::capture::of(job).functions(job) {
        let signature = format!("{}()", f.quoted());
        let row = client
            .query_opt(
                include_str!("../../sql/privileges_function.sql"),
                &[&f.quoted()],
            )
            .await
            .with_context(|| format!("reading the owner of {signature}"))?;
        out.extend(row.map(|r| {
            (
                Owned {
                    kind: Kind::Function,
                    name: signature.clone(),
                    owner: r.get(0),
                    acts_as_owner: r.get(1),
                    owner_superuser: r.get(2),
                    member: r.get(3),
                },
                Use {
                    privilege: "EXECUTE",
                    kind: Kind::Function,
                    name: signature.clone(),
                    schema: quote_ident(&f.schema),
                    held: r.get(4),
                    schema_usage: r.get(5),
                },
            )
        }));
    }
    Ok(out)
}
