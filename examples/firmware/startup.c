/*
 * Boot and board support for the firmware example on QEMU's mps2-an386 (Cortex-M4F):
 * the vector table, the reset handler (FPU on, .data copied, .bss zeroed), semihosting
 * output and exit (the host reads what the firmware prints), and _sbrk over a static
 * arena for newlib's malloc. Nothing here is Sightline's: a real board has its own.
 */
#include <errno.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "board.h"

extern uint32_t _data_start, _data_end, _data_load, _bss_start, _bss_end, _stack_top;
int main(void);

/* ARM semihosting calls, trapped by QEMU (-semihosting). */
#define SYS_WRITE0 0x04
#define SYS_EXIT 0x18
#define ADP_STOPPED_APPLICATION_EXIT 0x20026
#define ADP_STOPPED_RUNTIME_ERROR 0x20023

static int semihost(int op, const void *arg) {
    register int r0 __asm__("r0") = op;
    register const void *r1 __asm__("r1") = arg;
    __asm__ volatile("bkpt 0xab" : "+r"(r0) : "r"(r1) : "memory");
    return r0;
}

void board_print(const char *text) { semihost(SYS_WRITE0, text); }

void board_exit(int success) {
    semihost(SYS_EXIT, (const void *)(uintptr_t)(success ? ADP_STOPPED_APPLICATION_EXIT
                                                          : ADP_STOPPED_RUNTIME_ERROR));
    for (;;) {
    }
}

/* The heap newlib's malloc grows into. */
static uint8_t arena[FIRMWARE_HEAP_BYTES] __attribute__((aligned(8)));
static size_t arena_used;

void *_sbrk(ptrdiff_t increment) {
    if (increment < 0 || (size_t)increment > sizeof arena - arena_used) {
        errno = ENOMEM;
        return (void *)-1;
    }
    void *start = arena + arena_used;
    arena_used += (size_t)increment;
    return start;
}

size_t board_heap_high_water(void) { return arena_used; }

void reset_handler(void) {
    /* The Rust code is built for the hard-float ABI: enable CP10/CP11 before any FP use. */
    volatile uint32_t *cpacr = (volatile uint32_t *)0xE000ED88u;
    *cpacr |= 0xFu << 20;
    __asm__ volatile("dsb\n isb" ::: "memory");
    memcpy(&_data_start, &_data_load, (size_t)((char *)&_data_end - (char *)&_data_start));
    memset(&_bss_start, 0, (size_t)((char *)&_bss_end - (char *)&_bss_start));
    board_exit(main() == 0);
}

static void fault_handler(void) {
    board_print("FAULT\n");
    board_exit(0);
}

/* Initial stack, reset, then NMI, HardFault, MemManage, BusFault, UsageFault. */
__attribute__((section(".vectors"), used)) static const void *const vectors[] = {
    &_stack_top, reset_handler, fault_handler, fault_handler,
    fault_handler, fault_handler, fault_handler,
};
