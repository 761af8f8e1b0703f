//! The logger: inputs with the time as `(mono_ms, wall_ms)`, and the outputs the host drains
//! after every input (`poll_store_op`, `poll_upload`, `poll_timeout`), as in the core's host
//! contract. Outcomes are numbers ([`crate::outcome`]).

use alloc::string::{String, ToString};
use alloc::vec::Vec;

use sightline_core::{self as core_, Impression, ItemRef, Now, StoreError, UploadOutcome};
use wasm_bindgen::prelude::*;

use crate::config::{Config, Stored};
use crate::outcome;

/// Milliseconds from JavaScript (`performance.now()` is fractional; a clock error can make
/// it negative or NaN): whole, and 0 when not a time.
fn ms(value: f64) -> u64 {
    // `as` saturates and maps NaN to 0.
    value as u64
}

fn now(mono_ms: f64, wall_ms: f64) -> Now {
    Now::new(ms(mono_ms), ms(wall_ms))
}

/// A row or column from JavaScript, where any number arrives: a whole number in `u32`, or
/// `u32::MAX` for anything else (NaN, negative, fractional, too large), which every
/// contract's `max_position` refuses, so a bad position is refused by the core's position
/// rule and counted, never coerced to a real position.
fn position(value: f64) -> u32 {
    if value >= 0.0 && value < f64::from(u32::MAX) && value == (value as u32) as f64 {
        value as u32
    } else {
        u32::MAX
    }
}

/// A page-view id from JavaScript: a whole number, or 0 (no page view has it, so the core
/// refuses the input as an unknown page view) for anything else, never the id it rounds to.
fn page_view_id(value: f64) -> u64 {
    if (1.0..=MAX_PAGE_VIEW_ID).contains(&value) && value == (value as u64) as f64 {
        value as u64
    } else {
        0
    }
}

/// Ids above this are not exact as an `f64`; the core's are far below.
const MAX_PAGE_VIEW_ID: f64 = 9_007_199_254_740_991.0;

/// An HTTP status from the transport: a whole number in 100..=999, or a network error for
/// anything else (a broken transport's answer is no answer, so the batch is retried).
fn upload_outcome(status: f64, retry_after: Option<String>) -> UploadOutcome {
    if (100.0..=999.0).contains(&status) && status == (status as u16) as f64 {
        UploadOutcome::Status {
            code: status as u16,
            retry_after,
        }
    } else {
        UploadOutcome::NetworkError
    }
}

fn item<'a>(item_id: &'a str, artwork_id: Option<&'a str>, row: f64, column: f64) -> ItemRef<'a> {
    ItemRef {
        item_id,
        artwork_id,
        row: position(row),
        column: position(column),
    }
}

/// The sans-IO logger.
#[wasm_bindgen]
pub struct Logger {
    inner: core_::Logger,
}

/// A store operation to perform, then acknowledge with `Logger.store_result(id, ..)`.
#[wasm_bindgen]
pub struct StoreOp {
    id: u64,
    kind: u32,
    key: String,
    bytes: Vec<u8>,
}

/// `StoreOp.kind`: replace the value under `key` with `bytes`.
pub const STORE_PUT: u32 = 1;
/// `StoreOp.kind`: remove `key`.
pub const STORE_REMOVE: u32 = 2;
/// `StoreOp.kind`: append `bytes` to the journal.
pub const STORE_APPEND: u32 = 3;
/// `StoreOp.kind`: empty the journal.
pub const STORE_CLEAR_JOURNAL: u32 = 4;

#[wasm_bindgen]
impl StoreOp {
    #[wasm_bindgen(getter)]
    pub fn id(&self) -> f64 {
        self.id as f64
    }
    /// One of `STORE_PUT`, `STORE_REMOVE`, `STORE_APPEND`, `STORE_CLEAR_JOURNAL`.
    #[wasm_bindgen(getter)]
    pub fn kind(&self) -> u32 {
        self.kind
    }
    #[wasm_bindgen(getter)]
    pub fn key(&self) -> String {
        self.key.clone()
    }
    #[wasm_bindgen(getter)]
    pub fn bytes(&self) -> Vec<u8> {
        self.bytes.clone()
    }
}

/// What became of an exposure the logger tracked (`Logger.report_outcomes`).
#[wasm_bindgen]
pub struct Outcome {
    page_view: u64,
    item_id: String,
    row: u32,
    column: u32,
    result: f64,
}

#[wasm_bindgen]
impl Outcome {
    #[wasm_bindgen(getter)]
    pub fn page_view(&self) -> f64 {
        self.page_view as f64
    }
    #[wasm_bindgen(getter)]
    pub fn item_id(&self) -> String {
        self.item_id.clone()
    }
    #[wasm_bindgen(getter)]
    pub fn row(&self) -> u32 {
        self.row
    }
    #[wasm_bindgen(getter)]
    pub fn column(&self) -> u32 {
        self.column
    }
    /// As an impression's outcome: the seq, or what happened ([`crate::outcome`]).
    #[wasm_bindgen(getter)]
    pub fn result(&self) -> f64 {
        self.result
    }
}

/// An upload to POST, then report with `Logger.upload_result(id, ..)`.
#[wasm_bindgen]
pub struct Upload {
    id: u64,
    path: String,
    /// Names and values, alternating.
    headers: Vec<String>,
    body: Vec<u8>,
}

#[wasm_bindgen]
impl Upload {
    #[wasm_bindgen(getter)]
    pub fn id(&self) -> f64 {
        self.id as f64
    }
    #[wasm_bindgen(getter)]
    pub fn path(&self) -> String {
        self.path.clone()
    }
    /// Header names and values, alternating.
    #[wasm_bindgen(getter)]
    pub fn headers(&self) -> Vec<String> {
        self.headers.clone()
    }
    /// The gzip body; its length is what `bytes_delivered` counts.
    #[wasm_bindgen(getter)]
    pub fn body(&self) -> Vec<u8> {
        self.body.clone()
    }
}

#[wasm_bindgen]
impl Logger {
    /// Starts over what the store holds (empty on a first start). The first store operations
    /// are ready at once. Throws for an invalid configuration, naming the setting.
    pub fn resume(
        config: Config,
        stored: Stored,
        mono_ms: f64,
        wall_ms: f64,
    ) -> Result<Logger, JsError> {
        core_::Logger::resume(config.inner, stored.inner, now(mono_ms, wall_ms))
            .map(|inner| Logger { inner })
            .map_err(|e| JsError::new(&e.message()))
    }

    #[wasm_bindgen(getter)]
    pub fn session_id(&self) -> String {
        self.inner.session_id().to_string()
    }

    /// The page view's id (>= 1) or a refusal. `layout_ids` holds every item id of the
    /// served layout in row order and `row_lengths` how many each row has; both or neither.
    #[allow(clippy::too_many_arguments)]
    pub fn start_page_view(
        &mut self,
        page: &str,
        request_id: Option<String>,
        layout_ids: Option<Vec<String>>,
        row_lengths: Option<Vec<u32>>,
        mono_ms: f64,
        wall_ms: f64,
    ) -> f64 {
        let layout = match (layout_ids, row_lengths) {
            (Some(ids), Some(lengths)) => match core_::layout_from_flat(ids, &lengths) {
                Some(rows) => Some(rows),
                None => return outcome::refused(core_::Rule::NotOnPage),
            },
            _ => None,
        };
        self.inner
            .start_page_view(
                page,
                request_id.as_deref(),
                layout.as_deref(),
                now(mono_ms, wall_ms),
            )
            .map_or_else(outcome::refused, |id| id as f64)
    }

    pub fn end_page_view(&mut self, page_view: f64, mono_ms: f64, wall_ms: f64) -> f64 {
        outcome::unit(
            self.inner
                .end_page_view(page_view_id(page_view), now(mono_ms, wall_ms)),
        )
    }

    /// The visible share (0..=1) of an item changed.
    #[allow(clippy::too_many_arguments)]
    pub fn visibility(
        &mut self,
        page_view: f64,
        item_id: &str,
        artwork_id: Option<String>,
        row: f64,
        column: f64,
        fraction: f32,
        mono_ms: f64,
        wall_ms: f64,
    ) -> f64 {
        let it = item(item_id, artwork_id.as_deref(), row, column);
        outcome::unit(self.inner.handle_visibility(
            page_view_id(page_view),
            &it,
            fraction,
            now(mono_ms, wall_ms),
        ))
    }

    /// An item gained or lost focus (TV remotes, keyboard).
    #[allow(clippy::too_many_arguments)]
    pub fn focus(
        &mut self,
        page_view: f64,
        item_id: &str,
        artwork_id: Option<String>,
        row: f64,
        column: f64,
        focused: bool,
        mono_ms: f64,
        wall_ms: f64,
    ) -> f64 {
        let it = item(item_id, artwork_id.as_deref(), row, column);
        outcome::unit(self.inner.handle_focus(
            page_view_id(page_view),
            &it,
            focused,
            now(mono_ms, wall_ms),
        ))
    }

    pub fn app_hidden(&mut self, mono_ms: f64, wall_ms: f64) {
        self.inner.handle_app_hidden(now(mono_ms, wall_ms));
    }

    pub fn app_visible(&mut self, mono_ms: f64, wall_ms: f64) {
        self.inner.handle_app_visible(now(mono_ms, wall_ms));
    }

    /// An impression the page qualified itself: its seq, or what happened to it.
    #[allow(clippy::too_many_arguments)]
    pub fn impression(
        &mut self,
        page_view: f64,
        item_id: &str,
        artwork_id: Option<String>,
        row: f64,
        column: f64,
        first_visible_mono_ms: f64,
        visible_ms: f64,
        max_visible_fraction: f32,
        focused_ms: f64,
        mono_ms: f64,
        wall_ms: f64,
    ) -> f64 {
        let imp = Impression {
            item_id,
            artwork_id: artwork_id.as_deref(),
            row: position(row),
            column: position(column),
            first_visible_mono_ms: ms(first_visible_mono_ms),
            visible_ms: ms(visible_ms),
            max_visible_fraction,
            focused_ms: ms(focused_ms),
        };
        outcome::recorded(self.inner.record_impression(
            page_view_id(page_view),
            &imp,
            now(mono_ms, wall_ms),
        ))
    }

    pub fn flush(&mut self, mono_ms: f64, wall_ms: f64) {
        self.inner.flush(now(mono_ms, wall_ms));
    }

    /// Opt-out (`enabled = false`, with `purge` to delete what is queued) and back.
    pub fn set_enabled(&mut self, enabled: bool, purge: bool, mono_ms: f64, wall_ms: f64) {
        self.inner
            .set_enabled(enabled, purge, now(mono_ms, wall_ms));
    }

    #[wasm_bindgen(getter)]
    pub fn enabled(&self) -> bool {
        self.inner.enabled()
    }

    pub fn handle_timeout(&mut self, mono_ms: f64, wall_ms: f64) {
        self.inner.handle_timeout(now(mono_ms, wall_ms));
    }

    /// The next deadline (monotonic ms), or -1 for none.
    pub fn poll_timeout(&self) -> f64 {
        self.inner.poll_timeout().map_or(-1.0, |d| d as f64)
    }

    /// The next store operation, if any; the next comes after this one is acknowledged.
    pub fn poll_store_op(&mut self) -> Option<StoreOp> {
        let request = self.inner.poll_store_op()?;
        let (kind, key, bytes) = match &request.op {
            core_::StoreOp::Put { key, value } => (STORE_PUT, key.clone(), value.clone()),
            core_::StoreOp::Remove { key } => (STORE_REMOVE, key.clone(), Vec::new()),
            core_::StoreOp::Append { bytes } => (STORE_APPEND, String::new(), bytes.clone()),
            core_::StoreOp::ClearJournal => (STORE_CLEAR_JOURNAL, String::new(), Vec::new()),
        };
        Some(StoreOp {
            id: request.id,
            kind,
            key,
            bytes,
        })
    }

    /// The result of store operation `id`: done, or failed (`quota` when the store is full).
    /// False when `id` is not the operation handed out.
    pub fn store_result(&mut self, id: f64, ok: bool, quota: bool) -> bool {
        let result = match (ok, quota) {
            (true, _) => Ok(()),
            (false, true) => Err(StoreError::QuotaExceeded),
            (false, false) => Err(StoreError::Io(String::new())),
        };
        self.inner.handle_store_result(ms(id), result).is_ok()
    }

    /// The next upload to POST, if any (at most one is in flight).
    pub fn poll_upload(&mut self, mono_ms: f64, wall_ms: f64) -> Option<Upload> {
        let u = self.inner.poll_upload(now(mono_ms, wall_ms))?;
        let mut headers = Vec::with_capacity(u.headers.len() * 2);
        for h in u.headers {
            headers.push(h.name);
            headers.push(h.value);
        }
        Some(Upload {
            id: u.id,
            path: u.path,
            headers,
            body: u.body,
        })
    }

    /// What happened to upload `id`: the HTTP status with the raw `Retry-After` text, or
    /// status 0 for no answer (network error, timeout; so is any status that is not a whole
    /// number from 100 to 999). False when `id` is not in flight.
    pub fn upload_result(
        &mut self,
        id: f64,
        status: f64,
        retry_after: Option<String>,
        mono_ms: f64,
        wall_ms: f64,
    ) -> bool {
        self.inner
            .handle_upload_result(
                ms(id),
                upload_outcome(status, retry_after),
                now(mono_ms, wall_ms),
            )
            .is_ok()
    }

    /// Keeps what becomes of tracked exposures for `poll_outcome` (the debug overlay).
    pub fn report_outcomes(&mut self, on: bool) {
        self.inner.report_exposure_outcomes(on);
    }

    pub fn poll_outcome(&mut self) -> Option<Outcome> {
        let o = self.inner.poll_exposure_outcome()?;
        Some(Outcome {
            page_view: o.page_view,
            item_id: o.item_id,
            row: o.row,
            column: o.column,
            result: outcome::recorded(o.result),
        })
    }

    /// Impressions issued a seq and not yet delivered or dropped.
    #[wasm_bindgen(getter)]
    pub fn pending(&self) -> f64 {
        self.inner.pending() as f64
    }

    /// The counters: recorded, sampled_out, deduped, issued, delivered, invalid, uploads,
    /// retries, bytes_delivered, store_errors, corrupt_records, then the drops in the order
    /// of `drop_names()`, then the refusals by rule code.
    pub fn stats(&self) -> Vec<f64> {
        let s = self.inner.stats();
        let mut out = Vec::with_capacity(11 + 7 + 20);
        for n in [
            s.recorded,
            s.sampled_out,
            s.deduped,
            s.issued,
            s.delivered,
            s.invalid,
            s.uploads,
            s.retries,
            s.bytes_delivered,
            s.store_errors,
            s.corrupt_records,
        ] {
            out.push(n as f64);
        }
        for reason in core_::DropReason::ALL {
            out.push(s.dropped.get(reason) as f64);
        }
        for rule in core_::Rule::ALL {
            out.push(s.invalid_by_rule.get(rule) as f64);
        }
        out
    }
}

/// The rule names by code (see `crate::outcome`).
#[wasm_bindgen]
pub fn rule_names() -> Vec<String> {
    outcome::rule_names()
}

/// The drop reasons in the order `Logger.stats()` lists them.
#[wasm_bindgen]
pub fn drop_names() -> Vec<String> {
    outcome::drop_names()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_position_that_is_not_a_whole_u32_becomes_one_every_contract_refuses() {
        assert_eq!(position(0.0), 0);
        assert_eq!(position(41.0), 41);
        for bad in [f64::NAN, -1.0, -0.5, 2.5, f64::INFINITY, 4_294_967_296.0] {
            assert_eq!(position(bad), u32::MAX, "{bad}");
        }
    }

    #[test]
    fn a_page_view_id_that_is_not_a_whole_number_names_no_page_view() {
        assert_eq!(page_view_id(1.0), 1);
        assert_eq!(page_view_id(42.0), 42);
        for bad in [1.7, 0.0, -1.0, f64::NAN, f64::INFINITY, 1e300] {
            assert_eq!(page_view_id(bad), 0, "{bad}");
        }
    }

    #[test]
    fn a_status_that_is_not_an_http_status_is_no_answer() {
        assert!(matches!(
            upload_outcome(503.0, Some("7".into())),
            UploadOutcome::Status {
                code: 503,
                retry_after: Some(_)
            }
        ));
        for bad in [0.0, f64::NAN, -200.0, 200.5, 99.0, 1000.0, f64::INFINITY] {
            assert!(
                matches!(upload_outcome(bad, None), UploadOutcome::NetworkError),
                "{bad}"
            );
        }
    }
}
