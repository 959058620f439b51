//! Black-box checks of the `cert-seal` command line: the help text and
//! clap's usage errors. The behaviour of each subcommand is tested against
//! real certificates, openssl and sops in the workspace's e2e crate.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::process::{Command, Output};

/// Every subcommand, with the minimal arguments it needs to get past clap.
const SUBCOMMANDS: &[&[&str]] = &[&["check"], &["seal"], &["inspect"], &["probe"], &["nix"]];

fn cert_seal(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_cert-seal"))
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
    let out = cert_seal(&["--help"]);
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
    let out = cert_seal(&["--no-such-flag"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(out.stdout.is_empty());
    assert!(text(&out.stderr).contains("--no-such-flag"));
}
