//! Transports: how an [`Upload`] the logger asked for becomes an HTTP request, and how
//! the answer becomes an [`UploadOutcome`].
//!
//! This module owns the [`Transport`] trait (the seam where hosts plug in their own HTTP
//! stack, OkHttp or URLSession through a foreign callback, and tests plug in fakes) and
//! [`HttpTransport`], the ready implementation on ureq 3 with rustls. A transport only
//! reports what happened; what the outcome means for the batch (retry, split, drop) is
//! the core's decision (see [`crate::upload::classify`]).

use alloc::format;
use alloc::string::String;
use core::fmt;
use std::time::Duration;

use crate::upload::{Upload, UploadOutcome};

/// Performs uploads for the driver thread, one at a time and synchronously.
///
/// Implementations must not panic and must return within a bounded time: the driver
/// thread waits for every call, so a transport without a timeout stalls the logger.
pub trait Transport: Send {
    /// POSTs `upload.body` to the collector at `upload.path` with `upload.headers`.
    fn send(&mut self, upload: &Upload) -> UploadOutcome;
}

/// Closures are transports, so tests and simple hosts need no named type.
impl<F> Transport for F
where
    F: FnMut(&Upload) -> UploadOutcome + Send,
{
    fn send(&mut self, upload: &Upload) -> UploadOutcome {
        self(upload)
    }
}

/// Response bodies read (and discarded) at most: draining a small body lets the
/// connection be reused; a collector has nothing longer than this to say to a device.
const MAX_RESPONSE_BODY_BYTES: u64 = 64 * 1024;

/// The HTTP transport of the std runtime: ureq 3, rustls, a connection pool, one global
/// timeout per request.
///
/// Every 4xx/5xx comes back as [`UploadOutcome::Status`]; every failure without an HTTP
/// answer (bad URL, DNS, connect, TLS, timeout, reset) is [`UploadOutcome::NetworkError`].
/// Redirects are not followed: a redirected POST may lose its body or turn into a GET,
/// so a 3xx is reported as it is (and the core retries it). Proxies configured in the
/// environment (`HTTP_PROXY`, `HTTPS_PROXY`, `NO_PROXY`) are honoured, as ureq does.
pub struct HttpTransport {
    agent: ureq::Agent,
    /// Base URL without a trailing slash; the upload path (which starts with `/`) is appended.
    base_url: String,
}

impl HttpTransport {
    /// A transport posting to `base_url` (e.g. `https://collector.example.com`), where every
    /// request, from DNS lookup to the end of the response body, is bounded by `timeout`.
    pub fn new(base_url: &str, timeout: Duration) -> HttpTransport {
        let agent = ureq::Agent::config_builder()
            .timeout_global(Some(timeout))
            .http_status_as_error(false)
            .max_redirects(0)
            .user_agent(format!(
                "{}/{}",
                crate::logger::SDK_NAME,
                crate::logger::SDK_VERSION
            ))
            .build()
            .new_agent();
        HttpTransport {
            agent,
            base_url: String::from(base_url.trim_end_matches('/')),
        }
    }

    /// The base URL requests go to.
    pub fn base_url(&self) -> &str {
        &self.base_url
    }

    /// Performs one upload. Never panics: an invalid URL or header is reported as a
    /// network error like any other request that got no HTTP answer.
    pub fn send(&self, upload: &Upload) -> UploadOutcome {
        let url = format!("{}{}", self.base_url, upload.path);
        let mut request = self.agent.post(&url);
        for h in &upload.headers {
            request = request.header(h.name.as_str(), h.value.as_str());
        }
        let mut response = match request.send(&upload.body[..]) {
            Ok(response) => response,
            Err(_) => return UploadOutcome::NetworkError,
        };
        let code = response.status().as_u16();
        let retry_after = response
            .headers()
            .get("retry-after")
            .and_then(|v| v.to_str().ok())
            .map(String::from);
        // The status is the answer; the body only matters for connection reuse, so a
        // failure to read it does not change the outcome.
        let _ = response
            .body_mut()
            .with_config()
            .limit(MAX_RESPONSE_BODY_BYTES)
            .read_to_vec();
        UploadOutcome::Status { code, retry_after }
    }
}

impl Transport for HttpTransport {
    fn send(&mut self, upload: &Upload) -> UploadOutcome {
        HttpTransport::send(self, upload)
    }
}

impl fmt::Debug for HttpTransport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HttpTransport")
            .field("base_url", &self.base_url)
            .finish_non_exhaustive()
    }
}
