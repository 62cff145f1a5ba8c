//! The backfill's brakes: the pause file, replica lag and the server's load. A worker
//! asks before each batch; the server is asked at most once a second per worker.

use std::time::{Duration, Instant};

use tokio_postgres::Client;

use crate::error::{Context, Error, Result};
use crate::plan::BackfillOptions;

/// The backfill's brakes: the pause file, replica lag and active backends.
#[derive(Default)]
pub(super) struct Throttle {
    /// When the server was last asked, and what it said.
    checked: Option<(Instant, Option<String>)>,
}

impl Throttle {
    /// Why the next batch should wait, if it should; an error on a critical limit.
    pub(super) async fn reason(
        &mut self,
        client: &Client,
        opts: &BackfillOptions,
        ours: &[i32],
    ) -> Result<Option<String>> {
        if let Some(file) = &opts.pause_file {
            if file.exists() {
                return Ok(Some(format!(
                    "the pause file {} exists; remove it to go on",
                    file.display()
                )));
            }
        }
        let watched = opts.max_replica_lag.is_some()
            || opts.abort_replica_lag.is_some()
            || opts.max_active_backends.is_some()
            || opts.abort_active_backends.is_some();
        if !watched {
            return Ok(None);
        }
        // The server is asked at most once a second per worker.
        if let Some((at, why)) = &self.checked {
            if at.elapsed() < Duration::from_secs(1) {
                return Ok(why.clone());
            }
        }
        let row = client
            .query_one(
                "SELECT (SELECT pg_catalog.max(pg_catalog.date_part('epoch', replay_lag)) FROM pg_catalog.pg_stat_replication),
                        (SELECT pg_catalog.count(*) FROM pg_catalog.pg_stat_activity
                         WHERE state OPERATOR(pg_catalog.=) 'active' AND backend_type OPERATOR(pg_catalog.=) 'client backend'
                           AND pid OPERATOR(pg_catalog.<>) ALL ($1::pg_catalog.int4[]))",
                &[&ours],
            )
            .await
            .context("checking replica lag and server load for the backfill's throttle")?;
        let lag: Option<f64> = row.get(0);
        let active: i64 = row.get(1);
        let why = throttle_verdict(opts, lag.map(Duration::from_secs_f64), active)?;
        self.checked = Some((Instant::now(), why.clone()));
        Ok(why)
    }
}

/// What the throttle makes of a replica lag and a count of other active backends.
pub fn throttle_verdict(
    opts: &BackfillOptions,
    lag: Option<Duration>,
    active: i64,
) -> Result<Option<String>> {
    let fmt = |d: Duration| humantime::format_duration(Duration::from_millis(d.as_millis() as u64));
    if let (Some(lag), Some(limit)) = (lag, opts.abort_replica_lag) {
        if lag > limit {
            return Err(Error::RetryLater {
                problem: format!(
                    "backfill stopped: a replica's replay lag is {}, above backfill.abort_replica_lag ({})",
                    fmt(lag),
                    fmt(limit)
                ),
                fix: "find why the replica falls behind; `hyperswap plan apply` resumes where the backfill stopped".into(),
            });
        }
    }
    if let Some(limit) = opts.abort_active_backends {
        if active > limit as i64 {
            return Err(Error::RetryLater {
                problem: format!("backfill stopped: {active} other backends are active, above backfill.abort_active_backends ({limit})"),
                fix: "run the backfill when the server is less busy; `hyperswap plan apply` resumes where it stopped".into(),
            });
        }
    }
    if let (Some(lag), Some(limit)) = (lag, opts.max_replica_lag) {
        if lag > limit {
            return Ok(Some(format!(
                "a replica's replay lag is {}, above backfill.max_replica_lag ({})",
                fmt(lag),
                fmt(limit)
            )));
        }
    }
    if let Some(limit) = opts.max_active_backends {
        if active > limit as i64 {
            return Ok(Some(format!(
                "{active} other backends are active, above backfill.max_active_backends ({limit})"
            )));
        }
    }
    Ok(None)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn throttle_waits_then_stops() {
        let opts = BackfillOptions {
            max_replica_lag: Some(Duration::from_secs(10)),
            abort_replica_lag: Some(Duration::from_secs(60)),
            max_active_backends: Some(20),
            abort_active_backends: Some(50),
            ..BackfillOptions::default()
        };
        assert!(throttle_verdict(&opts, None, 3).unwrap().is_none());
        assert!(throttle_verdict(&opts, Some(Duration::from_secs(5)), 3)
            .unwrap()
            .is_none());
        let why = throttle_verdict(&opts, Some(Duration::from_secs(12)), 3)
            .unwrap()
            .unwrap();
        assert!(why.contains("replay lag is 12s"), "{why}");
        let why = throttle_verdict(&opts, None, 21).unwrap().unwrap();
        assert!(why.contains("21 other backends"), "{why}");
        let err = throttle_verdict(&opts, Some(Duration::from_secs(61)), 3).unwrap_err();
        assert!(err.to_string().contains("abort_replica_lag"), "{err}");
        let err = throttle_verdict(&opts, None, 51).unwrap_err();
        assert!(err.to_string().contains("abort_active_backends"), "{err}");
    }
}
