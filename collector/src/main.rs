//! `sightline-collector serve [options]` and `sightline-collector check FILES...`.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use sightline_collector::check::check_files;
use sightline_collector::limits::Limits;
use sightline_collector::server::{Server, Settings};
use sightline_core::contract::Contract;

const USAGE: &str = "\
usage:
  sightline-collector serve [--listen ADDR] [--out DIR] --app-key KEY [--app-key KEY ...]
                            [--micro] [--contract FILE] [--max-body-bytes N]
                            [--allow-fault-injection] [--max-connections N]
                            [--header-timeout-ms MS] [--body-timeout-ms MS]
                            [--buffer-budget-bytes N] [--ingest-workers N]
  sightline-collector check [--contract FILE] FILES...

serve   ingest gzip protobuf batches at POST /v1/batches; NDJSON rows in hourly files under
        --out (default ./sightline-out), or in memory behind /micro/* with --micro.
        Prints 'listening on ADDR' once bound. SIGTERM or Ctrl-C drains and stops.
        Limits (defaults in parentheses): connections at once (8192, lowered to fit the
        open-files limit, which is raised to its hard limit at start); time for a request's
        headers, which is also the idle keep-alive time (10000 ms); time for its body, else
        408 (30000 ms); request bytes buffered across uploads, else 503 (64 MiB); uploads
        decoded at once (one per core).
check   validate captured batches (.pb, .pb.gz, any gzip) and NDJSON rows (.ndjson)
        against the contract; exits 1 when any violation is found.";

/// Default listen address: loopback only; exposing the collector is a deliberate choice.
const DEFAULT_LISTEN: &str = "127.0.0.1:8080";
/// Default body limit: the SDK never sends more than the 64 KiB a beacon carries.
const DEFAULT_MAX_BODY: usize = 256 * 1024;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args.first().map(String::as_str) {
        Some("serve") => serve(&args[1..]),
        Some("check") => check(&args[1..]),
        _ => Err(USAGE.to_string()),
    };
    match result {
        Ok(code) => code,
        Err(message) => {
            eprintln!("{message}");
            ExitCode::from(2)
        }
    }
}

fn load_contract(path: Option<&String>) -> Result<Contract, String> {
    match path {
        None => Ok(Contract::default()),
        Some(p) => {
            let text = std::fs::read_to_string(p).map_err(|e| format!("{p}: {e}"))?;
            serde_json::from_str(&text).map_err(|e| format!("{p}: {e}"))
        }
    }
}

fn serve(args: &[String]) -> Result<ExitCode, String> {
    let mut listen = DEFAULT_LISTEN.to_string();
    let mut out = PathBuf::from("sightline-out");
    let mut keys = Vec::new();
    let mut micro = false;
    let mut contract = None;
    let mut max_body = DEFAULT_MAX_BODY;
    let mut faults = false;
    let mut limits = Limits::default();
    let mut it = args.iter();
    while let Some(arg) = it.next() {
        let mut value = || {
            it.next()
                .cloned()
                .ok_or(format!("{arg} needs a value\n{USAGE}"))
        };
        match arg.as_str() {
            "--listen" => listen = value()?,
            "--out" => out = PathBuf::from(value()?),
            "--app-key" => keys.push(value()?),
            "--micro" => micro = true,
            "--contract" => contract = Some(value()?),
            "--max-body-bytes" => {
                max_body = value()?
                    .parse()
                    .map_err(|e| format!("--max-body-bytes: {e}"))?
            }
            "--allow-fault-injection" => faults = true,
            "--max-connections" => limits.max_connections = number(arg, value()?)?,
            "--header-timeout-ms" => limits.header_timeout = millis(arg, value()?)?,
            "--body-timeout-ms" => limits.body_timeout = millis(arg, value()?)?,
            "--buffer-budget-bytes" => limits.buffer_budget_bytes = number(arg, value()?)?,
            "--ingest-workers" => limits.ingest_workers = number(arg, value()?)?,
            other => return Err(format!("unknown option {other}\n{USAGE}")),
        }
    }
    if keys.is_empty() {
        return Err(format!("at least one --app-key is required\n{USAGE}"));
    }
    if limits.buffer_budget_bytes < max_body {
        // A body the budget can never hold would get 503 for ever instead of its 413.
        return Err(format!(
            "--buffer-budget-bytes ({}) must be at least --max-body-bytes ({max_body})",
            limits.buffer_budget_bytes
        ));
    }
    let listen: SocketAddr = listen.parse().map_err(|e| format!("--listen: {e}"))?;
    let settings = Settings {
        listen,
        out_dir: out,
        app_keys: keys,
        micro,
        contract: load_contract(contract.as_ref())?,
        max_body_bytes: max_body,
        fault_injection: faults,
        limits,
    };
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;
    runtime.block_on(async {
        let server = Server::bind(settings)
            .await
            .map_err(|e| format!("bind: {e}"))?;
        let addr = server.local_addr().map_err(|e| e.to_string())?;
        println!("listening on {addr}");
        tracing::info!(%addr, "collector started");
        server
            .serve(shutdown_signal())
            .await
            .map_err(|e| e.to_string())?;
        tracing::info!("collector stopped");
        Ok(ExitCode::SUCCESS)
    })
}

/// A count that must be at least 1.
fn number(flag: &str, text: String) -> Result<usize, String> {
    match text.parse() {
        Ok(0) => Err(format!("{flag}: must be at least 1")),
        Ok(n) => Ok(n),
        Err(e) => Err(format!("{flag}: {e}")),
    }
}

fn millis(flag: &str, text: String) -> Result<std::time::Duration, String> {
    number(flag, text).map(|ms| std::time::Duration::from_millis(ms as u64))
}

async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(s) => s,
                Err(_) => {
                    let _ = ctrl_c.await;
                    return;
                }
            };
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    {
        let _ = ctrl_c.await;
    }
}

fn check(args: &[String]) -> Result<ExitCode, String> {
    let (contract, files) = match args.first().map(String::as_str) {
        Some("--contract") => (args.get(1), &args[2.min(args.len())..]),
        _ => (None, args),
    };
    if files.is_empty() {
        return Err(USAGE.to_string());
    }
    let contract = load_contract(contract)?;
    let paths: Vec<&Path> = files.iter().map(Path::new).collect();
    let report = check_files(&contract, &paths);
    print!("{}", report.table());
    Ok(if report.findings.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}
