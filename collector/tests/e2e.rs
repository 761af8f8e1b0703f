//! End to end over loopback: the real `sightline-collector` binary as a child process, fed
//! by the real SDK core (sans-IO `Logger` on a virtual clock, `HttpTransport` over HTTP).
//!
//! Every test owns its output directory and port, and asserts exact counts at the
//! collector: each recorded impression is delivered exactly once, or accounted as dropped
//! by a typed reason on the device. Virtual time means Retry-After and backoff cost no real
//! time, and no test asserts a wall-clock duration.

mod common;

use std::collections::BTreeSet;
use std::process::Command;

use common::*;
use prost::Message;
use sightline_core::upload::{APP_KEY_HEADER, CONTENT_TYPE};
use sightline_core::{Impression, Recorded, Reentry, UploadOutcome, gzip, proto, wire};

const OK: UploadOutcome = UploadOutcome::Status {
    code: 200,
    retry_after: None,
};

/// A device with small batches, so a few impressions make several uploads.
fn small_batches(install_id: &str, per_batch: u32) -> Device {
    let mut c = config(install_id);
    c.max_batch_impressions = per_batch;
    Device::with_config(c)
}

/// Records `n` impressions on a fresh device and returns it with its first upload.
fn captured_upload(install_id: &str, n: u64) -> (Device, sightline_core::Upload) {
    let mut d = Device::new(install_id);
    d.page_view(n);
    d.flush();
    let upload = d.poll().expect("a batch is due");
    (d, upload)
}

/// The seqs of `session` among `rows`.
fn impressions_in(rows: &[sightline_collector::row::Row], session: &str) -> BTreeSet<u64> {
    rows.iter()
        .filter(|r| r.session_id == session)
        .map(|r| r.seq)
        .collect()
}

// ---- 1. happy path ----

#[test]
fn happy_path_several_sessions_deliver_every_impression_exactly_once() {
    let dir = TempDir::new("happy");
    let c = Collector::start(&dir.path().join("out"), &Opts::micro());
    let health = c.get("/healthz");
    assert_eq!((health.status, health.body.trim()), (200, "ok"));

    let t = c.transport();
    let mut devices = vec![
        small_batches("tv-1", 8),
        small_batches("phone-2", 8),
        small_batches("web-3", 8),
    ];
    let mut bytes_sent = 0;
    for (i, d) in devices.iter_mut().enumerate() {
        d.page_view(10 + 7 * i as u64);
        d.page_view(5);
        let seen = d.settle(&t);
        assert!(
            seen.statuses().iter().all(|&s| s == 200),
            "{:?}",
            seen.statuses()
        );
        bytes_sent += seen.bytes_sent;
        d.assert_settled();
        let s = d.logger.stats();
        assert_eq!((s.delivered, s.retries), (s.issued, 0));
    }
    let sessions: BTreeSet<String> = devices.iter().map(Device::session).collect();
    assert_eq!(sessions.len(), 3, "each device has its own session");

    let good = c.micro_good();
    let expected: BTreeSet<_> = devices
        .iter()
        .flat_map(|d| keys_of(&d.session(), d.logger.stats().issued))
        .collect();
    assert_eq!(distinct_keys(&good), expected);
    assert_eq!(good.len(), 15 + 22 + 29);
    for row in &good {
        let d = devices
            .iter()
            .find(|d| row.session_id == d.session())
            .unwrap();
        assert_eq!(
            Some(row.item_id.as_str()),
            d.logged.get(&row.seq).map(String::as_str),
            "{row:?}"
        );
        assert_eq!(row.app_id, "com.example.e2e");
        assert_eq!(row.page, "home");
        assert_eq!(row.request_id.as_deref(), Some("req-e2e-1"));
        assert_eq!(row.artwork_id.as_deref(), Some("art:1"));
        assert_eq!((row.visible_ms, row.max_visible_pct), (1_200, 100));
        assert_eq!(row.sample_rate, 1.0);
    }
    assert!(c.micro_bad().is_empty());

    let reconciled = c.micro_sessions();
    assert_eq!(reconciled.len(), 3);
    for d in &devices {
        let issued = d.logger.stats().issued;
        assert_eq!(
            reconciled[&d.session()],
            Reconciliation {
                recorded: issued,
                issued,
                delivered: issued,
                ..Reconciliation::default()
            },
            "session {}",
            d.session()
        );
    }

    let m = c.metrics();
    let uploads: u64 = devices.iter().map(|d| d.logger.stats().uploads).sum();
    assert_eq!(m.get("sightline_batches_total"), uploads);
    assert_eq!(m.get("sightline_impressions_total"), good.len() as u64);
    assert_eq!(m.get("sightline_dedup_hits_total"), 0);
    assert_eq!(m.get("sightline_bytes_in_total"), bytes_sent);
    assert_eq!(m.get("sightline_refused_app_key_total"), 0);
    assert_eq!(m.get("sightline_injected_faults_total"), 0);
}

// ---- 2. 503 and 429 storms ----

/// The collector answers `status` with Retry-After: 1 to the next three uploads.
fn storm(status: u16) {
    let dir = TempDir::new("storm");
    let c = Collector::start(&dir.path().join("out"), &Opts::micro().with_faults());
    let t = c.transport();
    let mut d = small_batches(&format!("storm-{status}"), 6);
    d.page_view(10);
    c.inject(status, 3, 1);

    let seen = d.settle(&t);
    assert_eq!(seen.statuses(), [status, status, status, 200, 200]);
    assert_eq!(seen.waits_ms.len(), 3);
    for wait in &seen.waits_ms {
        // The configured backoff is at most 200 ms: only Retry-After makes it a second.
        assert!(*wait >= 1_000, "retried {wait} ms after Retry-After: 1");
    }
    d.assert_settled();
    let s = d.logger.stats();
    assert_eq!((s.issued, s.delivered), (10, 10));
    assert_eq!((s.uploads, s.retries), (5, 3));

    let good = c.micro_good();
    assert_eq!(distinct_keys(&good), keys_of(&d.session(), 10));
    let r = c.micro_sessions()[&d.session()];
    assert_eq!((r.delivered, r.duplicates, r.missing), (10, 0, 0));
    let m = c.metrics();
    assert_eq!(m.get("sightline_injected_faults_total"), 3);
    assert_eq!(m.get("sightline_batches_total"), 2);
    assert_eq!(m.get("sightline_impressions_total"), 10);
}

#[test]
fn a_503_storm_with_retry_after_delays_retries_and_loses_nothing() {
    storm(503);
}

#[test]
fn a_429_storm_with_retry_after_delays_retries_and_loses_nothing() {
    storm(429);
}

#[test]
fn injected_faults_carry_the_retry_after_header() {
    let dir = TempDir::new("retry-after");
    let c = Collector::start(&dir.path().join("out"), &Opts::micro().with_faults());
    let (_d, upload) = captured_upload("retry-after", 2);
    c.inject(429, 1, 7);
    let refused = c.post_upload(&upload);
    assert_eq!(refused.status, 429);
    assert_eq!(refused.retry_after.as_deref(), Some("7"));
    assert_eq!(c.post_upload(&upload).counts(), (2, 0, 0));
}

#[test]
fn lost_acknowledgements_make_the_sdk_resend_and_the_collector_keeps_each_impression_once() {
    let dir = TempDir::new("lost-acks");
    let out = dir.path().join("out");
    let c = Collector::start(&out, &Opts::files().with_faults());
    let mut d = small_batches("lost-acks", 4);
    d.page_view(12);
    c.lose_acks(2);
    let seen = d.settle(&c.transport());
    assert_eq!(seen.statuses().iter().filter(|&&s| s == 503).count(), 2);
    d.assert_settled();
    let s = d.logger.stats();
    assert_eq!((s.issued, s.delivered, s.retries), (12, 12, 2));
    let good = good_rows(&out);
    assert_eq!(good.len(), 12, "no duplicate rows");
    assert_eq!(distinct_keys(&good), keys_of(&d.session(), 12));
    let m = c.metrics();
    assert_eq!(
        m.get("sightline_dedup_hits_total"),
        8,
        "two batches of four, each sent twice"
    );
    let r = c.sessions()[&d.session()];
    assert_eq!((r.delivered, r.duplicates, r.missing), (12, 8, 0));
}

// ---- 3. SIGKILL and restart ----

#[test]
fn a_collector_killed_and_restarted_over_its_output_counts_every_impression_once() {
    let dir = TempDir::new("restart");
    let out = dir.path().join("out");
    let first = Collector::start(&out, &Opts::files());
    let old_transport = first.transport();

    let mut d1 = small_batches("restart-1", 5);
    let mut d2 = small_batches("restart-2", 5);
    d1.page_view(7);
    d2.page_view(4);
    d1.settle(&old_transport);
    d2.settle(&old_transport);

    // An acknowledged upload, kept to replay after the restart.
    let (mut d3, acked) = captured_upload("restart-3", 3);
    assert_eq!(first.post_upload(&acked).counts(), (3, 0, 0));
    d3.settle_one(&acked, OK);

    // The collector writes a batch, then dies before the device hears the answer.
    d1.page_view(6);
    d1.flush();
    let unacked = d1.poll().expect("a batch is due");
    assert_eq!(first.post_upload(&unacked).counts(), (5, 0, 0));
    first.kill9();
    d1.settle_one(&unacked, UploadOutcome::NetworkError);

    // While it is down, uploads fail as network errors and wait for a retry.
    d2.page_view(3);
    for d in [&mut d1, &mut d2] {
        d.flush();
        let deadline = d.logger.poll_timeout().expect("a retry or send is due");
        let wait = deadline.saturating_sub(d.now().mono_ms);
        d.advance(wait);
        let upload = d.poll().expect("the batch goes out at its deadline");
        let outcome = old_transport.send(&upload);
        assert_eq!(outcome, UploadOutcome::NetworkError);
        d.settle_one(&upload, outcome);
        assert!(
            d.logger.poll_timeout().unwrap() > d.now().mono_ms,
            "backs off"
        );
    }

    // A kill mid-write can leave a torn last line; the restart must not build on it.
    let good_dir = out.join("good");
    let newest = std::fs::read_dir(&good_dir)
        .unwrap()
        .filter_map(|e| e.ok().map(|e| e.path()))
        .max()
        .expect("a good file exists");
    let mut torn = std::fs::read(&newest).unwrap();
    torn.extend_from_slice(br#"{"session_id":"torn-by-kill","seq":1,"app_"#);
    std::fs::write(&newest, torn).unwrap();
    // Also in a file of an hour the restarted collector will not write to.
    std::fs::write(
        good_dir.join("2000-01-01T00.ndjson"),
        br#"{"session_id":"to"#,
    )
    .unwrap();

    let second = Collector::start(&out, &Opts::files());
    assert!(
        second.log().contains("cut a torn last line"),
        "{}",
        second.log()
    );
    // The restarted collector rebuilt dedup state: a replay of an acknowledged batch is a
    // duplicate, not new rows.
    assert_eq!(second.post_upload(&acked).counts(), (0, 0, 3));

    let new_transport = second.transport();
    for d in [&mut d1, &mut d2] {
        let seen = d.settle(&new_transport);
        assert!(seen.statuses().iter().all(|&s| s == 200), "{seen:?}");
        d.assert_settled();
    }
    let (s1, s2) = (d1.logger.stats(), d2.logger.stats());
    assert_eq!((s1.issued, s1.delivered, s1.dropped.total()), (13, 13, 0));
    assert_eq!((s2.issued, s2.delivered, s2.dropped.total()), (7, 7, 0));
    assert_eq!(
        s1.retries, 2,
        "the unacknowledged batch and the one sent while down"
    );
    assert_eq!(s2.retries, 1);

    // Every (session, seq) exactly once across all good files; every line parses.
    let good = good_rows(&out);
    let mut expected = keys_of(&d1.session(), 13);
    expected.extend(keys_of(&d2.session(), 7));
    expected.extend(keys_of(&d3.session(), 3));
    assert_eq!(distinct_keys(&good), expected);
    for d in [&d1, &d2, &d3] {
        for row in good.iter().filter(|r| r.session_id == d.session()) {
            assert_eq!(
                Some(row.item_id.as_str()),
                d.logged.get(&row.seq).map(String::as_str)
            );
        }
    }
    assert!(bad_rows(&out).is_empty());

    // Reconciliation from the output: the newest counters of each session say it issued
    // exactly what arrived, and dropped nothing.
    let records = batch_records(&out);
    for d in [&d1, &d2, &d3] {
        let newest = records
            .iter()
            .filter(|b| b.session_id == d.session())
            .map(|b| b.counters)
            .max_by_key(|c| c.last_seq)
            .expect("batch records of the session");
        let delivered = impressions_in(&good, &d.session()).len() as u64;
        assert_eq!(newest.last_seq, delivered);
        assert_eq!(newest.recorded, delivered);
        assert_eq!(newest.dropped_overflow + newest.dropped_rejected, 0);
    }
    // The restarted collector serves the same accounting, rebuilt from its output.
    let sessions = second.sessions();
    for d in [&d1, &d2, &d3] {
        let r = sessions[&d.session()];
        assert_eq!((r.missing, r.dropped), (0, 0), "{r:?}");
        assert_eq!(r.delivered, r.issued);
    }

    let m = second.metrics();
    assert_eq!(m.get("sightline_dedup_hits_total"), 3 + 5);
    assert_eq!(m.get("sightline_impressions_total"), 1 + 3);
}

/// A log without its ANSI colour codes, so its `field=value` pairs can be searched.
fn plain(log: &str) -> String {
    let mut out = String::with_capacity(log.len());
    let mut chars = log.chars();
    while let Some(c) = chars.next() {
        if c == '\x1b' {
            chars.by_ref().find(|&c| c == 'm');
        } else {
            out.push(c);
        }
    }
    out
}

#[test]
fn a_collector_killed_after_a_snapshot_and_more_writes_restarts_with_exact_counts() {
    let dir = TempDir::new("snapshot-kill");
    let out = dir.path().join("out");
    let first = Collector::start(&out, &Opts::files());
    let mut d1 = small_batches("snap-1", 4);
    let mut d2 = small_batches("snap-2", 4);
    d1.page_view(9);
    d1.settle(&first.transport());
    // A graceful stop snapshots the dedup state.
    assert!(first.terminate().success());
    assert!(out.join("snapshot.json").exists());

    let second = Collector::start(&out, &Opts::files());
    assert!(
        plain(&second.log()).contains("snapshot_sessions=1"),
        "{}",
        second.log()
    );
    // More writes after the snapshot, one of them never acknowledged, then a crash.
    d1.page_view(5);
    d2.page_view(6);
    d2.settle(&second.transport());
    d1.flush();
    let unacked = d1.poll().expect("a batch is due");
    assert_eq!(second.post_upload(&unacked).counts(), (4, 0, 0));
    second.kill9();
    d1.settle_one(&unacked, UploadOutcome::NetworkError);

    // The restart takes the snapshot and replays only what followed it: d2's 6 rows and
    // the unacknowledged 4.
    let third = Collector::start(&out, &Opts::files());
    let log = plain(&third.log());
    assert!(log.contains("snapshot_sessions=1"), "{log}");
    assert!(log.contains("replayed_good=10"), "{log}");
    for d in [&mut d1, &mut d2] {
        let seen = d.settle(&third.transport());
        assert!(seen.statuses().iter().all(|&s| s == 200), "{seen:?}");
        d.assert_settled();
    }
    let good = good_rows(&out);
    let mut expected = keys_of(&d1.session(), 14);
    expected.extend(keys_of(&d2.session(), 6));
    assert_eq!(distinct_keys(&good), expected);
    let sessions = third.sessions();
    for (d, n) in [(&d1, 14), (&d2, 6)] {
        let r = sessions[&d.session()];
        assert_eq!((r.issued, r.delivered, r.missing), (n, n, 0), "{r:?}");
    }
    assert_eq!(
        sessions[&d1.session()].duplicates,
        4,
        "the unacknowledged batch, resent"
    );
}

// ---- 4. 413 splitting ----

#[test]
fn batches_over_the_body_limit_are_split_until_they_fit() {
    let dir = TempDir::new("split");
    let out = dir.path().join("out");
    // Forty impressions with random ids gzip to ~630 bytes, one to ~270.
    let c = Collector::start(&out, &Opts::files().max_body(400));
    let t = c.transport();
    let mut d = Device::new("split-1");
    let mut ids = Ids::new(1);
    d.page_view_with(40, |_| ids.title());

    let seen = d.settle(&t);
    let statuses = seen.statuses();
    assert!(statuses.contains(&413), "{statuses:?}");
    assert!(
        statuses.iter().all(|&s| s == 200 || s == 413),
        "{statuses:?}"
    );
    d.assert_settled();
    let s = d.logger.stats();
    assert_eq!((s.issued, s.delivered, s.dropped.too_large), (40, 40, 0));

    let good = good_rows(&out);
    assert_eq!(distinct_keys(&good), keys_of(&d.session(), 40));
    for row in &good {
        assert_eq!(
            Some(row.item_id.as_str()),
            d.logged.get(&row.seq).map(String::as_str)
        );
    }
    let accepted = statuses.iter().filter(|&&s| s == 200).count() as u64;
    assert!(accepted >= 2, "split into at least two batches");
    assert_eq!(c.metrics().get("sightline_batches_total"), accepted);
}

#[test]
fn an_impression_alone_over_the_body_limit_is_dropped_as_too_large() {
    let dir = TempDir::new("too-large");
    let out = dir.path().join("out");
    // No batch, not even of one impression, fits in 200 bytes.
    let c = Collector::start(&out, &Opts::files().max_body(200));
    let t = c.transport();
    let mut d = Device::new("too-large-1");
    d.page_view(3);

    let seen = d.settle(&t);
    assert!(seen.statuses().iter().all(|&s| s == 413), "{seen:?}");
    // 3 -> 1 + 2 -> 1 + 1: five attempts, three single impressions dropped.
    assert_eq!(seen.outcomes.len(), 5);
    d.assert_settled();
    let s = d.logger.stats();
    assert_eq!((s.issued, s.delivered, s.dropped.too_large), (3, 0, 3));

    assert!(good_rows(&out).is_empty());
    let m = c.metrics();
    assert_eq!(m.get("sightline_batches_total"), 0);
    assert_eq!(
        m.get("sightline_refused_batches_total{reason=\"too_large\"}"),
        5
    );
}

#[test]
fn a_batch_dropped_on_the_device_is_reported_by_the_next_one_and_reconciles() {
    let dir = TempDir::new("reported-drop");
    let c = Collector::start(&dir.path().join("out"), &Opts::files().with_faults());
    let t = c.transport();
    let mut d = small_batches("reported-drop", 4);
    c.inject(400, 1, 0);
    d.page_view(4);
    d.settle(&t);
    assert_eq!(
        d.logger.stats().dropped.rejected,
        4,
        "a permanent 4xx drops the batch"
    );
    d.page_view(4);
    d.settle(&t);
    d.assert_settled();
    let r = c.sessions()[&d.session()];
    assert_eq!((r.issued, r.delivered, r.dropped, r.missing), (8, 4, 4, 0));
    assert_eq!(r.dropped_by_reason.rejected, 4);
}

// ---- 5. gzip bombs ----

/// `zeros` zero bytes in one gzip member of long deflate blocks, as an attacker makes it (the
/// core's encoder ends a block every few KiB, which bounds its ratio).
fn zeros_bomb(zeros: usize) -> Vec<u8> {
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    std::io::Write::write_all(&mut encoder, &vec![0u8; zeros]).unwrap();
    encoder.finish().unwrap()
}

#[test]
fn a_gzip_bomb_is_refused_with_413_and_the_collector_keeps_serving() {
    let dir = TempDir::new("bomb");
    let c = Collector::start(&dir.path().join("out"), &Opts::micro());

    let bomb = zeros_bomb(50 << 20);
    assert!(
        bomb.len() < 256 * 1024,
        "fits the body limit: {}",
        bomb.len()
    );
    let refused = c.post_batch(&bomb);
    assert_eq!(refused.status, 413, "{}", refused.body);
    assert!(
        refused.reason().contains("decompresses beyond"),
        "{}",
        refused.body
    );

    // Small in absolute terms, but it expands 1000-fold: a bomb by ratio.
    let ratio_bomb = zeros_bomb(300 * 1024);
    let refused = c.post_batch(&ratio_bomb);
    assert_eq!(refused.status, 413, "{}", refused.body);

    // A compressed body over the limit is refused before it is inflated, and the client
    // reads that answer rather than a reset connection: the SDK must see the 413 to split.
    let mut junk = Ids::new(5);
    let over_limit: Vec<u8> = (0..600 * 1024).map(|_| junk.next_u64() as u8).collect();
    for _ in 0..5 {
        let refused = c.post_batch(&over_limit);
        assert_eq!(refused.status, 413, "{}", refused.body);
        assert!(refused.reason().contains("body over"), "{}", refused.body);
    }
    // Far beyond anything a client may send: refused or cut off, never read whole.
    let absurd: Vec<u8> = (0..4 * 1024 * 1024)
        .map(|_| junk.next_u64() as u8)
        .collect();
    if let Ok(refused) = c.try_post_batch(&absurd) {
        assert_eq!(refused.status, 413, "{}", refused.body);
    }

    assert_eq!(c.get("/healthz").status, 200);
    let mut d = Device::new("after-bomb");
    d.page_view(4);
    assert_eq!(d.settle(&c.transport()).statuses(), [200]);
    assert_eq!(distinct_keys(&c.micro_good()), keys_of(&d.session(), 4));
    let m = c.metrics();
    let too_large = m.get("sightline_refused_batches_total{reason=\"too_large\"}");
    // Two bombs, five bodies over the limit, and the absurd one if it got an answer.
    assert!((7..=8).contains(&too_large), "{too_large}");
    assert_eq!(m.get("sightline_batches_total"), 1);
}

// ---- 6. malformed and truncated bodies ----

#[test]
fn malformed_protobuf_and_truncated_gzip_are_refused_with_400_and_counted() {
    let dir = TempDir::new("malformed");
    let c = Collector::start(&dir.path().join("out"), &Opts::micro());

    let not_protobuf = gzip::gzip(b"this is not a protobuf batch \xff\xff\xff\xff");
    let refused = c.post_batch(&not_protobuf);
    assert_eq!(refused.status, 400, "{}", refused.body);
    assert!(refused.reason().contains("protobuf"), "{}", refused.body);

    let (mut d, upload) = captured_upload("malformed-1", 5);
    let truncated = &upload.body[..upload.body.len() / 2];
    let refused = c.post_batch(truncated);
    assert_eq!(refused.status, 400, "{}", refused.body);
    assert!(refused.reason().contains("gzip"), "{}", refused.body);

    let refused = c.post_batch(b"plain text, not gzip");
    assert_eq!(refused.status, 400, "{}", refused.body);

    // Nothing of it was kept, and the whole batch still goes through.
    assert!(c.micro_good().is_empty());
    assert_eq!(c.post_upload(&upload).counts(), (5, 0, 0));
    d.settle_one(&upload, OK);
    d.assert_settled();
    let m = c.metrics();
    assert_eq!(
        m.get("sightline_refused_batches_total{reason=\"malformed\"}"),
        3
    );
    assert_eq!(m.get("sightline_batches_total"), 1);
}

// ---- 7. app key and content type ----

#[test]
fn a_bad_or_missing_app_key_gets_401_and_a_wrong_content_type_415() {
    let dir = TempDir::new("auth");
    let c = Collector::start(&dir.path().join("out"), &Opts::micro());
    let (_d, upload) = captured_upload("auth-1", 2);

    let missing = c.post_raw(&[("content-type", CONTENT_TYPE)], &upload.body);
    assert_eq!(missing.status, 401);
    assert!(missing.reason().contains("app key"));
    let wrong = c.post_raw(
        &[
            ("content-type", CONTENT_TYPE),
            (APP_KEY_HEADER, "not-the-key"),
        ],
        &upload.body,
    );
    assert_eq!(wrong.status, 401);
    let json = c.post_raw(
        &[
            ("content-type", "application/json"),
            (APP_KEY_HEADER, APP_KEY),
        ],
        &upload.body,
    );
    assert_eq!(json.status, 415);
    assert!(json.reason().contains(CONTENT_TYPE));

    // A device configured with the wrong key: a permanent 4xx, dropped and counted.
    let mut cfg = config("auth-2");
    cfg.app_key = "stale-key".into();
    let mut d = Device::with_config(cfg);
    d.page_view(4);
    assert_eq!(d.settle(&c.transport()).statuses(), [401]);
    d.assert_settled();
    let s = d.logger.stats();
    assert_eq!((s.issued, s.delivered, s.dropped.rejected), (4, 0, 4));

    assert!(c.micro_good().is_empty());
    assert!(c.micro_sessions().is_empty());
    let m = c.metrics();
    assert_eq!(m.get("sightline_refused_app_key_total"), 3);
    assert_eq!(m.get("sightline_refused_content_type_total"), 1);
    assert_eq!(m.get("sightline_batches_total"), 0);
}

// ---- 8. duplicate uploads ----

#[test]
fn the_same_batch_uploaded_three_times_counts_once() {
    let dir = TempDir::new("dup");
    let c = Collector::start(&dir.path().join("out"), &Opts::micro());
    let (mut d, upload) = captured_upload("dup-1", 6);

    assert_eq!(c.post_upload(&upload).counts(), (6, 0, 0));
    assert_eq!(c.post_upload(&upload).counts(), (0, 0, 6));
    assert_eq!(c.post_upload(&upload).counts(), (0, 0, 6));
    d.settle_one(&upload, OK);
    d.assert_settled();

    let good = c.micro_good();
    assert_eq!(distinct_keys(&good), keys_of(&d.session(), 6));
    let r = c.micro_sessions()[&d.session()];
    assert_eq!(
        (r.issued, r.delivered, r.duplicates, r.missing),
        (6, 6, 12, 0)
    );
    let m = c.metrics();
    assert_eq!(m.get("sightline_dedup_hits_total"), 12);
    assert_eq!(m.get("sightline_impressions_total"), 6);
    assert_eq!(m.get("sightline_batches_total"), 3);
}

// ---- 9. contract-breaking impressions ----

/// The upload's batch with seq 3 visible for 400 ms and seq 5 at 20% visibility.
fn with_violations(body: &[u8]) -> Vec<u8> {
    let mut batch = wire::decode_gzip_batch(body).expect("a real batch");
    let cols = batch.impressions.as_mut().expect("impressions");
    let first = cols.first_seq;
    let n = cols.count as usize;
    for (column, default) in [
        (&mut cols.visible_ms, 1_200),
        (&mut cols.max_visible_pct, 100),
    ] {
        if column.is_empty() {
            column.resize(n, default);
        }
    }
    cols.visible_ms[(3 - first) as usize] = 400;
    cols.max_visible_pct[(5 - first) as usize] = 20;
    gzip::gzip(&batch.encode_to_vec())
}

#[test]
fn contract_breaking_impressions_go_to_bad_rows_and_their_neighbours_to_good_rows() {
    let dir = TempDir::new("contract");
    let out = dir.path().join("out");
    let files = Collector::start(&out, &Opts::files());
    let micro = Collector::start(&dir.path().join("micro-out"), &Opts::micro());
    let (d, upload) = captured_upload("contract-1", 6);
    let body = with_violations(&upload.body);

    for c in [&files, &micro] {
        assert_eq!(c.post_batch(&body).counts(), (4, 2, 0));
        let m = c.metrics();
        assert_eq!(m.get("sightline_rejects_total{rule=\"too_short\"}"), 1);
        assert_eq!(
            m.get("sightline_rejects_total{rule=\"below_threshold\"}"),
            1
        );
        assert_eq!(m.get("sightline_impressions_total"), 4);
    }

    let session = d.session();
    let expected_good: BTreeSet<_> = [1, 2, 4, 6].map(|s| (session.clone(), s)).into();
    let check = |good: Vec<sightline_collector::row::Row>,
                 bad: Vec<sightline_collector::row::BadRow>| {
        assert_eq!(distinct_keys(&good), expected_good);
        let bad: Vec<(u64, Vec<String>)> = bad.into_iter().map(|b| (b.row.seq, b.rules)).collect();
        assert_eq!(
            bad,
            [
                (3, vec!["too_short".to_string()]),
                (5, vec!["below_threshold".to_string()])
            ]
        );
    };
    check(good_rows(&out), bad_rows(&out));
    check(micro.micro_good(), micro.micro_bad());
    let bad = micro.micro_bad();
    assert_eq!(
        (bad[0].row.visible_ms, bad[1].row.max_visible_pct),
        (400, 20)
    );
    assert_eq!(bad[0].row.item_id, d.logged[&3]);

    let r = micro.micro_sessions()[&session];
    assert_eq!((r.delivered, r.rejected, r.missing), (6, 2, 0));
}

/// A device logging under `Reentry::AfterLeaving` that shows `title:1` at row 0, column 0,
/// lets it leave, and shows it again: two impressions by design. Returns the device and
/// its upload.
fn seen_left_and_seen_again(install_id: &str) -> (Device, sightline_core::Upload) {
    let mut c = config(install_id);
    c.contract.reentry = Reentry::AfterLeaving;
    let mut d = Device::with_config(c);
    let start = d.now();
    let pv = d
        .logger
        .start_page_view("home", None, None, start)
        .expect("valid page view");
    d.advance(10_000);
    let now = d.now();
    // Visible 500..1700, gone, back 3000..4200.
    for first in [500, 3_000] {
        let imp = Impression {
            item_id: "title:1",
            artwork_id: None,
            row: 0,
            column: 0,
            first_visible_mono_ms: start.mono_ms + first,
            visible_ms: 1_200,
            max_visible_fraction: 1.0,
            focused_ms: 0,
        };
        let logged = d.logger.record_impression(pv, &imp, now);
        assert!(matches!(logged, Ok(Recorded::Logged { .. })), "{logged:?}");
    }
    let now = d.now();
    d.logger.end_page_view(pv, now).expect("page view ends");
    d.flush();
    let upload = d.poll().expect("a batch is due");
    (d, upload)
}

/// `body` with `Batch.reentry` set to `rule`: the same exposures as stated under another
/// rule (the logger writes its own rule into every batch).
fn stating(body: &[u8], rule: Reentry) -> Vec<u8> {
    let mut batch = wire::decode_gzip_batch(body).expect("a real batch");
    batch.reentry = rule.to_proto();
    gzip::gzip(&batch.encode_to_vec())
}

#[test]
fn an_item_seen_left_and_seen_again_under_after_leaving_is_two_good_impressions() {
    let dir = TempDir::new("reentry");
    let out = dir.path().join("out");
    let files = Collector::start(&out, &Opts::files());
    let micro = Collector::start(&dir.path().join("micro-out"), &Opts::micro());
    let (d, upload) = seen_left_and_seen_again("reentry-1");
    let body = upload.body.clone();
    assert_eq!(
        wire::decode_gzip_batch(&body)
            .expect("a real batch")
            .reentry,
        Reentry::AfterLeaving.to_proto(),
        "the logger states its rule in the batch"
    );
    for c in [&files, &micro] {
        assert_eq!(c.post_batch(&body).counts(), (2, 0, 0));
        assert_eq!(
            c.metrics()
                .get("sightline_rejects_total{rule=\"duplicate_exposure\"}"),
            0
        );
    }
    let good = micro.micro_good();
    assert_eq!(distinct_keys(&good), keys_of(&d.session(), 2));
    assert!(
        good.iter()
            .all(|r| r.reentry == Some(Reentry::AfterLeaving))
    );

    // The check CLI agrees, on the captured batch and on the collector's own output.
    assert_eq!(files.terminate().code(), Some(0));
    let captured = dir.path().join("batch.pb.gz");
    std::fs::write(&captured, &body).unwrap();
    let good_file = std::fs::read_dir(out.join("good"))
        .unwrap()
        .filter_map(|e| e.ok().map(|e| e.path()))
        .next()
        .expect("a good file");
    let (code, stdout) = check(&[&captured, &good_file]);
    assert_eq!(code, 0, "{stdout}");
    assert!(stdout.contains("4 impression(s) checked"), "{stdout}");
}

#[test]
fn the_same_exposures_stated_once_per_page_view_flag_the_repeat() {
    let dir = TempDir::new("reentry-once");
    let micro = Collector::start(&dir.path().join("out"), &Opts::micro());
    let (d, upload) = seen_left_and_seen_again("reentry-2");
    let body = stating(&upload.body, Reentry::OncePerPageView);
    assert_eq!(micro.post_batch(&body).counts(), (1, 1, 0));
    let bad = micro.micro_bad();
    assert_eq!(
        (bad[0].row.seq, bad[0].rules.clone()),
        (2, vec!["duplicate_exposure".to_string()])
    );
    assert_eq!(bad[0].row.session_id, d.session());
    let captured = dir.path().join("batch.pb.gz");
    std::fs::write(&captured, &body).unwrap();
    let (code, stdout) = check(&[&captured]);
    assert_eq!(code, 1, "{stdout}");
    assert!(stdout.contains("duplicate_exposure"), "{stdout}");
}

/// `body` re-encoded as if sent under `session_id` (another device or boot that drew the
/// same session id).
fn under_session(body: &[u8], session_id: &str) -> Vec<u8> {
    let mut batch = wire::decode_gzip_batch(body).expect("a real batch");
    batch.session_id = session_id.to_string();
    gzip::gzip(&batch.encode_to_vec())
}

#[test]
fn two_devices_sharing_a_session_id_are_reported_as_conflicts_not_absorbed_as_retries() {
    let dir = TempDir::new("conflict");
    let out = dir.path().join("out");
    let micro = Collector::start(&dir.path().join("micro-out"), &Opts::micro());
    let first = Collector::start(&out, &Opts::files());
    let (a, from_a) = captured_upload("conflict-a", 3);
    let (_b, from_b) = captured_upload("conflict-b", 3);
    let session = a.session();
    let clash = under_session(&from_b.body, &session);
    for c in [&first, &micro] {
        assert_eq!(c.post_upload(&from_a).counts(), (3, 0, 0));
        let reply = c.post_batch(&clash);
        assert_eq!(reply.counts(), (0, 3, 0), "never absorbed as retries");
        assert_eq!(reply.json()["conflicts"], 3);
        assert_eq!(c.metrics().get("sightline_seq_conflicts_total"), 3);
        assert_eq!(c.metrics().get("sightline_dedup_hits_total"), 0);
        // A real retry of A's batch is still a retry.
        assert_eq!(c.post_upload(&from_a).counts(), (0, 0, 3));
    }
    let r = micro.micro_sessions()[&session];
    assert_eq!((r.delivered, r.duplicates, r.conflicts), (3, 3, 3));
    let bad = micro.micro_bad();
    assert_eq!(bad.len(), 3);
    assert!(bad.iter().all(|b| b.rules == ["seq_conflict"]));
    assert!(bad.iter().all(|b| b.row.install_id == "conflict-b"));

    // On disk: B's rows in bad/ under the stable rule name; A's in good/.
    let good = good_rows(&out);
    assert_eq!(distinct_keys(&good), keys_of(&session, 3));
    assert!(good.iter().all(|r| r.install_id == "conflict-a"));
    let on_disk: Vec<_> = bad_rows(&out)
        .into_iter()
        .map(|b| (b.row.seq, b.rules, b.row.install_id.to_string()))
        .collect();
    assert_eq!(
        on_disk,
        (1..=3)
            .map(|seq| (
                seq,
                vec!["seq_conflict".to_string()],
                "conflict-b".to_string()
            ))
            .collect::<Vec<_>>()
    );
    let before = first.sessions()[&session];
    assert_eq!((before.conflicts, before.duplicates), (3, 3));

    // A restart rebuilds the digests from the output: A's retry is a retry, B's a conflict.
    first.kill9();
    let second = Collector::start(&out, &Opts::files());
    assert_eq!(second.sessions()[&session], before);
    assert_eq!(second.post_upload(&from_a).counts(), (0, 0, 3));
    let reply = second.post_batch(&clash);
    assert_eq!(
        (reply.counts(), reply.json()["conflicts"].as_u64()),
        ((0, 3, 0), Some(3))
    );
    let after = second.sessions()[&session];
    assert_eq!(
        (after.delivered, after.duplicates, after.conflicts),
        (3, 6, 6)
    );
}

#[test]
fn seqs_the_device_lost_with_its_journal_reconcile_as_dropped_and_survive_a_restart() {
    let dir = TempDir::new("journal-lost");
    let out = dir.path().join("out");
    let first = Collector::start(&out, &Opts::files());
    let (d, upload) = captured_upload("journal-lost-1", 3);
    // As a device reports after a crash lost the journal records of seqs 4 and 5.
    let mut batch = wire::decode_gzip_batch(&upload.body).expect("a real batch");
    let c = batch.counters.as_mut().expect("counters");
    c.recorded += 2;
    c.last_seq += 2;
    c.dropped_journal_lost = 2;
    let body = gzip::gzip(&batch.encode_to_vec());
    assert_eq!(first.post_batch(&body).counts(), (3, 0, 0));
    let r = first.sessions()[&d.session()];
    assert_eq!((r.issued, r.delivered, r.dropped, r.missing), (5, 3, 2, 0));
    assert_eq!(r.dropped_by_reason.journal_lost, 2);
    let records = batch_records(&out);
    assert_eq!(records[0].counters.dropped_journal_lost, 2);
    first.kill9();
    let second = Collector::start(&out, &Opts::files());
    assert_eq!(second.sessions()[&d.session()], r);
}

// ---- 10. micro mode API ----

#[test]
fn micro_mode_lists_good_and_bad_events_reconciles_sessions_and_resets() {
    let dir = TempDir::new("micro");
    let c = Collector::start(&dir.path().join("out"), &Opts::micro());
    let t = c.transport();
    let mut a = Device::new("micro-a");
    let mut b = Device::new("micro-b");
    a.page_view(3);
    a.settle(&t);
    b.page_view(6);
    b.flush();
    let b_upload = b.poll().expect("a batch is due");
    assert_eq!(
        c.post_batch(&with_violations(&b_upload.body)).counts(),
        (4, 2, 0)
    );
    b.settle_one(&b_upload, OK);

    let good = c.micro_good();
    assert_eq!(good.len(), 7);
    assert_eq!(
        impressions_in(&good, &a.session()),
        BTreeSet::from([1, 2, 3])
    );
    assert_eq!(
        impressions_in(&good, &b.session()),
        BTreeSet::from([1, 2, 4, 6])
    );
    let bad = c.micro_bad();
    assert_eq!(bad.len(), 2);
    assert!(bad.iter().all(|r| r.row.session_id == b.session()));

    let sessions = c.micro_sessions();
    assert_eq!(sessions.len(), 2);
    let (ra, rb) = (sessions[&a.session()], sessions[&b.session()]);
    assert_eq!(
        (ra.issued, ra.delivered, ra.rejected, ra.missing),
        (3, 3, 0, 0)
    );
    assert_eq!(
        (rb.issued, rb.delivered, rb.rejected, rb.missing),
        (6, 6, 2, 0)
    );

    let reset = c.post_json("/micro/reset", &serde_json::json!({}));
    assert_eq!(reset.status, 204);
    assert!(c.micro_good().is_empty());
    assert!(c.micro_bad().is_empty());
    assert!(c.micro_sessions().is_empty());
    assert_eq!(c.metrics().get("sightline_impressions_total"), 0);
    // Forgotten means forgotten: the same batch is new again after a reset.
    assert_eq!(
        c.post_batch(&with_violations(&b_upload.body)).counts(),
        (4, 2, 0)
    );
    assert_eq!(c.micro_good().len(), 4);
}

#[test]
fn file_mode_does_not_serve_the_micro_api() {
    let dir = TempDir::new("no-micro");
    let c = Collector::start(&dir.path().join("out"), &Opts::files());
    assert_eq!(c.get("/micro/good").status, 404);
    assert_eq!(
        c.post_json("/micro/reset", &serde_json::json!({})).status,
        404
    );
    assert_eq!(
        c.post_json(
            "/admin/faults",
            &serde_json::json!({"status": 503, "remaining": 1})
        )
        .status,
        404,
        "fault injection is off unless asked for"
    );
}

// ---- 11. the check CLI ----

/// Runs `sightline-collector check FILES` and returns (exit code, stdout). Gives up (and
/// kills it) after [`PATIENCE`] rather than hanging the suite on a check that never ends.
fn check(files: &[&std::path::Path]) -> (i32, String) {
    let mut child = Command::new(binary())
        .arg("check")
        .args(files)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("run check");
    let mut stdout = child.stdout.take().expect("piped stdout");
    // Drained on a thread, so a full pipe cannot block the child while we poll it.
    let reader = std::thread::spawn(move || {
        let mut text = String::new();
        let _ = std::io::Read::read_to_string(&mut stdout, &mut text);
        text
    });
    let started = std::time::Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait for check") {
            break status;
        }
        if started.elapsed() > PATIENCE {
            let _ = child.kill();
            let _ = child.wait();
            panic!("check {files:?} did not finish within {PATIENCE:?}");
        }
        std::thread::sleep(std::time::Duration::from_millis(5));
    };
    let stdout = reader.join().expect("stdout reader");
    (status.code().expect("exited"), stdout)
}

#[test]
fn check_passes_a_captured_batch_raw_or_gzipped() {
    let dir = TempDir::new("check-good");
    let (_d, upload) = captured_upload("check-1", 5);
    let gz = dir.path().join("batch.pb.gz");
    std::fs::write(&gz, &upload.body).unwrap();
    let raw = dir.path().join("batch.pb");
    let batch: proto::Batch = wire::decode_gzip_batch(&upload.body).unwrap();
    std::fs::write(&raw, batch.encode_to_vec()).unwrap();

    let (code, stdout) = check(&[&gz, &raw]);
    assert_eq!(code, 0, "{stdout}");
    assert!(
        stdout.contains("0 violation(s); 2 file(s), 10 impression(s) checked"),
        "{stdout}"
    );
}

#[test]
fn check_fails_a_batch_with_violations_and_names_the_rules() {
    let dir = TempDir::new("check-bad");
    let (d, upload) = captured_upload("check-2", 6);
    let path = dir.path().join("bad.pb.gz");
    std::fs::write(&path, with_violations(&upload.body)).unwrap();

    let (code, stdout) = check(&[&path]);
    assert_eq!(code, 1, "{stdout}");
    let session = d.session();
    let line = |seq: u64, rule: &str| {
        stdout
            .lines()
            .any(|l| l.contains(&format!("{session}/{seq}")) && l.contains(rule))
    };
    assert!(line(3, "too_short"), "{stdout}");
    assert!(line(5, "below_threshold"), "{stdout}");
    assert!(stdout.contains("2 violation(s)"), "{stdout}");
}

#[test]
fn check_passes_the_collectors_own_output_and_fails_a_duplicated_line() {
    let dir = TempDir::new("check-ndjson");
    let out = dir.path().join("out");
    let c = Collector::start(&out, &Opts::files());
    let mut d = Device::new("check-3");
    d.page_view(4);
    d.settle(&c.transport());
    assert_eq!(c.terminate().code(), Some(0));

    let good_file = std::fs::read_dir(out.join("good"))
        .unwrap()
        .filter_map(|e| e.ok().map(|e| e.path()))
        .next()
        .expect("a good file");
    let (code, stdout) = check(&[&good_file]);
    assert_eq!(code, 0, "{stdout}");
    assert!(stdout.contains("4 impression(s) checked"), "{stdout}");

    let text = std::fs::read_to_string(&good_file).unwrap();
    let first = text.lines().next().unwrap();
    let doubled = dir.path().join("doubled.ndjson");
    std::fs::write(&doubled, format!("{text}{first}\n")).unwrap();
    let (code, stdout) = check(&[&doubled]);
    assert_eq!(code, 1, "{stdout}");
    assert!(
        stdout
            .lines()
            .any(|l| l.contains(&format!("{}/1", d.session())) && l.contains("duplicate_event")),
        "{stdout}"
    );
}

#[test]
fn check_fails_a_file_that_is_not_a_batch() {
    let dir = TempDir::new("check-garbage");
    let path = dir.path().join("garbage.bin");
    std::fs::write(
        &path,
        b"\x08\x96\x01 definitely not a sightline batch \xff\xfe",
    )
    .unwrap();
    let (code, stdout) = check(&[&path]);
    assert_eq!(code, 1, "{stdout}");
    assert!(stdout.contains("not a valid batch"), "{stdout}");
}

// ---- 12. SIGTERM ----

#[test]
fn sigterm_drains_and_exits_zero_with_the_rows_on_disk() {
    let dir = TempDir::new("sigterm");
    let out = dir.path().join("out");
    let c = Collector::start(&out, &Opts::files());
    let mut d = small_batches("sigterm-1", 4);
    d.page_view(9);
    let seen = d.settle(&c.transport());
    assert_eq!(seen.statuses(), [200, 200, 200]);

    let exit = c.terminate();
    assert_eq!(exit.code(), Some(0), "clean exit after SIGTERM");
    assert_eq!(distinct_keys(&good_rows(&out)), keys_of(&d.session(), 9));
    assert_eq!(batch_records(&out).len(), 3);
}

// ---- output failures ----

/// Makes the sink's writes to `kind` fail as on a full disk, uploads a batch (503), lets
/// the disk recover, and checks that the retry stores every row exactly once.
fn output_failure(kind: &str) {
    let dir = TempDir::new(&format!("disk-full-{kind}"));
    let out = dir.path().join("out");
    let c = Collector::start(&out, &Opts::files());
    // The sink opens its hourly files at the first write, so links made now are what it
    // opens (this hour's and the next, in case the test straddles the hour).
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64;
    let links: Vec<_> = [now, now + 3_600_000]
        .map(|t| out.join(kind).join(sightline_collector::sink::file_name(t)))
        .into();
    for link in &links {
        std::os::unix::fs::symlink("/dev/full", link).unwrap();
    }

    let t = c.transport();
    let mut d = Device::new(&format!("disk-full-{kind}"));
    d.page_view(5);
    d.flush();
    let upload = d.poll().unwrap();
    let outcome = t.send(&upload);
    assert_eq!(
        outcome,
        UploadOutcome::Status {
            code: 503,
            retry_after: None
        }
    );
    d.settle_one(&upload, outcome);
    let m = c.metrics();
    assert_eq!(m.get("sightline_impressions_total"), 0);
    assert_eq!(m.get("sightline_batches_total"), 0);

    // The disk recovers (remove the links before reading: /dev/full reads zeros forever).
    for link in &links {
        std::fs::remove_file(link).unwrap();
    }
    assert!(
        good_rows(&out).is_empty(),
        "a refused upload leaves no rows"
    );
    // The retry is new data, not a duplicate of what was never stored.
    assert_eq!(d.settle(&t).statuses(), [200]);
    d.assert_settled();
    assert_eq!(d.logger.stats().delivered, 5);
    assert_eq!(distinct_keys(&good_rows(&out)), keys_of(&d.session(), 5));
    assert_eq!(batch_records(&out).len(), 1);
    let m = c.metrics();
    assert_eq!(m.get("sightline_impressions_total"), 5);
    assert_eq!(m.get("sightline_dedup_hits_total"), 0);
    assert_eq!(m.get("sightline_batches_total"), 1);
}

#[test]
fn an_upload_whose_rows_cannot_be_stored_is_refused_and_its_retry_stored_once() {
    output_failure("good");
}

#[test]
fn an_upload_stored_only_in_part_is_taken_back_and_its_retry_stored_once() {
    // The good rows are written, then the batch record fails: the rows must not stay.
    output_failure("batches");
}

// ---- restarts over torn output ----

#[test]
fn a_torn_line_cut_inside_a_utf8_char_is_cut_and_the_restart_serves() {
    let dir = TempDir::new("torn-utf8");
    let out = dir.path().join("out");
    std::fs::create_dir_all(out.join("bad")).unwrap();
    // A bad row torn by a kill in the middle of a two-byte 'é' of its device name.
    let torn = r#"{"rules":["item_id"],"session_id":"s","seq":1,"device":"caf"#;
    let mut bytes = torn.as_bytes().to_vec();
    bytes.push(0xc3);
    let file = out.join("bad").join("2026-01-01T00.ndjson");
    std::fs::write(&file, bytes).unwrap();
    let c = Collector::start(&out, &Opts::files());
    assert_eq!(c.get("/healthz").status, 200);
    assert_eq!(std::fs::read(&file).unwrap(), b"", "the torn line was cut");
}

#[test]
fn an_unterminated_last_row_is_cut_not_counted_and_its_retry_is_stored() {
    let dir = TempDir::new("unterminated");
    let out = dir.path().join("out");
    let first = Collector::start(&out, &Opts::files());
    let (mut d, upload) = captured_upload("unterminated", 3);
    assert_eq!(first.post_upload(&upload).counts(), (3, 0, 0));
    first.kill9();
    // The kill tore the upload's write just before the final newline of its last good row,
    // so neither that newline nor the batch record reached the disk.
    for kind in ["good", "batches"] {
        let file = std::fs::read_dir(out.join(kind))
            .unwrap()
            .filter_map(|e| e.ok().map(|e| e.path()))
            .max()
            .unwrap();
        let mut bytes = std::fs::read(&file).unwrap();
        if kind == "good" {
            assert_eq!(bytes.pop(), Some(b'\n'), "the '\\n' of seq 3");
        } else {
            bytes.clear();
        }
        std::fs::write(&file, bytes).unwrap();
    }
    let second = Collector::start(&out, &Opts::files());
    // The upload was never acknowledged, so the SDK sends it again: seq 3 is new again.
    assert_eq!(second.post_upload(&upload).counts(), (1, 0, 2));
    d.settle_one(&upload, OK);
    assert_eq!(
        impressions_in(&good_rows(&out), &d.session()),
        BTreeSet::from([1, 2, 3])
    );
    assert_eq!(good_rows(&out).len(), 3, "each seq once");
}
