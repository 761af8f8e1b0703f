//! Deterministic simulation for Sightline: a seeded reference workload, a replay of its
//! pages through the real core on virtual time, a faulty network, and a model collector
//! that dedups by (session, seq). Used by the simulation tests, the benchmarks and the demo.

pub mod batches;
pub mod collector;
pub mod feed;
pub mod harness;
pub mod network;
pub mod rng;
pub mod store;
pub mod workload;
