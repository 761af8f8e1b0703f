//! The HTTP service: `POST /v1/batches` (gzip protobuf `Batch`), `/healthz`, Prometheus
//! `/metrics`, the micro-mode query API (`/micro/*`) and, only when enabled, a fault
//! injection endpoint for demos and tests (`/admin/faults`).
//!
//! Every hostile input gets a clear 4xx and the server keeps serving: the body size is
//! capped before it is read, gzip expansion is capped while it is inflated, and a bad
//! event is rejected alone, never with its good neighbours.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{SystemTime, UNIX_EPOCH};

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use sightline_core::contract::Contract;
use sightline_core::upload::{APP_KEY_HEADER, CONTENT_TYPE};

use crate::ingest::{Ingestor, MAX_COMPRESSED_BYTES};
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
    pub status: u16,
    pub remaining: u32,
    pub retry_after_s: Option<u64>,
    #[serde(default)]
    pub after_ingest: bool,
}

#[derive(Debug)]
struct App {
    settings: Settings,
    ingestor: Ingestor,
    output: Output,
    /// File mode's snapshots of the dedup state.
    snapshots: Option<Snapshots>,
    faults: Faults,
    refused_app_key: u64,
    refused_content_type: u64,
    injected: u64,
}

impl App {
    /// 413 for a body over `--max-body-bytes`; the SDK splits the batch and retries.
    fn refuse_body_too_large(&mut self) -> Response {
        let max = self.settings.max_body_bytes;
        self.ingestor.metrics.count_refused("too_large");
        refuse(
            StatusCode::PAYLOAD_TOO_LARGE,
            &format!("body over {max} bytes"),
        )
    }

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

type Shared = Arc<Mutex<App>>;

fn lock(app: &Shared) -> MutexGuard<'_, App> {
    // A panic while holding the lock would be a bug; the state is still usable.
    app.lock().unwrap_or_else(|e| e.into_inner())
}

/// A bound, not yet serving, collector.
#[derive(Debug)]
pub struct Server {
    listener: tokio::net::TcpListener,
    app: Shared,
}

impl Server {
    /// Binds the address and, in file mode, rebuilds dedup and loss state from the output
    /// directory, so a restarted collector still counts each (session, seq) once. The sink
    /// opens first: it cuts torn last lines, so only rows that stay are counted as received.
    pub async fn bind(settings: Settings) -> std::io::Result<Server> {
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
        let listener = tokio::net::TcpListener::bind(settings.listen).await?;
        let app = App {
            settings,
            ingestor,
            output,
            snapshots,
            faults: Faults::default(),
            refused_app_key: 0,
            refused_content_type: 0,
            injected: 0,
        };
        Ok(Server {
            listener,
            app: Arc::new(Mutex::new(app)),
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
        let (micro, faults) = {
            let app = lock(&self.app);
            let s = &app.settings;
            (s.micro, s.fault_injection)
        };
        let mut router = Router::new()
            .route("/v1/batches", post(ingest))
            .route("/healthz", get(|| async { "ok\n" }))
            .route("/metrics", get(metrics))
            // Loss accounting in either mode; micro mode also serves it under /micro/.
            .route("/sessions", get(micro_sessions));
        if micro {
            router = router
                .route("/micro/good", get(micro_good))
                .route("/micro/bad", get(micro_bad))
                .route("/micro/sessions", get(micro_sessions))
                .route("/micro/reset", post(micro_reset));
        }
        if faults {
            router = router.route("/admin/faults", post(set_faults));
        }
        // Bodies up to the hard cap are read whole even when over `--max-body-bytes`: a
        // client still sending when the server answers and closes would get a reset instead
        // of the 413 it needs to split its batch. Past the cap, reading stops a byte later.
        let router = router
            .layer(DefaultBodyLimit::max(MAX_COMPRESSED_BYTES + 1))
            .with_state(self.app.clone());
        axum::serve(self.listener, router)
            .with_graceful_shutdown(shutdown)
            .await?;
        let mut app = lock(&self.app);
        let app = &mut *app;
        match &mut app.snapshots {
            // Syncs the output too, so the next start replays nothing.
            Some(snapshots) => snapshots.take(&app.ingestor, app.output.sink()).map(drop),
            None => app.output.sink().sync(),
        }
    }
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

fn refuse(status: StatusCode, reason: &str) -> Response {
    (status, Json(serde_json::json!({ "error": reason }))).into_response()
}

async fn ingest(
    State(app): State<Shared>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let mut app = lock(&app);
    let key = headers.get(APP_KEY_HEADER).and_then(|v| v.to_str().ok());
    if !key.is_some_and(|k| app.settings.app_keys.iter().any(|known| known == k)) {
        app.refused_app_key += 1;
        return refuse(StatusCode::UNAUTHORIZED, "missing or unknown app key");
    }
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok());
    if content_type.map(|c| c.split(';').next().unwrap_or("").trim()) != Some(CONTENT_TYPE) {
        app.refused_content_type += 1;
        return refuse(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            &format!("content type must be {CONTENT_TYPE}"),
        );
    }
    if app.faults.remaining > 0 && !app.faults.after_ingest {
        return app.injected_fault();
    }
    // Bodies past the limit stop being read at limit + 1 bytes (the extractor's rejection);
    // either way they are refused here, after the key check, and counted like any refusal.
    let max = app.settings.max_body_bytes;
    let body = match body {
        Ok(body) if body.len() <= max => body,
        Ok(_) => return app.refuse_body_too_large(),
        Err(e) if e.status() == StatusCode::PAYLOAD_TOO_LARGE => {
            return app.refuse_body_too_large();
        }
        Err(e) => {
            // The client went away or sent a broken body: nothing to ingest.
            return refuse(StatusCode::BAD_REQUEST, &format!("unreadable body: {e}"));
        }
    };
    let received = now_ms();
    let batch = match app.ingestor.decode(&body) {
        Ok(batch) => batch,
        Err(refusal) => {
            let status = StatusCode::from_u16(refusal.status()).unwrap_or(StatusCode::BAD_REQUEST);
            tracing::info!(
                status = refusal.status(),
                reason = refusal.reason(),
                "refused batch"
            );
            return refuse(status, refusal.reason());
        }
    };
    let checkpoint = app.ingestor.checkpoint(&batch.session_id);
    let outcome = app.ingestor.accept(&batch, received);
    let record = outcome.record(&batch, received);
    if let Err(e) = app
        .output
        .sink()
        .write(&record, &outcome.good, &outcome.bad)
    {
        // Not acknowledged, so the SDK retries: forget this upload, or dedup would count
        // the retry as a duplicate of rows that were never stored.
        app.ingestor.rollback(checkpoint);
        tracing::error!(error = %e, "sink write failed");
        return refuse(StatusCode::SERVICE_UNAVAILABLE, "output unavailable");
    }
    let app = &mut *app;
    if let Some(snapshots) = &mut app.snapshots {
        let rows = outcome.good.len() + outcome.bad.len();
        snapshots.written(rows, &app.ingestor, app.output.sink());
    }
    if app.faults.remaining > 0 {
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

async fn metrics(State(app): State<Shared>) -> Response {
    let app = lock(&app);
    let m = &app.ingestor.metrics;
    let mut out = String::new();
    let mut line = |name: &str, help: &str, value: u64| {
        out.push_str(&format!(
            "# HELP {name} {help}\n# TYPE {name} counter\n{name} {value}\n"
        ));
    };
    line("sightline_batches_total", "Batches accepted.", m.batches);
    line(
        "sightline_impressions_total",
        "Distinct impressions written as good rows.",
        m.impressions,
    );
    line(
        "sightline_dedup_hits_total",
        "Impressions already received (retries).",
        m.duplicates,
    );
    line(
        "sightline_seq_conflicts_total",
        "Impressions whose (session, seq) had arrived with other content: a shared session id.",
        m.conflicts,
    );
    line(
        "sightline_bytes_in_total",
        "Compressed request bytes received.",
        m.bytes_in,
    );
    line(
        "sightline_refused_app_key_total",
        "Requests with a missing or unknown app key.",
        app.refused_app_key,
    );
    line(
        "sightline_refused_content_type_total",
        "Requests with the wrong content type.",
        app.refused_content_type,
    );
    line(
        "sightline_injected_faults_total",
        "Requests answered by fault injection.",
        app.injected,
    );
    out.push_str("# HELP sightline_rejects_total Impressions refused by the contract, by rule.\n# TYPE sightline_rejects_total counter\n");
    let mut rules: Vec<_> = m.rejects_by_rule.iter().collect();
    rules.sort();
    for (rule, n) in rules {
        out.push_str(&format!("sightline_rejects_total{{rule=\"{rule}\"}} {n}\n"));
    }
    out.push_str("# HELP sightline_refused_batches_total Whole uploads refused, by reason.\n# TYPE sightline_refused_batches_total counter\n");
    let mut kinds: Vec<_> = m.refused_batches.iter().collect();
    kinds.sort();
    for (kind, n) in kinds {
        out.push_str(&format!(
            "sightline_refused_batches_total{{reason=\"{kind}\"}} {n}\n"
        ));
    }
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], out).into_response()
}

fn with_memory<T>(app: &Shared, f: impl FnOnce(&MemorySink) -> T) -> Option<T> {
    match &lock(app).output {
        Output::Memory(m) => Some(f(m)),
        Output::Files(_) => None,
    }
}

async fn micro_good(State(app): State<Shared>) -> Response {
    Json(with_memory(&app, |m| m.good.clone()).unwrap_or_default()).into_response()
}

async fn micro_bad(State(app): State<Shared>) -> Response {
    Json(with_memory(&app, |m| m.bad.clone()).unwrap_or_default()).into_response()
}

async fn micro_sessions(State(app): State<Shared>) -> Response {
    let app = lock(&app);
    let sessions: serde_json::Map<String, serde_json::Value> = app
        .ingestor
        .sessions()
        .map(|(id, r)| (id.to_string(), serde_json::to_value(r).unwrap_or_default()))
        .collect();
    Json(sessions).into_response()
}

async fn micro_reset(State(app): State<Shared>) -> Response {
    let mut app = lock(&app);
    app.ingestor.reset();
    app.output = Output::Memory(MemorySink::default());
    app.refused_app_key = 0;
    app.refused_content_type = 0;
    app.injected = 0;
    StatusCode::NO_CONTENT.into_response()
}

async fn set_faults(State(app): State<Shared>, Json(faults): Json<Faults>) -> Response {
    lock(&app).faults = faults;
    StatusCode::NO_CONTENT.into_response()
}
