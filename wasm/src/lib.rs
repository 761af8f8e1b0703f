//! `sightline-wasm`: the core's sans-IO [`Logger`](sightline_core::Logger) for browsers,
//! mapped to JavaScript by wasm-bindgen. Type mapping only, like yffi/ywasm over yrs: every
//! rule lives in the core, and the browser glue (observers, lifecycle, storage, `fetch`,
//! tabs) lives in the TypeScript runtime of `wasm/js/`.
//!
//! The exports are the runtime's private interface, shaped to be cheap in bytes, since every
//! visitor downloads them: flat arguments instead of objects, time as two `f64`
//! milliseconds, and outcomes as numbers the runtime decodes ([`outcome`]). Pages see only
//! the TypeScript API.
//!
//! On wasm32 the crate is `no_std`: no std panic or formatting machinery is linked, a panic
//! traps (the runtime then disables the SDK rather than throw at the page), and memory
//! comes from [`alloc`]'s allocator.
#![cfg_attr(target_arch = "wasm32", no_std)]

extern crate alloc;

mod config;
#[cfg(feature = "kit")]
mod kit;
mod logger;
pub mod outcome;
#[cfg(target_arch = "wasm32")]
mod platform;

pub use config::{Config, Stored};
#[cfg(feature = "kit")]
pub use kit::Capture;
pub use logger::{Logger, Outcome, StoreOp, Upload};
