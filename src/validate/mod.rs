//! Checking a plan against the live database and resolving its tables into [`Job`]s.
//! Read-only: a plan that fails here has changed nothing.

use tokio_postgres::GenericClient;

mod checks;
mod notes;

pub use checks::plan_spelling;
use checks::{check_constraints, check_key, check_no_keys_between, plan_spellings};
pub use notes::cutover_notes;

use crate::catalog::{self, Persistence, RelKind, Table};
use crate::error::{Context, Error, Problems, Result};
use crate::ident::{display_ident, quote_ident, QualifiedName};
use crate::model::{CaptureId, ColumnRef, Job, Key, KeyColumn};
use crate::phase::Phase;
use crate::plan::{InboundForeignKeys, Plan, TablePlan};

/// Time column types the target's `by_range` dimension accepts with an interval.
const TIME_TYPES: [&str; 3] = ["timestamptz", "timestamp", "date"];

/// Resolves every table of `plan`. `phase` is the journal's phase (`None`: not started),
/// which says where the original table lives and which names are expected to exist.
pub async fn resolve(
    client: &impl GenericClient,
    plan: &Plan,
    phase: Option<Phase>,
) -> Result<Vec<Job>> {
    check_timescaledb(client).await?;
    // Every problem of every table is found before any is reported.
    let mut problems = Problems::default();
    let mut jobs = Vec::new();
    for (ord, t) in plan.tables.iter().enumerate() {
        let field = format!("tables[{ord}]");
        let found = resolve_table(client, plan, t, ord, &field, phase).await;
        jobs.extend(problems.check(found)?.flatten());
    }
    problems.check(check_no_keys_between(&jobs))?;
    problems.check(check_window_zone(client, plan).await)?;
    problems.finish()?;
    recorded_capture_ids(client, plan, phase, &mut jobs).await?;
    Ok(jobs)
}

/// The cutover window's time zone must be one the server knows: otherwise the plan
/// would fail only at cutover, after the whole backfill.
async fn check_window_zone(client: &impl GenericClient, plan: &Plan) -> Result<()> {
    let Some(w) = &plan.cutover.window else {
        return Ok(());
    };
    let known: bool = client
        .query_one(
            "SELECT EXISTS (SELECT FROM pg_catalog.pg_timezone_names WHERE name OPERATOR(pg_catalog.=) $1)
                 OR EXISTS (SELECT FROM pg_catalog.pg_timezone_abbrevs WHERE abbrev OPERATOR(pg_catalog.=) $1)",
            &[&w.time_zone],
        )
        .await
        .context("looking up the cutover window's time zone")?
        .get(0);
    if known {
        return Ok(());
    }
    Err(Error::invalid(
        format!(
            "cutover.window: the server knows no time zone `{}`",
            w.time_zone
        ),
        "name a zone from pg_timezone_names, e.g. `UTC` or `Europe/Paris` (SELECT name FROM pg_timezone_names)",
    ))
}

/// Checks that must hold for the forward path to reach cutover (`plan validate` and
/// `plan apply` run them; reading commands do not).
pub async fn check_forward(client: &impl GenericClient, jobs: &[Job]) -> Result<()> {
    let mut problems = Problems::default();
    for job in jobs {
        problems.check(check_bound_dependents(client, job).await)?;
    }
    // Every privilege the phases ahead need, reported with the plan's other problems.
    let privileges = crate::privileges::check(client, jobs, crate::privileges::Scope::Forward);
    problems.check(privileges.await)?;
    problems.finish()
}
/// Objects bound to the table itself rather than to its name (SQL functions with
/// BEGIN ATOMIC bodies, rules) would keep using the original after cutover.
pub async fn check_bound_dependents(client: &impl GenericClient, job: &Job) -> Result<()> {
    let bound: Vec<String> = crate::catalog::dependents(client, job.table.oid)
        .await?
        .into_iter()
        .filter(|(_, kind)| kind == "other")
        .map(|(object, _)| object)
        .collect();
    if bound.is_empty() {
        return Ok(());
    }
    Err(Error::invalid(
        format!(
            "{} is used by objects bound to the table itself, not its name, which would keep using the original after cutover: {}",
            job.source,
            bound.join("; ")
        ),
        "drop them before the move and create them again after cutover (a SQL function can use a quoted string body instead of BEGIN ATOMIC)",
    ))
}

async fn check_timescaledb(client: &impl GenericClient) -> Result<()> {
    let row = client
        .query_opt(
            "SELECT extversion FROM pg_extension WHERE extname = 'timescaledb'",
            &[],
        )
        .await
        .context("looking for the timescaledb extension")?;
    if row.is_none() {
        return Err(Error::invalid(
            "the timescaledb extension is not installed in this database",
            "run `CREATE EXTENSION timescaledb;` in it (the server needs shared_preload_libraries = 'timescaledb')",
        ));
    }
    Ok(())
}

async fn resolve_table(
    client: &impl GenericClient,
    plan: &Plan,
    t: &TablePlan,
    ord: usize,
    field: &str,
    phase: Option<Phase>,
) -> Result<Option<Job>> {
    let cut_over = phase.is_some_and(Phase::cut_over);
    // After cutover the original table lives on under the retired name.
    let original_name = if cut_over { &t.retired } else { &t.source };
    let table = load_original(client, plan, original_name, field).await?;
    let tsdb = timescaledb_schema(client).await?;
    // Each check stands alone: all of this table's problems are reported together.
    let mut problems = Problems::default();
    if !cut_over {
        problems.check(check_plain_table(client, &table, field).await)?;
        problems.check(check_names_free(client, plan, t, field, phase).await)?;
        for found in what_the_name_loses(client, &table, field).await? {
            problems.check(Err::<(), _>(found))?;
        }
        if let Some(p) = phase.filter(|p| p.source_is_live() && p.target_created()) {
            problems.check(check_indexes_followed(client, &table, t, field, p).await)?;
            problems
                .check(check_definitions_followed(client, plan, &table, t, ord, field).await)?;
        }
    }
    if let Some((a, b)) = copy_pair(t, phase) {
        problems.check(check_same_columns(client, a, b).await)?;
    }
    let time = problems
        .check(check_time_column(client, &table, &t.time_column, field, !cut_over).await)?;
    let key = problems.check(check_key(&table, t.key.as_deref(), field))?;
    problems.check(check_constraints(&table, field, t.inbound_foreign_keys))?;
    if !cut_over {
        problems.check(check_inbound_fks(client, plan, &table, field).await)?;
        if t.inbound_foreign_keys == InboundForeignKeys::Emulate {
            for fk in &table.inbound_fks {
                problems
                    .check(crate::fk_emulation::check_comparable(client, &table.name, fk).await)?;
                let roles =
                    crate::fk_emulation::roles_lacking_privileges(client, &table.name, fk).await?;
                if !roles.is_empty() {
                    tracing::warn!(
                        "after cutover, writes by role(s) {} would fail: the emulation of foreign key {} runs as the writing role, which needs SELECT and UPDATE on {} (for FOR KEY SHARE) to write {}, and SELECT and {} on {} to delete from or update {}",
                        roles.join(", "),
                        fk.name,
                        table.name,
                        fk.table_name,
                        if fk.on_delete == crate::catalog::FkAction::Cascade { "DELETE" } else { "UPDATE" },
                        fk.table_name,
                        table.name
                    );
                }
            }
        }
        problems.check(check_no_emulation_on(client, &table, field).await)?;
    }
    problems.finish()?;
    Ok(time
        .zip(key)
        .map(|(time, key)| job(t, ord, table, key, time, tsdb)))
}

/// The schema TimescaleDB's functions live in, quoted: generated SQL names them by it.
async fn timescaledb_schema(client: &impl GenericClient) -> Result<String> {
    let row = client
        .query_opt(
            "SELECT n.nspname::pg_catalog.text FROM pg_catalog.pg_extension e
             JOIN pg_catalog.pg_namespace n ON n.oid OPERATOR(pg_catalog.=) e.extnamespace
             WHERE e.extname OPERATOR(pg_catalog.=) 'timescaledb'",
            &[],
        )
        .await
        .context("looking for the timescaledb extension")?;
    Ok(row
        .map(|r| quote_ident(r.get::<_, &str>(0)))
        .unwrap_or_else(|| "public".into()))
}

fn job(t: &TablePlan, ord: usize, table: Table, key: Key, time: ColumnRef, tsdb: String) -> Job {
    Job {
        timescaledb: tsdb,
        ord,
        source: t.source.clone(),
        target: t.target.clone(),
        retired: t.retired.clone(),
        key,
        time,
        chunk_time_interval: t.chunk_time_interval,
        drop_inbound_fks: t.inbound_foreign_keys != InboundForeignKeys::Refuse,
        emulate_inbound_fks: t.inbound_foreign_keys == InboundForeignKeys::Emulate,
        // Until the journal says otherwise (see `recorded_capture_ids`): the original
        // table is found under its own OID in every phase (the retired name after
        // cutover).
        capture_id: CaptureId::Oid(table.oid),
        table,
    }
}

/// A started plan's tables keep the capture names the journal recorded for them when
/// the plan started (none for a plan of an earlier build: named by their table).
async fn recorded_capture_ids(
    client: &impl GenericClient,
    plan: &Plan,
    phase: Option<Phase>,
    jobs: &mut [Job],
) -> Result<()> {
    if phase.is_none() {
        return Ok(());
    }
    let ids = crate::journal::capture_ids(client, &plan.name).await?;
    for job in jobs {
        job.capture_id = CaptureId::from_recorded(ids.get(&(job.ord as i32)).copied().flatten());
    }
    Ok(())
}

/// Resolves the plan for `abort` or `finalize`: the original table is found where it is
/// (under the retired name after a cutover); the other table may already be gone.
pub async fn resolve_for_removal(
    client: &impl GenericClient,
    plan: &Plan,
    phase: Phase,
) -> Result<Vec<Job>> {
    let mut jobs = Vec::new();
    for (ord, t) in plan.tables.iter().enumerate() {
        let field = format!("tables[{ord}]");
        let original = if phase.cut_over() {
            &t.retired
        } else {
            &t.source
        };
        let original = if phase.cut_over() && !relation_exists(client, original).await? {
            &t.source
        } else {
            original
        };
        let table = load_original(client, plan, original, &field).await?;
        let time = ColumnRef {
            name: t.time_column.clone(),
            type_sql: String::new(),
        };
        // Removal drops whole tables: the key only names the journal's records.
        let names = t
            .key
            .clone()
            .or_else(|| table.primary_key().map(|pk| pk.columns.clone()))
            .unwrap_or_default();
        let key = Key {
            columns: names
                .into_iter()
                .map(|name| KeyColumn {
                    name,
                    type_sql: String::new(),
                    collate: String::new(),
                    op_schema: String::new(),
                })
                .collect(),
        };
        let tsdb = timescaledb_schema(client).await?;
        jobs.push(job(t, ord, table, key, time, tsdb));
    }
    recorded_capture_ids(client, plan, Some(phase), &mut jobs).await?;
    Ok(jobs)
}

/// The two tables the triggers keep in step in this phase, once both exist.
fn copy_pair(t: &TablePlan, phase: Option<Phase>) -> Option<(&QualifiedName, &QualifiedName)> {
    match phase? {
        Phase::Planned => None,
        p if p.cut_over() => Some((&t.source, &t.retired)),
        _ => Some((&t.source, &t.target)),
    }
}

/// The copy triggers were written for the columns the target was created with: an
/// ALTER TABLE on either side since then would lose data or break writes.
async fn check_same_columns(
    client: &impl GenericClient,
    a: &QualifiedName,
    b: &QualifiedName,
) -> Result<()> {
    let sa = catalog::row_signature(client, a).await?;
    let sb = catalog::row_signature(client, b).await?;
    if sa.is_none() || sb.is_none() {
        let missing = if sa.is_none() { a } else { b };
        return Err(Error::invalid(
            format!("{missing} is missing, though the journal says the plan created it or works on it"),
            "it was dropped or renamed by hand: put it back, or run `hyperswap abort` to start over",
        ));
    }
    if sa != sb {
        return Err(Error::invalid(
            format!(
                "the columns of {a} and {b} differ: a table was altered after hyperswap created its copy\n  {a}: {}\n  {b}: {}",
                sa.unwrap_or_default(),
                sb.unwrap_or_default()
            ),
            "undo the ALTER TABLE, or run `hyperswap abort` and start the plan again",
        ));
    }
    Ok(())
}

/// What belongs to the table rather than its name, and so would silently stop applying
/// at cutover: rules, publications, UNLOGGED (a hypertable is logged), a replica
/// identity other than the default. Each is a problem with its fix.
async fn what_the_name_loses(
    client: &impl GenericClient,
    table: &Table,
    field: &str,
) -> Result<Vec<Error>> {
    let row = client
        .query_one(
            "SELECT (SELECT pg_catalog.string_agg(pg_catalog.quote_ident(rulename::pg_catalog.text), ', ')
                     FROM pg_catalog.pg_rewrite WHERE ev_class OPERATOR(pg_catalog.=) $1 AND rulename OPERATOR(pg_catalog.<>) '_RETURN'),
                    (SELECT pg_catalog.string_agg(pg_catalog.quote_ident(p.pubname::pg_catalog.text), ', ')
                     FROM pg_catalog.pg_publication p
                     WHERE p.puballtables
                        OR EXISTS (SELECT FROM pg_catalog.pg_publication_rel r
                                   WHERE r.prpubid OPERATOR(pg_catalog.=) p.oid AND r.prrelid OPERATOR(pg_catalog.=) $1)
                        OR EXISTS (SELECT FROM pg_catalog.pg_publication_namespace pn JOIN pg_catalog.pg_class c
                                     ON c.relnamespace OPERATOR(pg_catalog.=) pn.pnnspid
                                   WHERE pn.pnpubid OPERATOR(pg_catalog.=) p.oid AND c.oid OPERATOR(pg_catalog.=) $1)),
                    (SELECT relreplident::pg_catalog.text FROM pg_catalog.pg_class WHERE oid OPERATOR(pg_catalog.=) $1)",
            &[&table.oid],
        )
        .await
        .with_context(|| format!("reading the rules and publications of {}", table.name))?;
    let (rules, publications, identity): (Option<String>, Option<String>, String) =
        (row.get(0), row.get(1), row.get(2));
    let name = &table.name;
    let mut out = Vec::new();
    if let Some(rules) = rules {
        out.push(Error::invalid(
            format!("{name} ({field}.source) has rules ({rules}): a rule belongs to the table, not its name, and would stop applying at cutover"),
            format!("drop them before the move (DROP RULE ... ON {name}) and create them on the hypertable after cutover, or do what they do in a trigger"),
        ));
    }
    if let Some(publications) = publications {
        out.push(Error::invalid(
            format!("{name} ({field}.source) is published for logical replication ({publications}): the hypertable would not be, and replication of the table would stop silently at cutover"),
            format!("take it out of the publication (ALTER PUBLICATION ... DROP TABLE {name}) and plan the replication of the hypertable (its chunks) before moving it"),
        ));
    }
    if !table.toast_reloptions.is_empty() {
        let names: Vec<String> = table
            .toast_reloptions
            .iter()
            .map(|o| format!("toast.{}", o.split('=').next().unwrap_or(o)))
            .collect();
        out.push(Error::invalid(
            format!("{name} ({field}.source) has TOAST storage parameters ({}): TimescaleDB does not carry them to a hypertable's chunks, so they would be lost", names.join(", ")),
            format!("reset them before the move (ALTER TABLE {name} RESET ({})) and set them on each chunk after cutover if you need them", names.join(", ")),
        ));
    }
    if table.persistence == Persistence::Unlogged {
        out.push(Error::invalid(
            format!("{name} ({field}.source) is UNLOGGED: the hypertable would be logged (WAL for every write), a silent change"),
            format!("make it logged first (ALTER TABLE {name} SET LOGGED), or leave it out of the plan"),
        ));
    }
    if identity != "d" {
        let what = match identity.as_str() {
            "f" => "FULL",
            "n" => "NOTHING",
            _ => "USING INDEX",
        };
        out.push(Error::invalid(
            format!("{name} ({field}.source) has REPLICA IDENTITY {what}: the hypertable would have the default, which changes what logical decoding sees"),
            format!("set it back (ALTER TABLE {name} REPLICA IDENTITY DEFAULT) before the move and set it on the hypertable after cutover"),
        ));
    }
    Ok(out)
}

/// Once the target exists, every index of the source must have its copy there (an index
/// created on the source later would be lost at cutover, or make the cutover fail).
/// Indexes built after the backfill are expected only once it is done.
async fn check_indexes_followed(
    client: &impl GenericClient,
    table: &Table,
    t: &TablePlan,
    field: &str,
    phase: Phase,
) -> Result<()> {
    let present: Vec<String> = client
        .query(
            "SELECT c.relname::pg_catalog.text FROM pg_catalog.pg_index i
             JOIN pg_catalog.pg_class c ON c.oid OPERATOR(pg_catalog.=) i.indexrelid
             WHERE i.indrelid OPERATOR(pg_catalog.=) pg_catalog.to_regclass($1)",
            &[&t.target.quoted()],
        )
        .await
        .with_context(|| format!("reading the indexes of {}", t.target))?
        .iter()
        .map(|r| r.get(0))
        .collect();
    let backfilled = phase.backfill_done();
    let missing: Vec<String> = table
        .indexes
        .iter()
        .filter(|i| !i.backs_constraint && (backfilled || !crate::target::deferred(i)))
        .map(|i| crate::ident::with_suffix(&i.name, crate::model::NEW_SUFFIX))
        .filter(|n| !present.contains(n))
        .collect();
    if missing.is_empty() {
        return Ok(());
    }
    Err(Error::invalid(
        format!(
            "{} ({field}.target) lacks {}: an index created on {} after hyperswap made its copy would be lost at cutover",
            t.target,
            missing.join(", "),
            table.name
        ),
        format!(
            "create each on {} too, under that name and with the source index's definition (CREATE INDEX CONCURRENTLY is not possible on a hypertable: CREATE INDEX ... WITH (timescaledb.transaction_per_chunk)), or drop it from the source",
            t.target
        ),
    ))
}

/// Once the target exists, what both tables carry besides columns and indexes
/// (constraints, row-level security and its policies, storage parameters) may change
/// only alike on both sides: a change to one side only (added, dropped, altered) would
/// be lost at cutover, or enforced by the new table alone. Each side is compared with
/// what phase 1 recorded of it, so the way PostgreSQL prints a definition again on the
/// other table cannot make a difference.
async fn check_definitions_followed(
    client: &impl GenericClient,
    plan: &Plan,
    table: &Table,
    t: &TablePlan,
    ord: usize,
    field: &str,
) -> Result<()> {
    let Some((source_then, target_then)) =
        crate::journal::recorded_definitions(client, &plan.name, ord).await?
    else {
        return Ok(()); // started by a version that did not record them
    };
    let source_now = catalog::definitions(client, &table.name).await?;
    let target_now = catalog::definitions(client, &t.target).await?;
    let changes = |then: &[String], now: &[String]| -> Vec<String> {
        let mut out: Vec<String> = now
            .iter()
            .filter(|l| !then.contains(l))
            .map(|l| format!("+ {l}"))
            .collect();
        out.extend(
            then.iter()
                .filter(|l| !now.contains(l))
                .map(|l| format!("- {l}")),
        );
        out
    };
    let on_source = changes(&source_then, &source_now);
    let on_target = changes(&target_then, &target_now);
    if on_source == on_target {
        return Ok(());
    }
    let list = |c: &[String]| {
        if c.is_empty() {
            "nothing".to_string()
        } else {
            c.join("; ")
        }
    };
    Err(Error::invalid(
        format!(
            "{} and its copy {} ({field}) were changed differently since the copy was made: on {}: {}; on {}: {}. A change to one side only would be lost at cutover, or enforced by the new table alone",
            table.name,
            t.target,
            table.name,
            list(&on_source),
            t.target,
            list(&on_target)
        ),
        "make the same change on the other table (same names, same definitions), or undo it, then run the command again; or run `hyperswap abort` and start over",
    ))
}

async fn load_original(
    client: &impl GenericClient,
    plan: &Plan,
    name: &QualifiedName,
    field: &str,
) -> Result<Table> {
    catalog::load(client, name).await?.ok_or_else(|| {
        Error::invalid(
            format!(
                "table {name} does not exist ({field}.source in {})",
                plan.path.display()
            ),
            "check the name in the plan, and that the connection points at the right database",
        )
    })
}

async fn check_plain_table(client: &impl GenericClient, table: &Table, field: &str) -> Result<()> {
    let name = &table.name;
    let kind = match (table.relkind, table.partitioned) {
        (RelKind::Partitioned, _) | (_, true) => Some("a partitioned table or a partition"),
        (RelKind::Table, false) => None,
        (RelKind::View | RelKind::MaterializedView, _) => Some("a view"),
        (RelKind::Foreign, _) => Some("a foreign table"),
        (RelKind::Other, _) => Some("not a table"),
    };
    if let Some(kind) = kind {
        return Err(Error::invalid(
            format!("{name} ({field}.source) is {kind}; hyperswap moves plain tables"),
            "name a plain table in the plan",
        ));
    }
    if table.inherits || table.typed || table.persistence == Persistence::Temporary {
        return Err(Error::invalid(
            format!(
                "{name} ({field}.source) uses table inheritance, a composite type, or is temporary"
            ),
            "hyperswap moves ordinary permanent tables; move this one by hand",
        ));
    }
    if is_hypertable(client, name).await? {
        return Err(Error::invalid(
            format!("{name} ({field}.source) is already a hypertable"),
            "nothing to do for this table: remove it from the plan",
        ));
    }
    Ok(())
}

async fn is_hypertable(client: &impl GenericClient, name: &QualifiedName) -> Result<bool> {
    let row = client
        .query_one(
            "SELECT EXISTS (SELECT 1 FROM timescaledb_information.hypertables
                            WHERE hypertable_schema = $1 AND hypertable_name = $2)",
            &[&name.schema, &name.name],
        )
        .await
        .context("asking TimescaleDB for its hypertables")?;
    Ok(row.get(0))
}

/// The target may exist only once this plan created it; the retired name must be free
/// until cutover.
async fn check_names_free(
    client: &impl GenericClient,
    plan: &Plan,
    t: &TablePlan,
    field: &str,
    phase: Option<Phase>,
) -> Result<()> {
    if phase.is_none() {
        for name in [&t.source, &t.target, &t.retired] {
            if let Some((other, other_phase)) = crate::journal::owning_plan(client, name).await? {
                if other != plan.name {
                    return Err(Error::invalid(
                        format!("{name} ({field}) is part of plan `{other}`, in phase {other_phase}"),
                        format!("finish that plan, or undo it with `hyperswap abort` on its plan file, before starting another on {name}"),
                    ));
                }
            }
        }
    }
    let target_is_ours = phase.is_some_and(Phase::target_created);
    if !target_is_ours && relation_exists(client, &t.target).await? {
        return Err(Error::invalid(
            format!("the target name {} ({field}.target) is already taken by an existing relation", t.target),
            format!(
                "choose another name with `target:` under {field} in {}, or drop {} if it is a leftover",
                plan.path.display(),
                t.target
            ),
        ));
    }
    if relation_exists(client, &t.retired).await? {
        return Err(Error::invalid(
            format!(
                "the retired name {} ({field}.retired) is already taken by an existing relation",
                t.retired
            ),
            format!(
                "choose another name with `retired:` under {field} in {}",
                plan.path.display()
            ),
        ));
    }
    Ok(())
}

async fn relation_exists(client: &impl GenericClient, name: &QualifiedName) -> Result<bool> {
    let row = client
        .query_one(
            "SELECT EXISTS (SELECT 1 FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
                            WHERE n.nspname = $1 AND c.relname = $2)",
            &[&name.schema, &name.name],
        )
        .await
        .context("looking up a relation name")?;
    Ok(row.get(0))
}

async fn check_time_column(
    client: &impl GenericClient,
    table: &Table,
    column: &str,
    field: &str,
    check_nulls: bool,
) -> Result<ColumnRef> {
    let name = &table.name;
    let col = table.column(column).ok_or_else(|| {
        Error::invalid(
            format!(
                "{name} has no column {} ({field}.time_column)",
                display_ident(column)
            ),
            format!(
                "name one of its columns, as the plan must write it: {}",
                plan_spellings(table)
            ),
        )
    })?;
    if !TIME_TYPES.contains(&col.type_name.as_str()) {
        return Err(Error::invalid(
            format!("{name}.{column} ({field}.time_column) is of type {}, which hyperswap cannot partition by yet", col.type_sql),
            "use a timestamptz, timestamp or date column as time_column",
        ));
    }
    // A role that may not read the rows cannot check them: the privilege check names
    // what it lacks, and these checks run once it may.
    let check_nulls = check_nulls && can_read(client, table).await?;
    if check_nulls && !col.not_null {
        let sql = format!(
            "SELECT EXISTS (SELECT 1 FROM {} WHERE {} IS NULL)",
            name.quoted(),
            crate::ident::quote_ident(column)
        );
        let has_nulls: bool = client
            .query_one(&sql, &[])
            .await
            .context("looking for NULL times")?
            .get(0);
        if has_nulls {
            return Err(Error::invalid(
                format!("{name}.{column} ({field}.time_column) holds NULLs; a hypertable's time column cannot"),
                format!("fill or delete those rows, then `ALTER TABLE {name} ALTER COLUMN {column} SET NOT NULL`"),
            ));
        }
        tracing::warn!(
            "{name}.{column} allows NULL but holds none; once the copy trigger is installed, an insert with a NULL {column} fails. Consider `ALTER TABLE {name} ALTER COLUMN {column} SET NOT NULL` first"
        );
    }
    if check_nulls {
        check_finite_times(client, name, column, field).await?;
    }
    Ok(ColumnRef {
        name: col.name.clone(),
        type_sql: col.type_sql.clone(),
    })
}

async fn can_read(client: &impl GenericClient, table: &Table) -> Result<bool> {
    let row = client
        .query_one(
            "SELECT pg_catalog.has_table_privilege($1::pg_catalog.oid, 'SELECT')",
            &[&table.oid],
        )
        .await
        .context("checking the privilege to read the table")?;
    Ok(row.get(0))
}

/// `-infinity` and `infinity` fit a timestamp column but no hypertable chunk: the copy
/// of such a row would fail on every retry. Refused up front, with the rows named.
async fn check_finite_times(
    client: &impl GenericClient,
    name: &QualifiedName,
    column: &str,
    field: &str,
) -> Result<()> {
    let col = quote_ident(column);
    let t = name.quoted();
    let ctx = "looking for infinite times";
    let sql = format!(
        "SELECT NOT pg_catalog.isfinite(pg_catalog.min({col})) OR NOT pg_catalog.isfinite(pg_catalog.max({col})) FROM {t}"
    );
    let infinite: Option<bool> = client.query_one(&sql, &[]).await.context(ctx)?.get(0);
    if infinite != Some(true) {
        return Ok(());
    }
    let sql = format!(
        "SELECT pg_catalog.count(*), pg_catalog.string_agg(v, ', ') FROM (
             SELECT {col}::pg_catalog.text AS v FROM {t} WHERE NOT pg_catalog.isfinite({col})) AS x"
    );
    let row = client.query_one(&sql, &[]).await.context(ctx)?;
    let (n, values): (i64, Option<String>) = (row.get(0), row.get(1));
    let mut values: Vec<String> = values
        .unwrap_or_default()
        .split(", ")
        .map(String::from)
        .collect();
    values.sort();
    values.dedup();
    Err(Error::invalid(
        format!(
            "{name}.{} ({field}.time_column) holds {} in {n} row(s); a hypertable has no chunk for an infinite time",
            display_ident(column),
            values.join(" and ")
        ),
        format!(
            "find them with `SELECT * FROM {t} WHERE NOT isfinite({col})`, then give them real times or delete them"
        ),
    ))
}

/// A referencing table that another unfinished plan moves: its name will change under
/// the keys' triggers and rollback SQL (at its cutover or rollback), so the two plans
/// cannot overlap. Moving the children first, to the end (`finalize`), works.
async fn check_inbound_fks(
    client: &impl GenericClient,
    plan: &Plan,
    table: &Table,
    field: &str,
) -> Result<()> {
    for fk in &table.inbound_fks {
        if let Some((other, phase)) = crate::journal::owning_plan(client, &fk.table_name).await? {
            if other != plan.name {
                return Err(Error::invalid(
                    format!(
                        "{} ({field}) is referenced by foreign key {} on {}, which plan `{other}` is moving (phase {phase}); this plan's cutover and rollback would act on a table whose name that plan changes",
                        table.name, fk.name, fk.table_name
                    ),
                    format!("finish plan `{other}` first (`hyperswap finalize` on its plan file, or roll it back and `hyperswap abort` it), then run this plan"),
                ));
            }
        }
    }
    Ok(())
}

/// A table that carries another plan's foreign-key emulation (it references a table
/// moved earlier with `inbound_foreign_keys: emulate`): its triggers are hyperswap's
/// and would not follow it into a hypertable, leaving its references unchecked.
async fn check_no_emulation_on(
    client: &impl GenericClient,
    table: &Table,
    field: &str,
) -> Result<()> {
    let row = client
        .query_opt(
            "SELECT t.tgname::text, pg_catalog.obj_description(t.tgfoid, 'pg_proc')
             FROM pg_catalog.pg_trigger t
             JOIN pg_catalog.pg_proc p ON p.oid = t.tgfoid
             JOIN pg_catalog.pg_namespace n ON n.oid = p.pronamespace
             WHERE t.tgrelid = $1 AND n.nspname = $2 AND pg_catalog.starts_with(t.tgname::text, 'hyperswap_fk_')
             ORDER BY 1 LIMIT 1",
            &[&table.oid, &crate::model::TOOL_SCHEMA],
        )
        .await
        .context("looking for foreign-key emulation triggers")?;
    let Some(row) = row else {
        return Ok(());
    };
    let (trigger, what): (String, Option<String>) = (row.get(0), row.get(1));
    Err(Error::invalid(
        format!(
            "{} ({field}) carries trigger {trigger} of hyperswap's foreign-key emulation ({}); it would stay on the original table, leaving the hypertable's references unchecked",
            table.name,
            what.unwrap_or_default()
        ),
        "move referencing tables before the tables they reference; to move this one now, end that emulation first with `hyperswap finalize <its plan file> --end-fk-emulation`",
    ))
}
