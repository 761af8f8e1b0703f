//! G. The worst single host call: a host loop over the reference workload's page views, one
//! logger, every call into it timed. Inputs come as the Driver takes them (each followed by
//! the store operations it planned, then the due upload and the next deadline), and the
//! host wakes at the logger's deadlines and at upload responses, as the sim's device does.

use std::time::Instant;

use sightline_core::{Impression, ItemRef, Logger, MemoryStore, Now, Store, UploadOutcome};
use sightline_sim::feed::{self, Step};
use sightline_sim::rng::Rng;
use sightline_sim::workload::{Page, Workload};

use super::ids::{IdShape, reshape};
use super::{VISIBLE_MS, app_config, at, met, new_logger, percentile, thousands};

/// The design's target for the p99.9 host call with UUID-shaped ids, microseconds.
const TARGET_P999_US: f64 = 50.0;
/// Time between one page view's end and the next one's start.
const PAGE_GAP_MS: u64 = 500;
/// An upload's response arrives this long after the logger hands it out (a healthy network).
const UPLOAD_LATENCY_MS: u64 = 150;
/// Wake-ups per wait at most: a logger that keeps asking to be called back at once cannot
/// hang the bench (the Driver backs off the same way).
const MAX_WAKEUPS: usize = 10_000;
/// Seed of the host-qualified impressions' visible times.
const QUALIFY_SEED: u64 = 0x5EED_0004;
/// Every this many page views the host qualifies impressions itself (record_impression);
/// on the others the logger qualifies them from visibility and focus changes.
const QUALIFIED_EVERY: usize = 2;
/// Timed empty calls to measure the timer's own cost.
const TIMER_PROBES: usize = 10_000;
/// Nanoseconds per microsecond.
const NS_PER_US: f64 = 1_000.0;

/// Every kind of call the host makes, in table order.
#[derive(Clone, Copy)]
enum Call {
    StartPageView,
    Visibility,
    Focus,
    Record,
    EndPageView,
    AppHidden,
    AppVisible,
    PollStoreOp,
    StoreResult,
    PollUpload,
    UploadResult,
    PollTimeout,
    Timeout,
}

const NAMES: [&str; 13] = [
    "start_page_view",
    "handle_visibility",
    "handle_focus",
    "record_impression",
    "end_page_view",
    "handle_app_hidden",
    "handle_app_visible",
    "poll_store_op",
    "handle_store_result",
    "poll_upload",
    "handle_upload_result",
    "poll_timeout",
    "handle_timeout",
];

/// One input of a page view: the workload's own, or an impression the host qualified.
enum Input<'w> {
    Feed(Step),
    Record(Impression<'w>),
}

/// The host: one logger over one long session, its store, the upload in flight, and the
/// duration of every call by kind.
struct Host {
    logger: Logger,
    store: MemoryStore,
    /// Host monotonic milliseconds.
    t: u64,
    /// The upload in flight: its id and when its response arrives.
    in_flight: Option<(u64, u64)>,
    /// The logger's deadline as last polled.
    deadline: Option<u64>,
    nanos: [Vec<u64>; NAMES.len()],
    /// The same calls by the calling thread's CPU time: what a call costs without the
    /// time other processes on this shared machine took the core from it.
    cpu_nanos: [Vec<u64>; NAMES.len()],
}

impl Host {
    fn new() -> Host {
        let mut host = Host {
            logger: new_logger(app_config()),
            store: MemoryStore::new(),
            t: 0,
            in_flight: None,
            deadline: None,
            nanos: Default::default(),
            cpu_nanos: Default::default(),
        };
        // A resumed logger has its first checkpoint ready.
        host.drain();
        host
    }

    fn now(&self) -> Now {
        at(self.t)
    }

    /// Times one call.
    fn call<R>(&mut self, kind: Call, f: impl FnOnce(&mut Logger, Now) -> R) -> R {
        let now = self.now();
        let (result, wall, cpu) = timed(|| f(&mut self.logger, now));
        self.nanos[kind as usize].push(wall);
        self.cpu_nanos[kind as usize].push(cpu);
        result
    }

    /// An input, then what the Driver does after one.
    fn input(&mut self, kind: Call, f: impl FnOnce(&mut Logger, Now)) {
        self.call(kind, f);
        self.drain();
    }

    /// Performs the planned store operations, takes the due upload, polls the deadline.
    fn drain(&mut self) {
        loop {
            let (request, wall, cpu) = timed(|| self.logger.poll_store_op());
            self.nanos[Call::PollStoreOp as usize].push(wall);
            self.cpu_nanos[Call::PollStoreOp as usize].push(cpu);
            let Some(request) = request else { break };
            // Performing the operation is the host's work, not the logger's: untimed.
            let (id, result) = (request.id, self.store.apply(&request.op));
            // The id was just handed out, so it is the one awaited.
            let _ = self.call(Call::StoreResult, |l, _| l.handle_store_result(id, result));
        }
        if let Some(upload) = self.call(Call::PollUpload, |l, now| l.poll_upload(now)) {
            self.in_flight = Some((upload.id, self.t + UPLOAD_LATENCY_MS));
        }
        self.deadline = self.call(Call::PollTimeout, |l, _| l.poll_timeout());
    }

    /// Wakes for every deadline and upload response up to `until`, then sets the clock there.
    fn wait_until(&mut self, until: u64) {
        for _ in 0..MAX_WAKEUPS {
            let response = self.in_flight.map(|(_, done_at)| done_at);
            let Some(next) = [self.deadline, response].into_iter().flatten().min() else {
                break;
            };
            if next > until {
                break;
            }
            self.t = self.t.max(next);
            match self.in_flight {
                Some((id, done_at)) if done_at == next => {
                    self.in_flight = None;
                    let _ = self.call(Call::UploadResult, |l, now| {
                        l.handle_upload_result(id, UploadOutcome::status(200), now)
                    });
                }
                _ => self.call(Call::Timeout, |l, now| l.handle_timeout(now)),
            }
            self.drain();
        }
        self.t = self.t.max(until);
    }

    /// Plays one page view from the host's clock on, after PAGE_GAP_MS.
    fn play(&mut self, page: &Page, qualified: bool, rng: &mut Rng) {
        let origin = self.t + PAGE_GAP_MS;
        let on_host = |ms: u64| ms - page.start_ms + origin;
        let mut inputs: Vec<(u64, Input<'_>)> = feed::steps(page)
            .into_iter()
            .filter(|(_, step)| {
                !qualified || !matches!(step, Step::Visibility { .. } | Step::Focus { .. })
            })
            .map(|(ms, step)| (on_host(ms), Input::Feed(step)))
            .collect();
        if qualified {
            inputs.extend(qualify(page, on_host(page.start_ms), rng));
            // Stable: the start stays first, and an impression reported at a step's time
            // follows it.
            inputs.sort_by_key(|(t, _)| *t);
        }
        let mut pv = 0;
        for (t, input) in inputs {
            self.wait_until(t);
            let item = |row: u32, column: u32| {
                let it = &page.rows[row as usize][column as usize];
                ItemRef {
                    item_id: &it.id,
                    artwork_id: Some(&it.artwork_id),
                    row,
                    column,
                }
            };
            // Refusals are counted by the logger; the workload makes none.
            match input {
                Input::Feed(Step::Start) => self.input(Call::StartPageView, |l, now| {
                    pv = l
                        .start_page_view(page.page_name, Some(&page.request_id), None, now)
                        .expect("workload pages are valid");
                }),
                Input::Feed(Step::Visibility {
                    row,
                    column,
                    fraction,
                }) => self.input(Call::Visibility, |l, now| {
                    let _ = l.handle_visibility(pv, &item(row, column), fraction, now);
                }),
                Input::Feed(Step::Focus {
                    row,
                    column,
                    focused,
                }) => self.input(Call::Focus, |l, now| {
                    let _ = l.handle_focus(pv, &item(row, column), focused, now);
                }),
                Input::Feed(Step::Hidden) => {
                    self.input(Call::AppHidden, |l, now| l.handle_app_hidden(now));
                }
                Input::Feed(Step::Visible) => {
                    self.input(Call::AppVisible, |l, now| l.handle_app_visible(now));
                }
                Input::Feed(Step::End) => self.input(Call::EndPageView, |l, now| {
                    let _ = l.end_page_view(pv, now);
                }),
                Input::Record(imp) => self.input(Call::Record, |l, now| {
                    let _ = l.record_impression(pv, &imp, now);
                }),
            }
        }
    }
}

/// Impressions a host qualified itself: every item of the page visible once, for a random
/// time within VISIBLE_MS that fits the page view, reported when it ends (host clock, the
/// page view starting at `start`).
fn qualify<'w>(page: &'w Page, start: u64, rng: &mut Rng) -> Vec<(u64, Input<'w>)> {
    // Reported before the page view ends, at the latest one millisecond before.
    let Some(span) = page.duration_ms.checked_sub(1) else {
        return Vec::new();
    };
    if span < VISIBLE_MS.0 {
        return Vec::new();
    }
    let mut out = Vec::new();
    for (items, row) in page.rows.iter().zip(0u32..) {
        for (it, column) in items.iter().zip(0u32..) {
            let visible_ms = rng.range(VISIBLE_MS.0, VISIBLE_MS.1.min(span));
            let first = start + rng.range(0, span - visible_ms);
            let imp = Impression {
                item_id: &it.id,
                artwork_id: Some(&it.artwork_id),
                row,
                column,
                first_visible_mono_ms: first,
                visible_ms,
                max_visible_fraction: 1.0,
                focused_ms: 0,
            };
            out.push((first + visible_ms, Input::Record(imp)));
        }
    }
    out
}

pub fn section(workload: &Workload) {
    println!();
    println!(
        "G. Every host call timed: {} page views through one logger (default config, MemoryStore, uploads answered {UPLOAD_LATENCY_MS} ms later)",
        thousands(workload.pages.len() as u64)
    );
    for shape in [IdShape::Title, IdShape::Uuid] {
        let worst = host_loop(&reshape(workload, shape), shape);
        println!(
            "   worst kind of call, {}: {} p99.9 {:.1} us, max {:.1} us; all calls pooled: p99.9 {:.2} us",
            shape.label(),
            worst.name,
            worst.p999_us,
            worst.max_us,
            worst.pooled_p999_us
        );
        if shape == IdShape::Uuid {
            println!(
                "   target worst kind's p99.9 <= {TARGET_P999_US} us with UUID ids: {}",
                met(worst.p999_us <= TARGET_P999_US)
            );
        }
    }
    println!(
        "   us: each call timed alone with Instant (an empty timed call costs {:.0} ns p50); store operations performed by the host are not timed",
        timer_cost_ns()
    );
    println!(
        "   one page view in {QUALIFIED_EVERY}: the host qualifies impressions itself (record_impression); on the others the logger qualifies them from visibility and focus"
    );
    println!(
        "   pooled figures are mostly cheap polls (several per input, as the Driver makes them): the target is read on the worst kind"
    );
}

/// Runs `f`; its result, wall-clock nanoseconds and the calling thread's CPU nanoseconds
/// (the clock reads bracket the wall-clock ones, so they add nothing to those).
fn timed<R>(f: impl FnOnce() -> R) -> (R, u64, u64) {
    let cpu = thread_cpu_ns();
    let start = Instant::now();
    let result = f();
    let wall = start.elapsed().as_nanos() as u64;
    (result, wall, thread_cpu_ns().saturating_sub(cpu))
}

/// CPU time the calling thread has used, nanoseconds.
fn thread_cpu_ns() -> u64 {
    let mut t = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `t` is a valid, writable timespec; CLOCK_THREAD_CPUTIME_ID is always
    // supported on Linux, and on failure `t` stays zero.
    unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut t) };
    t.tv_sec as u64 * 1_000_000_000 + t.tv_nsec as u64
}

/// The slowest kind of call by p99.9, and the p99.9 of all calls pooled.
struct Worst {
    name: &'static str,
    p999_us: f64,
    max_us: f64,
    pooled_p999_us: f64,
}

/// Plays every page view of `workload` through one host and prints the calls' figures.
fn host_loop(workload: &Workload, shape: IdShape) -> Worst {
    let mut host = Host::new();
    let mut rng = Rng::new(QUALIFY_SEED);
    for (k, page) in workload.pages.iter().enumerate() {
        host.play(page, k % QUALIFIED_EVERY == 1, &mut rng);
    }
    let stats = host.logger.stats();
    println!(
        "   {}: {} impressions logged, {} inputs refused, {} batches uploaded",
        shape.label(),
        thousands(stats.issued),
        stats.invalid,
        thousands(stats.uploads)
    );
    println!(
        "   {:<24} {:>9} {:>9} {:>9} {:>9} {:>9}",
        "call", "calls", "us p50", "us p99", "us p99.9", "us max"
    );
    let mut all = Vec::new();
    let mut worst = Worst {
        name: "none",
        p999_us: 0.0,
        max_us: 0.0,
        pooled_p999_us: 0.0,
    };
    for (&name, nanos) in NAMES.iter().zip(&mut host.nanos) {
        if nanos.is_empty() {
            continue;
        }
        let (p999_us, max_us) = print_row(name, nanos);
        if p999_us > worst.p999_us {
            worst = Worst {
                name,
                p999_us,
                max_us,
                ..worst
            };
        }
        all.extend_from_slice(nanos);
    }
    worst.pooled_p999_us = print_row("all calls", &mut all).0;
    let (mut cpu_worst, mut cpu_max) = ("none", (0.0, 0.0));
    for (&name, nanos) in NAMES.iter().zip(&mut host.cpu_nanos) {
        if nanos.is_empty() {
            continue;
        }
        nanos.sort_unstable();
        let us = |p: f64| percentile(nanos, p) as f64 / NS_PER_US;
        if us(0.999) > cpu_max.0 {
            (cpu_worst, cpu_max) = (name, (us(0.999), us(1.0)));
        }
    }
    println!(
        "   by the calling thread's CPU time (time the thread lost to other processes left out): worst kind {cpu_worst} p99.9 {:.1} us, max {:.1} us",
        cpu_max.0, cpu_max.1
    );
    worst
}

/// Prints one row of call times; returns their p99.9 and max, microseconds.
fn print_row(name: &str, nanos: &mut [u64]) -> (f64, f64) {
    nanos.sort_unstable();
    let us = |p: f64| percentile(nanos, p) as f64 / NS_PER_US;
    println!(
        "   {:<24} {:>9} {:>9.2} {:>9.2} {:>9.2} {:>9.1}",
        name,
        thousands(nanos.len() as u64),
        us(0.5),
        us(0.99),
        us(0.999),
        us(1.0)
    );
    (us(0.999), us(1.0))
}

/// The median cost of timing an empty call, nanoseconds.
fn timer_cost_ns() -> f64 {
    let mut nanos: Vec<u64> = (0..TIMER_PROBES)
        .map(|_| {
            let start = Instant::now();
            std::hint::black_box(());
            start.elapsed().as_nanos() as u64
        })
        .collect();
    nanos.sort_unstable();
    percentile(&nanos, 0.5) as f64
}
