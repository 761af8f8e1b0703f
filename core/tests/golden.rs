//! Golden vectors: a fixed sequence of calls must produce exactly the committed batch, so
//! any change to the wire bytes is deliberate, and bindings in other languages can test
//! their decoders against the same files (tests/fixtures/v1). Set `SIGHTLINE_BLESS=1` to
//! rewrite the files after an intended change.
#![cfg(feature = "std")]

use std::path::PathBuf;

use sightline_core::{
    Config, Impression, ItemRef, Logger, MemoryStore, Now, Platform, Stored, UploadOutcome, gzip,
    json, wire,
};

fn fixtures() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures/v1")
}

fn at(ms: u64) -> Now {
    Now::new(ms, 1_767_225_600_000 + ms)
}

/// The reference upload body: a TV page with a layout, focus, viewability-qualified and
/// pre-qualified impressions, a deduped repeat, and a second page view.
fn reference_body() -> Vec<u8> {
    let config = Config {
        app_id: "com.example.tv".into(),
        app_version: "5.0.1".into(),
        platform: Platform::Tv,
        device: "reference-tv".into(),
        install_id: "install-golden".into(),
        app_key: "golden-key".into(),
        seed: 20_261_126,
        ..Config::default()
    };
    let mut logger = Logger::resume(config, Stored::default(), at(0)).unwrap();
    let layout = vec![
        vec!["title:81234567".to_string(), "title:80012345".to_string()],
        vec!["title:70054321".to_string()],
    ];
    let home = logger
        .start_page_view("home", Some("req-0001"), Some(&layout), at(100))
        .unwrap();
    let a = ItemRef {
        item_id: "title:81234567",
        artwork_id: Some("art:100200300"),
        row: 0,
        column: 0,
    };
    let b = ItemRef {
        item_id: "title:80012345",
        artwork_id: Some("art:100200301"),
        row: 0,
        column: 1,
    };
    logger.handle_visibility(home, &a, 1.0, at(200)).unwrap();
    logger.handle_focus(home, &a, true, at(250)).unwrap();
    logger.handle_visibility(home, &b, 0.6, at(300)).unwrap();
    logger.handle_focus(home, &a, false, at(1_250)).unwrap();
    logger.handle_visibility(home, &b, 0.3, at(1_700)).unwrap();
    logger.handle_visibility(home, &a, 0.0, at(2_400)).unwrap();
    let c = Impression {
        item_id: "title:70054321",
        artwork_id: None,
        row: 1,
        column: 0,
        first_visible_mono_ms: 500,
        visible_ms: 2_000,
        max_visible_fraction: 0.8,
        focused_ms: 0,
    };
    logger.record_impression(home, &c, at(2_600)).unwrap();
    logger.record_impression(home, &c, at(2_600)).unwrap();
    logger.end_page_view(home, at(3_000)).unwrap();
    let detail = logger
        .start_page_view("detail", None, None, at(3_100))
        .unwrap();
    logger
        .handle_visibility(detail, &a, 1.0, at(3_200))
        .unwrap();
    logger.handle_app_hidden(at(9_200));
    logger.perform_store_ops(&mut MemoryStore::new());
    let upload = logger.poll_upload(at(9_300)).unwrap();
    let ok = UploadOutcome::Status {
        code: 200,
        retry_after: None,
    };
    logger
        .handle_upload_result(upload.id, ok, at(9_400))
        .unwrap();
    upload.body
}

#[test]
fn the_reference_calls_produce_the_committed_golden_batch() {
    let body = reference_body();
    // Compare the protobuf, not the gzip bytes: another deflate implementation may compress
    // the same batch differently and still be correct.
    let raw = gzip::gunzip(&body, wire::MAX_DECODED_BATCH_BYTES).unwrap();
    let batch = wire::decode_batch(&raw).unwrap();
    let view = json::to_json(&batch).unwrap();
    let dir = fixtures();
    if std::env::var_os("SIGHTLINE_BLESS").is_some() {
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("batch.pb.gz"), &body).unwrap();
        std::fs::write(dir.join("batch.pb"), &raw).unwrap();
        std::fs::write(dir.join("batch.json"), format!("{view}\n")).unwrap();
    }
    let golden_raw = std::fs::read(dir.join("batch.pb")).expect("tests/fixtures/v1/batch.pb");
    assert!(
        raw == golden_raw,
        "the wire bytes changed: re-bless only if intended"
    );
    let golden_json = std::fs::read_to_string(dir.join("batch.json")).unwrap();
    assert_eq!(view.trim_end(), golden_json.trim_end());
    // The committed gzip body decodes to the same batch.
    let committed = std::fs::read(dir.join("batch.pb.gz")).unwrap();
    assert_eq!(wire::decode_gzip_batch(&committed).unwrap(), batch);
    let rows = wire::impressions(&batch).unwrap();
    assert_eq!(rows.len(), 4, "a, b, c on home; a again on detail");
    assert_eq!(batch.counters.unwrap().deduped, 1);
}
