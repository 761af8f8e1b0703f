//! Strings and byte ranges crossing the boundary: C strings in (bounded, checked UTF-8),
//! bytes in, and text copied out into caller buffers.

use alloc::string::String;
use alloc::vec::Vec;
use core::ffi::c_char;

use crate::status::{Result, SightlineStatus};

/// Longest C string read, NUL excluded: ids are at most 255 bytes and paths or endpoints
/// fit easily; the bound stops a scan of an unterminated buffer early.
pub const SIGHTLINE_MAX_STRING_BYTES: usize = 4096;

/// A required string argument.
///
/// # Safety
/// `p` is NULL or points to memory readable up to its NUL or
/// [`SIGHTLINE_MAX_STRING_BYTES`] + 1 bytes, whichever comes first.
pub(crate) unsafe fn str_arg<'a>(p: *const c_char) -> Result<&'a str> {
    // SAFETY: the caller's contract.
    unsafe { opt_str_arg(p) }?.ok_or(SightlineStatus::NullArgument)
}

/// An optional string argument: NULL is `None`.
///
/// # Safety
/// As [`str_arg`].
pub(crate) unsafe fn opt_str_arg<'a>(p: *const c_char) -> Result<Option<&'a str>> {
    if p.is_null() {
        return Ok(None);
    }
    let p = p.cast::<u8>();
    let mut len = 0;
    // SAFETY: bytes up to the NUL (or the bound) are readable by the caller's contract,
    // and the loop reads no further than the first NUL.
    while unsafe { *p.add(len) } != 0 {
        len += 1;
        if len > SIGHTLINE_MAX_STRING_BYTES {
            return Err(SightlineStatus::StringTooLong);
        }
    }
    // SAFETY: the `len` bytes before the NUL were just read.
    let bytes = unsafe { core::slice::from_raw_parts(p, len) };
    core::str::from_utf8(bytes)
        .map(Some)
        .map_err(|_| SightlineStatus::InvalidUtf8)
}

/// A byte range argument; NULL is allowed only with length 0.
///
/// # Safety
/// `p` is NULL or valid for reads of `len` bytes.
pub(crate) unsafe fn bytes_arg<'a>(p: *const u8, len: usize) -> Result<&'a [u8]> {
    if len == 0 {
        return Ok(&[]);
    }
    if p.is_null() {
        return Err(SightlineStatus::NullArgument);
    }
    // SAFETY: the caller's contract.
    Ok(unsafe { core::slice::from_raw_parts(p, len) })
}

/// An array argument of `count` elements; NULL is allowed only with count 0.
///
/// # Safety
/// `p` is NULL or valid for reads of `count` elements.
pub(crate) unsafe fn slice_arg<'a, T>(p: *const T, count: usize) -> Result<&'a [T]> {
    if count == 0 {
        return Ok(&[]);
    }
    if p.is_null() {
        return Err(SightlineStatus::NullArgument);
    }
    // SAFETY: the caller's contract.
    Ok(unsafe { core::slice::from_raw_parts(p, count) })
}

/// An array of `count` required strings, copied: the contract's pages, a layout's ids.
/// The first entry that fails gives the status.
///
/// # Safety
/// As [`slice_arg`], each entry as [`str_arg`].
pub(crate) unsafe fn strings_arg(p: *const *const c_char, count: usize) -> Result<Vec<String>> {
    // SAFETY: the caller's contract.
    let ptrs = unsafe { slice_arg(p, count) }?;
    let mut strings = Vec::with_capacity(ptrs.len());
    for &s in ptrs {
        // SAFETY: the caller's contract, for each entry.
        strings.push(String::from(unsafe { str_arg(s) }?));
    }
    Ok(strings)
}

/// A required out-parameter.
///
/// # Safety
/// `p` is NULL or valid for writes of a `T`.
pub(crate) unsafe fn out<'a, T>(p: *mut T) -> Result<&'a mut T> {
    // SAFETY: the caller's contract; NULL is refused.
    unsafe { p.as_mut() }.ok_or(SightlineStatus::NullArgument)
}

/// Copies `text` and a NUL into `buf` and its length into `*len`; if it does not fit,
/// writes only the length needed and returns `SIGHTLINE_STATUS_BUFFER_TOO_SMALL`.
///
/// # Safety
/// `buf` is valid for writes of `capacity` bytes (or NULL with capacity 0); `len` is NULL
/// or valid for a write.
pub(crate) unsafe fn copy_out(
    text: &[u8],
    buf: *mut c_char,
    capacity: usize,
    len: *mut usize,
) -> Result {
    // SAFETY: the caller's contract.
    let len = unsafe { out(len) }?;
    if buf.is_null() && capacity > 0 {
        return Err(SightlineStatus::NullArgument);
    }
    *len = text.len();
    if capacity <= text.len() {
        return Err(SightlineStatus::BufferTooSmall);
    }
    // SAFETY: `buf` holds `capacity` > text.len() bytes, so the text and its NUL fit; the
    // ranges cannot overlap (ours is Rust-owned).
    unsafe {
        core::ptr::copy_nonoverlapping(text.as_ptr(), buf.cast::<u8>(), text.len());
        *buf.add(text.len()) = 0;
    }
    Ok(())
}
