//! Snapshots of the collector's dedup and loss state, so that a restart reads only the
//! output written since the last snapshot instead of the whole output directory (whose
//! replay grows with history: seconds per few million rows).
//!
//! A snapshot holds every session's [`SessionState`], least recently used first, and the
//! [`OutputPosition`] it covers (the length of every output file). It is taken between
//! uploads, after the output is synced, so it never claims a row a crash could take back,
//! and written atomically: a temporary file, fsynced, renamed over the last snapshot, then
//! the directory fsynced. A start-up uses it only when it is whole (its header states the
//! body's length and hash), of this [`SNAPSHOT_VERSION`], and the output still holds all it
//! covers; anything else falls back to the full replay, never to wrong state. Rows written
//! after it are replayed once, from the recorded lengths on.
//!
//! [`Snapshots`] owns the cadence: every [`SNAPSHOT_EVERY_ROWS`] rows written, at graceful
//! shutdown, and right after a start-up that had to replay that much.

use std::fs::{self, File};
use std::io::{self, BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::time::Instant;

use serde::ser::{Serialize, Serializer};
use sightline_core::rng::hash_bytes;

use crate::ingest::Ingestor;
use crate::session::SessionState;
use crate::sink::{OutputPosition, ReplayStats, Sink, replay, replay_from};

/// The snapshot, in the output directory next to `good/`, `bad/` and `batches/`.
pub const SNAPSHOT_FILE: &str = "snapshot.json";
/// Where a snapshot is written before it is renamed into place.
const TEMP_FILE: &str = "snapshot.json.tmp";
/// What the header's `format` says, so another file under the name is not taken for one.
const FORMAT: &str = "sightline-collector-snapshot";
/// Bumped whenever what a snapshot means changes (the session state's fields, the row
/// digest it holds): a snapshot of another version is not read, the output is replayed.
pub const SNAPSHOT_VERSION: u32 = 1;
/// Seed of the body's hash; any constant works, as only this module reads it.
const HASH_SEED: u64 = 0x534e_4150_5348_4f54;
/// Rows written between periodic snapshots: a restart replays at most this many beyond
/// the last one (about a quarter of a second), while writing one (proportional to the
/// dedup state, not to history) stays a small share of the time ingesting them took.
pub const SNAPSHOT_EVERY_ROWS: u64 = 250_000;

/// The first line of a snapshot file.
#[derive(Debug, serde::Serialize, serde::Deserialize)]
struct Header {
    format: String,
    version: u32,
    body_bytes: u64,
    body_hash: u64,
}

/// The body as written: borrowed from the ingestor, so a snapshot copies no state.
#[derive(serde::Serialize)]
struct BodyRef<'a> {
    covers: &'a OutputPosition,
    sessions: SessionsRef<'a>,
}

struct SessionsRef<'a>(&'a Ingestor);

impl Serialize for SessionsRef<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(self.0.sessions_by_use())
    }
}

/// The body as read back.
#[derive(serde::Deserialize)]
struct Body {
    covers: OutputPosition,
    sessions: Vec<(String, SessionState)>,
}

/// What writing a snapshot took.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Written {
    pub bytes: u64,
    pub sessions: u64,
}

/// How a start-up rebuilt the state.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Restored {
    /// Sessions taken from a snapshot; `None` when none was used.
    pub snapshot_sessions: Option<u64>,
    /// Why a snapshot that was there was not used.
    pub fallback: Option<String>,
    /// What was replayed: the output after the snapshot, or all of it.
    pub replay: ReplayStats,
}

/// Writes a snapshot of `ingestor` covering the output of `dir` as it is now. Call it
/// between uploads (every row `ingestor` accepted is written, none is being written):
/// `sink` is synced first, so the snapshot covers only durable rows.
pub fn write(dir: &Path, ingestor: &Ingestor, sink: &mut dyn Sink) -> io::Result<Written> {
    sink.sync()?;
    let covers = OutputPosition::of(dir)?;
    let body = serde_json::to_vec(&BodyRef {
        covers: &covers,
        sessions: SessionsRef(ingestor),
    })?;
    let header = serde_json::to_vec(&Header {
        format: FORMAT.to_string(),
        version: SNAPSHOT_VERSION,
        body_bytes: body.len() as u64,
        body_hash: hash_bytes(HASH_SEED, &body),
    })?;
    let temp = dir.join(TEMP_FILE);
    let mut file = File::create(&temp)?;
    file.write_all(&header)?;
    file.write_all(b"\n")?;
    file.write_all(&body)?;
    file.sync_all()?;
    drop(file);
    fs::rename(&temp, dir.join(SNAPSHOT_FILE))?;
    File::open(dir)?.sync_all()?;
    Ok(Written {
        bytes: (header.len() + 1 + body.len()) as u64,
        sessions: ingestor.sessions_by_use().count() as u64,
    })
}

/// The snapshot of `dir`: `Ok(None)` when there is none, `Err` with the reason when the
/// file is there but unusable (torn, corrupt, another version, unreadable).
fn read(dir: &Path) -> Result<Option<Body>, String> {
    let file = match File::open(dir.join(SNAPSHOT_FILE)) {
        Ok(file) => file,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(format!("unreadable: {e}")),
    };
    let mut reader = BufReader::new(file);
    let mut line = Vec::new();
    reader
        .read_until(b'\n', &mut line)
        .map_err(|e| format!("unreadable: {e}"))?;
    let header: Header =
        serde_json::from_slice(&line).map_err(|e| format!("no valid header: {e}"))?;
    if header.format != FORMAT || header.version != SNAPSHOT_VERSION {
        return Err(format!(
            "{} version {}, not {FORMAT} version {SNAPSHOT_VERSION}",
            header.format, header.version
        ));
    }
    let mut body = Vec::new();
    reader
        .read_to_end(&mut body)
        .map_err(|e| format!("unreadable: {e}"))?;
    if body.len() as u64 != header.body_bytes {
        return Err(format!(
            "torn: {} of {} body bytes",
            body.len(),
            header.body_bytes
        ));
    }
    if hash_bytes(HASH_SEED, &body) != header.body_hash {
        return Err("corrupt: the body does not match its hash".into());
    }
    serde_json::from_slice(&body)
        .map(Some)
        .map_err(|e| format!("corrupt: {e}"))
}

/// Rebuilds `ingestor` (a fresh one) from the snapshot of `dir` and the output written
/// after it, or from the whole output when there is no usable snapshot. Open the output
/// with [`crate::sink::NdjsonSink::open`] first (it cuts torn last lines).
pub fn restore(dir: &Path, ingestor: &mut Ingestor) -> io::Result<Restored> {
    let fallback = match read(dir) {
        Ok(None) => None,
        Ok(Some(body)) if body.covers.held_by(dir)? => {
            let sessions = body.sessions.len() as u64;
            for (id, state) in body.sessions {
                ingestor.import(id, state);
            }
            let replay = replay_from(dir, &body.covers, |item| ingestor.restore(&item))?;
            return Ok(Restored {
                snapshot_sessions: Some(sessions),
                fallback: None,
                replay,
            });
        }
        Ok(Some(_)) => Some("the output no longer holds all the snapshot covers".to_string()),
        Err(why) => Some(why),
    };
    let replay = replay(dir, |item| ingestor.restore(&item))?;
    Ok(Restored {
        snapshot_sessions: None,
        fallback,
        replay,
    })
}

/// When to snapshot an output directory: see the module doc.
#[derive(Debug)]
pub struct Snapshots {
    dir: PathBuf,
    every_rows: u64,
    rows_since: u64,
}

impl Snapshots {
    /// Restores `ingestor` (see [`restore`]) and logs how; snapshots at once when that
    /// replayed as many rows as a snapshot is due after, so the next start is quick even
    /// if this one is killed early.
    pub fn open(
        dir: &Path,
        ingestor: &mut Ingestor,
        sink: &mut dyn Sink,
    ) -> io::Result<(Snapshots, Restored)> {
        Snapshots::every(dir, SNAPSHOT_EVERY_ROWS, ingestor, sink)
    }

    /// [`Snapshots::open`] with a snapshot every `every_rows` rows.
    pub fn every(
        dir: &Path,
        every_rows: u64,
        ingestor: &mut Ingestor,
        sink: &mut dyn Sink,
    ) -> io::Result<(Snapshots, Restored)> {
        let started = Instant::now();
        let restored = restore(dir, ingestor)?;
        let r = &restored.replay;
        if let Some(why) = &restored.fallback {
            tracing::warn!(reason = %why, "snapshot not used: replaying the whole output");
        }
        tracing::info!(
            snapshot_sessions = restored.snapshot_sessions,
            replayed_good = r.good,
            replayed_bad = r.bad,
            replayed_batches = r.batches,
            ms = started.elapsed().as_millis() as u64,
            "restored dedup state"
        );
        let mut snapshots = Snapshots {
            dir: dir.to_path_buf(),
            every_rows,
            rows_since: r.good + r.bad,
        };
        snapshots.written(0, ingestor, sink);
        Ok((snapshots, restored))
    }

    /// Counts `rows` just written (stored uploads only) and snapshots when due. A failed
    /// snapshot is logged, not returned: the rows are stored, the last snapshot and the
    /// output still restore exactly, and the next try comes as many rows later.
    pub fn written(
        &mut self,
        rows: usize,
        ingestor: &Ingestor,
        sink: &mut dyn Sink,
    ) -> Option<Written> {
        self.rows_since += rows as u64;
        if self.rows_since < self.every_rows {
            return None;
        }
        self.rows_since = 0;
        match self.take(ingestor, sink) {
            Ok(written) => Some(written),
            Err(e) => {
                tracing::error!(error = %e, "snapshot failed");
                None
            }
        }
    }

    /// Snapshots now (graceful shutdown).
    pub fn take(&mut self, ingestor: &Ingestor, sink: &mut dyn Sink) -> io::Result<Written> {
        let started = Instant::now();
        let written = write(&self.dir, ingestor, sink)?;
        self.rows_since = 0;
        tracing::info!(
            bytes = written.bytes,
            sessions = written.sessions,
            ms = started.elapsed().as_millis() as u64,
            "snapshot written"
        );
        Ok(written)
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use sightline_core::{Contract, proto};

    use super::*;
    use crate::session::Reconciliation;
    use crate::sink::NdjsonSink;

    const WALL: u64 = 1_767_225_600_000;
    const HOUR_MS: u64 = 3_600_000;

    /// `template`'s impressions as seqs `first..` of `session`, counters to match.
    fn batch(template: &proto::Batch, session: &str, first: u64) -> proto::Batch {
        let mut b = template.clone();
        b.session_id = session.into();
        let cols = b.impressions.as_mut().unwrap();
        cols.first_seq = first;
        let last = first + u64::from(cols.count) - 1;
        b.counters = Some(proto::Counters {
            recorded: last,
            last_seq: last,
            ..Default::default()
        });
        b
    }

    /// A collector's output directory with its sink and ingestor.
    struct Output {
        dir: PathBuf,
        sink: NdjsonSink,
        ingestor: Ingestor,
    }

    impl Output {
        fn new(tag: &str) -> Output {
            let dir =
                std::env::temp_dir().join(format!("sightline-snap-{tag}-{}", std::process::id()));
            let _ = fs::remove_dir_all(&dir);
            Output {
                sink: NdjsonSink::open(&dir).unwrap(),
                dir,
                ingestor: Ingestor::new(Contract::default()),
            }
        }

        /// Ingests and stores `batch` as the server does; returns the rows written.
        fn upload(&mut self, batch: &proto::Batch, received: u64) -> usize {
            let out = self.ingestor.accept(batch, received);
            let record = out.record(batch, received);
            self.sink.write(&record, &out.good, &out.bad).unwrap();
            out.good.len() + out.bad.len()
        }

        fn snapshot(&mut self) -> Written {
            write(&self.dir, &self.ingestor, &mut self.sink).unwrap()
        }

        /// A restarted collector's state: the sink reopened, then [`restore`].
        fn restart(&self) -> (Ingestor, Restored) {
            NdjsonSink::open(&self.dir).unwrap();
            let mut ingestor = Ingestor::new(Contract::default());
            let restored = restore(&self.dir, &mut ingestor).unwrap();
            (ingestor, restored)
        }

        /// The state the full replay rebuilds, for comparison.
        fn full_replay(&self) -> Ingestor {
            let mut ingestor = Ingestor::new(Contract::default());
            replay(&self.dir, |item| ingestor.restore(&item)).unwrap();
            ingestor
        }

        fn snapshot_bytes(&self) -> Vec<u8> {
            fs::read(self.dir.join(SNAPSHOT_FILE)).unwrap()
        }
    }

    impl Drop for Output {
        fn drop(&mut self) {
            let _ = fs::remove_dir_all(&self.dir);
        }
    }

    fn accounting(ingestor: &Ingestor) -> BTreeMap<String, Reconciliation> {
        ingestor
            .sessions()
            .map(|(id, r)| (id.to_string(), r))
            .collect()
    }

    /// Three sessions of two batches of 4, the second of `b` with a contract-breaking
    /// impression and `a`'s first batch retried.
    fn history(out: &mut Output, t: &proto::Batch, from: u64) {
        for s in ["a", "b", "c"] {
            out.upload(&batch(t, s, from), WALL);
        }
        let mut broken = batch(t, "b", from + 4);
        broken.impressions.as_mut().unwrap().visible_ms = vec![1000, 10, 1000, 1000];
        out.upload(&broken, WALL + 1);
        out.upload(&batch(t, "a", from), WALL + 2);
    }

    #[test]
    fn a_restart_replays_only_what_was_written_after_the_snapshot_and_reconciles_as_a_full_replay()
    {
        let t = sightline_sim::batches::logged(4);
        let mut out = Output::new("tail");
        history(&mut out, &t, 1);
        out.snapshot();
        out.upload(&batch(&t, "a", 5), WALL + 3);
        out.upload(&batch(&t, "d", 1), WALL + 3);
        let (mut restarted, restored) = out.restart();
        assert_eq!(restored.snapshot_sessions, Some(3));
        assert_eq!(restored.fallback, None);
        assert_eq!(
            (
                restored.replay.good,
                restored.replay.bad,
                restored.replay.batches
            ),
            (8, 0, 2),
            "only the two uploads after the snapshot"
        );
        assert_eq!(accounting(&restarted), accounting(&out.ingestor));
        assert_eq!(accounting(&restarted), accounting(&out.full_replay()));
        // Dedup state came back: retries of rows before and after the snapshot are
        // duplicates, and a conflict is still told from a retry.
        for (s, first) in [("a", 1), ("a", 5), ("d", 1)] {
            assert_eq!(
                restarted.accept(&batch(&t, s, first), WALL + 4).duplicates,
                4
            );
        }
        let mut other = batch(&t, "b", 1);
        other.install_id = "another".into();
        assert_eq!(restarted.accept(&other, WALL + 4).conflicts, 4);
    }

    #[test]
    fn without_a_snapshot_a_restart_replays_the_whole_output() {
        let t = sightline_sim::batches::logged(4);
        let mut out = Output::new("none");
        history(&mut out, &t, 1);
        let (restarted, restored) = out.restart();
        assert_eq!(
            (restored.snapshot_sessions, restored.fallback),
            (None, None)
        );
        assert_eq!((restored.replay.good, restored.replay.bad), (15, 1));
        assert_eq!(accounting(&restarted), accounting(&out.ingestor));
    }

    #[test]
    fn a_torn_corrupt_foreign_or_other_version_snapshot_falls_back_to_a_full_replay() {
        let t = sightline_sim::batches::logged(4);
        let mut out = Output::new("bad");
        history(&mut out, &t, 1);
        out.snapshot();
        let whole = out.snapshot_bytes();
        let newline = whole.iter().position(|&b| b == b'\n').unwrap();
        let (header, body) = whole.split_at(newline + 1);
        let mut flipped = whole.clone();
        let last = flipped.len() - 2;
        flipped[last] ^= 0x01;
        let other_version = {
            let mut h: serde_json::Value = serde_json::from_slice(header).unwrap();
            h["version"] = (SNAPSHOT_VERSION + 1).into();
            let mut v = serde_json::to_vec(&h).unwrap();
            v.push(b'\n');
            v.extend_from_slice(body);
            v
        };
        let cases: [(&str, Vec<u8>, &str); 5] = [
            ("torn", whole[..whole.len() - 10].to_vec(), "torn"),
            ("flipped", flipped, "corrupt"),
            ("empty", Vec::new(), "header"),
            ("foreign", b"{\"some\":\"json\"}\n{}".to_vec(), "header"),
            ("other version", other_version, "version"),
        ];
        for (what, bytes, reason) in cases {
            fs::write(out.dir.join(SNAPSHOT_FILE), &bytes).unwrap();
            let (restarted, restored) = out.restart();
            assert_eq!(restored.snapshot_sessions, None, "{what}");
            let why = restored.fallback.unwrap_or_default();
            assert!(why.contains(reason), "{what}: {why}");
            assert_eq!(restored.replay.good, 15, "{what}: a full replay");
            assert_eq!(accounting(&restarted), accounting(&out.ingestor), "{what}");
        }
    }

    #[test]
    fn a_snapshot_covering_output_that_is_gone_falls_back_to_a_full_replay() {
        let t = sightline_sim::batches::logged(4);
        let mut out = Output::new("gone");
        history(&mut out, &t, 1);
        out.snapshot();
        let good = out.dir.join("good").join(crate::sink::file_name(WALL));
        let rows = fs::read(&good).unwrap();
        let first_line = rows.iter().position(|&b| b == b'\n').unwrap() + 1;
        fs::write(&good, &rows[first_line..]).unwrap();
        let (restarted, restored) = out.restart();
        assert_eq!(restored.snapshot_sessions, None);
        assert!(restored.fallback.unwrap().contains("no longer holds"));
        assert_eq!(restored.replay.good, 14, "what the output holds now");
        assert_eq!(accounting(&restarted), accounting(&out.full_replay()));
        fs::remove_file(&good).unwrap();
        assert_eq!(out.restart().1.snapshot_sessions, None);
    }

    #[test]
    fn rows_appended_to_an_earlier_hour_after_the_snapshot_are_replayed_once() {
        let t = sightline_sim::batches::logged(4);
        let mut out = Output::new("earlier");
        out.upload(&batch(&t, "a", 1), WALL);
        out.upload(&batch(&t, "a", 5), WALL + HOUR_MS);
        out.snapshot();
        // The server's clock was stepped back: the next upload lands in the first hour.
        out.upload(&batch(&t, "a", 9), WALL + 1);
        let (restarted, restored) = out.restart();
        assert_eq!(restored.snapshot_sessions, Some(1));
        assert_eq!((restored.replay.good, restored.replay.batches), (4, 1));
        assert_eq!(accounting(&restarted), accounting(&out.ingestor));
        assert_eq!(restarted.reconcile("a").unwrap().delivered, 12);
    }

    #[test]
    fn a_snapshot_is_taken_every_so_many_rows_and_after_a_start_that_replayed_as_many() {
        let t = sightline_sim::batches::logged(4);
        let mut out = Output::new("cadence");
        let Output {
            dir,
            sink,
            ingestor,
        } = &mut out;
        let (mut snapshots, _) = Snapshots::every(dir, 10, ingestor, sink).unwrap();
        let mut taken = Vec::new();
        for first in [1, 5, 9, 13, 17, 21] {
            let b = batch(&t, "a", first);
            let o = ingestor.accept(&b, WALL);
            sink.write(&o.record(&b, WALL), &o.good, &o.bad).unwrap();
            taken.push(snapshots.written(o.good.len(), ingestor, sink).is_some());
        }
        assert_eq!(taken, [false, false, true, false, false, true]);
        // 24 rows, 8 of them after the last snapshot: below the cadence, no snapshot.
        let before = out.snapshot_bytes();
        let (mut ingestor, mut sink) = (
            Ingestor::new(Contract::default()),
            NdjsonSink::open(&out.dir).unwrap(),
        );
        let (_, restored) = Snapshots::every(&out.dir, 10, &mut ingestor, &mut sink).unwrap();
        assert_eq!(restored.replay.good, 0, "nothing after the last snapshot");
        assert_eq!(out.snapshot_bytes(), before);
        // A start that replays the whole output (24 rows) snapshots at once.
        fs::remove_file(out.dir.join(SNAPSHOT_FILE)).unwrap();
        let mut ingestor = Ingestor::new(Contract::default());
        let (_, restored) = Snapshots::every(&out.dir, 10, &mut ingestor, &mut sink).unwrap();
        assert_eq!(restored.replay.good, 24);
        assert!(out.dir.join(SNAPSHOT_FILE).exists());
    }

    #[test]
    fn a_session_state_in_a_snapshot_is_the_live_one() {
        let t = sightline_sim::batches::logged(3);
        let mut out = Output::new("state");
        out.upload(&batch(&t, "a", 1), WALL);
        // Seqs 5..=7: a gap, so seqs are held above the mark too.
        out.upload(&batch(&t, "a", 5), WALL);
        let written = out.snapshot();
        assert_eq!(written.sessions, 1);
        assert_eq!(written.bytes, out.snapshot_bytes().len() as u64);
        let bytes = out.snapshot_bytes();
        let header_end = bytes.iter().position(|&b| b == b'\n').unwrap() + 1;
        let body: Body = serde_json::from_slice(&bytes[header_end..]).unwrap();
        let live: Vec<(String, SessionState)> = out
            .ingestor
            .sessions_by_use()
            .map(|(id, s)| (id.to_string(), s.clone()))
            .collect();
        assert_eq!(body.sessions, live);
        assert_eq!(body.covers, OutputPosition::of(&out.dir).unwrap());
    }
}
