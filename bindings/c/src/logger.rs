//! [`SightlineLogger`]: the core's sans-IO logger, for firmware event loops. The host
//! passes inputs with the time, then drains store operations, uploads and the next
//! deadline through poll calls, performs them and reports the results: no callbacks.
//!
//! ```text
//! after any input:  while (poll_store_op(&op) == OK) { perform op; handle_store_result(op.id, ..) }
//!                   while (poll_upload(now, &u) == OK) { start POST of u }
//!                   if (poll_timeout(&deadline) == OK) arm a timer
//! on timer:         handle_timeout(now)
//! on HTTP result:   handle_upload_result(u->id, status, retry_after, now); upload_free(u)
//! ```

use alloc::collections::BTreeMap;
use alloc::string::{String, ToString};
use alloc::vec::Vec;
use core::ffi::c_char;

use sightline_core::{self as core_, Logger, Rule, StoreError, Stored, UploadOutcome};

use crate::handles::{self, Entry, with_entry};
use crate::output::{
    OwnedUpload, SightlineStoreOp, SightlineStoreResult, SightlineStoredValue, SightlineUpload,
};
use crate::status::{Result, SightlineStatus, fail, guard};
use crate::text::{bytes_arg, copy_out, opt_str_arg, out, slice_arg, str_arg, strings_arg};
use crate::types::{
    SightlineConfig, SightlineImpression, SightlineItem, SightlineNow, SightlineRecorded,
    SightlineStats,
};

/// A logger. A plain value: copy it freely; once freed, every copy is invalid.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SightlineLogger {
    /// Opaque; 0 is never a valid handle.
    pub id: u64,
}

/// The `handle_upload_result` status for "no answer": DNS, connection, TLS or timeout.
pub const SIGHTLINE_NETWORK_ERROR: u16 = 0;

/// A logger and what the C side needs beside it.
pub(crate) struct LoggerState {
    logger: Logger,
    /// The rule of the last refused input, for `sightline_logger_last_refusal`.
    last_refusal: Option<Rule>,
}

impl LoggerState {
    /// Notes the rule of a refusal before it becomes `SIGHTLINE_STATUS_REFUSED`.
    fn note(&mut self, rule: Rule) -> SightlineStatus {
        self.last_refusal = Some(rule);
        SightlineStatus::Refused
    }
}

/// Runs `f` on the logger `h` names.
fn with_logger<R>(h: SightlineLogger, f: impl FnOnce(&mut LoggerState) -> Result<R>) -> Result<R> {
    with_entry(h.id, |entry| match entry {
        Entry::Logger(state) => f(state),
        // Without std a logger is the only kind of object.
        #[cfg(feature = "std")]
        _ => Err(SightlineStatus::InvalidHandle),
    })
}

/// Runs an input that may be refused by a rule.
fn input(
    h: SightlineLogger,
    f: impl FnOnce(&mut Logger) -> core::result::Result<(), Rule>,
) -> SightlineStatus {
    guard(|| with_logger(h, |s| f(&mut s.logger).map_err(|rule| s.note(rule))))
}

/// Starts a logger over what the host's store holds: `values` (`value_count` entries) and
/// the journal's bytes, both empty on a first start. A store that could not be read must
/// not be passed as empty: that would start a new session over old data. The first store
/// operations (a checkpoint) are ready to drain at once. `SIGHTLINE_STATUS_CONFIG` for an invalid
/// configuration.
///
/// # Safety
/// `config` is valid as `sightline_config_init` describes; `values` holds `value_count`
/// entries (or is NULL with 0); `journal` holds `journal_len` bytes (or is NULL with 0);
/// `logger` is valid for a write.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn sightline_logger_resume(
    config: *const SightlineConfig,
    values: *const SightlineStoredValue,
    value_count: usize,
    journal: *const u8,
    journal_len: usize,
    now: SightlineNow,
    logger: *mut SightlineLogger,
) -> SightlineStatus {
    guard(|| {
        // SAFETY: the caller's contract, for each argument.
        let config = unsafe { config.as_ref() }.ok_or(SightlineStatus::NullArgument)?;
        let config = unsafe { config.read() }?;
        let logger = unsafe { out(logger) }?;
        let mut stored = Stored {
            values: BTreeMap::new(),
            journal: unsafe { bytes_arg(journal, journal_len) }?.to_vec(),
        };
        for v in unsafe { slice_arg(values, value_count) }? {
            let key = unsafe { str_arg(v.key) }?.to_string();
            let value = unsafe { bytes_arg(v.value, v.len) }?.to_vec();
            stored.values.insert(key, value);
        }
        let core_logger = Logger::resume(config, stored, now.into())
            .map_err(|e| fail(SightlineStatus::Config, e))?;
        let id = handles::insert(Entry::Logger(LoggerState {
            logger: core_logger,
            last_refusal: None,
        }))?;
        *logger = SightlineLogger { id };
        Ok(())
    })
}

/// Frees a logger. Queued data not yet stored is lost (what was stored is resumed by the
/// next `sightline_logger_resume`); freeing an invalid handle returns
/// `SIGHTLINE_STATUS_INVALID_HANDLE` and does nothing.
#[unsafe(no_mangle)]
pub extern "C" fn sightline_logger_free(logger: SightlineLogger) -> SightlineStatus {
    guard(|| handles::free(logger.id, |e| matches!(e, Entry::Logger(_))))
}

/// Copies the session id (NUL-terminated) into `buf`; `*len` receives its length.
///
/// # Safety
/// `buf` is valid for `capacity` bytes; `len` for a write.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn sightline_logger_session_id(
    logger: SightlineLogger,
    buf: *mut c_char,
    capacity: usize,
    len: *mut usize,
) -> SightlineStatus {
    guard(|| {
        with_logger(logger, |s| {
            // SAFETY: the caller's contract.
            unsafe { copy_out(s.logger.session_id().as_bytes(), buf, capacity, len) }
        })
    })
}

/// Starts a page view and writes its id to `*page_view`. `request_id` may be NULL.
/// `layout_ids` (`id_count` strings) and `row_lengths` (`row_count` entries) give the
/// page's layout as the server sent it, flat: row 0's `row_lengths[0]` item ids first,
/// then row 1's, and so on; `row_lengths` NULL means no layout, and lengths that do not
/// add up to `id_count` are `SIGHTLINE_STATUS_INVALID_ARGUMENT`. Impressions of items not
/// on the layout, or elsewhere on it, are then refused.
///
/// # Safety
/// `page` is a valid C string, `request_id` one or NULL; `layout_ids` holds `id_count`
/// valid C strings and `row_lengths` `row_count` entries (each NULL only with count 0);
/// `page_view` is valid for a write.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn sightline_logger_start_page_view(
    logger: SightlineLogger,
    page: *const c_char,
    request_id: *const c_char,
    layout_ids: *const *const c_char,
    id_count: usize,
    row_lengths: *const u32,
    row_count: usize,
    now: SightlineNow,
    page_view: *mut u64,
) -> SightlineStatus {
    guard(|| {
        // SAFETY: the caller's contract, for each argument.
        let page = unsafe { str_arg(page) }?;
        let request_id = unsafe { opt_str_arg(request_id) }?;
        let page_view = unsafe { out(page_view) }?;
        // SAFETY: as above.
        let layout = unsafe { layout_arg(layout_ids, id_count, row_lengths, row_count) }?;
        with_logger(logger, |s| {
            let id = s
                .logger
                .start_page_view(page, request_id, layout.as_deref(), now.into())
                .map_err(|rule| s.note(rule))?;
            *page_view = id;
            Ok(())
        })
    })
}

/// A layout in its flat C form, as rows of ids.
///
/// # Safety
/// As `sightline_logger_start_page_view`.
pub(crate) unsafe fn layout_arg(
    ids: *const *const c_char,
    id_count: usize,
    row_lengths: *const u32,
    row_count: usize,
) -> Result<Option<Vec<Vec<String>>>> {
    if row_lengths.is_null() {
        return Ok(None);
    }
    // SAFETY: the caller's contract, for both arrays.
    let lengths = unsafe { slice_arg(row_lengths, row_count) }?;
    let ids = unsafe { strings_arg(ids, id_count) }?;
    core_::layout_from_flat(ids, lengths)
        .map(Some)
        .ok_or(SightlineStatus::InvalidArgument)
}

/// Ends a page view: what qualified is logged, exposures still open end now.
#[unsafe(no_mangle)]
pub extern "C" fn sightline_logger_end_page_view(
    logger: SightlineLogger,
    page_view: u64,
    now: SightlineNow,
) -> SightlineStatus {
    input(logger, |l| l.end_page_view(page_view, now.into()))
}

/// The visible share (0.0..=1.0) of an item changed; the core qualifies impressions from
/// these changes (threshold, continuous minimum time, pauses while hidden).
///
/// # Safety
/// `item` is valid as `SightlineItem` describes.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn sightline_logger_visibility(
    logger: SightlineLogger,
    page_view: u64,
    item: *const SightlineItem,
    fraction: f32,
    now: SightlineNow,
) -> SightlineStatus {
    guard(|| {
        // SAFETY: the caller's contract.
        let item = unsafe { item.as_ref() }.ok_or(SightlineStatus::NullArgument)?;
        let item = unsafe { item.read() }?;
        with_logger(logger, |s| {
            s.logger
                .handle_visibility(page_view, &item, fraction, now.into())
                .map_err(|rule| s.note(rule))
        })
    })
}

/// An item gained or lost focus (TV remote navigation).
///
/// # Safety
/// `item` is valid as `SightlineItem` describes.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn sightline_logger_focus(
    logger: SightlineLogger,
    page_view: u64,
    item: *const SightlineItem,
    focused: bool,
    now: SightlineNow,
) -> SightlineStatus {
    guard(|| {
        // SAFETY: the caller's contract.
        let item = unsafe { item.as_ref() }.ok_or(SightlineStatus::NullArgument)?;
        let item = unsafe { item.read() }?;
        with_logger(logger, |s| {
            s.logger
                .handle_focus(page_view, &item, focused, now.into())
                .map_err(|rule| s.note(rule))
        })
    })
}

/// The app went to the background (screen off, another app): viewability pauses, what
/// qualified is logged and the batch closes.
#[unsafe(no_mangle)]
pub extern "C" fn sightline_logger_app_hidden(
    logger: SightlineLogger,
    now: SightlineNow,
) -> SightlineStatus {
    input(logger, |l| {
        l.handle_app_hidden(now.into());
        Ok(())
    })
}

/// The app is in the foreground again.
#[unsafe(no_mangle)]
pub extern "C" fn sightline_logger_app_visible(
    logger: SightlineLogger,
    now: SightlineNow,
) -> SightlineStatus {
    input(logger, |l| {
        l.handle_app_visible(now.into());
        Ok(())
    })
}

/// Records an impression the host qualified itself; `*recorded` (may be NULL) says what
/// happened to it.
///
/// # Safety
/// `impression` is valid as `SightlineImpression` describes; `recorded` is NULL or valid
/// for a write.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn sightline_logger_record_impression(
    logger: SightlineLogger,
    page_view: u64,
    impression: *const SightlineImpression,
    now: SightlineNow,
    recorded: *mut SightlineRecorded,
) -> SightlineStatus {
    guard(|| {
        // SAFETY: the caller's contract.
        let impression = unsafe { impression.as_ref() }.ok_or(SightlineStatus::NullArgument)?;
        let impression = unsafe { impression.read() }?;
        let recorded = unsafe { recorded.as_mut() };
        with_logger(logger, |s| {
            let r = s
                .logger
                .record_impression(page_view, &impression, now.into())
                .map_err(|rule| s.note(rule))?;
            if let Some(recorded) = recorded {
                *recorded = r.into();
            }
            Ok(())
        })
    })
}

/// Closes the open batch so it is stored and sent.
#[unsafe(no_mangle)]
pub extern "C" fn sightline_logger_flush(
    logger: SightlineLogger,
    now: SightlineNow,
) -> SightlineStatus {
    input(logger, |l| {
        l.flush(now.into());
        Ok(())
    })
}

/// Opt-out (`enabled` false; `purge` also deletes what is queued, counted as purged) and
/// opt-in again.
#[unsafe(no_mangle)]
pub extern "C" fn sightline_logger_set_enabled(
    logger: SightlineLogger,
    enabled: bool,
    purge: bool,
    now: SightlineNow,
) -> SightlineStatus {
    input(logger, |l| {
        l.set_enabled(enabled, purge, now.into());
        Ok(())
    })
}

/// The deadline from `sightline_logger_poll_timeout` passed.
#[unsafe(no_mangle)]
pub extern "C" fn sightline_logger_handle_timeout(
    logger: SightlineLogger,
    now: SightlineNow,
) -> SightlineStatus {
    input(logger, |l| {
        l.handle_timeout(now.into());
        Ok(())
    })
}

/// Writes the monotonic time at which to call `sightline_logger_handle_timeout` to
/// `*deadline_mono_ms`; `SIGHTLINE_STATUS_EMPTY` when nothing waits for a timer.
///
/// # Safety
/// `deadline_mono_ms` is valid for a write.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn sightline_logger_poll_timeout(
    logger: SightlineLogger,
    deadline_mono_ms: *mut u64,
) -> SightlineStatus {
    guard(|| {
        // SAFETY: the caller's contract.
        let deadline = unsafe { out(deadline_mono_ms) }?;
        with_logger(logger, |s| {
            *deadline = s.logger.poll_timeout().ok_or(SightlineStatus::Empty)?;
            Ok(())
        })
    })
}

/// Writes the next store operation to perform to `*op`; `SIGHTLINE_STATUS_EMPTY` when there is
/// none. One is handed out at a time: until its result is reported with
/// `sightline_logger_handle_store_result`, polling again returns `SIGHTLINE_STATUS_EMPTY`
/// (the operation handed out stays valid).
///
/// # Safety
/// `op` is valid for a write.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn sightline_logger_poll_store_op(
    logger: SightlineLogger,
    op: *mut SightlineStoreOp,
) -> SightlineStatus {
    guard(|| {
        // SAFETY: the caller's contract.
        let op = unsafe { out(op) }?;
        with_logger(logger, |s| {
            let request = s.logger.poll_store_op().ok_or(SightlineStatus::Empty)?;
            *op = SightlineStoreOp::view(request)?;
            Ok(())
        })
    })
}

/// Reports how the store operation `id` ended. A failure is counted and what depended on
/// it is not done; the data stays in memory and is written again later.
#[unsafe(no_mangle)]
pub extern "C" fn sightline_logger_handle_store_result(
    logger: SightlineLogger,
    id: u64,
    result: u32,
) -> SightlineStatus {
    guard(|| {
        let result = match result {
            r if r == SightlineStoreResult::Done as u32 => Ok(()),
            r if r == SightlineStoreResult::QuotaExceeded as u32 => Err(StoreError::QuotaExceeded),
            r if r == SightlineStoreResult::IoError as u32 => {
                Err(StoreError::Io(String::from("reported by the host")))
            }
            _ => return Err(SightlineStatus::InvalidArgument),
        };
        with_logger(logger, |s| {
            s.logger
                .handle_store_result(id, result)
                .map_err(|_| SightlineStatus::UnknownId)
        })
    })
}

/// Writes the next upload to POST to `*upload`, owned by the caller until
/// `sightline_upload_free`; `SIGHTLINE_STATUS_EMPTY` when none is due (at most one is in flight).
///
/// # Safety
/// `upload` is valid for a write.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn sightline_logger_poll_upload(
    logger: SightlineLogger,
    now: SightlineNow,
    upload: *mut *mut SightlineUpload,
) -> SightlineStatus {
    guard(|| {
        // SAFETY: the caller's contract.
        let upload = unsafe { out(upload) }?;
        let next = with_logger(logger, |s| {
            s.logger
                .poll_upload(now.into())
                .ok_or(SightlineStatus::Empty)
        })?;
        *upload = OwnedUpload::into_c(next);
        Ok(())
    })
}

/// Reports how the upload `id` ended: the HTTP `status` (or `SIGHTLINE_NETWORK_ERROR`
/// when there was no answer) and the raw `Retry-After` header text, or NULL. Header text
/// that is not UTF-8 or is unterminated is ignored (as absent): the status still counts.
///
/// # Safety
/// `retry_after` is NULL or a valid C string.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn sightline_logger_handle_upload_result(
    logger: SightlineLogger,
    id: u64,
    status: u16,
    retry_after: *const c_char,
    now: SightlineNow,
) -> SightlineStatus {
    guard(|| {
        // SAFETY: the caller's contract. A proxy's garbage must not lose the result.
        let retry_after = unsafe { opt_str_arg(retry_after) }.unwrap_or(None);
        let outcome = if status == SIGHTLINE_NETWORK_ERROR {
            UploadOutcome::NetworkError
        } else {
            UploadOutcome::Status {
                code: status,
                retry_after: retry_after.map(ToString::to_string),
            }
        };
        with_logger(logger, |s| {
            s.logger
                .handle_upload_result(id, outcome, now.into())
                .map_err(|e| SightlineStatus::of_input(core_::InputError::UnknownUpload(e)))
        })
    })
}

/// Copies the session's counters into `*stats`.
///
/// # Safety
/// `stats` is valid for a write.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn sightline_logger_stats(
    logger: SightlineLogger,
    stats: *mut SightlineStats,
) -> SightlineStatus {
    guard(|| {
        // SAFETY: the caller's contract.
        let stats = unsafe { out(stats) }?;
        with_logger(logger, |s| {
            *stats = s.logger.stats().into();
            Ok(())
        })
    })
}

/// Writes the rule code of the logger's last `SIGHTLINE_STATUS_REFUSED` input to `*rule`
/// (`sightline_rule_name` names it); `SIGHTLINE_STATUS_EMPTY` if nothing was refused yet.
///
/// # Safety
/// `rule` is valid for a write.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn sightline_logger_last_refusal(
    logger: SightlineLogger,
    rule: *mut u32,
) -> SightlineStatus {
    guard(|| {
        // SAFETY: the caller's contract.
        let rule = unsafe { out(rule) }?;
        with_logger(logger, |s| {
            *rule = u32::from(s.last_refusal.ok_or(SightlineStatus::Empty)?.code());
            Ok(())
        })
    })
}
