//! How far a long read of GitLab has got: a bar on a terminal
//! (indicatif), plain lines every few seconds in a CI log (no control
//! characters there), nothing for a read that ends quickly.

use std::io::IsTerminal;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

/// How often a CI log gets a line.
const LINE_EVERY: Duration = Duration::from_secs(10);

/// The histories read so far, out of the candidates found so far.
pub struct Progress {
    shown: Shown,
}

enum Shown {
    Bar(ProgressBar),
    Lines(Mutex<Lines>),
}

struct Lines {
    started: Instant,
    last: Instant,
}

impl Progress {
    /// A bar when stderr is a terminal, plain lines otherwise.
    pub fn new() -> Self {
        Self::for_terminal(std::io::stderr().is_terminal())
    }

    fn for_terminal(terminal: bool) -> Self {
        let shown = if terminal {
            let bar = ProgressBar::with_draw_target(Some(0), ProgressDrawTarget::stderr());
            bar.set_style(
                ProgressStyle::with_template(
                    "reading issue histories {bar:30} {pos}/{len} ({elapsed}, {per_sec})",
                )
                .unwrap_or_else(|_| ProgressStyle::default_bar()),
            );
            Shown::Bar(bar)
        } else {
            let now = Instant::now();
            Shown::Lines(Mutex::new(Lines {
                started: now,
                last: now,
            }))
        };
        Progress { shown }
    }

    /// `done` histories read of `total` candidates found so far.
    pub fn show(&self, done: usize, total: usize) {
        match &self.shown {
            Shown::Bar(bar) => {
                bar.set_length(total as u64);
                bar.set_position(done as u64);
            }
            Shown::Lines(lines) => {
                if let Some(line) =
                    lines
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .due(done, total, Instant::now())
                {
                    eprintln!("{line}");
                }
            }
        }
    }

    pub fn finish(&self) {
        if let Shown::Bar(bar) = &self.shown {
            bar.finish_and_clear();
        }
    }
}

impl Lines {
    /// The line to print now, if one is due.
    fn due(&mut self, done: usize, total: usize, now: Instant) -> Option<String> {
        if now.duration_since(self.last) < LINE_EVERY {
            return None;
        }
        self.last = now;
        Some(format!(
            "reading issue histories: {done}/{total} after {}s",
            now.duration_since(self.started).as_secs()
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_ci_log_gets_a_plain_line_every_ten_seconds() {
        let start = Instant::now();
        let mut lines = Lines {
            started: start,
            last: start,
        };
        assert_eq!(lines.due(5, 100, start + Duration::from_secs(3)), None);
        let line = lines.due(40, 100, start + Duration::from_secs(10)).unwrap();
        assert_eq!(line, "reading issue histories: 40/100 after 10s");
        assert!(
            !line.contains('\r') && !line.contains('\x1b'),
            "no control characters"
        );
        assert_eq!(lines.due(50, 100, start + Duration::from_secs(15)), None);
        assert!(
            lines
                .due(90, 100, start + Duration::from_secs(20))
                .is_some()
        );
    }
}
