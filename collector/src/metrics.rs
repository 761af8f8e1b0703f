//! `/metrics` in the OpenMetrics text format, encoded by the Prometheus project's client
//! (`prometheus-client`).
//!
//! Two kinds of series: instruments the request path updates as it goes (request
//! durations by route and status, requests in flight, sink write latency), and counts read
//! once per scrape ([`Snapshot`]): the ingestor's counters live under the state's lock
//! because they roll back with an upload that could not be stored, so a scrape copies them
//! there in one step, with the per-session state sizes.

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::middleware::Next;
use axum::response::Response;
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeLabelSet, EncodeMetric, text::encode};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::{ConstGauge, Gauge};
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::{Registry, Unit};

/// The exposition's content type (OpenMetrics 1.0 text).
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";
/// Request-duration buckets: 0.5 ms doubling to 16 s, from a `/healthz` answer to an
/// upload that waited its 5 s for an ingest worker and then its body timeout.
const REQUEST_BUCKETS: (f64, f64, u16) = (0.000_5, 2.0, 16);
/// Sink write buckets: 50 us doubling to 1.6 s, from a buffered write to a stalled disk.
const SINK_WRITE_BUCKETS: (f64, f64, u16) = (0.000_05, 2.0, 16);
/// Per-session state buckets, in remembered seqs and digests: 1 quadrupling to 65,536,
/// the dedup window a session can hold at most.
const SESSION_STATE_BUCKETS: (f64, f64, u16) = (1.0, 4.0, 9);

/// Route label of a request no route matched: unknown paths must not grow the series.
const UNMATCHED_ROUTE: &str = "unmatched";

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    route: String,
    method: String,
    code: u16,
}

/// The live instruments and the registry that encodes them with each scrape's snapshot.
#[derive(Debug)]
pub struct Instruments {
    registry: Registry,
    requests: Family<RequestLabels, Histogram, fn() -> Histogram>,
    in_flight: Gauge,
    sink_writes: Histogram,
    scraped: Arc<Mutex<Snapshot>>,
}

/// What a scrape reads under the state's lock and from the server's atomics.
#[derive(Debug, Clone, Default)]
pub struct Snapshot {
    pub counters: Vec<(&'static str, &'static str, u64)>,
    pub gauges: Vec<(&'static str, &'static str, u64)>,
    /// Impressions refused by the contract, by rule name.
    pub rejects_by_rule: HashMap<&'static str, u64>,
    /// Whole uploads refused, by reason.
    pub refused_batches: HashMap<&'static str, u64>,
    /// Seqs and digests remembered by each tracked session.
    pub session_entries: Vec<u64>,
}

fn buckets((start, factor, count): (f64, f64, u16)) -> impl Iterator<Item = f64> {
    exponential_buckets(start, factor, count)
}

fn request_histogram() -> Histogram {
    Histogram::new(buckets(REQUEST_BUCKETS))
}

impl Default for Instruments {
    fn default() -> Self {
        let mut registry = Registry::default();
        let requests = Family::<RequestLabels, Histogram, fn() -> Histogram>::new_with_constructor(
            request_histogram,
        );
        registry.register_with_unit(
            "sightline_http_request_duration",
            "Time from a request's head to its answer, by route, method and status.",
            Unit::Seconds,
            requests.clone(),
        );
        let in_flight = Gauge::default();
        registry.register(
            "sightline_http_requests_in_flight",
            "Requests being answered.",
            in_flight.clone(),
        );
        let sink_writes = Histogram::new(buckets(SINK_WRITE_BUCKETS));
        registry.register_with_unit(
            "sightline_sink_write_duration",
            "Time to write one upload's rows to the output.",
            Unit::Seconds,
            sink_writes.clone(),
        );
        let scraped = Arc::new(Mutex::new(Snapshot::default()));
        registry.register_collector(Box::new(Scraped(scraped.clone())));
        Instruments {
            registry,
            requests,
            in_flight,
            sink_writes,
            scraped,
        }
    }
}

impl Instruments {
    /// One upload's rows written to the output in `seconds`.
    pub fn sink_write(&self, seconds: f64) {
        self.sink_writes.observe(seconds);
    }

    /// The exposition of the live instruments with `snapshot`.
    pub fn encode(&self, snapshot: Snapshot) -> Result<String, fmt::Error> {
        // Held while encoding, so two scrapes never mix their snapshots.
        let mut scraped = self.scraped.lock().unwrap_or_else(|e| e.into_inner());
        *scraped = snapshot;
        drop(scraped);
        let mut text = String::new();
        encode(&mut text, &self.registry)?;
        Ok(text)
    }
}

/// Times every request and counts those in flight (an axum middleware).
pub async fn track(
    State(instruments): State<Arc<Instruments>>,
    request: Request,
    next: Next,
) -> Response {
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or(UNMATCHED_ROUTE.to_string(), |p| p.as_str().to_string());
    let method = request.method().as_str().to_string();
    let started = Instant::now();
    instruments.in_flight.inc();
    let response = next.run(request).await;
    instruments.in_flight.dec();
    let labels = RequestLabels {
        route,
        method,
        code: response.status().as_u16(),
    };
    instruments
        .requests
        .get_or_create(&labels)
        .observe(started.elapsed().as_secs_f64());
    response
}

/// The latest snapshot, encoded at each scrape.
#[derive(Debug)]
struct Scraped(Arc<Mutex<Snapshot>>);

impl Collector for Scraped {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), fmt::Error> {
        let snapshot = self.0.lock().unwrap_or_else(|e| e.into_inner());
        for (name, help, value) in &snapshot.counters {
            let counter = ConstCounter::new(*value);
            counter.encode(encoder.encode_descriptor(
                name,
                help,
                None,
                counter.metric_type(),
            )?)?;
        }
        for (name, help, value) in &snapshot.gauges {
            // Gauges are i64 in the client; no count here comes near 2^63.
            let gauge = ConstGauge::new(i64::try_from(*value).unwrap_or(i64::MAX));
            gauge.encode(encoder.encode_descriptor(name, help, None, gauge.metric_type())?)?;
        }
        for (name, help, label, values) in [
            (
                "sightline_rejects",
                "Impressions refused by the contract, by rule.",
                "rule",
                &snapshot.rejects_by_rule,
            ),
            (
                "sightline_refused_batches",
                "Whole uploads refused, by reason.",
                "reason",
                &snapshot.refused_batches,
            ),
        ] {
            let mut family = encoder.encode_descriptor(name, help, None, MetricType::Counter)?;
            let mut sorted: Vec<_> = values.iter().collect();
            sorted.sort();
            for (value_label, n) in sorted {
                let labels = [(label, *value_label)];
                ConstCounter::new(*n).encode(family.encode_family(&labels)?)?;
            }
        }
        let sessions = Histogram::new(buckets(SESSION_STATE_BUCKETS));
        for n in &snapshot.session_entries {
            sessions.observe(*n as f64);
        }
        sessions.encode(encoder.encode_descriptor(
            "sightline_session_state_entries",
            "Seqs and content digests each tracked session remembers (its dedup state).",
            None,
            sessions.metric_type(),
        )?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_scrape_shows_its_snapshot_and_ends_with_eof() {
        let instruments = Instruments::default();
        instruments.sink_write(0.001);
        let text = instruments
            .encode(Snapshot {
                counters: vec![("sightline_batches", "Batches accepted.", 3)],
                gauges: vec![("sightline_connections", "Connections being served.", 2)],
                rejects_by_rule: HashMap::from([("too_short", 4)]),
                refused_batches: HashMap::new(),
                session_entries: vec![0, 5, 70_000],
            })
            .expect("encodes");
        for line in [
            "sightline_batches_total 3",
            "sightline_connections 2",
            "sightline_rejects_total{rule=\"too_short\"} 4",
            "sightline_sink_write_duration_seconds_count 1",
            "sightline_session_state_entries_count 3",
            "sightline_session_state_entries_bucket{le=\"+Inf\"} 3",
            "sightline_session_state_entries_bucket{le=\"16.0\"} 2",
        ] {
            assert!(text.lines().any(|l| l == line), "no {line:?} in\n{text}");
        }
        assert!(text.ends_with("# EOF\n"));
    }
}
