//! Fixtures of the end-to-end tests: the real collector binary as a child process, the real
//! SDK core (the sans-IO `Logger` on a virtual clock, uploading over loopback HTTP with the
//! std runtime's `HttpTransport`), and readers for what the collector wrote.
//!
//! Nothing here waits on wall-clock durations except for the child to come up (bounded by
//! [`PATIENCE`]); the SDK's time is virtual, so Retry-After and backoff never cost real time.

#![allow(dead_code)] // Each test binary uses a different subset.

use std::collections::{BTreeMap, BTreeSet};
use std::fs::File;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use prost::Message;
use sightline_collector::row::{BadRow, Row};
pub use sightline_collector::session::Reconciliation;
use sightline_collector::sink::BatchRecord;
use sightline_core::kit::MicroCollector;
use sightline_core::runtime::HttpTransport;
use sightline_core::upload::{APP_KEY_HEADER, CONTENT_TYPE, UPLOAD_PATH};
use sightline_core::{
    Config, Impression, Logger, MemoryStore, Now, Recorded, Upload, UploadOutcome,
};
use sightline_core::{proto, wire};
use std::net::TcpStream;

/// The app key every test collector accepts.
pub const APP_KEY: &str = "e2e-key";
/// Headers of a well-formed upload.
pub const BATCH_HEADERS: [(&str, &str); 2] =
    [("content-type", CONTENT_TYPE), (APP_KEY_HEADER, APP_KEY)];
/// Real time to wait for something that normally takes milliseconds (the child binding its
/// port, exiting after SIGTERM); only reached on a bug or a badly overloaded machine.
pub const PATIENCE: Duration = Duration::from_secs(30);
/// Per-request timeout of every HTTP client here: loopback answers in microseconds.
pub const HTTP_TIMEOUT: Duration = Duration::from_secs(10);
/// Virtual monotonic time at which every device starts: not zero, so offsets are exercised.
const START_MONO_MS: u64 = 50_000;
/// Steps a device may take to settle its queue; far more than any test needs.
const MAX_PUMP_STEPS: usize = 10_000;

// ---- temp dirs ----

/// A fresh directory under the system temp dir, removed when dropped.
pub struct TempDir(PathBuf);

impl TempDir {
    pub fn new(tag: &str) -> TempDir {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let n = NEXT.fetch_add(1, Ordering::SeqCst);
        let path =
            std::env::temp_dir().join(format!("sightline-e2e-{}-{n}-{tag}", std::process::id()));
        let _ = std::fs::remove_dir_all(&path);
        std::fs::create_dir_all(&path).expect("create temp dir");
        TempDir(path)
    }

    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

// ---- the collector process ----

/// How to start a collector.
#[derive(Clone, Debug, Default)]
pub struct Opts {
    pub micro: bool,
    pub faults: bool,
    pub max_body_bytes: Option<usize>,
    /// Further `serve` options, as given on the command line.
    pub args: Vec<String>,
    /// A command the collector runs under (`prlimit ...`), before the binary.
    pub under: Vec<String>,
    /// Environment variables set for the collector.
    pub env: Vec<(String, String)>,
    /// Leaves out `--app-key APP_KEY`, so keys come from elsewhere.
    pub no_key_flag: bool,
}

impl Opts {
    pub fn files() -> Opts {
        Opts::default()
    }

    pub fn micro() -> Opts {
        Opts {
            micro: true,
            ..Opts::default()
        }
    }

    pub fn with_faults(mut self) -> Opts {
        self.faults = true;
        self
    }

    pub fn max_body(mut self, bytes: usize) -> Opts {
        self.max_body_bytes = Some(bytes);
        self
    }

    /// Adds `serve` option `flag` with `value`.
    pub fn with(mut self, flag: &str, value: impl ToString) -> Opts {
        self.args.push(flag.to_string());
        self.args.push(value.to_string());
        self
    }

    /// Sets environment variable `name` for the collector.
    pub fn env(mut self, name: &str, value: impl ToString) -> Opts {
        self.env.push((name.to_string(), value.to_string()));
        self
    }

    /// Starts without `--app-key APP_KEY` on the command line.
    pub fn no_key_flag(mut self) -> Opts {
        self.no_key_flag = true;
        self
    }

    /// Runs the collector under `command` (its arguments first, the binary last).
    pub fn under(mut self, command: &[&str]) -> Opts {
        self.under = command.iter().map(|s| s.to_string()).collect();
        self
    }
}

/// The real `sightline-collector serve` as a child process; killed when dropped.
pub struct Collector {
    child: Child,
    pub url: String,
    pub out: PathBuf,
    log: PathBuf,
    http: ureq::Agent,
}

/// `cmd` without the `SIGHTLINE_*` variables of the environment the tests run in: a
/// developer's settings must not change what a test starts.
pub fn without_sightline_env(cmd: &mut Command) -> &mut Command {
    for (name, _) in std::env::vars().filter(|(n, _)| n.starts_with("SIGHTLINE_")) {
        cmd.env_remove(name);
    }
    cmd
}

/// The collector binary under test.
pub fn binary() -> &'static str {
    env!("CARGO_BIN_EXE_sightline-collector")
}

impl Collector {
    /// Starts a collector on an ephemeral loopback port writing under `out`, and waits for
    /// its `listening on ADDR` line.
    pub fn start(out: &Path, opts: &Opts) -> Collector {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let log = out.with_file_name(format!(
            "{}.collector-{}.log",
            out.file_name().and_then(|n| n.to_str()).unwrap_or("out"),
            NEXT.fetch_add(1, Ordering::SeqCst)
        ));
        let mut cmd = match opts.under.split_first() {
            Some((program, args)) => {
                let mut cmd = Command::new(program);
                cmd.args(args).arg(binary());
                cmd
            }
            None => Command::new(binary()),
        };
        cmd.args(["serve", "--listen", "127.0.0.1:0"]);
        if !opts.no_key_flag {
            cmd.args(["--app-key", APP_KEY]);
        }
        cmd.arg("--out")
            .arg(out)
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(File::create(&log).expect("create collector log"));
        if opts.micro {
            cmd.arg("--micro");
        }
        if opts.faults {
            cmd.arg("--allow-fault-injection");
        }
        if let Some(n) = opts.max_body_bytes {
            cmd.args(["--max-body-bytes", &n.to_string()]);
        }
        cmd.args(&opts.args);
        without_sightline_env(&mut cmd).envs(opts.env.iter().map(|(n, v)| (n, v)));
        let mut child = cmd.spawn().expect("spawn the collector");
        let stdout = child.stdout.take().expect("piped stdout");
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            // Forward the first line, then keep draining so the child never blocks on stdout.
            let mut lines = BufReader::new(stdout).lines();
            let first = lines.next().and_then(Result::ok);
            let _ = tx.send(first);
            for _ in lines {}
        });
        let first = match rx.recv_timeout(PATIENCE) {
            Ok(Some(line)) => line,
            other => {
                let _ = child.kill();
                let _ = child.wait();
                panic!(
                    "collector did not report its address ({other:?}); log:\n{}",
                    std::fs::read_to_string(&log).unwrap_or_default()
                );
            }
        };
        let addr = first
            .strip_prefix("listening on ")
            .unwrap_or_else(|| panic!("unexpected first line {first:?}"))
            .trim()
            .to_string();
        Collector {
            child,
            url: format!("http://{addr}"),
            out: out.to_path_buf(),
            log,
            http: agent(),
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The collector's log so far (stderr), for failure messages.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// An SDK transport posting to this collector.
    pub fn transport(&self) -> HttpTransport {
        HttpTransport::new(&self.url, HTTP_TIMEOUT)
    }

    /// SIGKILL: no draining, no syncing, as a crash or an OOM kill.
    pub fn kill9(mut self) {
        self.child.kill().expect("SIGKILL the collector");
        self.child.wait().expect("reap the collector");
    }

    /// SIGTERM, then waits (bounded) for the process to exit.
    pub fn terminate(mut self) -> ExitStatus {
        let status = Command::new("kill")
            .args(["-TERM", &self.pid().to_string()])
            .status()
            .expect("run kill");
        assert!(status.success(), "kill -TERM failed");
        let started = Instant::now();
        loop {
            if let Some(exit) = self.child.try_wait().expect("wait for the collector") {
                return exit;
            }
            assert!(
                started.elapsed() < PATIENCE,
                "collector did not exit after SIGTERM; log:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// POSTs a raw body to the ingestion endpoint with the given headers.
    pub fn post_raw(&self, headers: &[(&str, &str)], body: &[u8]) -> Reply {
        self.try_post_raw(headers, body)
            .expect("POST reaches the collector")
    }

    /// Like [`Collector::post_raw`], reporting a connection that failed.
    pub fn try_post_raw(
        &self,
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> Result<Reply, ureq::Error> {
        let mut request = self.http.post(format!("{}{UPLOAD_PATH}", self.url));
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        let mut response = request.send(body)?;
        Ok(reply(&mut response))
    }

    /// POSTs `body` as a well-formed upload would be (right content type and key).
    pub fn post_batch(&self, body: &[u8]) -> Reply {
        self.post_raw(&BATCH_HEADERS, body)
    }

    /// Like [`Collector::post_batch`], reporting a connection that failed.
    pub fn try_post_batch(&self, body: &[u8]) -> Result<Reply, ureq::Error> {
        self.try_post_raw(&BATCH_HEADERS, body)
    }

    /// Performs an upload the logger asked for, headers and all, and returns the reply.
    pub fn post_upload(&self, upload: &Upload) -> Reply {
        let headers: Vec<(&str, &str)> = upload
            .headers
            .iter()
            .map(|h| (h.name.as_str(), h.value.as_str()))
            .collect();
        self.post_raw(&headers, &upload.body)
    }

    pub fn get(&self, path: &str) -> Reply {
        let mut response = self
            .http
            .get(format!("{}{path}", self.url))
            .call()
            .expect("GET reaches the collector");
        reply(&mut response)
    }

    pub fn post_json(&self, path: &str, json: &serde_json::Value) -> Reply {
        let mut response = self
            .http
            .post(format!("{}{path}", self.url))
            .header("content-type", "application/json")
            .send(json.to_string().as_bytes())
            .expect("POST reaches the collector");
        reply(&mut response)
    }

    /// Makes the next `remaining` uploads answer `status` with `Retry-After: retry_after_s`.
    pub fn inject(&self, status: u16, remaining: u32, retry_after_s: u64) {
        self.set_faults(serde_json::json!({
            "status": status,
            "remaining": remaining,
            "retry_after_s": retry_after_s,
        }));
    }

    /// The next `remaining` uploads are stored, then answered 503: lost acknowledgements.
    pub fn lose_acks(&self, remaining: u32) {
        self.set_faults(serde_json::json!({
            "status": 503,
            "remaining": remaining,
            "after_ingest": true,
        }));
    }

    /// The next `remaining` uploads hold the ingest for `stall_ms` each, as a heavy batch
    /// or a slow disk would, then are stored and answered as usual.
    pub fn stall(&self, remaining: u32, stall_ms: u64) {
        self.set_faults(serde_json::json!({
            "remaining": remaining,
            "stall_ms": stall_ms,
        }));
    }

    fn set_faults(&self, faults: serde_json::Value) {
        let r = self.post_json("/admin/faults", &faults);
        assert_eq!(r.status, 204, "fault injection refused: {}", r.body);
    }

    /// The Prometheus series, by full name (`name` or `name{label="v"}`). The exposition
    /// itself is checked by the Prometheus project's parser in tests/api.sh.
    pub fn metrics(&self) -> Metrics {
        let r = self.get("/metrics");
        assert_eq!(r.status, 200);
        let mut series = BTreeMap::new();
        for line in r.body.lines().filter(|l| !l.starts_with('#')) {
            if let Some((name, value)) = line.rsplit_once(' ') {
                let value = value
                    .parse()
                    .unwrap_or_else(|_| panic!("bad metric line {line:?}"));
                series.insert(name.to_string(), value);
            }
        }
        Metrics(series)
    }

    /// The producer kit's micro-mode client (`sightline_core::kit::MicroCollector`): the
    /// e2e tests read the micro API through it, so it is tested against the real binary.
    pub fn micro_client(&self) -> MicroCollector {
        MicroCollector::new(&self.url, HTTP_TIMEOUT)
    }

    pub fn micro_good(&self) -> Vec<Row> {
        let rows = self.micro_client().good().expect("/micro/good");
        serde_json::from_value(rows.into()).expect("good rows")
    }

    pub fn micro_bad(&self) -> Vec<BadRow> {
        let rows = self.micro_client().bad().expect("/micro/bad");
        serde_json::from_value(rows.into()).expect("bad rows")
    }

    /// Per-session reconciliation from `/sessions` (either mode).
    pub fn sessions(&self) -> BTreeMap<String, Reconciliation> {
        let r = self.get("/sessions");
        assert_eq!(r.status, 200, "/sessions: {}", r.body);
        serde_json::from_str(&r.body).expect("sessions")
    }

    /// Per-session reconciliation from `/micro/sessions`.
    pub fn micro_sessions(&self) -> BTreeMap<String, Reconciliation> {
        let sessions = self.micro_client().sessions().expect("/micro/sessions");
        serde_json::from_value(sessions.into()).expect("sessions")
    }
}

impl Drop for Collector {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Prometheus series read from `/metrics`; an absent series reads as 0.
#[derive(Debug)]
pub struct Metrics(BTreeMap<String, f64>);

impl Metrics {
    /// A count (counters, gauges, histogram counts and buckets are whole numbers).
    pub fn get(&self, series: &str) -> u64 {
        self.0.get(series).copied().unwrap_or(0.0) as u64
    }
}

/// An HTTP answer.
#[derive(Debug, Clone)]
pub struct Reply {
    pub status: u16,
    pub retry_after: Option<String>,
    pub body: String,
}

impl Reply {
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body)
            .unwrap_or_else(|e| panic!("reply is not JSON ({e}): {:?}", self.body))
    }

    /// `(accepted, rejected, duplicates)` of an ingest reply.
    pub fn counts(&self) -> (u64, u64, u64) {
        assert_eq!(self.status, 200, "not accepted: {}", self.body);
        let j = self.json();
        let n = |k: &str| j[k].as_u64().unwrap_or_else(|| panic!("no {k} in {j}"));
        (n("accepted"), n("rejected"), n("duplicates"))
    }

    /// The `error` reason of a refusal.
    pub fn reason(&self) -> String {
        self.json()["error"]
            .as_str()
            .unwrap_or_else(|| panic!("no reason in {:?}", self.body))
            .to_string()
    }
}

fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .timeout_global(Some(HTTP_TIMEOUT))
        .http_status_as_error(false)
        // A fresh connection per request: a test that makes the collector drop a connection
        // must not fail the next request on a pooled one.
        .max_idle_connections(0)
        .build()
        .new_agent()
}

fn reply(response: &mut ureq::http::Response<ureq::Body>) -> Reply {
    let status = response.status().as_u16();
    let retry_after = response
        .headers()
        .get("retry-after")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let body = response
        .body_mut()
        .read_to_string()
        .unwrap_or_else(|e| format!("<unreadable body: {e}>"));
    Reply {
        status,
        retry_after,
        body,
    }
}

// ---- raw clients ----

/// A raw connection to the collector.
pub fn connect(c: &Collector) -> TcpStream {
    let addr = c.url.trim_start_matches("http://");
    let stream = TcpStream::connect(addr).expect("connect to the collector");
    stream
        .set_read_timeout(Some(PATIENCE))
        .expect("set a read timeout");
    stream
}

/// The head of an upload of `length` body bytes, keep-alive.
pub fn upload_head(length: usize) -> String {
    format!(
        "POST {UPLOAD_PATH} HTTP/1.1\r\nhost: sightline\r\ncontent-type: {CONTENT_TYPE}\r\n{APP_KEY_HEADER}: {APP_KEY}\r\ncontent-length: {length}\r\n\r\n"
    )
}

/// A real upload of `n` impressions from a fresh device.
pub fn real_upload(install_id: &str, n: u64) -> sightline_core::Upload {
    let mut d = Device::new(install_id);
    d.page_view(n);
    d.flush();
    d.poll().expect("a batch is due")
}

/// A real one-impression batch turned into `n` impressions at consecutive seqs, as only a
/// crafted client could send (the SDK closes a batch at 8,192), gzipped.
pub fn crafted(n: usize) -> Vec<u8> {
    let mut batch = wire::decode_gzip_batch(&real_upload("crafted", 1).body).expect("a real batch");
    let cols = batch.impressions.as_mut().expect("impressions");
    fn first_then<T: Copy>(v: &mut Vec<T>, n: usize, rest: Option<T>) {
        if let Some(&first) = v.first() {
            *v = std::iter::once(first)
                .chain(std::iter::repeat_n(rest.unwrap_or(first), n - 1))
                .collect();
        }
    }
    cols.count = n as u32;
    first_then(&mut cols.seq_gap, n, Some(0));
    first_then(&mut cols.page_view_delta, n, Some(0));
    first_then(&mut cols.first_visible_delta_ms, n, Some(0));
    // Every later impression refers back to the first one's item and artwork ids (an empty
    // column reads as all 0: each impression a new id).
    if cols.item.is_empty() {
        cols.item.push(0);
    }
    first_then(&mut cols.item, n, Some(1));
    let artwork_again = cols.artwork.first().map(|&a| if a == 0 { 0 } else { 2 });
    first_then(&mut cols.artwork, n, artwork_again);
    first_then(&mut cols.row, n, None);
    first_then(&mut cols.visible_ms, n, None);
    first_then(&mut cols.max_visible_pct, n, None);
    first_then(&mut cols.focused_ms, n, None);
    cols.column = (0..n as u32).collect();
    batch.counters = None::<proto::Counters>;
    sightline_core::gzip::gzip(&batch.encode_to_vec())
}

// ---- what the collector wrote ----

/// Every line of `<out>/<kind>/*.ndjson`, in file order.
pub fn lines(out: &Path, kind: &str) -> Vec<String> {
    let mut files: Vec<PathBuf> = match std::fs::read_dir(out.join(kind)) {
        Ok(entries) => entries
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|e| e == "ndjson"))
            .collect(),
        Err(_) => return Vec::new(),
    };
    files.sort();
    files
        .iter()
        .flat_map(|f| {
            std::fs::read_to_string(f)
                .expect("read output file")
                .lines()
                .map(str::to_string)
                .collect::<Vec<_>>()
        })
        .collect()
}

/// The good rows of an output directory; every line must parse.
pub fn good_rows(out: &Path) -> Vec<Row> {
    parse_all(out, "good")
}

/// The bad rows of an output directory; every line must parse.
pub fn bad_rows(out: &Path) -> Vec<BadRow> {
    parse_all(out, "bad")
}

/// The batch records of an output directory; every line must parse.
pub fn batch_records(out: &Path) -> Vec<BatchRecord> {
    parse_all(out, "batches")
}

fn parse_all<T: serde::de::DeserializeOwned>(out: &Path, kind: &str) -> Vec<T> {
    lines(out, kind)
        .iter()
        .enumerate()
        .map(|(i, l)| {
            serde_json::from_str(l)
                .unwrap_or_else(|e| panic!("{kind} line {} does not parse ({e}): {l:?}", i + 1))
        })
        .collect()
}

/// (session, seq) of rows, asserting that none appears twice.
pub fn distinct_keys(rows: &[Row]) -> BTreeSet<(String, u64)> {
    let mut keys = BTreeSet::new();
    for r in rows {
        assert!(
            keys.insert((r.session_id.to_string(), r.seq)),
            "({}, {}) written twice",
            r.session_id,
            r.seq
        );
    }
    keys
}

/// Rows per session.
pub fn per_session(rows: &[Row]) -> BTreeMap<String, u64> {
    let mut out = BTreeMap::new();
    for r in rows {
        *out.entry(r.session_id.to_string()).or_default() += 1;
    }
    out
}

/// The seqs `1..=n` of `session`, as (session, seq) keys.
pub fn keys_of(session: &str, n: u64) -> BTreeSet<(String, u64)> {
    (1..=n).map(|s| (session.to_string(), s)).collect()
}

// ---- the SDK side ----

fn wall_now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// One simulated device: the real sans-IO logger on a virtual clock.
pub struct Device {
    pub logger: Logger,
    mono: u64,
    wall_base: u64,
    next_item: u64,
    /// Item ids of the impressions logged, by seq.
    pub logged: BTreeMap<u64, String>,
}

/// A configuration every collector here accepts, for a device with `install_id`. Short
/// retry backoff, so Retry-After (not backoff) decides when a retry may go out.
pub fn config(install_id: &str) -> Config {
    Config {
        app_id: "com.example.e2e".into(),
        app_version: "1.2.3".into(),
        device: "e2e-box".into(),
        install_id: install_id.into(),
        app_key: APP_KEY.into(),
        seed: 0xe2e,
        retry_base_ms: 100,
        retry_max_ms: 200,
        ..Config::default()
    }
}

/// What one pass of [`Device::settle`] saw.
#[derive(Debug, Default)]
pub struct Settled {
    /// Every upload outcome, in order.
    pub outcomes: Vec<UploadOutcome>,
    /// After each refused upload, how long (virtual ms) the logger asked to wait before
    /// the next attempt.
    pub waits_ms: Vec<u64>,
    /// Request body bytes sent.
    pub bytes_sent: u64,
}

impl Settled {
    pub fn statuses(&self) -> Vec<u16> {
        self.outcomes
            .iter()
            .map(|o| match o {
                UploadOutcome::Status { code, .. } => *code,
                UploadOutcome::NetworkError => 0,
            })
            .collect()
    }
}

impl Device {
    pub fn new(install_id: &str) -> Device {
        Device::with_config(config(install_id))
    }

    pub fn with_config(config: Config) -> Device {
        let wall_base = wall_now_ms() - START_MONO_MS;
        let now = Now::new(START_MONO_MS, wall_base + START_MONO_MS);
        let logger = Logger::start(config, &mut MemoryStore::new(), now).expect("valid config");
        Device {
            logger,
            mono: START_MONO_MS,
            wall_base,
            next_item: 1,
            logged: BTreeMap::new(),
        }
    }

    pub fn now(&self) -> Now {
        Now::new(self.mono, self.wall_base + self.mono)
    }

    pub fn advance(&mut self, ms: u64) {
        self.mono += ms;
    }

    pub fn session(&self) -> String {
        self.logger.session_id().to_string()
    }

    /// One page view with `n` distinct, valid impressions of `title:<k>` items (each visible
    /// 1.2 s at 100%), ended; returns their seqs. Nothing is closed or sent yet.
    pub fn page_view(&mut self, n: u64) -> Vec<u64> {
        self.page_view_with(n, |k| format!("title:{k}"))
    }

    /// Like [`Device::page_view`] with item ids made by `id(k)`.
    pub fn page_view_with(&mut self, n: u64, mut id: impl FnMut(u64) -> String) -> Vec<u64> {
        let start = self.now();
        let pv = self
            .logger
            .start_page_view("home", Some("req-e2e-1"), None, start)
            .expect("valid page view");
        self.advance(2_000);
        let now = self.now();
        let mut seqs = Vec::new();
        for i in 0..n {
            let k = self.next_item;
            self.next_item += 1;
            let item = id(k);
            let imp = Impression {
                item_id: &item,
                artwork_id: Some("art:1"),
                row: (i / 50) as u32,
                column: (i % 50) as u32,
                first_visible_mono_ms: start.mono_ms + 500,
                visible_ms: 1_200,
                max_visible_fraction: 1.0,
                focused_ms: 0,
            };
            match self.logger.record_impression(pv, &imp, now) {
                Ok(Recorded::Logged { seq }) => {
                    self.logged.insert(seq, item.clone());
                    seqs.push(seq);
                }
                other => panic!("impression {item} not logged: {other:?}"),
            }
        }
        self.advance(100);
        let now = self.now();
        self.logger.end_page_view(pv, now).expect("page view ends");
        seqs
    }

    /// Closes the open batch so it can be sent.
    /// Closes the open batch and performs the store operations it planned, as the host
    /// loop does after every input: only then is the batch durable and its send due.
    pub fn flush(&mut self) {
        let now = self.now();
        self.logger.flush(now);
        self.logger.perform_store_ops(&mut MemoryStore::new());
    }

    /// The next upload, if one is due now.
    pub fn poll(&mut self) -> Option<Upload> {
        let now = self.now();
        // A host without persistence: its store operations succeed and keep nothing.
        self.logger.perform_store_ops(&mut MemoryStore::new());
        self.logger.poll_upload(now)
    }

    /// Reports the outcome of an upload.
    pub fn settle_one(&mut self, upload: &Upload, outcome: UploadOutcome) {
        let now = self.now();
        self.logger
            .handle_upload_result(upload.id, outcome, now)
            .expect("the upload is in flight");
    }

    /// Closes the open batch and uploads until nothing is pending, jumping the virtual
    /// clock to each deadline the logger names (backoff, Retry-After).
    pub fn settle(&mut self, transport: &HttpTransport) -> Settled {
        self.flush();
        let mut seen = Settled::default();
        for _ in 0..MAX_PUMP_STEPS {
            if let Some(upload) = self.poll() {
                let outcome = transport.send(&upload);
                seen.bytes_sent += upload.body.len() as u64;
                let delivered = matches!(
                    outcome,
                    UploadOutcome::Status {
                        code: 200..=299,
                        ..
                    }
                );
                self.settle_one(&upload, outcome.clone());
                seen.outcomes.push(outcome);
                if !delivered {
                    let wait = self
                        .logger
                        .poll_timeout()
                        .map_or(0, |t| t.saturating_sub(self.mono));
                    seen.waits_ms.push(wait);
                }
                continue;
            }
            if self.logger.pending() == 0 {
                return seen;
            }
            let deadline = self
                .logger
                .poll_timeout()
                .expect("something is pending, so there is a deadline");
            self.mono = self.mono.max(deadline);
            let now = self.now();
            self.logger.handle_timeout(now);
        }
        panic!("the queue did not settle: {:?}", self.logger);
    }

    /// The loss invariant of the device: everything recorded is delivered or dropped.
    pub fn assert_settled(&self) {
        let s = self.logger.stats();
        assert!(s.balanced(), "unbalanced: {s:?}");
        assert_eq!(s.pending(), 0, "still pending: {s:?}");
        assert_eq!(
            s.delivered + s.dropped.total(),
            s.issued,
            "issued = delivered + dropped: {s:?}"
        );
    }
}

/// Deterministic pseudo-random ids (splitmix64), so bodies do not compress away.
pub struct Ids(u64);

impl Ids {
    pub fn new(seed: u64) -> Ids {
        Ids(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// `title:<random digits>`.
    pub fn title(&mut self) -> String {
        format!("title:{}", self.next_u64() >> 8)
    }
}
