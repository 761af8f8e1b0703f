//! A store shared between successive loggers of one simulated device, so that a "crash"
//! drops the logger and keeps what it had persisted, as a file store would.

use std::cell::RefCell;
use std::rc::Rc;

use sightline_core::MemoryStore;

/// A cloneable handle to one in-memory store (the core implements `Store` for it).
pub type SharedStore = Rc<RefCell<MemoryStore>>;
