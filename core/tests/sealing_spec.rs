//! Specs of sealing: a closed batch too big for one step is compressed a step per
//! `handle_timeout`, and nothing it holds or that is logged meanwhile is lost or counted
//! twice, whatever happens before it is queued. Under `compact` a batch seals in the call
//! that closes it, which the other specs cover.
#![cfg(not(feature = "compact"))]

mod common;

use std::cell::RefCell;
use std::rc::Rc;

use common::faulty::Faulty;
use common::*;
use sightline_core::gzip::BLOCK_BYTES;
use sightline_core::logger::sealing::{SEAL_IN_CALL_BYTES, SEAL_STEP_BYTES, SEAL_STEP_MS};
use sightline_core::{Logger, MemoryStore, Recorded, Store, Upload, proto};

/// Batch size of these specs: a full batch of UUID-shaped ids encodes to many steps.
const BATCH: u32 = 400;
/// When the first page view starts; its batch fills 3 s later.
const T: u64 = 10_000;
/// When the first batch closes.
const CLOSED: u64 = T + 3000;

fn cfg() -> sightline_core::Config {
    sightline_core::Config {
        max_batch_impressions: BATCH,
        ..config()
    }
}

/// A UUID-shaped id: random-looking hex does not compress, so the batch is many steps.
fn uuid(i: u32) -> String {
    let h = u64::from(i).wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ 0x5EED;
    format!(
        "{:08x}-{:04x}-4{:03x}-a{:03x}-{:012x}",
        h >> 32,
        (h >> 16) & 0xffff,
        h & 0xfff,
        (h >> 20) & 0xfff,
        h.rotate_left(17) & 0xffff_ffff_ffff
    )
}

/// Records ids `from..to` on a page view started at `start`, at `start` + 3 s; their seqs.
fn record(logger: &mut Logger, from: u32, to: u32, start: u64) -> Vec<u64> {
    let pv = logger
        .start_page_view("home", None, None, at(start))
        .unwrap();
    let mut seqs = Vec::new();
    for i in from..to {
        let id = uuid(i);
        let imp = impression(&id, i / 20, i % 20, start + 1000);
        match logger.record_impression(pv, &imp, at(start + 3000)) {
            Ok(Recorded::Logged { seq }) => seqs.push(seq),
            other => panic!("unexpected {other:?}"),
        }
    }
    logger.end_page_view(pv, at(start + 3000)).unwrap();
    seqs
}

/// Records a full batch, which closes, then five impressions while it is compressed; the
/// seqs of all.
fn a_full_batch_then_five_while_it_seals(logger: &mut Logger) -> Vec<u64> {
    let mut seqs = record(logger, 0, BATCH, T);
    seqs.extend(record(logger, BATCH, BATCH + 5, CLOSED));
    seqs
}

/// Handles each deadline as it comes, from `now`, until an upload is due: the steps it
/// took and the upload.
fn step_until_upload<S: Store>(logger: &mut Dev<S>, mut now: u64) -> (usize, Upload) {
    let mut steps = 0;
    loop {
        if let Some(upload) = logger.poll_upload(at(now)) {
            return (steps, upload);
        }
        let deadline = logger
            .poll_timeout()
            .expect("a sealing batch asks to be called back");
        // A step is due a millisecond after the last one (or at once, if that has passed).
        assert!(deadline <= now + SEAL_STEP_MS, "{deadline} after {now}");
        steps += 1;
        now = now.max(deadline);
        logger.handle_timeout(at(now));
    }
}

#[test]
fn a_batch_bigger_than_a_step_is_sent_only_after_a_step_per_handle_timeout() {
    let store = Rc::new(RefCell::new(MemoryStore::new()));
    let mut logger = logger_on(&store, cfg(), 0);
    record(&mut logger, 0, BATCH, T);
    assert!(
        logger.poll_upload(at(CLOSED)).is_none(),
        "closed, not yet compressed"
    );
    let (steps, stepped) = step_until_upload(&mut logger, CLOSED);

    // The twin flushes right after the close: the same batch, compressed in that call.
    let twin_store = Rc::new(RefCell::new(MemoryStore::new()));
    let mut twin = logger_on(&twin_store, cfg(), 0);
    record(&mut twin, 0, BATCH, T);
    twin.flush(at(CLOSED));
    let flushed = twin
        .poll_upload(at(CLOSED))
        .expect("a flushed batch is ready at once");
    let (batch, rows) = decode(&flushed);
    assert_eq!(rows.len(), BATCH as usize);
    // The close compresses nothing. Steps of their own: readying the compressor, each
    // chunk, each block boundary, the end of the stream and queueing the batch.
    // As encoded at the close: the send time rides in a member of its own.
    let encoded = prost::Message::encoded_len(&proto::Batch {
        send: None,
        ..batch.clone()
    });
    assert_eq!(
        steps,
        1 + encoded.div_ceil(SEAL_STEP_BYTES) + (encoded - 1) / BLOCK_BYTES + 2,
        "{encoded} encoded bytes"
    );
    assert!(steps >= 5, "a batch of UUID-shaped ids is many steps");
    let (sealed, sealed_rows) = decode(&stepped);
    assert_eq!(sealed_rows, rows, "the same impressions either way");
    assert_eq!(
        proto::Batch {
            send: None,
            ..sealed.clone()
        },
        proto::Batch {
            send: None,
            ..batch
        },
        "the same batch either way, but for when it was sent"
    );
    assert_eq!(
        sealed.clock.map(|c| c.closed_at_mono_ms),
        Some(CLOSED),
        "closed when it filled"
    );
}

#[test]
fn a_batch_of_at_most_seal_in_call_bytes_is_ready_once_the_closing_call_returns() {
    for (impressions, at_once) in [(2, true), (20, false)] {
        let store = Rc::new(RefCell::new(MemoryStore::new()));
        let mut logger = logger_on(&store, cfg(), 0);
        record(&mut logger, 0, impressions, T);
        logger.handle_app_hidden(at(CLOSED));
        let upload = logger.poll_upload(at(CLOSED));
        assert_eq!(upload.is_some(), at_once, "{impressions} impressions");
        let upload = upload.unwrap_or_else(|| step_until_upload(&mut logger, CLOSED).1);
        let (batch, _) = decode(&upload);
        let encoded = prost::Message::encoded_len(&proto::Batch {
            send: None,
            ..batch
        });
        assert_eq!(
            encoded <= SEAL_IN_CALL_BYTES,
            at_once,
            "{encoded} encoded bytes"
        );
    }
}

#[test]
fn a_host_whose_timer_never_runs_has_the_closed_batch_sealed_by_the_impressions_after_half_a_batch()
{
    let store = Rc::new(RefCell::new(MemoryStore::new()));
    let mut logger = logger_on(&store, cfg(), 0);
    let first = record(&mut logger, 0, BATCH, T);
    // No handle_timeout at all: the closed batch waits while the open one is under half.
    record(&mut logger, BATCH, BATCH + BATCH / 2 - 1, T + 4000);
    assert!(
        logger.poll_upload(at(T + 7000)).is_none(),
        "nothing steps yet"
    );
    // Past half, each impression pays a step; a batch of UUID-shaped ids needs about 90.
    record(
        &mut logger,
        BATCH + BATCH / 2 - 1,
        BATCH + BATCH / 2 + 120,
        T + 8000,
    );
    let upload = logger
        .poll_upload(at(T + 11_000))
        .expect("sealed before the open batch filled");
    let (_, rows) = decode(&upload);
    assert_eq!(rows.iter().map(|r| r.seq).collect::<Vec<_>>(), first);
    assert_eq!(
        logger.open_batch_len(),
        (BATCH / 2 + 120) as usize,
        "still open"
    );
}

#[test]
fn a_crash_while_a_batch_seals_loses_nothing_its_journal_holds_it() {
    let store = Rc::new(RefCell::new(MemoryStore::new()));
    let mut logger = logger_on(&store, cfg(), 0);
    let seqs = record(&mut logger, 0, BATCH, T);
    logger.sync();
    drop(logger);
    let mut restarted = logger_on(&store, cfg(), CLOSED + 5000);
    let delivered = deliver_all(&mut restarted, CLOSED + 5000);
    assert_eq!(delivered, seqs);
    let stats = restarted.stats();
    assert_eq!(stats.delivered, u64::from(BATCH));
    // Only the seqs reserved and never used are counted lost, as after any unclean stop.
    assert_eq!(stats.dropped.total(), stats.dropped.journal_lost);
    assert_eq!(
        stats.recorded,
        u64::from(BATCH) + stats.dropped.journal_lost
    );
    assert_eq!(restarted.pending(), 0);
}

#[test]
fn impressions_logged_while_a_batch_seals_wait_in_the_journal_and_count_once_after_a_crash() {
    let store = Rc::new(RefCell::new(MemoryStore::new()));
    let mut logger = logger_on(&store, cfg(), 0);
    // The five are logged on a page view that then ends.
    let seqs = a_full_batch_then_five_while_it_seals(&mut logger);
    let (_, upload) = step_until_upload(&mut logger, CLOSED + 3000);
    assert_eq!(decode(&upload).1.len(), BATCH as usize);
    logger.sync();
    drop(logger);

    let mut restarted = logger_on(&store, cfg(), CLOSED + 9000);
    restarted.flush(at(CLOSED + 9000));
    let mut delivered = deliver_all(&mut restarted, CLOSED + 9000);
    delivered.sort_unstable();
    assert_eq!(
        delivered, seqs,
        "the unacknowledged batch again, then the five"
    );
    let stats = restarted.stats();
    assert_eq!(stats.delivered, u64::from(BATCH + 5));
    assert_eq!(stats.dropped.total(), stats.dropped.journal_lost);
    assert_eq!(
        stats.recorded,
        u64::from(BATCH + 5) + stats.dropped.journal_lost,
        "counted once"
    );
    assert_eq!(restarted.pending(), 0);
}

#[test]
fn a_purge_while_a_batch_seals_counts_it_purged_and_sends_nothing() {
    let store = Rc::new(RefCell::new(MemoryStore::new()));
    let mut logger = logger_on(&store, cfg(), 0);
    record(&mut logger, 0, BATCH, T);
    logger.set_enabled(false, true, at(CLOSED));
    for ms in 1..100 {
        logger.handle_timeout(at(CLOSED + ms));
    }
    assert!(logger.poll_upload(at(CLOSED + 100)).is_none());
    assert_eq!(logger.stats().dropped.purged, u64::from(BATCH));
    assert_eq!(logger.pending(), 0);
}

#[test]
fn going_to_the_background_returns_after_a_step_and_both_batches_follow_a_step_per_call() {
    let store = Rc::new(RefCell::new(MemoryStore::new()));
    let mut logger = logger_on(&store, cfg(), 0);
    let mut seqs = record(&mut logger, 0, BATCH, T);
    // Logged while the full batch seals.
    seqs.extend(record(&mut logger, BATCH, BATCH + 3, CLOSED));
    let hidden = CLOSED + 3000;
    logger.handle_app_hidden(at(hidden));
    assert!(
        logger.poll_upload(at(hidden)).is_none(),
        "hiding returns after a step, the full batch still sealing"
    );
    let (steps, first) = step_until_upload(&mut logger, hidden);
    assert!(
        steps >= 5,
        "a full batch of UUID-shaped ids is many calls, not one"
    );
    logger
        .handle_upload_result(first.id, ok(), at(hidden + 1000))
        .unwrap();
    let mut delivered: Vec<u64> = decode(&first).1.iter().map(|r| r.seq).collect();
    // The three closed into a batch of their own as the first was queued.
    delivered.extend(deliver_all(&mut logger, hidden + 1000));
    assert_eq!(delivered, seqs);
}

#[test]
fn a_journal_past_its_bound_while_batches_seal_back_to_back_is_checkpointed_all_the_same() {
    let store = Rc::new(RefCell::new(MemoryStore::new()));
    let mut logger = logger_on(&store, cfg(), 0);
    let (mut t, mut seqs, mut delivered) = (T, Vec::new(), Vec::new());
    // Every batch seals with impressions logged meanwhile, so no close finds the open batch
    // empty; unbounded, the journal would grow by a full batch a round.
    for round in 0..30 {
        let from = round * (BATCH + 3);
        seqs.extend(record(&mut logger, from, from + BATCH, t));
        seqs.extend(record(
            &mut logger,
            from + BATCH,
            from + BATCH + 3,
            t + 3000,
        ));
        let (_, upload) = step_until_upload(&mut logger, t + 6000);
        delivered.extend(decode(&upload).1.iter().map(|r| r.seq));
        logger
            .handle_upload_result(upload.id, ok(), at(t + 7000))
            .unwrap();
        delivered.extend(deliver_all(&mut logger, t + 7000));
        t += 10_000;
    }
    logger.sync();
    let journal = store.borrow_mut().journal_read().unwrap().len();
    assert!(
        journal < 512 * 1024,
        "the journal holds {journal} bytes after 30 rounds"
    );
    logger.flush(at(t));
    delivered.extend(deliver_all(&mut logger, t));
    assert_eq!(delivered, seqs, "each seq once, in order");
}

#[test]
fn a_kill_right_after_the_journal_is_cleared_loses_nothing_logged_while_the_batch_sealed() {
    let store = Rc::new(RefCell::new(Faulty::default()));
    let mut logger = logger_on(&store, cfg(), 0);
    // The five are journaled: the host was told.
    let seqs = a_full_batch_then_five_while_it_seals(&mut logger);
    logger.sync();
    store.borrow_mut().die_after_journal_clear = true;
    // Sealing ends, then the next close's checkpoint clears the journal, and the process
    // dies right there.
    let mut now = CLOSED + 3000;
    while !store.borrow().dead() && logger.queued_bytes() == 0 {
        assert!(now < CLOSED + 10_000, "the batch seals");
        logger.handle_timeout(at(now));
        logger.sync();
        now += 1;
    }
    if !store.borrow().dead() {
        logger.flush(at(now));
        logger.sync();
    }
    assert!(store.borrow().dead(), "a checkpoint cleared the journal");
    drop(logger);
    let mut store_after = store.borrow_mut();
    (store_after.die_after_journal_clear, store_after.budget) = (false, None);
    drop(store_after);

    let mut restarted = logger_on(&store, cfg(), now + 5000);
    let mut delivered = deliver_all(&mut restarted, now + 5000);
    delivered.sort_unstable();
    assert_eq!(delivered, seqs, "each journaled impression once");
    let stats = restarted.stats();
    assert_eq!(
        stats.dropped.total(),
        stats.dropped.journal_lost,
        "{stats:?}"
    );
    assert_eq!(restarted.pending(), 0);
}

#[test]
fn impressions_logged_while_a_batch_seals_are_counted_once_when_the_checkpoint_state_write_fails() {
    let store = Rc::new(RefCell::new(Faulty::default()));
    let mut logger = logger_on(&store, cfg(), 0);
    // The five are open, so in the journal only.
    let seqs = a_full_batch_then_five_while_it_seals(&mut logger);
    logger.sync();
    // Every state write fails from here: the journal is the only record of what follows.
    store.borrow_mut().fail_put = Some("state");
    let (_, upload) = step_until_upload(&mut logger, CLOSED + 3000);
    assert_eq!(decode(&upload).1.len(), BATCH as usize);
    // The five close: the checkpoint after them fails its state write, so the journal
    // stays, holding every impression that the two stored batches hold too.
    logger.flush(at(CLOSED + 4000));
    logger.sync();
    store.borrow_mut().fail_put = None;
    drop(logger); // crash before any later state write

    let mut restarted = logger_on(&store, cfg(), CLOSED + 9000);
    restarted.flush(at(CLOSED + 9000));
    // The upload in flight at the crash counts as an attempt: the retry waits its backoff.
    let retry = restarted
        .poll_timeout()
        .expect("a retry is due")
        .max(CLOSED + 9000);
    let mut delivered = deliver_all(&mut restarted, retry);
    delivered.sort_unstable();
    assert_eq!(delivered, seqs, "each seq once");
    let stats = restarted.stats().clone();
    assert_eq!(stats.delivered, u64::from(BATCH + 5), "{stats:?}");
    assert_eq!(
        stats.dropped.total(),
        stats.dropped.journal_lost,
        "{stats:?}"
    );
    assert_eq!(
        stats.recorded,
        u64::from(BATCH + 5) + stats.dropped.journal_lost,
        "counted once: {stats:?}"
    );
    assert_eq!(restarted.pending(), 0);
}
