//! Collector restart: what a snapshot of the dedup state costs and saves, over an output of
//! real rows written through the `Ingestor` and NDJSON sink (sessions of one 1000-impression
//! batch each; the last 5% of them written after the snapshot). Prints figures; asserts
//! nothing.
//!
//! `cargo bench -p sightline-collector --bench restart [-- ROWS]` (default 3.6 M rows)

use std::time::Instant;

use sightline_collector::ingest::Ingestor;
use sightline_collector::sink::{NdjsonSink, Sink, replay};
use sightline_collector::snapshot;
use sightline_core::Contract;

/// The allocator of the collector binary, so the bench measures what it runs.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Receive time of the first batch (any fixed wall time).
const WALL: u64 = 1_767_225_600_000;
/// Impressions per batch: the SDK's default maximum.
const PER_BATCH: u32 = 1000;
/// Default output size: the figure the issue measured the full replay at.
const DEFAULT_ROWS: u64 = 3_600_000;
/// Share of sessions uploaded after the snapshot, in percent.
const TAIL_PCT: u64 = 5;

fn main() {
    let rows: u64 = std::env::args()
        .skip(1)
        .find_map(|a| a.parse().ok())
        .unwrap_or(DEFAULT_ROWS);
    let sessions = rows / u64::from(PER_BATCH);
    let snapshot_at = sessions - sessions * TAIL_PCT / 100;
    let dir = std::env::temp_dir().join(format!("sightline-bench-restart-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let mut sink = NdjsonSink::open(&dir).unwrap();
    let mut live = Ingestor::new(Contract::default());
    let mut batch = sightline_sim::batches::logged(PER_BATCH);
    let mut written = None;
    let started = Instant::now();
    for s in 0..sessions {
        if s == snapshot_at {
            let t = Instant::now();
            let w = snapshot::write(&dir, &live, &mut sink).unwrap();
            written = Some((w, t.elapsed().as_secs_f64()));
        }
        batch.session_id = format!("session-{s}");
        let out = live.accept(&batch, WALL + s);
        sink.write(&out.record(&batch, WALL + s), &out.good, &out.bad)
            .unwrap();
    }
    sink.sync().unwrap();
    let ingest_s = started.elapsed().as_secs_f64();
    drop(sink);
    let output_bytes: u64 = ["good", "bad", "batches"]
        .iter()
        .filter_map(|k| std::fs::read_dir(dir.join(k)).ok())
        .flatten()
        .filter_map(|e| e.ok()?.metadata().ok())
        .map(|m| m.len())
        .sum();

    NdjsonSink::open(&dir).unwrap();
    let t = Instant::now();
    let mut full = Ingestor::new(Contract::default());
    let all = replay(&dir, |item| full.restore(&item)).unwrap();
    let full_s = t.elapsed().as_secs_f64();
    let t = Instant::now();
    let mut restarted = Ingestor::new(Contract::default());
    let restored = snapshot::restore(&dir, &mut restarted).unwrap();
    let snap_s = t.elapsed().as_secs_f64();
    let _ = std::fs::remove_dir_all(&dir);

    let (w, write_s) = written.expect("the snapshot was taken");
    println!(
        "Collector restart over {} rows ({} sessions of {PER_BATCH}; {:.0} MB of NDJSON, written in {ingest_s:.1} s)",
        all.good,
        sessions,
        output_bytes as f64 / 1e6
    );
    println!(
        "   snapshot after {} rows: {:.1} MB, {} sessions, written (sync + serialise + fsync + rename) in {:.0} ms",
        snapshot_at * u64::from(PER_BATCH),
        w.bytes as f64 / 1e6,
        w.sessions,
        write_s * 1e3
    );
    println!(
        "   restart, full replay:          {full_s:.2} s ({} rows)",
        all.good + all.bad
    );
    println!(
        "   restart, snapshot + tail:      {snap_s:.2} s ({} rows replayed)",
        restored.replay.good + restored.replay.bad
    );
}
