//! Real batches for the collector's tests and benches: what the logger sends, decoded.

use sightline_core::{Config, Impression, Logger, MemoryStore, Now, proto, wire};

/// The wall clock at the logger's start (any fixed time).
pub const WALL_MS: u64 = 1_767_225_600_000;

/// A real batch of `n` impressions (seqs 1..=n, 100 to a row, one page view) as the logger
/// sends it, closed 3 s after a start at [`WALL_MS`].
pub fn logged(n: u32) -> proto::Batch {
    let at = |ms: u64| Now::new(ms, WALL_MS + ms);
    let config = Config {
        app_id: "app".into(),
        app_version: "1".into(),
        seed: 1,
        ..Config::default()
    };
    let mut logger = Logger::start(config, &mut MemoryStore::new(), at(0)).expect("valid config");
    let pv = logger
        .start_page_view("home", None, None, at(0))
        .expect("a page view");
    for i in 0..n {
        let id = format!("title:{i}");
        let imp = Impression {
            item_id: &id,
            artwork_id: None,
            row: i / 100,
            column: i % 100,
            first_visible_mono_ms: 100,
            visible_ms: 1000,
            max_visible_fraction: 1.0,
            focused_ms: 0,
        };
        logger
            .record_impression(pv, &imp, at(2000))
            .expect("a valid impression");
    }
    logger.flush(at(3000));
    logger.perform_store_ops(&mut MemoryStore::new());
    let body = logger.poll_upload(at(3000)).expect("a batch is due").body;
    wire::decode_gzip_batch(&body).expect("the logger's own batch decodes")
}
