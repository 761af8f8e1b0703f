//! The configuration and the stored state a logger starts from, built field by field from
//! JavaScript: a setting is named as in the core's serde form (`"max_batch_impressions"`,
//! `"contract.min_visible_ms"`), so the runtime and the conformance runner pass the same
//! names the scenario files use, and an unknown name is an error, like the core's
//! `deny_unknown_fields`.

use alloc::string::{String, ToString};
use alloc::vec::Vec;

use sightline_core::{Platform, Reentry, SampleKey};
use wasm_bindgen::prelude::*;

/// A [`sightline_core::Config`] under construction; checked as a whole by `Logger.resume`.
#[wasm_bindgen]
#[derive(Default)]
pub struct Config {
    pub(crate) inner: sightline_core::Config,
}

fn bad(name: &str, expected: &str) -> JsError {
    let mut message = String::from(name);
    message.push_str(": expected ");
    message.push_str(expected);
    JsError::new(&message)
}

/// A whole number in `0..=max`, exactly representable as an `f64`.
fn whole(name: &str, value: f64, max: u64) -> Result<u64, JsError> {
    // 2^53: the largest range in which every whole f64 is exact.
    const EXACT: f64 = 9_007_199_254_740_992.0;
    if (0.0..EXACT).contains(&value) && value == (value as u64) as f64 && value as u64 <= max {
        Ok(value as u64)
    } else {
        Err(bad(name, "a whole number in range"))
    }
}

fn small(name: &str, value: f64) -> Result<u32, JsError> {
    // In range by `whole`'s bound.
    whole(name, value, u64::from(u32::MAX)).map(|v| v as u32)
}

#[wasm_bindgen]
impl Config {
    #[wasm_bindgen(constructor)]
    pub fn new() -> Config {
        Config::default()
    }

    /// A text setting: ids, keys, and the enums by their snake_case names.
    pub fn set_text(&mut self, name: &str, value: &str) -> Result<(), JsError> {
        let c = &mut self.inner;
        match name {
            "app_id" => c.app_id = value.to_string(),
            "app_version" => c.app_version = value.to_string(),
            "device" => c.device = value.to_string(),
            "install_id" => c.install_id = value.to_string(),
            "app_key" => c.app_key = value.to_string(),
            "platform" => {
                c.platform = match value {
                    "tv" => Platform::Tv,
                    "android" => Platform::Android,
                    "ios" => Platform::Ios,
                    "web" => Platform::Web,
                    "other" => Platform::Other,
                    _ => return Err(bad(name, "tv, android, ios, web or other")),
                }
            }
            "sample_key" => {
                c.sample_key = match value {
                    "install" => SampleKey::Install,
                    "session" => SampleKey::Session,
                    _ => return Err(bad(name, "install or session")),
                }
            }
            "contract.reentry" => {
                c.contract.reentry = match value {
                    "once_per_page_view" => Reentry::OncePerPageView,
                    "after_leaving" => Reentry::AfterLeaving,
                    _ => return Err(bad(name, "once_per_page_view or after_leaving")),
                }
            }
            _ => return Err(bad(name, "a known text setting")),
        }
        Ok(())
    }

    /// A numeric setting: a whole number in the setting's range.
    pub fn set_number(&mut self, name: &str, value: f64) -> Result<(), JsError> {
        let c = &mut self.inner;
        match name {
            "seed" => c.seed = whole(name, value, u64::MAX)?,
            "sample_rate_ppm" => c.sample_rate_ppm = small(name, value)?,
            "max_batch_impressions" => c.max_batch_impressions = small(name, value)?,
            "max_batch_age_ms" => c.max_batch_age_ms = whole(name, value, u64::MAX)?,
            "max_queue_bytes" => c.max_queue_bytes = small(name, value)?,
            "retry_base_ms" => c.retry_base_ms = whole(name, value, u64::MAX)?,
            "retry_max_ms" => c.retry_max_ms = whole(name, value, u64::MAX)?,
            "max_attempts" => c.max_attempts = small(name, value)?,
            "contract.version" => c.contract.version = small(name, value)?,
            "contract.min_visible_pct" => c.contract.min_visible_pct = small(name, value)?,
            "contract.min_visible_ms" => c.contract.min_visible_ms = small(name, value)?,
            "contract.max_visible_ms" => c.contract.max_visible_ms = small(name, value)?,
            "contract.max_id_len" => c.contract.max_id_len = small(name, value)?,
            "contract.max_position" => c.contract.max_position = small(name, value)?,
            _ => return Err(bad(name, "a known numeric setting")),
        }
        Ok(())
    }

    /// The full 64-bit seed (`crypto.getRandomValues` gives more than an f64 holds).
    pub fn set_seed(&mut self, seed: u64) {
        self.inner.seed = seed;
    }

    pub fn set_require_artwork(&mut self, value: bool) {
        self.inner.contract.require_artwork = value;
    }

    /// The page names the app may use; empty allows any well-formed name.
    pub fn set_pages(&mut self, pages: Vec<String>) {
        self.inner.contract.pages = pages;
    }
}

/// What the host read back from its store: values by key, and the journal.
#[wasm_bindgen]
#[derive(Default)]
pub struct Stored {
    pub(crate) inner: sightline_core::Stored,
}

#[wasm_bindgen]
impl Stored {
    #[wasm_bindgen(constructor)]
    pub fn new() -> Stored {
        Stored::default()
    }

    pub fn put(&mut self, key: &str, value: &[u8]) {
        self.inner.values.insert(key.to_string(), value.to_vec());
    }

    pub fn set_journal(&mut self, journal: &[u8]) {
        self.inner.journal = journal.to_vec();
    }
}
