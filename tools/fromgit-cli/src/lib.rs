//! Conventions every fromgit binary shares, kept in one place so that the five
//! tools agree on exit codes, on where output goes and on how errors read:
//!
//! - stdout carries results only (human text, or JSON with `--json`);
//! - stderr carries logs, warnings and errors, coloured only when allowed;
//! - exit codes: 0 ok, 1 negative result, 2 error, 3 unproven.

use std::io::{self, IsTerminal, Write};
use std::process::ExitCode;

use tracing_subscriber::layer::SubscriberExt as _;
use tracing_subscriber::util::SubscriberInitExt as _;
use tracing_subscriber::{EnvFilter, Layer as _};

mod generate;
mod output;
pub mod progress;

pub use generate::{generate_if_asked, Generate};
pub use output::{write_report, FormatArgs, OutputError, Printer, ReportArgs, ReportFormat};

/// Flags every tool accepts.
#[derive(clap::Args, Debug, Clone, Default)]
pub struct GlobalArgs {
    /// Increase log verbosity (repeatable)
    #[arg(short, long, action = clap::ArgAction::Count, global = true)]
    pub verbose: u8,
    /// Decrease log verbosity (repeatable)
    #[arg(short, long, action = clap::ArgAction::Count, global = true)]
    pub quiet: u8,
    /// Print machine-readable JSON on stdout instead of human text
    #[arg(long, global = true)]
    pub json: bool,
    /// When to colour stderr, and a human report on a terminal
    #[arg(long, value_enum, default_value_t = ColorChoice::Auto, global = true)]
    pub color: ColorChoice,
    /// Write a man page or a shell completion script to stdout and exit (given alone)
    #[arg(long, value_enum, value_name = "KIND")]
    pub generate: Option<Generate>,
}

#[derive(clap::ValueEnum, Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum ColorChoice {
    #[default]
    Auto,
    Always,
    Never,
}

impl GlobalArgs {
    /// Whether stderr may carry ANSI colour: `--color`, then `NO_COLOR`, then a terminal check.
    pub fn stderr_color(&self) -> bool {
        self.color_on(io::stderr().is_terminal())
    }

    /// Whether stdout may carry ANSI colour, decided as for stderr but on
    /// stdout's own terminal check (`tool | less` is not coloured).
    pub fn stdout_color(&self) -> bool {
        self.color_on(io::stdout().is_terminal())
    }

    fn color_on(&self, terminal: bool) -> bool {
        match self.color {
            ColorChoice::Always => true,
            ColorChoice::Never => false,
            ColorChoice::Auto => {
                std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty()) && terminal
            }
        }
    }
}

/// The outcome of a run that did not fail with an error.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExitStatus {
    /// The check passed, or the command did what was asked.
    Success,
    /// A valid run with a negative result (refused, differs, leak found).
    Failure,
    /// The command could not do its work: bad input, I/O, a failed child process.
    Error,
    /// No negative result, but the proof is incomplete (proof tools only).
    Unproven,
}

impl From<ExitStatus> for ExitCode {
    fn from(status: ExitStatus) -> Self {
        match status {
            ExitStatus::Success => ExitCode::from(0),
            ExitStatus::Failure => ExitCode::from(1),
            ExitStatus::Error => ExitCode::from(2),
            ExitStatus::Unproven => ExitCode::from(3),
        }
    }
}

/// The exit-code table every tool's `--help` ends with.
pub const EXIT_CODES_HELP: &str = "\
Exit codes:
  0  success
  1  negative result (check refused, verification failed)
  2  error (bad input, I/O, a failed external program)";

/// The exit-code table of the proof tools (leak-scan, closure-diff, vm-prove), which add 3.
pub const PROOF_EXIT_CODES_HELP: &str = "\
Exit codes:
  0  success (the requested proof holds)
  1  negative result (the proof fails: a difference or a mismatch was found)
  2  error (bad input, I/O, a failed external program)
  3  unproven (no negative result, but evidence is missing)";

/// Sets up logging to stderr. `-v`/`-q` pick the level; `FROMGIT_LOG` overrides them.
pub fn init_tracing(global: &GlobalArgs) {
    let level = match i16::from(global.verbose) - i16::from(global.quiet) {
        i16::MIN..=-2 => "off",
        -1 => "error",
        0 => "warn",
        1 => "info",
        2 => "debug",
        _ => "trace",
    };
    let filter = EnvFilter::try_from_env("FROMGIT_LOG").unwrap_or_else(|_| EnvFilter::new(level));
    let output = tracing_subscriber::fmt::layer()
        .with_writer(io::stderr)
        .with_ansi(global.stderr_color())
        .without_time()
        .with_target(false)
        .with_filter(tracing_subscriber::filter::filter_fn(|meta| {
            is_ours(meta.target()) || *meta.level() <= tracing_subscriber::filter::LevelFilter::INFO
        }));
    // A second initialisation (tests calling `run` twice) is harmless: keep the first.
    let _ = tracing_subscriber::registry()
        .with(filter)
        .with(output)
        .try_init();
}

/// Whether a log target is one of fromgit's crates. Other crates never log
/// below `info`, whatever the level asked for: their debug and trace output
/// can carry payload bytes (the websocket library logs every frame, and a
/// runbook block's output and the TLS relay's bytes travel in frames).
fn is_ours(target: &str) -> bool {
    const CRATES: [&str; 10] = [
        "fromgit_cli",
        "fromgit_fs",
        "fromgit_sops",
        "fromgit_nix",
        "fromgit_tls",
        "instance_extract",
        "cert_seal",
        "leak_scan",
        "closure_diff",
        "vm_prove",
    ];
    let krate = target.split("::").next().unwrap_or_default();
    CRATES.contains(&krate)
}

/// Writes results to stdout, the one place where the tools print data.
pub fn write_stdout(bytes: &[u8]) -> io::Result<()> {
    let mut out = io::stdout().lock();
    out.write_all(bytes)?;
    out.flush()
}

/// Writes a value as pretty JSON on stdout: the one `--json` printer.
pub fn write_json(value: &impl serde::Serialize) -> io::Result<()> {
    let mut text = serde_json::to_string_pretty(value).map_err(io::Error::other)?;
    text.push('\n');
    write_stdout(text.as_bytes())
}

/// `--json` given to a command that prints no data for it to shape (Nix
/// source, a plaintext, nothing at all): refused rather than ignored, so a
/// script that asked for JSON never parses something else.
#[derive(Debug, thiserror::Error)]
#[error("`{command}` {reason}: `--json` does not apply{}", hint.map(|h| format!("\nhint: {h}")).unwrap_or_default())]
pub struct JsonNotApplicable {
    /// The command as typed, e.g. `cert-seal nix`
    pub command: &'static str,
    /// What it prints instead of data
    pub reason: &'static str,
    /// What to use instead, when there is something
    pub hint: Option<&'static str>,
}

/// Refuses `--json` for a command that has no JSON form (exit 2 through
/// [`report_error`]); does nothing without `--json`.
pub fn refuse_json(
    global: &GlobalArgs,
    command: &'static str,
    reason: &'static str,
    hint: Option<&'static str>,
) -> Result<(), JsonNotApplicable> {
    if global.json {
        return Err(JsonNotApplicable {
            command,
            reason,
            hint,
        });
    }
    Ok(())
}

/// Prints a warning line on stderr, in the house `warning: …` form.
pub fn warn(message: &str) {
    let _ = writeln!(io::stderr().lock(), "warning: {message}");
}

/// Renders an error chain on stderr and returns exit code 2, or 0 for a
/// broken pipe on stdout (the reader went away: not our failure).
pub fn report_error(err: &anyhow::Error) -> ExitCode {
    for cause in err.chain() {
        if let Some(io_err) = cause.downcast_ref::<io::Error>() {
            if io_err.kind() == io::ErrorKind::BrokenPipe {
                return ExitCode::from(0);
            }
        }
    }
    let _ = io::stderr().lock().write_all(render_error(err).as_bytes());
    ExitStatus::Error.into()
}

/// The house error form: `error: what failed: cause: cause` on one line, so
/// that a log line or a CI summary carries the reason, then one `hint: …`
/// line per hint found in any message of the chain. A cause whose text its
/// parent already ends with (an error that prints its source) is not
/// repeated.
pub fn render_error(err: &anyhow::Error) -> String {
    let mut line = String::from("error: ");
    let mut hints = Vec::new();
    for (index, cause) in err.chain().enumerate() {
        let text = cause.to_string();
        let mut parts = text.split("\nhint: ");
        let message = parts
            .next()
            .unwrap_or_default()
            .split('\n')
            .map(str::trim)
            .filter(|part| !part.is_empty())
            .map(escape_controls)
            .collect::<Vec<_>>()
            .join("; ");
        hints.extend(parts.map(|hint| escape_controls(&hint.replace('\n', " "))));
        if message.is_empty() || line.ends_with(&message) {
            continue;
        }
        if index > 0 {
            line.push_str(": ");
        }
        line.push_str(&message);
    }
    line.push('\n');
    for hint in hints {
        line.push_str("hint: ");
        line.push_str(&hint);
        line.push('\n');
    }
    line
}

/// Control characters (a terminal escape, a carriage return) as `\u{…}`:
/// a file name is printed in errors as it is, and must not be able to
/// move the cursor or forge a line.
fn escape_controls(text: &str) -> String {
    use std::fmt::Write as _;
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if c.is_control() {
            let _ = write!(out, "\\u{{{:x}}}", u32::from(c));
        } else {
            out.push(c);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::{is_ours, render_error};

    #[derive(Debug, thiserror::Error)]
    #[error("`a.yaml` was left unchanged: {source}")]
    struct Wrapping {
        source: std::io::Error,
    }

    #[test]
    fn errors_render_on_one_line_with_their_causes_and_hints_after() {
        let err = anyhow::anyhow!("MAC mismatch\nhint: was it edited by hand?")
            .context("Failed to decrypt `hosts/web/secrets.yaml`");
        assert_eq!(
            render_error(&err),
            "error: Failed to decrypt `hosts/web/secrets.yaml`: MAC mismatch\n\
             hint: was it edited by hand?\n"
        );
        // A cause its parent already prints is not repeated.
        let err = anyhow::Error::new(Wrapping {
            source: std::io::Error::other("disk full"),
        });
        assert_eq!(
            render_error(&err),
            "error: `a.yaml` was left unchanged: disk full\n"
        );
        // A crafted file name can neither start a line nor reach the terminal.
        let err = anyhow::anyhow!("cannot read `x\nproven clean\u{1b}[2K\r.yaml`");
        assert_eq!(
            render_error(&err),
            "error: cannot read `x; proven clean\\u{1b}[2K\\u{d}.yaml`\n"
        );
    }

    #[test]
    fn json_is_refused_only_when_asked_for_naming_the_command_and_the_flag() {
        let mut global = super::GlobalArgs::default();
        assert!(super::refuse_json(
            &global,
            "cert-seal nix",
            "prints Nix source, not data",
            None
        )
        .is_ok());
        global.json = true;
        let err = super::refuse_json(
            &global,
            "cert-seal nix",
            "prints Nix source, not data",
            None,
        )
        .unwrap_err();
        assert_eq!(
            render_error(&anyhow::Error::new(err)),
            "error: `cert-seal nix` prints Nix source, not data: `--json` does not apply\n"
        );
        let err = super::refuse_json(
            &global,
            "instance-extract secrets decrypt",
            "prints the plaintext, not a report",
            Some("`--output-type json` prints the plaintext as JSON"),
        )
        .unwrap_err();
        assert_eq!(
            render_error(&anyhow::Error::new(err)),
            "error: `instance-extract secrets decrypt` prints the plaintext, not a report: `--json` does not apply\n\
             hint: `--output-type json` prints the plaintext as JSON\n"
        );
    }

    #[test]
    fn only_our_crates_log_below_info() {
        assert!(is_ours("vm_prove::prove"));
        assert!(is_ours("fromgit_sops"));
        assert!(is_ours("fromgit_fs::write"));
        assert!(is_ours("fromgit_tls::probe"));
        assert!(!is_ours("tungstenite::protocol"));
        assert!(!is_ours("vm_prove_extra"));
        assert!(!is_ours("hyper_util::client"));
    }
}
