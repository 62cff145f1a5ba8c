//! The library's error type. Every variant's message says what happened and what to do.

use std::fmt;

pub type Result<T, E = Error> = std::result::Result<T, E>;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The plan file cannot be read or parsed; `message` names the line and field.
    #[error("{}: {message}", .file.display())]
    Plan {
        file: std::path::PathBuf,
        message: String,
    },

    /// The plan does not fit the live database (missing table, unusable key, ...).
    #[error("{problem}\n  fix: {fix}")]
    Invalid { problem: String, fix: String },

    /// Nothing is wrong, but not now: locks not taken, outside the maintenance window, a
    /// throttle's critical limit. Nothing was changed; run the same command later.
    #[error("{problem}\n  fix: {fix}")]
    RetryLater { problem: String, fix: String },

    /// Another orchestrator holds this plan's lock.
    #[error("plan `{plan}` is being run by another hyperswap ({holder})\n  fix: wait for it to finish, or stop it (it resumes safely); do not run two at once")]
    Busy { plan: String, holder: String },

    /// The command does not apply in the plan's current phase (`None`: the plan has
    /// not started in this database).
    #[error("plan `{plan}` {}: {problem}\n  fix: {fix}", in_phase(.phase))]
    WrongPhase {
        plan: String,
        phase: Option<crate::phase::Phase>,
        problem: String,
        fix: String,
    },

    /// A database call failed; `context` says what hyperswap was doing.
    #[error("{context}: {}", DbMessage(.source))]
    Db {
        context: String,
        #[source]
        source: tokio_postgres::Error,
    },

    /// Several problems, all found in one pass (`plan validate` reports every one).
    #[error("{}", numbered(.0))]
    Problems(Vec<Error>),

    /// No host of the connection answered (refused, unreachable, or silent past
    /// `connect_timeout`): resumable once the database is reachable.
    #[error("cannot connect to {target}: no host answered:\n    {}\n  fix: check the hosts, ports and network (a silent server is given up on after connect_timeout, 30 s by default); the run resumes where it stopped once the database is reachable", .failures.join("\n    "))]
    Unreachable {
        target: String,
        failures: Vec<String>,
    },

    /// The run was interrupted (Ctrl-C) at a safe point.
    #[error("interrupted at a safe point; run the same command again to resume")]
    Interrupted,
}

impl Error {
    pub fn invalid(problem: impl Into<String>, fix: impl Into<String>) -> Self {
        Error::Invalid {
            problem: problem.into(),
            fix: fix.into(),
        }
    }

    /// The SQLSTATE of a database error, if this is one.
    /// The process exit code for this error, as documented in `--help` and the README:
    /// 2 the plan or the command is wrong (fix it), 3 retry later (busy, locks not taken,
    /// outside the window, a throttle's limit), 4 the connection failed or was lost
    /// (resumable: run the same command again), 130 interrupted (Ctrl-C, resumable).
    pub fn exit_code(&self) -> u8 {
        match self {
            Error::Busy { .. } | Error::RetryLater { .. } => 3,
            Error::Interrupted => 130,
            Error::Db { source, .. } if is_connection_failure(source) => 4,
            Error::Unreachable { .. } => 4,
            Error::Problems(many) if many.iter().all(|e| e.exit_code() == 4) => 4,
            _ => 2,
        }
    }

    pub fn sqlstate(&self) -> Option<&str> {
        match self {
            Error::Db { source, .. } => source.code().map(|c| c.code()),
            _ => None,
        }
    }
}

fn in_phase(phase: &Option<crate::phase::Phase>) -> String {
    match phase {
        Some(p) => format!("is in phase {p}"),
        None => "has not started in this database (or was already removed)".to_string(),
    }
}

fn numbered(problems: &[Error]) -> String {
    let mut out = format!("{} problems:", problems.len());
    for (i, p) in problems.iter().enumerate() {
        let text = p.to_string().replace('\n', "\n   ");
        out.push_str(&format!("\n\n{}. {text}", i + 1));
    }
    out
}

/// Collects the problems of a plan (bad input, not failures of the database or the
/// connection) so that all of them are reported at once.
#[derive(Debug, Default)]
pub struct Problems(Vec<Error>);

impl Problems {
    /// The value when `r` is Ok; a problem is kept for later and `None` returned; any
    /// other error (a lost connection, say) is returned at once.
    pub fn check<T>(&mut self, r: Result<T>) -> Result<Option<T>> {
        match r {
            Ok(v) => Ok(Some(v)),
            Err(Error::Problems(many)) => {
                self.0.extend(many);
                Ok(None)
            }
            Err(e @ (Error::Invalid { .. } | Error::Plan { .. } | Error::WrongPhase { .. })) => {
                self.0.push(e);
                Ok(None)
            }
            Err(e) => Err(e),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Ok when nothing was found; the one problem as it is; several as one error.
    pub fn finish(mut self) -> Result<()> {
        match self.0.len() {
            0 => Ok(()),
            1 => Err(self.0.remove(0)),
            _ => Err(Error::Problems(self.0)),
        }
    }
}

/// Attaches "what we were doing" to tokio-postgres errors.
pub trait Context<T> {
    fn context(self, what: impl Into<String>) -> Result<T>;
    fn with_context<F: FnOnce() -> String>(self, what: F) -> Result<T>;
}

impl<T> Context<T> for std::result::Result<T, tokio_postgres::Error> {
    fn context(self, what: impl Into<String>) -> Result<T> {
        self.map_err(|source| Error::Db {
            context: what.into(),
            source,
        })
    }
    fn with_context<F: FnOnce() -> String>(self, what: F) -> Result<T> {
        self.map_err(|source| Error::Db {
            context: what(),
            source,
        })
    }
}

/// Renders a tokio-postgres error with the server's message, detail, hint and SQLSTATE,
/// or says plainly that the connection was lost.
struct DbMessage<'a>(&'a tokio_postgres::Error);

impl fmt::Display for DbMessage<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(db) = self.0.as_db_error() {
            write!(f, "{} (SQLSTATE {})", db.message(), db.code().code())?;
            if let Some(detail) = db.detail() {
                write!(f, "\n  detail: {detail}")?;
            }
            if let Some(hint) = db.hint() {
                write!(f, "\n  hint: {hint}")?;
            }
            return Ok(());
        }
        if self.0.is_closed() {
            return write!(
                f,
                "the connection to the database was lost; the run is resumable: run the same command again once the database is reachable"
            );
        }
        write!(f, "{}", self.0)?;
        let mut source = std::error::Error::source(self.0);
        while let Some(s) = source {
            write!(f, ": {s}")?;
            source = s.source();
        }
        Ok(())
    }
}

/// A failure of the connection itself (refused, reset, closed, timed out, the server
/// shutting down), as opposed to an error the server reported about a statement.
fn is_connection_failure(e: &tokio_postgres::Error) -> bool {
    if e.is_closed() {
        return true;
    }
    match e.code().map(|c| c.code()) {
        // admin_shutdown, crash_shutdown, cannot_connect_now, connection exceptions
        Some(code) => matches!(code, "57P01" | "57P02" | "57P03") || code.starts_with("08"),
        None => std::error::Error::source(e)
            .and_then(|s| s.downcast_ref::<std::io::Error>())
            .is_some_and(|io| {
                use std::io::ErrorKind::*;
                matches!(
                    io.kind(),
                    ConnectionRefused
                        | ConnectionReset
                        | ConnectionAborted
                        | NotConnected
                        | BrokenPipe
                        | UnexpectedEof
                        | TimedOut
                        | HostUnreachable
                        | NetworkUnreachable
                )
            }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::phase::Phase;

    #[test]
    fn wrong_phase_is_data_rendered_with_its_fix() {
        let e = Error::WrongPhase {
            plan: "p".into(),
            phase: Some(Phase::Backfilling),
            problem: "`rollback` undoes a cutover only".into(),
            fix: "abort instead".into(),
        };
        assert_eq!(
            e.to_string(),
            "plan `p` is in phase backfilling: `rollback` undoes a cutover only\n  fix: abort instead"
        );
        assert_eq!(e.exit_code(), 2);
        let e = Error::WrongPhase {
            plan: "p".into(),
            phase: None,
            problem: "there is nothing to abort".into(),
            fix: "check the plan".into(),
        };
        assert!(e
            .to_string()
            .starts_with("plan `p` has not started in this database"));
    }

    #[test]
    fn plan_errors_name_their_file() {
        let e = Error::Plan {
            file: "plans/x.yaml".into(),
            message: "line 3: tables: missing field `source`".into(),
        };
        assert_eq!(
            e.to_string(),
            "plans/x.yaml: line 3: tables: missing field `source`"
        );
        assert_eq!(e.exit_code(), 2);
    }
}
