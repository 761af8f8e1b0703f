//! The ready runtime for hosts with threads (feature `std`): a crash-safe file store, an
//! HTTP transport on ureq, and a driver thread that runs the logger's loop.

pub mod driver;
pub mod file_store;
pub mod transport;

pub use driver::{Clock, Driver, DriverError, SystemClock};
pub use file_store::FileStore;
pub use transport::{HttpTransport, Transport};
