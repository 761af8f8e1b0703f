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

/// Applies one step. `page_view` holds the id of the page's view once started; steps
/// after a crash lost it are skipped (the restarted app is on another screen).
pub fn apply(
    logger: &mut Logger,
    page: &Page,
    page_view: &mut Option<u64>,
    step: Step,
    now: Now,
) -> Result<(), Rule> {
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
            *page_view =
                Some(logger.start_page_view(page.page_name, Some(&page.request_id), None, now)?);
        }
        (
            Step::Visibility {
                row,
                column,
                fraction,
            },
            Some(pv),
        ) => {
            logger.handle_visibility(pv, &item(row, column), fraction, now)?;
        }
        (
            Step::Focus {
                row,
                column,
                focused,
            },
            Some(pv),
        ) => {
            logger.handle_focus(pv, &item(row, column), focused, now)?;
        }
        (Step::Hidden, _) => logger.handle_app_hidden(now),
        (Step::Visible, _) => logger.handle_app_visible(now),
        (Step::End, Some(pv)) => {
            logger.end_page_view(pv, now)?;
            *page_view = None;
        }
        (_, None) => {}
    }
    Ok(())
}
