//! The collector, in process: the `sightline-collector` library serving on loopback on a
//! tokio runtime of its own, writing NDJSON under the demo's temp directory, with fault
//! injection on. The demo drives its faults over HTTP, as an operator would.

use std::net::{Ipv4Addr, SocketAddr};
use std::path::Path;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use sightline_collector::limits::Limits;
use sightline_collector::server::{Server, Settings};
use sightline_core::contract::Contract;
use tokio::runtime::Runtime;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use crate::device::{APP_KEY, CollectorUrl};

/// Largest accepted body: the collector binary's default (the SDK sends at most 64 KiB).
const MAX_BODY_BYTES: usize = 256 * 1024;
/// Runtime threads for the collector: plenty for a few uploads a second.
const COLLECTOR_THREADS: usize = 1;
/// Timeout of the demo's own admin requests (fault injection, metrics).
const ADMIN_TIMEOUT: Duration = Duration::from_secs(5);
/// Fault answers set at once: "until told otherwise".
const UNTIL_HEALED: u32 = u32::MAX;
/// Retry-After while the collector drains before a stop: come back soon, not at once.
const DRAINING_RETRY_AFTER_S: u64 = 1;

/// Counters read from the collector's `/metrics`, summed over its runs.
#[derive(Debug, Default, Clone, Copy)]
pub struct Counters {
    pub batches: u64,
    pub dedup_hits: u64,
    pub injected_faults: u64,
}

/// One serving instance.
struct Running {
    stop: oneshot::Sender<()>,
    task: JoinHandle<std::io::Result<()>>,
}

/// The collector and everything needed to restart it over the same output.
pub struct Collector {
    runtime: Runtime,
    settings: Settings,
    url: CollectorUrl,
    addr: SocketAddr,
    /// `None` only while stopped.
    running: Option<Running>,
    counters: Counters,
    admin: ureq::Agent,
}

impl Collector {
    /// Starts a collector on a free loopback port, writing under `out_dir`.
    pub fn start(out_dir: &Path) -> Collector {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(COLLECTOR_THREADS)
            .enable_all()
            .build()
            .expect("start the collector's tokio runtime");
        let settings = Settings {
            listen: SocketAddr::from((Ipv4Addr::LOCALHOST, 0)),
            out_dir: out_dir.to_path_buf(),
            app_keys: vec![APP_KEY.to_string()],
            micro: false,
            contract: Contract::default(),
            max_body_bytes: MAX_BODY_BYTES,
            fault_injection: true,
            limits: Limits::default(),
        };
        let (running, addr) =
            serve(&runtime, settings.clone()).expect("bind the collector on a loopback port");
        let url = Arc::new(RwLock::new(base_url(addr)));
        let admin = ureq::Agent::config_builder()
            .timeout_global(Some(ADMIN_TIMEOUT))
            .build()
            .new_agent();
        Collector {
            runtime,
            settings,
            url,
            addr,
            running: Some(running),
            counters: Counters::default(),
            admin,
        }
    }

    /// The base URL devices post to; it follows restarts.
    pub fn url(&self) -> CollectorUrl {
        self.url.clone()
    }

    /// Where the collector listens now.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// From now on every upload is answered `status` with `Retry-After: retry_after_s`.
    pub fn refuse(&self, status: u16, retry_after_s: u64) -> Result<(), String> {
        self.set_faults(status, UNTIL_HEALED, retry_after_s, false)
    }

    /// From now on every upload is stored, then answered 503: the acknowledgement is lost,
    /// devices resend, and the collector's dedup by (session, seq) absorbs the copies.
    pub fn lose_acks(&self) -> Result<(), String> {
        self.set_faults(503, UNTIL_HEALED, 0, true)
    }

    /// Uploads are accepted again: no injected answers remain.
    pub fn heal(&self) -> Result<(), String> {
        self.set_faults(503, 0, 0, false)
    }

    fn set_faults(
        &self,
        status: u16,
        remaining: u32,
        retry_after_s: u64,
        after_ingest: bool,
    ) -> Result<(), String> {
        let body = format!(
            r#"{{"status":{status},"remaining":{remaining},"retry_after_s":{retry_after_s},"after_ingest":{after_ingest}}}"#
        );
        let response = self
            .admin
            .post(format!("{}/admin/faults", base_url(self.addr)))
            .header("content-type", "application/json")
            .send(body.as_bytes())
            .map_err(|e| format!("POST /admin/faults: {e}"))?;
        match response.status().as_u16() {
            204 => Ok(()),
            code => Err(format!("POST /admin/faults answered {code}")),
        }
    }

    /// Stops the collector (it answers 503 while it drains), keeps it down for `downtime`,
    /// and starts a new one over the same output directory, which rebuilds its dedup and
    /// loss state from the files. It takes the same port if it can; otherwise devices
    /// follow it to a new one through [`Collector::url`]. Returns the new address.
    pub fn restart(&mut self, downtime: Duration) -> Result<SocketAddr, String> {
        self.stop_running()?;
        std::thread::sleep(downtime);
        let same_port = Settings {
            listen: self.addr,
            ..self.settings.clone()
        };
        let (running, addr) = serve(&self.runtime, same_port)
            .or_else(|_| serve(&self.runtime, self.settings.clone()))
            .map_err(|e| format!("restart the collector: {e}"))?;
        self.running = Some(running);
        self.addr = addr;
        *self.url.write().unwrap_or_else(|e| e.into_inner()) = base_url(addr);
        Ok(addr)
    }

    /// Stops the collector for good and returns its counters over all runs.
    pub fn stop(mut self) -> Result<Counters, String> {
        self.stop_running()?;
        Ok(self.counters)
    }

    /// Refuses new uploads, reads the counters (nothing changes them any more), then
    /// shuts the server down gracefully and waits until its output is synced.
    fn stop_running(&mut self) -> Result<(), String> {
        let Some(running) = self.running.take() else {
            return Ok(());
        };
        let scraped = self
            .refuse(503, DRAINING_RETRY_AFTER_S)
            .and_then(|()| self.scrape());
        // The server may already be gone; joining its task tells how it ended.
        let _ = running.stop.send(());
        let served = self
            .runtime
            .block_on(running.task)
            .map_err(|e| format!("collector task: {e}"))?
            .map_err(|e| format!("collector output: {e}"));
        let counters = scraped?;
        self.counters.batches += counters.batches;
        self.counters.dedup_hits += counters.dedup_hits;
        self.counters.injected_faults += counters.injected_faults;
        served
    }

    fn scrape(&self) -> Result<Counters, String> {
        let text = self
            .admin
            .get(format!("{}/metrics", base_url(self.addr)))
            .call()
            .and_then(|mut r| r.body_mut().read_to_string())
            .map_err(|e| format!("GET /metrics: {e}"))?;
        let value = |name: &str| {
            text.lines()
                .filter_map(|line| line.strip_prefix(name)?.strip_prefix(' '))
                .find_map(|v| v.trim().parse().ok())
                .unwrap_or(0)
        };
        Ok(Counters {
            batches: value("sightline_batches_total"),
            dedup_hits: value("sightline_dedup_hits_total"),
            injected_faults: value("sightline_injected_faults_total"),
        })
    }
}

/// Binds `settings` (rebuilding state from the output directory) and serves in the background.
fn serve(runtime: &Runtime, settings: Settings) -> std::io::Result<(Running, SocketAddr)> {
    let server = runtime.block_on(Server::bind(settings))?;
    let addr = server.local_addr()?;
    let (stop, stopped) = oneshot::channel::<()>();
    let task = runtime.spawn(server.serve(async move {
        // A dropped sender stops the server too.
        let _ = stopped.await;
    }));
    Ok((Running { stop, task }, addr))
}

fn base_url(addr: SocketAddr) -> String {
    format!("http://{addr}")
}
