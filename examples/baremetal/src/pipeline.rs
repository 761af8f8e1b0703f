//! The whole pipeline once: configure, page view with a layout, viewability-qualified and
//! pre-qualified impressions, flush, upload body, decode it back, acknowledge.

use alloc::string::{String, ToString};
use alloc::vec;
use alloc::vec::Vec;
use core::hint::black_box;

use sightline_core::{
    Config, Impression, ItemRef, Logger, MemoryStore, Now, Platform, UploadOutcome, wire,
};

/// Impressions the run must find in the decoded upload body.
pub const EXPECTED: usize = 3;

/// Runs the pipeline; returns the impression count decoded from the upload body.
pub fn run() -> Result<usize, &'static str> {
    // black_box on the inputs: the optimiser must not evaluate the run at compile time.
    let t0 = black_box(10_000u64);
    let at = |ms: u64| Now::new(t0 + ms, 1_700_000_000_000 + ms);

    let config = Config {
        app_id: "baremetal".to_string(),
        app_version: "0.1.0".to_string(),
        platform: Platform::Tv,
        device: "cortex-m4f".to_string(),
        app_key: "probe-key".to_string(),
        seed: black_box(0x5eed),
        ..Config::default()
    };
    let mut store = MemoryStore::new();
    let mut logger = Logger::start(config, &mut store, at(0)).map_err(|_| "config")?;

    let layout: Vec<Vec<String>> = vec![
        vec!["item-a".to_string(), "item-b".to_string()],
        vec!["item-c".to_string()],
    ];
    let pv = logger
        .start_page_view("home", Some("req-1"), Some(&layout), at(0))
        .map_err(|_| "page view")?;

    let a = ItemRef {
        item_id: "item-a",
        artwork_id: Some("art-a"),
        row: 0,
        column: 0,
    };
    let b = ItemRef {
        item_id: "item-b",
        artwork_id: None,
        row: 0,
        column: 1,
    };
    // a: fully visible and focused; b: just over the 50 % threshold. Both stay visible past
    // the contract's 1 s minimum, then scroll out, which ends and qualifies the exposures.
    let focus = |logger: &mut Logger, focused: bool, ms: u64| {
        logger
            .handle_focus(pv, &a, focused, at(ms))
            .map_err(|_| "focus")
    };
    let visible = |logger: &mut Logger, item: &ItemRef<'_>, fraction: f32, ms: u64| {
        logger
            .handle_visibility(pv, item, black_box(fraction), at(ms))
            .map_err(|_| "visibility")
    };
    visible(&mut logger, &a, 1.0, 0)?;
    focus(&mut logger, true, 50)?;
    visible(&mut logger, &b, 0.6, 100)?;
    visible(&mut logger, &b, 0.2, 1_300)?;
    focus(&mut logger, false, 1_500)?;
    visible(&mut logger, &a, 0.0, 1_600)?;

    // c was measured by the host itself.
    let c = Impression {
        item_id: "item-c",
        artwork_id: None,
        row: 1,
        column: 0,
        first_visible_mono_ms: t0 + 200,
        visible_ms: 1_500,
        max_visible_fraction: black_box(0.9),
        focused_ms: 0,
    };
    logger
        .record_impression(pv, &c, at(2_000))
        .map_err(|_| "record")?;

    logger.flush(at(2_100));
    logger.perform_store_ops(&mut store);
    let upload = logger.poll_upload(at(2_100)).ok_or("no upload")?;
    let batch = wire::decode_gzip_batch(black_box(&upload.body)).map_err(|_| "decode")?;
    let count = wire::impressions(&batch).map_err(|_| "columns")?.len();

    let ok = UploadOutcome::Status {
        code: 200,
        retry_after: None,
    };
    logger
        .handle_upload_result(upload.id, ok, at(2_200))
        .map_err(|_| "ack")?;
    if logger.pending() != 0 {
        return Err("still pending");
    }
    Ok(count)
}
