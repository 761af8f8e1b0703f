//! Bare metal (feature `firmware`): the allocator and the panic hook come from the
//! firmware, so the integrator chooses malloc/free, a static arena or a pool.

use core::alloc::{GlobalAlloc, Layout};
use core::ffi::c_void;

unsafe extern "C" {
    /// Returns `size` bytes aligned to `align` (a power of two), or NULL when out of memory.
    fn sightline_platform_alloc(size: usize, align: usize) -> *mut c_void;
    /// Frees what `sightline_platform_alloc` returned for the same size and alignment.
    fn sightline_platform_free(ptr: *mut c_void, size: usize, align: usize);
    /// A bug in Sightline or an allocation failure: must not return; reset or halt. (The
    /// library's lock stays held: no call into Sightline can succeed afterwards.)
    fn sightline_platform_panic() -> !;
}

struct Platform;

// SAFETY: forwards to the firmware's allocator, whose contract (above, and in the header)
// is GlobalAlloc's.
unsafe impl GlobalAlloc for Platform {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: the firmware's contract.
        unsafe { sightline_platform_alloc(layout.size(), layout.align()) }.cast()
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: `ptr` came from `alloc` with this layout.
        unsafe { sightline_platform_free(ptr.cast(), layout.size(), layout.align()) }
    }
}

#[global_allocator]
static ALLOCATOR: Platform = Platform;

#[panic_handler]
fn panic(_: &core::panic::PanicInfo<'_>) -> ! {
    // The info is ignored so that LTO drops the formatting of panic messages (flash).
    // SAFETY: the firmware's hook never returns.
    unsafe { sightline_platform_panic() }
}
