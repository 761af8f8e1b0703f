//! The HTTP service: `POST /v1/batches` (gzip protobuf `Batch`), `/healthz`, Prometheus
//! `/metrics`, `/sessions`, the micro-mode query API (`/micro/*`), only when enabled a fault
//! injection endpoint for demos and tests (`/admin/faults`), and `/openapi.json`: the
//! OpenAPI document (`collector/openapi.json`) of exactly the routes this server mounted.
//!
//! Every hostile input gets a clear 4xx and the server keeps serving: the body size is
//! capped before it is read, gzip expansion is capped while it is inflated, and a bad
//! event is rejected alone, never with its good neighbours.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{SystemTime, UNIX_EPOCH};

use axum::body::HttpBody;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{MethodFilter, MethodRouter, on};
use axum::{Json, Router};
use sightline_core::contract::Contract;
use sightline_core::upload::{APP_KEY_HEADER, CONTENT_TYPE};
use tokio::sync::Semaphore;
use tokio::time::Instant;

use crate::body::{BodyError, Budget};
use crate::connections::{self, Gauges};
use crate::ingest::{Decoded, Decoder, Ingestor, Refused as Refused_};
use crate::limits::{BUSY_RETRY_AFTER_S, INGEST_QUEUE_TIMEOUT, LISTEN_BACKLOG, Limits};
use crate::log_limit::LogLimit;
use crate::metrics::{self, Instruments, SessionSizes, Snapshot};
use crate::sink::{MemorySink, NdjsonSink, Sink};
use crate::snapshot::Snapshots;

/// How the service is set up.
#[derive(Debug, Clone)]
pub struct Settings {
    pub listen: SocketAddr,
    /// Output directory of the NDJSON sink (ignored in micro mode).
    pub out_dir: PathBuf,
    /// Keys apps must send in `x-sightline-app-key`.
    pub app_keys: Vec<String>,
    pub micro: bool,
    pub contract: Contract,
    /// Largest accepted body; larger gets 413 (the SDK then splits the batch).
    pub max_body_bytes: usize,
    /// Enables `POST /admin/faults`.
    pub fault_injection: bool,
    /// Bounds on connections, time and memory.
    pub limits: Limits,
}

/// Where rows go: files, or memory in micro mode.
#[derive(Debug)]
enum Output {
    Files(NdjsonSink),
    Memory(MemorySink),
}

impl Output {
    fn sink(&mut self) -> &mut dyn Sink {
        match self {
            Output::Files(s) => s,
            Output::Memory(s) => s,
        }
    }
}

/// Injected answers: the next `remaining` uploads get `status` (with Retry-After). With
/// `after_ingest`, the upload is ingested and stored first and only the answer fails: a
/// lost acknowledgement, which the SDK retries and dedup must absorb.
#[derive(Debug, Clone, Copy, Default, serde::Deserialize, serde::Serialize)]
pub struct Faults {
    #[serde(default)]
    pub status: u16,
    pub remaining: u32,
    pub retry_after_s: Option<u64>,
    #[serde(default)]
    pub after_ingest: bool,
    /// Instead of answering with `status`, each of the next `remaining` uploads holds the
    /// ingest this long under the state's lock (a heavy batch, a slow disk: every other
    /// upload and `/metrics` wait too), then is stored and answered.
    #[serde(default)]
    pub stall_ms: Option<u64>,
}

/// The state uploads change: touched only on blocking threads (`spawn_blocking`), never on
/// the async runtime's workers, which keep answering `/healthz` and reading bodies.
#[derive(Debug)]
struct App {
    ingestor: Ingestor,
    output: Output,
    /// File mode's snapshots of the dedup state.
    snapshots: Option<Snapshots>,
    faults: Faults,
    injected: u64,
}

impl App {
    /// Spends one injected answer.
    fn injected_fault(&mut self) -> Response {
        self.faults.remaining -= 1;
        self.injected += 1;
        let status =
            StatusCode::from_u16(self.faults.status).unwrap_or(StatusCode::SERVICE_UNAVAILABLE);
        let mut response = refuse(status, "injected fault");
        if let Some(s) = self
            .faults
            .retry_after_s
            .and_then(|s| HeaderValue::from_str(&s.to_string()).ok())
        {
            response.headers_mut().insert(header::RETRY_AFTER, s);
        }
        response
    }
}

/// Counts of requests refused before any state is touched.
#[derive(Debug, Default)]
struct Refused {
    app_key: AtomicU64,
    content_type: AtomicU64,
    /// Bodies over `--max-body-bytes` (counted with the decoder's `too_large`).
    too_large: AtomicU64,
    body_timeout: AtomicU64,
    /// Uploads told to come back later: the buffer budget or the ingest queue was full.
    busy: AtomicU64,
}

/// What every handler shares.
#[derive(Debug)]
struct Shared {
    settings: Settings,
    /// Decodes outside the lock: uploads decode in parallel, one per ingest worker.
    decoder: Decoder,
    app: Mutex<App>,
    budget: Budget,
    /// One permit per ingest worker: the CPU work in flight.
    workers: Arc<Semaphore>,
    refused: Refused,
    connections: Arc<Gauges>,
    open_files: Option<u64>,
    instruments: Arc<Instruments>,
    /// Bounds the one log line per refused upload.
    refusal_log: LogLimit,
}

type State_ = Arc<Shared>;

fn lock(app: &Mutex<App>) -> MutexGuard<'_, App> {
    // A panic while holding the lock would be a bug; the state is still usable.
    app.lock().unwrap_or_else(|e| e.into_inner())
}

/// Runs `f` with the state on a blocking thread; a panic in it becomes a 500.
async fn with_app<T: Send + 'static>(
    shared: &State_,
    f: impl FnOnce(&Shared, &mut App) -> T + Send + 'static,
) -> Result<T, Response> {
    let shared = shared.clone();
    tokio::task::spawn_blocking(move || f(&shared, &mut lock(&shared.app)))
        .await
        .map_err(|e| {
            tracing::error!(error = %e, "request handler failed");
            refuse(StatusCode::INTERNAL_SERVER_ERROR, "internal error")
        })
}

/// A bound, not yet serving, collector.
#[derive(Debug)]
pub struct Server {
    listener: tokio::net::TcpListener,
    shared: State_,
}

impl Server {
    /// Binds the address and, in file mode, rebuilds dedup and loss state from the output
    /// directory, so a restarted collector still counts each (session, seq) once. The sink
    /// opens first: it cuts torn last lines, so only rows that stay are counted as received.
    /// Raises the open-files limit and fits the connection cap under it.
    pub async fn bind(mut settings: Settings) -> std::io::Result<Server> {
        let open_files = settings.limits.fit_open_files();
        tracing::info!(
            open_files = open_files.unwrap_or(0),
            max_connections = settings.limits.max_connections,
            "open files limit {}; at most {} connections; peak memory bound {} MiB",
            open_files.map_or("unknown".to_string(), |n| n.to_string()),
            settings.limits.max_connections,
            settings.limits.peak_memory_bytes() >> 20,
        );
        let mut ingestor = Ingestor::new(settings.contract.clone());
        let (output, snapshots) = if settings.micro {
            (Output::Memory(MemorySink::default()), None)
        } else {
            let mut sink = NdjsonSink::open(&settings.out_dir)?;
            let (snapshots, previous) =
                Snapshots::open(&settings.out_dir, &mut ingestor, &mut sink)?;
            if previous.replay.torn_lines > 0 {
                tracing::warn!(
                    torn_lines = previous.replay.torn_lines,
                    "skipped unreadable output lines"
                );
            }
            (Output::Files(sink), Some(snapshots))
        };
        let listener = listen(settings.listen)?;
        let shared = Shared {
            decoder: ingestor.decoder(),
            app: Mutex::new(App {
                ingestor,
                output,
                snapshots,
                faults: Faults::default(),
                injected: 0,
            }),
            budget: Budget::new(settings.limits.buffer_budget_bytes),
            workers: Arc::new(Semaphore::new(settings.limits.ingest_workers.max(1))),
            refused: Refused::default(),
            connections: Arc::new(Gauges::default()),
            open_files,
            instruments: Arc::new(Instruments::default()),
            refusal_log: LogLimit::default(),
            settings,
        };
        Ok(Server {
            listener,
            shared: Arc::new(shared),
        })
    }

    /// The bound address (useful with port 0).
    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// Serves until `shutdown` resolves, drains in-flight requests, then syncs the output.
    pub async fn serve(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> std::io::Result<()> {
        let settings = &self.shared.settings;
        let router = routes(settings)
            .build()?
            .route_layer(axum::middleware::from_fn_with_state(
                self.shared.instruments.clone(),
                metrics::track,
            ))
            .with_state(self.shared.clone());
        let limits = settings.limits.clone();
        connections::serve(
            self.listener,
            router,
            &limits,
            self.shared.connections.clone(),
            shutdown,
        )
        .await;
        with_app(&self.shared, |_, app| match &mut app.snapshots {
            // Syncs the output too, so the next start replays nothing.
            Some(snapshots) => snapshots.take(&app.ingestor, app.output.sink()).map(drop),
            None => app.output.sink().sync(),
        })
        .await
        .map_err(|_| std::io::Error::other("syncing the output failed"))?
    }
}

/// The routes a server with `settings` mounts (besides `/openapi.json`).
fn routes(settings: &Settings) -> Routes {
    let mut routes = Routes::default()
        .add(Verb::Post, "/v1/batches", ingest)
        .add(Verb::Get, "/healthz", healthz)
        .add(Verb::Get, "/metrics", metrics)
        // Loss accounting in either mode; micro mode also serves it under /micro/.
        .add(Verb::Get, "/sessions", micro_sessions);
    if settings.micro {
        routes = routes
            .add(Verb::Get, "/micro/good", micro_good)
            .add(Verb::Get, "/micro/bad", micro_bad)
            .add(Verb::Get, "/micro/sessions", micro_sessions)
            .add(Verb::Post, "/micro/reset", micro_reset);
    }
    if settings.fault_injection {
        routes = routes.add(Verb::Post, "/admin/faults", set_faults);
    }
    routes
}

/// The OpenAPI document of every route the server can mount.
const OPENAPI: &str = include_str!("../openapi.json");

/// An HTTP method a route answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verb {
    Get,
    Post,
}

impl Verb {
    /// The method's key in an OpenAPI path item.
    pub fn openapi_key(self) -> &'static str {
        match self {
            Verb::Get => "get",
            Verb::Post => "post",
        }
    }

    fn filter(self) -> MethodFilter {
        match self {
            Verb::Get => MethodFilter::GET,
            Verb::Post => MethodFilter::POST,
        }
    }
}

/// The routes a server mounts, kept as a list so that `/openapi.json` documents exactly
/// those: the router and the served document are built from the same list.
#[derive(Default)]
struct Routes {
    list: Vec<(Verb, &'static str, MethodRouter<State_>)>,
}

impl Routes {
    fn add<H, T>(mut self, verb: Verb, path: &'static str, handler: H) -> Self
    where
        H: axum::handler::Handler<T, State_>,
        T: 'static,
    {
        self.list.push((verb, path, on(verb.filter(), handler)));
        self
    }

    /// Method and path of each route, `/openapi.json` included.
    fn mounted(&self) -> Vec<(Verb, &'static str)> {
        let mut mounted: Vec<_> = self.list.iter().map(|(v, p, _)| (*v, *p)).collect();
        mounted.push((Verb::Get, "/openapi.json"));
        mounted
    }

    /// The router, with `/openapi.json` documenting these routes and itself.
    fn build(self) -> std::io::Result<Router<State_>> {
        let mounted = self.mounted();
        let document =
            serde_json::to_vec(&openapi_document(&mounted)?).map_err(std::io::Error::other)?;
        let document = axum::body::Bytes::from(document);
        let mut router = Router::new().route(
            "/openapi.json",
            on(MethodFilter::GET, move || {
                let document = document.clone();
                async move { ([(header::CONTENT_TYPE, "application/json")], document) }
            }),
        );
        for (_, path, method_router) in self.list {
            router = router.route(path, method_router);
        }
        Ok(router)
    }
}

/// The OpenAPI document narrowed to the `mounted` routes. Fails if one of them is not
/// documented, so no route goes undocumented.
pub fn openapi_document(mounted: &[(Verb, &str)]) -> std::io::Result<serde_json::Value> {
    let mut document: serde_json::Value =
        serde_json::from_str(OPENAPI).map_err(std::io::Error::other)?;
    let paths = document
        .get_mut("paths")
        .and_then(serde_json::Value::as_object_mut)
        .ok_or_else(|| std::io::Error::other("openapi.json has no paths"))?;
    for (verb, path) in mounted {
        if paths
            .get(*path)
            .and_then(|item| item.get(verb.openapi_key()))
            .is_none()
        {
            return Err(std::io::Error::other(format!(
                "openapi.json does not document {} {path}",
                verb.openapi_key()
            )));
        }
    }
    paths.retain(|path, item| {
        if let Some(methods) = item.as_object_mut() {
            methods.retain(|key, _| {
                mounted
                    .iter()
                    .any(|(verb, p)| p == path && verb.openapi_key() == key)
            });
        }
        item.as_object().is_some_and(|m| !m.is_empty())
    });
    Ok(document)
}

async fn healthz() -> &'static str {
    "ok\n"
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

fn refuse(status: StatusCode, reason: &str) -> Response {
    (status, Json(serde_json::json!({ "error": reason }))).into_response()
}

/// A refused upload: its answer, and one structured log line (within the rate limit).
fn refuse_upload(shared: &Shared, status: StatusCode, reason: &str) -> Response {
    if let Some(suppressed) = shared.refusal_log.admit(std::time::Instant::now()) {
        tracing::warn!(
            status = status.as_u16(),
            reason,
            suppressed,
            "refused upload"
        );
    }
    refuse(status, reason)
}

/// 503 with Retry-After: the device keeps the batch and comes back.
fn busy(shared: &Shared, reason: &str) -> Response {
    shared.refused.busy.fetch_add(1, Ordering::Relaxed);
    let mut response = refuse_upload(shared, StatusCode::SERVICE_UNAVAILABLE, reason);
    response
        .headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from(BUSY_RETRY_AFTER_S));
    response
}

/// A refusal after which the connection is closed: its body was not read to the end.
fn closing(mut response: Response) -> Response {
    response
        .headers_mut()
        .insert(header::CONNECTION, HeaderValue::from_static("close"));
    response
}

/// `POST /v1/batches`. The checks that need no state run here, the body is read within
/// its limit, deadline and the buffer budget, and the CPU work (decode, checks, dedup,
/// rows, the sink write) runs on a blocking thread once an ingest worker is free.
async fn ingest(State(shared): State<State_>, request: Request) -> Response {
    let (parts, body) = request.into_parts();
    match check_headers(&shared.settings.app_keys, &parts.headers) {
        Ok(()) => {}
        Err(HeaderRefusal::AppKey) => {
            shared.refused.app_key.fetch_add(1, Ordering::Relaxed);
            return refuse_upload(
                &shared,
                StatusCode::UNAUTHORIZED,
                "missing or unknown app key",
            );
        }
        Err(HeaderRefusal::ContentType) => {
            shared.refused.content_type.fetch_add(1, Ordering::Relaxed);
            return refuse_upload(
                &shared,
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                &format!("content type must be {CONTENT_TYPE}"),
            );
        }
    }
    let limits = &shared.settings.limits;
    let deadline = Instant::now() + limits.body_timeout;
    let max = shared.settings.max_body_bytes;
    let announced = body.size_hint().exact();
    let body = match crate::body::read(body, announced, max, &shared.budget, deadline).await {
        Ok(body) => body,
        Err(BodyError::TooLarge) => {
            shared.refused.too_large.fetch_add(1, Ordering::Relaxed);
            return refuse_upload(
                &shared,
                StatusCode::PAYLOAD_TOO_LARGE,
                &format!("body over {max} bytes"),
            );
        }
        Err(BodyError::Timeout) => {
            shared.refused.body_timeout.fetch_add(1, Ordering::Relaxed);
            return closing(refuse_upload(
                &shared,
                StatusCode::REQUEST_TIMEOUT,
                "body not received in time",
            ));
        }
        Err(BodyError::OverBudget) => {
            return busy(&shared, "server busy: too many uploads in flight");
        }
        Err(BodyError::Broken(e)) => {
            return refuse_upload(
                &shared,
                StatusCode::BAD_REQUEST,
                &format!("unreadable body: {e}"),
            );
        }
    };
    let worker =
        tokio::time::timeout(INGEST_QUEUE_TIMEOUT, shared.workers.clone().acquire_owned()).await;
    let Ok(Ok(worker)) = worker else {
        return busy(&shared, "server busy: ingest queue full");
    };
    let work = shared.clone();
    tokio::task::spawn_blocking(move || {
        let _worker = worker;
        let decoded = work.decoder.decode(&body.bytes);
        let mut app = lock(&work.app);
        accept(&work, &mut app, body.bytes.len(), decoded)
    })
    .await
    .unwrap_or_else(|e| {
        tracing::error!(error = %e, "ingest failed");
        refuse(StatusCode::INTERNAL_SERVER_ERROR, "internal error")
    })
}

/// A listener on `addr` with a queue of [`LISTEN_BACKLOG`] (the kernel may cap it), which
/// the log states.
fn listen(addr: SocketAddr) -> std::io::Result<tokio::net::TcpListener> {
    let socket = if addr.is_ipv4() {
        tokio::net::TcpSocket::new_v4()?
    } else {
        tokio::net::TcpSocket::new_v6()?
    };
    // As `TcpListener::bind` does: a restart binds while old connections sit in TIME_WAIT.
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    let cap = std::fs::read_to_string("/proc/sys/net/core/somaxconn")
        .ok()
        .and_then(|s| s.trim().parse::<u32>().ok());
    let backlog = cap.map_or(LISTEN_BACKLOG, |cap| cap.min(LISTEN_BACKLOG));
    tracing::info!(backlog, "listen queue of {backlog} connections");
    socket.listen(LISTEN_BACKLOG)
}

/// Why an upload's headers are refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HeaderRefusal {
    /// 401: no `x-sightline-app-key`, or one not in `app_keys`.
    AppKey,
    /// 415: not the batch content type.
    ContentType,
}

/// The checks on an upload's headers, before its body is read.
pub fn check_headers(app_keys: &[String], headers: &HeaderMap) -> Result<(), HeaderRefusal> {
    let key = headers.get(APP_KEY_HEADER).and_then(|v| v.to_str().ok());
    if !key.is_some_and(|k| app_keys.iter().any(|known| known == k)) {
        return Err(HeaderRefusal::AppKey);
    }
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok());
    if content_type.map(|c| c.split(';').next().unwrap_or("").trim()) != Some(CONTENT_TYPE) {
        return Err(HeaderRefusal::ContentType);
    }
    Ok(())
}

/// Counts, validates, dedups and stores one decoded upload under the state's lock.
fn accept(
    shared: &Shared,
    app: &mut App,
    body_len: usize,
    decoded: Result<Decoded, Refused_>,
) -> Response {
    if let Some(ms) = app.faults.stall_ms.filter(|_| app.faults.remaining > 0) {
        app.faults.remaining -= 1;
        std::thread::sleep(std::time::Duration::from_millis(ms));
    } else if app.faults.remaining > 0 && !app.faults.after_ingest {
        return app.injected_fault();
    }
    let received = now_ms();
    let decoded = match app.ingestor.metrics.count_decoded(body_len, decoded) {
        Ok(decoded) => decoded,
        Err(refusal) => {
            let status = StatusCode::from_u16(refusal.status()).unwrap_or(StatusCode::BAD_REQUEST);
            return refuse_upload(shared, status, refusal.reason());
        }
    };
    let checkpoint = app.ingestor.checkpoint(&decoded.batch.session_id);
    let outcome = app.ingestor.accept_decoded(&decoded, received);
    let record = outcome.record(&decoded.batch, received);
    let writing = std::time::Instant::now();
    let written = app
        .output
        .sink()
        .write(&record, &outcome.good, &outcome.bad);
    shared
        .instruments
        .sink_write(writing.elapsed().as_secs_f64());
    if let Err(e) = written {
        // Not acknowledged, so the SDK retries: forget this upload, or dedup would count
        // the retry as a duplicate of rows that were never stored.
        app.ingestor.rollback(checkpoint);
        tracing::error!(error = %e, "sink write failed");
        return refuse(StatusCode::SERVICE_UNAVAILABLE, "output unavailable");
    }
    if let Some(snapshots) = &mut app.snapshots {
        let rows = outcome.good.len() + outcome.bad.len();
        snapshots.written(rows, &app.ingestor, app.output.sink());
    }
    if app.faults.remaining > 0 && app.faults.stall_ms.is_none() {
        return app.injected_fault();
    }
    Json(serde_json::json!({
        "accepted": outcome.good.len(),
        "rejected": outcome.bad.len(),
        "duplicates": outcome.duplicates,
        "conflicts": outcome.conflicts,
    }))
    .into_response()
}

async fn metrics(State(shared): State<State_>) -> Response {
    let snapshot = match with_app(&shared, |shared, app| snapshot(shared, app)).await {
        Ok(snapshot) => snapshot,
        Err(response) => return response,
    };
    // Encoded off the state's lock, on a blocking thread like every other answer's work.
    let instruments = shared.instruments.clone();
    match tokio::task::spawn_blocking(move || instruments.encode(snapshot)).await {
        Ok(Ok(text)) => ([(header::CONTENT_TYPE, metrics::CONTENT_TYPE)], text).into_response(),
        _ => refuse(StatusCode::INTERNAL_SERVER_ERROR, "metrics encoding failed"),
    }
}

/// The counts a scrape reads: the ingestor's under the state's lock, the rest from atomics.
fn snapshot(shared: &Shared, app: &App) -> Snapshot {
    let m = &app.ingestor.metrics;
    let refused = &shared.refused;
    let load = |n: &AtomicU64| n.load(Ordering::Relaxed);
    let gauges = &shared.connections;
    let mut session_entries = SessionSizes::default();
    for entries in app.ingestor.session_entries() {
        session_entries.observe(entries);
    }
    let mut refused_batches = m.refused_batches.clone();
    for (kind, n) in [
        ("busy", load(&refused.busy)),
        ("too_large", load(&refused.too_large)),
    ] {
        if n > 0 {
            *refused_batches.entry(kind).or_default() += n;
        }
    }
    Snapshot {
        counters: vec![
            ("sightline_batches", "Batches accepted.", m.batches),
            (
                "sightline_impressions",
                "Distinct impressions written as good rows.",
                m.impressions,
            ),
            (
                "sightline_dedup_hits",
                "Impressions already received (retries).",
                m.duplicates,
            ),
            (
                "sightline_seq_conflicts",
                "Impressions whose (session, seq) had arrived with other content: a shared \
                 session id.",
                m.conflicts,
            ),
            (
                "sightline_bytes_in",
                "Compressed request bytes received.",
                m.bytes_in,
            ),
            (
                "sightline_refused_app_key",
                "Requests with a missing or unknown app key.",
                load(&refused.app_key),
            ),
            (
                "sightline_refused_content_type",
                "Requests with the wrong content type.",
                load(&refused.content_type),
            ),
            (
                "sightline_body_timeouts",
                "Uploads whose body did not arrive within the body timeout (408).",
                load(&refused.body_timeout),
            ),
            (
                "sightline_injected_faults",
                "Requests answered by fault injection.",
                app.injected,
            ),
            (
                "sightline_refused_connections",
                "Connections refused with 503 for the connection cap.",
                load(&gauges.refused),
            ),
        ],
        gauges: vec![
            (
                "sightline_connections",
                "Connections being served.",
                gauges.open.load(Ordering::Relaxed) as u64,
            ),
            (
                "sightline_max_connections",
                "Connections served at once; more are refused with 503.",
                shared.settings.limits.max_connections as u64,
            ),
            (
                "sightline_open_files_limit",
                "The process's open-files limit after raising it at start (0: unknown).",
                shared.open_files.unwrap_or(0),
            ),
            (
                "sightline_buffered_bytes",
                "Request bytes buffered by in-flight uploads.",
                shared.budget.in_use() as u64,
            ),
            (
                "sightline_buffer_budget_bytes",
                "Request bytes in-flight uploads may buffer; more are refused with 503.",
                shared.settings.limits.buffer_budget_bytes as u64,
            ),
            (
                "sightline_sessions_tracked",
                "Sessions whose dedup and loss state is held.",
                session_entries.sessions,
            ),
            (
                "sightline_session_state_entries_held",
                "Seqs and content digests remembered across all tracked sessions.",
                session_entries.entries,
            ),
        ],
        rejects_by_rule: m.rejects_by_rule.clone(),
        refused_batches,
        session_entries,
    }
}

/// A JSON answer serialised on the blocking thread that built it.
fn json_bytes(value: &impl serde::Serialize) -> Response {
    match serde_json::to_vec(value) {
        Ok(bytes) => ([(header::CONTENT_TYPE, "application/json")], bytes).into_response(),
        Err(e) => refuse(StatusCode::INTERNAL_SERVER_ERROR, &e.to_string()),
    }
}

/// Rows of the memory sink (micro mode), as JSON; the routes exist only in micro mode.
async fn from_memory(shared: &State_, f: fn(&MemorySink) -> Response) -> Response {
    with_app(shared, move |_, app| match &app.output {
        Output::Memory(m) => f(m),
        Output::Files(_) => StatusCode::NOT_FOUND.into_response(),
    })
    .await
    .unwrap_or_else(|e| e)
}

async fn micro_good(State(shared): State<State_>) -> Response {
    from_memory(&shared, |m| json_bytes(&m.good)).await
}

async fn micro_bad(State(shared): State<State_>) -> Response {
    from_memory(&shared, |m| json_bytes(&m.bad)).await
}

async fn micro_sessions(State(shared): State<State_>) -> Response {
    with_app(&shared, |_, app| {
        let sessions: std::collections::BTreeMap<&str, _> = app.ingestor.sessions().collect();
        json_bytes(&sessions)
    })
    .await
    .unwrap_or_else(|e| e)
}

async fn micro_reset(State(shared): State<State_>) -> Response {
    with_app(&shared, |shared, app| {
        app.ingestor.reset();
        app.output = Output::Memory(MemorySink::default());
        app.injected = 0;
        for n in [
            &shared.refused.app_key,
            &shared.refused.content_type,
            &shared.refused.too_large,
            &shared.refused.body_timeout,
            &shared.refused.busy,
            &shared.connections.refused,
        ] {
            n.store(0, Ordering::Relaxed);
        }
        StatusCode::NO_CONTENT.into_response()
    })
    .await
    .unwrap_or_else(|e| e)
}

async fn set_faults(State(shared): State<State_>, Json(faults): Json<Faults>) -> Response {
    with_app(&shared, move |_, app| {
        app.faults = faults;
        StatusCode::NO_CONTENT.into_response()
    })
    .await
    .unwrap_or_else(|e| e)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(micro: bool, fault_injection: bool) -> Settings {
        Settings {
            listen: ([127, 0, 0, 1], 0).into(),
            out_dir: PathBuf::from("unused"),
            app_keys: vec!["k".to_string()],
            micro,
            contract: Contract::default(),
            max_body_bytes: 1024,
            fault_injection,
            limits: Limits::default(),
        }
    }

    /// Every (method, path) of a document.
    fn operations(document: &serde_json::Value) -> Vec<(String, String)> {
        let mut all = Vec::new();
        for (path, item) in document["paths"].as_object().expect("paths") {
            for method in item.as_object().expect("path item").keys() {
                all.push((method.clone(), path.clone()));
            }
        }
        all.sort();
        all
    }

    #[test]
    fn openapi_documents_exactly_the_routes_a_server_can_mount() {
        let mut mounted: Vec<(String, String)> = routes(&settings(true, true))
            .mounted()
            .into_iter()
            .map(|(verb, path)| (verb.openapi_key().to_string(), path.to_string()))
            .collect();
        mounted.sort();
        let written: serde_json::Value = serde_json::from_str(OPENAPI).expect("openapi.json");
        assert_eq!(operations(&written), mounted);
    }

    #[test]
    fn the_served_document_lists_only_what_this_server_mounted() {
        let served = openapi_document(&routes(&settings(false, false)).mounted()).expect("doc");
        let paths: Vec<String> = operations(&served).into_iter().map(|(_, p)| p).collect();
        assert_eq!(
            paths,
            [
                "/healthz",
                "/metrics",
                "/openapi.json",
                "/sessions",
                "/v1/batches"
            ]
        );
    }

    #[test]
    fn a_route_missing_from_the_document_is_an_error() {
        let error = openapi_document(&[(Verb::Get, "/undocumented")]).expect_err("undocumented");
        assert!(error.to_string().contains("/undocumented"), "{error}");
    }

    #[test]
    fn the_documented_upload_content_type_is_the_sdks() {
        let written: serde_json::Value = serde_json::from_str(OPENAPI).expect("openapi.json");
        let content = &written["paths"]["/v1/batches"]["post"]["requestBody"]["content"];
        assert!(content.get(CONTENT_TYPE).is_some(), "{content}");
        let key = &written["components"]["securitySchemes"]["app_key"]["name"];
        assert_eq!(key, APP_KEY_HEADER);
    }
}
