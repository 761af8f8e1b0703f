//! The foreign-facing records and enums, and their conversions to and from the core's
//! types. Pure type mapping: every default, limit and rule stays the core's (a `None`
//! setting takes the core's default).

use std::collections::HashMap;

use sightline_core as core;
use sightline_core::contract::Contract as CoreContract;

use crate::error::SightlineError;

/// The client platform, as it appears on the wire.
#[derive(Clone, Copy, Debug, PartialEq, Eq, uniffi::Enum)]
pub enum Platform {
    Tv,
    Android,
    Ios,
    Web,
    Other,
}

/// What the sampling decision is keyed on.
#[derive(Clone, Copy, Debug, PartialEq, Eq, uniffi::Enum)]
pub enum SampleKey {
    /// Whole installs in or out: per-user analyses stay complete.
    Install,
    /// Whole sessions in or out.
    Session,
}

/// Whether a second qualifying exposure of an item at the same place in one page view is a
/// new impression.
#[derive(Clone, Copy, Debug, PartialEq, Eq, uniffi::Enum)]
pub enum Reentry {
    OncePerPageView,
    AfterLeaving,
}

/// The data contract's rules (see the core's `Contract`).
#[derive(Clone, Debug, PartialEq, uniffi::Record)]
pub struct Contract {
    pub version: u32,
    pub min_visible_pct: u32,
    pub min_visible_ms: u32,
    pub max_visible_ms: u32,
    pub max_id_len: u32,
    pub max_position: u32,
    pub require_artwork: bool,
    pub pages: Vec<String>,
    pub reentry: Reentry,
}

/// Everything the logger needs to start. `None` settings take the core's defaults.
#[derive(Clone, Debug, PartialEq, uniffi::Record)]
pub struct Config {
    pub app_id: String,
    pub app_version: String,
    pub platform: Platform,
    /// Key the collector uses to accept this app's uploads.
    pub app_key: String,
    /// Device model ("Pixel 8"), not an identifier.
    #[uniffi(default)]
    pub device: String,
    /// Install id chosen by the app; empty logs none.
    #[uniffi(default)]
    pub install_id: String,
    /// Seed for session ids and retry jitter. `None` (the default) takes one from the
    /// platform's entropy at start, which is what apps want; tests pass a constant.
    #[uniffi(default)]
    pub seed: Option<u64>,
    /// Share of impressions kept, in parts per million.
    #[uniffi(default)]
    pub sample_rate_ppm: Option<u32>,
    #[uniffi(default)]
    pub sample_key: Option<SampleKey>,
    #[uniffi(default)]
    pub contract: Option<Contract>,
    #[uniffi(default)]
    pub max_batch_impressions: Option<u32>,
    #[uniffi(default)]
    pub max_batch_age_ms: Option<u64>,
    #[uniffi(default)]
    pub max_queue_bytes: Option<u32>,
    #[uniffi(default)]
    pub retry_base_ms: Option<u64>,
    #[uniffi(default)]
    pub retry_max_ms: Option<u64>,
    #[uniffi(default)]
    pub max_attempts: Option<u32>,
}

/// Both clocks at once: monotonic milliseconds (durations, deadlines) and wall-clock
/// milliseconds since the Unix epoch (stamps only).
#[derive(Clone, Copy, Debug, PartialEq, Eq, uniffi::Record)]
pub struct Now {
    pub mono_ms: u64,
    pub wall_ms: u64,
}

/// An item at its place on the page.
#[derive(Clone, Debug, PartialEq, Eq, uniffi::Record)]
pub struct Item {
    pub item_id: String,
    pub row: u32,
    pub column: u32,
    #[uniffi(default)]
    pub artwork_id: Option<String>,
}

/// An impression the app qualified itself.
#[derive(Clone, Debug, PartialEq, uniffi::Record)]
pub struct QualifiedImpression {
    pub item: Item,
    /// Monotonic time the exposure started.
    pub first_visible_mono_ms: u64,
    pub visible_ms: u64,
    /// Largest visible share during the exposure, 0.0..=1.0.
    pub max_visible_fraction: f32,
    #[uniffi(default)]
    pub focused_ms: u64,
}

/// What happened to a recorded impression.
#[derive(Clone, Copy, Debug, PartialEq, Eq, uniffi::Enum)]
pub enum Recorded {
    /// Buffered for upload under this seq.
    Logged {
        seq: u64,
    },
    SampledOut,
    Deduped,
    /// Logging is disabled (opt-out); nothing was recorded.
    Disabled,
}

/// An HTTP header of an upload.
#[derive(Clone, Debug, PartialEq, Eq, uniffi::Record)]
pub struct Header {
    pub name: String,
    pub value: String,
}

/// A request to POST `body` to `<collector><path>` with `headers`; report the outcome with
/// its `id`.
#[derive(Clone, Debug, PartialEq, Eq, uniffi::Record)]
pub struct Upload {
    pub id: u64,
    pub path: String,
    pub headers: Vec<Header>,
    pub body: Vec<u8>,
}

/// How an upload ended.
#[derive(Clone, Debug, PartialEq, Eq, uniffi::Enum)]
pub enum UploadOutcome {
    /// The collector answered; `retry_after` is the Retry-After header's value, if any.
    Status {
        code: u16,
        retry_after: Option<String>,
    },
    /// No answer: DNS, connection, TLS or timeout failure.
    NetworkError,
}

/// A store operation to perform, then report with its `id`.
#[derive(Clone, Debug, PartialEq, Eq, uniffi::Enum)]
pub enum StoreOp {
    /// Replace the value under `key`.
    Put {
        key: String,
        value: Vec<u8>,
    },
    Remove {
        key: String,
    },
    /// Append to the journal.
    Append {
        bytes: Vec<u8>,
    },
    /// Empty the journal.
    ClearJournal,
}

/// A store operation with the id to acknowledge it by.
#[derive(Clone, Debug, PartialEq, Eq, uniffi::Record)]
pub struct StoreRequest {
    pub id: u64,
    pub op: StoreOp,
}

/// What the app's store holds at start: values by key, and the journal's bytes.
#[derive(Clone, Debug, Default, PartialEq, Eq, uniffi::Record)]
pub struct Stored {
    #[uniffi(default)]
    pub values: HashMap<String, Vec<u8>>,
    #[uniffi(default)]
    pub journal: Vec<u8>,
}

/// The session's counters. `dropped` and `invalid_by_rule` are keyed by the stable reason
/// and rule names and list only non-zero counts.
#[derive(Clone, Debug, PartialEq, Eq, uniffi::Record)]
pub struct Stats {
    pub recorded: u64,
    pub sampled_out: u64,
    pub deduped: u64,
    pub issued: u64,
    pub delivered: u64,
    /// Issued and neither delivered nor dropped yet.
    pub pending: u64,
    pub dropped: HashMap<String, u64>,
    pub invalid: u64,
    pub invalid_by_rule: HashMap<String, u64>,
    pub uploads: u64,
    pub retries: u64,
    pub bytes_delivered: u64,
    pub store_errors: u64,
    pub corrupt_records: u64,
}

impl From<Platform> for core::Platform {
    fn from(p: Platform) -> Self {
        match p {
            Platform::Tv => core::Platform::Tv,
            Platform::Android => core::Platform::Android,
            Platform::Ios => core::Platform::Ios,
            Platform::Web => core::Platform::Web,
            Platform::Other => core::Platform::Other,
        }
    }
}

impl From<core::Platform> for Platform {
    fn from(p: core::Platform) -> Self {
        match p {
            core::Platform::Tv => Platform::Tv,
            core::Platform::Android => Platform::Android,
            core::Platform::Ios => Platform::Ios,
            core::Platform::Web => Platform::Web,
            core::Platform::Other => Platform::Other,
        }
    }
}

impl From<SampleKey> for core::SampleKey {
    fn from(k: SampleKey) -> Self {
        match k {
            SampleKey::Install => core::SampleKey::Install,
            SampleKey::Session => core::SampleKey::Session,
        }
    }
}

impl From<core::SampleKey> for SampleKey {
    fn from(k: core::SampleKey) -> Self {
        match k {
            core::SampleKey::Install => SampleKey::Install,
            core::SampleKey::Session => SampleKey::Session,
        }
    }
}

impl From<Reentry> for core::Reentry {
    fn from(r: Reentry) -> Self {
        match r {
            Reentry::OncePerPageView => core::Reentry::OncePerPageView,
            Reentry::AfterLeaving => core::Reentry::AfterLeaving,
        }
    }
}

impl From<core::Reentry> for Reentry {
    fn from(r: core::Reentry) -> Self {
        match r {
            core::Reentry::OncePerPageView => Reentry::OncePerPageView,
            core::Reentry::AfterLeaving => Reentry::AfterLeaving,
        }
    }
}

impl From<Contract> for CoreContract {
    fn from(c: Contract) -> Self {
        CoreContract {
            version: c.version,
            min_visible_pct: c.min_visible_pct,
            min_visible_ms: c.min_visible_ms,
            max_visible_ms: c.max_visible_ms,
            max_id_len: c.max_id_len,
            max_position: c.max_position,
            require_artwork: c.require_artwork,
            pages: c.pages,
            reentry: c.reentry.into(),
        }
    }
}

impl From<CoreContract> for Contract {
    fn from(c: CoreContract) -> Self {
        Contract {
            version: c.version,
            min_visible_pct: c.min_visible_pct,
            min_visible_ms: c.min_visible_ms,
            max_visible_ms: c.max_visible_ms,
            max_id_len: c.max_id_len,
            max_position: c.max_position,
            require_artwork: c.require_artwork,
            pages: c.pages,
            reentry: c.reentry.into(),
        }
    }
}

impl Config {
    /// The core's configuration; a missing seed is drawn from the platform's entropy.
    pub(crate) fn into_core(self) -> core::Config {
        let d = core::Config::default();
        core::Config {
            app_id: self.app_id,
            app_version: self.app_version,
            platform: self.platform.into(),
            device: self.device,
            install_id: self.install_id,
            app_key: self.app_key,
            seed: self
                .seed
                .unwrap_or_else(sightline_core::runtime::entropy_seed),
            sample_rate_ppm: self.sample_rate_ppm.unwrap_or(d.sample_rate_ppm),
            sample_key: self.sample_key.map_or(d.sample_key, Into::into),
            contract: self.contract.map_or(d.contract, Into::into),
            max_batch_impressions: self
                .max_batch_impressions
                .unwrap_or(d.max_batch_impressions),
            max_batch_age_ms: self.max_batch_age_ms.unwrap_or(d.max_batch_age_ms),
            max_queue_bytes: self.max_queue_bytes.unwrap_or(d.max_queue_bytes),
            retry_base_ms: self.retry_base_ms.unwrap_or(d.retry_base_ms),
            retry_max_ms: self.retry_max_ms.unwrap_or(d.retry_max_ms),
            max_attempts: self.max_attempts.unwrap_or(d.max_attempts),
        }
    }

    /// The record of a core configuration, every setting explicit.
    fn from_core(c: core::Config) -> Config {
        Config {
            app_id: c.app_id,
            app_version: c.app_version,
            platform: c.platform.into(),
            app_key: c.app_key,
            device: c.device,
            install_id: c.install_id,
            seed: Some(c.seed),
            sample_rate_ppm: Some(c.sample_rate_ppm),
            sample_key: Some(c.sample_key.into()),
            contract: Some(c.contract.into()),
            max_batch_impressions: Some(c.max_batch_impressions),
            max_batch_age_ms: Some(c.max_batch_age_ms),
            max_queue_bytes: Some(c.max_queue_bytes),
            retry_base_ms: Some(c.retry_base_ms),
            retry_max_ms: Some(c.retry_max_ms),
            max_attempts: Some(c.max_attempts),
        }
    }
}

/// A configuration from JSON, the core's serde form (a remote config, or the conformance
/// suite's scenario files). Unknown fields are refused; absent ones take the defaults.
#[uniffi::export]
pub fn config_from_json(json: String) -> Result<Config, SightlineError> {
    serde_json::from_str::<core::Config>(&json)
        .map(Config::from_core)
        .map_err(|e| SightlineError::Config {
            message: format!("not a configuration: {e}"),
        })
}

/// The core's default contract, to start from and adjust.
#[uniffi::export]
pub fn default_contract() -> Contract {
    CoreContract::default().into()
}

impl From<Now> for core::Now {
    fn from(n: Now) -> Self {
        core::Now::new(n.mono_ms, n.wall_ms)
    }
}

impl From<Item> for core::Item {
    fn from(i: Item) -> Self {
        core::Item {
            item_id: i.item_id,
            artwork_id: i.artwork_id,
            row: i.row,
            column: i.column,
        }
    }
}

impl From<QualifiedImpression> for core::QualifiedImpression {
    fn from(q: QualifiedImpression) -> Self {
        core::QualifiedImpression {
            item: q.item.into(),
            first_visible_mono_ms: q.first_visible_mono_ms,
            visible_ms: q.visible_ms,
            max_visible_fraction: q.max_visible_fraction,
            focused_ms: q.focused_ms,
        }
    }
}

impl From<core::Recorded> for Recorded {
    fn from(r: core::Recorded) -> Self {
        match r {
            core::Recorded::Logged { seq } => Recorded::Logged { seq },
            core::Recorded::SampledOut => Recorded::SampledOut,
            core::Recorded::Deduped => Recorded::Deduped,
            core::Recorded::Disabled => Recorded::Disabled,
        }
    }
}

impl From<core::Upload> for Upload {
    fn from(u: core::Upload) -> Self {
        Upload {
            id: u.id,
            path: u.path,
            headers: u
                .headers
                .into_iter()
                .map(|h| Header {
                    name: h.name,
                    value: h.value,
                })
                .collect(),
            body: u.body,
        }
    }
}

impl From<UploadOutcome> for core::UploadOutcome {
    fn from(o: UploadOutcome) -> Self {
        match o {
            UploadOutcome::Status { code, retry_after } => {
                core::UploadOutcome::Status { code, retry_after }
            }
            UploadOutcome::NetworkError => core::UploadOutcome::NetworkError,
        }
    }
}

impl From<core::UploadOutcome> for UploadOutcome {
    fn from(o: core::UploadOutcome) -> Self {
        match o {
            core::UploadOutcome::Status { code, retry_after } => {
                UploadOutcome::Status { code, retry_after }
            }
            core::UploadOutcome::NetworkError => UploadOutcome::NetworkError,
        }
    }
}

impl From<&core::StoreRequest> for StoreRequest {
    fn from(r: &core::StoreRequest) -> Self {
        let op = match &r.op {
            core::StoreOp::Put { key, value } => StoreOp::Put {
                key: key.clone(),
                value: value.clone(),
            },
            core::StoreOp::Remove { key } => StoreOp::Remove { key: key.clone() },
            core::StoreOp::Append { bytes } => StoreOp::Append {
                bytes: bytes.clone(),
            },
            core::StoreOp::ClearJournal => StoreOp::ClearJournal,
        };
        StoreRequest { id: r.id, op }
    }
}

impl From<Stored> for core::Stored {
    fn from(s: Stored) -> Self {
        core::Stored {
            values: s.values.into_iter().collect(),
            journal: s.journal,
        }
    }
}

impl From<core::Stats> for Stats {
    fn from(s: core::Stats) -> Self {
        Stats {
            recorded: s.recorded,
            sampled_out: s.sampled_out,
            deduped: s.deduped,
            issued: s.issued,
            delivered: s.delivered,
            pending: s.pending(),
            dropped: s
                .dropped
                .iter()
                .filter(|&(_, n)| n > 0)
                .map(|(reason, n)| (reason.name().to_string(), n))
                .collect(),
            invalid: s.invalid,
            invalid_by_rule: s
                .invalid_by_rule
                .iter()
                .filter(|&(_, n)| n > 0)
                .map(|(rule, n)| (rule.name().to_string(), n))
                .collect(),
            uploads: s.uploads,
            retries: s.retries,
            bytes_delivered: s.bytes_delivered,
            store_errors: s.store_errors,
            corrupt_records: s.corrupt_records,
        }
    }
}
