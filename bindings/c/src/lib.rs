//! Sightline's C ABI, for TV firmware and Linux TV platforms: type and error mapping over
//! the core's sans-IO [`sightline_core::Logger`], nothing else. The header
//! (`include/sightline.h`) is generated from this crate by cbindgen
//! (`cargo run -p sightline-c-header`).
//!
//! # Conventions (every function)
//!
//! - Returns a [`SightlineStatus`]: 0 (`SIGHTLINE_STATUS_OK`) on success. Results come back
//!   through out-parameters, which are written only on success.
//! - Handles ([`SightlineLogger`], [`SightlineCapture`], [`SightlineRuntime`]) are
//!   generational ids in a table, not pointers: a handle never issued, already freed, or
//!   of another kind gives `SIGHTLINE_STATUS_INVALID_HANDLE`, never a crash.
//! - Strings are NUL-terminated UTF-8, read up to [`text::SIGHTLINE_MAX_STRING_BYTES`];
//!   NULL, invalid UTF-8 and unterminated strings give a status. Ids the contract finds
//!   too long or malformed are refused by the core with the rule (`SIGHTLINE_STATUS_REFUSED`).
//! - What is returned is either written into caller memory (out-structs, caller buffers)
//!   or owned by the caller and freed with its `*_free` (`sightline_upload_free`). A store
//!   operation is lent: valid until its result is reported.
//! - With `std`, every entry point runs under `catch_unwind`: a bug in Sightline returns
//!   `SIGHTLINE_STATUS_INTERNAL` and poisons only the handle in use. Without `std` the
//!   firmware's panic hook runs instead.
//! - Thread safety: any thread may call any function; calls on the table are serialised.
//!   Without `std` a call made while another is in progress (an interrupt handler)
//!   returns `SIGHTLINE_STATUS_BUSY` instead of waiting.
#![cfg_attr(not(feature = "std"), no_std)]
#![deny(unsafe_op_in_unsafe_fn)]
#![warn(missing_docs)]

extern crate alloc;

#[cfg(feature = "std")]
pub mod capture;
mod handles;
pub mod logger;
pub mod output;
#[cfg(feature = "firmware")]
mod platform;
#[cfg(feature = "std")]
pub mod runtime;
pub mod status;
pub mod text;
pub mod types;

#[cfg(feature = "std")]
pub use capture::SightlineCapture;
pub use logger::SightlineLogger;
#[cfg(feature = "std")]
pub use runtime::SightlineRuntime;
pub use status::SightlineStatus;
