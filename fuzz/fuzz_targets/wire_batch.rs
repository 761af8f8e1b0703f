//! The batch decoder on untrusted bytes: `gzip::gunzip` with limits, `wire::decode_batch`
//! (raw protobuf) and `wire::decode_gzip_batch` (gzip members, then protobuf), then what
//! readers of a decoded batch call on it.
//!
//! Asserts: nothing panics; a gunzip never returns more than its limit, and a smaller limit
//! only ever turns success into `TooLarge` (same bytes otherwise); a decoded batch is
//! within every named limit; `impressions()` of a decoded batch succeeds with one row per
//! counted impression, every index in range and seqs strictly increasing; the gzip path
//! gives what the raw path gives for the same protobuf; a decoded batch re-encodes to a
//! batch that decodes to itself.
#![no_main]

use libfuzzer_sys::fuzz_target;
use prost::Message;
use sightline_core::gzip::{self, GzipError};
use sightline_core::wire::{self, DecodeError};
use sightline_core::{Contract, json, proto};

/// A limit small enough that real inputs cross it: checks the limit is honoured mid-stream.
const SMALL_LIMIT: usize = 4096;

fn check_decoded(batch: &proto::Batch) {
    assert!(
        batch.strings.len() <= wire::MAX_STRINGS,
        "strings over the limit"
    );
    assert!(
        batch.item_ids.len() <= wire::MAX_STRINGS,
        "item ids over the limit"
    );
    assert!(
        batch.artwork_ids.len() <= wire::MAX_STRINGS,
        "artwork ids over the limit"
    );
    assert!(
        batch.page_views.len() <= wire::MAX_PAGE_VIEWS,
        "page views over the limit"
    );
    assert!(
        batch
            .strings
            .iter()
            .all(|s| s.len() <= wire::MAX_STRING_LEN),
        "a string is over the limit"
    );
    assert!(
        batch.encoded_len() <= wire::MAX_DECODED_BATCH_BYTES,
        "a decoded batch is larger than the decoder accepts"
    );
    let rows = match wire::impressions(batch) {
        Ok(rows) => rows,
        Err(e) => panic!("impressions() of a decoded batch failed: {e}"),
    };
    let count = batch.impressions.as_ref().map_or(0, |c| c.count as usize);
    assert_eq!(rows.len(), count, "one row per counted impression");
    assert!(
        rows.len() <= wire::MAX_IMPRESSIONS,
        "impressions over the limit"
    );
    let ids = wire::Ids::of(batch);
    assert_eq!(ids.items.len(), batch.item_ids.len());
    assert_eq!(ids.artworks.len(), batch.artwork_ids.len());
    for pair in rows.windows(2) {
        assert!(pair[0].seq < pair[1].seq, "seqs strictly increase");
    }
    for r in &rows {
        assert!(
            r.page_view < batch.page_views.len(),
            "page view index in range"
        );
        assert!((r.item as usize) < ids.items.len(), "item index in range");
        assert!(
            r.artwork.is_none_or(|a| (a as usize) < ids.artworks.len()),
            "artwork index in range"
        );
        assert!(
            ids.item(r).len() <= wire::MAX_STRING_LEN,
            "a full item id is over the limit"
        );
    }
    // What the collector and the check CLI do next must not panic either.
    let _ = Contract::default().check_decoded(batch, &rows, &ids);
    let _ = json::to_json(batch);
    let again = match wire::decode_batch(&batch.encode_to_vec()) {
        Ok(again) => again,
        Err(e) => panic!("a decoded batch re-encodes to one that fails: {e}"),
    };
    assert_eq!(&again, batch, "re-encoding changes a decoded batch");
}

fuzz_target!(|data: &[u8]| {
    let big = gzip::gunzip(data, wire::MAX_DECODED_BATCH_BYTES);
    let small = gzip::gunzip(data, SMALL_LIMIT);
    if let Ok(out) = &big {
        assert!(
            out.len() <= wire::MAX_DECODED_BATCH_BYTES,
            "gunzip passed its limit"
        );
    }
    match (&small, &big) {
        (Ok(s), Ok(b)) => assert_eq!(s, b, "the limit changed the output"),
        (Ok(s), Err(e)) => panic!(
            "{} bytes within the small limit, {e} within the big",
            s.len()
        ),
        (Err(GzipError::TooLarge { limit }), _) => assert_eq!(*limit, SMALL_LIMIT),
        (Err(e), Ok(b)) => panic!("{e} under the small limit, {} bytes under the big", b.len()),
        (Err(_), Err(_)) => {}
    }
    if let Ok(out) = &big
        && out.len() <= SMALL_LIMIT
    {
        assert!(small.is_ok(), "output within the small limit was refused");
    }

    let gzipped = wire::decode_gzip_batch(data);
    match (&gzipped, &big) {
        (Ok(batch), Ok(raw)) => {
            check_decoded(batch);
            assert_eq!(
                wire::decode_batch(raw).as_ref(),
                Ok(batch),
                "the gzip path and the raw path disagree"
            );
        }
        (Ok(_), Err(e)) => panic!("decode_gzip_batch succeeded where gunzip failed: {e}"),
        (Err(DecodeError::Gzip(e)), Ok(_)) => {
            panic!("decode_gzip_batch failed in gzip ({e}) where gunzip succeeded")
        }
        (Err(_), _) => {}
    }
    if let Ok(batch) = wire::decode_batch(data) {
        check_decoded(&batch);
    }
});
