//! Outcomes as one number, so an input costs no object on the JavaScript heap. Every input
//! method returns an `f64`:
//!
//! | value | meaning |
//! | --- | --- |
//! | `>= 1` | accepted: the new page view's id, or the seq an impression was logged under |
//! | `0` | accepted (inputs that produce nothing) |
//! | [`SAMPLED_OUT`], [`DEDUPED`], [`DISABLED`] | an impression taken but not logged |
//! | `<= REFUSED` | refused by the rule whose code is `REFUSED - value` ([`rule_names`]) |

use alloc::string::String;
use alloc::vec::Vec;

use sightline_core::{DropReason, Recorded, Rule};

/// The input was taken and produced nothing to report.
pub const ACCEPTED: f64 = 0.0;
/// The session is sampled out: counted, not logged.
pub const SAMPLED_OUT: f64 = -1.0;
/// An exact repeat, or a re-entry the contract does not count.
pub const DEDUPED: f64 = -2.0;
/// Logging is off (opt-out): nothing recorded or counted.
pub const DISABLED: f64 = -3.0;
/// Refusals start here, far from the other outcomes so new ones fit between.
pub const REFUSED: f64 = -16.0;

/// A refusal by `rule`.
pub fn refused(rule: Rule) -> f64 {
    REFUSED - f64::from(rule.code())
}

/// Accepted, or refused by the rule.
pub fn unit(result: Result<(), Rule>) -> f64 {
    result.map_or_else(refused, |()| ACCEPTED)
}

/// What happened to an impression.
pub fn recorded(result: Result<Recorded, Rule>) -> f64 {
    match result {
        // Seqs stay far below 2^53 (`MAX_SEQ`): exact as an f64.
        Ok(Recorded::Logged { seq }) => seq as f64,
        Ok(Recorded::SampledOut) => SAMPLED_OUT,
        Ok(Recorded::Deduped) => DEDUPED,
        Ok(Recorded::Disabled) => DISABLED,
        Err(rule) => refused(rule),
    }
}

/// The names of the rules by code (`rule_names()[code]`), as counted and shown.
pub fn rule_names() -> Vec<String> {
    Rule::ALL.iter().map(|r| r.name().into()).collect()
}

/// The names of the drop reasons, in the order [`crate::Logger::stats`] lists them.
pub fn drop_names() -> Vec<String> {
    DropReason::ALL.iter().map(|r| r.name().into()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_refusal_decodes_to_its_rule_and_never_to_another_outcome() {
        for rule in Rule::ALL {
            let value = refused(rule);
            assert!(value <= REFUSED);
            assert_eq!(rule_names()[(REFUSED - value) as usize], rule.name());
        }
    }

    #[test]
    fn a_logged_seq_is_returned_as_itself() {
        assert_eq!(recorded(Ok(Recorded::Logged { seq: 7 })), 7.0);
        assert_eq!(recorded(Ok(Recorded::Deduped)), DEDUPED);
        assert_eq!(unit(Ok(())), ACCEPTED);
    }
}
