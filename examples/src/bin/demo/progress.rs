//! Progress on stderr: an indicatif bar on a terminal, plain lines when stderr is a file
//! or a pipe (a CI log). An event (a fault injected, the collector restarted) is printed
//! once, when it happens; on a terminal the bar's message says what the collector is doing
//! now.

use std::io::{IsTerminal, Write};
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressStyle};

/// A log gets a progress line at each tenth of the pages, not at every redraw.
const LOG_STEPS: usize = 10;

pub struct Progress {
    total: usize,
    started: Instant,
    out: Output,
}

enum Output {
    /// A terminal: the bar is redrawn in place, event lines go above it.
    Bar(ProgressBar),
    /// A log: the last tenth of the pages that got a line.
    Lines { logged_step: usize },
}

impl Progress {
    /// Progress over `total` pages, timed from `started`; `state` is what the collector
    /// does at first.
    pub fn new(total: usize, started: Instant, state: &str) -> Self {
        let out = if std::io::stderr().is_terminal() {
            let bar = ProgressBar::new(total as u64)
                .with_style(style())
                .with_message(state.to_string());
            // Redrawn on a timer as well, so a new message shows even while the main
            // thread is blocked in a collector restart.
            bar.enable_steady_tick(Duration::from_millis(100));
            Output::Bar(bar)
        } else {
            Output::Lines { logged_step: 0 }
        };
        Progress {
            total,
            started,
            out,
        }
    }

    /// `done` of the total pages are played.
    pub fn set(&mut self, done: usize) {
        let step = self.step(done);
        match &mut self.out {
            Output::Bar(bar) => bar.set_position(done as u64),
            Output::Lines { logged_step } => {
                if step > *logged_step {
                    *logged_step = step;
                    print_line(&self.line(done));
                }
            }
        }
    }

    /// `event` happened at `done` pages; from now on the collector's state is `state`.
    pub fn event(&mut self, done: usize, event: &str, state: &str) {
        let line = format!("{}  {event}", self.line(done));
        let step = self.step(done);
        match &mut self.out {
            Output::Bar(bar) => {
                bar.set_position(done as u64);
                bar.println(line);
                bar.set_message(state.to_string());
            }
            Output::Lines { logged_step } => {
                // The event's line shows the progress too: no second line for this tenth.
                *logged_step = step;
                print_line(&line);
            }
        }
    }

    /// Every page is played and the devices have drained their queues.
    pub fn finish(&mut self, done: usize) {
        const DRAINED: &str = "devices drained";
        match &self.out {
            Output::Bar(bar) => {
                bar.set_position(done as u64);
                bar.finish_with_message(DRAINED);
            }
            Output::Lines { .. } => print_line(&format!("{}  {DRAINED}", self.line(done))),
        }
    }

    /// The tenths of the pages that `done` has reached.
    fn step(&self, done: usize) -> usize {
        (done * LOG_STEPS)
            .checked_div(self.total)
            .map_or(LOG_STEPS, |s| s.min(LOG_STEPS))
    }

    /// When and how far: the start of every line.
    fn line(&self, done: usize) -> String {
        let at = self.started.elapsed().as_secs_f64();
        format!("{at:>5.1} s  {done:>3}/{} pages", self.total)
    }
}

fn style() -> ProgressStyle {
    ProgressStyle::with_template("{elapsed:>4} [{bar:30}] {pos:>3}/{len} pages  {msg}")
        .expect("the template is valid")
        .progress_chars("#>.")
}

fn print_line(line: &str) {
    // Progress is cosmetic: a closed stderr must not stop the demo.
    let _ = writeln!(std::io::stderr().lock(), "{line}");
}
