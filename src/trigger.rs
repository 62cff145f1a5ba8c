//! Phase 2, the copy triggers. A forward trigger on the source mirrors every INSERT,
//! UPDATE (including of the key and the time column), DELETE and TRUNCATE into the
//! target, in the writer's own transaction. A reverse trigger on the target does the
//! same into the retired table once the target carries the source's name.
//!
//! Each function acts only while its table carries the application's name and returns
//! at once otherwise. So both triggers are installed here, on the still-empty target,
//! and cutover and rollback are only renames: no trigger DDL, which on a hypertable
//! touches every chunk, runs while the application is locked out.

use crate::ident::{dollar_quote, quote_ident, quote_literal, QualifiedName};
use crate::model::{
    Job, COPY_TRIGGER, COPY_TRUNCATE_TRIGGER, REVERSE_TRIGGER, REVERSE_TRUNCATE_TRIGGER,
};
use crate::stmt::Stmt;

/// One direction of copying.
pub struct Direction<'a> {
    pub function: QualifiedName,
    /// The table the trigger sits on, by its name when the trigger is installed.
    pub on: &'a QualifiedName,
    /// The table kept in step, by the name it has while the trigger acts.
    pub to: &'a QualifiedName,
    pub row_trigger: &'static str,
    pub truncate_trigger: &'static str,
}

impl Job {
    /// Source -> target, acting before cutover.
    pub fn forward(&self) -> Direction<'_> {
        Direction {
            function: self.copy_function(),
            on: &self.source,
            to: &self.target,
            row_trigger: COPY_TRIGGER,
            truncate_trigger: COPY_TRUNCATE_TRIGGER,
        }
    }

    /// Target -> retired table, acting after cutover (installed on the target before).
    pub fn reverse(&self) -> Direction<'_> {
        Direction {
            function: self.reverse_function(),
            on: &self.target,
            to: &self.retired,
            row_trigger: REVERSE_TRIGGER,
            truncate_trigger: REVERSE_TRUNCATE_TRIGGER,
        }
    }
}

/// Phase 2's statements for one table: both functions, then both pairs of triggers.
pub fn statements(job: &Job, plan: &str) -> Vec<Stmt> {
    let mut out = vec![Stmt::noted(
        format!("GRANT USAGE ON SCHEMA {} TO {}", quote_ident(crate::model::TOOL_SCHEMA), quote_ident(&job.table.owner)),
        "TimescaleDB creates each new chunk as the hypertable's owner, copying the triggers onto it",
    )];
    for (dir, what) in [
        (job.forward(), "before cutover"),
        (job.reverse(), "after cutover"),
    ] {
        out.push(Stmt::noted(
            function_sql(job, &dir),
            format!(
                "{what}: copies every change on the table named {} into {}",
                job.source, dir.to
            ),
        ));
        out.push(Stmt::new(format!(
            "COMMENT ON FUNCTION {}() IS {}",
            dir.function.quoted(),
            quote_literal(&format!(
                "hyperswap plan {plan}: copies changes on {} into {} {what}",
                job.source, dir.to
            ))
        )));
    }
    for dir in [job.forward(), job.reverse()] {
        out.extend(create_triggers(&dir));
    }
    out
}

fn create_triggers(dir: &Direction) -> Vec<Stmt> {
    vec![
        Stmt::new(format!(
            "CREATE OR REPLACE TRIGGER {} AFTER INSERT OR UPDATE OR DELETE ON {} FOR EACH ROW EXECUTE FUNCTION {}()",
            quote_ident(dir.row_trigger),
            dir.on.quoted(),
            dir.function.quoted()
        )),
        Stmt::new(format!(
            "CREATE OR REPLACE TRIGGER {} AFTER TRUNCATE ON {} FOR EACH STATEMENT EXECUTE FUNCTION {}()",
            quote_ident(dir.truncate_trigger),
            dir.on.quoted(),
            dir.function.quoted()
        )),
    ]
}

/// Removes a direction's triggers from `table` (where they sit now).
pub fn drop_triggers(dir: &Direction, table: &QualifiedName) -> Vec<Stmt> {
    [dir.row_trigger, dir.truncate_trigger]
        .iter()
        .map(|t| {
            Stmt::new(format!(
                "DROP TRIGGER IF EXISTS {} ON {}",
                quote_ident(t),
                table.quoted()
            ))
        })
        .collect()
}

pub fn drop_function(dir: &Direction) -> Stmt {
    Stmt::new(format!(
        "DROP FUNCTION IF EXISTS {}()",
        dir.function.quoted()
    ))
}

fn function_sql(job: &Job, dir: &Direction) -> String {
    let cols = job.written_columns();
    let time = quote_ident(&job.time.name);
    let set_cols: Vec<&str> = cols
        .iter()
        .copied()
        .filter(|c| !job.key.contains(c) && *c != job.time.name)
        .collect();
    let values = |names: &[&str]| {
        names
            .iter()
            .map(|c| format!("NEW.{}", quote_ident(c)))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let quoted = |names: &[&str]| {
        names
            .iter()
            .map(|c| quote_ident(c))
            .collect::<Vec<_>>()
            .join(", ")
    };
    // With nothing but key and time to set, the in-place update sets a key column to itself.
    let first_key = quote_ident(&job.key.columns[0].name);
    let (set_columns, set_values) = if set_cols.is_empty() {
        (first_key.clone(), format!("NEW.{first_key}"))
    } else {
        (quoted(&set_cols), values(&set_cols))
    };
    // The row in the other table: its key and time (the hypertable's unique key).
    let mut old_row = job.key.equals(None, "OLD");
    let mut row_moves: Vec<String> = job
        .key
        .names()
        .iter()
        .map(|c| format!("NEW.{0} IS DISTINCT FROM OLD.{0}", quote_ident(c)))
        .collect();
    if !job.key.contains(&job.time.name) {
        old_row.push_str(&format!(" AND {time} = OLD.{time}"));
        row_moves.push(format!("NEW.{time} IS DISTINCT FROM OLD.{time}"));
    }
    let body = crate::template::render(
        include_str!("../sql/copy_trigger.sql"),
        &[
            ("live", job.source.literal()),
            ("to", dir.to.quoted()),
            ("columns", quoted(&cols)),
            ("new_values", values(&cols)),
            ("set_columns", set_columns),
            ("set_values", set_values),
            ("row_moves", row_moves.join(" OR ")),
            ("old_row", old_row),
        ],
    );
    // Writes into the other table must not fire its triggers: before cutover those are
    // the idle reverse trigger's, after it the retired table's.
    let replica = if job.replica_role {
        "\n    SET session_replication_role = replica"
    } else {
        ""
    };
    format!(
        "CREATE OR REPLACE FUNCTION {}() RETURNS trigger\n    LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp{replica}\nAS {}",
        dir.function.quoted(),
        dollar_quote(&format!("\n{body};\n"))
    )
}
