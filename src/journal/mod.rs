//! The journal: hyperswap's own schema in the migrated database. It records each plan's
//! phase, its frozen text and sha256, per-table backfill progress and an event log, and
//! guards a plan with a session advisory lock so only one orchestrator runs it.
//!
//! # Layout
//!
//! One file per kind of record the journal keeps. Everything callers use is re-exported
//! here, so they name it `journal::<name>` whichever file holds it. Only this module
//! names the journal's tables (`tests/layout.rs` checks it).
//!
//! - `schema`: the schema's lifecycle: whether it exists, creating it (with the guard
//!   against ALTER TABLE of tables being moved), dropping it once nothing is left in it.
//! - `trust`: who may read and change the journal: its owner, other roles' rights to
//!   write it, and the statement that takes each away.
//! - `lock`: the plan's session advisory lock, and who holds it.
//! - `plans`: each plan's record (frozen text and sha256, phase, the SQL that rolls its
//!   cutover back), its event log, and which plan moves a table.
//! - `removal`: a plan leaving the journal, its events kept or dropped, and the journal
//!   going with the last of them.
//! - `ranges`: each table's backfill: estimated rows, key ranges and their cursors.
//! - `parity`: parity runs and the sums of each range they compared.
//! - `definitions`: what both tables carry besides columns and indexes, as recorded.
//! - `status`: a plan's times and each table's progress, for `status`.
//! - `catch_up`: samples of each change log's catch-up (waiting, rates, converging).

mod catch_up;
mod definitions;
mod lock;
mod parity;
mod plans;
mod ranges;
mod removal;
mod schema;
mod status;
mod trust;

pub use catch_up::{latest_catch_up, record_catch_up, CatchUpSample};
pub use definitions::{record_definitions, record_target_definitions, recorded_definitions};
pub use lock::lock_plan;
pub use parity::{
    finish_parity_run, forget_parity_range, open_parity_run, parity_range_results,
    record_parity_range, start_parity_run, RangeSums,
};
pub use plans::{
    capture_ids, check_frozen, create, event, load, owning_plan, plan_names, record_cutover,
    set_phase, PlanRecord,
};
pub use ranges::{add_range, ranges, rows_total, set_rows_total, RangeRecord, ADVANCE_RANGE};
pub use removal::{drop_history, forget};
pub use schema::{drop_schema_if_empty, ensure, exists};
pub use status::{plan_times, table_progress, PlanTimes, TableProgress};
pub use trust::{check_owner, check_writers};
