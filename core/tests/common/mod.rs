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
use std::ops::{Deref, DerefMut};

pub mod faulty;

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

/// A logger and the store its host performs its store operations on, synchronously, the
/// way the std runtime does: before every upload is polled and when the process ends
/// (drop).
pub struct Dev<S: Store> {
    logger: Logger,
    store: Rc<RefCell<S>>,
}

impl<S: Store> Dev<S> {
    /// Performs every planned store operation.
    pub fn sync(&mut self) {
        let mut store = self.store.borrow_mut();
        self.logger.perform_store_ops(&mut *store);
    }

    /// Syncs, then polls the next upload.
    pub fn poll_upload(&mut self, now: Now) -> Option<sightline_core::Upload> {
        self.sync();
        self.logger.poll_upload(now)
    }
}

impl<S: Store> Deref for Dev<S> {
    type Target = Logger;
    fn deref(&self) -> &Logger {
        &self.logger
    }
}

impl<S: Store> DerefMut for Dev<S> {
    fn deref_mut(&mut self) -> &mut Logger {
        &mut self.logger
    }
}

impl<S: Store> Drop for Dev<S> {
    fn drop(&mut self) {
        self.sync();
    }
}

/// Flips a bit of a stored value, as a failing medium would.
pub fn corrupt<S: Store>(store: &Rc<RefCell<S>>, key: &str, at: usize) {
    corrupt_in(&mut *store.borrow_mut(), key, at);
}

/// Flips a bit of a value in `store`.
pub fn corrupt_in(store: &mut impl Store, key: &str, at: usize) {
    let mut value = store.get(key).unwrap().expect("stored");
    value[at] ^= 0xFF;
    store.put(key, &value).unwrap();
}

/// A logger over a store shared with later "restarts".
pub fn logger_on<S: Store>(store: &Rc<RefCell<S>>, cfg: Config, now: u64) -> Dev<S> {
    logger_at(store, cfg, at(now))
}

/// A logger over a store shared with later "restarts", started at `now`.
pub fn logger_at<S: Store>(store: &Rc<RefCell<S>>, cfg: Config, now: Now) -> Dev<S> {
    let logger = Logger::start(cfg, &mut *store.borrow_mut(), now).expect("valid config");
    Dev {
        logger,
        store: Rc::clone(store),
    }
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

/// An HTTP answer; `retry_after` is the raw header text.
pub fn status(code: u16, retry_after: Option<&str>) -> UploadOutcome {
    UploadOutcome::Status {
        code,
        retry_after: retry_after.map(str::to_string),
    }
}

/// Delivers every due upload with 200 until nothing is due; (seq, item id) of each row.
pub fn deliver_all_items<S: Store>(logger: &mut Dev<S>, t: u64) -> Vec<(u64, String)> {
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
pub fn deliver_all<S: Store>(logger: &mut Dev<S>, t: u64) -> Vec<u64> {
    deliver_all_items(logger, t)
        .into_iter()
        .map(|(seq, _)| seq)
        .collect()
}
