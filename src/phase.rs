//! The closed set of phases a plan moves through, persisted by name in the journal.

use std::fmt;
use std::str::FromStr;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
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
    /// The phase at which a run with this `--until` stops.
    pub fn phase(self) -> Phase {
        match self {
            Until::Target => Phase::TargetCreated,
            Until::Trigger => Phase::TriggerInstalled,
            Until::Backfill => Phase::Backfilled,
            Until::Parity => Phase::Verified,
            Until::Cutover => Phase::CutOver,
        }
    }
}
