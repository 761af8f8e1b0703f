//! The one exception type, with a variant per surface: configuration, contract rule, API
//! misuse, store, a stopped runtime, an internal error. Rules carry their stable name
//! (`below_threshold`), which is what apps match on and what counters are keyed by.

use std::fmt;

use sightline_core::runtime::DriverError;
use sightline_core::{InputError, Rule, RuleKind, StartError};

/// Why a call did not do what was asked.
#[derive(Clone, Debug, PartialEq, Eq, uniffi::Error)]
pub enum SightlineError {
    /// The configuration is unusable (checked at start).
    Config { message: String },
    /// The data breaks a rule of the contract; `rule` is its stable name. Counted.
    Contract { rule: String, message: String },
    /// The API was used wrongly: an unknown or ended page view, a result for an upload or
    /// store operation not in flight. `what` names it (a rule name when it is counted).
    Misuse { what: String, message: String },
    /// The store could not be read at start, or a stored value is unusable.
    Store { message: String },
    /// The runtime was shut down, or its thread is gone; the call had no effect.
    Stopped { message: String },
    /// A bug inside Sightline (a panic was caught); the call had no effect and the logger
    /// refuses further calls. Please report it.
    Internal { message: String },
}

impl fmt::Display for SightlineError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SightlineError::Config { message } => write!(f, "invalid configuration: {message}"),
            SightlineError::Contract { message, .. } => write!(f, "refused: {message}"),
            SightlineError::Misuse { message, .. } => write!(f, "misuse: {message}"),
            SightlineError::Store { message } => write!(f, "store: {message}"),
            SightlineError::Stopped { message } => write!(f, "stopped: {message}"),
            SightlineError::Internal { message } => write!(f, "internal error: {message}"),
        }
    }
}

impl std::error::Error for SightlineError {}

impl From<Rule> for SightlineError {
    fn from(rule: Rule) -> Self {
        let (name, message) = (rule.name().to_string(), rule.to_string());
        match rule.kind() {
            RuleKind::Misuse => SightlineError::Misuse {
                what: name,
                message,
            },
            RuleKind::Contract | RuleKind::Collector => SightlineError::Contract {
                rule: name,
                message,
            },
        }
    }
}

impl From<InputError> for SightlineError {
    fn from(e: InputError) -> Self {
        match e {
            InputError::Contract(rule) => rule.into(),
            InputError::Misuse(m) => m.rule().into(),
            InputError::UnknownUpload(_) => SightlineError::Misuse {
                what: "unknown_upload".into(),
                message: e.to_string(),
            },
            InputError::UnknownStoreOp(_) => SightlineError::Misuse {
                what: "unknown_store_op".into(),
                message: e.to_string(),
            },
        }
    }
}

impl From<StartError> for SightlineError {
    fn from(e: StartError) -> Self {
        match e {
            StartError::Config(c) => SightlineError::Config {
                message: c.to_string(),
            },
            StartError::Store(s) => SightlineError::Store {
                message: s.to_string(),
            },
        }
    }
}

impl From<DriverError> for SightlineError {
    fn from(e: DriverError) -> Self {
        match e {
            DriverError::Config(c) => SightlineError::Config {
                message: c.to_string(),
            },
            DriverError::Store(s) => SightlineError::Store {
                message: s.to_string(),
            },
            DriverError::Rule(rule) => rule.into(),
            DriverError::Spawn(_) | DriverError::Stopped => SightlineError::Stopped {
                message: e.to_string(),
            },
        }
    }
}

/// A logger lock poisoned by a panic: the state may be half-updated, so every later call
/// is refused rather than run on it.
pub(crate) fn poisoned() -> SightlineError {
    SightlineError::Internal {
        message: "a previous call panicked inside Sightline; the logger is unusable".into(),
    }
}
