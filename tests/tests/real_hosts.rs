//! `instance-extract` on hosts shaped like the NixOS configurations people
//! write (a reverse proxy with many subdomains, a mail server, users with
//! authorized keys, several hosts in one flake, ACME DNS-01 credentials,
//! inline tokens), against real Nix 2.8 and the real sops.
//!
//! Each fixture under `tests/fixtures/hosts/` goes through the whole round
//! trip: `apply` exits 0, every written `.nix` file parses, the domain occurs
//! in the base in no letter case, the composed configuration evaluates (with
//! the module-system stand-in `tests/fixtures/instance-extract/eval.nix`)
//! equal to the monolith's, sops decrypts each secret to its original bytes,
//! a second `apply` changes nothing and `verify` passes.
//!
//! Over 600 lines on purpose: the fixture corpus and its round trip are one
//! harness, and each defect met on real hosts is a test beside it.

#![allow(clippy::unwrap_used, clippy::panic, clippy::missing_panics_doc)]

use std::collections::BTreeMap;
use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::process::Output;

use fromgit_e2e::{
    age_keygen, copy_fixture, fromgit_bin, peer, run as run_program, success, AgeKey,
};

/// The base directory's name, and so the option namespace.
const NAME: &str = "site";

/// One fixture host and how `apply` is called on it.
struct Fixture {
    dir: &'static str,
    domain: &'static str,
    /// `(sops name, file name under the host's secret directory)`.
    secrets: &'static [(&'static str, &'static str)],
    module: &'static str,
    /// The entry modules of each host to evaluate, relative to the base.
    hosts: &'static [&'static [&'static str]],
    /// Options whose inline secret moved to a runtime-file form:
    /// `(monolith option, composed option)`, compared apart.
    moved: &'static [(&'static str, &'static str)],
}

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures")
}

type Snapshot = BTreeMap<PathBuf, Vec<u8>>;

/// Every file of a directory (not `.git`) with its bytes.
fn snapshot(dir: &Path) -> Snapshot {
    let mut out = BTreeMap::new();
    if !dir.exists() {
        return out;
    }
    let mut stack = vec![dir.to_path_buf()];
    while let Some(current) = stack.pop() {
        for entry in fs_err::read_dir(&current).unwrap() {
            let path = entry.unwrap().path();
            if path.file_name() == Some(OsStr::new(".git")) {
                continue;
            }
            if path.is_dir() {
                stack.push(path);
            } else {
                out.insert(
                    path.strip_prefix(dir).unwrap().to_path_buf(),
                    fs_err::read(&path).unwrap(),
                );
            }
        }
    }
    out
}

struct Run {
    dir: tempfile::TempDir,
    key: AgeKey,
    sops: PathBuf,
    nix_instantiate: PathBuf,
    fixture: &'static Fixture,
}

/// Removes the value at a dotted option path and returns it.
fn take(value: &mut serde_json::Value, path: &str) -> serde_json::Value {
    let mut parts: Vec<&str> = path.split('.').collect();
    let last = parts.pop().unwrap();
    let mut here = value;
    for part in parts {
        here = here
            .get_mut(part)
            .unwrap_or_else(|| panic!("no `{part}` in `{path}`"));
    }
    here.as_object_mut()
        .and_then(|object| object.remove(last))
        .unwrap_or(serde_json::Value::Null)
}

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

impl Run {
    fn new(fixture: &'static Fixture) -> Option<Run> {
        let sops = peer("sops")?;
        let nix_instantiate = peer("nix-instantiate")?;
        let dir = tempfile::tempdir().unwrap();
        let key = age_keygen(dir.path(), "bootstrap")?;
        let secrets = dir.path().join("host-secrets");
        fs_err::create_dir_all(&secrets).unwrap();
        for (name, file) in fixture.secrets {
            fs_err::write(
                secrets.join(file),
                format!("SECRET_{}=value of {name}\n", name.replace('/', "_")),
            )
            .unwrap();
        }
        let source = fixtures().join("hosts").join(fixture.dir);
        copy_fixture(&source, &dir.path().join("monolith"), &secrets);
        copy_fixture(&source, &dir.path().join(NAME), &secrets);
        Some(Run {
            dir,
            key,
            sops,
            nix_instantiate,
            fixture,
        })
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn ours<S: AsRef<OsStr>>(&self, args: &[S]) -> Output {
        run_program(
            &fromgit_bin("instance-extract"),
            args,
            self.dir.path(),
            &[],
            b"",
        )
    }

    fn split_args(&self, command: &str, domain: &str) -> Vec<String> {
        let mut args: Vec<String> = [command, "--base", NAME, "--domain", domain]
            .map(str::to_owned)
            .to_vec();
        for (name, file) in self.fixture.secrets {
            args.push("--secret".to_owned());
            args.push(format!(
                "{name}={}",
                self.path("host-secrets").join(file).display()
            ));
        }
        args.extend(["--module".to_owned(), self.fixture.module.to_owned()]);
        if command == "apply" {
            args.extend([
                "--instance".to_owned(),
                "instance".to_owned(),
                "--recipient".to_owned(),
                self.key.recipient.clone(),
            ]);
        }
        args
    }

    fn apply(&self) -> Output {
        self.ours(&self.split_args("apply", self.fixture.domain))
    }

    fn nix(&self, args: &[&OsStr]) -> Output {
        run_program(
            &self.nix_instantiate,
            args,
            self.dir.path(),
            &[(
                "NIX_CONFIG",
                OsStr::new("substituters =\nexperimental-features = nix-command flakes"),
            )],
            b"",
        )
    }

    /// A Nix expression's value as JSON.
    fn eval_json(&self, expression: &str, what: &str) -> String {
        let output = self.nix(&[
            OsStr::new("--eval"),
            OsStr::new("--strict"),
            OsStr::new("--json"),
            OsStr::new("--expr"),
            OsStr::new(expression),
        ]);
        success(&output, &format!("evaluate {what}"))
    }

    /// The configuration as JSON, through the module-system stand-in.
    fn evaluate(&self, modules: &str, drop: &str) -> String {
        let eval = fixtures().join("instance-extract/eval.nix");
        let output = self.nix(&[
            OsStr::new("--eval"),
            OsStr::new("--strict"),
            OsStr::new("--json"),
            eval.as_os_str(),
            OsStr::new("--arg"),
            OsStr::new("modules"),
            OsStr::new(modules),
            OsStr::new("--arg"),
            OsStr::new("drop"),
            OsStr::new(drop),
        ]);
        success(&output, &format!("nix-instantiate --eval {modules}"))
    }

    fn assert_every_nix_file_parses(&self, dir: &str) {
        for (path, _) in snapshot(&self.path(dir)) {
            if path.extension().is_some_and(|e| e == "nix") {
                let file = self.path(dir).join(&path);
                success(
                    &self.nix(&[OsStr::new("--parse"), file.as_os_str()]),
                    &format!("nix-instantiate --parse {}", file.display()),
                );
            }
        }
    }

    fn assert_no_domain_in_base(&self) {
        let domain = self.fixture.domain.to_ascii_lowercase();
        for (path, bytes) in snapshot(&self.path(NAME)) {
            let text = String::from_utf8_lossy(&bytes).to_ascii_lowercase();
            assert!(
                !text.contains(&domain)
                    && !path
                        .to_string_lossy()
                        .to_ascii_lowercase()
                        .contains(&domain),
                "`{}` still names the domain:\n{}",
                path.display(),
                String::from_utf8_lossy(&bytes)
            );
        }
    }

    fn assert_evaluates_equal(&self) {
        let root = self.dir.path().display();
        let instance = format!(
            "((import {root}/instance/flake.nix).outputs {{ self = null; }}).nixosModules.instance"
        );
        for entries in self.fixture.hosts {
            let list = |dir: &str| -> String {
                entries
                    .iter()
                    .map(|entry| format!("{root}/{dir}/{entry}"))
                    .collect::<Vec<_>>()
                    .join(" ")
            };
            let monolith = self.evaluate(&format!("[ {} ]", list("monolith")), "[ ]");
            let composed = self.evaluate(
                &format!("[ {} {instance} ]", list(NAME)),
                &format!("[ \"{NAME}\" \"sops\" ]"),
            );
            let mut monolith: serde_json::Value = serde_json::from_str(&monolith).unwrap();
            let mut composed: serde_json::Value = serde_json::from_str(&composed).unwrap();
            for (inline, file) in self.fixture.moved {
                let taken = take(&mut monolith, inline);
                assert!(taken.is_string(), "`{inline}` is not in the monolith");
                let path = take(&mut composed, file);
                assert!(
                    path.as_str().is_some_and(|p| p.starts_with("/run/secrets")),
                    "`{file}` is {path}, not a sops-nix path"
                );
            }
            assert_eq!(
                monolith, composed,
                "{entries:?}: the composed configuration differs from the monolith"
            );
        }
    }

    fn assert_secrets_decrypt(&self) {
        for (name, file) in self.fixture.secrets {
            let extract = name
                .split('/')
                .fold(String::new(), |path, part| path + "[\"" + part + "\"]");
            let output = run_program(
                &self.sops,
                ["-d", "--extract", &extract, "instance/secrets/secrets.yaml"],
                self.dir.path(),
                &[("SOPS_AGE_KEY_FILE", self.key.file.as_os_str())],
                b"",
            );
            assert_eq!(
                success(&output, "sops -d --extract"),
                fs_err::read_to_string(self.path("host-secrets").join(file)).unwrap()
            );
        }
    }

    fn verify(&self) -> Output {
        self.ours(&[
            "verify".to_owned(),
            "--instance".to_owned(),
            "instance".to_owned(),
            "--identity".to_owned(),
            self.key.file.display().to_string(),
            "--base".to_owned(),
            NAME.to_owned(),
            "--module".to_owned(),
            self.fixture.module.to_owned(),
        ])
    }

    /// The whole round trip of the module docs; returns `apply`'s report.
    fn round_trip(&self) -> String {
        let applied = self.apply();
        let report = success(&applied, "apply");
        self.assert_every_nix_file_parses(NAME);
        self.assert_every_nix_file_parses("instance");
        self.assert_no_domain_in_base();
        self.assert_evaluates_equal();
        if !self.fixture.secrets.is_empty() {
            self.assert_secrets_decrypt();
        }
        let base = snapshot(&self.path(NAME));
        let instance = snapshot(&self.path("instance"));
        let again = self.apply();
        assert!(
            success(&again, "second apply").starts_with("nothing to do"),
            "{}",
            stdout(&again)
        );
        assert_eq!(
            snapshot(&self.path(NAME)),
            base,
            "the second apply changed the base"
        );
        assert_eq!(snapshot(&self.path("instance")), instance);
        let verify = self.verify();
        assert!(
            success(&verify, "verify").contains("the only secret outside git"),
            "{}",
            stdout(&verify)
        );
        report
    }

    fn assert_refused_untouched(&self, output: &Output, code: i32, needle: &str) {
        assert_eq!(
            output.status.code(),
            Some(code),
            "stdout:\n{}\nstderr:\n{}",
            stdout(output),
            stderr(output)
        );
        assert!(
            stderr(output).contains(needle),
            "`{needle}` missing from:\n{}",
            stderr(output)
        );
        let source = fixtures().join("hosts").join(self.fixture.dir);
        let pristine = tempfile::tempdir().unwrap();
        copy_fixture(&source, pristine.path(), &self.path("host-secrets"));
        assert_eq!(
            snapshot(&self.path(NAME)),
            snapshot(pristine.path()),
            "the base changed"
        );
        assert!(
            !self.path("instance").exists(),
            "the instance dir was created"
        );
    }
}

static PROXY: Fixture = Fixture {
    dir: "proxy",
    domain: "lab.example.org",
    secrets: &[("acme/rfc2136", "acme-rfc2136.env")],
    module: "configuration.nix",
    hosts: &[&["configuration.nix"]],
    moved: &[],
};

#[test]
#[cfg_attr(
    any(missing_sops, missing_nix_instantiate, missing_age_keygen),
    ignore = "needs `sops`, `nix-instantiate` and `age-keygen`; one was not found when the tests were built: `bash tests/run --install-only` installs them; under CI=true the test fails instead"
)]
fn reverse_proxy_with_many_subdomains_round_trips() {
    let Some(run) = Run::new(&PROXY) else { return };
    let report = run.round_trip();
    assert!(
        report.contains("10.0.0.0"),
        "the lab network is reported: {report}"
    );
    assert!(
        report.contains("Renamed (the name carried the domain):"),
        "{report}"
    );
    assert!(run.path("site/sites/instance.nix").is_file());
    assert!(!run.path("site/sites/lab.example.org.nix").exists());
    let entry = fs_err::read_to_string(run.path("site/configuration.nix")).unwrap();
    assert!(entry.contains("./sites/instance.nix"), "{entry}");
}

#[test]
#[cfg_attr(
    any(missing_sops, missing_nix_instantiate, missing_age_keygen),
    ignore = "needs `sops`, `nix-instantiate` and `age-keygen`; one was not found when the tests were built: `bash tests/run --install-only` installs them; under CI=true the test fails instead"
)]
fn a_domain_that_is_no_dns_name_is_refused_at_once() {
    let Some(run) = Run::new(&PROXY) else { return };
    for (domain, needle) in [
        ("", "the domain is empty"),
        ("localhost", "single label"),
        ("lab..example.org", "is not a DNS name"),
        ("203.0.113.7", "is not a DNS name"),
    ] {
        for command in ["plan", "apply"] {
            let started = std::time::Instant::now();
            let output = run.ours(&run.split_args(command, domain));
            assert!(
                started.elapsed().as_secs() < 10,
                "`--domain {domain:?}` took {:?}",
                started.elapsed()
            );
            run.assert_refused_untouched(&output, 2, needle);
            assert!(stderr(&output).contains("--domain"), "{}", stderr(&output));
        }
    }
}

#[test]
#[cfg_attr(
    any(missing_sops, missing_nix_instantiate, missing_age_keygen),
    ignore = "needs `sops`, `nix-instantiate` and `age-keygen`; one was not found when the tests were built: `bash tests/run --install-only` installs them; under CI=true the test fails instead"
)]
fn a_file_nested_beyond_the_limit_is_refused_with_its_line() {
    let Some(run) = Run::new(&PROXY) else { return };
    let deep = format!(
        "{{ ... }}:\n{{\n  x =\n    {}{};\n}}\n",
        "[".repeat(100_000),
        "]".repeat(100_000)
    );
    fs_err::write(run.path("site/deep.nix"), &deep).unwrap();
    let before = snapshot(&run.path(NAME));
    let output = run.apply();
    assert_eq!(output.status.code(), Some(2), "{}", stderr(&output));
    assert!(
        stderr(&output).contains("deep.nix` line 4: nested deeper than 512 levels"),
        "{}",
        stderr(&output)
    );
    assert!(!run.path("instance").exists());
    assert_eq!(snapshot(&run.path(NAME)), before, "the base changed");
    let plan = run.ours(&run.split_args("plan", PROXY.domain));
    assert_eq!(plan.status.code(), Some(2), "{}", stderr(&plan));
}

static USERS: Fixture = Fixture {
    dir: "users",
    domain: "home.example.com",
    secrets: &[
        ("restic/password", "restic-password"),
        ("wireguard/wg0", "wg0.key"),
    ],
    module: "configuration.nix",
    hosts: &[&["configuration.nix"]],
    moved: &[],
};

#[test]
#[cfg_attr(
    any(missing_sops, missing_nix_instantiate, missing_age_keygen),
    ignore = "needs `sops`, `nix-instantiate` and `age-keygen`; one was not found when the tests were built: `bash tests/run --install-only` installs them; under CI=true the test fails instead"
)]
fn public_keys_hashes_and_recipients_never_stop_apply() {
    let Some(run) = Run::new(&USERS) else { return };
    let plan = success(
        &run.ours(&{
            let mut args = run.split_args("plan", USERS.domain);
            args.push("--json".to_owned());
            args
        }),
        "plan",
    );
    for reason in [
        "SSH public key (ssh-ed25519)",
        "SSH public key (ssh-rsa)",
        "SSH public key (ecdsa-sha2-nistp256)",
        "age recipient",
        "SRI hash",
        "the value of `publicKey`, public by definition",
        "the value of `trusted-public-keys`, public by definition",
        "accepted in `instance-extract.toml`: a Syncthing device id",
    ] {
        assert!(
            plan.contains(reason),
            "`{reason}` missing from the plan:\n{plan}"
        );
    }
    assert!(!plan.contains("\"literal-secret\""), "{plan}");
    let report = run.round_trip();
    assert!(report.contains("SSH public key (ssh-rsa)"), "{report}");
}

#[test]
#[cfg_attr(
    any(missing_sops, missing_nix_instantiate, missing_age_keygen),
    ignore = "needs `sops`, `nix-instantiate` and `age-keygen`; one was not found when the tests were built: `bash tests/run --install-only` installs them; under CI=true the test fails instead"
)]
fn an_inline_user_password_is_refused_with_the_option_to_use() {
    let Some(run) = Run::new(&USERS) else { return };
    let users = run.path("site/users.nix");
    let text = fs_err::read_to_string(&users).unwrap();
    fs_err::write(
        &users,
        text.replace(
            "isNormalUser = true;",
            "isNormalUser = true;\n    password = \"kV3b8QeWmP1d\";",
        ),
    )
    .unwrap();
    let before = snapshot(&run.path(NAME));
    let output = run.apply();
    assert_eq!(output.status.code(), Some(2), "{}", stderr(&output));
    let message = stderr(&output);
    for needle in [
        "users.nix` line 14",
        "inline value (12 chars): the value of `password`",
        "hashedPasswordFile",
        "neededForUsers = true",
        "accept it in `instance-extract.toml` with key `sha256:",
    ] {
        assert!(message.contains(needle), "`{needle}` missing:\n{message}");
    }
    assert!(
        !message.contains("kV3b8Qe"),
        "the hash is printed:\n{message}"
    );
    assert_eq!(snapshot(&run.path(NAME)), before);
    assert!(!run.path("instance").exists());
}

#[test]
#[cfg_attr(
    any(missing_sops, missing_nix_instantiate, missing_age_keygen),
    ignore = "needs `sops`, `nix-instantiate` and `age-keygen`; one was not found when the tests were built: `bash tests/run --install-only` installs them; under CI=true the test fails instead"
)]
fn an_acceptance_stops_matching_when_the_value_changes() {
    let Some(run) = Run::new(&USERS) else { return };
    let syncthing = run.path("site/syncthing.nix");
    let text = fs_err::read_to_string(&syncthing).unwrap();
    fs_err::write(&syncthing, text.replace("TH3WJAP", "TH3WJAQ")).unwrap();
    let before = snapshot(&run.path(NAME));
    let output = run.apply();
    assert_eq!(output.status.code(), Some(2), "{}", stderr(&output));
    assert!(
        stderr(&output).contains("syncthing.nix` line 7: a secret is written into the Nix source (high-entropy token (63 chars)"),
        "{}",
        stderr(&output)
    );
    assert_eq!(snapshot(&run.path(NAME)), before);
    // An accept file without a reason is bad input, named.
    fs_err::write(&syncthing, text).unwrap();
    let accept = run.path("site/instance-extract.toml");
    let entries = fs_err::read_to_string(&accept).unwrap();
    fs_err::write(
        &accept,
        entries.replace("reason = \"a Syncthing", "reason = \"\" # \"a Syncthing"),
    )
    .unwrap();
    let output = run.apply();
    assert_eq!(output.status.code(), Some(2), "{}", stderr(&output));
    assert!(
        stderr(&output).contains("instance-extract.toml`: `accept[0].reason` is empty"),
        "{}",
        stderr(&output)
    );
}

static MAIL: Fixture = Fixture {
    dir: "mail",
    domain: "example.net",
    secrets: &[("mail/alice", "alice.hash"), ("mail/lists", "lists.hash")],
    module: "configuration.nix",
    hosts: &[&["configuration.nix"]],
    moved: &[],
};

#[test]
#[cfg_attr(
    any(missing_sops, missing_nix_instantiate, missing_age_keygen),
    ignore = "needs `sops`, `nix-instantiate` and `age-keygen`; one was not found when the tests were built: `bash tests/run --install-only` installs them; under CI=true the test fails instead"
)]
fn addresses_and_emails_become_instance_facts_in_any_case() {
    let Some(run) = Run::new(&MAIL) else { return };
    let report = run.round_trip();
    assert!(report.contains("site.instance.addresses.a1"), "{report}");
    assert!(report.contains("site.instance.emails.e1"), "{report}");
    assert!(
        report.contains("192.168.1.1 — a private (RFC 1918) address"),
        "{report}"
    );
    let base: String = snapshot(&run.path(NAME))
        .values()
        .map(|bytes| String::from_utf8_lossy(bytes).into_owned())
        .collect();
    for fact in [
        "203.0.113.25",
        "203.0.113.1",
        "2001:db8:5::25",
        "198.51.100.4",
        "mailbox.test",
    ] {
        assert!(!base.contains(fact), "`{fact}` stays in the base");
    }
    let facts = fs_err::read_to_string(run.path("instance/instance.nix")).unwrap();
    assert!(facts.contains("\"2001:db8:5::25\""), "{facts}");
    assert!(facts.contains("\"owner@mailbox.test\""), "{facts}");

    // leak-scan enrolls every fact of instance.nix, and then finds one planted back.
    let leak_scan = fromgit_bin("leak-scan");
    let enroll = run_program(
        &leak_scan,
        [
            OsStr::new("enroll"),
            OsStr::new("--instance"),
            OsStr::new("instance"),
            OsStr::new("--identity"),
            run.key.file.as_os_str(),
            OsStr::new("-o"),
            OsStr::new("fingerprints.json"),
        ],
        run.dir.path(),
        &[],
        b"",
    );
    let summary = success(&enroll, "leak-scan enroll");
    assert!(
        summary.contains("5 address(es), 2 e-mail address(es)"),
        "{summary}"
    );
    let scan = |dir: &str| {
        run_program(
            &leak_scan,
            [dir, "--fingerprints", "fingerprints.json"],
            run.dir.path(),
            &[],
            b"",
        )
    };
    let clean = scan(NAME);
    assert_eq!(clean.status.code(), Some(0), "{}", stdout(&clean));
    fs_err::write(run.path("site/notes.txt"), "old gateway: 203.0.113.1\n").unwrap();
    let planted = scan(NAME);
    assert_eq!(planted.status.code(), Some(1), "{}", stdout(&planted));
}

static FLEET: Fixture = Fixture {
    dir: "fleet",
    domain: "example.com",
    secrets: &[("tls/crt", "status.crt"), ("tls/key", "status.key")],
    module: "hosts/web1.nix",
    hosts: &[&["hosts/web1.nix"], &["hosts/build.nix"]],
    moved: &[],
};

#[test]
#[cfg_attr(
    any(missing_sops, missing_nix_instantiate, missing_age_keygen),
    ignore = "needs `sops`, `nix-instantiate` and `age-keygen`; one was not found when the tests were built: `bash tests/run --install-only` installs them; under CI=true the test fails instead"
)]
fn a_fleet_flake_changes_only_the_chosen_host() {
    let Some(run) = Run::new(&FLEET) else { return };
    let report = run.round_trip();
    assert!(
        report.contains("Other hosts of the flake, left as they are: build"),
        "{report}"
    );
    for untouched in ["hosts/build.nix", "roles/common.nix"] {
        assert_eq!(
            fs_err::read(run.path(NAME).join(untouched)).unwrap(),
            fs_err::read(run.path("monolith").join(untouched)).unwrap(),
            "`{untouched}` changed"
        );
    }
    let entry = fs_err::read_to_string(run.path("site/hosts/web1.nix")).unwrap();
    assert!(entry.contains("../instance-options.nix"), "{entry}");
    let flake = fs_err::read_to_string(run.path("site/flake.nix")).unwrap();
    assert!(
        flake.contains(
            "description = \"Fleet of <instance domain>: the web host and the builder\";"
        ),
        "{flake}"
    );
    assert_eq!(
        flake.matches("instance.nixosModules.instance").count(),
        1,
        "only web1 is wired:\n{flake}"
    );
}

/// The domain in a file only another host uses stays there, and a second
/// `apply` says so instead of refusing the existing instance repo.
#[test]
#[cfg_attr(
    any(missing_sops, missing_nix_instantiate, missing_age_keygen),
    ignore = "needs `sops`, `nix-instantiate` and `age-keygen`; one was not found when the tests were built: `bash tests/run --install-only` installs them; under CI=true the test fails instead"
)]
fn a_second_apply_counts_what_other_hosts_keep() {
    let Some(run) = Run::new(&FLEET) else { return };
    let builder =
        "{ ... }:\n{\n  nix.settings.substituters = [ \"https://cache.example.com\" ];\n}\n";
    fs_err::write(run.path("site/roles/builder.nix"), builder).unwrap();
    let build = run.path("site/hosts/build.nix");
    let text = fs_err::read_to_string(&build).unwrap();
    fs_err::write(
        &build,
        text.replace(
            "../roles/common.nix",
            "../roles/common.nix ../roles/builder.nix",
        ),
    )
    .unwrap();
    let report = success(&run.apply(), "apply");
    assert!(
        report.contains("in a file only other hosts use; left as it is"),
        "{report}"
    );
    assert_eq!(
        fs_err::read_to_string(run.path("site/roles/builder.nix")).unwrap(),
        builder
    );
    let again = success(&run.apply(), "second apply");
    assert!(
        again.starts_with("nothing to do: `site` is already generic for this host")
            && again.contains("(1 finding(s) remain in files only the flake's other hosts use)"),
        "{again}"
    );
}

static ACME: Fixture = Fixture {
    dir: "acme",
    domain: "example.org",
    secrets: &[
        ("acme/cloudflare", "cloudflare.env"),
        ("ddns/token", "ddns-token"),
    ],
    module: "configuration.nix",
    hosts: &[&["configuration.nix", "ddns.nix"]],
    moved: &[],
};

#[test]
#[cfg_attr(
    any(missing_sops, missing_nix_instantiate, missing_age_keygen),
    ignore = "needs `sops`, `nix-instantiate` and `age-keygen`; one was not found when the tests were built: `bash tests/run --install-only` installs them; under CI=true the test fails instead"
)]
fn dns01_credentials_and_load_credential_round_trip() {
    let Some(run) = Run::new(&ACME) else { return };
    run.round_trip();
    let ddns = fs_err::read_to_string(run.path("site/ddns.nix")).unwrap();
    assert!(
        ddns.contains("\"token:${config.sops.secrets.\"ddns/token\".path}\""),
        "{ddns}"
    );
}

#[test]
#[cfg_attr(
    any(missing_sops, missing_nix_instantiate, missing_age_keygen),
    ignore = "needs `sops`, `nix-instantiate` and `age-keygen`; one was not found when the tests were built: `bash tests/run --install-only` installs them; under CI=true the test fails instead"
)]
fn secrets_read_at_evaluation_time_become_file_options_or_are_refused() {
    let Some(run) = Run::new(&PROXY) else { return };
    let db_pass = run.path("host-secrets/db-pass");
    fs_err::write(&db_pass, "correct horse\n").unwrap();
    fs_err::write(
        run.path("site/db.nix"),
        format!(
            "{{ ... }}:\n{{\n  services.app.database.password = builtins.readFile {};\n}}\n",
            db_pass.display()
        ),
    )
    .unwrap();
    let mut args = run.split_args("apply", PROXY.domain);
    args.extend([
        "--secret".to_owned(),
        format!("db/pass={}", db_pass.display()),
    ]);
    let plan = run.ours(&{
        let mut plan = run.split_args("plan", PROXY.domain);
        plan.extend([
            "--secret".to_owned(),
            format!("db/pass={}", db_pass.display()),
        ]);
        plan
    });
    assert!(
        success(&plan, "plan").contains("eval-time-read: `builtins.readFile` of"),
        "{}",
        stdout(&plan)
    );
    let report = success(&run.ours(&args), "apply");
    assert!(
        report.contains("now `passwordFile` with the sops-nix path"),
        "{report}"
    );
    let db = fs_err::read_to_string(run.path("site/db.nix")).unwrap();
    assert_eq!(
        db,
        "{ config, ... }:\n{\n  services.app.database.passwordFile = config.sops.secrets.\"db/pass\".path;\n}\n"
    );
    run.assert_every_nix_file_parses(NAME);

    // A read with no runtime-file form, and an import of a secrets file: refused, named.
    for (module, needle) in [
        (
            "{ lib, ... }:\n{\n  services.app.settings = \"token=${lib.fileContents \"/etc/secrets/app-token\"}\";\n}\n",
            "late.nix` line 3: `lib.fileContents` of `/etc/secrets/app-token` is read when the configuration is evaluated",
        ),
        (
            "{ ... }:\n{\n  services.app.settings = import ./secrets.nix;\n}\n",
            "late.nix` line 3: `import` of `./secrets.nix` is read when the configuration is evaluated",
        ),
    ] {
        let fresh = Run::new(&PROXY).unwrap();
        fs_err::write(fresh.path("site/late.nix"), module).unwrap();
        fs_err::write(fresh.path("site/secrets.nix"), "{ token = \"x\"; }\n").unwrap();
        let before = snapshot(&fresh.path(NAME));
        let output = fresh.apply();
        assert_eq!(output.status.code(), Some(2), "{}", stderr(&output));
        assert!(stderr(&output).contains(needle), "{}", stderr(&output));
        assert_eq!(snapshot(&fresh.path(NAME)), before);
        assert!(!fresh.path("instance").exists());
    }
}

#[test]
#[cfg_attr(
    any(missing_sops, missing_nix_instantiate, missing_age_keygen),
    ignore = "needs `sops`, `nix-instantiate` and `age-keygen`; one was not found when the tests were built: `bash tests/run --install-only` installs them; under CI=true the test fails instead"
)]
fn a_module_symlinked_from_outside_the_base_is_refused() {
    let Some(run) = Run::new(&PROXY) else { return };
    std::os::unix::fs::symlink(
        run.path("monolith/services/nginx.nix"),
        run.path("site/services/shared.nix"),
    )
    .unwrap();
    let before = snapshot(&run.path(NAME));
    let output = run.apply();
    assert_eq!(output.status.code(), Some(2), "{}", stderr(&output));
    assert!(
        stderr(&output).contains("services/shared.nix` is a symbolic link to `"),
        "{}",
        stderr(&output)
    );
    assert_eq!(snapshot(&run.path(NAME)), before);
    assert!(run.path("site/services/shared.nix").is_symlink());
    assert!(!run.path("instance").exists());
}

static TOKENS: Fixture = Fixture {
    dir: "tokens",
    domain: "example.io",
    secrets: &[],
    module: "configuration.nix",
    hosts: &[&["configuration.nix"]],
    moved: &[
        (
            "users.users.root.hashedPassword",
            "users.users.root.hashedPasswordFile",
        ),
        (
            "users.users.ops.hashedPassword",
            "users.users.ops.hashedPasswordFile",
        ),
        (
            "networking.wireguard.interfaces.wg0.privateKey",
            "networking.wireguard.interfaces.wg0.privateKeyFile",
        ),
        (
            "services.ddclient.password",
            "services.ddclient.passwordFile",
        ),
    ],
};

/// A nixpkgs stand-in whose `nixosSystem` returns an option tree: with
/// `real_lib`, one made by the real module system of that nixpkgs `lib`
/// (`lib.evalModules`, `types.attrsOf (types.submodule …)`), else plain
/// attribute sets shaped like it. `without` is a runtime-file option left
/// undeclared.
fn options_nixpkgs(run: &Run, real_lib: Option<&Path>, without: &str) -> PathBuf {
    let dir = run.path("nixpkgs");
    fs_err::create_dir_all(&dir).unwrap();
    let option = |name: &str| {
        if name == without {
            String::new()
        } else {
            format!("{name} = option; ")
        }
    };
    let tree = format!(
        "{{ users.users = sub {{ hashedPassword = option; {} }}; services.ddclient = {{ password = option; {} }}; networking.wireguard.interfaces = sub {{ privateKey = option; {} }}; }}",
        option("hashedPasswordFile"),
        option("passwordFile"),
        option("privateKeyFile"),
    );
    let body = if real_lib.is_some() {
        format!(
            "let lib = nixlib.lib; option = lib.mkOption {{ }}; sub = options: lib.mkOption {{ type = lib.types.attrsOf (lib.types.submodule {{ inherit options; }}); }}; in {{ modules, ... }}: {{ options = (lib.evalModules {{ modules = [ {{ options = {tree}; }} ]; }}).options; }}"
        )
    } else {
        format!(
            "let option = {{ _type = \"option\"; }}; sub = options: option // {{ type.getSubOptions = prefix: options; }}; in {{ modules, ... }}: {{ options = {tree}; }}"
        )
    };
    // Pure evaluation reads the real `lib` only as a flake input.
    let flake = match real_lib {
        Some(lib) => format!(
            "{{ inputs.nixlib.url = \"path:{}\"; outputs = {{ self, nixlib }}: {{ lib.nixosSystem = {body}; }}; }}\n",
            lib.display()
        ),
        None => format!("{{ outputs = {{ self }}: {{ lib.nixosSystem = {body}; }}; }}\n"),
    };
    fs_err::write(dir.join("flake.nix"), flake).unwrap();
    let flake = run.path("site/flake.nix");
    let text = fs_err::read_to_string(&flake).unwrap();
    fs_err::write(
        &flake,
        text.replace(
            "github:NixOS/nixpkgs/nixos-25.11",
            &format!("path:{}", dir.display()),
        ),
    )
    .unwrap();
    dir
}

/// The runtime-file options `apply` writes are looked up in the host's own
/// option tree (`nix eval --offline` of `nixosConfigurations.<host>.options`,
/// through submodules); a service without the option refuses the split.
fn runtime_options_are_looked_up(real_lib: Option<&Path>) {
    let Some(run) = Run::new(&TOKENS) else { return };
    options_nixpkgs(&run, real_lib, "");
    let report = success(&run.apply(), "apply");
    assert!(
        report.contains("Runtime-file options: `users.users.root.hashedPasswordFile`, `users.users.ops.hashedPasswordFile`"),
        "{report}"
    );
    assert!(
        report.contains("`services.ddclient.passwordFile`")
            && report.contains("`networking.wireguard.interfaces.wg0.privateKeyFile`")
            && report.contains("declared in host `vpn`'s option tree"),
        "{report}"
    );
    let Some(run) = Run::new(&TOKENS) else { return };
    options_nixpkgs(&run, real_lib, "passwordFile");
    let output = run.apply();
    assert_eq!(output.status.code(), Some(2), "{}", stdout(&output));
    assert!(
        stderr(&output)
            .contains("line 28: `services.ddclient.passwordFile` is not an option of host `vpn`"),
        "{}",
        stderr(&output)
    );
    assert!(
        !run.path("instance").exists(),
        "the instance dir was created"
    );
}

#[test]
#[cfg_attr(
    any(missing_sops, missing_nix_instantiate, missing_age_keygen),
    ignore = "needs `sops`, `nix-instantiate` and `age-keygen`; one was not found when the tests were built: `bash tests/run --install-only` installs them; under CI=true the test fails instead"
)]
fn runtime_options_are_looked_up_in_the_hosts_option_tree() {
    runtime_options_are_looked_up(None);
}

/// The same, with the real module system: the walk through `attrsOf
/// (submodule …)` agrees with real `getSubOptions`. Needs a nixpkgs `lib`
/// tree: `FROMGIT_NIXPKGS_LIB_SRC=<dir with lib/> cargo test … -- --ignored`.
#[test]
#[ignore = "needs a nixpkgs lib source tree in FROMGIT_NIXPKGS_LIB_SRC"]
fn runtime_options_are_looked_up_with_the_real_module_system() {
    let lib = std::env::var_os("FROMGIT_NIXPKGS_LIB_SRC").expect("FROMGIT_NIXPKGS_LIB_SRC");
    runtime_options_are_looked_up(Some(Path::new(&lib)));
}

#[test]
#[cfg_attr(
    any(missing_sops, missing_nix_instantiate, missing_age_keygen),
    ignore = "needs `sops`, `nix-instantiate` and `age-keygen`; one was not found when the tests were built: `bash tests/run --install-only` installs them; under CI=true the test fails instead"
)]
fn inline_secrets_move_into_the_sops_file() {
    let Some(run) = Run::new(&TOKENS) else { return };
    let monolith = fs_err::read_to_string(run.path("monolith/configuration.nix")).unwrap();
    let report = run.round_trip();
    assert!(
        report.contains("- users/users/ops/hashedPassword from inline at configuration.nix:12"),
        "{report}"
    );
    let options = fs_err::read_to_string(run.path("site/instance-options.nix")).unwrap();
    assert!(
        options.contains(
            "config.sops.secrets.\"users/users/root/hashedPassword\" = { neededForUsers = true; };"
        ),
        "{options}"
    );
    assert!(
        options.contains("config.sops.secrets.\"services/ddclient/password\" = { };"),
        "{options}"
    );
    // Each value decrypts, with the real sops, to the bytes that were inline.
    for (name, option) in [
        (
            "[\"users\"][\"users\"][\"ops\"][\"hashedPassword\"]",
            "hashedPassword = \"",
        ),
        (
            "[\"services\"][\"ddclient\"][\"password\"]",
            "password = \"",
        ),
        (
            "[\"networking\"][\"wireguard\"][\"interfaces\"][\"wg0\"][\"privateKey\"]",
            "privateKey = \"",
        ),
    ] {
        let inline = monolith
            .split(option)
            .last()
            .and_then(|rest| rest.split('"').next())
            .unwrap();
        let output = run_program(
            &run.sops,
            ["-d", "--extract", name, "instance/secrets/secrets.yaml"],
            run.dir.path(),
            &[("SOPS_AGE_KEY_FILE", run.key.file.as_os_str())],
            b"",
        );
        assert_eq!(success(&output, "sops -d --extract"), inline, "{name}");
        assert!(!report.contains(inline), "a secret in the report");
    }
    let base: String = snapshot(&run.path(NAME))
        .values()
        .map(|bytes| String::from_utf8_lossy(bytes).into_owned())
        .collect();
    assert!(!base.contains("$6$"), "a password hash stays in the base");
    assert!(
        !base.contains("Zk4mR8vQ"),
        "the ddclient token stays in the base"
    );
}

#[test]
#[cfg_attr(
    any(missing_sops, missing_nix_instantiate, missing_age_keygen),
    ignore = "needs `sops`, `nix-instantiate` and `age-keygen`; one was not found when the tests were built: `bash tests/run --install-only` installs them; under CI=true the test fails instead"
)]
fn verify_fails_on_a_fact_an_unresolved_import_or_an_evaluation_time_read() {
    let Some(run) = Run::new(&MAIL) else { return };
    success(&run.apply(), "apply");
    assert!(run.verify().status.success(), "{}", stdout(&run.verify()));
    let entry = run.path("site/configuration.nix");
    let original = fs_err::read_to_string(&entry).unwrap();
    for (broken, needle) in [
        (
            original.replace("./mailserver.nix", "./elsewhere/mailserver.nix"),
            "FAIL base: every relative path resolves: missing: configuration.nix:",
        ),
        (
            original.replace("hostName = \"mx1\";", "hostName = \"mx1\";\n    extraHosts = \"198.51.100.4 relay\";"),
            "FAIL base: no instance fact: still in configuration.nix (fact ",
        ),
        (
            original.replace(
                "hostName = \"mx1\";",
                "hostName = \"mx1\";\n    hostId = builtins.readFile config.sops.secrets.\"mail/alice\".path;",
            ),
            "FAIL base: no secret read at evaluation time: read at evaluation time: configuration.nix:",
        ),
    ] {
        fs_err::write(&entry, broken).unwrap();
        let output = run.verify();
        assert_eq!(output.status.code(), Some(1), "{}", stdout(&output));
        assert!(stdout(&output).contains(needle), "{}", stdout(&output));
        assert!(!stdout(&output).contains("198.51.100.4"), "a fact in the report");
    }
    fs_err::write(&entry, original).unwrap();
    assert!(run.verify().status.success());
}

fn git(dir: &Path, args: &[&str]) -> String {
    let git = peer("git").unwrap();
    let mut all = vec![
        "-c",
        "user.name=Operator",
        "-c",
        "user.email=operator@home.example.com",
    ];
    all.extend(args);
    success(
        &run_program(&git, &all, dir, &[], b""),
        &format!("git {args:?}"),
    )
}

#[test]
#[cfg_attr(
    any(missing_sops, missing_nix_instantiate, missing_age_keygen),
    ignore = "needs `sops`, `nix-instantiate` and `age-keygen`; one was not found when the tests were built: `bash tests/run --install-only` installs them; under CI=true the test fails instead"
)]
fn a_new_history_leaves_no_fact_reachable_in_the_base() {
    let Some(run) = Run::new(&USERS) else { return };
    let base = run.path(NAME);
    git(&base, &["init", "-q"]);
    git(&base, &["add", "-A"]);
    git(&base, &["commit", "-q", "-m", "nas for home.example.com"]);
    let mut args = run.split_args("apply", USERS.domain);
    args.push("--new-history".to_owned());
    let report = success(&run.ours(&args), "apply --new-history");
    assert!(
        report.contains("New history: `site` starts a new git history: one commit"),
        "{report}"
    );
    assert_eq!(git(&base, &["rev-list", "--all", "--count"]).trim(), "1");
    assert!(git(&base, &["status", "--porcelain"]).trim().is_empty());
    let kept = run.path("site.monolith.git");
    assert!(
        git(
            run.dir.path(),
            &["--git-dir", kept.to_str().unwrap(), "log", "-p"]
        )
        .contains("home.example.com"),
        "the monolith's history is kept aside"
    );
    // leak-scan, with every fact of the instance enrolled, finds nothing in the new history.
    let leak_scan = fromgit_bin("leak-scan");
    success(
        &run_program(
            &leak_scan,
            [
                OsStr::new("enroll"),
                OsStr::new("--instance"),
                OsStr::new("instance"),
                OsStr::new("--identity"),
                run.key.file.as_os_str(),
                OsStr::new("-o"),
                OsStr::new("fingerprints.json"),
            ],
            run.dir.path(),
            &[],
            b"",
        ),
        "leak-scan enroll",
    );
    let history = run_program(
        &leak_scan,
        [NAME, "--history", "--fingerprints", "fingerprints.json"],
        run.dir.path(),
        &[],
        b"",
    );
    assert_eq!(history.status.code(), Some(0), "{}", stdout(&history));
    let verify = run.verify();
    assert!(
        stdout(&verify).contains("ok   base: history holds no fact or secret: none of"),
        "{}",
        stdout(&verify)
    );
    assert!(verify.status.success());
    // A second split over a base whose old history is still kept aside is refused before writing.
    let again = Run::new(&USERS).unwrap();
    git(&again.path(NAME), &["init", "-q"]);
    fs_err::create_dir_all(again.path("site.monolith.git")).unwrap();
    let mut args = again.split_args("apply", USERS.domain);
    args.push("--new-history".to_owned());
    let output = again.ours(&args);
    again.assert_refused_untouched(&output, 2, "site.monolith.git` already exists");
}

const NIXPKGS_ONLY_LOCK: &str = r#"{
  "nodes": {
    "nixpkgs": {
      "locked": {
        "lastModified": 1764000000,
        "narHash": "sha256-AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=",
        "owner": "NixOS",
        "repo": "nixpkgs",
        "rev": "5e2a59a5b1a82f89f2c7e598302a9cacebb72a67",
        "type": "github"
      },
      "original": {
        "owner": "NixOS",
        "ref": "nixos-25.11",
        "repo": "nixpkgs",
        "type": "github"
      }
    },
    "root": { "inputs": { "nixpkgs": "nixpkgs" } }
  },
  "root": "root",
  "version": 7
}
"#;

#[test]
#[cfg_attr(
    any(missing_sops, missing_nix_instantiate, missing_age_keygen),
    ignore = "needs `sops`, `nix-instantiate` and `age-keygen`; one was not found when the tests were built: `bash tests/run --install-only` installs them; under CI=true the test fails instead"
)]
fn a_lock_without_the_new_inputs_is_reported_and_leaves_verify_unproven() {
    let Some(run) = Run::new(&PROXY) else { return };
    fs_err::write(run.path("site/flake.lock"), NIXPKGS_ONLY_LOCK).unwrap();
    let report = success(&run.apply(), "apply");
    assert!(
        report.contains("manual: flake.lock is stale: it does not lock `instance`, `sops-nix`"),
        "{report}"
    );
    let verify = run.verify();
    assert_eq!(verify.status.code(), Some(3), "{}", stdout(&verify));
    assert!(
        stdout(&verify).contains("UNPROVEN base: flake.lock does not lock `instance`, `sops-nix`"),
        "{}",
        stdout(&verify)
    );
    // Once locked (written here as `nix flake lock` would), verify passes.
    let locked = NIXPKGS_ONLY_LOCK.replace(
        "\"root\": { \"inputs\": { \"nixpkgs\": \"nixpkgs\" } }",
        "\"instance\": { \"locked\": { \"path\": \"../instance\", \"type\": \"path\" }, \"original\": { \"path\": \"../instance\", \"type\": \"path\" } },\n    \"sops-nix\": { \"locked\": { \"owner\": \"Mic92\", \"repo\": \"sops-nix\", \"rev\": \"0123456789abcdef0123456789abcdef01234567\", \"type\": \"github\" }, \"original\": { \"owner\": \"Mic92\", \"repo\": \"sops-nix\", \"type\": \"github\" } },\n    \"root\": { \"inputs\": { \"nixpkgs\": \"nixpkgs\", \"instance\": \"instance\", \"sops-nix\": \"sops-nix\" } }",
    );
    fs_err::write(run.path("site/flake.lock"), locked).unwrap();
    let verify = run.verify();
    assert_eq!(verify.status.code(), Some(0), "{}", stdout(&verify));
}

/// Nix refuses to fetch the relative `path:../instance` input, but locks it
/// from the instance directory given as an override: the lock then pins it
/// by content under its relative URL, and `verify` has nothing stale.
#[test]
#[cfg_attr(
    any(missing_sops, missing_nix_instantiate, missing_age_keygen),
    ignore = "needs `sops`, `nix-instantiate` and `age-keygen`; one was not found when the tests were built: `bash tests/run --install-only` installs them; under CI=true the test fails instead"
)]
fn a_relative_instance_input_is_locked_by_content_and_verify_passes() {
    let Some(run) = Run::new(&PROXY) else { return };
    let flake = run.path("site/flake.nix");
    let text = fs_err::read_to_string(&flake).unwrap();
    fs_err::write(
        &flake,
        text.replace(
            "inputs.nixpkgs.url = \"github:NixOS/nixpkgs/nixos-25.11\";",
            "inputs.nixpkgs.url = \"github:NixOS/nixpkgs/nixos-25.11\";\n  inputs.sops-nix.url = \"github:Mic92/sops-nix\";",
        )
        .replace("{ self, nixpkgs }", "{ self, nixpkgs, sops-nix }")
        .replace(
            "[ ./configuration.nix ]",
            "[ ./configuration.nix sops-nix.nixosModules.sops ]",
        ),
    )
    .unwrap();
    let with_sops_nix = NIXPKGS_ONLY_LOCK.replace(
        "\"root\": { \"inputs\": { \"nixpkgs\": \"nixpkgs\" } }",
        "\"sops-nix\": { \"locked\": { \"lastModified\": 1764000000, \"narHash\": \"sha256-AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=\", \"owner\": \"Mic92\", \"repo\": \"sops-nix\", \"rev\": \"0123456789abcdef0123456789abcdef01234567\", \"type\": \"github\" }, \"original\": { \"owner\": \"Mic92\", \"repo\": \"sops-nix\", \"type\": \"github\" } },\n    \"root\": { \"inputs\": { \"nixpkgs\": \"nixpkgs\", \"sops-nix\": \"sops-nix\" } }",
    );
    fs_err::write(run.path("site/flake.lock"), with_sops_nix).unwrap();
    let report = success(&run.apply(), "apply");
    assert!(
        report
            .contains("Lock: flake.lock pins `instance` by content (narHash) as read from `path:/"),
        "{report}"
    );
    assert!(!report.contains("flake.lock is stale"), "{report}");
    let lock: serde_json::Value =
        serde_json::from_str(&fs_err::read_to_string(run.path("site/flake.lock")).unwrap())
            .unwrap();
    let instance = &lock["nodes"]["instance"];
    assert_eq!(instance["original"]["path"], "../instance", "{lock}");
    assert!(
        instance["locked"]["narHash"]
            .as_str()
            .is_some_and(|hash| hash.starts_with("sha256-")),
        "{lock}"
    );
    assert_eq!(lock["nodes"]["root"]["inputs"]["instance"], "instance");
    let verify = run.verify();
    assert_eq!(verify.status.code(), Some(0), "{}", stdout(&verify));
}

/// A file called as a plain function (`import ./x.nix { }`) has no
/// `config`: it receives the facts as an argument its caller passes.
#[test]
#[cfg_attr(
    any(missing_sops, missing_nix_instantiate, missing_age_keygen),
    ignore = "needs `sops`, `nix-instantiate` and `age-keygen`; one was not found when the tests were built: `bash tests/run --install-only` installs them; under CI=true the test fails instead"
)]
fn a_plain_function_file_receives_the_facts_from_its_caller() {
    let Some(run) = Run::new(&PROXY) else { return };
    let status = "{ }:\n{\n  enable = true;\n  virtualHosts.\"status.lab.example.org\".root = \"/srv/status\";\n}\n";
    let call =
        "networking.hostName = \"edge\";\n  services.caddy = import ./services/status.nix { };";
    for dir in ["monolith", NAME] {
        fs_err::write(run.path(dir).join("services/status.nix"), status).unwrap();
        let entry = run.path(dir).join("configuration.nix");
        let text = fs_err::read_to_string(&entry).unwrap();
        fs_err::write(
            &entry,
            text.replace("networking.hostName = \"edge\";", call),
        )
        .unwrap();
    }
    run.round_trip();
    let status = fs_err::read_to_string(run.path("site/services/status.nix")).unwrap();
    assert!(status.starts_with("{ instanceFacts }:"), "{status}");
    assert!(
        status.contains("virtualHosts.\"status.${instanceFacts.domain}\""),
        "{status}"
    );
    let entry = fs_err::read_to_string(run.path("site/configuration.nix")).unwrap();
    assert!(
        entry.contains("import ./services/status.nix { instanceFacts = config.site.instance; }"),
        "{entry}"
    );
}

/// A module written as a bare attribute set becomes a function of
/// `config`; one that some file also imports as a value is refused, since a
/// function would break that use.
#[test]
#[cfg_attr(
    any(missing_sops, missing_nix_instantiate, missing_age_keygen),
    ignore = "needs `sops`, `nix-instantiate` and `age-keygen`; one was not found when the tests were built: `bash tests/run --install-only` installs them; under CI=true the test fails instead"
)]
fn a_bare_attribute_set_module_gains_config_unless_imported_as_a_value() {
    let Some(run) = Run::new(&PROXY) else { return };
    let extra =
        "{\n  services.nginx.virtualHosts.\"extra.lab.example.org\".root = \"/srv/extra\";\n}\n";
    for dir in ["monolith", NAME] {
        fs_err::write(run.path(dir).join("services/extra.nix"), extra).unwrap();
        let entry = run.path(dir).join("configuration.nix");
        let text = fs_err::read_to_string(&entry).unwrap();
        fs_err::write(
            &entry,
            text.replace(
                "imports = [ ./services/nginx.nix",
                "imports = [ ./services/extra.nix ./services/nginx.nix",
            ),
        )
        .unwrap();
    }
    run.round_trip();
    let extra = fs_err::read_to_string(run.path("site/services/extra.nix")).unwrap();
    assert!(extra.starts_with("{ config, ... }:\n{"), "{extra}");

    let Some(run) = Run::new(&PROXY) else { return };
    fs_err::write(
        run.path("site/services/extra.nix"),
        "{\n  services.nginx.virtualHosts.\"extra.lab.example.org\".root = \"/srv/extra\";\n}\n",
    )
    .unwrap();
    let entry = run.path("site/configuration.nix");
    let text = fs_err::read_to_string(&entry).unwrap();
    fs_err::write(
        &entry,
        text.replace(
            "networking.hostName = \"edge\";",
            "networking.hostName = \"edge\";\n  environment.etc.sites.text = builtins.toJSON (import ./services/extra.nix).services;",
        )
        .replace("imports = [ ./services/nginx.nix", "imports = [ ./services/extra.nix ./services/nginx.nix"),
    )
    .unwrap();
    let before = snapshot(&run.path(NAME));
    let output = run.apply();
    assert_refused_with(
        &output,
        "services/extra.nix` line 2: the file is a module written as a bare attribute set, and",
    );
    assert!(
        stderr(&output).contains("configuration.nix` line 7 also imports it as a value"),
        "{}",
        stderr(&output)
    );
    assert_eq!(snapshot(&run.path(NAME)), before);
}

/// A home-manager module's `config` is the user's: it reads the facts
/// from `osConfig`, which home-manager passes when used as a NixOS module.
#[test]
#[cfg_attr(
    any(missing_sops, missing_nix_instantiate, missing_age_keygen),
    ignore = "needs `sops`, `nix-instantiate` and `age-keygen`; one was not found when the tests were built: `bash tests/run --install-only` installs them; under CI=true the test fails instead"
)]
fn a_home_manager_module_reads_the_facts_from_os_config() {
    let Some(run) = Run::new(&PROXY) else { return };
    let home =
        "{pkgs, ...}: {\n  programs.ssh.matchBlocks.lab.hostname = \"git.lab.example.org\";\n}\n";
    fs_err::create_dir_all(run.path("site/home")).unwrap();
    fs_err::write(run.path("site/home/ops.nix"), home).unwrap();
    let entry = run.path("site/configuration.nix");
    let text = fs_err::read_to_string(&entry).unwrap();
    fs_err::write(
        &entry,
        text.replace(
            "networking.hostName = \"edge\";",
            "networking.hostName = \"edge\";\n  home-manager.users.ops = import ./home/ops.nix;",
        ),
    )
    .unwrap();
    success(&run.apply(), "apply");
    run.assert_every_nix_file_parses(NAME);
    run.assert_no_domain_in_base();
    let rewritten = fs_err::read_to_string(run.path("site/home/ops.nix")).unwrap();
    assert!(
        rewritten.starts_with("{ osConfig, pkgs, ...}:"),
        "{rewritten}"
    );
    assert!(
        rewritten.contains("\"git.${osConfig.site.instance.domain}\""),
        "{rewritten}"
    );
    // Called as home-manager calls it: the same value as the monolith's.
    let call = |expression: String| run.eval_json(&expression, "the home-manager module");
    let root = run.dir.path().display();
    assert_eq!(
        call(format!("import {root}/site/home/ops.nix {{ pkgs = {{ }}; osConfig.site.instance = import {root}/instance/instance.nix; }}")),
        call(format!("(import {root}/site/home/ops.nix) {{ pkgs = {{ }}; osConfig.site.instance.domain = \"lab.example.org\"; }}")),
    );
    assert!(
        call(format!("import {root}/site/home/ops.nix {{ pkgs = {{ }}; osConfig.site.instance = import {root}/instance/instance.nix; }}"))
            .contains("git.lab.example.org")
    );
}

#[test]
#[cfg_attr(
    any(missing_sops, missing_nix_instantiate, missing_age_keygen),
    ignore = "needs `sops`, `nix-instantiate` and `age-keygen`; one was not found when the tests were built: `bash tests/run --install-only` installs them; under CI=true the test fails instead"
)]
fn the_operator_names_a_fact_or_leaves_one_with_a_reason() {
    let Some(run) = Run::new(&MAIL) else { return };
    let key = |value: &str| {
        use sha2::Digest as _;
        format!(
            "sha256:{}",
            hex::encode(sha2::Sha256::digest(value.as_bytes()))
        )
    };
    let plan = success(&run.ours(&run.split_args("plan", MAIL.domain)), "plan");
    assert!(
        plan.contains(&format!("203.0.113.25 [key `{}`]", key("203.0.113.25"))),
        "{plan}"
    );
    fs_err::write(
        run.path("site/instance-extract.toml"),
        format!(
            "[[fact]]\nkey = \"{}\"\nname = \"mx\"\n\n[[accept]]\nkey = \"{}\"\nreason = \"the old relay is decommissioned and public knowledge\"\n",
            key("203.0.113.25"),
            key("198.51.100.4")
        ),
    )
    .unwrap();
    let report = success(&run.apply(), "apply");
    assert!(report.contains("site.instance.addresses.mx"), "{report}");
    assert!(
        report.contains("198.51.100.4 — accepted in `instance-extract.toml`: the old relay"),
        "{report}"
    );
    let facts = fs_err::read_to_string(run.path("instance/instance.nix")).unwrap();
    assert!(facts.contains("mx = \"203.0.113.25\";"), "{facts}");
    let entry = fs_err::read_to_string(run.path("site/configuration.nix")).unwrap();
    assert!(
        entry.contains("address = config.site.instance.addresses.mx;"),
        "{entry}"
    );
    run.assert_every_nix_file_parses(NAME);
    run.assert_evaluates_equal();
    assert!(run.verify().status.success(), "{}", stdout(&run.verify()));
}

/// A colmena `deployment.targetHost` and a `specialArgs` value in
/// `flake.nix` read the domain from the `instance` input's `instance.nix`
/// (the flake cannot read a NixOS option); an input URL cannot be computed
/// and is refused.
#[test]
#[cfg_attr(
    any(missing_sops, missing_nix_instantiate, missing_age_keygen),
    ignore = "needs `sops`, `nix-instantiate` and `age-keygen`; one was not found when the tests were built: `bash tests/run --install-only` installs them; under CI=true the test fails instead"
)]
fn the_domain_in_flake_outputs_reads_the_instance_input() {
    let Some(run) = Run::new(&FLEET) else { return };
    for dir in ["monolith", NAME] {
        let flake = run.path(dir).join("flake.nix");
        let text = fs_err::read_to_string(&flake).unwrap();
        fs_err::write(
            &flake,
            text.replace(
                "    nixosConfigurations = {",
                "    colmena.web1.deployment.targetHost = \"web1.example.com\";\n    colmena.web1.deployment.targetUser = \"root\";\n    nixosConfigurations = {",
            )
            .replace(
                "specialArgs = { inherit inputs; };",
                "specialArgs = { inherit inputs; publicName = \"status.example.com\"; };",
            ),
        )
        .unwrap();
    }
    run.round_trip();
    let flake = fs_err::read_to_string(run.path("site/flake.nix")).unwrap();
    assert!(
        flake.contains("colmena.web1.deployment.targetHost = \"web1.${(import \"${instance}/instance.nix\").domain}\";"),
        "{flake}"
    );
    // The flake's outputs, evaluated with stand-in inputs: the same values.
    let root = run.dir.path().display();
    let outputs = |dir: &str| {
        let expression = format!(
            "let o = (import {root}/{dir}/flake.nix).outputs {{ self = {{ }}; nixpkgs = {{ lib.nixosSystem = args: args; }}; instance = {{ outPath = \"{root}/instance\"; }}; sops-nix.nixosModules.sops = {{ }}; }}; in {{ host = o.colmena.web1.deployment.targetHost; name = o.nixosConfigurations.web1.specialArgs.publicName; }}"
        );
        run.eval_json(&expression, &format!("{dir}/flake.nix"))
    };
    let monolith = outputs("monolith");
    assert_eq!(
        monolith.trim(),
        r#"{"host":"web1.example.com","name":"status.example.com"}"#
    );
    assert_eq!(outputs(NAME), monolith);
}

/// Flake inputs are read without evaluation: a URL naming the instance
/// cannot become an expression, and `apply` says so.
#[test]
#[cfg_attr(
    any(missing_sops, missing_nix_instantiate, missing_age_keygen),
    ignore = "needs `sops`, `nix-instantiate` and `age-keygen`; one was not found when the tests were built: `bash tests/run --install-only` installs them; under CI=true the test fails instead"
)]
fn the_domain_in_a_flake_input_url_is_refused_with_what_to_do() {
    let Some(run) = Run::new(&FLEET) else { return };
    let flake = run.path("site/flake.nix");
    let text = fs_err::read_to_string(&flake).unwrap();
    fs_err::write(
        &flake,
        text.replace(
            "nixpkgs.url = \"github:NixOS/nixpkgs/nixos-25.11\";",
            "nixpkgs.url = \"github:NixOS/nixpkgs/nixos-25.11\";\n    tools.url = \"git+https://git.example.com/ops/tools\";",
        ),
    )
    .unwrap();
    let output = run.apply();
    assert_refused_with(
        &output,
        "flake.nix` line 6: the instance is named in `flake.nix` in `inputs`, which Nix reads without evaluating anything, so no instance value can stand there; point the input at a URL that does not name the instance",
    );
    assert!(!run.path("instance").exists());
}

fn assert_refused_with(output: &Output, needle: &str) {
    assert_eq!(output.status.code(), Some(2), "{}", stderr(output));
    assert!(stderr(output).contains(needle), "{}", stderr(output));
}

#[test]
#[cfg_attr(
    any(missing_sops, missing_nix_instantiate, missing_age_keygen),
    ignore = "needs `sops`, `nix-instantiate` and `age-keygen`; one was not found when the tests were built: `bash tests/run --install-only` installs them; under CI=true the test fails instead"
)]
fn a_secret_directory_that_paths_are_built_from_is_reported_and_fails_verify() {
    let Some(run) = Run::new(&ACME) else { return };
    let ddns = run.path("site/ddns.nix");
    let text = fs_err::read_to_string(&ddns).unwrap();
    let secrets = run.path("host-secrets").display().to_string();
    fs_err::write(
        &ddns,
        text.replace(
            "{ config, ... }:\n\n{",
            &format!("{{ config, ... }}:\nlet\n  secretDir = \"{secrets}\";\nin\n{{"),
        )
        .replace(
            &format!("\"token:{secrets}/ddns-token\""),
            "\"token:${secretDir}/ddns-token\"",
        ),
    )
    .unwrap();
    let report = success(&run.apply(), "apply");
    assert!(
        report.contains("a directory of secrets: paths built from it"),
        "{report}"
    );
    let verify = run.verify();
    assert_eq!(verify.status.code(), Some(1), "{}", stdout(&verify));
}

/// The vpn-hub base committed as a monolith, then split and committed
/// again: its history still holds the instance.
fn split_after_a_history() -> Option<Run> {
    let run = Run::new(&TOKENS)?;
    let base = run.path(NAME);
    git(&base, &["init", "-q"]);
    git(&base, &["add", "-A"]);
    git(&base, &["commit", "-q", "-m", "vpn hub"]);
    success(&run.apply(), "apply");
    git(&base, &["add", "-A"]);
    git(&base, &["commit", "-q", "-m", "generic now"]);
    Some(run)
}

#[test]
#[cfg_attr(
    any(missing_sops, missing_nix_instantiate, missing_age_keygen),
    ignore = "needs `sops`, `nix-instantiate` and `age-keygen`; one was not found when the tests were built: `bash tests/run --install-only` installs them; under CI=true the test fails instead"
)]
fn verify_fails_while_the_base_history_still_names_the_instance() {
    let Some(run) = split_after_a_history() else {
        return;
    };
    let verify = run.verify();
    assert_eq!(verify.status.code(), Some(1), "{}", stdout(&verify));
    let report = stdout(&verify);
    assert!(
        report.contains(
            "FAIL base: history holds no fact or secret: reachable in the repository: blob "
        ),
        "{report}"
    );
    assert!(report.contains("(a secret of the instance)"), "{report}");
    assert!(
        !report.contains("Zk4mR8vQ") && !report.contains("$6$"),
        "{report}"
    );
}

#[test]
#[cfg_attr(
    any(missing_sops, missing_nix_instantiate, missing_age_keygen),
    ignore = "needs `sops`, `nix-instantiate` and `age-keygen`; one was not found when the tests were built: `bash tests/run --install-only` installs them; under CI=true the test fails instead"
)]
fn the_history_check_reads_secrets_in_nested_directories_too() {
    let Some(run) = split_after_a_history() else {
        return;
    };
    // An operator who files the host's secrets one level down.
    let secrets = run.path("instance/secrets");
    let nested = secrets.join("hosts");
    fs_err::create_dir_all(&nested).unwrap();
    let mut moved = 0;
    for entry in fs_err::read_dir(&secrets).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "yaml") {
            fs_err::rename(&path, nested.join(path.file_name().unwrap())).unwrap();
            moved += 1;
        }
    }
    assert!(moved > 0, "no sops file in `{}`", secrets.display());
    let verify = run.verify();
    assert_eq!(verify.status.code(), Some(1), "{}", stdout(&verify));
    let report = stdout(&verify);
    assert!(
        report.contains("FAIL base: history holds no fact or secret")
            && report.contains("(a secret of the instance)"),
        "{report}"
    );
    assert!(!report.contains("Zk4mR8vQ"), "{report}");
}
