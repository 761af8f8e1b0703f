//! Proves `sightline-core` builds and links without std, and gives its code size
//! (see size.sh). Runs the whole pipeline once from `_start`, then parks.
#![no_std]
#![no_main]

extern crate alloc;

mod bump;
mod pipeline;

use core::hint::black_box;

/// Every allocation of one run, since nothing is freed: more than the peak of live bytes
/// that size.sh reports (measured by heap/ over this same pipeline). 384 KiB held a whole
/// run with miniz_oxide's 320 KiB compressor; the compact encoder's state is 24 KiB.
const HEAP_BYTES: usize = 384 * 1024;

#[global_allocator]
static HEAP: bump::Bump<HEAP_BYTES> = bump::Bump::new();

#[panic_handler]
fn panic(_: &core::panic::PanicInfo<'_>) -> ! {
    // Ignoring the info lets LTO drop the panic message formatting.
    loop {
        core::hint::spin_loop();
    }
}

#[unsafe(no_mangle)]
pub extern "C" fn _start() -> ! {
    // black_box: keep the result (and so the whole pipeline) observable.
    let ok = black_box(pipeline::run()) == Ok(pipeline::EXPECTED);
    black_box(ok);
    loop {
        core::hint::spin_loop();
    }
}
