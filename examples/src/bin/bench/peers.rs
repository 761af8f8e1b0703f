//! E. One recorded impression in Sightline beside the same fields emitted through the Rust
//! peers a developer would pick instead, in the same run; and the race that times several
//! recorders over the same pages (section F uses it too).

use std::any::Any;
use std::future::{Future, ready};
use std::ops::ControlFlow;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::mpsc::{self, Receiver, Sender};
use std::time::{Duration, UNIX_EPOCH};

use opentelemetry::logs::{LogRecord as _, Logger as _, LoggerProvider as _, Severity};
use opentelemetry_sdk::error::OTelSdkResult;
use opentelemetry_sdk::logs::{
    BatchConfigBuilder, BatchLogProcessor, LogBatch, LogExporter, SdkLogger, SdkLoggerProvider,
};
use segment::Batcher;
use segment::message::{Message, Track, User};
use serde_json::{Value, json};
use sightline_core::{Impression, Logger};
use sightline_sim::harness::WALL0;
use sightline_sim::workload::{Page, Workload};
use snowplow_tracker::{
    Emitter, EventStore, InMemoryEventStore, PayloadBuilder, SelfDescribingEvent, Tracker,
};
use time::OffsetDateTime;

use super::ids::{IdShape, reshape};
use super::{
    APP_ID, Block, PAGE_IMPRESSIONS, Summary, Window, all_threads_allocs, app_config, bench_pages,
    heap_counts, measure, met, new_logger, summarise, thousands, timed,
};

/// Page views timed per recorder and id shape: about 100,000 impressions.
const PAGES: usize = 1_042;
/// Page views per recorder before timing starts, so buffers have grown and caches are warm.
const WARMUP_PAGES: usize = 104;
/// Page views each recorder records before the next takes its turn: long enough to keep its
/// caches warm, short enough that a load spike on this shared machine hits every recorder.
const ROUND_PAGES: usize = 64;
/// The design's target: Sightline's record cost over the fastest peer's.
const TARGET_RATIO: f64 = 0.2;
/// The event every peer emits.
const EVENT_NAME: &str = "item_impression";
/// The install identity Segment's `anonymousId` carries (Sightline's is in the batch header).
const INSTALL_ID: &str = "8f14e45f-ceea-467f-a8f1-2a6b3c4d5e6f";
/// Snowplow's self-describing event names its schema.
const SNOWPLOW_SCHEMA: &str = "iglu:com.example.streaming/item_impression/jsonschema/1-0-0";
/// Snowplow's tracker namespace.
const SNOWPLOW_NAMESPACE: &str = "bench";
/// Nanoseconds per millisecond, for Segment's timestamps.
const NANOS_PER_MS: i128 = 1_000_000;

/// Pre-qualified impressions of page views, as `bench_pages` makes them.
pub type Pages<'w> = [(&'w Page, Vec<Impression<'w>>)];

/// Something that records impressions, one page view at a time, in page order.
pub trait Recorder {
    /// Records the next page view's impressions, timing only the calls that record them.
    fn page(&mut self) -> Block;
}

/// Blocks of each recorder, one per page view: `warmup` page views untimed, then `pages` in
/// rounds of ROUND_PAGES, every recorder in turn.
pub fn race(recorders: &mut [&mut dyn Recorder], warmup: usize, pages: usize) -> Vec<Vec<Block>> {
    for recorder in recorders.iter_mut() {
        for _ in 0..warmup {
            recorder.page();
        }
    }
    let mut blocks = vec![Vec::with_capacity(pages); recorders.len()];
    let mut done = 0;
    while done < pages {
        let round = ROUND_PAGES.min(pages - done);
        for (recorder, out) in recorders.iter_mut().zip(&mut blocks) {
            out.extend((0..round).map(|_| recorder.page()));
        }
        done += round;
    }
    blocks
}

/// Sightline on the rolling window of section B: the host's page views stay open PAGE_SPAN_MS;
/// between page views, outside the timed calls, its timer runs (the sealing steps) and
/// closed batches are delivered, as the peers' export threads work outside them.
pub struct Sightline<'p, 'w> {
    logger: Logger,
    window: Window,
    pages: &'p Pages<'w>,
}

impl<'p, 'w> Sightline<'p, 'w> {
    pub fn new(pages: &'p Pages<'w>) -> Self {
        Sightline {
            logger: new_logger(app_config()),
            window: Window::default(),
            pages,
        }
    }
}

impl Recorder for Sightline<'_, '_> {
    fn page(&mut self) -> Block {
        loop {
            let mut block = None;
            let mut record = |logger: &mut Logger, _, pv, impressions: &[Impression<'_>], now| {
                block = Some(timed(logger, impressions.len(), |logger| {
                    for imp in impressions {
                        // Refusals show up as impressions not logged.
                        let _ = logger.record_impression(pv, imp, now);
                    }
                }));
                ControlFlow::Continue(())
            };
            // `record` never breaks: what the step says is always `Continue`.
            let _ = self
                .window
                .step(&mut self.logger, self.pages, &mut record)
                .expect("the race asks for no more page views than there are");
            if let Some(block) = block {
                return block;
            }
        }
    }
}

/// Wall-clock milliseconds of an impression's first visible moment (section B's clock).
fn wall_ms(imp: &Impression<'_>) -> u64 {
    WALL0 + imp.first_visible_mono_ms
}

/// OpenTelemetry's log exporter that discards every batch, counting the records it was given.
#[derive(Debug)]
struct Discard {
    exported: Arc<AtomicU64>,
}

impl LogExporter for Discard {
    fn export(&self, batch: LogBatch<'_>) -> impl Future<Output = OTelSdkResult> + Send {
        self.exported
            .fetch_add(batch.iter().count() as u64, Relaxed);
        ready(Ok(()))
    }
}

/// The OpenTelemetry SDK's logs: a LogRecord with the fields as attributes, emitted through
/// the Logs API into a BatchLogProcessor (its own export thread) and a discarding exporter.
struct OpenTelemetry<'p, 'w> {
    provider: SdkLoggerProvider,
    logger: SdkLogger,
    exported: Arc<AtomicU64>,
    emitted: u64,
    pages: &'p Pages<'w>,
    next: usize,
}

impl<'p, 'w> OpenTelemetry<'p, 'w> {
    fn new(pages: &'p Pages<'w>) -> Self {
        let exported = Arc::new(AtomicU64::new(0));
        let exporter = Discard {
            exported: Arc::clone(&exported),
        };
        // A queue that holds every record of the run: nothing is dropped, however far the
        // export thread falls behind.
        let config = BatchConfigBuilder::default()
            .with_max_queue_size(pages.len() * PAGE_IMPRESSIONS)
            .build();
        let processor = BatchLogProcessor::builder(exporter)
            .with_batch_config(config)
            .build();
        let provider = SdkLoggerProvider::builder()
            .with_log_processor(processor)
            .build();
        let logger = provider.logger(APP_ID);
        OpenTelemetry {
            provider,
            logger,
            exported,
            emitted: 0,
            pages,
            next: 0,
        }
    }

    /// Exports what is queued and stops the export thread; returns (emitted, exported).
    fn finish(self) -> (u64, u64) {
        self.provider
            .force_flush()
            .expect("the export thread is running");
        self.provider
            .shutdown()
            .expect("the provider is shut down once");
        (self.emitted, self.exported.load(Relaxed))
    }
}

impl Recorder for OpenTelemetry<'_, '_> {
    fn page(&mut self) -> Block {
        let (page, impressions) = &self.pages[self.next];
        let pv = self.next as i64 + 1;
        self.next += 1;
        self.emitted += impressions.len() as u64;
        let logger = &self.logger;
        measure(impressions.len(), || {
            for imp in impressions {
                let mut record = logger.create_log_record();
                record.set_event_name(EVENT_NAME);
                record.set_severity_number(Severity::Info);
                record.set_timestamp(UNIX_EPOCH + Duration::from_millis(wall_ms(imp)));
                record.add_attribute("item_id", imp.item_id.to_owned());
                if let Some(artwork) = imp.artwork_id {
                    record.add_attribute("artwork_id", artwork.to_owned());
                }
                record.add_attribute("page", page.page_name);
                record.add_attribute("page_view", pv);
                record.add_attribute("request_id", page.request_id.clone());
                record.add_attribute("row", imp.row);
                record.add_attribute("column", imp.column);
                record.add_attribute("visible_ms", imp.visible_ms as i64);
                logger.emit(record);
            }
        })
    }
}

/// The fields as a JSON object, as Segment's `properties` and Snowplow's event data.
fn properties(page: &Page, pv: u64, imp: &Impression<'_>) -> Value {
    json!({
        "item_id": imp.item_id,
        "artwork_id": imp.artwork_id,
        "page": page.page_name,
        "page_view": pv,
        "request_id": page.request_id,
        "row": imp.row,
        "column": imp.column,
        "visible_ms": imp.visible_ms,
    })
}

/// The `segment` crate's Batcher: a Track message per impression; a full batch is taken as
/// the message a host hands its HTTP client, and dropped after the timed calls.
struct Segment<'p, 'w> {
    batcher: Batcher,
    handed_off: Vec<Message>,
    pages: &'p Pages<'w>,
    next: usize,
}

impl<'p, 'w> Segment<'p, 'w> {
    fn new(pages: &'p Pages<'w>) -> Self {
        Segment {
            batcher: Batcher::new(None),
            handed_off: Vec::new(),
            pages,
            next: 0,
        }
    }
}

impl Recorder for Segment<'_, '_> {
    fn page(&mut self) -> Block {
        let (page, impressions) = &self.pages[self.next];
        let pv = self.next as u64 + 1;
        self.next += 1;
        let (batcher, handed_off) = (&mut self.batcher, &mut self.handed_off);
        let block = measure(impressions.len(), || {
            for imp in impressions {
                let timestamp = OffsetDateTime::from_unix_timestamp_nanos(
                    i128::from(wall_ms(imp)) * NANOS_PER_MS,
                )
                .expect("bench times are in range");
                let track = Track {
                    user: User::AnonymousId {
                        anonymous_id: INSTALL_ID.to_owned(),
                    },
                    event: EVENT_NAME.to_owned(),
                    properties: properties(page, pv, imp),
                    timestamp: Some(timestamp),
                    ..Track::default()
                };
                if let Some(back) = batcher.push(track).expect("an impression fits a message") {
                    let full = std::mem::replace(batcher, Batcher::new(None));
                    handed_off.push(full.into_message());
                    batcher
                        .push(back)
                        .expect("an impression fits an empty batch");
                }
            }
        });
        let closed = !self.handed_off.is_empty();
        self.handed_off.clear();
        Block { closed, ..block }
    }
}

/// Snowplow's BatchEmitter::add without its network: events go to the same in-memory event
/// store, and a full batch goes down a channel (the real emitter's goes to its tokio thread,
/// which needs a collector to talk to).
struct Handoff {
    store: InMemoryEventStore,
    batches: Sender<Box<dyn Any + Send>>,
}

impl Emitter for Handoff {
    fn add(&mut self, payload: PayloadBuilder) -> Result<(), snowplow_tracker::Error> {
        self.store.add(payload)?;
        // An error means the store holds less than a batch: nothing to hand off yet.
        if let Ok(batch) = self.store.full_batch() {
            // The bench keeps the receiver for as long as the tracker lives.
            let _ = self.batches.send(Box::new(batch));
        }
        Ok(())
    }

    fn flush(&mut self) -> Result<(), snowplow_tracker::Error> {
        let rest = self.store.batch_of(self.store.len())?;
        let _ = self.batches.send(Box::new(rest));
        Ok(())
    }

    fn close(&mut self) -> Result<(), snowplow_tracker::Error> {
        self.flush()
    }

    fn collector_url(&self) -> &str {
        // No collector: batches are handed to the bench.
        ""
    }
}

/// The `snowplow_tracker` crate: a self-describing event per impression through its
/// Tracker, into the [`Handoff`] emitter; handed-off batches are dropped after the timed
/// calls.
struct Snowplow<'p, 'w> {
    tracker: Tracker,
    batches: Receiver<Box<dyn Any + Send>>,
    pages: &'p Pages<'w>,
    next: usize,
}

impl<'p, 'w> Snowplow<'p, 'w> {
    fn new(pages: &'p Pages<'w>) -> Self {
        let (sender, batches) = mpsc::channel();
        let emitter = Handoff {
            store: InMemoryEventStore::default(),
            batches: sender,
        };
        Snowplow {
            tracker: Tracker::new(SNOWPLOW_NAMESPACE, APP_ID, emitter, None),
            batches,
            pages,
            next: 0,
        }
    }
}

impl Recorder for Snowplow<'_, '_> {
    fn page(&mut self) -> Block {
        let (page, impressions) = &self.pages[self.next];
        let pv = self.next as u64 + 1;
        self.next += 1;
        let tracker = &mut self.tracker;
        let block = measure(impressions.len(), || {
            for imp in impressions {
                let mut data = properties(page, pv, imp);
                data["timestamp_ms"] = wall_ms(imp).into();
                let event = SelfDescribingEvent::builder()
                    .schema(SNOWPLOW_SCHEMA)
                    .data(data)
                    .build()
                    .expect("schema and data are set");
                tracker
                    .track(event, None)
                    .expect("the emitter takes every event");
            }
        });
        let handed_off = self.batches.try_iter().count();
        Block {
            closed: handed_off > 0,
            ..block
        }
    }
}

/// One recorder's figures.
struct Row {
    name: &'static str,
    summary: Summary,
}

pub fn section(workload: &Workload) {
    println!();
    println!(
        "E. Recording one impression: Sightline and the Rust peers, same pages, same run (target Sightline / fastest peer <= {TARGET_RATIO})"
    );
    println!(
        "   {:<36} {:>8} {:>8} {:>8} {:>10} {:>10} {:>9}",
        "recorder (one block per page view)",
        "events",
        "ns p50",
        "ns p99",
        "allocs/ev",
        "heap B/ev",
        "SL / this"
    );
    for shape in [IdShape::Title, IdShape::Uuid] {
        race_peers(&reshape(workload, shape), shape);
    }
    println!(
        "   ns: per call, one block of {PAGE_IMPRESSIONS} calls per page view timed with Instant, median and p99 over {} blocks; {} page views each untimed first",
        thousands(PAGES as u64),
        WARMUP_PAGES
    );
    println!(
        "   rounds of {ROUND_PAGES} page views, each recorder in turn; peers build their event inside the timed calls (Sightline takes borrowed fields)"
    );
    println!(
        "   allocs/ev, heap B/ev: on the calling thread, inside the timed calls, amortised over every block"
    );
    println!(
        "   fields: item and artwork id, page name, page view, request id, row, column, visible ms, timestamp"
    );
    println!(
        "   OpenTelemetry: opentelemetry_sdk logs, BatchLogProcessor (own thread) with an exporter that counts and discards"
    );
    println!(
        "   Segment: segment::Batcher of Track messages; a full batch is taken (into_message) and dropped after the block"
    );
    println!(
        "   Snowplow: snowplow_tracker Tracker with an Emitter that does BatchEmitter::add's work (InMemoryEventStore, batches of 50)"
    );
    println!(
        "     and hands full batches over a channel instead of to the tokio thread, which needs a collector"
    );
}

/// Races Sightline and the peers over the same page views of `workload`; prints their rows.
fn race_peers(workload: &Workload, shape: IdShape) {
    let pages = bench_pages(workload, WARMUP_PAGES + PAGES);
    let mut sightline = Sightline::new(&pages);
    let mut otel = OpenTelemetry::new(&pages);
    let mut segment = Segment::new(&pages);
    let mut snowplow = Snowplow::new(&pages);
    let (all_before, own_before) = (all_threads_allocs(), heap_counts().0);
    let blocks = race(
        &mut [&mut sightline, &mut otel, &mut segment, &mut snowplow],
        WARMUP_PAGES,
        PAGES,
    );
    let (emitted, exported) = otel.finish();
    // Every thread but this one is OpenTelemetry's export thread.
    let elsewhere = (all_threads_allocs() - all_before) - (heap_counts().0 - own_before);
    let names = [
        "Sightline record_impression",
        "OpenTelemetry logs",
        "Segment Batcher",
        "Snowplow Tracker",
    ];
    let rows: Vec<Row> = names
        .into_iter()
        .zip(&blocks)
        .map(|(name, blocks)| Row {
            name,
            summary: summarise(blocks),
        })
        .collect();
    let sightline = &rows[0].summary;
    println!("   {}", shape.label());
    for row in &rows {
        let s = &row.summary;
        println!(
            "   {:<36} {:>8} {:>8.1} {:>8.1} {:>10.2} {:>10.1} {:>9.3}",
            row.name,
            thousands(s.ops),
            s.median_ns,
            s.p99_ns,
            s.allocs_all,
            s.alloc_bytes_all,
            sightline.median_ns / s.median_ns
        );
    }
    let fastest = rows[1..]
        .iter()
        .min_by(|a, b| a.summary.median_ns.total_cmp(&b.summary.median_ns))
        .expect("there are peers");
    let ratio = sightline.median_ns / fastest.summary.median_ns;
    println!(
        "   Sightline / fastest peer ({}): p50 {ratio:.3}, p99 {:.3}; target <= {TARGET_RATIO}: {}",
        fastest.name,
        sightline.p99_ns / fastest.summary.p99_ns,
        met(ratio <= TARGET_RATIO)
    );
    println!(
        "   Sightline: {} of the timed impressions not logged; OpenTelemetry: {} records emitted, {} exported, {} dropped; its export thread allocated {:.3} more per record",
        sightline.not_logged,
        thousands(emitted),
        thousands(exported),
        emitted - exported,
        elsewhere as f64 / emitted as f64
    );
}
