/*
 * Sightline C ABI. Generated from bindings/c by cbindgen: do not edit; run
 * `cargo run -p sightline-c-header` after changing the Rust sources.
 *
 * Conventions: every function returns a SightlineStatus (SIGHTLINE_STATUS_OK = 0); results come
 * back through out-parameters; strings are NUL-terminated UTF-8; handles are small structs
 * passed by value, checked on every call (a freed or wrong handle gives
 * SIGHTLINE_STATUS_INVALID_HANDLE); what the library returns is written into caller memory or
 * freed with its *_free function. Functions guarded by SIGHTLINE_STD exist in the Linux
 * (std) build only; define it when linking that build (the CMake package does).
 */

#ifndef SIGHTLINE_H
#define SIGHTLINE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/**
 * Most objects alive at once: a device runs one logger, a test a few captures. Fixed, so
 * the table itself never allocates and freeing every object gives back all the heap.
 */
#define SIGHTLINE_MAX_HANDLES 64

/**
 * The `handle_upload_result` status for "no answer": DNS, connection, TLS or timeout.
 */
#define SIGHTLINE_NETWORK_ERROR 0

/**
 * Longest store key, NUL included: keys are short fixed names and numbered batches.
 */
#define SIGHTLINE_MAX_KEY_BYTES 64

/**
 * Longest C string read, NUL excluded: ids are at most 255 bytes and paths or endpoints
 * fit easily; the bound stops a scan of an unterminated buffer early.
 */
#define SIGHTLINE_MAX_STRING_BYTES 4096

/**
 * Room in [`SightlineStats`] for per-rule counts: more than the rules that exist, so new
 * rules do not change the struct's size.
 */
#define SIGHTLINE_RULE_SLOTS 32

/**
 * Room in [`SightlineStats`] for per-reason drop counts, likewise.
 */
#define SIGHTLINE_DROP_REASON_SLOTS 16

/**
 * The outcome of a call. 0 is success; every other value says what went wrong.
 */
typedef enum SightlineStatus {
  /**
   * Done.
   */
  SIGHTLINE_STATUS_OK = 0,
  /**
   * A poll call has nothing to hand out (no store operation, upload or deadline).
   */
  SIGHTLINE_STATUS_EMPTY = 1,
  /**
   * The logger refused the input: it breaks a contract rule or misuses the API (an
   * unknown page view). Counted; `sightline_logger_last_refusal` names the rule (for
   * the runtime: `sightline_last_error_message`).
   */
  SIGHTLINE_STATUS_REFUSED = 2,
  /**
   * A required pointer argument was NULL.
   */
  SIGHTLINE_STATUS_NULL_ARGUMENT = 3,
  /**
   * A string is not valid UTF-8.
   */
  SIGHTLINE_STATUS_INVALID_UTF8 = 4,
  /**
   * A string has no NUL within `SIGHTLINE_MAX_STRING_BYTES` bytes.
   */
  SIGHTLINE_STATUS_STRING_TOO_LONG = 5,
  /**
   * The handle was never issued, was freed, or is of another kind.
   */
  SIGHTLINE_STATUS_INVALID_HANDLE = 6,
  /**
   * An argument is out of range: an unknown enum value, layout lengths that do not add
   * up, an empty id list.
   */
  SIGHTLINE_STATUS_INVALID_ARGUMENT = 7,
  /**
   * A caller buffer is too small; the length needed was written to the length
   * out-parameter.
   */
  SIGHTLINE_STATUS_BUFFER_TOO_SMALL = 8,
  /**
   * The configuration is invalid (see `sightline_last_error_message`).
   */
  SIGHTLINE_STATUS_CONFIG = 9,
  /**
   * A result names a store operation or upload that is not in flight.
   */
  SIGHTLINE_STATUS_UNKNOWN_ID = 10,
  /**
   * The store could not be opened or read.
   */
  SIGHTLINE_STATUS_STORE = 11,
  /**
   * Bytes that are not a Sightline upload body.
   */
  SIGHTLINE_STATUS_DECODE = 12,
  /**
   * Bare metal: another call is inside the library (a call from an interrupt handler
   * while the main loop is in Sightline). Nothing was done, nothing was allocated;
   * call again later.
   */
  SIGHTLINE_STATUS_BUSY = 13,
  /**
   * The runtime was shut down.
   */
  SIGHTLINE_STATUS_STOPPED = 14,
  /**
   * A bug in Sightline (a caught panic). If it happened inside a call on a handle, that
   * handle is poisoned: every later call on it returns this; free it and start again.
   */
  SIGHTLINE_STATUS_INTERNAL = 15,
  /**
   * `SIGHTLINE_MAX_HANDLES` objects are alive: free one first.
   */
  SIGHTLINE_STATUS_TOO_MANY_HANDLES = 16,
} SightlineStatus;

/**
 * What happened to a recorded impression.
 */
enum SightlineRecordedKind
#if defined(__cplusplus) || __STDC_VERSION__ >= 202311L
  : uint32_t
#endif // defined(__cplusplus) || __STDC_VERSION__ >= 202311L
 {
  /**
   * Buffered for upload under `seq`.
   */
  SIGHTLINE_RECORDED_KIND_LOGGED = 0,
  /**
   * Left out by sampling.
   */
  SIGHTLINE_RECORDED_KIND_SAMPLED_OUT = 1,
  /**
   * A repeat the dedup rules absorbed.
   */
  SIGHTLINE_RECORDED_KIND_DEDUPED = 2,
  /**
   * Logging is disabled (opt-out); nothing was recorded.
   */
  SIGHTLINE_RECORDED_KIND_DISABLED = 3,
};
#ifndef __cplusplus
#if __STDC_VERSION__ >= 202311L
typedef enum SightlineRecordedKind SightlineRecordedKind;
#else
typedef uint32_t SightlineRecordedKind;
#endif // __STDC_VERSION__ >= 202311L
#endif // __cplusplus

/**
 * The kind of a store operation.
 */
enum SightlineStoreOpKind
#if defined(__cplusplus) || __STDC_VERSION__ >= 202311L
  : uint32_t
#endif // defined(__cplusplus) || __STDC_VERSION__ >= 202311L
 {
  /**
   * Atomically replace the value under `key` with `bytes` (after a crash: the old or
   * the new value, never a mix).
   */
  SIGHTLINE_STORE_OP_KIND_PUT = 0,
  /**
   * Remove `key`; removing a missing key is not an error.
   */
  SIGHTLINE_STORE_OP_KIND_REMOVE = 1,
  /**
   * Append `bytes` to the journal (need not be synced: a torn tail is detected).
   */
  SIGHTLINE_STORE_OP_KIND_APPEND = 2,
  /**
   * Empty the journal.
   */
  SIGHTLINE_STORE_OP_KIND_CLEAR_JOURNAL = 3,
};
#ifndef __cplusplus
#if __STDC_VERSION__ >= 202311L
typedef enum SightlineStoreOpKind SightlineStoreOpKind;
#else
typedef uint32_t SightlineStoreOpKind;
#endif // __STDC_VERSION__ >= 202311L
#endif // __cplusplus

/**
 * The client platform, as it appears on the wire.
 */
enum SightlinePlatform
#if defined(__cplusplus) || __STDC_VERSION__ >= 202311L
  : uint32_t
#endif // defined(__cplusplus) || __STDC_VERSION__ >= 202311L
 {
  /**
   * A TV or set-top box.
   */
  SIGHTLINE_PLATFORM_TV = 0,
  /**
   * An Android app.
   */
  SIGHTLINE_PLATFORM_ANDROID = 1,
  /**
   * An iOS app.
   */
  SIGHTLINE_PLATFORM_IOS = 2,
  /**
   * A web page.
   */
  SIGHTLINE_PLATFORM_WEB = 3,
  /**
   * Anything else.
   */
  SIGHTLINE_PLATFORM_OTHER = 4,
};
#ifndef __cplusplus
#if __STDC_VERSION__ >= 202311L
typedef enum SightlinePlatform SightlinePlatform;
#else
typedef uint32_t SightlinePlatform;
#endif // __STDC_VERSION__ >= 202311L
#endif // __cplusplus

/**
 * What the sampling decision is keyed on.
 */
enum SightlineSampleKey
#if defined(__cplusplus) || __STDC_VERSION__ >= 202311L
  : uint32_t
#endif // defined(__cplusplus) || __STDC_VERSION__ >= 202311L
 {
  /**
   * Whole installs in or out: per-user analyses stay complete.
   */
  SIGHTLINE_SAMPLE_KEY_INSTALL = 0,
  /**
   * Whole sessions in or out.
   */
  SIGHTLINE_SAMPLE_KEY_SESSION = 1,
};
#ifndef __cplusplus
#if __STDC_VERSION__ >= 202311L
typedef enum SightlineSampleKey SightlineSampleKey;
#else
typedef uint32_t SightlineSampleKey;
#endif // __STDC_VERSION__ >= 202311L
#endif // __cplusplus

/**
 * Whether a second qualifying exposure of an item at the same place in one page view is
 * a new impression.
 */
enum SightlineReentry
#if defined(__cplusplus) || __STDC_VERSION__ >= 202311L
  : uint32_t
#endif // defined(__cplusplus) || __STDC_VERSION__ >= 202311L
 {
  /**
   * At most one impression per item and place per page view.
   */
  SIGHTLINE_REENTRY_ONCE_PER_PAGE_VIEW = 0,
  /**
   * Leaving the viewport and coming back is a new impression.
   */
  SIGHTLINE_REENTRY_AFTER_LEAVING = 1,
};
#ifndef __cplusplus
#if __STDC_VERSION__ >= 202311L
typedef enum SightlineReentry SightlineReentry;
#else
typedef uint32_t SightlineReentry;
#endif // __STDC_VERSION__ >= 202311L
#endif // __cplusplus

/**
 * How a store operation ended.
 */
enum SightlineStoreResult
#if defined(__cplusplus) || __STDC_VERSION__ >= 202311L
  : uint32_t
#endif // defined(__cplusplus) || __STDC_VERSION__ >= 202311L
 {
  /**
   * Performed (for `PUT`: durably).
   */
  SIGHTLINE_STORE_RESULT_DONE = 0,
  /**
   * The write would exceed the device's storage budget.
   */
  SIGHTLINE_STORE_RESULT_QUOTA_EXCEEDED = 1,
  /**
   * The medium failed.
   */
  SIGHTLINE_STORE_RESULT_IO_ERROR = 2,
};
#ifndef __cplusplus
#if __STDC_VERSION__ >= 202311L
typedef enum SightlineStoreResult SightlineStoreResult;
#else
typedef uint32_t SightlineStoreResult;
#endif // __STDC_VERSION__ >= 202311L
#endif // __cplusplus

/**
 * The data contract (see the core's `Contract`).
 */
typedef struct SightlineContract {
  /**
   * The version these rules are published as.
   */
  uint32_t version;
  /**
   * An impression needs at least this percentage of the item visible...
   */
  uint32_t min_visible_pct;
  /**
   * ...continuously for at least this long.
   */
  uint32_t min_visible_ms;
  /**
   * Upper bound on a plausible visible duration.
   */
  uint32_t max_visible_ms;
  /**
   * Longest item, artwork, page or request id (at most 255).
   */
  uint32_t max_id_len;
  /**
   * Rows and columns are 0-based and below this.
   */
  uint32_t max_position;
  /**
   * 1 if every impression must name its artwork, else 0 (a byte, checked: a C `bool`
   * field set by `memset` could hold anything).
   */
  uint8_t require_artwork;
  /**
   * Page names the app may use (`page_count` strings); none allows any well-formed name.
   */
  const char *const *pages;
  /**
   * Entries of `pages`.
   */
  size_t page_count;
  /**
   * A `SightlineReentry`.
   */
  uint32_t reentry;
} SightlineContract;

#if defined(SIGHTLINE_STD)
/**
 * A capture. A plain value; once freed, every copy is invalid.
 */
typedef struct SightlineCapture {
  /**
   * Opaque; 0 is never a valid handle.
   */
  uint64_t id;
} SightlineCapture;
#endif

#if defined(SIGHTLINE_STD)
/**
 * One impression as the capture received it. Strings are NUL-terminated and owned by
 * the capture: valid until it is freed.
 */
typedef struct SightlineCapturedImpression {
  /**
   * The session that logged it.
   */
  const char *session_id;
  /**
   * Its seq in the session.
   */
  uint64_t seq;
  /**
   * The page view's page name.
   */
  const char *page;
  /**
   * The page view's per-session ordinal.
   */
  uint64_t page_view;
  /**
   * The page view's request id, or NULL.
   */
  const char *request_id;
  /**
   * The item.
   */
  const char *item_id;
  /**
   * Its artwork, or NULL.
   */
  const char *artwork_id;
  /**
   * 0-based row.
   */
  uint32_t row;
  /**
   * 0-based column.
   */
  uint32_t column;
  /**
   * Milliseconds from the page view's start to first visibility.
   */
  int64_t first_visible_ms;
  /**
   * How long it was visible.
   */
  uint32_t visible_ms;
  /**
   * Largest visible percentage.
   */
  uint32_t max_visible_pct;
  /**
   * How long it was focused.
   */
  uint32_t focused_ms;
  /**
   * Codes of the rules it breaks (`rule_count` of them; none for a good impression).
   */
  const uint32_t *rules;
  /**
   * Entries of `rules`.
   */
  size_t rule_count;
} SightlineCapturedImpression;
#endif

/**
 * Everything a logger needs to start. Fill it with `sightline_config_init` first, then
 * set the fields you need; strings must stay valid during the call that reads them.
 */
typedef struct SightlineConfig {
  /**
   * The app's id, e.g. "com.example.tv".
   */
  const char *app_id;
  /**
   * The app's version.
   */
  const char *app_version;
  /**
   * A `SightlinePlatform`.
   */
  uint32_t platform;
  /**
   * Device model ("LG-OLED55C3"), not an identifier.
   */
  const char *device;
  /**
   * Install id chosen by the host; "" logs none.
   */
  const char *install_id;
  /**
   * Key the collector uses to accept this app's uploads.
   */
  const char *app_key;
  /**
   * Seed for session ids and retry jitter: entropy from the platform at every start
   * (a hardware RNG, /dev/urandom), never a constant; 0 is refused.
   */
  uint64_t seed;
  /**
   * Share of impressions kept, in parts per million.
   */
  uint32_t sample_rate_ppm;
  /**
   * A `SightlineSampleKey`.
   */
  uint32_t sample_key;
  /**
   * The data contract.
   */
  struct SightlineContract contract;
  /**
   * Impressions per batch before it closes.
   */
  uint32_t max_batch_impressions;
  /**
   * Age at which a batch closes.
   */
  uint64_t max_batch_age_ms;
  /**
   * Bound on queued (closed, compressed) batches.
   */
  uint32_t max_queue_bytes;
  /**
   * First retry delay.
   */
  uint64_t retry_base_ms;
  /**
   * Longest retry delay.
   */
  uint64_t retry_max_ms;
  /**
   * Attempts per batch before it is dropped (and counted).
   */
  uint32_t max_attempts;
} SightlineConfig;

/**
 * A value the host read back from its store at start.
 */
typedef struct SightlineStoredValue {
  /**
   * Its key, as given in the `PUT`.
   */
  const char *key;
  /**
   * Its bytes.
   */
  const uint8_t *value;
  /**
   * Bytes at `value`.
   */
  size_t len;
} SightlineStoredValue;

/**
 * Both clocks: monotonic milliseconds (durations, deadlines) and wall-clock milliseconds
 * since the Unix epoch (stamps only). Either may go backwards; nothing breaks.
 */
typedef struct SightlineNow {
  /**
   * Monotonic milliseconds.
   */
  uint64_t mono_ms;
  /**
   * Wall-clock milliseconds since the Unix epoch.
   */
  uint64_t wall_ms;
} SightlineNow;

/**
 * A logger. A plain value: copy it freely; once freed, every copy is invalid.
 */
typedef struct SightlineLogger {
  /**
   * Opaque; 0 is never a valid handle.
   */
  uint64_t id;
} SightlineLogger;

/**
 * An item at its place on the page.
 */
typedef struct SightlineItem {
  /**
   * The item's id, e.g. "title:81234567".
   */
  const char *item_id;
  /**
   * The artwork shown for it, or NULL.
   */
  const char *artwork_id;
  /**
   * 0-based row.
   */
  uint32_t row;
  /**
   * 0-based column.
   */
  uint32_t column;
} SightlineItem;

/**
 * An impression the host qualified itself.
 */
typedef struct SightlineImpression {
  /**
   * The item and its place.
   */
  struct SightlineItem item;
  /**
   * Monotonic time the exposure started.
   */
  uint64_t first_visible_mono_ms;
  /**
   * How long it stayed visible.
   */
  uint64_t visible_ms;
  /**
   * Largest visible share during the exposure, 0.0..=1.0.
   */
  float max_visible_fraction;
  /**
   * How long it was focused (TV), at most `visible_ms`.
   */
  uint64_t focused_ms;
} SightlineImpression;

/**
 * What happened to a recorded impression, with its seq when logged.
 */
typedef struct SightlineRecorded {
  /**
   * What happened.
   */
  SightlineRecordedKind kind;
  /**
   * The seq it was logged under; 0 unless `kind` is `SIGHTLINE_RECORDED_KIND_LOGGED`.
   */
  uint64_t seq;
} SightlineRecorded;

/**
 * One store operation to perform, then report with
 * `sightline_logger_handle_store_result(id, ...)`. `bytes` points into the logger's
 * memory and stays valid until that result is reported or the logger is freed.
 */
typedef struct SightlineStoreOp {
  /**
   * Pass back to `sightline_logger_handle_store_result`.
   */
  uint64_t id;
  /**
   * What to do.
   */
  SightlineStoreOpKind kind;
  /**
   * The value's key (`PUT`, `REMOVE`), NUL-terminated; "" otherwise.
   */
  char key[SIGHTLINE_MAX_KEY_BYTES];
  /**
   * The value (`PUT`) or the journal bytes (`APPEND`); NULL when `len` is 0 (do not
   * pass it to `memcpy` then).
   */
  const uint8_t *bytes;
  /**
   * Bytes at `bytes`.
   */
  size_t len;
} SightlineStoreOp;

/**
 * An HTTP header of an upload, NUL-terminated ASCII.
 */
typedef struct SightlineHeader {
  /**
   * e.g. "Content-Type".
   */
  const char *name;
  /**
   * e.g. "application/x-protobuf".
   */
  const char *value;
} SightlineHeader;

/**
 * A request to POST `body` to `<collector><path>` with `headers`. Report how it ended
 * with `sightline_logger_handle_upload_result(id, ...)`, then free it with
 * `sightline_upload_free` (in either order; it may be freed on another thread).
 */
typedef struct SightlineUpload {
  /**
   * Pass back to `sightline_logger_handle_upload_result`.
   */
  uint64_t id;
  /**
   * e.g. "/v1/batches".
   */
  const char *path;
  /**
   * `header_count` headers.
   */
  const struct SightlineHeader *headers;
  /**
   * Entries of `headers`.
   */
  size_t header_count;
  /**
   * The body (gzip), `body_len` bytes.
   */
  const uint8_t *body;
  /**
   * Bytes of `body`.
   */
  size_t body_len;
} SightlineUpload;

/**
 * The session's counters. Per session: recorded = sampled_out + deduped + issued, and
 * issued = delivered + dropped + pending.
 */
typedef struct SightlineStats {
  /**
   * Impressions that passed validation.
   */
  uint64_t recorded;
  /**
   * Left out by sampling.
   */
  uint64_t sampled_out;
  /**
   * Absorbed by dedup.
   */
  uint64_t deduped;
  /**
   * Seqs issued.
   */
  uint64_t issued;
  /**
   * Acknowledged by the collector.
   */
  uint64_t delivered;
  /**
   * Dropped for a counted reason, in total.
   */
  uint64_t dropped;
  /**
   * Issued and neither delivered nor dropped yet.
   */
  uint64_t pending;
  /**
   * Inputs refused by the contract or as misuse, in total.
   */
  uint64_t invalid;
  /**
   * Upload attempts handed to the host.
   */
  uint64_t uploads;
  /**
   * Of which retries.
   */
  uint64_t retries;
  /**
   * Compressed bytes of acknowledged uploads.
   */
  uint64_t bytes_delivered;
  /**
   * Store operations that failed.
   */
  uint64_t store_errors;
  /**
   * Stored records skipped for a failed checksum.
   */
  uint64_t corrupt_records;
  /**
   * Drops by reason code (`sightline_drop_reason_name`).
   */
  uint64_t dropped_by_reason[SIGHTLINE_DROP_REASON_SLOTS];
  /**
   * Refusals by rule code (`sightline_rule_name`).
   */
  uint64_t invalid_by_rule[SIGHTLINE_RULE_SLOTS];
} SightlineStats;

#if defined(SIGHTLINE_STD)
/**
 * A running runtime. A plain value; once freed, every copy is invalid.
 */
typedef struct SightlineRuntime {
  /**
   * Opaque; 0 is never a valid handle.
   */
  uint64_t id;
} SightlineRuntime;
#endif

#ifdef __cplusplus
extern "C" {
#endif // __cplusplus

#if defined(SIGHTLINE_STD)
/**
 * Starts a capture checking against `contract` (the one the app's logger runs; NULL: the
 * default contract).
 *
 * # Safety
 * `contract` is NULL or valid as `SightlineContract` describes; `capture` is valid for a
 * write.
 */
enum SightlineStatus sightline_capture_new(const struct SightlineContract *contract,
                                           struct SightlineCapture *capture);
#endif

#if defined(SIGHTLINE_STD)
/**
 * Receives one upload body as the logger produced it. `SIGHTLINE_STATUS_DECODE` for bytes that
 * are not a Sightline upload (nothing changes then).
 *
 * # Safety
 * `body` holds `len` bytes (or is NULL with 0).
 */
enum SightlineStatus sightline_capture_receive(struct SightlineCapture capture,
                                               const uint8_t *body,
                                               size_t len);
#endif

#if defined(SIGHTLINE_STD)
/**
 * Writes how many impressions the capture holds (each (session, seq) once) to `*count`.
 *
 * # Safety
 * `count` is valid for a write.
 */
enum SightlineStatus sightline_capture_impression_count(struct SightlineCapture capture,
                                                        size_t *count);
#endif

#if defined(SIGHTLINE_STD)
/**
 * Writes impression `index` (in arrival and wire order) to `*impression`;
 * `SIGHTLINE_STATUS_INVALID_ARGUMENT` past the end.
 *
 * # Safety
 * `impression` is valid for a write.
 */
enum SightlineStatus sightline_capture_impression(struct SightlineCapture capture,
                                                  size_t index,
                                                  struct SightlineCapturedImpression *impression);
#endif

#if defined(SIGHTLINE_STD)
/**
 * Writes how many rule violations the capture found (per impression and per batch).
 *
 * # Safety
 * `count` is valid for a write.
 */
enum SightlineStatus sightline_capture_violation_count(struct SightlineCapture capture,
                                                       size_t *count);
#endif

#if defined(SIGHTLINE_STD)
/**
 * A producer's CI check: `SIGHTLINE_STATUS_OK` when the capture holds no violation, no input
 * the device refused and no seq conflict; otherwise `SIGHTLINE_STATUS_REFUSED` with the message
 * (rule, item, position, session, seq) copied into `buf` as `sightline_last_error_message`
 * does (a message that does not fit is cut at `capacity - 1` bytes; `*len` is its full
 * length).
 *
 * # Safety
 * `buf` is valid for `capacity` bytes (or NULL with 0); `len` is NULL or valid.
 */
enum SightlineStatus sightline_capture_assert_no_violations(struct SightlineCapture capture,
                                                            char *buf,
                                                            size_t capacity,
                                                            size_t *len);
#endif

#if defined(SIGHTLINE_STD)
/**
 * Frees a capture and every string it lent.
 */
enum SightlineStatus sightline_capture_free(struct SightlineCapture capture);
#endif

/**
 * Starts a logger over what the host's store holds: `values` (`value_count` entries) and
 * the journal's bytes, both empty on a first start. A store that could not be read must
 * not be passed as empty: that would start a new session over old data. The first store
 * operations (a checkpoint) are ready to drain at once. `SIGHTLINE_STATUS_CONFIG` for an invalid
 * configuration.
 *
 * # Safety
 * `config` is valid as `sightline_config_init` describes; `values` holds `value_count`
 * entries (or is NULL with 0); `journal` holds `journal_len` bytes (or is NULL with 0);
 * `logger` is valid for a write.
 */
enum SightlineStatus sightline_logger_resume(const struct SightlineConfig *config,
                                             const struct SightlineStoredValue *values,
                                             size_t value_count,
                                             const uint8_t *journal,
                                             size_t journal_len,
                                             struct SightlineNow now,
                                             struct SightlineLogger *logger);

/**
 * Frees a logger. Queued data not yet stored is lost (what was stored is resumed by the
 * next `sightline_logger_resume`); freeing an invalid handle returns
 * `SIGHTLINE_STATUS_INVALID_HANDLE` and does nothing.
 */
enum SightlineStatus sightline_logger_free(struct SightlineLogger logger);

/**
 * Copies the session id (NUL-terminated) into `buf`; `*len` receives its length.
 *
 * # Safety
 * `buf` is valid for `capacity` bytes; `len` for a write.
 */
enum SightlineStatus sightline_logger_session_id(struct SightlineLogger logger,
                                                 char *buf,
                                                 size_t capacity,
                                                 size_t *len);

/**
 * Starts a page view and writes its id to `*page_view`. `request_id` may be NULL.
 * `layout_ids` (`id_count` strings) and `row_lengths` (`row_count` entries) give the
 * page's layout as the server sent it, flat: row 0's `row_lengths[0]` item ids first,
 * then row 1's, and so on; `row_lengths` NULL means no layout, and lengths that do not
 * add up to `id_count` are `SIGHTLINE_STATUS_INVALID_ARGUMENT`. Impressions of items not
 * on the layout, or elsewhere on it, are then refused.
 *
 * # Safety
 * `page` is a valid C string, `request_id` one or NULL; `layout_ids` holds `id_count`
 * valid C strings and `row_lengths` `row_count` entries (each NULL only with count 0);
 * `page_view` is valid for a write.
 */
enum SightlineStatus sightline_logger_start_page_view(struct SightlineLogger logger,
                                                      const char *page,
                                                      const char *request_id,
                                                      const char *const *layout_ids,
                                                      size_t id_count,
                                                      const uint32_t *row_lengths,
                                                      size_t row_count,
                                                      struct SightlineNow now,
                                                      uint64_t *page_view);

/**
 * Ends a page view: what qualified is logged, exposures still open end now.
 */
enum SightlineStatus sightline_logger_end_page_view(struct SightlineLogger logger,
                                                    uint64_t page_view,
                                                    struct SightlineNow now);

/**
 * The visible share (0.0..=1.0) of an item changed; the core qualifies impressions from
 * these changes (threshold, continuous minimum time, pauses while hidden).
 *
 * # Safety
 * `item` is valid as `SightlineItem` describes.
 */
enum SightlineStatus sightline_logger_visibility(struct SightlineLogger logger,
                                                 uint64_t page_view,
                                                 const struct SightlineItem *item,
                                                 float fraction,
                                                 struct SightlineNow now);

/**
 * An item gained or lost focus (TV remote navigation).
 *
 * # Safety
 * `item` is valid as `SightlineItem` describes.
 */
enum SightlineStatus sightline_logger_focus(struct SightlineLogger logger,
                                            uint64_t page_view,
                                            const struct SightlineItem *item,
                                            bool focused,
                                            struct SightlineNow now);

/**
 * The app went to the background (screen off, another app): viewability pauses, what
 * qualified is logged and the batch closes.
 */
enum SightlineStatus sightline_logger_app_hidden(struct SightlineLogger logger,
                                                 struct SightlineNow now);

/**
 * The app is in the foreground again.
 */
enum SightlineStatus sightline_logger_app_visible(struct SightlineLogger logger,
                                                  struct SightlineNow now);

/**
 * Records an impression the host qualified itself; `*recorded` (may be NULL) says what
 * happened to it.
 *
 * # Safety
 * `impression` is valid as `SightlineImpression` describes; `recorded` is NULL or valid
 * for a write.
 */
enum SightlineStatus sightline_logger_record_impression(struct SightlineLogger logger,
                                                        uint64_t page_view,
                                                        const struct SightlineImpression *impression,
                                                        struct SightlineNow now,
                                                        struct SightlineRecorded *recorded);

/**
 * Closes the open batch so it is stored and sent.
 */
enum SightlineStatus sightline_logger_flush(struct SightlineLogger logger, struct SightlineNow now);

/**
 * Opt-out (`enabled` false; `purge` also deletes what is queued, counted as purged) and
 * opt-in again.
 */
enum SightlineStatus sightline_logger_set_enabled(struct SightlineLogger logger,
                                                  bool enabled,
                                                  bool purge,
                                                  struct SightlineNow now);

/**
 * The deadline from `sightline_logger_poll_timeout` passed.
 */
enum SightlineStatus sightline_logger_handle_timeout(struct SightlineLogger logger,
                                                     struct SightlineNow now);

/**
 * Writes the monotonic time at which to call `sightline_logger_handle_timeout` to
 * `*deadline_mono_ms`; `SIGHTLINE_STATUS_EMPTY` when nothing waits for a timer.
 *
 * # Safety
 * `deadline_mono_ms` is valid for a write.
 */
enum SightlineStatus sightline_logger_poll_timeout(struct SightlineLogger logger,
                                                   uint64_t *deadline_mono_ms);

/**
 * Writes the next store operation to perform to `*op`; `SIGHTLINE_STATUS_EMPTY` when there is
 * none. One is handed out at a time: until its result is reported with
 * `sightline_logger_handle_store_result`, polling again returns `SIGHTLINE_STATUS_EMPTY`
 * (the operation handed out stays valid).
 *
 * # Safety
 * `op` is valid for a write.
 */
enum SightlineStatus sightline_logger_poll_store_op(struct SightlineLogger logger,
                                                    struct SightlineStoreOp *op);

/**
 * Reports how the store operation `id` ended. A failure is counted and what depended on
 * it is not done; the data stays in memory and is written again later.
 */
enum SightlineStatus sightline_logger_handle_store_result(struct SightlineLogger logger,
                                                          uint64_t id,
                                                          uint32_t result);

/**
 * Writes the next upload to POST to `*upload`, owned by the caller until
 * `sightline_upload_free`; `SIGHTLINE_STATUS_EMPTY` when none is due (at most one is in flight).
 *
 * # Safety
 * `upload` is valid for a write.
 */
enum SightlineStatus sightline_logger_poll_upload(struct SightlineLogger logger,
                                                  struct SightlineNow now,
                                                  struct SightlineUpload **upload);

/**
 * Reports how the upload `id` ended: the HTTP `status` (or `SIGHTLINE_NETWORK_ERROR`
 * when there was no answer) and the raw `Retry-After` header text, or NULL. Header text
 * that is not UTF-8 or is unterminated is ignored (as absent): the status still counts.
 *
 * # Safety
 * `retry_after` is NULL or a valid C string.
 */
enum SightlineStatus sightline_logger_handle_upload_result(struct SightlineLogger logger,
                                                           uint64_t id,
                                                           uint16_t status,
                                                           const char *retry_after,
                                                           struct SightlineNow now);

/**
 * Copies the session's counters into `*stats`.
 *
 * # Safety
 * `stats` is valid for a write.
 */
enum SightlineStatus sightline_logger_stats(struct SightlineLogger logger,
                                            struct SightlineStats *stats);

/**
 * Writes the rule code of the logger's last `SIGHTLINE_STATUS_REFUSED` input to `*rule`
 * (`sightline_rule_name` names it); `SIGHTLINE_STATUS_EMPTY` if nothing was refused yet.
 *
 * # Safety
 * `rule` is valid for a write.
 */
enum SightlineStatus sightline_logger_last_refusal(struct SightlineLogger logger, uint32_t *rule);

/**
 * Frees an upload from `sightline_logger_poll_upload`. NULL is ignored. Free each upload
 * exactly once (bare metal: not while `SIGHTLINE_STATUS_BUSY` is returned).
 *
 * # Safety
 * `upload` is NULL or a pointer `sightline_logger_poll_upload` returned, not yet freed.
 */
enum SightlineStatus sightline_upload_free(struct SightlineUpload *upload);

#if defined(SIGHTLINE_FIRMWARE)
/**
 * Returns `size` bytes aligned to `align` (a power of two), or NULL when out of memory.
 */
extern void *sightline_platform_alloc(size_t size, size_t align);
#endif

#if defined(SIGHTLINE_FIRMWARE)
/**
 * Frees what `sightline_platform_alloc` returned for the same size and alignment.
 */
extern void sightline_platform_free(void *ptr, size_t size, size_t align);
#endif

#if defined(SIGHTLINE_FIRMWARE)
/**
 * A bug in Sightline or an allocation failure: must not return; reset or halt. (The
 * library's lock stays held: no call into Sightline can succeed afterwards.)
 */
extern void sightline_platform_panic(void) __attribute__((noreturn));
#endif

#if defined(SIGHTLINE_STD)
/**
 * Starts the runtime: the store in directory `data_dir` (created if missing; what it
 * holds is resumed), uploads to `endpoint` ("https://collector.example.com"). The seed
 * in `config` is used if non-zero, else one is taken from the OS's entropy.
 *
 * # Safety
 * `config` as `sightline_config_init` describes; `data_dir` and `endpoint` valid C
 * strings; `runtime` valid for a write.
 */
enum SightlineStatus sightline_runtime_start(const struct SightlineConfig *config,
                                             const char *data_dir,
                                             const char *endpoint,
                                             struct SightlineRuntime *runtime);
#endif

#if defined(SIGHTLINE_STD)
/**
 * Writes the runtime's clock to `*now`: hosts that qualify impressions themselves take
 * `first_visible_mono_ms` from it.
 *
 * # Safety
 * `now` is valid for a write.
 */
enum SightlineStatus sightline_runtime_now(struct SightlineRuntime runtime,
                                           struct SightlineNow *now);
#endif

#if defined(SIGHTLINE_STD)
/**
 * Copies the session id into `buf` (see `sightline_logger_session_id`).
 *
 * # Safety
 * `buf` is valid for `capacity` bytes; `len` for a write.
 */
enum SightlineStatus sightline_runtime_session_id(struct SightlineRuntime runtime,
                                                  char *buf,
                                                  size_t capacity,
                                                  size_t *len);
#endif

#if defined(SIGHTLINE_STD)
/**
 * Starts a page view (see `sightline_logger_start_page_view`).
 *
 * # Safety
 * As `sightline_logger_start_page_view`.
 */
enum SightlineStatus sightline_runtime_start_page_view(struct SightlineRuntime runtime,
                                                       const char *page,
                                                       const char *request_id,
                                                       const char *const *layout_ids,
                                                       size_t id_count,
                                                       const uint32_t *row_lengths,
                                                       size_t row_count,
                                                       uint64_t *page_view);
#endif

#if defined(SIGHTLINE_STD)
/**
 * Ends a page view.
 */
enum SightlineStatus sightline_runtime_end_page_view(struct SightlineRuntime runtime,
                                                     uint64_t page_view);
#endif

#if defined(SIGHTLINE_STD)
/**
 * The visible share of an item changed. Returns at once: a refusal is counted in the
 * stats (`invalid_by_rule`), not returned.
 *
 * # Safety
 * `item` is valid as `SightlineItem` describes.
 */
enum SightlineStatus sightline_runtime_visibility(struct SightlineRuntime runtime,
                                                  uint64_t page_view,
                                                  const struct SightlineItem *item,
                                                  float fraction);
#endif

#if defined(SIGHTLINE_STD)
/**
 * An item gained or lost focus. Returns at once, as `sightline_runtime_visibility`.
 *
 * # Safety
 * `item` is valid as `SightlineItem` describes.
 */
enum SightlineStatus sightline_runtime_focus(struct SightlineRuntime runtime,
                                             uint64_t page_view,
                                             const struct SightlineItem *item,
                                             bool focused);
#endif

#if defined(SIGHTLINE_STD)
/**
 * The app went to the background: the batch closes and is stored and sent.
 */
enum SightlineStatus sightline_runtime_app_hidden(struct SightlineRuntime runtime);
#endif

#if defined(SIGHTLINE_STD)
/**
 * The app is in the foreground again.
 */
enum SightlineStatus sightline_runtime_app_visible(struct SightlineRuntime runtime);
#endif

#if defined(SIGHTLINE_STD)
/**
 * Records an impression the host qualified itself (waits for the logger's answer).
 *
 * # Safety
 * As `sightline_logger_record_impression`.
 */
enum SightlineStatus sightline_runtime_record_impression(struct SightlineRuntime runtime,
                                                         uint64_t page_view,
                                                         const struct SightlineImpression *impression,
                                                         struct SightlineRecorded *recorded);
#endif

#if defined(SIGHTLINE_STD)
/**
 * Closes the open batch so it is stored and sent.
 */
enum SightlineStatus sightline_runtime_flush(struct SightlineRuntime runtime);
#endif

#if defined(SIGHTLINE_STD)
/**
 * Opt-out and opt-in (see `sightline_logger_set_enabled`).
 */
enum SightlineStatus sightline_runtime_set_enabled(struct SightlineRuntime runtime,
                                                   bool enabled,
                                                   bool purge);
#endif

#if defined(SIGHTLINE_STD)
/**
 * Copies the session's counters into `*stats` (after shutdown: the final ones).
 *
 * # Safety
 * `stats` is valid for a write.
 */
enum SightlineStatus sightline_runtime_stats(struct SightlineRuntime runtime,
                                             struct SightlineStats *stats);
#endif

#if defined(SIGHTLINE_STD)
/**
 * Closes the open batch, keeps uploading until nothing is pending or `max_wait_ms` has
 * passed, stops the threads and writes the final counters to `*stats` (may be NULL).
 * What was not delivered stays stored for the next start. A second call, also one made
 * while another thread is shutting down, returns the same counters. The handle stays
 * valid (for `sightline_runtime_stats`) until freed.
 *
 * # Safety
 * `stats` is NULL or valid for a write.
 */
enum SightlineStatus sightline_runtime_shutdown(struct SightlineRuntime runtime,
                                                uint64_t max_wait_ms,
                                                struct SightlineStats *stats);
#endif

#if defined(SIGHTLINE_STD)
/**
 * Frees a runtime, shutting it down first if it is running (waiting at most
 * `max_wait_ms` for pending uploads; if another thread is shutting it down, for that).
 * A poisoned runtime is freed too.
 */
enum SightlineStatus sightline_runtime_free(struct SightlineRuntime runtime, uint64_t max_wait_ms);
#endif

#if defined(SIGHTLINE_STD)
/**
 * Panics inside Sightline on purpose, so integrators can check their error path: the
 * call returns `SIGHTLINE_STATUS_INTERNAL`, the logger `logger` names is poisoned (only
 * `sightline_logger_free` works on it), and the process goes on.
 */
enum SightlineStatus sightline_debug_panic(struct SightlineLogger logger);
#endif

/**
 * The name of a status constant (`"SIGHTLINE_STATUS_REFUSED"`), or NULL for a value that is not
 * a status. The string is static: never free it.
 */
const char *sightline_status_name(uint32_t status);

#if defined(SIGHTLINE_STD)
/**
 * Copies the sentence explaining the calling thread's last failed call (empty after a
 * successful one) into `buf` with a NUL, and its length without the NUL into `*len`.
 * `SIGHTLINE_STATUS_BUFFER_TOO_SMALL` when it does not fit (`*len` says how much does).
 *
 * # Safety
 * `buf` must be valid for `capacity` bytes (or NULL with capacity 0); `len` valid.
 */
enum SightlineStatus sightline_last_error_message(char *buf, size_t capacity, size_t *len);
#endif

/**
 * Fills `*config` with the core's defaults: empty strings (set `app_id`, `app_version`,
 * `app_key` and `seed` before use), platform `SIGHTLINE_PLATFORM_OTHER`, the default
 * contract and limits.
 *
 * # Safety
 * `config` is NULL or valid for a write.
 */
enum SightlineStatus sightline_config_init(struct SightlineConfig *config);

/**
 * The stable name of rule `code` ("below_threshold"), or NULL for a code this version
 * does not know. Static: never free it.
 */
const char *sightline_rule_name(uint32_t code);

/**
 * The stable name of drop reason `code` ("retries_exhausted"), or NULL.
 */
const char *sightline_drop_reason_name(uint32_t code);

#ifdef __cplusplus
}  // extern "C"
#endif  // __cplusplus

#endif  /* SIGHTLINE_H */
