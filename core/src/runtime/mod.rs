//! The ready runtime for hosts with threads (feature `std`): a crash-safe file store, an
//! HTTP transport on ureq, and a driver thread that runs the logger's loop.

pub mod driver;
pub mod file_store;
pub mod transport;

pub use driver::{Clock, Driver, DriverError, SystemClock};
pub use file_store::FileStore;
pub use transport::{HttpTransport, Transport};

use std::time::Duration;

use crate::config::Config;

/// Bound on one upload by the built-in transport, from DNS lookup to the last response
/// byte, for the bindings' ready runtimes: the upload thread waits for it, and a phone on
/// a bad network must not hold a batch longer than a user would wait for a page.
pub const DEFAULT_HTTP_TIMEOUT: Duration = Duration::from_secs(10);

/// Room a [`FileStore`] needs beside the upload queue (bounded by `max_queue_bytes`): the
/// journal of the open batch and the logger's state records.
pub const STORE_ALLOWANCE_BYTES: u64 = 1024 * 1024;

/// The byte quota a [`FileStore`] for `config` needs: its queue bound plus the allowance.
pub fn store_quota(config: &Config) -> u64 {
    u64::from(config.max_queue_bytes).saturating_add(STORE_ALLOWANCE_BYTES)
}

/// 64 bits from the platform's entropy for [`Config::seed`], never 0 (which the logger
/// refuses): std's hasher keys come from the OS's random source (getrandom,
/// SecRandomCopyBytes, BCryptGenRandom).
pub fn entropy_seed() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u64(u64::from(std::process::id()));
    h.finish().max(1)
}
