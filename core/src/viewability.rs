//! Viewability: turns visibility and focus changes of the items on one page view into
//! qualified impressions. An exposure starts when the visible share reaches the contract's
//! threshold and ends when it drops below it or the page view ends; it qualifies when the
//! item stayed at or above the threshold for the contract's minimum time. While the app is
//! hidden the timers pause (not reset); exposures that already qualified are emitted at
//! once when the app is hidden, because a hidden app may be killed without notice.
//! TV: focus time is measured per exposure and reported as the focused duration.

use alloc::vec::Vec;

use crate::dedup::MAX_EXPOSURES_PER_PAGE_VIEW;

/// Identity of a tracked item within its page view: interned item id, row, column.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Place {
    pub item: u32,
    pub row: u32,
    pub column: u32,
}

/// A qualified exposure, ready to become an impression.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Qualified {
    pub place: Place,
    /// Interned artwork id plus one; 0 for none.
    pub artwork: u32,
    /// Monotonic time the exposure started.
    pub first_visible_mono: u64,
    pub visible_ms: u64,
    pub max_visible_pct: u32,
    pub focused_ms: u64,
}

#[derive(Clone, Copy, Debug)]
struct Exposure {
    place: Place,
    artwork: u32,
    /// Start of the current exposure; `None` while below the threshold.
    since: Option<u64>,
    /// Start of the current running stretch (exposed and app visible).
    running: Option<u64>,
    visible_ms: u64,
    max_pct: u32,
    has_focus: bool,
    focus_running: Option<u64>,
    focused_ms: u64,
    emitted: bool,
}

/// The tracker is full: the page view already tracks [`MAX_EXPOSURES_PER_PAGE_VIEW`] places.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TrackerFull;

/// Exposure state of one page view.
#[derive(Clone, Debug, Default)]
pub struct Tracker {
    exposures: Vec<Exposure>,
    hidden: bool,
}

impl Tracker {
    /// A tracker for a page view that starts while the app is hidden or visible.
    pub fn new(hidden: bool) -> Self {
        Tracker {
            exposures: Vec::new(),
            hidden,
        }
    }

    /// Forgets every exposure for a new page view, keeping the capacity.
    pub fn reset(&mut self, hidden: bool) {
        self.exposures.clear();
        self.hidden = hidden;
    }

    /// The visible share of `place` is now `pct` percent.
    #[allow(clippy::too_many_arguments)]
    pub fn visibility(
        &mut self,
        place: Place,
        artwork: u32,
        pct: u32,
        threshold_pct: u32,
        min_ms: u64,
        now: u64,
        out: &mut Vec<Qualified>,
    ) -> Result<(), TrackerFull> {
        let hidden = self.hidden;
        let e = self.entry(place, artwork)?;
        e.artwork = artwork;
        if pct >= threshold_pct {
            if e.since.is_none() {
                e.since = Some(now);
                e.running = (!hidden).then_some(now);
                e.visible_ms = 0;
                e.max_pct = pct;
                e.focused_ms = 0;
                e.focus_running = (e.has_focus && !hidden).then_some(now);
                e.emitted = false;
            }
            e.max_pct = e.max_pct.max(pct);
        } else if e.since.is_some() {
            finish(e, min_ms, now, out);
        }
        Ok(())
    }

    /// `place` gained or lost focus (TV).
    pub fn focus(&mut self, place: Place, focused: bool, now: u64) -> Result<(), TrackerFull> {
        let hidden = self.hidden;
        let e = self.entry(place, 0)?;
        if focused == e.has_focus {
            return Ok(());
        }
        e.has_focus = focused;
        if focused {
            e.focus_running = (!hidden && e.since.is_some()).then_some(now);
        } else if let Some(start) = e.focus_running.take() {
            e.focused_ms += now.saturating_sub(start);
        }
        Ok(())
    }

    /// The app went to the background: pause every timer and emit what already qualified.
    pub fn hide(&mut self, min_ms: u64, now: u64, out: &mut Vec<Qualified>) {
        if self.hidden {
            return;
        }
        self.hidden = true;
        for e in self.exposures.iter_mut().filter(|e| e.since.is_some()) {
            pause(e, now);
            if !e.emitted && e.visible_ms >= min_ms {
                out.push(qualified(e));
                e.emitted = true;
            }
        }
    }

    /// The app is visible again: resume the timers of ongoing exposures.
    pub fn show(&mut self, now: u64) {
        if !self.hidden {
            return;
        }
        self.hidden = false;
        for e in self.exposures.iter_mut().filter(|e| e.since.is_some()) {
            e.running = Some(now);
            if e.has_focus {
                e.focus_running = Some(now);
            }
        }
    }

    /// The page view ended: every ongoing exposure ends now.
    pub fn end(&mut self, min_ms: u64, now: u64, out: &mut Vec<Qualified>) {
        for e in self.exposures.iter_mut().filter(|e| e.since.is_some()) {
            finish(e, min_ms, now, out);
        }
    }

    fn entry(&mut self, place: Place, artwork: u32) -> Result<&mut Exposure, TrackerFull> {
        let index = match self.exposures.iter().position(|e| e.place == place) {
            Some(i) => i,
            None => {
                if self.exposures.len() >= MAX_EXPOSURES_PER_PAGE_VIEW {
                    return Err(TrackerFull);
                }
                self.exposures.push(Exposure {
                    place,
                    artwork,
                    since: None,
                    running: None,
                    visible_ms: 0,
                    max_pct: 0,
                    has_focus: false,
                    focus_running: None,
                    focused_ms: 0,
                    emitted: false,
                });
                self.exposures.len() - 1
            }
        };
        Ok(&mut self.exposures[index])
    }
}

fn pause(e: &mut Exposure, now: u64) {
    if let Some(start) = e.running.take() {
        e.visible_ms += now.saturating_sub(start);
    }
    if let Some(start) = e.focus_running.take() {
        e.focused_ms += now.saturating_sub(start);
    }
}

fn finish(e: &mut Exposure, min_ms: u64, now: u64, out: &mut Vec<Qualified>) {
    pause(e, now);
    if !e.emitted && e.visible_ms >= min_ms {
        out.push(qualified(e));
    }
    e.since = None;
    e.emitted = false;
}

fn qualified(e: &Exposure) -> Qualified {
    Qualified {
        place: e.place,
        artwork: e.artwork,
        first_visible_mono: e.since.unwrap_or(0),
        visible_ms: e.visible_ms,
        max_visible_pct: e.max_pct,
        focused_ms: e.focused_ms.min(e.visible_ms),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const AT: Place = Place {
        item: 7,
        row: 1,
        column: 2,
    };

    fn run(steps: &[(u64, u32)], min_ms: u64) -> Vec<Qualified> {
        let mut t = Tracker::new(false);
        let mut out = Vec::new();
        for &(now, pct) in steps {
            t.visibility(AT, 0, pct, 50, min_ms, now, &mut out).unwrap();
        }
        out
    }

    #[test]
    fn an_item_visible_long_enough_above_the_threshold_qualifies_when_it_leaves() {
        let out = run(&[(1000, 60), (1500, 100), (2600, 0)], 1000);
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].first_visible_mono, 1000);
        assert_eq!(out[0].visible_ms, 1600);
        assert_eq!(out[0].max_visible_pct, 100);
    }

    #[test]
    fn a_brief_exposure_does_not_qualify() {
        assert!(run(&[(0, 100), (999, 0)], 1000).is_empty());
    }

    #[test]
    fn dipping_below_the_threshold_restarts_the_continuous_timer() {
        let out = run(&[(0, 100), (800, 40), (900, 100), (1700, 0)], 1000);
        assert!(
            out.is_empty(),
            "two 800 ms stretches are not 1 s continuous"
        );
    }

    #[test]
    fn below_threshold_visibility_never_starts_an_exposure() {
        assert!(run(&[(0, 49), (5000, 0)], 1000).is_empty());
    }

    #[test]
    fn hidden_time_pauses_the_timer_instead_of_counting() {
        let mut t = Tracker::new(false);
        let mut out = Vec::new();
        t.visibility(AT, 0, 100, 50, 1000, 0, &mut out).unwrap();
        t.hide(1000, 600, &mut out);
        t.show(60_000);
        t.visibility(AT, 0, 0, 50, 1000, 60_500, &mut out).unwrap();
        assert_eq!(out.len(), 1);
        assert_eq!(
            out[0].visible_ms, 1100,
            "600 ms before hiding + 500 ms after"
        );
    }

    #[test]
    fn hiding_emits_an_already_qualified_exposure_once() {
        let mut t = Tracker::new(false);
        let mut out = Vec::new();
        t.visibility(AT, 0, 100, 50, 1000, 0, &mut out).unwrap();
        t.hide(1000, 2000, &mut out);
        assert_eq!(out.len(), 1);
        t.show(3000);
        t.end(1000, 9000, &mut out);
        assert_eq!(out.len(), 1, "the same exposure is not emitted again");
    }

    #[test]
    fn page_view_end_closes_every_ongoing_exposure() {
        let mut t = Tracker::new(false);
        let mut out = Vec::new();
        let other = Place { column: 3, ..AT };
        t.visibility(AT, 0, 100, 50, 1000, 0, &mut out).unwrap();
        t.visibility(other, 0, 100, 50, 1000, 500, &mut out)
            .unwrap();
        t.end(1000, 1400, &mut out);
        assert_eq!(
            out.len(),
            1,
            "only the exposure that lasted 1400 ms qualifies"
        );
        assert_eq!(out[0].place, AT);
    }

    #[test]
    fn focus_time_is_measured_within_the_exposure() {
        let mut t = Tracker::new(false);
        let mut out = Vec::new();
        t.visibility(AT, 0, 100, 50, 1000, 0, &mut out).unwrap();
        t.focus(AT, true, 200).unwrap();
        t.focus(AT, false, 1200).unwrap();
        t.focus(AT, true, 1500).unwrap();
        t.visibility(AT, 0, 0, 50, 1000, 2000, &mut out).unwrap();
        assert_eq!(out[0].focused_ms, 1500);
    }

    #[test]
    fn a_page_view_tracks_a_bounded_number_of_places() {
        let mut t = Tracker::new(false);
        let mut out = Vec::new();
        for i in 0..MAX_EXPOSURES_PER_PAGE_VIEW as u32 {
            let place = Place { item: i, ..AT };
            t.visibility(place, 0, 10, 50, 1000, 0, &mut out).unwrap();
        }
        let one_more = Place {
            item: u32::MAX,
            ..AT
        };
        assert_eq!(
            t.visibility(one_more, 0, 10, 50, 1000, 0, &mut out),
            Err(TrackerFull)
        );
    }
}
