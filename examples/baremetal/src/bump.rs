//! A bump allocator over a static array: the smallest allocator that lets `alloc` work.
//! It never frees, so the array must hold every byte the run ever allocates.

use core::alloc::{GlobalAlloc, Layout};
use core::cell::UnsafeCell;
use core::ptr;
use core::sync::atomic::{AtomicUsize, Ordering::Relaxed};

#[repr(C, align(8))]
pub struct Bump<const N: usize> {
    heap: UnsafeCell<[u8; N]>,
    /// Offset of the first free byte.
    next: AtomicUsize,
}

// SAFETY: the cursor is advanced with compare-exchange, so concurrent callers (interrupt
// handlers) get disjoint ranges of `heap`.
unsafe impl<const N: usize> Sync for Bump<N> {}

impl<const N: usize> Bump<N> {
    pub const fn new() -> Self {
        Bump {
            heap: UnsafeCell::new([0; N]),
            next: AtomicUsize::new(0),
        }
    }

    /// Bytes handed out so far (the high-water mark, since nothing is freed).
    #[allow(dead_code)] // Read by the host-side check, not by the firmware.
    pub fn used(&self) -> usize {
        self.next.load(Relaxed)
    }
}

// SAFETY: every returned range lies inside `heap`, is aligned as asked and is never
// handed out twice.
unsafe impl<const N: usize> GlobalAlloc for Bump<N> {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let base = self.heap.get().cast::<u8>();
        let mut next = self.next.load(Relaxed);
        loop {
            // Align the address, not the offset: requests may ask for more than 8.
            let start = (base as usize + next).next_multiple_of(layout.align()) - base as usize;
            let Some(end) = start.checked_add(layout.size()).filter(|&end| end <= N) else {
                return ptr::null_mut(); // Out of memory: alloc_error -> panic -> halt.
            };
            match self.next.compare_exchange_weak(next, end, Relaxed, Relaxed) {
                // SAFETY: start + size <= N, so the pointer stays inside `heap`.
                Ok(_) => return unsafe { base.add(start) },
                Err(seen) => next = seen,
            }
        }
    }

    unsafe fn dealloc(&self, _ptr: *mut u8, _layout: Layout) {}
}
