//! Peak heap of the bare-metal probe's run: the same `pipeline.rs`, on the host, under a
//! global allocator that counts live bytes and keeps their high-water mark. Prints the
//! peak in bytes. Pointers and `usize` are 8 bytes here and 4 on the Cortex-M4F, so the
//! firmware's peak is at most this (the probe itself has no way to report one: it only
//! links, it never runs).

extern crate alloc;

#[path = "../../src/pipeline.rs"]
mod pipeline;

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};

/// The system allocator, counting.
struct Counting {
    live: AtomicUsize,
    peak: AtomicUsize,
}

// SAFETY: every call is passed on to `System` unchanged; only counters are added.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: the caller's contract is System's.
        let p = unsafe { System.alloc(layout) };
        if !p.is_null() {
            let live = self.live.fetch_add(layout.size(), Relaxed) + layout.size();
            self.peak.fetch_max(live, Relaxed);
        }
        p
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        self.live.fetch_sub(layout.size(), Relaxed);
        // SAFETY: as above.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static HEAP: Counting = Counting {
    live: AtomicUsize::new(0),
    peak: AtomicUsize::new(0),
};

fn main() {
    let before = HEAP.live.load(Relaxed);
    HEAP.peak.store(before, Relaxed);
    assert_eq!(
        pipeline::run(),
        Ok(pipeline::EXPECTED),
        "the probe's run failed"
    );
    println!("{}", HEAP.peak.load(Relaxed) - before);
}
