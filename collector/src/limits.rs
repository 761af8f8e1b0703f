//! What the server bounds, so that no client, slow or hostile, can take more than its share:
//! connections, the time a request may take to arrive, the request bytes buffered at once,
//! the header count, and the CPU work of the uploads being ingested. Each limit is a
//! setting with a named default; [`Limits::peak_memory_bytes`] is the formula for the
//! server's peak memory that these bounds give.

use std::time::Duration;

use crate::ingest::{
    MAX_COMPRESSED_BYTES, MAX_DECOMPRESSED_BYTES, MAX_HELD_SEQS, MAX_RECENT_DIGESTS, MAX_SESSIONS,
    MAX_UPLOAD_ROW_BYTES,
};

/// Connections served at once by default; one more is answered 503 and closed at once.
/// Far above what one core's ingest needs (a device holds one connection while it uploads),
/// low enough that their buffers stay within a few hundred megabytes.
pub const DEFAULT_MAX_CONNECTIONS: usize = 8_192;
/// Connections the kernel may queue before the server accepts them. The 128 that
/// `TcpListener::bind` gave overflowed when 2,000 idle connections closed by the header
/// timeout reconnected at once, and each dropped SYN costs its client a 1 s retransmit
/// (the soak bench's `/healthz` max went to 1 s); the kernel caps it at
/// `net.core.somaxconn` (4,096 on current Linux), which the server logs at start.
pub const LISTEN_BACKLOG: u32 = 8_192;
/// File descriptors kept free of connections: the output files, the listener, the
/// snapshot and the runtime's own.
pub const RESERVED_FDS: u64 = 64;
/// Time a connection may take to send a request's headers, from the moment it waits for
/// one: on a new connection and between keep-alive requests, so it is also the idle
/// keep-alive timeout. A device sends its headers in one write; 10 s covers a 2G uplink.
pub const DEFAULT_HEADER_TIMEOUT: Duration = Duration::from_secs(10);
/// Time the whole body may take after its headers: a 64 KiB upload over 2G's 50 kbit/s
/// takes about 10 s, and the SDK's own request timeout is 10 s, so 30 s only cuts clients
/// that trickle.
pub const DEFAULT_BODY_TIMEOUT: Duration = Duration::from_secs(30);
/// Request bytes buffered across all in-flight uploads by default: 64 uploads of the 1 MiB
/// hard cap, or about 1,000 of the SDK's 64 KiB bodies. Beyond it uploads get 503.
pub const DEFAULT_BUFFER_BUDGET_BYTES: usize = 64 * 1024 * 1024;
/// Retry-After of a 503 for a full buffer budget, a full ingest queue or a full connection
/// table: long enough for the in-flight uploads to finish, short enough to cost a device
/// nothing it would notice.
pub const BUSY_RETRY_AFTER_S: u64 = 2;
/// Headers a request may carry. hyper's default of 100 refuses valid uploads that passed
/// through a few proxies (each adds forwarding and tracing headers); nginx and Envoy bound
/// headers by size instead, so this counts generously and [`MAX_HEADER_BYTES`] bounds the
/// bytes.
pub const MAX_HEADERS: usize = 256;
/// Bytes of a request's head (request line and headers): nginx's default of 4 buffers of
/// 8 KiB for large headers, rounded to one bound.
pub const MAX_HEADER_BYTES: usize = 32 * 1024;
/// Each connection's read buffer at most: a head at [`MAX_HEADER_BYTES`] and a little
/// body; hyper's default (about 400 KiB) would let 8,192 connections pin 3 GiB.
pub const CONNECTION_BUFFER_BYTES: usize = 40 * 1024;
/// Uploads waiting for an ingest worker get 503 after this: below the SDK's 10 s request
/// timeout, so a device gets an answer with Retry-After rather than a timeout.
pub const INGEST_QUEUE_TIMEOUT: Duration = Duration::from_secs(5);
/// Bytes a connection costs beyond its read buffer: its task, the HTTP state, the write
/// buffer of one answer (an estimate; the soak bench prints peak RSS beside the bound, at
/// about 2,300 connections, not at the cap).
pub const CONNECTION_OVERHEAD_BYTES: usize = 16 * 1024;
/// Bytes one tracked session costs besides its seqs and digests (its map entries, id,
/// counters, reconciliation): an upper estimate, set against the soak bench's peak RSS.
pub const SESSION_BYTES: usize = 512;
/// Bytes per seq held above a high-water mark (a B-tree entry with its digest).
pub const HELD_SEQ_BYTES: usize = 40;
/// Working memory of one upload being ingested beyond its rows: the decompressed batch,
/// its decoded columns and the violation table, each bounded by the decompressed size.
pub const UPLOAD_WORK_FACTOR: usize = 4;

/// The server's bounds on connections, time and memory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limits {
    /// Connections served at once (lowered at start to fit the open-files limit).
    pub max_connections: usize,
    pub header_timeout: Duration,
    pub body_timeout: Duration,
    /// Request bytes buffered across all in-flight uploads.
    pub buffer_budget_bytes: usize,
    /// Uploads decoded and ingested at once (the CPU work in flight); the others wait.
    pub ingest_workers: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_connections: DEFAULT_MAX_CONNECTIONS,
            header_timeout: DEFAULT_HEADER_TIMEOUT,
            body_timeout: DEFAULT_BODY_TIMEOUT,
            buffer_budget_bytes: DEFAULT_BUFFER_BUDGET_BYTES,
            ingest_workers: std::thread::available_parallelism().map_or(1, |n| n.get()),
        }
    }
}

impl Limits {
    /// The most memory these limits let the server hold, in bytes:
    ///
    /// ```text
    /// connections x (read buffer + overhead)
    /// + buffer budget
    /// + workers x (1 MiB body + 4 x 1 MiB decoded work + 32 MiB rows)
    /// + sessions x 512 + held seqs x 40 + recent digests x 8
    /// ```
    ///
    /// The session terms are the dedup state at its bounds (about 161 MiB at the defaults,
    /// reached only with 100,000 sessions all holding full windows); the rest is what the
    /// traffic in flight can add. The soak bench prints this beside the measured peak RSS.
    pub fn peak_memory_bytes(&self) -> u64 {
        let connections =
            self.max_connections * (CONNECTION_BUFFER_BYTES + CONNECTION_OVERHEAD_BYTES);
        let workers = self.ingest_workers
            * (MAX_COMPRESSED_BYTES
                + UPLOAD_WORK_FACTOR * MAX_DECOMPRESSED_BYTES
                + MAX_UPLOAD_ROW_BYTES);
        let sessions =
            MAX_SESSIONS * SESSION_BYTES + MAX_HELD_SEQS * HELD_SEQ_BYTES + MAX_RECENT_DIGESTS * 8;
        (connections + self.buffer_budget_bytes + workers + sessions) as u64
    }

    /// Raises the soft open-files limit to the hard one and lowers `max_connections` to
    /// fit under it (one descriptor per connection plus [`RESERVED_FDS`]). Returns the
    /// open-files limit in force, or `None` where it cannot be read.
    pub fn fit_open_files(&mut self) -> Option<u64> {
        let available = raise_open_files()?;
        let fit = available.saturating_sub(RESERVED_FDS).max(1);
        self.max_connections = self.max_connections.min(fit as usize);
        Some(available)
    }
}

#[cfg(unix)]
fn raise_open_files() -> Option<u64> {
    use rustix::process::{Resource, getrlimit, setrlimit};
    let mut limit = getrlimit(Resource::Nofile);
    // An unlimited hard limit still stops at the kernel's per-process ceiling.
    let maximum = limit.maximum.or_else(kernel_open_files_ceiling);
    let current = limit.current.or(maximum)?;
    if let Some(maximum) = maximum.filter(|&m| m > current) {
        limit.current = Some(maximum);
        if setrlimit(Resource::Nofile, limit).is_ok() {
            return Some(maximum);
        }
    }
    Some(current)
}

/// Linux's ceiling on any process's open files (`fs.nr_open`).
#[cfg(unix)]
fn kernel_open_files_ceiling() -> Option<u64> {
    std::fs::read_to_string("/proc/sys/fs/nr_open")
        .ok()?
        .trim()
        .parse()
        .ok()
}

#[cfg(not(unix))]
fn raise_open_files() -> Option<u64> {
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_peak_memory_formula_grows_with_each_bound() {
        let base = Limits {
            ingest_workers: 2,
            ..Limits::default()
        };
        let more = |f: fn(&mut Limits)| {
            let mut l = base.clone();
            f(&mut l);
            l.peak_memory_bytes()
        };
        let peak = base.peak_memory_bytes();
        assert!(more(|l| l.max_connections *= 2) > peak);
        assert!(more(|l| l.buffer_budget_bytes *= 2) > peak);
        assert!(more(|l| l.ingest_workers *= 2) > peak);
        // The defaults on this machine's two cores stay under a gigabyte.
        assert!(peak < 1 << 30, "{peak}");
    }

    #[cfg(unix)]
    #[test]
    fn the_connection_cap_never_exceeds_the_open_files_limit() {
        let mut limits = Limits {
            max_connections: usize::MAX,
            ..Limits::default()
        };
        let open_files = limits
            .fit_open_files()
            .expect("unix has an open-files limit");
        assert!(limits.max_connections as u64 <= open_files - RESERVED_FDS.min(open_files - 1));
        assert!(limits.max_connections >= 1);
    }
}
