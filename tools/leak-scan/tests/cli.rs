//! Black-box checks of the `leak-scan` command line: help, usage errors,
//! and the exit codes of a clean tree, a tree with a finding, and bad input.
//!
//! One file of many short cases, over 600 lines: each exit code and usage
//! error of the command line is its own test, and they share one set-up.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::fmt::Write as _;
use std::path::Path;
use std::process::{Command, Output};

fn leak_scan(dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_leak-scan"))
        .args(args)
        .current_dir(dir)
        .env_remove("FROMGIT_LOG")
        .env_remove("LEAK_SCAN_FINGERPRINTS")
        .env("NO_COLOR", "1")
        .output()
        .expect("the binary runs")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8(bytes.to_vec()).expect("output is UTF-8")
}

#[test]
fn help_lists_modes_and_exit_codes() {
    let dir = tempfile::tempdir().unwrap();
    let out = leak_scan(dir.path(), &["--help"]);
    let stdout = text(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "stdout:\n{stdout}");
    for needle in [
        "--staged",
        "--history",
        "--since",
        "--fingerprints",
        "enroll",
        "Exit codes:",
        "3  unproven",
    ] {
        assert!(
            stdout.contains(needle),
            "`--help` lacks {needle}:\n{stdout}"
        );
    }
}

#[test]
fn unknown_flag_is_a_usage_error() {
    let dir = tempfile::tempdir().unwrap();
    let out = leak_scan(dir.path(), &["--no-such-flag"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(out.stdout.is_empty());
    assert!(text(&out.stderr).contains("--no-such-flag"));
}

#[test]
fn clean_tree_exits_0_and_a_key_exits_1_without_printing_it() {
    let dir = tempfile::tempdir().unwrap();
    fs_err::write(dir.path().join("README.md"), "nothing to see\n").unwrap();
    let out = leak_scan(dir.path(), &[]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert!(text(&out.stdout).contains("proven clean"));

    let body = "15FERYXHRDZ9M6Y09MR8WRERWZGJ6F8NTXVHXYRDLM5AAHN0T09NL4UJY86";
    fs_err::write(
        dir.path().join("keys.txt"),
        format!("AGE-SECRET-KEY-{body}\n"),
    )
    .unwrap();
    for format in ["human", "json", "sarif"] {
        let out = leak_scan(dir.path(), &["--format", format]);
        let stdout = text(&out.stdout);
        assert_eq!(out.status.code(), Some(1), "{format}: {stdout}");
        assert!(stdout.contains("age-secret-key"), "{format}: {stdout}");
        assert!(stdout.contains("keys.txt"), "{format}: {stdout}");
        assert!(
            !stdout.contains(&body[4..40]),
            "{format} output holds the secret"
        );
        assert!(!text(&out.stderr).contains(&body[4..40]));
    }
}

#[test]
fn bad_input_exits_2() {
    let dir = tempfile::tempdir().unwrap();
    let out = leak_scan(dir.path(), &["--staged"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr).contains("not in a git repository"),
        "{}",
        text(&out.stderr)
    );
    fs_err::write(
        dir.path().join("bad.toml"),
        "[[rule]]\nid = \"bad\"\nname = \"n\"\ndescription = \"d\"\npattern = \"(\"\n",
    )
    .unwrap();
    let out = leak_scan(dir.path(), &["--rules", "bad.toml"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).contains("`bad`"), "{}", text(&out.stderr));
}

#[test]
fn unreadable_fingerprints_and_skipped_files_exit_3() {
    let dir = tempfile::tempdir().unwrap();
    fs_err::write(dir.path().join("a.txt"), "hello\n").unwrap();
    fs_err::write(dir.path().join("fp.json"), "{\"schema_version\": 1, \"for").unwrap();
    let out = leak_scan(dir.path(), &["--fingerprints", "fp.json", "--json"]);
    assert_eq!(out.status.code(), Some(3), "{}", text(&out.stdout));
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(doc["complete"], false);
    assert!(doc["unproven_reasons"][0]
        .as_str()
        .unwrap()
        .contains("fingerprint file"));

    fs_err::remove_file(dir.path().join("fp.json")).unwrap();
    fs_err::write(dir.path().join("big.bin"), vec![b'x'; 4096]).unwrap();
    let out = leak_scan(dir.path(), &["--max-size", "1000"]);
    assert_eq!(out.status.code(), Some(3), "{}", text(&out.stdout));
    assert!(text(&out.stdout).contains("skipped"));
}

fn age_key(seed: u8) -> String {
    const BECH32: &[u8] = b"QPZRY9X8GF2TVDW0S3JN54KHCE6MUA7L";
    let body: String = (0..58u8)
        .map(|i| char::from(BECH32[usize::from(i.wrapping_mul(7).wrapping_add(seed)) % 32]))
        .collect();
    format!("AGE-SECRET-{}-1{body}", "KEY")
}

fn git(dir: &Path, args: &[&str]) {
    let out = Command::new("git")
        .args(args)
        .current_dir(dir)
        .env("GIT_AUTHOR_NAME", "t")
        .env("GIT_AUTHOR_EMAIL", "t@example.com")
        .env("GIT_COMMITTER_NAME", "t")
        .env("GIT_COMMITTER_EMAIL", "t@example.com")
        .output()
        .expect("git runs");
    assert!(out.status.success(), "git {args:?}: {}", text(&out.stderr));
}

fn json(out: &Output) -> serde_json::Value {
    serde_json::from_slice(&out.stdout).expect("stdout is JSON")
}

#[test]
fn sarif_is_valid_for_code_scanning() {
    let dir = tempfile::tempdir().unwrap();
    fs_err::create_dir_all(dir.path().join("sub dir")).unwrap();
    fs_err::write(
        dir.path().join("sub dir/keys.txt"),
        format!("x {} {}\n", age_key(1), age_key(2)),
    )
    .unwrap();
    fs_err::write(dir.path().join("b.txt"), format!("{}\n", age_key(3))).unwrap();
    let out = leak_scan(dir.path(), &["--format", "sarif"]);
    assert_eq!(out.status.code(), Some(1));
    let raw = text(&out.stdout);
    assert!(!raw.contains("snippet"), "no snippets");
    let doc = json(&out);
    assert_eq!(doc["version"], "2.1.0");
    assert!(doc["$schema"].as_str().unwrap().contains("sarif-2.1.0"));
    let runs = doc["runs"].as_array().unwrap();
    assert_eq!(runs.len(), 1);
    let run = &runs[0];
    assert_eq!(run["tool"]["driver"]["name"], "leak-scan");
    assert!(run["tool"]["driver"]["version"].is_string());
    assert_eq!(run["automationDetails"]["id"], "leak-scan/tree/");
    assert!(run["originalUriBaseIds"]["%SRCROOT%"].is_object());
    assert_eq!(run["invocations"][0]["executionSuccessful"], true);
    let rules = run["tool"]["driver"]["rules"].as_array().unwrap();
    let ids: Vec<&str> = rules.iter().map(|r| r["id"].as_str().unwrap()).collect();
    let mut unique = ids.clone();
    unique.sort_unstable();
    unique.dedup();
    assert_eq!(unique.len(), ids.len(), "duplicate rule ids: {ids:?}");
    for rule in rules {
        assert!(rule["shortDescription"]["text"].is_string());
        assert!(rule["help"]["text"].is_string());
        assert!(rule["properties"]["tags"].is_array());
    }
    let results = run["results"].as_array().unwrap();
    assert_eq!(results.len(), 3);
    let mut fingerprints = Vec::new();
    for result in results {
        let index = usize::try_from(result["ruleIndex"].as_u64().unwrap()).unwrap();
        assert_eq!(result["ruleId"], rules[index]["id"]);
        assert!(["error", "warning", "note"].contains(&result["level"].as_str().unwrap()));
        assert!(result["message"]["text"].is_string());
        let fp = result["partialFingerprints"]["leakScanContent/v1"]
            .as_str()
            .unwrap();
        fingerprints.push(fp.to_owned());
        let location = &result["locations"][0]["physicalLocation"];
        let uri = location["artifactLocation"]["uri"].as_str().unwrap();
        assert!(!uri.starts_with('/') && !uri.contains("://"), "{uri}");
        assert!(!uri.contains(' '), "{uri}");
        assert_eq!(location["artifactLocation"]["uriBaseId"], "%SRCROOT%");
        let region = &location["region"];
        assert!(region["startLine"].as_u64().unwrap() >= 1);
        assert!(region["startColumn"].as_u64().unwrap() >= 1);
        assert!(region["endColumn"].as_u64().unwrap() > region["startColumn"].as_u64().unwrap());
    }
    fingerprints.sort();
    fingerprints.dedup();
    assert_eq!(
        fingerprints.len(),
        3,
        "two secrets on one line are distinct"
    );
}

#[test]
fn suppressions_key_on_rule_path_and_content_need_a_reason_and_report_unused_entries() {
    let dir = tempfile::tempdir().unwrap();
    let key = age_key(4);
    fs_err::write(dir.path().join("fixture.txt"), format!("{key}\n")).unwrap();
    let doc = json(&leak_scan(dir.path(), &["--json"]));
    let fingerprint = doc["findings"][0]["fingerprint"]
        .as_str()
        .unwrap()
        .to_owned();
    let id = doc["findings"][0]["id"].as_str().unwrap().to_owned();
    assert!(fingerprint.starts_with(&id));

    let config = dir.path().join(".leak-scan.toml");
    fs_err::write(
        &config,
        format!("version = 2\n[[suppress]]\nfingerprint = \"{id}\"\nrule = \"age-secret-key\"\nreason = \"public test identity\"\n"),
    )
    .unwrap();
    let out = leak_scan(dir.path(), &["--json"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stdout));
    assert_eq!(json(&out)["suppressed"], 1);
    assert!(!fs_err::read_to_string(&config)
        .unwrap()
        .contains(&key[16..]));

    // Moved to another line of the same file: still suppressed.
    fs_err::write(dir.path().join("fixture.txt"), format!("\n\n  {key}\n")).unwrap();
    assert_eq!(leak_scan(dir.path(), &[]).status.code(), Some(0));

    // The same value in another file is a finding of its own.
    fs_err::write(dir.path().join("other.txt"), format!("{key}\n")).unwrap();
    let out = leak_scan(dir.path(), &["--json"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stdout));
    assert_eq!(json(&out)["findings"][0]["path"], "other.txt");
    fs_err::remove_file(dir.path().join("other.txt")).unwrap();

    // A different secret on the same line is a new finding; the old entry is unused.
    fs_err::write(
        dir.path().join("fixture.txt"),
        format!("\n\n  {}\n", age_key(5)),
    )
    .unwrap();
    let out = leak_scan(dir.path(), &["--json"]);
    assert_eq!(out.status.code(), Some(1));
    let doc = json(&out);
    assert_eq!(
        doc["unused_suppressions"][0]["reason"],
        "public test identity"
    );
    assert!(text(&out.stderr).contains("matches nothing"));

    fs_err::write(dir.path().join("fixture.txt"), "clean\n").unwrap();
    assert_eq!(leak_scan(dir.path(), &[]).status.code(), Some(0));
    assert_eq!(
        leak_scan(dir.path(), &["--fail-unused-suppressions"])
            .status
            .code(),
        Some(1)
    );
    fs_err::write(
        &config,
        format!("version = 2\n[[suppress]]\nfingerprint = \"{id}\"\nrule = \"age-secret-key\"\n"),
    )
    .unwrap();
    let out = leak_scan(dir.path(), &[]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr).contains("no reason"),
        "{}",
        text(&out.stderr)
    );
    // Version 1 entries (rule and value only) are refused with the way to migrate.
    fs_err::write(
        &config,
        format!(
            "[[suppress]]\nfingerprint = \"{id}\"\nrule = \"age-secret-key\"\nreason = \"r\"\n"
        ),
    )
    .unwrap();
    let out = leak_scan(dir.path(), &[]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr).contains("version = 2"),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn staged_scans_the_index_entries_that_differ_from_head() {
    let dir = tempfile::tempdir().unwrap();
    git(dir.path(), &["init", "-q", "-b", "main"]);
    fs_err::write(dir.path().join("old.txt"), format!("{}\n", age_key(6))).unwrap();
    git(dir.path(), &["add", "-A"]);
    git(dir.path(), &["commit", "-q", "-m", "old"]);
    fs_err::write(dir.path().join("new.txt"), "clean\n").unwrap();
    git(dir.path(), &["add", "new.txt"]);
    let out = leak_scan(dir.path(), &["--staged", "--json"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stdout));
    assert_eq!(json(&out)["coverage"]["scanned"], 1);
    fs_err::write(dir.path().join("new.txt"), format!("{}\n", age_key(7))).unwrap();
    // Unstaged changes are not what gets committed.
    assert_eq!(leak_scan(dir.path(), &["--staged"]).status.code(), Some(0));
    git(dir.path(), &["add", "new.txt"]);
    let out = leak_scan(dir.path(), &["--staged", "--json"]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(json(&out)["findings"][0]["path"], "new.txt");
    // History mode writes nothing on stderr through a pipe (no progress bar).
    let out = leak_scan(dir.path(), &["--history"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(out.stderr.is_empty(), "{}", text(&out.stderr));
}

#[test]
fn sops_creation_rules_are_enforced() {
    let dir = tempfile::tempdir().unwrap();
    fs_err::create_dir_all(dir.path().join("secrets")).unwrap();
    fs_err::write(
        dir.path().join(".sops.yaml"),
        "creation_rules:\n  - path_regex: secrets/.*\\.yaml$\n    age: age1ql3z7hjy54pw3hyww5ayyfg7zqgvc7w3j2elw8zmrj2kg5sfn9aqmcac8p\n",
    )
    .unwrap();
    fs_err::write(
        dir.path().join("secrets/app.yaml"),
        "db:\n  password: hunter2\n",
    )
    .unwrap();
    fs_err::write(dir.path().join("notes.yaml"), "db:\n  password: hunter2\n").unwrap();
    let out = leak_scan(dir.path(), &["--json"]);
    assert_eq!(out.status.code(), Some(1));
    let doc = json(&out);
    let found: Vec<(&str, &str)> = doc["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| (f["rule"].as_str().unwrap(), f["path"].as_str().unwrap()))
        .collect();
    assert_eq!(found, [("sops-not-encrypted", "secrets/app.yaml")]);
}

#[cfg(unix)]
#[test]
fn non_utf8_paths_are_scanned_and_escaped() {
    use std::os::unix::ffi::OsStrExt as _;
    let dir = tempfile::tempdir().unwrap();
    let name = std::ffi::OsStr::from_bytes(b"caf\xe9.txt");
    fs_err::write(dir.path().join(name), format!("{}\n", age_key(8))).unwrap();
    let out = leak_scan(dir.path(), &["--json"]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(json(&out)["findings"][0]["path"], "caf\\xe9.txt");
}

#[test]
fn history_since_skips_what_the_base_revision_reaches() {
    let dir = tempfile::tempdir().unwrap();
    git(dir.path(), &["init", "-q", "-b", "main"]);
    fs_err::write(dir.path().join("old.txt"), format!("{}\n", age_key(9))).unwrap();
    git(dir.path(), &["add", "-A"]);
    git(dir.path(), &["commit", "-q", "-m", "old"]);
    git(dir.path(), &["tag", "base"]);
    fs_err::write(dir.path().join("new.txt"), "clean\n").unwrap();
    git(dir.path(), &["add", "-A"]);
    git(dir.path(), &["commit", "-q", "-m", "new"]);
    let all = leak_scan(dir.path(), &["--history", "--no-cache"]);
    assert_eq!(all.status.code(), Some(1));
    let since = leak_scan(
        dir.path(),
        &["--history", "--no-cache", "--since", "base", "--json"],
    );
    assert_eq!(since.status.code(), Some(0), "{}", text(&since.stdout));
    // The new commit, its tree and its blob.
    assert_eq!(json(&since)["coverage"]["scanned"], 3);
    let bad = leak_scan(dir.path(), &["--history", "--since", "no-such-rev"]);
    assert_eq!(bad.status.code(), Some(2));
}

#[test]
fn missing_objects_and_skipped_blobs_make_history_unproven() {
    let dir = tempfile::tempdir().unwrap();
    git(dir.path(), &["init", "-q", "-b", "main"]);
    fs_err::write(dir.path().join("a.txt"), "first\n").unwrap();
    fs_err::write(dir.path().join("big.txt"), "x".repeat(5000)).unwrap();
    git(dir.path(), &["add", "-A"]);
    git(dir.path(), &["commit", "-q", "-m", "one"]);
    let out = leak_scan(
        dir.path(),
        &["--history", "--no-cache", "--max-size", "1000", "--json"],
    );
    assert_eq!(out.status.code(), Some(3), "{}", text(&out.stdout));
    let doc = json(&out);
    assert_eq!(doc["coverage"]["skipped"][0]["size"], 5000);
    assert!(doc["unproven_reasons"][0]
        .as_str()
        .unwrap()
        .contains("skipped"));

    // Delete the loose object of `a.txt`: the history can no longer be proven.
    let blob = Command::new("git")
        .args(["rev-parse", "HEAD:a.txt"])
        .current_dir(dir.path())
        .output()
        .unwrap();
    let blob = text(&blob.stdout).trim().to_owned();
    let object = dir
        .path()
        .join(".git/objects")
        .join(&blob[..2])
        .join(&blob[2..]);
    fs_err::remove_file(object).unwrap();
    let out = leak_scan(dir.path(), &["--history", "--no-cache", "--json"]);
    assert_eq!(out.status.code(), Some(3), "{}", text(&out.stdout));
    let reasons = json(&out)["unproven_reasons"].to_string();
    assert!(reasons.contains(&blob), "{reasons}");
}

/// A history of a few commits: a key added then deleted, a large blob, and
/// enough other files that the pack holds deltas.
fn history_with_a_deleted_key(dir: &Path) {
    git(dir, &["init", "-q", "-b", "main"]);
    for round in 0..6 {
        for file in 0..8 {
            let mut lines = String::new();
            for line in 0..40 {
                writeln!(lines, "module {file} line {line} round {}", round.min(line)).unwrap();
            }
            fs_err::write(dir.join(format!("f{file}.txt")), lines).unwrap();
        }
        if round == 2 {
            fs_err::write(dir.join("key.txt"), format!("{}\n", age_key(3))).unwrap();
        }
        if round == 4 {
            fs_err::remove_file(dir.join("key.txt")).unwrap();
            fs_err::write(dir.join("big.txt"), "y".repeat(5000)).unwrap();
        }
        git(dir, &["add", "-A"]);
        git(dir, &["commit", "-q", "-m", &format!("round {round}")]);
    }
}

fn findings_of(doc: &serde_json::Value) -> Vec<String> {
    let mut found: Vec<String> = doc["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(ToString::to_string)
        .collect();
    found.sort();
    found
}

fn loose_objects(dir: &Path) -> usize {
    let out = Command::new("git")
        .args(["count-objects"])
        .current_dir(dir)
        .output()
        .unwrap();
    text(&out.stdout)
        .split_whitespace()
        .next()
        .unwrap()
        .parse()
        .unwrap()
}

#[test]
fn a_packed_history_gives_what_its_loose_objects_give() {
    let dir = tempfile::tempdir().unwrap();
    history_with_a_deleted_key(dir.path());
    let args = ["--history", "--no-cache", "--max-size", "1000", "--json"];
    let loose = leak_scan(dir.path(), &args);
    git(dir.path(), &["repack", "-adq", "--depth=50", "--window=50"]);
    git(dir.path(), &["prune-packed"]);
    assert_eq!(loose_objects(dir.path()), 0, "every object is in the pack");
    let packed = leak_scan(dir.path(), &args);
    // The key is found in history either way (exit 1), and the big blob is
    // skipped either way, so neither run is complete.
    assert_eq!(loose.status.code(), Some(1), "{}", text(&loose.stdout));
    assert_eq!(packed.status.code(), Some(1), "{}", text(&packed.stdout));
    let (loose, packed) = (json(&loose), json(&packed));
    assert_eq!(packed["complete"], false);
    assert_eq!(findings_of(&loose), findings_of(&packed));
    assert!(!findings_of(&packed).is_empty());
    assert_eq!(loose["coverage"], packed["coverage"]);
    assert_eq!(packed["coverage"]["skipped"][0]["size"], 5000);
}

#[test]
fn a_pack_without_an_object_history_references_is_unproven() {
    let full = tempfile::tempdir().unwrap();
    history_with_a_deleted_key(full.path());
    let head = Command::new("git")
        .args(["rev-parse", "HEAD", "HEAD:f0.txt"])
        .current_dir(full.path())
        .output()
        .unwrap();
    let head = text(&head.stdout);
    let mut ids = head.lines();
    let (commit, dropped) = (ids.next().unwrap(), ids.next().unwrap());
    // Every object but one blob, packed into a repository of its own, as a
    // partial or damaged clone would hold them.
    let objects = Command::new("git")
        .args(["rev-list", "--objects", "--all"])
        .current_dir(full.path())
        .output()
        .unwrap();
    let mut wanted = String::new();
    for id in text(&objects.stdout)
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .filter(|id| *id != dropped)
    {
        writeln!(wanted, "{id}").unwrap();
    }
    let part = tempfile::tempdir().unwrap();
    git(part.path(), &["init", "-q", "-b", "main"]);
    let mut pack = Command::new("git")
        .args(["pack-objects", "-q", ".git/objects/pack/pack"])
        .current_dir(part.path())
        .env("GIT_DIR", full.path().join(".git"))
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    std::io::Write::write_all(pack.stdin.as_mut().unwrap(), wanted.as_bytes()).unwrap();
    assert!(pack.wait().unwrap().success());
    // `pack-objects` wrote into the full repository (GIT_DIR): move the pack over.
    for entry in fs_err::read_dir(full.path().join(".git/objects/pack")).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        if name.starts_with("pack-") && path.extension().is_some_and(|e| e == "pack" || e == "idx")
        {
            fs_err::rename(&path, part.path().join(".git/objects/pack").join(&name)).unwrap();
        }
    }
    git(part.path(), &["update-ref", "refs/heads/main", commit]);
    let out = leak_scan(part.path(), &["--history", "--no-cache", "--json"]);
    // The deleted key is found (exit 1 outranks 3), and the run is incomplete.
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stdout));
    assert_eq!(json(&out)["complete"], false);
    let reasons = json(&out)["unproven_reasons"].to_string();
    assert!(reasons.contains(dropped), "{reasons}");
}

#[test]
fn a_damaged_pack_is_unproven_never_clean() {
    let dir = tempfile::tempdir().unwrap();
    git(dir.path(), &["init", "-q", "-b", "main"]);
    fs_err::write(dir.path().join("a.txt"), "x".repeat(4000)).unwrap();
    git(dir.path(), &["add", "-A"]);
    git(dir.path(), &["commit", "-q", "-m", "one"]);
    git(dir.path(), &["repack", "-adq"]);
    git(dir.path(), &["prune-packed"]);
    let pack = fs_err::read_dir(dir.path().join(".git/objects/pack"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.extension().is_some_and(|e| e == "pack"))
        .unwrap();
    let original = fs_err::read(&pack).unwrap();
    let mut perms = fs_err::metadata(&pack).unwrap().permissions();
    std::os::unix::fs::PermissionsExt::set_mode(&mut perms, 0o644);
    fs_err::set_permissions(&pack, perms).unwrap();
    // One damaged byte anywhere in the entries (past the 12-byte header,
    // before the 20-byte trailing checksum), including a zlib trailer that a
    // decoder filling its buffer never reads: never a clean verdict.
    for at in 12..original.len() - 20 {
        let mut bytes = original.clone();
        bytes[at] ^= 0x01;
        fs_err::write(&pack, &bytes).unwrap();
        let out = leak_scan(dir.path(), &["--history", "--no-cache", "--json"]);
        assert_eq!(
            out.status.code(),
            Some(3),
            "byte {at} of the pack damaged:\n{}\n{}",
            text(&out.stdout),
            text(&out.stderr)
        );
    }
}

#[test]
fn a_command_after_global_flags_is_a_command_and_scan_flags_with_it_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let listed = leak_scan(dir.path(), &["-v", "rules"]);
    assert_eq!(listed.status.code(), Some(0), "{}", text(&listed.stderr));
    assert!(text(&listed.stdout).contains("age-secret-key"));
    let stray = leak_scan(dir.path(), &["--history", "rules"]);
    assert_eq!(stray.status.code(), Some(2));
    assert!(
        text(&stray.stderr).contains("--history applies to a scan, not to `leak-scan rules`"),
        "{}",
        text(&stray.stderr)
    );
}
