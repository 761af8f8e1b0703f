//! The Sightline reference collector: what the SDK feeds. A real HTTP service
//! ([`server`]), a test ("micro") mode that keeps events in memory behind a small query API
//! for producers' contract tests, and a `check` CLI ([`check`]) for captured batches.
//!
//! Decoding, limits and contract rules are the core's (`sightline_core::wire`,
//! `sightline_core::contract`): the collector adds dedup by (session, seq) with bounded
//! memory ([`session`], the core's, shared with the producer test kit), loss reconciliation, clock-skew correction ([`ingest`]) and the
//! output ([`sink`], [`row`]), with [`snapshot`]s of the dedup state so a restart replays
//! only the output's tail.

pub mod body;
pub mod check;
pub mod config;
pub mod connections;
pub mod ingest;
pub mod limits;
pub mod log_limit;
pub mod metrics;
pub mod row;
pub mod server;
pub use sightline_core::kit::session;
pub mod sink;
pub mod snapshot;
