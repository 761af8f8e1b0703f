//! A page view as the logger tracks it: its identity and strings, the ids it learned (bounded
//! like its exposures), its declared layout, its viewability tracker and dedup state.

use super::*;

/// Item and artwork ids one page view may know: its layout plus an item and an artwork for
/// each exposure it may track.
pub(super) const MAX_NAMES_PER_PAGE_VIEW: usize = 3 * MAX_EXPOSURES_PER_PAGE_VIEW;

pub(super) struct PageView {
    pub(super) ordinal: u64,
    pub(super) page: String,
    pub(super) request_id: Option<String>,
    pub(super) start_mono: u64,
    pub(super) start_wall: u64,
    /// Item and artwork ids seen on this page view.
    pub(super) names: Interner,
    /// Declared layout: rows of interned item ids.
    pub(super) layout: Option<Vec<Vec<u32>>>,
    pub(super) tracker: Tracker,
    pub(super) seen: Seen,
}

impl PageView {
    /// Its journal record: written when it starts and again after every checkpoint.
    pub(super) fn start_entry(&self) -> Entry<'_> {
        Entry::PageViewStart {
            ordinal: self.ordinal,
            start_mono: self.start_mono,
            start_wall: self.start_wall,
            page: &self.page,
            request_id: self.request_id.as_deref(),
        }
    }

    /// Whether the page view can learn these ids: every id it knows is kept until it ends,
    /// so they are bounded like its exposures.
    pub(super) fn room_for(&self, item: Key<'_>, artwork: Option<Key<'_>>) -> bool {
        let new_ids = usize::from(self.names.find_key(item).is_none())
            + usize::from(artwork.is_some_and(|a| self.names.find_key(a).is_none()));
        self.names.len() + new_ids <= MAX_NAMES_PER_PAGE_VIEW
    }

    pub(super) fn batch_ref(&self) -> PageViewRef<'_> {
        PageViewRef {
            ordinal: self.ordinal,
            page: &self.page,
            request_id: self.request_id.as_deref(),
            start_mono: self.start_mono,
            start_wall: self.start_wall,
        }
    }

    pub(super) fn check_layout(&self, item: Key<'_>, row: u32, column: u32) -> Result<(), Rule> {
        let Some(layout) = &self.layout else {
            return Ok(());
        };
        let Some(id) = self.names.find_key(item) else {
            return Err(Rule::NotOnPage);
        };
        let at = layout
            .get(row as usize)
            .and_then(|r| r.get(column as usize));
        if at == Some(&id) {
            Ok(())
        } else if layout.iter().any(|r| r.contains(&id)) {
            Err(Rule::WrongPosition)
        } else {
            Err(Rule::NotOnPage)
        }
    }
}
