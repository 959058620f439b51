//! The one printer for results: every command that prints data takes
//! `--format` (with the global `--json` as its short form) and, unless `-o`
//! already names another file it writes, `-o FILE`; this module turns those
//! flags into where the bytes go and in which form, so that no command can
//! honour one flag and silently ignore another.

use std::io;
use std::path::{Path, PathBuf};

use clap::ValueHint;

use crate::GlobalArgs;

/// The data forms of a report: text for people, or one pretty-printed JSON
/// document. (Variants without doc comments keep `--help` to one line each.)
#[derive(clap::ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReportFormat {
    Human,
    Json,
}

/// `--format`, for a command whose `-o` already names the file it produces
/// (a snapshot, a fingerprint file): the report itself goes to stdout.
#[derive(clap::Args, Debug, Clone, Default)]
pub struct FormatArgs {
    /// Report format [default: human] (`--json` is short for `--format json`)
    #[arg(long, value_enum, value_name = "FORMAT")]
    pub format: Option<ReportFormat>,
}

/// `--format` and `-o`, for a command whose only product is its report.
#[derive(clap::Args, Debug, Clone, Default)]
pub struct ReportArgs {
    #[command(flatten)]
    pub format: FormatArgs,
    /// Write the report to FILE instead of stdout (atomically; `-` is stdout)
    #[arg(short = 'o', long = "output", value_name = "FILE", value_hint = ValueHint::FilePath)]
    pub output: Option<PathBuf>,
}

/// Why a report could not be printed.
#[derive(Debug, thiserror::Error)]
pub enum OutputError {
    /// `--json` with `--format human`: refused rather than one silently winning.
    #[error("`--json` and `--format human` contradict each other\nhint: give one of them")]
    Contradiction,
    /// The value does not serialise (a bug, never user input).
    #[error("cannot render the report as JSON: {0}")]
    Json(#[from] serde_json::Error),
    /// Writing stdout failed (a closed pipe is reported by [`crate::report_error`] as success).
    #[error(transparent)]
    Stdout(#[from] io::Error),
    /// Writing `-o FILE` failed; the file is left as it was.
    #[error(transparent)]
    File(#[from] fromgit_fs::WriteError),
}

/// Where a command's report goes and in which form, decided once from the flags.
#[derive(Debug, Clone)]
pub struct Printer {
    json: bool,
    output: Option<PathBuf>,
    color: bool,
}

impl Printer {
    /// A printer for a command with `--format` and `-o`.
    pub fn new(global: &GlobalArgs, args: &ReportArgs) -> Result<Self, OutputError> {
        Self::build(global, &args.format, args.output.clone())
    }

    /// A printer for a command with `--format` only (its `-o` is another file).
    pub fn to_stdout(global: &GlobalArgs, args: &FormatArgs) -> Result<Self, OutputError> {
        Self::build(global, args, None)
    }

    fn build(
        global: &GlobalArgs,
        args: &FormatArgs,
        output: Option<PathBuf>,
    ) -> Result<Self, OutputError> {
        let json = match (global.json, args.format) {
            (true, Some(ReportFormat::Human)) => return Err(OutputError::Contradiction),
            (true, _) | (false, Some(ReportFormat::Json)) => true,
            (false, None | Some(ReportFormat::Human)) => false,
        };
        let to_file = output.as_deref().is_some_and(|path| path != Path::new("-"));
        let color = !json && !to_file && global.stdout_color();
        Ok(Self {
            json,
            output,
            color,
        })
    }

    /// Whether the report is JSON: human-only decorations (progress, notes
    /// on stdout) are left out when it is.
    pub fn json(&self) -> bool {
        self.json
    }

    /// Whether the human report may carry ANSI colour: never in a file or
    /// in JSON, otherwise as `--color` and `NO_COLOR` say for stdout.
    pub fn color(&self) -> bool {
        self.color
    }

    /// Prints the report: `value` as pretty JSON when JSON was asked for,
    /// otherwise the text `human` renders (called only then).
    pub fn print<T, F>(&self, value: &T, human: F) -> Result<(), OutputError>
    where
        T: serde::Serialize + ?Sized,
        F: FnOnce() -> String,
    {
        if self.json {
            self.print_json(value)
        } else {
            self.print_text(&human())
        }
    }

    /// Prints `value` as pretty JSON, whatever the format: for a command
    /// whose human form is built elsewhere.
    pub fn print_json<T: serde::Serialize + ?Sized>(&self, value: &T) -> Result<(), OutputError> {
        let mut text = serde_json::to_string_pretty(value)?;
        text.push('\n');
        self.print_text(&text)
    }

    /// Prints text as it is, to stdout or to the `-o` file (see [`write_report`]).
    pub fn print_text(&self, text: &str) -> Result<(), OutputError> {
        write_report(self.output.as_deref(), text)
    }
}

/// Writes a report to `output` (0644 when new, an existing file's mode
/// kept, written whole or not at all), or to stdout when there is none or
/// it is `-`: the one place a report reaches its destination.
pub fn write_report(output: Option<&Path>, text: &str) -> Result<(), OutputError> {
    match output.filter(|path| *path != Path::new("-")) {
        Some(path) => {
            fromgit_fs::write(path, text.as_bytes(), fromgit_fs::Mode::KeepOrPublic)?;
            Ok(())
        }
        None => Ok(crate::write_stdout(text.as_bytes())?),
    }
}

#[cfg(test)]
mod tests {
    use super::{FormatArgs, OutputError, Printer, ReportArgs, ReportFormat};
    use crate::GlobalArgs;

    fn args(format: Option<ReportFormat>, output: Option<&str>) -> ReportArgs {
        ReportArgs {
            format: FormatArgs { format },
            output: output.map(Into::into),
        }
    }

    #[test]
    fn json_is_chosen_by_either_flag_and_a_contradiction_is_refused() {
        let mut global = GlobalArgs::default();
        assert!(!Printer::new(&global, &args(None, None)).unwrap().json());
        assert!(Printer::new(&global, &args(Some(ReportFormat::Json), None))
            .unwrap()
            .json());
        global.json = true;
        assert!(Printer::new(&global, &args(None, None)).unwrap().json());
        assert!(Printer::new(&global, &args(Some(ReportFormat::Json), None))
            .unwrap()
            .json());
        assert!(matches!(
            Printer::new(&global, &args(Some(ReportFormat::Human), None)),
            Err(OutputError::Contradiction)
        ));
    }

    #[test]
    fn a_file_or_json_is_never_coloured_and_dash_is_stdout() {
        let mut global = GlobalArgs {
            color: crate::ColorChoice::Always,
            ..GlobalArgs::default()
        };
        assert!(Printer::new(&global, &args(None, None)).unwrap().color());
        assert!(!Printer::new(&global, &args(None, Some("r.txt")))
            .unwrap()
            .color());
        assert!(Printer::new(&global, &args(None, Some("-")))
            .unwrap()
            .color());
        global.json = true;
        assert!(!Printer::new(&global, &args(None, None)).unwrap().color());
    }

    #[test]
    fn a_report_written_to_a_file_is_the_text_or_the_json() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("report.json");
        let global = GlobalArgs::default();
        let printer = Printer::new(
            &global,
            &args(Some(ReportFormat::Json), Some(path.to_str().unwrap())),
        )
        .unwrap();
        printer
            .print(&serde_json::json!({"ok": true}), || unreachable!())
            .unwrap();
        assert_eq!(
            fs_err::read_to_string(&path).unwrap(),
            "{\n  \"ok\": true\n}\n"
        );
        let printer = Printer::new(&global, &args(None, Some(path.to_str().unwrap()))).unwrap();
        printer.print(&(), || "ok\n".to_owned()).unwrap();
        assert_eq!(fs_err::read_to_string(&path).unwrap(), "ok\n");
    }
}
