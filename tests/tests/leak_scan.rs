//! `leak-scan` against real material: a git repository built here with
//! leaks planted across its history (added then deleted, in a renamed file,
//! in a commit message, as a multi-line Nix string, as base64 of a PEM, in a
//! binary file, only on a non-default branch, the instance domain in URLs,
//! attribute names and a file name, instance secrets in clear and in
//! base64), and a clean twin with the same shape. The instance's values
//! come from a real sops file (encrypted by the real `sops`) enrolled with
//! `leak-scan enroll`. `gitleaks` and `detect-secrets` run on the same
//! repository, and whatever they find among the planted secrets must be
//! found by `leak-scan` too. The real `pre-commit` runs the hook from
//! `.pre-commit-hooks.yaml` and must block a commit with a leak.
//!
//! No secret is written in this file: the planted values are generated at
//! run time, so that `leak-scan` over this repository stays clean.
//!
//! Over 600 lines on purpose: the planted-leak history and its clean twin are
//! generated once and shared by every scan mode's test.

#![allow(
    clippy::unwrap_used,
    clippy::panic,
    clippy::missing_panics_doc,
    clippy::print_stderr
)]

use std::collections::BTreeSet;
use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::process::Output;

use fromgit_testkit::{
    age_keygen, bin_dir, fromgit_bin, git, peer, run, success, write_file as write, Rng, ALNUM,
    BASE64, GIT_IDENTITY,
};

const DOMAIN: &str = "fabrikam.test";
const BECH32: &str = "qpzry9x8gf2tvdw0s3jn54khce6mua7l";

fn base64(bytes: &[u8]) -> String {
    let table = BASE64.as_bytes();
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(char::from(table[((n >> (18 - 6 * i)) & 63) as usize]));
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// The planted values (built from parts: none appears literally in this file).
struct Secrets {
    age_deleted: String,
    age_binary: String,
    github_renamed: String,
    github_message: String,
    github_fine_grained: String,
    pem: String,
    openssh_pem_base64: String,
    url_password: String,
    db_password: String,
    api_token: String,
}

fn private_key_pem(kind: &str, rng: &mut Rng) -> String {
    let body: Vec<String> = (0..6).map(|_| rng.text(64, BASE64)).collect();
    format!(
        "-----BEGIN {kind}PRIVATE KEY-----\n{}\n-----END {kind}PRIVATE KEY-----\n",
        body.join("\n")
    )
}

fn secrets() -> Secrets {
    let mut rng = Rng(0x5eed_1eac);
    let age = |rng: &mut Rng| {
        format!(
            "AGE-SECRET-{}-1{}",
            "KEY",
            rng.text(58, BECH32).to_uppercase()
        )
    };
    let gh = |rng: &mut Rng| format!("gh{}_{}", "p", rng.text(36, ALNUM));
    Secrets {
        age_deleted: age(&mut rng),
        age_binary: age(&mut rng),
        github_renamed: gh(&mut rng),
        github_message: gh(&mut rng),
        github_fine_grained: format!("github_{}_{}", "pat", rng.text(82, ALNUM)),
        pem: private_key_pem("RSA ", &mut rng),
        openssh_pem_base64: base64(private_key_pem("OPENSSH ", &mut rng).as_bytes()),
        url_password: rng.text(18, ALNUM),
        db_password: rng.text(24, ALNUM),
        api_token: rng.text(40, ALNUM),
    }
}

/// Builds the repository: with `planted`, the leaks; else the clean twin.
fn build_repo(dir: &Path, s: &Secrets, planted: bool) {
    let pick = |leak: String, clean: &str| if planted { leak } else { clean.to_owned() };
    git(dir, &["init", "-q", "-b", "main"]);
    write(dir, "README.md", "A generic base repository.\n");
    write(
        dir,
        "old/age.txt",
        pick(format!("{}\n", s.age_deleted), "# no key here\n"),
    );
    write(
        dir,
        "config/deploy.env",
        pick(
            format!("GITHUB_TOKEN={}\n", s.github_renamed),
            "GITHUB_TOKEN=${GITHUB_TOKEN}\n",
        ),
    );
    write(
        dir,
        "services/db.nix",
        pick(
            format!("{{\n  services.db.password = \"{}\";\n}}\n", s.db_password),
            "{\n  services.db.passwordFile = \"/run/secrets/db\";\n}\n",
        ),
    );
    git(dir, &["add", "-A"]);
    git(dir, &["commit", "-q", "-m", "initial layout"]);

    git(dir, &["rm", "-q", "old/age.txt"]);
    let pem_nix: String = s
        .pem
        .lines()
        .flat_map(|line| ["    ", line, "\n"])
        .collect();
    write(
        dir,
        "nix/keys.nix",
        pick(
            format!("{{\n  key = ''\n{pem_nix}  '';\n}}\n"),
            "{\n  key = ''\n    (provisioned by sops-nix)\n  '';\n}\n",
        ),
    );
    git(dir, &["add", "-A"]);
    let message = pick(format!("deploy with {}", s.github_message), "deploy");
    git(dir, &["commit", "-q", "-m", &message]);

    git(
        dir,
        &["mv", "config/deploy.env", "config/deploy-renamed.env"],
    );
    write(
        dir,
        "k8s/secret.yaml",
        pick(
            format!("data:\n  ssh.key: {}\n", s.openssh_pem_base64),
            "data:\n  ssh.key: \"\"\n",
        ),
    );
    let mut binary = vec![0u8, 159, 146, 150, 0, 1, 2, 3];
    binary.extend_from_slice(pick(s.age_binary.clone(), "no key in this blob").as_bytes());
    binary.extend_from_slice(&[0, 0, 255, 254]);
    write(dir, "assets/blob.bin", binary);
    git(dir, &["add", "-A"]);
    git(dir, &["commit", "-q", "-m", "move and add assets"]);

    let domain = if planted { DOMAIN } else { "example.org" };
    write(
        dir,
        "hosts/web.nix",
        format!(
            "{{\n  services.nginx.virtualHosts.\"www.{domain}\" = {{\n    locations.\"/\".proxyPass = \"https://git.{domain}:3000/\";\n  }};\n}}\n"
        ),
    );
    write(dir, &format!("hosts/mail.{domain}.nix"), "{ }\n");
    write(
        dir,
        "docs/setup.md",
        pick(
            format!(
                "Connect with `postgres://app:{}@db.internal/app`.\n",
                s.url_password
            ),
            "Connect with `postgres://app@db.internal/app`.\n",
        ),
    );
    write(
        dir,
        "misc/encoded.txt",
        pick(
            format!("token: {}\n", base64(s.api_token.as_bytes())),
            "token: none\n",
        ),
    );
    git(dir, &["add", "-A"]);
    git(dir, &["commit", "-q", "-m", "hosts and docs"]);

    write(
        dir,
        "CHANGELOG.md",
        "A change by someone at the instance.\n",
    );
    git(dir, &["add", "-A"]);
    let author = format!("Dev <dev@{domain}>");
    git(
        dir,
        &["commit", "-q", "-m", "changelog", "--author", &author],
    );
    git(dir, &["branch", &format!("web.{domain}")]);
    git(dir, &["checkout", "-q", "-b", "feature"]);
    write(
        dir,
        "branch-only/ci.yml",
        pick(
            format!("token: {}\n", s.github_fine_grained),
            "token: ${{ secrets.TOKEN }}\n",
        ),
    );
    git(dir, &["add", "-A"]);
    git(dir, &["commit", "-q", "-m", "ci on a branch"]);
    git(dir, &["checkout", "-q", "main"]);
}

/// A planted leak: a name, where it is, and the rules that may report it.
struct Plant {
    name: &'static str,
    /// A path (of the file or file name), or `None` for a commit or a ref.
    path: Option<&'static str>,
    /// Where `leak-scan` reports it: `file`, `file-name`, `commit`, `ref`.
    source: &'static str,
    rules: &'static [&'static str],
}

const PLANTS: &[Plant] = &[
    Plant {
        name: "age key added then deleted",
        path: Some("old/age.txt"),
        source: "file",
        rules: &["age-secret-key"],
    },
    Plant {
        name: "token in a renamed file",
        path: Some("config/deploy.env"),
        source: "file",
        rules: &["github-token"],
    },
    Plant {
        name: "token in a commit message",
        path: None,
        source: "commit",
        rules: &["github-token"],
    },
    Plant {
        name: "PEM key in a multi-line Nix string",
        path: Some("nix/keys.nix"),
        source: "file",
        rules: &["pem-private-key"],
    },
    Plant {
        name: "base64 of a PEM key",
        path: Some("k8s/secret.yaml"),
        source: "file",
        rules: &["pem-private-key-base64"],
    },
    Plant {
        name: "age key in a binary file",
        path: Some("assets/blob.bin"),
        source: "file",
        rules: &["age-secret-key"],
    },
    Plant {
        name: "token only on a branch",
        path: Some("branch-only/ci.yml"),
        source: "file",
        rules: &["github-fine-grained-token"],
    },
    Plant {
        name: "password in a URL",
        path: Some("docs/setup.md"),
        source: "file",
        rules: &["password-in-url"],
    },
    Plant {
        name: "instance secret in clear",
        path: Some("services/db.nix"),
        source: "file",
        rules: &["instance-secret"],
    },
    Plant {
        name: "instance secret as base64",
        path: Some("misc/encoded.txt"),
        source: "file",
        rules: &["instance-secret"],
    },
    Plant {
        name: "instance domain in URL and attribute",
        path: Some("hosts/web.nix"),
        source: "file",
        rules: &["instance-domain"],
    },
    Plant {
        name: "instance domain in a file name",
        // Reported with the domain redacted: the path itself is the leak.
        path: Some("hosts/mail.[domain-1].nix"),
        source: "file-name",
        rules: &["instance-domain"],
    },
    Plant {
        name: "instance e-mail as a commit author",
        path: None,
        source: "commit",
        rules: &["instance-email", "instance-domain"],
    },
    Plant {
        name: "instance domain in a ref name",
        path: Some("refs/heads/[domain-2]"),
        source: "ref",
        rules: &["instance-domain"],
    },
];

/// The plant a peer reports at `path` (the renamed file under either name).
fn plant_at(path: &str) -> Option<&'static Plant> {
    let path = if path == "config/deploy-renamed.env" {
        "config/deploy.env"
    } else {
        path
    };
    PLANTS.iter().find(|p| p.path == Some(path))
}

/// The string values of `"key": "…"` pairs in a JSON text, in order (enough
/// for the flat fields read here, without a JSON dependency).
fn json_strings(text: &str, keys: &[&str]) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let bytes = text.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] != b'"' {
            i += 1;
            continue;
        }
        let (key, after) = read_string(text, i);
        i = after;
        let rest = text[i..].trim_start();
        if !rest.starts_with(':') {
            continue;
        }
        let value_start = text.len() - rest[1..].trim_start().len();
        if keys.contains(&key.as_str()) && text[value_start..].starts_with('"') {
            let (value, after) = read_string(text, value_start);
            out.push((key, value));
            i = after;
        }
    }
    out
}

fn read_string(text: &str, start: usize) -> (String, usize) {
    let mut out = String::new();
    let mut chars = text[start + 1..].char_indices();
    while let Some((offset, c)) = chars.next() {
        match c {
            '"' => return (out, start + 1 + offset + 1),
            '\\' => {
                if let Some((_, escaped)) = chars.next() {
                    out.push(match escaped {
                        'n' => '\n',
                        't' => '\t',
                        other => other,
                    });
                }
            }
            c => out.push(c),
        }
    }
    (out, text.len())
}

/// (rule, path or "", source) of each finding in `leak-scan --json` output.
fn findings(json: &str) -> Vec<(String, String, String)> {
    let mut out: Vec<(String, String, String)> = Vec::new();
    let in_findings = json
        .find("\"findings\"")
        .map_or("", |start| &json[start..])
        .split("\"unused_suppressions\"")
        .next()
        .unwrap_or("");
    for (key, value) in json_strings(in_findings, &["rule", "path", "source"]) {
        match key.as_str() {
            "rule" => out.push((value, String::new(), String::new())),
            "path" => out.last_mut().unwrap().1 = value,
            _ => out.last_mut().unwrap().2 = value,
        }
    }
    out
}

fn found(findings: &[(String, String, String)], plant: &Plant) -> bool {
    findings.iter().any(|(rule, path, source)| {
        plant.rules.contains(&rule.as_str())
            && source == plant.source
            && plant.path.is_none_or(|p| path == p)
    })
}

struct Fixture {
    _dir: tempfile::TempDir,
    planted: PathBuf,
    clean: PathBuf,
    fingerprints: PathBuf,
    secrets: Secrets,
    leak_scan: PathBuf,
}

/// Both repositories and the instance's fingerprint file; `None` when the
/// peers the instance needs (sops, age-keygen) are missing outside CI.
fn fixture() -> Option<Fixture> {
    let sops = peer("sops")?;
    let dir = tempfile::tempdir().unwrap();
    let key = age_keygen(dir.path(), "instance-key")?;
    let secrets = secrets();
    let planted = dir.path().join("planted");
    let clean = dir.path().join("clean");
    for (path, is_planted) in [(&planted, true), (&clean, false)] {
        fs_err::create_dir_all(path).unwrap();
        build_repo(path, &secrets, is_planted);
    }

    // The instance repository: a real sops file and an instance.nix.
    let instance = dir.path().join("instance");
    write(
        &instance,
        ".sops.yaml",
        format!(
            "creation_rules:\n  - path_regex: secrets/.*\\.yaml$\n    age: {}\n",
            key.recipient
        ),
    );
    write(
        &instance,
        "secrets/app.yaml",
        format!(
            "db:\n  password: {}\napi:\n  token: {}\nport: 5432\n",
            secrets.db_password, secrets.api_token
        ),
    );
    let encrypt = run(&sops, ["-e", "-i", "secrets/app.yaml"], &instance, &[], b"");
    success(&encrypt, "sops -e");
    write(
        &instance,
        "instance.nix",
        format!("{{\n  domain = \"{DOMAIN}\";\n  hosts.web.fqdn = \"web.{DOMAIN}\";\n  acme.email = \"ops@{DOMAIN}\";\n}}\n"),
    );
    let leak_scan = fromgit_bin("leak-scan");
    let fingerprints = dir.path().join("fingerprints.json");
    let enroll = run(
        &leak_scan,
        [
            OsStr::new("enroll"),
            OsStr::new("--instance"),
            instance.as_os_str(),
            OsStr::new("--identity"),
            key.file.as_os_str(),
            OsStr::new("-o"),
            fingerprints.as_os_str(),
        ],
        dir.path(),
        &[],
        b"",
    );
    let summary = success(&enroll, "leak-scan enroll");
    assert!(summary.contains("enrolled 2 secret(s)"), "{summary}");
    let stderr = String::from_utf8_lossy(&enroll.stderr);
    assert!(
        stderr.contains("too short to enroll"),
        "the port is not enrolled:\n{stderr}"
    );
    let text = fs_err::read_to_string(&fingerprints).unwrap();
    for plain in [
        &secrets.db_password,
        &secrets.api_token,
        &DOMAIN.to_owned(),
        &base64(secrets.db_password.as_bytes()),
    ] {
        assert!(
            !text.contains(plain.as_str()),
            "the fingerprint file holds plaintext"
        );
    }
    assert!(!stderr.contains(&secrets.db_password) && !summary.contains(&secrets.db_password));
    Some(Fixture {
        _dir: dir,
        planted,
        clean,
        fingerprints,
        secrets,
        leak_scan,
    })
}

fn scan(f: &Fixture, repo: &Path, args: &[&str]) -> Output {
    let mut all: Vec<&OsStr> = args.iter().map(OsStr::new).collect();
    all.extend([OsStr::new("--fingerprints"), f.fingerprints.as_os_str()]);
    run(&f.leak_scan, all, repo, &[], b"")
}

fn assert_redacted(f: &Fixture, output: &Output, what: &str) {
    let s = &f.secrets;
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    let pem_line = s.pem.lines().nth(1).unwrap();
    for secret in [
        &s.age_deleted[20..],
        &s.age_binary[20..],
        &s.github_renamed[8..],
        &s.github_message[8..],
        &s.github_fine_grained[20..],
        &pem_line[..40],
        &s.openssh_pem_base64[40..80],
        s.url_password.as_str(),
        s.db_password.as_str(),
        s.api_token.as_str(),
    ] {
        assert!(
            !stdout.contains(secret),
            "{what}: stdout holds a planted secret"
        );
        assert!(
            !stderr.contains(secret),
            "{what}: stderr holds a planted secret"
        );
    }
}

#[test]
#[cfg_attr(
    any(missing_sops, missing_age_keygen),
    ignore = "needs `sops` and `age-keygen`; one was not found when the tests were built: `bash tests/run --install-only` installs them; under CI=true the test fails instead"
)]
fn history_finds_every_planted_leak_and_nothing_on_the_clean_twin() {
    let Some(f) = fixture() else { return };
    let output = scan(&f, &f.planted, &["--history", "--json", "--no-cache"]);
    let stdout = String::from_utf8(output.stdout.clone()).unwrap();
    assert_eq!(
        output.status.code(),
        Some(1),
        "{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert_redacted(&f, &output, "history --json");
    let found_all = findings(&stdout);
    let missed: Vec<&str> = PLANTS
        .iter()
        .filter(|plant| !found(&found_all, plant))
        .map(|plant| plant.name)
        .collect();
    assert!(
        missed.is_empty(),
        "recall below 100%: missed {missed:?}\nfindings: {found_all:?}"
    );
    assert!(
        stdout.contains("\"history_only\": true"),
        "the deleted key is history-only"
    );

    // Self-redaction: the rendered reports, scanned with the instance's
    // fingerprints and the rules, hold nothing.
    let reports = f.planted.parent().unwrap().join("reports");
    fs_err::create_dir_all(&reports).unwrap();
    fs_err::write(reports.join("history.json"), &output.stdout).unwrap();
    for format in ["human", "sarif"] {
        let output = scan(&f, &f.planted, &["--history", "--format", format]);
        assert_eq!(output.status.code(), Some(1));
        assert_redacted(&f, &output, format);
        fs_err::write(reports.join(format!("history.{format}")), &output.stdout).unwrap();
        fs_err::write(reports.join(format!("stderr.{format}")), &output.stderr).unwrap();
    }
    let rescan = scan(&f, &reports, &[]);
    assert_eq!(
        rescan.status.code(),
        Some(0),
        "the reports hold secrets or instance values:\n{}",
        String::from_utf8_lossy(&rescan.stdout)
    );

    let clean = scan(&f, &f.clean, &["--history", "--json", "--no-cache"]);
    let clean_stdout = String::from_utf8(clean.stdout.clone()).unwrap();
    assert_eq!(
        clean.status.code(),
        Some(0),
        "false findings on the clean twin:\n{clean_stdout}"
    );
    assert!(findings(&clean_stdout).is_empty());
    let tree = scan(&f, &f.clean, &[]);
    assert_eq!(
        tree.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&tree.stdout)
    );
    let staged = scan(&f, &f.clean, &["--staged"]);
    assert_eq!(
        staged.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&staged.stdout)
    );
}

#[test]
#[cfg_attr(
    any(missing_sops, missing_age_keygen),
    ignore = "needs `sops` and `age-keygen`; one was not found when the tests were built: `bash tests/run --install-only` installs them; under CI=true the test fails instead"
)]
fn the_cache_makes_the_second_run_read_only_new_objects() {
    let Some(f) = fixture() else { return };
    let first = scan(&f, &f.clean, &["--history", "--json"]);
    assert_eq!(first.status.code(), Some(0));
    let second = scan(&f, &f.clean, &["--history", "--json"]);
    assert_eq!(second.status.code(), Some(0));
    let text = String::from_utf8(second.stdout).unwrap();
    assert!(text.contains("\"scanned\": 0"), "{text}");
    // A new commit: only its new objects are read.
    write(&f.clean, "new.txt", "more generic text\n");
    git(&f.clean, &["add", "-A"]);
    git(&f.clean, &["commit", "-q", "-m", "more"]);
    let third = scan(&f, &f.clean, &["--history", "--json"]);
    let text = String::from_utf8(third.stdout).unwrap();
    assert!(
        text.contains("\"scanned\": 3"),
        "blob, tree, commit: {text}"
    );
    // --no-cache reads everything again.
    let full = scan(&f, &f.clean, &["--history", "--json", "--no-cache"]);
    let text = String::from_utf8(full.stdout).unwrap();
    assert!(!text.contains("\"scanned\": 3,"), "{text}");
}

#[test]
#[cfg_attr(
    any(missing_sops, missing_age_keygen),
    ignore = "needs `sops` and `age-keygen`; one was not found when the tests were built: `bash tests/run --install-only` installs them; under CI=true the test fails instead"
)]
fn a_shallow_clone_is_unproven() {
    let Some(f) = fixture() else { return };
    let shallow = f.clean.parent().unwrap().join("shallow");
    let url = format!("file://{}", f.clean.display());
    git(
        f.clean.parent().unwrap(),
        &[
            "clone",
            "-q",
            "--depth",
            "1",
            &url,
            shallow.to_str().unwrap(),
        ],
    );
    let output = scan(&f, &shallow, &["--history", "--json"]);
    let text = String::from_utf8(output.stdout).unwrap();
    assert_eq!(output.status.code(), Some(3), "{text}");
    assert!(text.contains("shallow"), "{text}");
}

#[test]
#[cfg_attr(
    any(missing_sops, missing_age_keygen, missing_gitleaks),
    ignore = "needs `sops`, `age-keygen` and `gitleaks`; one was not found when the tests were built: `bash tests/run --install-only` installs them; under CI=true the test fails instead"
)]
fn gitleaks_findings_among_the_plants_are_a_subset_of_ours() {
    let Some(f) = fixture() else { return };
    let Some(gitleaks) = peer("gitleaks") else {
        return;
    };
    let report = f.planted.parent().unwrap().join("gitleaks.json");
    let output = run(
        &gitleaks,
        [
            OsStr::new("git"),
            OsStr::new("--no-banner"),
            OsStr::new("--report-format"),
            OsStr::new("json"),
            OsStr::new("--report-path"),
            report.as_os_str(),
            OsStr::new("."),
        ],
        &f.planted,
        &[],
        b"",
    );
    assert_eq!(
        output.status.code(),
        Some(1),
        "gitleaks finds leaks: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let report = fs_err::read_to_string(&report).unwrap();
    let theirs: BTreeSet<String> = json_strings(&report, &["File"])
        .into_iter()
        .map(|(_, v)| v)
        .collect();
    let ours_output = scan(&f, &f.planted, &["--history", "--json", "--no-cache"]);
    let ours = findings(&String::from_utf8(ours_output.stdout).unwrap());
    let mut matched = 0;
    for path in &theirs {
        let Some(plant) = plant_at(path) else {
            continue;
        };
        matched += 1;
        assert!(
            found(&ours, plant),
            "gitleaks finds `{}` in `{path}`, leak-scan does not",
            plant.name
        );
    }
    eprintln!("gitleaks: {matched} plant file(s) among {theirs:?}, all found by leak-scan");
    assert!(
        matched >= 4,
        "gitleaks found only {matched} plants: {theirs:?}"
    );
}

#[test]
#[cfg_attr(
    any(missing_sops, missing_age_keygen, missing_detect_secrets),
    ignore = "needs `sops`, `age-keygen` and `detect-secrets`; one was not found when the tests were built: `bash tests/run --install-only` installs them; under CI=true the test fails instead"
)]
fn detect_secrets_findings_among_the_plants_are_a_subset_of_ours() {
    let Some(f) = fixture() else { return };
    let Some(detect) = peer("detect-secrets") else {
        return;
    };
    let output = run(&detect, ["scan", "--all-files"], &f.planted, &[], b"");
    let report = success(&output, "detect-secrets scan");
    let theirs: BTreeSet<String> = json_strings(&report, &["filename"])
        .into_iter()
        .map(|(_, v)| v)
        .collect();
    let tree = scan(&f, &f.planted, &["--json"]);
    assert_eq!(tree.status.code(), Some(1));
    let ours = findings(&String::from_utf8(tree.stdout).unwrap());
    let mut matched = 0;
    for path in &theirs {
        if path.starts_with(".git/logs/") {
            // The reflog repeats commit messages: leak-scan reads the commit itself.
            let history = scan(&f, &f.planted, &["--history", "--json", "--no-cache"]);
            let history = findings(&String::from_utf8(history.stdout).unwrap());
            let plant = PLANTS.iter().find(|p| p.source == "commit").unwrap();
            assert!(
                found(&history, plant),
                "detect-secrets finds a commit message in `{path}`"
            );
            matched += 1;
            continue;
        }
        let Some(plant) = plant_at(path) else {
            continue;
        };
        matched += 1;
        assert!(
            ours.iter().any(|(_, p, _)| p == path),
            "detect-secrets finds `{}` in `{path}`, leak-scan (tree) does not: {ours:?}",
            plant.name
        );
    }
    eprintln!("detect-secrets: {matched} plant file(s) among {theirs:?}, all found by leak-scan");
    assert!(
        matched >= 2,
        "detect-secrets found only {matched} plants: {theirs:?}"
    );
}

#[test]
#[cfg_attr(
    missing_pre_commit,
    ignore = "`pre-commit` not found when the tests were built: `bash tests/run --install-only` installs it; under CI=true the test fails instead"
)]
fn pre_commit_blocks_a_commit_with_a_leak() {
    let Some(pre_commit) = peer("pre-commit") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    // A hooks repository holding the workspace's `.pre-commit-hooks.yaml`.
    let hooks = dir.path().join("hooks");
    fs_err::create_dir_all(&hooks).unwrap();
    git(&hooks, &["init", "-q", "-b", "main"]);
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR")).join("../.pre-commit-hooks.yaml");
    fs_err::copy(&manifest, hooks.join(".pre-commit-hooks.yaml")).unwrap();
    git(&hooks, &["add", "-A"]);
    git(&hooks, &["commit", "-q", "-m", "hooks"]);
    let rev = git(&hooks, &["rev-parse", "HEAD"]).trim().to_owned();

    let repo = dir.path().join("repo");
    fs_err::create_dir_all(&repo).unwrap();
    git(&repo, &["init", "-q", "-b", "main"]);
    write(
        &repo,
        ".pre-commit-config.yaml",
        format!(
            "repos:\n  - repo: {}\n    rev: {rev}\n    hooks:\n      - id: leak-scan\n",
            hooks.display()
        ),
    );
    let path = std::env::join_paths(std::iter::once(bin_dir()).chain(std::env::split_paths(
        &std::env::var_os("PATH").unwrap_or_default(),
    )))
    .unwrap();
    let cache = dir.path().join("pre-commit-cache");
    let env: Vec<(&str, &OsStr)> = GIT_IDENTITY
        .iter()
        .map(|(k, v)| (*k, OsStr::new(*v)))
        .chain([
            ("PATH", path.as_os_str()),
            ("PRE_COMMIT_HOME", cache.as_os_str()),
        ])
        .collect();
    let installed = run(&pre_commit, ["install"], &repo, &env, b"");
    success(&installed, "pre-commit install");
    write(&repo, "README.md", "generic\n");
    git(&repo, &["add", "-A"]);
    let clean = run(
        Path::new("git"),
        ["commit", "-q", "-m", "clean"],
        &repo,
        &env,
        b"",
    );
    success(&clean, "a clean commit through the hook");

    let mut rng = Rng(42);
    let key = format!(
        "AGE-SECRET-{}-1{}",
        "KEY",
        rng.text(58, BECH32).to_uppercase()
    );
    write(&repo, "keys.txt", format!("{key}\n"));
    git(&repo, &["add", "keys.txt"]);
    let blocked = run(
        Path::new("git"),
        ["commit", "-q", "-m", "leak"],
        &repo,
        &env,
        b"",
    );
    let out = format!(
        "{}{}",
        String::from_utf8_lossy(&blocked.stdout),
        String::from_utf8_lossy(&blocked.stderr)
    );
    assert!(
        !blocked.status.success(),
        "the commit with a leak went through:\n{out}"
    );
    assert!(out.contains("age-secret-key"), "{out}");
    assert!(!out.contains(&key[20..]), "the hook output shows the key");
    let head = git(&repo, &["log", "--oneline"]);
    assert_eq!(head.lines().count(), 1, "{head}");
}
