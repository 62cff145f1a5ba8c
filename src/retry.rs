//! The one way the tool tries again (reshape's `retry_automatically`, Spirit's
//! `RetryableTransaction`): which failures another attempt may not meet, how long to
//! wait before it, how many attempts in all, the log line of each retry, and Ctrl-C
//! while waiting.
//!
//! A caller keeps its own loop, where it holds the `&mut` borrows (a connection, a
//! transaction, a worker's state) that a closure handed to a retry function could not,
//! and gives each failure to a [`Retry`]:
//!
//! ```ignore
//! let mut retry = Retry::new(Policy::locks(lock));
//! let done = loop {
//!     match attempt(&mut client).await {
//!         Ok(v) => break v,
//!         // Waits (saying why) and goes round again, or gives the error back.
//!         Err(e) => retry.after(e, cancel, |r| Some(format!("... {}", r.attempt))).await?,
//!     }
//! };
//! ```
//!
//! What a caller does besides (a smaller batch, a journal event, another statement
//! first) stays in its loop, next to the attempt it is about.

use std::time::{Duration, Instant};

use crate::error::{Error, Result};
use crate::progress::Cancel;
use crate::stmt::LockPolicy;

/// A failure another attempt may well not meet, by its SQLSTATE.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Class {
    /// 55P03: a lock not granted within `lock_timeout`.
    LockTimeout,
    /// 57014: a statement cancelled by `statement_timeout` (a LOCK that waited too long).
    StatementTimeout,
    /// 40P01: chosen as a deadlock's victim.
    Deadlock,
    /// 40001: a serialization failure (another transaction took the same rows first).
    Serialization,
    /// 23503: a parent row deleted after the statement's snapshot was taken. Only a
    /// caller that knows its statement races so (a replay of a copy with foreign keys)
    /// lists it: elsewhere it is the user's data.
    ForeignKeyRace,
}

impl Class {
    /// The class of an SQLSTATE, if it is one another attempt may not meet.
    pub fn from_sqlstate(code: &str) -> Option<Class> {
        match code {
            "55P03" => Some(Class::LockTimeout),
            "57014" => Some(Class::StatementTimeout),
            "40P01" => Some(Class::Deadlock),
            "40001" => Some(Class::Serialization),
            "23503" => Some(Class::ForeignKeyRace),
            _ => None,
        }
    }

    /// The class of a database error (`None` for any other error).
    pub fn of(e: &Error) -> Option<Class> {
        e.sqlstate().and_then(Class::from_sqlstate)
    }
}

/// What waiting for a lock can end in: the conflicts of a statement that takes locks
/// under `lock_timeout` (or a LOCK under `statement_timeout`).
pub const LOCK_CONFLICT: &[Class] = &[Class::LockTimeout, Class::StatementTimeout, Class::Deadlock];

/// What a conflict is, in words, for the retry messages.
pub fn conflict_kind(e: &Error) -> &'static str {
    match Class::of(e) {
        Some(Class::Deadlock) => "was chosen as a deadlock victim",
        Some(Class::Serialization) => "met a serialization failure",
        _ => "waited too long for a lock",
    }
}

/// How a retried operation is retried.
#[derive(Debug, Clone, Copy)]
pub struct Policy {
    /// Attempts in all, the first one included.
    pub attempts: u32,
    /// The pause before the second attempt; see [`backoff`] for the next ones.
    pub pause: Duration,
    /// The failures worth another attempt; any other error is given back at once.
    pub retryable: &'static [Class],
}

impl Policy {
    /// A locking transaction's, from the plan's lock settings: its lock conflicts, its
    /// attempts and its backoff.
    pub fn locks(lock: &LockPolicy) -> Policy {
        Policy {
            attempts: lock.attempts,
            pause: lock.backoff,
            retryable: LOCK_CONFLICT,
        }
    }
}

/// Pause before attempt `n` (1-based): `base * 2^(n-1)`, capped at 30 s, with +-50 % jitter.
pub fn backoff(base: Duration, attempt: u32) -> Duration {
    let exp = base
        .saturating_mul(1u32 << attempt.saturating_sub(1).min(10))
        .min(Duration::from_secs(30));
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    let jitter = 0.5 + (nanos % 1000) as f64 / 1000.0;
    exp.mul_f64(jitter)
}

/// A retry about to happen, for its log line.
pub struct Retrying<'e> {
    /// The attempt that failed, 1-based.
    pub attempt: u32,
    /// How long the next attempt waits.
    pub pause: Duration,
    /// Why the attempt failed.
    pub error: &'e Error,
}

/// The retries of one operation: how many attempts have failed so far.
#[derive(Debug)]
pub struct Retry {
    policy: Policy,
    failed: u32,
}

impl Retry {
    /// The retries of an operation not tried yet.
    pub fn new(policy: Policy) -> Self {
        Retry { policy, failed: 0 }
    }

    /// Attempts failed so far (the one running is `failed() + 1`).
    pub fn failed(&self) -> u32 {
        self.failed
    }

    /// Whether the policy tries again after `e` (budget aside).
    pub fn is_retryable(&self, e: &Error) -> bool {
        self.allows(Class::of(e))
    }

    fn allows(&self, class: Option<Class>) -> bool {
        class.is_some_and(|c| self.policy.retryable.contains(&c))
    }

    /// After a failed attempt: `Ok` once the pause before the next one is over (with the
    /// line `say` gives logged as a warning, if any); the error itself when it is not
    /// retryable or was the last attempt's; [`Error::Interrupted`] on Ctrl-C while
    /// waiting. Every failure handed here counts as an attempt.
    pub async fn after(
        &mut self,
        e: Error,
        cancel: &Cancel,
        say: impl FnOnce(&Retrying<'_>) -> Option<String>,
    ) -> Result<()> {
        let class = Class::of(&e);
        self.after_class(e, class, cancel, say).await
    }

    /// [`Retry::after`] with the error's class given (the unit tests make errors no
    /// server sent).
    async fn after_class(
        &mut self,
        e: Error,
        class: Option<Class>,
        cancel: &Cancel,
        say: impl FnOnce(&Retrying<'_>) -> Option<String>,
    ) -> Result<()> {
        self.failed += 1;
        if !self.allows(class) || self.failed >= self.policy.attempts {
            return Err(e);
        }
        let pause = backoff(self.policy.pause, self.failed);
        let retrying = Retrying {
            attempt: self.failed,
            pause,
            error: &e,
        };
        if let Some(line) = say(&retrying) {
            tracing::warn!("{line}");
        }
        wait(pause, cancel).await
    }
}

/// Sleeps `d`, waking early (with [`Error::Interrupted`]) on Ctrl-C: looked at every
/// 50 ms, so a long backoff never keeps the user waiting.
pub async fn wait(d: Duration, cancel: &Cancel) -> Result<()> {
    let step = Duration::from_millis(50);
    let until = Instant::now() + d;
    while Instant::now() < until {
        if cancel.is_cancelled() {
            return Err(Error::Interrupted);
        }
        tokio::time::sleep(step.min(until.saturating_duration_since(Instant::now()))).await;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    fn policy(attempts: u32) -> Policy {
        Policy {
            attempts,
            pause: MS,
            retryable: LOCK_CONFLICT,
        }
    }

    /// An error the test can tell from the others by its text.
    fn err(n: u32) -> Error {
        Error::invalid(format!("attempt {n} failed"), "")
    }

    #[test]
    fn backoff_stays_within_its_bounds_and_grows() {
        let base = Duration::from_millis(100);
        for n in 1..=12u32 {
            let exp = (base * 2u32.pow(n.min(11) - 1)).min(Duration::from_secs(30));
            // A microsecond either way for the float arithmetic of the jitter.
            let (least, most) = (exp / 2 - MS / 1000, exp * 3 / 2 + MS / 1000);
            for _ in 0..50 {
                let d = backoff(base, n);
                assert!(d >= least && d <= most, "attempt {n}: {d:?}");
            }
        }
        // Two attempts on, even the shortest pause is longer than the longest before.
        assert!(backoff(base, 3) > Duration::from_millis(150));
        assert!(backoff(base, 5) > Duration::from_millis(600));
        assert!(backoff(Duration::from_secs(5), 30) <= Duration::from_secs(45));
        assert_eq!(backoff(Duration::ZERO, 4), Duration::ZERO);
    }

    #[test]
    fn classes_come_from_the_sqlstate() {
        assert_eq!(Class::from_sqlstate("55P03"), Some(Class::LockTimeout));
        assert_eq!(Class::from_sqlstate("40P01"), Some(Class::Deadlock));
        assert_eq!(Class::from_sqlstate("40001"), Some(Class::Serialization));
        assert_eq!(Class::from_sqlstate("23503"), Some(Class::ForeignKeyRace));
        assert_eq!(Class::from_sqlstate("57014"), Some(Class::StatementTimeout));
        assert_eq!(Class::from_sqlstate("23505"), None);
        assert_eq!(Class::of(&err(1)), None);
    }

    #[tokio::test]
    async fn the_budget_ends_with_the_last_error() {
        let mut retry = Retry::new(policy(3));
        let cancel = Cancel::default();
        let mut said = Vec::new();
        for n in 1..=2 {
            let class = Some(Class::LockTimeout);
            retry
                .after_class(err(n), class, &cancel, |r| {
                    said.push((r.attempt, r.error.to_string()));
                    None
                })
                .await
                .unwrap_or_else(|e| panic!("attempt {n} is retried: {e}"));
        }
        let last = retry
            .after_class(err(3), Some(Class::Deadlock), &cancel, |_| {
                panic!("no retry after the last attempt")
            })
            .await
            .unwrap_err();
        assert!(last.to_string().starts_with("attempt 3 failed"), "{last}");
        assert_eq!(retry.failed(), 3);
        let attempts: Vec<u32> = said.iter().map(|(a, _)| *a).collect();
        assert_eq!(attempts, vec![1, 2]);
        assert!(said[1].1.starts_with("attempt 2 failed"), "{said:?}");
    }

    #[tokio::test]
    async fn other_errors_come_back_at_once() {
        let mut retry = Retry::new(Policy {
            pause: Duration::from_secs(10),
            ..policy(5)
        });
        let cancel = Cancel::default();
        let started = Instant::now();
        // Not a database error at all.
        let e = retry
            .after(err(1), &cancel, |_| panic!("not retried"))
            .await;
        assert!(e.unwrap_err().to_string().starts_with("attempt 1 failed"));
        // A class the policy does not list (a foreign-key race, for a lock policy).
        let class = Some(Class::ForeignKeyRace);
        let e = retry.after_class(err(2), class, &cancel, |_| panic!("not retried"));
        assert!(e
            .await
            .unwrap_err()
            .to_string()
            .starts_with("attempt 2 failed"));
        assert!(started.elapsed() < Duration::from_secs(1));
    }

    #[tokio::test]
    async fn ctrl_c_stops_the_wait() {
        let mut retry = Retry::new(Policy {
            pause: Duration::from_secs(20),
            ..policy(5)
        });
        let cancel = Cancel::default();
        let later = cancel.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(100)).await;
            later.cancel();
        });
        let started = Instant::now();
        let class = Some(Class::LockTimeout);
        let e = retry.after_class(err(1), class, &cancel, |_| None).await;
        assert!(matches!(e, Err(Error::Interrupted)), "{e:?}");
        assert!(
            started.elapsed() < Duration::from_secs(2),
            "{:?}",
            started.elapsed()
        );
        // Already cancelled: no wait at all.
        let e = retry.after_class(err(2), class, &cancel, |_| None).await;
        assert!(matches!(e, Err(Error::Interrupted)), "{e:?}");
    }
}
