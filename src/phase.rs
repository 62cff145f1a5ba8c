//! The closed set of phases a plan moves through, persisted by name in the journal.

use std::fmt;
use std::str::FromStr;

/// Phases have one order, [`Phase::step`] (rolled back stands with backfilled: both wait
/// for parity); everything else asks a named question.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// Journal written; nothing created yet.
    Planned,
    /// Target hypertables exist (empty).
    TargetCreated,
    /// Copy triggers mirror every live write into the targets.
    TriggerInstalled,
    /// Key ranges captured; batches are being copied.
    Backfilling,
    /// Every range copied.
    Backfilled,
    /// Parity passed; ready to cut over.
    Verified,
    /// Targets carry the sources' names; reverse triggers keep the retired tables current.
    CutOver,
    /// Cutover undone: sources live again, copy triggers back in place.
    RolledBack,
    /// `abort` has removed the copy triggers and is removing the targets.
    Aborting,
    /// `finalize` has removed the reverse triggers and is removing the retired tables.
    Finalizing,
}

impl Phase {
    /// How far along the forward path a phase is: `plan apply` moves while the plan's
    /// step is below the step it stops at.
    pub fn step(self) -> u8 {
        match self {
            Phase::Planned => 0,
            Phase::TargetCreated => 1,
            Phase::TriggerInstalled => 2,
            Phase::Backfilling => 3,
            Phase::Backfilled | Phase::RolledBack => 4,
            Phase::Verified => 5,
            Phase::CutOver => 6,
            Phase::Aborting | Phase::Finalizing => 7,
        }
    }

    /// The target tables exist (or are being removed).
    pub fn target_created(self) -> bool {
        self != Phase::Planned
    }

    /// The copy is complete and kept current, so parity can compare: backfilled,
    /// verified, cut over (the other way) or rolled back. Not while aborting or
    /// finalizing.
    pub fn copy_complete(self) -> bool {
        matches!(
            self,
            Phase::Backfilled | Phase::Verified | Phase::CutOver | Phase::RolledBack
        )
    }

    /// The backfill has ended (its indexes built).
    pub fn backfill_done(self) -> bool {
        self.copy_complete() || self == Phase::Finalizing
    }

    pub const ALL: [Phase; 10] = [
        Phase::Planned,
        Phase::TargetCreated,
        Phase::TriggerInstalled,
        Phase::Backfilling,
        Phase::Backfilled,
        Phase::Verified,
        Phase::CutOver,
        Phase::RolledBack,
        Phase::Aborting,
        Phase::Finalizing,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Phase::Planned => "planned",
            Phase::TargetCreated => "target_created",
            Phase::TriggerInstalled => "trigger_installed",
            Phase::Backfilling => "backfilling",
            Phase::Backfilled => "backfilled",
            Phase::Verified => "verified",
            Phase::CutOver => "cut_over",
            Phase::RolledBack => "rolled_back",
            Phase::Aborting => "aborting",
            Phase::Finalizing => "finalizing",
        }
    }

    /// Whether the sources still carry the application (no cutover in effect).
    pub fn source_is_live(self) -> bool {
        !matches!(self, Phase::CutOver | Phase::Finalizing)
    }

    /// Whether the hypertables carry the tables' names and the way back is recorded:
    /// what `rollback` undoes and `finalize` completes (a phase a step after the
    /// cutover leaves belongs here too).
    pub fn cut_over(self) -> bool {
        self == Phase::CutOver
    }
}

impl fmt::Display for Phase {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Phase {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        Phase::ALL
            .into_iter()
            .find(|p| p.as_str() == s)
            .ok_or_else(|| {
                format!("unknown phase `{s}` in the journal (written by a newer hyperswap?)")
            })
    }
}

/// Where `plan apply --until` may stop: after the named step.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Until {
    /// Stop once the target hypertables exist.
    Target,
    /// Stop once the copy triggers are installed.
    Trigger,
    /// Stop once the backfill has copied every range.
    Backfill,
    /// Stop once parity has passed, just before cutover.
    Parity,
    /// Run through cutover (the default).
    Cutover,
}

impl Until {
    /// The name of the step a run with this `--until` stops after (see
    /// `crate::steps::STEPS`).
    pub fn step(self) -> &'static str {
        match self {
            Until::Target => "target",
            Until::Trigger => "trigger",
            Until::Backfill => "backfill",
            Until::Parity => "parity",
            Until::Cutover => "cutover",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parity_compares_only_complete_copies() {
        let ok: Vec<Phase> = Phase::ALL
            .into_iter()
            .filter(|p| p.copy_complete())
            .collect();
        assert_eq!(
            ok,
            [
                Phase::Backfilled,
                Phase::Verified,
                Phase::CutOver,
                Phase::RolledBack
            ]
        );
        assert!(!Phase::Aborting.copy_complete() && !Phase::Finalizing.copy_complete());
    }

    #[test]
    fn steps_follow_the_forward_path() {
        // ALL lists the forward path first, up to cutover.
        let forward = &Phase::ALL[..7];
        assert_eq!(forward.last(), Some(&Phase::CutOver));
        assert!(forward.windows(2).all(|w| w[0].step() < w[1].step()));
        assert_eq!(Phase::RolledBack.step(), Phase::Backfilled.step());
    }
}
