//! Where accepted rows go. The embedded default writes NDJSON in hourly files under the
//! output directory (`good/`, `bad/`, and `batches/` with each batch's counters), so the
//! directory alone can rebuild the collector's dedup and loss state after a restart
//! ([`replay`], which streams what it reads so memory follows the dedup state, not the
//! history; [`replay_from`] reads only what follows an [`OutputPosition`], the part of
//! the output a snapshot does not cover).
//! Micro mode keeps everything in memory instead. A Kafka sink would implement [`Sink`].

use std::collections::BTreeMap;
use std::fs::{self, File, OpenOptions};
use std::io::{self, BufRead, BufReader, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use sightline_core::civil::Utc;
use sightline_core::proto::Counters;

use crate::row::{BadRow, Row};
use crate::session::SEQ_CONFLICT;

/// One batch's facts, logged so loss accounting survives a collector restart.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct BatchRecord {
    pub session_id: String,
    pub batch_no: u64,
    pub received_ms: u64,
    pub counters: Counters,
    /// Impressions of the upload that were already received (files written before this
    /// field existed read as 0).
    #[serde(default)]
    pub duplicates: u64,
    /// The contract flagged the counters as inconsistent with the batch: they are kept
    /// for the record but must not drive loss accounting (older files read as false).
    #[serde(default)]
    pub counters_inconsistent: bool,
}

/// Destination of ingested rows.
pub trait Sink: Send {
    /// Persists the outcome of one upload before it is acknowledged.
    fn write(&mut self, batch: &BatchRecord, good: &[Row], bad: &[BadRow]) -> io::Result<()>;
    /// Makes everything written durable (rotation, shutdown).
    fn sync(&mut self) -> io::Result<()>;
}

/// Milliseconds in an hour: the file rotation period.
const HOUR_MS: u64 = 3_600_000;

/// NDJSON files, one per kind and hour: `<dir>/<kind>/<YYYY-MM-DDTHH>.ndjson`.
#[derive(Debug)]
pub struct NdjsonSink {
    dir: PathBuf,
    hour: Option<u64>,
    files: Vec<(&'static str, File)>,
}

const KINDS: [&str; 3] = ["good", "bad", "batches"];

impl NdjsonSink {
    /// A sink writing under `dir` (created if needed). A torn last line that a kill left
    /// in any existing file is cut, so the directory holds whole rows only.
    pub fn open(dir: &Path) -> io::Result<Self> {
        for kind in KINDS {
            fs::create_dir_all(dir.join(kind))?;
            for entry in fs::read_dir(dir.join(kind))? {
                let path = entry?.path();
                if path.extension().is_none_or(|e| e != "ndjson") {
                    continue;
                }
                open_for_append(&path)?;
            }
        }
        Ok(NdjsonSink {
            dir: dir.to_path_buf(),
            hour: None,
            files: Vec::new(),
        })
    }

    fn rotate(&mut self, now_ms: u64) -> io::Result<()> {
        let hour = now_ms / HOUR_MS;
        if self.hour == Some(hour) {
            return Ok(());
        }
        self.sync()?;
        self.files.clear();
        let name = file_name(now_ms);
        for kind in KINDS {
            let file = open_for_append(&self.dir.join(kind).join(&name))?;
            self.files.push((kind, file));
        }
        self.hour = Some(hour);
        Ok(())
    }

    fn append<T: serde::Serialize>(&mut self, kind: &str, items: &[T]) -> io::Result<()> {
        if items.is_empty() {
            return Ok(());
        }
        let mut buf = Vec::new();
        for item in items {
            serde_json::to_writer(&mut buf, item)?;
            buf.push(b'\n');
        }
        match self.files.iter_mut().find(|(k, _)| *k == kind) {
            // One write per kind and upload: a crash leaves whole lines or a torn last line.
            Some((_, file)) => file.write_all(&buf),
            None => Err(io::Error::other("sink file not open")),
        }
    }
}

/// Opens (creating) `path` for appending rows, after cutting a torn last line.
fn open_for_append(path: &Path) -> io::Result<File> {
    let mut file = OpenOptions::new()
        .create(true)
        .read(true)
        .append(true)
        .open(path)?;
    let cut = cut_torn_tail(&mut file)?;
    if cut > 0 {
        tracing::warn!(file = %path.display(), bytes = cut, "cut a torn last line");
    }
    Ok(file)
}

/// Bytes read per step when looking for the last newline of a file.
const TAIL_CHUNK: u64 = 4096;

/// A kill mid-write leaves a torn last line without its newline. Appending after it would
/// glue the next row onto the fragment and make both unreadable, so the fragment is cut
/// off: it was never acknowledged, and the SDK's retry brings its rows again. Returns the
/// bytes cut.
fn cut_torn_tail(file: &mut File) -> io::Result<u64> {
    let len = file.metadata()?.len();
    let mut end = len;
    let mut chunk = Vec::new();
    while end > 0 {
        let start = end.saturating_sub(TAIL_CHUNK);
        chunk.resize((end - start) as usize, 0);
        file.seek(SeekFrom::Start(start))?;
        file.read_exact(&mut chunk)?;
        if let Some(i) = chunk.iter().rposition(|&b| b == b'\n') {
            end = start + i as u64 + 1;
            break;
        }
        end = start;
    }
    if end < len {
        file.set_len(end)?;
    }
    Ok(len - end)
}

impl Sink for NdjsonSink {
    fn write(&mut self, batch: &BatchRecord, good: &[Row], bad: &[BadRow]) -> io::Result<()> {
        self.rotate(batch.received_ms)?;
        let before = self
            .files
            .iter()
            .map(|(_, f)| f.metadata().map(|m| m.len()))
            .collect::<io::Result<Vec<u64>>>()?;
        let result = (|| {
            // Rows before the batch record: a restart that finds the record finds its rows.
            self.append("good", good)?;
            self.append("bad", bad)?;
            self.append("batches", std::slice::from_ref(batch))
        })();
        if result.is_err() {
            // The upload is not acknowledged and comes again: take back what part of it was
            // written, so the retry neither duplicates rows nor glues onto a torn line.
            for ((_, file), len) in self.files.iter().zip(before) {
                let _ = file.set_len(len);
                // Best effort: earlier, acknowledged rows reach the disk before the handle
                // goes; the error that brought us here is the one reported.
                let _ = file.sync_all();
            }
            // And reopen next time, which also cuts a torn line the truncation could not.
            self.files.clear();
            self.hour = None;
        }
        result
    }

    fn sync(&mut self) -> io::Result<()> {
        for (_, file) in &self.files {
            file.sync_all()?;
        }
        Ok(())
    }
}

/// What restoring dedup state needs of one row on disk.
#[derive(Debug, Clone, PartialEq, Eq, serde::Deserialize)]
#[serde(from = "Line")]
pub struct StoredRow {
    pub session_id: String,
    pub seq: u64,
    pub received_ms: u64,
    /// [`Row::digest`] of the row's content, so a restarted collector still tells a
    /// retry from a conflict.
    pub digest: u64,
    /// A bad row written because its seq had arrived with other content: it counts as a
    /// conflict and must not take the first content's place.
    pub conflict: bool,
    /// Read from `bad/` (refused by the contract, or a conflict).
    pub bad: bool,
}

/// A line of `good/` or `bad/` as written.
#[derive(serde::Deserialize)]
struct Line {
    #[serde(default)]
    rules: Vec<String>,
    #[serde(flatten)]
    row: Row,
}

impl From<Line> for StoredRow {
    fn from(line: Line) -> Self {
        StoredRow {
            digest: line.row.digest(),
            conflict: line.rules.iter().any(|r| r == SEQ_CONFLICT),
            session_id: line.row.session_id.to_string(),
            seq: line.row.seq,
            received_ms: line.row.received_ms,
            // Set by the reader, which knows the directory.
            bad: false,
        }
    }
}

/// One item read back from an output directory.
#[derive(Debug, Clone, PartialEq)]
pub enum Stored {
    Row(StoredRow),
    Batch(BatchRecord),
}

/// What [`replay`] read.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct ReplayStats {
    pub good: u64,
    pub bad: u64,
    pub batches: u64,
    /// Lines that did not parse (a torn line, or bytes that are not a row at all).
    pub torn_lines: u64,
}

/// How much of an output directory something covers: the length of every output file, by
/// its path under the directory (`good/2026-01-01T00.ndjson`). Every file, not only each
/// kind's newest: a wall clock stepped back makes the sink append to an earlier hour's.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct OutputPosition {
    pub files: BTreeMap<String, u64>,
}

impl OutputPosition {
    /// The current length of every output file of `dir`.
    pub fn of(dir: &Path) -> io::Result<OutputPosition> {
        let mut files = BTreeMap::new();
        for kind in KINDS {
            for path in files_of(dir, kind)? {
                files.insert(under(kind, &path), fs::metadata(&path)?.len());
            }
        }
        Ok(OutputPosition { files })
    }

    /// Whether `dir` still holds all this covers: every file, at least as long. Output is
    /// only appended to, so anything else means the files were changed under it.
    pub fn held_by(&self, dir: &Path) -> io::Result<bool> {
        for (name, &len) in &self.files {
            match fs::metadata(dir.join(name)) {
                Ok(m) if m.len() >= len => {}
                Ok(_) => return Ok(false),
                Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(false),
                Err(e) => return Err(e),
            }
        }
        Ok(true)
    }

    /// Where reading `path` of `kind` starts: after what is covered (0 for a new file).
    fn start(&self, kind: &str, path: &Path) -> u64 {
        self.files.get(&under(kind, path)).copied().unwrap_or(0)
    }
}

/// `kind/name` of an output file.
fn under(kind: &str, path: &Path) -> String {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy())
        .unwrap_or_default();
    format!("{kind}/{name}")
}

/// Streams every NDJSON file of `dir` to `each`: the batch records, then good and bad
/// rows merged in arrival order (by receipt time, then seq), oldest hour first. Nothing is
/// held beyond the line being read. Lines that do not parse, including ones cut inside a
/// UTF-8 character, are counted as torn and skipped, never an error; only I/O fails.
///
/// Open the output with [`NdjsonSink::open`] first: it cuts torn last lines, and a row
/// replayed here must be a row that stays.
pub fn replay(dir: &Path, each: impl FnMut(Stored)) -> io::Result<ReplayStats> {
    replay_from(dir, &OutputPosition::default(), each)
}

/// [`replay`] of what `dir` holds beyond `covered`: each file from the length `covered`
/// records for it (a snapshot's position is taken between uploads, so at a line's start).
pub fn replay_from(
    dir: &Path,
    covered: &OutputPosition,
    mut each: impl FnMut(Stored),
) -> io::Result<ReplayStats> {
    let mut stats = ReplayStats::default();
    let mut torn = 0;
    for record in Parsed::<BatchRecord>::open(dir, "batches", covered)? {
        match record? {
            Some(b) => {
                stats.batches += 1;
                each(Stored::Batch(b));
            }
            None => torn += 1,
        }
    }
    let mut good = Rows::open(dir, "good", false, covered)?;
    let mut bad = Rows::open(dir, "bad", true, covered)?;
    loop {
        let key = |row: &Option<&io::Result<StoredRow>>| match row {
            Some(Ok(r)) => Some((r.received_ms, r.seq)),
            Some(Err(_)) => Some((0, 0)),
            None => None,
        };
        let take_bad = match (key(&good.peek(&mut torn)), key(&bad.peek(&mut torn))) {
            (None, None) => break,
            (Some(_), None) => false,
            (None, Some(_)) => true,
            (Some(g), Some(b)) => b < g,
        };
        let next = if take_bad { bad.next() } else { good.next() };
        if let Some(row) = next {
            let row = row?;
            if row.bad {
                stats.bad += 1;
            } else {
                stats.good += 1;
            }
            each(Stored::Row(row));
        }
    }
    stats.torn_lines = torn;
    Ok(stats)
}

/// The `*.ndjson` files of `dir/kind`, oldest hour first (none if the directory is absent).
fn files_of(dir: &Path, kind: &str) -> io::Result<Vec<PathBuf>> {
    let mut names: Vec<PathBuf> = match fs::read_dir(dir.join(kind)) {
        Ok(entries) => entries
            .map(|e| e.map(|e| e.path()))
            .collect::<io::Result<_>>()?,
        Err(e) if e.kind() == io::ErrorKind::NotFound => Vec::new(),
        Err(e) => return Err(e),
    };
    names.retain(|p| p.extension().is_some_and(|e| e == "ndjson"));
    names.sort();
    Ok(names)
}

/// The lines of a kind's files, each parsed as `T`: `Some` if it parses, `None` if not.
struct Parsed<T> {
    /// Each file with the offset reading starts at.
    files: std::vec::IntoIter<(PathBuf, u64)>,
    current: Option<BufReader<File>>,
    line: Vec<u8>,
    _of: std::marker::PhantomData<T>,
}

impl<T> Parsed<T> {
    fn open(dir: &Path, kind: &str, covered: &OutputPosition) -> io::Result<Self> {
        let files: Vec<(PathBuf, u64)> = files_of(dir, kind)?
            .into_iter()
            .map(|path| {
                let start = covered.start(kind, &path);
                (path, start)
            })
            .collect();
        Ok(Parsed {
            files: files.into_iter(),
            current: None,
            line: Vec::new(),
            _of: std::marker::PhantomData,
        })
    }
}

impl<T: serde::de::DeserializeOwned> Iterator for Parsed<T> {
    type Item = io::Result<Option<T>>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            let reader = match &mut self.current {
                Some(reader) => reader,
                None => {
                    let (path, start) = self.files.next()?;
                    match File::open(path)
                        .and_then(|mut f| f.seek(SeekFrom::Start(start)).map(|_| f))
                    {
                        Ok(file) => self.current.insert(BufReader::new(file)),
                        Err(e) => return Some(Err(e)),
                    }
                }
            };
            self.line.clear();
            match reader.read_until(b'\n', &mut self.line) {
                Ok(0) => self.current = None,
                Ok(_) => {
                    let line = self.line.strip_suffix(b"\n").unwrap_or(&self.line);
                    if line.iter().all(u8::is_ascii_whitespace) {
                        continue;
                    }
                    return Some(Ok(serde_json::from_slice(line).ok()));
                }
                Err(e) => return Some(Err(e)),
            }
        }
    }
}

/// The parsable rows of one kind, with one looked ahead for the merge.
struct Rows {
    lines: Parsed<StoredRow>,
    bad: bool,
    ahead: Option<io::Result<StoredRow>>,
}

impl Rows {
    fn open(dir: &Path, kind: &str, bad: bool, covered: &OutputPosition) -> io::Result<Rows> {
        Ok(Rows {
            lines: Parsed::open(dir, kind, covered)?,
            bad,
            ahead: None,
        })
    }

    /// The next row without taking it; unparsable lines on the way are counted in `torn`.
    fn peek(&mut self, torn: &mut u64) -> Option<&io::Result<StoredRow>> {
        while self.ahead.is_none() {
            match self.lines.next()? {
                Ok(Some(mut row)) => {
                    row.bad = self.bad;
                    self.ahead = Some(Ok(row));
                }
                Ok(None) => *torn += 1,
                Err(e) => self.ahead = Some(Err(e)),
            }
        }
        self.ahead.as_ref()
    }

    /// The row [`Rows::peek`] saw.
    fn next(&mut self) -> Option<io::Result<StoredRow>> {
        self.ahead.take()
    }
}

/// Everything in memory: the sink of micro mode and of tests.
#[derive(Debug, Default)]
pub struct MemorySink {
    pub good: Vec<Row>,
    pub bad: Vec<BadRow>,
    pub batches: Vec<BatchRecord>,
}

impl Sink for MemorySink {
    fn write(&mut self, batch: &BatchRecord, good: &[Row], bad: &[BadRow]) -> io::Result<()> {
        self.good.extend_from_slice(good);
        self.bad.extend_from_slice(bad);
        self.batches.push(batch.clone());
        Ok(())
    }

    fn sync(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// The file, in each kind's directory, that rows received at `received_ms` go to.
pub fn file_name(received_ms: u64) -> String {
    format!("{}.ndjson", hour_name(received_ms / HOUR_MS))
}

/// "YYYY-MM-DDTHH" (UTC) of an hour since the Unix epoch.
fn hour_name(hour: u64) -> String {
    let t = Utc::from_unix_ms(hour * HOUR_MS);
    format!("{:04}-{:02}-{:02}T{:02}", t.year, t.month, t.day, t.hour)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_torn_last_line_is_cut_before_appending() {
        let path =
            std::env::temp_dir().join(format!("sightline-torn-{}.ndjson", std::process::id()));
        let long_torn = format!("{{\"a\":1}}\n{}", "x".repeat(3 * TAIL_CHUNK as usize));
        for (before, after) in [
            ("{\"a\":1}\n{\"a\":2}\n{\"b\"", "{\"a\":1}\n{\"a\":2}\n"),
            ("{\"a\":1}\n", "{\"a\":1}\n"),
            ("no newline at all", ""),
            ("", ""),
            (long_torn.as_str(), "{\"a\":1}\n"),
        ] {
            fs::write(&path, before).unwrap();
            let mut file = OpenOptions::new()
                .read(true)
                .append(true)
                .open(&path)
                .unwrap();
            let cut = cut_torn_tail(&mut file).unwrap();
            file.write_all(b"{\"c\":3}\n").unwrap();
            assert_eq!(cut as usize, before.len() - after.len());
            assert_eq!(
                fs::read_to_string(&path).unwrap(),
                format!("{after}{{\"c\":3}}\n")
            );
        }
        let _ = fs::remove_file(&path);
    }

    #[test]
    fn replay_streams_rows_in_arrival_order_and_skips_unparsable_lines() {
        let dir = std::env::temp_dir().join(format!("sightline-replay-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        for kind in KINDS {
            fs::create_dir_all(dir.join(kind)).unwrap();
        }
        let row =
            |seq: u64, at: u64| serde_json::to_string(&crate::row::example("s", seq, at)).unwrap();
        let good = format!("{}\n{}\n{}\n", row(1, 10), row(3, 10), row(4, 20));
        let mut bad = format!("{}\n\n{}\n", row(2, 10), row(5, 30)).into_bytes();
        bad.extend_from_slice(b"{\"rules\":[],\"device\":\"caf\xc3\n");
        fs::write(dir.join("good/2026-01-01T00.ndjson"), good).unwrap();
        fs::write(dir.join("bad/2026-01-01T00.ndjson"), bad).unwrap();
        // A record written before `duplicates` and `counters_inconsistent` existed.
        let old = r#"{"session_id":"s","batch_no":0,"received_ms":10,"counters":{"recorded":3,"sampled_out":0,"deduped":0,"last_seq":3,"invalid":0,"dropped_overflow":0,"dropped_rejected":0,"dropped_too_large":0,"dropped_retries_exhausted":0,"dropped_purged":0,"dropped_store_error":0}}"#;
        fs::write(dir.join("batches/2026-01-01T00.ndjson"), format!("{old}\n")).unwrap();

        let mut seen = Vec::new();
        let stats = replay(&dir, |item| seen.push(item)).unwrap();
        let _ = fs::remove_dir_all(&dir);
        assert_eq!(
            stats,
            ReplayStats {
                good: 3,
                bad: 2,
                batches: 1,
                torn_lines: 1
            }
        );
        match &seen[0] {
            Stored::Batch(b) => assert_eq!((b.duplicates, b.counters_inconsistent), (0, false)),
            other => panic!("{other:?}"),
        }
        let rows: Vec<(u64, bool)> = seen[1..]
            .iter()
            .map(|item| match item {
                Stored::Row(r) => (r.seq, r.bad),
                other => panic!("{other:?}"),
            })
            .collect();
        assert_eq!(
            rows,
            [(1, false), (2, true), (3, false), (4, false), (5, true)]
        );
    }

    #[test]
    fn hourly_file_names_are_utc_calendar_hours() {
        assert_eq!(hour_name(0), "1970-01-01T00");
        // 2024-02-29 13:00 UTC is 1709211600 s.
        assert_eq!(hour_name(1_709_211_600 / 3600), "2024-02-29T13");
        assert_eq!(hour_name(1_767_225_600 / 3600 + 23), "2026-01-01T23");
    }
}
