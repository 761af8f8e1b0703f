//! Review: liveness of `poll_timeout` after the "no send deadline for a front batch held
//! for durability" fix.

mod common;

use common::*;
use sightline_core::{Logger, MemoryStore, StoreOp};

fn perform_failing(
    logger: &mut Logger,
    store: &mut MemoryStore,
    mut fail: impl FnMut(&StoreOp) -> bool,
) {
    while let Some(op) = logger.poll_store_op().cloned() {
        let result = if fail(&op.op) {
            Err(sightline_core::StoreError::Io("injected".into()))
        } else {
            sightline_core::Store::apply(store, &op.op)
        };
        logger.handle_store_result(op.id, result).unwrap();
    }
}

/// A batch queued behind an upload backoff whose store write failed: the host must be
/// woken at some point (the end of the backoff, or a store retry) or the batch sits
/// forever while the host is idle. Before the fix the (future) send deadline woke it up;
/// after it, `poll_upload` returns before it schedules the store retry (the schedule is
/// not due) and `poll_timeout` offers nothing.
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
    assert!(logger.poll_upload(at(5000)).is_none(), "backoff, and not durable");
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
