//! The input of `collector_ingest`: a contract choice, then uploads to one ingestor in
//! order, each with the collector's receive time.
//!
//! Layout: `contract: u8`, then per upload `received_wall_ms: u64`, `gzip: u8`, `body: u32
//! length + bytes`. With `gzip` odd the body is a protobuf the target gzips itself, so that
//! mutations reach the decoder and dedup behind the gzip checksums. Request headers (the app key, the batch header) go after the body of each
//! upload once the ingest path takes them: [`Upload`] gains the field, [`parse`] and
//! [`write`] one line each, and the seeds are made again with `examples/seeds.rs`.

use crate::{Reader, Writer};

/// Uploads per input: enough for retries, duplicates and conflicts across batches of a
/// few sessions, few enough that one input stays fast.
pub const MAX_UPLOADS: usize = 8;

/// One request to the collector.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Upload<'a> {
    pub received_wall_ms: u64,
    /// The body is to be gzipped by the target.
    pub gzip: bool,
    pub body: &'a [u8],
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
        uploads.push(Upload {
            received_wall_ms: r.u64(),
            gzip: r.u8() & 1 != 0,
            body: r.bytes(),
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
    }
    w.0
}
