//! The command-line conventions every binary shares (`tools/fromgit-cli`):
//! `--help` on stdout ending with the exit-code table, `--version`, and a
//! usage error (exit 2, nothing on stdout, the offending flag named) for an
//! unknown flag, for the binary and each of its subcommands.

#![allow(clippy::unwrap_used)]

use std::path::Path;
use std::process::Output;

use fromgit_testkit::{cli::commands, fromgit_bin, run, text, BINARIES};

fn call(binary: &str, args: &[&str]) -> Output {
    run(&fromgit_bin(binary), args, Path::new("."), &[], b"")
}

#[test]
fn help_version_and_usage_errors() {
    for binary in BINARIES {
        let help = call(binary, &["--help"]);
        let stdout = text(&help.stdout);
        assert_eq!(help.status.code(), Some(0), "{binary} --help");
        assert!(
            stdout.contains("Usage:") && stdout.contains("Exit codes:"),
            "{binary} --help:\n{stdout}"
        );
        let subcommands = commands(&stdout);
        assert!(
            !subcommands.is_empty(),
            "{binary} lists no subcommand:\n{stdout}"
        );

        let version = call(binary, &["--version"]);
        assert_eq!(version.status.code(), Some(0), "{binary} --version");
        assert!(
            text(&version.stdout).starts_with(binary),
            "{binary} --version: {}",
            text(&version.stdout)
        );

        for prefix in
            std::iter::once(Vec::new()).chain(subcommands.iter().map(|s| vec![s.as_str()]))
        {
            let mut args = prefix.clone();
            args.push("--no-such-flag");
            let usage = call(binary, &args);
            assert_eq!(usage.status.code(), Some(2), "{binary} {args:?}");
            assert!(
                usage.stdout.is_empty(),
                "{binary} {args:?}: stdout must stay empty"
            );
            assert!(
                text(&usage.stderr).contains("--no-such-flag"),
                "{binary} {args:?}: {}",
                text(&usage.stderr)
            );
            let mut help_args = prefix.clone();
            help_args.push("--help");
            assert_eq!(
                call(binary, &help_args).status.code(),
                Some(0),
                "{binary} {help_args:?}"
            );
        }
    }
}

#[test]
fn man_pages_and_completions_for_packagers() {
    let scratch = tempfile::tempdir().unwrap();
    for binary in BINARIES {
        let subcommands = commands(&text(&call(binary, &["--help"]).stdout));

        let man = call(binary, &["--generate", "man"]);
        assert_eq!(man.status.code(), Some(0), "{binary} --generate man");
        let page = text(&man.stdout);
        assert!(
            page.contains(&format!(".TH {binary} 1")),
            "{binary}:\n{page}"
        );
        for subcommand in &subcommands {
            assert!(
                page.contains(subcommand.as_str()),
                "{binary} man page lacks {subcommand}"
            );
        }

        // The real bash loads the script and registers the completion.
        let bash = call(binary, &["--generate=complete-bash"]);
        assert_eq!(
            bash.status.code(),
            Some(0),
            "{binary} --generate=complete-bash"
        );
        let script = scratch.path().join(format!("{binary}.bash"));
        fs_err::write(&script, &bash.stdout).unwrap();
        let loaded = run(
            Path::new("bash"),
            [
                "-c",
                &format!("source '{}' && complete -p {binary}", script.display()),
            ],
            Path::new("."),
            &[],
            b"",
        );
        assert_eq!(
            loaded.status.code(),
            Some(0),
            "{binary}: {}",
            text(&loaded.stderr)
        );
        assert!(
            text(&loaded.stdout).contains(binary),
            "{}",
            text(&loaded.stdout)
        );
        let script = text(&bash.stdout);
        for subcommand in &subcommands {
            assert!(
                script.contains(subcommand.as_str()),
                "{binary} completion lacks {subcommand}"
            );
        }

        for misuse in [
            &["--generate", "man", subcommands[0].as_str()][..],
            &["-v", "--generate", "man"],
            &["--generate", "troff"],
            &["--generate"],
            &["--generate", "man\u{1b}[2K\nproven clean"],
        ] {
            let refused = call(binary, misuse);
            assert_eq!(refused.status.code(), Some(2), "{binary} {misuse:?}");
            assert!(refused.stdout.is_empty(), "{binary} {misuse:?}");
            assert!(
                text(&refused.stderr).contains("--generate"),
                "{binary} {misuse:?}"
            );
            // A crafted value can neither start a line nor reach the terminal.
            assert!(
                !refused.stderr.contains(&0x1b) && text(&refused.stderr).lines().count() == 1,
                "{binary} {misuse:?}: {}",
                text(&refused.stderr)
            );
        }
    }
}
