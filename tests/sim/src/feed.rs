//! Replays a workload page into a logger: page start, visibility and focus changes,
//! app hidden/visible intervals, page end, in time order.

use sightline_core::{ItemRef, Logger, Now, Rule};

use crate::workload::{Page, Platform};

/// One input to the logger.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Step {
    Start,
    Visibility {
        row: u32,
        column: u32,
        fraction: f32,
    },
    Focus {
        row: u32,
        column: u32,
        focused: bool,
    },
    Hidden,
    Visible,
    End,
}

/// The page's inputs at absolute session times, in order.
pub fn steps(page: &Page) -> Vec<(u64, Step)> {
    let mut out = Vec::with_capacity(page.events.len() + 2 + 2 * page.hidden.len());
    out.push((page.start_ms, Step::Start));
    for e in &page.events {
        let step = match e.focused {
            Some(focused) => Step::Focus {
                row: e.row,
                column: e.column,
                focused,
            },
            None => Step::Visibility {
                row: e.row,
                column: e.column,
                fraction: e.fraction,
            },
        };
        out.push((e.at_ms, step));
    }
    for &(from, to) in &page.hidden {
        out.push((from, Step::Hidden));
        out.push((to, Step::Visible));
    }
    out.push((page.start_ms + page.duration_ms, Step::End));
    // Stable: events at the same time keep their order, and Start stays first.
    out.sort_by_key(|(t, _)| *t);
    out
}

/// The core's platform for a workload platform.
pub fn platform(p: Platform) -> sightline_core::Platform {
    match p {
        Platform::Tv => sightline_core::Platform::Tv,
        Platform::Mobile => sightline_core::Platform::Android,
        Platform::Web => sightline_core::Platform::Web,
    }
}

/// What replaying a page needs from a host: the sans-IO logger on virtual time ([`At`]),
/// or the std runtime's driver (the demo).
pub trait Host {
    type Error;
    fn start_page_view(&mut self, page: &str, request_id: &str) -> Result<u64, Self::Error>;
    fn visibility(&mut self, pv: u64, item: &ItemRef<'_>, fraction: f32)
    -> Result<(), Self::Error>;
    fn focus(&mut self, pv: u64, item: &ItemRef<'_>, focused: bool) -> Result<(), Self::Error>;
    fn app_hidden(&mut self) -> Result<(), Self::Error>;
    fn app_visible(&mut self) -> Result<(), Self::Error>;
    fn end_page_view(&mut self, pv: u64) -> Result<(), Self::Error>;
}

/// A logger at one instant.
#[derive(Debug)]
pub struct At<'a> {
    pub logger: &'a mut Logger,
    pub now: Now,
}

impl Host for At<'_> {
    type Error = Rule;
    fn start_page_view(&mut self, page: &str, request_id: &str) -> Result<u64, Rule> {
        self.logger
            .start_page_view(page, Some(request_id), None, self.now)
    }
    fn visibility(&mut self, pv: u64, item: &ItemRef<'_>, fraction: f32) -> Result<(), Rule> {
        self.logger.handle_visibility(pv, item, fraction, self.now)
    }
    fn focus(&mut self, pv: u64, item: &ItemRef<'_>, focused: bool) -> Result<(), Rule> {
        self.logger.handle_focus(pv, item, focused, self.now)
    }
    fn app_hidden(&mut self) -> Result<(), Rule> {
        self.logger.handle_app_hidden(self.now);
        Ok(())
    }
    fn app_visible(&mut self) -> Result<(), Rule> {
        self.logger.handle_app_visible(self.now);
        Ok(())
    }
    fn end_page_view(&mut self, pv: u64) -> Result<(), Rule> {
        self.logger.end_page_view(pv, self.now)
    }
}

/// Applies one step. `page_view` holds the id of the page's view once started; steps
/// after a crash lost it are skipped (the restarted app is on another screen).
pub fn apply<H: Host>(
    host: &mut H,
    page: &Page,
    page_view: &mut Option<u64>,
    step: Step,
) -> Result<(), H::Error> {
    let item = |row: u32, column: u32| {
        let it = &page.rows[row as usize][column as usize];
        ItemRef {
            item_id: &it.id,
            artwork_id: Some(&it.artwork_id),
            row,
            column,
        }
    };
    match (step, *page_view) {
        (Step::Start, _) => {
            *page_view = Some(host.start_page_view(page.page_name, &page.request_id)?);
        }
        (
            Step::Visibility {
                row,
                column,
                fraction,
            },
            Some(pv),
        ) => host.visibility(pv, &item(row, column), fraction)?,
        (
            Step::Focus {
                row,
                column,
                focused,
            },
            Some(pv),
        ) => host.focus(pv, &item(row, column), focused)?,
        (Step::Hidden, _) => host.app_hidden()?,
        (Step::Visible, _) => host.app_visible()?,
        (Step::End, Some(pv)) => {
            host.end_page_view(pv)?;
            *page_view = None;
        }
        (_, None) => {}
    }
    Ok(())
}
