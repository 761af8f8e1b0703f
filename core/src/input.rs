//! The logger's inputs as owned data: one [`Input`] enum and [`Logger::handle_input`]
//! (str0m's shape), for hosts that queue inputs, send them across threads or receive them
//! from another language. The borrowed methods (`record_impression(&Impression)`, ...) stay
//! the allocation-free path for Rust callers; both end in the same code.

use alloc::string::String;
use alloc::vec::Vec;
use core::fmt;

use crate::contract::Rule;
use crate::logger::{Impression, ItemRef, Logger, Now, Recorded, UnknownStoreOp, UnknownUpload};
use crate::store::StoreError;
use crate::upload::UploadOutcome;

/// An item as reported by the host, owned.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Item {
    pub item_id: String,
    pub artwork_id: Option<String>,
    pub row: u32,
    pub column: u32,
}

impl Item {
    /// The borrowed form.
    pub fn as_ref(&self) -> ItemRef<'_> {
        ItemRef {
            item_id: &self.item_id,
            artwork_id: self.artwork_id.as_deref(),
            row: self.row,
            column: self.column,
        }
    }
}

impl From<&ItemRef<'_>> for Item {
    fn from(item: &ItemRef<'_>) -> Self {
        Item {
            item_id: item.item_id.into(),
            artwork_id: item.artwork_id.map(Into::into),
            row: item.row,
            column: item.column,
        }
    }
}

/// A pre-qualified impression, owned (see [`Impression`]).
#[derive(Clone, Debug, PartialEq)]
pub struct QualifiedImpression {
    pub item: Item,
    /// Monotonic time the exposure started.
    pub first_visible_mono_ms: u64,
    pub visible_ms: u64,
    /// Largest visible share during the exposure, 0.0..=1.0.
    pub max_visible_fraction: f32,
    pub focused_ms: u64,
}

impl QualifiedImpression {
    /// The borrowed form.
    pub fn as_ref(&self) -> Impression<'_> {
        Impression {
            item_id: &self.item.item_id,
            artwork_id: self.item.artwork_id.as_deref(),
            row: self.item.row,
            column: self.item.column,
            first_visible_mono_ms: self.first_visible_mono_ms,
            visible_ms: self.visible_ms,
            max_visible_fraction: self.max_visible_fraction,
            focused_ms: self.focused_ms,
        }
    }
}

impl From<&Impression<'_>> for QualifiedImpression {
    fn from(imp: &Impression<'_>) -> Self {
        QualifiedImpression {
            item: Item {
                item_id: imp.item_id.into(),
                artwork_id: imp.artwork_id.map(Into::into),
                row: imp.row,
                column: imp.column,
            },
            first_visible_mono_ms: imp.first_visible_mono_ms,
            visible_ms: imp.visible_ms,
            max_visible_fraction: imp.max_visible_fraction,
            focused_ms: imp.focused_ms,
        }
    }
}

/// A layout as flat arrays, the cheap form to pass from C or JavaScript: every item id in
/// row order, and how many of them each row holds. `None` when the lengths do not add up
/// to the ids given.
pub fn layout_from_flat(ids: Vec<String>, row_lengths: &[u32]) -> Option<Vec<Vec<String>>> {
    let total = row_lengths
        .iter()
        .try_fold(0usize, |sum, &n| sum.checked_add(n as usize))?;
    if total != ids.len() {
        return None;
    }
    let mut ids = ids.into_iter();
    let mut rows = Vec::with_capacity(row_lengths.len());
    for &n in row_lengths {
        rows.push(ids.by_ref().take(n as usize).collect());
    }
    Some(rows)
}

/// Everything a host tells the logger.
#[derive(Clone, Debug, PartialEq)]
pub enum Input {
    /// A page view starts; `layout` is the rows of item ids as the server sent them.
    StartPageView {
        page: String,
        request_id: Option<String>,
        layout: Option<Vec<Vec<String>>>,
    },
    EndPageView {
        page_view: u64,
    },
    /// The visible share of an item changed (0.0..=1.0).
    Visibility {
        page_view: u64,
        item: Item,
        fraction: f32,
    },
    /// An item gained or lost focus (TV).
    Focus {
        page_view: u64,
        item: Item,
        focused: bool,
    },
    AppHidden,
    AppVisible,
    /// An impression the host qualified itself.
    Impression {
        page_view: u64,
        impression: QualifiedImpression,
    },
    Flush,
    SetEnabled {
        enabled: bool,
        purge: bool,
    },
    /// The deadline from `poll_timeout` passed.
    Timeout,
    /// The outcome of an upload from `poll_upload`.
    UploadResult {
        id: u64,
        outcome: UploadOutcome,
    },
    /// The result of a store operation from `poll_store_op` (the time is not needed).
    StoreResult {
        id: u64,
        result: Result<(), StoreError>,
    },
}

/// What an input produced.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Handled {
    /// `StartPageView`: the new page view's id.
    PageView(u64),
    /// `Impression`: what happened to it.
    Recorded(Recorded),
    /// Every other input.
    Done,
}

/// The host used the API wrongly; counted like a contract refusal under the rule's name.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Misuse {
    /// The page view was never started, or already ended.
    UnknownPageView,
    /// The page view already tracks as many exposures as one may have.
    PageViewFull,
}

impl Misuse {
    /// The rule it is counted under.
    pub fn rule(self) -> Rule {
        match self {
            Misuse::UnknownPageView => Rule::UnknownPageView,
            Misuse::PageViewFull => Rule::PageViewFull,
        }
    }
}

/// Why an input was not taken, by surface: what the data breaks, how the API was misused,
/// or a result for an upload that is not in flight.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum InputError {
    /// The data breaks a rule of the contract (counted in `Stats::invalid_by_rule`).
    Contract(Rule),
    /// The host used the API wrongly (counted too).
    Misuse(Misuse),
    /// The upload named is not in flight.
    UnknownUpload(UnknownUpload),
    /// The store operation named is not the one handed out.
    UnknownStoreOp(UnknownStoreOp),
}

impl InputError {
    /// The counted rule, if the error is a refusal.
    pub fn rule(self) -> Option<Rule> {
        match self {
            InputError::Contract(rule) => Some(rule),
            InputError::Misuse(m) => Some(m.rule()),
            InputError::UnknownUpload(_) | InputError::UnknownStoreOp(_) => None,
        }
    }
}

impl fmt::Display for InputError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            InputError::Contract(rule) => write!(f, "refused by the contract: {rule}"),
            InputError::Misuse(m) => write!(f, "misuse of the API: {}", m.rule()),
            InputError::UnknownUpload(e) => e.fmt(f),
            InputError::UnknownStoreOp(e) => e.fmt(f),
        }
    }
}

impl core::error::Error for InputError {}

impl From<Rule> for InputError {
    fn from(rule: Rule) -> Self {
        match rule {
            Rule::UnknownPageView => InputError::Misuse(Misuse::UnknownPageView),
            Rule::PageViewFull => InputError::Misuse(Misuse::PageViewFull),
            rule => InputError::Contract(rule),
        }
    }
}

impl Logger {
    /// Takes one owned input at `now`; the same as the matching borrowed method.
    pub fn handle_input(&mut self, input: Input, now: Now) -> Result<Handled, InputError> {
        let done = |r: Result<(), Rule>| r.map(|()| Handled::Done).map_err(InputError::from);
        match input {
            Input::StartPageView {
                page,
                request_id,
                layout,
            } => Ok(Handled::PageView(self.start_page_view(
                &page,
                request_id.as_deref(),
                layout.as_deref(),
                now,
            )?)),
            Input::EndPageView { page_view } => done(self.end_page_view(page_view, now)),
            Input::Visibility {
                page_view,
                item,
                fraction,
            } => done(self.handle_visibility(page_view, &item.as_ref(), fraction, now)),
            Input::Focus {
                page_view,
                item,
                focused,
            } => done(self.handle_focus(page_view, &item.as_ref(), focused, now)),
            Input::AppHidden => {
                self.handle_app_hidden(now);
                Ok(Handled::Done)
            }
            Input::AppVisible => {
                self.handle_app_visible(now);
                Ok(Handled::Done)
            }
            Input::Impression {
                page_view,
                impression,
            } => Ok(Handled::Recorded(self.record_impression(
                page_view,
                &impression.as_ref(),
                now,
            )?)),
            Input::Flush => {
                self.flush(now);
                Ok(Handled::Done)
            }
            Input::SetEnabled { enabled, purge } => {
                self.set_enabled(enabled, purge, now);
                Ok(Handled::Done)
            }
            Input::Timeout => {
                self.handle_timeout(now);
                Ok(Handled::Done)
            }
            Input::UploadResult { id, outcome } => self
                .handle_upload_result(id, outcome, now)
                .map(|()| Handled::Done)
                .map_err(InputError::UnknownUpload),
            Input::StoreResult { id, result } => self
                .handle_store_result(id, result)
                .map(|()| Handled::Done)
                .map_err(InputError::UnknownStoreOp),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;
    use crate::store::Stored;
    use alloc::string::ToString;

    fn logger() -> Logger {
        let config = Config {
            app_id: "app".into(),
            app_version: "1".into(),
            seed: 9,
            ..Config::default()
        };
        Logger::resume(config, Stored::default(), Now::new(0, 0)).expect("valid")
    }

    #[test]
    fn every_misuse_rule_maps_to_a_misuse_and_back_and_contract_rules_stay_contract() {
        for rule in Rule::ALL {
            let e = InputError::from(rule);
            assert_eq!(e.rule(), Some(rule));
            let misuse = matches!(e, InputError::Misuse(_));
            assert_eq!(
                misuse,
                rule.kind() == crate::contract::RuleKind::Misuse,
                "{rule:?}"
            );
        }
    }

    #[test]
    fn a_flat_layout_becomes_rows_and_lengths_that_do_not_add_up_are_refused() {
        let ids = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(
            layout_from_flat(ids(&["a", "b", "c"]), &[2, 0, 1]),
            Some(alloc::vec![ids(&["a", "b"]), ids(&[]), ids(&["c"])])
        );
        assert_eq!(layout_from_flat(ids(&["a", "b"]), &[3]), None);
        assert_eq!(layout_from_flat(ids(&["a"]), &[u32::MAX, 2]), None);
    }

    #[test]
    fn owned_inputs_do_what_the_borrowed_calls_do() {
        let mut l = logger();
        let at = |ms| Now::new(ms, ms);
        let start = Input::StartPageView {
            page: "home".to_string(),
            request_id: None,
            layout: None,
        };
        let Ok(Handled::PageView(pv)) = l.handle_input(start, at(0)) else {
            panic!("a page view")
        };
        let impression = QualifiedImpression {
            item: Item {
                item_id: "title:1".to_string(),
                artwork_id: None,
                row: 0,
                column: 0,
            },
            first_visible_mono_ms: 0,
            visible_ms: 1500,
            max_visible_fraction: 1.0,
            focused_ms: 0,
        };
        let input = Input::Impression {
            page_view: pv,
            impression,
        };
        assert_eq!(
            l.handle_input(input.clone(), at(2000)),
            Ok(Handled::Recorded(Recorded::Logged { seq: 1 }))
        );
        assert_eq!(
            l.handle_input(input, at(2000)),
            Ok(Handled::Recorded(Recorded::Deduped))
        );
        assert_eq!(
            l.handle_input(Input::EndPageView { page_view: 99 }, at(2000)),
            Err(InputError::Misuse(Misuse::UnknownPageView))
        );
        let stale = Input::UploadResult {
            id: 7,
            outcome: UploadOutcome::status(200),
        };
        assert_eq!(
            l.handle_input(stale, at(2000)),
            Err(InputError::UnknownUpload(UnknownUpload(7)))
        );
        let op = l.poll_store_op().expect("the first planned write").id;
        let done = Input::StoreResult {
            id: op,
            result: Ok(()),
        };
        assert_eq!(l.handle_input(done.clone(), at(2000)), Ok(Handled::Done));
        assert_eq!(
            l.handle_input(done, at(2000)),
            Err(InputError::UnknownStoreOp(UnknownStoreOp(op)))
        );
    }
}
