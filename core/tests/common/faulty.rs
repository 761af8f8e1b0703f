//! A memory store with injectable faults, for the specs of recovery and sealing.

use sightline_core::{MemoryStore, Store, StoreError};

/// A memory store with injectable faults, shared across "process restarts".
#[derive(Default)]
pub struct Faulty {
    pub inner: MemoryStore,
    /// `put` fails for keys starting with this prefix.
    pub fail_put: Option<&'static str>,
    /// `get` fails for keys starting with this prefix.
    pub fail_get: Option<&'static str>,
    pub fail_append: bool,
    pub fail_journal_read: bool,
    /// Mutating operations left before the "process dies": afterwards writes are lost.
    pub budget: Option<usize>,
    /// The process dies right after a journal clear: later writes are lost.
    pub die_after_journal_clear: bool,
}

impl Faulty {
    /// True once the "process" has died: no mutating operation lands any more.
    pub fn dead(&self) -> bool {
        self.budget == Some(0)
    }

    /// Whether a mutating operation lands (each one spends the budget); false once the
    /// process has died.
    fn alive(&mut self) -> bool {
        match &mut self.budget {
            None => true,
            Some(0) => false,
            Some(n) => {
                *n -= 1;
                true
            }
        }
    }
}

impl Store for Faulty {
    fn put(&mut self, key: &str, value: &[u8]) -> Result<(), StoreError> {
        if self.fail_put.is_some_and(|p| key.starts_with(p)) {
            return Err(StoreError::QuotaExceeded);
        }
        if !self.alive() {
            return Ok(());
        }
        self.inner.put(key, value)
    }
    fn get(&mut self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        if self.fail_get.is_some_and(|p| key.starts_with(p)) {
            return Err(StoreError::Io("flaky".into()));
        }
        self.inner.get(key)
    }
    fn remove(&mut self, key: &str) -> Result<(), StoreError> {
        if !self.alive() {
            return Ok(());
        }
        self.inner.remove(key)
    }
    fn keys(&mut self, prefix: &str) -> Result<Vec<String>, StoreError> {
        self.inner.keys(prefix)
    }
    fn journal_append(&mut self, bytes: &[u8]) -> Result<(), StoreError> {
        if self.fail_append {
            return Err(StoreError::Io("flaky".into()));
        }
        if !self.alive() {
            return Ok(());
        }
        self.inner.journal_append(bytes)
    }
    fn journal_read(&mut self) -> Result<Vec<u8>, StoreError> {
        if self.fail_journal_read {
            return Err(StoreError::Io("flaky".into()));
        }
        self.inner.journal_read()
    }
    fn journal_clear(&mut self) -> Result<(), StoreError> {
        if !self.alive() {
            return Ok(());
        }
        if self.die_after_journal_clear {
            self.budget = Some(0);
        }
        self.inner.journal_clear()
    }
}
