//! A live writer for any table: connections that run the given statements in a random
//! order until stopped, counting what they did. `{r}` in a statement is replaced by a
//! random number in 0..1000 each time, so a test picks rows through an indexed column.
//! A statement `COPY ... FROM STDIN` followed by a newline and its data lines is run as a
//! COPY with that data.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

pub struct SqlWriter {
    stop: Arc<AtomicBool>,
    /// Statements (or transactions) finished so far, over every connection.
    done: Arc<AtomicU64>,
    tasks: Vec<tokio::task::JoinHandle<WriterCounts>>,
}

#[derive(Debug, Default, Clone)]
pub struct WriterCounts {
    /// Rows changed, per statement (by its index in the list); for a transaction (a
    /// statement list starting with BEGIN), the transactions committed.
    pub rows: Vec<u64>,
    /// Serialization failures, each retried until the transaction committed.
    pub retried: u64,
    pub errors: Vec<String>,
}

impl SqlWriter {
    pub fn start(url: &str, connections: usize, statements: &[&str], pause: Duration) -> SqlWriter {
        let stop = Arc::new(AtomicBool::new(false));
        let done = Arc::new(AtomicU64::new(0));
        let statements: Vec<String> = statements.iter().map(|s| s.to_string()).collect();
        let tasks = (0..connections)
            .map(|lane| {
                let (url, stop, done, statements) = (
                    url.to_string(),
                    stop.clone(),
                    done.clone(),
                    statements.clone(),
                );
                tokio::spawn(
                    async move { write(url, lane as u64, stop, done, statements, pause).await },
                )
            })
            .collect();
        SqlWriter { stop, done, tasks }
    }

    /// Waits until the writer has finished `n` more statements than when called.
    pub async fn wait_for(&self, n: u64) {
        let start = self.done.load(Ordering::SeqCst);
        super::wait_until(&format!("{n} more statements of the writer"), || async {
            self.done.load(Ordering::SeqCst) >= start + n
        })
        .await
    }

    pub async fn stop(self) -> WriterCounts {
        self.stop.store(true, Ordering::SeqCst);
        let mut all = WriterCounts::default();
        for t in self.tasks {
            let c = t.await.unwrap();
            all.rows.resize(all.rows.len().max(c.rows.len()), 0);
            for (i, n) in c.rows.iter().enumerate() {
                all.rows[i] += n;
            }
            all.errors.extend(c.errors);
            all.retried += c.retried;
        }
        all
    }
}

async fn write(
    url: String,
    lane: u64,
    stop: Arc<AtomicBool>,
    done: Arc<AtomicU64>,
    statements: Vec<String>,
    pause: Duration,
) -> WriterCounts {
    let client = super::connect(&url).await;
    let mut counts = WriterCounts {
        rows: vec![0; statements.len()],
        retried: 0,
        errors: vec![],
    };
    // xorshift: reproducible per lane, no dependency.
    let mut state = 0x9E37_79B9_7F4A_7C15u64 ^ (lane + 1).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    while !stop.load(Ordering::SeqCst) {
        let i = (next() % statements.len() as u64) as usize;
        let sql = statements[i].replace("{r}", &(next() % 1000).to_string());
        if sql.starts_with("BEGIN") {
            // A whole transaction: retried on serialization failure, as applications do.
            loop {
                match client.batch_execute(&sql).await {
                    Ok(()) => {
                        counts.rows[i] += 1;
                        break;
                    }
                    Err(e) => {
                        let _ = client.batch_execute("ROLLBACK").await;
                        if e.code()
                            == Some(&tokio_postgres::error::SqlState::T_R_SERIALIZATION_FAILURE)
                        {
                            counts.retried += 1;
                            continue;
                        }
                        let msg = e
                            .as_db_error()
                            .map(|d| format!("{} ({})", d.message(), d.code().code()))
                            .unwrap_or_else(|| e.to_string());
                        counts.errors.push(format!("{sql}: {msg}"));
                        break;
                    }
                }
            }
            done.fetch_add(1, Ordering::SeqCst);
            tokio::time::sleep(pause).await;
            continue;
        }
        if let Some((copy, data)) = sql.split_once('\n').filter(|_| sql.starts_with("COPY")) {
            match copy_in(&client, copy, data).await {
                Ok(n) => counts.rows[i] += n,
                Err(e) => counts.errors.push(format!("{} {copy}: {e}", now())),
            }
            done.fetch_add(1, Ordering::SeqCst);
            tokio::time::sleep(pause).await;
            continue;
        }
        match client.execute(&sql, &[]).await {
            Ok(n) => counts.rows[i] += n,
            Err(e) => {
                let msg = e
                    .as_db_error()
                    .map(|d| d.message().to_string())
                    .unwrap_or_else(|| e.to_string());
                counts.errors.push(format!("{} {sql}: {msg}", now()));
            }
        }
        done.fetch_add(1, Ordering::SeqCst);
        tokio::time::sleep(pause).await;
    }
    counts
}

async fn copy_in(client: &tokio_postgres::Client, copy: &str, data: &str) -> Result<u64, String> {
    use futures_util::SinkExt;
    let text = |e: tokio_postgres::Error| {
        e.as_db_error()
            .map(|d| d.message().to_string())
            .unwrap_or_else(|| e.to_string())
    };
    let sink = client
        .copy_in::<_, bytes::Bytes>(copy)
        .await
        .map_err(text)?;
    futures_util::pin_mut!(sink);
    let mut body = data.to_string();
    if !body.ends_with('\n') {
        body.push('\n');
    }
    sink.send(bytes::Bytes::from(body)).await.map_err(text)?;
    sink.finish().await.map_err(text)
}

/// Seconds since the epoch, to place an error among the journal's events.
fn now() -> String {
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    format!("[{:.3}]", t.as_secs_f64())
}
