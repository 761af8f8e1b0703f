//! What the logger asks the host to store (as [`StoreOp`](crate::store::StoreOp)s), and
//! how it reads it back after a restart.
//!
//! - `state`: the session and the journal checkpoint (counters up to the checkpoint, the
//!   journal generation, id counters), as a small protobuf written once per batch close.
//! - `acks`: counters that change on upload outcomes (delivered, dropped, retries), kept
//!   apart so an acknowledgement does not force a journal checkpoint.
//! - `prefs`: the user's opt-out, written when it changes.
//! - `batch/<id>`: one closed batch each (see [`crate::queue`]).
//! - the journal: one small binary record per accepted or refused event since the last
//!   checkpoint, so a crash loses nothing that was recorded. Each record carries the
//!   generation it belongs to; records of an older generation are already in `state`.

use alloc::string::String;
use alloc::vec::Vec;

use crate::stats::{Drops, Stats};

/// Store key of the session state.
pub const STATE_KEY: &str = "state";
/// Store key of the acknowledgement counters.
pub const ACKS_KEY: &str = "acks";
/// Store key of the user's choices (opt-out), which must survive restarts.
pub const PREFS_KEY: &str = "prefs";

/// The user's choices.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Prefs {
    #[prost(bool, tag = "1")]
    pub opted_out: bool,
    /// A purge was asked for and may not have finished: a restart completes it.
    #[prost(bool, tag = "2")]
    pub purge_pending: bool,
}

/// The session and checkpoint record.
#[derive(Clone, PartialEq, prost::Message)]
pub struct State {
    #[prost(string, tag = "1")]
    pub session_id: String,
    /// Journal records of other generations are ignored on replay.
    #[prost(uint32, tag = "2")]
    pub generation: u32,
    /// Logger starts over this store; also the monotonic clock epoch.
    #[prost(uint32, tag = "3")]
    pub starts: u32,
    #[prost(uint64, tag = "4")]
    pub next_batch_id: u64,
    #[prost(uint64, tag = "5")]
    pub next_batch_no: u64,
    #[prost(uint64, tag = "6")]
    pub next_page_view: u64,
    #[prost(uint64, tag = "7")]
    pub recorded: u64,
    #[prost(uint64, tag = "8")]
    pub sampled_out: u64,
    #[prost(uint64, tag = "9")]
    pub deduped: u64,
    #[prost(uint64, tag = "10")]
    pub issued: u64,
    #[prost(uint64, tag = "11")]
    pub invalid: u64,
    #[prost(uint64, repeated, tag = "12")]
    pub invalid_by_rule: Vec<u64>,
    /// Seqs up to this one may have been issued: a restart that finds fewer counts the
    /// rest as lost with their journal records.
    #[prost(uint64, tag = "13")]
    pub reserved_through: u64,
}

/// Counters that change on upload outcomes.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Acks {
    #[prost(uint64, tag = "1")]
    pub delivered: u64,
    #[prost(uint64, tag = "2")]
    pub dropped_overflow: u64,
    #[prost(uint64, tag = "3")]
    pub dropped_rejected: u64,
    #[prost(uint64, tag = "4")]
    pub dropped_too_large: u64,
    #[prost(uint64, tag = "5")]
    pub dropped_retries_exhausted: u64,
    #[prost(uint64, tag = "6")]
    pub dropped_purged: u64,
    #[prost(uint64, tag = "7")]
    pub dropped_store_corrupt: u64,
    #[prost(uint64, tag = "8")]
    pub uploads: u64,
    #[prost(uint64, tag = "9")]
    pub retries: u64,
    #[prost(uint64, tag = "10")]
    pub bytes_delivered: u64,
    #[prost(uint64, tag = "11")]
    pub store_errors: u64,
    #[prost(uint64, tag = "12")]
    pub corrupt_records: u64,
    /// Wall-clock time before which the collector asked not to be contacted...
    #[prost(uint64, tag = "13")]
    pub blocked_until_wall_ms: u64,
    /// ...and how long that was when asked, so a wall clock set back cannot stretch it.
    #[prost(uint64, tag = "14")]
    pub blocked_for_ms: u64,
    /// Batches already counted as delivered or dropped whose stored copy may remain.
    #[prost(uint64, repeated, tag = "15")]
    pub settled: Vec<u64>,
    /// The front batch and its upload attempts so far, so backoff survives a restart
    /// without rewriting the batch on every retry (flash wear).
    #[prost(uint64, tag = "16")]
    pub attempts_batch: u64,
    #[prost(uint32, tag = "17")]
    pub attempts: u32,
    #[prost(uint64, tag = "18")]
    pub dropped_journal_lost: u64,
    /// The highest seq of a batch counted as delivered or dropped. Batches hold contiguous
    /// seqs and settle in seq order, so a replay skips journaled seqs up to it (they are
    /// counted even when their batch's copy is gone and the journal was kept).
    #[prost(uint64, tag = "19")]
    pub settled_through_seq: u64,
}

impl Acks {
    /// The acknowledgement part of live stats.
    pub fn from_stats(
        s: &Stats,
        blocked_until_wall_ms: u64,
        blocked_for_ms: u64,
        settled: &[u64],
        (attempts_batch, attempts): (u64, u32),
    ) -> Self {
        let d = &s.dropped;
        Acks {
            delivered: s.delivered,
            dropped_overflow: d.overflow,
            dropped_rejected: d.rejected,
            dropped_too_large: d.too_large,
            dropped_retries_exhausted: d.retries_exhausted,
            dropped_purged: d.purged,
            dropped_store_corrupt: d.store_corrupt,
            uploads: s.uploads,
            retries: s.retries,
            bytes_delivered: s.bytes_delivered,
            store_errors: s.store_errors,
            corrupt_records: s.corrupt_records,
            blocked_until_wall_ms,
            blocked_for_ms,
            settled: settled.to_vec(),
            attempts_batch,
            attempts,
            dropped_journal_lost: d.journal_lost,
            settled_through_seq: 0,
        }
    }

    /// The drop counters.
    pub fn drops(&self) -> Drops {
        Drops {
            overflow: self.dropped_overflow,
            rejected: self.dropped_rejected,
            too_large: self.dropped_too_large,
            retries_exhausted: self.dropped_retries_exhausted,
            purged: self.dropped_purged,
            store_corrupt: self.dropped_store_corrupt,
            journal_lost: self.dropped_journal_lost,
        }
    }
}

/// One journal record.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Entry<'a> {
    /// First record after every checkpoint: the clock epoch of what follows.
    Epoch {
        mono_epoch: u32,
    },
    PageViewStart {
        ordinal: u64,
        start_mono: u64,
        start_wall: u64,
        page: &'a str,
        request_id: Option<&'a str>,
    },
    PageViewEnd {
        ordinal: u64,
        duration_ms: u64,
    },
    Impression(JournalImpression<'a>),
    SampledOut,
    Deduped,
    /// Input refused by the contract; the rule's index.
    Invalid {
        rule: u8,
    },
}

/// An impression as journaled: enough to rebuild it in a batch after a crash.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct JournalImpression<'a> {
    pub seq: u64,
    pub page_view: u64,
    pub item: &'a str,
    pub artwork: Option<&'a str>,
    pub row: u32,
    pub column: u32,
    pub first_visible_ms: u32,
    pub visible_ms: u32,
    pub focused_ms: u32,
    pub max_visible_pct: u8,
}

const EPOCH: u8 = 1;
const PV_START: u8 = 2;
const PV_END: u8 = 3;
const IMPRESSION: u8 = 4;
const SAMPLED_OUT: u8 = 5;
const DEDUPED: u8 = 6;
const INVALID: u8 = 7;

impl Entry<'_> {
    /// Appends the record (generation first) to `out`.
    pub fn encode(&self, generation: u32, out: &mut Vec<u8>) {
        out.extend_from_slice(&generation.to_le_bytes());
        match self {
            Entry::Epoch { mono_epoch } => {
                out.push(EPOCH);
                out.extend_from_slice(&mono_epoch.to_le_bytes());
            }
            Entry::PageViewStart {
                ordinal,
                start_mono,
                start_wall,
                page,
                request_id,
            } => {
                out.push(PV_START);
                for v in [ordinal, start_mono, start_wall] {
                    out.extend_from_slice(&v.to_le_bytes());
                }
                put_str(out, page);
                put_opt_str(out, *request_id);
            }
            Entry::PageViewEnd {
                ordinal,
                duration_ms,
            } => {
                out.push(PV_END);
                out.extend_from_slice(&ordinal.to_le_bytes());
                out.extend_from_slice(&duration_ms.to_le_bytes());
            }
            Entry::Impression(i) => {
                out.push(IMPRESSION);
                out.extend_from_slice(&i.seq.to_le_bytes());
                out.extend_from_slice(&i.page_view.to_le_bytes());
                for v in [
                    i.row,
                    i.column,
                    i.first_visible_ms,
                    i.visible_ms,
                    i.focused_ms,
                ] {
                    out.extend_from_slice(&v.to_le_bytes());
                }
                out.push(i.max_visible_pct);
                put_str(out, i.item);
                put_opt_str(out, i.artwork);
            }
            Entry::SampledOut => out.push(SAMPLED_OUT),
            Entry::Deduped => out.push(DEDUPED),
            Entry::Invalid { rule } => {
                out.push(INVALID);
                out.push(*rule);
            }
        }
    }

    /// Parses a record; `None` for anything malformed.
    pub fn decode(bytes: &[u8]) -> Option<(u32, Entry<'_>)> {
        let mut r = Reader(bytes);
        let generation = r.u32()?;
        let entry = match r.u8()? {
            EPOCH => Entry::Epoch {
                mono_epoch: r.u32()?,
            },
            PV_START => Entry::PageViewStart {
                ordinal: r.u64()?,
                start_mono: r.u64()?,
                start_wall: r.u64()?,
                page: r.str()?,
                request_id: r.opt_str()?,
            },
            PV_END => Entry::PageViewEnd {
                ordinal: r.u64()?,
                duration_ms: r.u64()?,
            },
            IMPRESSION => {
                let seq = r.u64()?;
                let page_view = r.u64()?;
                let (row, column) = (r.u32()?, r.u32()?);
                let (first_visible_ms, visible_ms, focused_ms) = (r.u32()?, r.u32()?, r.u32()?);
                let max_visible_pct = r.u8()?;
                Entry::Impression(JournalImpression {
                    seq,
                    page_view,
                    item: r.str()?,
                    artwork: r.opt_str()?,
                    row,
                    column,
                    first_visible_ms,
                    visible_ms,
                    focused_ms,
                    max_visible_pct,
                })
            }
            SAMPLED_OUT => Entry::SampledOut,
            DEDUPED => Entry::Deduped,
            INVALID => Entry::Invalid { rule: r.u8()? },
            _ => return None,
        };
        r.0.is_empty().then_some((generation, entry))
    }
}

fn put_str(out: &mut Vec<u8>, s: &str) {
    // Ids are bounded by the contract far below 255 bytes; longer ones never reach here.
    let len = s.len().min(u8::MAX as usize);
    out.push(len as u8);
    out.extend_from_slice(&s.as_bytes()[..len]);
}

fn put_opt_str(out: &mut Vec<u8>, s: Option<&str>) {
    match s {
        Some(s) => {
            out.push(1);
            put_str(out, s);
        }
        None => out.push(0),
    }
}

struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        let (head, tail) = (self.0.get(..n)?, self.0.get(n..)?);
        self.0 = tail;
        Some(head)
    }
    fn u8(&mut self) -> Option<u8> {
        Some(self.take(1)?[0])
    }
    fn u32(&mut self) -> Option<u32> {
        Some(u32::from_le_bytes(self.take(4)?.try_into().ok()?))
    }
    fn u64(&mut self) -> Option<u64> {
        Some(u64::from_le_bytes(self.take(8)?.try_into().ok()?))
    }
    fn str(&mut self) -> Option<&'a str> {
        let len = usize::from(self.u8()?);
        core::str::from_utf8(self.take(len)?).ok()
    }
    fn opt_str(&mut self) -> Option<Option<&'a str>> {
        match self.u8()? {
            0 => Some(None),
            1 => Some(Some(self.str()?)),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn round_trip(entry: Entry<'_>) {
        let mut buf = Vec::new();
        entry.encode(9, &mut buf);
        assert_eq!(Entry::decode(&buf), Some((9, entry)));
        for cut in 0..buf.len() {
            assert!(
                Entry::decode(&buf[..cut]).is_none(),
                "prefix {cut} accepted"
            );
        }
    }

    #[test]
    fn every_journal_record_round_trips_and_no_prefix_parses() {
        round_trip(Entry::Epoch { mono_epoch: 4 });
        round_trip(Entry::PageViewStart {
            ordinal: 3,
            start_mono: 100,
            start_wall: 1_700_000_000_000,
            page: "home",
            request_id: Some("abc"),
        });
        round_trip(Entry::PageViewEnd {
            ordinal: 3,
            duration_ms: 5000,
        });
        round_trip(Entry::Impression(JournalImpression {
            seq: 77,
            page_view: 3,
            item: "title:81234567",
            artwork: None,
            row: 1,
            column: 4,
            first_visible_ms: 1200,
            visible_ms: 3400,
            focused_ms: 0,
            max_visible_pct: 100,
        }));
        round_trip(Entry::SampledOut);
        round_trip(Entry::Deduped);
        round_trip(Entry::Invalid { rule: 5 });
    }

    #[test]
    fn an_unknown_record_kind_is_refused() {
        assert!(Entry::decode(&[0, 0, 0, 0, 99]).is_none());
    }
}
