//! Collector ingest throughput: decode + validate + dedup + normalise (no sink), on one
//! core, over the reference workload's batches as the SDK sends them. Prints the whole
//! pipeline's rate (median and spread over passes) and where its time goes: inflate,
//! protobuf decode with the wire and header checks, then the contract, dedup and rows.
//! Asserts nothing.
//!
//! `cargo bench -p sightline-collector --bench ingest`

use std::hint::black_box;
use std::time::Instant;

use sightline_collector::ingest::Ingestor;
use sightline_core::{Config, Contract};
use sightline_sim::harness::healthy_bodies;
use sightline_sim::workload::{WorkloadSpec, generate};

/// The allocator of the collector binary, so the bench measures what it runs.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Passes over the workload; each pass uses a fresh ingestor so every seq is new.
const PASSES: usize = 30;
/// Receive time of every batch (any fixed wall time).
const RECEIVED_MS: u64 = 1_767_225_600_000;
/// The goal of issue 12, impressions per second on one core.
const GOAL: f64 = 3e6;

/// Seconds of each pass, sorted.
struct Passes(Vec<f64>);

impl Passes {
    fn measure(mut pass: impl FnMut()) -> Passes {
        let mut times: Vec<f64> = (0..PASSES)
            .map(|_| {
                let started = Instant::now();
                pass();
                started.elapsed().as_secs_f64()
            })
            .collect();
        times.sort_by(f64::total_cmp);
        Passes(times)
    }

    fn median(&self) -> f64 {
        self.0[PASSES / 2]
    }

    /// `label: median ns per impression (min..max)`.
    fn line(&self, label: &str, impressions: f64) {
        let ns = |s: f64| s / impressions * 1e9;
        println!(
            "   {label:<34} {:>6.0} ns/impression ({:.0}..{:.0})",
            ns(self.median()),
            ns(self.0[0]),
            ns(self.0[PASSES - 1]),
        );
    }
}

fn main() {
    let workload = generate(&WorkloadSpec::reference());
    let config = Config {
        app_id: "com.example.streaming".into(),
        app_version: "7.4.1".into(),
        device: "bench".into(),
        app_key: "k".into(),
        seed: 1,
        ..Config::default()
    };
    let bodies = healthy_bodies(&workload, config);
    let bytes: usize = bodies.iter().map(Vec::len).sum();
    let decoder = Ingestor::new(Contract::default()).decoder();
    let raws: Vec<Vec<u8>> = bodies
        .iter()
        .filter_map(|b| decoder.inflate(b).ok())
        .collect();
    let decoded: Vec<_> = raws
        .iter()
        .filter_map(|r| decoder.decode_raw(r).ok())
        .collect();

    let mut impressions = 0u64;
    let whole = Passes::measure(|| {
        let mut ingestor = Ingestor::new(Contract::default());
        for body in &bodies {
            if let Ok(outcome) = ingestor.ingest(black_box(body), RECEIVED_MS) {
                impressions += outcome.good.len() as u64 + outcome.bad.len() as u64;
            }
        }
    });
    let per_pass = impressions as f64 / PASSES as f64;
    let inflate = Passes::measure(|| {
        for body in &bodies {
            black_box(decoder.inflate(black_box(body)).ok());
        }
    });
    let decode = Passes::measure(|| {
        for raw in &raws {
            black_box(decoder.decode_raw(black_box(raw)).ok());
        }
    });
    let accept = Passes::measure(|| {
        let mut ingestor = Ingestor::new(Contract::default());
        for upload in &decoded {
            black_box(ingestor.accept_decoded(black_box(upload), RECEIVED_MS));
        }
    });

    let median = whole.median();
    println!("Collector ingest (decode + validate + dedup + normalise, no sink), one thread");
    println!(
        "   workload: {} batches, {:.0} impressions, {} compressed bytes per pass, {PASSES} passes",
        bodies.len(),
        per_pass,
        bytes
    );
    println!(
        "   median {:.2} M impressions/s (spread {:.2}..{:.2}), {:.1} ms per pass, {:.0} MB/s compressed",
        per_pass / median / 1e6,
        per_pass / whole.0[PASSES - 1] / 1e6,
        per_pass / whole.0[0] / 1e6,
        median * 1e3,
        bytes as f64 / median / 1e6,
    );
    whole.line("whole ingest", per_pass);
    inflate.line("inflate (gunzip)", per_pass);
    decode.line("protobuf decode + wire/header checks", per_pass);
    accept.line("contract + dedup + rows", per_pass);
    println!(
        "   goal >= {:.0} M impressions/s: {}",
        GOAL / 1e6,
        if per_pass / median >= GOAL {
            "met"
        } else {
            "NOT met"
        }
    );
}
