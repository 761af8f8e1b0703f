//! Configuration: who is logging (app, platform, device, ids the host chooses), the rules
//! (contract, re-entry, sampling) and the resource limits. Validated once at start-up.

use alloc::string::String;
use core::fmt;

use crate::contract::{Contract, valid_id};
use crate::proto;
use crate::sampling::{PPM, SampleKey};

/// Default cap on impressions per batch: large enough for gzip to find repeats, small
/// enough that one lost batch is a small loss.
pub const DEFAULT_MAX_BATCH_IMPRESSIONS: u32 = 1000;
/// Default batch age: impressions feed offline metrics, so minutes of latency are fine,
/// and bigger batches compress better (reference workload: 23 bytes per impression at 30 s,
/// 16 at 5 min). Backgrounding closes the batch at once; the journal keeps it across kills.
pub const DEFAULT_MAX_BATCH_AGE_MS: u64 = 5 * 60 * 1000;
/// Default bound on queued (closed, compressed) batches: fits a TV's logging budget.
pub const DEFAULT_MAX_QUEUE_BYTES: u32 = 256 * 1024;
/// Default first retry delay.
pub const DEFAULT_RETRY_BASE_MS: u64 = 1_000;
/// Default longest retry delay: a device retries at least every five minutes.
pub const DEFAULT_RETRY_MAX_MS: u64 = 5 * 60 * 1000;
/// Default attempts per batch before it is dropped (and counted): about a day of backoff.
pub const DEFAULT_MAX_ATTEMPTS: u32 = 300;
/// Smallest useful queue: one full batch must fit.
pub const MIN_QUEUE_BYTES: u32 = 64 * 1024;
/// Longest configurable batch age or retry delay: a day; beyond it data is stale anyway.
pub const MAX_DELAY_MS: u64 = 24 * 60 * 60 * 1000;
/// Longest id the journal and the wire carry (the journal stores lengths in one byte).
pub const MAX_ID_LEN: u32 = 255;

/// The client platform, as it appears on the wire.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Platform {
    Tv,
    Android,
    Ios,
    Web,
    Other,
}

impl Platform {
    /// The wire enum.
    pub fn to_proto(self) -> proto::Platform {
        match self {
            Platform::Tv => proto::Platform::Tv,
            Platform::Android => proto::Platform::Android,
            Platform::Ios => proto::Platform::Ios,
            Platform::Web => proto::Platform::Web,
            Platform::Other => proto::Platform::Other,
        }
    }
}

/// Whether a second qualifying exposure of the same item at the same place in one page
/// view is a new impression.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Reentry {
    /// At most one impression per item and position per page view; later ones are deduped.
    OncePerPageView,
    /// Leaving the viewport and coming back is a new impression.
    AfterLeaving,
}

impl Reentry {
    /// The wire value (`Batch.reentry`); once per page view is 0, as in every batch
    /// written before the field existed.
    pub fn to_proto(self) -> i32 {
        match self {
            Reentry::OncePerPageView => proto::Reentry::OncePerPageView as i32,
            Reentry::AfterLeaving => proto::Reentry::AfterLeaving as i32,
        }
    }

    /// The rule of a wire value. A value this version does not know reads as once per page
    /// view, the stricter rule: a repeat is then flagged rather than silently accepted.
    pub fn from_proto(value: i32) -> Reentry {
        match proto::Reentry::try_from(value) {
            Ok(proto::Reentry::AfterLeaving) => Reentry::AfterLeaving,
            Ok(proto::Reentry::OncePerPageView) | Err(_) => Reentry::OncePerPageView,
        }
    }
}

/// Everything the logger needs to start.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    pub app_id: String,
    pub app_version: String,
    pub platform: Platform,
    /// Device model ("LG-OLED55C3"), not an identifier.
    pub device: String,
    /// Install id chosen by the host; empty logs none (then sampling by install uses the session).
    pub install_id: String,
    /// Key the collector uses to accept this app's uploads.
    pub app_key: String,
    /// Seed for session ids and retry jitter; hosts pass platform entropy, tests a constant.
    pub seed: u64,
    /// Share of impressions kept, in parts per million.
    pub sample_rate_ppm: u32,
    pub sample_key: SampleKey,
    pub contract: Contract,
    pub max_batch_impressions: u32,
    pub max_batch_age_ms: u64,
    pub max_queue_bytes: u32,
    pub retry_base_ms: u64,
    pub retry_max_ms: u64,
    pub max_attempts: u32,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            app_id: String::new(),
            app_version: String::new(),
            platform: Platform::Other,
            device: String::new(),
            install_id: String::new(),
            app_key: String::new(),
            seed: 0,
            sample_rate_ppm: PPM,
            sample_key: SampleKey::Install,
            contract: Contract::default(),
            max_batch_impressions: DEFAULT_MAX_BATCH_IMPRESSIONS,
            max_batch_age_ms: DEFAULT_MAX_BATCH_AGE_MS,
            max_queue_bytes: DEFAULT_MAX_QUEUE_BYTES,
            retry_base_ms: DEFAULT_RETRY_BASE_MS,
            retry_max_ms: DEFAULT_RETRY_MAX_MS,
            max_attempts: DEFAULT_MAX_ATTEMPTS,
        }
    }
}

/// Which setting is unusable.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ConfigError {
    /// `app_id`, `app_version`, `device` or `install_id` is not a well-formed id.
    BadId(&'static str),
    /// `sample_rate_ppm` above one million.
    SampleRate,
    /// A batch, queue or retry limit is zero, inverted or beyond the hard caps.
    Limit(&'static str),
    /// The contract's thresholds are impossible.
    Contract,
    /// `seed` is 0, the default: it must come from the platform's entropy at every start.
    Seed,
}

impl ConfigError {
    /// The message, built without `core::fmt`, which the wasm and firmware builds would
    /// otherwise link for this alone.
    pub fn message(&self) -> String {
        let (field, text) = match self {
            ConfigError::BadId(field) => (Some(*field), " is not a well-formed id"),
            ConfigError::SampleRate => (None, "sample_rate_ppm must be at most 1000000"),
            ConfigError::Limit(field) => (Some(*field), " is out of range"),
            ConfigError::Contract => (None, "contract thresholds are impossible"),
            ConfigError::Seed => (
                None,
                "seed is 0: pass entropy from the platform at every start, or two devices \
                 without stored state can share a session id",
            ),
        };
        let mut message = String::from(field.unwrap_or(""));
        message.push_str(text);
        message
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message())
    }
}

impl core::error::Error for ConfigError {}

impl Config {
    /// Checks every field; the logger refuses to start on an invalid configuration.
    pub fn validate(&self) -> Result<(), ConfigError> {
        // The contract first: the id checks below use its `max_id_len`, and an impossible
        // bound must be reported as such, not as every id being malformed.
        let c = &self.contract;
        if c.max_id_len == 0 || c.max_id_len > MAX_ID_LEN {
            return Err(ConfigError::Contract);
        }
        if c.min_visible_pct == 0 || c.min_visible_pct > 100 || c.max_visible_ms < c.min_visible_ms
        {
            return Err(ConfigError::Contract);
        }
        let max = c.max_id_len;
        if !valid_id(&self.app_id, max) {
            return Err(ConfigError::BadId("app_id"));
        }
        if !valid_id(&self.app_version, max) {
            return Err(ConfigError::BadId("app_version"));
        }
        if !self.device.is_empty() && !valid_id(&self.device, max) {
            return Err(ConfigError::BadId("device"));
        }
        if !self.install_id.is_empty() && !valid_id(&self.install_id, max) {
            return Err(ConfigError::BadId("install_id"));
        }
        if self.app_key.len() > crate::wire::MAX_STRING_LEN {
            return Err(ConfigError::BadId("app_key"));
        }
        if self.sample_rate_ppm > PPM {
            return Err(ConfigError::SampleRate);
        }
        if self.seed == 0 {
            return Err(ConfigError::Seed);
        }
        if self.max_batch_impressions == 0
            || self.max_batch_impressions as usize > crate::batch::MAX_BATCH_IMPRESSIONS
        {
            return Err(ConfigError::Limit("max_batch_impressions"));
        }
        if self.max_batch_age_ms == 0 || self.max_batch_age_ms > MAX_DELAY_MS {
            return Err(ConfigError::Limit("max_batch_age_ms"));
        }
        if self.max_queue_bytes < MIN_QUEUE_BYTES {
            return Err(ConfigError::Limit("max_queue_bytes"));
        }
        if self.retry_base_ms == 0
            || self.retry_max_ms < self.retry_base_ms
            || self.retry_max_ms > MAX_DELAY_MS
        {
            return Err(ConfigError::Limit("retry_base_ms/retry_max_ms"));
        }
        if self.max_attempts == 0 {
            return Err(ConfigError::Limit("max_attempts"));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::string::ToString;

    /// The default configuration with the two ids every host must choose.
    fn valid() -> Config {
        Config {
            app_id: "com.example.app".into(),
            app_version: "1.0.0".into(),
            seed: 0x5eed,
            ..Config::default()
        }
    }

    #[test]
    fn the_default_configuration_with_an_app_named_validates() {
        assert_eq!(valid().validate(), Ok(()));
        // Limits at their bounds are usable.
        let edges = Config {
            sample_rate_ppm: PPM,
            max_batch_impressions: crate::batch::MAX_BATCH_IMPRESSIONS as u32,
            max_batch_age_ms: MAX_DELAY_MS,
            max_queue_bytes: MIN_QUEUE_BYTES,
            retry_base_ms: MAX_DELAY_MS,
            retry_max_ms: MAX_DELAY_MS,
            max_attempts: 1,
            device: "d".into(),
            install_id: "i".into(),
            app_key: "k".repeat(crate::wire::MAX_STRING_LEN),
            contract: Contract {
                max_id_len: MAX_ID_LEN,
                min_visible_pct: 100,
                ..Contract::default()
            },
            ..valid()
        };
        assert_eq!(edges.validate(), Ok(()));
    }

    #[test]
    fn a_configuration_without_an_app_id_is_refused() {
        assert_eq!(
            Config::default().validate(),
            Err(ConfigError::BadId("app_id"))
        );
    }

    #[test]
    fn each_broken_configuration_is_refused_with_its_own_error() {
        type Break = fn(&mut Config);
        let cases: [(Break, ConfigError); 23] = [
            (|c| c.seed = 0, ConfigError::Seed),
            (
                |c| c.app_id = "has space".into(),
                ConfigError::BadId("app_id"),
            ),
            (|c| c.app_version.clear(), ConfigError::BadId("app_version")),
            (
                |c| c.device = "caf\u{e9}".into(),
                ConfigError::BadId("device"),
            ),
            (
                |c| c.install_id = "a/b c".into(),
                ConfigError::BadId("install_id"),
            ),
            (
                |c| c.app_key = "k".repeat(crate::wire::MAX_STRING_LEN + 1),
                ConfigError::BadId("app_key"),
            ),
            (|c| c.app_id = "x".repeat(65), ConfigError::BadId("app_id")),
            (|c| c.sample_rate_ppm = PPM + 1, ConfigError::SampleRate),
            (
                |c| c.max_batch_impressions = 0,
                ConfigError::Limit("max_batch_impressions"),
            ),
            (
                |c| c.max_batch_impressions = crate::batch::MAX_BATCH_IMPRESSIONS as u32 + 1,
                ConfigError::Limit("max_batch_impressions"),
            ),
            (
                |c| c.max_batch_age_ms = 0,
                ConfigError::Limit("max_batch_age_ms"),
            ),
            (
                |c| c.max_batch_age_ms = MAX_DELAY_MS + 1,
                ConfigError::Limit("max_batch_age_ms"),
            ),
            (
                |c| c.max_queue_bytes = MIN_QUEUE_BYTES - 1,
                ConfigError::Limit("max_queue_bytes"),
            ),
            (
                |c| c.retry_base_ms = 0,
                ConfigError::Limit("retry_base_ms/retry_max_ms"),
            ),
            (
                |c| c.retry_max_ms = c.retry_base_ms - 1,
                ConfigError::Limit("retry_base_ms/retry_max_ms"),
            ),
            (
                |c| c.retry_max_ms = MAX_DELAY_MS + 1,
                ConfigError::Limit("retry_base_ms/retry_max_ms"),
            ),
            (|c| c.max_attempts = 0, ConfigError::Limit("max_attempts")),
            (|c| c.contract.max_id_len = 0, ConfigError::Contract),
            (
                |c| c.contract.max_id_len = MAX_ID_LEN + 1,
                ConfigError::Contract,
            ),
            (|c| c.contract.min_visible_pct = 0, ConfigError::Contract),
            (|c| c.contract.min_visible_pct = 101, ConfigError::Contract),
            (
                |c| c.contract.max_visible_ms = c.contract.min_visible_ms - 1,
                ConfigError::Contract,
            ),
            // The ids must also fit the contract's own, shorter, bound.
            (|c| c.contract.max_id_len = 3, ConfigError::BadId("app_id")),
        ];
        for (i, (broken, expected)) in cases.into_iter().enumerate() {
            let mut c = valid();
            broken(&mut c);
            assert_eq!(c.validate(), Err(expected.clone()), "case {i}");
            // Every error says which setting is wrong.
            assert!(!expected.to_string().is_empty());
        }
    }
}
