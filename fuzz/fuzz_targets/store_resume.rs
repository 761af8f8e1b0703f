//! The logger started from whatever a host read back (`Logger::resume` over arbitrary
//! stored values and journal bytes), then driven as a host drives it: records, page views,
//! flushes, uploads and their outcomes, store failures, restarts from the host's store.
//!
//! Asserts: a valid configuration always starts (stored bytes are never a configuration
//! error), nothing panics, the loss invariant (`Stats::balanced`) holds after the start and
//! after every operation, cumulative counters never go down while a logger runs, every
//! store operation and upload handed out is accepted back, and a restart never issues a
//! seq the collector already acknowledged.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sightline_core::store::{MemoryStore, Store, StoreError};
use sightline_core::wire;
use sightline_core::{Impression, Logger, Now, Stats, UploadOutcome};
use sightline_fuzz::store::{Input, Op};

/// Restarts per input: each one re-reads the whole store.
const MAX_RESTARTS: usize = 4;
/// Store operations one input may plan between two host turns: far above what a turn
/// plans (a checkpoint is a handful), so only a runaway outbox trips it.
const MAX_OPS_PER_TURN: usize = 10_000;

const PAGES: [&str; 4] = ["home", "search", "detail", "not a page"];
const REQUESTS: [Option<&str>; 3] = [None, Some("req-1"), Some("bad id!")];
const ARTWORKS: [Option<&str>; 3] = [None, Some("art:1"), Some("art:2")];

/// The host: its store, the failures it will report, its clock.
struct Host {
    store: MemoryStore,
    fail: u8,
    now: Now,
}

impl Host {
    /// Performs every planned store operation, one at a time, as the run loop does.
    fn drain_store(&mut self, logger: &mut Logger) {
        for _ in 0..MAX_OPS_PER_TURN {
            let Some(req) = logger.poll_store_op() else {
                return;
            };
            let (id, op) = (req.id, req.op.clone());
            let result = if self.fail > 0 {
                self.fail -= 1;
                Err(StoreError::Io("injected".into()))
            } else {
                self.store.apply(&op)
            };
            assert!(
                logger.handle_store_result(id, result).is_ok(),
                "the operation handed out ({id}) is the one awaiting a result"
            );
        }
        panic!("more than {MAX_OPS_PER_TURN} store operations planned in one turn");
    }
}

/// Counters that only grow while one logger runs.
fn assert_grown(before: &Stats, after: &Stats, op: &Op) {
    let pairs = [
        ("recorded", before.recorded, after.recorded),
        ("issued", before.issued, after.issued),
        ("delivered", before.delivered, after.delivered),
        ("dropped", before.dropped.total(), after.dropped.total()),
        ("invalid", before.invalid, after.invalid),
    ];
    for (name, b, a) in pairs {
        assert!(a >= b, "{name} went down from {b} to {a} on {op:?}");
    }
}

fn assert_balanced(stats: &Stats, when: &str) {
    assert!(stats.balanced(), "loss invariant broken {when}: {stats:?}");
}

fuzz_target!(|data: &[u8]| {
    let input = Input::parse(data);
    let config = input.config();
    let mut host = Host {
        store: MemoryStore::new(),
        fail: 0,
        now: Now::new(input.mono_ms, input.wall_ms),
    };
    let stored = input.stored();
    // The host's store holds what it read back, so that later operations apply to it.
    for (key, value) in &stored.values {
        let _ = host.store.put(key, value);
    }
    let _ = host.store.journal_append(&stored.journal);
    let mut logger = match Logger::resume(config.clone(), stored, host.now) {
        Ok(logger) => logger,
        Err(e) => panic!("a valid configuration must start whatever is stored: {e:?}"),
    };
    assert_balanced(logger.stats(), "after resume");
    host.drain_store(&mut logger);
    // Stored batch records may claim any seqs; only a store this run wrote from scratch
    // tells which seqs were really acknowledged.
    let own_batches = !input
        .values
        .iter()
        .any(|(k, _)| k.name().starts_with("batch/"));
    let mut delivered_through = 0;
    let mut page_views: Vec<u64> = Vec::new();
    let mut restarts = 0;
    for op in &input.ops {
        let before = logger.stats().clone();
        let mut restarted = false;
        match *op {
            Op::Advance { ms } => {
                let ms = u64::from(ms);
                host.now = Now::new(
                    host.now.mono_ms.saturating_add(ms),
                    host.now.wall_ms.saturating_add(ms),
                );
                logger.handle_timeout(host.now);
            }
            Op::StartPageView { page, request } => {
                let page = PAGES[usize::from(page) % PAGES.len()];
                let request = REQUESTS[usize::from(request) % REQUESTS.len()];
                if let Ok(pv) = logger.start_page_view(page, request, None, host.now) {
                    page_views.push(pv);
                }
            }
            Op::EndPageView { n } => {
                if let Some(&pv) = page_views.get(usize::from(n) % page_views.len().max(1)) {
                    let _ = logger.end_page_view(pv, host.now);
                }
            }
            Op::Record {
                n,
                item,
                artwork,
                row,
                column,
                visible_ms,
                pct,
                focused_ms,
            } => {
                let pv = page_views
                    .get(usize::from(n) % page_views.len().max(1))
                    .copied()
                    .unwrap_or(u64::from(n));
                let item = format!("title:{item}");
                let visible_ms = u64::from(visible_ms);
                let imp = Impression {
                    item_id: &item,
                    artwork_id: ARTWORKS[usize::from(artwork) % ARTWORKS.len()],
                    row: u32::from(row),
                    column: u32::from(column),
                    first_visible_mono_ms: host.now.mono_ms.saturating_sub(visible_ms),
                    visible_ms,
                    max_visible_fraction: f32::from(pct) / 200.0,
                    focused_ms: u64::from(focused_ms),
                };
                let _ = logger.record_impression(pv, &imp, host.now);
            }
            Op::Flush => logger.flush(host.now),
            Op::AppHidden => logger.handle_app_hidden(host.now),
            Op::AppVisible => logger.handle_app_visible(host.now),
            Op::Upload {
                status,
                retry_after,
            } => {
                if let Some(upload) = logger.poll_upload(host.now) {
                    let outcome = match status {
                        0 => UploadOutcome::NetworkError,
                        code => UploadOutcome::Status {
                            code,
                            retry_after: (retry_after > 0).then(|| retry_after.to_string()),
                        },
                    };
                    if (200..300).contains(&status)
                        && let Ok(batch) = wire::decode_gzip_batch(&upload.body)
                        && let Ok(rows) = wire::impressions(&batch)
                    {
                        let last = rows.iter().map(|r| r.seq).max().unwrap_or(0);
                        delivered_through = delivered_through.max(last);
                    }
                    assert!(
                        logger
                            .handle_upload_result(upload.id, outcome, host.now)
                            .is_ok(),
                        "the upload handed out ({}) is in flight",
                        upload.id
                    );
                }
            }
            Op::SetEnabled { enabled, purge } => logger.set_enabled(enabled, purge, host.now),
            Op::FailStore { n } => host.fail = n % 8,
            Op::Restart if restarts < MAX_RESTARTS => {
                restarts += 1;
                restarted = true;
                let stored = match host.store.load() {
                    Ok(stored) => stored,
                    Err(e) => panic!("a memory store always loads: {e}"),
                };
                logger = match Logger::resume(config.clone(), stored, host.now) {
                    Ok(logger) => logger,
                    Err(e) => panic!("a valid configuration must restart: {e:?}"),
                };
                page_views.clear();
                if own_batches {
                    let issued = logger.stats().issued;
                    assert!(
                        issued >= delivered_through,
                        "a restart may issue seq {} again: seq {delivered_through} was delivered",
                        issued + 1
                    );
                }
            }
            Op::Restart => {}
        }
        host.drain_store(&mut logger);
        if !restarted {
            assert_grown(&before, logger.stats(), op);
        }
        assert_balanced(logger.stats(), &format!("after {op:?}"));
    }
});
