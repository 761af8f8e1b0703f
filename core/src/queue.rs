//! The queue of closed batches awaiting upload: byte-bounded, in order, persisted one
//! record per batch. Overflow policy: when a new batch would exceed the bound, the oldest
//! batches that are not being uploaded are dropped (fresh data is worth more, and old
//! batches are the ones most likely to be poison) and their impressions counted.

use alloc::collections::VecDeque;
use alloc::string::String;
use alloc::vec::Vec;

/// Store key prefix of batch records.
pub const BATCH_KEY_PREFIX: &str = "batch/";
/// Bytes of the fixed record header before the gzip body.
const RECORD_HEADER: usize = 8 + 8 + 8 + 4 + 4;

/// A closed, compressed batch.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClosedBatch {
    /// Store id, unique per store and increasing.
    pub id: u64,
    pub batch_no: u64,
    pub first_seq: u64,
    pub count: u32,
    /// Upload attempts so far; survives restarts so backoff does too.
    pub attempts: u32,
    /// The gzip body.
    pub body: Vec<u8>,
    /// Store ticket that must be settled before the batch is offered for upload (its
    /// stored copy; 0 for a batch read back from the store). Not stored.
    pub ready_after: u64,
    /// Its stored copy was written (true for a batch read back). Not stored.
    pub stored: bool,
}

impl ClosedBatch {
    /// A batch just closed: never tried, not yet stored.
    pub fn new(id: u64, batch_no: u64, first_seq: u64, count: u32, body: Vec<u8>) -> Self {
        ClosedBatch {
            id,
            batch_no,
            first_seq,
            count,
            attempts: 0,
            body,
            ready_after: 0,
            stored: false,
        }
    }

    /// The store key.
    pub fn key(&self) -> String {
        batch_key(self.id)
    }

    /// Highest seq in the batch: batches hold contiguous seqs (split halves too).
    /// `None` for a record whose numbers cannot be a batch's.
    pub fn last_seq_bound(&self) -> Option<u64> {
        self.first_seq.checked_add(u64::from(self.count.max(1)) - 1)
    }

    /// Whether a record read back can be a logger's: at least one impression (a logger
    /// never closes an empty batch), seqs from 1, ids, numbers and seqs within
    /// [`crate::persist::MAX_STORED_COUNT`], attempts within
    /// [`crate::persist::MAX_STORED_SMALL_COUNT`].
    pub fn plausible(&self) -> bool {
        use crate::persist::{MAX_STORED_COUNT, MAX_STORED_SMALL_COUNT};
        self.count >= 1
            && self.first_seq >= 1
            && self
                .last_seq_bound()
                .is_some_and(|last| last < MAX_STORED_COUNT)
            && self.id < MAX_STORED_COUNT
            && self.batch_no < MAX_STORED_COUNT
            && self.attempts < MAX_STORED_SMALL_COUNT
    }

    /// The stored form (framed by the caller).
    pub fn to_record(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(RECORD_HEADER + self.body.len());
        self.write_record(&mut out);
        out
    }

    /// Appends the stored form to `out`.
    pub fn write_record(&self, out: &mut Vec<u8>) {
        out.reserve(RECORD_HEADER + self.body.len());
        out.extend_from_slice(&self.id.to_le_bytes());
        out.extend_from_slice(&self.batch_no.to_le_bytes());
        out.extend_from_slice(&self.first_seq.to_le_bytes());
        out.extend_from_slice(&self.count.to_le_bytes());
        out.extend_from_slice(&self.attempts.to_le_bytes());
        out.extend_from_slice(&self.body);
    }

    /// Parses a stored record; `None` if it is too short to be one.
    pub fn from_record(bytes: &[u8]) -> Option<ClosedBatch> {
        let u64_at = |i: usize| -> Option<u64> {
            Some(u64::from_le_bytes(bytes.get(i..i + 8)?.try_into().ok()?))
        };
        let u32_at = |i: usize| -> Option<u32> {
            Some(u32::from_le_bytes(bytes.get(i..i + 4)?.try_into().ok()?))
        };
        Some(ClosedBatch {
            id: u64_at(0)?,
            batch_no: u64_at(8)?,
            first_seq: u64_at(16)?,
            count: u32_at(24)?,
            attempts: u32_at(28)?,
            body: bytes.get(RECORD_HEADER..)?.to_vec(),
            ready_after: 0,
            stored: true,
        })
    }
}

/// Decimal digits of the largest `u64`, the width of a batch key's id.
const BATCH_KEY_DIGITS: usize = 20;

/// The store key of batch `id`; zero-padded so keys sort in id order.
pub fn batch_key(id: u64) -> String {
    let mut key = String::with_capacity(BATCH_KEY_PREFIX.len() + BATCH_KEY_DIGITS);
    key.push_str(BATCH_KEY_PREFIX);
    crate::digits::push_digits(&mut key, id, 10, BATCH_KEY_DIGITS);
    key
}

/// Closed batches in upload order.
#[derive(Debug, Default)]
pub struct Queue {
    batches: VecDeque<ClosedBatch>,
    bytes: usize,
}

impl Queue {
    /// Appends a batch, then evicts the oldest batches (never `in_flight`) until the queue
    /// fits `max_bytes`; returns the evicted batches so the caller can count and unstore them.
    pub fn push(
        &mut self,
        batch: ClosedBatch,
        max_bytes: usize,
        in_flight: Option<u64>,
    ) -> Vec<ClosedBatch> {
        self.bytes += batch.body.len();
        self.batches.push_back(batch);
        let mut evicted = Vec::new();
        while self.bytes > max_bytes {
            let Some(i) = self.batches.iter().position(|b| Some(b.id) != in_flight) else {
                break;
            };
            if let Some(old) = self.remove_at(i) {
                evicted.push(old);
            }
        }
        evicted
    }

    /// Evicts the oldest batches (never `in_flight`) until a batch of `incoming` bytes fits
    /// `max_bytes`, before it is pushed; returns the evicted batches.
    pub fn make_room(
        &mut self,
        incoming: usize,
        max_bytes: usize,
        in_flight: Option<u64>,
    ) -> Vec<ClosedBatch> {
        let mut evicted = Vec::new();
        while self.bytes + incoming > max_bytes {
            let Some(i) = self.batches.iter().position(|b| Some(b.id) != in_flight) else {
                break;
            };
            if let Some(old) = self.remove_at(i) {
                evicted.push(old);
            }
        }
        evicted
    }

    /// Puts a batch back at the front (the halves of a split batch).
    pub fn push_front(&mut self, batch: ClosedBatch) {
        self.bytes += batch.body.len();
        self.batches.push_front(batch);
    }

    /// The batch to upload next.
    pub fn front(&self) -> Option<&ClosedBatch> {
        self.batches.front()
    }

    /// The batch with store id `id`.
    pub fn get(&self, id: u64) -> Option<&ClosedBatch> {
        self.batches.iter().find(|b| b.id == id)
    }

    /// The batch with store id `id`, to change.
    pub fn get_mut(&mut self, id: u64) -> Option<&mut ClosedBatch> {
        self.batches.iter_mut().find(|b| b.id == id)
    }

    /// Removes the batch with store id `id`.
    pub fn remove(&mut self, id: u64) -> Option<ClosedBatch> {
        let i = self.batches.iter().position(|b| b.id == id)?;
        self.remove_at(i)
    }

    /// Removes every batch, in upload order.
    pub fn drain(&mut self) -> VecDeque<ClosedBatch> {
        self.bytes = 0;
        core::mem::take(&mut self.batches)
    }

    /// Impressions queued.
    pub fn impressions(&self) -> u64 {
        self.batches.iter().map(|b| u64::from(b.count)).sum()
    }

    /// Compressed bytes queued.
    pub fn bytes(&self) -> usize {
        self.bytes
    }

    /// Number of queued batches.
    pub fn len(&self) -> usize {
        self.batches.len()
    }

    /// True when nothing is queued.
    pub fn is_empty(&self) -> bool {
        self.batches.is_empty()
    }

    fn remove_at(&mut self, i: usize) -> Option<ClosedBatch> {
        let b = self.batches.remove(i)?;
        self.bytes -= b.body.len();
        Some(b)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::vec;

    fn batch(id: u64, bytes: usize) -> ClosedBatch {
        ClosedBatch {
            id,
            batch_no: id,
            first_seq: id * 10,
            count: 10,
            attempts: 0,
            body: vec![0; bytes],
            ready_after: 0,
            stored: false,
        }
    }

    #[test]
    fn making_room_evicts_before_the_new_batch_is_pushed() {
        let mut q = Queue::default();
        q.push(batch(1, 400), 1000, None);
        q.push(batch(2, 400), 1000, None);
        let evicted = q.make_room(300, 1000, Some(1));
        assert_eq!(evicted.iter().map(|b| b.id).collect::<Vec<_>>(), [2]);
        assert!(q.push(batch(3, 300), 1000, None).is_empty(), "it fits now");
        assert!(q.make_room(300, 1000, None).is_empty(), "already room");
    }

    #[test]
    fn overflow_drops_the_oldest_batches_first() {
        let mut q = Queue::default();
        assert!(q.push(batch(1, 400), 1000, None).is_empty());
        assert!(q.push(batch(2, 400), 1000, None).is_empty());
        let evicted = q.push(batch(3, 400), 1000, None);
        assert_eq!(evicted.iter().map(|b| b.id).collect::<Vec<_>>(), [1]);
        assert_eq!(q.front().unwrap().id, 2);
        assert_eq!(q.bytes(), 800);
    }

    #[test]
    fn the_batch_being_uploaded_is_never_evicted() {
        let mut q = Queue::default();
        q.push(batch(1, 600), 1000, None);
        let evicted = q.push(batch(2, 600), 1000, Some(1));
        assert_eq!(evicted.iter().map(|b| b.id).collect::<Vec<_>>(), [2]);
        assert_eq!(q.front().unwrap().id, 1);
    }

    #[test]
    fn a_record_round_trips_and_a_short_one_is_refused() {
        let mut b = batch(7, 5);
        b.attempts = 3;
        // What is read back was stored.
        b.stored = true;
        assert_eq!(ClosedBatch::from_record(&b.to_record()), Some(b.clone()));
        assert_eq!(ClosedBatch::from_record(&b.to_record()[..20]), None);
    }

    #[test]
    fn keys_sort_in_id_order() {
        assert!(batch_key(9) < batch_key(10));
        assert_eq!(batch_key(42), "batch/00000000000000000042");
    }
}
