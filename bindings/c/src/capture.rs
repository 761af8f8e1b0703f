//! [`SightlineCapture`]: the core's producer test kit for C, so firmware teams check in
//! their own CI what their logger sends: upload bodies in, impressions decoded and checked
//! against the contract, violations out. Decoding and checks are the core's.

use alloc::ffi::CString;
use alloc::vec::Vec;
use core::ffi::c_char;

use sightline_core::contract::Contract;
use sightline_core::kit::{Capture, CapturedImpression};

use crate::handles::{self, Entry, with_entry};
use crate::status::{Result, SightlineStatus, fail, guard};
use crate::text::{bytes_arg, copy_out, out};
use crate::types::SightlineContract;

/// A capture. A plain value; once freed, every copy is invalid.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SightlineCapture {
    /// Opaque; 0 is never a valid handle.
    pub id: u64,
}

/// One impression as the capture received it. Strings are NUL-terminated and owned by
/// the capture: valid until it is freed.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct SightlineCapturedImpression {
    /// The session that logged it.
    pub session_id: *const c_char,
    /// Its seq in the session.
    pub seq: u64,
    /// The page view's page name.
    pub page: *const c_char,
    /// The page view's per-session ordinal.
    pub page_view: u64,
    /// The page view's request id, or NULL.
    pub request_id: *const c_char,
    /// The item.
    pub item_id: *const c_char,
    /// Its artwork, or NULL.
    pub artwork_id: *const c_char,
    /// 0-based row.
    pub row: u32,
    /// 0-based column.
    pub column: u32,
    /// Milliseconds from the page view's start to first visibility.
    pub first_visible_ms: i64,
    /// How long it was visible.
    pub visible_ms: u32,
    /// Largest visible percentage.
    pub max_visible_pct: u32,
    /// How long it was focused.
    pub focused_ms: u32,
    /// Codes of the rules it breaks (`rule_count` of them; none for a good impression).
    pub rules: *const u32,
    /// Entries of `rules`.
    pub rule_count: usize,
}

/// The C view of one impression and the memory it points into.
struct Row {
    view: SightlineCapturedImpression,
    _strings: Vec<CString>,
    _rules: Vec<u32>,
}

/// `text` as a C string. A NUL byte (possible in a hostile body: the contract flags such
/// an id) becomes U+FFFD, so the string stays whole and C sees where it was.
fn c_string(text: &str) -> CString {
    let text = text.replace('\0', "\u{FFFD}");
    CString::new(text).unwrap_or_default()
}

impl Row {
    fn new(imp: &CapturedImpression) -> Row {
        let mut strings = Vec::new();
        let mut keep = |s: &str| -> *const c_char {
            let c = c_string(s);
            let p = c.as_ptr();
            strings.push(c);
            p
        };
        let mut keep_opt = |s: Option<&str>| s.map_or(core::ptr::null(), &mut keep);
        let session_id = keep_opt(Some(&imp.session_id));
        let page = keep_opt(Some(&imp.page));
        let request_id = keep_opt(imp.request_id.as_deref());
        let item_id = keep_opt(Some(&imp.item_id));
        let artwork_id = keep_opt(imp.artwork_id.as_deref());
        let rules: Vec<u32> = imp.rules.iter().map(|r| u32::from(r.code())).collect();
        Row {
            view: SightlineCapturedImpression {
                session_id,
                seq: imp.seq,
                page,
                page_view: imp.page_view,
                request_id,
                item_id,
                artwork_id,
                row: imp.row,
                column: imp.column,
                first_visible_ms: imp.first_visible_ms,
                visible_ms: imp.visible_ms,
                max_visible_pct: imp.max_visible_pct,
                focused_ms: imp.focused_ms,
                rules: if rules.is_empty() {
                    core::ptr::null()
                } else {
                    rules.as_ptr()
                },
                rule_count: rules.len(),
            },
            _strings: strings,
            _rules: rules,
        }
    }
}

// SAFETY: the view's pointers point only into the row's own strings and rule list, which
// move with it and are never shared mutably.
unsafe impl Send for Row {}

/// A capture and the C views of what it received.
pub(crate) struct CaptureState {
    capture: Capture,
    rows: Vec<Row>,
}

fn with_capture<R>(
    h: SightlineCapture,
    f: impl FnOnce(&mut CaptureState) -> Result<R>,
) -> Result<R> {
    with_entry(h.id, |entry| match entry {
        Entry::Capture(state) => f(state),
        _ => Err(SightlineStatus::InvalidHandle),
    })
}

/// Starts a capture checking against `contract` (the one the app's logger runs; NULL: the
/// default contract).
///
/// # Safety
/// `contract` is NULL or valid as `SightlineContract` describes; `capture` is valid for a
/// write.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn sightline_capture_new(
    contract: *const SightlineContract,
    capture: *mut SightlineCapture,
) -> SightlineStatus {
    guard(|| {
        // SAFETY: the caller's contract, for each argument.
        let capture = unsafe { out(capture) }?;
        let contract = match unsafe { contract.as_ref() } {
            Some(c) => unsafe { c.read() }?,
            None => Contract::default(),
        };
        let state = CaptureState {
            capture: Capture::new(contract),
            rows: Vec::new(),
        };
        *capture = SightlineCapture {
            id: handles::insert(Entry::Capture(state))?,
        };
        Ok(())
    })
}

/// Receives one upload body as the logger produced it. `SIGHTLINE_STATUS_DECODE` for bytes that
/// are not a Sightline upload (nothing changes then).
///
/// # Safety
/// `body` holds `len` bytes (or is NULL with 0).
#[unsafe(no_mangle)]
pub unsafe extern "C" fn sightline_capture_receive(
    capture: SightlineCapture,
    body: *const u8,
    len: usize,
) -> SightlineStatus {
    guard(|| {
        // SAFETY: the caller's contract.
        let body = unsafe { bytes_arg(body, len) }?;
        with_capture(capture, |s| {
            s.capture
                .receive(body)
                .map_err(|e| fail(SightlineStatus::Decode, e))?;
            let new = s.capture.impressions().get(s.rows.len()..).unwrap_or(&[]);
            s.rows.extend(new.iter().map(Row::new));
            Ok(())
        })
    })
}

/// Writes how many impressions the capture holds (each (session, seq) once) to `*count`.
///
/// # Safety
/// `count` is valid for a write.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn sightline_capture_impression_count(
    capture: SightlineCapture,
    count: *mut usize,
) -> SightlineStatus {
    guard(|| {
        // SAFETY: the caller's contract.
        let count = unsafe { out(count) }?;
        with_capture(capture, |s| {
            *count = s.rows.len();
            Ok(())
        })
    })
}

/// Writes impression `index` (in arrival and wire order) to `*impression`;
/// `SIGHTLINE_STATUS_INVALID_ARGUMENT` past the end.
///
/// # Safety
/// `impression` is valid for a write.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn sightline_capture_impression(
    capture: SightlineCapture,
    index: usize,
    impression: *mut SightlineCapturedImpression,
) -> SightlineStatus {
    guard(|| {
        // SAFETY: the caller's contract.
        let impression = unsafe { out(impression) }?;
        with_capture(capture, |s| {
            let row = s.rows.get(index).ok_or(SightlineStatus::InvalidArgument)?;
            *impression = row.view;
            Ok(())
        })
    })
}

/// Writes how many rule violations the capture found (per impression and per batch).
///
/// # Safety
/// `count` is valid for a write.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn sightline_capture_violation_count(
    capture: SightlineCapture,
    count: *mut usize,
) -> SightlineStatus {
    guard(|| {
        // SAFETY: the caller's contract.
        let count = unsafe { out(count) }?;
        with_capture(capture, |s| {
            *count = s.capture.violations().len();
            Ok(())
        })
    })
}

/// A producer's CI check: `SIGHTLINE_STATUS_OK` when the capture holds no violation, no input
/// the device refused and no seq conflict; otherwise `SIGHTLINE_STATUS_REFUSED` with the message
/// (rule, item, position, session, seq) copied into `buf` as `sightline_last_error_message`
/// does (a message that does not fit is cut at `capacity - 1` bytes; `*len` is its full
/// length).
///
/// # Safety
/// `buf` is valid for `capacity` bytes (or NULL with 0); `len` is NULL or valid.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn sightline_capture_assert_no_violations(
    capture: SightlineCapture,
    buf: *mut c_char,
    capacity: usize,
    len: *mut usize,
) -> SightlineStatus {
    guard(|| {
        with_capture(capture, |s| match s.capture.assert_no_violations() {
            Ok(()) => Ok(()),
            Err(failure) => {
                let text = failure.message.as_bytes();
                let cut = &text[..text.len().min(capacity.saturating_sub(1))];
                let mut written = 0;
                if !buf.is_null() && capacity > 0 {
                    // SAFETY: the caller's contract; `cut` plus a NUL fits in `capacity`.
                    unsafe { copy_out(cut, buf, capacity, &mut written) }?;
                }
                // SAFETY: the caller's contract.
                if let Some(len) = unsafe { len.as_mut() } {
                    *len = text.len();
                }
                Err(SightlineStatus::Refused)
            }
        })
    })
}

/// Frees a capture and every string it lent.
#[unsafe(no_mangle)]
pub extern "C" fn sightline_capture_free(capture: SightlineCapture) -> SightlineStatus {
    guard(|| handles::free(capture.id, |e| matches!(e, Entry::Capture(_))))
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_nul_in_a_decoded_string_is_replaced_not_fatal() {
        let c = super::c_string("title:ABC\0EFG");
        assert_eq!(c.to_str(), Ok("title:ABC\u{FFFD}EFG"));
    }
}
