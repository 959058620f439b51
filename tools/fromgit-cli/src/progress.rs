//! Progress bars for operations that can take more than a second: drawn on
//! stderr only when it is a terminal, hidden otherwise (logs, CI, pipes),
//! and never on stdout, which carries results.

use std::io::IsTerminal as _;
use std::time::Duration;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressFinish, ProgressStyle};

/// A bar of `len` steps labelled `what` (`"hashing store paths"`); hidden
/// unless `show` and stderr is a terminal.
pub fn bar(show: bool, len: u64, what: &str) -> ProgressBar {
    if !show || !std::io::stderr().is_terminal() {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::with_draw_target(Some(len), ProgressDrawTarget::stderr());
    let template = format!("{{spinner}} {what} {{pos}}/{{len}} [{{bar:30}}] {{per_sec}} {{eta}}");
    if let Ok(style) = ProgressStyle::with_template(&template) {
        bar.set_style(style.progress_chars("=> "));
    }
    bar
}

/// A spinner counting steps whose total is not known yet, labelled `what`
/// (`"listing files"`); hidden unless `show` and stderr is a terminal.
pub fn counter(show: bool, what: &str) -> ProgressBar {
    if !show || !std::io::stderr().is_terminal() {
        return ProgressBar::hidden();
    }
    let counter = ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr());
    if let Ok(style) = ProgressStyle::with_template(&format!("{{spinner}} {what} {{pos}}")) {
        counter.set_style(style);
    }
    counter
}

/// A spinner with the time elapsed, for a wait whose end no count can
/// tell (an instance booting); it ticks on its own thread, so it keeps
/// moving while the caller awaits. Hidden unless `show` and stderr is a
/// terminal; `set_message` changes what it says is awaited.
pub fn waiting(show: bool, what: &str) -> ProgressBar {
    if !show || !std::io::stderr().is_terminal() {
        return ProgressBar::hidden();
    }
    // Cleared when dropped too: an error on the way out must not leave it drawn.
    let spinner = ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr())
        .with_finish(ProgressFinish::AndClear);
    if let Ok(style) = ProgressStyle::with_template("{spinner} {msg} {elapsed}") {
        spinner.set_style(style);
    }
    spinner.set_message(what.to_owned());
    spinner.enable_steady_tick(Duration::from_millis(120));
    spinner
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bar_is_drawn_only_on_a_terminal_and_always_counts() {
        let bar = bar(true, 10, "testing");
        // Hidden exactly when stderr is no terminal (CI, a pipe); a test run
        // from a terminal sees the drawn case.
        assert_eq!(bar.is_hidden(), !std::io::stderr().is_terminal());
        bar.inc(3);
        assert_eq!(bar.position(), 3);
        bar.finish_and_clear();
        assert!(super::bar(false, 1, "off").is_hidden());
    }

    #[test]
    fn a_counter_is_drawn_only_on_a_terminal_and_always_counts() {
        let counter = counter(true, "listing");
        assert_eq!(counter.is_hidden(), !std::io::stderr().is_terminal());
        counter.inc(2);
        assert_eq!(counter.position(), 2);
        counter.finish_and_clear();
        assert!(super::counter(false, "off").is_hidden());
    }

    #[test]
    fn a_wait_is_drawn_only_on_a_terminal() {
        let spinner = waiting(true, "waiting");
        assert_eq!(spinner.is_hidden(), !std::io::stderr().is_terminal());
        spinner.finish_and_clear();
        assert!(super::waiting(false, "off").is_hidden());
    }
}
