//! Recovery under store failures and crashes at every write, and hostile numbers.

mod common;

use std::cell::RefCell;
use std::rc::Rc;

use common::faulty::Faulty;
use common::*;
use prost::Message;
use sightline_core::logger::SEQ_RESERVE;
use sightline_core::persist::{Acks, Entry, JournalImpression, State};
use sightline_core::queue::ClosedBatch;
use sightline_core::store::frame_into;
use sightline_core::wire;
use sightline_core::{
    Config, ConfigError, Contract, ItemRef, Logger, MemoryStore, Recorded, StartError, Store,
    Stored, UploadOutcome, proto,
};

type Shared = Rc<RefCell<Faulty>>;

#[test]
fn a_state_write_that_fails_keeps_the_journal_and_seqs_are_never_reused() {
    let store = Shared::default();
    let mut l = logger_on(&store, config(), 0);
    record_n(&mut l, 3, 0); // seqs 1..3
    l.sync();
    store.borrow_mut().fail_put = Some("state");
    l.flush(at(2000)); // batch/… stored, state put fails, journal cleared anyway
    l.sync();
    store.borrow_mut().fail_put = None;
    drop(l); // crash

    let mut l = logger_on(&store, config(), 0);
    let new = record_n(&mut l, 1, 0);
    l.flush(at(2000));
    let mut seqs: Vec<u64> = deliver_all_items(&mut l, 2000)
        .into_iter()
        .map(|r| r.0)
        .collect();
    seqs.sort();
    // Seqs 4 and up were reserved before the failure: possibly issued, so never reused.
    assert_eq!(
        new,
        [SEQ_RESERVE + 1],
        "seq after a restart must not reuse seq 1"
    );
    assert_eq!(seqs, [1, 2, 3, SEQ_RESERVE + 1]);
    assert_eq!(l.stats().dropped.journal_lost, SEQ_RESERVE - 3);
    assert!(l.stats().balanced(), "{:?}", l.stats());
}

#[test]
fn a_journal_read_error_fails_the_start_and_destroys_nothing() {
    let store = Shared::default();
    let mut l = logger_on(&store, config(), 0);
    record_n(&mut l, 3, 0); // journaled, not yet in a batch
    drop(l); // crash

    store.borrow_mut().fail_journal_read = true;
    let refused = Logger::start(config(), &mut *store.borrow_mut(), at(0));
    assert!(matches!(refused, Err(StartError::Store(_))), "{refused:?}");
    store.borrow_mut().fail_journal_read = false;

    let mut l = logger_on(&store, config(), 0);
    let delivered = deliver_all_items(&mut l, 0);
    let s = l.stats();
    assert_eq!(
        s.recorded - s.dropped.journal_lost,
        3,
        "3 impressions were Logged, and reserved seqs are counted as possibly lost"
    );
    assert_eq!(delivered.len(), 3);
}

#[test]
fn a_state_read_error_fails_the_start_instead_of_starting_a_new_session() {
    let store = Shared::default();
    let mut l = logger_on(&store, config(), 0);
    let session = l.session_id().to_string();
    record_n(&mut l, 3, 0);
    l.flush(at(2000));
    drop(l);

    store.borrow_mut().fail_get = Some("state");
    let refused = Logger::start(config(), &mut *store.borrow_mut(), at(0));
    assert!(matches!(refused, Err(StartError::Store(_))), "{refused:?}");
    store.borrow_mut().fail_get = None;
    let mut l = logger_on(&store, config(), 0);
    assert_eq!(l.session_id(), session, "an I/O error is not a lost state");
    deliver_all_items(&mut l, 0);
    let s = l.stats().clone();
    assert!(s.balanced(), "{s:?}");
    assert_eq!((s.issued, s.delivered), (3, 3));
}

#[test]
fn replay_never_renumbers_impressions_around_a_lost_record() {
    let store = Shared::default();
    let mut l = logger_on(&store, config(), 0);
    let a = l.start_page_view("home", None, None, at(0)).unwrap();
    l.sync();
    store.borrow_mut().fail_append = true;
    let b = l.start_page_view("search", None, None, at(0)).unwrap(); // PV start not journaled
    l.sync();
    store.borrow_mut().fail_append = false;
    let r1 = l
        .record_impression(a, &impression("title:a1", 0, 0, 0), at(2000))
        .unwrap();
    let r2 = l
        .record_impression(b, &impression("title:b", 0, 0, 0), at(2000))
        .unwrap();
    let r3 = l
        .record_impression(a, &impression("title:a3", 0, 1, 0), at(2000))
        .unwrap();
    assert_eq!(
        (r1, r2, r3),
        (
            Recorded::Logged { seq: 1 },
            Recorded::Logged { seq: 2 },
            Recorded::Logged { seq: 3 }
        )
    );
    drop(l); // crash

    let mut l = logger_on(&store, config(), 0);
    let delivered = deliver_all_items(&mut l, 0);
    assert_eq!(
        delivered,
        [(1, "title:a1".to_string()), (3, "title:a3".to_string())],
        "title:a3 was Logged as seq 3"
    );
}

#[test]
fn a_crash_while_settling_a_batch_neither_loses_nor_recounts_it() {
    let store = Shared::default();
    let mut l = logger_on(&store, config(), 0);
    record_n(&mut l, 3, 0);
    l.flush(at(2000));
    let u = l.poll_upload(at(2000)).unwrap();
    l.sync();
    store.borrow_mut().budget = Some(1); // the process dies right after the next write
    let rejected = UploadOutcome::status(400);
    l.handle_upload_result(u.id, rejected, at(2000)).unwrap(); // remove(batch), [die], put(acks)
    drop(l);
    store.borrow_mut().budget = None;

    let mut l = logger_on(&store, config(), 0);
    assert!(deliver_all_items(&mut l, 0).is_empty());
    let s = l.stats();
    assert_eq!(
        (s.issued, s.delivered, s.dropped.total(), s.pending()),
        (3, 0, 3, 0),
        "3 rejected impressions must be counted dropped, not pending forever"
    );
}

#[test]
fn a_corrupt_stored_batch_is_counted_as_dropped() {
    let store = Shared::default();
    let mut l = logger_on(
        &store,
        Config {
            max_batch_impressions: 2,
            ..config()
        },
        0,
    );
    record_n(&mut l, 4, 0);
    drop(l);
    let key = store.borrow_mut().keys("batch/").unwrap()[0].clone();
    corrupt_in(&mut store.borrow_mut().inner, &key, 20);

    let mut l = logger_on(&store, config(), 0);
    deliver_all_items(&mut l, 0);
    let s = l.stats();
    assert_eq!(
        (s.dropped.store_corrupt, s.pending()),
        (2, 0),
        "queue is empty, yet {} impressions are pending",
        s.pending()
    );
}

#[test]
fn a_batch_the_store_refused_and_then_lost_is_counted_as_dropped() {
    let store = Shared::default();
    let mut l = logger_on(&store, config(), 0);
    record_n(&mut l, 3, 0);
    l.sync();
    store.borrow_mut().fail_put = Some("batch/");
    l.flush(at(2000));
    l.sync();
    store.borrow_mut().fail_put = None;
    drop(l);

    let mut l = logger_on(&store, config(), 0);
    let delivered = deliver_all_items(&mut l, 0);
    let s = l.stats();
    assert!(
        delivered.len() == 3 || s.dropped.total() == 3,
        "3 impressions neither delivered nor dropped: pending {}",
        s.pending()
    );
}

#[test]
fn a_huge_retry_after_is_capped_not_overflowed() {
    let store = Shared::default();
    let mut l = logger_on(&store, config(), 0);
    record_n(&mut l, 1, 0);
    l.flush(at(2000));
    let u = l.poll_upload(at(2000)).unwrap();
    let outcome = UploadOutcome::Status {
        code: 503,
        retry_after: Some(u64::MAX.to_string()),
    };
    let _ = l.handle_upload_result(u.id, outcome, at(2000));
}

#[test]
fn out_of_range_delays_and_id_lengths_are_refused_by_validation() {
    let bad = [
        Config {
            max_batch_age_ms: u64::MAX,
            ..config()
        },
        Config {
            retry_max_ms: u64::MAX,
            ..config()
        },
        Config {
            contract: sightline_core::Contract {
                max_id_len: 300,
                ..Default::default()
            },
            ..config()
        },
    ];
    for cfg in bad {
        let refused = Logger::resume(cfg, Stored::default(), at(0));
        assert!(
            matches!(refused, Err(ConfigError::Limit(_) | ConfigError::Contract)),
            "{refused:?}"
        );
    }
}

#[test]
fn check_batch_survives_hostile_counters() {
    let batch = proto::Batch {
        counters: Some(proto::Counters {
            recorded: 0,
            sampled_out: u64::MAX,
            deduped: 1,
            ..Default::default()
        }),
        ..Default::default()
    };
    let v = Contract::default().check_batch(&batch);
    assert!(!v.is_empty());
}

/// A stored batch record, framed as the store holds it: batch `id` (number 1) of `count`
/// impressions from `first_seq`, with an empty body.
fn framed_batch_record(id: u64, first_seq: u64, count: u32) -> Vec<u8> {
    let rec = ClosedBatch {
        id,
        batch_no: 1,
        first_seq,
        count,
        attempts: 0,
        body: vec![],
        ready_after: 0,
        stored: false,
    }
    .to_record();
    let mut framed = Vec::new();
    frame_into(&mut framed, &rec);
    framed
}

#[test]
fn a_stored_batch_record_with_impossible_numbers_is_corrupt_not_a_panic() {
    let store = Shared::default();
    let framed = framed_batch_record(1, u64::MAX, 2);
    store
        .borrow_mut()
        .put("batch/00000000000000000001", &framed)
        .unwrap();
    let _ = logger_on(&store, config(), 0);
}

#[test]
fn exposures_are_still_measured_across_a_reset_of_the_hosts_monotonic_clock() {
    let store = Shared::default();
    let mut l = logger_on(&store, config(), 3_600_000);
    let pv = l
        .start_page_view("home", None, None, at(3_600_000))
        .unwrap();
    // The host's monotonic clock restarts (e.g. firmware clock reset after suspend).
    let it = ItemRef {
        item_id: "title:1",
        artwork_id: None,
        row: 0,
        column: 0,
    };
    l.handle_visibility(pv, &it, 1.0, at(10)).unwrap();
    l.handle_visibility(pv, &it, 0.0, at(2_010)).unwrap();
    l.flush(at(2_010));
    assert_eq!(l.stats().recorded, 1, "visible 2 s at 100 %");
}

#[test]
fn the_longest_id_allowed_survives_journal_replay_intact() {
    let store = Shared::default();
    let mut cfg = config();
    cfg.contract.max_id_len = 255;
    let long = "x".repeat(255);
    let mut l = logger_on(&store, cfg.clone(), 0);
    let pv = l.start_page_view("home", None, None, at(0)).unwrap();
    l.record_impression(pv, &impression(&long, 0, 0, 0), at(2000))
        .unwrap();
    drop(l);
    let mut l = logger_on(&store, cfg, 0);
    let u = l.poll_upload(at(0)).unwrap();
    let (b, rows) = decode(&u);
    assert_eq!(wire::Ids::of(&b).item(&rows[0]), long);
}

#[test]
fn a_crash_during_a_purge_never_uploads_purged_data_or_counts_it_twice() {
    let store = Shared::default();
    let mut l = logger_on(&store, config(), 0);
    record_n(&mut l, 3, 0); // in the open batch, journaled
    l.sync();
    store.borrow_mut().budget = Some(2); // prefs, acks written; state + journal clear lost
    l.set_enabled(false, true, at(2000));
    drop(l);
    store.borrow_mut().budget = None;

    let mut l = logger_on(&store, config(), 0);
    assert!(!l.enabled());
    let sent = deliver_all_items(&mut l, 0);
    let s = l.stats();
    eprintln!(
        "sent={sent:?} delivered={} purged={} issued={}",
        s.delivered, s.dropped.purged, s.issued
    );
    assert!(
        sent.is_empty(),
        "purged impressions uploaded after opt-out: {sent:?}"
    );
    assert!(s.balanced(), "{s:?}");
}

#[test]
fn a_sampled_out_install_keeps_its_journal_bounded() {
    let store = Shared::default();
    let cfg = Config {
        sample_rate_ppm: 0,
        ..config()
    };
    let mut l = logger_on(&store, cfg, 0);
    for round in 0..100u64 {
        let t = round * 10_000;
        let pv = l.start_page_view("home", None, None, at(t)).unwrap();
        for i in 0..100u32 {
            let id = format!("title:{i}");
            let r = l.record_impression(pv, &impression(&id, 0, i, t), at(t + 2000));
            assert_eq!(r, Ok(Recorded::SampledOut));
        }
        l.end_page_view(pv, at(t + 2000)).unwrap();
        l.handle_app_hidden(at(t + 3000));
        l.flush(at(t + 3000));
        l.handle_app_visible(at(t + 3000));
    }
    assert_eq!(l.stats().sampled_out, 10_000);
    let journal = store.borrow_mut().inner.journal_read().unwrap().len();
    assert!(
        journal < 16 * 1024,
        "journal holds {journal} bytes after flushes"
    );
}

#[test]
fn a_batch_rebuilt_from_the_journal_has_counters_that_cover_its_seqs() {
    let store = Shared::default();
    let mut l = logger_on(&store, config(), 0);
    record_n(&mut l, 3, 0); // journaled, in the open batch
    drop(l);
    let mut l = logger_on(&store, config(), 0);
    let u = l.poll_upload(at(0)).expect("the replayed batch");
    let batch = wire::decode_gzip_batch(&u.body).unwrap();
    assert_eq!(Contract::default().check_batch(&batch), []);
}

/// Resumes from `values` (key, framed record), logs one impression and sends it: the
/// counters the batch carries must balance, or the collector flags every batch of the
/// session as `counters_inconsistent` from then on.
fn resume_log_and_check(values: &[(&str, &[u8])]) {
    let stored = Stored {
        values: values
            .iter()
            .map(|&(k, v)| (k.to_string(), v.to_vec()))
            .collect(),
        journal: Vec::new(),
    };
    let mut l = Logger::resume(config(), stored, at(0)).unwrap();
    assert!(l.stats().balanced(), "after resume: {:?}", l.stats());
    let mut store = MemoryStore::new();
    l.perform_store_ops(&mut store);
    let pv = l.start_page_view("home", None, None, at(0)).unwrap();
    l.record_impression(pv, &impression("title:1", 0, 0, 0), at(2000))
        .unwrap();
    l.flush(at(2000));
    l.perform_store_ops(&mut store);
    assert!(l.stats().balanced(), "after logging: {:?}", l.stats());
    let u = l.poll_upload(at(2000)).expect("the flushed batch");
    let batch = wire::decode_gzip_batch(&u.body).unwrap();
    assert_eq!(Contract::default().check_batch(&batch), []);
}

// Found by fuzz/fuzz_targets/store_resume.rs: records that pass their checksums can still
// disagree with each other (a host's bug, corruption the CRC missed).
#[test]
fn a_stored_state_recording_more_than_it_issued_resumes_balanced() {
    // `state` with `recorded` = 5 and nothing issued, framed (length, CRC-32, payload).
    let state: &[u8] = &[2, 0, 0, 0, 139, 90, 44, 38, 0x38, 5];
    resume_log_and_check(&[("state", state)]);
}

#[test]
fn stored_acks_dropping_more_than_was_issued_resume_balanced() {
    // An empty `state` (a session with nothing issued) and `acks` with 2 purged.
    let state: &[u8] = &[0; 8];
    let acks: &[u8] = &[2, 0, 0, 0, 32, 69, 145, 112, 0x30, 2];
    resume_log_and_check(&[("state", state), ("acks", acks)]);
}

#[test]
fn a_stored_state_with_exhausted_counters_is_corrupt_not_a_panic() {
    // `state` of session "s1" with `starts` = u32::MAX and `recorded` = `issued` =
    // u64::MAX: no seq is left to issue, and the next start or record would overflow.
    let state: &[u8] = &[
        32, 0, 0, 0, 231, 254, 68, 220, 10, 2, 115, 49, 24, 255, 255, 255, 255, 15, 56, 255, 255,
        255, 255, 255, 255, 255, 255, 255, 1, 80, 255, 255, 255, 255, 255, 255, 255, 255, 255, 1,
    ];
    resume_log_and_check(&[("state", state)]);
}

#[test]
fn a_stored_batch_record_starting_at_seq_0_is_corrupt() {
    // Seqs start at 1: a record claiming seqs 0 and 1 would count two impressions for the
    // one seq it proves issued, and dropping it would unbalance the counters.
    let framed = framed_batch_record(1, 0, 2);
    let stored = Stored {
        values: [("batch/00000000000000000001".to_string(), framed)].into(),
        journal: Vec::new(),
    };
    let cfg = Config {
        max_attempts: 1,
        ..config()
    };
    let mut l = Logger::resume(cfg, stored, at(0)).unwrap();
    l.perform_store_ops(&mut MemoryStore::new());
    if let Some(u) = l.poll_upload(at(0)) {
        l.handle_upload_result(u.id, UploadOutcome::NetworkError, at(0))
            .unwrap();
    }
    assert!(l.stats().balanced(), "{:?}", l.stats());
}

#[test]
fn a_stored_batch_under_another_batchs_key_is_not_counted_again_after_a_purge() {
    // The record says batch 2 but lies under batch 3's key: removing "batch 2" after the
    // purge would leave it stored, and every later start would count it again.
    let framed = framed_batch_record(2, 1, 4);
    let mut store = MemoryStore::new();
    store.put("batch/00000000000000000003", &framed).unwrap();
    for _ in 0..2 {
        let mut l = Logger::start(config(), &mut store, at(0)).unwrap();
        for _ in 0..2 {
            l.set_enabled(false, true, at(0));
            l.perform_store_ops(&mut store);
            assert!(l.stats().balanced(), "{:?}", l.stats());
        }
    }
}

/// The stored values and journal of the store_resume crash: the session's `state` (seqs 1
/// to 4 issued and checkpointed, 32 more reserved), `acks`, and a journal that a failed
/// checkpoint kept: its page view and the impression with seq 6 (seq 5's record was
/// lost).
fn stored_with_journaled_seq_6(acks: Acks) -> Stored {
    let state = State {
        session_id: "8f4bfe5e96d55fbc".into(),
        generation: 2,
        starts: 1,
        next_batch_id: 2,
        next_batch_no: 2,
        next_page_view: 2,
        recorded: 4,
        issued: 4,
        reserved_through: 4 + SEQ_RESERVE,
        ..State::default()
    };
    let framed = |payload: &[u8]| {
        let mut out = Vec::new();
        frame_into(&mut out, payload);
        out
    };
    let mut journal = Vec::new();
    for entry in [
        Entry::Epoch { mono_epoch: 1 },
        Entry::PageViewStart {
            ordinal: 1,
            start_mono: 100,
            start_wall: WALL0 + 100,
            page: "home",
            request_id: Some("req-0"),
        },
        Entry::Impression(JournalImpression {
            seq: 6,
            page_view: 1,
            item: "title:3",
            artwork: None,
            row: 0,
            column: 7,
            first_visible_ms: 10_510,
            visible_ms: 1500,
            focused_ms: 500,
            max_visible_pct: 100,
        }),
    ] {
        let mut payload = Vec::new();
        entry.encode(2, &mut payload);
        frame_into(&mut journal, &payload);
    }
    Stored {
        values: [
            ("state".to_string(), framed(&state.encode_to_vec())),
            ("acks".to_string(), framed(&acks.encode_to_vec())),
        ]
        .into(),
        journal,
    }
}

/// Resumes from `stored`, delivers everything and restarts: the journaled impression is
/// delivered exactly once and the counters balance throughout. Returns the stats after the
/// delivery.
fn resume_deliver_and_restart(stored: Stored) -> sightline_core::Stats {
    let mut store = MemoryStore::new();
    let mut l = Logger::resume(config(), stored, at(12_000)).unwrap();
    assert!(l.stats().balanced(), "after resume: {:?}", l.stats());
    let mut sent = Vec::new();
    loop {
        l.perform_store_ops(&mut store);
        let Some(u) = l.poll_upload(at(12_000)) else {
            break;
        };
        sent.extend(decode(&u).1.iter().map(|r| r.seq));
        l.handle_upload_result(u.id, ok(), at(12_000)).unwrap();
        assert!(
            l.stats().balanced(),
            "after delivering {sent:?}: {:?}",
            l.stats()
        );
    }
    assert_eq!(sent, [6], "the journaled impression, once");
    let stats = l.stats().clone();
    drop(l);

    let mut l = Logger::start(config(), &mut store, at(13_000)).unwrap();
    l.perform_store_ops(&mut store);
    assert!(l.stats().balanced(), "after a restart: {:?}", l.stats());
    assert_eq!(l.poll_upload(at(13_000)).map(|u| u.id), None, "sent again");
    stats
}

// Found by fuzz/fuzz_targets/store_resume.rs: `acks` claimed 122 impressions delivered,
// though the highest seq it ever settled was 4. Trusted, they left no seq pending for the
// journaled seq 6, whose delivery then made delivered exceed issued.
#[test]
fn acks_claiming_more_delivered_than_settled_seqs_are_reconciled_not_trusted() {
    let acks = Acks {
        delivered: 122,
        uploads: 1,
        bytes_delivered: 237,
        settled: vec![1],
        settled_through_seq: 4,
        ..Acks::default()
    };
    let s = resume_deliver_and_restart(stored_with_journaled_seq_6(acks));
    // No logger writes such a record: it is corrupt, as one failing its checksum is, and
    // the seqs it accounted for are counted lost with the others nothing holds.
    assert_eq!(s.corrupt_records, 1, "{s:?}");
    assert_eq!(s.delivered, 1, "{s:?}");
    assert_eq!(s.issued, s.delivered + s.dropped.total(), "{s:?}");
}

#[test]
fn acks_dropping_more_than_issued_leave_journaled_impressions_pending() {
    // Drops not bound to settled seqs (counted at earlier starts, whose state writes
    // failed) beyond everything the state issued: the journaled seq 6 is still pending.
    let acks = Acks {
        dropped_store_corrupt: 100,
        settled_through_seq: 4,
        ..Acks::default()
    };
    let s = resume_deliver_and_restart(stored_with_journaled_seq_6(acks));
    assert_eq!(s.corrupt_records, 0, "{s:?}");
    assert_eq!((s.delivered, s.dropped.store_corrupt), (1, 100), "{s:?}");
}

#[test]
fn a_purge_whose_state_write_fails_never_uploads_purged_data_or_counts_it_twice() {
    let store = Shared::default();
    let mut l = logger_on(&store, config(), 0);
    record_n(&mut l, 3, 0); // in the open batch, journaled
    l.sync();
    // The checkpoint after the purge fails to write `state`, so the journal is kept; `acks`
    // (3 purged) and `prefs` (the purge done) are written.
    store.borrow_mut().fail_put = Some("state");
    l.set_enabled(false, true, at(2000));
    l.sync();
    store.borrow_mut().fail_put = None;
    drop(l);

    let mut l = logger_on(&store, config(), 0);
    let sent = deliver_all_items(&mut l, 0);
    assert!(
        sent.is_empty(),
        "purged impressions uploaded after opt-out: {sent:?}"
    );
    let s = l.stats();
    assert_eq!((s.delivered, s.dropped.purged), (0, 3), "{s:?}");
    assert!(s.balanced(), "{s:?}");
}

/// A store holding one closed batch of four impressions whose stored header was rewritten
/// to claim `count`, its body (and checksums) left as they were written.
fn store_with_batch_restamped_to(count: u32) -> Shared {
    let store = Shared::default();
    let mut l = logger_on(&store, config(), 0);
    record_n(&mut l, 4, 0);
    l.flush(at(2000));
    l.sync();
    drop(l);
    let mut s = store.borrow_mut();
    let key = s.keys("batch/").unwrap()[0].clone();
    let framed = s.get(&key).unwrap().unwrap();
    let record = sightline_core::store::read_single_frame(&framed).unwrap();
    let mut batch = ClosedBatch::from_record(record).unwrap();
    batch.count = count;
    let mut restamped = Vec::new();
    frame_into(&mut restamped, &batch.to_record());
    s.put(&key, &restamped).unwrap();
    drop(s);
    store
}

// Found by fuzz/fuzz_targets/store_resume.rs: a stored batch whose header said it held no
// impressions while its body held four was queued and sent, its four counted lost by
// recovery (nothing held to account for them) and then two delivered by a 413 split.
#[test]
fn a_stored_batch_whose_header_holds_no_impressions_is_corrupt_never_sent() {
    let store = store_with_batch_restamped_to(0);

    let mut l = logger_on(&store, config(), 3000);
    assert!(deliver_all_items(&mut l, 3000).is_empty(), "nothing sent");
    let s = l.stats();
    assert!(s.balanced(), "{s:?}");
    assert_eq!(
        (s.issued, s.delivered, s.dropped.store_corrupt, s.pending()),
        (4, 0, 4, 0)
    );
}

#[test]
fn a_batch_whose_body_holds_other_impressions_than_its_header_is_dropped_not_split() {
    let store = store_with_batch_restamped_to(2);

    let mut l = logger_on(&store, config(), 3000);
    let u = l
        .poll_upload(at(3000))
        .expect("the batch, as its header counts it");
    l.handle_upload_result(u.id, UploadOutcome::status(413), at(3000))
        .unwrap();
    assert!(deliver_all_items(&mut l, 60_000).is_empty(), "no half sent");
    let s = l.stats();
    assert!(s.balanced(), "{s:?}");
    assert_eq!((s.issued, s.delivered, s.pending()), (4, 0, 0));
}
