//! What the logger hands the host: uploads (owned by the host until
//! `sightline_upload_free`) and store operations (lent until their result is reported).

use alloc::boxed::Box;
use alloc::string::String;
use alloc::vec::Vec;
use core::ffi::c_char;

use sightline_core::{Header, StoreOp, StoreRequest, Upload};

use crate::status::{Result, SightlineStatus};

/// An HTTP header of an upload, NUL-terminated ASCII.
#[repr(C)]
#[derive(Debug)]
pub struct SightlineHeader {
    /// e.g. "Content-Type".
    pub name: *const c_char,
    /// e.g. "application/x-protobuf".
    pub value: *const c_char,
}

/// A request to POST `body` to `<collector><path>` with `headers`. Report how it ended
/// with `sightline_logger_handle_upload_result(id, ...)`, then free it with
/// `sightline_upload_free` (in either order; it may be freed on another thread).
#[repr(C)]
#[derive(Debug)]
pub struct SightlineUpload {
    /// Pass back to `sightline_logger_handle_upload_result`.
    pub id: u64,
    /// e.g. "/v1/batches".
    pub path: *const c_char,
    /// `header_count` headers.
    pub headers: *const SightlineHeader,
    /// Entries of `headers`.
    pub header_count: usize,
    /// The body (gzip), `body_len` bytes.
    pub body: *const u8,
    /// Bytes of `body`.
    pub body_len: usize,
}

/// The upload with the memory its pointers point into; `view` first, so a pointer to
/// the view is a pointer to the whole.
#[repr(C)]
pub(crate) struct OwnedUpload {
    view: SightlineUpload,
    /// The core's strings, each with a NUL pushed on (they hold none: the core builds
    /// them from validated ids and fixed names).
    path: String,
    names: Vec<Header>,
    headers: Vec<SightlineHeader>,
    body: Vec<u8>,
}

/// `text` as a C string, in place.
fn terminate(text: &mut String) -> *const c_char {
    text.push('\0');
    text.as_ptr().cast()
}

impl OwnedUpload {
    /// Moves the core's upload behind a C view (nothing is copied).
    pub(crate) fn into_c(upload: Upload) -> *mut SightlineUpload {
        let Upload {
            id,
            mut path,
            headers: mut names,
            body,
        } = upload;
        let headers = names
            .iter_mut()
            .map(|h| SightlineHeader {
                name: terminate(&mut h.name),
                value: terminate(&mut h.value),
            })
            .collect::<Vec<_>>();
        let view = SightlineUpload {
            id,
            path: terminate(&mut path),
            headers: headers.as_ptr(),
            header_count: headers.len(),
            body: body.as_ptr(),
            body_len: body.len(),
        };
        // The strings, the header array and the body are heap blocks: moving their owners
        // into the box leaves the pointers above valid.
        let owned = Box::new(OwnedUpload {
            view,
            path,
            names,
            headers,
            body,
        });
        Box::into_raw(owned).cast::<SightlineUpload>()
    }
}

/// Frees an upload from `sightline_logger_poll_upload`. NULL is ignored. Free each upload
/// exactly once (bare metal: not while `SIGHTLINE_STATUS_BUSY` is returned).
///
/// # Safety
/// `upload` is NULL or a pointer `sightline_logger_poll_upload` returned, not yet freed.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn sightline_upload_free(upload: *mut SightlineUpload) -> SightlineStatus {
    crate::status::guard(|| {
        if !upload.is_null() {
            // SAFETY: `upload` came from `OwnedUpload::into_c` (Box::into_raw of an
            // OwnedUpload whose first field is the view, repr(C)) and is freed once by the
            // caller's contract.
            drop(unsafe { Box::from_raw(upload.cast::<OwnedUpload>()) });
        }
        Ok(())
    })
}

/// The kind of a store operation.
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SightlineStoreOpKind {
    /// Atomically replace the value under `key` with `bytes` (after a crash: the old or
    /// the new value, never a mix).
    Put = 0,
    /// Remove `key`; removing a missing key is not an error.
    Remove = 1,
    /// Append `bytes` to the journal (need not be synced: a torn tail is detected).
    Append = 2,
    /// Empty the journal.
    ClearJournal = 3,
}

/// Longest store key, NUL included: keys are short fixed names and numbered batches.
pub const SIGHTLINE_MAX_KEY_BYTES: usize = 64;

/// One store operation to perform, then report with
/// `sightline_logger_handle_store_result(id, ...)`. `bytes` points into the logger's
/// memory and stays valid until that result is reported or the logger is freed.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct SightlineStoreOp {
    /// Pass back to `sightline_logger_handle_store_result`.
    pub id: u64,
    /// What to do.
    pub kind: SightlineStoreOpKind,
    /// The value's key (`PUT`, `REMOVE`), NUL-terminated; "" otherwise.
    pub key: [c_char; SIGHTLINE_MAX_KEY_BYTES],
    /// The value (`PUT`) or the journal bytes (`APPEND`); NULL when `len` is 0 (do not
    /// pass it to `memcpy` then).
    pub bytes: *const u8,
    /// Bytes at `bytes`.
    pub len: usize,
}

impl SightlineStoreOp {
    /// The C view of a lent request.
    pub(crate) fn view(request: &StoreRequest) -> Result<SightlineStoreOp> {
        let (kind, key, bytes): (_, &str, &[u8]) = match &request.op {
            StoreOp::Put { key, value } => (SightlineStoreOpKind::Put, key, value),
            StoreOp::Remove { key } => (SightlineStoreOpKind::Remove, key, &[]),
            StoreOp::Append { bytes } => (SightlineStoreOpKind::Append, "", bytes),
            StoreOp::ClearJournal => (SightlineStoreOpKind::ClearJournal, "", &[]),
        };
        let mut op = SightlineStoreOp {
            id: request.id,
            kind,
            key: [0; SIGHTLINE_MAX_KEY_BYTES],
            bytes: if bytes.is_empty() {
                core::ptr::null()
            } else {
                bytes.as_ptr()
            },
            len: bytes.len(),
        };
        if key.len() >= SIGHTLINE_MAX_KEY_BYTES {
            return Err(SightlineStatus::Internal);
        }
        for (slot, &b) in op.key.iter_mut().zip(key.as_bytes()) {
            *slot = b as c_char;
        }
        Ok(op)
    }
}

/// How a store operation ended.
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SightlineStoreResult {
    /// Performed (for `PUT`: durably).
    Done = 0,
    /// The write would exceed the device's storage budget.
    QuotaExceeded = 1,
    /// The medium failed.
    IoError = 2,
}

/// A value the host read back from its store at start.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct SightlineStoredValue {
    /// Its key, as given in the `PUT`.
    pub key: *const c_char,
    /// Its bytes.
    pub value: *const u8,
    /// Bytes at `value`.
    pub len: usize,
}
