//! Contract rules on what a hostile or broken client can put on the wire, end to end over
//! loopback against the real binary: a seq that cannot identify an impression (0, or too
//! large for the window arithmetic and for JSON readers) and event times outside the
//! batch's own send window. Every impression that arrives ends up a good row, a bad row
//! naming its rule, or a duplicate of one that is stored: none disappears.

mod common;

use std::collections::BTreeSet;

use common::*;
use prost::Message;
use sightline_core::contract::MAX_IMPRESSION_AGE_MS;
use sightline_core::{gzip, proto, wire};

/// A real upload of `n` impressions (seqs 1..=n) from a fresh device.
fn real_upload(install_id: &str, n: u64) -> (Device, Vec<u8>) {
    let mut d = Device::new(install_id);
    d.page_view(n);
    d.flush();
    let upload = d.poll().expect("a batch is due");
    (d, upload.body)
}

/// `body`'s batch changed by `edit`, encoded and gzipped again.
fn edited(body: &[u8], edit: impl FnOnce(&mut proto::Batch)) -> Vec<u8> {
    let mut batch = wire::decode_gzip_batch(body).expect("a real batch");
    edit(&mut batch);
    gzip::gzip(&batch.encode_to_vec())
}

/// (seq, rules) of the bad rows of `session`.
fn bad_of(out: &std::path::Path, session: &str) -> Vec<(u64, Vec<String>)> {
    bad_rows(out)
        .into_iter()
        .filter(|b| b.row.session_id == session)
        .map(|b| (b.row.seq, b.rules))
        .collect()
}

/// The seqs of the good rows of `session`.
fn good_of(out: &std::path::Path, session: &str) -> BTreeSet<u64> {
    good_rows(out)
        .into_iter()
        .filter(|r| r.session_id == session)
        .map(|r| r.seq)
        .collect()
}

fn rules(names: &[&str]) -> Vec<String> {
    names.iter().map(|n| n.to_string()).collect()
}

#[test]
fn an_impression_at_seq_0_is_a_bad_row_with_its_rule_never_a_phantom_duplicate() {
    let dir = TempDir::new("seq0");
    let out = dir.path().join("out");
    let c = Collector::start(&out, &Opts::files());
    let (d, body) = real_upload("seq0-1", 3);
    // Seqs 0, 1, 2: the counters (last_seq 3) still cover them.
    let body = edited(&body, |b| b.impressions.as_mut().unwrap().first_seq = 0);

    assert_eq!(c.post_batch(&body).counts(), (2, 1, 0));
    let session = d.session();
    assert_eq!(good_of(&out, &session), BTreeSet::from([1, 2]));
    assert_eq!(bad_of(&out, &session), [(0, rules(&["seq_out_of_range"]))]);
    assert_eq!(
        c.metrics()
            .get("sightline_rejects_total{rule=\"seq_out_of_range\"}"),
        1
    );

    // A retry: the identified impressions are duplicates; seq 0 has no identity to dedup
    // by, so it is written again as what it is.
    assert_eq!(c.post_batch(&body).counts(), (0, 1, 2));
    let r = c.sessions()[&session];
    assert_eq!(
        (r.issued, r.delivered, r.rejected, r.duplicates, r.missing),
        (3, 2, 0, 2, 1),
        "{r:?}"
    );
}

#[test]
fn seqs_too_large_to_count_are_bad_rows_and_leave_the_session_unharmed() {
    let dir = TempDir::new("seqmax");
    let out = dir.path().join("out");
    let c = Collector::start(&out, &Opts::files());
    let (mut d, body) = real_upload("seqmax-1", 3);
    let session = d.session();
    // The same session, its seqs moved to the top of the range: u64::MAX - 2 ..= u64::MAX.
    let hostile = edited(&body, |b| {
        let cols = b.impressions.as_mut().unwrap();
        cols.first_seq = u64::MAX - 2;
        cols.item = vec![0; 3];
        b.item_ids = vec!["hostile:1".into(), "hostile:2".into(), "hostile:3".into()];
    });
    assert_eq!(c.post_batch(&hostile).counts(), (0, 3, 0));
    let bad = bad_of(&out, &session);
    assert_eq!(
        bad.iter().map(|(seq, _)| *seq).collect::<Vec<_>>(),
        [u64::MAX - 2, u64::MAX - 1, u64::MAX]
    );
    assert!(
        bad.iter().all(|(_, r)| r == &rules(&["seq_out_of_range"])),
        "{bad:?}"
    );

    // The real impressions still count: nothing above was taken as arrived.
    assert_eq!(c.post_batch(&body).counts(), (3, 0, 0));
    d.page_view(2);
    let seen = d.settle(&c.transport());
    assert!(seen.statuses().iter().all(|&s| s == 200), "{seen:?}");
    assert_eq!(good_of(&out, &session), (1..=5).collect());
    let r = c.sessions()[&session];
    assert_eq!((r.issued, r.delivered, r.missing), (5, 5, 0), "{r:?}");
}

#[test]
fn a_first_visible_time_after_the_batch_was_sent_is_a_bad_row() {
    let dir = TempDir::new("future");
    let out = dir.path().join("out");
    let c = Collector::start(&out, &Opts::files());
    let (d, body) = real_upload("future-1", 3);
    let session = d.session();
    // Seq 2's page view starts at the end of time; seq 3 becomes visible a minute after
    // the send, by the batch's monotonic clock.
    let future = edited(&body, |b| {
        let sent = b.send.unwrap().sent_at_mono_ms;
        let base = b.clock.unwrap().mono_base_ms;
        let pv = b.page_views[0];
        b.page_views = vec![pv, pv, pv];
        b.page_views[1].start_offset_ms = u64::MAX;
        b.page_views[1].start_wall_ms = u64::MAX;
        b.page_views[2].start_offset_ms = sent - base + 60_000;
        b.page_views[2].start_wall_ms += sent - base + 60_000;
        for (i, p) in b.page_views.iter_mut().enumerate() {
            p.ordinal += i as u64;
        }
        b.impressions.as_mut().unwrap().page_view_delta = vec![0, 1, 1];
    });
    assert_eq!(c.post_batch(&future).counts(), (1, 2, 0));
    assert_eq!(good_of(&out, &session), BTreeSet::from([1]));
    assert_eq!(
        bad_of(&out, &session),
        [
            (2, rules(&["time_outside_batch"])),
            (3, rules(&["time_outside_batch"]))
        ]
    );
}

#[test]
fn a_first_visible_time_by_the_wall_clock_alone_cannot_reach_the_end_of_time() {
    let dir = TempDir::new("wall");
    let out = dir.path().join("out");
    let c = Collector::start(&out, &Opts::files());
    let (d, body) = real_upload("wall-1", 1);
    // Without send info only the client's wall clock places the event.
    let hostile = edited(&body, |b| {
        b.send = None;
        b.page_views[0].start_wall_ms = u64::MAX;
    });
    assert_eq!(c.post_batch(&hostile).counts(), (0, 1, 0));
    assert!(
        good_rows(&out)
            .iter()
            .all(|r| r.first_visible_ms != u64::MAX)
    );
    assert_eq!(
        bad_of(&out, &d.session()),
        [(1, rules(&["time_outside_batch"]))]
    );
}

#[test]
fn an_impression_older_than_the_maximum_age_when_sent_is_a_bad_row() {
    let dir = TempDir::new("old");
    let out = dir.path().join("out");
    let c = Collector::start(&out, &Opts::files());
    let (d, body) = real_upload("old-1", 2);
    // The batch goes out just past the maximum age after seq 1 became visible; seq 2 a
    // millisecond later is still within it.
    let old = edited(&body, |b| {
        let first_visible = b.clock.unwrap().mono_base_ms + b.page_views[0].start_offset_ms + 500;
        b.impressions.as_mut().unwrap().first_visible_delta_ms = vec![500, 1];
        let send = b.send.as_mut().unwrap();
        let sent = first_visible + MAX_IMPRESSION_AGE_MS + 1;
        send.sent_at_wall_ms += sent - send.sent_at_mono_ms;
        send.sent_at_mono_ms = sent;
    });
    assert_eq!(c.post_batch(&old).counts(), (1, 1, 0));
    assert_eq!(good_of(&out, &d.session()), BTreeSet::from([2]));
    assert_eq!(
        bad_of(&out, &d.session()),
        [(1, rules(&["time_outside_batch"]))]
    );
}
