//! Persistence, host side: the operations the logger emits ([`StoreOp`]), what the host
//! reads back at start ([`Stored`]), the [`Store`] trait that performs operations on a
//! medium, the in-memory store, and the checksummed record framing that lets the core
//! detect torn or corrupt data in any store.
//!
//! The core decides what is written and when (see [`crate::outbox`] for the ordering and
//! acknowledgement rules); a store only stores bytes under keys and keeps an append-only
//! journal. Every value and journal record the core writes is framed with a length and a
//! CRC32, so a store needs no integrity logic of its own.

use alloc::collections::BTreeMap;
use alloc::string::{String, ToString};
use alloc::vec::Vec;
use core::fmt;

/// One operation on the host's store.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StoreOp {
    /// Atomically replace the value under `key` (after a crash: the old or the new value).
    Put { key: String, value: Vec<u8> },
    /// Remove `key`; removing a missing key is not an error.
    Remove { key: String },
    /// Append bytes to the journal. Need not be synced: the core detects a torn tail.
    Append { bytes: Vec<u8> },
    /// Empty the journal.
    ClearJournal,
}

/// An operation handed to the host, to be acknowledged under `id`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoreRequest {
    pub id: u64,
    pub op: StoreOp,
}

/// Everything the host read back from its store before starting a logger: the values under
/// their keys and the journal's bytes. `Stored::default()` is "nothing stored" (first start,
/// or a device without persistence).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Stored {
    pub values: BTreeMap<String, Vec<u8>>,
    pub journal: Vec<u8>,
}

impl Stored {
    /// The value under `key`.
    pub fn get(&self, key: &str) -> Option<&[u8]> {
        self.values.get(key).map(Vec::as_slice)
    }

    /// The keys that start with `prefix`, in ascending order.
    pub fn keys<'a>(&'a self, prefix: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.values
            .range::<str, _>((
                core::ops::Bound::Included(prefix),
                core::ops::Bound::Unbounded,
            ))
            .map(|(k, _)| k.as_str())
            .take_while(move |k| k.starts_with(prefix))
    }
}

/// Why a store operation failed. The core counts these and keeps running.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StoreError {
    /// The write would exceed the store's byte quota.
    QuotaExceeded,
    /// The medium failed (I/O error, flash write error); the text is for logs only.
    Io(String),
}

impl fmt::Display for StoreError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StoreError::QuotaExceeded => f.write_str("store quota exceeded"),
            StoreError::Io(msg) => write!(f, "store I/O error: {msg}"),
        }
    }
}

impl core::error::Error for StoreError {}

/// Durable key-value storage plus one append-only journal, on the host's side: how a Rust
/// host (the std runtime, firmware with synchronous flash, tests) performs the logger's
/// [`StoreOp`]s and reads them back. The logger never holds or calls a store; hosts in other
/// languages perform the operations with their own storage instead.
///
/// Keys are short ASCII strings chosen by the core (`state`, `batch/00000000000000000042`).
/// `put` must be atomic: after a crash a key holds either the old or the new value.
/// Journal appends need not be synced: a torn tail is detected by the core.
pub trait Store {
    /// Atomically replaces the value under `key`.
    fn put(&mut self, key: &str, value: &[u8]) -> Result<(), StoreError>;
    /// Reads the value under `key`, if any.
    fn get(&mut self, key: &str) -> Result<Option<Vec<u8>>, StoreError>;
    /// Removes `key`; removing a missing key is not an error.
    fn remove(&mut self, key: &str) -> Result<(), StoreError>;
    /// Lists the keys that start with `prefix`, in ascending order.
    fn keys(&mut self, prefix: &str) -> Result<Vec<String>, StoreError>;
    /// Appends bytes to the journal.
    fn journal_append(&mut self, bytes: &[u8]) -> Result<(), StoreError>;
    /// Reads the whole journal.
    fn journal_read(&mut self) -> Result<Vec<u8>, StoreError>;
    /// Empties the journal.
    fn journal_clear(&mut self) -> Result<(), StoreError>;

    /// Reads everything back, for [`Logger::resume`](crate::Logger::resume).
    fn load(&mut self) -> Result<Stored, StoreError> {
        let mut values = BTreeMap::new();
        for key in self.keys("")? {
            if let Some(value) = self.get(&key)? {
                values.insert(key, value);
            }
        }
        Ok(Stored {
            values,
            journal: self.journal_read()?,
        })
    }

    /// Performs one operation the logger asked for.
    fn apply(&mut self, op: &StoreOp) -> Result<(), StoreError> {
        match op {
            StoreOp::Put { key, value } => self.put(key, value),
            StoreOp::Remove { key } => self.remove(key),
            StoreOp::Append { bytes } => self.journal_append(bytes),
            StoreOp::ClearJournal => self.journal_clear(),
        }
    }
}

/// A store shared by handles, so one store outlives successive loggers: how tests and the
/// simulation model a process that restarts over the same storage.
impl<S: Store> Store for alloc::rc::Rc<core::cell::RefCell<S>> {
    fn put(&mut self, key: &str, value: &[u8]) -> Result<(), StoreError> {
        self.borrow_mut().put(key, value)
    }
    fn get(&mut self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        self.borrow_mut().get(key)
    }
    fn remove(&mut self, key: &str) -> Result<(), StoreError> {
        self.borrow_mut().remove(key)
    }
    fn keys(&mut self, prefix: &str) -> Result<Vec<String>, StoreError> {
        self.borrow_mut().keys(prefix)
    }
    fn journal_append(&mut self, bytes: &[u8]) -> Result<(), StoreError> {
        self.borrow_mut().journal_append(bytes)
    }
    fn journal_read(&mut self) -> Result<Vec<u8>, StoreError> {
        self.borrow_mut().journal_read()
    }
    fn journal_clear(&mut self) -> Result<(), StoreError> {
        self.borrow_mut().journal_clear()
    }
}

/// A store in RAM: the default for hosts without persistence, and the store of the
/// simulation, where a "crash" drops the logger but keeps the store.
#[derive(Clone, Debug, Default)]
pub struct MemoryStore {
    values: BTreeMap<String, Vec<u8>>,
    journal: Vec<u8>,
}

impl MemoryStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    /// Total bytes held (values and journal), for memory accounting.
    pub fn bytes(&self) -> usize {
        self.values.values().map(Vec::len).sum::<usize>() + self.journal.len()
    }
}

impl Store for MemoryStore {
    fn put(&mut self, key: &str, value: &[u8]) -> Result<(), StoreError> {
        match self.values.get_mut(key) {
            Some(existing) => {
                existing.clear();
                existing.extend_from_slice(value);
            }
            None => {
                self.values.insert(key.to_string(), value.to_vec());
            }
        }
        Ok(())
    }

    fn get(&mut self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(self.values.get(key).cloned())
    }

    fn remove(&mut self, key: &str) -> Result<(), StoreError> {
        self.values.remove(key);
        Ok(())
    }

    fn keys(&mut self, prefix: &str) -> Result<Vec<String>, StoreError> {
        Ok(self
            .values
            .range(prefix.to_string()..)
            .take_while(|(k, _)| k.starts_with(prefix))
            .map(|(k, _)| k.clone())
            .collect())
    }

    fn journal_append(&mut self, bytes: &[u8]) -> Result<(), StoreError> {
        self.journal.extend_from_slice(bytes);
        Ok(())
    }

    fn journal_read(&mut self) -> Result<Vec<u8>, StoreError> {
        Ok(self.journal.clone())
    }

    fn journal_clear(&mut self) -> Result<(), StoreError> {
        self.journal.clear();
        Ok(())
    }
}

/// Bytes of framing per record: a little-endian u32 length and a CRC32 of the payload.
pub const FRAME_OVERHEAD: usize = 8;

/// Largest payload a frame may declare; a bigger length is corruption, not data.
pub const MAX_FRAME_PAYLOAD: usize = 1 << 20;

/// Appends `payload` to `out` as one checksummed frame.
pub fn frame_into(out: &mut Vec<u8>, payload: &[u8]) {
    frame_with(out, |b| b.extend_from_slice(payload));
}

/// Appends one checksummed frame of what `payload` writes, without a second buffer.
pub fn frame_with(out: &mut Vec<u8>, payload: impl FnOnce(&mut Vec<u8>)) {
    let start = out.len();
    out.extend_from_slice(&[0; FRAME_OVERHEAD]);
    payload(out);
    let body = &out[start + FRAME_OVERHEAD..];
    let (len, crc) = (body.len() as u32, crate::gzip::crc32(body));
    out[start..start + 4].copy_from_slice(&len.to_le_bytes());
    out[start + 4..start + FRAME_OVERHEAD].copy_from_slice(&crc.to_le_bytes());
}

/// Result of reading a sequence of frames: the intact payloads and whether a torn or
/// corrupt remainder was skipped.
#[derive(Debug)]
pub struct Frames<'a> {
    /// Intact payloads, in order.
    pub payloads: Vec<&'a [u8]>,
    /// True when bytes after the last intact frame were torn or failed their checksum.
    pub corrupt_tail: bool,
}

/// Splits `bytes` into checksummed frames, stopping at the first torn or corrupt frame.
pub fn read_frames(bytes: &[u8]) -> Frames<'_> {
    let mut payloads = Vec::new();
    let mut rest = bytes;
    while !rest.is_empty() {
        match split_frame(rest) {
            Some((payload, tail)) => {
                payloads.push(payload);
                rest = tail;
            }
            None => {
                return Frames {
                    payloads,
                    corrupt_tail: true,
                };
            }
        }
    }
    Frames {
        payloads,
        corrupt_tail: false,
    }
}

/// Reads exactly one frame that must span all of `bytes` (a stored value).
pub fn read_single_frame(bytes: &[u8]) -> Option<&[u8]> {
    match split_frame(bytes) {
        Some((payload, [])) => Some(payload),
        _ => None,
    }
}

fn split_frame(bytes: &[u8]) -> Option<(&[u8], &[u8])> {
    let header = bytes.get(..FRAME_OVERHEAD)?;
    let len = u32::from_le_bytes([header[0], header[1], header[2], header[3]]) as usize;
    let crc = u32::from_le_bytes([header[4], header[5], header[6], header[7]]);
    if len > MAX_FRAME_PAYLOAD {
        return None;
    }
    let payload = bytes.get(FRAME_OVERHEAD..FRAME_OVERHEAD + len)?;
    if crate::gzip::crc32(payload) != crc {
        return None;
    }
    Some((payload, &bytes[FRAME_OVERHEAD + len..]))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_round_trip_in_order() {
        let mut buf = Vec::new();
        frame_into(&mut buf, b"one");
        frame_into(&mut buf, b"");
        frame_into(&mut buf, b"three");
        let frames = read_frames(&buf);
        assert_eq!(frames.payloads, [&b"one"[..], b"", b"three"]);
        assert!(!frames.corrupt_tail);
    }

    #[test]
    fn a_torn_tail_keeps_every_intact_frame_before_it() {
        let mut buf = Vec::new();
        frame_into(&mut buf, b"kept");
        frame_into(&mut buf, b"torn away");
        buf.truncate(buf.len() - 3);
        let frames = read_frames(&buf);
        assert_eq!(frames.payloads, [&b"kept"[..]]);
        assert!(frames.corrupt_tail);
    }

    #[test]
    fn a_flipped_bit_fails_the_checksum() {
        let mut buf = Vec::new();
        frame_into(&mut buf, b"payload");
        buf[10] ^= 0x01;
        assert!(read_single_frame(&buf).is_none());
        assert!(read_frames(&buf).corrupt_tail);
    }

    #[test]
    fn a_huge_declared_length_is_corruption_not_an_allocation() {
        let mut buf = Vec::from(u32::MAX.to_le_bytes());
        buf.extend_from_slice(&[0; 8]);
        assert!(read_single_frame(&buf).is_none());
    }

    #[test]
    fn memory_store_lists_keys_by_prefix_in_order() {
        let mut store = MemoryStore::new();
        store.put("batch/2", b"b").unwrap();
        store.put("batch/1", b"a").unwrap();
        store.put("state", b"s").unwrap();
        assert_eq!(store.keys("batch/").unwrap(), ["batch/1", "batch/2"]);
        store.remove("batch/1").unwrap();
        assert_eq!(store.keys("batch/").unwrap(), ["batch/2"]);
    }
}
