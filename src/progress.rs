//! Progress bars on stderr for any stage: a stage takes a [`Progress`] and asks it for bars;
//! the CLI decides whether they are drawn (a terminal, not `--quiet`).

use std::io::IsTerminal;
use std::time::Duration;

use indicatif::{ProgressBar, ProgressStyle};

/// Progress bars on stderr, only when it is a terminal and not `--quiet`.
#[derive(Debug, Clone, Copy)]
pub struct Progress {
    enabled: bool,
}

impl Progress {
    pub fn new(quiet: bool) -> Self {
        Progress { enabled: !quiet && std::io::stderr().is_terminal() }
    }

    /// Whether bars are drawn.
    pub fn enabled(&self) -> bool {
        self.enabled
    }

    /// A counter of rows for one pass.
    pub fn rows(&self, label: &str) -> ProgressBar {
        if !self.enabled {
            return ProgressBar::hidden();
        }
        let bar = ProgressBar::new_spinner();
        bar.set_style(
            ProgressStyle::with_template("{spinner} {msg:<12} {human_pos} rows  {per_sec}  {elapsed}")
                .unwrap_or_else(|_| ProgressStyle::default_spinner()),
        );
        bar.set_message(label.to_string());
        bar.enable_steady_tick(Duration::from_millis(120));
        bar
    }

    /// A bar towards a known total (e.g. training tokens).
    pub fn counted(&self, label: &str, total: u64) -> ProgressBar {
        if !self.enabled {
            return ProgressBar::hidden();
        }
        let bar = ProgressBar::new(total);
        bar.set_style(
            ProgressStyle::with_template("{msg:<24} [{bar:30}] {human_pos}/{human_len} {per_sec}  eta {eta}")
                .unwrap_or_else(|_| ProgressStyle::default_bar()),
        );
        bar.set_message(label.to_string());
        bar
    }
}
