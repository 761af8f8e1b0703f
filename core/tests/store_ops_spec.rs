//! Persistence as an output: the store operations a logger hands its host, their order,
//! acknowledgement-driven durability, and crashes after every operation.

mod common;

use std::collections::BTreeMap;

use common::*;
use sightline_core::{Config, Logger, MemoryStore, Store, StoreOp, Stored};

fn fresh(cfg: Config) -> Logger {
    Logger::resume(cfg, Stored::default(), at(0)).expect("valid config")
}

#[test]
fn an_upload_is_offered_only_once_what_it_depends_on_is_acknowledged() {
    let mut logger = fresh(config());
    let mut store = MemoryStore::new();
    let pv = logger.start_page_view("home", None, None, at(0)).unwrap();
    logger
        .record_impression(pv, &impression("title:1", 0, 0, 0), at(2000))
        .unwrap();
    logger.flush(at(2000));
    assert!(
        logger.poll_upload(at(2000)).is_none(),
        "the batch is not stored yet"
    );
    assert!(logger.perform_store_ops(&mut store) > 0);
    assert!(store.keys("batch/").unwrap().len() == 1);
    assert!(logger.poll_upload(at(2000)).is_some());
}

#[test]
fn one_operation_is_handed_out_at_a_time_and_journal_appends_are_coalesced() {
    let mut logger = fresh(config());
    logger.perform_store_ops(&mut MemoryStore::new());
    let pv = logger.start_page_view("home", None, None, at(0)).unwrap();
    for i in 0..5 {
        let id = format!("title:{i}");
        logger
            .record_impression(pv, &impression(&id, 0, i, 0), at(2000))
            .unwrap();
    }
    let mut appends = 0;
    while let Some(op) = logger.poll_store_op().cloned() {
        assert!(
            logger.poll_store_op().is_none(),
            "{op:?} is not acknowledged"
        );
        appends += usize::from(matches!(op.op, StoreOp::Append { .. }));
        logger.handle_store_result(op.id, Ok(())).unwrap();
    }
    // The page view start, then a seq reservation (a put), then five impressions.
    assert_eq!(appends, 2, "one append before the reservation, one after");
}

#[test]
fn the_journal_is_cleared_only_after_the_state_that_replaces_it_is_acknowledged() {
    let mut logger = fresh(config());
    logger.perform_store_ops(&mut MemoryStore::new());
    record_n(&mut logger, 3, 0);
    logger.flush(at(2000));
    let mut ops = Vec::new();
    let mut state_puts = 0;
    while let Some(op) = logger.poll_store_op().cloned() {
        let is_state = matches!(&op.op, StoreOp::Put { key, .. } if key == "state");
        state_puts += usize::from(is_state);
        // The checkpoint's state write (the second state put: the first reserves seqs) fails.
        let result = if is_state && state_puts == 2 {
            Err(sightline_core::StoreError::QuotaExceeded)
        } else {
            Ok(())
        };
        ops.push(op.op);
        logger.handle_store_result(op.id, result).unwrap();
    }
    assert_eq!(state_puts, 2);
    assert!(
        !ops.contains(&StoreOp::ClearJournal),
        "the journal was cleared after its replacement failed: {ops:?}"
    );
    assert_eq!(logger.stats().store_errors, 1);
}

#[test]
fn an_acknowledgement_for_an_operation_not_handed_out_is_refused() {
    let mut logger = fresh(config());
    let id = logger.poll_store_op().expect("the first checkpoint").id;
    assert!(logger.handle_store_result(id + 1, Ok(())).is_err());
    assert!(logger.handle_store_result(id, Ok(())).is_ok());
    assert!(logger.handle_store_result(id, Ok(())).is_err(), "only once");
}

#[test]
fn a_retry_persists_its_attempt_count_without_rewriting_the_batch() {
    let mut logger = fresh(config());
    let mut store = MemoryStore::new();
    record_n(&mut logger, 3, 0);
    logger.flush(at(2000));
    logger.perform_store_ops(&mut store);
    let u = logger.poll_upload(at(2000)).unwrap();
    logger
        .handle_upload_result(u.id, status(503, None), at(2000))
        .unwrap();
    let mut rewritten = Vec::new();
    while let Some(op) = logger.poll_store_op().cloned() {
        if let StoreOp::Put { key, .. } = &op.op {
            rewritten.push(key.clone());
        }
        logger
            .handle_store_result(op.id, store.apply(&op.op))
            .unwrap();
    }
    assert_eq!(rewritten, ["acks"], "only the small acks record");
    let restarted = Logger::start(config(), &mut store, at(0)).unwrap();
    assert!(
        restarted.poll_timeout().is_some_and(|t| t > 0),
        "backoff survives the restart"
    );
}

/// One run of a realistic session whose process dies after its store performed `k`
/// operations (the k-th performed but never acknowledged), then restarts and drains.
fn crash_after(k: usize) -> Result<(), String> {
    let cfg = Config {
        max_batch_impressions: 4,
        ..config()
    };
    let mut store = MemoryStore::new();
    let mut logger = Logger::start(cfg.clone(), &mut store, at(0)).unwrap();
    let mut performed = 0;
    let mut sent: BTreeMap<u64, String> = BTreeMap::new();
    let mut crashed = false;
    let mut t = 0;
    'session: for page in 0..4u32 {
        let pv = logger.start_page_view("home", None, None, at(t)).unwrap();
        for i in 0..5u32 {
            let id = format!("title:{page}-{i}");
            let _ = logger.record_impression(pv, &impression(&id, 0, i, t), at(t + 2000));
            while let Some(op) = logger.poll_store_op().cloned() {
                let result = store.apply(&op.op);
                performed += 1;
                if performed == k {
                    crashed = true;
                    break 'session;
                }
                logger.handle_store_result(op.id, result).unwrap();
            }
        }
        logger.end_page_view(pv, at(t + 2000)).unwrap();
        t += 3000;
        // Every other batch is refused with a retryable status, then delivered.
        while let Some(u) = logger.poll_upload(at(t)) {
            let (batch, rows) = decode(&u);
            let ids = sightline_core::wire::Ids::of(&batch);
            let code = if u.id % 2 == 0 { 503 } else { 200 };
            if code == 200 {
                for r in &rows {
                    sent.insert(r.seq, ids.item(r).to_string());
                }
            }
            logger
                .handle_upload_result(u.id, status(code, None), at(t))
                .unwrap();
            logger.perform_store_ops(&mut store);
            t += 60_000;
        }
    }
    drop(logger);
    let mut logger = Logger::start(cfg, &mut store, at(t)).unwrap();
    let mut restarted_sent = 0;
    for _ in 0..100 {
        logger.flush(at(t));
        logger.perform_store_ops(&mut store);
        while let Some(u) = logger.poll_upload(at(t)) {
            let (batch, rows) = decode(&u);
            let ids = sightline_core::wire::Ids::of(&batch);
            for r in &rows {
                let item = ids.item(r).to_string();
                if let Some(before) = sent.insert(r.seq, item.clone()) {
                    if before != item {
                        return Err(format!("seq {} sent as {before} and as {item}", r.seq));
                    }
                }
            }
            restarted_sent += rows.len();
            logger.handle_upload_result(u.id, ok(), at(t)).unwrap();
            logger.perform_store_ops(&mut store);
        }
        if logger.pending() == 0 {
            break;
        }
        t += 600_000;
    }
    let s = logger.stats();
    if !s.balanced() || s.pending() != 0 {
        return Err(format!("not balanced or not drained: {s:?}"));
    }
    if s.delivered + s.dropped.total() != s.issued {
        return Err(format!("issued seqs unaccounted for: {s:?}"));
    }
    if sent.keys().any(|&seq| seq > s.issued) {
        return Err(format!("a seq beyond the last issued: {s:?}"));
    }
    // Delivered before the crash but not acknowledged by the device, or delivered after.
    if (sent.len() as u64) < s.delivered {
        return Err(format!(
            "device counts {} delivered, {} arrived ({restarted_sent} after the restart; crashed: {crashed})",
            s.delivered,
            sent.len()
        ));
    }
    Ok(())
}

#[test]
fn a_crash_after_any_store_operation_loses_nothing_uncounted_and_reuses_no_seq() {
    let mut failures = Vec::new();
    // More operations than the session performs: the last runs never crash.
    for k in 1..=120 {
        if let Err(e) = crash_after(k) {
            failures.push(format!("crash after op {k}: {e}"));
        }
    }
    assert!(failures.is_empty(), "{failures:#?}");
}

#[test]
fn the_batch_that_causes_an_overflow_drop_reports_it_in_its_counters() {
    let cfg = Config {
        max_batch_impressions: 500,
        max_queue_bytes: 64 * 1024,
        ..config()
    };
    let mut logger = fresh(cfg);
    let mut store = MemoryStore::new();
    let mut t = 0;
    // Offline: 16 batches of 500 impressions with long, random-looking ids.
    for b in 0..16u64 {
        let pv = logger.start_page_view("home", None, None, at(t)).unwrap();
        for i in 0..500u64 {
            let id = format!(
                "title:{:016x}{:016x}",
                b * 7919 + i,
                (b + 1) * (i + 13) * 104_729
            );
            logger
                .record_impression(
                    pv,
                    &impression(&id, (i / 100) as u32, (i % 100) as u32, t),
                    at(t + 2000),
                )
                .unwrap();
        }
        logger.end_page_view(pv, at(t + 2000)).unwrap();
        logger.perform_store_ops(&mut store);
        // Offline, the host's loop wakes every millisecond for a while: a closed batch is
        // compressed a step per `handle_timeout`.
        for now in t + 2000..t + 2400 {
            logger.handle_timeout(at(now));
            logger.perform_store_ops(&mut store);
        }
        t += 3000;
    }
    let device_drops = logger.stats().dropped.overflow;
    assert!(device_drops > 0, "the queue overflowed");
    let mut last_wire_drops = 0;
    for _ in 0..100 {
        let Some(u) = logger.poll_upload(at(t)) else {
            break;
        };
        let (batch, _) = decode(&u);
        last_wire_drops = batch.counters.map_or(0, |c| c.dropped_overflow);
        logger.handle_upload_result(u.id, ok(), at(t)).unwrap();
        logger.perform_store_ops(&mut store);
    }
    assert_eq!(logger.pending(), 0);
    assert_eq!(
        last_wire_drops, device_drops,
        "the collector must see every drop the device counted"
    );
}

/// Performs every planned store operation on `store`, failing those `fail` picks.
fn perform_failing(
    logger: &mut Logger,
    store: &mut MemoryStore,
    mut fail: impl FnMut(&StoreOp) -> bool,
) {
    while let Some(op) = logger.poll_store_op().cloned() {
        let result = if fail(&op.op) {
            Err(sightline_core::StoreError::Io("injected".into()))
        } else {
            store.apply(&op.op)
        };
        logger.handle_store_result(op.id, result).unwrap();
    }
}

#[test]
fn a_split_batch_whose_removal_failed_is_not_delivered_and_counted_again_after_a_restart() {
    let mut store = MemoryStore::new();
    let mut logger = Logger::start(config(), &mut store, at(0)).unwrap();
    record_n(&mut logger, 4, 0);
    logger.flush(at(2000));
    logger.perform_store_ops(&mut store);
    let original = store.keys("batch/").unwrap();
    assert_eq!(original.len(), 1);
    let u = logger.poll_upload(at(2000)).unwrap();
    logger
        .handle_upload_result(u.id, status(413, None), at(2000))
        .unwrap();
    // Removing the original once its halves are stored fails (an I/O error, once).
    let mut failed = false;
    perform_failing(&mut logger, &mut store, |op| {
        let hit = !failed && matches!(op, StoreOp::Remove { key } if *key == original[0]);
        failed |= hit;
        hit
    });
    assert!(failed);
    let mut t = 2000;
    while let Some(u) = logger.poll_upload(at(t)) {
        logger.handle_upload_result(u.id, ok(), at(t)).unwrap();
        logger.perform_store_ops(&mut store);
        t += 1000;
    }
    assert_eq!(logger.stats().delivered, 4);
    drop(logger);
    let mut logger = Logger::start(config(), &mut store, at(t)).unwrap();
    while let Some(u) = logger.poll_upload(at(t)) {
        logger.handle_upload_result(u.id, ok(), at(t)).unwrap();
        logger.perform_store_ops(&mut store);
    }
    let s = logger.stats();
    assert_eq!(s.delivered, 4, "{s:?}");
    assert!(s.balanced(), "{s:?}");
}

/// Performs store operations and delivers every due upload with 200; the delivered seqs.
fn deliver_everything(logger: &mut Logger, store: &mut MemoryStore, t: u64) -> Vec<u64> {
    let mut seqs = Vec::new();
    logger.perform_store_ops(store);
    while let Some(u) = logger.poll_upload(at(t)) {
        seqs.extend(decode(&u).1.iter().map(|r| r.seq));
        logger.handle_upload_result(u.id, ok(), at(t)).unwrap();
        logger.perform_store_ops(store);
    }
    seqs
}

#[test]
fn seqs_sent_while_the_store_failed_are_never_issued_again_after_a_restart() {
    let mut store = MemoryStore::new();
    let mut logger = Logger::start(config(), &mut store, at(0)).unwrap();
    record_n(&mut logger, 4, 0);
    logger.flush(at(2000));
    // The store is full: every write fails (QuotaExceeded in IndexedDB).
    perform_failing(&mut logger, &mut store, |_| true);
    assert!(
        logger.poll_upload(at(2000)).is_none(),
        "seqs that no write made durable are not sent"
    );
    // The store recovers; the state is written again at the retry deadline.
    let retry = 2000 + 5_000;
    assert!(logger.poll_timeout().is_some_and(|t| t <= retry));
    logger.handle_timeout(at(retry));
    logger.perform_store_ops(&mut store);
    let first = deliver_everything(&mut logger, &mut store, retry);
    assert_eq!(first, [1, 2, 3, 4]);
    let session = logger.session_id().to_string();
    drop(logger);
    let mut logger = Logger::start(config(), &mut store, at(retry + 5000)).unwrap();
    assert_eq!(logger.session_id(), session);
    record_n(&mut logger, 4, retry + 5000);
    logger.flush(at(retry + 7000));
    let again = deliver_everything(&mut logger, &mut store, retry + 7000);
    assert_eq!(
        again.len(),
        4,
        "the new impressions are delivered: {again:?}"
    );
    assert!(
        again.iter().all(|s| !first.contains(s)),
        "first {first:?}, again {again:?}"
    );
}

#[test]
fn a_delivered_batch_is_not_replayed_from_a_journal_kept_after_a_failed_state_write() {
    let mut store = MemoryStore::new();
    let mut logger = Logger::start(config(), &mut store, at(0)).unwrap();
    record_n(&mut logger, 4, 0);
    logger.flush(at(2000));
    // The close's checkpoint cannot write `state` (the second state put: the first reserved seqs).
    let mut states = 0;
    perform_failing(&mut logger, &mut store, |op| {
        let is_state = matches!(op, StoreOp::Put { key, .. } if key == "state");
        states += usize::from(is_state);
        is_state && states == 2
    });
    assert_eq!(logger.stats().store_errors, 1);
    assert_eq!(
        deliver_everything(&mut logger, &mut store, 2000),
        [1, 2, 3, 4]
    );
    assert!(
        store.keys("batch/").unwrap().is_empty(),
        "settled and removed"
    );
    drop(logger);
    let mut logger = Logger::start(config(), &mut store, at(5000)).unwrap();
    let again = deliver_everything(&mut logger, &mut store, 5000);
    let s = logger.stats();
    assert!(again.is_empty(), "resent {again:?}: {s:?}");
    assert_eq!(s.delivered, 4);
    assert!(s.balanced(), "{s:?}");
}

#[test]
fn a_settled_batch_whose_removal_keeps_failing_does_not_keep_the_journal_forever() {
    let mut store = MemoryStore::new();
    let mut logger = Logger::start(config(), &mut store, at(0)).unwrap();
    record_n(&mut logger, 3, 0);
    logger.flush(at(2000));
    logger.perform_store_ops(&mut store);
    let u = logger.poll_upload(at(2000)).unwrap();
    logger.handle_upload_result(u.id, ok(), at(2000)).unwrap();
    // Removing the delivered batch's copy fails every time; the next checkpoint's journal
    // clear needs only its state write.
    let mut cleared = false;
    record_n(&mut logger, 3, 3000);
    logger.flush(at(5000));
    perform_failing(&mut logger, &mut store, |op| {
        cleared |= *op == StoreOp::ClearJournal;
        matches!(op, StoreOp::Remove { .. })
    });
    assert!(
        cleared,
        "the journal was cleared after its state was written"
    );
}

#[test]
fn a_seq_sent_while_the_store_failed_after_a_checkpoint_is_never_issued_again() {
    let mut store = MemoryStore::new();
    let mut logger = Logger::start(config(), &mut store, at(0)).unwrap();
    // Seq 1 reserves 1..=32; the close's checkpoint then stores `reserved_through` 1.
    record_n(&mut logger, 1, 0);
    logger.flush(at(2000));
    let mut sent = deliver_everything(&mut logger, &mut store, 2000);
    assert_eq!(sent, [1]);
    // The store is full from now on: seq 2's reservation, its batch and the checkpoint fail.
    record_n(&mut logger, 1, 3000);
    logger.flush(at(5000));
    perform_failing(&mut logger, &mut store, |_| true);
    while let Some(u) = logger.poll_upload(at(5000)) {
        sent.extend(decode(&u).1.iter().map(|r| r.seq));
        logger.handle_upload_result(u.id, ok(), at(5000)).unwrap();
        perform_failing(&mut logger, &mut store, |_| true);
    }
    drop(logger);
    // The store works again after a restart.
    let mut logger = Logger::start(config(), &mut store, at(10_000)).unwrap();
    record_n(&mut logger, 1, 10_000);
    logger.flush(at(12_000));
    let again = deliver_everything(&mut logger, &mut store, 12_000);
    assert!(!again.is_empty(), "the new impression is delivered");
    assert!(
        again.iter().all(|s| !sent.contains(s)),
        "sent {sent:?} before the restart, {again:?} after"
    );
}

#[test]
fn a_split_batch_keeps_its_stored_copy_until_both_halves_are_stored() {
    let mut store = MemoryStore::new();
    let mut logger = Logger::start(config(), &mut store, at(0)).unwrap();
    record_n(&mut logger, 4, 0);
    logger.flush(at(2000));
    logger.perform_store_ops(&mut store);
    let original = store.keys("batch/").unwrap();
    let u = logger.poll_upload(at(2000)).unwrap();
    logger
        .handle_upload_result(u.id, status(413, None), at(2000))
        .unwrap();
    // Storing the first half fails; everything else (the `acks` naming the original) works.
    let mut failed = false;
    perform_failing(&mut logger, &mut store, |op| {
        let hit = !failed
            && matches!(op, StoreOp::Put { key, .. } if key.starts_with("batch/") && *key != original[0]);
        failed |= hit;
        hit
    });
    assert!(failed);
    // The process dies before the halves are sent.
    drop(logger);
    let mut logger = Logger::start(config(), &mut store, at(5000)).unwrap();
    let delivered = deliver_everything(&mut logger, &mut store, 5000);
    let s = logger.stats();
    assert_eq!(
        (delivered.len(), s.dropped.store_corrupt),
        (4, 0),
        "the original was the only durable copy of a half: {s:?}"
    );
}

/// A batch queued behind an upload backoff whose store write failed: the host is woken (a
/// store retry) and the batch is sent, though no input arrives; an idle host that polled
/// no deadline would leave it queued forever.
#[test]
fn a_batch_whose_store_failed_during_a_backoff_still_has_a_deadline() {
    let mut store = MemoryStore::new();
    let mut logger = Logger::start(config(), &mut store, at(0)).unwrap();
    record_n(&mut logger, 2, 0);
    logger.flush(at(2000));
    logger.perform_store_ops(&mut store);
    let u = logger.poll_upload(at(2000)).unwrap();
    // 503 with Retry-After: the schedule waits 60 s.
    logger
        .handle_upload_result(u.id, status(503, Some("60")), at(2000))
        .unwrap();
    logger.perform_store_ops(&mut store);
    // Opt-out with purge, then back in: the queue is empty, the wait remains.
    logger.set_enabled(false, true, at(3000));
    logger.perform_store_ops(&mut store);
    logger.set_enabled(true, false, at(3000));
    logger.perform_store_ops(&mut store);
    record_n(&mut logger, 2, 3000);
    logger.flush(at(5000));
    // Every write fails (the store is full).
    perform_failing(&mut logger, &mut store, |_| true);
    assert!(
        logger.poll_upload(at(5000)).is_none(),
        "backoff, and not durable"
    );
    // The host now sleeps until poll_timeout; there must be one.
    let mut t = 5000;
    let mut woke = 0;
    while let Some(d) = logger.poll_timeout() {
        if woke > 50 || d > 10 * 60_000 {
            break;
        }
        t = t.max(d);
        logger.handle_timeout(at(t));
        logger.perform_store_ops(&mut store); // the store recovered
        while let Some(u) = logger.poll_upload(at(t)) {
            logger.handle_upload_result(u.id, ok(), at(t)).unwrap();
            logger.perform_store_ops(&mut store);
        }
        woke += 1;
    }
    assert_eq!(
        logger.stats().delivered,
        2,
        "the host was never woken to retry the store and send (woke {woke} times, last deadline {:?})",
        logger.poll_timeout()
    );
}
