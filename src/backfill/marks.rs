//! The watermarks of the catch-up while the backfill runs (Spirit's and gh-ost's low and
//! high watermarks, over key ranges): which logged keys may be replayed now, and which
//! must wait.
//!
//! Each range of a table is `[lo, hi]` (the first) or `(previous hi, hi]`; its cursor is
//! the last key a committed batch copied. A range is *queued* (no worker has taken it
//! yet), *copying* (a worker batches through it) or *done*. For a key `k` logged by a
//! committed write W:
//!
//! - **replay** when `k` is at or below its range's cursor, or outside every range
//!   (below the first key or above the last when the backfill started: no batch ever
//!   reads those). The batch that copied `k` committed before the cursor was read, so
//!   before the replay's snapshot: the replay writes what the source holds after both,
//!   and no batch reads `k` again (cursors only move forward, ranges never overlap).
//!   A cursor read late is only lower: it makes the rule stricter, never wrong.
//! - **wait** when `k` lies beyond its range's cursor: a batch may be reading it from a
//!   snapshot older than W. It is replayed once the cursor passes it, or at the end of
//!   the backfill. (Such entries are not dropped, though a batch yet to start reads the
//!   key fresh: a batch that meets a stale row of another key on a unique index skips
//!   its conflicting rows, and only their entries bring them into the copy.)
//!
//! A key update that moves a row across ranges logs both keys; each is judged by its
//! own range, and the replay of either reads the source again, so the order does not
//! matter. Several workers change nothing: each range has one worker at a time, and the
//! rule is per range.

use crate::capture::KeyIntervals;
use crate::journal::RangeRecord;
use crate::keyspace::KeyValue;

/// Where a range stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum State {
    Queued,
    Copying,
    Done,
}

/// One range, as the catch-up sees it.
#[derive(Debug, Clone)]
pub(super) struct Mark {
    pub(super) ord: i32,
    pub(super) range_no: i32,
    /// Inclusive lower bound of the first range; for the others, the previous range's
    /// end (exclusive), which is also their cursor until a batch commits.
    pub(super) lo: Option<KeyValue>,
    pub(super) hi: KeyValue,
    /// The last key a committed batch copied (`None`: none yet in the first range).
    pub(super) cursor: Option<KeyValue>,
    pub(super) state: State,
}

impl Mark {
    pub(super) fn of(r: &RangeRecord) -> Mark {
        Mark {
            ord: r.ord,
            range_no: r.range_no,
            lo: r.lo.clone(),
            hi: r.hi.clone(),
            cursor: r.cursor.clone(),
            state: if r.done { State::Done } else { State::Queued },
        }
    }

    /// The keys of this range not copied yet (`None` when it is done or empty).
    fn uncopied(&self) -> Option<Interval> {
        if self.state == State::Done || self.hi.is_empty() {
            return None;
        }
        let lo = match (&self.cursor, &self.lo) {
            (Some(c), _) => Some((c.clone(), false)),
            (None, Some(lo)) => Some((lo.clone(), true)),
            (None, None) => None,
        };
        Some(Interval {
            lo,
            hi: self.hi.clone(),
        })
    }
}

/// Keys from `lo` (with whether it is included; `None`: unbounded below) up to and
/// including `hi`.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Interval {
    lo: Option<(KeyValue, bool)>,
    hi: KeyValue,
}

/// The marks of one table's ranges, in key order.
pub(super) struct Marks<'m> {
    pub(super) ranges: Vec<&'m Mark>,
}

impl Marks<'_> {
    /// The keys not copied yet (of queued and copying ranges alike): the catch-up
    /// replays every entry of a key outside them.
    pub(super) fn pending(&self) -> KeyIntervals {
        intervals(merge(self.ranges.iter().filter_map(|m| m.uncopied())))
    }
}

/// Joins intervals that touch (one ends where the next starts after), in order.
fn merge(intervals: impl Iterator<Item = Interval>) -> Vec<Interval> {
    let mut out: Vec<Interval> = Vec::new();
    for next in intervals {
        match (out.last_mut(), &next.lo) {
            (Some(last), Some((start, false))) if *start == last.hi => last.hi = next.hi,
            _ => out.push(next),
        }
    }
    out
}

fn intervals(list: Vec<Interval>) -> KeyIntervals {
    let mut out = KeyIntervals::default();
    for i in list {
        out.lo_inclusive
            .push(i.lo.as_ref().is_some_and(|(_, incl)| *incl));
        out.lo.push(i.lo.map(|(v, _)| v));
        out.hi.push(i.hi);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn k(v: i64) -> KeyValue {
        vec![v.to_string()]
    }

    /// Ranges [1, 100], (100, 200], (200, 300] as the backfill cuts them.
    fn ranges() -> Vec<Mark> {
        let mk = |no: i32, lo: i64, hi: i64, cursor: Option<i64>| Mark {
            ord: 0,
            range_no: no,
            lo: Some(k(lo)),
            hi: k(hi),
            cursor: cursor.map(k),
            state: State::Queued,
        };
        vec![
            mk(0, 1, 100, None),
            mk(1, 100, 200, Some(100)),
            mk(2, 200, 300, Some(200)),
        ]
    }

    fn marks(m: &[Mark]) -> Marks<'_> {
        Marks {
            ranges: m.iter().collect(),
        }
    }

    fn of(lo: &[Option<(i64, bool)>], hi: &[i64]) -> KeyIntervals {
        KeyIntervals {
            lo: lo.iter().map(|b| b.map(|(v, _)| k(v))).collect(),
            lo_inclusive: lo.iter().map(|b| b.is_some_and(|(_, i)| i)).collect(),
            hi: hi.iter().map(|v| k(*v)).collect(),
        }
    }

    #[test]
    fn before_any_batch_only_keys_outside_the_ranges_are_replayed() {
        let m = ranges();
        // The three untouched ranges join into one interval, [1, 300].
        assert_eq!(marks(&m).pending(), of(&[Some((1, true))], &[300]));
    }

    #[test]
    fn copied_keys_are_replayed_the_others_wait() {
        let mut m = ranges();
        // Range 0 copied up to 40 and being copied; range 1 done; range 2 queued.
        m[0].cursor = Some(k(40));
        m[0].state = State::Copying;
        m[1].state = State::Done;
        m[1].cursor = Some(k(200));
        // Not copied yet: (40, 100] and (200, 300]: everything else is replayed.
        assert_eq!(
            marks(&m).pending(),
            of(&[Some((40, false)), Some((200, false))], &[100, 300])
        );
    }

    #[test]
    fn when_every_range_is_done_every_key_is_replayed_and_none_dropped() {
        let mut m = ranges();
        for r in &mut m {
            r.state = State::Done;
        }
        assert_eq!(marks(&m).pending(), KeyIntervals::default());
    }

    #[test]
    fn a_resumed_range_keeps_what_it_copied() {
        let mut m = ranges();
        // Queued again after a restart, with half of it copied before.
        m[1].cursor = Some(k(150));
        m[0].state = State::Done;
        // (150, 200] and (200, 300] join; (100, 150] is copied: replayed.
        assert_eq!(marks(&m).pending(), of(&[Some((150, false))], &[300]));
    }

    #[test]
    fn an_empty_table_has_nothing_pending() {
        let m = vec![Mark {
            ord: 0,
            range_no: 0,
            lo: None,
            hi: vec![],
            cursor: None,
            state: State::Done,
        }];
        assert_eq!(marks(&m).pending(), KeyIntervals::default());
    }
}
