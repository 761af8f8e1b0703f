//! The simulation harness: one device replays its session's pages through the real
//! logger on virtual time, over a faulty network, with crashes (the logger is dropped
//! without a flush and restarted over its store, its monotonic clock starting afresh) and
//! clock jumps (wall clock leaps; monotonic time briefly reported backwards). Afterwards
//! the network heals and the device drains; [`check`] states the loss invariant.

use std::collections::BTreeSet;

use sightline_core::{Config, Logger, Now, Stats, Store};

use crate::collector::Collector;
use crate::feed::{self, Step};
use crate::network::{Exchange, Faults, Network};
use crate::rng::Rng;
use crate::store::SharedStore;
use crate::workload::{Page, Workload};

/// Wall-clock start of every simulated session (2026-01-01).
pub const WALL0: u64 = 1_767_225_600_000;
/// Loop guard: a device that needs more wake-ups than this to drain is stuck.
const MAX_WAKEUPS: u32 = 1_000_000;

/// How hostile the simulated world is.
#[derive(Clone, Debug)]
pub struct SimSpec {
    pub faults: Faults,
    /// Chance per page that the app is killed at a random step of it.
    pub crash_per_page: f64,
    /// Chance per page of a wall-clock jump and a backwards monotonic reading.
    pub clock_jump_per_page: f64,
    /// Faults continue this long after the session's last page, then the network heals.
    pub faulty_tail_ms: u64,
    /// Virtual time allowed for draining once the network is healthy.
    pub drain_budget_ms: u64,
    /// Template configuration; the seed and install id are set per device.
    pub config: Config,
}

impl SimSpec {
    /// The default hostile world of the simulation tests and the demo.
    pub fn hostile(config: Config) -> Self {
        SimSpec {
            faults: Faults::lossy(),
            crash_per_page: 0.05,
            clock_jump_per_page: 0.05,
            faulty_tail_ms: 60_000,
            drain_budget_ms: 3_600_000,
            config,
        }
    }
}

/// What happened on one device.
#[derive(Clone, Debug)]
pub struct DeviceReport {
    pub session_id: String,
    pub stats: Stats,
    /// Seqs the device was told were delivered (2xx it received).
    pub acked: BTreeSet<u64>,
    pub restarts: u32,
    /// Inputs the logger refused (the generated workload is valid, so this stays 0).
    pub refused: u64,
    pub drained: bool,
}

struct InFlight {
    id: u64,
    done_at: u64,
    exchange: Exchange,
    seqs: Vec<u64>,
}

struct Device<'a> {
    spec: &'a SimSpec,
    config: Config,
    store: SharedStore,
    logger: Logger,
    net: Network,
    rng: Rng,
    collector: &'a mut Collector,
    /// Virtual time on the session's timeline.
    t: u64,
    process_start: u64,
    mono_offset: u64,
    wall_skew: i64,
    /// Report monotonic time this much too early on the next input (a glitch).
    glitch_ms: u64,
    in_flight: Option<InFlight>,
    acked: BTreeSet<u64>,
    restarts: u32,
    refused: u64,
}

impl Device<'_> {
    fn now(&mut self) -> Now {
        let mono = (self.t - self.process_start + self.mono_offset).saturating_sub(self.glitch_ms);
        self.glitch_ms = 0;
        let wall = (WALL0 as i64 + self.t as i64 + self.wall_skew).max(0) as u64;
        Now::new(mono, wall)
    }

    /// Virtual time of a monotonic deadline of the current process.
    fn virtual_of(&self, mono: u64) -> u64 {
        (mono + self.process_start)
            .saturating_sub(self.mono_offset)
            .max(self.t)
    }

    /// Performs every store operation the logger planned, as a synchronous host does.
    fn sync(&mut self) {
        let mut store = self.store.clone();
        self.logger.perform_store_ops(&mut store);
    }

    /// The process dies while performing its store operations: each next one is performed
    /// with even odds, and the rest are lost with the process.
    fn sync_until_killed(&mut self) {
        let mut store = self.store.clone();
        while self.rng.chance(0.5) {
            let Some(op) = self.logger.poll_store_op() else {
                break;
            };
            let (id, result) = (op.id, store.apply(&op.op));
            let _ = self.logger.handle_store_result(id, result);
        }
    }

    fn send_due(&mut self) {
        self.sync();
        if self.in_flight.is_some() {
            return;
        }
        let now = self.now();
        if let Some(upload) = self.logger.poll_upload(now) {
            let seqs = sightline_core::wire::decode_gzip_batch(&upload.body)
                .ok()
                .and_then(|b| sightline_core::wire::impressions(&b).ok())
                .map(|rows| rows.iter().map(|r| r.seq).collect())
                .unwrap_or_default();
            let exchange = self.net.exchange(&upload.body, self.collector);
            self.in_flight = Some(InFlight {
                id: upload.id,
                done_at: self.t + exchange.latency_ms,
                exchange,
                seqs,
            });
        }
    }

    /// Processes every timer and network completion up to `until`, then sets the clock there.
    fn pump(&mut self, until: u64) {
        for _ in 0..MAX_WAKEUPS {
            self.send_due();
            let timer = self.logger.poll_timeout().map(|m| self.virtual_of(m));
            let net = self.in_flight.as_ref().map(|f| f.done_at);
            let next = match (timer, net) {
                (Some(a), Some(b)) => a.min(b),
                (a, b) => match a.or(b) {
                    Some(n) => n,
                    None => break,
                },
            };
            if next > until {
                break;
            }
            self.t = self.t.max(next);
            let now = self.now();
            if net == Some(next) {
                if let Some(f) = self.in_flight.take() {
                    if matches!(
                        f.exchange.outcome,
                        sightline_core::UploadOutcome::Status {
                            code: 200..=299,
                            ..
                        }
                    ) {
                        self.acked.extend(&f.seqs);
                    }
                    let _ = self
                        .logger
                        .handle_upload_result(f.id, f.exchange.outcome, now);
                }
            } else {
                self.logger.handle_timeout(now);
            }
        }
        self.t = self.t.max(until);
    }

    fn crash_and_restart(&mut self) {
        self.in_flight = None;
        self.restarts += 1;
        self.process_start = self.t;
        self.mono_offset = self.rng.range(0, 5_000);
        let now = self.now();
        let mut store = self.store.clone();
        // The configuration was valid at first start; it is the same one.
        if let Ok(logger) = Logger::start(self.config.clone(), &mut store, now) {
            self.logger = logger;
        }
    }

    fn play(&mut self, page: &Page) {
        let steps = feed::steps(page);
        let crash_at = self
            .rng
            .chance(self.spec.crash_per_page)
            .then(|| self.rng.below(steps.len() as u64) as usize);
        if self.rng.chance(self.spec.clock_jump_per_page) {
            self.wall_skew += self.rng.range(0, 4 * 3_600_000) as i64 - 2 * 3_600_000;
            self.glitch_ms = self.rng.range(1, 1_000);
        }
        let mut page_view = None;
        for (i, (at, step)) in steps.into_iter().enumerate() {
            if crash_at == Some(i) {
                self.sync_until_killed();
                self.crash_and_restart();
                page_view = None;
                if step != Step::Start {
                    continue;
                }
            }
            self.pump(at);
            let now = self.now();
            let mut host = feed::At {
                logger: &mut self.logger,
                now,
            };
            if feed::apply(&mut host, page, &mut page_view, step).is_err() {
                self.refused += 1;
            }
        }
    }
}

/// Runs one device through `pages` (one session) and drains it.
pub fn run_device(
    spec: &SimSpec,
    seed: u64,
    pages: &[Page],
    collector: &mut Collector,
) -> DeviceReport {
    let mut rng = Rng::new(seed);
    let mut config = spec.config.clone();
    config.seed = rng.next_u64();
    config.install_id = format!("install-{seed}");
    if let Some(first) = pages.first() {
        config.platform = feed::platform(first.platform);
    }
    let store = SharedStore::default();
    let start = pages.first().map_or(0, |p| p.start_ms);
    let logger = Logger::start(
        config.clone(),
        &mut store.clone(),
        Now::new(0, WALL0 + start),
    )
    .expect("the simulation's configuration is valid");
    let mut device = Device {
        spec,
        config,
        store,
        logger,
        net: Network::new(rng.next_u64(), spec.faults),
        rng,
        collector,
        t: start,
        process_start: start,
        mono_offset: 0,
        wall_skew: 0,
        glitch_ms: 0,
        in_flight: None,
        acked: BTreeSet::new(),
        restarts: 0,
        refused: 0,
    };
    for page in pages {
        device.play(page);
    }
    let now = device.now();
    device.logger.handle_app_hidden(now);
    let healed_at = device.t + spec.faulty_tail_ms;
    device.pump(healed_at);
    device.net.faults = Faults::none();
    let deadline = device.t + spec.drain_budget_ms;
    while device.logger.pending() > 0 && device.t < deadline {
        let before = device.t;
        device.pump(deadline.min(device.t + 60_000));
        if device.t == before {
            break;
        }
    }
    DeviceReport {
        session_id: device.logger.session_id().to_string(),
        stats: device.logger.stats().clone(),
        acked: device.acked,
        restarts: device.restarts,
        refused: device.refused,
        drained: device.logger.pending() == 0,
    }
}

/// The loss invariant for one device, checked against what the collector holds:
/// recorded = delivered + sampled out + deduped + dropped by reason, every acknowledged
/// seq arrived, nothing arrived twice with different content, and what arrived without an
/// acknowledgement is covered by the drop counters.
pub fn check(report: &DeviceReport, collector: &Collector) -> Result<(), String> {
    let s = &report.stats;
    let fail = |what: &str| Err(format!("session {}: {what}: {s:?}", report.session_id));
    if !report.drained || s.pending() != 0 {
        return fail("did not drain");
    }
    if s.recorded != s.delivered + s.sampled_out + s.deduped + s.dropped.total() {
        return fail("recorded != delivered + sampled out + deduped + dropped");
    }
    if s.issued != s.delivered + s.dropped.total() {
        return fail("issued seqs unaccounted for");
    }
    if s.delivered != report.acked.len() as u64 {
        return fail("delivered differs from the acknowledgements the device received");
    }
    let empty = crate::collector::SessionLog::default();
    let log = collector.sessions.get(&report.session_id).unwrap_or(&empty);
    if log.conflicts != 0 {
        return fail("a seq arrived twice with different content");
    }
    if let Some(missing) = report.acked.iter().find(|seq| !log.seqs.contains_key(seq)) {
        return fail(&format!(
            "acknowledged seq {missing} is not at the collector"
        ));
    }
    let unacked = log.seqs.len() as u64 - report.acked.len() as u64;
    if unacked > s.dropped.total() {
        return fail("impressions arrived that the device neither saw acknowledged nor dropped");
    }
    if log
        .seqs
        .keys()
        .next_back()
        .is_some_and(|&max| max > s.issued)
    {
        return fail("a seq beyond the last one issued");
    }
    if log.counters.last_seq > s.issued || log.counters.recorded > s.recorded {
        return fail("batch counters ahead of the device");
    }
    Ok(())
}

/// Every session of `workload` through a real logger with `config` on a healthy network
/// (no faults, crashes or clock jumps), one device per session seeded by its index: the
/// upload bodies exactly as the SDK sent them, for the collector's benches.
pub fn healthy_bodies(workload: &Workload, config: Config) -> Vec<Vec<u8>> {
    let spec = SimSpec {
        faults: Faults::none(),
        crash_per_page: 0.0,
        clock_jump_per_page: 0.0,
        ..SimSpec::hostile(config)
    };
    let mut collector = Collector {
        keep_bodies: true,
        ..Collector::default()
    };
    for (i, pages) in workload.by_session().iter().enumerate() {
        run_device(&spec, i as u64, pages, &mut collector);
    }
    collector.bodies
}
