//! What std would give on wasm32, without its panic and formatting machinery: the
//! allocator and the panic handler.

/// dlmalloc, as std uses on wasm32; memory grows through `memory.grow`.
#[global_allocator]
static ALLOCATOR: dlmalloc::GlobalDlmalloc = dlmalloc::GlobalDlmalloc;

/// A bug traps; the runtime catches the `RuntimeError`, stops using the module and counts it.
#[panic_handler]
fn panic(_: &core::panic::PanicInfo<'_>) -> ! {
    core::arch::wasm32::unreachable()
}
