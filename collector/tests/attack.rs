//! The collector under attack, end to end against the real binary on loopback: uploads
//! that hold the ingest, crafted batches past the per-upload work budget, clients that
//! trickle, idle or open too many connections, more buffered bytes than the budget, and
//! proxies' extra headers. Each test states the bound it checks; none asserts a duration
//! (the timeouts are set short and waited for with generous patience).

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use common::*;

/// Everything the server sends until it closes the connection (or [`PATIENCE`] passes),
/// and whether it closed.
fn read_until_closed(stream: &mut TcpStream) -> (String, bool) {
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match stream.read(&mut buf) {
            Ok(0) => return (String::from_utf8_lossy(&got).into_owned(), true),
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => {
                return (String::from_utf8_lossy(&got).into_owned(), true);
            }
            Err(_) => return (String::from_utf8_lossy(&got).into_owned(), false),
        }
    }
}

/// One answer's status line and headers, read from a connection that stays open.
fn read_head(stream: &mut TcpStream) -> String {
    let mut got = Vec::new();
    let mut byte = [0u8; 1];
    while !got.ends_with(b"\r\n\r\n") {
        match stream.read(&mut byte) {
            Ok(1) => got.push(byte[0]),
            _ => break,
        }
    }
    String::from_utf8_lossy(&got).into_owned()
}

#[test]
fn healthz_answers_while_uploads_hold_the_ingest() {
    let dir = TempDir::new("stalled");
    let c = Collector::start(&dir.path().join("out"), &Opts::micro().with_faults());
    // More held uploads than the runtime has worker threads (one per core).
    let held = 2 * std::thread::available_parallelism().map_or(2, |n| n.get()) as u32;
    c.stall(held, 1500);
    let uploads: Vec<_> = (0..held)
        .map(|i| real_upload(&format!("held-{i}"), 2))
        .collect();
    let started = Instant::now();
    let answered: Vec<_> = std::thread::scope(|s| {
        let posts: Vec<_> = uploads
            .iter()
            .map(|u| {
                let c = &c;
                s.spawn(move || (c.post_upload(u), Instant::now()))
            })
            .collect();
        // Sequencing only: let every held upload reach the server first.
        std::thread::sleep(Duration::from_millis(500));
        let health = c.get("/healthz");
        let health_at = Instant::now();
        assert_eq!(health.status, 200);
        let posts: Vec<_> = posts.into_iter().map(|p| p.join().expect("post")).collect();
        let first_upload_at = posts.iter().map(|(_, at)| *at).min().expect("uploads");
        assert!(
            health_at < first_upload_at,
            "/healthz waited for the held ingest ({:?} vs {:?} after start)",
            health_at - started,
            first_upload_at - started
        );
        posts
    });
    // Held uploads are still ingested, or told to come back later: never lost silently.
    for (reply, _) in &answered {
        match reply.status {
            200 => {}
            503 => assert!(reply.retry_after.is_some(), "{reply:?}"),
            other => panic!("held upload answered {other}: {}", reply.body),
        }
    }
    let stored = answered.iter().filter(|(r, _)| r.status == 200).count() as u64;
    assert_eq!(c.metrics().get("sightline_batches_total"), stored);
}

#[test]
fn an_upload_of_more_impressions_than_the_sdk_ever_batches_is_refused_with_413() {
    let dir = TempDir::new("crafted");
    let c = Collector::start(&dir.path().join("out"), &Opts::micro().max_body(1 << 20));
    let largest = c.post_batch(&crafted(8_192));
    assert_eq!(largest.status, 200, "{}", largest.body);
    let crafted = crafted(65_536);
    assert!(crafted.len() < 256 * 1024, "{}", crafted.len());
    let refused = c.post_batch(&crafted);
    assert_eq!(refused.status, 413, "{}", refused.body);
    assert!(refused.reason().contains("impressions"), "{}", refused.body);
    let m = c.metrics();
    assert_eq!(m.get("sightline_batches_total"), 1);
    assert_eq!(
        m.get("sightline_refused_batches_total{reason=\"too_large\"}"),
        1
    );
}

#[test]
fn a_body_trickled_past_the_body_timeout_gets_408_and_nothing_is_stored() {
    let dir = TempDir::new("trickle");
    let c = Collector::start(
        &dir.path().join("out"),
        &Opts::micro().with("--body-timeout-ms", 1500),
    );
    let mut stream = connect(&c);
    stream
        .write_all(upload_head(1000).as_bytes())
        .expect("send the head");
    let mut writer = stream.try_clone().expect("clone the stream");
    let trickle = std::thread::spawn(move || {
        // One byte every 300 ms, until the server stops listening (or 60 bytes: 18 s).
        for _ in 0..60 {
            if writer.write_all(b"x").is_err() {
                return;
            }
            std::thread::sleep(Duration::from_millis(300));
        }
    });
    let (answer, closed) = read_until_closed(&mut stream);
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer:?}");
    assert!(closed, "the connection stays open after a 408");
    drop(stream);
    trickle.join().expect("trickle");
    let m = c.metrics();
    assert_eq!(m.get("sightline_body_timeouts_total"), 1);
    assert_eq!(m.get("sightline_batches_total"), 0);
    assert_eq!(c.get("/healthz").status, 200);
}

#[test]
fn a_connection_that_sends_nothing_is_closed_after_the_header_timeout() {
    let dir = TempDir::new("silent");
    let c = Collector::start(
        &dir.path().join("out"),
        &Opts::micro().with("--header-timeout-ms", 1000),
    );
    let mut silent = connect(&c);
    let (_, closed) = read_until_closed(&mut silent);
    assert!(closed, "a silent connection is held open");
    // Half a head is no better than none.
    let mut half = connect(&c);
    half.write_all(b"POST /v1/batches HTTP/1.1\r\nhost: x\r\n")
        .expect("send half a head");
    let (_, closed) = read_until_closed(&mut half);
    assert!(closed, "a connection stuck in its headers is held open");
}

#[test]
fn an_idle_keep_alive_connection_is_closed_after_the_header_timeout() {
    let dir = TempDir::new("idle");
    let c = Collector::start(
        &dir.path().join("out"),
        &Opts::micro().with("--header-timeout-ms", 1000),
    );
    let mut stream = connect(&c);
    stream
        .write_all(b"GET /healthz HTTP/1.1\r\nhost: x\r\n\r\n")
        .expect("send a request");
    let head = read_head(&mut stream);
    assert!(head.starts_with("HTTP/1.1 200"), "{head:?}");
    assert!(!head.to_ascii_lowercase().contains("connection: close"));
    let (rest, closed) = read_until_closed(&mut stream);
    assert!(closed, "an idle keep-alive connection is held open");
    assert_eq!(rest, "ok\n", "only the answer's body came before the close");
}

#[test]
fn connections_over_the_cap_get_503_at_once_and_slots_free_as_idle_ones_close() {
    let dir = TempDir::new("cap");
    let c = Collector::start(
        &dir.path().join("out"),
        &Opts::micro()
            .with("--max-connections", 20)
            .with("--header-timeout-ms", 2000),
    );
    let idle: Vec<TcpStream> = (0..20).map(|_| connect(&c)).collect();
    // Sequencing only: let the server accept them before the one over the cap.
    std::thread::sleep(Duration::from_millis(300));
    let mut over = connect(&c);
    let (answer, closed) = read_until_closed(&mut over);
    assert!(answer.starts_with("HTTP/1.1 503"), "{answer:?}");
    assert!(
        answer.to_ascii_lowercase().contains("retry-after: 2"),
        "{answer:?}"
    );
    assert!(closed);
    // The idle ones time out, and a device gets through again.
    let upload = real_upload("after-the-cap", 3);
    let patience = Instant::now();
    loop {
        let reply = c.try_post_raw(
            &upload
                .headers
                .iter()
                .map(|h| (h.name.as_str(), h.value.as_str()))
                .collect::<Vec<_>>(),
            &upload.body,
        );
        match reply {
            Ok(r) if r.status == 200 => break,
            Ok(r) if r.status == 503 => {}
            Ok(r) => panic!("answered {}: {}", r.status, r.body),
            Err(_) => {}
        }
        assert!(patience.elapsed() < PATIENCE, "the cap never freed");
        std::thread::sleep(Duration::from_millis(200));
    }
    drop(idle);
    assert!(c.metrics().get("sightline_refused_connections_total") >= 1);
    let log = c.log();
    assert!(
        log.lines()
            .any(|l| l.contains("refused connection") && l.contains("connection cap reached")),
        "no log line for the refused connection:\n{log}"
    );
}

#[test]
fn the_open_files_limit_is_raised_to_its_hard_limit_and_the_connection_cap_fits_under_it() {
    let dir = TempDir::new("nofile");
    let c = Collector::start(
        &dir.path().join("out"),
        &Opts::micro().with("--max-connections", 100_000).under(&[
            "prlimit",
            "--nofile=256:1024",
            "--",
        ]),
    );
    let m = c.metrics();
    assert_eq!(m.get("sightline_open_files_limit"), 1024);
    assert_eq!(m.get("sightline_max_connections"), 1024 - 64);
    assert!(
        c.log().contains("open files limit 1024"),
        "the limit is logged at start: {}",
        c.log()
    );
}

#[test]
fn uploads_beyond_the_buffered_bytes_budget_get_503_with_retry_after() {
    let dir = TempDir::new("budget");
    let upload = real_upload("over-budget", 20);
    let max_body = 100_000;
    // Room for one body at the limit and all but one byte of the upload.
    let budget = max_body + upload.body.len() - 1;
    let c = Collector::start(
        &dir.path().join("out"),
        &Opts::micro()
            .max_body(max_body)
            .with("--buffer-budget-bytes", budget),
    );
    // A slow upload that has sent all but the last byte of a body at the limit.
    let mut holder = connect(&c);
    holder
        .write_all(upload_head(max_body).as_bytes())
        .expect("send the head");
    holder
        .write_all(&vec![b'x'; max_body - 1])
        .expect("send the body but its last byte");
    let patience = Instant::now();
    while c.metrics().get("sightline_buffered_bytes") < max_body as u64 {
        assert!(patience.elapsed() < PATIENCE, "the slow body never arrived");
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(
        c.metrics().get("sightline_buffered_bytes"),
        max_body as u64,
        "a body holds what it announced at most"
    );
    let refused = c.post_upload(&upload);
    assert_eq!(refused.status, 503, "{}", refused.body);
    assert_eq!(refused.retry_after.as_deref(), Some("2"));
    drop(holder);
    loop {
        let reply = c.post_upload(&upload);
        if reply.status == 200 {
            break;
        }
        assert_eq!(reply.status, 503, "{}", reply.body);
        assert!(patience.elapsed() < PATIENCE, "the budget never freed");
        std::thread::sleep(Duration::from_millis(100));
    }
    let m = c.metrics();
    assert!(m.get("sightline_refused_batches_total{reason=\"busy\"}") >= 1);
    assert_eq!(m.get("sightline_batches_total"), 1);
    assert_eq!(m.get("sightline_buffered_bytes"), 0);
}

/// Posts `upload` with `extra` more headers, as proxies add them.
fn through_proxies(c: &Collector, upload: &sightline_core::Upload, extra: usize) -> Reply {
    let names: Vec<String> = (0..extra).map(|i| format!("x-proxy-hop-{i}")).collect();
    let mut headers: Vec<(&str, &str)> = upload
        .headers
        .iter()
        .map(|h| (h.name.as_str(), h.value.as_str()))
        .collect();
    headers.extend(names.iter().map(|n| (n.as_str(), "10.0.0.1")));
    c.post_raw(&headers, &upload.body)
}

#[test]
fn a_valid_upload_with_200_extra_headers_is_accepted_and_300_get_431() {
    let dir = TempDir::new("headers");
    let c = Collector::start(&dir.path().join("out"), &Opts::micro());
    let upload = real_upload("proxied", 2);
    let accepted = through_proxies(&c, &upload, 200);
    assert_eq!(accepted.status, 200, "{}", accepted.body);
    // Raw, so the whole request is on the wire before the server answers and closes.
    let upload = real_upload("too-proxied", 2);
    let mut request = upload_head(upload.body.len()).into_bytes();
    let head_end = request.len() - 2;
    let extra: String = (0..300)
        .map(|i| format!("x-proxy-hop-{i}: 10.0.0.1\r\n"))
        .collect();
    request.splice(head_end..head_end, extra.into_bytes());
    request.extend_from_slice(&upload.body);
    let mut stream = connect(&c);
    stream.write_all(&request).expect("send the request");
    let (answer, _) = read_until_closed(&mut stream);
    assert!(answer.starts_with("HTTP/1.1 431"), "{answer:?}");
}

#[test]
fn an_upload_abandoned_while_it_waits_leaves_no_request_in_flight() {
    let dir = TempDir::new("abandoned");
    let c = Collector::start(&dir.path().join("out"), &Opts::micro().with_faults());
    c.stall(1, 1500);
    let held = real_upload("held", 2);
    let abandoned = real_upload("abandoned", 2);
    std::thread::scope(|s| {
        let post = s.spawn(|| c.post_upload(&held));
        // Sequencing only: the held upload takes the state's lock first.
        std::thread::sleep(Duration::from_millis(300));
        let mut stream = connect(&c);
        stream
            .write_all(upload_head(abandoned.body.len()).as_bytes())
            .expect("send the head");
        stream.write_all(&abandoned.body).expect("send the body");
        // Waiting for the lock behind the held upload, its client hangs up.
        std::thread::sleep(Duration::from_millis(300));
        drop(stream);
        assert_eq!(post.join().expect("post").status, 200);
    });
    let patience = Instant::now();
    let abandoned_series = "sightline_http_request_duration_seconds_count{route=\"/v1/batches\",method=\"POST\",code=\"499\"}";
    loop {
        let m = c.metrics();
        // The scrape itself is the one request in flight.
        if m.get(abandoned_series) == 1 {
            assert_eq!(m.get("sightline_http_requests_in_flight"), 1);
            break;
        }
        assert!(
            patience.elapsed() < PATIENCE,
            "the abandoned upload was never counted; in flight: {}",
            m.get("sightline_http_requests_in_flight")
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// The listen queue's length (`ss`'s Send-Q for a listening socket) of the socket on
/// `port`, or None where `ss` cannot tell.
fn listen_backlog(port: u16) -> Option<u32> {
    let out = std::process::Command::new("ss")
        .args(["-Hltn", &format!("sport = :{port}")])
        .output()
        .ok()?;
    let text = String::from_utf8(out.stdout).ok()?;
    text.split_whitespace().nth(2)?.parse().ok()
}

#[test]
fn the_listen_queue_holds_a_reconnect_burst_of_thousands_of_connections() {
    // 2,000 idle connections closed by the header timeout reconnect at once; the queue of
    // 128 the listener had overflowed, and each dropped SYN cost its client (and /healthz)
    // a 1 s retransmit. The kernel caps the queue at net.core.somaxconn.
    let dir = TempDir::new("backlog");
    let c = Collector::start(&dir.path().join("out"), &Opts::micro());
    let port: u16 = c
        .url
        .rsplit(':')
        .next()
        .and_then(|p| p.parse().ok())
        .expect("the collector's port");
    let somaxconn: u32 = std::fs::read_to_string("/proc/sys/net/core/somaxconn")
        .expect("a Linux kernel")
        .trim()
        .parse()
        .expect("a number");
    let expected = somaxconn.min(sightline_collector::limits::LISTEN_BACKLOG);
    assert!(
        expected > 1_024,
        "this kernel caps the queue at {somaxconn}"
    );
    assert_eq!(listen_backlog(port), Some(expected));
}
