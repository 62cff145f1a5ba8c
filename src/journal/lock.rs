//! The plan lock: a session advisory lock per plan, so only one orchestrator runs it,
//! and a description of the session holding it.

use sha2::{Digest, Sha256};
use tokio_postgres::Client;

use crate::error::{Context, Error, Result};

/// First key of every hyperswap advisory lock: "hyps" in ASCII.
pub(super) const LOCK_CLASS: i32 = 0x6879_7073;

/// How long a plan's lock is waited for before its holder is reported as another run. A
/// run that has just ended keeps it until its server session exits (idle: a moment);
/// one whose client was killed mid-statement keeps it until that statement ends
/// (active: a live run may look the same, so the wait is bounded).
const IDLE_GRACE: std::time::Duration = std::time::Duration::from_secs(2);
const ACTIVE_GRACE: std::time::Duration = std::time::Duration::from_secs(30);

/// Takes this plan's session advisory lock. A holder is waited for a bounded time
/// (saying so), then named in the error.
pub async fn lock_plan(client: &Client, plan: &str) -> Result<()> {
    let key = plan_lock_key(plan);
    let started = std::time::Instant::now();
    let mut said = false;
    loop {
        let got: bool = client
            .query_one(
                "SELECT pg_catalog.pg_try_advisory_lock($1, $2)",
                &[&LOCK_CLASS, &key],
            )
            .await
            .context("taking the plan's advisory lock")?
            .get(0);
        if got {
            return Ok(());
        }
        let holder = lock_holder(client, key).await?;
        let grace = match &holder {
            Some((_, true)) => ACTIVE_GRACE,
            _ => IDLE_GRACE,
        };
        if started.elapsed() >= grace {
            return Err(Error::Busy {
                plan: plan.to_string(),
                holder: holder
                    .map(|(h, _)| h)
                    .unwrap_or_else(|| "a session that has just ended; try again".into()),
            });
        }
        if let Some((holder, true)) = &holder {
            if !said {
                tracing::info!(
                    "plan `{plan}` is held by {holder}, which is running a statement; waiting up to {}s for it (a run whose client was stopped keeps the plan until that statement ends)",
                    ACTIVE_GRACE.as_secs()
                );
                said = true;
            }
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
}

/// The session holding the plan's advisory lock `key`, described for a DBA, and whether
/// it is running a statement.
async fn lock_holder(client: &Client, key: i32) -> Result<Option<(String, bool)>> {
    let row = client
        .query_opt(
            "SELECT format('pid %s, %s, user %s from %s, running since %s',
                           a.pid, coalesce(nullif(a.application_name, ''), 'no application_name'),
                           a.usename, coalesce(host(a.client_addr), 'local socket'),
                           date_trunc('second', a.backend_start)),
                    a.state = 'active'
             FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid
             WHERE l.locktype = 'advisory' AND l.granted AND l.objsubid = 2
               AND l.classid::bigint = $1 AND l.objid::bigint = $2
             LIMIT 1",
            &[&(LOCK_CLASS as u32 as i64), &(key as u32 as i64)],
        )
        .await
        .context("looking up the holder of the plan's advisory lock")?;
    Ok(row.map(|r| (r.get(0), r.get(1))))
}

fn plan_lock_key(plan: &str) -> i32 {
    let d = Sha256::digest(plan.as_bytes());
    i32::from_be_bytes([d[0], d[1], d[2], d[3]])
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    #[test]
    fn the_lock_class_is_hyps_in_ascii() {
        assert_eq!(LOCK_CLASS.to_be_bytes(), *b"hyps");
    }

    #[test]
    fn a_plans_key_is_the_first_four_bytes_of_its_names_sha256() {
        // Two versions of hyperswap running one plan must take the same lock: the key
        // of a name never changes. sha256("m") starts 62c66a7a, sha256("a") ca978112.
        assert_eq!(plan_lock_key("m"), 0x62c6_6a7a);
        assert_eq!(plan_lock_key("metrics"), 0x177a_7ea3);
        assert_eq!(plan_lock_key("a"), 0xca97_8112_u32 as i32);
        assert!(plan_lock_key("a") < 0, "keys use the whole i32 range");
        assert_eq!(plan_lock_key("metrics"), plan_lock_key("metrics"));
        assert_ne!(plan_lock_key("metrics"), plan_lock_key("metrics2"));
        assert_ne!(plan_lock_key("metrics"), plan_lock_key("Metrics"));
    }

    #[test]
    fn no_two_short_plan_names_share_a_key() {
        // Every plan name of one or two characters (a plan name's alphabet), and
        // p10..p10009: two plans whose keys matched would wait for each other.
        let alphabet: Vec<char> = ('a'..='z')
            .chain('A'..='Z')
            .chain('0'..='9')
            .chain(['-', '_', '.'])
            .collect();
        let mut names: Vec<String> = alphabet.iter().map(|c| c.to_string()).collect();
        for a in &alphabet {
            for b in &alphabet {
                names.push(format!("{a}{b}"));
            }
        }
        names.extend((10..10_010).map(|i| format!("p{i}")));
        let mut seen: HashMap<i32, &str> = HashMap::new();
        for name in &names {
            if let Some(other) = seen.insert(plan_lock_key(name), name) {
                panic!(
                    "plans `{other}` and `{name}` share lock key {}",
                    plan_lock_key(name)
                );
            }
        }
        assert_eq!(seen.len(), 65 + 65 * 65 + 10_000);
    }
}
