//! The Sightline demo: simulated TV, mobile and web sessions of the reference workload
//! driven through the real core, on virtual time, against a faulty network (lost requests
//! and acknowledgements, 503/429 with Retry-After, 413, permanent 4xx), with app crashes
//! and clock jumps. Prints what a person wants to know at a glance.
//!
//! `cargo run --release -p sightline-examples --bin demo [-- --pages N --seed S]`

use std::collections::BTreeMap;
use std::time::Instant;

use sightline_core::{Config, Stats};
use sightline_sim::collector::Collector;
use sightline_sim::harness::{DeviceReport, SimSpec, check, run_device};
use sightline_sim::workload::{Platform, WorkloadSpec, generate};

/// Share of installs sampled in: shows deterministic sampling at work.
const SAMPLE_RATE_PPM: u32 = 900_000;

#[derive(Default)]
struct Row {
    sessions: u64,
    restarts: u64,
    stats: Stats,
    violations: u64,
}

fn add(total: &mut Stats, s: &Stats) {
    total.recorded += s.recorded;
    total.sampled_out += s.sampled_out;
    total.deduped += s.deduped;
    total.issued += s.issued;
    total.delivered += s.delivered;
    total.invalid += s.invalid;
    total.uploads += s.uploads;
    total.retries += s.retries;
    total.bytes_delivered += s.bytes_delivered;
    let d = &mut total.dropped;
    d.overflow += s.dropped.overflow;
    d.rejected += s.dropped.rejected;
    d.too_large += s.dropped.too_large;
    d.retries_exhausted += s.dropped.retries_exhausted;
    d.purged += s.dropped.purged;
    d.store_corrupt += s.dropped.store_corrupt;
}

fn arg(name: &str, default: u64) -> u64 {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn main() {
    let spec = WorkloadSpec {
        seed: arg("--seed", 42),
        page_views: arg("--pages", 1000) as usize,
        ..WorkloadSpec::reference()
    };
    let started = Instant::now();
    let workload = generate(&spec);
    let config = Config {
        app_id: "com.example.streaming".into(),
        app_version: "7.4.1".into(),
        device: "demo-device".into(),
        app_key: "demo-key".into(),
        sample_rate_ppm: SAMPLE_RATE_PPM,
        ..Config::default()
    };
    let sim = SimSpec::hostile(config);
    let mut collector = Collector::default();
    let mut rows: BTreeMap<&str, Row> = BTreeMap::new();
    let mut failures: Vec<String> = Vec::new();
    let sessions = workload.by_session();
    for (i, pages) in sessions.iter().enumerate() {
        let report: DeviceReport =
            run_device(&sim, spec.seed ^ (i as u64 + 1), pages, &mut collector);
        let name = match pages[0].platform {
            Platform::Tv => "tv",
            Platform::Mobile => "mobile",
            Platform::Web => "web",
        };
        let row = rows.entry(name).or_default();
        row.sessions += 1;
        row.restarts += u64::from(report.restarts);
        row.violations += report.refused;
        add(&mut row.stats, &report.stats);
        if let Err(e) = check(&report, &collector) {
            failures.push(e);
        }
    }
    let elapsed = started.elapsed();

    println!(
        "Sightline demo: {} page views in {} sessions, hostile network, crashes, clock jumps",
        spec.page_views,
        sessions.len()
    );
    println!();
    println!(
        "{:<8} {:>8} {:>9} {:>9} {:>8} {:>8} {:>8} {:>8} {:>8} {:>8} {:>7} {:>8}",
        "platform",
        "sessions",
        "recorded",
        "delivered",
        "deduped",
        "sampled",
        "dropped",
        "uploads",
        "retries",
        "crashes",
        "B/imp",
        "refused"
    );
    let mut total = Row::default();
    for (name, r) in &rows {
        print_row(name, r);
        total.sessions += r.sessions;
        total.restarts += r.restarts;
        total.violations += r.violations;
        add(&mut total.stats, &r.stats);
    }
    print_row("total", &total);
    let d = &total.stats.dropped;
    println!();
    println!(
        "dropped by reason: rejected (4xx) {}, too large (413) {}, queue overflow {}, retries exhausted {}, corrupt {}, purged {}",
        d.rejected, d.too_large, d.overflow, d.retries_exhausted, d.store_corrupt, d.purged
    );
    println!(
        "collector: {} distinct impressions, {} duplicate receipts removed by (session, seq), {} bytes",
        collector.unique(),
        collector.duplicates(),
        collector.bytes
    );
    if failures.is_empty() {
        println!(
            "loss invariant: HELD for all {} sessions (recorded = delivered + sampled out + deduped + dropped by reason)",
            total.sessions
        );
    } else {
        println!(
            "loss invariant: BROKEN in {} sessions; first: {}",
            failures.len(),
            failures[0]
        );
    }
    println!("simulated in {:.1} s of real time", elapsed.as_secs_f64());
    if !failures.is_empty() {
        std::process::exit(1);
    }
}

fn print_row(name: &str, r: &Row) {
    let s = &r.stats;
    let per_imp = if s.delivered == 0 {
        0.0
    } else {
        s.bytes_delivered as f64 / s.delivered as f64
    };
    println!(
        "{:<8} {:>8} {:>9} {:>9} {:>8} {:>8} {:>8} {:>8} {:>8} {:>8} {:>7.2} {:>8}",
        name,
        r.sessions,
        s.recorded,
        s.delivered,
        s.deduped,
        s.sampled_out,
        s.dropped.total(),
        s.uploads,
        s.retries,
        r.restarts,
        per_imp,
        r.violations
    );
}
