//! What the logger hands the host: uploads (owned by the host until
//! `sightline_upload_free`) and store operations (lent until their result is reported).

use alloc::boxed::Box;
use alloc::ffi::CString;
use alloc::vec::Vec;
use core::ffi::c_char;

use sightline_core::{StoreOp, StoreRequest, Upload};

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
    path: CString,
    names: Vec<(CString, CString)>,
    headers: Vec<SightlineHeader>,
    body: Vec<u8>,
}

impl OwnedUpload {
    /// Moves the core's upload behind a C view (the body is not copied).
    pub(crate) fn into_c(upload: Upload) -> Result<*mut SightlineUpload> {
        let cstr =
            |s: alloc::string::String| CString::new(s).map_err(|_| SightlineStatus::Internal);
        let names = upload
            .headers
            .into_iter()
            .map(|h| Ok((cstr(h.name)?, cstr(h.value)?)))
            .collect::<Result<Vec<_>>>()?;
        let mut owned = Box::new(OwnedUpload {
            view: SightlineUpload {
                id: upload.id,
                path: core::ptr::null(),
                headers: core::ptr::null(),
                header_count: 0,
                body: core::ptr::null(),
                body_len: 0,
            },
            path: cstr(upload.path)?,
            headers: Vec::new(),
            names,
            body: upload.body,
        });
        // The strings and the body live on the heap, so these pointers survive moving the box.
        let headers = owned
            .names
            .iter()
            .map(|(name, value)| SightlineHeader {
                name: name.as_ptr(),
                value: value.as_ptr(),
            })
            .collect();
        owned.headers = headers;
        owned.view.path = owned.path.as_ptr();
        owned.view.headers = owned.headers.as_ptr();
        owned.view.header_count = owned.headers.len();
        owned.view.body = owned.body.as_ptr();
        owned.view.body_len = owned.body.len();
        Ok(Box::into_raw(owned).cast::<SightlineUpload>())
    }
}

/// Frees an upload from `sightline_logger_poll_upload`. NULL is ignored. Free each upload
/// exactly once.
///
/// # Safety
/// `upload` is NULL or a pointer `sightline_logger_poll_upload` returned, not yet freed.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn sightline_upload_free(upload: *mut SightlineUpload) {
    if !upload.is_null() {
        // SAFETY: `upload` came from `OwnedUpload::into_c` (Box::into_raw of an OwnedUpload
        // whose first field is the view, repr(C)) and is freed once by the caller's
        // contract. Dropping frees plain memory only, which cannot panic.
        drop(unsafe { Box::from_raw(upload.cast::<OwnedUpload>()) });
    }
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
    /// The value (`PUT`) or the journal bytes (`APPEND`); NULL otherwise.
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
