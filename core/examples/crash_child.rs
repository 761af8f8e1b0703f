//! The victim of the kill -9 test (core/tests/crash_kill9.rs): a process that logs
//! impressions into a [`FileStore`] as fast as it can and reports each one the logger has
//! accepted, so a parent can kill it at any instant and check that nothing it was told
//! about is lost.
//!
//! It runs the sans-IO [`Logger`] directly with fake time and never uploads. After every
//! `record_impression` that returned `Logged { seq }` it writes `DURABLE <seq> <item id>`
//! to stdout and flushes; the logger has journaled the impression by then, so the line
//! is a promise that survives the process. Every [`FLUSH_EVERY`] records it closes the
//! batch, so kills land in every phase: journal appends, batch writes, checkpoints.
//!
//! Run by hand: `cargo run -p sightline-core --example crash_child -- <dir> <round>`, and
//! kill it whenever you like. The test reuses [`run`] by including this file, and runs it
//! in a re-execution of its own test binary, so it needs no separate build step.
#![cfg_attr(not(feature = "std"), allow(dead_code))]

#[cfg(feature = "std")]
use std::io::{self, Write};
#[cfg(feature = "std")]
use std::path::Path;

#[cfg(feature = "std")]
use sightline_core::runtime::FileStore;
#[cfg(feature = "std")]
use sightline_core::{Config, Impression, Logger, Now, Recorded};

/// Records between explicit flushes (each closes a batch and checkpoints).
pub const FLUSH_EVERY: u64 = 50;
/// Records per page view; a new one starts after this many.
pub const PAGE_VIEW_EVERY: u64 = 120;
/// A child nobody kills stops on its own after this many records.
pub const MAX_RECORDS: u64 = 100_000;
/// Store quota: far more than a run writes, so the quota never refuses a write.
pub const QUOTA_BYTES: u64 = 256 * 1024 * 1024;
/// Fake monotonic time at process start: each process starts its own monotonic clock.
pub const START_MONO_MS: u64 = 5_000;
/// Fake time between two records: more than the one second an impression lasts.
pub const STEP_MS: u64 = 1_100;
/// Wall clock of round zero (2024-01-01); later rounds start later.
pub const WALL_BASE_MS: u64 = 1_704_067_200_000;
/// Wall-clock distance between rounds: more than a round's fake time.
pub const ROUND_WALL_MS: u64 = 1_000_000_000;

/// The configuration every round and the final check use: the same store, the same session.
#[cfg(feature = "std")]
pub fn config() -> Config {
    Config {
        app_id: "crash.child".into(),
        app_version: "1.0.0".into(),
        app_key: "key-crash".into(),
        seed: 0x5eed,
        // Small batches, so batch writes and checkpoints happen often.
        max_batch_impressions: 32,
        ..Config::default()
    }
}

/// The item id of record `k` of `round`: unique across rounds, so a reused seq would show
/// up as one seq with two contents.
pub fn item_id(round: u32, k: u64) -> String {
    format!("title:r{round}-{k}")
}

/// Logs impressions into the store in `dir` until killed (or [`MAX_RECORDS`]), writing
/// `SESSION <session id> <last seq before this run>` first and then one `DURABLE` line per
/// accepted impression. Returns an error, without a `DURABLE` line, for anything
/// unexpected, including a store error that would make the promise false.
#[cfg(feature = "std")]
pub fn run(dir: &Path, round: u32, out: &mut impl Write) -> io::Result<()> {
    let wall_base = WALL_BASE_MS + u64::from(round) * ROUND_WALL_MS;
    let at = |mono: u64| Now::new(mono, wall_base + mono);
    let mut store = FileStore::open(dir, QUOTA_BYTES).map_err(io::Error::other)?;
    let mut mono = START_MONO_MS;
    let mut logger = Logger::start(config(), &mut store, at(mono)).map_err(io::Error::other)?;
    // The leading newline keeps the first line whole after a test harness's own prefix.
    writeln!(
        out,
        "\nSESSION {} {}",
        logger.session_id(),
        logger.stats().issued
    )?;
    out.flush()?;
    let store_errors = logger.stats().store_errors;
    let mut page_view = None;
    for k in 0..MAX_RECORDS {
        if k % PAGE_VIEW_EVERY == 0 {
            if let Some(old) = page_view {
                logger
                    .end_page_view(old, at(mono))
                    .map_err(io::Error::other)?;
            }
            page_view = Some(
                logger
                    .start_page_view("home", None, None, at(mono))
                    .map_err(io::Error::other)?,
            );
        }
        mono += STEP_MS;
        let item = item_id(round, k);
        let imp = Impression {
            item_id: &item,
            artwork_id: None,
            row: (k / 100 % 100) as u32,
            column: (k % 100) as u32,
            first_visible_mono_ms: mono - 1_000,
            visible_ms: 1_000,
            max_visible_fraction: 1.0,
            focused_ms: 0,
        };
        let pv = page_view.unwrap_or_default();
        let seq = match logger.record_impression(pv, &imp, at(mono)) {
            Ok(Recorded::Logged { seq }) => seq,
            other => return Err(io::Error::other(format!("record {k}: {other:?}"))),
        };
        // Journaled before it is promised.
        logger.perform_store_ops(&mut store);
        if logger.stats().store_errors != store_errors {
            return Err(io::Error::other(format!("store error at seq {seq}")));
        }
        writeln!(out, "DURABLE {seq} {item}")?;
        out.flush()?;
        if k % FLUSH_EVERY == FLUSH_EVERY - 1 {
            logger.flush(at(mono));
            logger.perform_store_ops(&mut store);
        }
    }
    Ok(())
}

#[cfg(feature = "std")]
fn main() {
    let mut args = std::env::args().skip(1);
    let (Some(dir), round) = (args.next(), args.next()) else {
        eprintln!("usage: crash_child <dir> [round]");
        std::process::exit(2);
    };
    let round = round.and_then(|r| r.parse().ok()).unwrap_or(0);
    let stdout = io::stdout();
    if let Err(e) = run(Path::new(&dir), round, &mut stdout.lock()) {
        eprintln!("crash_child: {e}");
        std::process::exit(1);
    }
}

/// Without the runtime there is no file store to crash.
#[cfg(not(feature = "std"))]
fn main() {}
