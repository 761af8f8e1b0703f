/*
 * The C runner of the cross-platform conformance suite: `conformance <scenario.json>`.
 *
 * Drives one scenario file through the public C API (sightline.h) with the host loop of
 * tests/conformance/README.md (start, timers, steps, drain, end: read it there, this file
 * follows it step by step), builds the canonical outcome and compares it field by field
 * with the scenario's `expect` section, printing each differing field.
 *
 * Exit status: 0 the outcome equals `expect`; 1 it differs; 2 the scenario could not be
 * run (malformed file, unknown config field, an API call failing other than a refusal).
 */
#include "sightline.h"

#include <cjson/cJSON.h>
#include <openssl/evp.h>
#include <zlib.h>

#include <inttypes.h>
#include <limits.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Wall-clock ms at monotonic 0: an HTTP-date Retry-After then means the same delay. */
#define WALL0 1700000000000ULL
/* Largest integer a cJSON number (a double) holds exactly. */
#define JSON_MAX_EXACT 9007199254740992ULL

static SightlineNow now_at(uint64_t mono) {
    return (SightlineNow){.mono_ms = mono, .wall_ms = WALL0 + mono};
}

/* ---- Failing loudly ------------------------------------------------------------------ */

/* Prints why the run cannot go on; returns false so callers can `return fail(...)`. */
static bool fail(const char *fmt, ...) {
    va_list args;
    va_start(args, fmt);
    fputs("conformance: ", stderr);
    vfprintf(stderr, fmt, args);
    fputc('\n', stderr);
    va_end(args);
    return false;
}

/* The library's sentence for the last failed call, if it has one. */
static void print_last_error(void) {
#ifdef SIGHTLINE_STD
    size_t len = 0;
    SightlineStatus st = sightline_last_error_message(NULL, 0, &len);
    if (st != SIGHTLINE_STATUS_BUFFER_TOO_SMALL || len == 0)
        return;
    char *msg = malloc(len + 1);
    if (msg && sightline_last_error_message(msg, len + 1, &len) == SIGHTLINE_STATUS_OK)
        fprintf(stderr, "conformance:   %s\n", msg);
    free(msg);
#endif
}

/* True for SIGHTLINE_STATUS_OK; any other status of `call` fails the run. */
static bool check(SightlineStatus status, const char *call) {
    if (status == SIGHTLINE_STATUS_OK)
        return true;
    const char *name = sightline_status_name((uint32_t)status);
    fail("%s returned %s (%u)", call, name ? name : "an unknown status", (unsigned)status);
    print_last_error();
    return false;
}

/* ---- Growable arrays ----------------------------------------------------------------- */

/* `items` grown to hold `need` elements of `size` bytes (*cap updated), or NULL when out of
 * memory (then `items` is unchanged). */
static void *reserve(void *items, size_t *cap, size_t need, size_t size) {
    if (need <= *cap)
        return items;
    size_t n = *cap ? *cap : 8;
    while (n < need && n <= SIZE_MAX / 2 / size)
        n *= 2;
    void *grown = n >= need ? realloc(items, n * size) : NULL;
    if (!grown) {
        fail("out of memory");
        return NULL;
    }
    *cap = n;
    return grown;
}

typedef struct {
    uint8_t *data;
    size_t len, cap;
} Bytes;

static bool bytes_append(Bytes *b, const uint8_t *src, size_t n) {
    if (n == 0)
        return true;
    if (n > SIZE_MAX - b->len)
        return fail("buffer too large");
    uint8_t *data = reserve(b->data, &b->cap, b->len + n, 1);
    if (!data)
        return false;
    b->data = data;
    memcpy(b->data + b->len, src, n);
    b->len += n;
    return true;
}

static bool read_file(const char *path, Bytes *out) {
    FILE *f = fopen(path, "rb");
    if (!f)
        return fail("%s: cannot open", path);
    uint8_t chunk[8192];
    size_t n;
    bool ok = true;
    while (ok && (n = fread(chunk, 1, sizeof chunk, f)) > 0)
        ok = bytes_append(out, chunk, n);
    if (ok && ferror(f))
        ok = fail("%s: read error", path);
    fclose(f);
    /* cJSON wants a NUL-terminated text. */
    return ok && bytes_append(out, (const uint8_t *)"", 1);
}

/* ---- Reading the scenario's JSON ----------------------------------------------------- */

static bool as_uint(const cJSON *v, const char *what, uint64_t max, uint64_t *out) {
    double d = cJSON_IsNumber(v) ? v->valuedouble : -1.0;
    /* The range first: the cast that checks for a fraction is defined only within it. */
    if (d < 0 || d > (double)max || d > (double)JSON_MAX_EXACT || d != (double)(uint64_t)d)
        return fail("%s: expected an integer in 0..=%" PRIu64, what, max);
    *out = (uint64_t)d;
    return true;
}

static bool as_u32(const cJSON *v, const char *what, uint32_t *out) {
    uint64_t n;
    if (!as_uint(v, what, UINT32_MAX, &n))
        return false;
    *out = (uint32_t)n;
    return true;
}

static bool as_bool(const cJSON *v, const char *what, bool *out) {
    if (!cJSON_IsBool(v))
        return fail("%s: expected true or false", what);
    *out = cJSON_IsTrue(v);
    return true;
}

/* The string stays owned by the tree: valid while the scenario is. */
static bool as_string(const cJSON *v, const char *what, const char **out) {
    if (!cJSON_IsString(v))
        return fail("%s: expected a string", what);
    *out = v->valuestring;
    return true;
}

static const cJSON *member(const cJSON *obj, const char *key) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, key);
    if (!v)
        fail("missing field \"%s\"", key);
    return v;
}

static bool get_uint(const cJSON *obj, const char *key, uint64_t max, uint64_t *out) {
    const cJSON *v = member(obj, key);
    return v && as_uint(v, key, max, out);
}

static bool get_u32(const cJSON *obj, const char *key, uint32_t *out) {
    const cJSON *v = member(obj, key);
    return v && as_u32(v, key, out);
}

static bool get_bool(const cJSON *obj, const char *key, bool *out) {
    const cJSON *v = member(obj, key);
    return v && as_bool(v, key, out);
}

static bool get_string(const cJSON *obj, const char *key, const char **out) {
    const cJSON *v = member(obj, key);
    return v && as_string(v, key, out);
}

/* Absent or null gives NULL. */
static bool get_opt_string(const cJSON *obj, const char *key, const char **out) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, key);
    *out = NULL;
    return !v || cJSON_IsNull(v) || as_string(v, key, out);
}

/* Fractions are the binding's f32: the double as parsed, rounded once, as serde does. */
static bool get_f32(const cJSON *obj, const char *key, float *out) {
    const cJSON *v = member(obj, key);
    if (!v)
        return false;
    if (!cJSON_IsNumber(v))
        return fail("%s: expected a number", key);
    *out = (float)v->valuedouble;
    return true;
}

/* Every member of `obj` is one of `allowed` (NULL-terminated): the Rust side denies others. */
static bool only_keys(const cJSON *obj, const char *what, const char *const *allowed) {
    if (!cJSON_IsObject(obj))
        return fail("%s: expected an object", what);
    for (const cJSON *m = obj->child; m; m = m->next) {
        const char *const *k = allowed;
        while (*k && strcmp(*k, m->string) != 0)
            k++;
        if (!*k)
            return fail("%s: unknown field \"%s\"", what, m->string);
    }
    return true;
}

/* ---- The configuration (the core's serde form) --------------------------------------- */

typedef struct {
    const char *name;
    uint32_t value;
} EnumName;

static const EnumName PLATFORMS[] = {
    {"tv", SIGHTLINE_PLATFORM_TV},   {"android", SIGHTLINE_PLATFORM_ANDROID},
    {"ios", SIGHTLINE_PLATFORM_IOS}, {"web", SIGHTLINE_PLATFORM_WEB},
    {"other", SIGHTLINE_PLATFORM_OTHER}, {NULL, 0}};
static const EnumName SAMPLE_KEYS[] = {
    {"install", SIGHTLINE_SAMPLE_KEY_INSTALL}, {"session", SIGHTLINE_SAMPLE_KEY_SESSION},
    {NULL, 0}};
static const EnumName REENTRIES[] = {
    {"once_per_page_view", SIGHTLINE_REENTRY_ONCE_PER_PAGE_VIEW},
    {"after_leaving", SIGHTLINE_REENTRY_AFTER_LEAVING}, {NULL, 0}};

static bool as_enum(const cJSON *v, const char *what, const EnumName *names, uint32_t *out) {
    const char *s;
    if (!as_string(v, what, &s))
        return false;
    for (; names->name; names++) {
        if (strcmp(names->name, s) == 0) {
            *out = names->value;
            return true;
        }
    }
    return fail("%s: unknown value \"%s\"", what, s);
}

/* `pages` is allocated here (owned by the caller); its strings belong to the tree. */
static bool read_pages(const cJSON *v, const char ***pages, size_t *count) {
    if (!cJSON_IsArray(v))
        return fail("contract.pages: expected an array of strings");
    size_t n = (size_t)cJSON_GetArraySize(v), i = 0;
    *pages = calloc(n ? n : 1, sizeof **pages);
    if (!*pages)
        return fail("out of memory");
    for (const cJSON *p = v->child; p; p = p->next)
        if (!as_string(p, "contract.pages[]", &(*pages)[i++]))
            return false;
    *count = n;
    return true;
}

static bool read_contract_field(const cJSON *f, SightlineContract *c, const char ***pages) {
    const char *k = f->string;
    if (!strcmp(k, "version")) return as_u32(f, k, &c->version);
    if (!strcmp(k, "min_visible_pct")) return as_u32(f, k, &c->min_visible_pct);
    if (!strcmp(k, "min_visible_ms")) return as_u32(f, k, &c->min_visible_ms);
    if (!strcmp(k, "max_visible_ms")) return as_u32(f, k, &c->max_visible_ms);
    if (!strcmp(k, "max_id_len")) return as_u32(f, k, &c->max_id_len);
    if (!strcmp(k, "max_position")) return as_u32(f, k, &c->max_position);
    if (!strcmp(k, "require_artwork")) {
        bool require = false;
        if (!as_bool(f, k, &require))
            return false;
        c->require_artwork = require ? 1 : 0;
        return true;
    }
    if (!strcmp(k, "reentry")) return as_enum(f, k, REENTRIES, &c->reentry);
    if (!strcmp(k, "pages")) {
        free((void *)*pages); /* a repeated key: the last one counts */
        if (!read_pages(f, pages, &c->page_count))
            return false;
        c->pages = *pages;
        return true;
    }
    return fail("config.contract: unknown field \"%s\" (the core rejects unknown fields)", k);
}

static bool read_config_field(const cJSON *f, SightlineConfig *c, const char ***pages) {
    const char *k = f->string;
    if (!strcmp(k, "app_id")) return as_string(f, k, &c->app_id);
    if (!strcmp(k, "app_version")) return as_string(f, k, &c->app_version);
    if (!strcmp(k, "platform")) return as_enum(f, k, PLATFORMS, &c->platform);
    if (!strcmp(k, "device")) return as_string(f, k, &c->device);
    if (!strcmp(k, "install_id")) return as_string(f, k, &c->install_id);
    if (!strcmp(k, "app_key")) return as_string(f, k, &c->app_key);
    if (!strcmp(k, "seed")) return as_uint(f, k, UINT64_MAX, &c->seed);
    if (!strcmp(k, "sample_rate_ppm")) return as_u32(f, k, &c->sample_rate_ppm);
    if (!strcmp(k, "sample_key")) return as_enum(f, k, SAMPLE_KEYS, &c->sample_key);
    if (!strcmp(k, "max_batch_impressions")) return as_u32(f, k, &c->max_batch_impressions);
    if (!strcmp(k, "max_batch_age_ms")) return as_uint(f, k, UINT64_MAX, &c->max_batch_age_ms);
    if (!strcmp(k, "max_queue_bytes")) return as_u32(f, k, &c->max_queue_bytes);
    if (!strcmp(k, "retry_base_ms")) return as_uint(f, k, UINT64_MAX, &c->retry_base_ms);
    if (!strcmp(k, "retry_max_ms")) return as_uint(f, k, UINT64_MAX, &c->retry_max_ms);
    if (!strcmp(k, "max_attempts")) return as_u32(f, k, &c->max_attempts);
    if (!strcmp(k, "contract")) {
        if (!cJSON_IsObject(f))
            return fail("config.contract: expected an object");
        for (const cJSON *g = f->child; g; g = g->next)
            if (!read_contract_field(g, &c->contract, pages))
                return false;
        return true;
    }
    return fail("config: unknown field \"%s\" (the core rejects unknown fields)", k);
}

/* Absent fields keep sightline_config_init's defaults, which are the core's. */
static bool read_config(const cJSON *json, SightlineConfig *c, const char ***pages) {
    if (!check(sightline_config_init(c), "sightline_config_init"))
        return false;
    if (!cJSON_IsObject(json))
        return fail("config: expected an object");
    for (const cJSON *f = json->child; f; f = f->next)
        if (!read_config_field(f, c, pages))
            return false;
    return true;
}

/* ---- The memory store ---------------------------------------------------------------- */

typedef struct {
    char *key;
    uint8_t *bytes;
    size_t len;
} StoredEntry;

typedef struct {
    StoredEntry *values;
    size_t count, cap;
    Bytes journal;
    uint64_t failing; /* store operations still to fail (fail_store) */
} MemoryStore;

static StoredEntry *store_find(MemoryStore *s, const char *key) {
    for (size_t i = 0; i < s->count; i++)
        if (strcmp(s->values[i].key, key) == 0)
            return &s->values[i];
    return NULL;
}

/* A new entry for `key`, with no value yet. */
static StoredEntry *store_add(MemoryStore *s, const char *key) {
    StoredEntry *values = reserve(s->values, &s->cap, s->count + 1, sizeof *values);
    if (!values)
        return NULL;
    s->values = values;
    size_t len = strlen(key) + 1;
    char *copy = malloc(len);
    if (!copy) {
        fail("out of memory");
        return NULL;
    }
    memcpy(copy, key, len);
    s->values[s->count] = (StoredEntry){.key = copy};
    return &s->values[s->count++];
}

/* Replaces the value under `key` (adding the key if new). */
static bool store_put(MemoryStore *s, const char *key, const uint8_t *bytes, size_t len) {
    uint8_t *copy = malloc(len ? len : 1);
    if (!copy)
        return fail("out of memory");
    if (len)
        memcpy(copy, bytes, len);
    StoredEntry *e = store_find(s, key);
    if (!e && !(e = store_add(s, key))) {
        free(copy);
        return false;
    }
    free(e->bytes);
    e->bytes = copy;
    e->len = len;
    return true;
}

/* Removing a missing key is not an error. */
static void store_remove(MemoryStore *s, const char *key) {
    StoredEntry *e = store_find(s, key);
    if (!e)
        return;
    free(e->key);
    free(e->bytes);
    *e = s->values[--s->count];
}

/* Performs one operation; the logger's bytes are copied, since they are only lent. */
static bool store_apply(MemoryStore *s, const SightlineStoreOp *op) {
    if (!memchr(op->key, '\0', sizeof op->key))
        return fail("store operation %" PRIu64 ": key is not NUL-terminated", op->id);
    switch (op->kind) {
    case SIGHTLINE_STORE_OP_KIND_PUT: return store_put(s, op->key, op->bytes, op->len);
    case SIGHTLINE_STORE_OP_KIND_REMOVE: store_remove(s, op->key); return true;
    case SIGHTLINE_STORE_OP_KIND_APPEND: return bytes_append(&s->journal, op->bytes, op->len);
    case SIGHTLINE_STORE_OP_KIND_CLEAR_JOURNAL: s->journal.len = 0; return true;
    default: return fail("unknown store operation kind %u", (unsigned)op->kind);
    }
}

static void store_free(MemoryStore *s) {
    for (size_t i = 0; i < s->count; i++) {
        free(s->values[i].key);
        free(s->values[i].bytes);
    }
    free(s->values);
    free(s->journal.data);
}

/* ---- The host ------------------------------------------------------------------------ */

typedef struct {
    cJSON *scenario;
    SightlineConfig config;
    const char **pages; /* config.contract.pages, allocated */
    SightlineLogger logger;
    bool running;
    MemoryStore store;
    const cJSON *next_response; /* NULL once the list is exhausted: then {"status": 200} */
    uint64_t *page_views;       /* the logger's id of each ordinal; 0 when refused */
    size_t page_view_count, page_view_cap;
    cJSON *outcome, *refused, *uploads, *delivered;
} Host;

/* Resumes a logger over exactly what the store holds (its values and journal). */
static bool host_resume(Host *h, uint64_t seed, uint64_t t) {
    SightlineConfig config = h->config;
    config.seed = seed;
    SightlineStoredValue *values = calloc(h->store.count ? h->store.count : 1, sizeof *values);
    if (!values)
        return fail("out of memory");
    for (size_t i = 0; i < h->store.count; i++) {
        const StoredEntry *e = &h->store.values[i];
        values[i] = (SightlineStoredValue){.key = e->key, .value = e->bytes, .len = e->len};
    }
    bool ok = check(sightline_logger_resume(&config, values, h->store.count, h->store.journal.data,
                                            h->store.journal.len, now_at(t), &h->logger),
                    "sightline_logger_resume");
    free(values);
    h->running = ok;
    return ok;
}

/* The process dies: the logger is freed without flushing or any other call. */
static bool host_restart(Host *h, uint64_t seed, uint64_t t) {
    h->running = false;
    return check(sightline_logger_free(h->logger), "sightline_logger_free") &&
           host_resume(h, seed, t);
}

/* The logger's id for a scenario ordinal; 0 (never issued) for one refused or not started. */
static uint64_t page_view_id(const Host *h, uint64_t ordinal) {
    return ordinal >= 1 && ordinal <= h->page_view_count ? h->page_views[ordinal - 1] : 0;
}

static bool push_page_view(Host *h, uint64_t id) {
    uint64_t *ids = reserve(h->page_views, &h->page_view_cap, h->page_view_count + 1, sizeof *ids);
    if (!ids)
        return false;
    h->page_views = ids;
    h->page_views[h->page_view_count++] = id;
    return true;
}

/* ---- Building the outcome ------------------------------------------------------------ */

/* cJSON answers NULL when out of memory. */
static bool added(const cJSON *item) {
    return item ? true : fail("out of memory");
}

static bool add_uint(cJSON *obj, const char *key, uint64_t v) {
    if (v > JSON_MAX_EXACT)
        return fail("%s = %" PRIu64 " cannot be compared exactly as JSON", key, v);
    return added(cJSON_AddNumberToObject(obj, key, (double)v));
}

static bool add_int(cJSON *obj, const char *key, int64_t v) {
    if (v > (int64_t)JSON_MAX_EXACT || v < -(int64_t)JSON_MAX_EXACT)
        return fail("%s = %" PRId64 " cannot be compared exactly as JSON", key, v);
    return added(cJSON_AddNumberToObject(obj, key, (double)v));
}

/* NULL gives JSON null: request_id and artwork_id are always present. */
static bool add_string(cJSON *obj, const char *key, const char *s) {
    return added(s ? cJSON_AddStringToObject(obj, key, s) : cJSON_AddNullToObject(obj, key));
}

/* A new object appended to `array`, or NULL when out of memory. */
static cJSON *append_object(cJSON *array) {
    cJSON *o = cJSON_CreateObject();
    if (o && !cJSON_AddItemToArray(array, o)) {
        cJSON_Delete(o);
        o = NULL;
    }
    if (!o)
        fail("out of memory");
    return o;
}

/* ---- Responses ----------------------------------------------------------------------- */

typedef struct {
    uint16_t status; /* SIGHTLINE_NETWORK_ERROR for a network error */
    const char *retry_after;
    bool network_error;
} Response;

/* Either {"status", "retry_after"?} or {"network_error": true}, as the Rust runner checks. */
static bool read_response(const cJSON *r, Response *out) {
    static const char *const keys[] = {"status", "retry_after", "network_error", NULL};
    uint64_t status = 0;
    *out = (Response){0};
    if (!only_keys(r, "response", keys) || !get_opt_string(r, "retry_after", &out->retry_after))
        return false;
    const cJSON *s = cJSON_GetObjectItemCaseSensitive(r, "status");
    const cJSON *n = cJSON_GetObjectItemCaseSensitive(r, "network_error");
    if ((s && !as_uint(s, "status", UINT16_MAX, &status)) ||
        (n && !as_bool(n, "network_error", &out->network_error)))
        return false;
    if (s ? out->network_error : (!out->network_error || out->retry_after))
        return fail("a response is either {\"status\", \"retry_after\"?}"
                    " or {\"network_error\": true}");
    out->status = out->network_error ? SIGHTLINE_NETWORK_ERROR : (uint16_t)status;
    return true;
}

/* The response used, in the canonical form (optional fields omitted when absent). */
static bool add_response(cJSON *upload, const Response *r) {
    cJSON *o = cJSON_AddObjectToObject(upload, "response");
    if (!added(o))
        return false;
    if (r->network_error)
        return added(cJSON_AddTrueToObject(o, "network_error"));
    return add_uint(o, "status", r->status) &&
           (!r->retry_after || add_string(o, "retry_after", r->retry_after));
}

static bool take_response(Host *h, Response *out) {
    if (!h->next_response) {
        *out = (Response){.status = 200};
        return true;
    }
    const cJSON *r = h->next_response;
    h->next_response = r->next;
    return read_response(r, out);
}

/* ---- Upload bodies ------------------------------------------------------------------- */

/* Every gzip member, decompressed and concatenated: the protobuf bytes as sent. */
static bool gunzip_all(const uint8_t *body, size_t len, Bytes *out) {
    if (len > UINT_MAX)
        return fail("upload body too large for zlib");
    z_stream s = {0};
    if (inflateInit2(&s, 16 + MAX_WBITS) != Z_OK)
        return fail("inflateInit2 failed");
    s.next_in = (Bytef *)body; /* zlib does not write through it */
    s.avail_in = (uInt)len;
    uint8_t chunk[16384];
    bool ok = true;
    for (;;) {
        s.next_out = chunk;
        s.avail_out = sizeof chunk;
        int rc = inflate(&s, Z_NO_FLUSH);
        if (rc != Z_OK && rc != Z_STREAM_END) {
            ok = fail("upload body is not gzip: %s", s.msg ? s.msg : "truncated");
            break;
        }
        if (!(ok = bytes_append(out, chunk, sizeof chunk - s.avail_out)))
            break;
        /* At a member's end, start over on the next one until the input is consumed. */
        if (rc == Z_STREAM_END && (s.avail_in == 0 || inflateReset(&s) != Z_OK))
            break;
    }
    inflateEnd(&s);
    return ok;
}

static bool sha256_hex(const uint8_t *bytes, size_t len, char hex[2 * 32 + 1]) {
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int md_len = 0;
    if (!EVP_Digest(bytes, len, md, &md_len, EVP_sha256(), NULL) || md_len != 32)
        return fail("EVP_Digest(sha256) failed");
    for (unsigned i = 0; i < md_len; i++)
        snprintf(hex + 2 * i, 3, "%02x", md[i]);
    return true;
}

static bool add_impression(cJSON *delivered, size_t upload, const SightlineCapturedImpression *i) {
    cJSON *o = append_object(delivered);
    return o && add_uint(o, "upload", upload) && add_uint(o, "seq", i->seq) &&
           add_string(o, "page", i->page) && add_uint(o, "page_view", i->page_view) &&
           add_string(o, "request_id", i->request_id) && add_string(o, "item_id", i->item_id) &&
           add_string(o, "artwork_id", i->artwork_id) && add_uint(o, "row", i->row) &&
           add_uint(o, "column", i->column) &&
           add_int(o, "first_visible_ms", i->first_visible_ms) &&
           add_uint(o, "visible_ms", i->visible_ms) &&
           add_uint(o, "max_visible_pct", i->max_visible_pct) &&
           add_uint(o, "focused_ms", i->focused_ms);
}

/* Decodes a 2xx upload in a fresh capture (default contract) and appends its impressions. */
static bool record_delivered(Host *h, size_t upload, const SightlineUpload *u) {
    SightlineCapture capture;
    if (!check(sightline_capture_new(NULL, &capture), "sightline_capture_new"))
        return false;
    size_t count = 0;
    bool ok = check(sightline_capture_receive(capture, u->body, u->body_len),
                    "sightline_capture_receive") &&
              check(sightline_capture_impression_count(capture, &count),
                    "sightline_capture_impression_count");
    for (size_t i = 0; ok && i < count; i++) {
        SightlineCapturedImpression imp;
        ok = check(sightline_capture_impression(capture, i, &imp),
                   "sightline_capture_impression") &&
             add_impression(h->delivered, upload, &imp);
    }
    return check(sightline_capture_free(capture), "sightline_capture_free") && ok;
}

/* Answers one upload with the next response and records it (README, drain). */
static bool answer_upload(Host *h, uint64_t t, SightlineUpload *u) {
    Response r;
    Bytes raw = {0};
    char hex[2 * 32 + 1];
    size_t index = (size_t)cJSON_GetArraySize(h->uploads);
    cJSON *rec = NULL;
    bool ok = take_response(h, &r) &&
              check(sightline_logger_handle_upload_result(h->logger, u->id, r.status,
                                                          r.retry_after, now_at(t)),
                    "sightline_logger_handle_upload_result") &&
              gunzip_all(u->body, u->body_len, &raw) && sha256_hex(raw.data, raw.len, hex) &&
              (rec = append_object(h->uploads)) && add_uint(rec, "at", t) &&
              add_string(rec, "sha256", hex) && add_response(rec, &r);
    bool success = !r.network_error && r.status >= 200 && r.status < 300;
    ok = ok && (!success || record_delivered(h, index, u));
    free(raw.data);
    return ok;
}

/* Performs (or fails, per fail_store) every store operation the logger hands out. */
static bool answer_store_ops(Host *h) {
    for (;;) {
        SightlineStoreOp op;
        SightlineStatus st = sightline_logger_poll_store_op(h->logger, &op);
        if (st == SIGHTLINE_STATUS_EMPTY)
            return true;
        if (!check(st, "sightline_logger_poll_store_op"))
            return false;
        uint32_t result = SIGHTLINE_STORE_RESULT_DONE;
        if (h->store.failing > 0) {
            h->store.failing--; /* the store is left untouched */
            result = SIGHTLINE_STORE_RESULT_IO_ERROR;
        } else if (!store_apply(&h->store, &op)) {
            return false;
        }
        if (!check(sightline_logger_handle_store_result(h->logger, op.id, result),
                   "sightline_logger_handle_store_result"))
            return false;
    }
}

/* README step 3: store operations, then one upload, until neither is left. */
static bool drain(Host *h, uint64_t t) {
    for (;;) {
        if (!answer_store_ops(h))
            return false;
        SightlineUpload *u = NULL;
        SightlineStatus st = sightline_logger_poll_upload(h->logger, now_at(t), &u);
        if (st == SIGHTLINE_STATUS_EMPTY)
            return true;
        if (!check(st, "sightline_logger_poll_upload"))
            return false;
        bool ok = answer_upload(h, t, u);
        if (!check(sightline_upload_free(u), "sightline_upload_free"))
            return false;
        if (!ok)
            return false;
    }
}

/* README step 1: fires every deadline up to `until`, draining after each. */
static bool fire_timers(Host *h, uint64_t until) {
    for (;;) {
        uint64_t d, next;
        SightlineStatus st = sightline_logger_poll_timeout(h->logger, &d);
        if (st == SIGHTLINE_STATUS_EMPTY)
            return true;
        if (!check(st, "sightline_logger_poll_timeout"))
            return false;
        if (d > until)
            return true;
        if (!check(sightline_logger_handle_timeout(h->logger, now_at(d)),
                   "sightline_logger_handle_timeout") ||
            !drain(h, d))
            return false;
        /* A deadline that does not move on would make a real host spin. */
        st = sightline_logger_poll_timeout(h->logger, &next);
        if (st == SIGHTLINE_STATUS_OK && next <= d)
            return fail("the deadline does not advance: handle_timeout at %" PRIu64
                        " leaves poll_timeout at %" PRIu64, d, next);
        if (st != SIGHTLINE_STATUS_EMPTY && !check(st, "sightline_logger_poll_timeout"))
            return false;
    }
}

/* ---- Steps --------------------------------------------------------------------------- */

/* A step's call: false when the step cannot be run; the API's answer goes to *st. */
typedef bool StepFn(Host *h, const cJSON *body, uint64_t t, SightlineStatus *st);

/* Strings point into the scenario's tree. */
static bool read_item(const cJSON *body, SightlineItem *item) {
    static const char *const keys[] = {"item_id", "artwork_id", "row", "column", NULL};
    const cJSON *v = member(body, "item");
    return v && only_keys(v, "item", keys) && get_string(v, "item_id", &item->item_id) &&
           get_opt_string(v, "artwork_id", &item->artwork_id) && get_u32(v, "row", &item->row) &&
           get_u32(v, "column", &item->column);
}

static bool get_page_view(const Host *h, const cJSON *body, uint64_t *id) {
    uint64_t ordinal;
    if (!get_uint(body, "page_view", UINT64_MAX, &ordinal))
        return false;
    *id = page_view_id(h, ordinal);
    return true;
}

/* The layout, flattened as the C API takes it: every row's ids in order, and row lengths. */
typedef struct {
    const char **ids;
    uint32_t *row_lengths; /* NULL: no layout */
    size_t id_count, row_count;
} Layout;

static bool read_layout(const cJSON *v, Layout *l) {
    if (!cJSON_IsArray(v))
        return fail("layout: expected an array of rows");
    l->row_count = (size_t)cJSON_GetArraySize(v);
    for (const cJSON *row = v->child; row; row = row->next) {
        if (!cJSON_IsArray(row))
            return fail("layout: each row is an array of item ids");
        l->id_count += (size_t)cJSON_GetArraySize(row);
    }
    /* Never 0 bytes: a present but empty layout must not read as "no layout" (NULL). */
    l->row_lengths = calloc(l->row_count ? l->row_count : 1, sizeof *l->row_lengths);
    l->ids = calloc(l->id_count ? l->id_count : 1, sizeof *l->ids);
    if (!l->row_lengths || !l->ids)
        return fail("out of memory");
    size_t r = 0, i = 0;
    for (const cJSON *row = v->child; row; row = row->next, r++) {
        l->row_lengths[r] = (uint32_t)cJSON_GetArraySize(row);
        for (const cJSON *id = row->child; id; id = id->next)
            if (!as_string(id, "layout[][]", &l->ids[i++]))
                return false;
    }
    return true;
}

/* Every start takes the next ordinal, accepted or not (README, page views). */
static bool step_start_page_view(Host *h, const cJSON *body, uint64_t t, SightlineStatus *st) {
    const char *page, *request_id;
    const cJSON *layout_json = cJSON_GetObjectItemCaseSensitive(body, "layout");
    Layout layout = {0};
    uint64_t id = 0;
    bool ok = get_string(body, "page", &page) && get_opt_string(body, "request_id", &request_id) &&
              (!layout_json || cJSON_IsNull(layout_json) || read_layout(layout_json, &layout));
    if (ok) {
        *st = sightline_logger_start_page_view(h->logger, page, request_id, layout.ids,
                                               layout.id_count, layout.row_lengths,
                                               layout.row_count, now_at(t), &id);
        ok = push_page_view(h, *st == SIGHTLINE_STATUS_OK ? id : 0);
    }
    free(layout.ids);
    free(layout.row_lengths);
    return ok;
}

static bool step_end_page_view(Host *h, const cJSON *body, uint64_t t, SightlineStatus *st) {
    uint64_t id;
    if (!get_page_view(h, body, &id))
        return false;
    *st = sightline_logger_end_page_view(h->logger, id, now_at(t));
    return true;
}

static bool step_visibility(Host *h, const cJSON *body, uint64_t t, SightlineStatus *st) {
    uint64_t id;
    SightlineItem item;
    float fraction;
    if (!get_page_view(h, body, &id) || !read_item(body, &item) ||
        !get_f32(body, "fraction", &fraction))
        return false;
    *st = sightline_logger_visibility(h->logger, id, &item, fraction, now_at(t));
    return true;
}

static bool step_focus(Host *h, const cJSON *body, uint64_t t, SightlineStatus *st) {
    uint64_t id;
    SightlineItem item;
    bool focused;
    if (!get_page_view(h, body, &id) || !read_item(body, &item) ||
        !get_bool(body, "focused", &focused))
        return false;
    *st = sightline_logger_focus(h->logger, id, &item, focused, now_at(t));
    return true;
}

static bool step_app_hidden(Host *h, const cJSON *body, uint64_t t, SightlineStatus *st) {
    (void)body;
    *st = sightline_logger_app_hidden(h->logger, now_at(t));
    return true;
}

static bool step_app_visible(Host *h, const cJSON *body, uint64_t t, SightlineStatus *st) {
    (void)body;
    *st = sightline_logger_app_visible(h->logger, now_at(t));
    return true;
}

static bool step_impression(Host *h, const cJSON *body, uint64_t t, SightlineStatus *st) {
    uint64_t id;
    SightlineImpression imp;
    if (!get_page_view(h, body, &id) || !read_item(body, &imp.item) ||
        !get_uint(body, "first_visible_at", UINT64_MAX, &imp.first_visible_mono_ms) ||
        !get_uint(body, "visible_ms", UINT64_MAX, &imp.visible_ms) ||
        !get_f32(body, "max_visible_fraction", &imp.max_visible_fraction) ||
        !get_uint(body, "focused_ms", UINT64_MAX, &imp.focused_ms))
        return false;
    *st = sightline_logger_record_impression(h->logger, id, &imp, now_at(t), NULL);
    return true;
}

static bool step_flush(Host *h, const cJSON *body, uint64_t t, SightlineStatus *st) {
    (void)body;
    *st = sightline_logger_flush(h->logger, now_at(t));
    return true;
}

static bool step_set_enabled(Host *h, const cJSON *body, uint64_t t, SightlineStatus *st) {
    bool enabled, purge;
    if (!get_bool(body, "enabled", &enabled) || !get_bool(body, "purge", &purge))
        return false;
    *st = sightline_logger_set_enabled(h->logger, enabled, purge, now_at(t));
    return true;
}

static bool step_restart(Host *h, const cJSON *body, uint64_t t, SightlineStatus *st) {
    uint64_t seed;
    *st = SIGHTLINE_STATUS_OK;
    return get_uint(body, "seed", UINT64_MAX, &seed) && host_restart(h, seed, t);
}

/* Pending failures belong to the store, so they carry over a restart. */
static bool step_fail_store(Host *h, const cJSON *body, uint64_t t, SightlineStatus *st) {
    uint32_t count;
    (void)t;
    *st = SIGHTLINE_STATUS_OK;
    if (!get_u32(body, "count", &count))
        return false;
    h->store.failing += count;
    return true;
}

typedef struct {
    const char *name;
    StepFn *run;
    const char *keys[7]; /* the body's fields, NULL-terminated */
} StepKind;

static const StepKind STEP_KINDS[] = {
    {"start_page_view", step_start_page_view, {"page", "request_id", "layout", NULL}},
    {"end_page_view", step_end_page_view, {"page_view", NULL}},
    {"visibility", step_visibility, {"page_view", "item", "fraction", NULL}},
    {"focus", step_focus, {"page_view", "item", "focused", NULL}},
    {"app_hidden", step_app_hidden, {NULL}},
    {"app_visible", step_app_visible, {NULL}},
    {"impression", step_impression,
     {"page_view", "item", "first_visible_at", "visible_ms", "max_visible_fraction", "focused_ms",
      NULL}},
    {"flush", step_flush, {NULL}},
    {"set_enabled", step_set_enabled, {"enabled", "purge", NULL}},
    {"restart", step_restart, {"seed", NULL}},
    {"fail_store", step_fail_store, {"count", NULL}},
};

/* A refusal is part of the outcome: {"step": i, "rule": name}. */
static bool note_refusal(Host *h, size_t index) {
    uint32_t rule;
    if (!check(sightline_logger_last_refusal(h->logger, &rule), "sightline_logger_last_refusal"))
        return false;
    const char *name = sightline_rule_name(rule);
    if (!name)
        return fail("last_refusal gave rule code %u, which sightline_rule_name does not know",
                    (unsigned)rule);
    cJSON *o = append_object(h->refused);
    return o && add_uint(o, "step", index) && add_string(o, "rule", name);
}

/* README step 2: finds the step's one kind, runs it and records a refusal. */
static bool apply_step(Host *h, size_t index, const cJSON *step, uint64_t t) {
    const cJSON *body = NULL;
    for (const cJSON *m = step->child; m; m = m->next) {
        if (strcmp(m->string, "at") == 0)
            continue;
        if (body)
            return fail("a step has exactly one kind besides \"at\"");
        body = m;
    }
    if (!body)
        return fail("a step needs a kind besides \"at\"");
    for (size_t k = 0; k < sizeof STEP_KINDS / sizeof *STEP_KINDS; k++) {
        const StepKind *kind = &STEP_KINDS[k];
        if (strcmp(kind->name, body->string) != 0)
            continue;
        SightlineStatus st = SIGHTLINE_STATUS_OK;
        if (!only_keys(body, kind->name, kind->keys) || !kind->run(h, body, t, &st))
            return false;
        if (st == SIGHTLINE_STATUS_REFUSED)
            return note_refusal(h, index);
        return check(st, kind->name);
    }
    return fail("unknown step kind \"%s\"", body->string);
}

/* ---- Stats --------------------------------------------------------------------------- */

/* Only non-zero counts, under their stable names. */
static bool add_counts(cJSON *stats, const char *key, const uint64_t *counts, size_t slots,
                       const char *(*name_of)(uint32_t)) {
    cJSON *map = cJSON_AddObjectToObject(stats, key);
    if (!added(map))
        return false;
    for (uint32_t code = 0; code < slots; code++) {
        if (counts[code] == 0)
            continue;
        const char *name = name_of(code);
        if (!name)
            return fail("stats.%s: code %u is counted but has no name", key, (unsigned)code);
        if (!add_uint(map, name, counts[code]))
            return false;
    }
    return true;
}

static bool add_stats(Host *h) {
    SightlineStats s;
    cJSON *o;
    return check(sightline_logger_stats(h->logger, &s), "sightline_logger_stats") &&
           added(o = cJSON_AddObjectToObject(h->outcome, "stats")) &&
           add_uint(o, "recorded", s.recorded) &&
           add_uint(o, "sampled_out", s.sampled_out) && add_uint(o, "deduped", s.deduped) &&
           add_uint(o, "issued", s.issued) && add_uint(o, "delivered", s.delivered) &&
           add_uint(o, "invalid", s.invalid) && add_uint(o, "uploads", s.uploads) &&
           add_uint(o, "retries", s.retries) && add_uint(o, "bytes_delivered", s.bytes_delivered) &&
           add_uint(o, "store_errors", s.store_errors) &&
           add_uint(o, "corrupt_records", s.corrupt_records) &&
           add_counts(o, "dropped", s.dropped_by_reason, SIGHTLINE_DROP_REASON_SLOTS,
                      sightline_drop_reason_name) &&
           add_counts(o, "invalid_by_rule", s.invalid_by_rule, SIGHTLINE_RULE_SLOTS,
                      sightline_rule_name);
}

/* ---- The run ------------------------------------------------------------------------- */

/* The checks the Rust runner makes on load: known keys, steps in order, until after them. */
static bool check_scenario(const cJSON *sc, const cJSON **steps, uint64_t *until) {
    static const char *const keys[] = {"name",  "description", "config", "responses",
                                       "steps", "until",       "expect", NULL};
    const cJSON *responses = cJSON_GetObjectItemCaseSensitive(sc, "responses");
    Response r;
    uint64_t last = 0, at;
    if (!only_keys(sc, "scenario", keys) || !get_uint(sc, "until", UINT64_MAX, until))
        return false;
    if (responses && !cJSON_IsArray(responses))
        return fail("responses: expected an array");
    for (const cJSON *e = responses ? responses->child : NULL; e; e = e->next)
        if (!read_response(e, &r))
            return false;
    *steps = member(sc, "steps");
    if (!*steps || !cJSON_IsArray(*steps))
        return fail("steps: expected an array");
    for (const cJSON *s = (*steps)->child; s; s = s->next, last = at) {
        if (!cJSON_IsObject(s) || !get_uint(s, "at", UINT64_MAX, &at))
            return fail("each step is an object with \"at\"");
        if (at < last)
            return fail("steps go back in time: %" PRIu64 " after %" PRIu64, at, last);
    }
    if (*until < last)
        return fail("until %" PRIu64 " is before the last step at %" PRIu64, *until, last);
    return true;
}

/* The README's host loop, from the start to the stats. */
static bool run(Host *h) {
    const cJSON *steps;
    uint64_t until;
    const cJSON *config = member(h->scenario, "config");
    const cJSON *responses = cJSON_GetObjectItemCaseSensitive(h->scenario, "responses");
    if (!check_scenario(h->scenario, &steps, &until) || !config ||
        !read_config(config, &h->config, &h->pages))
        return false;
    h->next_response = responses ? responses->child : NULL;
    h->outcome = cJSON_CreateObject();
    if (!h->outcome || !(h->refused = cJSON_AddArrayToObject(h->outcome, "refused")) ||
        !(h->uploads = cJSON_AddArrayToObject(h->outcome, "uploads")) ||
        !(h->delivered = cJSON_AddArrayToObject(h->outcome, "delivered")))
        return fail("out of memory");
    if (!host_resume(h, h->config.seed, 0) || !drain(h, 0))
        return false;
    size_t index = 0;
    for (const cJSON *step = steps->child; step; step = step->next, index++) {
        uint64_t t = (uint64_t)cJSON_GetObjectItemCaseSensitive(step, "at")->valuedouble;
        if (!fire_timers(h, t) || !apply_step(h, index, step, t) || !drain(h, t))
            return fail("steps[%zu] failed", index);
    }
    return fire_timers(h, until) && add_stats(h);
}

/* ---- Comparing with `expect` --------------------------------------------------------- */

static bool same_leaf(const cJSON *e, const cJSON *a) {
    if ((e->type & 0xFF) != (a->type & 0xFF))
        return false;
    if (cJSON_IsNumber(e))
        return e->valuedouble == a->valuedouble; /* exact: integers stay integers */
    if (cJSON_IsString(e))
        return strcmp(e->valuestring, a->valuestring) == 0;
    return true; /* null, true, false */
}

/* `base.key` or `base[index]`, allocated. */
static char *child_path(const char *base, const char *key, size_t index) {
    int n = key ? snprintf(NULL, 0, "%s.%s", base, key) : snprintf(NULL, 0, "%s[%zu]", base, index);
    char *p = n >= 0 ? malloc((size_t)n + 1) : NULL;
    if (p && key)
        snprintf(p, (size_t)n + 1, "%s.%s", base, key);
    else if (p)
        snprintf(p, (size_t)n + 1, "%s[%zu]", base, index);
    return p;
}

static void print_difference(const char *path, const cJSON *e, const cJSON *a) {
    char *es = e ? cJSON_PrintUnformatted(e) : NULL;
    char *as = a ? cJSON_PrintUnformatted(a) : NULL;
    printf("%s: expected %s, actual %s\n", path, es ? es : "(absent)", as ? as : "(absent)");
    cJSON_free(es);
    cJSON_free(as);
}

static void diff(const char *path, const cJSON *e, const cJSON *a, size_t *count);

static void diff_child(const char *path, const char *key, size_t index, const cJSON *e,
                       const cJSON *a, size_t *count) {
    char *p = child_path(path, key, index);
    if (!p) {
        fail("out of memory comparing %s", path);
        (*count)++;
        return;
    }
    diff(p, e, a, count);
    free(p);
}

/* Counts and prints every field where `a` differs from `e`, descending into objects and arrays. */
static void diff(const char *path, const cJSON *e, const cJSON *a, size_t *count) {
    if (e && a && cJSON_IsObject(e) && cJSON_IsObject(a)) {
        for (const cJSON *m = e->child; m; m = m->next)
            diff_child(path, m->string, 0, m, cJSON_GetObjectItemCaseSensitive(a, m->string),
                       count);
        for (const cJSON *m = a->child; m; m = m->next)
            if (!cJSON_GetObjectItemCaseSensitive(e, m->string))
                diff_child(path, m->string, 0, NULL, m, count);
    } else if (e && a && cJSON_IsArray(e) && cJSON_IsArray(a)) {
        const cJSON *x = e->child, *y = a->child;
        for (size_t i = 0; x || y; i++, x = x ? x->next : NULL, y = y ? y->next : NULL)
            diff_child(path, NULL, i, x, y, count);
    } else if (!e || !a || cJSON_IsObject(e) || cJSON_IsArray(e) || !same_leaf(e, a)) {
        print_difference(path, e, a);
        (*count)++;
    }
}

int main(int argc, char **argv) {
    if (argc != 2) {
        fprintf(stderr, "usage: %s <scenario.json>\n", argv[0]);
        return 2;
    }
    Bytes text = {0};
    Host h = {0};
    int exit_code = 2;
    if (read_file(argv[1], &text)) {
        h.scenario = cJSON_Parse((const char *)text.data);
        if (!h.scenario)
            fail("%s: not JSON", argv[1]);
    }
    if (h.scenario && run(&h)) {
        const cJSON *expect = cJSON_GetObjectItemCaseSensitive(h.scenario, "expect");
        if (!expect) {
            char *actual = cJSON_Print(h.outcome);
            fail("%s has no \"expect\" (not blessed); the outcome is:\n%s", argv[1],
                 actual ? actual : "");
            cJSON_free(actual);
        } else {
            size_t differences = 0;
            diff("expect", expect, h.outcome, &differences);
            exit_code = differences ? 1 : 0;
        }
    }
    if (h.running)
        check(sightline_logger_free(h.logger), "sightline_logger_free");
    cJSON_Delete(h.outcome);
    cJSON_Delete(h.scenario);
    free(h.pages);
    free(h.page_views);
    store_free(&h.store);
    free(text.data);
    return exit_code;
}
