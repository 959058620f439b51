//! `--generate KIND`: a tool's man page or shell completion script, written
//! to stdout for packagers (see `nix/package.nix`).
//!
//! It is handled before the command line is parsed, because most tools
//! require a subcommand or a positional argument that a packager calling
//! `tool --generate man` does not give.

use std::ffi::OsString;
use std::io;
use std::process::ExitCode;

use clap::ValueEnum as _;
use clap_complete::Shell;

/// What `--generate` writes.
#[derive(clap::ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum Generate {
    /// A roff man page (section 1)
    Man,
    /// A bash completion script
    CompleteBash,
    /// A zsh completion script
    CompleteZsh,
    /// A fish completion script
    CompleteFish,
    /// An elvish completion script
    CompleteElvish,
    /// A PowerShell completion script
    CompletePowershell,
}

const FLAG: &str = "--generate";

/// If the command line asks for `--generate KIND`, writes it for `C` and
/// returns the exit code; otherwise returns `None` and the tool runs as usual.
pub fn generate_if_asked<C: clap::CommandFactory>() -> Option<ExitCode> {
    let args: Vec<OsString> = std::env::args_os().skip(1).collect();
    let outcome = requested_kind(&args)?
        .map_err(anyhow::Error::msg)
        .and_then(|kind| {
            let mut out = Vec::new();
            write_generated(C::command(), kind, &mut out)
                .map_err(|err| anyhow::Error::new(err).context("Failed to generate"))?;
            crate::write_stdout(&out)
                .map_err(|err| anyhow::Error::new(err).context("Failed to write to stdout"))
        });
    Some(match outcome {
        Ok(()) => crate::ExitStatus::Success.into(),
        Err(err) => crate::report_error(&err),
    })
}

/// The kind asked for, an error if `--generate` is misused, `None` without it.
fn requested_kind(args: &[OsString]) -> Option<Result<Generate, String>> {
    let position = args.iter().position(|arg| {
        arg.to_str()
            .is_some_and(|arg| arg == FLAG || arg.starts_with("--generate="))
    })?;
    let first = args[position].to_str().unwrap_or_default();
    let (value, used) = match first.strip_prefix("--generate=") {
        Some(value) => (Some(value.to_owned()), 1),
        None => (
            args.get(position + 1)
                .and_then(|v| v.to_str())
                .map(str::to_owned),
            2,
        ),
    };
    let Some(value) = value else {
        return Some(Err(format!("`{FLAG}` needs a value: {}", kinds())));
    };
    if position != 0 || args.len() != used {
        return Some(Err(format!(
            "`{FLAG}` must be given alone: `{FLAG} {value}`"
        )));
    }
    Some(
        Generate::from_str(&value, false)
            .map_err(|_| format!("`{FLAG} {value}`: unknown kind (kinds: {})", kinds())),
    )
}

fn kinds() -> String {
    Generate::value_variants()
        .iter()
        .filter_map(clap::ValueEnum::to_possible_value)
        .map(|value| value.get_name().to_owned())
        .collect::<Vec<_>>()
        .join(", ")
}

fn write_generated(
    mut command: clap::Command,
    kind: Generate,
    out: &mut Vec<u8>,
) -> io::Result<()> {
    let name = command.get_name().to_owned();
    let shell = match kind {
        Generate::Man => return clap_mangen::Man::new(command).render(out),
        Generate::CompleteBash => Shell::Bash,
        Generate::CompleteZsh => Shell::Zsh,
        Generate::CompleteFish => Shell::Fish,
        Generate::CompleteElvish => Shell::Elvish,
        Generate::CompletePowershell => Shell::PowerShell,
    };
    clap_complete::generate(shell, &mut command, name, out);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(clap::Parser)]
    #[command(name = "demo-tool")]
    struct Demo {
        #[command(flatten)]
        global: crate::GlobalArgs,
        #[command(subcommand)]
        command: DemoCommand,
    }

    #[derive(clap::Subcommand)]
    enum DemoCommand {
        /// Seal a thing
        Seal { path: String },
    }

    fn args(list: &[&str]) -> Vec<OsString> {
        list.iter().map(OsString::from).collect()
    }

    #[test]
    fn only_a_lone_generate_flag_is_taken() {
        assert_eq!(requested_kind(&args(&["seal", "x"])), None);
        assert_eq!(
            requested_kind(&args(&["--generate", "man"])),
            Some(Ok(Generate::Man))
        );
        assert_eq!(
            requested_kind(&args(&["--generate=complete-zsh"])),
            Some(Ok(Generate::CompleteZsh))
        );
        let misuse = requested_kind(&args(&["-v", "--generate", "man"]))
            .unwrap()
            .unwrap_err();
        assert!(misuse.contains("must be given alone"), "{misuse}");
        let misuse = requested_kind(&args(&["--generate", "man", "seal"]))
            .unwrap()
            .unwrap_err();
        assert!(misuse.contains("must be given alone"), "{misuse}");
        let unknown = requested_kind(&args(&["--generate", "nroff"]))
            .unwrap()
            .unwrap_err();
        assert!(unknown.contains("complete-bash"), "{unknown}");
        let missing = requested_kind(&args(&["--generate"])).unwrap().unwrap_err();
        assert!(missing.contains("needs a value"), "{missing}");
    }

    #[test]
    fn man_page_and_completions_name_the_tool_and_its_subcommands() {
        let mut man = Vec::new();
        write_generated(
            <Demo as clap::CommandFactory>::command(),
            Generate::Man,
            &mut man,
        )
        .unwrap();
        let man = String::from_utf8(man).unwrap();
        assert!(man.contains(".TH demo-tool 1"), "{man}");
        assert!(man.contains("Seal a thing"), "{man}");
        for kind in [
            Generate::CompleteBash,
            Generate::CompleteZsh,
            Generate::CompleteFish,
        ] {
            let mut script = Vec::new();
            write_generated(<Demo as clap::CommandFactory>::command(), kind, &mut script).unwrap();
            let script = String::from_utf8(script).unwrap();
            assert!(script.contains("demo-tool"), "{kind:?}: {script}");
            assert!(script.contains("seal"), "{kind:?}: {script}");
            assert!(script.contains("generate"), "{kind:?}: {script}");
        }
    }
}
