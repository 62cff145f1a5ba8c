//! Parity runs: each run's ranges' bounds, the sums each range compared (so an
//! interrupted run resumes), and the result, recorded on the plan when it passes.

use tokio_postgres::GenericClient;

use crate::error::{Context, Result};

/// count, sum and xor of the row hashes of one side of one parity range.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RangeSums {
    pub rows: i64,
    pub sum: String,
    pub xor: i64,
}

/// The unfinished parity run of this plan and phase started within `within`: its id and
/// its ranges' bounds (JSON).
pub async fn open_parity_run(
    client: &impl GenericClient,
    plan: &str,
    phase: &str,
    within: std::time::Duration,
) -> Result<Option<(i64, String)>> {
    let row = client
        .query_opt(
            "SELECT id, bounds FROM hyperswap.parity_runs
             WHERE plan_name = $1 AND phase = $2 AND finished_at IS NULL
               AND started_at > pg_catalog.now() - pg_catalog.make_interval(secs => $3)
             ORDER BY id DESC LIMIT 1",
            &[&plan, &phase, &within.as_secs_f64()],
        )
        .await
        .context("recording the parity run")?;
    Ok(row.map(|r| (r.get(0), r.get(1))))
}

pub async fn start_parity_run(
    client: &impl GenericClient,
    plan: &str,
    phase: &str,
    bounds: &str,
) -> Result<i64> {
    Ok(client
        .query_one(
            "INSERT INTO hyperswap.parity_runs (plan_name, phase, bounds) VALUES ($1, $2, $3) RETURNING id",
            &[&plan, &phase, &bounds],
        )
        .await
        .context("recording the parity run")?
        .get(0))
}

/// The ranges a parity run has compared: (ord, range_no) -> (live, mirror).
pub async fn parity_range_results(
    client: &impl GenericClient,
    run_id: i64,
) -> Result<std::collections::HashMap<(i32, i32), (RangeSums, RangeSums)>> {
    let rows = client
        .query(
            "SELECT ord, range_no, live_rows, live_sum, live_xor, mirror_rows, mirror_sum, mirror_xor
             FROM hyperswap.parity_ranges WHERE run_id = $1",
            &[&run_id],
        )
        .await
        .context("reading the parity run")?;
    Ok(rows
        .iter()
        .map(|r| {
            let l = RangeSums {
                rows: r.get(2),
                sum: r.get(3),
                xor: r.get(4),
            };
            let m = RangeSums {
                rows: r.get(5),
                sum: r.get(6),
                xor: r.get(7),
            };
            ((r.get(0), r.get(1)), (l, m))
        })
        .collect())
}

pub async fn record_parity_range(
    client: &impl GenericClient,
    run_id: i64,
    key: (i32, i32),
    (l, m): &(RangeSums, RangeSums),
) -> Result<()> {
    client
        .execute(
            "INSERT INTO hyperswap.parity_ranges
                (run_id, ord, range_no, live_rows, live_sum, live_xor, mirror_rows, mirror_sum, mirror_xor, equal)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) ON CONFLICT DO NOTHING",
            &[&run_id, &key.0, &key.1, &l.rows, &l.sum, &l.xor, &m.rows, &m.sum, &m.xor, &(l == m)],
        )
        .await
        .context("recording a parity range")?;
    Ok(())
}

pub async fn forget_parity_range(
    client: &impl GenericClient,
    run_id: i64,
    key: (i32, i32),
) -> Result<()> {
    client
        .execute(
            "DELETE FROM hyperswap.parity_ranges WHERE run_id = $1 AND ord = $2 AND range_no = $3",
            &[&run_id, &key.0, &key.1],
        )
        .await
        .context("recording a parity range")?;
    Ok(())
}

/// Ends a parity run; a passing one is also recorded on the plan, with its digest.
pub async fn finish_parity_run(
    client: &impl GenericClient,
    plan: &str,
    run_id: i64,
    equal: bool,
    digest: &str,
) -> Result<()> {
    let ctx = "recording the parity result";
    client
        .execute(
            "UPDATE hyperswap.parity_runs SET finished_at = now(), equal = $2, digest = $3 WHERE id = $1",
            &[&run_id, &equal, &digest],
        )
        .await
        .context(ctx)?;
    if equal {
        client
            .execute(
                "UPDATE hyperswap.plans SET parity_passed_at = now(), parity_digest = $2 WHERE name = $1",
                &[&plan, &digest],
            )
            .await
            .context(ctx)?;
    }
    Ok(())
}
