//! The Rust runner of the cross-platform conformance suite (see `README.md` beside this
//! crate): loads a scenario file, drives `sightline-core`'s public [`Logger`] API through the
//! suite's host loop on virtual time, and reports the outcome in the canonical form that
//! every platform's runner produces, so outcomes compare exactly across languages.

use std::collections::BTreeMap;
use std::fmt;
use std::fs;
use std::io::Read;
use std::path::{Path, PathBuf};

use serde::de::Error as _;
use serde::{Deserialize, Deserializer, Serialize};
use sha2::{Digest, Sha256};
use sightline_core::contract::Contract;
use sightline_core::kit::Capture;
use sightline_core::{
    Config, DropReason, Impression, ItemRef, Logger, MemoryStore, Now, Rule, Stats, Store,
    StoreError, Stored, UploadOutcome,
};

/// Wall-clock milliseconds at monotonic 0: every call gets `wall = WALL0 + mono`, so an
/// HTTP-date Retry-After means the same delay in every run.
pub const WALL0: u64 = 1_700_000_000_000;

/// The answer used once a scenario's `responses` are exhausted.
const DEFAULT_RESPONSE: Response = Response {
    status: Some(200),
    retry_after: None,
    network_error: false,
};

/// Both clocks at scenario time `mono`.
pub fn now(mono: u64) -> Now {
    Now::new(mono, WALL0 + mono)
}

/// Why a scenario could not be loaded or run (as opposed to a mismatch of its outcome).
#[derive(Debug)]
pub struct Error(String);

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Error {}

fn error(msg: impl Into<String>) -> Error {
    Error(msg.into())
}

/// One scenario file.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Scenario {
    pub name: String,
    pub description: String,
    /// A `sightline_core::Config` as JSON, kept as written (absent fields take the defaults).
    pub config: serde_json::Value,
    #[serde(default)]
    pub responses: Vec<Response>,
    pub steps: Vec<Step>,
    pub until: u64,
    /// Absent in a scenario not yet blessed.
    #[serde(default)]
    pub expect: Outcome,
}

/// How the host answers one upload: an HTTP status (with the raw Retry-After text, if
/// any) or a network error.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Response {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<u16>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry_after: Option<String>,
    #[serde(default, skip_serializing_if = "is_false")]
    pub network_error: bool,
}

fn is_false(b: &bool) -> bool {
    !*b
}

impl Response {
    fn outcome(&self) -> UploadOutcome {
        match self.status {
            Some(code) if !self.network_error => UploadOutcome::Status {
                code,
                retry_after: self.retry_after.clone(),
            },
            _ => UploadOutcome::NetworkError,
        }
    }

    fn is_success(&self) -> bool {
        !self.network_error && self.status.is_some_and(|s| (200..300).contains(&s))
    }

    fn check(&self) -> Result<(), String> {
        match (self.status, self.network_error) {
            (Some(_), false) => Ok(()),
            (None, true) if self.retry_after.is_none() => Ok(()),
            _ => Err(
                "a response is either {\"status\", \"retry_after\"?} or {\"network_error\": true}"
                    .into(),
            ),
        }
    }
}

/// An item as a step names it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ItemSpec {
    pub item_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub artwork_id: Option<String>,
    pub row: u32,
    pub column: u32,
}

impl ItemSpec {
    fn as_ref(&self) -> ItemRef<'_> {
        ItemRef {
            item_id: &self.item_id,
            artwork_id: self.artwork_id.as_deref(),
            row: self.row,
            column: self.column,
        }
    }
}

/// One step: what the host does at scenario time `at`. In JSON, `{"at": ms, "<kind>": {..}}`.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Step {
    pub at: u64,
    // Flattening is fine for writing; reading is checked by hand (see `Deserialize`).
    #[serde(flatten)]
    pub kind: StepKind,
}

/// What a step does. Page views are named by their 1-based ordinal in the scenario.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum StepKind {
    StartPageView {
        page: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        request_id: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        layout: Option<Vec<Vec<String>>>,
    },
    EndPageView {
        page_view: u64,
    },
    Visibility {
        page_view: u64,
        item: ItemSpec,
        fraction: f32,
    },
    Focus {
        page_view: u64,
        item: ItemSpec,
        focused: bool,
    },
    AppHidden {},
    AppVisible {},
    Impression {
        page_view: u64,
        item: ItemSpec,
        first_visible_at: u64,
        visible_ms: u64,
        max_visible_fraction: f32,
        focused_ms: u64,
    },
    Flush {},
    SetEnabled {
        enabled: bool,
        purge: bool,
    },
    /// The process dies and a new one resumes from the store with this seed.
    Restart {
        seed: u64,
    },
    /// The next `count` store operations fail.
    FailStore {
        count: u32,
    },
}

impl<'de> Deserialize<'de> for Step {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let mut map = serde_json::Map::deserialize(d)?;
        let at = map
            .remove("at")
            .ok_or_else(|| D::Error::custom("a step needs \"at\""))?;
        let at = u64::deserialize(at).map_err(D::Error::custom)?;
        // The rest must be exactly one kind: serde's flattening would ignore a second one.
        if map.len() != 1 {
            let keys: Vec<&String> = map.keys().collect();
            return Err(D::Error::custom(format!(
                "a step has exactly one kind besides \"at\", found {keys:?}"
            )));
        }
        let kind =
            StepKind::deserialize(serde_json::Value::Object(map)).map_err(D::Error::custom)?;
        Ok(Step { at, kind })
    }
}

/// A refused step: its 0-based index and the rule's stable name.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Refusal {
    pub step: usize,
    pub rule: String,
}

/// One upload the logger handed out, and the answer it got.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UploadRecord {
    pub at: u64,
    /// Hex SHA-256 of the gunzipped body (every gzip member): the protobuf bytes.
    pub sha256: String,
    pub response: Response,
}

/// One impression of an upload answered with a 2xx, as the wire says it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Delivered {
    /// Index into `uploads`.
    pub upload: usize,
    pub seq: u64,
    pub page: String,
    /// The page view's ordinal on the wire.
    pub page_view: u64,
    pub request_id: Option<String>,
    pub item_id: String,
    pub artwork_id: Option<String>,
    pub row: u32,
    pub column: u32,
    /// Milliseconds from the page view's start.
    pub first_visible_ms: i64,
    pub visible_ms: u32,
    pub max_visible_pct: u32,
    pub focused_ms: u32,
}

/// The logger's [`Stats`] in the suite's canonical form: maps hold only non-zero counts,
/// under the stable names of [`DropReason::name`] and [`Rule::name`].
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StatsOut {
    pub recorded: u64,
    pub sampled_out: u64,
    pub deduped: u64,
    pub issued: u64,
    pub delivered: u64,
    pub invalid: u64,
    pub uploads: u64,
    pub retries: u64,
    pub bytes_delivered: u64,
    pub store_errors: u64,
    pub corrupt_records: u64,
    pub dropped: BTreeMap<String, u64>,
    pub invalid_by_rule: BTreeMap<String, u64>,
}

impl From<&Stats> for StatsOut {
    fn from(s: &Stats) -> Self {
        let dropped = DropReason::ALL
            .into_iter()
            .map(|r| (r.name().to_string(), s.dropped.get(r)))
            .filter(|&(_, n)| n > 0)
            .collect();
        let invalid_by_rule = Rule::ALL
            .into_iter()
            .map(|r| (r.name().to_string(), s.invalid_by_rule.get(r)))
            .filter(|&(_, n)| n > 0)
            .collect();
        StatsOut {
            recorded: s.recorded,
            sampled_out: s.sampled_out,
            deduped: s.deduped,
            issued: s.issued,
            delivered: s.delivered,
            invalid: s.invalid,
            uploads: s.uploads,
            retries: s.retries,
            bytes_delivered: s.bytes_delivered,
            store_errors: s.store_errors,
            corrupt_records: s.corrupt_records,
            dropped,
            invalid_by_rule,
        }
    }
}

/// What a run produced: the `expect` section of a scenario.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Outcome {
    pub refused: Vec<Refusal>,
    pub uploads: Vec<UploadRecord>,
    pub delivered: Vec<Delivered>,
    pub stats: StatsOut,
}

/// A run's outcome and, for Rust-side checks beyond the format, the gunzipped body of each
/// upload.
#[derive(Clone, Debug)]
pub struct Run {
    pub outcome: Outcome,
    pub bodies: Vec<Vec<u8>>,
}

/// The folder of the suite's scenario files.
pub fn scenarios_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("scenarios")
}

/// Every scenario file, by name.
pub fn scenario_files() -> Result<Vec<PathBuf>, Error> {
    let dir = scenarios_dir();
    let entries = fs::read_dir(&dir).map_err(|e| error(format!("{}: {e}", dir.display())))?;
    let mut files = Vec::new();
    for entry in entries {
        let path = entry
            .map_err(|e| error(format!("{}: {e}", dir.display())))?
            .path();
        if path.extension().is_some_and(|x| x == "json") {
            files.push(path);
        }
    }
    files.sort();
    Ok(files)
}

/// Reads and checks a scenario file (well-formed, named after its file, steps in order).
pub fn load(path: &Path) -> Result<Scenario, Error> {
    let at = |e: &dyn fmt::Display| error(format!("{}: {e}", path.display()));
    let text = fs::read_to_string(path).map_err(|e| at(&e))?;
    let scenario: Scenario = serde_json::from_str(&text).map_err(|e| at(&e))?;
    let stem = path.file_stem().and_then(|s| s.to_str()).unwrap_or("");
    scenario.check(stem).map_err(|e| at(&e))?;
    Ok(scenario)
}

/// The file text bless writes: pretty JSON, 2-space indent, stable key order, trailing
/// newline.
pub fn canonical_text(scenario: &Scenario) -> Result<String, Error> {
    let mut text = serde_json::to_string_pretty(scenario).map_err(|e| error(e.to_string()))?;
    text.push('\n');
    Ok(text)
}

impl Scenario {
    fn check(&self, stem: &str) -> Result<(), String> {
        if self.name != stem {
            return Err(format!(
                "name {:?} is not the file name {stem:?}",
                self.name
            ));
        }
        if self.description.trim().is_empty() {
            return Err("the description is empty".into());
        }
        for key in ["app_id", "app_version", "platform", "app_key", "seed"] {
            if self.config.get(key).is_none() {
                return Err(format!("config must set {key}"));
            }
        }
        for (i, r) in self.responses.iter().enumerate() {
            r.check().map_err(|e| format!("responses[{i}]: {e}"))?;
        }
        let mut last = 0;
        for (i, step) in self.steps.iter().enumerate() {
            if step.at < last {
                return Err(format!("steps[{i}] at {} goes back from {last}", step.at));
            }
            last = step.at;
        }
        if self.until < last {
            return Err(format!(
                "until {} is before the last step at {last}",
                self.until
            ));
        }
        Ok(())
    }

    /// The configuration the scenario runs with.
    pub fn config(&self) -> Result<Config, Error> {
        Config::deserialize(&self.config).map_err(|e| error(format!("config: {e}")))
    }

    /// Runs the scenario through the suite's host loop.
    pub fn run(&self) -> Result<Run, Error> {
        self.run_host()
            .map_err(|e| error(format!("{}: {e}", self.name)))
    }

    fn run_host(&self) -> Result<Run, Error> {
        let config = self.config()?;
        let logger = Logger::resume(config.clone(), Stored::default(), now(0))
            .map_err(|e| error(format!("config: {e}")))?;
        let mut host = Host {
            config,
            logger,
            store: MemoryStore::new(),
            failing: 0,
            responses: self.responses.iter(),
            page_views: Vec::new(),
            outcome: Outcome::default(),
            bodies: Vec::new(),
        };
        host.drain(0)?;
        for (index, step) in self.steps.iter().enumerate() {
            host.fire_timers(step.at)?;
            host.apply(index, step)
                .map_err(|e| error(format!("steps[{index}]: {e}")))?;
            host.drain(step.at)?;
        }
        host.fire_timers(self.until)?;
        host.outcome.stats = StatsOut::from(host.logger.stats());
        Ok(Run {
            outcome: host.outcome,
            bodies: host.bodies,
        })
    }
}

/// The host of the suite: a memory store, answers from the scenario, virtual time.
struct Host<'a> {
    config: Config,
    logger: Logger,
    store: MemoryStore,
    /// Store operations still to fail (`fail_store`).
    failing: u32,
    responses: std::slice::Iter<'a, Response>,
    /// The logger's id of each page view ordinal; `None` when its start was refused.
    page_views: Vec<Option<u64>>,
    outcome: Outcome,
    bodies: Vec<Vec<u8>>,
}

impl Host<'_> {
    /// The logger's id for a scenario ordinal; 0 (never issued) when there is none.
    fn page_view(&self, ordinal: u64) -> u64 {
        ordinal
            .checked_sub(1)
            .and_then(|i| self.page_views.get(usize::try_from(i).ok()?))
            .copied()
            .flatten()
            .unwrap_or(0)
    }

    fn apply(&mut self, index: usize, step: &Step) -> Result<(), Error> {
        let t = now(step.at);
        let refused = match &step.kind {
            StepKind::StartPageView {
                page,
                request_id,
                layout,
            } => {
                let started =
                    self.logger
                        .start_page_view(page, request_id.as_deref(), layout.as_deref(), t);
                self.page_views.push(started.ok());
                started.err()
            }
            StepKind::EndPageView { page_view } => {
                let id = self.page_view(*page_view);
                self.logger.end_page_view(id, t).err()
            }
            StepKind::Visibility {
                page_view,
                item,
                fraction,
            } => {
                let id = self.page_view(*page_view);
                self.logger
                    .handle_visibility(id, &item.as_ref(), *fraction, t)
                    .err()
            }
            StepKind::Focus {
                page_view,
                item,
                focused,
            } => {
                let id = self.page_view(*page_view);
                self.logger
                    .handle_focus(id, &item.as_ref(), *focused, t)
                    .err()
            }
            StepKind::AppHidden {} => {
                self.logger.handle_app_hidden(t);
                None
            }
            StepKind::AppVisible {} => {
                self.logger.handle_app_visible(t);
                None
            }
            StepKind::Impression {
                page_view,
                item,
                first_visible_at,
                visible_ms,
                max_visible_fraction,
                focused_ms,
            } => {
                let id = self.page_view(*page_view);
                let imp = Impression {
                    item_id: &item.item_id,
                    artwork_id: item.artwork_id.as_deref(),
                    row: item.row,
                    column: item.column,
                    first_visible_mono_ms: *first_visible_at,
                    visible_ms: *visible_ms,
                    max_visible_fraction: *max_visible_fraction,
                    focused_ms: *focused_ms,
                };
                self.logger.record_impression(id, &imp, t).err()
            }
            StepKind::Flush {} => {
                self.logger.flush(t);
                None
            }
            StepKind::SetEnabled { enabled, purge } => {
                self.logger.set_enabled(*enabled, *purge, t);
                None
            }
            StepKind::Restart { seed } => {
                self.restart(*seed, t)?;
                None
            }
            StepKind::FailStore { count } => {
                self.failing = self.failing.saturating_add(*count);
                None
            }
        };
        if let Some(rule) = refused {
            self.outcome.refused.push(Refusal {
                step: index,
                rule: rule.name().to_string(),
            });
        }
        Ok(())
    }

    /// The process dies without flushing; a new one resumes from what the store holds.
    /// The host acknowledges every operation before the next step, so nothing is in flight.
    fn restart(&mut self, seed: u64, t: Now) -> Result<(), Error> {
        let stored = self
            .store
            .load()
            .map_err(|e| error(format!("restart: {e}")))?;
        let config = Config {
            seed,
            ..self.config.clone()
        };
        self.logger =
            Logger::resume(config, stored, t).map_err(|e| error(format!("restart: {e}")))?;
        Ok(())
    }

    /// Fires every deadline up to `until`, draining after each.
    fn fire_timers(&mut self, until: u64) -> Result<(), Error> {
        while let Some(d) = self.logger.poll_timeout() {
            if d > until {
                break;
            }
            self.logger.handle_timeout(now(d));
            self.drain(d)?;
            // A deadline that does not move on would make every host spin.
            if let Some(next) = self.logger.poll_timeout().filter(|&next| next <= d) {
                return Err(error(format!(
                    "the deadline does not advance: handle_timeout at {d} leaves poll_timeout at {next}"
                )));
            }
        }
        Ok(())
    }

    /// Performs every store operation, then answers every upload, until neither is left.
    fn drain(&mut self, t: u64) -> Result<(), Error> {
        loop {
            while let Some(request) = self.logger.poll_store_op() {
                let id = request.id;
                let result = if self.failing > 0 {
                    self.failing -= 1;
                    Err(StoreError::Io("failed by the scenario (fail_store)".into()))
                } else {
                    self.store.apply(&request.op)
                };
                self.logger
                    .handle_store_result(id, result)
                    .map_err(|e| error(e.to_string()))?;
            }
            let Some(upload) = self.logger.poll_upload(now(t)) else {
                return Ok(());
            };
            let raw = gunzip(&upload.body)?;
            let response = self.responses.next().unwrap_or(&DEFAULT_RESPONSE).clone();
            let index = self.outcome.uploads.len();
            if response.is_success() {
                self.record_delivered(index, &upload.body)?;
            }
            self.logger
                .handle_upload_result(upload.id, response.outcome(), now(t))
                .map_err(|e| error(e.to_string()))?;
            self.outcome.uploads.push(UploadRecord {
                at: t,
                sha256: hex_sha256(&raw),
                response,
            });
            self.bodies.push(raw);
        }
    }

    /// Decodes a delivered upload with the producer kit, as every runner does.
    fn record_delivered(&mut self, upload: usize, body: &[u8]) -> Result<(), Error> {
        let mut capture = Capture::new(Contract::default());
        capture
            .receive(body)
            .map_err(|e| error(format!("upload: {e}")))?;
        for i in capture.impressions() {
            self.outcome.delivered.push(Delivered {
                upload,
                seq: i.seq,
                page: i.page.clone(),
                page_view: i.page_view,
                request_id: i.request_id.clone(),
                item_id: i.item_id.clone(),
                artwork_id: i.artwork_id.clone(),
                row: i.row,
                column: i.column,
                first_visible_ms: i.first_visible_ms,
                visible_ms: i.visible_ms,
                max_visible_pct: i.max_visible_pct,
                focused_ms: i.focused_ms,
            });
        }
        Ok(())
    }
}

/// Every gzip member of an upload body, decompressed.
fn gunzip(body: &[u8]) -> Result<Vec<u8>, Error> {
    let mut raw = Vec::new();
    flate2::read::MultiGzDecoder::new(body)
        .read_to_end(&mut raw)
        .map_err(|e| error(format!("upload body is not gzip: {e}")))?;
    Ok(raw)
}

fn hex_sha256(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// One field where an outcome differs from its expectation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Difference {
    /// Where, as `expect.uploads[0].sha256`.
    pub path: String,
    /// JSON text; `(absent)` when the side has no such field or element.
    pub expected: String,
    pub actual: String,
}

impl fmt::Display for Difference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}: expected {}, actual {}",
            self.path, self.expected, self.actual
        )
    }
}

/// Every field where `actual` differs from `expected`, leaves first-level deep.
pub fn diff(expected: &Outcome, actual: &Outcome) -> Result<Vec<Difference>, Error> {
    let to_value = |o: &Outcome| serde_json::to_value(o).map_err(|e| error(e.to_string()));
    let mut out = Vec::new();
    diff_values(
        "expect",
        Some(&to_value(expected)?),
        Some(&to_value(actual)?),
        &mut out,
    );
    Ok(out)
}

fn diff_values(
    path: &str,
    expected: Option<&serde_json::Value>,
    actual: Option<&serde_json::Value>,
    out: &mut Vec<Difference>,
) {
    use serde_json::Value;
    match (expected, actual) {
        (Some(Value::Object(e)), Some(Value::Object(a))) => {
            let keys: std::collections::BTreeSet<&String> = e.keys().chain(a.keys()).collect();
            for k in keys {
                diff_values(&format!("{path}.{k}"), e.get(k), a.get(k), out);
            }
        }
        (Some(Value::Array(e)), Some(Value::Array(a))) => {
            for i in 0..e.len().max(a.len()) {
                diff_values(&format!("{path}[{i}]"), e.get(i), a.get(i), out);
            }
        }
        (e, a) if e == a => {}
        (e, a) => {
            let show =
                |v: Option<&Value>| v.map_or_else(|| "(absent)".to_string(), Value::to_string);
            out.push(Difference {
                path: path.to_string(),
                expected: show(e),
                actual: show(a),
            });
        }
    }
}
