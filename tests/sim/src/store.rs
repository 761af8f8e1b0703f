//! A store shared between successive loggers of one simulated device, so that a "crash"
//! drops the logger and keeps what it had persisted, as a file store would.

use std::cell::RefCell;
use std::rc::Rc;

use sightline_core::{MemoryStore, Store, StoreError};

/// A cloneable handle to one in-memory store.
#[derive(Clone, Debug, Default)]
pub struct SharedStore(pub Rc<RefCell<MemoryStore>>);

impl Store for SharedStore {
    fn put(&mut self, key: &str, value: &[u8]) -> Result<(), StoreError> {
        self.0.borrow_mut().put(key, value)
    }
    fn get(&mut self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        self.0.borrow_mut().get(key)
    }
    fn remove(&mut self, key: &str) -> Result<(), StoreError> {
        self.0.borrow_mut().remove(key)
    }
    fn keys(&mut self, prefix: &str) -> Result<Vec<String>, StoreError> {
        self.0.borrow_mut().keys(prefix)
    }
    fn journal_append(&mut self, bytes: &[u8]) -> Result<(), StoreError> {
        self.0.borrow_mut().journal_append(bytes)
    }
    fn journal_read(&mut self) -> Result<Vec<u8>, StoreError> {
        self.0.borrow_mut().journal_read()
    }
    fn journal_clear(&mut self) -> Result<(), StoreError> {
        self.0.borrow_mut().journal_clear()
    }
}
