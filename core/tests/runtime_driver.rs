//! The std runtime end to end: the driver thread, the ureq transport and a loopback HTTP
//! collector written here on `std::net` (no network beyond 127.0.0.1).
//!
//! Time is a fake clock the tests advance; calls that wait for an answer (`stats`) also
//! wake the driver, so "advance the clock, ask for the stats" is how a test lets a
//! deadline pass without sleeping through it.
#![cfg(feature = "std")]

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use sightline_core::contract::Contract;
use sightline_core::runtime::{
    Clock, Driver, DriverError, FileStore, HttpTransport, SystemClock, Transport,
};
use sightline_core::upload::{
    APP_KEY_HEADER, CONTENT_TYPE, Header, UPLOAD_PATH, UPLOAD_TIMEOUT_MS,
};
use sightline_core::{
    Config, ConfigError, Impression, ItemRef, Logger, MemoryStore, Now, Recorded, Rule, Upload,
    UploadOutcome, proto, wire,
};

/// Wall-clock milliseconds at fake monotonic zero (2024-01-01), so stamps look real.
const WALL_BASE_MS: u64 = 1_704_067_200_000;
/// Fake monotonic time at which every test starts: not zero, so offsets are exercised.
const START_MONO_MS: u64 = 10_000;
/// Real time a test waits for something asynchronous before it fails; only reached on a bug.
const PATIENCE: Duration = Duration::from_secs(30);
/// Per-request timeout of the transports under test: loopback answers in microseconds.
const HTTP_TIMEOUT: Duration = Duration::from_secs(5);
/// Generous store quota: the tests measure delivery, not the quota.
const QUOTA: u64 = 64 * 1024 * 1024;

// ---- fixtures ----

/// A monotonic clock that moves only when the test says; wall time follows it.
#[derive(Clone)]
struct FakeClock {
    mono: Arc<AtomicU64>,
}

impl FakeClock {
    fn new() -> Self {
        FakeClock {
            mono: Arc::new(AtomicU64::new(START_MONO_MS)),
        }
    }

    fn advance(&self, ms: u64) {
        self.mono.fetch_add(ms, Ordering::SeqCst);
    }
}

impl Clock for FakeClock {
    fn now(&self) -> Now {
        let mono = self.mono.load(Ordering::SeqCst);
        Now::new(mono, WALL_BASE_MS + mono)
    }
}

fn config() -> Config {
    Config {
        app_id: "tv.test".into(),
        app_version: "1.0.0".into(),
        app_key: "key-123".into(),
        seed: 42,
        // Short backoff, so Retry-After (not backoff) decides when a retry may go out.
        retry_base_ms: 100,
        retry_max_ms: 200,
        ..Config::default()
    }
}

/// A valid pre-qualified impression that ended at `now_mono` after the minimum second.
fn impression(item_id: &str, column: u32, now_mono: u64) -> Impression<'_> {
    Impression {
        item_id,
        artwork_id: None,
        row: 0,
        column,
        first_visible_mono_ms: now_mono - 1000,
        visible_ms: 1000,
        max_visible_fraction: 1.0,
        focused_ms: 0,
    }
}

/// Starts a page view, lets a second pass and records `items` distinct impressions on it.
fn record_items(driver: &Driver, clock: &FakeClock, first: u32, items: u32) {
    let page_view = driver.start_page_view("home", None, None).unwrap();
    clock.advance(1000);
    let now = driver.now().mono_ms;
    for i in first..first + items {
        let item = format!("title:{i}");
        let recorded = driver
            .record_impression(page_view, &impression(&item, i, now))
            .unwrap();
        assert!(matches!(recorded, Recorded::Logged { .. }), "{recorded:?}");
    }
}

/// Advances the fake clock by `step_ms` and wakes the driver until `done` holds.
fn advance_until(
    driver: &Driver,
    clock: &FakeClock,
    step_ms: u64,
    mut done: impl FnMut(&sightline_core::Stats) -> bool,
) -> sightline_core::Stats {
    let started = Instant::now();
    loop {
        let stats = driver.stats();
        if done(&stats) {
            return stats;
        }
        assert!(started.elapsed() < PATIENCE, "gave up waiting: {stats:?}");
        clock.advance(step_ms);
        thread::sleep(Duration::from_millis(2));
    }
}

/// Waits in real time, without touching the driver, until `done` holds.
fn wait_until(mut done: impl FnMut() -> bool) {
    let started = Instant::now();
    while !done() {
        assert!(started.elapsed() < PATIENCE, "gave up waiting");
        thread::sleep(Duration::from_millis(5));
    }
}

/// A directory under the system temp dir, removed when dropped.
struct TempDir(PathBuf);

impl TempDir {
    fn new(tag: &str) -> Self {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let n = NEXT.fetch_add(1, Ordering::SeqCst);
        let path = std::env::temp_dir().join(format!(
            "sightline-runtime-{tag}-{}-{n}",
            std::process::id()
        ));
        let _ = std::fs::remove_dir_all(&path);
        TempDir(path)
    }

    fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// One request as the loopback collector received it.
#[derive(Clone, Debug)]
struct Received {
    method: String,
    path: String,
    headers: BTreeMap<String, String>,
    body: Vec<u8>,
}

impl Received {
    fn batch(&self) -> proto::Batch {
        wire::decode_gzip_batch(&self.body).expect("the body is a valid batch")
    }
}

/// (session, seq) -> item id of every impression in `batch`.
fn impressions_of(batch: &proto::Batch) -> Vec<((String, u64), String)> {
    let ids = wire::Ids::of(batch);
    wire::impressions(batch)
        .unwrap()
        .into_iter()
        .map(|imp| {
            (
                (batch.session_id.clone(), imp.seq),
                ids.item(&imp).to_string(),
            )
        })
        .collect()
}

/// The collector's answer to one request.
#[derive(Clone, Copy, Debug)]
struct Reply {
    status: u16,
    retry_after: Option<&'static str>,
}

fn status(status: u16) -> Reply {
    Reply {
        status,
        retry_after: None,
    }
}

/// A tiny HTTP/1.1 collector on 127.0.0.1: one connection at a time, `Connection: close`,
/// Content-Length bodies. `script(n)` answers the n-th request (0-based).
struct Collector {
    addr: SocketAddr,
    received: Arc<Mutex<Vec<(Received, Reply)>>>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Collector {
    fn start(script: impl Fn(usize) -> Reply + Send + 'static) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let received = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let (log, stopping) = (Arc::clone(&received), Arc::clone(&stop));
        let thread = thread::spawn(move || {
            for stream in listener.incoming() {
                if stopping.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(stream) = stream else { continue };
                let n = log.lock().unwrap().len();
                serve(stream, script(n), &log);
            }
        });
        Collector {
            addr,
            received,
            stop,
            thread: Some(thread),
        }
    }

    fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    fn received(&self) -> Vec<(Received, Reply)> {
        self.received.lock().unwrap().clone()
    }

    /// Impressions in requests answered with 2xx: what the collector accepted.
    fn accepted(&self) -> Vec<((String, u64), String)> {
        self.received()
            .iter()
            .filter(|(_, reply)| (200..300).contains(&reply.status))
            .flat_map(|(request, _)| impressions_of(&request.batch()))
            .collect()
    }
}

impl Drop for Collector {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wake the blocking accept so the thread sees the flag.
        let _ = TcpStream::connect(self.addr);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// Reads one request, logs it, then answers it (logging first: once the client has its
/// answer, the test must already see the request). Connections without a full request
/// are ignored.
fn serve(stream: TcpStream, reply: Reply, log: &Mutex<Vec<(Received, Reply)>>) -> Option<()> {
    stream.set_read_timeout(Some(HTTP_TIMEOUT)).ok()?;
    let mut reader = BufReader::new(stream.try_clone().ok()?);
    let mut line = String::new();
    reader.read_line(&mut line).ok()?;
    let mut parts = line.split_whitespace();
    let (method, path) = (parts.next()?.to_string(), parts.next()?.to_string());
    let mut headers = BTreeMap::new();
    loop {
        line.clear();
        reader.read_line(&mut line).ok()?;
        let header = line.trim_end();
        if header.is_empty() {
            break;
        }
        let (name, value) = header.split_once(':')?;
        headers.insert(name.trim().to_ascii_lowercase(), value.trim().to_string());
    }
    let len: usize = headers.get("content-length")?.parse().ok()?;
    let mut body = vec![0; len];
    reader.read_exact(&mut body).ok()?;
    log.lock().ok()?.push((
        Received {
            method,
            path,
            headers,
            body,
        },
        reply,
    ));
    let mut response = format!(
        "HTTP/1.1 {} Test\r\nContent-Length: 2\r\nConnection: close\r\n",
        reply.status
    );
    if let Some(retry_after) = reply.retry_after {
        response.push_str(&format!("Retry-After: {retry_after}\r\n"));
    }
    response.push_str("\r\nok");
    let mut stream = stream;
    stream.write_all(response.as_bytes()).ok()?;
    stream.flush().ok()
}

/// A loopback address nobody listens on: bound, then closed.
fn refused_url() -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    drop(listener);
    format!("http://{addr}")
}

fn http(url: &str) -> Box<dyn Transport> {
    Box::new(HttpTransport::new(url, HTTP_TIMEOUT))
}

fn start(transport: Box<dyn Transport>, clock: &FakeClock) -> Driver {
    Driver::start(
        config(),
        Box::new(MemoryStore::new()),
        transport,
        Box::new(clock.clone()),
    )
    .unwrap()
}

/// Every (session, seq) exactly once, and the seqs are 1..=n.
fn assert_each_seq_once(accepted: &[((String, u64), String)], n: u64) {
    let mut counts: BTreeMap<&(String, u64), usize> = BTreeMap::new();
    for (key, _) in accepted {
        *counts.entry(key).or_default() += 1;
    }
    assert!(counts.values().all(|&c| c == 1), "duplicates: {counts:?}");
    let sessions: Vec<&String> = counts.keys().map(|(s, _)| s).collect();
    assert!(sessions.windows(2).all(|w| w[0] == w[1]), "one session");
    let seqs: Vec<u64> = counts.keys().map(|(_, seq)| *seq).collect();
    assert_eq!(seqs, (1..=n).collect::<Vec<_>>());
}

/// A transport that records every upload and answers with `outcome`.
fn recording(outcome: UploadOutcome) -> (Arc<Mutex<Vec<Upload>>>, impl Transport + 'static) {
    let log = Arc::new(Mutex::new(Vec::new()));
    let sink = Arc::clone(&log);
    let transport = move |upload: &Upload| {
        sink.lock().unwrap().push(upload.clone());
        outcome.clone()
    };
    (log, transport)
}

const OK: UploadOutcome = UploadOutcome::Status {
    code: 200,
    retry_after: None,
};

// ---- the driver over HTTP ----

#[test]
fn the_driver_delivers_every_recorded_impression_exactly_once() {
    let collector = Collector::start(|_| status(200));
    let clock = FakeClock::new();
    let driver = Driver::start(
        Config {
            max_batch_impressions: 100,
            ..config()
        },
        Box::new(MemoryStore::new()),
        http(&collector.url()),
        Box::new(clock.clone()),
    )
    .unwrap();
    record_items(&driver, &clock, 0, 250);
    driver.flush().unwrap();
    let stats = advance_until(&driver, &clock, 10, |s| s.delivered == 250);

    let received = collector.received();
    assert_eq!(received.len(), 3, "batches of 100, 100 and 50");
    for (request, _) in &received {
        assert_eq!(request.method, "POST");
        assert_eq!(request.path, UPLOAD_PATH);
        assert_eq!(request.headers["content-type"], CONTENT_TYPE);
        assert_eq!(request.headers[APP_KEY_HEADER], "key-123");
        assert_eq!(request.batch().app_id, "tv.test");
    }
    let accepted = collector.accepted();
    assert_each_seq_once(&accepted, 250);
    assert!(
        accepted
            .iter()
            .all(|((session, _), _)| session == driver.session_id())
    );
    assert!(
        accepted
            .iter()
            .all(|((_, seq), item)| *item == format!("title:{}", seq - 1))
    );
    assert_eq!(stats.pending(), 0);
    assert_eq!(stats.uploads, 3);
    assert_eq!(stats.retries, 0);
    assert!(stats.balanced());
    assert_eq!(driver.shutdown(Duration::from_secs(1)), stats);
}

#[test]
fn retry_after_from_503s_is_obeyed_and_each_impression_is_accepted_once() {
    const REFUSALS: usize = 3;
    let collector = Collector::start(|n| {
        if n < REFUSALS {
            Reply {
                status: 503,
                retry_after: Some("1"),
            }
        } else {
            status(200)
        }
    });
    let clock = FakeClock::new();
    let driver = start(http(&collector.url()), &clock);
    record_items(&driver, &clock, 0, 20);
    driver.flush().unwrap();
    let stats = advance_until(&driver, &clock, 100, |s| s.delivered == 20);

    let received = collector.received();
    assert_eq!(received.len(), REFUSALS + 1);
    let sends: Vec<proto::SendInfo> = received
        .iter()
        .map(|(request, _)| request.batch().send.unwrap())
        .collect();
    assert_eq!(
        sends.iter().map(|s| s.attempt).collect::<Vec<_>>(),
        [1, 2, 3, 4]
    );
    for pair in sends.windows(2) {
        assert!(
            pair[1].sent_at_mono_ms >= pair[0].sent_at_mono_ms + 1000,
            "a retry went out before Retry-After: {sends:?}"
        );
    }
    // Every attempt carried the same impressions; only the last was accepted.
    let first: Vec<_> = impressions_of(&received[0].0.batch());
    assert!(
        received
            .iter()
            .all(|(r, _)| impressions_of(&r.batch()) == first)
    );
    assert_each_seq_once(&collector.accepted(), 20);
    assert_eq!(stats.uploads, 4);
    assert_eq!(stats.retries, REFUSALS as u64);
    assert_eq!(stats.pending(), 0);
    assert_eq!(stats.dropped.total(), 0);
    assert!(stats.balanced());
}

#[test]
fn shutdown_with_an_unreachable_collector_returns_and_leaves_impressions_pending_in_the_store() {
    let dir = TempDir::new("unreachable");
    let clock = FakeClock::new();
    let driver = Driver::start(
        config(),
        Box::new(FileStore::open(dir.path(), QUOTA).unwrap()),
        http(&refused_url()),
        Box::new(clock.clone()),
    )
    .unwrap();
    record_items(&driver, &clock, 0, 5);
    let stats = driver.shutdown(Duration::from_millis(300));
    assert_eq!(stats.pending(), 5);
    assert_eq!(stats.delivered, 0);
    assert_eq!(stats.dropped.total(), 0);
    assert!(stats.uploads >= 1, "shutdown tried to deliver: {stats:?}");
    assert!(stats.balanced());

    // The closed batch is in the store: the next start has it queued.
    let mut store = FileStore::open(dir.path(), QUOTA).unwrap();
    let mut logger = Logger::start(config(), &mut store, clock.now()).unwrap();
    assert_eq!(logger.pending(), 5);
    clock.advance(60_000);
    let upload = logger.poll_upload(clock.now()).expect("the batch is due");
    let seqs: Vec<u64> = impressions_of(&wire::decode_gzip_batch(&upload.body).unwrap())
        .into_iter()
        .map(|((_, seq), _)| seq)
        .collect();
    assert_eq!(seqs, [1, 2, 3, 4, 5]);
}

#[test]
fn shutdown_delivers_the_open_batch_before_it_returns() {
    let collector = Collector::start(|_| status(200));
    let clock = FakeClock::new();
    let driver = start(http(&collector.url()), &clock);
    record_items(&driver, &clock, 0, 7);
    assert_eq!(driver.stats().delivered, 0, "the batch is still open");
    let stats = driver.shutdown(PATIENCE);
    assert_eq!(stats.delivered, 7);
    assert_eq!(stats.pending(), 0);
    assert_each_seq_once(&collector.accepted(), 7);
}

// ---- HttpTransport ----

fn upload(body: &[u8]) -> Upload {
    Upload {
        id: 1,
        path: UPLOAD_PATH.to_string(),
        headers: vec![
            Header {
                name: "content-type".to_string(),
                value: CONTENT_TYPE.to_string(),
            },
            Header {
                name: APP_KEY_HEADER.to_string(),
                value: "key-123".to_string(),
            },
        ],
        body: body.to_vec(),
    }
}

#[test]
fn http_transport_reports_statuses_raw_retry_after_text_and_refused_connections() {
    let replies = [
        status(200),
        status(413),
        status(400),
        Reply {
            status: 503,
            retry_after: Some("7"),
        },
        Reply {
            status: 429,
            retry_after: Some("Mon, 01 Jan 2024 00:00:30 GMT"),
        },
    ];
    let collector = Collector::start(move |n| replies[n.min(replies.len() - 1)]);
    // A trailing slash on the base URL must not double the path's.
    let transport = HttpTransport::new(&format!("{}/", collector.url()), HTTP_TIMEOUT);
    let outcome = |code, retry_after: Option<&str>| UploadOutcome::Status {
        code,
        retry_after: retry_after.map(str::to_string),
    };
    let body = b"\x1f\x8b not really gzip, the transport does not care";
    assert_eq!(transport.send(&upload(body)), outcome(200, None));
    assert_eq!(transport.send(&upload(body)), outcome(413, None));
    assert_eq!(transport.send(&upload(body)), outcome(400, None));
    assert_eq!(transport.send(&upload(body)), outcome(503, Some("7")));
    assert_eq!(
        transport.send(&upload(body)),
        outcome(429, Some("Mon, 01 Jan 2024 00:00:30 GMT")),
        "the header's text, for the logger to parse"
    );
    let received = collector.received();
    assert_eq!(received.len(), 5);
    for (request, _) in &received {
        assert_eq!(request.path, UPLOAD_PATH);
        assert_eq!(request.body, body);
        assert_eq!(request.headers["content-type"], CONTENT_TYPE);
        assert_eq!(request.headers[APP_KEY_HEADER], "key-123");
        assert!(request.headers["user-agent"].starts_with("sightline/"));
    }

    let mut refused = HttpTransport::new(&refused_url(), HTTP_TIMEOUT);
    assert_eq!(
        Transport::send(&mut refused, &upload(body)),
        UploadOutcome::NetworkError
    );
}

#[test]
fn http_transport_reports_a_server_that_never_answers_as_a_network_error() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    // Accept and hold the connection without a word until the request gave up.
    let silent = thread::spawn(move || listener.accept().map(|(stream, _)| stream));
    let transport = HttpTransport::new(&format!("http://{addr}"), Duration::from_millis(200));
    assert_eq!(
        transport.send(&upload(b"body")),
        UploadOutcome::NetworkError
    );
    let held = silent.join().unwrap();
    assert!(held.is_ok(), "the request reached the silent server");
}

#[test]
fn http_transport_reports_a_malformed_url_or_header_as_a_network_error() {
    let transport = HttpTransport::new("not a url", HTTP_TIMEOUT);
    assert_eq!(transport.send(&upload(b"x")), UploadOutcome::NetworkError);
    let collector = Collector::start(|_| status(200));
    let transport = HttpTransport::new(&collector.url(), HTTP_TIMEOUT);
    let mut bad = upload(b"x");
    bad.headers.push(Header {
        name: "x-bad".into(),
        value: "line\nbreak".into(),
    });
    assert_eq!(transport.send(&bad), UploadOutcome::NetworkError);
    assert!(collector.received().is_empty(), "nothing was sent");
}

// ---- the driver's API ----

#[test]
fn driver_start_reports_an_invalid_configuration() {
    let clock = FakeClock::new();
    let result = Driver::start(
        Config {
            app_id: String::new(),
            ..config()
        },
        Box::new(MemoryStore::new()),
        http(&refused_url()),
        Box::new(clock),
    );
    assert_eq!(
        result.err(),
        Some(DriverError::Config(ConfigError::BadId("app_id")))
    );
}

#[test]
fn waiting_calls_return_the_rule_broken_and_calls_that_do_not_wait_count_it() {
    let (uploads, transport) = recording(OK);
    let clock = FakeClock::new();
    let driver = start(Box::new(transport), &clock);
    assert_eq!(
        driver.start_page_view("not a page!", None, None),
        Err(DriverError::Rule(Rule::PageName))
    );
    let page_view = driver.start_page_view("home", Some("req-1"), None).unwrap();
    clock.advance(1000);
    let now = driver.now().mono_ms;
    assert_eq!(
        driver.record_impression(page_view, &impression("bad id", 0, now)),
        Err(DriverError::Rule(Rule::ItemId))
    );
    let early = Impression {
        first_visible_mono_ms: START_MONO_MS - 1,
        ..impression("title:1", 0, now)
    };
    assert_eq!(
        driver.record_impression(page_view, &early),
        Err(DriverError::Rule(Rule::OutsidePageView))
    );
    assert_eq!(
        driver.record_impression(page_view + 1, &impression("title:1", 0, now)),
        Err(DriverError::Rule(Rule::UnknownPageView))
    );
    let item = ItemRef {
        item_id: "title:1",
        artwork_id: None,
        row: 0,
        column: 0,
    };
    assert_eq!(driver.visibility(page_view, &item, 2.0), Ok(()));
    assert_eq!(driver.end_page_view(page_view + 7), Ok(()));
    let stats = driver.stats();
    assert_eq!(stats.invalid, 6);
    assert_eq!(stats.invalid_by_rule.get(Rule::Fraction), 1);
    assert_eq!(stats.invalid_by_rule.get(Rule::UnknownPageView), 2);
    assert_eq!(stats.recorded, 0);
    assert!(uploads.lock().unwrap().is_empty());
}

#[test]
fn visibility_changes_become_an_impression_that_is_uploaded() {
    let (uploads, transport) = recording(OK);
    let clock = FakeClock::new();
    let driver = start(Box::new(transport), &clock);
    let layout = vec![vec!["title:1".to_string(), "title:7".to_string()]];
    let page_view = driver.start_page_view("home", None, Some(layout)).unwrap();
    let item = ItemRef {
        item_id: "title:7",
        artwork_id: Some("art:7"),
        row: 0,
        column: 1,
    };
    clock.advance(200);
    driver.visibility(page_view, &item, 1.0).unwrap();
    driver.focus(page_view, &item, true).unwrap();
    clock.advance(1500);
    driver.visibility(page_view, &item, 0.0).unwrap();
    driver.end_page_view(page_view).unwrap();
    driver.flush().unwrap();
    let stats = advance_until(&driver, &clock, 0, |s| s.delivered == 1);
    assert_eq!(stats.recorded, 1);

    let uploads = uploads.lock().unwrap().clone();
    assert_eq!(uploads.len(), 1);
    let batch = wire::decode_gzip_batch(&uploads[0].body).unwrap();
    let rows = wire::impressions(&batch).unwrap();
    assert_eq!(rows.len(), 1);
    let imp = rows[0];
    let ids = wire::Ids::of(&batch);
    assert_eq!(ids.item(&imp), "title:7");
    assert_eq!(ids.artwork(&imp), Some("art:7"));
    assert_eq!((imp.row, imp.column), (0, 1));
    assert_eq!(imp.first_visible_ms, 200);
    assert_eq!(imp.visible_ms, 1500);
    assert_eq!(imp.max_visible_pct, 100);
    assert_eq!(imp.focused_ms, 1500);
}

#[test]
fn app_hidden_closes_the_batch_and_uploads_it_without_a_flush() {
    let (uploads, transport) = recording(OK);
    let clock = FakeClock::new();
    let driver = start(Box::new(transport), &clock);
    record_items(&driver, &clock, 0, 3);
    assert_eq!(driver.stats().delivered, 0);
    driver.app_hidden().unwrap();
    advance_until(&driver, &clock, 0, |s| s.delivered == 3);
    assert_eq!(uploads.lock().unwrap().len(), 1);
    driver.app_visible().unwrap();
    record_items(&driver, &clock, 3, 2);
    driver.flush().unwrap();
    advance_until(&driver, &clock, 0, |s| s.delivered == 5);
    assert_eq!(uploads.lock().unwrap().len(), 2);
}

#[test]
fn the_batch_age_deadline_fires_on_the_real_clock_without_any_further_call() {
    const MIN_VISIBLE_MS: u32 = 10;
    let sent = Arc::new(AtomicUsize::new(0));
    let counter = Arc::clone(&sent);
    let transport = move |_: &Upload| {
        counter.fetch_add(1, Ordering::SeqCst);
        OK
    };
    let driver = Driver::start(
        Config {
            max_batch_age_ms: 50,
            contract: Contract {
                min_visible_ms: MIN_VISIBLE_MS,
                ..Contract::default()
            },
            ..config()
        },
        Box::new(MemoryStore::new()),
        Box::new(transport),
        Box::new(SystemClock::new()),
    )
    .unwrap();
    let page_view = driver.start_page_view("home", None, None).unwrap();
    let first = driver.now().mono_ms;
    thread::sleep(Duration::from_millis(u64::from(MIN_VISIBLE_MS) * 2));
    let imp = Impression {
        first_visible_mono_ms: first,
        visible_ms: u64::from(MIN_VISIBLE_MS),
        ..impression("title:1", 0, first + 1000)
    };
    assert_eq!(
        driver.record_impression(page_view, &imp),
        Ok(Recorded::Logged { seq: 1 })
    );
    // The answer reaches the logger after the transport returns: wait for the logger.
    wait_until(|| driver.stats().delivered == 1);
    let stats = driver.shutdown(Duration::ZERO);
    assert_eq!(stats.delivered, 1);
    assert_eq!(sent.load(Ordering::SeqCst), 1);
}

/// Runs `SPEEDUP` times faster than real time, and tells the driver so.
struct FastClock {
    started: Instant,
}

impl FastClock {
    const SPEEDUP: u64 = 1000;
}

impl Clock for FastClock {
    fn now(&self) -> Now {
        let mono = START_MONO_MS + self.started.elapsed().as_micros() as u64 * Self::SPEEDUP / 1000;
        Now::new(mono, WALL_BASE_MS + mono)
    }

    fn real_duration(&self, mono_ms: u64) -> Duration {
        Duration::from_micros(mono_ms * 1000 / Self::SPEEDUP)
    }
}

#[test]
fn a_clock_faster_than_real_time_has_its_deadlines_kept_on_its_own_time() {
    let (uploads, transport) = recording(OK);
    let clock = FastClock {
        started: Instant::now(),
    };
    // The default 5 min batch age is 0.3 s of real time on this clock; waiting it in real
    // time would take far longer than the patience below.
    let driver = Driver::start(
        config(),
        Box::new(MemoryStore::new()),
        Box::new(transport),
        Box::new(clock),
    )
    .unwrap();
    let page_view = driver.start_page_view("home", None, None).unwrap();
    thread::sleep(Duration::from_millis(5)); // 5 s on the fast clock
    let now = driver.now().mono_ms;
    let imp = Impression {
        first_visible_mono_ms: now - 2000,
        visible_ms: 1500,
        ..impression("title:1", 0, now)
    };
    assert_eq!(
        driver.record_impression(page_view, &imp),
        Ok(Recorded::Logged { seq: 1 })
    );
    let started = Instant::now();
    while driver.stats().delivered == 0 {
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "the age deadline never fired"
        );
        thread::sleep(Duration::from_millis(10));
    }
    assert_eq!(uploads.lock().unwrap().len(), 1);
    drop(driver);
}

#[test]
fn opting_out_with_purge_drops_what_is_queued_and_counts_it() {
    let (uploads, transport) = recording(UploadOutcome::NetworkError);
    let clock = FakeClock::new();
    let driver = start(Box::new(transport), &clock);
    record_items(&driver, &clock, 0, 4);
    driver.flush().unwrap();
    let stats = advance_until(&driver, &clock, 0, |s| s.uploads == 1);
    assert_eq!(stats.pending(), 4);
    // The logger counts the attempt when it hands it to the upload thread, which may not
    // have reached the transport yet.
    let started = Instant::now();
    while uploads.lock().unwrap().is_empty() {
        assert!(started.elapsed() < Duration::from_secs(10), "never sent");
        thread::sleep(Duration::from_millis(5));
    }
    assert_eq!(
        uploads.lock().unwrap().len(),
        1,
        "tried once, then backs off"
    );

    driver.set_enabled(false, true).unwrap();
    let stats = driver.stats();
    assert_eq!(stats.dropped.purged, 4);
    assert_eq!(stats.pending(), 0);
    assert!(stats.balanced());
    let page_view = driver.start_page_view("home", None, None).unwrap();
    let now = driver.now().mono_ms;
    assert_eq!(
        driver.record_impression(page_view, &impression("title:9", 9, now)),
        Ok(Recorded::Disabled)
    );
    clock.advance(10 * 60_000);
    assert_eq!(driver.stats().uploads, 1, "nothing left to send");
}

#[test]
fn a_slow_upload_never_blocks_the_hosts_calls() {
    let clock = FakeClock::new();
    let (release, released) = std::sync::mpsc::channel::<()>();
    let released = Mutex::new(released);
    let in_request = Arc::new(AtomicBool::new(false));
    let finished = Arc::new(AtomicBool::new(false));
    let (entered, done) = (Arc::clone(&in_request), Arc::clone(&finished));
    let transport = move |_: &Upload| {
        entered.store(true, Ordering::SeqCst);
        // Held until the test lets go (bounded, so a regression fails instead of hanging).
        let _ = released.lock().unwrap().recv_timeout(PATIENCE);
        done.store(true, Ordering::SeqCst);
        OK
    };
    let driver = start(Box::new(transport), &clock);
    record_items(&driver, &clock, 0, 2);
    driver.flush().unwrap();
    wait_until(|| in_request.load(Ordering::SeqCst));
    // The request hangs; the host's waiting calls are answered all the same.
    record_items(&driver, &clock, 2, 3);
    assert_eq!(driver.stats().issued, 5);
    assert!(
        !finished.load(Ordering::SeqCst),
        "answered while the upload was still hanging"
    );
    release.send(()).unwrap();
    let stats = advance_until(&driver, &clock, 1000, |s| s.delivered == 2);
    assert_eq!(stats.issued, 5);
}

#[test]
fn a_panicking_transport_never_reaches_the_host_and_logging_goes_on() {
    let clock = FakeClock::new();
    let transport = |_: &Upload| -> UploadOutcome { panic!("transport bug") };
    let driver = start(Box::new(transport), &clock);
    record_items(&driver, &clock, 0, 2);
    driver.flush().unwrap();
    // The upload thread died with the request; the in-flight upload times out as a network
    // error and every later attempt fails the same way, counted, while the host goes on.
    let stats = advance_until(&driver, &clock, UPLOAD_TIMEOUT_MS / 4, |s| s.retries >= 2);
    assert_eq!((stats.delivered, stats.pending()), (0, 2));
    record_items(&driver, &clock, 2, 3);
    assert_eq!(driver.stats().issued, 5, "recording still works");
    let stats = driver.shutdown(Duration::from_millis(200));
    assert_eq!((stats.issued, stats.delivered, stats.pending()), (5, 0, 5));
}

#[test]
fn dropping_the_driver_stops_its_thread_and_a_restart_delivers_what_it_left() {
    let dir = TempDir::new("restart");
    let clock = FakeClock::new();
    let witness = Arc::new(());
    let held = Arc::clone(&witness);
    let failing = move |_: &Upload| {
        let _ = &held;
        UploadOutcome::NetworkError
    };
    let driver = Driver::start(
        config(),
        Box::new(FileStore::open(dir.path(), QUOTA).unwrap()),
        Box::new(failing),
        Box::new(clock.clone()),
    )
    .unwrap();
    record_items(&driver, &clock, 0, 6);
    let session = driver.session_id().to_string();
    drop(driver);
    // Drop does not wait for a request in progress; the upload thread ends right after it
    // and releases the transport.
    wait_until(|| Arc::strong_count(&witness) == 1);

    let (uploads, transport) = recording(OK);
    let driver = Driver::start(
        config(),
        Box::new(FileStore::open(dir.path(), QUOTA).unwrap()),
        Box::new(transport),
        Box::new(clock.clone()),
    )
    .unwrap();
    assert_eq!(driver.session_id(), session, "the session continues");
    let stats = advance_until(&driver, &clock, 1000, |s| s.delivered == 6);
    assert_eq!(stats.pending(), 0);
    assert!(stats.balanced());
    let accepted: Vec<_> = uploads
        .lock()
        .unwrap()
        .iter()
        .flat_map(|u| impressions_of(&wire::decode_gzip_batch(&u.body).unwrap()))
        .collect();
    assert_each_seq_once(&accepted, 6);
}

#[test]
fn the_driver_serves_several_host_threads_at_once() {
    const THREADS: u32 = 4;
    const EACH: u32 = 50;
    let collector = Collector::start(|_| status(200));
    let clock = FakeClock::new();
    let driver = Arc::new(
        Driver::start(
            Config {
                max_batch_impressions: 64,
                ..config()
            },
            Box::new(MemoryStore::new()),
            http(&collector.url()),
            Box::new(clock.clone()),
        )
        .unwrap(),
    );
    let page_views: Vec<u64> = (0..THREADS)
        .map(|_| driver.start_page_view("home", None, None).unwrap())
        .collect();
    clock.advance(1000);
    let now = driver.now().mono_ms;
    let workers: Vec<_> = page_views
        .into_iter()
        .enumerate()
        .map(|(t, page_view)| {
            let driver = Arc::clone(&driver);
            thread::spawn(move || {
                for i in 0..EACH {
                    let item = format!("title:{t}-{i}");
                    let recorded = driver
                        .record_impression(page_view, &impression(&item, i, now))
                        .unwrap();
                    assert!(matches!(recorded, Recorded::Logged { .. }));
                }
            })
        })
        .collect();
    for worker in workers {
        worker.join().unwrap();
    }
    driver.flush().unwrap();
    let total = u64::from(THREADS * EACH);
    let stats = advance_until(&driver, &clock, 10, |s| s.delivered == total);
    assert!(stats.balanced());
    assert_each_seq_once(&collector.accepted(), total);
}
