//! A text progress bar on stderr: redrawn in place on a terminal, one line per step of
//! the bar (or change of note) when stderr is a file or a pipe.

use std::io::{IsTerminal, Write};

/// Cells in the bar.
const WIDTH: usize = 30;

pub struct Progress {
    total: usize,
    terminal: bool,
    /// What was last drawn, so a log gets a line only when something changed.
    last: Option<(usize, String)>,
}

impl Progress {
    pub fn new(total: usize) -> Self {
        Progress {
            total,
            terminal: std::io::stderr().is_terminal(),
            last: None,
        }
    }

    /// Shows `done` of the total pages and a note on what the collector is doing.
    pub fn draw(&mut self, done: usize, note: &str) {
        let cells = (done * WIDTH)
            .checked_div(self.total)
            .map_or(WIDTH, |c| c.min(WIDTH));
        let state = (cells, note.to_string());
        if !self.terminal && self.last.as_ref() == Some(&state) {
            return;
        }
        let bar = format!("{}{}", "#".repeat(cells), ".".repeat(WIDTH - cells));
        let line = format!("[{bar}] {done}/{} pages  {note}", self.total);
        let mut err = std::io::stderr().lock();
        // Progress is cosmetic: a closed stderr must not stop the demo.
        let _ = match self.terminal {
            true => write!(err, "\r{line:<100}"),
            false => writeln!(err, "{line}"),
        };
        let _ = err.flush();
        self.last = Some(state);
    }

    /// Ends the bar's line.
    pub fn finish(&mut self) {
        if self.terminal {
            eprintln!();
        }
    }
}
