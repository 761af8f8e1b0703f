//! Sightline core: one implementation of impression logging for TV firmware, mobile apps
//! and web pages. `no_std` + `alloc`, sans-IO: the host passes time into every call,
//! performs the uploads the core asks for, and implements the [`store::Store`] it persists to.
//!
//! Pipeline: record -> validate ([`contract`]) -> [`sampling`] -> [`dedup`] -> buffer
//! ([`batch`]) -> encode ([`wire`], [`proto`]) -> [`gzip`] -> persist ([`persist`],
//! [`queue`]) -> [`upload`] -> retry/backoff -> acknowledge, with [`stats`] accounting for
//! every impression. [`viewability`] turns visibility and focus changes into impressions.
//! [`logger::Logger`] ties it together.
//!
//! ```
//! use sightline_core::{Config, ItemRef, Logger, MemoryStore, Now, Platform, UploadOutcome};
//!
//! # fn main() -> Result<(), Box<dyn core::error::Error>> {
//! let config = Config {
//!     app_id: "com.example.tv".into(),
//!     app_version: "1.0.0".into(),
//!     platform: Platform::Tv,
//!     app_key: "your-collector-key".into(),
//!     seed: 0x5eed, // pass platform entropy in production
//!     ..Config::default()
//! };
//! let t = |ms: u64| Now::new(ms, 1_700_000_000_000 + ms);
//! let mut logger = Logger::new(config, Box::new(MemoryStore::new()), t(0))?;
//! let pv = logger.start_page_view("home", Some("request-123"), None, t(10))?;
//! let item = ItemRef { item_id: "title:81234567", artwork_id: Some("art:1"), row: 0, column: 2 };
//! logger.handle_visibility(pv, &item, 1.0, t(100))?;
//! logger.handle_visibility(pv, &item, 0.0, t(1_600))?; // visible 1.5 s: an impression
//! logger.handle_app_hidden(t(1_700)); // logs what qualified and closes the batch
//! let mut sent = 0;
//! while let Some(upload) = logger.poll_upload(t(1_700)) {
//!     // The host POSTs upload.body to <collector>/v1/batches with upload.headers, then:
//!     let ok = UploadOutcome::Status { code: 200, retry_after_ms: None };
//!     logger.handle_upload_result(upload.id, ok, t(1_800))?;
//!     sent += 1;
//! }
//! assert_eq!((sent, logger.stats().delivered), (1, 1));
//! # Ok(())
//! # }
//! ```
#![no_std]
#![forbid(unsafe_code)]
#![warn(missing_debug_implementations)]

extern crate alloc;
#[cfg(feature = "std")]
extern crate std;

pub mod batch;
pub mod civil;
pub mod config;
pub mod contract;
pub mod dedup;
pub mod gzip;
pub mod intern;
#[cfg(feature = "std")]
pub mod json;
pub mod logger;
pub mod persist;
pub mod queue;
pub mod rng;
pub mod sampling;
pub mod stats;
pub mod store;
pub mod upload;
pub mod viewability;
pub mod wire;

#[cfg(feature = "std")]
pub mod runtime;

/// The generated wire types (see core/proto/sightline/v1/batch.proto).
#[allow(missing_docs, clippy::all)]
pub mod proto {
    include!("proto/sightline.v1.rs");
}

pub use config::{Config, ConfigError, Platform, Reentry};
pub use contract::{Contract, Rule};
pub use logger::{Impression, ItemRef, Logger, Now, Recorded, StartError, UnknownUpload};
pub use sampling::SampleKey;
pub use stats::{DropReason, Stats};
pub use store::{MemoryStore, Store, StoreError};
pub use upload::{Upload, UploadOutcome};
