//! hyperswap moves a live PostgreSQL table into a TimescaleDB hypertable with zero
//! downtime, blue/green style, as a resumable state machine driven by a YAML plan.
//!
//! # Layout
//!
//! The library never prints; the binary (`src/main.rs`) renders what it returns.
//!
//! - [`plan`]: the YAML plan, parsed strictly and frozen by its sha256.
//! - [`conn`]: connections as libpq makes them (URL, key=value, service files, PG*
//!   variables, TLS with every sslmode, several hosts), never showing a password.
//! - [`catalog`]: reads a table's full definition from the system catalogs.
//! - [`validate`]: checks a plan against the live database, resolving it into [`model::Job`]s: `validate` (resolution and the checks that read the catalog), `validate::checks` (the checks that need no database, unit-tested), `validate::notes` (what changes for the application).
//! - [`privileges`]: every privilege the phases ahead need, checked up front.
//! - [`journal`]: the tool's schema in the database: phases, progress, events, the plan lock.
//! - [`keyspace`]: a table's key space cut into pieces of about equal rows, from a sample.
//! - [`phase`]: the closed set of phases.
//! - [`apply`]: the state machine behind `plan apply`, one arm per phase.
//! - [`phases`]: the statements of phases 1 and 2 and the lock policy, built once for
//!   `apply` and `show`; [`runner`]: runs a phase's transaction (lock policy, retries,
//!   the window) for `apply`, `rollback` and `remove`. `show` never imports the runner.
//! - One module per phase's SQL: [`target`] (create the hypertable), [`trigger`] (copy
//!   trigger), [`backfill`] (batches), [`parity`] (comparison), [`cutover`] (the swap and
//!   its recorded reverse), [`rollback`] (running that reverse).
//! - [`inbound_fks`]: other tables' foreign keys to a moved table: what dropping them
//!   loses, and their valid return on rollback; [`fk_emulation`]: `inbound_foreign_keys:
//!   emulate`, triggers that keep their meaning after cutover.
//! - [`replay`]: the change log the forward trigger appends to, replayed into the copy.
//! - [`remove`]: `abort` before cutover and `finalize` after it.
//! - [`show`]: `plan show`, from the same functions `apply` runs.
//! - [`status`]: where each plan stands.
//! - [`stmt`]: statements, the SQL audit log, lock-polite transactions.
//! - [`ident`] and [`template`]: the only places SQL text is assembled from names.
//! - [`progress`]: the trait the binary implements with progress bars; Ctrl-C.
//!
//! The demo's, tests' and benchmarks' sample data and live writer are the workspace
//! crate `hyperswap-workload` (`workload/`), not part of this library.

pub mod apply;
pub mod backfill;
pub mod catalog;
pub mod conn;
pub mod cutover;
pub mod error;
pub mod fk_emulation;
pub mod ident;
pub mod inbound_fks;
pub mod journal;
pub mod keyspace;
pub mod model;
pub mod parity;
pub mod phase;
pub mod phases;
pub mod plan;
pub mod privileges;
pub mod progress;
pub mod remove;
pub mod replay;
pub mod rollback;
pub mod runner;
pub mod show;
pub mod status;
pub mod stmt;
pub mod target;
pub mod template;
pub mod trigger;
pub mod validate;

pub use error::{Error, Result};
