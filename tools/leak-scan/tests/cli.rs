//! Black-box checks of the `leak-scan` command line: the help text, clap's usage
//! errors, and that every subcommand still says plainly that it is not
//! implemented rather than pretending to succeed.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::process::{Command, Output};

/// Every subcommand, with the minimal arguments it needs to get past clap.
const SUBCOMMANDS: &[&[&str]] = &[&["tree"], &["staged"], &["history"], &["enroll"]];

fn leak_scan(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_leak-scan"))
        .args(args)
        .env_remove("FROMGIT_LOG")
        .env("NO_COLOR", "1")
        .output()
        .expect("the binary runs")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8(bytes.to_vec()).expect("output is UTF-8")
}

#[test]
fn help_lists_subcommands_and_exit_codes() {
    let out = leak_scan(&["--help"]);
    let stdout = text(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "stdout:\n{stdout}");
    for sub in SUBCOMMANDS {
        let name = sub[0];
        assert!(
            stdout
                .lines()
                .any(|line| line.split_whitespace().next() == Some(name)),
            "`--help` does not list `{name}`:\n{stdout}"
        );
    }
    assert!(
        stdout.contains("Exit codes:"),
        "no exit-code table:\n{stdout}"
    );
}

#[test]
fn unknown_flag_is_a_usage_error() {
    let out = leak_scan(&["--no-such-flag"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(out.stdout.is_empty());
    assert!(text(&out.stderr).contains("--no-such-flag"));
}

#[test]
fn unimplemented_subcommands_fail_with_exit_2() {
    for args in SUBCOMMANDS {
        let out = leak_scan(args);
        let stderr = text(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: stderr:\n{stderr}");
        assert!(
            stderr.contains("not implemented"),
            "{args:?}: stderr:\n{stderr}"
        );
        assert!(out.stdout.is_empty(), "{args:?}: stdout is not empty");
    }
}
