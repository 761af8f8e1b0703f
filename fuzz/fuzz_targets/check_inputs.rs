//! The `check` CLI's readers (`check::check_files`): captured batches (`.pb.gz`, `.pb`)
//! and the collector's NDJSON rows (`.ndjson`, `.jsonl`). They only take paths, so each
//! input is a few files written to a directory of this process and checked in one run
//! (duplicates are looked for across files).
//!
//! Input: per file a kind byte (extension) and a byte string (see `sightline_fuzz::Reader`).
//! Asserts: nothing panics; every file is counted once; a batch that decodes counts its
//! impressions; the report's table renders.
#![no_main]

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use sightline_collector::check::check_files;
use sightline_core::{Contract, wire};
use sightline_fuzz::Reader;

const EXTENSIONS: [&str; 4] = ["pb.gz", "pb", "ndjson", "jsonl"];
/// Files per run: enough for duplicates across files.
const MAX_FILES: usize = 4;

/// This process's directory (libFuzzer's workers are processes: each has its own).
fn dir() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let dir = std::env::temp_dir().join(format!("sightline-fuzz-check-{}", std::process::id()));
        if let Err(e) = std::fs::create_dir_all(&dir) {
            panic!("cannot create {}: {e}", dir.display());
        }
        dir
    })
}

fuzz_target!(|data: &[u8]| {
    let mut r = Reader(data);
    let mut paths = Vec::new();
    let mut impressions = 0;
    let mut rows_possible = false;
    while !r.is_empty() && paths.len() < MAX_FILES {
        let ext = EXTENSIONS[usize::from(r.u8()) % EXTENSIONS.len()];
        let bytes = r.bytes();
        let path = dir().join(format!("{}.{ext}", paths.len()));
        if let Err(e) = std::fs::write(&path, bytes) {
            panic!("cannot write {}: {e}", path.display());
        }
        if matches!(ext, "ndjson" | "jsonl") {
            rows_possible = true;
        } else if !bytes.is_empty() {
            let decoded = if bytes.starts_with(&[0x1f, 0x8b]) {
                wire::decode_gzip_batch(bytes)
            } else {
                wire::decode_batch(bytes)
            };
            if let Ok(batch) = decoded {
                impressions += batch.impressions.map_or(0, |c| c.count as usize);
            }
        }
        paths.push(path);
    }
    let refs: Vec<&Path> = paths.iter().map(PathBuf::as_path).collect();
    let report = check_files(&Contract::default(), &refs);
    assert_eq!(report.files, paths.len(), "every file is counted once");
    if rows_possible {
        assert!(
            report.impressions >= impressions,
            "a decoded batch's impressions are counted"
        );
    } else {
        assert_eq!(
            report.impressions, impressions,
            "a decoded batch's impressions are counted"
        );
    }
    let table = report.table();
    assert!(
        table.contains("violation(s)"),
        "the table ends with its summary"
    );
});
