//! The command line, the environment and the config file, resolved into [`Settings`].
//!
//! Each `serve` setting can come from a flag, an environment variable (`SIGHTLINE_*`, as
//! container deployments pass them) or a TOML file (`--config`); the first of those that
//! sets it wins, then the default. clap reads flag and environment; [`ServeArgs::or`]
//! layers the file beneath them, and [`ServeArgs::resolve`] applies defaults and checks
//! every value, whichever layer it came from.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use clap::builder::BoolishValueParser;
use clap::{Args, Parser, Subcommand, ValueEnum};
use serde::Deserialize;
use sightline_core::contract::Contract;

use crate::limits::Limits;
use crate::server::Settings;

/// Default listen address: loopback only; exposing the collector is a deliberate choice.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:8080";
/// Default output directory of the NDJSON sink, relative to the working directory.
pub const DEFAULT_OUT: &str = "sightline-out";
/// Default body limit: the SDK never sends more than the 64 KiB a beacon carries.
pub const DEFAULT_MAX_BODY: usize = 256 * 1024;

/// The Sightline reference collector.
#[derive(Debug, Parser)]
#[command(name = "sightline-collector", version, about, propagate_version = true)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Ingest gzip protobuf batches at POST /v1/batches.
    ///
    /// Rows go to hourly NDJSON files under --out, or to memory behind /micro/* with
    /// --micro. Prints 'listening on ADDR' once bound; SIGTERM or Ctrl-C drains and stops.
    /// Each setting comes from its flag, else its environment variable, else the --config
    /// file (same names, in snake_case), else its default.
    Serve(Box<ServeArgs>),
    /// Validate captured batches and rows against the contract.
    ///
    /// Reads .pb, .pb.gz (or any gzip) batches and .ndjson rows; exits 1 when any violation
    /// is found.
    Check(CheckArgs),
}

/// How logs are written to stderr.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line, for log pipelines.
    Json,
}

/// `serve`'s settings; every field is optional so that the layers can be merged.
#[derive(Debug, Default, Clone, PartialEq, Args, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServeArgs {
    /// TOML file with any of these settings (keys in snake_case: listen, app_keys, ...).
    #[arg(long, env = "SIGHTLINE_CONFIG", value_name = "FILE")]
    #[serde(skip)]
    pub config: Option<PathBuf>,
    /// Address to listen on [default: 127.0.0.1:8080].
    #[arg(long, env = "SIGHTLINE_LISTEN", value_name = "ADDR")]
    pub listen: Option<SocketAddr>,
    /// Output directory for NDJSON rows [default: sightline-out].
    #[arg(long, env = "SIGHTLINE_OUT", value_name = "DIR")]
    pub out: Option<PathBuf>,
    /// A key apps send in x-sightline-app-key; repeat the flag or separate keys with
    /// commas (in the flag and in the environment variable alike).
    #[arg(
        long = "app-key",
        env = "SIGHTLINE_APP_KEYS",
        value_name = "KEY",
        value_delimiter = ',',
        hide_env_values = true
    )]
    pub app_keys: Option<Vec<String>>,
    /// File of app keys, one per line ('#' starts a comment), added to --app-key's: keys
    /// stay out of process listings.
    #[arg(long, env = "SIGHTLINE_APP_KEYS_FILE", value_name = "FILE")]
    pub app_keys_file: Option<PathBuf>,
    /// Keep rows in memory behind the /micro/* query API (producers' contract tests).
    #[arg(
        long,
        env = "SIGHTLINE_MICRO",
        num_args = 0..=1,
        default_missing_value = "true",
        value_parser = BoolishValueParser::new()
    )]
    pub micro: Option<bool>,
    /// Data contract (JSON) to validate against [default: the built-in contract].
    #[arg(long, env = "SIGHTLINE_CONTRACT", value_name = "FILE")]
    pub contract: Option<PathBuf>,
    /// Largest request body; larger gets 413 [default: 262144].
    #[arg(long, env = "SIGHTLINE_MAX_BODY_BYTES", value_name = "N")]
    pub max_body_bytes: Option<usize>,
    /// Serve POST /admin/faults, which makes uploads fail on purpose (demos and tests).
    #[arg(
        long,
        env = "SIGHTLINE_ALLOW_FAULT_INJECTION",
        num_args = 0..=1,
        default_missing_value = "true",
        value_parser = BoolishValueParser::new()
    )]
    pub allow_fault_injection: Option<bool>,
    /// Connections at once, lowered to fit the open-files limit (raised to its hard limit
    /// at start) [default: 8192].
    #[arg(long, env = "SIGHTLINE_MAX_CONNECTIONS", value_name = "N")]
    pub max_connections: Option<usize>,
    /// Time for a request's headers, also the idle keep-alive time [default: 10000].
    #[arg(long, env = "SIGHTLINE_HEADER_TIMEOUT_MS", value_name = "MS")]
    pub header_timeout_ms: Option<u64>,
    /// Time for a request's body, else 408 [default: 30000].
    #[arg(long, env = "SIGHTLINE_BODY_TIMEOUT_MS", value_name = "MS")]
    pub body_timeout_ms: Option<u64>,
    /// Request bytes buffered across uploads, else 503; at least --max-body-bytes
    /// [default: 67108864].
    #[arg(long, env = "SIGHTLINE_BUFFER_BUDGET_BYTES", value_name = "N")]
    pub buffer_budget_bytes: Option<usize>,
    /// Uploads decoded at once [default: one per core].
    #[arg(long, env = "SIGHTLINE_INGEST_WORKERS", value_name = "N")]
    pub ingest_workers: Option<usize>,
    /// Log format on stderr [default: text]; the level is set by RUST_LOG (default info).
    #[arg(long, env = "SIGHTLINE_LOG_FORMAT", value_enum)]
    pub log_format: Option<LogFormat>,
}

#[derive(Debug, Args)]
pub struct CheckArgs {
    /// Data contract (JSON) to validate against [default: the built-in contract].
    #[arg(long, env = "SIGHTLINE_CONTRACT", value_name = "FILE")]
    pub contract: Option<PathBuf>,
    /// Captured batches (.pb, .pb.gz, any gzip) and rows (.ndjson).
    #[arg(required = true, value_name = "FILES")]
    pub files: Vec<PathBuf>,
}

/// `serve`'s settings resolved, with what the server does not need.
#[derive(Debug)]
pub struct Resolved {
    pub settings: Settings,
    pub log_format: LogFormat,
}

impl ServeArgs {
    /// The settings of the `--config` file, if one is named. Its relative paths are
    /// relative to the file's directory, as a config file's readers expect.
    pub fn file(&self) -> Result<ServeArgs, String> {
        let Some(path) = &self.config else {
            return Ok(ServeArgs::default());
        };
        let text = read(path)?;
        let file: ServeArgs =
            toml::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))?;
        let dir = path.parent().unwrap_or(Path::new(""));
        let near = |p: Option<PathBuf>| p.map(|p| dir.join(p));
        Ok(ServeArgs {
            out: near(file.out),
            app_keys_file: near(file.app_keys_file),
            contract: near(file.contract),
            ..file
        })
    }

    /// These settings, each taken from `lower` where unset here.
    pub fn or(self, lower: ServeArgs) -> ServeArgs {
        ServeArgs {
            config: self.config.or(lower.config),
            listen: self.listen.or(lower.listen),
            out: self.out.or(lower.out),
            app_keys: self.app_keys.or(lower.app_keys),
            app_keys_file: self.app_keys_file.or(lower.app_keys_file),
            micro: self.micro.or(lower.micro),
            contract: self.contract.or(lower.contract),
            max_body_bytes: self.max_body_bytes.or(lower.max_body_bytes),
            allow_fault_injection: self.allow_fault_injection.or(lower.allow_fault_injection),
            max_connections: self.max_connections.or(lower.max_connections),
            header_timeout_ms: self.header_timeout_ms.or(lower.header_timeout_ms),
            body_timeout_ms: self.body_timeout_ms.or(lower.body_timeout_ms),
            buffer_budget_bytes: self.buffer_budget_bytes.or(lower.buffer_budget_bytes),
            ingest_workers: self.ingest_workers.or(lower.ingest_workers),
            log_format: self.log_format.or(lower.log_format),
        }
    }

    /// Defaults applied and every value checked; errors name the setting.
    pub fn resolve(self) -> Result<Resolved, String> {
        let defaults = Limits::default();
        let mut app_keys = self.app_keys.unwrap_or_default();
        if let Some(path) = &self.app_keys_file {
            app_keys.extend(keys_file(&read(path)?));
        }
        app_keys.retain(|k| !k.is_empty());
        if app_keys.is_empty() {
            return Err(
                "at least one app key is required (--app-key, SIGHTLINE_APP_KEYS, \
                        --app-keys-file or app_keys in the config file)"
                    .to_string(),
            );
        }
        let max_body_bytes = at_least_one("max_body_bytes", self.max_body_bytes, DEFAULT_MAX_BODY)?;
        let limits = Limits {
            max_connections: at_least_one(
                "max_connections",
                self.max_connections,
                defaults.max_connections,
            )?,
            header_timeout: millis(
                "header_timeout_ms",
                self.header_timeout_ms,
                defaults.header_timeout,
            )?,
            body_timeout: millis(
                "body_timeout_ms",
                self.body_timeout_ms,
                defaults.body_timeout,
            )?,
            buffer_budget_bytes: at_least_one(
                "buffer_budget_bytes",
                self.buffer_budget_bytes,
                defaults.buffer_budget_bytes,
            )?,
            ingest_workers: at_least_one(
                "ingest_workers",
                self.ingest_workers,
                defaults.ingest_workers,
            )?,
        };
        if limits.buffer_budget_bytes < max_body_bytes {
            // A body the budget can never hold would get 503 for ever instead of its 413.
            return Err(format!(
                "buffer_budget_bytes ({}) must be at least max_body_bytes ({max_body_bytes})",
                limits.buffer_budget_bytes
            ));
        }
        let listen = match self.listen {
            Some(addr) => addr,
            None => DEFAULT_LISTEN.parse().map_err(|e| format!("listen: {e}"))?,
        };
        let settings = Settings {
            listen,
            out_dir: self.out.unwrap_or_else(|| PathBuf::from(DEFAULT_OUT)),
            app_keys,
            micro: self.micro.unwrap_or(false),
            contract: load_contract(self.contract.as_deref())?,
            max_body_bytes,
            fault_injection: self.allow_fault_injection.unwrap_or(false),
            limits,
        };
        Ok(Resolved {
            settings,
            log_format: self.log_format.unwrap_or(LogFormat::Text),
        })
    }
}

/// The contract in `path`, or the built-in one.
pub fn load_contract(path: Option<&Path>) -> Result<Contract, String> {
    match path {
        None => Ok(Contract::default()),
        Some(p) => serde_json::from_str(&read(p)?).map_err(|e| format!("{}: {e}", p.display())),
    }
}

fn read(path: &Path) -> Result<String, String> {
    std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))
}

/// The keys of a keys file: one per line, surrounding blanks trimmed, `#` to the end of a
/// line a comment.
pub fn keys_file(text: &str) -> Vec<String> {
    text.lines()
        .map(|line| line.split('#').next().unwrap_or("").trim())
        .filter(|key| !key.is_empty())
        .map(str::to_string)
        .collect()
}

/// A count that must be at least 1.
fn at_least_one(name: &str, value: Option<usize>, default: usize) -> Result<usize, String> {
    match value {
        Some(0) => Err(format!("{name}: must be at least 1")),
        Some(n) => Ok(n),
        None => Ok(default),
    }
}

fn millis(name: &str, value: Option<u64>, default: Duration) -> Result<Duration, String> {
    match value {
        Some(0) => Err(format!("{name}: must be at least 1")),
        Some(ms) => Ok(Duration::from_millis(ms)),
        None => Ok(default),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    fn args(list: &[&str]) -> ServeArgs {
        let mut argv = vec!["sightline-collector", "serve"];
        argv.extend_from_slice(list);
        match Cli::try_parse_from(argv).map(|cli| cli.command) {
            Ok(Command::Serve(args)) => *args,
            other => panic!("not a serve command: {other:?}"),
        }
    }

    #[test]
    fn the_command_line_definition_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn a_flag_wins_over_the_file_and_the_file_over_the_default() {
        let file: ServeArgs = toml::from_str(
            "listen = \"127.0.0.1:9000\"\nmax_body_bytes = 1000\napp_keys = [\"from-file\"]\n",
        )
        .expect("a valid config");
        let merged = args(&["--listen", "127.0.0.1:7000"]).or(file).resolve();
        let settings = merged.expect("resolves").settings;
        assert_eq!(settings.listen.port(), 7000);
        assert_eq!(settings.max_body_bytes, 1000);
        assert_eq!(settings.app_keys, ["from-file"]);
        assert_eq!(settings.limits, Limits::default());
        assert_eq!(settings.out_dir, PathBuf::from(DEFAULT_OUT));
    }

    #[test]
    fn app_keys_repeat_as_flags() {
        let settings = args(&["--app-key", "a", "--app-key", "b"]).resolve();
        assert_eq!(settings.expect("resolves").settings.app_keys, ["a", "b"]);
    }

    #[test]
    fn a_keys_file_holds_one_key_per_line_with_comments() {
        assert_eq!(
            keys_file("# production\nkey-1\n\n  key-2  # tv app\n#old\n"),
            ["key-1", "key-2"]
        );
    }

    #[test]
    fn no_app_key_is_an_error_naming_every_source() {
        let error = args(&[]).resolve().expect_err("no key");
        assert!(error.contains("--app-key") && error.contains("SIGHTLINE_APP_KEYS"));
    }

    #[test]
    fn a_zero_limit_is_an_error_naming_the_setting() {
        let error = args(&["--app-key", "k", "--ingest-workers", "0"])
            .resolve()
            .expect_err("zero workers");
        assert_eq!(error, "ingest_workers: must be at least 1");
    }

    #[test]
    fn a_budget_below_the_body_limit_is_refused() {
        let error = args(&[
            "--app-key",
            "k",
            "--max-body-bytes",
            "2048",
            "--buffer-budget-bytes",
            "1024",
        ])
        .resolve()
        .expect_err("budget below body");
        assert!(error.contains("buffer_budget_bytes (1024)"), "{error}");
    }

    #[test]
    fn an_unknown_key_in_the_file_is_refused() {
        let error = toml::from_str::<ServeArgs>("listn = \"127.0.0.1:1\"\n").expect_err("typo");
        assert!(error.to_string().contains("listn"), "{error}");
    }

    #[test]
    fn switches_take_an_optional_value() {
        assert_eq!(args(&["--micro"]).micro, Some(true));
        assert_eq!(args(&["--micro=false"]).micro, Some(false));
        assert_eq!(args(&["--micro=yes"]).micro, Some(true));
        assert_eq!(args(&["--micro=0"]).micro, Some(false));
        assert_eq!(args(&[]).micro, None);
    }

    #[test]
    fn relative_paths_in_the_file_are_relative_to_the_file() {
        let dir = std::env::temp_dir().join(format!("sightline-config-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let config = dir.join("collector.toml");
        std::fs::write(&config, "out = \"rows\"\napp_keys_file = \"/etc/keys\"\n")
            .expect("write config");
        let with_file = ServeArgs {
            config: Some(config),
            ..ServeArgs::default()
        };
        let file = with_file.file().expect("reads");
        std::fs::remove_dir_all(&dir).expect("clean up");
        assert_eq!(file.out, Some(dir.join("rows")));
        assert_eq!(file.app_keys_file, Some(PathBuf::from("/etc/keys")));
    }

    #[test]
    fn the_help_states_each_default() {
        let help = Cli::command()
            .find_subcommand_mut("serve")
            .expect("serve")
            .render_long_help()
            .to_string();
        // The help is wrapped to the terminal: compare words, not lines.
        let help = help.split_whitespace().collect::<Vec<_>>().join(" ");
        let defaults = Limits::default();
        for default in [
            DEFAULT_LISTEN.to_string(),
            DEFAULT_OUT.to_string(),
            DEFAULT_MAX_BODY.to_string(),
            defaults.max_connections.to_string(),
            defaults.header_timeout.as_millis().to_string(),
            defaults.body_timeout.as_millis().to_string(),
            defaults.buffer_budget_bytes.to_string(),
        ] {
            assert!(
                help.contains(&format!("[default: {default}]")),
                "help lacks {default}"
            );
        }
    }
}
