//! A comparison's runs in the journal: an unfinished run of the same comparison is
//! resumed with its bounds and its ranges' results, else a new one starts with fresh
//! bounds; each range's result is recorded as it is known, the run's verdict at its end.

use std::collections::HashMap;

use tokio_postgres::Client;

use crate::error::Result;
use crate::journal::RangeSums as Sums;
use crate::model::Job;

use super::check::Checker;
use super::ranges::{self, KeyValue};

impl Checker<'_> {
    /// The unfinished run of the same comparison, or a new one with fresh bounds.
    pub(super) async fn find_or_start_run(
        &self,
        journal: &Client,
        live: &Client,
    ) -> Result<(i64, HashMap<usize, Vec<KeyValue>>)> {
        let open = crate::journal::open_parity_run(
            journal,
            self.plan,
            self.phase.as_str(),
            self.resume_within,
        )
        .await?;
        if let Some((id, bounds)) = open {
            if let Ok(b) = serde_json::from_str(&bounds) {
                return Ok((id, b));
            }
        }
        let bounds = plan_bounds(live, self.jobs, self.range_rows).await?;
        let text = serde_json::to_string(&bounds).expect("bounds serialise");
        let id = crate::journal::start_parity_run(journal, self.plan, self.phase.as_str(), &text)
            .await?;
        Ok((id, bounds))
    }

    pub(super) async fn recorded(
        &self,
        journal: &Client,
        run_id: i64,
    ) -> Result<HashMap<(i32, i32), (Sums, Sums)>> {
        crate::journal::parity_range_results(journal, run_id).await
    }

    pub(super) async fn record(
        &self,
        journal: &Client,
        run_id: i64,
        key: (i32, i32),
        sums: &(Sums, Sums),
    ) -> Result<()> {
        crate::journal::record_parity_range(journal, run_id, key, sums).await
    }

    pub(super) async fn record_again(
        &self,
        journal: &Client,
        run_id: i64,
        key: (i32, i32),
        sums: &(Sums, Sums),
    ) -> Result<()> {
        crate::journal::forget_parity_range(journal, run_id, key).await?;
        self.record(journal, run_id, key, sums).await
    }

    pub(super) async fn finish_run(
        &self,
        journal: &Client,
        run_id: i64,
        equal: bool,
        digest: &str,
    ) -> Result<()> {
        crate::journal::finish_parity_run(journal, self.plan, run_id, equal, digest).await
    }
}

/// The range boundaries of every table, from a sample of its keys.
pub async fn plan_bounds(
    client: &Client,
    jobs: &[Job],
    range_rows: u64,
) -> Result<HashMap<usize, Vec<KeyValue>>> {
    let mut bounds = HashMap::new();
    for job in jobs {
        bounds.insert(job.ord, ranges::bounds(client, job, range_rows).await?);
    }
    Ok(bounds)
}
