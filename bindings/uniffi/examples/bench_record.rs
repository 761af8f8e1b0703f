//! The cost of one recorded impression in native Rust, the baseline of the Python and Kotlin
//! benches (`bindings/python/bench.py`, the Kotlin bench): the same workload, timed the same
//! way. Prints ns per impression for the core's borrowed call, the binding's object called
//! from Rust (owned records, the mutex, no foreign boundary) one by one and 100 per call,
//! and the heap allocations per impression on the Rust side. Figures, never asserted.
//!
//! `cargo run --release -p sightline-uniffi --example bench_record`

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use sightline_core as core;
use sightline_uniffi::{Config, Item, Logger, Now, Platform, QualifiedImpression, Stored};

/// Page views measured, after as many for warm-up; 100 impressions each.
const PAGE_VIEWS: u64 = 2_000;
const PER_PAGE_VIEW: u64 = 100;

struct Counting;

static ALLOCATIONS: AtomicU64 = AtomicU64::new(0);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

fn config() -> Config {
    Config {
        app_id: "com.example.bench".into(),
        app_version: "1.0.0".into(),
        platform: Platform::Android,
        app_key: "key-1".into(),
        device: String::new(),
        install_id: String::new(),
        seed: Some(7),
        sample_rate_ppm: None,
        sample_key: None,
        contract: None,
        max_batch_impressions: None,
        max_batch_age_ms: None,
        max_queue_bytes: None,
        retry_base_ms: None,
        retry_max_ms: None,
        max_attempts: None,
    }
}

fn at(mono_ms: u64) -> Now {
    Now {
        mono_ms,
        wall_ms: 1_700_000_000_000 + mono_ms,
    }
}

/// The impressions of page view `pv`: distinct ids, so none is deduped.
fn impressions(pv: u64) -> Vec<QualifiedImpression> {
    (0..PER_PAGE_VIEW)
        .map(|i| QualifiedImpression {
            item: Item {
                item_id: format!("title:{pv}-{i}"),
                row: (i / 10) as u32,
                column: (i % 10) as u32,
                artwork_id: None,
            },
            first_visible_mono_ms: pv * 10_000,
            visible_ms: 1_500,
            max_visible_fraction: 1.0,
            focused_ms: 0,
        })
        .collect()
}

/// Acknowledges every store operation and upload: the host's part, outside the timing.
fn drain(log: &Logger, t: u64) {
    loop {
        while let Some(op) = log.poll_store_op().expect("lock") {
            log.handle_store_result(op.id, None).expect("in flight");
        }
        let Some(upload) = log.poll_upload(at(t)).expect("lock") else {
            return;
        };
        let ok = sightline_uniffi::UploadOutcome::Status {
            code: 200,
            retry_after: None,
        };
        log.handle_upload_result(upload.id, ok, at(t))
            .expect("in flight");
    }
}

/// Nanoseconds and allocations per impression over the measured page views.
fn run(record: impl Fn(&Logger, u64, Vec<QualifiedImpression>, Now)) -> (f64, f64) {
    let log = Logger::resume(config(), Stored::default(), at(0)).expect("config");
    let (mut nanos, mut allocs, mut n) = (0u128, 0u64, 0u64);
    for pv_no in 0..2 * PAGE_VIEWS {
        let t = pv_no * 10_000;
        let pv = log
            .start_page_view(format!("page{}", pv_no % 8), None, None, at(t))
            .expect("page view");
        let batch = impressions(pv_no);
        let before = ALLOCATIONS.load(Ordering::Relaxed);
        let started = Instant::now();
        record(&log, pv, batch, at(t + 2_000));
        let elapsed = started.elapsed().as_nanos();
        let allocated = ALLOCATIONS.load(Ordering::Relaxed) - before;
        if pv_no >= PAGE_VIEWS {
            (nanos, allocs, n) = (nanos + elapsed, allocs + allocated, n + PER_PAGE_VIEW);
        }
        log.end_page_view(pv, at(t + 2_000)).expect("open");
        log.flush(at(t + 2_000)).expect("lock");
        drain(&log, t + 2_000);
    }
    (nanos as f64 / n as f64, allocs as f64 / n as f64)
}

fn core_borrowed() -> (f64, f64) {
    let mut log =
        core::Logger::resume(config_core(), core::Stored::default(), at(0).into()).expect("config");
    let (mut nanos, mut allocs, mut n) = (0u128, 0u64, 0u64);
    let mut store = core::MemoryStore::new();
    for pv_no in 0..2 * PAGE_VIEWS {
        let t = pv_no * 10_000;
        let now = core::Now::new(t, 1_700_000_000_000 + t);
        let page = format!("page{}", pv_no % 8);
        let pv = log
            .start_page_view(&page, None, None, now)
            .expect("page view");
        let batch = impressions(pv_no);
        let later = core::Now::new(t + 2_000, 1_700_000_000_000 + t + 2_000);
        let before = ALLOCATIONS.load(Ordering::Relaxed);
        let started = Instant::now();
        for q in &batch {
            let imp = core::Impression {
                item_id: &q.item.item_id,
                artwork_id: None,
                row: q.item.row,
                column: q.item.column,
                first_visible_mono_ms: q.first_visible_mono_ms,
                visible_ms: q.visible_ms,
                max_visible_fraction: q.max_visible_fraction,
                focused_ms: 0,
            };
            let _ = log.record_impression(pv, &imp, later);
        }
        let elapsed = started.elapsed().as_nanos();
        let allocated = ALLOCATIONS.load(Ordering::Relaxed) - before;
        if pv_no >= PAGE_VIEWS {
            (nanos, allocs, n) = (nanos + elapsed, allocs + allocated, n + PER_PAGE_VIEW);
        }
        let _ = log.end_page_view(pv, later);
        log.flush(later);
        loop {
            log.perform_store_ops(&mut store);
            let Some(upload) = log.poll_upload(later) else {
                break;
            };
            let _ = log.handle_upload_result(upload.id, core::UploadOutcome::status(200), later);
        }
    }
    (nanos as f64 / n as f64, allocs as f64 / n as f64)
}

fn config_core() -> core::Config {
    core::Config {
        app_id: "com.example.bench".into(),
        app_version: "1.0.0".into(),
        platform: core::Platform::Android,
        app_key: "key-1".into(),
        seed: 7,
        ..core::Config::default()
    }
}

fn main() {
    let (core_ns, core_allocs) = core_borrowed();
    let (one_ns, one_allocs) = run(|log, pv, batch, now| {
        for imp in batch {
            let _ = log.record_impression(pv, imp, now);
        }
    });
    let (many_ns, many_allocs) = run(|log, pv, batch, now| {
        let _ = log.record_many(pv, batch, now);
    });
    println!(
        "Sightline record_impression from Rust ({PAGE_VIEWS} page views x {PER_PAGE_VIEW}, after warm-up)"
    );
    println!("   {:<44} {:>10} {:>14}", "path", "ns/imp", "allocs/imp");
    for (name, ns, allocs) in [
        (
            "core Logger::record_impression (borrowed)",
            core_ns,
            core_allocs,
        ),
        (
            "binding Logger.record_impression, from Rust",
            one_ns,
            one_allocs,
        ),
        (
            "binding Logger.record_many(100), from Rust",
            many_ns,
            many_allocs,
        ),
    ] {
        println!("   {name:<44} {ns:>10.0} {allocs:>14.2}");
    }
    // One line for the foreign benches to compare against (same run of the test command).
    println!("BASELINE rust_binding_ns={one_ns:.1} rust_core_ns={core_ns:.1}");
}
