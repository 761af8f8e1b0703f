//! Per-session delivery state: exact dedup by seq with bounded memory (a high-water mark
//! below which every seq has arrived, plus a window of seqs seen above it), and loss
//! reconciliation from the cumulative counters that ride in every batch.

use std::collections::BTreeSet;

use sightline_core::proto::Counters;
use sightline_core::stats::Drops;

/// Seqs remembered above the high-water mark. A session whose gap stays open while this
/// many later seqs arrive has its oldest gap declared missing, so memory stays bounded.
pub const DEDUP_WINDOW: usize = 65_536;

/// What the collector knows of one session.
#[derive(Clone, Debug, Default)]
pub struct SessionState {
    /// Every seq in 1..=high_water has arrived (or was given up as missing).
    high_water: u64,
    /// Seqs above `high_water` that arrived.
    above: BTreeSet<u64>,
    /// Distinct impressions that arrived (good or bad).
    pub delivered: u64,
    /// Of those, refused by the contract (written to bad rows).
    pub rejected: u64,
    /// Receipts of a seq already accepted.
    pub duplicates: u64,
    /// Seqs that arrived after a later seq had (a gap filled late).
    pub late: u64,
    /// Seqs skipped when the window overflowed.
    pub given_up: u64,
    /// Counters of the batch with the highest `last_seq` (they are cumulative).
    pub counters: Counters,
    /// Batches received (including duplicates).
    pub batches: u64,
}

/// The verdict on one seq.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Arrival {
    New,
    Duplicate,
}

impl SessionState {
    /// Records the arrival of `seq` and says whether it is new.
    pub fn arrive(&mut self, seq: u64) -> Arrival {
        if seq <= self.high_water || self.above.contains(&seq) {
            self.duplicates += 1;
            return Arrival::Duplicate;
        }
        if self.above.last().is_some_and(|&max| seq < max) {
            self.late += 1;
        }
        self.above.insert(seq);
        self.delivered += 1;
        self.advance();
        while self.above.len() > DEDUP_WINDOW {
            // Give up on the oldest gap: everything below the oldest remembered seq.
            if let Some(&oldest) = self.above.first() {
                // `oldest` is above the mark, so neither subtraction wraps.
                self.given_up = self.given_up.saturating_add(oldest - self.high_water - 1);
                self.high_water = oldest - 1;
                self.advance();
            }
        }
        Arrival::New
    }

    /// Takes the counters of a batch; only newer cumulative counters replace older ones.
    pub fn observe_counters(&mut self, counters: &Counters) {
        if counters.last_seq >= self.counters.last_seq {
            self.counters = *counters;
        }
    }

    fn advance(&mut self) {
        // A hostile seq of u64::MAX can bring the mark to the top: it stops there.
        while let Some(next) = self.high_water.checked_add(1) {
            if self.above.first() != Some(&next) {
                break;
            }
            self.above.pop_first();
            self.high_water = next;
        }
    }

    /// Seqs remembered above the high-water mark: this session's share of dedup memory.
    pub fn held(&self) -> usize {
        self.above.len()
    }

    /// Loss accounting: what the session says it issued versus what arrived.
    pub fn reconcile(&self) -> Reconciliation {
        let c = &self.counters;
        let by_reason = Drops {
            overflow: c.dropped_overflow,
            rejected: c.dropped_rejected,
            too_large: c.dropped_too_large,
            retries_exhausted: c.dropped_retries_exhausted,
            purged: c.dropped_purged,
            store_corrupt: c.dropped_store_error,
            journal_lost: c.dropped_journal_lost,
        };
        let dropped = by_reason.total();
        let issued = c
            .last_seq
            .max(self.high_water)
            .max(self.above.last().copied().unwrap_or(0));
        Reconciliation {
            recorded: c.recorded,
            sampled_out: c.sampled_out,
            deduped: c.deduped,
            issued,
            delivered: self.delivered,
            rejected: self.rejected,
            duplicates: self.duplicates,
            late: self.late,
            dropped,
            dropped_by_reason: by_reason,
            // Counters come off the wire: a hostile sum saturates rather than panics.
            missing: issued.saturating_sub(self.delivered.saturating_add(dropped)),
        }
    }
}

/// A session's loss accounting at the collector.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Reconciliation {
    pub recorded: u64,
    pub sampled_out: u64,
    pub deduped: u64,
    /// Highest seq the session reported or sent.
    pub issued: u64,
    pub delivered: u64,
    /// Delivered but refused by the contract.
    pub rejected: u64,
    pub duplicates: u64,
    pub late: u64,
    /// Dropped on the device (sum of the reasons below).
    pub dropped: u64,
    /// Dropped on the device, by the counters' typed reasons.
    pub dropped_by_reason: Drops,
    /// Issued, neither delivered nor explained by a drop counter: lost or not here yet.
    pub missing: u64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_seq_counts_once_however_often_it_arrives() {
        let mut s = SessionState::default();
        for seq in [1, 2, 2, 3, 1, 3] {
            s.arrive(seq);
        }
        assert_eq!((s.delivered, s.duplicates), (3, 3));
    }

    #[test]
    fn a_gap_filled_later_counts_as_late_and_memory_shrinks_back() {
        let mut s = SessionState::default();
        for seq in [1, 2, 5, 6, 3, 4] {
            assert_eq!(s.arrive(seq), Arrival::New);
        }
        assert_eq!(s.late, 2);
        assert_eq!(s.high_water, 6);
        assert!(s.above.is_empty());
        assert_eq!(s.arrive(4), Arrival::Duplicate);
    }

    #[test]
    fn memory_is_bounded_when_a_gap_never_closes() {
        let mut s = SessionState::default();
        s.arrive(1);
        for seq in 3..(DEDUP_WINDOW as u64 + 10) {
            s.arrive(seq);
        }
        assert!(s.above.len() <= DEDUP_WINDOW);
        assert_eq!(s.given_up, 1, "seq 2 was given up");
        assert_eq!(
            s.arrive(5),
            Arrival::Duplicate,
            "still exact above the mark"
        );
    }

    #[test]
    fn reconciliation_separates_dropped_from_missing() {
        let mut s = SessionState::default();
        for seq in [1, 2, 4] {
            s.arrive(seq);
        }
        s.observe_counters(&Counters {
            recorded: 8,
            sampled_out: 1,
            deduped: 1,
            last_seq: 6,
            dropped_rejected: 1,
            ..Counters::default()
        });
        let r = s.reconcile();
        assert_eq!((r.issued, r.delivered, r.dropped, r.missing), (6, 3, 1, 2));
        assert_eq!(r.dropped_by_reason.rejected, 1);
    }

    #[test]
    fn hostile_seqs_and_counters_saturate_instead_of_panicking() {
        let mut s = SessionState::default();
        assert_eq!(s.arrive(u64::MAX), Arrival::New);
        assert_eq!(s.arrive(u64::MAX), Arrival::Duplicate);
        s.observe_counters(&Counters {
            last_seq: u64::MAX,
            dropped_overflow: u64::MAX,
            dropped_rejected: 1,
            ..Counters::default()
        });
        let r = s.reconcile();
        assert_eq!((r.issued, r.dropped, r.missing), (u64::MAX, u64::MAX, 0));
    }

    #[test]
    fn older_counters_never_replace_newer_ones() {
        let mut s = SessionState::default();
        s.observe_counters(&Counters {
            last_seq: 10,
            recorded: 10,
            ..Counters::default()
        });
        s.observe_counters(&Counters {
            last_seq: 4,
            recorded: 4,
            ..Counters::default()
        });
        assert_eq!(s.counters.last_seq, 10);
    }
}
