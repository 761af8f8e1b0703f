//! Collector ingest throughput: decode + validate + dedup (no sink), on one core, over
//! the reference workload's batches as the SDK sends them. Prints figures; asserts nothing.
//!
//! `cargo bench -p sightline-collector --bench ingest`

use std::hint::black_box;
use std::time::Instant;

use sightline_collector::ingest::Ingestor;
use sightline_core::{Config, Contract};
use sightline_sim::collector::Collector;
use sightline_sim::harness::{SimSpec, run_device};
use sightline_sim::network::Faults;
use sightline_sim::workload::{WorkloadSpec, generate};

/// Passes over the workload; each pass uses a fresh ingestor so every seq is new.
const PASSES: usize = 20;
/// Receive time of every batch (any fixed wall time).
const RECEIVED_MS: u64 = 1_767_225_600_000;

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
    let spec = SimSpec {
        faults: Faults::none(),
        crash_per_page: 0.0,
        clock_jump_per_page: 0.0,
        ..SimSpec::hostile(config)
    };
    let mut collector = Collector {
        keep_bodies: true,
        ..Collector::default()
    };
    for (i, pages) in workload.by_session().iter().enumerate() {
        run_device(&spec, i as u64, pages, &mut collector);
    }
    let bodies = collector.bodies;
    let bytes: usize = bodies.iter().map(Vec::len).sum();

    let mut impressions = 0u64;
    let mut times = Vec::with_capacity(PASSES);
    for _ in 0..PASSES {
        let mut ingestor = Ingestor::new(Contract::default());
        let started = Instant::now();
        for body in &bodies {
            if let Ok(outcome) = ingestor.ingest(black_box(body), RECEIVED_MS) {
                impressions += outcome.good.len() as u64 + outcome.bad.len() as u64;
            }
        }
        times.push(started.elapsed().as_secs_f64());
    }
    times.sort_by(f64::total_cmp);
    let per_pass = impressions as f64 / PASSES as f64;
    let median = times[PASSES / 2];
    println!("Collector ingest (decode + validate + dedup + normalise, no sink), one thread");
    println!(
        "   workload: {} batches, {:.0} impressions, {} compressed bytes per pass",
        bodies.len(),
        per_pass,
        bytes
    );
    println!(
        "   median pass {:.1} ms -> {:.2} M impressions/s, {:.0} MB/s compressed (best {:.2} M/s, worst {:.2} M/s)",
        median * 1e3,
        per_pass / median / 1e6,
        bytes as f64 / median / 1e6,
        per_pass / times[0] / 1e6,
        per_pass / times[PASSES - 1] / 1e6,
    );
    println!(
        "   target >= 1 M impressions/s: {}",
        if per_pass / median >= 1e6 {
            "met"
        } else {
            "NOT met"
        }
    );
}
