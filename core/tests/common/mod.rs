//! Helpers shared by the core's integration specs: a configuration, virtual time, and
//! recording and delivering impressions through the public API.
// Each spec uses a different subset.
#![allow(dead_code)]

use std::cell::RefCell;
use std::rc::Rc;

use sightline_core::upload::Upload;
use sightline_core::wire::{self, DecodedImpression};
use sightline_core::{
    Config, Impression, ItemRef, Logger, Now, Platform, Recorded, Store, UploadOutcome, proto,
};

pub const WALL0: u64 = 1_700_000_000_000;

/// Both clocks at virtual monotonic time `ms`.
pub fn at(ms: u64) -> Now {
    Now::new(ms, WALL0 + ms)
}

pub fn config() -> Config {
    Config {
        app_id: "com.example.tv".into(),
        app_version: "1.2.3".into(),
        platform: Platform::Tv,
        device: "test-device".into(),
        install_id: "install-1".into(),
        app_key: "key-1".into(),
        seed: 7,
        ..Config::default()
    }
}

/// A logger over a store shared with later "restarts".
pub fn logger_on<S: Store + 'static>(store: &Rc<RefCell<S>>, cfg: Config, now: u64) -> Logger {
    Logger::new(cfg, Box::new(Rc::clone(store)), at(now)).expect("valid config")
}

pub fn item(id: &str, row: u32, column: u32) -> ItemRef<'_> {
    ItemRef {
        item_id: id,
        artwork_id: Some("art:1"),
        row,
        column,
    }
}

pub fn impression(id: &str, row: u32, column: u32, first: u64) -> Impression<'_> {
    Impression {
        item_id: id,
        artwork_id: None,
        row,
        column,
        first_visible_mono_ms: first,
        visible_ms: 1500,
        max_visible_fraction: 1.0,
        focused_ms: 0,
    }
}

/// Records `n` distinct pre-qualified impressions on a fresh page view at time `t`.
pub fn record_n(logger: &mut Logger, n: u32, t: u64) -> Vec<u64> {
    let pv = logger
        .start_page_view("home", Some("req-1"), None, at(t))
        .unwrap();
    let mut seqs = Vec::new();
    for i in 0..n {
        let id = format!("title:{i}");
        match logger.record_impression(pv, &impression(&id, i / 10, i % 10, t), at(t + 2000)) {
            Ok(Recorded::Logged { seq }) => seqs.push(seq),
            other => panic!("unexpected {other:?}"),
        }
    }
    logger.end_page_view(pv, at(t + 2000)).unwrap();
    seqs
}

pub fn decode(upload: &Upload) -> (proto::Batch, Vec<DecodedImpression>) {
    let batch = wire::decode_gzip_batch(&upload.body).expect("valid batch");
    let rows = wire::impressions(&batch).unwrap();
    (batch, rows)
}

pub fn ok() -> UploadOutcome {
    status(200, None)
}

pub fn status(code: u16, retry_after_ms: Option<u64>) -> UploadOutcome {
    UploadOutcome::Status {
        code,
        retry_after_ms,
    }
}

/// Delivers every due upload with 200 until nothing is due; (seq, item id) of each row.
pub fn deliver_all_items(logger: &mut Logger, t: u64) -> Vec<(u64, String)> {
    let mut out = Vec::new();
    while let Some(u) = logger.poll_upload(at(t)) {
        let (b, rows) = decode(&u);
        let ids = wire::Ids::of(&b);
        out.extend(rows.iter().map(|r| (r.seq, ids.item(r).to_string())));
        logger.handle_upload_result(u.id, ok(), at(t)).unwrap();
    }
    out
}

/// Delivers every due upload with 200 until nothing is due; the delivered seqs.
pub fn deliver_all(logger: &mut Logger, t: u64) -> Vec<u64> {
    deliver_all_items(logger, t)
        .into_iter()
        .map(|(seq, _)| seq)
        .collect()
}
