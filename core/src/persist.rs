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

/// Counts, seqs and ids read back above this are corrupt, as a record failing its checksum
/// is: far beyond any real session (a thousand impressions a second for 8,900 years), and
/// far enough below `u64::MAX` that what a running logger adds to them never overflows.
pub const MAX_STORED_COUNT: u64 = 1 << 48;
/// The same for the 32-bit counters (journal generations, starts, upload attempts).
pub const MAX_STORED_SMALL_COUNT: u32 = 1 << 30;

// The plausibility checks test counts OR-ed together against these bounds, which is
// exact for powers of two only.
const _: () =
    assert!(MAX_STORED_COUNT.is_power_of_two() && MAX_STORED_SMALL_COUNT.is_power_of_two());

/// The bits set in any of `counts`: below a power-of-two bound exactly when each count is,
/// so a record's counts take one test, not a loop over an iterator chain.
fn any_bits(counts: &[u64]) -> u64 {
    counts.iter().fold(0, |bits, &n| bits | n)
}

/// Store key of the session state.
pub const STATE_KEY: &str = "state";
/// Store key of the acknowledgement counters.
pub const ACKS_KEY: &str = "acks";
/// Store key of the user's choices (opt-out), which must survive restarts.
pub const PREFS_KEY: &str = "prefs";

/// The protobuf codec of the `state` and `acks` records: the bytes
/// `#[derive(prost::Message)]` would read and write (proto3: zero scalars and empty
/// strings omitted, repeated `uint64` packed, fields in tag order; prost's own field
/// functions, the same errors with the same field names), driven by a table of the
/// fields instead of code per field. Each field is listed once, `tag name`, with tags
/// 1, 2, ... in order (checked at compile time); its type gives its wire form
/// (`u64`, `u32`, `String`, `Vec<u64>` packed).
macro_rules! record_codec {
    ($record:ident { $($tag:literal $name:ident),+ $(,)? }) => {
        const _: () = {
            let tags = [$($tag),+];
            let mut i = 0;
            while i < tags.len() {
                assert!(tags[i] == i as u32 + 1, "record tags must be 1, 2, ... in order");
                i += 1;
            }
        };

        impl $record {
            /// The field names in decode errors, by tag - 1.
            const FIELD_NAMES: &'static [&'static str] = &[$(stringify!($name)),+];
        }

        impl prost::Message for $record {
            fn encode_raw(&self, buf: &mut impl prost::bytes::BufMut) {
                encode_values(&[$(self.$name.value()),+], buf);
            }

            fn merge_field(
                &mut self,
                tag: u32,
                wire_type: prost::encoding::WireType,
                buf: &mut impl prost::bytes::Buf,
                ctx: prost::encoding::DecodeContext,
            ) -> Result<(), prost::DecodeError> {
                let field = match tag {
                    $($tag => Some(self.$name.field()),)+
                    _ => None,
                };
                let name = tag
                    .checked_sub(1)
                    .and_then(|i| Self::FIELD_NAMES.get(i as usize))
                    .copied();
                merge_value(field, (stringify!($record), name), tag, wire_type, buf, ctx)
            }

            fn encoded_len(&self) -> usize {
                values_len(&[$(self.$name.value()),+])
            }

            fn clear(&mut self) {
                *self = Self::default();
            }
        }
    };
}

/// A record field's wire form, by its type.
trait RecordField {
    fn field(&mut self) -> Field<'_>;
    fn value(&self) -> Value<'_>;
}

impl RecordField for u64 {
    fn field(&mut self) -> Field<'_> {
        Field::U64(self)
    }
    fn value(&self) -> Value<'_> {
        Value::Varint(*self)
    }
}

impl RecordField for u32 {
    fn field(&mut self) -> Field<'_> {
        Field::U32(self)
    }
    fn value(&self) -> Value<'_> {
        Value::Varint(u64::from(*self))
    }
}

impl RecordField for String {
    fn field(&mut self) -> Field<'_> {
        Field::Str(self)
    }
    fn value(&self) -> Value<'_> {
        Value::Str(self)
    }
}

impl RecordField for Vec<u64> {
    fn field(&mut self) -> Field<'_> {
        Field::Packed(self)
    }
    fn value(&self) -> Value<'_> {
        Value::Packed(self)
    }
}

/// A field of a record to decode into.
enum Field<'a> {
    U64(&'a mut u64),
    /// Decoded as prost decodes a `uint32`: the varint truncated.
    U32(&'a mut u32),
    Str(&'a mut String),
    /// A packed `repeated uint64` (an unpacked one is read too, as prost does).
    Packed(&'a mut Vec<u64>),
}

/// A field's value to encode: `uint32` and `uint64` are the same varint on the wire.
enum Value<'a> {
    Varint(u64),
    Str(&'a str),
    Packed(&'a [u64]),
}

/// Writes `values` as fields 1, 2, ...
fn encode_values(values: &[Value<'_>], buf: &mut impl prost::bytes::BufMut) {
    use prost::encoding::{WireType, encode_key, encode_varint, uint64};
    for (tag, value) in (1..).zip(values) {
        match *value {
            Value::Varint(0) => {}
            Value::Varint(v) => {
                encode_key(tag, WireType::Varint, buf);
                encode_varint(v, buf);
            }
            // As prost's `string::encode`, for a non-empty string.
            Value::Str(s) => {
                if !s.is_empty() {
                    encode_key(tag, WireType::LengthDelimited, buf);
                    encode_varint(s.len() as u64, buf);
                    buf.put_slice(s.as_bytes());
                }
            }
            Value::Packed(v) => uint64::encode_packed(tag, v, buf),
        }
    }
}

/// What [`encode_values`] writes, in bytes.
fn values_len(values: &[Value<'_>]) -> usize {
    use prost::encoding::{encoded_len_varint, key_len, uint64};
    let mut len = 0;
    for (tag, value) in (1..).zip(values) {
        len += match *value {
            Value::Varint(0) => 0,
            Value::Varint(v) => key_len(tag) + encoded_len_varint(v),
            Value::Str(s) => match s.len() {
                0 => 0,
                n => key_len(tag) + encoded_len_varint(n as u64) + n,
            },
            Value::Packed(v) => uint64::encoded_len_packed(tag, v),
        };
    }
    len
}

/// Decodes one field into `field` (an unknown tag is skipped); an error names the
/// record and the field, as prost's derived code does.
fn merge_value(
    field: Option<Field<'_>>,
    (record, name): (&'static str, Option<&'static str>),
    tag: u32,
    wire_type: prost::encoding::WireType,
    buf: &mut impl prost::bytes::Buf,
    ctx: prost::encoding::DecodeContext,
) -> Result<(), prost::DecodeError> {
    use prost::encoding::{skip_field, string, uint32, uint64};
    let merged = match field {
        None => return skip_field(wire_type, tag, buf, ctx),
        Some(Field::U64(v)) => uint64::merge(wire_type, v, buf, ctx),
        Some(Field::U32(v)) => uint32::merge(wire_type, v, buf, ctx),
        Some(Field::Str(v)) => string::merge(wire_type, v, buf, ctx),
        Some(Field::Packed(v)) => uint64::merge_repeated(wire_type, v, buf, ctx),
    };
    merged.map_err(|mut error| {
        error.push(record, name.unwrap_or_default());
        error
    })
}

/// The user's choices.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Prefs {
    #[prost(bool, tag = "1")]
    pub opted_out: bool,
    /// A purge was asked for and may not have finished: a restart completes it.
    #[prost(bool, tag = "2")]
    pub purge_pending: bool,
}

/// The session and checkpoint record; its protobuf codec is `record_codec!`'s (below:
/// `session_id` string 1, `generation` uint32 2, ..., `invalid_by_rule` packed
/// `repeated uint64` 12, `reserved_through` 13).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct State {
    pub session_id: String,
    /// Journal records of other generations are ignored on replay.
    pub generation: u32,
    /// Logger starts over this store; also the monotonic clock epoch.
    pub starts: u32,
    pub next_batch_id: u64,
    pub next_batch_no: u64,
    pub next_page_view: u64,
    pub recorded: u64,
    pub sampled_out: u64,
    pub deduped: u64,
    pub issued: u64,
    pub invalid: u64,
    pub invalid_by_rule: Vec<u64>,
    /// Seqs up to this one may have been issued: a restart that finds fewer counts the
    /// rest as lost with their journal records.
    pub reserved_through: u64,
}

record_codec!(State {
    1 session_id,
    2 generation,
    3 starts,
    4 next_batch_id,
    5 next_batch_no,
    6 next_page_view,
    7 recorded,
    8 sampled_out,
    9 deduped,
    10 issued,
    11 invalid,
    12 invalid_by_rule,
    13 reserved_through,
});

impl State {
    /// Whether the record can be a logger's: numbers within the bounds a running logger
    /// can add to, and a session id the collector accepts. One that passed its checksum
    /// but is not is treated as corrupt.
    pub fn plausible(&self) -> bool {
        crate::contract::valid_id(&self.session_id, crate::config::MAX_ID_LEN)
            && (self.generation | self.starts) < MAX_STORED_SMALL_COUNT
            && (self.next_batch_id
                | self.next_batch_no
                | self.next_page_view
                | self.recorded
                | self.sampled_out
                | self.deduped
                | self.issued
                | self.invalid
                | self.reserved_through
                | any_bits(&self.invalid_by_rule))
                < MAX_STORED_COUNT
    }
}

/// Counters that change on upload outcomes; its protobuf codec is `record_codec!`'s
/// (below: uint64 fields 1 to 19 in order, but `settled` packed `repeated uint64` 15 and
/// `attempts` uint32 17).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Acks {
    pub delivered: u64,
    pub dropped_overflow: u64,
    pub dropped_rejected: u64,
    pub dropped_too_large: u64,
    pub dropped_retries_exhausted: u64,
    pub dropped_purged: u64,
    pub dropped_store_corrupt: u64,
    pub uploads: u64,
    pub retries: u64,
    pub bytes_delivered: u64,
    pub store_errors: u64,
    pub corrupt_records: u64,
    /// Wall-clock time before which the collector asked not to be contacted...
    pub blocked_until_wall_ms: u64,
    /// ...and how long that was when asked, so a wall clock set back cannot stretch it.
    pub blocked_for_ms: u64,
    /// Batches already counted as delivered or dropped whose stored copy may remain.
    pub settled: Vec<u64>,
    /// The front batch and its upload attempts so far, so backoff survives a restart
    /// without rewriting the batch on every retry (flash wear).
    pub attempts_batch: u64,
    pub attempts: u32,
    pub dropped_journal_lost: u64,
    /// The highest seq of a batch counted as delivered or dropped. Batches hold contiguous
    /// seqs and settle in seq order, so a replay skips journaled seqs up to it (they are
    /// counted even when their batch's copy is gone and the journal was kept).
    pub settled_through_seq: u64,
}

record_codec!(Acks {
    1 delivered,
    2 dropped_overflow,
    3 dropped_rejected,
    4 dropped_too_large,
    5 dropped_retries_exhausted,
    6 dropped_purged,
    7 dropped_store_corrupt,
    8 uploads,
    9 retries,
    10 bytes_delivered,
    11 store_errors,
    12 corrupt_records,
    13 blocked_until_wall_ms,
    14 blocked_for_ms,
    15 settled,
    16 attempts_batch,
    17 attempts,
    18 dropped_journal_lost,
    19 settled_through_seq,
});

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

    /// Whether the record can be a logger's (see [`State::plausible`]). The blocking times
    /// are the host's clock, whatever it says, and are only ever added to saturating.
    ///
    /// Impressions delivered or dropped with their batch each had a seq of their own up to
    /// `settled_through_seq`, so they are at most that many. Drops counted at a start
    /// (`store_corrupt`, `journal_lost`, `purged` while purging) and purges of the open
    /// batch are counted against seqs no settled batch held.
    pub fn plausible(&self) -> bool {
        self.attempts < MAX_STORED_SMALL_COUNT
            && (self.delivered
                | self.dropped_overflow
                | self.dropped_rejected
                | self.dropped_too_large
                | self.dropped_retries_exhausted
                | self.dropped_purged
                | self.dropped_store_corrupt
                | self.uploads
                | self.retries
                | self.bytes_delivered
                | self.store_errors
                | self.corrupt_records
                | self.attempts_batch
                | self.dropped_journal_lost
                | self.settled_through_seq
                | any_bits(&self.settled))
                < MAX_STORED_COUNT
            // Cannot overflow: each count is below `MAX_STORED_COUNT` here.
            && self.delivered
                + self.dropped_overflow
                + self.dropped_rejected
                + self.dropped_too_large
                + self.dropped_retries_exhausted
                <= self.settled_through_seq
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
        (r.0.is_empty() && entry.plausible()).then_some((generation, entry))
    }

    /// Seqs and page view ordinals within [`MAX_STORED_COUNT`] (times are the host's).
    fn plausible(&self) -> bool {
        match self {
            Entry::PageViewStart { ordinal, .. } | Entry::PageViewEnd { ordinal, .. } => {
                *ordinal < MAX_STORED_COUNT
            }
            Entry::Impression(i) => (i.seq | i.page_view) < MAX_STORED_COUNT,
            Entry::Epoch { .. } | Entry::SampledOut | Entry::Deduped | Entry::Invalid { .. } => {
                true
            }
        }
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
    use alloc::string::ToString;

    /// The records as `#[derive(prost::Message)]` declared them before their codec was
    /// a table: the reference every byte of the table codec is pinned against.
    mod derived {
        use alloc::string::String;
        use alloc::vec::Vec;

        #[derive(Clone, PartialEq, prost::Message)]
        pub struct State {
            #[prost(string, tag = "1")]
            pub session_id: String,
            #[prost(uint32, tag = "2")]
            pub generation: u32,
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
            #[prost(uint64, tag = "13")]
            pub reserved_through: u64,
        }

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
            #[prost(uint64, tag = "13")]
            pub blocked_until_wall_ms: u64,
            #[prost(uint64, tag = "14")]
            pub blocked_for_ms: u64,
            #[prost(uint64, repeated, tag = "15")]
            pub settled: Vec<u64>,
            #[prost(uint64, tag = "16")]
            pub attempts_batch: u64,
            #[prost(uint32, tag = "17")]
            pub attempts: u32,
            #[prost(uint64, tag = "18")]
            pub dropped_journal_lost: u64,
            #[prost(uint64, tag = "19")]
            pub settled_through_seq: u64,
        }
    }

    /// A value that is often zero, often small, sometimes any `u64`.
    fn some_u64(rng: &mut crate::rng::Rng) -> u64 {
        match rng.up_to(3) {
            0 => 0,
            1 => rng.up_to(300),
            _ => rng.next_u64() >> rng.up_to(63),
        }
    }

    fn some_list(rng: &mut crate::rng::Rng) -> Vec<u64> {
        (0..rng.up_to(4)).map(|_| some_u64(rng)).collect()
    }

    /// The same random state in both forms.
    fn some_state(rng: &mut crate::rng::Rng) -> (State, derived::State) {
        let session_id = ["", "59e8c14c46b8b84b", "é"][rng.up_to(2) as usize].to_string();
        let mut v = [0u64; 12];
        v.iter_mut().for_each(|x| *x = some_u64(rng));
        let list = some_list(rng);
        let ours = State {
            session_id: session_id.clone(),
            generation: v[0] as u32,
            starts: v[1] as u32,
            next_batch_id: v[2],
            next_batch_no: v[3],
            next_page_view: v[4],
            recorded: v[5],
            sampled_out: v[6],
            deduped: v[7],
            issued: v[8],
            invalid: v[9],
            invalid_by_rule: list.clone(),
            reserved_through: v[10],
        };
        let theirs = derived::State {
            session_id,
            generation: v[0] as u32,
            starts: v[1] as u32,
            next_batch_id: v[2],
            next_batch_no: v[3],
            next_page_view: v[4],
            recorded: v[5],
            sampled_out: v[6],
            deduped: v[7],
            issued: v[8],
            invalid: v[9],
            invalid_by_rule: list,
            reserved_through: v[10],
        };
        (ours, theirs)
    }

    fn some_acks(rng: &mut crate::rng::Rng) -> (Acks, derived::Acks) {
        let mut v = [0u64; 18];
        v.iter_mut().for_each(|x| *x = some_u64(rng));
        let list = some_list(rng);
        let ours = Acks {
            delivered: v[0],
            dropped_overflow: v[1],
            dropped_rejected: v[2],
            dropped_too_large: v[3],
            dropped_retries_exhausted: v[4],
            dropped_purged: v[5],
            dropped_store_corrupt: v[6],
            uploads: v[7],
            retries: v[8],
            bytes_delivered: v[9],
            store_errors: v[10],
            corrupt_records: v[11],
            blocked_until_wall_ms: v[12],
            blocked_for_ms: v[13],
            settled: list.clone(),
            attempts_batch: v[14],
            attempts: v[15] as u32,
            dropped_journal_lost: v[16],
            settled_through_seq: v[17],
        };
        let theirs = derived::Acks {
            delivered: v[0],
            dropped_overflow: v[1],
            dropped_rejected: v[2],
            dropped_too_large: v[3],
            dropped_retries_exhausted: v[4],
            dropped_purged: v[5],
            dropped_store_corrupt: v[6],
            uploads: v[7],
            retries: v[8],
            bytes_delivered: v[9],
            store_errors: v[10],
            corrupt_records: v[11],
            blocked_until_wall_ms: v[12],
            blocked_for_ms: v[13],
            settled: list,
            attempts_batch: v[14],
            attempts: v[15] as u32,
            dropped_journal_lost: v[16],
            settled_through_seq: v[17],
        };
        (ours, theirs)
    }

    /// Bytes near a valid record: cut, a byte changed or inserted, or a field of any wire
    /// type (unknown tags, tags beyond the record, tag 0, unpacked repeated values) added.
    fn mutated(rng: &mut crate::rng::Rng, mut bytes: Vec<u8>) -> Vec<u8> {
        for _ in 0..rng.up_to(3) {
            match rng.up_to(4) {
                0 if !bytes.is_empty() => {
                    bytes.truncate(rng.up_to(bytes.len() as u64 - 1) as usize)
                }
                1 if !bytes.is_empty() => {
                    let at = rng.up_to(bytes.len() as u64 - 1) as usize;
                    bytes[at] = rng.next_u64() as u8;
                }
                2 => {
                    let at = rng.up_to(bytes.len() as u64) as usize;
                    bytes.insert(at, rng.next_u64() as u8);
                }
                _ => {
                    let tag = rng.up_to(22) as u32;
                    let wire = rng.up_to(5);
                    let key = u64::from(tag) << 3 | wire;
                    prost::encoding::encode_varint(key, &mut bytes);
                    match wire {
                        0 => prost::encoding::encode_varint(some_u64(rng), &mut bytes),
                        1 => bytes.extend_from_slice(&rng.next_u64().to_le_bytes()),
                        2 => {
                            let n = rng.up_to(3);
                            bytes.push(n as u8);
                            bytes.extend((0..n).map(|_| rng.up_to(0x90) as u8));
                        }
                        5 => bytes.extend_from_slice(&[1, 2, 3, 4]),
                        _ => {}
                    }
                }
            }
        }
        bytes
    }

    #[test]
    fn state_and_acks_read_and_write_the_bytes_the_derived_codec_does() {
        use prost::Message;
        let mut rng = crate::rng::Rng::new(17);
        for _ in 0..5_000 {
            let (ours, theirs) = some_state(&mut rng);
            let bytes = theirs.encode_to_vec();
            assert_eq!(ours.encode_to_vec(), bytes, "{ours:?}");
            assert_eq!(ours.encoded_len(), theirs.encoded_len());
            let (a, b) = some_acks(&mut rng);
            let acks_bytes = b.encode_to_vec();
            assert_eq!(a.encode_to_vec(), acks_bytes, "{a:?}");
            assert_eq!(a.encoded_len(), b.encoded_len());

            for _ in 0..4 {
                let input = mutated(&mut rng, bytes.clone());
                let (ours, theirs) = (State::decode(&*input), derived::State::decode(&*input));
                match (ours, theirs) {
                    (Ok(o), Ok(t)) => assert_eq!(o.encode_to_vec(), t.encode_to_vec()),
                    (Err(o), Err(t)) => assert_eq!(o, t, "{input:?}"),
                    (o, t) => panic!("{input:?}: {o:?} but derived {t:?}"),
                }
                let input = mutated(&mut rng, acks_bytes.clone());
                let (ours, theirs) = (Acks::decode(&*input), derived::Acks::decode(&*input));
                match (ours, theirs) {
                    (Ok(o), Ok(t)) => assert_eq!(o.encode_to_vec(), t.encode_to_vec()),
                    (Err(o), Err(t)) => assert_eq!(o, t, "{input:?}"),
                    (o, t) => panic!("{input:?}: {o:?} but derived {t:?}"),
                }
            }
        }
    }

    #[test]
    fn a_decode_error_names_the_record_and_field_as_the_derived_codec_does() {
        use prost::Message;
        // Field 2 of State (generation) and 17 of Acks (attempts) with a length-delimited
        // wire type, and a truncated string.
        for input in [&[0x12, 0x00][..], &[0x0a, 0x05, b'a'], &[0x62, 0x01]] {
            let (o, t) = (State::decode(input), derived::State::decode(input));
            assert_eq!(o.unwrap_err().to_string(), t.unwrap_err().to_string());
        }
        for input in [&[0x8a, 0x01, 0x00][..], &[0x7a, 0x01, 0x80], &[0x08]] {
            let (o, t) = (Acks::decode(input), derived::Acks::decode(input));
            assert_eq!(o.unwrap_err().to_string(), t.unwrap_err().to_string());
        }
        let stack = State::decode(&[0x12, 0x00][..]).unwrap_err().to_string();
        assert!(stack.contains("State.generation"), "{stack}");
    }

    #[test]
    fn acks_settling_more_impressions_with_batches_than_settled_seqs_are_implausible() {
        let settled = |acks: Acks| Acks {
            settled_through_seq: 4,
            ..acks
        };
        assert!(
            settled(Acks {
                delivered: 2,
                dropped_overflow: 1,
                dropped_too_large: 1,
                ..Acks::default()
            })
            .plausible()
        );
        for beyond in [
            Acks {
                delivered: 5,
                ..Acks::default()
            },
            Acks {
                delivered: 1,
                dropped_rejected: 2,
                dropped_retries_exhausted: 2,
                ..Acks::default()
            },
        ] {
            assert!(!settled(beyond.clone()).plausible(), "{beyond:?}");
        }
        // Counted at a start, against seqs no settled batch held.
        let at_start = Acks {
            dropped_purged: 9,
            dropped_store_corrupt: 9,
            dropped_journal_lost: 9,
            ..Acks::default()
        };
        assert!(settled(at_start).plausible());
    }

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
