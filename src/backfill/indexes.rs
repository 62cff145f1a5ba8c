//! The indexes left for after the copy (see [`crate::target::deferred_indexes`]), built
//! once every batch has committed: a build is faster than the maintenance of the index
//! by every batch.

use std::time::Duration;

use tokio_postgres::Client;

use crate::error::{Context, Result};
use crate::model::Job;
use crate::retry::{conflict_kind, Policy, Retry, LOCK_CONFLICT};
use crate::stmt::Stmt;

use super::Backfill;

impl Backfill<'_> {
    /// Builds the indexes left for after the copy. A build interrupted earlier left its
    /// index invalid: it is dropped and built again. Each waits at most `lock_timeout`
    /// for a chunk (then backs off and retries), so a long application transaction
    /// never queues writers behind it.
    pub(super) async fn build_indexes(&self) -> Result<()> {
        let client = &*self.client;
        let timeout = format!(
            "SET lock_timeout = '{}ms'",
            self.opts.lock_timeout.as_millis().max(1)
        );
        let mut said = false;
        for job in self.jobs {
            for (name, stmt) in crate::target::deferred_indexes(job) {
                let ctx = || format!("building index {name} on {}", job.target);
                let drop = format!(
                    "DROP INDEX IF EXISTS {}",
                    job.target.sibling(name.clone()).quoted()
                );
                if stmt.sql.starts_with("CREATE INDEX") {
                    match index_valid(client, job, &name).await.with_context(ctx)? {
                        Some(true) => continue,
                        Some(false) => {
                            self.log.record(&drop);
                            client.batch_execute(&drop).await.with_context(ctx)?;
                        }
                        None => {}
                    }
                    if !said {
                        self.progress.step(
                            "building the indexes left for after the copy, one chunk at a time",
                        );
                        client.batch_execute(&timeout).await.with_context(ctx)?;
                        said = true;
                    }
                }
                self.log.record(&stmt.sql);
                self.build(&stmt, &drop, &ctx).await?;
            }
        }
        if said {
            client
                .batch_execute("RESET lock_timeout")
                .await
                .context("building the deferred indexes")?;
        }
        Ok(())
    }

    /// Runs one build, tried again after a lock conflict up to `backfill.retries` times.
    async fn build(&self, stmt: &Stmt, drop: &str, ctx: &impl Fn() -> String) -> Result<()> {
        let client = &*self.client;
        let retries = self.opts.retries;
        let mut retry = Retry::new(Policy {
            attempts: retries.saturating_add(1),
            pause: Duration::from_millis(500),
            retryable: LOCK_CONFLICT,
        });
        loop {
            match client.batch_execute(&stmt.sql).await.with_context(ctx) {
                Ok(()) => return Ok(()),
                Err(e) => {
                    retry
                        .after(e, self.cancel, |r| {
                            Some(format!(
                                "{} (attempt {} of {retries}); retrying in {:?}",
                                conflict_kind(r.error),
                                r.attempt,
                                r.pause
                            ))
                        })
                        .await?;
                    // A build stopped half way left its index invalid.
                    client.batch_execute(drop).await.with_context(ctx)?;
                }
            }
        }
    }
}

/// Whether the index `name` of `job`'s target is valid (`None`: it does not exist).
async fn index_valid(
    client: &Client,
    job: &Job,
    name: &str,
) -> std::result::Result<Option<bool>, tokio_postgres::Error> {
    Ok(client
        .query_opt(
            "SELECT i.indisvalid FROM pg_catalog.pg_index i
                             JOIN pg_catalog.pg_class c ON c.oid OPERATOR(pg_catalog.=) i.indexrelid
                             JOIN pg_catalog.pg_namespace n ON n.oid OPERATOR(pg_catalog.=) c.relnamespace
                             WHERE n.nspname OPERATOR(pg_catalog.=) $1 AND c.relname OPERATOR(pg_catalog.=) $2",
            &[&job.target.schema, &name],
        )
        .await?
        .map(|r| r.get(0)))
}
