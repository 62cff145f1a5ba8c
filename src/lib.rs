//! hyperswap moves a live PostgreSQL table into a TimescaleDB hypertable with zero
//! downtime, blue/green style, as a resumable state machine driven by a YAML plan.
//!
//! # Layout
//!
//! The library never prints; the binary (`src/main.rs`) parses the command line, calls
//! one of [`commands`] and renders what it returns.
//!
//! - [`commands`]: the body of each command, given a [`context::Context`] built once.
//! - [`steps`]: the plan's steps, one file each, all values of [`steps::Step`]: what each
//!   checks, prints for `plan show`, runs and resumes, undoes, and the phase it leaves.
//!   `plan apply`, `plan show`, `status`, `abort`, `finalize` and `rollback` walk the
//!   same list, [`steps::STEPS`]. [`phase`]: the closed set of phases they move through.
//! - [`capture`]: change capture behind one boundary (install, catch up, count what
//!   waits, turn round at cutover and back at rollback, remove); nothing else names the
//!   change log or the trigger functions.
//! - [`watch`]: the catch-up watched: rates, samples, and the limits that stop a run.
//! - [`runner`]: runs a phase's transaction (lock policy, retries, the window).
//! - [`retry`]: the one retry loop's rules (what is retryable, backoff, attempts, the
//!   log line, Ctrl-C while waiting); [`pool`]: sessions on connections of their own
//!   taking key ranges from one queue (the backfill's workers, parity's lanes).
//! - One module per step's SQL: [`target`] (create the hypertable), [`backfill`]
//!   (batches), [`parity`] (comparison), [`cutover`] (the swap and its recorded reverse).
//! - [`inbound_fks`]: other tables' foreign keys to a moved table: what dropping them
//!   loses, and their valid return on rollback; [`fk_emulation`]: `inbound_foreign_keys:
//!   emulate`, triggers that keep their meaning after cutover.
//! - [`plan`]: the YAML plan, parsed strictly and frozen by its sha256.
//! - [`conn`]: connections as libpq makes them (URL, key=value, service files, PG*
//!   variables, TLS with every sslmode, several hosts), never showing a password.
//! - [`catalog`]: reads a table's full definition from the system catalogs.
//! - [`validate`]: checks a plan against the live database, resolving it into
//!   [`model::Job`]s: `validate` (resolution and the checks that read the catalog),
//!   `validate::checks` (the checks that need no database, unit-tested),
//!   `validate::notes` (what changes for the application).
//! - [`privileges`]: every privilege the phases ahead need, checked up front.
//! - [`journal`]: the tool's schema in the database: phases, progress, events, the plan
//!   lock.
//! - [`keyspace`]: a table's key space cut into pieces of about equal rows, from a sample.
//! - [`stmt`]: statements, the SQL audit log, lock-polite transactions.
//! - [`ident`] and [`template`]: the only places SQL text is assembled from names.
//! - [`progress`]: the trait the binary implements with progress bars; Ctrl-C.
//!
//! The demo's, tests' and benchmarks' sample data and live writer are the workspace
//! crate `hyperswap-workload` (`workload/`), not part of this library.

pub mod backfill;
pub mod capture;
pub mod catalog;
pub mod commands;
pub mod conn;
pub mod context;
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
pub mod plan;
pub mod pool;
pub mod privileges;
pub mod progress;
pub mod retry;
pub mod runner;
pub mod steps;
pub mod stmt;
pub mod target;
pub mod template;
pub mod validate;
pub mod watch;

pub use error::{Error, Result};
