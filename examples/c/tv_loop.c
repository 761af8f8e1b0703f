/*
 * A TV app's event loop logging impressions with Sightline's sans-IO C API:
 *
 *     tv_loop http://127.0.0.1:8080 /tmp/sightline-tv
 *
 * One thread, no callbacks. The loop sleeps in poll() until the next remote-control key
 * or the logger's next deadline, feeds the logger, then performs what it asks for: store
 * operations on files in the data directory, uploads as plain HTTP/1.1 POSTs (the
 * platform's HTTP stack in a real app), and the next timer. The remote is scripted: the
 * user moves focus along the first row of the home screen, lingers on each tile, then
 * the TV goes to standby. Prints `expected=N delivered=N pending=N session=ID` last.
 */
#define _POSIX_C_SOURCE 200809L
#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "sightline.h"

/* Longest the loop waits for the collector once in standby: then it gives up, and what
 * is queued stays stored for the next boot. */
#define STANDBY_DRAIN_MS 15000
/* How long the user lingers on a focused tile: past the contract's 1 s minimum. */
#define DWELL_MS 1300

static const char *ROW0[] = {"title:101", "title:102", "title:103", "title:104"};
static const char *ROW1[] = {"title:201", "title:202"};
#define ROW0_LEN (sizeof ROW0 / sizeof ROW0[0])
#define ROW1_LEN (sizeof ROW1 / sizeof ROW1[0])

static const char *data_dir;
static char host[64];
static int port;

static void die(const char *what, SightlineStatus s) {
    char message[256] = "";
    size_t len;
    sightline_last_error_message(message, sizeof message, &len);
    fprintf(stderr, "%s: %s %s\n", what, sightline_status_name((uint32_t)s), message);
    exit(1);
}

#define CALL(call)                                         \
    do {                                                   \
        SightlineStatus s_ = (call);                       \
        if (s_ != SIGHTLINE_STATUS_OK) die(#call, s_);     \
    } while (0)

static uint64_t ms_of(clockid_t clock) {
    struct timespec ts;
    clock_gettime(clock, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static SightlineNow now(void) {
    SightlineNow n = {ms_of(CLOCK_MONOTONIC), ms_of(CLOCK_REALTIME)};
    return n;
}

/* ---- the store: one file per key, written atomically; the journal is one file ---- */

static void path_of(char *out, size_t cap, const char *key) {
    /* Keys hold '/' (e.g. "batch/00000000000000000007"): flatten them into file names. */
    snprintf(out, cap, "%s/", data_dir);
    size_t at = strlen(out);
    for (const char *k = key; *k && at + 1 < cap; k++) out[at++] = *k == '/' ? '_' : *k;
    out[at] = '\0';
}

static int write_file(const char *path, const uint8_t *bytes, size_t len, const char *mode) {
    FILE *f = fopen(path, mode);
    if (!f) return -1;
    int ok = fwrite(bytes, 1, len, f) == len;
    ok = (fflush(f) == 0) && ok;
    ok = (fsync(fileno(f)) == 0) && ok;
    return (fclose(f) == 0 && ok) ? 0 : -1;
}

static uint32_t perform(const SightlineStoreOp *op) {
    char path[512], tmp[520];
    int r = 0;
    switch (op->kind) {
    case SIGHTLINE_STORE_OP_KIND_PUT:
        path_of(path, sizeof path, op->key);
        snprintf(tmp, sizeof tmp, "%s.tmp", path);
        r = write_file(tmp, op->bytes, op->len, "wb");
        if (r == 0) r = rename(tmp, path);
        break;
    case SIGHTLINE_STORE_OP_KIND_REMOVE:
        path_of(path, sizeof path, op->key);
        r = (unlink(path) == 0 || errno == ENOENT) ? 0 : -1;
        break;
    case SIGHTLINE_STORE_OP_KIND_APPEND:
        path_of(path, sizeof path, "journal");
        r = write_file(path, op->bytes, op->len, "ab");
        break;
    case SIGHTLINE_STORE_OP_KIND_CLEAR_JOURNAL:
        path_of(path, sizeof path, "journal");
        r = write_file(path, NULL, 0, "wb");
        break;
    }
    return r == 0 ? SIGHTLINE_STORE_RESULT_DONE : SIGHTLINE_STORE_RESULT_IO_ERROR;
}

/* ---- HTTP: one POST per upload, Connection: close ---- */

static int send_all(int fd, const void *data, size_t len) {
    const char *p = data;
    while (len > 0) {
        ssize_t n = send(fd, p, len, 0);
        if (n <= 0) return -1;
        p += n;
        len -= (size_t)n;
    }
    return 0;
}

/* Returns the HTTP status, or SIGHTLINE_NETWORK_ERROR; copies Retry-After if present. */
static uint16_t post(const SightlineUpload *u, char retry_after[64]) {
    retry_after[0] = '\0';
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0) return SIGHTLINE_NETWORK_ERROR;
    struct sockaddr_in addr = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    char head[1024];
    int used = snprintf(head, sizeof head, "POST %s HTTP/1.1\r\nHost: %s:%d\r\nConnection: close\r\n"
                        "Content-Length: %zu\r\n", u->path, host, port, u->body_len);
    for (size_t i = 0; i < u->header_count && used > 0 && (size_t)used < sizeof head; i++) {
        used += snprintf(head + used, sizeof head - (size_t)used, "%s: %s\r\n", u->headers[i].name,
                         u->headers[i].value);
    }
    uint16_t status = SIGHTLINE_NETWORK_ERROR;
    char reply[2048];
    size_t got = 0;
    if (used <= 0 || (size_t)used + 3 > sizeof head) goto done;
    strcpy(head + used, "\r\n");
    if (inet_pton(AF_INET, host, &addr.sin_addr) != 1 ||
        connect(fd, (struct sockaddr *)&addr, sizeof addr) != 0 ||
        send_all(fd, head, strlen(head)) != 0 || send_all(fd, u->body, u->body_len) != 0)
        goto done;
    ssize_t n;
    while (got + 1 < sizeof reply && (n = recv(fd, reply + got, sizeof reply - 1 - got, 0)) > 0)
        got += (size_t)n;
    reply[got] = '\0';
    unsigned code;
    if (sscanf(reply, "HTTP/1.%*c %u", &code) == 1 && code >= 100 && code < 600) status = (uint16_t)code;
    /* Header names are case-insensitive. */
    for (const char *line = strstr(reply, "\r\n"); line; line = strstr(line + 2, "\r\n")) {
        if (strncasecmp(line + 2, "retry-after:", 12) == 0) {
            sscanf(line + 14, " %63[^\r]", retry_after);
            break;
        }
    }
done:
    close(fd);
    return status;
}

/* ---- the loop ---- */

/* Performs store operations and uploads until the logger asks for nothing more now. */
static void drain(SightlineLogger l) {
    for (;;) {
        SightlineStoreOp op;
        while (sightline_logger_poll_store_op(l, &op) == SIGHTLINE_STATUS_OK)
            CALL(sightline_logger_handle_store_result(l, op.id, perform(&op)));
        SightlineUpload *u = NULL;
        if (sightline_logger_poll_upload(l, now(), &u) != SIGHTLINE_STATUS_OK) return;
        char retry_after[64];
        uint16_t status = post(u, retry_after);
        CALL(sightline_logger_handle_upload_result(l, u->id, status,
                                                   retry_after[0] ? retry_after : NULL, now()));
        CALL(sightline_upload_free(u));
    }
}

/* Sleeps until `until_mono` or the logger's deadline, firing the timer if it comes first. */
static void wait_until(SightlineLogger l, uint64_t until_mono) {
    for (;;) {
        uint64_t t = now().mono_ms, deadline;
        int has_deadline = sightline_logger_poll_timeout(l, &deadline) == SIGHTLINE_STATUS_OK;
        if (has_deadline && deadline <= t) {
            CALL(sightline_logger_handle_timeout(l, now()));
            drain(l);
            continue;
        }
        if (t >= until_mono) return;
        uint64_t wake = has_deadline && deadline < until_mono ? deadline : until_mono;
        poll(NULL, 0, (int)(wake - t));
    }
}

static SightlineStoredValue *read_store(size_t *count, uint8_t **journal, size_t *journal_len);

int main(int argc, char **argv) {
    if (argc != 3 || sscanf(argv[1], "http://%63[^:]:%d", host, &port) != 2) {
        fprintf(stderr, "usage: %s http://HOST:PORT DATA_DIR\n", argv[0]);
        return 2;
    }
    data_dir = argv[2];
    mkdir(data_dir, 0700);

    SightlineConfig config;
    CALL(sightline_config_init(&config));
    config.app_id = "com.example.tv";
    config.app_version = "3.2.0";
    config.platform = SIGHTLINE_PLATFORM_TV;
    config.device = "example-tv";
    config.app_key = "key-1";
    config.seed = ms_of(CLOCK_REALTIME) ^ ((uint64_t)getpid() << 32); /* a real TV: its RNG */

    size_t value_count;
    uint8_t *journal;
    size_t journal_len;
    SightlineStoredValue *values = read_store(&value_count, &journal, &journal_len);
    SightlineLogger logger;
    CALL(sightline_logger_resume(&config, values, value_count, journal, journal_len, now(), &logger));
    for (size_t i = 0; i < value_count; i++) {
        free((void *)values[i].key);
        free((void *)values[i].value);
    }
    free(values);
    free(journal);
    drain(logger);

    const char *layout[ROW0_LEN + ROW1_LEN];
    memcpy(layout, ROW0, sizeof ROW0);
    memcpy(layout + ROW0_LEN, ROW1, sizeof ROW1);
    const uint32_t rows[] = {ROW0_LEN, ROW1_LEN};
    uint64_t pv;
    CALL(sightline_logger_start_page_view(logger, "home", "req-home", layout, ROW0_LEN + ROW1_LEN,
                                          rows, 2, now(), &pv));
    /* The home screen shows both rows fully; row 1 only until the user scrolls down. */
    for (uint32_t c = 0; c < ROW0_LEN; c++) {
        SightlineItem tile = {ROW0[c], NULL, 0, c};
        CALL(sightline_logger_visibility(logger, pv, &tile, 1.0f, now()));
    }
    for (uint32_t c = 0; c < ROW1_LEN; c++) {
        SightlineItem tile = {ROW1[c], NULL, 1, c};
        CALL(sightline_logger_visibility(logger, pv, &tile, 1.0f, now()));
    }
    /* A brief glance at row 1: it scrolls out before the 1 s minimum, so no impression. */
    wait_until(logger, now().mono_ms + 400);
    for (uint32_t c = 0; c < ROW1_LEN; c++) {
        SightlineItem tile = {ROW1[c], NULL, 1, c};
        CALL(sightline_logger_visibility(logger, pv, &tile, 0.0f, now()));
    }
    /* The remote moves focus along row 0, one tile per DWELL_MS. */
    for (uint32_t c = 0; c < ROW0_LEN; c++) {
        SightlineItem tile = {ROW0[c], NULL, 0, c};
        CALL(sightline_logger_focus(logger, pv, &tile, true, now()));
        wait_until(logger, now().mono_ms + DWELL_MS);
        CALL(sightline_logger_focus(logger, pv, &tile, false, now()));
        drain(logger);
    }
    CALL(sightline_logger_end_page_view(logger, pv, now()));
    /* Standby: the batch closes; deliver it before the power goes. */
    CALL(sightline_logger_app_hidden(logger, now()));
    drain(logger);
    uint64_t give_up = now().mono_ms + STANDBY_DRAIN_MS;
    SightlineStats stats;
    CALL(sightline_logger_stats(logger, &stats));
    while (stats.pending > 0 && now().mono_ms < give_up) {
        wait_until(logger, now().mono_ms + 50);
        drain(logger);
        CALL(sightline_logger_stats(logger, &stats));
    }
    char session[128];
    size_t len;
    CALL(sightline_logger_session_id(logger, session, sizeof session, &len));
    printf("expected=%zu delivered=%llu pending=%llu session=%s\n", ROW0_LEN,
           (unsigned long long)stats.delivered, (unsigned long long)stats.pending, session);
    CALL(sightline_logger_free(logger));
    return stats.pending == 0 ? 0 : 1;
}

/* ---- reading the store back at boot ---- */

static uint8_t *read_file(const char *path, size_t *len) {
    FILE *f = fopen(path, "rb");
    *len = 0;
    if (!f) return NULL;
    uint8_t *bytes = NULL;
    size_t cap = 0;
    for (;;) {
        if (*len == cap) {
            cap = cap ? cap * 2 : 4096;
            uint8_t *grown = realloc(bytes, cap);
            if (!grown) {
                fprintf(stderr, "out of memory reading %s\n", path);
                exit(1);
            }
            bytes = grown;
        }
        size_t n = fread(bytes + *len, 1, cap - *len, f);
        if (n == 0) break;
        *len += n;
    }
    if (ferror(f)) {
        /* A store that cannot be read must not pass as empty: stop instead. */
        fprintf(stderr, "cannot read %s\n", path);
        exit(1);
    }
    fclose(f);
    return bytes;
}

/* The keys the logger writes: fixed names and numbered batches (see path_of). */
static SightlineStoredValue *read_store(size_t *count, uint8_t **journal, size_t *journal_len) {
    size_t cap = 8;
    SightlineStoredValue *values = malloc(cap * sizeof *values);
    if (!values) exit(1);
    *count = 0;
    DIR *dir = opendir(data_dir);
    struct dirent *entry;
    while (dir && (entry = readdir(dir)) != NULL) {
        const char *name = entry->d_name;
        int fixed = strcmp(name, "state") == 0 || strcmp(name, "acks") == 0 || strcmp(name, "prefs") == 0;
        int batch = strncmp(name, "batch_", 6) == 0 && !strstr(name, ".tmp");
        if (!fixed && !batch) continue;
        char *key = strdup(name);
        if (!key) exit(1);
        if (batch) key[5] = '/';
        char path[512];
        path_of(path, sizeof path, key);
        size_t len;
        uint8_t *bytes = read_file(path, &len);
        if (*count == cap) {
            cap *= 2;
            SightlineStoredValue *grown = realloc(values, cap * sizeof *values);
            if (!grown) exit(1);
            values = grown;
        }
        values[(*count)++] = (SightlineStoredValue){key, bytes, len};
    }
    if (dir) closedir(dir);
    char path[512];
    path_of(path, sizeof path, "journal");
    *journal = read_file(path, journal_len);
    return values;
}
