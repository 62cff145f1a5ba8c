//! The commands, as library functions (sqlx-cli's `do_run`): each takes the run's
//! [`crate::context::Context`] and returns data; the binary parses the command line,
//! calls one, and renders what it returns.
//!
//! - `apply`: `plan apply`, walking [`crate::steps::STEPS`];
//! - `show`: `plan show`, every step's statements;
//! - `validate`: `plan validate`;
//! - `parity`: `parity`, with `--repair`;
//! - `rollback`: the recorded reverse of the cutover;
//! - `remove`: `abort` and `finalize`, every step's removal;
//! - `status`: where each plan stands.

pub mod apply;
pub mod parity;
pub mod remove;
pub mod rollback;
pub mod show;
pub mod status;
pub mod validate;
