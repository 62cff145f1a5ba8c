//! A pool of sessions over a queue of work (Spirit's `Chunker`, which serves both its
//! row copier and its checksum checker): the backfill's workers and parity's lanes are
//! both sessions, each on a connection of its own, taking the next key range from one
//! queue until it is empty.
//!
//! The pool decides who works what and when to stop: every item is worked once, by the
//! first session free; Ctrl-C is looked at between items; the first error stops every
//! session and is the pool's. What an item is and how it is worked is the session's.

use std::collections::VecDeque;
use std::sync::Mutex;

use tokio_postgres::Client;

use crate::conn::ConnectOptions;
use crate::error::{Context, Error, Result};
use crate::progress::Cancel;
use crate::stmt::{SqlLog, Stmt};

/// A session of a pool: works one item at a time, to its end.
// `async fn` in a public trait leaves its future's `Send` open: the pool's sessions run
// together in one task (never spawned), so none is needed.
#[allow(async_fn_in_trait)]
pub trait Session<T> {
    /// Works `item`; an error stops the pool.
    async fn work(&mut self, item: T) -> Result<()>;
}

/// Works every item of `items`, each once, by all `sessions` at once: a session takes
/// the next item as soon as it is done with its last, until none is left. Before each
/// item a cancelled `cancel` stops the session with [`Error::Interrupted`]. The first
/// error of any session is returned, and the others stop at once: their futures are
/// dropped where they wait (a transaction left open is rolled back with its
/// connection), and the items they had not taken are left in the queue.
pub async fn run<T, S: Session<T>>(
    sessions: impl IntoIterator<Item = S>,
    items: impl IntoIterator<Item = T>,
    cancel: &Cancel,
) -> Result<()> {
    let queue = Mutex::new(items.into_iter().collect::<VecDeque<T>>());
    let sessions = sessions
        .into_iter()
        .map(|session| take_until_empty(session, &queue, cancel));
    futures_util::future::try_join_all(sessions).await?;
    Ok(())
}

/// One session's share of [`run`].
async fn take_until_empty<T, S: Session<T>>(
    mut session: S,
    queue: &Mutex<VecDeque<T>>,
    cancel: &Cancel,
) -> Result<()> {
    loop {
        if cancel.is_cancelled() {
            return Err(Error::Interrupted);
        }
        // The guard is a statement's temporary: never held across the work.
        let Some(item) = queue.lock().unwrap_or_else(|p| p.into_inner()).pop_front() else {
            return Ok(());
        };
        session.work(item).await?;
    }
}

/// How the connections of a pool's sessions are opened.
pub struct Sessions<'a> {
    /// Where they connect, and how.
    pub connect: &'a ConnectOptions,
    /// Where the session statements are written, once (they are the same for all).
    pub log: &'a SqlLog,
    /// What each session runs first (its settings).
    pub statements: Vec<Stmt>,
    /// What a failure of those says the tool was doing.
    pub context: &'a str,
}

impl Sessions<'_> {
    /// One connection per name (its `application_name`), one after the other, each set
    /// up with the session statements.
    pub async fn open(&self, names: impl IntoIterator<Item = String>) -> Result<Vec<Client>> {
        let mut clients = Vec::new();
        for name in names {
            let client = self.connect.connect(&name).await?;
            for stmt in &self.statements {
                if clients.is_empty() {
                    self.log.record(&stmt.sql);
                }
                client
                    .batch_execute(&stmt.sql)
                    .await
                    .context(self.context)?;
            }
            clients.push(client);
        }
        Ok(clients)
    }
}

/// The sessions that drain change logs together beside one already open (see
/// [`crate::capture::drain`]): `n - 1` more, plain (each replay sets what
/// it needs in its own transaction).
pub async fn replay_sessions(
    connect: &ConnectOptions,
    log: &SqlLog,
    plan: &str,
    n: usize,
) -> Result<Vec<Client>> {
    Sessions {
        connect,
        log,
        statements: Vec::new(),
        context: "opening a session to replay the change log",
    }
    .open((2..=n).map(|i| format!("hyperswap catch-up {plan} #{i}")))
    .await
}

/// `first` and `more`, as [`crate::capture::drain`] takes its sessions.
pub fn with<'a>(first: &'a Client, more: &'a [Client]) -> Vec<&'a Client> {
    std::iter::once(first).chain(more.iter()).collect()
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    /// What the sessions of a test did: (session, item) as each item was taken, in
    /// order, and the items worked to their end.
    #[derive(Default)]
    struct Seen {
        taken: Mutex<Vec<(usize, u32)>>,
        done: Mutex<Vec<u32>>,
    }

    /// A session that takes `pause` per item, fails the items of `fail` (each after
    /// its time), and cancels `cancel` when it takes item `cancel_on`.
    struct Probe<'a> {
        id: usize,
        seen: &'a Seen,
        pause: Duration,
        fail: &'a [(u32, Duration)],
        cancel_on: Option<(u32, &'a Cancel)>,
    }

    impl Session<u32> for Probe<'_> {
        async fn work(&mut self, item: u32) -> Result<()> {
            self.seen.taken.lock().unwrap().push((self.id, item));
            if let Some((n, cancel)) = self.cancel_on {
                if n == item {
                    cancel.cancel();
                }
            }
            if let Some((_, after)) = self.fail.iter().find(|(n, _)| *n == item) {
                tokio::time::sleep(*after).await;
                return Err(Error::invalid(format!("item {item} failed"), ""));
            }
            tokio::time::sleep(self.pause).await;
            self.seen.done.lock().unwrap().push(item);
            Ok(())
        }
    }

    fn probes<'a>(n: usize, seen: &'a Seen, pause: Duration) -> Vec<Probe<'a>> {
        (0..n)
            .map(|id| Probe {
                id,
                seen,
                pause,
                fail: &[],
                cancel_on: None,
            })
            .collect()
    }

    #[tokio::test]
    async fn every_item_is_worked_once() {
        for sessions in [1, 4] {
            let seen = Seen::default();
            let pause = Duration::from_millis(1);
            run(probes(sessions, &seen, pause), 0..60, &Cancel::default())
                .await
                .unwrap();
            let mut done = seen.done.into_inner().unwrap();
            done.sort();
            assert_eq!(done, (0..60).collect::<Vec<u32>>(), "{sessions} session(s)");
            let taken = seen.taken.into_inner().unwrap();
            assert_eq!(taken.len(), 60, "{taken:?}");
            let by: std::collections::BTreeSet<usize> = taken.iter().map(|t| t.0).collect();
            assert_eq!(by.len(), sessions, "every session took a share: {taken:?}");
        }
    }

    #[tokio::test]
    async fn the_first_error_stops_every_session() {
        let seen = Seen::default();
        // Item 4 fails soon; item 5, taken about when item 4 is, fails much later.
        let fail = [
            (4, Duration::from_millis(5)),
            (5, Duration::from_millis(300)),
        ];
        let mut sessions = probes(4, &seen, Duration::from_millis(20));
        for s in &mut sessions {
            s.fail = &fail;
        }
        let started = std::time::Instant::now();
        let e = run(sessions, 0..50, &Cancel::default()).await.unwrap_err();
        assert!(e.to_string().starts_with("item 4 failed"), "{e}");
        assert!(started.elapsed() < Duration::from_millis(250));
        let taken = seen.taken.lock().unwrap().len();
        assert!(taken < 12, "{taken} items taken: the others went on");
        // Nothing goes on once the pool has returned.
        tokio::time::sleep(Duration::from_millis(60)).await;
        assert_eq!(seen.taken.lock().unwrap().len(), taken);
    }

    #[tokio::test]
    async fn ctrl_c_stops_between_items() {
        for n in [1, 3] {
            let seen = Seen::default();
            let cancel = Cancel::default();
            let mut sessions = probes(n, &seen, Duration::from_millis(2));
            for s in &mut sessions {
                s.cancel_on = Some((6, &cancel));
            }
            let e = run(sessions, 0..40, &cancel).await;
            assert!(matches!(e, Err(Error::Interrupted)), "{e:?}");
            // No item is taken once Ctrl-C came (while item 6 was worked).
            let taken = seen.taken.into_inner().unwrap();
            assert_eq!(
                taken.last().map(|t| t.1),
                Some(6),
                "{n} session(s): {taken:?}"
            );
            assert!(taken.len() <= 6 + n, "{n} session(s): {taken:?}");
        }
        // One session finishes the item in hand, then stops.
        let seen = Seen::default();
        let cancel = Cancel::default();
        let mut one = probes(1, &seen, Duration::from_millis(2));
        one[0].cancel_on = Some((6, &cancel));
        let e = run(one, 0..40, &cancel).await;
        assert!(matches!(e, Err(Error::Interrupted)), "{e:?}");
        assert_eq!(
            seen.done.into_inner().unwrap(),
            (0..=6).collect::<Vec<u32>>()
        );
    }
}
