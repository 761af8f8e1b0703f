//! The Sightline demo, end to end over real HTTP on one machine.
//!
//! Starts the reference collector in process on a loopback port (NDJSON output in a fresh
//! temp directory), then plays the sessions of the seeded reference workload on simulated
//! TV, mobile and web devices, several at once: each device runs the std runtime (a
//! `Driver` thread, a `FileStore`, the ureq `HttpTransport`) on a clock running
//! [`device::SPEEDUP`] times faster than real time. Midway the collector answers 503, then
//! 429, with Retry-After for a while, and is restarted once over the same output. The end
//! is a table per platform and an exact check of the loss accounting of every session
//! against the rows the collector wrote; the exit status is 1 if it does not reconcile.
//!
//! `cargo run --release -p sightline-examples --bin demo [-- --pages N --seed S --keep]`
//!
//! `--keep` leaves the temp directory (collector output, device stores) for inspection.

mod collector;
mod device;
mod progress;
mod report;

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::thread;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use sightline_sim::workload::{WorkloadSpec, generate};

use crate::collector::Collector;
use crate::device::{DeviceRun, Fleet, SPEEDUP};
use crate::progress::Progress;

/// Page views played: 33 sessions, about 40 s of wall time.
const DEFAULT_PAGES: usize = 300;
/// Reference workload seed.
const DEFAULT_SEED: u64 = 42;
/// How often the progress bar is redrawn and the fault schedule consulted.
const TICK: Duration = Duration::from_millis(100);
/// How long the collector stays down when restarted: about 40 s of device time.
const DOWNTIME: Duration = Duration::from_millis(1500);

/// What the collector does to the devices.
#[derive(Clone, Copy, Debug)]
enum Fault {
    /// Every upload is answered `status` with `Retry-After` in seconds. Devices read it on
    /// their fast clock, so 20 s there is 0.8 s here.
    Refuse { status: u16, retry_after_s: u64 },
    /// Uploads are stored but their acknowledgements lost, so devices resend.
    LoseAcks,
    /// Uploads are accepted again.
    Heal,
    /// Stop, stay down for [`DOWNTIME`], start again over the same output.
    Restart,
}

/// The faults, each at a share of the pages played: a 503 storm, a 429 storm, lost
/// acknowledgements, a restart.
const SCHEDULE: [(f64, Fault); 7] = [
    (
        0.15,
        Fault::Refuse {
            status: 503,
            retry_after_s: 5,
        },
    ),
    (0.25, Fault::Heal),
    (
        0.40,
        Fault::Refuse {
            status: 429,
            retry_after_s: 20,
        },
    ),
    (0.50, Fault::Heal),
    (0.55, Fault::LoseAcks),
    (0.60, Fault::Heal),
    (0.70, Fault::Restart),
];

struct Options {
    pages: usize,
    seed: u64,
    keep: bool,
}

impl Options {
    fn parse() -> Result<Options, String> {
        let mut options = Options {
            pages: DEFAULT_PAGES,
            seed: DEFAULT_SEED,
            keep: false,
        };
        let mut args = std::env::args().skip(1);
        while let Some(arg) = args.next() {
            let mut number = |name: &str| {
                args.next()
                    .and_then(|v| v.parse::<u64>().ok())
                    .ok_or(format!("{name} needs a number"))
            };
            match arg.as_str() {
                "--pages" => options.pages = number("--pages")? as usize,
                "--seed" => options.seed = number("--seed")?,
                "--keep" => options.keep = true,
                other => return Err(format!("unknown option {other}")),
            }
        }
        Ok(options)
    }
}

fn main() -> ExitCode {
    let options = match Options::parse() {
        Ok(options) => options,
        Err(e) => {
            eprintln!("{e}\nusage: demo [--pages N] [--seed S] [--keep]");
            return ExitCode::from(2);
        }
    };
    let started = Instant::now();
    let root = temp_root();
    let out_dir = root.join("collector");
    let mut collector = Collector::start(&out_dir);
    let workload = generate(&WorkloadSpec {
        seed: options.seed,
        page_views: options.pages,
        ..WorkloadSpec::reference()
    });
    let sessions = workload.by_session();
    println!(
        "Sightline demo: {} page views in {} sessions on simulated TV, mobile and web devices, \
         {SPEEDUP}x real time",
        options.pages,
        sessions.len()
    );
    println!(
        "collector: http://{} (in process), NDJSON output in {}",
        collector.addr(),
        out_dir.display()
    );
    let pages_done = AtomicUsize::new(0);
    let fleet = Fleet {
        sessions: &sessions,
        seed: options.seed,
        stores: root.join("devices"),
        url: collector.url(),
        pages_done: &pages_done,
    };
    let runs = run(&fleet, &mut collector, options.pages, started);
    let mut problems: Vec<String> = Vec::new();
    println!();
    match collector.stop() {
        Ok(c) => println!(
            "collector: {} batches accepted, {} uploads refused by the injected faults, {} \
             impressions received again and dropped as duplicates by (session, seq)",
            c.batches, c.injected_faults, c.dedup_hits
        ),
        Err(e) => problems.push(format!("stopping the collector: {e}")),
    }
    println!();
    let reconciled = summarize(&out_dir, &runs, &mut problems);
    println!("wall time: {:.1} s", started.elapsed().as_secs_f64());
    clean_up(&root, options.keep);
    match reconciled && problems.is_empty() {
        true => ExitCode::SUCCESS,
        false => ExitCode::FAILURE,
    }
}

/// Plays every session while the main thread shows progress and injects the faults, each
/// reported once, when it is injected.
fn run(fleet: &Fleet, collector: &mut Collector, pages: usize, started: Instant) -> Vec<DeviceRun> {
    let mut state = Fault::Heal.state();
    let mut progress = Progress::new(pages, started, &state);
    let runs = thread::scope(|s| {
        let devices = s.spawn(|| device::run_all(fleet));
        let mut next = SCHEDULE.iter().peekable();
        while !devices.is_finished() {
            let done = fleet.pages_done.load(Ordering::Relaxed);
            while let Some((_, fault)) =
                next.next_if(|(share, _)| done as f64 >= share * pages as f64)
            {
                if matches!(fault, Fault::Restart) {
                    progress.event(done, "collector down, restarting", "collector down");
                }
                let event = match inject(collector, *fault) {
                    Ok(event) => {
                        state = fault.state();
                        event
                    }
                    Err(e) => format!("fault injection FAILED: {e}"),
                };
                progress.event(done, &event, &state);
            }
            progress.set(done);
            thread::sleep(TICK);
        }
        devices.join().expect("device threads do not panic")
    });
    progress.finish(fleet.pages_done.load(Ordering::Relaxed));
    runs
}

impl Fault {
    /// What the collector does after this fault, for as long as it lasts.
    fn state(self) -> String {
        match self {
            Fault::Refuse { status, .. } => format!("collector answers {status}"),
            Fault::LoseAcks => "collector loses acknowledgements".to_string(),
            Fault::Heal | Fault::Restart => "collector healthy".to_string(),
        }
    }
}

/// Applies one fault; returns the event to report.
fn inject(collector: &mut Collector, fault: Fault) -> Result<String, String> {
    match fault {
        Fault::Refuse {
            status,
            retry_after_s,
        } => collector
            .refuse(status, retry_after_s)
            .map(|()| format!("collector answers {status} with Retry-After {retry_after_s} s")),
        Fault::LoseAcks => collector
            .lose_acks()
            .map(|()| "collector stores uploads but loses their acknowledgements".to_string()),
        Fault::Heal => collector
            .heal()
            .map(|()| "collector healthy again".to_string()),
        Fault::Restart => collector.restart(DOWNTIME).map(|addr| {
            format!(
                "collector restarted on {addr} after {:.1} s down",
                DOWNTIME.as_secs_f64()
            )
        }),
    }
}

/// Prints the verdict; returns whether loss accounting reconciled.
fn summarize(out_dir: &Path, runs: &[DeviceRun], problems: &mut Vec<String>) -> bool {
    let reconciled = match report::reconcile(out_dir, runs) {
        Ok(summary) => {
            summary.print();
            summary.reconciled()
        }
        Err(e) => {
            problems.push(format!("reading the collector's output: {e}"));
            false
        }
    };
    for problem in problems.iter() {
        println!("problem: {problem}");
    }
    reconciled
}

/// A fresh directory for this run under the system temp directory.
fn temp_root() -> PathBuf {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    let root = std::env::temp_dir().join(format!("sightline-demo-{}-{nanos}", std::process::id()));
    std::fs::create_dir_all(&root).expect("create the demo's temp directory");
    root
}

fn clean_up(root: &Path, keep: bool) {
    if keep {
        println!("kept {}", root.display());
    } else if let Err(e) = std::fs::remove_dir_all(root) {
        eprintln!("could not remove {}: {e}", root.display());
    }
}
