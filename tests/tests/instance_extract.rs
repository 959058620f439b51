//! `instance-extract plan|apply|verify` on a fixture that looks like a real
//! service host (a reverse proxy with routers per subdomain, a CI service
//! with OAuth settings, webhooks with an HMAC secret, a TLS certificate read
//! from the host, comments and odd formatting), against real Nix 2.8 and the
//! real sops binary.
//!
//! The proof that nothing changed: the monolith and the composed base +
//! instance are evaluated with `nix-instantiate --eval --strict --json`
//! through a small stand-in of the module system
//! (`tests/fixtures/instance-extract/eval.nix`) and must be equal.

#![allow(clippy::unwrap_used, clippy::panic, clippy::missing_panics_doc)]

use std::collections::BTreeMap;
use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::process::Output;

use fromgit_e2e::{age_keygen, copy_fixture, fromgit_bin, peer, run, success, AgeKey};

const DOMAIN: &str = "ci.example.net";
const SECRETS: [(&str, &str); 5] = [
    ("tls/fullchain", "fullchain.pem"),
    ("tls/key", "privkey.pem"),
    ("drone/oauth", "drone-oauth-secret"),
    ("drone/rpc", "drone-rpc-secret"),
    ("webhook/hmac", "webhook-hmac"),
];

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/instance-extract")
}

/// The example monolith that ships with fromgit (`examples/monolith`).
fn monolith() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/monolith")
}

struct Host {
    dir: tempfile::TempDir,
    key: AgeKey,
    sops: PathBuf,
    nix_instantiate: PathBuf,
}

/// Every file of a directory with its bytes: the "untouched" check.
type Snapshot = BTreeMap<PathBuf, Vec<u8>>;

fn snapshot(dir: &Path) -> Snapshot {
    let mut out = BTreeMap::new();
    if !dir.exists() {
        return out;
    }
    let mut stack = vec![dir.to_path_buf()];
    while let Some(current) = stack.pop() {
        for entry in fs_err::read_dir(&current).unwrap() {
            let path = entry.unwrap().path();
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

impl Host {
    fn new() -> Option<Host> {
        let sops = peer("sops")?;
        let nix_instantiate = peer("nix-instantiate")?;
        let dir = tempfile::tempdir().unwrap();
        let key = age_keygen(dir.path(), "bootstrap")?;
        let secrets = dir.path().join("host-secrets");
        fs_err::create_dir_all(&secrets).unwrap();
        for (_, file) in SECRETS {
            fs_err::write(
                secrets.join(file),
                format!("-----BEGIN {file}-----\nvalue of {file}\n-----END-----\n"),
            )
            .unwrap();
        }
        copy_fixture(&monolith(), &dir.path().join("monolith"), &secrets);
        copy_fixture(&monolith(), &dir.path().join("cc-ci"), &secrets);
        Some(Host {
            dir,
            key,
            sops,
            nix_instantiate,
        })
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn secret_args(&self) -> Vec<String> {
        SECRETS
            .iter()
            .flat_map(|(name, file)| {
                [
                    "--secret".to_owned(),
                    format!("{name}={}", self.path("host-secrets").join(file).display()),
                ]
            })
            .collect()
    }

    fn ours(&self, args: &[String]) -> Output {
        run(
            &fromgit_bin("instance-extract"),
            args,
            self.dir.path(),
            &[],
            b"",
        )
    }

    fn apply(&self, extra: &[&str]) -> Output {
        let mut args: Vec<String> = [
            "apply",
            "--base",
            "cc-ci",
            "--instance",
            "instance",
            "--domain",
            DOMAIN,
        ]
        .map(str::to_owned)
        .to_vec();
        args.extend(self.secret_args());
        args.extend(["--recipient".to_owned(), self.key.recipient.clone()]);
        args.extend(extra.iter().map(|s| (*s).to_owned()));
        self.ours(&args)
    }

    /// The configuration as JSON, through the module-system stand-in.
    fn evaluate(&self, modules: &str, drop: &str) -> String {
        let eval = fixtures().join("eval.nix");
        let output = run(
            &self.nix_instantiate,
            [
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
            ],
            self.dir.path(),
            &[(
                "NIX_CONFIG",
                OsStr::new("substituters =\nexperimental-features = nix-command flakes"),
            )],
            b"",
        );
        success(&output, "nix-instantiate --eval")
    }
}

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

#[test]
#[cfg_attr(
    any(missing_sops, missing_nix_instantiate, missing_age_keygen),
    ignore = "needs `sops`, `nix-instantiate` and `age-keygen`; one was not found when the tests were built: `bash tests/run --install-only` installs them; under CI=true the test fails instead"
)]
fn plan_lists_every_instance_specific_with_its_position() {
    let Some(host) = Host::new() else { return };
    let mut args: Vec<String> = ["plan", "--json", "--base", "cc-ci", "--domain", DOMAIN]
        .map(str::to_owned)
        .to_vec();
    args.extend(host.secret_args());
    let output = host.ours(&args);
    let report = success(&output, "plan");
    let count = |kind: &str| report.matches(&format!("\"kind\": \"{kind}\"")).count();
    assert_eq!(count("domain"), 9, "{report}");
    assert_eq!(count("email"), 3, "{report}");
    assert_eq!(count("comment"), 1, "{report}");
    assert_eq!(count("secret-path"), 5, "{report}");
    assert!(
        report.contains("\"file\": \"services/drone.nix\",\n      \"line\": 22,"),
        "{report}"
    );
    let missing = host.ours(&[
        "plan".into(),
        "--base".into(),
        "cc-ci".into(),
        "--domain".into(),
        "example.org".into(),
    ]);
    assert_eq!(missing.status.code(), Some(1));
    assert!(
        stderr(&missing).contains("occurs nowhere"),
        "{}",
        stderr(&missing)
    );
}

#[test]
#[cfg_attr(
    any(missing_sops, missing_nix_instantiate, missing_age_keygen),
    ignore = "needs `sops`, `nix-instantiate` and `age-keygen`; one was not found when the tests were built: `bash tests/run --install-only` installs them; under CI=true the test fails instead"
)]
fn apply_then_verify_keeps_the_configuration_identical() {
    let Some(host) = Host::new() else { return };
    // A dry run prints diffs and writes nothing.
    let before = snapshot(&host.path("cc-ci"));
    let dry = host.apply(&["--dry-run"]);
    let diff = success(&dry, "apply --dry-run");
    assert!(
        diff.contains("+  networking.domain   = config.cc-ci.instance.domain;"),
        "{diff}"
    );
    assert!(
        diff.contains("--- /dev/null\n+++ b/instance/secrets/secrets.yaml"),
        "{diff}"
    );
    assert_eq!(snapshot(&host.path("cc-ci")), before);
    assert!(!host.path("instance").exists());

    let applied = host.apply(&[]);
    let report = success(&applied, "apply");
    assert!(
        report.contains("Options introduced: cc-ci.instance.domain"),
        "{report}"
    );
    assert!(report.contains("- webhook/hmac from"), "{report}");
    for (_, file) in SECRETS {
        assert!(
            !report.contains(&format!("value of {file}")),
            "a secret value in the report"
        );
    }

    // Every Nix file written parses with real Nix.
    for dir in ["cc-ci", "instance"] {
        for (path, _) in snapshot(&host.path(dir)) {
            if path.extension().is_some_and(|e| e == "nix") {
                let file = host.path(dir).join(&path);
                success(
                    &run(
                        &host.nix_instantiate,
                        [OsStr::new("--parse"), file.as_os_str()],
                        host.dir.path(),
                        &[],
                        b"",
                    ),
                    &format!("nix-instantiate --parse {}", file.display()),
                );
            }
        }
    }
    // No domain string anywhere in the base.
    for (path, bytes) in snapshot(&host.path("cc-ci")) {
        assert!(
            !String::from_utf8_lossy(&bytes).contains(DOMAIN),
            "`{}` still names the domain",
            path.display()
        );
    }
    // The composed configuration evaluates to exactly the monolith's.
    let monolith = host.evaluate(
        &format!(
            "[ {}/monolith/configuration.nix ]",
            host.dir.path().display()
        ),
        "[ ]",
    );
    let composed = host.evaluate(
        &format!(
            "[ {0}/cc-ci/configuration.nix ((import {0}/instance/flake.nix).outputs {{ self = null; }}).nixosModules.instance ]",
            host.dir.path().display()
        ),
        "[ \"cc-ci\" \"sops\" ]",
    );
    assert!(
        monolith.contains(DOMAIN),
        "the monolith names the domain: {monolith}"
    );
    assert_eq!(
        monolith, composed,
        "the composed configuration differs from the monolith"
    );

    // The real sops decrypts every secret to the original file contents.
    for (name, file) in SECRETS {
        let extract = name
            .split('/')
            .fold(String::new(), |path, part| path + "[\"" + part + "\"]");
        let output = run(
            &host.sops,
            ["-d", "--extract", &extract, "instance/secrets/secrets.yaml"],
            host.dir.path(),
            &[("SOPS_AGE_KEY_FILE", host.key.file.as_os_str())],
            b"",
        );
        assert_eq!(
            success(&output, "sops -d --extract"),
            fs_err::read_to_string(host.path("host-secrets").join(file)).unwrap()
        );
    }

    // verify: the bootstrap key is the single secret outside git.
    let key = host.key.file.display().to_string();
    let verify = host.ours(&[
        "verify".into(),
        "--instance".into(),
        "instance".into(),
        "--identity".into(),
        key.clone(),
        "--base".into(),
        "cc-ci".into(),
    ]);
    assert!(success(&verify, "verify").contains("the only secret outside git"));

    // A second apply changes nothing.
    let base = snapshot(&host.path("cc-ci"));
    let instance = snapshot(&host.path("instance"));
    let again = host.apply(&[]);
    assert!(success(&again, "second apply").starts_with("nothing to do"));
    assert_eq!(snapshot(&host.path("cc-ci")), base);
    assert_eq!(snapshot(&host.path("instance")), instance);

    // verify fails when a plaintext file sits in secrets/ or the base reads a host secret again.
    fs_err::write(host.path("instance/secrets/extra.yaml"), "token: plain\n").unwrap();
    fs_err::write(
        host.path("cc-ci/leak.nix"),
        "{ x = \"/var/lib/app/api-token\"; }\n",
    )
    .unwrap();
    let failing = host.ours(&[
        "verify".into(),
        "--json".into(),
        "--instance".into(),
        "instance".into(),
        "--identity".into(),
        key,
        "--base".into(),
        "cc-ci".into(),
    ]);
    assert_eq!(failing.status.code(), Some(1), "{}", stdout(&failing));
    let report = stdout(&failing);
    assert!(report.contains("not an encrypted sops file"), "{report}");
    assert!(report.contains("/var/lib/app/api-token"), "{report}");
}

/// Runs `apply` on a broken setup and checks the refusal and that neither
/// directory changed.
fn assert_refused_untouched(
    host: &Host,
    output: &Output,
    code: i32,
    needle: &str,
    before: &(Snapshot, Snapshot),
) {
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
    assert_eq!(snapshot(&host.path("cc-ci")), before.0, "the base changed");
    assert_eq!(
        snapshot(&host.path("instance")),
        before.1,
        "the instance dir changed"
    );
}

#[test]
#[cfg_attr(
    any(missing_sops, missing_nix_instantiate, missing_age_keygen),
    ignore = "needs `sops`, `nix-instantiate` and `age-keygen`; one was not found when the tests were built: `bash tests/run --install-only` installs them; under CI=true the test fails instead"
)]
fn bad_input_is_refused_and_changes_nothing() {
    let Some(host) = Host::new() else { return };
    let state = |host: &Host| {
        (
            snapshot(&host.path("cc-ci")),
            snapshot(&host.path("instance")),
        )
    };

    // A Nix syntax error: file and position.
    let drone = host.path("cc-ci/services/drone.nix");
    let original = fs_err::read_to_string(&drone).unwrap();
    fs_err::write(&drone, original.replace("proto = \"https\";", "proto = ;")).unwrap();
    let before = state(&host);
    assert_refused_untouched(
        &host,
        &host.apply(&[]),
        2,
        "services/drone.nix` line 7",
        &before,
    );
    fs_err::write(&drone, &original).unwrap();

    // A secret path that does not exist.
    let before = state(&host);
    let mut args: Vec<String> = [
        "apply",
        "--base",
        "cc-ci",
        "--instance",
        "instance",
        "--domain",
        DOMAIN,
        "--recipient",
        &host.key.recipient,
    ]
    .map(str::to_owned)
    .to_vec();
    args.extend(host.secret_args());
    args.extend([
        "--secret".to_owned(),
        "ghost=/nonexistent/ghost-secret".to_owned(),
    ]);
    assert_refused_untouched(
        &host,
        &host.ours(&args),
        2,
        "--secret ghost=/nonexistent/ghost-secret",
        &before,
    );

    // A recipient that is no key.
    let output = host.apply(&["--recipient", "age1notakey"]);
    assert_refused_untouched(&host, &output, 2, "age1notakey", &before);

    // An instance directory that holds unrelated files.
    fs_err::create_dir_all(host.path("instance")).unwrap();
    fs_err::write(host.path("instance/notes.txt"), "mine\n").unwrap();
    let before = state(&host);
    assert_refused_untouched(&host, &host.apply(&[]), 2, "already holds files", &before);
    fs_err::remove_dir_all(host.path("instance")).unwrap();

    // A domain that occurs nowhere.
    let before = state(&host);
    let mut args: Vec<String> = [
        "apply",
        "--base",
        "cc-ci",
        "--instance",
        "instance",
        "--domain",
        "example.org",
        "--recipient",
        &host.key.recipient,
    ]
    .map(str::to_owned)
    .to_vec();
    args.extend(host.secret_args());
    assert_refused_untouched(&host, &host.ours(&args), 1, "occurs nowhere", &before);

    // A base that is not a flake.
    fs_err::remove_file(host.path("cc-ci/flake.nix")).unwrap();
    let before = state(&host);
    assert_refused_untouched(&host, &host.apply(&[]), 2, "is not a flake", &before);
}
