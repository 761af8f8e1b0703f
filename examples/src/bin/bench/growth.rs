//! F. Sightline's record cost as ids grow: the same page views and visible times with item
//! and artwork ids of 8 to 64 bytes.

use sightline_sim::workload::Workload;

use super::ids::{IdShape, reshape};
use super::peers::{Recorder, Sightline, race};
use super::{bench_pages, met, summarise, thousands};

/// The id lengths compared; the 36-byte ids are UUIDs, the others random hex.
const SHAPES: [IdShape; 4] = [
    IdShape::Hex(8),
    IdShape::Hex(16),
    IdShape::Uuid,
    IdShape::Hex(64),
];
/// Page views timed per id length (about 100,000 impressions), and untimed before.
const PAGES: usize = 1_042;
const WARMUP_PAGES: usize = 104;
/// The design's target: cost with 64-byte ids over cost with 8-byte ids.
const TARGET_GROWTH: f64 = 1.5;

pub fn section(workload: &Workload) {
    let workloads: Vec<Workload> = SHAPES.iter().map(|&s| reshape(workload, s)).collect();
    let pages: Vec<_> = workloads
        .iter()
        .map(|w| bench_pages(w, WARMUP_PAGES + PAGES))
        .collect();
    let mut loggers: Vec<Sightline<'_, '_>> = pages.iter().map(|p| Sightline::new(p)).collect();
    let mut recorders: Vec<&mut dyn Recorder> =
        loggers.iter_mut().map(|l| l as &mut dyn Recorder).collect();
    let summaries: Vec<_> = race(&mut recorders, WARMUP_PAGES, PAGES)
        .iter()
        .map(|b| summarise(b))
        .collect();
    println!();
    println!(
        "F. Record cost by id length (item and artwork ids; target 64 B / 8 B <= {TARGET_GROWTH}x)"
    );
    println!(
        "   {:<36} {:>8} {:>8} {:>8} {:>8}",
        "ids", "records", "ns p50", "ns p99", "vs 8 B"
    );
    let base = summaries[0].median_ns;
    for (shape, s) in SHAPES.iter().zip(&summaries) {
        println!(
            "   {:<36} {:>8} {:>8.1} {:>8.1} {:>7.2}x",
            shape.label(),
            thousands(s.ops),
            s.median_ns,
            s.p99_ns,
            s.median_ns / base
        );
    }
    let growth = summaries[SHAPES.len() - 1].median_ns / base;
    let not_logged: u64 = summaries.iter().map(|s| s.not_logged).sum();
    println!(
        "   ns: per call over blocks of one page view, as in E (loggers in turn, same rounds); impressions not logged: {not_logged}"
    );
    println!(
        "   64 B / 8 B: {growth:.2}x; target <= {TARGET_GROWTH}x: {}",
        met(growth <= TARGET_GROWTH)
    );
}
