//! `/metrics` in the OpenMetrics text format, encoded by the Prometheus project's client
//! (`prometheus-client`).
//!
//! Two kinds of series: instruments the request path updates as it goes (request
//! durations by route and status, requests in flight, sink write latency), and counts read
//! once per scrape ([`Snapshot`]): the ingestor's counters live under the state's lock
//! because they roll back with an upload that could not be stored, so a scrape copies them
//! there in one step, with the per-session state sizes already bucketed; the text is
//! encoded after the lock is released.

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::http::Method;
use axum::middleware::Next;
use axum::response::Response;
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{
    DescriptorEncoder, EncodeLabelSet, EncodeMetric, NoLabelSet, text::encode,
};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::{ConstGauge, Gauge};
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::{Registry, Unit};

use crate::session::{DEDUP_WINDOW, RECENT_DIGESTS};

/// The exposition's content type (OpenMetrics 1.0 text).
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";
/// Request-duration buckets: 0.5 ms doubling to 16 s, from a `/healthz` answer to an
/// upload that waited its 5 s for an ingest worker and then its body timeout.
const REQUEST_BUCKETS: (f64, f64, u16) = (0.000_5, 2.0, 16);
/// Sink write buckets: 50 us doubling to 1.6 s, from a buffered write to a stalled disk.
const SINK_WRITE_BUCKETS: (f64, f64, u16) = (0.000_05, 2.0, 16);
/// Most seqs and digests one session remembers: a full window above its high-water mark
/// and its digests below it.
pub const MAX_SESSION_ENTRIES: usize = DEDUP_WINDOW + RECENT_DIGESTS;
/// Upper bounds of the per-session state buckets: 1 quadrupling to 65,536, then the most a
/// session can hold, so a full session is told from a nearly full one.
const SESSION_STATE_BOUNDS: [u64; 10] = [
    1,
    4,
    16,
    64,
    256,
    1_024,
    4_096,
    16_384,
    65_536,
    MAX_SESSION_ENTRIES as u64,
];
/// Status label of a request whose answer was never produced (the client went away, or
/// the server stopped waiting): nginx's "client closed request".
const ABANDONED: u16 = 499;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    route: String,
    method: &'static str,
    code: u16,
}

/// The method label: the ones the routes answer, and one label for every other, so that
/// made-up methods cannot grow the series.
fn method_label(method: &Method) -> &'static str {
    match *method {
        Method::GET => "GET",
        Method::HEAD => "HEAD",
        Method::POST => "POST",
        _ => "other",
    }
}

/// The live instruments and the registry that encodes them with each scrape's snapshot.
#[derive(Debug)]
pub struct Instruments {
    registry: Registry,
    requests: Family<RequestLabels, Histogram, fn() -> Histogram>,
    in_flight: Gauge,
    sink_writes: Histogram,
    scraped: Arc<Mutex<Snapshot>>,
    /// Held from storing a snapshot to the end of its encoding: two scrapes never mix.
    encoding: Mutex<()>,
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
    /// Seqs and digests remembered by each tracked session, bucketed.
    pub session_entries: SessionSizes,
}

/// A histogram of the tracked sessions' state sizes, filled under the state's lock
/// without allocating.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SessionSizes {
    /// Sessions per bucket of [`SESSION_STATE_BOUNDS`], then those above the last bound.
    counts: [u64; SESSION_STATE_BOUNDS.len() + 1],
    pub sessions: u64,
    pub entries: u64,
}

impl SessionSizes {
    pub fn observe(&mut self, entries: usize) {
        let entries = entries as u64;
        let bucket = SESSION_STATE_BOUNDS.partition_point(|&bound| bound < entries);
        self.counts[bucket] += 1;
        self.sessions += 1;
        self.entries += entries;
    }

    fn buckets(&self) -> Vec<(f64, u64)> {
        let bounds = SESSION_STATE_BOUNDS.iter().map(|&b| b as f64);
        bounds
            .chain([f64::INFINITY])
            .zip(self.counts.iter().copied())
            .collect()
    }
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
            encoding: Mutex::new(()),
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
        let _encoding = self.encoding.lock().unwrap_or_else(|e| e.into_inner());
        *self.scraped.lock().unwrap_or_else(|e| e.into_inner()) = snapshot;
        let mut text = String::new();
        encode(&mut text, &self.registry)?;
        Ok(text)
    }
}

/// One request being answered: counted in flight until dropped, and timed then, answered
/// or not (a client that hangs up mid-request drops the handler's future).
struct InFlight<'a> {
    instruments: &'a Instruments,
    labels: RequestLabels,
    started: Instant,
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.instruments.in_flight.dec();
        self.instruments
            .requests
            .get_or_create(&self.labels)
            .observe(self.started.elapsed().as_secs_f64());
    }
}

/// Times every request and counts those in flight (an axum middleware).
pub async fn track(
    State(instruments): State<Arc<Instruments>>,
    request: Request,
    next: Next,
) -> Response {
    // A route layer runs only for matched routes, whose path the router has set.
    let Some(route) = request.extensions().get::<MatchedPath>() else {
        return next.run(request).await;
    };
    instruments.in_flight.inc();
    let mut in_flight = InFlight {
        instruments: &instruments,
        labels: RequestLabels {
            route: route.as_str().to_string(),
            method: method_label(request.method()),
            code: ABANDONED,
        },
        started: Instant::now(),
    };
    let response = next.run(request).await;
    in_flight.labels.code = response.status().as_u16();
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
        let sizes = &snapshot.session_entries;
        encoder
            .encode_descriptor(
                "sightline_session_state_entries",
                "Seqs and content digests each tracked session remembers (its dedup state).",
                None,
                MetricType::Histogram,
            )?
            .encode_histogram::<NoLabelSet>(
                sizes.entries as f64,
                sizes.sessions,
                &sizes.buckets(),
                None,
            )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sizes(entries: &[usize]) -> SessionSizes {
        let mut sizes = SessionSizes::default();
        for &n in entries {
            sizes.observe(n);
        }
        sizes
    }

    #[test]
    fn a_session_size_lands_in_the_first_bucket_at_or_above_it() {
        let sizes = sizes(&[0, 1, 2, 65_536, 65_537, MAX_SESSION_ENTRIES + 1]);
        let counts: Vec<u64> = sizes.buckets().iter().map(|(_, n)| *n).collect();
        assert_eq!(counts, [2, 1, 0, 0, 0, 0, 0, 0, 1, 1, 1]);
        assert_eq!((sizes.sessions, sizes.entries), (6, 212_997));
    }

    #[test]
    fn made_up_methods_share_one_label() {
        let made_up = Method::from_bytes(b"A1").expect("a method token");
        assert_eq!(method_label(&made_up), "other");
        assert_eq!(method_label(&Method::DELETE), "other");
        assert_eq!(method_label(&Method::POST), "POST");
    }

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
                session_entries: sizes(&[0, 5, 70_000, MAX_SESSION_ENTRIES]),
            })
            .expect("encodes");
        for line in [
            "sightline_batches_total 3",
            "sightline_connections 2",
            "sightline_rejects_total{rule=\"too_short\"} 4",
            "sightline_sink_write_duration_seconds_count 1",
            "sightline_session_state_entries_count 4",
            "sightline_session_state_entries_bucket{le=\"16.0\"} 2",
            "sightline_session_state_entries_bucket{le=\"65536.0\"} 2",
            "sightline_session_state_entries_bucket{le=\"81920.0\"} 4",
            "sightline_session_state_entries_bucket{le=\"+Inf\"} 4",
        ] {
            assert!(text.lines().any(|l| l == line), "no {line:?} in\n{text}");
        }
        assert!(text.ends_with("# EOF\n"));
    }
}
