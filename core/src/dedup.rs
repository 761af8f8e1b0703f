//! Dedup: within a page view, which impressions are repeats. An exact repeat (same item,
//! place and first-visible time: a host that logged twice) is always a duplicate; under
//! [`Reentry::OncePerPageView`] any second impression of the same item at the same place is.
//! Memory is bounded per page view.

use alloc::vec::Vec;

use crate::config::Reentry;

/// Impressions remembered per page view; a page with more distinct exposures than this is
/// not a page a person looks at, and further exposures are refused rather than unbounded.
pub const MAX_EXPOSURES_PER_PAGE_VIEW: usize = 4096;

/// What one page view has already logged.
#[derive(Clone, Debug, Default)]
pub struct Seen {
    /// (item, row, column, first-visible offset) of every logged impression.
    logged: Vec<(u32, u32, u32, u64)>,
}

/// The dedup decision for one impression.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    New,
    Duplicate,
    /// The page view's memory is full; the impression cannot be checked.
    Full,
}

impl Seen {
    /// Decides whether the impression is new and, if so, remembers it.
    pub fn admit(
        &mut self,
        rule: Reentry,
        item: u32,
        row: u32,
        column: u32,
        first: u64,
    ) -> Verdict {
        let repeat = self.logged.iter().any(|&(i, r, c, f)| {
            i == item && r == row && c == column && (f == first || rule == Reentry::OncePerPageView)
        });
        if repeat {
            return Verdict::Duplicate;
        }
        if self.logged.len() >= MAX_EXPOSURES_PER_PAGE_VIEW {
            return Verdict::Full;
        }
        self.logged.push((item, row, column, first));
        Verdict::New
    }

    /// Forgets everything for a new page view, keeping the capacity.
    pub fn clear(&mut self) {
        self.logged.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn once_per_page_view_refuses_a_second_exposure_of_the_same_item_and_place() {
        let mut seen = Seen::default();
        assert_eq!(
            seen.admit(Reentry::OncePerPageView, 1, 0, 0, 100),
            Verdict::New
        );
        assert_eq!(
            seen.admit(Reentry::OncePerPageView, 1, 0, 0, 900),
            Verdict::Duplicate
        );
        assert_eq!(
            seen.admit(Reentry::OncePerPageView, 1, 0, 1, 900),
            Verdict::New
        );
    }

    #[test]
    fn after_leaving_accepts_a_new_exposure_but_not_an_exact_repeat() {
        let mut seen = Seen::default();
        assert_eq!(
            seen.admit(Reentry::AfterLeaving, 1, 0, 0, 100),
            Verdict::New
        );
        assert_eq!(
            seen.admit(Reentry::AfterLeaving, 1, 0, 0, 900),
            Verdict::New
        );
        assert_eq!(
            seen.admit(Reentry::AfterLeaving, 1, 0, 0, 900),
            Verdict::Duplicate
        );
    }

    #[test]
    fn memory_is_bounded_per_page_view() {
        let mut seen = Seen::default();
        for i in 0..MAX_EXPOSURES_PER_PAGE_VIEW as u32 {
            assert_eq!(
                seen.admit(Reentry::OncePerPageView, i, 0, 0, 0),
                Verdict::New
            );
        }
        assert_eq!(
            seen.admit(Reentry::OncePerPageView, u32::MAX, 0, 0, 0),
            Verdict::Full
        );
        assert_eq!(
            seen.admit(Reentry::OncePerPageView, 0, 0, 0, 5),
            Verdict::Duplicate
        );
    }
}
