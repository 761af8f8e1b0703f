//! Loss accounting. Per session: recorded = sampled out + deduped + issued a seq, and
//! every seq issued is delivered, dropped for a typed reason, or still pending. The
//! counters are cumulative and ride in every batch, so the backend reconciles even when a
//! batch is lost; "silently lost" has no counter because it cannot happen.

use alloc::vec::Vec;

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

impl DropReason {
    /// Every reason, in order of [`DropReason::code`].
    pub const ALL: [DropReason; 7] = [
        DropReason::Overflow,
        DropReason::Rejected,
        DropReason::TooLarge,
        DropReason::RetriesExhausted,
        DropReason::Purged,
        DropReason::StoreCorrupt,
        DropReason::JournalLost,
    ];

    /// The stable numeric code, as foreign callers index counts (the C ABI's
    /// `dropped_by_reason`). Written out like [`Rule::code`]: a new reason takes the next
    /// unused code, and a code is never reused.
    pub const fn code(self) -> u8 {
        match self {
            DropReason::Overflow => 0,
            DropReason::Rejected => 1,
            DropReason::TooLarge => 2,
            DropReason::RetriesExhausted => 3,
            DropReason::Purged => 4,
            DropReason::StoreCorrupt => 5,
            DropReason::JournalLost => 6,
        }
    }

    /// The reason of `code`; `None` for a code this version does not know.
    pub fn from_code(code: u8) -> Option<DropReason> {
        DropReason::ALL.get(usize::from(code)).copied()
    }

    /// The stable snake_case name: the field name in [`Drops`] (JSON, `/sessions`).
    pub fn name(self) -> &'static str {
        match self {
            DropReason::Overflow => "overflow",
            DropReason::Rejected => "rejected",
            DropReason::TooLarge => "too_large",
            DropReason::RetriesExhausted => "retries_exhausted",
            DropReason::Purged => "purged",
            DropReason::StoreCorrupt => "store_corrupt",
            DropReason::JournalLost => "journal_lost",
        }
    }
}

// `ALL[code]` is the reason of `code`, which `from_code` relies on.
const _: () = {
    let mut i = 0;
    while i < DropReason::ALL.len() {
        assert!(DropReason::ALL[i].code() as usize == i);
        i += 1;
    }
};

impl core::fmt::Display for DropReason {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(self.name())
    }
}

/// Counters of impressions dropped after they were issued a seq, by reason.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
// JSON written before a reason existed reads it as zero.
#[serde(default)]
pub struct Drops {
    pub overflow: u64,
    pub rejected: u64,
    pub too_large: u64,
    pub retries_exhausted: u64,
    pub purged: u64,
    pub store_corrupt: u64,
    /// Seqs that may have been issued before a crash whose journal records never became
    /// durable; counted at the next start.
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

    /// The count under `reason`.
    pub fn get(&self, reason: DropReason) -> u64 {
        match reason {
            DropReason::Overflow => self.overflow,
            DropReason::Rejected => self.rejected,
            DropReason::TooLarge => self.too_large,
            DropReason::RetriesExhausted => self.retries_exhausted,
            DropReason::Purged => self.purged,
            DropReason::StoreCorrupt => self.store_corrupt,
            DropReason::JournalLost => self.journal_lost,
        }
    }

    /// Every reason with its count.
    pub fn iter(&self) -> impl Iterator<Item = (DropReason, u64)> + '_ {
        DropReason::ALL.into_iter().map(|r| (r, self.get(r)))
    }

    /// The drop counters of a batch's cumulative counters: the one place the wire's
    /// fields map to reasons, for everyone who reads them (the collector's reconciliation).
    pub fn from_counters(c: &proto::Counters) -> Drops {
        Drops {
            overflow: c.dropped_overflow,
            rejected: c.dropped_rejected,
            too_large: c.dropped_too_large,
            retries_exhausted: c.dropped_retries_exhausted,
            purged: c.dropped_purged,
            store_corrupt: c.dropped_store_error,
            journal_lost: c.dropped_journal_lost,
        }
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

/// A counter per contract [`Rule`], one named field each: in JSON the names are the rules'
/// stable names, and in storage ([`RuleCounts::to_stored`]) the index is the pinned
/// [`Rule::code`], so neither depends on the order the rules are declared in.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(default)]
pub struct RuleCounts {
    pub item_id: u64,
    pub artwork_id: u64,
    pub page_name: u64,
    pub request_id: u64,
    pub position: u64,
    pub fraction: u64,
    pub below_threshold: u64,
    pub too_short: u64,
    pub too_long: u64,
    pub outside_page_view: u64,
    pub not_on_page: u64,
    pub wrong_position: u64,
    pub duplicate_exposure: u64,
    pub unknown_page_view: u64,
    pub seq_not_increasing: u64,
    pub counters_inconsistent: u64,
    pub page_view_full: u64,
    pub focus_exceeds_visible: u64,
    pub seq_out_of_range: u64,
    pub time_outside_batch: u64,
}

impl RuleCounts {
    fn field(&self, rule: Rule) -> &u64 {
        match rule {
            Rule::ItemId => &self.item_id,
            Rule::ArtworkId => &self.artwork_id,
            Rule::PageName => &self.page_name,
            Rule::RequestId => &self.request_id,
            Rule::Position => &self.position,
            Rule::Fraction => &self.fraction,
            Rule::BelowThreshold => &self.below_threshold,
            Rule::TooShort => &self.too_short,
            Rule::TooLong => &self.too_long,
            Rule::OutsidePageView => &self.outside_page_view,
            Rule::NotOnPage => &self.not_on_page,
            Rule::WrongPosition => &self.wrong_position,
            Rule::DuplicateExposure => &self.duplicate_exposure,
            Rule::UnknownPageView => &self.unknown_page_view,
            Rule::SeqNotIncreasing => &self.seq_not_increasing,
            Rule::CountersInconsistent => &self.counters_inconsistent,
            Rule::PageViewFull => &self.page_view_full,
            Rule::FocusExceedsVisible => &self.focus_exceeds_visible,
            Rule::SeqOutOfRange => &self.seq_out_of_range,
            Rule::TimeOutsideBatch => &self.time_outside_batch,
        }
    }

    fn slot(&mut self, rule: Rule) -> &mut u64 {
        match rule {
            Rule::ItemId => &mut self.item_id,
            Rule::ArtworkId => &mut self.artwork_id,
            Rule::PageName => &mut self.page_name,
            Rule::RequestId => &mut self.request_id,
            Rule::Position => &mut self.position,
            Rule::Fraction => &mut self.fraction,
            Rule::BelowThreshold => &mut self.below_threshold,
            Rule::TooShort => &mut self.too_short,
            Rule::TooLong => &mut self.too_long,
            Rule::OutsidePageView => &mut self.outside_page_view,
            Rule::NotOnPage => &mut self.not_on_page,
            Rule::WrongPosition => &mut self.wrong_position,
            Rule::DuplicateExposure => &mut self.duplicate_exposure,
            Rule::UnknownPageView => &mut self.unknown_page_view,
            Rule::SeqNotIncreasing => &mut self.seq_not_increasing,
            Rule::CountersInconsistent => &mut self.counters_inconsistent,
            Rule::PageViewFull => &mut self.page_view_full,
            Rule::FocusExceedsVisible => &mut self.focus_exceeds_visible,
            Rule::SeqOutOfRange => &mut self.seq_out_of_range,
            Rule::TimeOutsideBatch => &mut self.time_outside_batch,
        }
    }

    /// The count of `rule`.
    pub fn get(&self, rule: Rule) -> u64 {
        *self.field(rule)
    }

    /// Adds `n` under `rule` (saturating: stored counts are read back from the host).
    pub fn add(&mut self, rule: Rule, n: u64) {
        let slot = self.slot(rule);
        *slot = slot.saturating_add(n);
    }

    /// Every rule with its count, in order of [`Rule::code`].
    pub fn iter(&self) -> impl Iterator<Item = (Rule, u64)> + '_ {
        Rule::ALL.into_iter().map(|r| (r, self.get(r)))
    }

    /// The stored form: entry `i` is the count of the rule whose code is `i`.
    pub fn to_stored(&self) -> Vec<u64> {
        self.iter().map(|(_, n)| n).collect()
    }

    /// Reads [`RuleCounts::to_stored`] back. Entries of codes this version does not know
    /// (a newer version wrote them) are ignored; missing ones read as zero.
    pub fn from_stored(stored: &[u64]) -> Self {
        let mut counts = RuleCounts::default();
        for (code, &n) in stored.iter().enumerate() {
            if let Some(rule) = u8::try_from(code).ok().and_then(Rule::from_code) {
                *counts.slot(rule) = n;
            }
        }
        counts
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
    /// Input refused by the contract, in total and per rule.
    pub invalid: u64,
    pub invalid_by_rule: RuleCounts,
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
    /// dropped by a reason, or pending. Counters whose sums overflow are not balanced (stored
    /// ones are read back from the host).
    pub fn balanced(&self) -> bool {
        let accounted = self
            .sampled_out
            .checked_add(self.deduped)
            .and_then(|skipped| skipped.checked_add(self.issued));
        let settled = self.delivered.checked_add(self.dropped.total());
        accounted == Some(self.recorded) && settled.is_some_and(|s| self.issued >= s)
    }

    /// Counts one refused input.
    pub fn count_invalid(&mut self, rule: Rule) {
        self.invalid = self.invalid.saturating_add(1);
        self.invalid_by_rule.add(rule, 1);
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
    fn journal_lost_drops_count_in_the_total_and_ride_in_every_batch() {
        let mut s = Stats {
            recorded: 10,
            issued: 10,
            delivered: 6,
            ..Stats::default()
        };
        s.dropped.add(DropReason::JournalLost, 3);
        s.dropped.add(DropReason::Overflow, 1);
        assert_eq!((s.dropped.journal_lost, s.dropped.total()), (3, 4));
        assert_eq!(s.pending(), 0);
        let mut sum = Drops::default();
        sum += s.dropped;
        sum += s.dropped;
        assert_eq!(sum.get(DropReason::JournalLost), 6);
        let wire = s.to_proto();
        assert_eq!(wire.dropped_journal_lost, 3);
        assert_eq!(Drops::from_counters(&wire), s.dropped);
    }

    #[test]
    fn every_drop_reason_maps_to_its_own_counter_and_wire_field() {
        let mut d = Drops::default();
        for (i, reason) in DropReason::ALL.into_iter().enumerate() {
            d.add(reason, 1 << i);
        }
        for (i, (reason, n)) in d.iter().enumerate() {
            assert_eq!(n, 1 << i, "{reason}");
        }
        let wire = Stats {
            dropped: d,
            ..Stats::default()
        }
        .to_proto();
        assert_eq!(Drops::from_counters(&wire), d);
    }

    #[cfg(feature = "std")]
    #[test]
    fn drop_reason_names_are_the_stable_json_field_names() {
        let names: Vec<&str> = DropReason::ALL.iter().map(|r| r.name()).collect();
        assert_eq!(
            names,
            [
                "overflow",
                "rejected",
                "too_large",
                "retries_exhausted",
                "purged",
                "store_corrupt",
                "journal_lost"
            ]
        );
        let mut d = Drops::default();
        for (i, reason) in DropReason::ALL.into_iter().enumerate() {
            d.add(reason, i as u64 + 1);
        }
        let json = serde_json::to_value(d).unwrap();
        assert_eq!(json.as_object().unwrap().len(), DropReason::ALL.len());
        for reason in DropReason::ALL {
            assert_eq!(json[reason.name()], d.get(reason), "{reason}");
        }
        // Written before journal_lost existed.
        let old: Drops = serde_json::from_str(r#"{"overflow":2}"#).unwrap();
        assert_eq!((old.overflow, old.journal_lost), (2, 0));
    }

    #[test]
    fn invalid_input_is_counted_per_rule() {
        let mut s = Stats::default();
        s.count_invalid(Rule::NotOnPage);
        s.count_invalid(Rule::NotOnPage);
        s.count_invalid(Rule::ItemId);
        assert_eq!(s.invalid, 3);
        assert_eq!(s.invalid_by_rule.get(Rule::NotOnPage), 2);
        assert_eq!(s.invalid_by_rule.get(Rule::ItemId), 1);
        assert_eq!(s.invalid_by_rule.not_on_page, 2);
        let nonzero: Vec<(Rule, u64)> = s.invalid_by_rule.iter().filter(|r| r.1 > 0).collect();
        assert_eq!(nonzero, [(Rule::ItemId, 1), (Rule::NotOnPage, 2)]);
    }

    /// Counts with a distinct value per rule: `code + 1`.
    fn distinct_counts() -> RuleCounts {
        let mut counts = RuleCounts::default();
        for rule in Rule::ALL {
            counts.add(rule, u64::from(rule.code()) + 1);
        }
        counts
    }

    #[test]
    fn stored_rule_counts_are_indexed_by_the_pinned_code() {
        let counts = distinct_counts();
        let stored = counts.to_stored();
        assert_eq!(stored, (1..=Rule::ALL.len() as u64).collect::<Vec<_>>());
        assert_eq!(
            stored[12], counts.duplicate_exposure,
            "DuplicateExposure is 12"
        );
        assert_eq!(RuleCounts::from_stored(&stored), counts);
        // Shorter (an older version's list) and longer (a newer one's) lists both read.
        assert_eq!(RuleCounts::from_stored(&stored[..1]).item_id, 1);
        assert_eq!(RuleCounts::from_stored(&stored[..1]).page_view_full, 0);
        let mut newer = stored.clone();
        newer.extend([99, 99]);
        assert_eq!(RuleCounts::from_stored(&newer), counts);
    }

    #[test]
    fn rule_counts_add_saturating() {
        let mut counts = RuleCounts::from_stored(&[u64::MAX]);
        counts.add(Rule::ItemId, 1);
        assert_eq!(counts.item_id, u64::MAX);
    }

    #[cfg(feature = "std")]
    #[test]
    fn rule_counts_serialise_under_the_rules_stable_names() {
        let counts = distinct_counts();
        let json = serde_json::to_value(counts).unwrap();
        let object = json.as_object().unwrap();
        assert_eq!(object.len(), Rule::ALL.len());
        for rule in Rule::ALL {
            assert_eq!(object[rule.name()], counts.get(rule), "{rule}");
        }
        let back: RuleCounts = serde_json::from_value(json).unwrap();
        assert_eq!(back, counts);
        let partial: RuleCounts = serde_json::from_str(r#"{"too_short":3}"#).unwrap();
        assert_eq!(partial.get(Rule::TooShort), 3);
    }
}
