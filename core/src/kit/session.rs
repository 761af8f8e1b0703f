//! Per-session delivery state: exact dedup by seq with bounded memory (a high-water mark
//! below which every seq has arrived, plus a window of seqs seen above it), a content
//! digest per remembered seq so that a seq arriving again with other content is a
//! conflict (two devices or boots sharing a session id) rather than a retry, and loss
//! reconciliation from the cumulative counters that ride in every batch.

use alloc::collections::{BTreeMap, VecDeque};

use crate::contract::MAX_SEQ;
use crate::proto::Counters;
use crate::stats::Drops;

/// Seqs remembered above the high-water mark. A session whose gap stays open while this
/// many later seqs arrive has its oldest gap declared missing, so memory stays bounded.
pub const DEDUP_WINDOW: usize = 65_536;

/// Digests kept of the seqs just below the high-water mark (8 bytes each): retries resend
/// what the device still queues, and the default queue (256 KiB at about 23 bytes per
/// impression) holds about 11,000 impressions. Older seqs still dedup, by the mark alone.
pub const RECENT_DIGESTS: usize = 16_384;

/// The rule name of a bad row whose (session, seq) had already arrived with other content.
pub const SEQ_CONFLICT: &str = "seq_conflict";

/// What the collector knows of one session. Serialisable, so the collector can snapshot
/// it instead of rebuilding it from its whole output at every start.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct SessionState {
    /// Every seq in 1..=high_water has arrived (or was given up as missing).
    high_water: u64,
    /// Seqs above `high_water` that arrived, with their content digests.
    above: BTreeMap<u64, u64>,
    /// Digests of the seqs `high_water - recent.len() + 1 ..= high_water`, oldest first;
    /// 0 for a seq given up (never arrived).
    recent: VecDeque<u64>,
    /// Distinct impressions that arrived (good or bad).
    pub delivered: u64,
    /// Of those, refused by the contract (written to bad rows).
    pub rejected: u64,
    /// Receipts of a seq already accepted, with the same content (or content no longer
    /// remembered).
    pub duplicates: u64,
    /// Receipts of a seq already accepted with other content: another device or boot
    /// uses this session id. Written to bad rows as [`SEQ_CONFLICT`], never absorbed.
    pub conflicts: u64,
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
    /// A retry: the seq arrived before with the same content (or content forgotten).
    Duplicate,
    /// The seq arrived before with other content.
    Conflict,
    /// A seq of 0 or above [`MAX_SEQ`] (the contract's `SeqOutOfRange`): it identifies no
    /// impression, so it is neither remembered nor counted. The mark starts at 0, so taking
    /// seq 0 in would read it as a retry; a seq near the top would carry the mark there,
    /// after which every real seq would.
    OutOfRange,
}

impl SessionState {
    /// Records the arrival of `seq` whose content digests to `digest` (see
    /// the collector's row digest) and says whether it is new, a retry or a conflict.
    pub fn arrive(&mut self, seq: u64, digest: u64) -> Arrival {
        if seq == 0 || seq > MAX_SEQ {
            return Arrival::OutOfRange;
        }
        let known = if seq <= self.high_water {
            Some(self.recent_digest(seq))
        } else {
            self.above.get(&seq).map(|&d| Some(d))
        };
        if let Some(known) = known {
            return match known {
                Some(d) if d != digest => {
                    self.conflicts += 1;
                    Arrival::Conflict
                }
                _ => {
                    self.duplicates += 1;
                    Arrival::Duplicate
                }
            };
        }
        if self
            .above
            .last_key_value()
            .is_some_and(|(&max, _)| seq < max)
        {
            self.late += 1;
        }
        self.above.insert(seq, digest);
        self.delivered += 1;
        self.advance();
        while self.above.len() > DEDUP_WINDOW {
            // Give up on the oldest gap: everything below the oldest remembered seq.
            if let Some((&oldest, _)) = self.above.first_key_value() {
                // `oldest` is above the mark, so neither subtraction wraps.
                let skipped = oldest - self.high_water - 1;
                self.given_up = self.given_up.saturating_add(skipped);
                self.pass_unknown(skipped);
                self.high_water = oldest - 1;
                self.advance();
            }
        }
        Arrival::New
    }

    /// The digest of a seq at or below the mark, if still remembered.
    fn recent_digest(&self, seq: u64) -> Option<u64> {
        let back = usize::try_from(self.high_water - seq).ok()?;
        let i = self.recent.len().checked_sub(back + 1)?;
        self.recent.get(i).copied().filter(|&d| d != 0)
    }

    /// The mark passes `n` seqs that never arrived.
    fn pass_unknown(&mut self, n: u64) {
        if n >= RECENT_DIGESTS as u64 {
            self.recent.clear();
            return;
        }
        for _ in 0..n {
            self.pass(0);
        }
    }

    /// The mark passes one seq with `digest`.
    fn pass(&mut self, digest: u64) {
        self.recent.push_back(digest);
        if self.recent.len() > RECENT_DIGESTS {
            self.recent.pop_front();
        }
    }

    /// Digests kept below the mark: this session's share of digest memory.
    pub fn recent_digests(&self) -> usize {
        self.recent.len()
    }

    /// Forgets the digests below the mark (memory pressure): those seqs still dedup, but a
    /// conflict on them can no longer be told from a retry.
    pub fn forget_recent_digests(&mut self) {
        self.recent = VecDeque::new();
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
            match self.above.first_key_value() {
                Some((&seq, &digest)) if seq == next => {
                    self.above.pop_first();
                    self.pass(digest);
                    self.high_water = next;
                }
                _ => break,
            }
        }
    }

    /// Seqs remembered above the high-water mark: this session's share of dedup memory.
    pub fn held(&self) -> usize {
        self.above.len()
    }

    /// Loss accounting: what the session says it issued versus what arrived.
    pub fn reconcile(&self) -> Reconciliation {
        let c = &self.counters;
        let by_reason = Drops::from_counters(c);
        let dropped = by_reason.total();
        let issued = c
            .last_seq
            .max(self.high_water)
            .max(self.above.last_key_value().map_or(0, |(&seq, _)| seq));
        Reconciliation {
            recorded: c.recorded,
            invalid: c.invalid,
            sampled_out: c.sampled_out,
            deduped: c.deduped,
            issued,
            delivered: self.delivered,
            rejected: self.rejected,
            duplicates: self.duplicates,
            conflicts: self.conflicts,
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
    /// Inputs the device refused by the contract (never issued a seq).
    #[serde(default)]
    pub invalid: u64,
    pub sampled_out: u64,
    pub deduped: u64,
    /// Highest seq the session reported or sent.
    pub issued: u64,
    pub delivered: u64,
    /// Delivered but refused by the contract.
    pub rejected: u64,
    pub duplicates: u64,
    /// Receipts of a seq with other content than its first: a shared session id.
    #[serde(default)]
    pub conflicts: u64,
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

    /// The digest of the content a correct device sends as `seq`.
    fn content(seq: u64) -> u64 {
        seq.wrapping_mul(31).wrapping_add(7).max(1)
    }

    #[test]
    fn a_seq_again_with_other_content_is_a_conflict_not_a_retry() {
        let mut s = SessionState::default();
        // Seq 3 stays above the mark (seq 2 is missing); seq 1 falls below it.
        for seq in [1, 3] {
            assert_eq!(s.arrive(seq, content(seq)), Arrival::New);
        }
        assert_eq!(s.high_water, 1);
        for seq in [1, 3] {
            assert_eq!(s.arrive(seq, content(seq)), Arrival::Duplicate, "{seq}");
            assert_eq!(s.arrive(seq, content(seq) + 1), Arrival::Conflict, "{seq}");
        }
        assert_eq!((s.delivered, s.duplicates, s.conflicts), (2, 2, 2));
        let r = s.reconcile();
        assert_eq!((r.delivered, r.duplicates, r.conflicts), (2, 2, 2));
        // The first content stays the reference: a retry of it is still a retry.
        assert_eq!(s.arrive(1, content(1)), Arrival::Duplicate);
    }

    #[test]
    fn digests_below_the_mark_are_bounded_and_forgotten_oldest_first() {
        let mut s = SessionState::default();
        let n = RECENT_DIGESTS as u64 + 100;
        for seq in 1..=n {
            s.arrive(seq, content(seq));
        }
        assert_eq!(s.recent_digests(), RECENT_DIGESTS);
        assert!(s.above.is_empty());
        let oldest_kept = n - RECENT_DIGESTS as u64 + 1;
        assert_eq!(s.arrive(oldest_kept, 0xdead), Arrival::Conflict);
        // Older seqs still dedup by the mark; their content can no longer be compared.
        assert_eq!(s.arrive(oldest_kept - 1, 0xdead), Arrival::Duplicate);
        s.forget_recent_digests();
        assert_eq!(s.recent_digests(), 0);
        assert_eq!(s.arrive(n, 0xdead), Arrival::Duplicate);
    }

    #[test]
    fn a_given_up_seq_has_no_digest_to_conflict_with() {
        let mut s = SessionState::default();
        s.arrive(1, content(1));
        for seq in 3..(DEDUP_WINDOW as u64 + 10) {
            s.arrive(seq, content(seq));
        }
        assert_eq!(s.given_up, 1);
        assert_eq!(s.arrive(2, content(2) + 1), Arrival::Duplicate);
        let last = DEDUP_WINDOW as u64 + 9;
        assert_eq!(s.arrive(last, content(last) + 1), Arrival::Conflict);
        assert!(s.recent_digests() <= RECENT_DIGESTS);
    }

    #[test]
    fn each_seq_counts_once_however_often_it_arrives() {
        let mut s = SessionState::default();
        for seq in [1, 2, 2, 3, 1, 3] {
            s.arrive(seq, content(seq));
        }
        assert_eq!((s.delivered, s.duplicates), (3, 3));
    }

    #[test]
    fn a_gap_filled_later_counts_as_late_and_memory_shrinks_back() {
        let mut s = SessionState::default();
        for seq in [1, 2, 5, 6, 3, 4] {
            assert_eq!(s.arrive(seq, content(seq)), Arrival::New);
        }
        assert_eq!(s.late, 2);
        assert_eq!(s.high_water, 6);
        assert!(s.above.is_empty());
        assert_eq!(s.arrive(4, content(4)), Arrival::Duplicate);
    }

    #[test]
    fn memory_is_bounded_when_a_gap_never_closes() {
        let mut s = SessionState::default();
        s.arrive(1, content(1));
        for seq in 3..(DEDUP_WINDOW as u64 + 10) {
            s.arrive(seq, content(seq));
        }
        assert!(s.above.len() <= DEDUP_WINDOW);
        assert_eq!(s.given_up, 1, "seq 2 was given up");
        assert_eq!(
            s.arrive(5, content(5)),
            Arrival::Duplicate,
            "still exact above the mark"
        );
    }

    #[test]
    fn reconciliation_separates_dropped_from_missing() {
        let mut s = SessionState::default();
        for seq in [1, 2, 4] {
            s.arrive(seq, content(seq));
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
    fn seqs_lost_with_the_journal_in_a_crash_are_dropped_not_missing() {
        let mut s = SessionState::default();
        for seq in [1, 2, 3] {
            s.arrive(seq, content(seq));
        }
        s.observe_counters(&Counters {
            recorded: 5,
            last_seq: 5,
            dropped_journal_lost: 2,
            ..Counters::default()
        });
        let r = s.reconcile();
        assert_eq!((r.issued, r.delivered, r.dropped, r.missing), (5, 3, 2, 0));
        assert_eq!(r.dropped_by_reason.journal_lost, 2);
        let json = serde_json::to_value(r).unwrap();
        assert_eq!(json["dropped_by_reason"]["journal_lost"], 2);
    }

    #[test]
    fn seq_0_and_seqs_above_the_maximum_are_out_of_range_and_change_nothing() {
        let mut s = SessionState::default();
        for seq in [0, MAX_SEQ + 1, u64::MAX] {
            assert_eq!(s.arrive(seq, content(seq)), Arrival::OutOfRange, "{seq}");
            assert_eq!(
                s.arrive(seq, content(seq)),
                Arrival::OutOfRange,
                "{seq} again"
            );
        }
        assert_eq!(s.reconcile(), SessionState::default().reconcile());
        assert_eq!(s.arrive(1, content(1)), Arrival::New);
        assert_eq!(s.arrive(MAX_SEQ, content(MAX_SEQ)), Arrival::New);
        assert_eq!(
            s.arrive(2, content(2)),
            Arrival::New,
            "the mark was not carried"
        );
    }

    #[test]
    fn a_full_window_near_the_maximum_seq_gives_up_without_wrapping() {
        let mut s = SessionState::default();
        let top = MAX_SEQ - DEDUP_WINDOW as u64;
        for seq in top..=MAX_SEQ {
            s.arrive(seq, content(seq));
        }
        assert_eq!(s.given_up, top - 1);
        assert_eq!(s.high_water, MAX_SEQ);
        assert_eq!(s.arrive(MAX_SEQ, content(MAX_SEQ)), Arrival::Duplicate);
    }

    #[test]
    fn hostile_counters_saturate_instead_of_panicking() {
        let mut s = SessionState::default();
        s.observe_counters(&Counters {
            last_seq: u64::MAX,
            dropped_overflow: u64::MAX,
            dropped_rejected: 1,
            ..Counters::default()
        });
        let r = s.reconcile();
        assert_eq!((r.issued, r.dropped, r.missing), (u64::MAX, u64::MAX, 0));
        assert_eq!(s.arrive(1, content(1)), Arrival::New);
    }

    #[cfg(feature = "std")]
    #[test]
    fn a_session_serialised_and_read_back_dedups_and_reconciles_as_before() {
        let mut s = SessionState::default();
        for seq in [1, 2, 4, 7] {
            s.arrive(seq, content(seq));
        }
        s.observe_counters(&Counters {
            recorded: 7,
            last_seq: 7,
            ..Counters::default()
        });
        let mut back: SessionState =
            serde_json::from_str(&serde_json::to_string(&s).unwrap()).unwrap();
        assert_eq!(back, s);
        assert_eq!(back.reconcile(), s.reconcile());
        assert_eq!(back.arrive(2, content(2)), Arrival::Duplicate);
        assert_eq!(back.arrive(4, content(4) + 1), Arrival::Conflict);
        assert_eq!(back.arrive(3, content(3)), Arrival::New);
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
