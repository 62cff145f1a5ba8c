//! The statements of the phases that are plain transactions (phase 1, create the
//! targets; phase 2, the copy triggers), and the lock policy they and the cutover share.
//! Built here once: `plan apply` runs them through [`crate::runner`], `plan show` prints
//! them, so the two are equal by construction.

use crate::model::Job;
use crate::plan::Plan;
use crate::stmt::{set_lock_timeout, LockPolicy, Stmt};
use crate::{target, trigger};

/// Phase 1's statements: every target, in one transaction.
pub fn create_phase(plan: &str, jobs: &[Job], lock: &LockPolicy) -> Vec<Stmt> {
    std::iter::once(set_lock_timeout(lock.lock_timeout))
        .chain(jobs.iter().flat_map(|j| {
            let mut s = target::statements(j);
            s.push(crate::journal::record_definitions(plan, j));
            s
        }))
        .collect()
}

/// Phase 2's statements: every copy trigger, in one transaction.
pub fn trigger_phase(plan: &str, jobs: &[Job], lock: &LockPolicy) -> Vec<Stmt> {
    std::iter::once(set_lock_timeout(lock.lock_timeout))
        .chain(jobs.iter().flat_map(|j| trigger::statements(j, plan)))
        .collect()
}

/// The end of the backfill, in the transaction that records it: the source's NOT VALID
/// constraints (see [`target::not_valid_constraints`]) and the target's new record of
/// definitions. Empty when there are none.
pub fn end_of_backfill(plan: &str, jobs: &[Job]) -> Vec<Stmt> {
    jobs.iter()
        .flat_map(|j| {
            let mut s = target::not_valid_constraints(j);
            if !s.is_empty() {
                s.push(crate::journal::record_target_definitions(plan, j));
            }
            s
        })
        .collect()
}

pub fn lock_policy(plan: &Plan) -> LockPolicy {
    LockPolicy {
        lock_timeout: plan.cutover.lock_timeout,
        attempts: plan.cutover.attempts,
        backoff: plan.cutover.backoff,
    }
}
