//! The data contract: the versioned rules an impression must satisfy. It is data (loadable
//! from JSON), so the same rules run on the device at record time, in producers' contract
//! tests and in the collector. Schema checks are the floor; the point is the semantic
//! checks: an item that was not on the page, a rank that does not match the layout, a
//! duplicate exposure, a duration longer than the page view, counters that do not add up.

use alloc::collections::BTreeSet;
use alloc::string::String;
use alloc::vec::Vec;
use core::fmt;

use crate::proto;
use crate::wire::{self, DecodedImpression};

/// Version of the rules below; travels in every batch.
pub const CONTRACT_VERSION: u32 = 1;

/// Ids longer than this are almost certainly a bug (a URL or JSON pasted in), and cost bytes.
pub const DEFAULT_MAX_ID_LEN: u32 = 64;

/// Beyond this an impression is a stuck timer rather than a person looking (4 hours).
pub const DEFAULT_MAX_VISIBLE_MS: u32 = 4 * 60 * 60 * 1000;

/// Lists and grids longer than this are not laid out by any client we serve.
pub const DEFAULT_MAX_POSITION: u32 = 10_000;

/// The rules, as data.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Contract {
    /// The version these rules are published as.
    pub version: u32,
    /// An impression needs at least this percentage of the item visible...
    pub min_visible_pct: u32,
    /// ...continuously for at least this long.
    pub min_visible_ms: u32,
    /// Upper bound on a plausible visible duration.
    pub max_visible_ms: u32,
    /// Longest item, artwork, page or request id.
    pub max_id_len: u32,
    /// Rows and columns are 0-based and below this.
    pub max_position: u32,
    /// Whether every impression must name its artwork.
    pub require_artwork: bool,
    /// Page names the app may use; empty allows any well-formed name.
    pub pages: Vec<String>,
}

impl Default for Contract {
    fn default() -> Self {
        Contract {
            version: CONTRACT_VERSION,
            min_visible_pct: 50,
            min_visible_ms: 1000,
            max_visible_ms: DEFAULT_MAX_VISIBLE_MS,
            max_id_len: DEFAULT_MAX_ID_LEN,
            max_position: DEFAULT_MAX_POSITION,
            require_artwork: false,
            pages: Vec::new(),
        }
    }
}

/// A broken rule. The names (see [`Rule::name`]) are stable: they appear in counters,
/// bad-row outputs and CI reports.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Rule {
    /// Item id empty, too long or with characters outside `[A-Za-z0-9._:/-]`.
    ItemId,
    /// Artwork id malformed, or missing when the contract requires one.
    ArtworkId,
    /// Page name malformed or not in the contract's list.
    PageName,
    /// Request id malformed.
    RequestId,
    /// Row or column beyond the contract's bound.
    Position,
    /// Visible fraction not a number in 0..=1.
    Fraction,
    /// Maximum visible fraction below the threshold.
    BelowThreshold,
    /// Visible for less than the minimum time.
    TooShort,
    /// Visible for longer than the contract allows.
    TooLong,
    /// Visible (or focused) longer than the page view lasted, or before it started.
    OutsidePageView,
    /// The item is not in the page's declared layout.
    NotOnPage,
    /// The item is in the layout, but at another row or column.
    WrongPosition,
    /// The same item at the same place appears twice in one page view.
    DuplicateExposure,
    /// The page view is unknown or already ended.
    UnknownPageView,
    /// A sequence number did not increase.
    SeqNotIncreasing,
    /// The cumulative counters contradict each other or the sequence numbers.
    CountersInconsistent,
    /// The page view already tracks as many exposures as a page view may have.
    PageViewFull,
}

impl Rule {
    /// Every rule, in order of [`Rule::code`] (so `ALL[code]` is the rule of `code`).
    pub const ALL: [Rule; 17] = [
        Rule::ItemId,
        Rule::ArtworkId,
        Rule::PageName,
        Rule::RequestId,
        Rule::Position,
        Rule::Fraction,
        Rule::BelowThreshold,
        Rule::TooShort,
        Rule::TooLong,
        Rule::OutsidePageView,
        Rule::NotOnPage,
        Rule::WrongPosition,
        Rule::DuplicateExposure,
        Rule::UnknownPageView,
        Rule::SeqNotIncreasing,
        Rule::CountersInconsistent,
        Rule::PageViewFull,
    ];

    /// The stable numeric code, as stored (journal records, per-rule counters in `state`).
    /// Written out, not derived from the declaration order, so reordering or inserting
    /// variants can never relabel stored counts. A new rule takes the next unused code;
    /// a code is never reused.
    pub const fn code(self) -> u8 {
        match self {
            Rule::ItemId => 0,
            Rule::ArtworkId => 1,
            Rule::PageName => 2,
            Rule::RequestId => 3,
            Rule::Position => 4,
            Rule::Fraction => 5,
            Rule::BelowThreshold => 6,
            Rule::TooShort => 7,
            Rule::TooLong => 8,
            Rule::OutsidePageView => 9,
            Rule::NotOnPage => 10,
            Rule::WrongPosition => 11,
            Rule::DuplicateExposure => 12,
            Rule::UnknownPageView => 13,
            Rule::SeqNotIncreasing => 14,
            Rule::CountersInconsistent => 15,
            Rule::PageViewFull => 16,
        }
    }

    /// The rule stored as `code`; `None` for a code this version does not know (written by
    /// a newer one, or corrupt).
    pub const fn from_code(code: u8) -> Option<Rule> {
        Some(match code {
            0 => Rule::ItemId,
            1 => Rule::ArtworkId,
            2 => Rule::PageName,
            3 => Rule::RequestId,
            4 => Rule::Position,
            5 => Rule::Fraction,
            6 => Rule::BelowThreshold,
            7 => Rule::TooShort,
            8 => Rule::TooLong,
            9 => Rule::OutsidePageView,
            10 => Rule::NotOnPage,
            11 => Rule::WrongPosition,
            12 => Rule::DuplicateExposure,
            13 => Rule::UnknownPageView,
            14 => Rule::SeqNotIncreasing,
            15 => Rule::CountersInconsistent,
            16 => Rule::PageViewFull,
            _ => return None,
        })
    }

    /// The stable snake_case name.
    pub fn name(self) -> &'static str {
        match self {
            Rule::ItemId => "item_id",
            Rule::ArtworkId => "artwork_id",
            Rule::PageName => "page_name",
            Rule::RequestId => "request_id",
            Rule::Position => "position",
            Rule::Fraction => "fraction",
            Rule::BelowThreshold => "below_threshold",
            Rule::TooShort => "too_short",
            Rule::TooLong => "too_long",
            Rule::OutsidePageView => "outside_page_view",
            Rule::NotOnPage => "not_on_page",
            Rule::WrongPosition => "wrong_position",
            Rule::DuplicateExposure => "duplicate_exposure",
            Rule::UnknownPageView => "unknown_page_view",
            Rule::SeqNotIncreasing => "seq_not_increasing",
            Rule::CountersInconsistent => "counters_inconsistent",
            Rule::PageViewFull => "page_view_full",
        }
    }

    /// The pinned [`Rule::code`] as an index (into [`Rule::ALL`] and stored counter lists).
    /// Transitional: stored data should use `code`/`from_code`.
    pub fn index(self) -> usize {
        usize::from(self.code())
    }
}

// `ALL[code]` is the rule of `code`: stored per-rule counters are indexed this way.
const _: () = {
    let mut i = 0;
    while i < Rule::ALL.len() {
        assert!(Rule::ALL[i].code() as usize == i);
        i += 1;
    }
};

impl fmt::Display for Rule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl core::error::Error for Rule {}

/// Ids are printable ASCII from a small set, so they survive every platform's string type,
/// log line and CSV export unchanged.
pub fn valid_id(id: &str, max_len: u32) -> bool {
    !id.is_empty()
        && id.len() <= max_len as usize
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b':' | b'/' | b'-'))
}

/// What an impression says, as checked against the contract (borrowed; no allocation).
#[derive(Clone, Copy, Debug)]
pub struct ImpressionFacts<'a> {
    pub item_id: &'a str,
    pub artwork_id: Option<&'a str>,
    pub row: u32,
    pub column: u32,
    pub max_visible_pct: u32,
    pub visible_ms: u32,
}

impl Contract {
    /// The checks that need only the impression itself.
    pub fn check_impression(&self, facts: &ImpressionFacts<'_>) -> Result<(), Rule> {
        if !valid_id(facts.item_id, self.max_id_len) {
            return Err(Rule::ItemId);
        }
        match facts.artwork_id {
            Some(art) if !valid_id(art, self.max_id_len) => return Err(Rule::ArtworkId),
            None if self.require_artwork => return Err(Rule::ArtworkId),
            _ => {}
        }
        if facts.row >= self.max_position || facts.column >= self.max_position {
            return Err(Rule::Position);
        }
        if facts.max_visible_pct > 100 {
            return Err(Rule::Fraction);
        }
        if facts.max_visible_pct < self.min_visible_pct {
            return Err(Rule::BelowThreshold);
        }
        if facts.visible_ms < self.min_visible_ms {
            return Err(Rule::TooShort);
        }
        if facts.visible_ms > self.max_visible_ms {
            return Err(Rule::TooLong);
        }
        Ok(())
    }

    /// A page name is a well-formed id and, when the contract lists pages, one of them.
    pub fn check_page_name(&self, page: &str) -> Result<(), Rule> {
        if !valid_id(page, self.max_id_len)
            || (!self.pages.is_empty() && !self.pages.iter().any(|p| p == page))
        {
            return Err(Rule::PageName);
        }
        Ok(())
    }

    /// Every rule a decoded batch breaks, per impression and for the batch as a whole.
    /// Used by the collector and by producers' contract tests; the device applies the same
    /// rules at record time.
    pub fn check_batch(&self, batch: &proto::Batch) -> Vec<Violation> {
        let mut out = Vec::new();
        let impressions = match wire::impressions(batch) {
            Ok(list) => list,
            Err(_) => {
                out.push(Violation {
                    seq: None,
                    rule: Rule::CountersInconsistent,
                });
                return out;
            }
        };
        let ids = wire::Ids::of(batch);
        // A set, not a list: the batch is untrusted and may hold `wire::MAX_IMPRESSIONS`
        // impressions, so comparing each with all earlier ones would be quadratic.
        let mut seen: BTreeSet<ExposureKey<'_>> = BTreeSet::new();
        for imp in &impressions {
            let rules = self.batch_rules(batch, &ids, imp);
            let duplicate = !seen.insert(exposure_key(batch, &ids, imp));
            for rule in rules
                .into_iter()
                .chain(duplicate.then_some(Rule::DuplicateExposure))
            {
                out.push(Violation {
                    seq: Some(imp.seq),
                    rule,
                });
            }
        }
        if let Some(c) = &batch.counters {
            let issued = c
                .sampled_out
                .checked_add(c.deduped)
                .and_then(|skipped| c.recorded.checked_sub(skipped));
            let last = impressions.last().map_or(0, |i| i.seq);
            if issued != Some(c.last_seq) || last > c.last_seq {
                out.push(Violation {
                    seq: None,
                    rule: Rule::CountersInconsistent,
                });
            }
        }
        out
    }

    fn batch_rules(
        &self,
        batch: &proto::Batch,
        ids: &wire::Ids,
        imp: &DecodedImpression,
    ) -> Vec<Rule> {
        let mut rules = Vec::new();
        let facts = ImpressionFacts {
            item_id: ids.item(imp),
            artwork_id: ids.artwork(imp),
            row: imp.row,
            column: imp.column,
            max_visible_pct: imp.max_visible_pct,
            visible_ms: imp.visible_ms,
        };
        if let Err(rule) = self.check_impression(&facts) {
            rules.push(rule);
        }
        match batch.page_views.get(imp.page_view) {
            Some(pv) => {
                let page = wire::string(batch, pv.page).unwrap_or("");
                if self.check_page_name(page).is_err() {
                    rules.push(Rule::PageName);
                }
                let shown =
                    (imp.first_visible_ms.max(0) as u64).saturating_add(u64::from(imp.visible_ms));
                if imp.first_visible_ms < 0 || (pv.ended && shown > pv.duration_ms) {
                    rules.push(Rule::OutsidePageView);
                }
            }
            None => rules.push(Rule::UnknownPageView),
        }
        rules
    }
}

/// Identity of an exposure: page view ordinal, item id text (not its table index, which a
/// buggy client could duplicate), row and column.
type ExposureKey<'a> = (u64, &'a str, u32, u32);

fn exposure_key<'a>(
    batch: &proto::Batch,
    ids: &'a wire::Ids,
    imp: &DecodedImpression,
) -> ExposureKey<'a> {
    let ordinal = batch
        .page_views
        .get(imp.page_view)
        .map_or(u64::MAX, |pv| pv.ordinal);
    (ordinal, ids.item(imp), imp.row, imp.column)
}

/// One broken rule found in a decoded batch; `seq` is `None` for batch-level rules.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Violation {
    pub seq: Option<u64>,
    pub rule: Rule,
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::format;
    use alloc::vec;

    /// One open page view ("home") and `n` impressions that break no rule on their own,
    /// at place `place(i)` = (item index, row, column); item ids `t<k>` are used in order.
    fn batch_of(n: usize, place: impl Fn(usize) -> (u32, u32, u32)) -> proto::Batch {
        let places: Vec<(u32, u32, u32)> = (0..n).map(place).collect();
        let items = places.iter().map(|p| p.0).max().map_or(0, |m| m + 1);
        // Column `item`: 0 is the next unused id; k > 0 is item_ids[k - 1].
        let mut used = 0;
        let item = places
            .iter()
            .map(|&(i, _, _)| {
                if i == used {
                    used += 1;
                    0
                } else {
                    i + 1
                }
            })
            .collect();
        proto::Batch {
            strings: vec!["home".into()],
            page_views: vec![proto::PageView {
                ordinal: 1,
                page: 0,
                ..Default::default()
            }],
            item_ids: (0..items).map(|k| format!("t{k}")).collect(),
            impressions: Some(proto::Impressions {
                first_seq: 1,
                count: n as u32,
                item,
                row: places.iter().map(|p| p.1).collect(),
                column: places.iter().map(|p| p.2).collect(),
                visible_ms: vec![1000; n],
                max_visible_pct: vec![100; n],
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    #[test]
    fn rule_codes_are_pinned_because_they_are_stored() {
        let pinned = [
            (Rule::ItemId, 0),
            (Rule::ArtworkId, 1),
            (Rule::PageName, 2),
            (Rule::RequestId, 3),
            (Rule::Position, 4),
            (Rule::Fraction, 5),
            (Rule::BelowThreshold, 6),
            (Rule::TooShort, 7),
            (Rule::TooLong, 8),
            (Rule::OutsidePageView, 9),
            (Rule::NotOnPage, 10),
            (Rule::WrongPosition, 11),
            (Rule::DuplicateExposure, 12),
            (Rule::UnknownPageView, 13),
            (Rule::SeqNotIncreasing, 14),
            (Rule::CountersInconsistent, 15),
            (Rule::PageViewFull, 16),
        ];
        assert_eq!(pinned.len(), Rule::ALL.len(), "every rule is pinned");
        for (rule, code) in pinned {
            assert_eq!(rule.code(), code, "{rule}");
            assert_eq!(Rule::from_code(code), Some(rule));
            assert_eq!(rule.index(), usize::from(code));
            assert_eq!(Rule::ALL[usize::from(code)], rule, "ALL is ordered by code");
        }
        assert_eq!(Rule::from_code(17), None);
        assert_eq!(Rule::from_code(u8::MAX), None);
    }

    #[test]
    fn rule_names_are_pinned_because_reports_and_counters_use_them() {
        let names: Vec<&str> = Rule::ALL.iter().map(|r| r.name()).collect();
        assert_eq!(
            names,
            [
                "item_id",
                "artwork_id",
                "page_name",
                "request_id",
                "position",
                "fraction",
                "below_threshold",
                "too_short",
                "too_long",
                "outside_page_view",
                "not_on_page",
                "wrong_position",
                "duplicate_exposure",
                "unknown_page_view",
                "seq_not_increasing",
                "counters_inconsistent",
                "page_view_full",
            ]
        );
    }

    #[test]
    fn a_batch_of_the_decoders_maximum_size_is_checked_in_linear_time() {
        // Every item twice (rows 0 and 1), and the last impression repeats the first:
        // exactly one duplicate among MAX_IMPRESSIONS. A pairwise check would take
        // billions of comparisons here.
        let n = wire::MAX_IMPRESSIONS;
        let half = (n / 2) as u32;
        let batch = batch_of(n, |i| {
            if i == n - 1 {
                (0, 0, 0)
            } else {
                (i as u32 % half, i as u32 / half, 0)
            }
        });
        assert_eq!(wire::impressions(&batch).map(|v| v.len()), Ok(n));
        assert_eq!(
            Contract::default().check_batch(&batch),
            [Violation {
                seq: Some(n as u64),
                rule: Rule::DuplicateExposure
            }]
        );
    }
}
