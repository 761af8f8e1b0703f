//! The kit for hosts with threads: a [`Capture`] as the std runtime's transport (the capture
//! mode: uploads never leave the process), and a client for the collector's micro mode, the
//! integration-test option (real HTTP, rows in memory behind a JSON API).

use alloc::format;
use alloc::string::String;
use alloc::sync::Arc;
use alloc::vec::Vec;
use std::sync::Mutex;
use std::time::Duration;

use super::Capture;
use crate::runtime::Transport;
use crate::upload::{Upload, UploadOutcome};

/// Answers every upload as a collector would, after handing it to the shared capture: 200
/// once received, 400 for a body that does not decode.
#[derive(Clone, Debug)]
pub struct CaptureTransport {
    capture: Arc<Mutex<Capture>>,
}

impl CaptureTransport {
    pub fn new(capture: Arc<Mutex<Capture>>) -> CaptureTransport {
        CaptureTransport { capture }
    }
}

impl Transport for CaptureTransport {
    fn send(&mut self, upload: &Upload) -> UploadOutcome {
        let received = match self.capture.lock() {
            Ok(mut capture) => capture.receive(&upload.body).is_ok(),
            // A test thread panicked holding the capture: keep its data, keep answering.
            Err(poisoned) => poisoned.into_inner().receive(&upload.body).is_ok(),
        };
        UploadOutcome::status(if received { 200 } else { 400 })
    }
}

/// A client for a collector started with `serve --micro`.
#[derive(Debug)]
pub struct MicroCollector {
    base_url: String,
    agent: ureq::Agent,
}

/// Why a micro-mode query failed.
pub type MicroError = String;

impl MicroCollector {
    /// A client of the collector at `base_url` (`http://127.0.0.1:9090`); every request is
    /// bounded by `timeout`.
    pub fn new(base_url: &str, timeout: Duration) -> MicroCollector {
        let agent = ureq::Agent::config_builder()
            .timeout_global(Some(timeout))
            .build()
            .new_agent();
        MicroCollector {
            base_url: base_url.trim_end_matches('/').into(),
            agent,
        }
    }

    fn get(&self, path: &str) -> Result<serde_json::Value, MicroError> {
        let url = format!("{}{path}", self.base_url);
        let mut response = self
            .agent
            .get(&url)
            .call()
            .map_err(|e| format!("{url}: {e}"))?;
        let text = response
            .body_mut()
            .read_to_string()
            .map_err(|e| format!("{url}: {e}"))?;
        serde_json::from_str(&text).map_err(|e| format!("{url}: {e}"))
    }

    /// Accepted rows, one per impression.
    pub fn good(&self) -> Result<Vec<serde_json::Value>, MicroError> {
        rows(self.get("/micro/good")?)
    }

    /// Rows refused by the contract, each with the `rules` it broke.
    pub fn bad(&self) -> Result<Vec<serde_json::Value>, MicroError> {
        rows(self.get("/micro/bad")?)
    }

    /// Loss accounting by session id.
    pub fn sessions(&self) -> Result<serde_json::Map<String, serde_json::Value>, MicroError> {
        match self.get("/micro/sessions")? {
            serde_json::Value::Object(map) => Ok(map),
            other => Err(format!("/micro/sessions: not an object: {other}")),
        }
    }

    /// Forgets every row and session.
    pub fn reset(&self) -> Result<(), MicroError> {
        let url = format!("{}/micro/reset", self.base_url);
        self.agent
            .post(&url)
            .send_empty()
            .map(drop)
            .map_err(|e| format!("{url}: {e}"))
    }
}

fn rows(value: serde_json::Value) -> Result<Vec<serde_json::Value>, MicroError> {
    match value {
        serde_json::Value::Array(rows) => Ok(rows),
        other => Err(format!("not a list of rows: {other}")),
    }
}
