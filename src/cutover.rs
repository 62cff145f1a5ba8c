//! Phase 5, cutover, and its reverse. One transaction for every table of the plan:
//! take ACCESS EXCLUSIVE locks with a short lock_timeout (retried with jittered backoff,
//! so the application never queues long behind us), drop the copy trigger, rename the
//! source to its retired name and the target to the source's name, swap index names,
//! move sequence ownership, continue identity columns, and install a reverse trigger so
//! the retired table keeps every later write. The exact SQL that undoes all of it is
//! written to the journal in the same transaction; `hyperswap rollback` runs that text.

use crate::ident::{dollar_quote, quote_ident, quote_literal, QualifiedName};
use crate::model::Job;
use crate::stmt::{set_lock_timeout, LockPolicy, Stmt};

/// The cutover transaction's statements (without BEGIN/COMMIT).
pub fn statements(jobs: &[Job], lock: &LockPolicy) -> Vec<Stmt> {
    let mut out = vec![
        set_lock_timeout(lock.lock_timeout),
        lock_all(jobs.iter().flat_map(|j| [&j.source, &j.target])),
    ];
    for job in jobs {
        out.push(columns_guard(&job.source, &job.target));
        out.extend(swap(job, &job.source, &job.retired, &job.target, OLD, NEW));
        out.extend(sequences_to(job));
        out.extend(identity_on_new(job));
    }
    out
}

/// The rollback transaction's statements, recorded in the journal at cutover.
pub fn reverse_statements(jobs: &[Job], lock: &LockPolicy) -> Vec<Stmt> {
    let mut out = vec![
        set_lock_timeout(lock.lock_timeout),
        lock_all(jobs.iter().flat_map(|j| [&j.source, &j.retired])),
    ];
    for job in jobs {
        out.push(columns_guard(&job.source, &job.retired));
        out.extend(identity_back(job));
        out.extend(swap(job, &job.source, &job.target, &job.retired, NEW, OLD));
        out.extend(sequences_to(job));
    }
    out
}

/// Fails the transaction when `a` and `b` no longer have the same columns (an ALTER
/// TABLE on one side since the target was created): the triggers copy the columns they
/// were written for, and a swap would hide or break the others.
pub fn columns_guard(a: &QualifiedName, b: &QualifiedName) -> Stmt {
    let sig = |t: &QualifiedName| {
        format!(
            "(SELECT string_agg(quote_ident(attname) || ' ' || format_type(atttypid, atttypmod), ', ' ORDER BY attnum) \
             FROM pg_catalog.pg_attribute WHERE attrelid = {}::regclass AND attnum > 0 AND NOT attisdropped)",
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

fn lock_all<'a>(tables: impl Iterator<Item = &'a QualifiedName>) -> Stmt {
    let list = tables.map(|t| t.quoted()).collect::<Vec<_>>().join(", ");
    Stmt::noted(
        format!("LOCK TABLE {list} IN ACCESS EXCLUSIVE MODE"),
        "waits at most lock_timeout; on timeout the transaction rolls back and is retried",
    )
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
        let kind = if col.identity == "a" {
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
                "SELECT setval(pg_get_serial_sequence({}, {}), s.last_value, s.is_called) FROM {} AS s",
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
            "pg_get_serial_sequence({}, {})::regclass",
            job.source.literal(),
            quote_literal(&seq.column)
        );
        out.push(Stmt::new(format!(
            "SELECT setval({old}, greatest(pg_sequence_last_value({new_seq}), pg_sequence_last_value({old}))) WHERE pg_sequence_last_value({new_seq}) IS NOT NULL",
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
