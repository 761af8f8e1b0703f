//! The input of `store_resume`: what a host read back from its store (values and journal),
//! the logger's clock and configuration knobs, then what the host does with the started
//! logger.
//!
//! Stored values and journal records come in two forms: a payload the target frames itself
//! (length and CRC-32 right, so mutations reach the record decoders behind the checksum) or
//! raw bytes (mutations reach the framing). Layout: `mono_ms: u64`, `wall_ms: u64`,
//! `knobs: u8`, then items until the end, each a tag byte and its fields:
//!
//! | tag | item | fields |
//! | --- | --- | --- |
//! | 0 | value, framed by the target | key, payload |
//! | 1 | value, raw | key, bytes |
//! | 2 | journal record, framed by the target | payload |
//! | 3 | journal bytes, raw | bytes |
//! | 4.. | an [`Op`] on the started logger | its fields |
//!
//! A key is a byte: 0 `state`, 1 `acks`, 2 `prefs`, 3 `batch/<id>` with an `id: u64`, else
//! a string with an 8-bit length. Byte strings have 32-bit lengths.

use sightline_core::config::MIN_QUEUE_BYTES;
use sightline_core::persist::{ACKS_KEY, PREFS_KEY, STATE_KEY};
use sightline_core::queue::{BATCH_KEY_PREFIX, batch_key};
use sightline_core::store::{frame_into, read_frames, read_single_frame};
use sightline_core::{Config, SampleKey, Stored};

use crate::{Reader, Writer};

/// Operations per input: enough to close, send, split and retry batches and restart, few
/// enough that one input stays fast.
pub const MAX_OPS: usize = 64;

/// A store key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Key {
    State,
    Acks,
    Prefs,
    Batch(u64),
    Other(String),
}

impl Key {
    pub fn name(&self) -> String {
        match self {
            Key::State => STATE_KEY.into(),
            Key::Acks => ACKS_KEY.into(),
            Key::Prefs => PREFS_KEY.into(),
            Key::Batch(id) => batch_key(*id),
            Key::Other(s) => s.clone(),
        }
    }

    fn of(name: &str) -> Key {
        match name {
            STATE_KEY => Key::State,
            ACKS_KEY => Key::Acks,
            PREFS_KEY => Key::Prefs,
            _ => match name
                .strip_prefix(BATCH_KEY_PREFIX)
                .and_then(|id| id.parse().ok())
                .filter(|&id| batch_key(id) == name)
            {
                Some(id) => Key::Batch(id),
                None => Key::Other(name.into()),
            },
        }
    }

    fn read(r: &mut Reader<'_>) -> Key {
        match r.u8() {
            0 => Key::State,
            1 => Key::Acks,
            2 => Key::Prefs,
            3 => Key::Batch(r.u64()),
            _ => Key::Other(r.short_str()),
        }
    }

    fn write(&self, w: &mut Writer) {
        match self {
            Key::State => w.u8(0),
            Key::Acks => w.u8(1),
            Key::Prefs => w.u8(2),
            Key::Batch(id) => w.u8(3).u64(*id),
            Key::Other(s) => w.u8(4).short_str(s),
        };
    }
}

/// Stored bytes: a payload to frame, or bytes as they are.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Bytes {
    Framed(Vec<u8>),
    Raw(Vec<u8>),
}

impl Bytes {
    fn append_to(&self, out: &mut Vec<u8>) {
        match self {
            Bytes::Framed(payload) => frame_into(out, payload),
            Bytes::Raw(raw) => out.extend_from_slice(raw),
        }
    }
}

/// What the host does next with the started logger. Ids, pages and items are small
/// indices so that mutations land on ones the logger knows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Op {
    /// Time passes (monotonic and wall), then the timeout is handled.
    Advance {
        ms: u32,
    },
    StartPageView {
        page: u8,
        request: u8,
    },
    /// Ends the `n`-th page view started (modulo how many were).
    EndPageView {
        n: u8,
    },
    Record {
        n: u8,
        item: u8,
        artwork: u8,
        row: u8,
        column: u8,
        visible_ms: u16,
        pct: u8,
        focused_ms: u16,
    },
    Flush,
    AppHidden,
    AppVisible,
    /// Polls for an upload and answers it with `status` (0: a network error), with a
    /// Retry-After of `retry_after` seconds when non-zero.
    Upload {
        status: u16,
        retry_after: u8,
    },
    SetEnabled {
        enabled: bool,
        purge: bool,
    },
    /// The next `n` store operations fail.
    FailStore {
        n: u8,
    },
    /// The process stops and starts again from what the host's store holds.
    Restart,
}

const OPS: u8 = 11;

impl Op {
    fn read(tag: u8, r: &mut Reader<'_>) -> Op {
        match (tag - 4) % OPS {
            0 => Op::Advance { ms: r.u32() },
            1 => Op::StartPageView {
                page: r.u8(),
                request: r.u8(),
            },
            2 => Op::EndPageView { n: r.u8() },
            3 => Op::Record {
                n: r.u8(),
                item: r.u8(),
                artwork: r.u8(),
                row: r.u8(),
                column: r.u8(),
                visible_ms: r.u16(),
                pct: r.u8(),
                focused_ms: r.u16(),
            },
            4 => Op::Flush,
            5 => Op::AppHidden,
            6 => Op::AppVisible,
            7 => Op::Upload {
                status: r.u16(),
                retry_after: r.u8(),
            },
            8 => {
                let bits = r.u8();
                Op::SetEnabled {
                    enabled: bits & 1 != 0,
                    purge: bits & 2 != 0,
                }
            }
            9 => Op::FailStore { n: r.u8() },
            _ => Op::Restart,
        }
    }

    fn write(&self, w: &mut Writer) {
        let tag = |i: u8| 4 + i;
        match *self {
            Op::Advance { ms } => w.u8(tag(0)).u32(ms),
            Op::StartPageView { page, request } => w.u8(tag(1)).u8(page).u8(request),
            Op::EndPageView { n } => w.u8(tag(2)).u8(n),
            Op::Record {
                n,
                item,
                artwork,
                row,
                column,
                visible_ms,
                pct,
                focused_ms,
            } => w
                .u8(tag(3))
                .u8(n)
                .u8(item)
                .u8(artwork)
                .u8(row)
                .u8(column)
                .u16(visible_ms)
                .u8(pct)
                .u16(focused_ms),
            Op::Flush => w.u8(tag(4)),
            Op::AppHidden => w.u8(tag(5)),
            Op::AppVisible => w.u8(tag(6)),
            Op::Upload {
                status,
                retry_after,
            } => w.u8(tag(7)).u16(status).u8(retry_after),
            Op::SetEnabled { enabled, purge } => {
                w.u8(tag(8)).u8(u8::from(enabled) | u8::from(purge) << 1)
            }
            Op::FailStore { n } => w.u8(tag(9)).u8(n),
            Op::Restart => w.u8(tag(10)),
        };
    }
}

/// The whole input.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Input {
    pub mono_ms: u64,
    pub wall_ms: u64,
    /// Configuration knobs, see [`Input::config`].
    pub knobs: u8,
    pub values: Vec<(Key, Bytes)>,
    pub journal: Vec<Bytes>,
    pub ops: Vec<Op>,
}

impl Input {
    /// Reads any bytes as an input.
    pub fn parse(data: &[u8]) -> Input {
        let mut r = Reader(data);
        let mut input = Input {
            mono_ms: r.u64(),
            wall_ms: r.u64(),
            knobs: r.u8(),
            values: Vec::new(),
            journal: Vec::new(),
            ops: Vec::new(),
        };
        while !r.is_empty() {
            match r.u8() {
                0 => input
                    .values
                    .push((Key::read(&mut r), Bytes::Framed(r.bytes().to_vec()))),
                1 => input
                    .values
                    .push((Key::read(&mut r), Bytes::Raw(r.bytes().to_vec()))),
                2 => input.journal.push(Bytes::Framed(r.bytes().to_vec())),
                3 => input.journal.push(Bytes::Raw(r.bytes().to_vec())),
                tag if input.ops.len() < MAX_OPS => input.ops.push(Op::read(tag, &mut r)),
                _ => break,
            }
        }
        input
    }

    /// The bytes [`Input::parse`] reads back as this input.
    pub fn write(&self) -> Vec<u8> {
        let mut w = Writer::default();
        w.u64(self.mono_ms).u64(self.wall_ms).u8(self.knobs);
        for (key, value) in &self.values {
            match value {
                Bytes::Framed(b) => {
                    w.u8(0);
                    key.write(&mut w);
                    w.bytes(b)
                }
                Bytes::Raw(b) => {
                    w.u8(1);
                    key.write(&mut w);
                    w.bytes(b)
                }
            };
        }
        for chunk in &self.journal {
            match chunk {
                Bytes::Framed(b) => w.u8(2).bytes(b),
                Bytes::Raw(b) => w.u8(3).bytes(b),
            };
        }
        for op in &self.ops {
            op.write(&mut w);
        }
        w.0
    }

    /// An input whose stored part is `stored` (framed records as payloads, so that
    /// mutations keep their checksums right), with no operations.
    pub fn from_stored(stored: &Stored, mono_ms: u64, wall_ms: u64, knobs: u8) -> Input {
        let values = stored
            .values
            .iter()
            .map(|(k, v)| {
                let bytes = match read_single_frame(v) {
                    Some(payload) => Bytes::Framed(payload.to_vec()),
                    None => Bytes::Raw(v.clone()),
                };
                (Key::of(k), bytes)
            })
            .collect();
        let frames = read_frames(&stored.journal);
        let mut journal: Vec<Bytes> = frames
            .payloads
            .iter()
            .map(|p| Bytes::Framed(p.to_vec()))
            .collect();
        if frames.corrupt_tail {
            let framed: usize = frames
                .payloads
                .iter()
                .map(|p| p.len() + sightline_core::store::FRAME_OVERHEAD)
                .sum();
            journal.push(Bytes::Raw(stored.journal[framed..].to_vec()));
        }
        Input {
            mono_ms,
            wall_ms,
            knobs,
            values,
            journal,
            ops: Vec::new(),
        }
    }

    /// What the host read back: later values of a key replace earlier ones, as puts do.
    pub fn stored(&self) -> Stored {
        let mut stored = Stored::default();
        for (key, value) in &self.values {
            let mut bytes = Vec::new();
            value.append_to(&mut bytes);
            stored.values.insert(key.name(), bytes);
        }
        for chunk in &self.journal {
            chunk.append_to(&mut stored.journal);
        }
        stored
    }

    /// The configuration the knobs choose.
    pub fn config(&self) -> Config {
        config(self.knobs)
    }
}

/// A valid configuration, varied by `knobs`: bits 0-2 the batch size, bit 3 half sampling,
/// bit 4 sampling by session, bit 5 the smallest queue (overflow), bits 6-7 the attempts
/// before a batch is dropped.
pub fn config(knobs: u8) -> Config {
    let defaults = Config::default();
    Config {
        app_id: "fuzz.app".into(),
        app_version: "1.0".into(),
        install_id: "install-1".into(),
        seed: 0x5eed,
        max_batch_impressions: [1, 2, 3, 5, 8, 64, 500, defaults.max_batch_impressions]
            [usize::from(knobs & 7)],
        sample_rate_ppm: if knobs & 8 != 0 {
            500_000
        } else {
            defaults.sample_rate_ppm
        },
        sample_key: if knobs & 16 != 0 {
            SampleKey::Session
        } else {
            SampleKey::Install
        },
        max_queue_bytes: if knobs & 32 != 0 {
            MIN_QUEUE_BYTES
        } else {
            defaults.max_queue_bytes
        },
        max_attempts: [1, 2, 5, defaults.max_attempts][usize::from(knobs >> 6)],
        ..defaults
    }
}
