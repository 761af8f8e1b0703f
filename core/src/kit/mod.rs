//! The producer test kit: what a producer team's unit tests use to fail when their app logs
//! the wrong thing. A [`Capture`] receives upload bodies in memory (as the collector would),
//! decodes them with the core's decoder, runs the contract's batch checks and the collector's
//! per-session accounting ([`session`]), and answers questions about the result with
//! failure messages that name the rule, the item and the position. With `std`,
//! [`CaptureTransport`] plugs a shared capture into the runtime (the capture mode) and
//! [`MicroCollector`] queries a collector in micro mode. The bindings expose this module as
//! it is; none has logic of its own.
//!
//! ```
//! use std::sync::{Arc, Mutex};
//! use std::time::Duration;
//! use sightline_core::kit::{Capture, CaptureTransport};
//! use sightline_core::runtime::{Driver, SystemClock};
//! use sightline_core::{Config, Impression, MemoryStore, Platform};
//!
//! let config = Config {
//!     app_id: "com.example.app".into(),
//!     app_version: "1.0.0".into(),
//!     platform: Platform::Android,
//!     app_key: "key-1".into(),
//!     seed: 7,
//!     ..Config::default()
//! };
//! let capture = Arc::new(Mutex::new(Capture::new(config.contract.clone())));
//! let transport = Box::new(CaptureTransport::new(Arc::clone(&capture)));
//! let store = Box::new(MemoryStore::new());
//! let driver = Driver::start(config, store, transport, Box::new(SystemClock::new())).unwrap();
//! let pv = driver.start_page_view("home", None, None).unwrap();
//! let shown = driver.now().mono_ms; // the tile appears with the page
//! std::thread::sleep(Duration::from_millis(1_100));
//! let seen = Impression {
//!     item_id: "title:1", artwork_id: None, row: 0, column: 3,
//!     first_visible_mono_ms: shown, visible_ms: 1_050, max_visible_fraction: 1.0, focused_ms: 0,
//! };
//! driver.record_impression(pv, &seen).unwrap();
//! driver.shutdown(Duration::from_secs(5)); // flushes and delivers to the capture
//!
//! let capture = capture.lock().unwrap();
//! capture.assert_impression("title:1", 0, 3).unwrap();
//! capture.assert_no_violations().unwrap();
//! capture.assert_accounted().unwrap();
//! ```

pub mod session;
#[cfg(feature = "std")]
mod std_host;

#[cfg(feature = "std")]
pub use std_host::{CaptureTransport, MicroCollector, MicroError};

use alloc::collections::BTreeMap;
use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;
use core::fmt;

use crate::contract::{Contract, Rule};
use crate::proto;
use crate::rng::hash_bytes;
use crate::wire::{self, DecodeError, DecodedImpression, Ids};
use session::{Arrival, Reconciliation, SEQ_CONFLICT, SessionState};

/// Seed of the content digest given to [`SessionState::arrive`]; any constant works, as
/// digests are compared only within one capture.
const DIGEST_SEED: u64 = 0x5349_4748_544b_4954;

/// One impression as it arrived, with everything a test asserts on.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CapturedImpression {
    pub session_id: String,
    pub seq: u64,
    pub page: String,
    /// The page view's per-session ordinal.
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
    /// Rules it breaks; empty for a good impression.
    pub rules: Vec<Rule>,
}

/// One broken rule, with where it was found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Finding {
    pub rule: Rule,
    pub session_id: String,
    /// `None` for a rule of the batch as a whole.
    pub seq: Option<u64>,
    /// The impression that breaks it, for a per-impression rule.
    pub impression: Option<CapturedImpression>,
}

impl fmt::Display for Finding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.rule)?;
        match &self.impression {
            Some(imp) => write!(f, ": {}", Place(imp)),
            None => write!(f, ": batch of session {}", self.session_id),
        }
    }
}

/// An impression's identity in failure messages.
struct Place<'a>(&'a CapturedImpression);

impl fmt::Display for Place<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let i = self.0;
        write!(
            f,
            "item {} at row {}, column {} on page {} (page view {}, session {}, seq {})",
            i.item_id, i.row, i.column, i.page, i.page_view, i.session_id, i.seq
        )
    }
}

/// What one received upload contributed.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Receipt {
    /// Impressions new to the capture.
    pub accepted: u64,
    /// Impressions received before with the same content (a retry).
    pub duplicates: u64,
    /// Impressions whose (session, seq) arrived before with other content.
    pub conflicts: u64,
    /// Rules broken by what this upload brought that was new (a retry adds none).
    pub violations: u64,
}

/// A failed assertion of the kit: the message says what was expected and what was found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KitFailure {
    pub message: String,
}

impl fmt::Display for KitFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl core::error::Error for KitFailure {}

fn fail<T>(message: String) -> Result<T, KitFailure> {
    Err(KitFailure { message })
}

/// Uploads received in memory, decoded, checked and accounted: see the module doc.
#[derive(Clone, Debug)]
pub struct Capture {
    contract: Contract,
    sessions: BTreeMap<String, SessionState>,
    impressions: Vec<CapturedImpression>,
    findings: Vec<Finding>,
    uploads: u64,
}

impl Capture {
    /// A capture checking against `contract` (the one the app's logger runs).
    pub fn new(contract: Contract) -> Capture {
        Capture {
            contract,
            sessions: BTreeMap::new(),
            impressions: Vec::new(),
            findings: Vec::new(),
            uploads: 0,
        }
    }

    /// Receives one upload body as the logger produced it (gzip protobuf). A body that does
    /// not decode is refused with the reason and changes nothing.
    pub fn receive(&mut self, body: &[u8]) -> Result<Receipt, DecodeError> {
        let batch = wire::decode_gzip_batch(body)?;
        let decoded = wire::impressions(&batch)?;
        self.uploads += 1;
        Ok(self.accept(&batch, &decoded))
    }

    fn accept(&mut self, batch: &proto::Batch, decoded: &[DecodedImpression]) -> Receipt {
        let ids = Ids::of(batch);
        let violations = self.contract.check_decoded(batch, decoded, &ids);
        let mut receipt = Receipt::default();
        let findings_before = self.findings.len();
        let session = self.sessions.entry(batch.session_id.clone()).or_default();
        // As the collector does: counters the contract flags never drive reconciliation.
        let inconsistent = violations
            .iter()
            .any(|v| v.seq.is_none() && v.rule == Rule::CountersInconsistent);
        if let (Some(counters), false) = (&batch.counters, inconsistent) {
            session.observe_counters(counters);
        }
        let sender = sender_digest(batch);
        session.batches += 1;
        // Per-impression violations come in impression order: one pass hands each its own.
        let mut per_impression = violations.iter().filter(|v| v.seq.is_some()).peekable();
        for imp in decoded {
            let mut rules = Vec::new();
            while let Some(v) = per_impression.next_if(|v| v.seq == Some(imp.seq)) {
                rules.push(v.rule);
            }
            let captured = captured(batch, &ids, imp, rules);
            match session.arrive(imp.seq, digest(sender, &captured)) {
                // Out of range, as the collector does: kept with its rule, never deduped.
                arrival @ (Arrival::New | Arrival::OutOfRange) => {
                    receipt.accepted += 1;
                    if arrival == Arrival::New && !captured.rules.is_empty() {
                        session.rejected += 1;
                    }
                    self.findings
                        .extend(captured.rules.iter().map(|&rule| Finding {
                            rule,
                            session_id: captured.session_id.clone(),
                            seq: Some(captured.seq),
                            impression: Some(captured.clone()),
                        }));
                    self.impressions.push(captured);
                }
                Arrival::Duplicate => receipt.duplicates += 1,
                Arrival::Conflict => receipt.conflicts += 1,
            }
        }
        // A retry (nothing new in it) repeats what its first attempt was found to break.
        let retry = receipt.accepted == 0 && receipt.duplicates > 0;
        if !retry {
            self.findings.extend(
                violations
                    .iter()
                    .filter(|v| v.seq.is_none())
                    .map(|v| Finding {
                        rule: v.rule,
                        session_id: batch.session_id.clone(),
                        seq: None,
                        impression: None,
                    }),
            );
        }
        receipt.violations = (self.findings.len() - findings_before) as u64;
        receipt
    }

    /// Uploads received (and decoded).
    pub fn uploads(&self) -> u64 {
        self.uploads
    }

    /// Every distinct impression received, good or bad, in arrival order.
    pub fn impressions(&self) -> &[CapturedImpression] {
        &self.impressions
    }

    /// Every broken rule found, in arrival order.
    pub fn violations(&self) -> &[Finding] {
        &self.findings
    }

    /// The loss accounting of one session, as the collector computes it.
    pub fn accounting(&self, session_id: &str) -> Option<Reconciliation> {
        self.sessions.get(session_id).map(SessionState::reconcile)
    }

    /// Every session seen, with its accounting.
    pub fn sessions(&self) -> impl Iterator<Item = (&str, Reconciliation)> + '_ {
        self.sessions
            .iter()
            .map(|(id, s)| (id.as_str(), s.reconcile()))
    }

    /// Forgets everything received (between the cases of one test).
    pub fn clear(&mut self) {
        *self = Capture::new(core::mem::take(&mut self.contract));
    }

    /// No rule broken in anything received, no seq reused with other content
    /// (`seq_conflict`), and no input refused on the device (the counters every batch
    /// carries say how many the logger refused).
    pub fn assert_no_violations(&self) -> Result<(), KitFailure> {
        if let [first, ..] = self.findings.as_slice() {
            return fail(format!(
                "expected no violations, found {}; the first: {first}",
                self.findings.len()
            ));
        }
        for (id, r) in self.sessions() {
            if r.conflicts > 0 {
                return fail(format!(
                    "expected no violations; {} impression(s) of session {id} arrived again \
                     with other content under a seq already used ({SEQ_CONFLICT}: two \
                     loggers or boots share the session id)",
                    r.conflicts
                ));
            }
            if r.invalid > 0 {
                return fail(format!(
                    "expected no violations; the device refused {} input(s) by the contract \
                     in session {id} (the logger's stats name the rules: invalid_by_rule)",
                    r.invalid
                ));
            }
        }
        Ok(())
    }

    /// `rule` was broken, by an impression of `item_id` when one is given.
    pub fn assert_violation(&self, rule: Rule, item_id: Option<&str>) -> Result<(), KitFailure> {
        let hit = self.findings.iter().any(|f| {
            f.rule == rule
                && item_id.is_none_or(|id| f.impression.as_ref().is_some_and(|i| i.item_id == id))
        });
        if hit {
            return Ok(());
        }
        let of = item_id.map_or(String::new(), |id| format!(" by item {id}"));
        let found: Vec<String> = self.findings.iter().map(|f| format!("{f}")).collect();
        fail(format!(
            "expected a violation of {} ({}){of}; found: [{}]",
            rule.name(),
            rule.sentence(),
            found.join("; ")
        ))
    }

    /// Exactly one good impression of `item_id` at (`row`, `column`); returns it.
    pub fn assert_impression(
        &self,
        item_id: &str,
        row: u32,
        column: u32,
    ) -> Result<&CapturedImpression, KitFailure> {
        let of_item: Vec<&CapturedImpression> = self
            .impressions
            .iter()
            .filter(|i| i.item_id == item_id)
            .collect();
        let good: Vec<&CapturedImpression> = of_item
            .iter()
            .copied()
            .filter(|i| i.row == row && i.column == column && i.rules.is_empty())
            .collect();
        match good.as_slice() {
            [one] => Ok(one),
            [] => {
                let seen: Vec<String> = of_item
                    .iter()
                    .map(|i| match i.rules.as_slice() {
                        [] => format!("{}", Place(i)),
                        rules => {
                            let names: Vec<&str> = rules.iter().map(|r| r.name()).collect();
                            format!("{} breaking {}", Place(i), names.join(", "))
                        }
                    })
                    .collect();
                fail(format!(
                    "expected an impression of item {item_id} at row {row}, column {column}; \
                     found {}: [{}]",
                    seen.len(),
                    seen.join("; ")
                ))
            }
            many => fail(format!(
                "expected one impression of item {item_id} at row {row}, column {column}; \
                 found {}, the second: {}",
                many.len(),
                Place(many[1])
            )),
        }
    }

    /// No impression of `item_id` at all.
    pub fn assert_no_impression(&self, item_id: &str) -> Result<(), KitFailure> {
        match self.impressions.iter().find(|i| i.item_id == item_id) {
            None => Ok(()),
            Some(i) => fail(format!(
                "expected no impression of {item_id}; found {}",
                Place(i)
            )),
        }
    }

    /// Every session's impressions are all accounted for: each one the device issued was
    /// delivered or dropped with a counted reason, none missing.
    pub fn assert_accounted(&self) -> Result<(), KitFailure> {
        if self.sessions.is_empty() {
            return fail("expected uploads to account for, received none".into());
        }
        for (id, r) in self.sessions() {
            if r.missing != 0 {
                return fail(format!(
                    "session {id}: {} impression(s) missing (issued {}, delivered {}, dropped {})",
                    r.missing, r.issued, r.delivered, r.dropped
                ));
            }
        }
        Ok(())
    }
}

fn captured(
    batch: &proto::Batch,
    ids: &Ids,
    imp: &DecodedImpression,
    rules: Vec<Rule>,
) -> CapturedImpression {
    let pv = batch.page_views.get(imp.page_view);
    let text = |index: u32| wire::string(batch, index).unwrap_or_default().into();
    CapturedImpression {
        session_id: batch.session_id.clone(),
        seq: imp.seq,
        page: pv.map_or_else(String::new, |pv| text(pv.page)),
        page_view: pv.map_or(0, |pv| pv.ordinal),
        request_id: pv.and_then(|pv| pv.request_id.checked_sub(1)).map(text),
        item_id: ids.item(imp).into(),
        artwork_id: ids.artwork(imp).map(Into::into),
        row: imp.row,
        column: imp.column,
        first_visible_ms: imp.first_visible_ms,
        visible_ms: imp.visible_ms,
        max_visible_pct: imp.max_visible_pct,
        focused_ms: imp.focused_ms,
        rules,
    }
}

/// Who sent a batch, as the collector's row digest covers it: the same seq and impression
/// from another install or app is a conflict, not a retry.
fn sender_digest(batch: &proto::Batch) -> u64 {
    let mut bytes = Vec::new();
    for text in [
        &batch.app_id,
        &batch.app_version,
        &batch.device,
        &batch.install_id,
        &batch.sdk_name,
        &batch.sdk_version,
    ] {
        bytes.extend_from_slice(text.as_bytes());
        bytes.push(0xff);
    }
    bytes.extend_from_slice(&batch.platform.to_le_bytes());
    hash_bytes(DIGEST_SEED, &bytes)
}

/// Content identity of an impression from `sender`, without what differs between attempts
/// of the same data; never 0 (0 marks "unknown" in [`SessionState`]).
fn digest(sender: u64, i: &CapturedImpression) -> u64 {
    let mut bytes = sender.to_le_bytes().to_vec();
    for text in [&i.page, &i.item_id] {
        bytes.extend_from_slice(text.as_bytes());
        bytes.push(0xff);
    }
    for text in [&i.request_id, &i.artwork_id] {
        match text {
            Some(t) => {
                bytes.push(1);
                bytes.extend_from_slice(t.as_bytes());
                bytes.push(0xff);
            }
            None => bytes.push(0),
        }
    }
    for n in [
        i.page_view,
        u64::from(i.row),
        u64::from(i.column),
        i.first_visible_ms as u64,
        u64::from(i.visible_ms),
        u64::from(i.max_visible_pct),
        u64::from(i.focused_ms),
    ] {
        bytes.extend_from_slice(&n.to_le_bytes());
    }
    hash_bytes(DIGEST_SEED, &bytes).max(1)
}
