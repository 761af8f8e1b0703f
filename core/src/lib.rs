//! Sightline core: one implementation of impression logging for TV firmware, mobile apps
//! and web pages. `no_std` + `alloc`, sans-IO: the host passes time into every call,
//! performs the uploads the core asks for, and implements the [`store::Store`] it persists to.
//!
//! Pipeline: record -> validate ([`contract`]) -> [`sampling`] -> [`dedup`] -> buffer
//! ([`batch`]) -> encode ([`wire`], [`proto`]) -> [`gzip`] -> persist ([`persist`],
//! [`queue`]) -> [`upload`] -> retry/backoff -> acknowledge, with [`stats`] accounting for
//! every impression. [`viewability`] turns visibility and focus changes into impressions.
//! [`logger::Logger`] ties it together.
#![no_std]
#![forbid(unsafe_code)]
#![warn(missing_debug_implementations)]

extern crate alloc;
#[cfg(feature = "std")]
extern crate std;

pub mod batch;
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
pub use logger::{Impression, ItemRef, Logger, Now, Recorded, UnknownUpload};
pub use sampling::SampleKey;
pub use stats::{DropReason, Stats};
pub use store::{MemoryStore, Store, StoreError};
pub use upload::{Upload, UploadOutcome};
