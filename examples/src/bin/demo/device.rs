//! Simulated devices: each plays one session of the reference workload through the std
//! runtime (a [`Driver`] over a [`FileStore`], uploading over real HTTP), on a clock that
//! runs [`SPEEDUP`] times faster than real time, and then drains what it queued.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::thread;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use sightline_core::runtime::{Clock, Driver, DriverError, FileStore, HttpTransport, Transport};
use sightline_core::upload::{Upload, UploadOutcome};
use sightline_core::{Config, Handled, Input, Now, Stats};
use sightline_sim::feed;
use sightline_sim::workload::{Page, Platform};

/// Device time runs this many times faster than real time, so a 25 s page plays in 1 s.
pub const SPEEDUP: u64 = 25;
/// Sessions played at once: devices mostly sleep (the demo uses a few % of a core), so
/// this is set by wall time: the workload's 300 pages are ~420 s of sped-up play.
const DEVICES_AT_ONCE: usize = 12;
/// How often a draining device checks whether its queue is empty.
const DRAIN_POLL: Duration = Duration::from_millis(20);
/// Real time a device may take to deliver its queue after its last page.
const DRAIN_LIMIT: Duration = Duration::from_secs(60);
/// Real time `Driver::shutdown` may keep uploading (nothing is pending by then).
const SHUTDOWN_WAIT: Duration = Duration::from_secs(2);
/// Per-request HTTP timeout: below the core's 60 s upload timeout as the fast clock sees it.
const HTTP_TIMEOUT: Duration = Duration::from_secs(2);
/// Disk budget of each device's store: the default queue bound (256 KiB) plus the journal.
const STORE_QUOTA_BYTES: u64 = 4 * 1024 * 1024;
/// Batch age on the device clock: a minute (2.4 s real) gives several uploads per
/// session for the faults to hit; production keeps the 5 min default.
const BATCH_AGE_MS: u64 = 60_000;
/// Share of installs sampled in: shows deterministic sampling at work.
const SAMPLE_RATE_PPM: u32 = 900_000;
/// Key the demo's collector accepts.
pub const APP_KEY: &str = "demo-key";

/// Device time: real time since the device started, sped up [`SPEEDUP`] times, on both
/// the monotonic and the wall clock (so they stay consistent with each other).
struct FastClock {
    started: Instant,
    wall_at_start_ms: u64,
}

impl FastClock {
    fn new(started: Instant) -> Self {
        let wall_at_start_ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as u64);
        FastClock {
            started,
            wall_at_start_ms,
        }
    }
}

impl Clock for FastClock {
    fn now(&self) -> Now {
        let mono_ms = self.started.elapsed().as_micros() as u64 * SPEEDUP / 1000;
        Now::new(mono_ms, self.wall_at_start_ms + mono_ms)
    }

    fn real_duration(&self, mono_ms: u64) -> Duration {
        Duration::from_micros(mono_ms * 1000 / SPEEDUP)
    }
}

/// The collector's current base URL; it changes if a restart cannot reuse the port.
pub type CollectorUrl = Arc<RwLock<String>>;

/// An [`HttpTransport`] that follows the collector to wherever it listens now.
struct FollowingTransport {
    url: CollectorUrl,
    http: HttpTransport,
}

impl FollowingTransport {
    fn new(url: CollectorUrl) -> Self {
        let http = HttpTransport::new(&read_url(&url), HTTP_TIMEOUT);
        FollowingTransport { url, http }
    }
}

impl Transport for FollowingTransport {
    fn send(&mut self, upload: &Upload) -> UploadOutcome {
        let url = read_url(&self.url);
        if url != self.http.base_url() {
            self.http = HttpTransport::new(&url, HTTP_TIMEOUT);
        }
        self.http.send(upload)
    }
}

fn read_url(url: &CollectorUrl) -> String {
    url.read().unwrap_or_else(|e| e.into_inner()).clone()
}

/// What every device shares.
pub struct Fleet<'a> {
    pub sessions: &'a [&'a [Page]],
    pub seed: u64,
    pub stores: PathBuf,
    pub url: CollectorUrl,
    /// Pages played so far, by all devices.
    pub pages_done: &'a AtomicUsize,
}

/// What happened on one device.
#[derive(Debug)]
pub struct DeviceRun {
    pub platform: Platform,
    pub session_id: String,
    pub stats: Stats,
    /// Inputs the driver refused or could not take (the workload is valid: stays 0).
    pub refused: u64,
}

/// Plays every session, [`DEVICES_AT_ONCE`] at a time, longest first so the last ones
/// end together; returns the runs in session order.
pub fn run_all(fleet: &Fleet) -> Vec<DeviceRun> {
    let mut order: Vec<usize> = (0..fleet.sessions.len()).collect();
    order.sort_by_key(|&i| std::cmp::Reverse(session_ms(fleet.sessions[i])));
    let next = AtomicUsize::new(0);
    let runs = Mutex::new(Vec::with_capacity(fleet.sessions.len()));
    thread::scope(|s| {
        for _ in 0..DEVICES_AT_ONCE {
            s.spawn(|| {
                while let Some(&index) = order.get(next.fetch_add(1, Ordering::Relaxed)) {
                    let run = run_device(fleet, index, fleet.sessions[index]);
                    let mut runs = runs.lock().unwrap_or_else(|e| e.into_inner());
                    runs.push((index, run));
                }
            });
        }
    });
    let mut runs = runs.into_inner().unwrap_or_else(|e| e.into_inner());
    runs.sort_by_key(|(index, _)| *index);
    runs.into_iter().map(|(_, run)| run).collect()
}

/// Length of a session on its own timeline.
fn session_ms(pages: &[Page]) -> u64 {
    match (pages.first(), pages.last()) {
        (Some(first), Some(last)) => last.start_ms + last.duration_ms - first.start_ms,
        _ => 0,
    }
}

/// One device: a fresh store, a driver, the session's pages in real (sped-up) time, then
/// backgrounding and draining.
fn run_device(fleet: &Fleet, index: usize, pages: &[Page]) -> DeviceRun {
    let platform = pages.first().map_or(Platform::Web, |p| p.platform);
    let started = Instant::now();
    let driver = start_driver(fleet, index, platform, started);
    let origin = pages.first().map_or(0, |p| p.start_ms);
    let mut refused = 0;
    for page in pages {
        refused += play(&driver, page, started, origin);
        fleet.pages_done.fetch_add(1, Ordering::Relaxed);
    }
    refused += u64::from(driver.app_hidden().is_err());
    drain(&driver);
    let session_id = driver.session_id().to_string();
    DeviceRun {
        platform,
        session_id,
        stats: driver.shutdown(SHUTDOWN_WAIT),
        refused,
    }
}

fn start_driver(fleet: &Fleet, index: usize, platform: Platform, started: Instant) -> Driver {
    let store = FileStore::open(store_dir(&fleet.stores, index), STORE_QUOTA_BYTES)
        .expect("open the device's store in the demo's temp directory");
    let transport = FollowingTransport::new(fleet.url.clone());
    Driver::start(
        config(fleet.seed, index, platform),
        Box::new(store),
        Box::new(transport),
        Box::new(FastClock::new(started)),
    )
    .expect("start a driver with the demo's configuration")
}

fn store_dir(stores: &Path, index: usize) -> PathBuf {
    stores.join(format!("device-{index:03}"))
}

fn config(seed: u64, index: usize, platform: Platform) -> Config {
    let device = match platform {
        Platform::Tv => "demo-tv",
        Platform::Mobile => "demo-phone",
        Platform::Web => "demo-browser",
    };
    Config {
        app_id: "com.example.streaming".into(),
        app_version: "7.4.1".into(),
        platform: feed::platform(platform),
        device: device.into(),
        install_id: format!("demo-install-{index}"),
        app_key: APP_KEY.into(),
        seed: seed.rotate_left(17) ^ index as u64,
        sample_rate_ppm: SAMPLE_RATE_PPM,
        max_batch_age_ms: BATCH_AGE_MS,
        ..Config::default()
    }
}

/// Waits until everything the device recorded is delivered or dropped, within a limit.
fn drain(driver: &Driver) {
    let started = Instant::now();
    while driver.stats().pending() > 0 && started.elapsed() < DRAIN_LIMIT {
        thread::sleep(DRAIN_POLL);
    }
}

/// Replays one page at its times on the session timeline (`origin` is when the device
/// started). Returns how many inputs were refused.
fn play(driver: &Driver, page: &Page, started: Instant, origin: u64) -> u64 {
    let mut page_view = None;
    let mut refused = 0;
    for (at_ms, step) in feed::steps(page) {
        let due = started + Duration::from_micros(at_ms.saturating_sub(origin) * 1000 / SPEEDUP);
        thread::sleep(due.saturating_duration_since(Instant::now()));
        let mut host = DriverHost(driver);
        refused += u64::from(feed::apply(&mut host, page, &mut page_view, step).is_err());
    }
    refused
}

/// The driver as a replay host: each workload step is one host call.
struct DriverHost<'a>(&'a Driver);

impl feed::Host for DriverHost<'_> {
    type Error = DriverError;
    fn handle(&mut self, input: Input) -> Result<Handled, DriverError> {
        self.0.input(input)
    }
}
