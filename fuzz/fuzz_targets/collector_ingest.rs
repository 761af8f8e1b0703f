//! The collector's ingest path on arbitrary requests: each upload's headers through the
//! check the server runs first (`server::check_headers`: app key, content type), then its
//! body and receive time through `Ingestor::ingest`, several uploads to one ingestor so
//! that dedup, conflicts and per-session state carry across them. The input layout is
//! `sightline_fuzz::ingest`'s.
//!
//! Asserts: nothing panics; headers hyper would accept are refused only when the app key
//! or the content type is wrong (a request with exactly the right two always passes; one
//! without an app key never does); an accepted body is one the core's decoder accepts within the
//! collector's size and expansion limits; every impression of an accepted upload is
//! exactly one of a good row, a bad row or a duplicate, conflicts among the bad rows; the
//! rows written stay within a constant factor of `MAX_OUTPUT_RATIO` times the decoded
//! batch; the same body again (a retry) is all duplicates but for the impressions whose seq
//! is out of range, which identify nothing to dedup by, and the conflicts (another
//! device's content for a stored seq is never absorbed as a retry): those are bad rows
//! again; the session reconciles.
#![no_main]

use http::{HeaderMap, HeaderName, HeaderValue};
use libfuzzer_sys::fuzz_target;
use sightline_collector::ingest::{
    Ingestor, MAX_DECOMPRESSED_BYTES, MAX_EXPANSION_RATIO, MAX_OUTPUT_RATIO,
};
use sightline_collector::server::{HeaderRefusal, check_headers};
use sightline_core::contract::{Contract, MAX_SEQ};
use sightline_core::upload::{APP_KEY_HEADER, CONTENT_TYPE};
use sightline_core::{Reentry, gzip, wire};
use sightline_fuzz::ingest::{APP_KEYS, parse};

/// How much larger real rows may be than the admission estimate: JSON escapes make a
/// string byte at most 6 (`\u0000`), and a bad row's rule names add less than its fixed
/// part. The estimate itself is at most `MAX_OUTPUT_RATIO` times the decoded batch.
const ESTIMATE_SLACK: usize = 7;

fuzz_target!(|data: &[u8]| {
    let input = parse(data);
    let contract = Contract {
        reentry: if input.contract & 1 != 0 {
            Reentry::AfterLeaving
        } else {
            Reentry::OncePerPageView
        },
        ..Contract::default()
    };
    let mut ingestor = Ingestor::new(contract);
    let keys: Vec<String> = APP_KEYS.iter().map(|k| k.to_string()).collect();
    for upload in &input.uploads {
        // What hyper parses: a name or value it would refuse (400) never reaches the check.
        let mut headers = HeaderMap::new();
        for (name, value) in &upload.headers {
            if let (Ok(n), Ok(v)) = (HeaderName::from_bytes(name), HeaderValue::from_bytes(value)) {
                headers.append(n, v);
            }
        }
        let checked = check_headers(&keys, &headers);
        let exactly_right = headers.len() == 2
            && headers
                .get(APP_KEY_HEADER)
                .is_some_and(|k| k == APP_KEYS[0])
            && headers
                .get(http::header::CONTENT_TYPE)
                .is_some_and(|c| c == CONTENT_TYPE);
        assert!(
            !exactly_right || checked.is_ok(),
            "a request with the right key and type was refused: {checked:?}"
        );
        if !headers.contains_key(APP_KEY_HEADER) {
            assert_eq!(
                checked,
                Err(HeaderRefusal::AppKey),
                "no app key, yet {checked:?}"
            );
        }
        if checked.is_err() {
            continue;
        }
        let body = if upload.gzip {
            gzip::gzip(upload.body)
        } else {
            upload.body.to_vec()
        };
        let Ok(outcome) = ingestor.ingest(&body, upload.received_wall_ms) else {
            continue;
        };
        let limit = MAX_DECOMPRESSED_BYTES.min(body.len().saturating_mul(MAX_EXPANSION_RATIO));
        let raw = match gzip::gunzip(&body, limit) {
            Ok(raw) => raw,
            Err(e) => panic!("an accepted body does not gunzip within {limit} bytes: {e}"),
        };
        let batch = match wire::decode_batch(&raw) {
            Ok(batch) => batch,
            Err(e) => panic!("an accepted body does not decode: {e}"),
        };
        let (n, out_of_range) = match wire::impressions(&batch) {
            Ok(rows) => (
                rows.len() as u64,
                rows.iter()
                    .filter(|r| r.seq == 0 || r.seq > MAX_SEQ)
                    .count() as u64,
            ),
            Err(e) => panic!("an accepted batch has no impressions: {e}"),
        };
        let (good, bad) = (outcome.good.len() as u64, outcome.bad.len() as u64);
        assert_eq!(
            good + bad + outcome.duplicates,
            n,
            "{n} impressions became {good} good, {bad} bad and {} duplicates",
            outcome.duplicates
        );
        assert!(outcome.conflicts <= bad, "conflicts are bad rows");
        assert_eq!(outcome.session_id, batch.session_id);
        let written: usize = outcome
            .good
            .iter()
            .map(|r| serde_json::to_vec(r).map_or(0, |v| v.len() + 1))
            .chain(
                outcome
                    .bad
                    .iter()
                    .map(|r| serde_json::to_vec(r).map_or(0, |v| v.len() + 1)),
            )
            .sum();
        let budget = ESTIMATE_SLACK * MAX_OUTPUT_RATIO * raw.len();
        assert!(
            written <= budget,
            "{written} bytes of rows from a {} byte batch (budget {budget})",
            raw.len()
        );
        assert!(
            outcome
                .good
                .iter()
                .all(|r| r.session_id == batch.session_id),
            "a good row of another session"
        );

        let retry = match ingestor.ingest(&body, upload.received_wall_ms) {
            Ok(retry) => retry,
            Err(refusal) => panic!("a retry of an accepted body was refused: {refusal:?}"),
        };
        let again = out_of_range + outcome.conflicts;
        assert!(
            retry.good.is_empty()
                && retry.bad.len() as u64 == again
                && retry.conflicts == outcome.conflicts
                && retry.duplicates == n - again,
            "a retry gave {} good, {} bad ({} conflicts), {} duplicates of {n} \
             ({out_of_range} out of range, {} conflicts the first time)",
            retry.good.len(),
            retry.bad.len(),
            retry.conflicts,
            retry.duplicates,
            outcome.conflicts
        );
        assert!(
            retry.bad.iter().all(|b| b
                .rules
                .iter()
                .any(|r| r == "seq_out_of_range" || r == "seq_conflict")),
            "a retry's bad row is neither an out-of-range seq nor a conflict"
        );
        assert!(
            ingestor.reconcile(&batch.session_id).is_some(),
            "the session is known"
        );
    }
    let _ = ingestor.sessions().count();
});
