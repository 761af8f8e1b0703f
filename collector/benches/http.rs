//! HTTP-level ingest: the release collector (file mode, NDJSON sink) on loopback, fed the
//! reference workload's batches by 1, 2, 4 and 8 concurrent clients, each on one
//! keep-alive connection sending its next upload as soon as the last is answered. Every
//! client sends every batch under session ids of its own, so all impressions are new.
//! Prints uploads/s, impressions/s and the p50/p99 request latency per client count; the
//! clients share this machine's cores with the server, so it also prints the cores the
//! server kept busy (its CPU time over the wall time): about 1 while uploads queue means
//! a lock serialises them, about the core count means the CPU does; and the mean sink
//! write (the JSON rows and the file write, done under the state's lock) with the share
//! of the wall time the lock spent on it. Asserts nothing.
//!
//! `cargo bench -p sightline-collector --bench http`

#[path = "../tests/common/mod.rs"]
mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::time::{Duration, Instant};

use common::*;
use prost::Message;
use sightline_core::{Config, gzip, wire};
use sightline_sim::harness::healthy_bodies;
use sightline_sim::workload::{WorkloadSpec, generate};

/// Concurrent clients of each run.
const CLIENTS: [usize; 4] = [1, 2, 4, 8];
/// Times each client sends the whole workload, under new session ids each time.
const ROUNDS: usize = 2;
/// Clock ticks per second of `/proc/<pid>/stat` times (USER_HZ, 100 on Linux builds).
const TICKS_PER_S: f64 = 100.0;

/// One prepared upload and the impressions it carries.
struct Upload {
    body: Vec<u8>,
    impressions: u64,
}

fn main() {
    let batches = workload();
    println!(
        "Collector over HTTP (release binary, file sink, loopback; clients on the same {} cores)",
        std::thread::available_parallelism().map_or(1, |n| n.get())
    );
    println!(
        "   workload: {} batches, {} impressions per client and round, {ROUNDS} rounds",
        batches.len(),
        batches
            .iter()
            .map(|b| b.impressions.as_ref().map_or(0, |i| u64::from(i.count)))
            .sum::<u64>()
    );
    println!(
        "   {:>7} {:>10} {:>14} {:>9} {:>9} {:>13} {:>11} {:>10}",
        "clients",
        "uploads/s",
        "impressions/s",
        "p50",
        "p99",
        "server cores",
        "sink write",
        "lock busy"
    );
    for clients in CLIENTS {
        let uploads: Vec<Vec<Upload>> = (0..clients)
            .map(|c| prepare(&batches, &format!("c{clients}-{c}")))
            .collect();
        let dir = TempDir::new(&format!("http-bench-{clients}"));
        let collector = Collector::start(&dir.path().join("out"), &Opts::files());
        let cpu_before = cpu_seconds(collector.pid());
        let started = Instant::now();
        let mut latencies: Vec<Duration> = std::thread::scope(|s| {
            let handles: Vec<_> = uploads
                .iter()
                .map(|mine| s.spawn(|| send_all(&collector, mine)))
                .collect();
            handles
                .into_iter()
                .flat_map(|h| h.join().expect("client"))
                .collect()
        });
        let elapsed = started.elapsed().as_secs_f64();
        let server_cores = (cpu_seconds(collector.pid()) - cpu_before) / elapsed;
        let metrics = collector.get("/metrics").body;
        let series = |name: &str| {
            metrics
                .lines()
                .find_map(|l| l.strip_prefix(name)?.trim().parse::<f64>().ok())
                .unwrap_or(0.0)
        };
        let writes = series("sightline_sink_write_duration_seconds_count");
        let writing = series("sightline_sink_write_duration_seconds_sum");
        drop(collector);
        latencies.sort();
        let impressions: u64 = uploads.iter().flatten().map(|u| u.impressions).sum();
        let at =
            |q: f64| latencies[((latencies.len() as f64 * q) as usize).min(latencies.len() - 1)];
        let ms = |d: Duration| format!("{:.2} ms", d.as_secs_f64() * 1e3);
        println!(
            "   {clients:>7} {:>10.0} {:>14.0} {:>9} {:>9} {server_cores:>13.2} {:>8.0} us {:>9.0}%",
            latencies.len() as f64 / elapsed,
            impressions as f64 / elapsed,
            ms(at(0.50)),
            ms(at(0.99)),
            writing / writes.max(1.0) * 1e6,
            writing / elapsed * 100.0,
        );
    }
}

/// The reference workload's batches as the SDK sends them, decoded.
fn workload() -> Vec<sightline_core::proto::Batch> {
    let workload = generate(&WorkloadSpec::reference());
    let config = Config {
        app_id: "com.example.streaming".into(),
        app_version: "7.4.1".into(),
        device: "bench".into(),
        app_key: APP_KEY.into(),
        seed: 1,
        ..Config::default()
    };
    healthy_bodies(&workload, config)
        .iter()
        .filter_map(|b| wire::decode_gzip_batch(b).ok())
        .collect()
}

/// Every batch `ROUNDS` times under session ids tagged with `client` and the round.
fn prepare(batches: &[sightline_core::proto::Batch], client: &str) -> Vec<Upload> {
    (0..ROUNDS)
        .flat_map(|round| {
            batches.iter().map(move |b| {
                let mut b = b.clone();
                b.session_id = format!("{}-{client}-{round}", b.session_id);
                Upload {
                    impressions: b.impressions.as_ref().map_or(0, |i| u64::from(i.count)),
                    body: gzip::gzip(&b.encode_to_vec()),
                }
            })
        })
        .collect()
}

/// Sends `uploads` one after another on one keep-alive connection; the latency of each.
fn send_all(collector: &Collector, uploads: &[Upload]) -> Vec<Duration> {
    let stream = connect(collector);
    let mut writer = stream.try_clone().expect("clone the stream");
    let mut reader = BufReader::new(stream);
    uploads
        .iter()
        .map(|u| {
            let sent = Instant::now();
            let mut request = upload_head(u.body.len()).into_bytes();
            request.extend_from_slice(&u.body);
            writer.write_all(&request).expect("send an upload");
            let status = read_response(&mut reader);
            assert_eq!(status, 200, "an upload was refused");
            sent.elapsed()
        })
        .collect()
}

/// Reads one response (status line, headers, a `content-length` body); its status.
fn read_response(reader: &mut BufReader<std::net::TcpStream>) -> u16 {
    let mut line = String::new();
    reader.read_line(&mut line).expect("a status line");
    let status = line
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let mut length = 0usize;
    loop {
        line.clear();
        reader.read_line(&mut line).expect("a header line");
        let header = line.trim_end();
        if header.is_empty() {
            break;
        }
        if let Some((name, value)) = header.split_once(':')
            && name.eq_ignore_ascii_case("content-length")
        {
            length = value.trim().parse().unwrap_or(0);
        }
    }
    let mut body = vec![0u8; length];
    reader.read_exact(&mut body).expect("the response body");
    status
}

/// CPU time (user and system) the process `pid` has used so far, in seconds.
fn cpu_seconds(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // The fields after the command name, which is in parentheses and may hold spaces.
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .map_or("", |(_, rest)| rest)
        .split_whitespace()
        .collect();
    // utime and stime are the 14th and 15th fields, the 12th and 13th after the name.
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|f| f.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    (ticks(11) + ticks(12)) / TICKS_PER_S
}
