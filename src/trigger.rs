//! Phase 2, the copy trigger: an AFTER row trigger on the source that mirrors every
//! INSERT, UPDATE (including of the key and the time column), DELETE and TRUNCATE into
//! the target, in the writer's own transaction. The same generator writes the reverse
//! trigger that keeps the retired table current after cutover.

use crate::ident::{quote_ident, QualifiedName};
use crate::model::{Job, COPY_TRIGGER, COPY_TRUNCATE_TRIGGER};
use crate::stmt::Stmt;

/// Which way a trigger copies.
pub struct Direction<'a> {
    pub function: QualifiedName,
    /// The table the application writes to (the trigger's table).
    pub from: &'a QualifiedName,
    /// The table kept in step.
    pub to: &'a QualifiedName,
    pub row_trigger: &'static str,
    pub truncate_trigger: &'static str,
}

impl Job {
    /// Source -> target, before cutover.
    pub fn forward(&self) -> Direction<'_> {
        Direction {
            function: self.copy_function(),
            from: &self.source,
            to: &self.target,
            row_trigger: COPY_TRIGGER,
            truncate_trigger: COPY_TRUNCATE_TRIGGER,
        }
    }
}

/// The phase's statements: the function, then the row and TRUNCATE triggers. Run in
/// one transaction with a short lock_timeout, since CREATE TRIGGER locks the source.
pub fn statements(job: &Job, plan: &str, dir: &Direction) -> Vec<Stmt> {
    vec![
        Stmt::noted(function_sql(job, plan, dir), format!("copies every change on {} into {}", dir.from, dir.to)),
        Stmt::new(format!(
            "CREATE OR REPLACE TRIGGER {} AFTER INSERT OR UPDATE OR DELETE ON {} FOR EACH ROW EXECUTE FUNCTION {}()",
            quote_ident(dir.row_trigger),
            dir.from.quoted(),
            dir.function.quoted()
        )),
        Stmt::new(format!(
            "CREATE OR REPLACE TRIGGER {} AFTER TRUNCATE ON {} FOR EACH STATEMENT EXECUTE FUNCTION {}()",
            quote_ident(dir.truncate_trigger),
            dir.from.quoted(),
            dir.function.quoted()
        )),
    ]
}

/// Statements that remove a direction's triggers and function.
pub fn drop_statements(dir: &Direction) -> Vec<Stmt> {
    vec![
        Stmt::new(format!(
            "DROP TRIGGER IF EXISTS {} ON {}",
            quote_ident(dir.row_trigger),
            dir.from.quoted()
        )),
        Stmt::new(format!(
            "DROP TRIGGER IF EXISTS {} ON {}",
            quote_ident(dir.truncate_trigger),
            dir.from.quoted()
        )),
        Stmt::new(format!(
            "DROP FUNCTION IF EXISTS {}()",
            dir.function.quoted()
        )),
    ]
}

fn function_sql(job: &Job, plan: &str, dir: &Direction) -> String {
    let cols = job.written_columns();
    let (key, time) = (quote_ident(&job.key.name), quote_ident(&job.time.name));
    let set_cols: Vec<&str> = cols
        .iter()
        .copied()
        .filter(|c| *c != job.key.name && *c != job.time.name)
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
    // With nothing but key and time to set, the in-place update sets the key to itself.
    let (set_columns, set_values) = if set_cols.is_empty() {
        (key.clone(), format!("NEW.{key}"))
    } else {
        (quoted(&set_cols), values(&set_cols))
    };
    crate::template::render(
        include_str!("../sql/copy_trigger.sql"),
        &[
            ("function", dir.function.quoted()),
            ("plan", plan.to_string()),
            ("from", dir.from.to_string()),
            ("to", dir.to.quoted()),
            ("columns", quoted(&cols)),
            ("new_values", values(&cols)),
            ("set_columns", set_columns),
            ("set_values", set_values),
            ("row_moves", format!("NEW.{key} IS DISTINCT FROM OLD.{key} OR NEW.{time} IS DISTINCT FROM OLD.{time}")),
            ("old_row", format!("{key} = OLD.{key} AND {time} = OLD.{time}")),
        ],
    )
}
