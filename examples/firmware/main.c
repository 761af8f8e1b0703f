/*
 * A set-top box's firmware logging a scripted TV session with Sightline, bare metal:
 * no OS, no threads, no filesystem, no network stack. The C ABI's sans-IO logger is
 * driven by this single loop; its store is a RAM table (a real box writes a flash region)
 * and its uploads are printed through semihosting as hex, with the answer a scripted
 * collector gives. The session: the home screen (focus walks a row, another row peeks
 * in), a details page (a glimpse and a malformed id), standby (the first upload gets 503
 * with Retry-After, the retry 200); then the box wakes with its network down and the user
 * zaps through SURF_SCREENS grids while batches queue up and every upload fails, until
 * the network returns and the queue drains. The host test
 * (examples/src/bin/firmware_check.rs) decodes every body the collector accepted with the
 * core and checks each impression and the accounting; the heap peak is measured over the
 * whole session, queue under pressure included.
 *
 * Output, one record per line:
 *   UPLOAD <status> <body as hex>
 *   STATS <name>=<value> ...   (after the session; heap_after_free once the logger is freed)
 *   DONE
 */
#include <stdbool.h>
#include <malloc.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "board.h"
#include "sightline.h"

/* ---- output ---- */

static void print_u64(uint64_t v) {
    char digits[21];
    int i = 20;
    digits[i] = '\0';
    do {
        digits[--i] = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    board_print(&digits[i]);
}

static void print_stat(const char *name, uint64_t value) {
    board_print(" ");
    board_print(name);
    board_print("=");
    print_u64(value);
}

static void print_hex(const uint8_t *bytes, size_t len) {
    static const char HEX[] = "0123456789abcdef";
    char chunk[129];
    size_t used = 0;
    for (size_t i = 0; i < len; i++) {
        chunk[used++] = HEX[bytes[i] >> 4];
        chunk[used++] = HEX[bytes[i] & 15];
        if (used == sizeof chunk - 1) {
            chunk[used] = '\0';
            board_print(chunk);
            used = 0;
        }
    }
    chunk[used] = '\0';
    board_print(chunk);
}

static void fail(const char *what, SightlineStatus s) {
    board_print("FAILED ");
    board_print(what);
    board_print(": ");
    const char *name = sightline_status_name((uint32_t)s);
    board_print(name ? name : "?");
    board_print("\n");
    board_exit(0);
}

#define CALL(call)                                      \
    do {                                                \
        SightlineStatus s_ = (call);                    \
        if (s_ != SIGHTLINE_STATUS_OK) fail(#call, s_); \
    } while (0)

/* ---- the allocator Sightline uses: the integrator's malloc, counted ---- */

static size_t heap_now, heap_peak;

void *sightline_platform_alloc(size_t size, size_t align) {
    /* newlib's malloc aligns to 8; larger alignments need memalign. */
    void *p = align <= 8 ? malloc(size) : memalign(align, size);
    if (p) {
        heap_now += size;
        if (heap_now > heap_peak) heap_peak = heap_now;
    }
    return p;
}

void sightline_platform_free(void *ptr, size_t size, size_t align) {
    (void)align;
    heap_now -= size;
    free(ptr);
}

void sightline_platform_panic(void) {
    board_print("PANIC in Sightline\n");
    board_exit(0);
}

/* ---- the store: a RAM table of values and a journal ---- */

#define STORE_VALUES 16

static struct {
    char key[SIGHTLINE_MAX_KEY_BYTES];
    uint8_t *bytes;
    size_t len;
} values[STORE_VALUES];
static uint8_t *journal;
static size_t journal_len;

static int slot_of(const char *key, bool create) {
    int free_slot = -1;
    for (int i = 0; i < STORE_VALUES; i++) {
        if (values[i].key[0] && strcmp(values[i].key, key) == 0) return i;
        if (!values[i].key[0] && free_slot < 0) free_slot = i;
    }
    if (create && free_slot >= 0) strcpy(values[free_slot].key, key);
    return create ? free_slot : -1;
}

static uint32_t perform(const SightlineStoreOp *op) {
    int slot;
    uint8_t *copy;
    switch (op->kind) {
    case SIGHTLINE_STORE_OP_KIND_PUT:
        slot = slot_of(op->key, true);
        copy = malloc(op->len ? op->len : 1);
        if (slot < 0 || !copy) {
            free(copy);
            return SIGHTLINE_STORE_RESULT_QUOTA_EXCEEDED;
        }
        if (op->len) memcpy(copy, op->bytes, op->len);
        free(values[slot].bytes);
        values[slot].bytes = copy;
        values[slot].len = op->len;
        return SIGHTLINE_STORE_RESULT_DONE;
    case SIGHTLINE_STORE_OP_KIND_REMOVE:
        slot = slot_of(op->key, false);
        if (slot >= 0) {
            free(values[slot].bytes);
            memset(&values[slot], 0, sizeof values[slot]);
        }
        return SIGHTLINE_STORE_RESULT_DONE;
    case SIGHTLINE_STORE_OP_KIND_APPEND:
        copy = realloc(journal, journal_len + op->len);
        if (!copy) return SIGHTLINE_STORE_RESULT_QUOTA_EXCEEDED;
        if (op->len) memcpy(copy + journal_len, op->bytes, op->len);
        journal = copy;
        journal_len += op->len;
        return SIGHTLINE_STORE_RESULT_DONE;
    case SIGHTLINE_STORE_OP_KIND_CLEAR_JOURNAL:
        journal_len = 0;
        return SIGHTLINE_STORE_RESULT_DONE;
    }
    return SIGHTLINE_STORE_RESULT_IO_ERROR;
}

/* ---- time: the box's millisecond tick, advanced by the script ---- */

static uint64_t tick_ms;
static const uint64_t WALL_AT_BOOT_MS = 1764547200000ull; /* the box's RTC at boot */

static SightlineNow now(void) {
    SightlineNow n = {tick_ms, WALL_AT_BOOT_MS + tick_ms};
    return n;
}

/* ---- the loop's output side ---- */

static int uploads_answered;
/* The box's network is down until this time (set when the outage starts). */
static uint64_t offline_until;

/* The scripted collector: 503 with Retry-After for the first upload, nothing while the
   network is down, 200 otherwise. */
static void answer(SightlineLogger l, SightlineUpload *u) {
    uint16_t status = uploads_answered++ == 0 ? 503 : tick_ms < offline_until ? SIGHTLINE_NETWORK_ERROR : 200;
    board_print("UPLOAD ");
    print_u64(status);
    board_print(" ");
    print_hex(u->body, u->body_len);
    board_print("\n");
    CALL(sightline_logger_handle_upload_result(l, u->id, status, status == 503 ? "3" : NULL, now()));
    CALL(sightline_upload_free(u));
}

static void drain(SightlineLogger l) {
    for (;;) {
        SightlineStoreOp op;
        while (sightline_logger_poll_store_op(l, &op) == SIGHTLINE_STATUS_OK)
            CALL(sightline_logger_handle_store_result(l, op.id, perform(&op)));
        SightlineUpload *u;
        if (sightline_logger_poll_upload(l, now(), &u) != SIGHTLINE_STATUS_OK) return;
        answer(l, u);
    }
}

/* Lets time pass to `t`, firing the logger's timers on the way. */
static void advance_to(SightlineLogger l, uint64_t t) {
    uint64_t deadline;
    while (sightline_logger_poll_timeout(l, &deadline) == SIGHTLINE_STATUS_OK && deadline <= t) {
        if (deadline > tick_ms) tick_ms = deadline;
        CALL(sightline_logger_handle_timeout(l, now()));
        drain(l);
    }
    if (t > tick_ms) tick_ms = t;
}

/* ---- the session ---- */

/* Grids the user zaps through while the network is down. */
#define SURF_SCREENS 16

static const char *const HOME[] = {"title:11", "title:12", "title:13", "title:21", "title:22", "title:23"};
static const uint32_t HOME_ROWS[] = {3, 3};

static SightlineItem tile(uint32_t row, uint32_t column) {
    SightlineItem item = {HOME[row * 3 + column], NULL, row, column};
    return item;
}

int main(void) {
    SightlineConfig config;
    CALL(sightline_config_init(&config));
    config.app_id = "com.example.stb";
    config.app_version = "5.0.1";
    config.platform = SIGHTLINE_PLATFORM_TV;
    config.device = "example-stb";
    config.app_key = "key-1";
    config.seed = 0x5eedf00du; /* a real box reads its TRNG at every boot */
    /* A box's budget: small batches, and the smallest queue (one full batch fits). */
    config.max_batch_impressions = 32;
    config.max_queue_bytes = 64 * 1024;

    SightlineLogger l;
    CALL(sightline_logger_resume(&config, NULL, 0, NULL, 0, now(), &l));
    drain(l);

    uint64_t home;
    CALL(sightline_logger_start_page_view(l, "home", "req-1", HOME, 6, HOME_ROWS, 2, now(), &home));
    /* Row 0 is on screen in full; the remote walks its tiles, 1.2 s each. */
    for (uint32_t c = 0; c < 3; c++) {
        SightlineItem t = tile(0, c);
        CALL(sightline_logger_visibility(l, home, &t, 1.0f, now()));
    }
    /* Row 1 peeks in at 60 % from 0.5 s to 2 s: long enough, visible enough. */
    for (uint32_t c = 0; c < 3; c++) {
        SightlineItem t = tile(0, c);
        advance_to(l, 1200 * c);
        CALL(sightline_logger_focus(l, home, &t, true, now()));
        if (c == 0) {
            advance_to(l, 500);
            for (uint32_t k = 0; k < 3; k++) {
                SightlineItem r1 = tile(1, k);
                CALL(sightline_logger_visibility(l, home, &r1, 0.6f, now()));
            }
        }
        if (c == 1) {
            advance_to(l, 2000);
            for (uint32_t k = 0; k < 3; k++) {
                SightlineItem r1 = tile(1, k);
                CALL(sightline_logger_visibility(l, home, &r1, 0.0f, now()));
            }
        }
        advance_to(l, 1200 * (c + 1));
        CALL(sightline_logger_focus(l, home, &t, false, now()));
    }
    advance_to(l, 4000);
    CALL(sightline_logger_end_page_view(l, home, now()));

    /* The details page: one tile only glimpsed at 30 %, and a malformed id the logger
       refuses (and counts) instead of sending. */
    uint64_t details;
    CALL(sightline_logger_start_page_view(l, "details", NULL, NULL, 0, NULL, 0, now(), &details));
    SightlineItem glimpsed = {"title:31", NULL, 0, 0};
    CALL(sightline_logger_visibility(l, details, &glimpsed, 0.3f, now()));
    SightlineItem malformed = {"title 32", NULL, 0, 1};
    SightlineStatus refused = sightline_logger_visibility(l, details, &malformed, 1.0f, now());
    if (refused != SIGHTLINE_STATUS_REFUSED) fail("the malformed id was not refused", refused);
    advance_to(l, 5500);
    CALL(sightline_logger_visibility(l, details, &glimpsed, 0.0f, now()));

    /* Standby: the batch closes and goes out; the collector's 503 makes it retry. */
    CALL(sightline_logger_app_hidden(l, now()));
    drain(l);
    advance_to(l, 10000);

    /* The box wakes with the network down; the user zaps through grids of 2 x 4 tiles,
       each on screen 1.5 s. Batches close every max_batch_impressions and queue up. */
    CALL(sightline_logger_app_visible(l, now()));
    offline_until = tick_ms + SURF_SCREENS * 1600 + 5000;
    for (uint32_t screen = 0; screen < SURF_SCREENS; screen++) {
        uint64_t grid;
        CALL(sightline_logger_start_page_view(l, "grid", NULL, NULL, 0, NULL, 0, now(), &grid));
        char ids[8][16];
        for (uint32_t k = 0; k < 8; k++) {
            /* "title:<n>" with n = 1000 + screen * 8 + k, without printf. */
            uint32_t n = 1000 + screen * 8 + k;
            memcpy(ids[k], "title:", 6);
            ids[k][6] = (char)('0' + n / 1000 % 10);
            ids[k][7] = (char)('0' + n / 100 % 10);
            ids[k][8] = (char)('0' + n / 10 % 10);
            ids[k][9] = (char)('0' + n % 10);
            ids[k][10] = '\0';
            SightlineItem t = {ids[k], NULL, k / 4, k % 4};
            CALL(sightline_logger_visibility(l, grid, &t, 1.0f, now()));
        }
        advance_to(l, tick_ms + 1500);
        CALL(sightline_logger_end_page_view(l, grid, now()));
        drain(l);
        advance_to(l, tick_ms + 100);
    }
    /* The network comes back; the queue drains on the logger's retry timers. */
    CALL(sightline_logger_app_hidden(l, now()));
    drain(l);
    advance_to(l, tick_ms + 30 * 60 * 1000);

    SightlineStats st;
    CALL(sightline_logger_stats(l, &st));
    board_print("STATS");
    print_stat("recorded", st.recorded);
    print_stat("delivered", st.delivered);
    print_stat("pending", st.pending);
    print_stat("invalid", st.invalid);
    print_stat("uploads", st.uploads);
    print_stat("retries", st.retries);
    print_stat("heap_peak", heap_peak);
    print_stat("heap_budget", FIRMWARE_HEAP_BUDGET_BYTES);
    print_stat("arena_high_water", board_heap_high_water());
    CALL(sightline_logger_free(l));
    /* Freeing the logger gives back everything Sightline allocated. */
    print_stat("heap_after_free", heap_now);
    board_print("\n");
    board_print("DONE\n");
    return st.pending == 0 ? 0 : 1;
}
