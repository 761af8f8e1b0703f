//! Loss accounting. Per session: recorded = sampled out + deduped + issued a seq, and
//! every seq issued is delivered, dropped for a typed reason, or still pending. The
//! counters are cumulative and ride in every batch, so the backend reconciles even when a
//! batch is lost; "silently lost" has no counter because it cannot happen.

use crate::contract::Rule;
use crate::proto;

/// Why an impression that had a seq will never be delivered.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DropReason {
    /// The byte-bounded queue was full; the oldest batch made room.
    Overflow,
    /// The collector refused the batch with a permanent 4xx.
    Rejected,
    /// A single impression was larger than the collector accepts (413 on a batch of one).
    TooLarge,
    /// The retry budget ran out.
    RetriesExhausted,
    /// The user opted out and queued data was purged.
    Purged,
    /// A stored batch could not be read back (checksum failure).
    StoreCorrupt,
    /// Seqs possibly issued before a crash whose journal records never became durable.
    JournalLost,
}

/// Counters of impressions dropped after they were issued a seq, by reason.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Drops {
    pub overflow: u64,
    pub rejected: u64,
    pub too_large: u64,
    pub retries_exhausted: u64,
    pub purged: u64,
    pub store_corrupt: u64,
    pub journal_lost: u64,
}

impl core::ops::AddAssign for Drops {
    fn add_assign(&mut self, d: Drops) {
        self.overflow += d.overflow;
        self.rejected += d.rejected;
        self.too_large += d.too_large;
        self.retries_exhausted += d.retries_exhausted;
        self.purged += d.purged;
        self.store_corrupt += d.store_corrupt;
        self.journal_lost += d.journal_lost;
    }
}

impl Drops {
    /// Adds `n` under `reason`.
    pub fn add(&mut self, reason: DropReason, n: u64) {
        let slot = match reason {
            DropReason::Overflow => &mut self.overflow,
            DropReason::Rejected => &mut self.rejected,
            DropReason::TooLarge => &mut self.too_large,
            DropReason::RetriesExhausted => &mut self.retries_exhausted,
            DropReason::Purged => &mut self.purged,
            DropReason::StoreCorrupt => &mut self.store_corrupt,
            DropReason::JournalLost => &mut self.journal_lost,
        };
        *slot += n;
    }

    /// All drops (saturating: the collector sums counters received from the wire).
    pub fn total(&self) -> u64 {
        [
            self.rejected,
            self.too_large,
            self.retries_exhausted,
            self.purged,
            self.store_corrupt,
            self.journal_lost,
        ]
        .into_iter()
        .fold(self.overflow, u64::saturating_add)
    }
}

/// The session's cumulative counters plus the logger's own operational figures.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Stats {
    /// Impressions that passed validation.
    pub recorded: u64,
    pub sampled_out: u64,
    pub deduped: u64,
    /// Seqs issued; the last seq of the session.
    pub issued: u64,
    /// Impressions acknowledged by the collector (2xx).
    pub delivered: u64,
    pub dropped: Drops,
    /// Input refused by the contract, in total and per rule (indexed by [`Rule::index`]).
    pub invalid: u64,
    pub invalid_by_rule: [u64; Rule::ALL.len()],
    /// Upload attempts handed to the host, and how many of them were retries.
    pub uploads: u64,
    pub retries: u64,
    /// Compressed bytes of acknowledged uploads.
    pub bytes_delivered: u64,
    /// Store operations that failed; the data stayed in memory.
    pub store_errors: u64,
    /// Stored records skipped because they failed their checksum.
    pub corrupt_records: u64,
}

impl Stats {
    /// Impressions issued a seq and neither delivered nor dropped yet.
    pub fn pending(&self) -> u64 {
        self.issued
            .saturating_sub(self.delivered)
            .saturating_sub(self.dropped.total())
    }

    /// The loss invariant: every recorded impression is sampled out, deduped, delivered,
    /// dropped by a reason, or pending.
    pub fn balanced(&self) -> bool {
        self.recorded == self.sampled_out + self.deduped + self.issued
            && self.issued >= self.delivered + self.dropped.total()
    }

    /// Counts one refused input.
    pub fn count_invalid(&mut self, rule: Rule) {
        self.invalid += 1;
        self.invalid_by_rule[rule.index()] += 1;
    }

    /// The wire form that rides in every batch.
    pub fn to_proto(&self) -> proto::Counters {
        proto::Counters {
            recorded: self.recorded,
            sampled_out: self.sampled_out,
            deduped: self.deduped,
            last_seq: self.issued,
            invalid: self.invalid,
            dropped_overflow: self.dropped.overflow,
            dropped_rejected: self.dropped.rejected,
            dropped_too_large: self.dropped.too_large,
            dropped_retries_exhausted: self.dropped.retries_exhausted,
            dropped_purged: self.dropped.purged,
            dropped_store_error: self.dropped.store_corrupt,
            dropped_journal_lost: self.dropped.journal_lost,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pending_is_what_is_neither_delivered_nor_dropped() {
        let mut s = Stats {
            recorded: 10,
            sampled_out: 2,
            deduped: 1,
            issued: 7,
            delivered: 4,
            ..Stats::default()
        };
        s.dropped.add(DropReason::Overflow, 2);
        assert_eq!(s.pending(), 1);
        assert!(s.balanced());
        s.recorded += 1;
        assert!(!s.balanced());
    }

    #[test]
    fn drops_add_up_reason_by_reason() {
        let mut total = Drops::default();
        let mut one = Drops::default();
        one.add(DropReason::Rejected, 2);
        one.add(DropReason::Overflow, 1);
        total += one;
        total += one;
        assert_eq!((total.rejected, total.overflow, total.total()), (4, 2, 6));
        let hostile = Drops {
            overflow: u64::MAX,
            purged: 5,
            ..Drops::default()
        };
        assert_eq!(
            hostile.total(),
            u64::MAX,
            "saturates instead of overflowing"
        );
    }

    #[test]
    fn invalid_input_is_counted_per_rule() {
        let mut s = Stats::default();
        s.count_invalid(Rule::NotOnPage);
        s.count_invalid(Rule::NotOnPage);
        s.count_invalid(Rule::ItemId);
        assert_eq!(s.invalid, 3);
        assert_eq!(s.invalid_by_rule[Rule::NotOnPage.index()], 2);
        assert_eq!(s.invalid_by_rule[Rule::ItemId.index()], 1);
    }
}
