//! Progress on long runs: a spinner on stderr with a running count (users read, blobs and records archived), only
//! when stderr is a terminal and the output is not `--json`: piped output and logs get nothing extra.

use std::io::IsTerminal;
use std::time::Duration;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

/// A spinner, or nothing.
pub(crate) struct Progress(Option<ProgressBar>);

impl Progress {
    /// A spinner when stderr is a terminal and `json` is off.
    pub(crate) fn start(json: bool, what: &str) -> Self {
        if json || !std::io::stderr().is_terminal() {
            return Self(None);
        }
        let bar = ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr());
        if let Ok(style) = ProgressStyle::with_template("{spinner} {prefix}: {msg} ({elapsed})") {
            bar.set_style(style);
        }
        bar.set_prefix(what.to_string());
        bar.enable_steady_tick(Duration::from_millis(120));
        Self(Some(bar))
    }

    /// Shows the running count.
    pub(crate) fn set(&self, message: String) {
        if let Some(bar) = &self.0 {
            bar.set_message(message);
        }
    }

    /// Clears the spinner before the result is printed.
    pub(crate) fn finish(&self) {
        if let Some(bar) = &self.0 {
            bar.finish_and_clear();
        }
    }
}
