//! A seeded faulty network between a device and the model collector: lost requests, lost
//! acknowledgements (the collector got the batch, the device does not know), 5xx, 429 with
//! Retry-After, permanent 4xx, 413 above a body size, and latency.

use sightline_core::UploadOutcome;

use crate::collector::Collector;
use crate::rng::Rng;

/// Fault probabilities per upload, and the network's shape.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Faults {
    /// The request never reaches the collector.
    pub drop_request: f64,
    /// The collector ingests the batch but the response is lost.
    pub drop_response: f64,
    pub status_503: f64,
    pub status_429: f64,
    /// Retry-After sent with 429/503, inclusive range in ms.
    pub retry_after_ms: (u64, u64),
    /// Permanent refusal (400).
    pub reject: f64,
    /// Bodies above this get 413.
    pub max_body_bytes: usize,
    /// Round trip, inclusive range in ms.
    pub latency_ms: (u64, u64),
}

impl Faults {
    /// A network that always works.
    pub fn none() -> Self {
        Faults {
            drop_request: 0.0,
            drop_response: 0.0,
            status_503: 0.0,
            status_429: 0.0,
            retry_after_ms: (0, 0),
            reject: 0.0,
            max_body_bytes: usize::MAX,
            latency_ms: (20, 200),
        }
    }

    /// The default hostile network of the simulation tests and the demo.
    pub fn lossy() -> Self {
        Faults {
            drop_request: 0.10,
            drop_response: 0.08,
            status_503: 0.08,
            status_429: 0.05,
            retry_after_ms: (1_000, 30_000),
            reject: 0.005,
            max_body_bytes: 6 * 1024,
            latency_ms: (20, 1_500),
        }
    }
}

/// What one exchange did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Exchange {
    pub outcome: UploadOutcome,
    pub latency_ms: u64,
    /// The collector ingested the body (whatever the device learns).
    pub ingested: bool,
}

/// The network of one simulated device.
#[derive(Debug)]
pub struct Network {
    rng: Rng,
    pub faults: Faults,
}

impl Network {
    /// A network whose faults are fixed by `seed`.
    pub fn new(seed: u64, faults: Faults) -> Self {
        Network {
            rng: Rng::new(seed),
            faults,
        }
    }

    /// Carries `body` to the collector and back.
    pub fn exchange(&mut self, body: &[u8], collector: &mut Collector) -> Exchange {
        let f = self.faults;
        let latency_ms = self.rng.range(f.latency_ms.0, f.latency_ms.1);
        // Retry-After travels as the header's text: whole seconds, rounded up.
        let status = |code: u16, retry_after_ms: Option<u64>| UploadOutcome::Status {
            code,
            retry_after: retry_after_ms.map(|ms| ms.div_ceil(1000).to_string()),
        };
        let mut ingested = false;
        let outcome = if self.rng.chance(f.drop_request) {
            UploadOutcome::NetworkError
        } else if self.rng.chance(f.status_503) {
            status(503, self.retry_after())
        } else if self.rng.chance(f.status_429) {
            status(429, self.retry_after())
        } else if body.len() > f.max_body_bytes {
            status(413, None)
        } else if self.rng.chance(f.reject) {
            status(400, None)
        } else {
            let code = collector.ingest(body);
            ingested = code == 200;
            if self.rng.chance(f.drop_response) {
                UploadOutcome::NetworkError
            } else {
                status(code, None)
            }
        };
        Exchange {
            outcome,
            latency_ms,
            ingested,
        }
    }

    fn retry_after(&mut self) -> Option<u64> {
        let (lo, hi) = self.faults.retry_after_ms;
        (hi > 0 && self.rng.chance(0.7)).then(|| self.rng.range(lo, hi))
    }
}
