//! The wire contract from the outside: what a batch decodes to, what the JSON view shows,
//! what `Contract::check_batch` finds, and that hostile bytes never panic the decoder.
#![cfg(feature = "std")]

use prost::Message;
use sightline_core::rng::Rng;
use sightline_core::wire::{self, DecodeError};
use sightline_core::{
    Config, Contract, Impression, Logger, MemoryStore, Now, Rule, Stored, gzip, json, proto,
};

fn at(ms: u64) -> Now {
    Now::new(ms, 1_700_000_000_000 + ms)
}

/// A real batch of `n` impressions on two page views, as the logger encodes it (no send member).
fn batch(n: u32) -> proto::Batch {
    let config = Config {
        app_id: "com.example.web".into(),
        app_version: "2.0.0".into(),
        seed: 2,
        ..Config::default()
    };
    let mut logger = Logger::resume(config, Stored::default(), at(0)).unwrap();
    for page in 0..2u32 {
        let t = u64::from(page) * 10_000;
        let pv = logger
            .start_page_view("home", Some("req-a"), None, at(t))
            .unwrap();
        for i in 0..n / 2 {
            let id = format!("title:{}", 1000 + i % 7 + page);
            let imp = Impression {
                item_id: &id,
                artwork_id: Some("art:9"),
                row: i / 4,
                column: i % 4,
                first_visible_mono_ms: t + u64::from(i),
                visible_ms: 1000 + u64::from(i),
                max_visible_fraction: 0.75,
                focused_ms: 0,
            };
            logger.record_impression(pv, &imp, at(t + 5000)).unwrap();
        }
        logger.end_page_view(pv, at(t + 6000)).unwrap();
    }
    logger.flush(at(20_000));
    logger.perform_store_ops(&mut MemoryStore::new());
    let upload = logger.poll_upload(at(20_000)).unwrap();
    let mut b = wire::decode_gzip_batch(&upload.body).unwrap();
    b.send = None;
    b
}

#[test]
fn the_json_view_resolves_ids_page_views_and_offsets() {
    let b = batch(8);
    let view = json::view(&b).unwrap();
    assert_eq!(view.impressions.len(), 8);
    let last = &view.impressions[7];
    assert_eq!(last.seq, 8);
    assert_eq!(last.page_view, 2);
    assert_eq!(last.item_id, "title:1004");
    assert_eq!(last.artwork_id.as_deref(), Some("art:9"));
    assert_eq!(
        (last.row, last.column, last.visible_ms, last.max_visible_pct),
        (0, 3, 1003, 75)
    );
    assert_eq!(view.page_views[1].request_id.as_deref(), Some("req-a"));
    assert_eq!(view.page_views[1].start_mono_ms, 10_000);
    assert!(view.page_views[1].ended);
    let text = json::to_json(&b).unwrap();
    let parsed: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_eq!(parsed["impressions"][7]["item_id"], "title:1004");
    assert_eq!(parsed["platform"], "other");
    assert_eq!(parsed["counters"]["last_seq"], 8);
}

#[test]
fn a_batch_the_logger_wrote_breaks_no_rule() {
    assert_eq!(Contract::default().check_batch(&batch(40)), []);
}

#[test]
fn check_batch_finds_semantic_errors_across_events() {
    let mut b = batch(8);
    let cols = b.impressions.as_mut().unwrap();
    cols.visible_ms[2] = 200; // too short
    cols.max_visible_pct[3] = 10; // below threshold
    cols.visible_ms[5] = 7000; // longer than the 6 s page view
    // The second impression repeats the first one's item at the same place, under another
    // table entry with the same text.
    cols.column[1] = 0;
    b.item_ids[1] = b.item_ids[0].clone();
    b.counters.as_mut().unwrap().recorded = 99;
    let found: Vec<(Option<u64>, Rule)> = Contract::default()
        .check_batch(&b)
        .into_iter()
        .map(|v| (v.seq, v.rule))
        .collect();
    assert!(
        found.contains(&(Some(2), Rule::DuplicateExposure)),
        "{found:?}"
    );
    assert!(found.contains(&(Some(3), Rule::TooShort)), "{found:?}");
    assert!(
        found.contains(&(Some(4), Rule::BelowThreshold)),
        "{found:?}"
    );
    assert!(
        found.contains(&(Some(6), Rule::OutsidePageView)),
        "{found:?}"
    );
    assert!(
        found.contains(&(None, Rule::CountersInconsistent)),
        "{found:?}"
    );
    assert_eq!(found.len(), 5, "nothing else: {found:?}");
}

#[test]
fn a_contract_is_data_that_loads_from_json() {
    let c: Contract = serde_json::from_str(
        r#"{"version": 3, "min_visible_pct": 70, "min_visible_ms": 2000, "pages": ["home"]}"#,
    )
    .unwrap();
    assert_eq!(
        (c.version, c.min_visible_pct, c.min_visible_ms),
        (3, 70, 2000)
    );
    assert_eq!(
        c.max_id_len,
        Contract::default().max_id_len,
        "unset fields keep defaults"
    );
    assert!(c.check_page_name("search").is_err());
    assert!(
        serde_json::from_str::<Contract>(r#"{"min_visble_pct": 1}"#).is_err(),
        "typos are refused"
    );
}

#[test]
fn malformed_columns_and_indices_are_typed_errors() {
    let good = batch(6);
    let mut short = good.clone();
    short.impressions.as_mut().unwrap().visible_ms.pop();
    assert_eq!(
        wire::decode_batch(&short.encode_to_vec()),
        Err(DecodeError::ColumnLength {
            field: "visible_ms"
        })
    );
    let mut dangling = good.clone();
    dangling.impressions.as_mut().unwrap().page_view_delta[0] = 9;
    assert!(matches!(
        wire::decode_batch(&dangling.encode_to_vec()),
        Err(DecodeError::IndexOutOfRange { .. })
    ));
    let mut unused = good.clone();
    unused.item_ids.push("extra".into());
    assert!(wire::decode_batch(&unused.encode_to_vec()).is_err());
    let mut long = good;
    long.strings.push("x".repeat(wire::MAX_STRING_LEN + 1));
    assert_eq!(
        wire::decode_batch(&long.encode_to_vec()),
        Err(DecodeError::StringTooLong)
    );
    assert!(matches!(
        wire::decode_gzip_batch(b"not gzip"),
        Err(DecodeError::Gzip(_))
    ));
    assert!(matches!(
        wire::decode_gzip_batch(&gzip::gzip(b"\xff\xff\xff")),
        Err(DecodeError::Protobuf(_))
    ));
}

#[test]
fn a_gzip_bomb_is_refused_before_it_is_inflated() {
    let bomb = gzip::gzip(&vec![0u8; 64 * wire::MAX_DECODED_BATCH_BYTES]);
    assert!(matches!(
        wire::decode_gzip_batch(&bomb),
        Err(DecodeError::Gzip(_))
    ));
}

#[test]
fn fifty_thousand_mutated_batches_never_panic_the_decoder() {
    let raw = batch(30).encode_to_vec();
    let mut rng = Rng::new(2026);
    let mut accepted = 0;
    for _ in 0..50_000 {
        let mut bytes = raw.clone();
        for _ in 0..=rng.up_to(4) {
            let i = rng.up_to(bytes.len() as u64 - 1) as usize;
            match rng.up_to(2) {
                0 => bytes[i] = rng.next_u64() as u8,
                1 => bytes.truncate(i),
                _ => bytes.insert(i, rng.next_u64() as u8),
            }
            if bytes.is_empty() {
                break;
            }
        }
        if let Ok(b) = wire::decode_batch(&bytes) {
            accepted += 1;
            // Whatever decodes must also resolve and check without panicking.
            let _ = json::view(&b).unwrap();
            let _ = Contract::default().check_batch(&b);
        }
    }
    assert!(accepted < 50_000, "mutations must be caught sometimes");
}
