//! Where accepted rows go. The embedded default writes NDJSON in hourly files under the
//! output directory (`good/`, `bad/`, and `batches/` with each batch's counters), so the
//! directory alone can rebuild the collector's dedup and loss state after a restart.
//! Micro mode keeps everything in memory instead. A Kafka sink would implement [`Sink`].

use std::fs::{self, File, OpenOptions};
use std::io::{self, BufRead, BufReader, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use sightline_core::civil::Utc;
use sightline_core::proto::Counters;

use crate::row::{BadRow, Row};

/// One batch's facts, logged so loss accounting survives a collector restart.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct BatchRecord {
    pub session_id: String,
    pub batch_no: u64,
    pub received_ms: u64,
    pub counters: Counters,
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

/// What an output directory holds, read back at start-up.
#[derive(Debug, Default)]
pub struct Replay {
    pub good: Vec<Row>,
    pub bad: Vec<BadRow>,
    pub batches: Vec<BatchRecord>,
    /// Lines that did not parse (a torn last line after a kill).
    pub torn_lines: u64,
}

/// Reads every NDJSON file of `dir`, oldest hour first.
pub fn replay(dir: &Path) -> io::Result<Replay> {
    let mut out = Replay::default();
    for kind in KINDS {
        let path = dir.join(kind);
        let mut names: Vec<PathBuf> = match fs::read_dir(&path) {
            Ok(entries) => entries.filter_map(|e| e.ok().map(|e| e.path())).collect(),
            Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
            Err(e) => return Err(e),
        };
        names.sort();
        for name in names
            .into_iter()
            .filter(|p| p.extension().is_some_and(|e| e == "ndjson"))
        {
            for line in BufReader::new(File::open(&name)?).lines() {
                let line = line?;
                let parsed = match kind {
                    "good" => serde_json::from_str(&line).map(|r| out.good.push(r)),
                    "bad" => serde_json::from_str(&line).map(|r| out.bad.push(r)),
                    _ => serde_json::from_str(&line).map(|r| out.batches.push(r)),
                };
                if parsed.is_err() {
                    out.torn_lines += 1;
                }
            }
        }
    }
    Ok(out)
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
    fn hourly_file_names_are_utc_calendar_hours() {
        assert_eq!(hour_name(0), "1970-01-01T00");
        // 2024-02-29 13:00 UTC is 1709211600 s.
        assert_eq!(hour_name(1_709_211_600 / 3600), "2024-02-29T13");
        assert_eq!(hour_name(1_767_225_600 / 3600 + 23), "2026-01-01T23");
    }
}
