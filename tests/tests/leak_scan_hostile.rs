//! `leak-scan` against hostile and careless repositories (issue 15): a YAML
//! file nested 20,000 levels, crafted file names, a committed `.ignore`
//! holding `*`, sops files the reader refuses, a suppression meant for one
//! file, and secrets that gitleaks finds (AWS keys, a PEM private key as
//! hex, an instance address in a file name). Every case runs the real
//! binary on a repository built here with the real `git`; where gitleaks
//! finds the secret, the real `gitleaks` runs on the same files, and the
//! sops files are written by the real `sops`.
//!
//! No secret is written in this file: the planted values are generated at
//! run time, so that `leak-scan` over this repository stays clean.

#![allow(
    clippy::unwrap_used,
    clippy::panic,
    clippy::missing_panics_doc,
    clippy::print_stderr
)]

use std::collections::BTreeSet;
use std::ffi::OsStr;
use std::path::Path;
use std::process::Output;

use fromgit_testkit::{
    age_keygen, fromgit_bin, git, peer, run, success, text, write_file as write, Rng, ALNUM, BASE64,
};

const BASE32: &str = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";

fn private_key_pem(rng: &mut Rng) -> String {
    let body: Vec<String> = (0..5).map(|_| rng.text(64, BASE64)).collect();
    format!(
        "-----BEGIN RSA {}-----\n{}\n-----END RSA PRIVATE KEY-----\n",
        "PRIVATE KEY",
        body.join("\n")
    )
}

fn leak_scan<S: AsRef<OsStr>>(dir: &Path, args: &[S]) -> Output {
    let output = run(&fromgit_bin("leak-scan"), args, dir, &[], b"");
    assert!(
        output.status.code().is_some_and(|c| c != 134),
        "leak-scan aborted ({:?}):\n{}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    output
}

fn json(output: &Output) -> serde_json::Value {
    serde_json::from_slice(&output.stdout)
        .unwrap_or_else(|err| panic!("not JSON ({err}):\n{}", text(&output.stdout)))
}

/// (rule, path) of every finding of a `--json` report.
fn findings(output: &Output) -> BTreeSet<(String, String)> {
    json(output)["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| {
            (
                f["rule"].as_str().unwrap().to_owned(),
                f["path"].as_str().unwrap_or_default().to_owned(),
            )
        })
        .collect()
}

fn init_repo(dir: &Path) {
    git(dir, &["init", "-q", "-b", "main"]);
}

fn commit_all(dir: &Path, message: &str) {
    git(dir, &["add", "-A"]);
    git(dir, &["commit", "-q", "-m", message]);
}

/// A sops-shaped YAML file with a sequence nested `depth` levels in block
/// style (2 bytes a level: 40 KB for 20,000).
fn deep_sops_yaml(depth: usize) -> String {
    format!(
        "deep:\n{}x\nsops:\n    mac: ENC[AES256_GCM,data:q83v,iv:AAAA,tag:BBBB,type:str]\n    version: 3.9.4\n",
        "- ".repeat(depth)
    )
}

#[test]
fn a_yaml_file_nested_20000_deep_is_reported_in_every_mode_never_an_abort() {
    let dir = tempfile::tempdir().unwrap();
    let repo = dir.path();
    init_repo(repo);
    let deep = deep_sops_yaml(20_000);
    assert!(deep.len() < 41_000);
    write(repo, "deep.yaml", &deep);
    write(
        repo,
        "plain-deep.yaml",
        format!("{}x\n", "- ".repeat(20_000)),
    );
    write(
        repo,
        ".sops.yaml",
        "creation_rules:\n  - path_regex: secrets/.*\\.yaml$\n    age: age1ql3z7hjy54pw3hyww5ayyfg7zqgvc7w3j2elw8zmrj2kg5sfn9aqmcac8p\n",
    );
    write(
        repo,
        "secrets/covered.yaml",
        format!("a:\n{}x\n", "- ".repeat(20_000)),
    );
    commit_all(repo, "deep");

    let tree = leak_scan(repo, &["--json"]);
    assert_eq!(tree.status.code(), Some(1), "{}", text(&tree.stderr));
    let found = findings(&tree);
    assert!(
        found.contains(&("sops-unreadable".into(), "deep.yaml".into())),
        "{found:?}"
    );
    assert!(
        found.contains(&("sops-not-encrypted".into(), "secrets/covered.yaml".into())),
        "{found:?}"
    );
    assert!(
        !found.iter().any(|(_, p)| p == "plain-deep.yaml"),
        "{found:?}"
    );

    let history = leak_scan(repo, &["--history", "--no-cache", "--json"]);
    assert_eq!(history.status.code(), Some(1), "{}", text(&history.stderr));
    assert!(findings(&history).contains(&("sops-unreadable".into(), "deep.yaml".into())));

    write(repo, "staged.yaml", &deep);
    git(repo, &["add", "staged.yaml"]);
    let staged = leak_scan(repo, &["--staged", "--json"]);
    assert_eq!(staged.status.code(), Some(1), "{}", text(&staged.stderr));
    assert!(findings(&staged).contains(&("sops-unreadable".into(), "staged.yaml".into())));

    // A `.sops.yaml` nested as deep is a configuration error naming the file.
    write(
        repo,
        ".sops.yaml",
        format!("creation_rules:\n{}x\n", "- ".repeat(20_000)),
    );
    let config = leak_scan(repo, &["--json"]);
    assert_eq!(config.status.code(), Some(2));
    assert!(
        text(&config.stderr).contains(".sops.yaml"),
        "{}",
        text(&config.stderr)
    );
}

#[test]
fn crafted_and_secret_file_names_are_escaped_and_redacted_in_every_format() {
    let dir = tempfile::tempdir().unwrap();
    let repo = dir.path();
    init_repo(repo);
    let mut rng = Rng(0x5ca1_ab1e);
    let token = format!("gh{}_{}", "p", rng.text(36, ALNUM));
    let forged = "x\nproven clean\n\u{1b}[1A\u{202e}";
    for name in [token.as_str(), forged] {
        write(repo, name, "a file larger than the limit\n");
    }
    git(repo, &["add", "-A"]);
    for mode in [&[][..], &["--staged"][..]] {
        for format in ["human", "json", "sarif"] {
            let mut args: Vec<&str> = mode.to_vec();
            args.extend(["--max-size", "10", "--format", format]);
            let out = leak_scan(repo, &args);
            let stdout = text(&out.stdout);
            // Both names hold a match or are skipped: never proven clean.
            assert!(
                matches!(out.status.code(), Some(1 | 3)),
                "{args:?}: {stdout}"
            );
            assert!(
                !stdout.contains(&token),
                "{args:?}: the token is printed:\n{stdout}"
            );
            assert!(
                !stdout.contains('\u{1b}') && !stdout.contains('\u{202e}'),
                "{args:?}"
            );
            assert!(
                !stdout.lines().any(|line| line.trim() == "proven clean"),
                "{args:?}: a forged verdict line:\n{stdout}"
            );
            if format == "human" {
                assert!(
                    stdout.contains("x\\nproven clean\\n\\x1b[1A\\u{202e}"),
                    "{stdout}"
                );
                assert!(stdout.contains("[github-token]"), "{stdout}");
            } else if format == "json" {
                let skipped = json(&out)["coverage"]["skipped"].to_string();
                assert!(
                    skipped.contains("x\\\\nproven clean"),
                    "{args:?}: {skipped}"
                );
                assert!(skipped.contains("[github-token]"), "{args:?}: {skipped}");
            }
        }
    }
}

#[test]
#[cfg_attr(
    missing_gitleaks,
    ignore = "`gitleaks` not found when the tests were built: `bash tests/run --install-only` installs it; under CI=true the test fails instead"
)]
fn ignore_files_cannot_hide_tracked_files_from_the_tree_scan() {
    let dir = tempfile::tempdir().unwrap();
    let repo = dir.path().join("repo");
    fs_err::create_dir_all(&repo).unwrap();
    init_repo(&repo);
    let mut rng = Rng(0x0196_00e5);
    let domain = format!("{}.test", rng.text(10, "abcdefghijklmnopqrstuvwxyz"));
    write(&repo, "keys/server.pem", private_key_pem(&mut rng));
    write(
        &repo,
        "hosts/web.nix",
        format!("{{ fqdn = \"web.{domain}\"; }}\n"),
    );
    write(&repo, ".ignore", "*\n");
    write(&repo, ".rgignore", "*\n");
    write(&repo, ".gitignore", "vendor/\n");
    commit_all(&repo, "blinded");
    write(&repo, "vendor/forced.pem", private_key_pem(&mut rng));
    git(&repo, &["add", "-f", "vendor/forced.pem"]);
    git(&repo, &["commit", "-q", "-m", "forced"]);
    write(
        &repo,
        "vendor/untracked.txt",
        "not part of the repository\n",
    );

    let instance = dir.path().join("instance");
    write(&instance, "instance.nix", "{ }\n");
    let fingerprints = dir.path().join("fingerprints.json");
    let enroll = leak_scan(
        dir.path(),
        &[
            OsStr::new("enroll"),
            OsStr::new("--instance"),
            instance.as_os_str(),
            OsStr::new("--domain"),
            OsStr::new(&domain),
            OsStr::new("-o"),
            fingerprints.as_os_str(),
        ],
    );
    success(&enroll, "leak-scan enroll");

    let args = [
        OsStr::new("--json"),
        OsStr::new("--fingerprints"),
        fingerprints.as_os_str(),
    ];
    let out = leak_scan(&repo, &args);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stdout));
    let found = findings(&out);
    for expected in [
        ("pem-private-key", "keys/server.pem"),
        ("pem-private-key", "vendor/forced.pem"),
        ("instance-domain", "hosts/web.nix"),
    ] {
        assert!(
            found.contains(&(expected.0.into(), expected.1.into())),
            "{expected:?} missing from {found:?}"
        );
    }
    let ignored = &json(&out)["coverage"]["ignored"];
    assert_eq!(ignored, &serde_json::json!(["vendor/untracked.txt"]));

    // Outside git (a flake's source in the store) no ignore file is honoured.
    let copy = dir.path().join("copy");
    fs_err::create_dir_all(&copy).unwrap();
    for path in [
        "keys/server.pem",
        "hosts/web.nix",
        ".ignore",
        "vendor/forced.pem",
    ] {
        write(&copy, path, fs_err::read(repo.join(path)).unwrap());
    }
    let out = leak_scan(&copy, &args);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(findings(&out).len(), 3, "{}", text(&out.stdout));

    // gitleaks finds the keys; so must we (checked above).
    let Some(gitleaks) = peer("gitleaks") else {
        return;
    };
    let report = dir.path().join("gitleaks.json");
    let output = run(
        &gitleaks,
        [
            OsStr::new("dir"),
            OsStr::new("."),
            OsStr::new("--no-banner"),
            OsStr::new("--report-format"),
            OsStr::new("json"),
            OsStr::new("--report-path"),
            report.as_os_str(),
        ],
        &repo,
        &[],
        b"",
    );
    assert_eq!(output.status.code(), Some(1), "{}", text(&output.stderr));
    let theirs: serde_json::Value =
        serde_json::from_slice(&fs_err::read(&report).unwrap()).unwrap();
    for finding in theirs.as_array().unwrap() {
        let file = finding["File"].as_str().unwrap();
        assert!(
            found.iter().any(|(_, path)| path == file),
            "gitleaks finds {file} ({}), leak-scan does not",
            finding["RuleID"]
        );
    }
}

/// A real sops file of `{db: {password, user}}`, encrypted for a fresh key.
fn real_sops_yaml(dir: &Path, rng: &mut Rng) -> Option<(String, String)> {
    let sops = peer("sops")?;
    let key = age_keygen(dir, "key")?;
    let password = rng.text(24, ALNUM);
    let plain = format!("db:\n    password: {password}\n    user: app\n");
    let output = run(
        &sops,
        [
            "--encrypt",
            "--age",
            &key.recipient,
            "--input-type",
            "yaml",
            "--output-type",
            "yaml",
            "/dev/stdin",
        ],
        dir,
        &[],
        plain.as_bytes(),
    );
    let encrypted = success(&output, "sops --encrypt");
    let line = encrypted
        .lines()
        .find(|l| l.trim_start().starts_with("password: ENC["))
        .unwrap()
        .trim_start()
        .to_owned();
    Some((encrypted, line))
}

#[test]
#[cfg_attr(
    any(missing_sops, missing_age_keygen),
    ignore = "needs `sops` and `age-keygen`; one was not found when the tests were built: `bash tests/run --install-only` installs them; under CI=true the test fails instead"
)]
fn a_sops_file_the_reader_refuses_is_never_proven_clean() {
    let dir = tempfile::tempdir().unwrap();
    let mut rng = Rng(0x0bad_5095);
    let Some((encrypted, password_line)) = real_sops_yaml(dir.path(), &mut rng) else {
        return;
    };
    let clear = format!("password: {}", rng.text(20, ALNUM));
    let decrypted_in_place = encrypted.replace(&password_line, &clear);
    let repo = dir.path().join("repo");
    fs_err::create_dir_all(&repo).unwrap();
    init_repo(&repo);
    write(&repo, "secrets/app.yaml", &decrypted_in_place);
    let out = leak_scan(&repo, &["--json"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(findings(&out).contains(&("sops-plaintext-value".into(), "secrets/app.yaml".into())));

    for (n, extra) in [
        "mode: 0755\n",
        "anchored: &a x\n",
        "tagged: !!binary aGVsbG8=\n",
        "db:\n    other: x\n",
        "when: 2026-01-01\n",
    ]
    .into_iter()
    .enumerate()
    {
        write(
            &repo,
            "secrets/app.yaml",
            format!("{extra}{decrypted_in_place}"),
        );
        let out = leak_scan(&repo, &["--json"]);
        assert_eq!(
            out.status.code(),
            Some(1),
            "{extra:?}: {}",
            text(&out.stdout)
        );
        assert!(
            findings(&out).contains(&("sops-unreadable".into(), "secrets/app.yaml".into())),
            "{extra:?}"
        );
        commit_all(&repo, &format!("variant {n}"));
    }
    let history = leak_scan(&repo, &["--history", "--json"]);
    assert_eq!(history.status.code(), Some(1));
    let rules: BTreeSet<String> = findings(&history).into_iter().map(|(r, _)| r).collect();
    assert!(rules.contains("sops-unreadable"), "{rules:?}");
}

#[test]
#[cfg_attr(
    any(missing_sops, missing_age_keygen),
    ignore = "needs `sops` and `age-keygen`; one was not found when the tests were built: `bash tests/run --install-only` installs them; under CI=true the test fails instead"
)]
fn a_suppression_covers_its_rule_path_and_value_only() {
    let dir = tempfile::tempdir().unwrap();
    let mut rng = Rng(0x0005_0000_5eed);
    let Some((encrypted, password_line)) = real_sops_yaml(dir.path(), &mut rng) else {
        return;
    };
    let repo = dir.path().join("repo");
    fs_err::create_dir_all(&repo).unwrap();
    let one = encrypted.replace(
        &password_line,
        &format!("password: {}", rng.text(20, ALNUM)),
    );
    let two = encrypted.replace(
        &password_line,
        &format!("password: {}", rng.text(20, ALNUM)),
    );
    write(&repo, "a.yaml", &one);
    let out = leak_scan(&repo, &["--json"]);
    assert_eq!(out.status.code(), Some(1));
    let doc = json(&out);
    let finding = &doc["findings"][0];
    assert_eq!(finding["rule"], "sops-plaintext-value");
    let id = finding["id"].as_str().unwrap();
    write(
        &repo,
        ".leak-scan.toml",
        format!(
            "version = 2\n[[suppress]]\nfingerprint = \"{id}\"\nrule = \"sops-plaintext-value\"\nreason = \"fixture\"\n"
        ),
    );
    assert_eq!(leak_scan(&repo, &["--json"]).status.code(), Some(0));

    // The same line number in another file, another value: still found.
    write(&repo, "b.yaml", &two);
    // The same value in another file: still found.
    write(&repo, "c.yaml", &one);
    let out = leak_scan(&repo, &["--json"]);
    assert_eq!(out.status.code(), Some(1));
    let paths: BTreeSet<String> = findings(&out).into_iter().map(|(_, p)| p).collect();
    assert_eq!(paths, ["b.yaml".to_owned(), "c.yaml".to_owned()].into());
    assert_eq!(json(&out)["suppressed"], 1);

    // Another value in the suppressed file: found.
    write(&repo, "a.yaml", &two);
    let out = leak_scan(&repo, &["--json"]);
    assert!(findings(&out).contains(&("sops-plaintext-value".into(), "a.yaml".into())));

    // Version 1 suppressions are refused with the way to migrate.
    write(
        &repo,
        ".leak-scan.toml",
        format!("[[suppress]]\nfingerprint = \"{id}\"\nreason = \"fixture\"\n"),
    );
    let out = leak_scan(&repo, &["--json"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr).contains("version = 2"),
        "{}",
        text(&out.stderr)
    );
}

#[test]
#[cfg_attr(
    missing_gitleaks,
    ignore = "`gitleaks` not found when the tests were built: `bash tests/run --install-only` installs it; under CI=true the test fails instead"
)]
fn aws_keys_hex_private_keys_and_an_address_in_a_file_name_are_found() {
    let dir = tempfile::tempdir().unwrap();
    let repo = dir.path().join("repo");
    fs_err::create_dir_all(&repo).unwrap();
    let mut rng = Rng(0x0a11_00e5);
    let key_id = format!("AKI{}{}", "A", rng.text(16, BASE32));
    let session_id = format!("ASI{}{}", "A", rng.text(16, BASE32));
    let secret = rng.text(40, BASE64);
    write(
        &repo,
        "aws/credentials",
        format!("[default]\naws_access_key_id = {key_id}\naws_secret_access_key = {secret}\n"),
    );
    write(
        &repo,
        "ci.env",
        format!("AWS_ACCESS_KEY_ID={session_id}\nAWS_SECRET_ACCESS_KEY={secret}\n"),
    );
    let pem = private_key_pem(&mut rng);
    write(
        &repo,
        "key.hex",
        format!("{}\n", hex::encode(pem.as_bytes())),
    );
    write(
        &repo,
        "key-upper.txt",
        format!("key = \"{}\"\n", hex::encode_upper(pem.as_bytes())),
    );
    let address = "198.51.100.23";
    write(&repo, &format!("hosts/{address}.conf"), "{ }\n");
    write(&repo, &format!("hosts/node.{address}.bad"), "{ }\n");

    let instance = dir.path().join("instance");
    write(
        &instance,
        "instance.nix",
        format!("{{ networking.address = \"{address}\"; }}\n"),
    );
    let fingerprints = dir.path().join("fingerprints.json");
    success(
        &leak_scan(
            dir.path(),
            &[
                OsStr::new("enroll"),
                OsStr::new("--instance"),
                instance.as_os_str(),
                OsStr::new("-o"),
                fingerprints.as_os_str(),
            ],
        ),
        "leak-scan enroll",
    );
    let out = leak_scan(
        &repo,
        &[
            OsStr::new("--json"),
            OsStr::new("--fingerprints"),
            fingerprints.as_os_str(),
        ],
    );
    assert_eq!(out.status.code(), Some(1));
    let found = findings(&out);
    for expected in [
        ("aws-access-key-id", "aws/credentials"),
        ("aws-secret-access-key", "aws/credentials"),
        ("aws-access-key-id", "ci.env"),
        ("aws-secret-access-key", "ci.env"),
        ("pem-private-key-hex", "key.hex"),
        ("pem-private-key-hex", "key-upper.txt"),
        ("instance-address", "hosts/[address-1].conf"),
        ("instance-address", "hosts/node.[address-1].bad"),
    ] {
        assert!(
            found.contains(&(expected.0.into(), expected.1.into())),
            "{expected:?} missing from {found:?}"
        );
    }
    assert!(!text(&out.stdout).contains(address));

    let Some(gitleaks) = peer("gitleaks") else {
        return;
    };
    let report = dir.path().join("gitleaks.json");
    let output = run(
        &gitleaks,
        [
            OsStr::new("dir"),
            OsStr::new("."),
            OsStr::new("--no-banner"),
            OsStr::new("--report-format"),
            OsStr::new("json"),
            OsStr::new("--report-path"),
            report.as_os_str(),
        ],
        &repo,
        &[],
        b"",
    );
    assert_eq!(output.status.code(), Some(1), "{}", text(&output.stderr));
    let theirs: serde_json::Value =
        serde_json::from_slice(&fs_err::read(&report).unwrap()).unwrap();
    let theirs: BTreeSet<String> = theirs
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["File"].as_str().unwrap().to_owned())
        .collect();
    for file in ["aws/credentials", "ci.env", "key.hex", "key-upper.txt"] {
        assert!(
            theirs.contains(file),
            "gitleaks no longer finds {file}: {theirs:?}"
        );
    }
}
