//! Soak: the release collector under valid load alone, then under the same load while it is
//! attacked, side by side. 64 devices upload as fast as they are answered; the attack holds
//! 200 slow uploads (each trickling a byte a second into a 60 KB body), 2,000 idle
//! connections (reopened as the server closes them), and posts a crafted maximum-size
//! batch (8,192 impressions) every second. Prints valid uploads/s, their p50/p99 latency,
//! the slowest `/healthz`, and the collector's peak RSS next to its memory bound. Asserts
//! nothing.
//!
//! `cargo bench -p sightline-collector --bench soak` (`SOAK_SECONDS` sets each phase's
//! length, 20 by default).

#[path = "../tests/common/mod.rs"]
mod common;

use std::io::Write;
use std::net::TcpStream;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use common::*;
use sightline_collector::limits::Limits;
use sightline_core::UploadOutcome;

/// Devices uploading at once.
const CLIENTS: usize = 64;
/// Impressions per valid upload.
const PER_UPLOAD: u64 = 20;
/// Slow uploads held open by the attack, and the body each announces.
const SLOW_UPLOADS: usize = 200;
const SLOW_BODY_BYTES: usize = 60_000;
/// Idle connections held open by the attack.
const IDLE: usize = 2_000;
/// Impressions of the crafted batch posted every second: the most an upload may carry.
const CRAFTED_IMPRESSIONS: usize = 8_192;
/// How often `/healthz` is asked.
const HEALTH_EVERY: Duration = Duration::from_millis(50);

struct Figures {
    uploads: usize,
    refused: usize,
    p50: Duration,
    p99: Duration,
    health_max: Duration,
    peak_rss_kib: u64,
    crafted_answers: Vec<u16>,
}

fn main() {
    let seconds = std::env::var("SOAK_SECONDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(20);
    let phase = Duration::from_secs(seconds);
    // The attack's 2,000 idle sockets need more than the common 1,024 open files.
    let open_files = Limits::default().fit_open_files();
    let calm = run(phase, false);
    let attacked = run(phase, true);
    let bound = Limits::default().peak_memory_bytes() >> 20;
    println!(
        "soak: {seconds} s per phase, {CLIENTS} devices, {PER_UPLOAD} impressions per upload, bench open files {open_files:?}"
    );
    println!(
        "{:<34} {:>12} {:>12}",
        "figure", "no attack", "under attack"
    );
    let row = |name: &str, a: String, b: String| println!("{name:<34} {a:>12} {b:>12}");
    let per_s = |f: &Figures| format!("{:.0}", f.uploads as f64 / phase.as_secs_f64());
    row("valid uploads/s", per_s(&calm), per_s(&attacked));
    row(
        "valid uploads refused (503)",
        calm.refused.to_string(),
        attacked.refused.to_string(),
    );
    let ms = |d: Duration| format!("{:.1} ms", d.as_secs_f64() * 1e3);
    row("valid upload p50", ms(calm.p50), ms(attacked.p50));
    row("valid upload p99", ms(calm.p99), ms(attacked.p99));
    row("/healthz max", ms(calm.health_max), ms(attacked.health_max));
    let mib = |kib: u64| format!("{} MiB", kib >> 10);
    row(
        "peak RSS",
        mib(calm.peak_rss_kib),
        mib(attacked.peak_rss_kib),
    );
    println!("memory bound (Limits::peak_memory_bytes, defaults): {bound} MiB");
    println!("crafted batches answered: {:?}", attacked.crafted_answers);
}

fn run(phase: Duration, attack: bool) -> Figures {
    let dir = TempDir::new(if attack { "soak-attacked" } else { "soak-calm" });
    let c = Collector::start(&dir.path().join("out"), &Opts::files());
    let stop = AtomicBool::new(false);
    let crafted = crafted(CRAFTED_IMPRESSIONS);
    let figures = std::thread::scope(|s| {
        let c = &c;
        let stop = &stop;
        if attack {
            s.spawn(move || hold_slow_uploads(c, stop));
            s.spawn(move || hold_idle(c, stop));
        }
        let crafted_poster = attack.then(|| {
            let crafted = &crafted;
            s.spawn(move || {
                let mut answers = Vec::new();
                while !stop.load(Ordering::Relaxed) {
                    answers.push(c.try_post_batch(crafted).map_or(0, |r| r.status));
                    std::thread::sleep(Duration::from_secs(1));
                }
                answers
            })
        });
        let health = s.spawn(move || {
            let mut worst = Duration::ZERO;
            while !stop.load(Ordering::Relaxed) {
                let asked = Instant::now();
                assert_eq!(c.get("/healthz").status, 200);
                worst = worst.max(asked.elapsed());
                std::thread::sleep(HEALTH_EVERY);
            }
            worst
        });
        let clients: Vec<_> = (0..CLIENTS)
            .map(|i| {
                s.spawn(move || {
                    let mut d = Device::new(&format!("soak-{attack}-{i}"));
                    let mut latencies = Vec::new();
                    let mut refused = 0;
                    while !stop.load(Ordering::Relaxed) {
                        d.page_view(PER_UPLOAD);
                        d.flush();
                        let Some(upload) = d.poll() else { continue };
                        let sent = Instant::now();
                        let reply = c.post_upload(&upload);
                        match reply.status {
                            200 => latencies.push(sent.elapsed()),
                            503 => refused += 1,
                            other => panic!("valid upload answered {other}: {}", reply.body),
                        }
                        let outcome = UploadOutcome::Status {
                            code: reply.status,
                            retry_after: reply.retry_after.clone(),
                        };
                        d.settle_one(&upload, outcome);
                        // Past any backoff a refusal set: the device's clock is virtual.
                        d.advance(60_000);
                    }
                    (latencies, refused)
                })
            })
            .collect();
        std::thread::sleep(phase);
        let peak_rss_kib = peak_rss_kib(c.pid());
        stop.store(true, Ordering::Relaxed);
        let mut latencies = Vec::new();
        let mut refused = 0;
        for client in clients {
            let (l, r) = client.join().expect("client");
            latencies.extend(l);
            refused += r;
        }
        latencies.sort();
        let at = |q: f64| {
            latencies
                .get(((latencies.len() as f64 * q) as usize).min(latencies.len().saturating_sub(1)))
                .copied()
                .unwrap_or_default()
        };
        Figures {
            uploads: latencies.len(),
            refused,
            p50: at(0.50),
            p99: at(0.99),
            health_max: health.join().expect("health"),
            peak_rss_kib,
            crafted_answers: crafted_poster
                .map(|p| p.join().expect("crafted"))
                .unwrap_or_default(),
        }
    });
    drop(c);
    figures
}

/// Holds [`SLOW_UPLOADS`] uploads open, a byte a second, reopening those the server ends.
fn hold_slow_uploads(c: &Collector, stop: &AtomicBool) {
    let open = |_| {
        let mut s = connect(c);
        s.write_all(upload_head(SLOW_BODY_BYTES).as_bytes()).ok()?;
        Some(s)
    };
    let mut slow: Vec<Option<TcpStream>> = (0..SLOW_UPLOADS).map(open).collect();
    while !stop.load(Ordering::Relaxed) {
        for s in slow.iter_mut() {
            if s.as_mut().is_none_or(|s| s.write_all(b"x").is_err()) {
                *s = open(0);
            }
        }
        std::thread::sleep(Duration::from_secs(1));
    }
}

/// Holds [`IDLE`] connections open that never send a byte, reopening them every second
/// (the server closes them at its header timeout).
fn hold_idle(c: &Collector, stop: &AtomicBool) {
    let mut idle: Vec<TcpStream> = Vec::with_capacity(IDLE);
    while !stop.load(Ordering::Relaxed) {
        idle.retain(|s| {
            let _ = s.set_nonblocking(true);
            let mut probe = [0u8; 1];
            // Still open while a read would block; closed (0 or an error) otherwise.
            matches!(s.peek(&mut probe), Err(e) if e.kind() == std::io::ErrorKind::WouldBlock)
        });
        while idle.len() < IDLE {
            let addr = c.url.trim_start_matches("http://");
            match TcpStream::connect(addr) {
                Ok(s) => idle.push(s),
                Err(_) => break,
            }
        }
        std::thread::sleep(Duration::from_secs(1));
    }
}

/// The process's peak resident set (VmHWM), in KiB.
fn peak_rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("VmHWM:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        })
        .unwrap_or(0)
}
