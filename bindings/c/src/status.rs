//! [`SightlineStatus`], the result of every call, and the entry guard that turns a Rust
//! error or a caught panic into one. The status of a failed call says which argument or
//! surface was wrong; with `std`, [`sightline_last_error_message`] adds a sentence.

use core::ffi::c_char;

use sightline_core::InputError;

/// The outcome of a call. 0 is success; every other value says what went wrong.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SightlineStatus {
    /// Done.
    Ok = 0,
    /// A poll call has nothing to hand out (no store operation, upload or deadline).
    Empty = 1,
    /// The logger refused the input: it breaks a contract rule or misuses the API (an
    /// unknown page view). Counted; `sightline_logger_last_refusal` names the rule (for
    /// the runtime: `sightline_last_error_message`).
    Refused = 2,
    /// A required pointer argument was NULL.
    NullArgument = 3,
    /// A string is not valid UTF-8.
    InvalidUtf8 = 4,
    /// A string has no NUL within `SIGHTLINE_MAX_STRING_BYTES` bytes.
    StringTooLong = 5,
    /// The handle was never issued, was freed, or is of another kind.
    InvalidHandle = 6,
    /// An argument is out of range: an unknown enum value, layout lengths that do not add
    /// up, an empty id list.
    InvalidArgument = 7,
    /// A caller buffer is too small; the length needed was written to the length
    /// out-parameter.
    BufferTooSmall = 8,
    /// The configuration is invalid (see `sightline_last_error_message`).
    Config = 9,
    /// A result names a store operation or upload that is not in flight.
    UnknownId = 10,
    /// The store could not be opened or read.
    Store = 11,
    /// Bytes that are not a Sightline upload body.
    Decode = 12,
    /// Bare metal: another call is inside the library (a call from an interrupt handler
    /// while the main loop is in Sightline). Nothing was done, nothing was allocated;
    /// call again later.
    Busy = 13,
    /// The runtime was shut down.
    Stopped = 14,
    /// A bug in Sightline (a caught panic). If it happened inside a call on a handle, that
    /// handle is poisoned: every later call on it returns this; free it and start again.
    Internal = 15,
    /// `SIGHTLINE_MAX_HANDLES` objects are alive: free one first.
    TooManyHandles = 16,
}

impl SightlineStatus {
    /// The status of a refused input, or of a result for an id not in flight.
    pub(crate) fn of_input(error: InputError) -> SightlineStatus {
        match error.rule() {
            Some(_) => SightlineStatus::Refused,
            None => SightlineStatus::UnknownId,
        }
    }

    /// The constant's name, NUL-terminated.
    fn name(self) -> &'static core::ffi::CStr {
        match self {
            SightlineStatus::Ok => c"SIGHTLINE_STATUS_OK",
            SightlineStatus::Empty => c"SIGHTLINE_STATUS_EMPTY",
            SightlineStatus::Refused => c"SIGHTLINE_STATUS_REFUSED",
            SightlineStatus::NullArgument => c"SIGHTLINE_STATUS_NULL_ARGUMENT",
            SightlineStatus::InvalidUtf8 => c"SIGHTLINE_STATUS_INVALID_UTF8",
            SightlineStatus::StringTooLong => c"SIGHTLINE_STATUS_STRING_TOO_LONG",
            SightlineStatus::InvalidHandle => c"SIGHTLINE_STATUS_INVALID_HANDLE",
            SightlineStatus::InvalidArgument => c"SIGHTLINE_STATUS_INVALID_ARGUMENT",
            SightlineStatus::BufferTooSmall => c"SIGHTLINE_STATUS_BUFFER_TOO_SMALL",
            SightlineStatus::Config => c"SIGHTLINE_STATUS_CONFIG",
            SightlineStatus::UnknownId => c"SIGHTLINE_STATUS_UNKNOWN_ID",
            SightlineStatus::Store => c"SIGHTLINE_STATUS_STORE",
            SightlineStatus::Decode => c"SIGHTLINE_STATUS_DECODE",
            SightlineStatus::Busy => c"SIGHTLINE_STATUS_BUSY",
            SightlineStatus::Stopped => c"SIGHTLINE_STATUS_STOPPED",
            SightlineStatus::Internal => c"SIGHTLINE_STATUS_INTERNAL",
            SightlineStatus::TooManyHandles => c"SIGHTLINE_STATUS_TOO_MANY_HANDLES",
        }
    }

    /// Every status, in code order.
    const ALL: [SightlineStatus; 17] = [
        SightlineStatus::Ok,
        SightlineStatus::Empty,
        SightlineStatus::Refused,
        SightlineStatus::NullArgument,
        SightlineStatus::InvalidUtf8,
        SightlineStatus::StringTooLong,
        SightlineStatus::InvalidHandle,
        SightlineStatus::InvalidArgument,
        SightlineStatus::BufferTooSmall,
        SightlineStatus::Config,
        SightlineStatus::UnknownId,
        SightlineStatus::Store,
        SightlineStatus::Decode,
        SightlineStatus::Busy,
        SightlineStatus::Stopped,
        SightlineStatus::Internal,
        SightlineStatus::TooManyHandles,
    ];
}

/// A call's result inside the library: the error is the status to return.
pub(crate) type Result<T = ()> = core::result::Result<T, SightlineStatus>;

/// Runs one entry point's body: `Ok` becomes `SIGHTLINE_STATUS_OK`, an error its status, and with
/// `std` a panic `SIGHTLINE_STATUS_INTERNAL` (the body never unwinds into C).
pub(crate) fn guard(body: impl FnOnce() -> Result) -> SightlineStatus {
    #[cfg(feature = "std")]
    let result = {
        // Every call starts with no message: a failure that sets none leaves none.
        last_error::clear();
        std::panic::catch_unwind(std::panic::AssertUnwindSafe(body))
            .unwrap_or(Err(SightlineStatus::Internal))
    };
    // Bare metal: the whole call, argument conversion and allocations included, runs
    // under the library's lock, so an interrupt handler calling in gets BUSY before it
    // touches the allocator.
    #[cfg(not(feature = "std"))]
    let result = crate::handles::exclusive(body);
    result.err().unwrap_or(SightlineStatus::Ok)
}

/// The name of a status constant (`"SIGHTLINE_STATUS_REFUSED"`), or NULL for a value that is not
/// a status. The string is static: never free it.
#[unsafe(no_mangle)]
pub extern "C" fn sightline_status_name(status: u32) -> *const c_char {
    usize::try_from(status)
        .ok()
        .and_then(|i| SightlineStatus::ALL.get(i))
        .map_or(core::ptr::null(), |s| s.name().as_ptr())
}

#[cfg(feature = "std")]
pub(crate) mod last_error {
    //! The sentence explaining the calling thread's last failed call, like `errno`.
    use std::cell::RefCell;
    use std::string::String;

    std::thread_local! {
        static MESSAGE: RefCell<String> = const { RefCell::new(String::new()) };
    }

    /// Records why the current call fails.
    pub(crate) fn set(message: impl core::fmt::Display) {
        use core::fmt::Write;
        MESSAGE.with_borrow_mut(|m| {
            m.clear();
            let _ = write!(m, "{message}");
        });
    }

    pub(crate) fn clear() {
        // `try_with`: during thread teardown the message may already be gone.
        let _ = MESSAGE.try_with(|m| {
            if let Ok(mut m) = m.try_borrow_mut() {
                m.clear();
            }
        });
    }

    pub(crate) fn with<R>(read: impl FnOnce(&str) -> R) -> R {
        MESSAGE.with_borrow(|m| read(m))
    }
}

/// Copies the sentence explaining the calling thread's last failed call (empty after a
/// successful one) into `buf` with a NUL, and its length without the NUL into `*len`.
/// `SIGHTLINE_STATUS_BUFFER_TOO_SMALL` when it does not fit (`*len` says how much does).
///
/// # Safety
/// `buf` must be valid for `capacity` bytes (or NULL with capacity 0); `len` valid.
#[cfg(feature = "std")]
#[unsafe(no_mangle)]
pub unsafe extern "C" fn sightline_last_error_message(
    buf: *mut c_char,
    capacity: usize,
    len: *mut usize,
) -> SightlineStatus {
    // Not through `guard`: a success would clear the message being read.
    let read = std::panic::catch_unwind(|| {
        last_error::with(|m| {
            // SAFETY: the caller's contract above.
            unsafe { crate::text::copy_out(m.as_bytes(), buf, capacity, len) }
        })
    });
    read.unwrap_or(Err(SightlineStatus::Internal))
        .err()
        .unwrap_or(SightlineStatus::Ok)
}

/// Records why a call fails (with `std`), and returns its status.
pub(crate) fn fail(status: SightlineStatus, _why: impl core::fmt::Display) -> SightlineStatus {
    #[cfg(feature = "std")]
    last_error::set(_why);
    status
}
