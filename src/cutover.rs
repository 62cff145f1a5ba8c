//! Phase 5, cutover, and its reverse. One transaction for every table of the plan:
//! take ACCESS EXCLUSIVE locks with a short lock_timeout (retried with jittered backoff,
//! so the application never queues long behind us), drop the copy trigger, rename the
//! source to its retired name and the target to the source's name, swap index names,
//! move sequence ownership, continue identity columns, and install a reverse trigger so
//! the retired table keeps every later write. The exact SQL that undoes all of it is
//! written to the journal in the same transaction; `hyperswap rollback` runs that text.

use crate::fk_emulation::Emulation;
use crate::ident::{dollar_quote, quote_ident, quote_literal, QualifiedName};
use crate::inbound_fks;
use crate::model::Job;
use crate::stmt::{set_lock_timeout, LockPolicy, Stmt};

/// The cutover transaction's statements (without BEGIN/COMMIT). `plan` names the
/// foreign-key emulation's functions in their comments; `budget` bounds each table's
/// replay under the locks (see `cutover.catch_up_budget`).
pub fn statements(
    plan: &str,
    jobs: &[Job],
    lock: &LockPolicy,
    budget: std::time::Duration,
) -> Vec<Stmt> {
    let mut out = lock_all(jobs, lock, |j| [&j.source, &j.target]);
    // The tables' replays share the budget: the application waits for all of them.
    let budget = budget / jobs.len().max(1) as u32;
    for job in jobs {
        out.push(columns_guard(&job.source, &job.target));
        let capture = crate::capture::of(job);
        out.extend(capture.cutover_catch_up(job, budget));
        // Grants given on the source since the target was made follow it too.
        out.extend(crate::target::grants(job));
        out.extend(capture.cutover_prepare(job));
        out.extend(drop_inbound_fks(job));
        out.extend(swap(job, &job.source, &job.retired, &job.target, OLD, NEW));
        out.extend(capture.cutover_turn(job));
        out.extend(sequences_to(job));
        out.extend(identity_on_new(job));
        out.extend(views(job));
        out.extend(row_security(job, true));
        out.extend(user_triggers_to_new(job));
        out.extend(emulate_inbound_fks(plan, job));
    }
    out
}

/// The rollback transaction's statements, recorded in the journal at cutover.
pub fn reverse_statements(jobs: &[Job], lock: &LockPolicy) -> Vec<Stmt> {
    let mut out = vec![Stmt::noted(
        PINNED_PATH,
        "what follows was written under this search_path (view definitions name what is outside pg_catalog with its schema), and runs under it",
    )];
    out.extend(lock_all(jobs, lock, |j| [&j.source, &j.retired]));
    for job in jobs {
        out.push(columns_guard(&job.source, &job.retired));
        out.extend(end_emulation(job));
        out.extend(identity_back(job));
        out.extend(user_triggers_from_new(job));
        out.extend(row_security(job, false));
        out.extend(crate::capture::of(job).rollback_unturn(job));
        out.extend(swap(job, &job.source, &job.target, &job.retired, NEW, OLD));
        out.extend(crate::capture::of(job).rollback_turn(job));
        out.extend(user_triggers_back_on(job));
        out.extend(sequences_to(job));
        out.extend(views(job));
        out.extend(add_inbound_fks(job));
    }
    out
}

/// After the rollback transaction commits, each in a transaction of its own: the
/// foreign keys it added back NOT VALID are validated (only those valid at cutover).
pub fn after_rollback_statements(jobs: &[Job], lock: &LockPolicy) -> Vec<Stmt> {
    jobs.iter()
        .filter(|j| j.drop_inbound_fks)
        .flat_map(|j| j.table.inbound_fks.iter())
        .filter_map(|fk| inbound_fks::validate_back(fk, lock))
        .collect()
}

/// The text the cutover records for `hyperswap rollback`: the rollback transaction,
/// then the statements that follow it, each after a separator line. The separator is
/// chosen to occur in no statement, and named on the first line, so splitting it again
/// never cuts a statement (whatever the names inside it).
pub fn reverse_script(jobs: &[Job], lock: &LockPolicy) -> String {
    let main = script(&reverse_statements(jobs, lock));
    let after: Vec<String> = after_rollback_statements(jobs, lock)
        .iter()
        .map(|s| format!("{};\n", s.sql))
        .collect();
    join_reverse(&main, &after)
}

fn join_reverse(main: &str, after: &[String]) -> String {
    let mut n = 0u32;
    let separator = loop {
        let candidate = format!("-- hyperswap: then, in a transaction of its own ({n})");
        if !main.contains(&candidate) && after.iter().all(|a| !a.contains(&candidate)) {
            break candidate;
        }
        n += 1;
    };
    let mut out = format!("{SEPARATOR_HEAD}{separator}\n{main}");
    for a in after {
        out.push_str(&format!("{separator}\n{a}"));
    }
    out
}

/// The first statement of a reverse script recorded by a build that pins every session's
/// search_path (see `stmt::SESSION_SETTINGS`).
const PINNED_PATH: &str = "SET LOCAL search_path = pg_catalog, pg_temp";

/// The rollback transaction of a recorded reverse script, as it must run: a script
/// recorded by an earlier build (without [`PINNED_PATH`]) named objects outside
/// pg_catalog as the session's search_path showed them (a view's definition: `FROM
/// orders`), so it runs under the role's default search_path, as it was written. The
/// second value says which.
pub fn rollback_transaction(reverse: &str) -> (String, bool) {
    let (main, _) = split_reverse(reverse);
    if main.contains(PINNED_PATH) {
        (main, true)
    } else {
        (format!("SET LOCAL search_path TO DEFAULT;\n{main}"), false)
    }
}

const SEPARATOR_HEAD: &str =
    "-- hyperswap: statements after the rollback transaction follow lines reading: ";

/// Splits a recorded reverse script into the rollback transaction and the statements
/// after it (none in scripts recorded before this format).
pub fn split_reverse(text: &str) -> (String, Vec<String>) {
    let Some(rest) = text.strip_prefix(SEPARATOR_HEAD) else {
        return (text.to_string(), Vec::new());
    };
    let Some((separator, body)) = rest.split_once('\n') else {
        return (text.to_string(), Vec::new());
    };
    let mut parts = body.split(separator);
    let main = parts.next().unwrap_or_default().to_string();
    let after = parts
        .map(|p| p.trim().trim_end_matches(';').to_string())
        .filter(|p| !p.is_empty())
        .collect();
    (main, after)
}

/// lock_timeout bounds each wait for a lock; statement_timeout bounds the LOCK statement
/// as a whole, so the application never queues behind us longer than lock_timeout, even
/// when several tables are locked one after the other.
fn lock_all<'a, F, I>(jobs: &'a [Job], lock: &LockPolicy, tables: F) -> Vec<Stmt>
where
    F: Fn(&'a Job) -> I,
    I: IntoIterator<Item = &'a QualifiedName>,
{
    let ms = lock.lock_timeout.as_millis().max(1);
    let mut list: Vec<String> = jobs
        .iter()
        .flat_map(|j| tables(j).into_iter().map(|t| t.quoted()))
        .collect();
    // The referencing tables too: their keys are dropped (and triggers created on them).
    for job in jobs.iter().filter(|j| j.drop_inbound_fks) {
        list.extend(
            job.table
                .inbound_fks
                .iter()
                .map(|fk| fk.table_name.quoted()),
        );
    }
    list.dedup();
    vec![
        set_lock_timeout(lock.lock_timeout),
        Stmt::noted(
            "SELECT pg_catalog.set_config('session_replication_role', 'origin', true) WHERE pg_catalog.current_setting('session_replication_role') <> 'origin'",
            "in replica mode (the backfill's session) TimescaleDB skips its DDL handling: dropping a hypertable's foreign key would leave its chunks' copies",
        ),
        Stmt::new(format!("SET LOCAL statement_timeout = '{ms}ms'")),
        Stmt::noted(
            format!("LOCK TABLE {} IN ACCESS EXCLUSIVE MODE", list.join(", ")),
            "waits at most lock_timeout in all; on timeout the transaction rolls back and is retried",
        ),
        Stmt::new("SET LOCAL statement_timeout = DEFAULT"),
    ]
}

/// Views reading the table, re-created from their definitions (taken before the
/// renames, so they name the table by the name the new table now carries). The view
/// keeps its OID, owner, grants and dependants.
fn views(job: &Job) -> Vec<Stmt> {
    job.table
        .views
        .iter()
        .filter(|v| v.kind == crate::catalog::ViewKind::View)
        .map(|v| {
            let with = if v.options.is_empty() {
                String::new()
            } else {
                format!(" WITH ({})", v.options)
            };
            Stmt::noted(
                format!(
                    "CREATE OR REPLACE VIEW {}{with} AS\n{}",
                    v.name.quoted(),
                    v.definition.trim_end().trim_end_matches(';')
                ),
                "a view is bound to a table, not its name: re-point it",
            )
        })
        .collect()
}

/// Row-level security: the target enables it (with the source's policies) from the
/// start, so its rows are never more visible than the source's; FORCE, which would
/// subject the copy itself to the policies, follows the name at cutover and goes back on
/// rollback.
fn row_security(job: &Job, on: bool) -> Vec<Stmt> {
    let t = &job.table;
    // Both ways it is the table named like the source: before the renames on rollback.
    let table = &job.source;
    let mut out = Vec::new();
    if t.row_security && on {
        out.push(Stmt::new(format!(
            "ALTER TABLE {} ENABLE ROW LEVEL SECURITY",
            table.quoted()
        )));
    }
    if t.force_row_security {
        let verb = if on { "FORCE" } else { "NO FORCE" };
        out.push(Stmt::new(format!(
            "ALTER TABLE {} {verb} ROW LEVEL SECURITY",
            table.quoted()
        )));
    }
    out
}

/// The user's (enabled) triggers follow the name to the new table; on the retired table
/// they are disabled, so the reverse copy does not fire them a second time.
fn user_triggers_to_new(job: &Job) -> Vec<Stmt> {
    let mut out = Vec::new();
    for trg in job
        .table
        .triggers
        .iter()
        .filter(|t| t.state == crate::catalog::TriggerState::Enabled)
    {
        out.push(Stmt::noted(trg.definition.clone(), "the user's trigger, re-created on the new table (on a hypertable this touches every chunk)"));
        out.push(Stmt::new(format!(
            "ALTER TABLE {} DISABLE TRIGGER {}",
            job.retired.quoted(),
            quote_ident(&trg.name)
        )));
    }
    out
}

/// Rollback of [`user_triggers_to_new`], first half: off the hypertable (still named
/// like the source).
fn user_triggers_from_new(job: &Job) -> Vec<Stmt> {
    per_enabled_trigger(job, |t| {
        format!("DROP TRIGGER IF EXISTS {t} ON {}", job.source.quoted())
    })
}

/// Second half: enabled again on the original, once it has its name back.
fn user_triggers_back_on(job: &Job) -> Vec<Stmt> {
    per_enabled_trigger(job, |t| {
        format!("ALTER TABLE {} ENABLE TRIGGER {t}", job.source.quoted())
    })
}

/// One statement per enabled user trigger, given its quoted name.
fn per_enabled_trigger(job: &Job, sql: impl Fn(&str) -> String) -> Vec<Stmt> {
    job.table
        .triggers
        .iter()
        .filter(|t| t.state == crate::catalog::TriggerState::Enabled)
        .map(|t| Stmt::new(sql(&quote_ident(&t.name))))
        .collect()
}

fn drop_inbound_fks(job: &Job) -> Vec<Stmt> {
    let choice = if job.emulate_inbound_fks {
        "emulate"
    } else {
        "drop"
    };
    per_dropped_fk(job, |fk| {
        Stmt::noted(
            format!(
                "ALTER TABLE {} DROP CONSTRAINT {}",
                fk.table_name.quoted(),
                quote_ident(&fk.name)
            ),
            format!(
                "the plan's choice (inbound_foreign_keys: {choice}); it was: {}",
                fk.definition
            ),
        )
    })
}

/// `emulate`: triggers keep each dropped key's meaning from now on.
fn emulate_inbound_fks(plan: &str, job: &Job) -> Vec<Stmt> {
    if !job.emulate_inbound_fks {
        return vec![];
    }
    job.table
        .inbound_fks
        .iter()
        .flat_map(|fk| Emulation::new(job, fk).install(plan))
        .collect()
}

/// Rollback of [`emulate_inbound_fks`]: the functions and their triggers go first.
fn end_emulation(job: &Job) -> Vec<Stmt> {
    if !job.emulate_inbound_fks {
        return vec![];
    }
    job.table
        .inbound_fks
        .iter()
        .flat_map(|fk| Emulation::new(job, fk).uninstall())
        .collect()
}

fn add_inbound_fks(job: &Job) -> Vec<Stmt> {
    per_dropped_fk(job, |fk| inbound_fks::add_back(job, fk))
}

/// One statement per inbound foreign key, when the plan drops them at cutover.
fn per_dropped_fk(job: &Job, stmt: impl Fn(&crate::catalog::InboundFk) -> Stmt) -> Vec<Stmt> {
    if !job.drop_inbound_fks {
        return vec![];
    }
    job.table.inbound_fks.iter().map(stmt).collect()
}

/// Fails the transaction when `a` and `b` no longer have the same columns (an ALTER
/// TABLE on one side since the target was created): the triggers copy the columns they
/// were written for, and a swap would hide or break the others.
pub fn columns_guard(a: &QualifiedName, b: &QualifiedName) -> Stmt {
    let sig = |t: &QualifiedName| {
        format!(
            "(SELECT pg_catalog.string_agg(pg_catalog.quote_ident(attname::pg_catalog.text) OPERATOR(pg_catalog.||) ' ' \
             OPERATOR(pg_catalog.||) pg_catalog.format_type(atttypid, atttypmod), ', ' ORDER BY attnum) \
             FROM pg_catalog.pg_attribute WHERE attrelid OPERATOR(pg_catalog.=) {}::pg_catalog.regclass \
             AND attnum OPERATOR(pg_catalog.>) 0 AND NOT attisdropped)",
            t.literal()
        )
    };
    let message = quote_literal(&format!(
        "the columns of {a} and {b} differ: the table was altered after hyperswap created its copy"
    ));
    let hint =
        quote_literal("undo the ALTER TABLE, or run `hyperswap abort` and start the plan again");
    let body = format!(
        "\nBEGIN\n    IF {} IS DISTINCT FROM {} THEN\n        RAISE EXCEPTION USING MESSAGE = {message}, HINT = {hint};\n    END IF;\nEND\n",
        sig(a),
        sig(b)
    );
    Stmt::noted(
        format!("DO {}", dollar_quote(&body)),
        "refuse if either table was altered since the copy was created",
    )
}

const OLD: Suffix = Suffix::Old;
const NEW: Suffix = Suffix::New;

#[derive(Clone, Copy)]
enum Suffix {
    Old,
    New,
    None,
}

impl Suffix {
    fn apply(self, job: &Job, index: &str) -> String {
        match self {
            Suffix::Old => job.old_index_name(index),
            Suffix::New => job.new_index_name(index),
            Suffix::None => index.to_string(),
        }
    }
}

/// Moves the table now named `live` to `park` (its indexes gaining `park_suffix`), and
/// the table `incoming` (indexes named with `incoming_suffix`) to `live`'s name.
fn swap(
    job: &Job,
    live: &QualifiedName,
    park: &QualifiedName,
    incoming: &QualifiedName,
    park_suffix: Suffix,
    incoming_suffix: Suffix,
) -> Vec<Stmt> {
    let mut out = vec![Stmt::new(format!(
        "ALTER TABLE {} RENAME TO {}",
        live.quoted(),
        quote_ident(&park.name)
    ))];
    out.extend(rename_indexes(job, Suffix::None, park_suffix));
    out.push(Stmt::new(format!(
        "ALTER TABLE {} RENAME TO {}",
        incoming.quoted(),
        quote_ident(&live.name)
    )));
    out.extend(rename_indexes(job, incoming_suffix, Suffix::None));
    out
}

fn rename_indexes(job: &Job, from: Suffix, to: Suffix) -> Vec<Stmt> {
    job.table
        .indexes
        .iter()
        .map(|i| {
            let name = job.source.sibling(from.apply(job, &i.name));
            Stmt::new(format!(
                "ALTER INDEX {} RENAME TO {}",
                name.quoted(),
                quote_ident(&to.apply(job, &i.name))
            ))
        })
        .collect()
}

/// Serial sequences follow the table that now carries the source's name, so dropping
/// the other one never drops a sequence in use.
fn sequences_to(job: &Job) -> Vec<Stmt> {
    job.table
        .sequences
        .iter()
        .filter(|s| !s.identity)
        .map(|s| {
            Stmt::new(format!(
                "ALTER SEQUENCE {} OWNED BY {}.{}",
                s.name.quoted(),
                job.source.quoted(),
                quote_ident(&s.column)
            ))
        })
        .collect()
}

/// Identity columns: the new table's column becomes identity, continuing the old
/// sequence where it stands.
fn identity_on_new(job: &Job) -> Vec<Stmt> {
    let mut out = Vec::new();
    for seq in job.table.sequences.iter().filter(|s| s.identity) {
        let Some(col) = job.table.column(&seq.column) else {
            continue;
        };
        let kind = if col.identity == crate::catalog::Identity::Always {
            "ALWAYS"
        } else {
            "BY DEFAULT"
        };
        let column = quote_ident(&col.name);
        out.push(Stmt::new(format!(
            "ALTER TABLE {} ALTER COLUMN {column} ADD GENERATED {kind} AS IDENTITY",
            job.source.quoted()
        )));
        out.push(Stmt::noted(
            format!(
                "SELECT pg_catalog.setval(pg_catalog.pg_get_serial_sequence({}, {}), s.last_value, s.is_called) FROM {} AS s",
                job.source.literal(),
                quote_literal(&col.name),
                seq.name.quoted()
            ),
            "the new identity sequence continues where the old one stands",
        ));
    }
    out
}

/// Rollback of [`identity_on_new`]: the original sequence skips past every value the
/// new one handed out, then the new table's identity goes.
fn identity_back(job: &Job) -> Vec<Stmt> {
    let mut out = Vec::new();
    for seq in job.table.sequences.iter().filter(|s| s.identity) {
        let new_seq = format!(
            "pg_catalog.pg_get_serial_sequence({}, {})::pg_catalog.regclass",
            job.source.literal(),
            quote_literal(&seq.column)
        );
        out.push(Stmt::new(format!(
            "SELECT pg_catalog.setval({old}, greatest(pg_catalog.pg_sequence_last_value({new_seq}), pg_catalog.pg_sequence_last_value({old}))) WHERE pg_catalog.pg_sequence_last_value({new_seq}) IS NOT NULL",
            old = format!("{}::regclass", seq.name.literal()),
        )));
        out.push(Stmt::new(format!(
            "ALTER TABLE {} ALTER COLUMN {} DROP IDENTITY",
            job.source.quoted(),
            quote_ident(&seq.column)
        )));
    }
    out
}

/// The statements as one text, for the journal and for `plan show`.
pub fn script(stmts: &[Stmt]) -> String {
    stmts.iter().map(|s| format!("{};\n\n", s.sql)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reverse_script_splits_back_whatever_the_names() {
        // A name may carry the separator's text: the separator then changes.
        let main =
            "ALTER TABLE \"-- hyperswap: then, in a transaction of its own (0)\" RENAME TO x;\n";
        let after = vec![
            "DO $x$ BEGIN PERFORM 1; END $x$;\n".to_string(),
            "DO $y$ BEGIN PERFORM '-- hyperswap: then, in a transaction of its own (1)'; END $y$;\n"
                .to_string(),
        ];
        let text = join_reverse(main, &after);
        let (m, a) = split_reverse(&text);
        assert_eq!(m, main);
        assert_eq!(
            a,
            vec![
                "DO $x$ BEGIN PERFORM 1; END $x$".to_string(),
                "DO $y$ BEGIN PERFORM '-- hyperswap: then, in a transaction of its own (1)'; END $y$"
                    .to_string()
            ]
        );
        // Recorded before this format: all of it is the rollback transaction.
        assert_eq!(
            split_reverse("SELECT 1;\n"),
            ("SELECT 1;\n".to_string(), vec![])
        );
    }
}
