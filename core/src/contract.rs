//! The data contract: the versioned rules an impression must satisfy. It is data (loadable
//! from JSON), so the same rules run on the device at record time, in producers' contract
//! tests and in the collector. Schema checks are the floor; the point is the semantic
//! checks: an item that was not on the page, a rank that does not match the layout, a
//! duplicate exposure, a duration longer than the page view, counters that do not add up.

use alloc::collections::BTreeMap;
use alloc::string::String;
use alloc::vec::Vec;
use core::fmt;
use core::ops::Bound;

use crate::config::Reentry;
use crate::proto;
use crate::rng::mix64;
use crate::wire::{self, DecodedImpression};

/// Version of the rules below; travels in every batch.
pub const CONTRACT_VERSION: u32 = 1;

/// Ids longer than this are almost certainly a bug (a URL or JSON pasted in), and cost bytes.
pub const DEFAULT_MAX_ID_LEN: u32 = 64;

/// Beyond this an impression is a stuck timer rather than a person looking (4 hours).
pub const DEFAULT_MAX_VISIBLE_MS: u32 = 4 * 60 * 60 * 1000;

/// Lists and grids longer than this are not laid out by any client we serve.
pub const DEFAULT_MAX_POSITION: u32 = 10_000;

/// The largest seq: 2^53 - 1, the largest integer every JSON reader keeps exact (rows carry
/// seqs as JSON numbers). A session issuing 100 impressions a second reaches it in 2.8
/// million years, so a larger seq is forged, and would carry a session's dedup window and
/// loss accounting to the end of the range.
pub const MAX_SEQ: u64 = (1 << 53) - 1;

/// An impression first visible longer than this before its batch was sent is a broken or
/// forged clock: the default queue gives up on a batch after about a day of retries, and
/// a retry delay is at most a day, so a month covers any configuration in use.
pub const MAX_IMPRESSION_AGE_MS: u64 = 30 * 24 * 60 * 60 * 1000;

/// How far after the batch's send (or close) time an impression's first-visible time may
/// lie when only wall clocks place it (no monotonic time shared with the send): wall clocks
/// are stepped (NTP, a user fixing the time), and a step of hours is a clock, not a forgery.
pub const WALL_CLOCK_SLACK_MS: u64 = 24 * 60 * 60 * 1000;

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
    /// Whether leaving and coming back is a new impression: part of what the data means.
    /// The device logs under it and states it in every batch (`Batch.reentry`); checks of
    /// a batch follow the batch's statement, and this is the rule assumed for data that
    /// states none (rows written before rows carried it).
    pub reentry: Reentry,
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
            reentry: Reentry::OncePerPageView,
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
    /// Focused for longer than visible: focus is counted only while the item is visible.
    FocusExceedsVisible,
    /// A seq of 0 or above [`MAX_SEQ`]: seqs start at 1, so it identifies no impression.
    SeqOutOfRange,
    /// First visible after the batch was sent, or more than [`MAX_IMPRESSION_AGE_MS`]
    /// before it, by the batch's own clock; or the batch states no time to place it by.
    TimeOutsideBatch,
}

impl Rule {
    /// Every rule, in order of [`Rule::code`] (so `ALL[code]` is the rule of `code`).
    pub const ALL: [Rule; 20] = [
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
        Rule::FocusExceedsVisible,
        Rule::SeqOutOfRange,
        Rule::TimeOutsideBatch,
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
            Rule::FocusExceedsVisible => 17,
            Rule::SeqOutOfRange => 18,
            Rule::TimeOutsideBatch => 19,
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
            17 => Rule::FocusExceedsVisible,
            18 => Rule::SeqOutOfRange,
            19 => Rule::TimeOutsideBatch,
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
            Rule::FocusExceedsVisible => "focus_exceeds_visible",
            Rule::SeqOutOfRange => "seq_out_of_range",
            Rule::TimeOutsideBatch => "time_outside_batch",
        }
    }

    /// The rule with this stable [`Rule::name`], if any (what foreign callers pass).
    pub fn from_name(name: &str) -> Option<Rule> {
        Rule::ALL.iter().copied().find(|r| r.name() == name)
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

/// Which surface a broken rule belongs to, so each binding maps refusals to its own error
/// types (a misuse exception, a contract violation) without a table of its own.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RuleKind {
    /// What the data says breaks the contract.
    Contract,
    /// The host used the API wrongly (a page view it never started or already ended, more
    /// exposures than a page view may track).
    Misuse,
    /// Found only across events, by the collector and `check_batch`; never a device refusal.
    Collector,
}

impl Rule {
    /// The surface this rule belongs to.
    pub fn kind(self) -> RuleKind {
        match self {
            Rule::UnknownPageView | Rule::PageViewFull => RuleKind::Misuse,
            Rule::DuplicateExposure
            | Rule::SeqNotIncreasing
            | Rule::CountersInconsistent
            | Rule::SeqOutOfRange
            | Rule::TimeOutsideBatch => RuleKind::Collector,
            _ => RuleKind::Contract,
        }
    }

    /// What the rule means, as a sentence for the producer who broke it.
    pub fn sentence(self) -> &'static str {
        match self {
            Rule::ItemId => {
                "the item id is empty, too long, or has characters outside [A-Za-z0-9._:/-]"
            }
            Rule::ArtworkId => {
                "the artwork id is malformed, or missing where the contract requires one"
            }
            Rule::PageName => "the page name is malformed or not one of the contract's pages",
            Rule::RequestId => "the request id is malformed",
            Rule::Position => "the row or column is beyond the contract's bound",
            Rule::Fraction => "the visible fraction is not a number between 0 and 1",
            Rule::BelowThreshold => "the item was never visible enough to count",
            Rule::TooShort => "the item was visible for less than the minimum time",
            Rule::TooLong => "the item was visible for longer than the contract allows",
            Rule::OutsidePageView => "the exposure lies outside the page view that shows it",
            Rule::NotOnPage => "the item is not in the page's declared layout",
            Rule::WrongPosition => "the item is in the layout, but at another row or column",
            Rule::DuplicateExposure => {
                "the same item at the same place was logged twice in one page view"
            }
            Rule::UnknownPageView => "the page view is unknown or already ended",
            Rule::SeqNotIncreasing => "a sequence number did not increase",
            Rule::CountersInconsistent => {
                "the batch's counters contradict each other or its sequence numbers"
            }
            Rule::PageViewFull => "the page view already tracks as many exposures as one may have",
            Rule::FocusExceedsVisible => "the item was focused for longer than it was visible",
            Rule::SeqOutOfRange => {
                "the sequence number is 0 or too large to be one a session issued"
            }
            Rule::TimeOutsideBatch => {
                "the item became visible after its batch was sent, too long before, or at no \
                 time the batch can place"
            }
        }
    }
}

/// The sentence, then the rule's stable name: "the item id is empty, ... (item_id)".
impl fmt::Display for Rule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({})", self.sentence(), self.name())
    }
}

impl core::error::Error for Rule {}

/// Ids are printable ASCII from a small set, so they survive every platform's string type,
/// log line and CSV export unchanged.
// Out of line under `compact`: inlined at each of its callers it cost the firmware flash.
#[cfg_attr(feature = "compact", inline(never))]
pub fn valid_id(id: &str, max_len: u32) -> bool {
    // Every byte is checked without an early exit, so the loop compiles to vector code.
    !id.is_empty() && id.len() <= max_len as usize && id.bytes().fold(true, |ok, b| ok & id_byte(b))
}

/// `A-Z a-z 0-9 . _ : / -` without a branch: `- . / 0-9 :` are the one run 0x2D..=0x3A, and
/// setting bit 5 folds `A-Z` onto `a-z`.
fn id_byte(b: u8) -> bool {
    (b.wrapping_sub(b'-') <= b':' - b'-')
        | ((b | 0x20).wrapping_sub(b'a') <= b'z' - b'a')
        | (b == b'_')
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
    pub focused_ms: u32,
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
        if facts.focused_ms > facts.visible_ms {
            return Err(Rule::FocusExceedsVisible);
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

    /// Every rule a decoded batch breaks, per impression (in impression order) and then for
    /// the batch as a whole.
    /// Used by the collector and by producers' contract tests; the device applies the same
    /// rules at record time.
    pub fn check_batch(&self, batch: &proto::Batch) -> Vec<Violation> {
        match wire::impressions(batch) {
            Ok(impressions) => self.check_decoded(batch, &impressions, &wire::Ids::of(batch)),
            Err(_) => alloc::vec![Violation {
                seq: None,
                rule: Rule::CountersInconsistent,
            }],
        }
    }

    /// [`Contract::check_batch`] of a batch already resolved: `impressions` are what
    /// [`wire::impressions`] gives for `batch` and `ids` its full ids ([`wire::Ids::of`] or
    /// a table of the caller's; the collector needs both anyway, so neither is built twice).
    pub fn check_decoded(
        &self,
        batch: &proto::Batch,
        impressions: &[DecodedImpression],
        ids: &impl wire::FullIds,
    ) -> Vec<Violation> {
        let mut out = Vec::new();
        let reentry = Reentry::from_proto(batch.reentry);
        let duplicate = duplicate_exposures(batch, ids, impressions, reentry);
        let sent = SendTime::of(batch);
        // The page name is checked once per page view: its impressions share it.
        let pages_ok: Vec<bool> = batch
            .page_views
            .iter()
            .map(|pv| {
                let page = wire::string(batch, pv.page).unwrap_or("");
                self.check_page_name(page).is_ok()
            })
            .collect();
        let mut rules = Vec::new();
        for (imp, &duplicate) in impressions.iter().zip(&duplicate) {
            rules.clear();
            self.batch_rules(batch, ids, sent, &pages_ok, imp, &mut rules);
            if duplicate {
                rules.push(Rule::DuplicateExposure);
            }
            out.extend(rules.iter().map(|&rule| Violation {
                seq: Some(imp.seq),
                rule,
            }));
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
        ids: &impl wire::FullIds,
        sent: SendTime,
        pages_ok: &[bool],
        imp: &DecodedImpression,
        rules: &mut Vec<Rule>,
    ) {
        if imp.seq == 0 || imp.seq > MAX_SEQ {
            rules.push(Rule::SeqOutOfRange);
        }
        let facts = ImpressionFacts {
            item_id: ids.item(imp),
            artwork_id: ids.artwork(imp),
            row: imp.row,
            column: imp.column,
            max_visible_pct: imp.max_visible_pct,
            visible_ms: imp.visible_ms,
            focused_ms: imp.focused_ms,
        };
        if let Err(rule) = self.check_impression(&facts) {
            rules.push(rule);
        }
        match batch.page_views.get(imp.page_view) {
            Some(pv) => {
                if pages_ok.get(imp.page_view) != Some(&true) {
                    rules.push(Rule::PageName);
                }
                let shown =
                    (imp.first_visible_ms.max(0) as u64).saturating_add(u64::from(imp.visible_ms));
                if imp.first_visible_ms < 0 || (pv.ended && shown > pv.duration_ms) {
                    rules.push(Rule::OutsidePageView);
                }
                if !sent.places(batch, pv, imp.first_visible_ms) {
                    rules.push(Rule::TimeOutsideBatch);
                }
            }
            None => rules.push(Rule::UnknownPageView),
        }
    }
}

/// When a batch was sent, by the batch's own clock: what an impression's first-visible
/// time is judged against ([`Rule::TimeOutsideBatch`]). The same choice of clock as the
/// collector's skew correction, so a row it stores as good has a time near its receipt.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum SendTime {
    /// The send info shares the batch's monotonic epoch: event times compare exactly.
    Mono(u64),
    /// Only wall clocks: the send's, or without send info the close's (a batch rebuilt
    /// after a restart is sent in another epoch than its page views started in).
    Wall(u64),
    /// Neither send info nor a close time: nothing places the batch's events.
    Unknown,
}

impl SendTime {
    fn of(batch: &proto::Batch) -> SendTime {
        let clock = batch.clock.unwrap_or_default();
        match batch.send {
            Some(s) if s.mono_epoch == clock.mono_epoch => SendTime::Mono(s.sent_at_mono_ms),
            Some(s) => SendTime::Wall(s.sent_at_wall_ms),
            None if clock.closed_at_wall_ms > 0 => SendTime::Wall(clock.closed_at_wall_ms),
            None => SendTime::Unknown,
        }
    }

    /// Whether an impression of `pv` first visible `first_visible_ms` after the page view
    /// started lies within the send window: not after the send, at most
    /// [`MAX_IMPRESSION_AGE_MS`] before it (by wall clocks, give or take
    /// [`WALL_CLOCK_SLACK_MS`]). Wire times are arbitrary: sums are taken in i128.
    fn places(self, batch: &proto::Batch, pv: &proto::PageView, first_visible_ms: i64) -> bool {
        let visible = i128::from(first_visible_ms);
        let (event, sent, slack) = match self {
            SendTime::Mono(sent) => {
                let base = batch.clock.unwrap_or_default().mono_base_ms;
                let start = i128::from(base) + i128::from(pv.start_offset_ms);
                (start + visible, sent, 0)
            }
            SendTime::Wall(sent) => (
                i128::from(pv.start_wall_ms) + visible,
                sent,
                WALL_CLOCK_SLACK_MS,
            ),
            SendTime::Unknown => return false,
        };
        let age = i128::from(sent) - event;
        let slack = i128::from(slack);
        -slack <= age && age <= i128::from(MAX_IMPRESSION_AGE_MS) + slack
    }
}

/// Which of `impressions` duplicate an earlier exposure under `rule`. The identity of an
/// exposure is its page view ordinal, item id text (not its table index, which a buggy
/// client could duplicate), row and column; whether a later exposure of one identity
/// duplicates depends only on the earlier ones of the same identity, so each identity is
/// judged on its own, in batch order, by [`Exposures::admit`].
///
/// O(n log n) on untrusted input, and cheap on real input: the impressions are sorted by
/// place (ordinal, row, column: integers); a place shown once (nearly all of them) cannot
/// be a duplicate, and only the impressions of a place shown more than once are grouped
/// by item text.
fn duplicate_exposures(
    batch: &proto::Batch,
    ids: &impl wire::FullIds,
    impressions: &[DecodedImpression],
    rule: Reentry,
) -> Vec<bool> {
    let mut duplicate = alloc::vec![false; impressions.len()];
    // (ordinal, row, column, position in the batch): unique, so the order is total.
    let mut places: Vec<(u64, u32, u32, u32)> = impressions
        .iter()
        .enumerate()
        .map(|(i, imp)| {
            let ordinal = batch
                .page_views
                .get(imp.page_view)
                .map_or(u64::MAX, |pv| pv.ordinal);
            (ordinal, imp.row, imp.column, i as u32)
        })
        .collect();
    if !may_repeat_a_place(&places) {
        return duplicate;
    }
    places.sort_unstable();
    let mut run = Vec::new();
    for same_place in places.chunk_by(|a, b| (a.0, a.1, a.2) == (b.0, b.1, b.2)) {
        if same_place.len() < 2 {
            continue;
        }
        run.clear();
        run.extend(same_place.iter().map(|p| p.3 as usize));
        let item = |i: usize| ids.item(&impressions[i]);
        // Stable from batch order, so each item's exposures stay in batch order.
        run.sort_by(|&a, &b| item(a).cmp(item(b)));
        for same_item in run.chunk_by(|&a, &b| item(a) == item(b)) {
            if same_item.len() < 2 {
                continue;
            }
            let mut seen = Exposures::new();
            for &i in same_item {
                let imp = &impressions[i];
                let start = imp.first_visible_ms;
                let end = start.saturating_add(i64::from(imp.visible_ms));
                duplicate[i] = !seen.admit((), start, end, rule);
            }
        }
    }
    duplicate
}

/// Slots [`may_repeat_a_place`] has per place: a table at most a quarter full keeps runs
/// of taken slots short (under 1.5 probes a place on average by linear probing's analysis;
/// the test's 65,536 distinct places never reach [`PLACE_PROBES`]).
const PLACE_SLOTS_PER_PLACE: usize = 4;
/// Slots [`may_repeat_a_place`] probes for one place before it gives up: far past what
/// real places need, so a longer run is crafted input, which then takes the sort
/// (O(n log n)) rather than a quadratic probe.
const PLACE_PROBES: usize = 32;

/// Whether two of `places` (ordinal, row, column, position) may share a place: false only
/// when a hash table of them found each place once. O(n), which spares nearly every batch
/// the sort of [`duplicate_exposures`]; any doubt (a repeat, or a probe run past
/// [`PLACE_PROBES`]) answers true and leaves the decision to the sort.
fn may_repeat_a_place(places: &[(u64, u32, u32, u32)]) -> bool {
    let slots = places
        .len()
        .saturating_mul(PLACE_SLOTS_PER_PLACE)
        .next_power_of_two();
    let mask = slots - 1;
    // Each slot holds a position in `places` plus one, 0 when empty.
    let mut table = alloc::vec![0u32; slots];
    for (i, &(ordinal, row, column, _)) in places.iter().enumerate() {
        let hash = mix64(ordinal ^ mix64((u64::from(row) << 32) | u64::from(column)));
        let mut slot = hash as usize & mask;
        let mut probes = 0;
        loop {
            let Some(entry) = table.get_mut(slot) else {
                return true;
            };
            if *entry == 0 {
                *entry = i as u32 + 1;
                break;
            }
            let other = places.get(*entry as usize - 1);
            if other.is_none_or(|o| (o.0, o.1, o.2) == (ordinal, row, column)) {
                return true;
            }
            probes += 1;
            if probes == PLACE_PROBES {
                return true;
            }
            slot = (slot + 1) & mask;
        }
    }
    false
}

/// The exposures seen so far, to find duplicates under a re-entry rule in O(log n) each:
/// the input is untrusted and large (a batch holds up to [`wire::MAX_IMPRESSIONS`]), so
/// comparing each exposure with all earlier ones would be quadratic.
#[derive(Clone, Debug)]
pub struct Exposures<K> {
    /// (key, start) -> end of every exposure admitted. Admitted exposures of one key never
    /// overlap, so an overlap with any of them shows with a neighbour by start time.
    seen: BTreeMap<(K, i64), i64>,
}

impl<K: Ord + Clone> Default for Exposures<K> {
    fn default() -> Self {
        Exposures {
            seen: BTreeMap::new(),
        }
    }
}

impl<K: Ord + Clone> Exposures<K> {
    pub fn new() -> Self {
        Self::default()
    }

    /// Admits an exposure of `key` (an item at a place in a page view) visible over
    /// `start..end`, or returns false when it duplicates one admitted before under `rule`:
    /// under once per page view any earlier exposure of the key, under after leaving one
    /// that starts at the same time or overlaps it (touching is fine: the second may start
    /// when the first ends). A duplicate is not admitted.
    pub fn admit(&mut self, key: K, start: i64, end: i64, rule: Reentry) -> bool {
        let same = |k: &(K, i64)| k.0 == key;
        let duplicate = match rule {
            Reentry::OncePerPageView => self
                .seen
                .range((key.clone(), i64::MIN)..=(key.clone(), i64::MAX))
                .next()
                .is_some(),
            Reentry::AfterLeaving => {
                let before = self
                    .seen
                    .range(..=(key.clone(), start))
                    .next_back()
                    .filter(|(k, _)| same(k))
                    .is_some_and(|((_, s), &e)| *s == start || e > start);
                let after = self
                    .seen
                    .range((Bound::Excluded((key.clone(), start)), Bound::Unbounded))
                    .next()
                    .filter(|(k, _)| same(k))
                    .is_some_and(|((_, s), _)| *s < end);
                before || after
            }
        };
        if !duplicate {
            self.seen.insert((key, start), end);
        }
        !duplicate
    }
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
    use alloc::string::ToString;
    use alloc::vec;

    #[test]
    fn the_place_table_finds_every_repeat_and_no_other() {
        // A full batch's worth of places, all distinct.
        let distinct: Vec<(u64, u32, u32, u32)> = (0..wire::MAX_IMPRESSIONS as u32)
            .map(|i| (u64::from(i / 256), i % 16, i / 16 % 16, i))
            .collect();
        assert!(!may_repeat_a_place(&distinct));
        assert!(!may_repeat_a_place(&[]));
        let mut repeated = distinct.clone();
        repeated.push((3, 4, 5, wire::MAX_IMPRESSIONS as u32));
        assert!(may_repeat_a_place(&repeated));
    }

    #[test]
    fn an_id_byte_is_exactly_an_ascii_letter_digit_or_one_of_dot_underscore_colon_slash_dash() {
        for b in 0..=u8::MAX {
            let allowed =
                b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b':' | b'/' | b'-');
            assert_eq!(id_byte(b), allowed, "byte {b:#04x}");
        }
        assert!(valid_id("title:00000001/a.b_c-d", 64));
        assert!(!valid_id("title 1", 64));
        assert!(!valid_id("tïtle", 64));
    }

    /// When [`batch_of`] batches are sent, by their monotonic clock (base 0): an hour in.
    const SENT_MONO_MS: u64 = 3_600_000;

    /// One open page view ("home") and `n` impressions that break no rule on their own,
    /// at place `place(i)` = (item index, row, column); item ids `t<k>` are used in order.
    /// Sent at [`SENT_MONO_MS`] in the batch's epoch.
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
            clock: Some(proto::BatchClock::default()),
            send: Some(proto::SendInfo {
                sent_at_mono_ms: SENT_MONO_MS,
                attempt: 1,
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    /// The rules `check_batch` finds for each impression of `batch`, in order.
    fn rules_of(batch: &proto::Batch) -> Vec<(u64, Rule)> {
        Contract::default()
            .check_batch(batch)
            .into_iter()
            .filter_map(|v| Some((v.seq?, v.rule)))
            .collect()
    }

    /// A one-impression batch whose impression is first visible `first_visible_ms` into
    /// its page view.
    fn visible_at(first_visible_ms: i64) -> proto::Batch {
        let mut batch = batch_of(1, |_| (0, 0, 0));
        batch.impressions.as_mut().unwrap().first_visible_delta_ms = vec![first_visible_ms];
        batch
    }

    #[test]
    fn a_seq_of_0_or_above_max_seq_is_out_of_range_and_the_seqs_between_are_not() {
        for (first_seq, out_of_range) in [
            (0, vec![(0, Rule::SeqOutOfRange)]),
            (1, vec![]),
            (MAX_SEQ - 1, vec![]),
            (MAX_SEQ, vec![(MAX_SEQ + 1, Rule::SeqOutOfRange)]),
            (
                u64::MAX - 1,
                vec![
                    (u64::MAX - 1, Rule::SeqOutOfRange),
                    (u64::MAX, Rule::SeqOutOfRange),
                ],
            ),
        ] {
            let mut batch = batch_of(2, |i| (i as u32, 0, i as u32));
            batch.impressions.as_mut().unwrap().first_seq = first_seq;
            assert_eq!(rules_of(&batch), out_of_range, "first seq {first_seq}");
        }
    }

    #[test]
    fn an_impression_first_visible_after_the_send_or_older_than_the_maximum_age_is_outside_the_batch()
     {
        let sent = SENT_MONO_MS as i64;
        assert_eq!(rules_of(&visible_at(sent)), []);
        assert_eq!(
            rules_of(&visible_at(sent + 1)),
            [(1, Rule::TimeOutsideBatch)]
        );
        let mut old = visible_at(0);
        old.send.as_mut().unwrap().sent_at_mono_ms = MAX_IMPRESSION_AGE_MS;
        assert_eq!(rules_of(&old), []);
        old.send.as_mut().unwrap().sent_at_mono_ms = MAX_IMPRESSION_AGE_MS + 1;
        assert_eq!(rules_of(&old), [(1, Rule::TimeOutsideBatch)]);
        // The page view's start counts, by the batch's base.
        let mut late = visible_at(0);
        late.page_views[0].start_offset_ms = SENT_MONO_MS + 1;
        assert_eq!(rules_of(&late), [(1, Rule::TimeOutsideBatch)]);
        late.clock.as_mut().unwrap().mono_base_ms = 1;
        late.page_views[0].start_offset_ms = SENT_MONO_MS;
        assert_eq!(rules_of(&late), [(1, Rule::TimeOutsideBatch)]);
    }

    #[test]
    fn by_wall_clocks_alone_an_impression_may_lie_a_day_either_side_of_the_window() {
        const WALL: u64 = 1_767_225_600_000;
        let by_wall = |start_wall: u64, sent_wall: u64| {
            let mut batch = visible_at(0);
            batch.page_views[0].start_wall_ms = start_wall;
            // Sent by a later start of the logger: its monotonic time says nothing here.
            let send = batch.send.as_mut().unwrap();
            send.mono_epoch = 1;
            send.sent_at_wall_ms = sent_wall;
            batch
        };
        let slack = WALL_CLOCK_SLACK_MS;
        assert_eq!(rules_of(&by_wall(WALL + slack, WALL)), []);
        let after = by_wall(WALL + slack + 1, WALL);
        assert_eq!(rules_of(&after), [(1, Rule::TimeOutsideBatch)]);
        let oldest = WALL - MAX_IMPRESSION_AGE_MS - slack;
        assert_eq!(rules_of(&by_wall(oldest, WALL)), []);
        let older = by_wall(oldest - 1, WALL);
        assert_eq!(rules_of(&older), [(1, Rule::TimeOutsideBatch)]);
        // Without send info the close time stands in.
        let mut closed = by_wall(WALL + slack + 1, 0);
        closed.send = None;
        closed.clock.as_mut().unwrap().closed_at_wall_ms = WALL;
        assert_eq!(rules_of(&closed), [(1, Rule::TimeOutsideBatch)]);
        closed.clock.as_mut().unwrap().closed_at_wall_ms = WALL + 1;
        assert_eq!(rules_of(&closed), []);
    }

    #[test]
    fn a_batch_stating_neither_send_nor_close_time_places_none_of_its_impressions() {
        let mut batch = batch_of(2, |i| (i as u32, 0, i as u32));
        batch.send = None;
        assert_eq!(
            rules_of(&batch),
            [(1, Rule::TimeOutsideBatch), (2, Rule::TimeOutsideBatch)]
        );
        batch.clock = None;
        assert_eq!(rules_of(&batch).len(), 2);
    }

    #[test]
    fn hostile_times_at_the_ends_of_the_range_are_outside_the_batch_without_overflowing() {
        for first_visible in [i64::MIN, i64::MAX] {
            let rules = rules_of(&visible_at(first_visible));
            assert!(rules.contains(&(1, Rule::TimeOutsideBatch)), "{rules:?}");
        }
        let mut batch = visible_at(i64::MAX);
        batch.clock.as_mut().unwrap().mono_base_ms = u64::MAX;
        batch.page_views[0].start_offset_ms = u64::MAX;
        batch.page_views[0].start_wall_ms = u64::MAX;
        assert!(rules_of(&batch).contains(&(1, Rule::TimeOutsideBatch)));
        batch.send.as_mut().unwrap().mono_epoch = 1;
        batch.send.as_mut().unwrap().sent_at_wall_ms = u64::MAX;
        assert!(rules_of(&batch).contains(&(1, Rule::TimeOutsideBatch)));
    }

    /// `batch_of` with every impression at item 0, row 0, column 0, first visible at
    /// `starts[i]` for 1000 ms, under `reentry`.
    fn same_place(starts: &[i64], reentry: Reentry) -> proto::Batch {
        let mut batch = batch_of(starts.len(), |_| (0, 0, 0));
        batch.reentry = reentry.to_proto();
        let cols = batch.impressions.as_mut().unwrap();
        let mut previous = 0;
        cols.first_visible_delta_ms = starts
            .iter()
            .map(|&s| {
                let delta = s - previous;
                previous = s;
                delta
            })
            .collect();
        batch
    }

    /// The seqs `check_batch` flags as duplicate exposures.
    fn duplicates(batch: &proto::Batch) -> Vec<u64> {
        Contract::default()
            .check_batch(batch)
            .into_iter()
            .filter(|v| v.rule == Rule::DuplicateExposure)
            .filter_map(|v| v.seq)
            .collect()
    }

    #[test]
    fn under_after_leaving_an_exposure_after_the_previous_one_ended_is_not_a_duplicate() {
        // Visible 0..1000, then 1000..2000 (back at once), then 5000..6000.
        let batch = same_place(&[0, 1000, 5000], Reentry::AfterLeaving);
        assert_eq!(Contract::default().check_batch(&batch), []);
    }

    #[test]
    fn under_after_leaving_overlapping_exposures_are_still_duplicates() {
        // 0..1000, then 999..1999 (overlaps), then 0..1000 again (the same exposure twice).
        let batch = same_place(&[0, 999, 0], Reentry::AfterLeaving);
        assert_eq!(duplicates(&batch), [2, 3]);
        // An exposure that ends after a later-starting admitted one begins overlaps too.
        let batch = same_place(&[5000, 4500], Reentry::AfterLeaving);
        assert_eq!(duplicates(&batch), [2]);
        // Earlier in time but over before the first began: not a duplicate.
        let batch = same_place(&[5000, 1000, 3000], Reentry::AfterLeaving);
        assert!(duplicates(&batch).is_empty());
    }

    #[test]
    fn once_per_page_view_flags_every_repeat_even_after_leaving() {
        let batch = same_place(&[0, 1000, 5000], Reentry::OncePerPageView);
        assert_eq!(duplicates(&batch), [2, 3]);
        // A batch that states no rule (written before the field) reads as once per page view.
        let mut batch = same_place(&[0, 5000], Reentry::AfterLeaving);
        batch.reentry = 0;
        assert_eq!(duplicates(&batch), [2]);
    }

    #[test]
    fn under_either_rule_another_place_or_page_view_is_another_exposure() {
        for reentry in [Reentry::OncePerPageView, Reentry::AfterLeaving] {
            let mut batch = batch_of(3, |i| (0, 0, i as u32));
            batch.reentry = reentry.to_proto();
            assert!(duplicates(&batch).is_empty(), "{reentry:?}");
        }
    }

    #[test]
    fn an_unknown_reentry_value_reads_as_the_stricter_once_per_page_view() {
        assert_eq!(Reentry::from_proto(7), Reentry::OncePerPageView);
        assert_eq!(Reentry::from_proto(-1), Reentry::OncePerPageView);
        for r in [Reentry::OncePerPageView, Reentry::AfterLeaving] {
            assert_eq!(Reentry::from_proto(r.to_proto()), r);
        }
        assert_eq!(
            Reentry::OncePerPageView.to_proto(),
            0,
            "old batches keep their bytes"
        );
        let mut batch = same_place(&[0, 5000], Reentry::AfterLeaving);
        batch.reentry = 7;
        assert_eq!(duplicates(&batch), [2]);
    }

    #[cfg(feature = "std")]
    #[test]
    fn a_contract_file_states_its_reentry_rule_and_defaults_to_once_per_page_view() {
        let c: Contract = serde_json::from_str(r#"{"reentry":"after_leaving"}"#).unwrap();
        assert_eq!(c.reentry, Reentry::AfterLeaving);
        let c: Contract = serde_json::from_str("{}").unwrap();
        assert_eq!(c.reentry, Reentry::OncePerPageView);
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
            (Rule::FocusExceedsVisible, 17),
            (Rule::SeqOutOfRange, 18),
            (Rule::TimeOutsideBatch, 19),
        ];
        assert_eq!(pinned.len(), Rule::ALL.len(), "every rule is pinned");
        for (rule, code) in pinned {
            assert_eq!(rule.code(), code, "{rule}");
            assert_eq!(Rule::from_code(code), Some(rule));
            assert_eq!(rule.index(), usize::from(code));
            assert_eq!(Rule::ALL[usize::from(code)], rule, "ALL is ordered by code");
        }
        assert_eq!(Rule::from_code(20), None);
        assert_eq!(Rule::from_code(u8::MAX), None);
    }

    #[test]
    fn misuse_and_collector_only_rules_are_told_apart_from_contract_rules() {
        let of = |kind| {
            Rule::ALL
                .into_iter()
                .filter(|r| r.kind() == kind)
                .map(Rule::name)
                .collect::<Vec<_>>()
        };
        assert_eq!(
            of(RuleKind::Misuse),
            ["unknown_page_view", "page_view_full"]
        );
        assert_eq!(
            of(RuleKind::Collector),
            [
                "duplicate_exposure",
                "seq_not_increasing",
                "counters_inconsistent",
                "seq_out_of_range",
                "time_outside_batch"
            ]
        );
        assert_eq!(of(RuleKind::Contract).len(), Rule::ALL.len() - 7);
    }

    #[test]
    fn a_rule_displays_as_a_sentence_with_its_stable_name() {
        assert_eq!(
            Rule::TooShort.to_string(),
            "the item was visible for less than the minimum time (too_short)"
        );
        for rule in Rule::ALL {
            assert!(rule.to_string().ends_with(&format!("({})", rule.name())));
        }
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
                "focus_exceeds_visible",
                "seq_out_of_range",
                "time_outside_batch",
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

    #[test]
    fn every_rule_is_found_by_its_name_and_no_other_name_finds_one() {
        for rule in Rule::ALL {
            assert_eq!(Rule::from_name(rule.name()), Some(rule));
        }
        assert_eq!(Rule::from_name("seq_conflict"), None);
        assert_eq!(Rule::from_name(""), None);
    }
}
