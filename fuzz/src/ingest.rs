//! The input of `collector_ingest`: a contract choice, then uploads to one ingestor in
//! order, each with the collector's receive time and its request headers.
//!
//! Layout: `contract: u8`, then per upload `received_wall_ms: u64`, `gzip: u8`, `body: u32
//! length + bytes`, `headers: u8` count (at most [`MAX_HEADERS`]) and per header `name` and
//! `value` as `u32 length + bytes`. With `gzip` odd the body is a protobuf the target
//! gzips itself, so that mutations reach the decoder and dedup behind the gzip checksums.

use crate::{Reader, Writer};

/// Uploads per input: enough for retries, duplicates and conflicts across batches of a
/// few sessions, few enough that one input stays fast.
pub const MAX_UPLOADS: usize = 8;
/// Headers per upload: the two the collector reads, repeated or mixed with others.
pub const MAX_HEADERS: usize = 8;
/// The app keys the fuzzed collector takes; the seeds send the first.
pub const APP_KEYS: [&str; 2] = ["key-1", "demo-key"];

/// One request to the collector.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Upload<'a> {
    pub received_wall_ms: u64,
    /// The body is to be gzipped by the target.
    pub gzip: bool,
    pub body: &'a [u8],
    /// Names and values as sent, in order (not necessarily valid HTTP).
    pub headers: Vec<(&'a [u8], &'a [u8])>,
}

/// The whole input.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Input<'a> {
    /// Bit 0: the contract's re-entry rule is `after_leaving` (else the default).
    pub contract: u8,
    pub uploads: Vec<Upload<'a>>,
}

/// Reads any bytes as an input.
pub fn parse(data: &[u8]) -> Input<'_> {
    let mut r = Reader(data);
    let contract = r.u8();
    let mut uploads = Vec::new();
    while !r.is_empty() && uploads.len() < MAX_UPLOADS {
        let (received_wall_ms, gzip, body) = (r.u64(), r.u8() & 1 != 0, r.bytes());
        let n = usize::from(r.u8()).min(MAX_HEADERS);
        let headers = (0..n).map(|_| (r.bytes(), r.bytes())).collect();
        uploads.push(Upload {
            received_wall_ms,
            gzip,
            body,
            headers,
        });
    }
    Input { contract, uploads }
}

/// The bytes [`parse`] reads back as `input`.
pub fn write(input: &Input<'_>) -> Vec<u8> {
    let mut w = Writer::default();
    w.u8(input.contract);
    for u in &input.uploads {
        w.u64(u.received_wall_ms).u8(u8::from(u.gzip)).bytes(u.body);
        w.u8(u8::try_from(u.headers.len()).unwrap_or(u8::MAX));
        for (name, value) in &u.headers {
            w.bytes(name).bytes(value);
        }
    }
    w.0
}
