/*
 * The C API's specification, one behaviour per test: `test_api <name>` runs one (ctest
 * registers each). Built with ASan and UBSan, so a leak, double free or invalid access
 * fails the test as surely as a wrong value. The store here is a small in-memory one.
 */
#define _POSIX_C_SOURCE 200809L /* mkdtemp */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "sightline.h"

#define CHECK(cond)                                                                   \
    do {                                                                              \
        if (!(cond)) {                                                                \
            fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, #cond); \
            exit(1);                                                                  \
        }                                                                             \
    } while (0)

/* A call must give exactly this status; the message names both. */
#define EXPECT(call, expected)                                                             \
    do {                                                                                   \
        SightlineStatus got_ = (call);                                                     \
        if (got_ != (expected)) {                                                          \
            fprintf(stderr, "%s:%d: %s gave %s, expected %s\n", __FILE__, __LINE__, #call, \
                    name_of(got_), name_of(expected));                                     \
            exit(1);                                                                       \
        }                                                                                  \
    } while (0)

#define OK(call) EXPECT(call, SIGHTLINE_STATUS_OK)

static const char *name_of(SightlineStatus s) {
    const char *name = sightline_status_name((uint32_t)s);
    return name ? name : "(not a status)";
}

static SightlineNow at(uint64_t mono) {
    SightlineNow now = {mono, 1700000000000ull + mono};
    return now;
}

/* ---- an in-memory store: values by key, and the journal ---- */

#define MAX_VALUES 64

typedef struct {
    char key[SIGHTLINE_MAX_KEY_BYTES];
    uint8_t *bytes;
    size_t len;
} Value;

typedef struct {
    Value values[MAX_VALUES];
    size_t count;
    uint8_t *journal;
    size_t journal_len;
} Store;

static Value *find(Store *s, const char *key) {
    for (size_t i = 0; i < s->count; i++) {
        if (strcmp(s->values[i].key, key) == 0) return &s->values[i];
    }
    return NULL;
}

static uint8_t *copy_bytes(const uint8_t *bytes, size_t len) {
    uint8_t *copy = malloc(len ? len : 1);
    CHECK(copy != NULL);
    if (len) memcpy(copy, bytes, len);
    return copy;
}

static void store_apply(Store *s, const SightlineStoreOp *op) {
    Value *v = find(s, op->key);
    switch (op->kind) {
    case SIGHTLINE_STORE_OP_KIND_PUT:
        if (!v) {
            CHECK(s->count < MAX_VALUES);
            v = &s->values[s->count++];
            memcpy(v->key, op->key, sizeof v->key);
        } else {
            free(v->bytes);
        }
        v->bytes = copy_bytes(op->bytes, op->len);
        v->len = op->len;
        break;
    case SIGHTLINE_STORE_OP_KIND_REMOVE:
        if (v) {
            free(v->bytes);
            *v = s->values[--s->count];
        }
        break;
    case SIGHTLINE_STORE_OP_KIND_APPEND: {
        uint8_t *grown = realloc(s->journal, s->journal_len + op->len + 1);
        CHECK(grown != NULL);
        memcpy(grown + s->journal_len, op->bytes, op->len);
        s->journal = grown;
        s->journal_len += op->len;
        break;
    }
    case SIGHTLINE_STORE_OP_KIND_CLEAR_JOURNAL:
        s->journal_len = 0;
        break;
    default:
        CHECK(!"unknown store op kind");
    }
}

static void store_free(Store *s) {
    for (size_t i = 0; i < s->count; i++) free(s->values[i].bytes);
    free(s->journal);
    memset(s, 0, sizeof *s);
}

/* Resumes a logger over what `s` holds. */
static SightlineStatus resume(const SightlineConfig *config, Store *s, uint64_t t,
                              SightlineLogger *out) {
    SightlineStoredValue values[MAX_VALUES];
    for (size_t i = 0; i < s->count; i++) {
        values[i].key = s->values[i].key;
        values[i].value = s->values[i].bytes;
        values[i].len = s->values[i].len;
    }
    return sightline_logger_resume(config, values, s->count, s->journal, s->journal_len,
                                   at(t), out);
}

/* Performs every store operation the logger asks for; returns how many. */
static int drain_store(SightlineLogger l, Store *s) {
    int n = 0;
    SightlineStoreOp op;
    SightlineStatus st;
    while ((st = sightline_logger_poll_store_op(l, &op)) == SIGHTLINE_STATUS_OK) {
        store_apply(s, &op);
        OK(sightline_logger_handle_store_result(l, op.id, SIGHTLINE_STORE_RESULT_DONE));
        n++;
    }
    EXPECT(st, SIGHTLINE_STATUS_EMPTY);
    return n;
}

static void tv_config(SightlineConfig *c) {
    OK(sightline_config_init(c));
    c->app_id = "com.example.tv";
    c->app_version = "1.0.0";
    c->platform = SIGHTLINE_PLATFORM_TV;
    c->app_key = "key-1";
    c->seed = 42;
}

static SightlineLogger started(Store *s) {
    SightlineConfig c;
    tv_config(&c);
    SightlineLogger l;
    OK(resume(&c, s, 0, &l));
    drain_store(l, s);
    return l;
}

static uint64_t page_view(SightlineLogger l, uint64_t t) {
    uint64_t pv = 0;
    OK(sightline_logger_start_page_view(l, "home", NULL, NULL, 0, NULL, 0, at(t), &pv));
    return pv;
}

static SightlineImpression impression(const char *item_id, uint64_t first, uint64_t visible) {
    SightlineImpression imp = {{item_id, NULL, 0, 0}, first, visible, 1.0f, 0};
    return imp;
}

static SightlineStats stats_of(SightlineLogger l) {
    SightlineStats s;
    OK(sightline_logger_stats(l, &s));
    return s;
}

/* Logs one impression of title:1 (1.5 s), closes the batch and takes its upload. */
static SightlineUpload *one_upload(SightlineLogger l, Store *s) {
    uint64_t pv = page_view(l, 0);
    SightlineImpression imp = impression("title:1", 0, 1500);
    OK(sightline_logger_record_impression(l, pv, &imp, at(2000), NULL));
    OK(sightline_logger_flush(l, at(2000)));
    drain_store(l, s);
    SightlineUpload *u = NULL;
    OK(sightline_logger_poll_upload(l, at(2000), &u));
    return u;
}

/* ---- the tests ---- */

static void status_names(void) {
    CHECK(strcmp(sightline_status_name(SIGHTLINE_STATUS_OK), "SIGHTLINE_STATUS_OK") == 0);
    CHECK(strcmp(sightline_status_name(SIGHTLINE_STATUS_REFUSED), "SIGHTLINE_STATUS_REFUSED") == 0);
    CHECK(strcmp(sightline_status_name(SIGHTLINE_STATUS_INTERNAL), "SIGHTLINE_STATUS_INTERNAL") == 0);
    CHECK(sightline_status_name(999) == NULL);
    CHECK(strcmp(sightline_rule_name(6), "below_threshold") == 0);
    CHECK(sightline_rule_name(SIGHTLINE_RULE_SLOTS) == NULL);
    CHECK(strcmp(sightline_drop_reason_name(3), "retries_exhausted") == 0);
    CHECK(sightline_drop_reason_name(SIGHTLINE_DROP_REASON_SLOTS) == NULL);
}

static void config_init_gives_core_defaults(void) {
    SightlineConfig c;
    memset(&c, 0xab, sizeof c);
    OK(sightline_config_init(&c));
    CHECK(strcmp(c.app_id, "") == 0 && strcmp(c.device, "") == 0);
    CHECK(c.platform == SIGHTLINE_PLATFORM_OTHER);
    CHECK(c.seed == 0);
    CHECK(c.sample_rate_ppm == 1000000);
    CHECK(c.sample_key == SIGHTLINE_SAMPLE_KEY_INSTALL);
    CHECK(c.contract.min_visible_pct == 50 && c.contract.min_visible_ms == 1000);
    CHECK(c.contract.max_id_len == 64 && c.contract.pages == NULL && c.contract.page_count == 0);
    CHECK(c.contract.reentry == SIGHTLINE_REENTRY_ONCE_PER_PAGE_VIEW);
    CHECK(c.max_batch_impressions == 1000 && c.max_attempts == 300);
}

static void happy_path_upload_decodes_in_capture(void) {
    Store s = {0};
    SightlineLogger l = started(&s);
    const char *ids[] = {"title:1", "title:2", "title:3"};
    const uint32_t rows[] = {2, 1};
    uint64_t pv = 0;
    OK(sightline_logger_start_page_view(l, "home", "req-7", ids, 3, rows, 2, at(10), &pv));
    CHECK(pv != 0);

    /* title:1 is seen for 1.5 s, over the contract's 1 s: the core qualifies it. */
    SightlineItem first = {"title:1", "art:1", 0, 0};
    OK(sightline_logger_visibility(l, pv, &first, 1.0f, at(100)));
    OK(sightline_logger_visibility(l, pv, &first, 0.0f, at(1600)));
    /* title:3 was measured by the host. */
    SightlineImpression third = {{"title:3", NULL, 1, 0}, 200, 1500, 0.9f, 0};
    SightlineRecorded recorded;
    OK(sightline_logger_record_impression(l, pv, &third, at(1700), &recorded));
    CHECK(recorded.kind == SIGHTLINE_RECORDED_KIND_LOGGED && recorded.seq == 2);
    OK(sightline_logger_app_hidden(l, at(1800)));

    CHECK(drain_store(l, &s) > 0);
    SightlineUpload *u = NULL;
    OK(sightline_logger_poll_upload(l, at(1800), &u));
    CHECK(u != NULL && strcmp(u->path, "/v1/batches") == 0 && u->body_len > 0);
    int has_key = 0;
    for (size_t i = 0; i < u->header_count; i++) {
        if (strcmp(u->headers[i].name, "x-sightline-app-key") == 0)
            has_key = strcmp(u->headers[i].value, "key-1") == 0;
    }
    CHECK(has_key);

    SightlineCapture cap;
    OK(sightline_capture_new(NULL, &cap));
    OK(sightline_capture_receive(cap, u->body, u->body_len));
    size_t n = 0;
    OK(sightline_capture_impression_count(cap, &n));
    CHECK(n == 2);
    SightlineCapturedImpression a, b;
    OK(sightline_capture_impression(cap, 0, &a));
    OK(sightline_capture_impression(cap, 1, &b));
    CHECK(strcmp(a.item_id, "title:1") == 0 && strcmp(a.artwork_id, "art:1") == 0);
    CHECK(a.visible_ms == 1500 && a.max_visible_pct == 100 && a.seq == 1);
    CHECK(strcmp(a.page, "home") == 0 && strcmp(a.request_id, "req-7") == 0);
    CHECK(strcmp(b.item_id, "title:3") == 0 && b.artwork_id == NULL && b.row == 1);
    EXPECT(sightline_capture_impression(cap, 2, &a), SIGHTLINE_STATUS_INVALID_ARGUMENT);
    char session[64];
    size_t len = 0;
    OK(sightline_logger_session_id(l, session, sizeof session, &len));
    CHECK(strcmp(a.session_id, session) == 0 && strlen(session) == len);
    OK(sightline_capture_assert_no_violations(cap, NULL, 0, NULL));
    OK(sightline_capture_free(cap));

    OK(sightline_logger_handle_upload_result(l, u->id, 200, NULL, at(1900)));
    OK(sightline_upload_free(u));
    drain_store(l, &s);
    SightlineStats st = stats_of(l);
    CHECK(st.recorded == 2 && st.issued == 2 && st.delivered == 2 && st.pending == 0);
    CHECK(st.uploads == 1 && st.bytes_delivered > 0);
    uint64_t deadline;
    EXPECT(sightline_logger_poll_timeout(l, &deadline), SIGHTLINE_STATUS_EMPTY);
    OK(sightline_logger_free(l));
    store_free(&s);
}

static void null_arguments_give_null_argument(void) {
    Store s = {0};
    SightlineConfig c;
    tv_config(&c);
    SightlineLogger l;
    EXPECT(sightline_config_init(NULL), SIGHTLINE_STATUS_NULL_ARGUMENT);
    EXPECT(sightline_logger_resume(NULL, NULL, 0, NULL, 0, at(0), &l), SIGHTLINE_STATUS_NULL_ARGUMENT);
    EXPECT(sightline_logger_resume(&c, NULL, 0, NULL, 0, at(0), NULL), SIGHTLINE_STATUS_NULL_ARGUMENT);
    EXPECT(sightline_logger_resume(&c, NULL, 1, NULL, 0, at(0), &l), SIGHTLINE_STATUS_NULL_ARGUMENT);
    c.app_key = NULL;
    EXPECT(resume(&c, &s, 0, &l), SIGHTLINE_STATUS_NULL_ARGUMENT);

    l = started(&s);
    uint64_t pv = page_view(l, 0);
    SightlineItem no_id = {NULL, NULL, 0, 0};
    EXPECT(sightline_logger_visibility(l, pv, NULL, 1.0f, at(1)), SIGHTLINE_STATUS_NULL_ARGUMENT);
    EXPECT(sightline_logger_visibility(l, pv, &no_id, 1.0f, at(1)), SIGHTLINE_STATUS_NULL_ARGUMENT);
    EXPECT(sightline_logger_focus(l, pv, NULL, true, at(1)), SIGHTLINE_STATUS_NULL_ARGUMENT);
    EXPECT(sightline_logger_record_impression(l, pv, NULL, at(1), NULL), SIGHTLINE_STATUS_NULL_ARGUMENT);
    EXPECT(sightline_logger_start_page_view(l, NULL, NULL, NULL, 0, NULL, 0, at(1), &pv),
           SIGHTLINE_STATUS_NULL_ARGUMENT);
    EXPECT(sightline_logger_start_page_view(l, "home", NULL, NULL, 0, NULL, 0, at(1), NULL),
           SIGHTLINE_STATUS_NULL_ARGUMENT);
    EXPECT(sightline_logger_poll_upload(l, at(1), NULL), SIGHTLINE_STATUS_NULL_ARGUMENT);
    EXPECT(sightline_logger_poll_store_op(l, NULL), SIGHTLINE_STATUS_NULL_ARGUMENT);
    EXPECT(sightline_logger_poll_timeout(l, NULL), SIGHTLINE_STATUS_NULL_ARGUMENT);
    EXPECT(sightline_logger_stats(l, NULL), SIGHTLINE_STATUS_NULL_ARGUMENT);
    EXPECT(sightline_logger_last_refusal(l, NULL), SIGHTLINE_STATUS_NULL_ARGUMENT);
    EXPECT(sightline_logger_session_id(l, NULL, 0, NULL), SIGHTLINE_STATUS_NULL_ARGUMENT);
    /* None of it reached the core: nothing counted, nothing lost. */
    SightlineStats st = stats_of(l);
    CHECK(st.invalid == 0 && st.recorded == 0);
    OK(sightline_logger_free(l));
    store_free(&s);
}

static void invalid_utf8_is_refused_with_status(void) {
    Store s = {0};
    SightlineLogger l = started(&s);
    uint64_t pv = page_view(l, 0);
    SightlineImpression imp = impression("title:\xff\xfe", 0, 1500);
    EXPECT(sightline_logger_record_impression(l, pv, &imp, at(2000), NULL), SIGHTLINE_STATUS_INVALID_UTF8);
    EXPECT(sightline_logger_start_page_view(l, "ho\xc3", NULL, NULL, 0, NULL, 0, at(1), &pv),
           SIGHTLINE_STATUS_INVALID_UTF8);
    imp = impression("title:1", 0, 1500);
    imp.item.artwork_id = "\x80";
    EXPECT(sightline_logger_record_impression(l, pv, &imp, at(2000), NULL), SIGHTLINE_STATUS_INVALID_UTF8);
    /* The logger is unharmed: a good impression still goes through. */
    imp.item.artwork_id = NULL;
    OK(sightline_logger_record_impression(l, pv, &imp, at(2000), NULL));
    CHECK(stats_of(l).recorded == 1);
    OK(sightline_logger_free(l));
    store_free(&s);
}

static void unterminated_string_is_too_long(void) {
    Store s = {0};
    SightlineLogger l = started(&s);
    uint64_t pv = page_view(l, 0);
    /* No NUL anywhere: the scan must stop at the bound, inside this buffer. */
    size_t size = SIGHTLINE_MAX_STRING_BYTES + 100;
    char *unterminated = malloc(size);
    CHECK(unterminated != NULL);
    memset(unterminated, 'a', size);
    SightlineImpression imp = impression(unterminated, 0, 1500);
    EXPECT(sightline_logger_record_impression(l, pv, &imp, at(2000), NULL), SIGHTLINE_STATUS_STRING_TOO_LONG);
    free(unterminated);
    OK(sightline_logger_free(l));
    store_free(&s);
}

static void over_long_item_id_is_refused_and_counted(void) {
    Store s = {0};
    SightlineLogger l = started(&s);
    uint64_t pv = page_view(l, 0);
    char id[301];
    memset(id, 'x', 300);
    id[300] = '\0';
    SightlineImpression imp = impression(id, 0, 1500);
    EXPECT(sightline_logger_record_impression(l, pv, &imp, at(2000), NULL), SIGHTLINE_STATUS_REFUSED);
    uint32_t rule = 99;
    OK(sightline_logger_last_refusal(l, &rule));
    CHECK(strcmp(sightline_rule_name(rule), "item_id") == 0);
    SightlineStats st = stats_of(l);
    CHECK(st.invalid == 1 && st.invalid_by_rule[rule] == 1 && st.recorded == 0);
    OK(sightline_logger_free(l));
    store_free(&s);
}

static void expect_refusal(SightlineLogger l, SightlineStatus got, const char *rule_name) {
    EXPECT(got, SIGHTLINE_STATUS_REFUSED);
    uint32_t rule;
    OK(sightline_logger_last_refusal(l, &rule));
    if (strcmp(sightline_rule_name(rule), rule_name) != 0) {
        fprintf(stderr, "refused as %s, expected %s\n", sightline_rule_name(rule), rule_name);
        exit(1);
    }
}

static void contract_rule_names_the_rule(void) {
    Store s = {0};
    SightlineLogger l = started(&s);
    uint32_t rule;
    EXPECT(sightline_logger_last_refusal(l, &rule), SIGHTLINE_STATUS_EMPTY);
    uint64_t pv = page_view(l, 0);
    SightlineImpression short_one = impression("title:1", 0, 200);
    expect_refusal(l, sightline_logger_record_impression(l, pv, &short_one, at(2000), NULL), "too_short");
    SightlineImpression faint = impression("title:2", 0, 1500);
    faint.max_visible_fraction = 0.2f;
    expect_refusal(l, sightline_logger_record_impression(l, pv, &faint, at(2000), NULL), "below_threshold");
    SightlineImpression fine = impression("title:3", 0, 1500);
    expect_refusal(l, sightline_logger_record_impression(l, 999, &fine, at(2000), NULL), "unknown_page_view");
    expect_refusal(l, sightline_logger_start_page_view(l, "bad page!", NULL, NULL, 0, NULL, 0, at(1), &pv),
                   "page_name");
    SightlineStats st = stats_of(l);
    CHECK(st.invalid == 4 && st.recorded == 0);
    OK(sightline_logger_free(l));
    store_free(&s);
}

static void wrong_freed_and_forged_handles_are_invalid(void) {
    Store s = {0};
    SightlineLogger l = started(&s);
    SightlineLogger copy = l;
    OK(sightline_logger_free(l));
    SightlineStats st;
    EXPECT(sightline_logger_stats(copy, &st), SIGHTLINE_STATUS_INVALID_HANDLE);
    EXPECT(sightline_logger_free(copy), SIGHTLINE_STATUS_INVALID_HANDLE);
    EXPECT(sightline_logger_flush(copy, at(1)), SIGHTLINE_STATUS_INVALID_HANDLE);
    SightlineLogger zero = {0}, forged = {0x123456789abcdefull};
    EXPECT(sightline_logger_stats(zero, &st), SIGHTLINE_STATUS_INVALID_HANDLE);
    EXPECT(sightline_logger_stats(forged, &st), SIGHTLINE_STATUS_INVALID_HANDLE);
    /* A new logger may reuse the slot; the old handle still does not reach it. */
    Store s2 = {0};
    SightlineLogger fresh = started(&s2);
    EXPECT(sightline_logger_stats(copy, &st), SIGHTLINE_STATUS_INVALID_HANDLE);
    OK(sightline_logger_stats(fresh, &st));
    OK(sightline_logger_free(fresh));
    store_free(&s);
    store_free(&s2);
}

static void handle_of_another_kind_is_invalid(void) {
    SightlineCapture cap;
    OK(sightline_capture_new(NULL, &cap));
    SightlineLogger as_logger = {cap.id};
    SightlineStats st;
    EXPECT(sightline_logger_stats(as_logger, &st), SIGHTLINE_STATUS_INVALID_HANDLE);
    EXPECT(sightline_logger_free(as_logger), SIGHTLINE_STATUS_INVALID_HANDLE);
    size_t n;
    OK(sightline_capture_impression_count(cap, &n)); /* still alive */
    OK(sightline_capture_free(cap));
}

static void handle_table_is_bounded(void) {
    SightlineCapture caps[SIGHTLINE_MAX_HANDLES];
    for (size_t i = 0; i < SIGHTLINE_MAX_HANDLES; i++) OK(sightline_capture_new(NULL, &caps[i]));
    SightlineCapture one_more;
    EXPECT(sightline_capture_new(NULL, &one_more), SIGHTLINE_STATUS_TOO_MANY_HANDLES);
    OK(sightline_capture_free(caps[0]));
    OK(sightline_capture_new(NULL, &one_more));
    CHECK(one_more.id != caps[0].id);
    OK(sightline_capture_free(one_more));
    for (size_t i = 1; i < SIGHTLINE_MAX_HANDLES; i++) OK(sightline_capture_free(caps[i]));
}

static void bad_enum_values_are_invalid_arguments(void) {
    Store s = {0};
    SightlineConfig c;
    tv_config(&c);
    SightlineLogger l;
    c.platform = 99;
    EXPECT(resume(&c, &s, 0, &l), SIGHTLINE_STATUS_INVALID_ARGUMENT);
    tv_config(&c);
    c.contract.reentry = 7;
    EXPECT(resume(&c, &s, 0, &l), SIGHTLINE_STATUS_INVALID_ARGUMENT);
    tv_config(&c);
    c.sample_key = 5;
    EXPECT(resume(&c, &s, 0, &l), SIGHTLINE_STATUS_INVALID_ARGUMENT);
    l = started(&s);
    SightlineStoreOp op;
    SightlineImpression imp = impression("title:1", 0, 1500);
    uint64_t pv = page_view(l, 0);
    OK(sightline_logger_record_impression(l, pv, &imp, at(2000), NULL));
    OK(sightline_logger_poll_store_op(l, &op));
    EXPECT(sightline_logger_handle_store_result(l, op.id, 42), SIGHTLINE_STATUS_INVALID_ARGUMENT);
    /* The operation is still the one in flight. */
    store_apply(&s, &op);
    OK(sightline_logger_handle_store_result(l, op.id, SIGHTLINE_STORE_RESULT_DONE));
    OK(sightline_logger_free(l));
    store_free(&s);
}

static void invalid_config_names_the_field(void) {
    Store s = {0};
    SightlineConfig c;
    tv_config(&c);
    c.seed = 0;
    SightlineLogger l;
    EXPECT(resume(&c, &s, 0, &l), SIGHTLINE_STATUS_CONFIG);
    char message[256];
    size_t len = 0;
    OK(sightline_last_error_message(message, sizeof message, &len));
    CHECK(len > 0 && strstr(message, "seed") != NULL);
    tv_config(&c);
    c.app_id = "not an id";
    EXPECT(resume(&c, &s, 0, &l), SIGHTLINE_STATUS_CONFIG);
    OK(sightline_last_error_message(message, sizeof message, &len));
    CHECK(strstr(message, "app_id") != NULL);
    /* A successful call clears it. */
    OK(sightline_config_init(&c));
    OK(sightline_last_error_message(message, sizeof message, &len));
    CHECK(len == 0 && message[0] == '\0');
}

static void layout_lengths_must_add_up(void) {
    Store s = {0};
    SightlineLogger l = started(&s);
    const char *ids[] = {"title:1", "title:2", "title:3"};
    const uint32_t short_rows[] = {2, 2};
    const uint32_t huge_rows[] = {UINT32_MAX, UINT32_MAX};
    uint64_t pv;
    EXPECT(sightline_logger_start_page_view(l, "home", NULL, ids, 3, short_rows, 2, at(1), &pv),
           SIGHTLINE_STATUS_INVALID_ARGUMENT);
    EXPECT(sightline_logger_start_page_view(l, "home", NULL, ids, 3, huge_rows, 2, at(1), &pv),
           SIGHTLINE_STATUS_INVALID_ARGUMENT);
    EXPECT(sightline_logger_start_page_view(l, "home", NULL, NULL, 3, short_rows, 2, at(1), &pv),
           SIGHTLINE_STATUS_NULL_ARGUMENT);
    const uint32_t rows[] = {2, 1};
    OK(sightline_logger_start_page_view(l, "home", NULL, ids, 3, rows, 2, at(1), &pv));
    /* The layout is in force: an item elsewhere on it is refused. */
    SightlineImpression misplaced = {{"title:3", NULL, 0, 1}, 1, 1500, 1.0f, 0};
    expect_refusal(l, sightline_logger_record_impression(l, pv, &misplaced, at(2000), NULL),
                   "wrong_position");
    OK(sightline_logger_free(l));
    store_free(&s);
}

static void session_id_buffer_too_small_reports_length(void) {
    Store s = {0};
    SightlineLogger l = started(&s);
    char small[4] = "zzz";
    size_t len = 0;
    EXPECT(sightline_logger_session_id(l, small, sizeof small, &len), SIGHTLINE_STATUS_BUFFER_TOO_SMALL);
    CHECK(len > 4 && strcmp(small, "zzz") == 0);
    char *fits = malloc(len + 1);
    CHECK(fits != NULL);
    size_t len2 = 0;
    OK(sightline_logger_session_id(l, fits, len + 1, &len2));
    CHECK(len2 == len && strlen(fits) == len);
    free(fits);
    OK(sightline_logger_free(l));
    store_free(&s);
}

static void store_ops_are_lent_until_acknowledged(void) {
    Store s = {0};
    SightlineConfig c;
    tv_config(&c);
    SightlineLogger l;
    OK(resume(&c, &s, 0, &l));
    SightlineStoreOp first, again, next;
    OK(sightline_logger_poll_store_op(l, &first));
    /* One at a time: the next waits for this one's result; this one stays valid. */
    EXPECT(sightline_logger_poll_store_op(l, &again), SIGHTLINE_STATUS_EMPTY);
    CHECK(first.kind == SIGHTLINE_STORE_OP_KIND_PUT && first.len > 0 && first.bytes != NULL);
    store_apply(&s, &first);
    OK(sightline_logger_handle_store_result(l, first.id, SIGHTLINE_STORE_RESULT_DONE));
    EXPECT(sightline_logger_handle_store_result(l, first.id, SIGHTLINE_STORE_RESULT_DONE),
           SIGHTLINE_STATUS_UNKNOWN_ID);
    if (sightline_logger_poll_store_op(l, &next) == SIGHTLINE_STATUS_OK) {
        CHECK(next.id != first.id);
        /* A failure is counted, not fatal. */
        OK(sightline_logger_handle_store_result(l, next.id, SIGHTLINE_STORE_RESULT_IO_ERROR));
        CHECK(stats_of(l).store_errors == 1);
    }
    drain_store(l, &s);
    OK(sightline_logger_free(l));
    store_free(&s);
}

static void unknown_ids_are_reported(void) {
    Store s = {0};
    SightlineLogger l = started(&s);
    EXPECT(sightline_logger_handle_upload_result(l, 999, 200, NULL, at(1)), SIGHTLINE_STATUS_UNKNOWN_ID);
    EXPECT(sightline_logger_handle_store_result(l, 999, SIGHTLINE_STORE_RESULT_DONE),
           SIGHTLINE_STATUS_UNKNOWN_ID);
    OK(sightline_logger_free(l));
    store_free(&s);
}

static void restart_resumes_stored_batch(void) {
    Store s = {0};
    SightlineLogger l = started(&s);
    char session[64];
    size_t len;
    OK(sightline_logger_session_id(l, session, sizeof session, &len));
    uint64_t pv = page_view(l, 0);
    SightlineImpression imp = impression("title:9", 0, 1500);
    OK(sightline_logger_record_impression(l, pv, &imp, at(2000), NULL));
    OK(sightline_logger_flush(l, at(2100)));
    drain_store(l, &s);
    /* The process dies before uploading. */
    OK(sightline_logger_free(l));

    SightlineConfig c;
    tv_config(&c);
    c.seed = 43;
    OK(resume(&c, &s, 5000, &l));
    drain_store(l, &s);
    char resumed[64];
    OK(sightline_logger_session_id(l, resumed, sizeof resumed, &len));
    CHECK(strcmp(session, resumed) == 0);
    SightlineUpload *u = NULL;
    OK(sightline_logger_poll_upload(l, at(5000), &u));
    SightlineCapture cap;
    OK(sightline_capture_new(NULL, &cap));
    OK(sightline_capture_receive(cap, u->body, u->body_len));
    SightlineCapturedImpression got;
    OK(sightline_capture_impression(cap, 0, &got));
    CHECK(strcmp(got.item_id, "title:9") == 0 && got.seq == 1);
    OK(sightline_capture_free(cap));
    OK(sightline_logger_handle_upload_result(l, u->id, 200, NULL, at(5100)));
    OK(sightline_upload_free(u));
    CHECK(stats_of(l).delivered == 1);
    OK(sightline_logger_free(l));
    store_free(&s);
}

static void every_upload_freed_once(void) {
    OK(sightline_upload_free(NULL));
    Store s = {0};
    SightlineLogger l = started(&s);
    uint64_t pv = page_view(l, 0);
    SightlineImpression imp = impression("title:1", 0, 1500);
    OK(sightline_logger_record_impression(l, pv, &imp, at(2000), NULL));
    OK(sightline_logger_flush(l, at(2000)));
    drain_store(l, &s);
    SightlineUpload *first = NULL, *none = NULL;
    OK(sightline_logger_poll_upload(l, at(2000), &first));
    /* At most one in flight. */
    EXPECT(sightline_logger_poll_upload(l, at(2000), &none), SIGHTLINE_STATUS_EMPTY);
    CHECK(none == NULL);
    OK(sightline_logger_handle_upload_result(l, first->id, SIGHTLINE_NETWORK_ERROR, NULL, at(2100)));
    uint64_t deadline = 0;
    OK(sightline_logger_poll_timeout(l, &deadline));
    CHECK(deadline > 2100);
    OK(sightline_logger_handle_timeout(l, at(deadline)));
    drain_store(l, &s);
    SightlineUpload *retry = NULL;
    OK(sightline_logger_poll_upload(l, at(deadline), &retry));
    CHECK(retry->id != first->id);
    /* Freed in the other order, after the result, on purpose. */
    OK(sightline_logger_handle_upload_result(l, retry->id, 503, "1", at(deadline)));
    OK(sightline_upload_free(retry));
    OK(sightline_upload_free(first));
    SightlineStats st = stats_of(l);
    CHECK(st.uploads == 2 && st.retries == 1 && st.pending == 1);
    OK(sightline_logger_free(l));
    store_free(&s);
}

static void panic_poisons_only_its_handle(void) {
    Store s = {0}, s2 = {0};
    SightlineLogger doomed = started(&s), healthy = started(&s2);
    EXPECT(sightline_debug_panic(doomed), SIGHTLINE_STATUS_INTERNAL);
    SightlineStats st;
    EXPECT(sightline_logger_stats(doomed, &st), SIGHTLINE_STATUS_INTERNAL);
    EXPECT(sightline_logger_flush(doomed, at(1)), SIGHTLINE_STATUS_INTERNAL);
    OK(sightline_logger_stats(healthy, &st));
    uint64_t pv = page_view(healthy, 0);
    SightlineImpression imp = impression("title:1", 0, 1500);
    OK(sightline_logger_record_impression(healthy, pv, &imp, at(2000), NULL));
    OK(sightline_logger_free(doomed));
    EXPECT(sightline_logger_stats(doomed, &st), SIGHTLINE_STATUS_INVALID_HANDLE);
    OK(sightline_logger_free(healthy));
    store_free(&s);
    store_free(&s2);
}

static void capture_assert_reports_violations(void) {
    Store s = {0};
    SightlineLogger l = started(&s);
    SightlineUpload *u = one_upload(l, &s);

    /* The producer's contract asks for 2 s; the app logged 1.5 s. */
    SightlineConfig c;
    OK(sightline_config_init(&c));
    c.contract.min_visible_ms = 2000;
    SightlineCapture cap;
    OK(sightline_capture_new(&c.contract, &cap));
    EXPECT(sightline_capture_receive(cap, (const uint8_t *)"not gzip", 8), SIGHTLINE_STATUS_DECODE);
    OK(sightline_capture_receive(cap, u->body, u->body_len));
    size_t violations = 0;
    OK(sightline_capture_violation_count(cap, &violations));
    CHECK(violations == 1);
    char message[512];
    size_t len = 0;
    EXPECT(sightline_capture_assert_no_violations(cap, message, sizeof message, &len),
           SIGHTLINE_STATUS_REFUSED);
    CHECK(len > 0 && strstr(message, "too_short") != NULL && strstr(message, "title:1") != NULL);
    /* A small buffer gets the start of the message, NUL-terminated, and the full length. */
    char small[8];
    size_t full = 0;
    EXPECT(sightline_capture_assert_no_violations(cap, small, sizeof small, &full), SIGHTLINE_STATUS_REFUSED);
    CHECK(full == len && strlen(small) == sizeof small - 1);
    OK(sightline_capture_free(cap));
    OK(sightline_upload_free(u));
    OK(sightline_logger_free(l));
    store_free(&s);
}

/* Nothing listens on this loopback port: every upload fails to connect. */
#define UNREACHABLE "http://127.0.0.1:9"

/* Starts a page view on `rt` and waits while a tile is on screen 1.6 s; returns the
   tile's impression (title:1, 1.5 s) for the app to record. */
static SightlineImpression shown_for_1500_ms(SightlineRuntime rt, uint64_t *pv) {
    OK(sightline_runtime_start_page_view(rt, "home", NULL, NULL, 0, NULL, 0, pv));
    SightlineNow t;
    OK(sightline_runtime_now(rt, &t));
    struct timespec visible = {1, 600000000};
    nanosleep(&visible, NULL);
    return impression("title:1", t.mono_ms, 1500);
}

static void runtime_keeps_undelivered_data_across_restart(void) {
    char dir[] = "/tmp/sightline-c-test-XXXXXX";
    CHECK(mkdtemp(dir) != NULL);
    SightlineConfig c;
    tv_config(&c);
    c.seed = 0; /* the runtime takes entropy from the OS */
    SightlineRuntime rt;
    OK(sightline_runtime_start(&c, dir, UNREACHABLE, &rt));
    uint64_t pv;
    SightlineImpression imp = shown_for_1500_ms(rt, &pv);
    SightlineRecorded rec;
    OK(sightline_runtime_record_impression(rt, pv, &imp, &rec));
    CHECK(rec.kind == SIGHTLINE_RECORDED_KIND_LOGGED);
    SightlineImpression bad = imp;
    bad.item.item_id = "bad id";
    EXPECT(sightline_runtime_record_impression(rt, pv, &bad, &rec), SIGHTLINE_STATUS_REFUSED);
    SightlineStats st;
    OK(sightline_runtime_shutdown(rt, 200, &st));
    CHECK(st.recorded == 1 && st.invalid == 1 && st.pending == 1 && st.delivered == 0);
    /* Stopped: calls say so, the final counters stay readable, a second shutdown agrees. */
    EXPECT(sightline_runtime_flush(rt), SIGHTLINE_STATUS_STOPPED);
    SightlineStats again;
    OK(sightline_runtime_stats(rt, &again));
    CHECK(again.pending == 1);
    OK(sightline_runtime_shutdown(rt, 0, &again));
    CHECK(again.recorded == st.recorded);
    OK(sightline_runtime_free(rt, 0));
    EXPECT(sightline_runtime_stats(rt, &again), SIGHTLINE_STATUS_INVALID_HANDLE);

    /* The next start over the same directory resumes the session and its pending batch. */
    OK(sightline_runtime_start(&c, dir, UNREACHABLE, &rt));
    OK(sightline_runtime_stats(rt, &again));
    CHECK(again.recorded == 1 && again.pending == 1);
    OK(sightline_runtime_free(rt, 0));
    char rm[64];
    snprintf(rm, sizeof rm, "rm -rf %s", dir);
    CHECK(system(rm) == 0);
}

static void runtime_start_reports_bad_directory(void) {
    SightlineConfig c;
    tv_config(&c);
    SightlineRuntime rt;
    EXPECT(sightline_runtime_start(&c, "/proc/no-such-dir/sightline", UNREACHABLE, &rt), SIGHTLINE_STATUS_STORE);
    char message[256];
    size_t len;
    OK(sightline_last_error_message(message, sizeof message, &len));
    CHECK(strstr(message, "/proc/no-such-dir/sightline") != NULL);
    EXPECT(sightline_runtime_start(&c, NULL, UNREACHABLE, &rt), SIGHTLINE_STATUS_NULL_ARGUMENT);
}

static void error_message_belongs_to_the_last_call(void) {
    Store s = {0};
    SightlineConfig c;
    tv_config(&c);
    c.seed = 0;
    SightlineLogger l;
    EXPECT(resume(&c, &s, 0, &l), SIGHTLINE_STATUS_CONFIG);
    char message[256];
    size_t len = 0;
    OK(sightline_last_error_message(message, sizeof message, &len));
    CHECK(strstr(message, "seed") != NULL);
    /* A later failure that has no sentence of its own leaves no stale one. */
    SightlineLogger forged = {12345};
    SightlineStats st;
    EXPECT(sightline_logger_stats(forged, &st), SIGHTLINE_STATUS_INVALID_HANDLE);
    OK(sightline_last_error_message(message, sizeof message, &len));
    CHECK(len == 0 && message[0] == '\0');
}

static void out_params_untouched_on_failure(void) {
    Store s = {0};
    SightlineLogger l = started(&s);
    size_t len = 777;
    EXPECT(sightline_logger_session_id(l, NULL, 100, &len), SIGHTLINE_STATUS_NULL_ARGUMENT);
    CHECK(len == 777);
    uint64_t pv = 999;
    EXPECT(sightline_logger_start_page_view(l, "bad page!", NULL, NULL, 0, NULL, 0, at(1), &pv),
           SIGHTLINE_STATUS_REFUSED);
    CHECK(pv == 999);
    SightlineConfig c;
    tv_config(&c);
    c.contract.require_artwork = 2;
    SightlineLogger other = {0};
    EXPECT(resume(&c, &s, 0, &other), SIGHTLINE_STATUS_INVALID_ARGUMENT);
    CHECK(other.id == 0);
    OK(sightline_logger_free(l));
    store_free(&s);
}

static void garbage_retry_after_still_reports_the_status(void) {
    Store s = {0};
    SightlineLogger l = started(&s);
    SightlineUpload *u = one_upload(l, &s);
    /* A proxy sent bytes that are not text: the 503 still counts, with default backoff. */
    OK(sightline_logger_handle_upload_result(l, u->id, 503, "\xff" "5", at(2000)));
    OK(sightline_upload_free(u));
    SightlineStats st = stats_of(l);
    CHECK(st.uploads == 1 && st.pending == 1);
    uint64_t deadline;
    OK(sightline_logger_poll_timeout(l, &deadline));
    CHECK(deadline > 2000 && deadline < 2000 + 60000);
    OK(sightline_logger_free(l));
    store_free(&s);
}

typedef struct {
    SightlineRuntime rt;
    SightlineStatus status;
    SightlineStats stats;
} Shutdown;

static void *shut_down(void *arg) {
    Shutdown *s = arg;
    s->status = sightline_runtime_shutdown(s->rt, 1500, &s->stats);
    return NULL;
}

static void concurrent_shutdown_and_free_agree(void) {
    char dir[] = "/tmp/sightline-c-test-XXXXXX";
    CHECK(mkdtemp(dir) != NULL);
    SightlineConfig c;
    tv_config(&c);
    SightlineRuntime rt;
    OK(sightline_runtime_start(&c, dir, UNREACHABLE, &rt));
    uint64_t pv;
    SightlineImpression imp = shown_for_1500_ms(rt, &pv);
    OK(sightline_runtime_record_impression(rt, pv, &imp, NULL));
    /* One thread shuts down (retrying an unreachable collector for up to 1.5 s) while
       another asks for the counters and then frees: both wait for it, none sees BUSY. */
    Shutdown a = {rt, SIGHTLINE_STATUS_INTERNAL, {0}};
    pthread_t thread;
    CHECK(pthread_create(&thread, NULL, shut_down, &a) == 0);
    struct timespec moment = {0, 200000000};
    nanosleep(&moment, NULL);
    SightlineStats seen;
    OK(sightline_runtime_stats(rt, &seen));
    OK(sightline_runtime_free(rt, 0));
    CHECK(pthread_join(thread, NULL) == 0);
    OK(a.status);
    CHECK(a.stats.recorded == 1 && a.stats.pending == 1 && seen.recorded == 1);
    EXPECT(sightline_runtime_stats(rt, &seen), SIGHTLINE_STATUS_INVALID_HANDLE);
    char rm[64];
    snprintf(rm, sizeof rm, "rm -rf %s", dir);
    CHECK(system(rm) == 0);
}

typedef struct {
    const char *name;
    void (*run)(void);
} Test;

#define TEST(name) {#name, name}

static const Test TESTS[] = {
    TEST(status_names),
    TEST(config_init_gives_core_defaults),
    TEST(happy_path_upload_decodes_in_capture),
    TEST(null_arguments_give_null_argument),
    TEST(invalid_utf8_is_refused_with_status),
    TEST(unterminated_string_is_too_long),
    TEST(over_long_item_id_is_refused_and_counted),
    TEST(contract_rule_names_the_rule),
    TEST(wrong_freed_and_forged_handles_are_invalid),
    TEST(handle_of_another_kind_is_invalid),
    TEST(handle_table_is_bounded),
    TEST(bad_enum_values_are_invalid_arguments),
    TEST(invalid_config_names_the_field),
    TEST(layout_lengths_must_add_up),
    TEST(session_id_buffer_too_small_reports_length),
    TEST(store_ops_are_lent_until_acknowledged),
    TEST(unknown_ids_are_reported),
    TEST(restart_resumes_stored_batch),
    TEST(every_upload_freed_once),
    TEST(panic_poisons_only_its_handle),
    TEST(capture_assert_reports_violations),
    TEST(runtime_keeps_undelivered_data_across_restart),
    TEST(runtime_start_reports_bad_directory),
    TEST(error_message_belongs_to_the_last_call),
    TEST(out_params_untouched_on_failure),
    TEST(garbage_retry_after_still_reports_the_status),
    TEST(concurrent_shutdown_and_free_agree),
};

int main(int argc, char **argv) {
    size_t count = sizeof TESTS / sizeof TESTS[0];
    /* `--count N`: ctest checks that every test here is registered there. */
    if (argc == 3 && strcmp(argv[1], "--count") == 0) {
        if (strtoul(argv[2], NULL, 10) == count) return 0;
        fprintf(stderr, "CMakeLists.txt registers %s tests, test_api.c has %zu\n", argv[2], count);
        return 1;
    }
    if (argc != 2) {
        fprintf(stderr, "usage: %s <test name> | --count N\n", argv[0]);
        return 2;
    }
    for (size_t i = 0; i < count; i++) {
        if (strcmp(TESTS[i].name, argv[1]) == 0) {
            TESTS[i].run();
            printf("ok %s\n", argv[1]);
            return 0;
        }
    }
    fprintf(stderr, "no test named %s\n", argv[1]);
    return 2;
}
