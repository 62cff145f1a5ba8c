//! `hyperswap plan validate`: the plan checked against the live database, resolved into
//! its tables. Changes nothing.

use crate::context::{Context, PlanLock};
use crate::error::Result;
use crate::model::Job;
use crate::privileges::{self, Scope};

/// The plan's tables, resolved, once every check the phases ahead need has passed.
pub async fn validate(cx: &Context<'_>) -> Result<Vec<Job>> {
    let opened = cx.open("hyperswap validate", PlanLock::None).await?;
    let phase = opened.phase();
    let client = opened.client;
    let jobs = crate::validate::resolve(&client, cx.plan, phase).await?;
    if phase.is_none_or(|p| p.source_is_live()) {
        crate::validate::check_forward(&client, &jobs).await?;
    } else {
        privileges::check(&client, &jobs, Scope::AfterCutover).await?;
    }
    Ok(jobs)
}
