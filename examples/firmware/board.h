/* What the firmware example needs from its board (startup.c). */
#ifndef BOARD_H
#define BOARD_H

#include <stddef.h>

#ifndef FIRMWARE_HEAP_BYTES
#error "FIRMWARE_HEAP_BYTES: the heap arena, set by CMakeLists.txt"
#endif

/* Prints a NUL-terminated string on the host's console (semihosting). */
void board_print(const char *text);
/* Ends the emulation; QEMU exits 0 on success, 1 otherwise. */
void board_exit(int success) __attribute__((noreturn));
/* Bytes of the arena malloc has taken so far (it never gives them back). */
size_t board_heap_high_water(void);

#endif
