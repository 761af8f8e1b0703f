//! The producer kit's `Capture` accounts as the collector does: fed the same bodies as the
//! collector's `Ingestor`, it agrees on reconciliation, conflicts and what they mean.

use prost::Message;
use sightline_collector::ingest::Ingestor;
use sightline_core::kit::Capture;
use sightline_core::{
    Config, Impression, Logger, MemoryStore, Now, Platform, Rule, UploadOutcome, gzip, proto, wire,
};

fn at(ms: u64) -> Now {
    Now::new(ms, 1_700_000_000_000 + ms)
}

fn config() -> Config {
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

/// Two batches of two good impressions each, as a real logger uploads them.
fn two_uploads() -> Vec<Vec<u8>> {
    let mut store = MemoryStore::new();
    let mut logger = Logger::start(config(), &mut store, at(0)).unwrap();
    let mut bodies = Vec::new();
    for b in 0..2u64 {
        let t = b * 10_000;
        let pv = logger.start_page_view("home", None, None, at(t)).unwrap();
        for i in 0..2u32 {
            let id = format!("title:{b}{i}");
            let imp = Impression {
                item_id: &id,
                artwork_id: None,
                row: 0,
                column: i,
                first_visible_mono_ms: t,
                visible_ms: 1500,
                max_visible_fraction: 1.0,
                focused_ms: 0,
            };
            logger.record_impression(pv, &imp, at(t + 2000)).unwrap();
        }
        logger.end_page_view(pv, at(t + 2000)).unwrap();
        logger.flush(at(t + 2000));
        logger.perform_store_ops(&mut store);
        let u = logger.poll_upload(at(t + 2000)).expect("due");
        bodies.push(u.body.clone());
        logger
            .handle_upload_result(u.id, UploadOutcome::status(200), at(t + 2000))
            .unwrap();
        logger.perform_store_ops(&mut store);
    }
    bodies
}

/// Counters a client that bypasses the SDK (or a buggy one) posts: last_seq far beyond
/// what `recorded - sampled_out - deduped` says. The contract flags the batch
/// `counters_inconsistent`; the collector then records but does not reconcile them.
fn with_inconsistent_counters(body: &[u8]) -> Vec<u8> {
    let mut batch = wire::decode_gzip_batch(body).unwrap();
    batch.counters.as_mut().unwrap().last_seq = 1_000;
    gzip::gzip(&batch.encode_to_vec())
}

#[test]
fn capture_accounts_inconsistent_counters_as_the_collector_does() {
    let bodies = two_uploads();
    let bodies = [bodies[0].clone(), with_inconsistent_counters(&bodies[1])];
    let mut ingestor = Ingestor::new(config().contract);
    let mut capture = Capture::new(config().contract);
    for body in &bodies {
        ingestor.ingest(body, 1_700_000_100_000).expect("admitted");
        capture.receive(body).expect("decodes");
    }
    let (session, collector) = ingestor.sessions().next().unwrap();
    let kit = capture.accounting(session).unwrap();
    assert_eq!(
        (kit.issued, kit.missing),
        (collector.issued, collector.missing),
        "kit {kit:?}\ncollector {collector:?}"
    );
}

/// A seq arriving again with other content: the collector writes it to bad rows as
/// `seq_conflict` (two devices or boots sharing a session id, a producer bug); the kit's
/// `assert_no_violations` ("no rule broken in anything received") passes.
#[test]
fn a_seq_conflict_fails_assert_no_violations() {
    let bodies = two_uploads();
    let mut other = wire::decode_gzip_batch(&bodies[0]).unwrap();
    other.impressions.as_mut().unwrap().visible_ms[0] = 1_700;
    let other = gzip::gzip(&other.encode_to_vec());
    let mut ingestor = Ingestor::new(config().contract);
    let mut capture = Capture::new(config().contract);
    let mut bad_rows = 0;
    for body in [&bodies[0], &other] {
        bad_rows += ingestor.ingest(body, 1_700_000_100_000).unwrap().bad.len();
        capture.receive(body).unwrap();
    }
    assert_eq!(bad_rows, 1, "the collector writes the conflict to bad rows");
    assert!(
        capture.assert_no_violations().is_err(),
        "the kit reports no violation for a seq_conflict the collector rejects"
    );
}

/// The same (session, seq) and impression from another install (two devices restored from
/// one backup share a session id): the collector's digest covers who sent it, so it is a
/// conflict; the kit's digest leaves the header out and absorbs it as a retry.
#[test]
fn the_same_seq_from_another_install_is_a_conflict_in_the_kit_too() {
    let bodies = two_uploads();
    let mut other = wire::decode_gzip_batch(&bodies[0]).unwrap();
    other.install_id = "install-2".into();
    let other = gzip::gzip(&other.encode_to_vec());
    let mut ingestor = Ingestor::new(config().contract);
    let mut capture = Capture::new(config().contract);
    let mut collector_conflicts = 0;
    let mut kit_conflicts = 0;
    for body in [&bodies[0], &other] {
        collector_conflicts += ingestor.ingest(body, 1_700_000_100_000).unwrap().conflicts;
        kit_conflicts += capture.receive(body).unwrap().conflicts;
    }
    assert_eq!(collector_conflicts, 2, "the collector sees two conflicts");
    assert_eq!(
        kit_conflicts, collector_conflicts,
        "the kit dedups them as retries"
    );
}

/// Seqs 0 and 1 of a real upload, the first with no identity and the second first visible
/// at the end of time: the collector writes both to bad rows with their rules; on a retry
/// seq 1 is a duplicate of its stored bad row and seq 0, which nothing identifies, a bad
/// row again. The kit finds the same rules and accounts the session the same way.
#[test]
fn seqs_and_times_out_of_range_are_the_same_violations_in_the_kit_as_in_the_collector() {
    let bodies = two_uploads();
    let mut batch = wire::decode_gzip_batch(&bodies[0]).unwrap();
    let pv = batch.page_views[0];
    batch.page_views.push(proto::PageView {
        ordinal: pv.ordinal + 1,
        start_offset_ms: u64::MAX,
        ..pv
    });
    let cols = batch.impressions.as_mut().unwrap();
    cols.first_seq = 0;
    cols.page_view_delta = vec![0, 1];
    let body = gzip::gzip(&batch.encode_to_vec());
    let mut ingestor = Ingestor::new(config().contract);
    let mut capture = Capture::new(config().contract);
    let name = |r: Rule| r.name().to_string();
    let seq_0 = (0, vec![name(Rule::SeqOutOfRange)]);
    let seq_1 = (1, vec![name(Rule::TimeOutsideBatch)]);
    for (duplicates, bad) in [
        (0, vec![seq_0.clone(), seq_1.clone()]),
        (1, vec![seq_0.clone()]),
    ] {
        let out = ingestor.ingest(&body, 1_700_000_100_000).unwrap();
        let rows: Vec<(u64, Vec<String>)> =
            out.bad.into_iter().map(|b| (b.row.seq, b.rules)).collect();
        assert_eq!((out.good.len(), out.duplicates, rows), (0, duplicates, bad));
        assert_eq!(capture.receive(&body).unwrap().duplicates, duplicates);
    }
    let kit: Vec<(u64, Vec<String>)> = capture
        .impressions()
        .iter()
        .map(|i| (i.seq, i.rules.iter().map(|&r| name(r)).collect()))
        .collect();
    assert_eq!(kit, [seq_0.clone(), seq_1, seq_0]);
    capture.assert_violation(Rule::SeqOutOfRange, None).unwrap();
    let (session, collector) = ingestor.sessions().next().unwrap();
    assert_eq!(capture.accounting(session), Some(collector));
    assert_eq!(
        (
            collector.delivered,
            collector.rejected,
            collector.duplicates
        ),
        (1, 1, 1)
    );
}
