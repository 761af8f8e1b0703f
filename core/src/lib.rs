//! Sightline core: one implementation of impression logging for TV firmware, mobile apps
//! and web pages. `no_std` + `alloc`, sans-IO: the host passes time into every call and
//! performs the store operations and uploads the core asks for; the core calls nothing.
//!
//! Pipeline: record -> validate ([`contract`]) -> [`sampling`] -> [`dedup`] -> buffer
//! ([`batch`]) -> encode ([`wire`], [`proto`]) -> [`gzip`] -> persist ([`persist`],
//! [`queue`], the outbox of store operations) -> [`upload`] -> retry/backoff -> acknowledge, with [`stats`]
//! accounting for every impression. [`viewability`] turns visibility and focus changes into
//! impressions. [`logger::Logger`] ties it together.
//!
//! # The host contract
//!
//! - **Start**: read back what the store holds ([`Stored`]: values by key and the journal's
//!   bytes, or `Stored::default()`), then [`Logger::resume`]. A store that cannot be read
//!   must not be passed as empty: that would start a new session over old data.
//! - **Inputs**: `start_page_view`, `handle_visibility`, `handle_focus`,
//!   `handle_app_hidden`/`visible`, `record_impression`, `flush`, `set_enabled`,
//!   `handle_timeout`, and the results `handle_upload_result` and `handle_store_result`.
//! - **Outputs**, drained after every input: [`Logger::poll_store_op`] (perform it,
//!   synchronously or not, and acknowledge it; the next comes after the acknowledgement),
//!   [`Logger::poll_upload`] (POST it; at most one is in flight), [`Logger::poll_timeout`]
//!   (call `handle_timeout` then; a closed batch is compressed a step per call, with the
//!   next step asked for a millisecond later, so a host that ignores deadlines sends late).
//! - **Time**: [`Now`] carries monotonic milliseconds (durations, deadlines) and wall-clock
//!   milliseconds (stamps only). Either may go backwards; nothing breaks.
//! - **Durability**: acknowledgement-driven. An upload is offered only once the writes it
//!   depends on are acknowledged; the journal is cleared only once the state replacing it is;
//!   seqs are reserved in durable state before use, so a crash never makes a seq reusable
//!   and whatever a crash lost is counted at the next start (`journal_lost`,
//!   `store_corrupt`), never lost silently.
//! - **Randomness**: [`Config::seed`] must come from the platform's entropy source at every
//!   start (`getrandom`, `SecRandomCopyBytes`, `crypto.getRandomValues`): two devices or two
//!   boots with the same seed, no stored state and the same clock would share a session id.
//! - **Threading**: [`Logger`] is `Send`; one thread at a time drives it. Hosts with threads
//!   can use `runtime::Driver` (feature `std`), which does all of the above.
//!
//! ```
//! use sightline_core::{Config, ItemRef, Logger, MemoryStore, Now, Platform, Store, Stored};
//! use sightline_core::UploadOutcome;
//!
//! # fn main() -> Result<(), Box<dyn core::error::Error>> {
//! # fn platform_entropy() -> u64 {
//! #     use std::hash::{BuildHasher, Hasher};
//! #     std::collections::hash_map::RandomState::new().build_hasher().finish()
//! # }
//! let config = Config {
//!     app_id: "com.example.tv".into(),
//!     app_version: "1.0.0".into(),
//!     platform: Platform::Tv,
//!     app_key: "your-collector-key".into(),
//!     seed: platform_entropy(), // never a constant: see "Randomness" above
//!     ..Config::default()
//! };
//! let t = |ms: u64| Now::new(ms, 1_700_000_000_000 + ms);
//! let mut store = MemoryStore::new(); // a file, IndexedDB, a flash region...
//! let stored: Stored = store.load()?;
//! let mut logger = Logger::resume(config, stored, t(0))?;
//! let pv = logger.start_page_view("home", Some("request-123"), None, t(10))?;
//! let item = ItemRef { item_id: "title:81234567", artwork_id: Some("art:1"), row: 0, column: 2 };
//! logger.handle_visibility(pv, &item, 1.0, t(100))?;
//! logger.handle_visibility(pv, &item, 0.0, t(1_600))?; // visible 1.5 s: an impression
//! logger.handle_app_hidden(t(1_700)); // logs what qualified and closes the batch
//! let mut sent = 0;
//! loop {
//!     // Store operations first: the upload waits until its batch is durable.
//!     while let Some(op) = logger.poll_store_op() {
//!         let (id, result) = (op.id, store.apply(&op.op));
//!         logger.handle_store_result(id, result)?;
//!     }
//!     let Some(upload) = logger.poll_upload(t(1_700)) else { break };
//!     // The host POSTs upload.body to <collector>/v1/batches with upload.headers, then:
//!     let ok = UploadOutcome::Status { code: 200, retry_after: None };
//!     logger.handle_upload_result(upload.id, ok, t(1_800))?;
//!     sent += 1;
//! }
//! assert_eq!((sent, logger.stats().delivered), (1, 1));
//! assert_eq!(logger.poll_timeout(), None, "nothing left to wait for");
//! # Ok(())
//! # }
//! ```
#![no_std]
#![forbid(unsafe_code)]
#![warn(missing_debug_implementations)]

extern crate alloc;
#[cfg(feature = "std")]
extern crate std;

#[doc(hidden)] // internal; public for the project's benches and specs
pub mod batch;
pub mod civil;
pub mod config;
pub mod contract;
#[doc(hidden)] // internal; public for the project's benches and specs
pub mod dedup;
mod digits;
pub mod gzip;
#[doc(hidden)] // internal; public for the project's benches and specs
pub mod hash;
pub mod input;
#[doc(hidden)] // internal; public for the project's benches and specs
pub mod intern;
#[cfg(feature = "std")]
pub mod json;
pub mod kit;
pub mod logger;
mod outbox;
#[doc(hidden)] // internal; public for the project's benches and specs
pub mod persist;
#[doc(hidden)] // internal; public for the project's benches and specs
pub mod queue;
pub mod rng;
pub mod sampling;
pub mod stats;
pub mod store;
pub mod upload;
#[doc(hidden)] // internal; public for the project's benches and specs
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
pub use contract::{Contract, Rule, RuleKind};
pub use input::{Handled, Input, InputError, Item, Misuse, QualifiedImpression, layout_from_flat};
pub use logger::{
    ExposureOutcome, Impression, ItemRef, Logger, Now, Recorded, StartError, UnknownStoreOp,
    UnknownUpload,
};
pub use sampling::SampleKey;
pub use stats::{DropReason, Stats};
pub use store::{MemoryStore, Store, StoreError, StoreOp, StoreRequest, Stored};
pub use upload::{Header, Upload, UploadOutcome};
