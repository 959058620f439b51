//! Black-box checks of the `closure-diff` command line that need no Nix:
//! the help text, clap's usage errors, JSON dumps and snapshots compared
//! offline, and bad input. The comparisons against a real Nix store live in
//! the e2e crate (`tests/tests/closure_diff.rs`).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;
use std::process::{Command, Output};

fn closure_diff(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_closure-diff"))
        .args(args)
        .env_remove("FROMGIT_LOG")
        .env_remove("NIX_STORE_DIR")
        .env("NO_COLOR", "1")
        .output()
        .expect("the binary runs")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8(bytes.to_vec()).expect("output is UTF-8")
}

const A: &str = "/nix/store/b88n4acqmh2knzsxgwfq4a5r3wdwnpwr-app-2.0";
const L: &str = "/nix/store/fy0hp0n6zv4k93b0fdgcblp223w0y3n6-libfoo-1.0";
const L2: &str = "/nix/store/9y0hp0n6zv4k93b0fdgcblp223w0y3n6-libfoo-1.1";
const H1: &str = "sha256-ZBhNBAfED4UpMGFOVdp/9e5UHa3TZ78H3xJrxVxNe70=";
const H2: &str = "sha256-+v8wBblHydQSBOMU7VXsl2VLha4bd6WLL0mGJ5jjUAo=";

fn dump(dir: &Path, name: &str, lib: &str, lib_hash: &str) -> String {
    let path = dir.join(name);
    let doc = format!(
        r#"[{{"path":"{A}","narHash":"{H1}","narSize":168,"references":["{lib}"]}},
            {{"path":"{lib}","narHash":"{lib_hash}","narSize":120,"references":[]}}]"#
    );
    fs_err::write(&path, doc).unwrap();
    path.display().to_string()
}

#[test]
fn help_lists_subcommands_and_exit_codes() {
    let out = closure_diff(&["--help"]);
    let stdout = text(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "stdout:\n{stdout}");
    for name in ["compare", "snapshot"] {
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
    assert!(stdout.contains("3  unproven"), "{stdout}");
}

#[test]
fn unknown_flag_is_a_usage_error() {
    let out = closure_diff(&["--no-such-flag"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(out.stdout.is_empty());
    assert!(text(&out.stderr).contains("--no-such-flag"));
}

#[test]
fn one_operand_is_a_usage_error() {
    let out = closure_diff(&["only-one"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(out.stdout.is_empty());
}

#[test]
fn equal_dumps_are_byte_identical() {
    let dir = tempfile::tempdir().unwrap();
    let a = dump(dir.path(), "a.json", L, H2);
    let b = dump(dir.path(), "b.json", L, H2);
    let out = closure_diff(&[&a, &b]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stdout));
    assert!(text(&out.stdout).contains("IDENTICAL"));
    let out = closure_diff(&["compare", &a, &b, "--json"]);
    assert_eq!(out.status.code(), Some(0));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["schema_version"], 1);
    assert_eq!(v["verdict"]["result"], "identical");
    assert_eq!(v["verdict"]["strongest_level_holding"], "byte-identical");
}

#[test]
fn same_path_other_hash_is_never_identical() {
    let dir = tempfile::tempdir().unwrap();
    let a = dump(dir.path(), "a.json", L, H2);
    let b = dump(dir.path(), "b.json", L, H1);
    let out = closure_diff(&[&a, &b, "--json"]);
    assert_eq!(out.status.code(), Some(1));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["verdict"]["result"], "differs");
    assert_eq!(v["verdict"]["strongest_level_holding"], "same-path");
    assert_eq!(v["paths"]["changed"][0]["path"], L);
    assert_eq!(v["packages"][0]["kind"], "rebuilt");
    assert_eq!(v["packages"][0]["same_path_different_bytes"][0], L);
    // Only the weakest level passes.
    let out = closure_diff(&[&a, &b, "--level", "same-path"]);
    assert_eq!(out.status.code(), Some(0));
}

#[test]
fn version_bump_in_dumps_is_an_upgrade() {
    let dir = tempfile::tempdir().unwrap();
    let a = dump(dir.path(), "a.json", L, H2);
    let b = dump(dir.path(), "b.json", L2, H2);
    let out = closure_diff(&[&a, &b]);
    assert_eq!(out.status.code(), Some(1));
    let stdout = text(&out.stdout);
    assert!(stdout.contains("[U] libfoo"), "{stdout}");
    assert!(stdout.contains("1.0 → 1.1"), "{stdout}");
    // The toplevel kept its path (and its recorded hash) but its references
    // changed: the weakest level holds, byte identity does not.
    assert!(stdout.contains("same-path         holds"), "{stdout}");
    assert!(stdout.contains("byte-identical    FAILS"), "{stdout}");
}

#[test]
fn snapshot_of_a_dump_round_trips() {
    let dir = tempfile::tempdir().unwrap();
    let a = dump(dir.path(), "a.json", L, H2);
    let snap = dir.path().join("snap.json");
    let out = closure_diff(&["snapshot", &a, "-o", snap.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let out = closure_diff(&[&a, snap.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stdout));
    assert!(text(&out.stdout).contains("(snapshot, 2 paths)"));
}

#[test]
fn missing_hash_is_unproven() {
    let dir = tempfile::tempdir().unwrap();
    let a = dump(dir.path(), "a.json", L, H2);
    let b = dir.path().join("b.json");
    fs_err::write(
        &b,
        format!(
            r#"[{{"path":"{A}","narHash":"{H1}","narSize":168,"references":["{L}"]}},
                {{"path":"{L}","narSize":120,"references":[]}}]"#
        ),
    )
    .unwrap();
    let out = closure_diff(&[&a, b.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(3), "{}", text(&out.stdout));
    assert!(text(&out.stdout).contains("UNPROVEN"));
}

#[test]
fn bad_json_names_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.json");
    fs_err::write(&bad, "[{\"path\":").unwrap();
    let a = dump(dir.path(), "a.json", L, H2);
    let out = closure_diff(&[&a, bad.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    assert!(out.stdout.is_empty());
    assert!(
        text(&out.stderr).contains("bad.json"),
        "{}",
        text(&out.stderr)
    );
    let empty = dir.path().join("empty-dir");
    fs_err::create_dir(&empty).unwrap();
    let out = closure_diff(&[&a, empty.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr).contains(".narinfo"),
        "{}",
        text(&out.stderr)
    );
}
