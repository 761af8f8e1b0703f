//! A restart over a large output (a million rows, written through the real `Ingestor` and
//! NDJSON sink, not over HTTP): with a snapshot it replays only the rows written after it,
//! and serves the same per-session reconciliation as a full replay of the output.

use std::collections::BTreeMap;

use sightline_collector::ingest::Ingestor;
use sightline_collector::session::Reconciliation;
use sightline_collector::sink::{NdjsonSink, Sink, replay};
use sightline_collector::snapshot::{self, Restored};
use sightline_core::Contract;

const WALL: u64 = 1_767_225_600_000;
/// Impressions per batch: the SDK's default maximum.
const PER_BATCH: u32 = 1000;
/// Sessions, one batch each: a million rows.
const SESSIONS: u64 = 1000;
/// Of those, uploaded after the snapshot.
const AFTER_SNAPSHOT: u64 = 50;

fn accounting(ingestor: &Ingestor) -> BTreeMap<String, Reconciliation> {
    ingestor
        .sessions()
        .map(|(id, r)| (id.to_string(), r))
        .collect()
}

#[test]
fn a_restart_over_a_million_rows_replays_only_the_tail_after_the_snapshot() {
    let dir = std::env::temp_dir().join(format!("sightline-big-restart-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let mut sink = NdjsonSink::open(&dir).unwrap();
    let mut live = Ingestor::new(Contract::default());
    let mut batch = sightline_sim::batches::logged(PER_BATCH);
    for s in 0..SESSIONS {
        if s == SESSIONS - AFTER_SNAPSHOT {
            snapshot::write(&dir, &live, &mut sink).unwrap();
        }
        batch.session_id = format!("session-{s}");
        let out = live.accept(&batch, WALL + s);
        assert_eq!(out.good.len(), PER_BATCH as usize);
        sink.write(&out.record(&batch, WALL + s), &out.good, &out.bad)
            .unwrap();
    }
    drop(sink);

    NdjsonSink::open(&dir).unwrap();
    let mut restarted = Ingestor::new(Contract::default());
    let restored = snapshot::restore(&dir, &mut restarted).unwrap();
    let mut full = Ingestor::new(Contract::default());
    let everything = replay(&dir, |item| full.restore(&item)).unwrap();
    let _ = std::fs::remove_dir_all(&dir);

    assert_eq!(everything.good, SESSIONS * u64::from(PER_BATCH));
    let Restored {
        snapshot_sessions,
        fallback,
        replay: tail,
    } = restored;
    assert_eq!(fallback, None);
    assert_eq!(snapshot_sessions, Some(SESSIONS - AFTER_SNAPSHOT));
    assert_eq!(
        (tail.good, tail.bad, tail.batches),
        (AFTER_SNAPSHOT * u64::from(PER_BATCH), 0, AFTER_SNAPSHOT),
        "only the rows after the snapshot were replayed"
    );
    let restored = accounting(&restarted);
    assert_eq!(restored.len() as u64, SESSIONS);
    assert_eq!(restored, accounting(&full));
    assert_eq!(restored, accounting(&live));
}
