//! Seeded reference workload: realistic impression-producing UI activity.
//!
//! One seed fully determines the output (integer arithmetic throughout; the only
//! transcendental call is `powf` for the Zipf weights, whose last-ulp differences could move a
//! draw only if a uniform landed exactly on a cumulative boundary). Benchmarks (bytes per
//! impression), simulation tests and the demo all replay the same stream.
//!
//! Model:
//! - A catalog of titles, each with 1-3 artwork variants; pages draw titles Zipf-like.
//! - Page views are grouped into sessions of 3-15 pages (the last session may be cut short to hit
//!   `page_views` exactly); sessions rotate through the platforms; every session has its own
//!   timeline starting at 0 ms.
//! - Each page is a `rows x columns` grid. Web and mobile show about 2.5 rows by 5.5 columns:
//!   the user scrolls down row by row (animated over a few frames), dwells log-normally, sometimes
//!   scrolls a row sideways and sometimes leaves early. TV shows two whole rows and moves focus
//!   item to item, scrolling a row sideways when focus passes the screen edge.
//! - Visibility events fire on 60 Hz frame boundaries whenever an item's visible fraction changes;
//!   at page end every visible item gets a 0.0 event. App-hidden intervals do not alter the
//!   events: consumers must mask them with `Page::hidden`.

use crate::rng::Rng;
use std::collections::HashSet;

/// Page names a session moves through; sessions open on the first.
const PAGE_NAMES: [&str; 4] = ["home", "search", "browse", "detail"];
/// Platforms in session rotation order.
const PLATFORMS: [Platform; 3] = [Platform::Tv, Platform::Mobile, Platform::Web];
/// Page views per session, inclusive.
const SESSION_PAGES: (u64, u64) = (3, 15);
/// Idle gap before each page of a session (ms), inclusive.
const PAGE_GAP_MS: (u64, u64) = (500, 20_000);
/// Artwork variants per title, inclusive.
const ARTWORK_VARIANTS: (u64, u64) = (1, 3);
/// Time from page start to first render (ms), inclusive.
const LOAD_MS: (u64, u64) = (150, 900);
/// A 60 Hz frame is 50/3 ms; frame times are `frame * 50 / 3`, i.e. 16/17 ms steps.
const FRAME_MS: (u64, u64) = (50, 3);
/// Row dwell quantiles (ms) at 0%, 10%, ..., 100%: log-normal with median 2.5 s and sigma ~1,
/// so ~15% of dwells are under 1 s and ~6% are flings under 0.5 s.
const DWELL_DECILES_MS: [u64; 11] = [
    120, 700, 1080, 1480, 1940, 2500, 3220, 4220, 5800, 9000, 30_000,
];
/// Grid positions are in tenths of a cell, so visible fractions are exact tenths per axis.
const UNITS: u32 = 10;
/// Web/mobile viewport height: 2.5 rows.
const VIEW_HEIGHT: u32 = 25;
/// Web/mobile viewport width: 5.5 columns, so the rightmost column shows half.
const VIEW_WIDTH: u32 = 55;
/// A scroll step moves one row +- this many tenths, leaving a partial row at the bottom edge.
const SCROLL_JITTER: u64 = 4;
/// Frames a scroll animation takes, inclusive.
const SCROLL_FRAMES: (u64, u64) = (3, 6);
/// Chance that a row dwell includes a horizontal scroll of a visible row.
const SIDE_SCROLL_CHANCE: f64 = 0.3;
/// Chance of leaving the page after each row dwell instead of scrolling on.
const LEAVE_CHANCE: f64 = 0.12;
/// Share of pages scheduled to include one app-hidden interval.
const HIDDEN_PAGE_SHARE: f64 = 0.05;
/// The hidden interval follows one of the first few dwells (those a page is most likely to reach).
const HIDDEN_DWELLS: u64 = 3;
/// Length of an app-hidden interval (ms), inclusive.
const HIDDEN_MS: (u64, u64) = (2_000, 60_000);
/// TV viewport height: the focused row and the next one, both whole.
const TV_VIEW_HEIGHT: u32 = 20;
/// TV viewport width: six whole columns; TV layouts snap, so items are fully on or off screen.
const TV_VIEW_WIDTH: u32 = 60;
/// Focus moves during one TV row dwell, inclusive.
const TV_FOCUS_MOVES: (u64, u64) = (1, 6);
/// Visible percentage of a fully visible item (tenths of a row times tenths of a column).
const FULL: f32 = 100.0;

/// Parameters of a workload; `Default` holds the reference shape.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct WorkloadSpec {
    pub seed: u64,
    pub page_views: usize,
    pub rows: u32,
    pub columns: u32,
    pub catalog_size: u32,
    pub zipf_exponent: f64,
}

impl Default for WorkloadSpec {
    fn default() -> Self {
        Self {
            seed: 0,
            page_views: 1000,
            rows: 8,
            columns: 12,
            catalog_size: 20_000,
            zipf_exponent: 1.0,
        }
    }
}

impl WorkloadSpec {
    /// The pinned reference workload: default shape, seed 42.
    pub fn reference() -> Self {
        Self {
            seed: 42,
            ..Self::default()
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Platform {
    Tv,
    Mobile,
    Web,
}

/// A title shown in a grid cell, with the artwork variant chosen for this page.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Item {
    pub id: String,
    pub artwork_id: String,
}

/// A change of one cell's visibility (or, on TV, focus) at an absolute session time.
#[derive(Debug, Clone, PartialEq)]
pub struct VisibilityEvent {
    pub at_ms: u64,
    pub row: u32,
    pub column: u32,
    /// Visible fraction after the change, 0.0..=1.0.
    pub fraction: f32,
    /// TV only: focus gained (`Some(true)`) or lost (`Some(false)`); `None` for visibility changes.
    pub focused: Option<bool>,
}

/// One page view.
#[derive(Debug, Clone, PartialEq)]
pub struct Page {
    pub session: u32,
    pub platform: Platform,
    pub page_name: &'static str,
    /// 32 lowercase hex characters.
    pub request_id: String,
    /// Start on the session's timeline (ms); pages of a session do not overlap.
    pub start_ms: u64,
    pub duration_ms: u64,
    /// `rows x columns` items, no title twice.
    pub rows: Vec<Vec<Item>>,
    /// Sorted by `at_ms`, all within `[start_ms, start_ms + duration_ms]`.
    pub events: Vec<VisibilityEvent>,
    /// App-hidden intervals `[from, to)` in absolute ms, within the page.
    pub hidden: Vec<(u64, u64)>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Workload {
    pub spec: WorkloadSpec,
    pub pages: Vec<Page>,
}

impl Workload {
    /// Number of sessions (session numbers are `0..sessions()`).
    pub fn sessions(&self) -> u32 {
        self.pages.last().map_or(0, |page| page.session + 1)
    }

    /// The pages of each session, in session order.
    pub fn by_session(&self) -> Vec<&[Page]> {
        self.pages.chunk_by(|a, b| a.session == b.session).collect()
    }
}

/// Generates the workload `spec` describes. Panics if a page needs more titles than the catalog has.
pub fn generate(spec: &WorkloadSpec) -> Workload {
    let cells = u64::from(spec.rows) * u64::from(spec.columns);
    assert!(cells > 0, "a page needs at least one row and one column");
    assert!(
        u64::from(spec.catalog_size) >= cells,
        "catalog of {} cannot fill {cells} distinct cells",
        spec.catalog_size
    );
    let mut rng = Rng::new(spec.seed);
    let catalog = Catalog::new(&mut rng, spec);
    let mut pages = Vec::with_capacity(spec.page_views);
    for session in 0u32.. {
        let platform = PLATFORMS[session as usize % PLATFORMS.len()];
        let mut clock = 0;
        for index in 0..rng.range(SESSION_PAGES.0, SESSION_PAGES.1) {
            if pages.len() == spec.page_views {
                return Workload { spec: *spec, pages };
            }
            clock += rng.range(PAGE_GAP_MS.0, PAGE_GAP_MS.1);
            let page_name = match index {
                0 => PAGE_NAMES[0],
                _ => PAGE_NAMES[rng.below(PAGE_NAMES.len() as u64) as usize],
            };
            let request_id = format!("{:016x}{:016x}", rng.next_u64(), rng.next_u64());
            let rows = catalog.grid(&mut rng, spec.rows, spec.columns);
            let mut sim = Sim::new(&mut rng, spec, platform, clock);
            match platform {
                Platform::Tv => browse_tv(&mut sim),
                Platform::Mobile | Platform::Web => scroll_pane(&mut sim),
            }
            let (duration_ms, events, hidden) = sim.finish();
            let start_ms = clock;
            clock += duration_ms;
            pages.push(Page {
                session,
                platform,
                page_name,
                request_id,
                start_ms,
                duration_ms,
                rows,
                events,
                hidden,
            });
        }
    }
    unreachable!("sessions are unbounded")
}

/// Titles (ranked by popularity) with their artwork variants and a cumulative Zipf table.
struct Catalog {
    titles: Vec<(String, Vec<String>)>,
    cumulative: Vec<f64>,
}

impl Catalog {
    fn new(rng: &mut Rng, spec: &WorkloadSpec) -> Self {
        let (mut title_numbers, mut art_numbers) = (HashSet::new(), HashSet::new());
        let titles = (0..spec.catalog_size)
            .map(|_| {
                let id = unique(rng, &mut title_numbers, 10_000_000, 99_999_999);
                let arts = (0..rng.range(ARTWORK_VARIANTS.0, ARTWORK_VARIANTS.1))
                    .map(|_| format!("art:{:09}", unique(rng, &mut art_numbers, 0, 999_999_999)))
                    .collect();
                (format!("title:{id}"), arts)
            })
            .collect();
        let mut total = 0.0;
        let cumulative = (1..=spec.catalog_size)
            .map(|rank| {
                total += f64::from(rank).powf(-spec.zipf_exponent);
                total
            })
            .collect();
        Self { titles, cumulative }
    }

    /// A `rows x columns` grid of Zipf-drawn titles, redrawing repeats, each with a random artwork.
    fn grid(&self, rng: &mut Rng, rows: u32, columns: u32) -> Vec<Vec<Item>> {
        let total = self.cumulative[self.cumulative.len() - 1];
        let mut used = HashSet::new();
        let mut item = || loop {
            let target = rng.unit() * total;
            let index = self.cumulative.partition_point(|&c| c <= target);
            let (id, arts) = &self.titles[index.min(self.titles.len() - 1)];
            if used.insert(id) {
                let artwork_id = arts[rng.below(arts.len() as u64) as usize].clone();
                return Item {
                    id: id.clone(),
                    artwork_id,
                };
            }
        };
        (0..rows)
            .map(|_| (0..columns).map(|_| item()).collect())
            .collect()
    }
}

/// A number in `lo..=hi` not drawn before.
fn unique(rng: &mut Rng, seen: &mut HashSet<u64>, lo: u64, hi: u64) -> u64 {
    loop {
        let n = rng.range(lo, hi);
        if seen.insert(n) {
            return n;
        }
    }
}

fn frames_to_ms(frames: u64) -> u64 {
    frames * FRAME_MS.0 / FRAME_MS.1
}

fn ms_to_frames(ms: u64) -> u64 {
    ms * FRAME_MS.1 / FRAME_MS.0
}

/// Viewport over the grid, in tenths of a cell: vertical offset, per-row horizontal offsets, size.
struct View {
    top: u32,
    lefts: Vec<u32>,
    height: u32,
    width: u32,
}

impl View {
    /// Visible percentage of a cell: the product of its vertical and horizontal overlap.
    fn percent(&self, row: u32, column: u32) -> u8 {
        let overlap = |cell: u32, view: u32, len: u32| {
            let (cell_start, cell_end) = (cell * UNITS, cell * UNITS + UNITS);
            cell_end
                .min(view + len)
                .saturating_sub(view.max(cell_start))
        };
        let vertical = overlap(row, self.top, self.height);
        (vertical * overlap(column, self.lefts[row as usize], self.width)) as u8
    }
}

/// Per-page simulation: the clock in frames since page start, the viewport, each cell's visible
/// percentage, and the events and hidden intervals recorded so far.
struct Sim<'a> {
    rng: &'a mut Rng,
    start_ms: u64,
    rows: u32,
    columns: u32,
    frame: u64,
    view: View,
    shown: Vec<u8>,
    events: Vec<VisibilityEvent>,
    dwells: u64,
    hide_after: Option<u64>,
    hidden: Vec<(u64, u64)>,
}

impl<'a> Sim<'a> {
    /// A page that has just loaded and rendered its first screen.
    fn new(rng: &'a mut Rng, spec: &WorkloadSpec, platform: Platform, start_ms: u64) -> Self {
        let (height, width) = match platform {
            Platform::Tv => (TV_VIEW_HEIGHT, TV_VIEW_WIDTH),
            Platform::Mobile | Platform::Web => (VIEW_HEIGHT, VIEW_WIDTH),
        };
        let hide_after = rng
            .chance(HIDDEN_PAGE_SHARE)
            .then(|| rng.below(HIDDEN_DWELLS));
        let frame = ms_to_frames(rng.range(LOAD_MS.0, LOAD_MS.1));
        let cells = (spec.rows * spec.columns) as usize;
        let lefts = vec![0; spec.rows as usize];
        let mut sim = Self {
            rng,
            start_ms,
            rows: spec.rows,
            columns: spec.columns,
            frame,
            view: View {
                top: 0,
                lefts,
                height,
                width,
            },
            shown: vec![0; cells],
            events: Vec::new(),
            dwells: 0,
            hide_after,
            hidden: Vec::new(),
        };
        sim.render();
        sim
    }

    fn now_ms(&self) -> u64 {
        self.start_ms + frames_to_ms(self.frame)
    }

    /// Re-evaluates every cell against the viewport and records each changed fraction.
    fn render(&mut self) {
        let at_ms = self.now_ms();
        for (cell, shown) in (0u32..).zip(self.shown.iter_mut()) {
            let (row, column) = (cell / self.columns, cell % self.columns);
            let now = self.view.percent(row, column);
            if now != *shown {
                *shown = now;
                let fraction = f32::from(now) / FULL;
                let focused = None;
                self.events.push(VisibilityEvent {
                    at_ms,
                    row,
                    column,
                    fraction,
                    focused,
                });
            }
        }
    }

    fn focus(&mut self, row: u32, column: u32, focused: bool) {
        let fraction = f32::from(self.shown[(row * self.columns + column) as usize]) / FULL;
        let (at_ms, focused) = (self.now_ms(), Some(focused));
        self.events.push(VisibilityEvent {
            at_ms,
            row,
            column,
            fraction,
            focused,
        });
    }

    /// Animates a scroll over a few frames; `place(view, i, n)` positions frame `i` of `n`.
    fn glide(&mut self, place: impl Fn(&mut View, u32, u32)) {
        let frames = self.rng.range(SCROLL_FRAMES.0, SCROLL_FRAMES.1) as u32;
        for i in 1..=frames {
            place(&mut self.view, i, frames);
            self.frame += 1;
            self.render();
        }
    }

    /// A row dwell in frames, interpolated between the dwell deciles.
    fn dwell(&mut self) -> u64 {
        let per_mille = self.rng.below(1000);
        let (decile, within) = ((per_mille / 100) as usize, per_mille % 100);
        let (lo, hi) = (DWELL_DECILES_MS[decile], DWELL_DECILES_MS[decile + 1]);
        ms_to_frames(lo + (hi - lo) * within / 100)
    }

    /// Ends a dwell `frames` from now; the scheduled hidden interval, if due, follows it.
    fn wait(&mut self, frames: u64) {
        self.frame += frames;
        if self.hide_after == Some(self.dwells) {
            let from = self.now_ms();
            self.frame += ms_to_frames(self.rng.range(HIDDEN_MS.0, HIDDEN_MS.1));
            self.hidden.push((from, self.now_ms()));
        }
        self.dwells += 1;
    }

    /// Ends the page: an empty viewport hides every item still visible. Returns the duration,
    /// the events sorted by time and the hidden intervals.
    fn finish(mut self) -> (u64, Vec<VisibilityEvent>, Vec<(u64, u64)>) {
        self.view.height = 0;
        self.render();
        self.events.sort_by_key(|event| event.at_ms);
        (frames_to_ms(self.frame), self.events, self.hidden)
    }
}

/// Web/mobile: scroll down row by row, sometimes sideways, sometimes leave early.
fn scroll_pane(sim: &mut Sim) {
    let max_top = (sim.rows * UNITS).saturating_sub(VIEW_HEIGHT);
    let max_left = (sim.columns * UNITS).saturating_sub(VIEW_WIDTH);
    loop {
        let mut dwell = sim.dwell();
        if max_left > 0 && sim.rng.chance(SIDE_SCROLL_CHANCE) {
            let row = (sim.view.top / UNITS + sim.rng.below(2) as u32).min(sim.rows - 1) as usize;
            sim.frame += dwell / 3;
            dwell -= dwell / 3;
            sim.glide(|view, i, n| view.lefts[row] = max_left * i / n);
        }
        sim.wait(dwell);
        if sim.view.top == max_top || sim.rng.chance(LEAVE_CHANCE) {
            return;
        }
        let step = u64::from(UNITS) + sim.rng.range(0, 2 * SCROLL_JITTER) - SCROLL_JITTER;
        let (from, to) = (sim.view.top, (sim.view.top + step as u32).min(max_top));
        sim.glide(|view, i, n| view.top = from + (to - from) * i / n);
    }
}

/// TV: focus walks right along a row a few times per dwell (the row scrolls to keep it on
/// screen), then moves down a row.
fn browse_tv(sim: &mut Sim) {
    let max_top = (sim.rows * UNITS).saturating_sub(TV_VIEW_HEIGHT);
    let (mut row, mut column) = (0, 0);
    sim.focus(row, column, true);
    loop {
        let (dwell, dwell_start) = (sim.dwell(), sim.frame);
        let moves = sim.rng.range(TV_FOCUS_MOVES.0, TV_FOCUS_MOVES.1);
        let moves = moves.min(u64::from(sim.columns - 1));
        for step in 1..=moves {
            sim.frame = dwell_start + dwell * step / (moves + 1);
            sim.focus(row, column, false);
            column += 1;
            let left = &mut sim.view.lefts[row as usize];
            *left = (*left).max(((column + 1) * UNITS).saturating_sub(TV_VIEW_WIDTH));
            sim.render();
            sim.focus(row, column, true);
        }
        sim.frame = dwell_start;
        sim.wait(dwell);
        if row + 1 == sim.rows || sim.rng.chance(LEAVE_CHANCE) {
            break;
        }
        sim.focus(row, column, false);
        (row, column) = (row + 1, 0);
        sim.view.top = (row * UNITS).min(max_top);
        sim.render();
        sim.focus(row, column, true);
    }
    sim.focus(row, column, false);
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn small(seed: u64) -> Workload {
        generate(&WorkloadSpec {
            seed,
            page_views: 150,
            ..WorkloadSpec::default()
        })
    }

    /// Visibility (not focus) events of one cell, in order.
    fn cell_events(page: &Page, cell: u32) -> impl Iterator<Item = &VisibilityEvent> {
        let (row, column) = (cell / 12, cell % 12);
        let same = move |e: &&VisibilityEvent| e.row == row && e.column == column;
        page.events
            .iter()
            .filter(same)
            .filter(|e| e.focused.is_none())
    }

    /// Whether a cell was at least half visible for at least 1 s without interruption.
    fn qualifies(page: &Page, cell: u32) -> bool {
        let mut since = None;
        for e in cell_events(page, cell) {
            match (since, e.fraction >= 0.5) {
                (None, true) => since = Some(e.at_ms),
                (Some(from), false) if e.at_ms - from >= 1000 => return true,
                (Some(_), false) => since = None,
                _ => {}
            }
        }
        false
    }

    #[test]
    fn same_seed_gives_identical_workload_and_different_seed_differs() {
        let a = small(5);
        assert!(a == small(5));
        assert!(
            a.pages
                .iter()
                .zip(&small(6).pages)
                .all(|(x, y)| x.request_id != y.request_id)
        );
        assert_eq!(
            WorkloadSpec::reference(),
            WorkloadSpec {
                seed: 42,
                ..Default::default()
            }
        );
    }

    #[test]
    fn pages_are_rows_by_columns_in_sessions_of_3_to_15_on_one_platform() {
        let workload = generate(&WorkloadSpec::reference());
        assert_eq!(workload.pages.len(), 1000);
        assert!(workload.pages.iter().all(|p| p.rows.len() == 8));
        assert!(
            workload
                .pages
                .iter()
                .flat_map(|p| &p.rows)
                .all(|row| row.len() == 12)
        );
        let mut sizes = vec![0; workload.sessions() as usize];
        workload
            .pages
            .iter()
            .for_each(|p| sizes[p.session as usize] += 1);
        assert!(
            sizes[..sizes.len() - 1]
                .iter()
                .all(|n| (3..=15).contains(n)),
            "{sizes:?}"
        );
        for pair in workload
            .pages
            .windows(2)
            .filter(|w| w[0].session == w[1].session)
        {
            assert_eq!(pair[0].platform, pair[1].platform);
            let gap = pair[1].start_ms - (pair[0].start_ms + pair[0].duration_ms);
            assert!((500..=20_000).contains(&gap), "gap {gap}");
        }
        assert!(
            PLATFORMS
                .iter()
                .all(|&pf| workload.pages.iter().any(|p| p.platform == pf))
        );
    }

    #[test]
    fn ids_match_their_formats() {
        let digits = |s: &str, n| s.len() == n && s.bytes().all(|b| b.is_ascii_digit());
        for page in &small(7).pages {
            let hex = |b| matches!(b, b'0'..=b'9' | b'a'..=b'f');
            assert!(page.request_id.len() == 32 && page.request_id.bytes().all(hex));
            assert!(PAGE_NAMES.contains(&page.page_name));
            for item in page.rows.iter().flatten() {
                let title = item.id.strip_prefix("title:").unwrap();
                assert!(digits(title, 8) && !title.starts_with('0'), "{}", item.id);
                assert!(digits(item.artwork_id.strip_prefix("art:").unwrap(), 9));
            }
        }
    }

    #[test]
    fn item_ids_within_a_page_are_unique_and_artworks_belong_to_one_title() {
        let mut owners = HashMap::new();
        for page in &small(8).pages {
            let ids: HashSet<_> = page.rows.iter().flatten().map(|item| &item.id).collect();
            assert_eq!(ids.len(), 96);
            for item in page.rows.iter().flatten() {
                assert_eq!(
                    *owners.entry(&item.artwork_id).or_insert(&item.id),
                    &item.id
                );
            }
        }
    }

    #[test]
    fn events_are_sorted_and_within_the_page() {
        for page in &small(9).pages {
            let end = page.start_ms + page.duration_ms;
            assert!(page.events.windows(2).all(|w| w[0].at_ms <= w[1].at_ms));
            assert!(
                page.events
                    .iter()
                    .all(|e| (page.start_ms..=end).contains(&e.at_ms))
            );
            assert!(
                page.events
                    .iter()
                    .all(|e| (0.0..=1.0).contains(&e.fraction))
            );
            let within = |&(from, to): &(u64, u64)| page.start_ms <= from && from < to && to <= end;
            assert!(page.hidden.iter().all(within));
        }
    }

    #[test]
    fn every_item_that_became_visible_gets_a_final_zero_event() {
        for page in &small(10).pages {
            let end = page.start_ms + page.duration_ms;
            for cell in 0..96 {
                assert!(
                    cell_events(page, cell)
                        .last()
                        .is_none_or(|e| e.fraction == 0.0)
                );
            }
            let mut closing = page
                .events
                .iter()
                .filter(|e| e.at_ms == end && e.focused.is_none());
            assert!(closing.clone().count() > 0 && closing.all(|e| e.fraction == 0.0));
        }
    }

    #[test]
    fn most_popular_item_appears_far_more_often_than_the_median_one() {
        let mut counts: HashMap<&str, u32> = HashMap::new();
        let workload = generate(&WorkloadSpec::reference());
        for item in workload.pages.iter().flat_map(|p| p.rows.iter().flatten()) {
            *counts.entry(&item.id).or_default() += 1;
        }
        let mut counts: Vec<u32> = counts.into_values().collect();
        counts.sort_unstable();
        let (median, top) = (counts[counts.len() / 2], counts[counts.len() - 1]);
        assert!(top >= 50 * median, "top {top}, median {median}");
    }

    #[test]
    fn tv_pages_have_focus_events_and_others_do_not() {
        for page in &small(11).pages {
            let gained = page
                .events
                .iter()
                .filter(|e| e.focused == Some(true))
                .count();
            let lost = page
                .events
                .iter()
                .filter(|e| e.focused == Some(false))
                .count();
            assert_eq!(
                page.platform == Platform::Tv,
                gained > 0,
                "{:?}",
                page.platform
            );
            assert_eq!(gained, lost, "every focus gain is lost again");
        }
    }

    #[test]
    fn between_30_and_70_percent_of_items_are_half_visible_for_a_second_on_every_platform() {
        let workload = generate(&WorkloadSpec::reference());
        for platform in PLATFORMS {
            let pages = workload.pages.iter().filter(|p| p.platform == platform);
            let (mut qualified, mut items) = (0, 0);
            for page in pages {
                qualified += (0..96).filter(|&cell| qualifies(page, cell)).count();
                items += 96;
            }
            let share = qualified as f64 / items as f64;
            assert!((0.3..=0.7).contains(&share), "{platform:?}: {share}");
        }
    }
}
