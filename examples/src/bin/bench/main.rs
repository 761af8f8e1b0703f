//! Sightline benchmarks, printed side by side from one run. Figures are printed, never
//! asserted: timings depend on the machine, and the design's targets are facts to read.
//!
//! - A. Bytes per impression on the wire: the reference workload (sim crate) through real
//!   loggers on a healthy network, then the same impressions in the same batches encoded as
//!   Segment-style JSON per event and as one protobuf message per event.
//! - B. Time per `record_impression`, and per visibility enter+leave pair, in steady state.
//! - C. Heap allocations per record, counted by a wrapping global allocator on the calling
//!   thread.
//! - D. Memory per buffered impression, open and once closed and queued.
//! - E. Time and allocations per recorded impression, Sightline beside the Rust peers a
//!   developer would pick instead (OpenTelemetry logs, Segment, Snowplow), same run.
//! - F. Growth of the record cost with id length.
//! - G. The slowest single host call in a realistic host loop, per kind of call.
//!
//! `cargo run --release -p sightline-examples --bin bench`

mod growth;
mod ids;
mod peers;
mod stalls;

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::collections::VecDeque;
use std::io::{Read, Write};
use std::ops::{AddAssign, ControlFlow, Sub};
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::Instant;

use flate2::Compression;
use flate2::read::MultiGzDecoder;
use flate2::write::GzEncoder;
use prost::Message;
use serde_json::json;
use sightline_core::civil::Utc;
use sightline_core::gzip::{CompactGzipper, GZIP_LEVEL as CORE_GZIP_LEVEL};
use sightline_core::json::platform_name;
use sightline_core::sampling::PPM;
use sightline_core::wire::{self, DecodedImpression};
use sightline_core::{
    Config, Impression, ItemRef, Logger, MemoryStore, Now, Stored, UploadOutcome, proto,
};
use sightline_sim::collector::Collector;
use sightline_sim::harness::{SimSpec, WALL0, run_device};
use sightline_sim::network::Faults;
use sightline_sim::rng::Rng;
use sightline_sim::workload::{Item, Page, Workload, WorkloadSpec, generate};

/// App identity of every benchmark logger: realistic lengths, since header strings cost bytes.
const APP_ID: &str = "com.example.streaming";
const APP_VERSION: &str = "7.4.1";
/// Segment's `context.app.build`: a build number hosts commonly send next to the version.
const APP_BUILD: &str = "741";
const DEVICE: &str = "SHIELD-TV";
const APP_KEY: &str = "k-123";
/// The core compresses at level 6; the alternatives get the same level.
const GZIP_LEVEL: u32 = 6;
/// Seed of the UUID stream, fixed so the per-event encodings are reproducible.
const UUID_SEED: u64 = 0x5EED_0001;
/// Seed of the recording benchmark's visible times.
const RECORD_SEED: u64 = 0x5EED_0002;
/// Title numbers are uniform over 10,000,000..=99,999,999 and artwork numbers over
/// 0..=999,999,999 (sim workload): the information one spelled-out id carries.
const TITLE_ID_VALUES: f64 = 90_000_000.0;
const ARTWORK_ID_VALUES: f64 = 1_000_000_000.0;
/// The design's wire target, bytes per impression.
const TARGET_WIRE_BYTES: f64 = 8.0;
/// The design's target for one buffered impression, bytes.
const TARGET_BUFFERED_BYTES: f64 = 32.0;

/// Records timed in steady state (rounded up to whole page views).
const RECORDS: usize = 200_000;
/// Records before timing starts, so capacities have grown and caches are warm.
const WARMUP_RECORDS: usize = 20_000;
/// Impressions per page view: one whole 8x12 grid of the reference workload.
const PAGE_IMPRESSIONS: usize = 96;
/// Visible time of a benchmark impression, inclusive.
const VISIBLE_MS: (u64, u64) = (1_000, 30_000);
/// A page view stays open this long, so every visible time fits inside it.
const PAGE_SPAN_MS: u64 = VISIBLE_MS.1;
/// A page view starts this often: 15 are open at once (the core allows 16), and a batch
/// fills by count (1000 impressions in about 21 s) long before its age limit closes it.
const PAGE_STEP_MS: u64 = 2_000;
/// Time between two page views of the visibility path, for the host's timer.
const TIMER_GAP_MS: u64 = 500;
/// Timer wake-ups between two inputs at most: a full batch seals in about 300 steps.
const MAX_TIMER_WAKEUPS: usize = 10_000;
/// Page views timed on the visibility path, and its warm-up.
const VISIBILITY_PAGES: usize = 1_000;
const VISIBILITY_WARMUP_PAGES: usize = 100;
/// Each item is fully visible this long: above the contract's 1 s, so every pair qualifies.
const EXPOSURE_MS: u64 = 1_500;
/// Batch size for the memory figure; the open batch is filled to one below it.
const MEMORY_BATCH_IMPRESSIONS: u32 = 1_000;

// ---- C. Counting allocator ----

/// Allocations on every thread, for the work a peer hands to a thread of its own.
static ALLOCS: AtomicU64 = AtomicU64::new(0);

thread_local! {
    /// This thread's allocations and bytes asked for: the figures of calls made on one
    /// thread leave out what other threads allocate meanwhile.
    static THREAD_HEAP: Cell<(u64, u64)> = const { Cell::new((0, 0)) };
}

/// The system allocator, counting every allocation and reallocation and the bytes asked for.
struct Counting;

// SAFETY: every call is forwarded unchanged to `System`; the counters have no effect on it.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        count(layout.size());
        // SAFETY: the caller upholds `GlobalAlloc::alloc`'s contract, which `System` shares.
        unsafe { System.alloc(layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        count(layout.size());
        // SAFETY: as for `alloc`.
        unsafe { System.alloc_zeroed(layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        count(new_size);
        // SAFETY: `ptr` was allocated by this allocator, that is by `System`, with `layout`.
        unsafe { System.realloc(ptr, layout, new_size) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: `ptr` was allocated by this allocator, that is by `System`, with `layout`.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

fn count(bytes: usize) {
    ALLOCS.fetch_add(1, Relaxed);
    // `try_with`: an allocator must not panic, even in a thread's teardown (a const `Cell`
    // has no destructor, so in practice it is always there).
    let _ = THREAD_HEAP.try_with(|heap| {
        let (allocs, bytes_so_far) = heap.get();
        heap.set((allocs + 1, bytes_so_far + bytes as u64));
    });
}

/// Allocations and allocated bytes of this thread so far.
fn heap_counts() -> (u64, u64) {
    THREAD_HEAP.with(Cell::get)
}

/// Allocations of every thread so far.
fn all_threads_allocs() -> u64 {
    ALLOCS.load(Relaxed)
}

fn main() {
    let spec = WorkloadSpec::reference();
    let workload = generate(&spec);
    println!(
        "Sightline benchmarks: reference workload ({} page views, {}x{} items, Zipf over {} titles, seed {})",
        spec.page_views, spec.rows, spec.columns, spec.catalog_size, spec.seed
    );
    wire_section(&workload);
    recording_section(&workload);
    memory_section(&workload);
    peers::section(&workload);
    growth::section(&workload);
    stalls::section(&workload);
}

fn app_config() -> Config {
    Config {
        app_id: APP_ID.into(),
        app_version: APP_VERSION.into(),
        device: DEVICE.into(),
        app_key: APP_KEY.into(),
        // Fixed, so figures repeat; the simulation sets its own per device.
        seed: RECORD_SEED,
        ..Config::default()
    }
}

// ---- A. Bytes on the wire ----

/// Compressed and uncompressed bytes. Signed: attribution by difference may go negative.
#[derive(Clone, Copy, Debug, Default)]
struct Size {
    gz: i64,
    raw: i64,
}

impl Size {
    fn of(gz: usize, raw: usize) -> Size {
        Size {
            gz: gz as i64,
            raw: raw as i64,
        }
    }
}

impl AddAssign for Size {
    fn add_assign(&mut self, o: Size) {
        self.gz += o.gz;
        self.raw += o.raw;
    }
}

impl Sub for Size {
    type Output = Size;
    fn sub(self, o: Size) -> Size {
        Size {
            gz: self.gz - o.gz,
            raw: self.raw - o.raw,
        }
    }
}

/// Parts of a Sightline batch, attributed by removing each and re-compressing; the last
/// is the remainder.
const PARTS: [&str; 5] = [
    "item + artwork id tables",
    "page strings (names, request ids)",
    "page views",
    "impression columns",
    "header, counters, clock, send",
];

#[derive(Default)]
struct WireFigures {
    sessions: usize,
    refused: u64,
    duplicates: u64,
    batches: usize,
    impressions: usize,
    /// Ids spelled out in the batches' id tables (first use within their batch).
    item_ids: usize,
    artwork_ids: usize,
    sightline: Size,
    /// The same bodies with the batch member re-compressed by the core's compact encoder
    /// (feature `compact`, the firmware and wasm builds); the send-info member as sent.
    compact: Size,
    json: Size,
    protobuf: Size,
    /// The batches re-compressed whole as one gzip member, and by part (see [`PARTS`]).
    recompressed: Size,
    parts: [Size; PARTS.len()],
}

fn wire_section(workload: &Workload) {
    let mut f = WireFigures::default();
    let collector = deliver_workload(workload, &mut f);
    let mut uuids = Rng::new(UUID_SEED);
    for body in &collector.bodies {
        let batch = wire::decode_gzip_batch(body).expect("the collector decoded this body");
        let rows = wire::impressions(&batch).expect("the collector decoded these rows");
        let ids = wire::Ids::of(&batch);
        let events: Vec<Resolved<'_>> = rows
            .iter()
            .map(|r| resolve(&batch, &ids, r, &mut uuids))
            .collect();
        f.batches += 1;
        f.impressions += rows.len();
        f.item_ids += batch.item_ids.len();
        f.artwork_ids += batch.artwork_ids.len();
        f.sightline += Size::of(body.len(), gunzip(body).len());
        f.compact += compact_body(body);
        let ndjson = segment_ndjson(&batch, &events);
        f.json += Size::of(gzip(&ndjson).len(), ndjson.len());
        let messages = protobuf_events(&batch, &events);
        f.protobuf += Size::of(gzip(&messages).len(), messages.len());
        let (whole, parts) = attribute(&batch);
        f.recompressed += whole;
        for (sum, part) in f.parts.iter_mut().zip(parts) {
            *sum += part;
        }
    }
    print_wire(&f);
}

/// Runs every session of the workload through a real logger on a healthy network; the
/// collector keeps every body it ingests.
fn deliver_workload(workload: &Workload, f: &mut WireFigures) -> Collector {
    let sim = SimSpec {
        faults: Faults::none(),
        crash_per_page: 0.0,
        clock_jump_per_page: 0.0,
        ..SimSpec::hostile(app_config())
    };
    let mut collector = Collector {
        keep_bodies: true,
        ..Collector::default()
    };
    for (i, pages) in workload.by_session().into_iter().enumerate() {
        let seed = workload.spec.seed ^ (i as u64 + 1);
        let report = run_device(&sim, seed, pages, &mut collector);
        f.sessions += 1;
        f.refused += report.refused;
    }
    f.duplicates = collector.duplicates();
    collector
}

/// One impression with everything a per-event format repeats resolved from its batch.
struct Resolved<'b> {
    /// Random (v4) UUID: the per-event identity such formats carry instead of (session, seq).
    id: String,
    seq: u64,
    page_view: u64,
    page: &'b str,
    request_id: Option<&'b str>,
    item_id: &'b str,
    artwork_id: Option<&'b str>,
    row: u32,
    column: u32,
    timestamp_ms: u64,
    visible_ms: u32,
    max_visible_pct: u32,
    focused_ms: u32,
}

fn resolve<'b>(
    batch: &'b proto::Batch,
    ids: &'b wire::Ids,
    r: &DecodedImpression,
    uuids: &mut Rng,
) -> Resolved<'b> {
    let text = |i: u32| wire::string(batch, i).unwrap_or("");
    let pv = &batch.page_views[r.page_view];
    Resolved {
        id: uuid_v4(uuids),
        seq: r.seq,
        page_view: pv.ordinal,
        page: text(pv.page),
        request_id: pv.request_id.checked_sub(1).map(text),
        item_id: ids.item(r),
        artwork_id: ids.artwork(r),
        row: r.row,
        column: r.column,
        timestamp_ms: pv.start_wall_ms.saturating_add_signed(r.first_visible_ms),
        visible_ms: r.visible_ms,
        max_visible_pct: r.max_visible_pct,
        focused_ms: r.focused_ms,
    }
}

fn sent_at_ms(batch: &proto::Batch) -> u64 {
    batch.send.map_or(0, |s| s.sent_at_wall_ms)
}

fn sample_rate(batch: &proto::Batch) -> f64 {
    f64::from(batch.sample_rate_ppm) / f64::from(PPM)
}

/// Segment's `context.os.name` for a wire platform name.
fn os_name(platform: &str) -> &'static str {
    match platform {
        "tv" => "Android TV",
        "android" => "Android",
        "ios" => "iOS",
        "web" => "Web",
        _ => "Other",
    }
}

/// One Segment-style `track` call per impression, newline-delimited.
fn segment_ndjson(batch: &proto::Batch, events: &[Resolved<'_>]) -> Vec<u8> {
    let platform = platform_name(batch.platform);
    let sent_at = iso8601(sent_at_ms(batch));
    let mut out = Vec::new();
    for e in events {
        let event = json!({
            "type": "track",
            "event": "Item Impression",
            "messageId": e.id,
            "anonymousId": batch.install_id,
            "timestamp": iso8601(e.timestamp_ms),
            "sentAt": sent_at,
            "context": {
                "app": {"name": batch.app_id, "version": batch.app_version, "build": APP_BUILD},
                "device": {"model": batch.device, "type": platform},
                "os": {"name": os_name(platform)},
                "library": {"name": batch.sdk_name, "version": batch.sdk_version},
                "page": {"name": e.page, "requestId": e.request_id},
            },
            "properties": {
                "session_id": batch.session_id,
                "seq": e.seq,
                "page_view": e.page_view,
                "item_id": e.item_id,
                "artwork_id": e.artwork_id,
                "row": e.row,
                "column": e.column,
                "visible_ms": e.visible_ms,
                "max_visible_pct": e.max_visible_pct,
                "focused_ms": e.focused_ms,
                "sample_rate": sample_rate(batch),
            },
        });
        serde_json::to_writer(&mut out, &event).expect("writing JSON to a Vec cannot fail");
        out.push(b'\n');
    }
    out
}

/// One self-contained protobuf message per impression: the usual per-event design, with a
/// UUID as identity and the context repeated in every event.
#[derive(Clone, PartialEq, prost::Message)]
struct Event {
    #[prost(string, tag = "1")]
    event_id: String,
    #[prost(string, tag = "2")]
    app_id: String,
    #[prost(string, tag = "3")]
    app_version: String,
    #[prost(string, tag = "4")]
    platform: String,
    #[prost(string, tag = "5")]
    device: String,
    #[prost(string, tag = "6")]
    install_id: String,
    #[prost(string, tag = "7")]
    session_id: String,
    #[prost(uint64, tag = "8")]
    seq: u64,
    #[prost(uint64, tag = "9")]
    page_view: u64,
    #[prost(string, tag = "10")]
    page: String,
    #[prost(string, tag = "11")]
    request_id: String,
    #[prost(string, tag = "12")]
    item_id: String,
    #[prost(string, tag = "13")]
    artwork_id: String,
    #[prost(uint32, tag = "14")]
    row: u32,
    #[prost(uint32, tag = "15")]
    column: u32,
    #[prost(uint64, tag = "16")]
    timestamp_ms: u64,
    #[prost(uint64, tag = "17")]
    sent_at_ms: u64,
    #[prost(uint32, tag = "18")]
    visible_ms: u32,
    #[prost(uint32, tag = "19")]
    max_visible_pct: u32,
    #[prost(uint32, tag = "20")]
    focused_ms: u32,
    #[prost(double, tag = "21")]
    sample_rate: f64,
}

/// The batch's impressions as length-delimited [`Event`] messages.
fn protobuf_events(batch: &proto::Batch, events: &[Resolved<'_>]) -> Vec<u8> {
    let mut out = Vec::new();
    for e in events {
        let message = Event {
            event_id: e.id.clone(),
            app_id: batch.app_id.clone(),
            app_version: batch.app_version.clone(),
            platform: platform_name(batch.platform).into(),
            device: batch.device.clone(),
            install_id: batch.install_id.clone(),
            session_id: batch.session_id.clone(),
            seq: e.seq,
            page_view: e.page_view,
            page: e.page.into(),
            request_id: e.request_id.unwrap_or("").into(),
            item_id: e.item_id.into(),
            artwork_id: e.artwork_id.unwrap_or("").into(),
            row: e.row,
            column: e.column,
            timestamp_ms: e.timestamp_ms,
            sent_at_ms: sent_at_ms(batch),
            visible_ms: e.visible_ms,
            max_visible_pct: e.max_visible_pct,
            focused_ms: e.focused_ms,
            sample_rate: sample_rate(batch),
        };
        message
            .encode_length_delimited(&mut out)
            .expect("a Vec grows as needed");
    }
    out
}

/// The batch re-encoded and re-compressed whole, and the share of each of [`PARTS`]: the
/// bytes saved by emptying that part. Compressed shares are an estimate (gzip does not
/// add up by part); the remainder is assigned to the header.
fn attribute(batch: &proto::Batch) -> (Size, [Size; PARTS.len()]) {
    let size = |b: &proto::Batch| {
        let raw = b.encode_to_vec();
        Size::of(gzip(&raw).len(), raw.len())
    };
    let whole = size(batch);
    let without = |strip: fn(&mut proto::Batch)| {
        let mut b = batch.clone();
        strip(&mut b);
        whole - size(&b)
    };
    let ids = without(|b| {
        b.item_prefix.clear();
        b.item_ids.clear();
        b.artwork_prefix.clear();
        b.artwork_ids.clear();
    });
    let strings = without(|b| b.strings.clear());
    let page_views = without(|b| b.page_views.clear());
    let columns = without(|b| b.impressions = None);
    let rest = whole - ids - strings - page_views - columns;
    (whole, [ids, strings, page_views, columns, rest])
}

fn gzip(data: &[u8]) -> Vec<u8> {
    let mut encoder = GzEncoder::new(Vec::new(), Compression::new(GZIP_LEVEL));
    encoder
        .write_all(data)
        .expect("writing to a Vec cannot fail");
    encoder.finish().expect("writing to a Vec cannot fail")
}

/// `body` with its first (batch) member re-compressed by the compact encoder.
fn compact_body(body: &[u8]) -> Size {
    let mut first = flate2::bufread::GzDecoder::new(body);
    let mut batch = Vec::new();
    first
        .read_to_end(&mut batch)
        .expect("the collector decoded this body");
    let rest = first.into_inner(); // The members after the first, as sent.
    let mut compact = Vec::new();
    CompactGzipper::new().gzip_into(&batch, CORE_GZIP_LEVEL, &mut compact);
    Size::of(compact.len() + rest.len(), batch.len() + gunzip(rest).len())
}

/// All gzip members of a body, decompressed.
fn gunzip(body: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    MultiGzDecoder::new(body)
        .read_to_end(&mut out)
        .expect("the collector decoded this body");
    out
}

/// A random (version 4) UUID, 8-4-4-4-12 lowercase hex.
fn uuid_v4(rng: &mut Rng) -> String {
    let mut b = [0u8; 16];
    b[..8].copy_from_slice(&rng.next_u64().to_be_bytes());
    b[8..].copy_from_slice(&rng.next_u64().to_be_bytes());
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let hex: String = b.iter().map(|x| format!("{x:02x}")).collect();
    format!(
        "{}-{}-{}-{}-{}",
        &hex[..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..]
    )
}

/// Unix milliseconds as ISO-8601 UTC with milliseconds (`2026-01-01T00:00:00.000Z`).
fn iso8601(ms: u64) -> String {
    let t = Utc::from_unix_ms(ms);
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}Z",
        t.year, t.month, t.day, t.hour, t.minute, t.second, t.millis
    )
}

fn print_wire(f: &WireFigures) {
    let n = f.impressions as f64;
    let per = |bytes: i64| bytes as f64 / n;
    println!();
    println!("A. Bytes per impression on the wire (same impressions, same batch boundaries)");
    println!(
        "   {} sessions on a healthy network: {} batches, {} impressions ({:.0} per batch), {} inputs refused, {} duplicate receipts",
        f.sessions,
        thousands(f.batches as u64),
        thousands(f.impressions as u64),
        n / f.batches as f64,
        f.refused,
        f.duplicates
    );
    println!(
        "   {:<34} {:>11} {:>9} {:>9} {:>8}",
        "format", "total B", "B/imp gz", "B/imp raw", "vs SL"
    );
    let rows = [
        ("Sightline batch (as sent)", f.sightline),
        ("Sightline, compact encoder", f.compact),
        ("JSON per event (Segment-style)", f.json),
        ("protobuf per event + UUID", f.protobuf),
    ];
    for (name, s) in rows {
        println!(
            "   {:<34} {:>11} {:>9.2} {:>9.1} {:>7.1}x",
            name,
            thousands(s.gz as u64),
            per(s.gz),
            per(s.raw),
            s.gz as f64 / f.sightline.gz as f64
        );
    }
    let sightline = per(f.sightline.gz);
    println!(
        "   target <= {TARGET_WIRE_BYTES} B/impression: {} ({sightline:.2})",
        met(sightline <= TARGET_WIRE_BYTES)
    );
    println!(
        "   gzip: Sightline bodies as the core sent them (batch + send-info member); the others flate2 level {GZIP_LEVEL}, one body per batch"
    );
    println!(
        "   compact encoder (feature `compact`: firmware, wasm) vs miniz_oxide level {CORE_GZIP_LEVEL}: {:.3}x the bytes ({:+.2} B/imp)",
        f.compact.gz as f64 / f.sightline.gz as f64,
        per(f.compact.gz - f.sightline.gz)
    );
    println!();
    println!(
        "   Where Sightline's bytes go (attribution estimate: each part emptied, batch re-compressed with flate2 level {GZIP_LEVEL})"
    );
    println!(
        "   {:<34} {:>11} {:>9} {:>9} {:>8}",
        "part", "gz B", "B/imp gz", "B/imp raw", "share gz"
    );
    for (name, s) in PARTS.iter().zip(f.parts) {
        println!(
            "   {:<34} {:>11} {:>9.2} {:>9.1} {:>7.0}%",
            name,
            thousands(s.gz.max(0) as u64),
            per(s.gz),
            per(s.raw),
            100.0 * s.gz as f64 / f.recompressed.gz as f64
        );
    }
    let whole = f.recompressed;
    println!(
        "   {:<34} {:>11} {:>9.2} {:>9.1}",
        "whole batch, one gzip member",
        thousands(whole.gz as u64),
        per(whole.gz),
        per(whole.raw)
    );
    let digits_bits = f.item_ids as f64 * TITLE_ID_VALUES.log2()
        + f.artwork_ids as f64 * ARTWORK_ID_VALUES.log2();
    println!(
        "   ids spelled out per impression: {:.2} item + {:.2} artwork; their random digits alone carry {:.2} B/imp",
        f.item_ids as f64 / n,
        f.artwork_ids as f64 / n,
        digits_bits / 8.0 / n
    );
}

// ---- B and C. Recording cost and allocations ----

fn at(mono_ms: u64) -> Now {
    Now::new(mono_ms, WALL0 + mono_ms)
}

fn new_logger(config: Config) -> Logger {
    Logger::resume(config, Stored::default(), at(0)).expect("the benchmark configuration is valid")
}

/// Every cell of a page with its row and column.
fn cells(page: &Page) -> impl Iterator<Item = (u32, u32, &Item)> {
    page.rows.iter().zip(0u32..).flat_map(|(items, row)| {
        items
            .iter()
            .zip(0u32..)
            .map(move |(item, column)| (row, column, item))
    })
}

/// Pre-qualified impressions of `count` page views; page view k starts at k * PAGE_STEP_MS
/// and shows every item of a workload page, visible for a random time within its span.
fn bench_pages<'w>(workload: &'w Workload, count: usize) -> Vec<(&'w Page, Vec<Impression<'w>>)> {
    let mut rng = Rng::new(RECORD_SEED);
    (0..count)
        .map(|k| {
            let page = &workload.pages[k % workload.pages.len()];
            let start = k as u64 * PAGE_STEP_MS;
            let impressions = cells(page)
                .map(|(row, column, item)| {
                    let visible_ms = rng.range(VISIBLE_MS.0, VISIBLE_MS.1);
                    Impression {
                        item_id: &item.id,
                        artwork_id: Some(&item.artwork_id),
                        row,
                        column,
                        first_visible_mono_ms: start + rng.range(0, PAGE_SPAN_MS - visible_ms),
                        visible_ms,
                        max_visible_fraction: 1.0,
                        focused_ms: 0,
                    }
                })
                .collect();
            (page, impressions)
        })
        .collect()
}

/// Plays pages on a rolling window: page view k starts at k * PAGE_STEP_MS; PAGE_SPAN_MS
/// later `record` gets its impressions, then it ends and closed batches are delivered.
/// Stops early when `record` breaks; returns the time reached.
fn play(
    logger: &mut Logger,
    pages: &[(&Page, Vec<Impression<'_>>)],
    mut record: impl FnMut(&mut Logger, usize, u64, &[Impression<'_>], Now) -> ControlFlow<()>,
) -> Now {
    let mut window = Window::default();
    let mut now = at(0);
    while let Some((reached, flow)) = window.step(logger, pages, &mut record) {
        now = reached;
        if flow.is_break() {
            break;
        }
    }
    now
}

/// The rolling window of [`play`], one step at a time.
#[derive(Default)]
struct Window {
    /// Steps taken.
    k: usize,
    /// Page views started and not yet recorded, oldest first.
    open: VecDeque<u64>,
}

impl Window {
    /// Page views open at once: each is recorded PAGE_SPAN_MS after it starts.
    const LAG: usize = (PAGE_SPAN_MS / PAGE_STEP_MS) as usize;

    /// Step k: page view k - LAG (if any) gets `record`, ends unless `record` broke, and closed
    /// batches are delivered; then page view k (if any) starts. Returns the step's time and
    /// what `record` said (`Continue` when it was not called), or `None` once every page
    /// has been played.
    fn step(
        &mut self,
        logger: &mut Logger,
        pages: &[(&Page, Vec<Impression<'_>>)],
        record: &mut impl FnMut(&mut Logger, usize, u64, &[Impression<'_>], Now) -> ControlFlow<()>,
    ) -> Option<(Now, ControlFlow<()>)> {
        let k = self.k;
        if k >= pages.len() + Self::LAG {
            return None;
        }
        self.k += 1;
        let now = at(k as u64 * PAGE_STEP_MS);
        if let Some(index) = k.checked_sub(Self::LAG) {
            let pv = self.open.pop_front().expect("page views open in order");
            if record(logger, index, pv, &pages[index].1, now).is_break() {
                return Some((now, ControlFlow::Break(())));
            }
            logger
                .end_page_view(pv, now)
                .expect("the page view is open");
            deliver(logger, now, now.mono_ms + PAGE_STEP_MS - 1);
        }
        if let Some((page, _)) = pages.get(k) {
            let pv = logger
                .start_page_view(page.page_name, Some(&page.request_id), None, now)
                .expect("workload pages are valid");
            self.open.push_back(pv);
        }
        Some((now, ControlFlow::Continue(())))
    }
}

/// Between two inputs, from `now` to `until` (monotonic ms), what a host on a healthy
/// network does, untimed: runs its timer at every deadline (a sealing batch's steps come
/// due a millisecond apart), uploads every queued batch and acknowledges it at once.
fn deliver(logger: &mut Logger, now: Now, until: u64) {
    let mut t = now;
    for _ in 0..MAX_TIMER_WAKEUPS {
        // A host without persistence: its store operations succeed and keep nothing.
        logger.perform_store_ops(&mut MemoryStore::new());
        while let Some(upload) = logger.poll_upload(t) {
            logger
                .handle_upload_result(upload.id, UploadOutcome::status(200), t)
                .expect("the upload is in flight");
            logger.perform_store_ops(&mut MemoryStore::new());
        }
        match logger.poll_timeout() {
            Some(deadline) if deadline <= until => {
                t = at(deadline.max(t.mono_ms));
                logger.handle_timeout(t);
            }
            _ => break,
        }
    }
}

/// One timed block of calls: elapsed time, heap activity, impressions logged, and whether
/// a batch closed inside it (the open batch grew by less than the seqs issued).
#[derive(Clone, Copy, Default)]
struct Block {
    ops: u64,
    nanos: u64,
    allocs: u64,
    alloc_bytes: u64,
    logged: u64,
    closed: bool,
}

impl Block {
    fn merge(self, o: Block) -> Block {
        Block {
            ops: self.ops + o.ops,
            nanos: self.nanos + o.nanos,
            allocs: self.allocs + o.allocs,
            alloc_bytes: self.alloc_bytes + o.alloc_bytes,
            logged: self.logged + o.logged,
            closed: self.closed || o.closed,
        }
    }
}

/// Times `calls`, counting this thread's heap allocations; only `calls` runs between the
/// readings.
fn measure(ops: usize, calls: impl FnOnce()) -> Block {
    let (allocs, alloc_bytes) = heap_counts();
    let start = Instant::now();
    calls();
    let nanos = start.elapsed().as_nanos() as u64;
    let (allocs_after, bytes_after) = heap_counts();
    Block {
        ops: ops as u64,
        nanos,
        allocs: allocs_after - allocs,
        alloc_bytes: bytes_after - alloc_bytes,
        logged: ops as u64,
        closed: false,
    }
}

/// Times `calls` on the logger (see [`measure`]), with what it logged and whether a batch
/// closed.
fn timed(logger: &mut Logger, ops: usize, calls: impl FnOnce(&mut Logger)) -> Block {
    let (open_before, issued_before) = (logger.open_batch_len(), logger.stats().issued);
    let block = measure(ops, || calls(logger));
    let logged = logger.stats().issued - issued_before;
    Block {
        logged,
        closed: (logger.open_batch_len() as u64) < open_before as u64 + logged,
        ..block
    }
}

/// Blocks of `record_impression` calls, one per page view, after the warm-up.
fn record_blocks(workload: &Workload) -> Vec<Block> {
    let warmup = WARMUP_RECORDS.div_ceil(PAGE_IMPRESSIONS);
    let pages = bench_pages(workload, warmup + RECORDS.div_ceil(PAGE_IMPRESSIONS));
    let mut logger = new_logger(app_config());
    let mut blocks = Vec::with_capacity(pages.len());
    play(
        &mut logger,
        &pages,
        |logger, index, pv, impressions, now| {
            let block = timed(logger, impressions.len(), |logger| {
                for imp in impressions {
                    // Refusals show up as impressions not logged.
                    let _ = logger.record_impression(pv, imp, now);
                }
            });
            if index >= warmup {
                blocks.push(block);
            }
            ControlFlow::Continue(())
        },
    );
    blocks
}

/// Blocks of visibility enter+leave pairs, one per page view: every item of a page becomes
/// fully visible, then invisible EXPOSURE_MS later, which qualifies and records it.
fn visibility_blocks(workload: &Workload) -> Vec<Block> {
    let mut logger = new_logger(app_config());
    let mut blocks = Vec::with_capacity(VISIBILITY_PAGES);
    for k in 0..VISIBILITY_WARMUP_PAGES + VISIBILITY_PAGES {
        let page = &workload.pages[k % workload.pages.len()];
        let items: Vec<ItemRef<'_>> = cells(page)
            .map(|(row, column, item)| ItemRef {
                item_id: &item.id,
                artwork_id: Some(&item.artwork_id),
                row,
                column,
            })
            .collect();
        let start = k as u64 * (EXPOSURE_MS + TIMER_GAP_MS);
        let (shown, hidden) = (at(start), at(start + EXPOSURE_MS));
        let pv = logger
            .start_page_view(page.page_name, Some(&page.request_id), None, shown)
            .expect("workload pages are valid");
        let enter = timed(&mut logger, items.len(), |l| {
            set_all(l, pv, &items, 1.0, shown)
        });
        let leave = timed(&mut logger, items.len(), |l| {
            set_all(l, pv, &items, 0.0, hidden)
        });
        logger
            .end_page_view(pv, hidden)
            .expect("the page view is open");
        deliver(&mut logger, hidden, start + EXPOSURE_MS + TIMER_GAP_MS - 1);
        if k >= VISIBILITY_WARMUP_PAGES {
            blocks.push(Block {
                ops: enter.ops,
                ..enter.merge(leave)
            });
        }
    }
    blocks
}

/// Reports every item of a page view as `fraction` visible.
fn set_all(logger: &mut Logger, pv: u64, items: &[ItemRef<'_>], fraction: f32, now: Now) {
    for item in items {
        // Refusals show up as impressions not logged.
        let _ = logger.handle_visibility(pv, item, fraction, now);
    }
}

/// Time and allocation figures over blocks.
struct Summary {
    ops: u64,
    blocks: usize,
    closing_blocks: usize,
    not_logged: u64,
    median_ns: f64,
    p90_ns: f64,
    p99_ns: f64,
    /// Allocations per op over blocks in which no batch closed.
    allocs_quiet: f64,
    allocs_all: f64,
    alloc_bytes_all: f64,
    /// Allocations and bytes a batch close adds to its block, beyond the no-close rate.
    allocs_per_close: f64,
    alloc_bytes_per_close: f64,
}

/// The value at quantile `p` (0..=1) of `sorted`, nearest rank.
fn percentile<T: Copy>(sorted: &[T], p: f64) -> T {
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

fn summarise(blocks: &[Block]) -> Summary {
    let mut ns: Vec<f64> = blocks
        .iter()
        .map(|b| b.nanos as f64 / b.ops as f64)
        .collect();
    ns.sort_by(f64::total_cmp);
    let total = blocks.iter().fold(Block::default(), |a, &b| a.merge(b));
    let closing_blocks = blocks.iter().filter(|b| b.closed).count();
    let (closing, quiet): (Vec<Block>, Vec<Block>) = blocks.iter().partition(|b| b.closed);
    let closing = closing.iter().fold(Block::default(), |a, &b| a.merge(b));
    let quiet = quiet.iter().fold(Block::default(), |a, &b| a.merge(b));
    let per_quiet_op = |v: u64| v as f64 / quiet.ops.max(1) as f64;
    let per_close = |v: u64, quiet_rate: f64| {
        (v as f64 - quiet_rate * closing.ops as f64) / closing_blocks.max(1) as f64
    };
    Summary {
        ops: total.ops,
        blocks: blocks.len(),
        closing_blocks,
        not_logged: total.ops - total.logged,
        median_ns: percentile(&ns, 0.5),
        p90_ns: percentile(&ns, 0.9),
        p99_ns: percentile(&ns, 0.99),
        allocs_quiet: per_quiet_op(quiet.allocs),
        allocs_all: total.allocs as f64 / total.ops as f64,
        alloc_bytes_all: total.alloc_bytes as f64 / total.ops as f64,
        allocs_per_close: per_close(closing.allocs, per_quiet_op(quiet.allocs)),
        alloc_bytes_per_close: per_close(closing.alloc_bytes, per_quiet_op(quiet.alloc_bytes)),
    }
}

fn recording_section(workload: &Workload) {
    let records = summarise(&record_blocks(workload));
    let pairs = summarise(&visibility_blocks(workload));
    println!();
    println!(
        "B/C. Recording in steady state (default config, MemoryStore; between page views, untimed, the host's timer runs and batches are delivered)"
    );
    println!(
        "   {:<27} {:>8} {:>6} {:>6} {:>8} {:>8} {:>11} {:>11} {:>9}",
        "call (one block per page)",
        "ops",
        "blocks",
        "closes",
        "ns p50",
        "ns p90",
        "allocs/op",
        "allocs/op",
        "heap B/op"
    );
    println!(
        "   {:<27} {:>8} {:>6} {:>6} {:>8} {:>8} {:>11} {:>11} {:>9}",
        "", "", "", "", "", "", "no close", "amortised", "amortised"
    );
    for (name, s) in [
        ("record_impression", &records),
        ("visibility enter+leave pair", &pairs),
    ] {
        println!(
            "   {:<27} {:>8} {:>6} {:>6} {:>8.1} {:>8.1} {:>11.3} {:>11.3} {:>9.1}",
            name,
            thousands(s.ops),
            s.blocks,
            s.closing_blocks,
            s.median_ns,
            s.p90_ns,
            s.allocs_quiet,
            s.allocs_all,
            s.alloc_bytes_all
        );
    }
    println!(
        "   ns: per call, per block, median and p90 over blocks; warm-up {} records / {} pages untimed; ops not logged: {} and {}",
        thousands(WARMUP_RECORDS.div_ceil(PAGE_IMPRESSIONS) as u64 * PAGE_IMPRESSIONS as u64),
        VISIBILITY_WARMUP_PAGES,
        records.not_logged,
        pairs.not_logged
    );
    println!(
        "   allocations: counted inside the timed calls only, on their thread; journal records are planned there, performed between pages"
    );
    println!(
        "   a batch close adds {:.0} allocations, {:.0} KiB (record path)",
        records.allocs_per_close,
        records.alloc_bytes_per_close / 1024.0
    );
    println!(
        "   target 0 allocations per record in blocks without a batch close: {} ({:.3})",
        met(records.allocs_quiet == 0.0),
        records.allocs_quiet
    );
}

// ---- D. Memory per buffered impression ----

fn memory_section(workload: &Workload) {
    let config = Config {
        max_batch_impressions: MEMORY_BATCH_IMPRESSIONS,
        ..app_config()
    };
    let fill = MEMORY_BATCH_IMPRESSIONS as usize - 1;
    let pages = bench_pages(workload, fill.div_ceil(PAGE_IMPRESSIONS));
    let mut logger = new_logger(config);
    let now = play(&mut logger, &pages, |logger, _, pv, impressions, now| {
        for imp in impressions {
            if logger.open_batch_len() == fill {
                return ControlFlow::Break(());
            }
            let _ = logger.record_impression(pv, imp, now);
        }
        ControlFlow::Continue(())
    });
    let open = logger.open_batch_len();
    let (heap, columns) = (
        logger.open_batch_heap_bytes(),
        logger.open_batch_column_heap_bytes(),
    );
    let (open_bytes, column_bytes) = (heap as f64 / open as f64, columns as f64 / open as f64);
    logger.flush(now);
    let queued = logger.queued_bytes() as f64 / logger.pending() as f64;
    println!();
    println!(
        "D. Memory per buffered impression (target <= {TARGET_BUFFERED_BYTES} B; open batch of {open}, limit {MEMORY_BATCH_IMPRESSIONS})"
    );
    println!("   {:<52} {:>9}  target", "figure", "B/imp");
    for (name, bytes) in [
        (
            "open batch heap / impressions (strings included)",
            open_bytes,
        ),
        ("  of which the encoded impression columns", column_bytes),
        ("closed and queued: gzip body / impressions", queued),
    ] {
        println!(
            "   {:<52} {:>9.1}  {}",
            name,
            bytes,
            met(bytes <= TARGET_BUFFERED_BYTES)
        );
    }
    println!("   queued bytes count the body only; a MemoryStore host also keeps a stored copy");
}

// ---- Formatting ----

fn met(yes: bool) -> &'static str {
    if yes { "met" } else { "NOT met" }
}

/// `1234567` as `1,234,567`.
fn thousands(n: u64) -> String {
    let digits = n.to_string();
    let groups: Vec<&str> = digits
        .as_bytes()
        .rchunks(3)
        .rev()
        .map(|g| std::str::from_utf8(g).expect("decimal digits are ASCII"))
        .collect();
    groups.join(",")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn iso8601_formats_utc_with_milliseconds() {
        assert_eq!(iso8601(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(iso8601(WALL0), "2026-01-01T00:00:00.000Z");
        assert_eq!(iso8601(1_709_251_199_999), "2024-02-29T23:59:59.999Z");
    }

    #[test]
    fn uuids_are_version_4_in_8_4_4_4_12_form() {
        let id = uuid_v4(&mut Rng::new(1));
        let groups: Vec<usize> = id.split('-').map(str::len).collect();
        assert_eq!(groups, [8, 4, 4, 4, 12]);
        assert_eq!(&id[14..15], "4");
        assert!(matches!(&id[19..20], "8" | "9" | "a" | "b"));
    }

    #[test]
    fn thousands_groups_digits() {
        assert_eq!(thousands(0), "0");
        assert_eq!(thousands(999), "999");
        assert_eq!(thousands(1_234_567), "1,234,567");
    }
}
