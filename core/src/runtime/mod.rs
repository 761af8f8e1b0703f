//! The ready runtime for hosts with threads (feature `std`): a crash-safe file store, an
//! HTTP transport on ureq, and a driver thread that runs the logger's loop.

pub mod file_store;

pub use file_store::FileStore;
