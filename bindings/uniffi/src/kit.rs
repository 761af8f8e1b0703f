//! [`Capture`]: the core's producer test kit (`sightline_core::kit`) for foreign tests. Type
//! mapping only: decoding, checks, accounting and failure messages are the core's.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};

use sightline_core::kit::{self, session::Reconciliation};
use sightline_core::{Rule, contract::Contract as CoreContract};

use crate::error::poisoned;
use crate::types::Contract;

/// One impression as the capture received it. `rules` lists the rules it breaks.
#[derive(Clone, Debug, PartialEq, Eq, uniffi::Record)]
pub struct CapturedImpression {
    pub session_id: String,
    pub seq: u64,
    pub page: String,
    pub page_view: u64,
    pub request_id: Option<String>,
    pub item_id: String,
    pub artwork_id: Option<String>,
    pub row: u32,
    pub column: u32,
    /// Milliseconds from the page view's start to first visibility.
    pub first_visible_ms: i64,
    pub visible_ms: u32,
    pub max_visible_pct: u32,
    pub focused_ms: u32,
    pub rules: Vec<String>,
}

/// One broken rule: its stable name, a sentence, where, and the message a test prints.
#[derive(Clone, Debug, PartialEq, Eq, uniffi::Record)]
pub struct Violation {
    pub rule: String,
    pub sentence: String,
    pub session_id: String,
    pub seq: Option<u64>,
    pub impression: Option<CapturedImpression>,
    pub message: String,
}

/// A session's loss accounting, as the collector computes it.
#[derive(Clone, Debug, PartialEq, Eq, uniffi::Record)]
pub struct Accounting {
    pub session_id: String,
    pub recorded: u64,
    /// Inputs the device refused by the contract.
    pub invalid: u64,
    pub sampled_out: u64,
    pub deduped: u64,
    pub issued: u64,
    pub delivered: u64,
    pub rejected: u64,
    pub duplicates: u64,
    pub conflicts: u64,
    pub dropped: u64,
    /// Non-zero drop counts by reason name.
    pub dropped_by_reason: HashMap<String, u64>,
    /// Issued, neither delivered nor explained by a drop: lost.
    pub missing: u64,
}

/// What one received upload contributed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, uniffi::Record)]
pub struct Receipt {
    pub accepted: u64,
    pub duplicates: u64,
    pub conflicts: u64,
    pub violations: u64,
}

/// A failed kit assertion; `message` names the rule, the item and the position.
#[derive(Clone, Debug, PartialEq, Eq, uniffi::Error)]
pub enum KitError {
    /// The assertion does not hold.
    Failed { message: String },
    /// An upload body that does not decode.
    Undecodable { message: String },
    /// A rule name that is not one of the contract's.
    UnknownRule { name: String },
    /// A bug inside Sightline (a panic poisoned the capture); not a failed assertion.
    Internal { message: String },
}

impl std::fmt::Display for KitError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            KitError::Failed { message } => f.write_str(message),
            KitError::Undecodable { message } => write!(f, "not a Sightline upload: {message}"),
            KitError::UnknownRule { name } => write!(f, "no rule is named {name:?}"),
            KitError::Internal { message } => write!(f, "internal error: {message}"),
        }
    }
}

impl std::error::Error for KitError {}

impl From<kit::KitFailure> for KitError {
    fn from(f: kit::KitFailure) -> Self {
        KitError::Failed { message: f.message }
    }
}

/// Uploads received in memory, decoded, checked against the contract and accounted per
/// session: see the core's `kit` module. Thread-safe.
#[derive(uniffi::Object)]
pub struct Capture {
    inner: Arc<Mutex<kit::Capture>>,
}

impl Capture {
    fn lock(&self) -> Result<MutexGuard<'_, kit::Capture>, KitError> {
        self.inner.lock().map_err(|_| KitError::Internal {
            message: poisoned().to_string(),
        })
    }
}

fn impression(i: &kit::CapturedImpression) -> CapturedImpression {
    CapturedImpression {
        session_id: i.session_id.clone(),
        seq: i.seq,
        page: i.page.clone(),
        page_view: i.page_view,
        request_id: i.request_id.clone(),
        item_id: i.item_id.clone(),
        artwork_id: i.artwork_id.clone(),
        row: i.row,
        column: i.column,
        first_visible_ms: i.first_visible_ms,
        visible_ms: i.visible_ms,
        max_visible_pct: i.max_visible_pct,
        focused_ms: i.focused_ms,
        rules: i.rules.iter().map(|r| r.name().to_string()).collect(),
    }
}

fn accounting(session_id: &str, r: &Reconciliation) -> Accounting {
    Accounting {
        session_id: session_id.into(),
        recorded: r.recorded,
        invalid: r.invalid,
        sampled_out: r.sampled_out,
        deduped: r.deduped,
        issued: r.issued,
        delivered: r.delivered,
        rejected: r.rejected,
        duplicates: r.duplicates,
        conflicts: r.conflicts,
        dropped: r.dropped,
        dropped_by_reason: r
            .dropped_by_reason
            .iter()
            .filter(|&(_, n)| n > 0)
            .map(|(reason, n)| (reason.name().to_string(), n))
            .collect(),
        missing: r.missing,
    }
}

#[uniffi::export]
impl Capture {
    /// A capture checking against `contract` (the app's; `None` for the default one).
    #[uniffi::constructor(default(contract = None))]
    pub fn new(contract: Option<Contract>) -> Arc<Capture> {
        let contract = contract.map_or_else(CoreContract::default, Into::into);
        Arc::new(Capture {
            inner: Arc::new(Mutex::new(kit::Capture::new(contract))),
        })
    }

    /// Receives one upload body (gzip protobuf, as the logger produced it).
    pub fn receive(&self, body: Vec<u8>) -> Result<Receipt, KitError> {
        let r = self
            .lock()?
            .receive(&body)
            .map_err(|e| KitError::Undecodable {
                message: e.to_string(),
            })?;
        Ok(Receipt {
            accepted: r.accepted,
            duplicates: r.duplicates,
            conflicts: r.conflicts,
            violations: r.violations,
        })
    }

    /// Uploads received.
    pub fn uploads(&self) -> Result<u64, KitError> {
        Ok(self.lock()?.uploads())
    }

    /// Every distinct impression received, good or bad, in arrival order.
    pub fn impressions(&self) -> Result<Vec<CapturedImpression>, KitError> {
        Ok(self.lock()?.impressions().iter().map(impression).collect())
    }

    /// Every broken rule found, in arrival order.
    pub fn violations(&self) -> Result<Vec<Violation>, KitError> {
        Ok(self
            .lock()?
            .violations()
            .iter()
            .map(|f| Violation {
                rule: f.rule.name().into(),
                sentence: f.rule.sentence().into(),
                session_id: f.session_id.clone(),
                seq: f.seq,
                impression: f.impression.as_ref().map(impression),
                message: f.to_string(),
            })
            .collect())
    }

    /// Every session received, with its accounting.
    pub fn accounting(&self) -> Result<Vec<Accounting>, KitError> {
        Ok(self
            .lock()?
            .sessions()
            .map(|(id, r)| accounting(id, &r))
            .collect())
    }

    /// Forgets everything received.
    pub fn clear(&self) -> Result<(), KitError> {
        self.lock()?.clear();
        Ok(())
    }

    pub fn assert_no_violations(&self) -> Result<(), KitError> {
        Ok(self.lock()?.assert_no_violations()?)
    }

    /// `rule` (a stable name such as `too_short`) was broken, by `item_id` if given.
    #[uniffi::method(default(item_id = None))]
    pub fn assert_violation(&self, rule: String, item_id: Option<String>) -> Result<(), KitError> {
        let rule = Rule::from_name(&rule).ok_or(KitError::UnknownRule { name: rule })?;
        Ok(self.lock()?.assert_violation(rule, item_id.as_deref())?)
    }

    /// Exactly one good impression of `item_id` at (`row`, `column`); returns it.
    pub fn assert_impression(
        &self,
        item_id: String,
        row: u32,
        column: u32,
    ) -> Result<CapturedImpression, KitError> {
        Ok(impression(
            self.lock()?.assert_impression(&item_id, row, column)?,
        ))
    }

    pub fn assert_no_impression(&self, item_id: String) -> Result<(), KitError> {
        Ok(self.lock()?.assert_no_impression(&item_id)?)
    }

    /// Every session's impressions are delivered or dropped with a counted reason.
    pub fn assert_accounted(&self) -> Result<(), KitError> {
        Ok(self.lock()?.assert_accounted()?)
    }
}

impl Capture {
    /// The runtime's transport into this capture (the core's).
    pub(crate) fn transport(&self) -> kit::CaptureTransport {
        kit::CaptureTransport::new(Arc::clone(&self.inner))
    }
}
