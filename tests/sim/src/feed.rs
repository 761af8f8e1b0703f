//! Replays a workload page into a logger: page start, visibility and focus changes,
//! app hidden/visible intervals, page end, in time order.

use sightline_core::{Handled, Input, InputError, Item, Logger, Now};

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

/// What replaying a page needs from a host: the logger's owned inputs, taken by the sans-IO
/// logger on virtual time ([`At`]) or by the std runtime's driver (the demo).
pub trait Host {
    type Error;
    fn handle(&mut self, input: Input) -> Result<Handled, Self::Error>;
}

/// A logger at one instant.
#[derive(Debug)]
pub struct At<'a> {
    pub logger: &'a mut Logger,
    pub now: Now,
}

impl Host for At<'_> {
    type Error = InputError;
    fn handle(&mut self, input: Input) -> Result<Handled, InputError> {
        self.logger.handle_input(input, self.now)
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
        Item {
            item_id: it.id.clone(),
            artwork_id: Some(it.artwork_id.clone()),
            row,
            column,
        }
    };
    let input = match (step, *page_view) {
        (Step::Start, _) => Input::StartPageView {
            page: page.page_name.into(),
            request_id: Some(page.request_id.clone()),
            layout: None,
        },
        (
            Step::Visibility {
                row,
                column,
                fraction,
            },
            Some(pv),
        ) => Input::Visibility {
            page_view: pv,
            item: item(row, column),
            fraction,
        },
        (
            Step::Focus {
                row,
                column,
                focused,
            },
            Some(pv),
        ) => Input::Focus {
            page_view: pv,
            item: item(row, column),
            focused,
        },
        (Step::Hidden, _) => Input::AppHidden,
        (Step::Visible, _) => Input::AppVisible,
        (Step::End, Some(pv)) => {
            *page_view = None;
            Input::EndPageView { page_view: pv }
        }
        (_, None) => return Ok(()),
    };
    if let Handled::PageView(pv) = host.handle(input)? {
        *page_view = Some(pv);
    }
    Ok(())
}
