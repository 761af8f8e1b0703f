//! The command line of the real `sightline-collector` binary: help, version, typos,
//! settings from flag, environment and config file in that order, app keys from a file,
//! and the JSON log with one rate-limited line per refused upload.

mod common;

use std::process::{Command, Output};
use std::time::Instant;

use common::{BATCH_HEADERS, Collector, Opts, TempDir, binary, without_sightline_env};
use sightline_collector::log_limit::{REFUSAL_LOG_BURST, REFUSAL_LOG_PER_SECOND};
use sightline_core::upload::{APP_KEY_HEADER, CONTENT_TYPE};

fn run(args: &[&str]) -> Output {
    without_sightline_env(&mut Command::new(binary()))
        .args(args)
        .output()
        .expect("run the collector binary")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// The status of an upload of `len` bytes that are not a batch, with `key`: 401 for an
/// unknown key, 413 over the body limit, else 400 (not a batch).
fn upload_status(c: &Collector, key: &str, len: usize) -> u16 {
    c.post_raw(
        &[(APP_KEY_HEADER, key), ("content-type", CONTENT_TYPE)],
        &vec![0x55; len],
    )
    .status
}

#[test]
fn version_prints_the_package_version() {
    let out = run(&["--version"]);
    assert!(out.status.success());
    assert_eq!(
        text(&out.stdout).trim(),
        format!("sightline-collector {}", env!("CARGO_PKG_VERSION"))
    );
}

#[test]
fn each_subcommand_has_its_own_help_naming_flags_and_environment_variables() {
    let serve = text(&run(&["serve", "--help"]).stdout);
    for expected in [
        "--app-keys-file",
        "SIGHTLINE_LISTEN",
        "--config",
        "--log-format",
    ] {
        assert!(
            serve.contains(expected),
            "serve --help lacks {expected}:\n{serve}"
        );
    }
    let check = text(&run(&["check", "--help"]).stdout);
    assert!(
        check.contains("<FILES>") && !check.contains("--app-key"),
        "{check}"
    );
}

#[test]
fn a_mistyped_flag_exits_2_with_a_suggestion() {
    let out = run(&["serve", "--lisen", "127.0.0.1:0"]);
    assert_eq!(out.status.code(), Some(2));
    let error = text(&out.stderr);
    assert!(
        error.contains("a similar argument exists: '--listen'"),
        "{error}"
    );
}

#[test]
fn serve_without_any_app_key_exits_2_naming_every_source() {
    let out = run(&["serve", "--listen", "127.0.0.1:0"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).contains("SIGHTLINE_APP_KEYS"));
}

#[test]
fn settings_come_from_the_environment() {
    let dir = TempDir::new("cli-env");
    let c = Collector::start(
        &dir.path().join("out"),
        &Opts::default()
            .no_key_flag()
            .env("SIGHTLINE_APP_KEYS", "first,second")
            .env("SIGHTLINE_MICRO", "1")
            .env("SIGHTLINE_MAX_BODY_BYTES", 1000),
    );
    assert_eq!(upload_status(&c, "second", 10), 400);
    assert_eq!(upload_status(&c, "third", 10), 401);
    assert_eq!(upload_status(&c, "first", 1500), 413);
    assert_eq!(
        c.get("/micro/good").status,
        200,
        "micro mode from the environment"
    );
}

#[test]
fn a_flag_wins_over_the_environment_and_the_environment_over_the_config_file() {
    let dir = TempDir::new("cli-precedence");
    let config = dir.path().join("collector.toml");
    std::fs::write(&config, "max_body_bytes = 1000\nmicro = true\n").expect("write config");
    let out = dir.path().join("out");
    let file_only = Opts::default().with("--config", config.display());
    let c = Collector::start(&out, &file_only);
    assert_eq!(
        upload_status(&c, common::APP_KEY, 1500),
        413,
        "the file's 1000"
    );
    assert_eq!(c.get("/micro/good").status, 200, "the file's micro mode");
    drop(c);
    let env_over_file = file_only.clone().env("SIGHTLINE_MAX_BODY_BYTES", 2000);
    let c = Collector::start(&out, &env_over_file);
    assert_eq!(
        upload_status(&c, common::APP_KEY, 1500),
        400,
        "the env's 2000"
    );
    drop(c);
    let flag_over_env = env_over_file.with("--max-body-bytes", 1200);
    let c = Collector::start(&out, &flag_over_env);
    assert_eq!(
        upload_status(&c, common::APP_KEY, 1500),
        413,
        "the flag's 1200"
    );
}

#[test]
fn an_unknown_key_in_the_config_file_exits_2_naming_it() {
    let dir = TempDir::new("cli-typo");
    let config = dir.path().join("collector.toml");
    std::fs::write(&config, "max_body_byte = 1000\n").expect("write config");
    let out = run(&[
        "serve",
        "--app-key",
        "k",
        "--config",
        config.to_str().expect("utf-8 path"),
    ]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr).contains("max_body_byte"),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn app_keys_from_a_file_stay_out_of_the_process_listing() {
    let dir = TempDir::new("cli-keys");
    let keys = dir.path().join("keys");
    std::fs::write(&keys, "# tv app\ntv-secret-key\nweb-secret-key  # web\n").expect("keys");
    let c = Collector::start(
        &dir.path().join("out"),
        &Opts::micro()
            .no_key_flag()
            .with("--app-keys-file", keys.display()),
    );
    assert_eq!(upload_status(&c, "tv-secret-key", 10), 400);
    assert_eq!(upload_status(&c, "web-secret-key", 10), 400);
    assert_eq!(upload_status(&c, "# tv app", 10), 401);
    let cmdline = std::fs::read(format!("/proc/{}/cmdline", c.pid())).expect("cmdline");
    assert!(!text(&cmdline).contains("secret"), "{}", text(&cmdline));
}

#[test]
fn refused_uploads_log_one_json_line_each_within_the_rate_limit() {
    let dir = TempDir::new("cli-log");
    let c = Collector::start(
        &dir.path().join("out"),
        &Opts::micro().with("--log-format", "json"),
    );
    let refusals = 200;
    let started = Instant::now();
    for _ in 0..refusals {
        assert_eq!(upload_status(&c, "wrong-key", 10), 401);
    }
    let elapsed = started.elapsed().as_secs_f64();
    let logged = || -> Vec<serde_json::Value> {
        c.log()
            .lines()
            .map(|line| serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}")))
            .filter(|line: &serde_json::Value| line["message"] == "refused upload")
            .collect()
    };
    let lines = logged();
    // The burst, then what the rate refilled while the requests were being sent.
    let allowed =
        REFUSAL_LOG_BURST as usize + (elapsed * f64::from(REFUSAL_LOG_PER_SECOND)).ceil() as usize;
    assert!(
        lines.len() >= REFUSAL_LOG_BURST as usize && lines.len() <= allowed,
        "{} lines for {refusals} refusals in {elapsed:.2} s",
        lines.len()
    );
    assert!(
        lines
            .iter()
            .all(|l| l["status"] == 401 && l["level"] == "WARN")
    );
    assert_eq!(lines[0]["reason"], "missing or unknown app key");
    // Once the bucket refills, the next line says how many were left out.
    std::thread::sleep(std::time::Duration::from_millis(
        1000 / u64::from(REFUSAL_LOG_PER_SECOND) + 100,
    ));
    assert_eq!(
        c.post_raw(&BATCH_HEADERS[1..], b"no content type").status,
        415
    );
    let all = logged();
    assert_eq!(all.len(), lines.len() + 1);
    assert_eq!(all[lines.len()]["status"], 415);
    let suppressed: u64 = all.iter().filter_map(|l| l["suppressed"].as_u64()).sum();
    assert_eq!(suppressed, (refusals - lines.len()) as u64);
}
