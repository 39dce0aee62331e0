//! Progress of a long evaluation or crafting pass: a bar on a terminal; anywhere else (a
//! pipe, a log file, a worker's or Slurm job's log) a plain line at most every
//! [`PLAIN_EVERY`], so that a long PGD evaluation does not sit silent between `running` and
//! `computed`. Fits report their epochs themselves.

use indicatif::{ProgressBar, ProgressStyle};
use std::cell::RefCell;
use std::io::Write;
use std::time::{Duration, Instant};

/// The least time between two plain progress lines.
pub const PLAIN_EVERY: Duration = Duration::from_secs(10);

/// A terminal's progress bar of `len` steps.
pub fn bar(len: u64, what: &str) -> ProgressBar {
    let bar = ProgressBar::new(len);
    bar.set_style(
        ProgressStyle::with_template("  {prefix:>10} [{bar:30}] {pos}/{len} {msg} ({eta})")
            .expect("valid template")
            .progress_chars("=> "),
    );
    bar.set_prefix(what.to_string());
    bar
}

/// A progress report of `len` steps.
pub struct Progress {
    bar: ProgressBar,
    plain: Option<RefCell<Plain>>,
}

struct Plain {
    node: String,
    what: String,
    len: u64,
    started: Instant,
    last: Instant,
    every: Duration,
    out: Box<dyn Write>,
}

impl Progress {
    /// On a terminal a bar, else plain lines on stderr.
    pub fn new(on_terminal: bool, node: &str, what: &str, len: u64) -> Progress {
        if on_terminal {
            return Progress {
                bar: bar(len, what),
                plain: None,
            };
        }
        Progress::plain(node, what, len, PLAIN_EVERY, Box::new(std::io::stderr()))
    }

    /// Plain lines to `out`, at most one per `every`.
    pub fn plain(node: &str, what: &str, len: u64, every: Duration, out: Box<dyn Write>) -> Progress {
        let now = Instant::now();
        Progress {
            bar: ProgressBar::hidden(),
            plain: Some(RefCell::new(Plain {
                node: node.to_string(),
                what: what.to_string(),
                len,
                started: now,
                last: now,
                every,
                out,
            })),
        }
    }

    /// `done` of the steps are done.
    pub fn set_position(&self, done: u64) {
        self.bar.set_position(done);
        let Some(plain) = &self.plain else { return };
        let mut p = plain.borrow_mut();
        if done >= p.len || p.last.elapsed() < p.every {
            return;
        }
        p.last = Instant::now();
        let spent = p.started.elapsed().as_secs_f64();
        let left = spent / done.max(1) as f64 * (p.len - done) as f64;
        let line = format!(
            "           {}: {done} of {} {} ({spent:.0} s, about {left:.0} s left)",
            p.node, p.len, p.what
        );
        let _ = writeln!(p.out, "{line}");
    }

    /// Removes the bar (plain lines stay where they are).
    pub fn finish(&self) {
        self.bar.finish_and_clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Mutex};

    /// A writer the test can read back.
    #[derive(Clone, Default)]
    struct Shared(Arc<Mutex<Vec<u8>>>);
    impl Write for Shared {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn plain_lines_say_how_far_and_how_long_and_stop_at_the_end() {
        let out = Shared::default();
        let progress = Progress::plain("pgd_test", "examples", 10000, Duration::ZERO, Box::new(out.clone()));
        progress.set_position(2500);
        progress.set_position(10000);
        let text = String::from_utf8(out.0.lock().unwrap().clone()).unwrap();
        assert_eq!(text.lines().count(), 1, "{text}");
        assert!(
            text.contains("pgd_test: 2500 of 10000 examples (") && text.contains("s left)"),
            "{text}"
        );
        // With the real interval, a quick pass prints nothing.
        let quiet = Shared::default();
        let progress = Progress::plain("e", "examples", 10, PLAIN_EVERY, Box::new(quiet.clone()));
        progress.set_position(5);
        assert!(quiet.0.lock().unwrap().is_empty());
    }
}
