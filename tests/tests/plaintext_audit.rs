//! The plaintext audit: every subcommand of every binary, run on fixtures
//! whose secret values are known, at the normal and the most verbose log
//! level, including runs that fail midway. Nothing they print (stdout,
//! stderr) or leave behind (every file written outside the sealed sops files)
//! may hold a secret value, nor its base64, hex or URL-encoded form, nor any
//! line of a PEM key body. The one exception is what a command exists to
//! print: `secrets decrypt` writes plaintext on stdout, and nothing else.
//!
//! The list of audited commands is data; a subcommand that a binary's
//! `--help` lists and that no case covers fails the audit.
//!
//! Over 600 lines on purpose: the audited commands are one data table, so a
//! new subcommand is found missing in one place.

#![allow(clippy::unwrap_used, clippy::panic, clippy::missing_panics_doc)]

use std::collections::BTreeSet;
use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::process::Output;

use base64::Engine as _;
use fromgit_testkit::cli::leaf_commands;
use fromgit_testkit::{age_keygen, fromgit_bin, incus_test_env, peer, run, AgeKey, BINARIES};

/// One command run by the audit.
struct Case {
    binary: &'static str,
    /// The subcommand path, e.g. `["secrets", "decrypt"]`, for the coverage check.
    command: &'static [&'static str],
    args: Vec<String>,
    stdin: Vec<u8>,
    /// The command's job is to print plaintext on stdout.
    prints_plaintext: bool,
}

struct Scenario {
    dir: tempfile::TempDir,
    key: AgeKey,
    secrets: Vec<String>,
}

fn forbidden_forms(secret: &str) -> Vec<String> {
    let bytes = secret.as_bytes();
    let mut forms = vec![
        secret.to_owned(),
        base64::engine::general_purpose::STANDARD.encode(bytes),
        base64::engine::general_purpose::STANDARD_NO_PAD.encode(bytes),
        hex::encode(bytes),
        hex::encode_upper(bytes),
        bytes
            .iter()
            .map(|b| {
                if b.is_ascii_alphanumeric() {
                    char::from(*b).to_string()
                } else {
                    format!("%{b:02X}")
                }
            })
            .collect(),
    ];
    // Every line of a PEM body is a secret on its own.
    forms.extend(
        secret
            .lines()
            .filter(|l| !l.starts_with("-----") && l.len() >= 16)
            .map(str::to_owned),
    );
    forms
}

impl Scenario {
    fn new() -> Option<Scenario> {
        peer("sops")?;
        peer("openssl")?;
        let dir = tempfile::tempdir().unwrap();
        let key = age_keygen(dir.path(), "bootstrap")?;
        let pem_key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)
            .unwrap()
            .serialize_pem();
        let secrets = vec![
            "audit-oauth-7f3a9c0e1b2d4f6a8c0e1b2d".to_owned(),
            "audit-rpc-Zq8vW2xY4uT6sR8pN0mL".to_owned(),
            "audit-hmac-c0ffee-d00d-5eed-f00d".to_owned(),
            pem_key,
        ];
        let scenario = Scenario { dir, key, secrets };
        let host = scenario.path("host");
        fs_err::create_dir_all(&host).unwrap();
        for (index, secret) in scenario.secrets.iter().enumerate() {
            fs_err::write(host.join(format!("secret{index}")), secret).unwrap();
        }
        // A base naming the domain and reading the host secrets.
        let base = scenario.path("base");
        fs_err::create_dir_all(&base).unwrap();
        fs_err::write(base.join("flake.nix"), "{\n  inputs.nixpkgs.url = \"github:NixOS/nixpkgs/nixos-25.11\";\n  outputs = { self, nixpkgs, ... }: {\n    nixosConfigurations.host = nixpkgs.lib.nixosSystem { modules = [ ./configuration.nix ]; };\n  };\n}\n").unwrap();
        let reads = (0..scenario.secrets.len()).fold(String::new(), |mut text, i| {
            use std::fmt::Write as _;
            let _ = writeln!(text, "  s{i} = \"{}/secret{i}\";", host.display());
            text
        });
        fs_err::write(
            base.join("configuration.nix"),
            format!(
                "{{ config, ... }}:\n{{\n  networking.domain = \"audit.example.net\";\n{reads}}}\n"
            ),
        )
        .unwrap();
        // A plaintext file to seal, and a self-signed pair for the cert-seal cases.
        fs_err::write(
            scenario.path("plain.yaml"),
            format!("a: {}\nb: {}\n", scenario.secrets[0], scenario.secrets[1]),
        )
        .unwrap();
        let mut params = rcgen::CertificateParams::new(vec![
            "*.example.net".to_owned(),
            "example.net".to_owned(),
        ])
        .unwrap();
        params.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ServerAuth];
        params.not_before = time::OffsetDateTime::now_utc() - time::Duration::days(1);
        params.not_after = time::OffsetDateTime::now_utc() + time::Duration::days(90);
        let leaf_key = rcgen::KeyPair::from_pem(&scenario.secrets[3]).unwrap();
        let cert = params.self_signed(&leaf_key).unwrap();
        fs_err::write(scenario.path("fullchain.pem"), cert.pem()).unwrap();
        fs_err::write(scenario.path("privkey.pem"), &scenario.secrets[3]).unwrap();
        Some(scenario)
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn secret_args(&self) -> Vec<String> {
        (0..self.secrets.len())
            .flat_map(|i| {
                [
                    "--secret".to_owned(),
                    format!("s/n{i}={}/secret{i}", self.path("host").display()),
                ]
            })
            .collect()
    }

    #[allow(clippy::too_many_lines)] // the list of audited commands is data
    fn cases(&self) -> Vec<Case> {
        let key = self.key.file.display().to_string();
        let recipient = self.key.recipient.clone();
        let s = |v: &[&str]| v.iter().map(|x| (*x).to_owned()).collect::<Vec<String>>();
        let with = |mut a: Vec<String>, b: Vec<String>| {
            a.extend(b);
            a
        };
        let case = |binary, command, args, stdin: &[u8], prints_plaintext| Case {
            binary,
            command,
            args,
            stdin: stdin.to_vec(),
            prints_plaintext,
        };
        let split = with(
            s(&["--base", "base", "--domain", "audit.example.net"]),
            self.secret_args(),
        );
        vec![
            case(
                "instance-extract",
                &["plan"],
                with(s(&["plan", "--json"]), split.clone()),
                b"",
                false,
            ),
            case(
                "instance-extract",
                &["plan"],
                with(s(&["plan"]), split.clone()),
                b"",
                false,
            ),
            case(
                "instance-extract",
                &["apply"],
                with(
                    with(
                        s(&["apply", "--dry-run", "--instance", "inst"]),
                        split.clone(),
                    ),
                    s(&["-r", &recipient]),
                ),
                b"",
                false,
            ),
            case(
                "instance-extract",
                &["apply"],
                with(
                    with(s(&["apply", "--instance", "inst", "--json"]), split.clone()),
                    s(&["-r", &recipient]),
                ),
                b"",
                false,
            ),
            case(
                "instance-extract",
                &["apply"],
                with(
                    with(
                        s(&["apply", "--instance", "inst2", "--secret", "x=/nonexistent"]),
                        split.clone(),
                    ),
                    s(&["-r", &recipient]),
                ),
                b"",
                false,
            ),
            case(
                "instance-extract",
                &["verify"],
                s(&[
                    "verify",
                    "--json",
                    "--instance",
                    "inst",
                    "--identity",
                    &key,
                    "--base",
                    "base",
                ]),
                b"",
                false,
            ),
            case(
                "instance-extract",
                &["verify"],
                s(&["verify", "--instance", "inst", "--identity", &key]),
                b"",
                false,
            ),
            case(
                "instance-extract",
                &["secrets", "encrypt"],
                s(&[
                    "secrets",
                    "encrypt",
                    "-r",
                    &recipient,
                    "-o",
                    "sealed.yaml",
                    "plain.yaml",
                ]),
                b"",
                false,
            ),
            case(
                "instance-extract",
                &["secrets", "encrypt"],
                s(&["secrets", "encrypt", "-r", "age1bad", "plain.yaml"]),
                b"",
                false,
            ),
            case(
                "instance-extract",
                &["secrets", "decrypt"],
                s(&["secrets", "decrypt", "--identity", &key, "sealed.yaml"]),
                b"",
                true,
            ),
            case(
                "instance-extract",
                &["secrets", "decrypt"],
                s(&[
                    "secrets",
                    "decrypt",
                    "--identity",
                    &key,
                    "--extract",
                    "[\"a\"]",
                    "sealed.yaml",
                ]),
                b"",
                true,
            ),
            case(
                "instance-extract",
                &["secrets", "decrypt"],
                s(&[
                    "secrets",
                    "decrypt",
                    "--identity",
                    "fullchain.pem",
                    "sealed.yaml",
                ]),
                b"",
                false,
            ),
            case(
                "instance-extract",
                &["secrets", "set"],
                s(&[
                    "secrets",
                    "set",
                    "--identity",
                    &key,
                    "sealed.yaml",
                    "[\"c\"]",
                ]),
                self.secrets[2].as_bytes(),
                false,
            ),
            case(
                "instance-extract",
                &["secrets", "updatekeys"],
                s(&[
                    "secrets",
                    "updatekeys",
                    "--json",
                    "--identity",
                    &key,
                    "--config",
                    "sops.yaml",
                    "sealed.yaml",
                ]),
                b"",
                false,
            ),
            case(
                "instance-extract",
                &["secrets", "rotate"],
                s(&["secrets", "rotate", "--identity", &key, "sealed.yaml"]),
                b"",
                false,
            ),
            case(
                "instance-extract",
                &["secrets", "recipient"],
                s(&["secrets", "recipient", "--ssh", "fullchain.pem"]),
                b"",
                false,
            ),
            case(
                "instance-extract",
                &["secrets", "keygen"],
                s(&["secrets", "keygen", "-o", "new-key.txt"]),
                b"",
                false,
            ),
            case(
                "cert-seal",
                &["check"],
                s(&[
                    "check",
                    "--json",
                    "--cert",
                    "fullchain.pem",
                    "--key",
                    "privkey.pem",
                    "--domain",
                    "example.net",
                ]),
                b"",
                false,
            ),
            case(
                "cert-seal",
                &["check"],
                s(&[
                    "check",
                    "--cert",
                    "privkey.pem",
                    "--key",
                    "privkey.pem",
                    "--domain",
                    "example.net",
                ]),
                b"",
                false,
            ),
            case(
                "cert-seal",
                &["seal"],
                s(&[
                    "seal",
                    "--cert",
                    "fullchain.pem",
                    "--key",
                    "privkey.pem",
                    "--domain",
                    "example.net",
                    "--out",
                    "tls.yaml",
                    "-r",
                    &recipient,
                    "--allow-short",
                ]),
                b"",
                false,
            ),
            case(
                "cert-seal",
                &["seal"],
                s(&[
                    "seal",
                    "--json",
                    "--cert",
                    "fullchain.pem",
                    "--key",
                    "privkey.pem",
                    "--domain",
                    "example.net",
                    "--into",
                    "sealed.yaml",
                    "--identity",
                    &key,
                ]),
                b"",
                false,
            ),
            case(
                "cert-seal",
                &["inspect"],
                s(&["inspect", "--json", "tls.yaml"]),
                b"",
                false,
            ),
            case(
                "cert-seal",
                &["probe"],
                s(&[
                    "probe",
                    "127.0.0.1:1",
                    "--expect",
                    "tls.yaml",
                    "--timeout",
                    "1",
                ]),
                b"",
                false,
            ),
            case("cert-seal", &["nix"], s(&["nix", "tls.yaml"]), b"", false),
            case(
                "vm-prove",
                &["plan"],
                s(&["plan", "--config", "vm-prove.toml"]),
                b"",
                false,
            ),
            case(
                "vm-prove",
                &["run"],
                s(&["run", "--config", "vm-prove.toml"]),
                b"",
                false,
            ),
            case(
                "vm-prove",
                &["sweep"],
                s(&["sweep", "--config", "vm-prove.toml"]),
                b"",
                false,
            ),
            case(
                "leak-scan",
                &["enroll"],
                s(&[
                    "enroll",
                    "--instance",
                    "inst",
                    "--identity",
                    &key,
                    "-o",
                    "fingerprints.json",
                ]),
                b"",
                false,
            ),
            case(
                "leak-scan",
                &["enroll"],
                s(&[
                    "enroll",
                    "--instance",
                    "inst",
                    "--identity",
                    "privkey.pem",
                    "-o",
                    "bad.json",
                ]),
                b"",
                false,
            ),
            case("leak-scan", &["rules"], s(&["rules"]), b"", false),
            // Scans of the host's secret files themselves: the findings must be redacted.
            case(
                "leak-scan",
                &[],
                s(&["host", "--fingerprints", "fingerprints.json"]),
                b"",
                false,
            ),
            case(
                "leak-scan",
                &[],
                s(&[
                    "host",
                    "--fingerprints",
                    "fingerprints.json",
                    "--format",
                    "json",
                ]),
                b"",
                false,
            ),
            case(
                "leak-scan",
                &[],
                s(&[
                    "host",
                    "--fingerprints",
                    "fingerprints.json",
                    "--format",
                    "sarif",
                    "-o",
                    "report.sarif",
                ]),
                b"",
                false,
            ),
            case(
                "leak-scan",
                &[],
                s(&["base", "--fingerprints", "fingerprints.json", "--json"]),
                b"",
                false,
            ),
            case(
                "closure-diff",
                &["compare"],
                s(&["compare", "--json", "dump.json", "dump.json"]),
                b"",
                false,
            ),
            case(
                "closure-diff",
                &["snapshot"],
                s(&["snapshot", "dump.json", "-o", "snapshot.json"]),
                b"",
                false,
            ),
        ]
    }

    /// Files the audit may not read as output: the sealed sops files (their
    /// ciphertext is their job) and the inputs the test itself wrote.
    fn is_exempt(&self, path: &Path) -> bool {
        let name = path.file_name().unwrap_or_default().to_string_lossy();
        path.starts_with(self.path("host"))
            || path.starts_with(self.path("inst").join("secrets"))
            || path == self.key.file
            || [
                "plain.yaml",
                "privkey.pem",
                "sealed.yaml",
                "tls.yaml",
                "new-key.txt",
            ]
            .contains(&name.as_ref())
    }
}

fn mode_of(path: &Path) -> u32 {
    std::os::unix::fs::PermissionsExt::mode(&fs_err::metadata(path).unwrap().permissions())
}

fn files_under(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in fs_err::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            files_under(&path, out);
        } else {
            out.push(path);
        }
    }
}

fn leaks(text: &str, forms: &[String]) -> Option<String> {
    forms
        .iter()
        .find(|form| text.contains(form.as_str()))
        .cloned()
}

#[test]
#[cfg_attr(
    any(missing_sops, missing_openssl, missing_age_keygen),
    ignore = "needs `sops`, `openssl` and `age-keygen`; one was not found when the tests were built: `bash tests/run --install-only` installs them; under CI=true the test fails instead"
)]
fn no_secret_reaches_any_output() {
    let Some(scenario) = Scenario::new() else {
        return;
    };
    fs_err::write(
        scenario.path("sops.yaml"),
        format!("creation_rules:\n  - age: {}\n", scenario.key.recipient),
    )
    .unwrap();
    // A closure of one path, as `nix path-info --json` writes it.
    fs_err::write(
        scenario.path("dump.json"),
        r#"[{"path":"/nix/store/0c5hfmb7zpc1d3qmv2fnyqvvdg4xnb8m-hello-2.10","narHash":"sha256:1b4sb93wp679q4zx9k1ignby1yna3z7c4c2ri3wphylbc2dwsys0","narSize":1024,"references":[]}]"#,
    )
    .unwrap();
    // The certificate is public; the end of an EC key's PEM body encodes
    // its public point, which the certificate carries too.
    let public = fs_err::read_to_string(scenario.path("fullchain.pem")).unwrap();
    let bootstrap_key = fs_err::read_to_string(&scenario.key.file)
        .unwrap()
        .lines()
        .find(|l| l.starts_with("AGE-SECRET-KEY-1"))
        .unwrap()
        .to_owned();
    let forms: Vec<String> = scenario
        .secrets
        .iter()
        .chain(std::iter::once(&bootstrap_key))
        .flat_map(|s| forbidden_forms(s))
        .filter(|form| !public.contains(form.as_str()))
        .collect();
    if let Some(incus) = incus_test_env() {
        write_vm_prove_config(&scenario, &incus);
    }
    for verbosity in [None, Some("-vvv")] {
        for case in scenario.cases() {
            let mut args: Vec<String> = verbosity.map(str::to_owned).into_iter().collect();
            args.extend(case.args.iter().cloned());
            let output: Output = run(
                &fromgit_bin(case.binary),
                &args,
                scenario.dir.path(),
                &[(
                    "FROMGIT_LOG",
                    OsStr::new(if verbosity.is_some() { "trace" } else { "warn" }),
                )],
                &case.stdin,
            );
            let what = format!("`{} {}`", case.binary, args.join(" "));
            let stderr = String::from_utf8_lossy(&output.stderr);
            assert!(!stderr.contains("panicked"), "{what} panicked:\n{stderr}");
            if let Some(form) = leaks(&stderr, &forms) {
                panic!("{what}: a secret (form `{form}`) on stderr");
            }
            if !case.prints_plaintext {
                if let Some(form) = leaks(&String::from_utf8_lossy(&output.stdout), &forms) {
                    panic!("{what}: a secret (form `{form}`) on stdout");
                }
            }
            let mut files = Vec::new();
            files_under(scenario.dir.path(), &mut files);
            for file in files.iter().filter(|f| !scenario.is_exempt(f)) {
                let text = String::from_utf8_lossy(&fs_err::read(file).unwrap()).into_owned();
                if let Some(form) = leaks(&text, &forms) {
                    panic!("{what}: a secret (form `{form}`) in `{}`", file.display());
                }
                let name = file.file_name().unwrap_or_default().to_string_lossy();
                assert!(
                    !name.contains("fromgit-tmp") && !name.starts_with(".fromgit-"),
                    "{what} left `{}` behind",
                    file.display()
                );
            }
        }
    }
    // Key material the suite writes is owner-only: the bootstrap key and the
    // enrolled fingerprints (salted hashes, but still keyed to the secrets).
    if scenario.path("evidence").is_dir() {
        let mode = mode_of(&scenario.path("evidence"));
        assert_eq!(
            mode & 0o077,
            0,
            "the evidence directory is open to others: {mode:o}"
        );
        let mut evidence = Vec::new();
        files_under(&scenario.path("evidence"), &mut evidence);
        assert!(
            evidence
                .iter()
                .any(|f| f.extension() == Some(OsStr::new("md"))),
            "vm-prove run left no evidence"
        );
        for file in evidence {
            let mode = mode_of(&file);
            assert_eq!(
                mode & 0o077,
                0,
                "`{}` is readable by others",
                file.display()
            );
        }
    } else {
        assert!(
            std::env::var("CI").map_or(true, |v| v != "true"),
            "vm-prove run wrote no evidence under CI"
        );
    }
    for file in ["fingerprints.json", "new-key.txt"] {
        let mode = mode_of(&scenario.path(file));
        assert_eq!(mode & 0o077, 0, "`{file}` is readable by others: {mode:o}");
    }
}

/// vm-prove against the test daemon, with the scenario's key as the pushed
/// secret. The runbook is careless on purpose: it prints the key it was
/// given (vm-prove must redact it everywhere), then a block fails midway.
fn write_vm_prove_config(scenario: &Scenario, incus: &std::collections::BTreeMap<String, String>) {
    let var = |key: &str| incus[&format!("FROMGIT_INCUS_{key}")].clone();
    fs_err::write(
        scenario.path("install.md"),
        "```sh {name=careless vm-prove=run timeout=60}\ncat /var/lib/sops-nix/key.txt\n```\n\n\
         ```sh {name=fails-midway vm-prove=run timeout=60}\necho failing now\nexit 3\n```\n",
    )
    .unwrap();
    fs_err::write(
        scenario.path("vm-prove.toml"),
        format!(
            "[incus]\nurl = \"{}\"\nproject = \"{}\"\nclient_cert = \"{}\"\nclient_key = \"{}\"\nserver_cert = \"{}\"\n\n\
             [instance]\nimage = \"{}\"\nmemory = \"256MiB\"\nname_prefix = \"audit\"\n\n\
             [guardrails]\nallowed_projects = [\"{}\"]\nallowed_name_prefixes = [\"audit\"]\nmemory_budget = \"16GiB\"\n\n[secret]\nsource = \"{}\"\n\n\
             [runbook]\npath = \"install.md\"\n\n[evidence]\ndir = \"evidence\"\n",
            var("URL"),
            var("PROJECT"),
            var("CERT"),
            var("KEY"),
            var("CA"),
            var("IMAGE"),
            var("PROJECT"),
            scenario.key.file.display()
        ),
    )
    .unwrap();
}

#[test]
#[cfg_attr(
    any(missing_sops, missing_openssl, missing_age_keygen),
    ignore = "needs `sops`, `openssl` and `age-keygen`; one was not found when the tests were built: `bash tests/run --install-only` installs them; under CI=true the test fails instead"
)]
fn every_subcommand_is_audited() {
    let Some(scenario) = Scenario::new() else {
        return;
    };
    let covered: BTreeSet<(String, Vec<String>)> = scenario
        .cases()
        .iter()
        .map(|c| {
            (
                c.binary.to_owned(),
                c.command.iter().map(|s| (*s).to_owned()).collect(),
            )
        })
        .collect();
    for binary in BINARIES {
        for command in leaf_commands(binary) {
            assert!(
                covered.contains(&(binary.to_owned(), command.clone())),
                "`{binary} {}` is not covered by the plaintext audit: add a case",
                command.join(" ")
            );
        }
    }
}
