//! What became of the exposures the logger tracked itself (from visibility and focus):
//! logged under a seq, deduped, sampled out, or refused by a rule. Hosts that show it (a
//! debug overlay outlining each tile with its state) turn it on; it is off by default, so
//! production hosts pay nothing, and bounded, dropping the oldest.

use alloc::collections::VecDeque;
use alloc::string::String;

use crate::contract::Rule;
use crate::logger::Recorded;

/// Outcomes kept for the host to poll: several screens of tiles; a host that does not poll
/// loses the oldest, never memory.
pub const MAX_OUTCOMES: usize = 256;

/// One tracked exposure's outcome.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ExposureOutcome {
    pub page_view: u64,
    pub item_id: String,
    pub row: u32,
    pub column: u32,
    pub result: Result<Recorded, Rule>,
}

#[derive(Default)]
pub(super) struct Outcomes {
    on: bool,
    list: VecDeque<ExposureOutcome>,
}

impl Outcomes {
    pub(super) fn set(&mut self, on: bool) {
        self.on = on;
        if !on {
            self.list = VecDeque::new();
        }
    }

    /// Whether outcomes are kept (the caller skips building one otherwise).
    pub(super) fn on(&self) -> bool {
        self.on
    }

    pub(super) fn push(&mut self, outcome: ExposureOutcome) {
        if self.list.len() == MAX_OUTCOMES {
            self.list.pop_front();
        }
        self.list.push_back(outcome);
    }

    pub(super) fn pop(&mut self) -> Option<ExposureOutcome> {
        self.list.pop_front()
    }
}
