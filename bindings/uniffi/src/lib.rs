//! Sightline for Kotlin, Swift and Python (uniffi, proc-macros). Two ways in:
//!
//! - [`Logger`]: the core's sans-IO logger, for apps that own their HTTP stack, storage and
//!   timers (certificate pinning, proxies, background transfer services).
//! - [`Runtime`]: the ready std runtime (file store, HTTP, driver thread), optionally with
//!   the app's own [`Transport`] or a test [`Capture`].
//!
//! Plus [`Capture`], the producer test kit. Everything here is type and error mapping:
//! what an impression is, is decided by `sightline-core` alone. uniffi catches a Rust panic
//! at every exported call and raises it in the host language as an internal error.

mod error;
mod kit;
mod logger;
mod runtime;
mod types;

pub use error::SightlineError;
pub use kit::{Accounting, Capture, CapturedImpression, KitError, Receipt, Violation};
pub use logger::{Logger, RecordedMany, Refusal, StoreFailure};
pub use runtime::{Runtime, Transport};
pub use types::*;

uniffi::setup_scaffolding!();

/// The stable names of every rule, in code order (for apps that map them to their own).
#[uniffi::export]
pub fn rule_names() -> Vec<String> {
    sightline_core::Rule::ALL
        .iter()
        .map(|r| r.name().to_string())
        .collect()
}

/// Panics inside Rust on purpose, so an app (and this project's tests) can check that a
/// Rust panic reaches it as an exception and the process lives on. Never called by the SDK.
#[uniffi::export]
pub fn trigger_internal_error() {
    panic!("sightline: trigger_internal_error was called");
}
