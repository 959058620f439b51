//! Snapshots of what the binaries print: the `--help` of every binary and
//! of every subcommand at every level (the tree is walked from the help
//! texts, so a new subcommand without a snapshot fails), and a
//! representative `--json` report of each command that has one. The
//! snapshots are in `snapshots/`; `tool_snapshot!` filters temp paths,
//! times, keys and hashes.

#![allow(clippy::unwrap_used, clippy::panic)]

use std::collections::BTreeSet;
use std::path::Path;

use fromgit_testkit::cli::command_tree;
use fromgit_testkit::snapshot::Filters;
use fromgit_testkit::{
    fromgit_bin, repo_root, run, tool_snapshot, write_file, Rng, ALNUM, BINARIES,
};
use rcgen::{CertificateParams, DnType, ExtendedKeyUsagePurpose, KeyPair};
use time::{Duration, OffsetDateTime};

fn snapshots_dir() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/snapshots")
}

fn help_snapshot_name(binary: &str, path: &[String]) -> String {
    std::iter::once("help")
        .chain(std::iter::once(binary))
        .chain(path.iter().map(String::as_str))
        .collect::<Vec<_>>()
        .join("-")
}

#[test]
fn every_help_is_snapshotted() {
    let mut expected = BTreeSet::new();
    for binary in BINARIES {
        for path in command_tree(binary) {
            let mut args: Vec<&str> = path.iter().map(String::as_str).collect();
            args.push("--help");
            let output = run(&fromgit_bin(binary), &args, Path::new("."), &[], b"");
            let name = help_snapshot_name(binary, &path);
            tool_snapshot!(name.as_str(), output);
            expected.insert(format!("{name}.snap"));
        }
    }
    // A command that is gone leaves its snapshot behind: that is drift too.
    let stale: Vec<String> = fs_err::read_dir(snapshots_dir())
        .unwrap()
        .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|name| {
            name.starts_with("help-") && Path::new(name).extension().is_some_and(|e| e == "snap")
        })
        .filter(|name| !expected.contains(name))
        .collect();
    assert!(
        stale.is_empty(),
        "snapshots of commands that no binary has any more: {stale:?}"
    );
}

#[test]
fn instance_extract_plan_json() {
    let output = run(
        &fromgit_bin("instance-extract"),
        [
            "plan",
            "--base",
            "examples/monolith",
            "--domain",
            "ci.example.net",
            "--json",
        ],
        &repo_root(),
        &[],
        b"",
    );
    tool_snapshot!("json-instance-extract-plan", output);
}

#[test]
fn cert_seal_check_json() {
    let dir = tempfile::tempdir().unwrap();
    let key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
    let mut params =
        CertificateParams::new(vec!["*.example.net".to_owned(), "example.net".to_owned()]).unwrap();
    params
        .distinguished_name
        .push(DnType::CommonName, "example.net");
    params.not_before = OffsetDateTime::now_utc() - Duration::days(1);
    params.not_after = OffsetDateTime::now_utc() + Duration::days(90);
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    let cert = params.self_signed(&key).unwrap();
    write_file(dir.path(), "fullchain.pem", cert.pem());
    write_file(dir.path(), "privkey.pem", key.serialize_pem());
    let output = run(
        &fromgit_bin("cert-seal"),
        [
            "check",
            "--cert",
            "fullchain.pem",
            "--key",
            "privkey.pem",
            "--domain",
            "example.net",
            "--json",
        ],
        dir.path(),
        &[],
        b"",
    );
    let filters = Filters::new()
        .path(dir.path(), "TEMP")
        .add(r#""serial": "[0-9A-F:]+""#, r#""serial": "[SERIAL]""#);
    tool_snapshot!("json-cert-seal-check", output, filters);
}

#[test]
fn leak_scan_tree_and_rules_json() {
    let dir = tempfile::tempdir().unwrap();
    let mut rng = Rng(0x5eed_0018);
    write_file(
        dir.path(),
        "app.conf",
        format!("token = \"gh{}_{}\"\n", "p", rng.text(36, ALNUM)),
    );
    write_file(dir.path(), "README.md", "nothing here\n");
    let filters = Filters::new()
        .path(dir.path(), "TEMP")
        .add(r#""version": "[0-9.]+""#, r#""version": "[VERSION]""#);
    let scan = run(
        &fromgit_bin("leak-scan"),
        [".", "--json"],
        dir.path(),
        &[],
        b"",
    );
    tool_snapshot!("json-leak-scan-tree", scan, filters.clone());
    let rules = run(
        &fromgit_bin("leak-scan"),
        ["rules", "--json"],
        dir.path(),
        &[],
        b"",
    );
    tool_snapshot!("json-leak-scan-rules", rules, filters);
}

#[test]
fn closure_diff_compare_json() {
    const APP: &str = "/nix/store/b88n4acqmh2knzsxgwfq4a5r3wdwnpwr-app-2.0";
    const LIB: &str = "/nix/store/fy0hp0n6zv4k93b0fdgcblp223w0y3n6-libfoo-1.0";
    const LIB2: &str = "/nix/store/9krlzvny65gdc8s7kpb6lkx8cd02c25b-libfoo-1.1";
    let dir = tempfile::tempdir().unwrap();
    let entry = |path: &str, hash: &str, refs: &[&str]| {
        let refs: Vec<String> = refs.iter().map(|r| format!("\"{r}\"")).collect();
        format!(
            r#"{{"path":"{path}","narHash":"sha256-{hash}=","narSize":4096,"references":[{}]}}"#,
            refs.join(",")
        )
    };
    let a = "ZBhNBAfED4UpMGFOVdp/9e5UHa3TZ78H3xJrxVxNe70";
    let b = "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA";
    write_file(
        dir.path(),
        "old.json",
        format!("[{},{}]", entry(APP, a, &[LIB]), entry(LIB, a, &[])),
    );
    write_file(
        dir.path(),
        "new.json",
        format!("[{},{}]", entry(APP, b, &[LIB2]), entry(LIB2, b, &[])),
    );
    let output = run(
        &fromgit_bin("closure-diff"),
        ["compare", "old.json", "new.json", "--json"],
        dir.path(),
        &[],
        b"",
    );
    tool_snapshot!(
        "json-closure-diff-compare",
        output,
        Filters::new().path(dir.path(), "TEMP")
    );
}
