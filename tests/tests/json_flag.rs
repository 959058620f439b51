//! `--json` on every subcommand of every binary: each one either prints a
//! JSON document on stdout or refuses the flag with exit 2 and an error
//! naming `--json`, never silently prints something else. Each command is
//! given inputs that reach its output (a refusal comes before any input is
//! read), and the list of commands is read from each binary's `--help`, so
//! that a new subcommand without a case here fails.
//!
//! clap's own `help` subcommand prints help text and is left out.
//!
//! Over 600 lines on purpose: one case per subcommand of all five binaries,
//! each with the inputs that reach its output, in one table-driven binary.

#![allow(clippy::unwrap_used, clippy::panic, clippy::missing_panics_doc)]

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use fromgit_e2e::{copy_fixture, fromgit_bin, incus_test_env, peer, run, success};
use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair};
use time::{Duration, OffsetDateTime};

/// What a command must do with `--json`.
#[derive(Clone, Copy, Debug)]
enum Expect {
    /// Print one JSON document on stdout and exit with this code.
    Json(i32),
    /// Exit 2 with nothing on stdout and an error naming `--json`.
    Refused,
}

/// Runs `bin args…` (with `--json` among `args`) in `dir` and checks it
/// against `expect`; returns the JSON document when there is one.
fn check(
    bin: &str,
    args: &[&str],
    dir: &Path,
    stdin: &[u8],
    expect: Expect,
) -> Option<serde_json::Value> {
    assert!(args.contains(&"--json"), "{args:?}");
    let out = run(&fromgit_bin(bin), args, dir, &[], stdin);
    let what = format!("`{bin} {}`", args.join(" "));
    let stderr = String::from_utf8_lossy(&out.stderr);
    match expect {
        Expect::Json(code) => {
            assert_eq!(
                out.status.code(),
                Some(code),
                "{what}: exit code\nstdout:\n{}\nstderr:\n{stderr}",
                String::from_utf8_lossy(&out.stdout)
            );
            let doc =
                serde_json::from_slice::<serde_json::Value>(&out.stdout).unwrap_or_else(|err| {
                    panic!(
                        "{what}: stdout is not one JSON document ({err}):\n{}\nstderr:\n{stderr}",
                        String::from_utf8_lossy(&out.stdout)
                    )
                });
            Some(doc)
        }
        Expect::Refused => {
            assert_eq!(
                out.status.code(),
                Some(2),
                "{what}: exit code\nstderr:\n{stderr}"
            );
            assert!(out.stdout.is_empty(), "{what}: printed on stdout");
            assert!(
                stderr.starts_with("error: ") && stderr.contains("`--json` does not apply"),
                "{what}: the error does not name `--json`:\n{stderr}"
            );
            None
        }
    }
}

/// The subcommands `bin [prefix…] --help` lists, without clap's `help`.
fn subcommands(bin: &str, prefix: &[&str]) -> BTreeSet<String> {
    let mut args = prefix.to_vec();
    args.push("--help");
    let out = run(&fromgit_bin(bin), &args, Path::new("."), &[], b"");
    let help = success(&out, &format!("{bin} --help"));
    help.lines()
        .skip_while(|line| *line != "Commands:")
        .skip(1)
        .take_while(|line| !line.is_empty())
        .filter(|line| line.starts_with("  ") && !line.starts_with("   "))
        .filter_map(|line| line.split_whitespace().next())
        .filter(|name| *name != "help")
        .map(str::to_owned)
        .collect()
}

fn assert_covered(bin: &str, prefix: &[&str], ran: &[&str]) {
    let ran: BTreeSet<String> = ran.iter().map(|s| (*s).to_owned()).collect();
    assert_eq!(
        subcommands(bin, prefix),
        ran,
        "`{bin} {}` subcommands and the cases of this test differ",
        prefix.join(" ")
    );
}

fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let path = dir.join(name);
    if let Some(parent) = path.parent() {
        fs_err::create_dir_all(parent).unwrap();
    }
    fs_err::write(&path, text).unwrap();
    path
}

const HOST_KEY: &str =
    "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOXRjdipeovPxDbNdtyr3PdXevZmnykHyc3XBeTkm1l9 root@host\n";

/// A bootstrap key made by `instance-extract secrets keygen --json`.
fn keygen(dir: &Path) -> String {
    let doc = check(
        "instance-extract",
        &["secrets", "keygen", "--json", "-o", "key.txt"],
        dir,
        b"",
        Expect::Json(0),
    )
    .unwrap();
    assert_eq!(doc["identity_file"], "key.txt");
    let recipient = doc["recipient"].as_str().unwrap().to_owned();
    assert!(recipient.starts_with("age1"), "{recipient}");
    recipient
}

/// A sops file `secrets.yaml` for `recipient`, and the `.sops.yaml` that names it.
fn encrypted(dir: &Path, recipient: &str) -> PathBuf {
    write(dir, "plain.yaml", "token: hunter2-but-longer\n");
    write(
        dir,
        ".sops.yaml",
        &format!("creation_rules:\n  - path_regex: .*\\.yaml$\n    age: {recipient}\n"),
    );
    let out = run(
        &fromgit_bin("instance-extract"),
        ["secrets", "encrypt", "plain.yaml", "-o", "secrets.yaml"],
        dir,
        &[],
        b"",
    );
    success(&out, "secrets encrypt");
    dir.join("secrets.yaml")
}

#[test]
fn instance_extract_secrets_honour_or_refuse_json() {
    let dir = tempfile::tempdir().unwrap();
    let dir = dir.path();
    let recipient = keygen(dir);
    encrypted(dir, &recipient);
    let before = fs_err::read(dir.join("secrets.yaml")).unwrap();

    for args in [
        &["secrets", "encrypt", "--json", "plain.yaml"][..],
        &[
            "secrets",
            "decrypt",
            "--json",
            "secrets.yaml",
            "--identity",
            "key.txt",
        ],
        &[
            "secrets",
            "set",
            "--json",
            "secrets.yaml",
            "[\"token\"]",
            "--identity",
            "key.txt",
        ],
    ] {
        check("instance-extract", args, dir, b"new value", Expect::Refused);
    }
    // Refused before anything was done.
    assert_eq!(fs_err::read(dir.join("secrets.yaml")).unwrap(), before);

    let doc = check(
        "instance-extract",
        &[
            "secrets",
            "updatekeys",
            "--json",
            "secrets.yaml",
            "--identity",
            "key.txt",
        ],
        dir,
        b"",
        Expect::Json(0),
    )
    .unwrap();
    assert_eq!(doc["operation"], "updatekeys");
    assert_eq!(doc["changed"], false);
    let doc = check(
        "instance-extract",
        &[
            "secrets",
            "rotate",
            "--json",
            "--dry-run",
            "secrets.yaml",
            "--identity",
            "key.txt",
        ],
        dir,
        b"",
        Expect::Json(0),
    )
    .unwrap();
    assert_eq!(doc["operation"], "rotate");
    assert_eq!(doc["kept"][0], recipient.as_str());

    write(dir, "host.pub", HOST_KEY);
    let doc = check(
        "instance-extract",
        &["secrets", "recipient", "--json", "--ssh", "host.pub"],
        dir,
        b"",
        Expect::Json(0),
    )
    .unwrap();
    let plain = run(
        &fromgit_bin("instance-extract"),
        ["secrets", "recipient", "--ssh", "host.pub"],
        dir,
        &[],
        b"",
    );
    assert_eq!(
        doc["recipient"],
        success(&plain, "secrets recipient").trim()
    );

    assert_covered(
        "instance-extract",
        &["secrets"],
        &[
            "encrypt",
            "decrypt",
            "set",
            "updatekeys",
            "rotate",
            "recipient",
            "keygen",
        ],
    );
}

const DOMAIN: &str = "ci.example.net";
const MONOLITH_SECRETS: [(&str, &str); 5] = [
    ("tls/fullchain", "fullchain.pem"),
    ("tls/key", "privkey.pem"),
    ("drone/oauth", "drone-oauth-secret"),
    ("drone/rpc", "drone-rpc-secret"),
    ("webhook/hmac", "webhook-hmac"),
];

fn as_str(args: &[String]) -> Vec<&str> {
    args.iter().map(String::as_str).collect()
}

#[test]
fn instance_extract_split_honours_json() {
    if peer("nix-instantiate").is_none() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let dir = dir.path();
    let recipient = keygen(dir);
    let secrets = dir.join("host-secrets");
    for (_, file) in MONOLITH_SECRETS {
        write(
            &secrets,
            file,
            &format!("-----BEGIN {file}-----\nvalue of {file}\n-----END-----\n"),
        );
    }
    copy_fixture(
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/monolith"),
        &dir.join("base"),
        &secrets,
    );
    let secret_args: Vec<String> = MONOLITH_SECRETS
        .iter()
        .flat_map(|(name, file)| {
            [
                "--secret".to_owned(),
                format!("{name}={}", secrets.join(file).display()),
            ]
        })
        .collect();
    let with = |head: &[&str]| -> Vec<String> {
        let mut args: Vec<String> = head.iter().map(|s| (*s).to_owned()).collect();
        args.extend(secret_args.iter().cloned());
        args
    };

    let plan = with(&["plan", "--json", "--base", "base", "--domain", DOMAIN]);
    let doc = check(
        "instance-extract",
        &as_str(&plan),
        dir,
        b"",
        Expect::Json(0),
    )
    .unwrap();
    assert_eq!(doc["domain"], DOMAIN);
    assert!(!doc["findings"].as_array().unwrap().is_empty());

    let apply = with(&[
        "apply",
        "--json",
        "--base",
        "base",
        "--instance",
        "instance",
        "--domain",
        DOMAIN,
        "--recipient",
        &recipient,
    ]);
    let mut dry_run = apply.clone();
    dry_run.push("--dry-run".to_owned());
    let doc = check(
        "instance-extract",
        &as_str(&dry_run),
        dir,
        b"",
        Expect::Json(0),
    )
    .unwrap();
    assert_eq!(doc["dry_run"], true);
    assert!(
        !dir.join("instance").exists(),
        "a dry run wrote the instance"
    );
    let files = doc["files"].clone();

    let doc = check(
        "instance-extract",
        &as_str(&apply),
        dir,
        b"",
        Expect::Json(0),
    )
    .unwrap();
    assert_eq!(doc["dry_run"], false);
    assert_eq!(doc["files"], files, "the dry run announced other files");
    let doc = check(
        "instance-extract",
        &as_str(&apply),
        dir,
        b"",
        Expect::Json(0),
    )
    .unwrap();
    assert_eq!(doc["nothing_to_do"], true);

    check(
        "instance-extract",
        &[
            "verify",
            "--json",
            "--instance",
            "instance",
            "--identity",
            "key.txt",
            "--base",
            "base",
        ],
        dir,
        b"",
        Expect::Json(0),
    );

    assert_covered(
        "instance-extract",
        &[],
        &["plan", "apply", "verify", "secrets"],
    );
}

fn ca(name: &str, issuer: Option<&(rcgen::Certificate, KeyPair)>) -> (rcgen::Certificate, KeyPair) {
    let key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
    let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.distinguished_name.push(DnType::CommonName, name);
    params.not_before = OffsetDateTime::now_utc() - Duration::days(30);
    params.not_after = OffsetDateTime::now_utc() + Duration::days(3650);
    let cert = match issuer {
        None => params.self_signed(&key).unwrap(),
        Some((cert, issuer_key)) => params.signed_by(&key, cert, issuer_key).unwrap(),
    };
    (cert, key)
}

/// A wildcard leaf for `DOMAIN` under a throwaway root and intermediate:
/// the chain (leaf and intermediate) and the key.
fn certificate(dir: &Path) -> (PathBuf, PathBuf) {
    let root = ca("fromgit json test root", None);
    let intermediate = ca("fromgit json test intermediate", Some(&root));
    let key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
    let mut leaf = CertificateParams::new(vec![format!("*.{DOMAIN}"), DOMAIN.to_owned()]).unwrap();
    leaf.distinguished_name.push(DnType::CommonName, DOMAIN);
    leaf.not_before = OffsetDateTime::now_utc() - Duration::days(1);
    leaf.not_after = OffsetDateTime::now_utc() + Duration::days(90);
    leaf.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ServerAuth];
    let leaf = leaf
        .signed_by(&key, &intermediate.0, &intermediate.1)
        .unwrap();
    (
        write(
            dir,
            "fullchain.pem",
            &format!("{}{}", leaf.pem(), intermediate.0.pem()),
        ),
        write(dir, "privkey.pem", &key.serialize_pem()),
    )
}

/// `openssl s_server` on 127.0.0.1, killed on drop.
struct Server(std::process::Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn serve(openssl: &Path, dir: &Path, cert: &Path, key: &Path) -> (Server, String) {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let address = format!("127.0.0.1:{port}");
    let mut server = Server(
        std::process::Command::new(openssl)
            .args(["s_server", "-quiet", "-accept", &address])
            .arg("-cert")
            .arg(cert)
            .arg("-key")
            .arg(key)
            .current_dir(dir)
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap(),
    );
    for _ in 0..100 {
        if std::net::TcpStream::connect(&address).is_ok() {
            return (server, address);
        }
        if let Ok(Some(status)) = server.0.try_wait() {
            panic!("openssl s_server exited with {status}");
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    panic!("openssl s_server did not start on {address}");
}

#[test]
fn cert_seal_honours_or_refuses_json() {
    let Some(openssl) = peer("openssl") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let dir = dir.path();
    let recipient = keygen(dir);
    let (cert, key) = certificate(dir);
    let pair = [
        "--cert",
        cert.to_str().unwrap(),
        "--key",
        key.to_str().unwrap(),
        "--domain",
        DOMAIN,
    ];

    let mut args = vec!["check", "--json"];
    args.extend(pair);
    let doc = check("cert-seal", &args, dir, b"", Expect::Json(0)).unwrap();
    assert_eq!(doc["verdict"], "pass");

    let mut args = vec!["seal", "--json", "--out", "tls.yaml", "-r", &recipient];
    args.extend(pair);
    let doc = check("cert-seal", &args, dir, b"", Expect::Json(0)).unwrap();
    assert_eq!(doc["verdict"], "sealed");

    let doc = check(
        "cert-seal",
        &["inspect", "--json", "tls.yaml"],
        dir,
        b"",
        Expect::Json(0),
    )
    .unwrap();
    assert_eq!(doc["ok"], true);

    let (_server, address) = serve(&openssl, dir, &cert, &key);
    let doc = check(
        "cert-seal",
        &[
            "probe", "--json", &address, "--sni", DOMAIN, "--expect", "tls.yaml",
        ],
        dir,
        b"",
        Expect::Json(0),
    )
    .unwrap();
    assert_eq!(doc["matches"], true);

    check(
        "cert-seal",
        &["nix", "--json", "tls.yaml"],
        dir,
        b"",
        Expect::Refused,
    );
    let nix = run(
        &fromgit_bin("cert-seal"),
        ["nix", "tls.yaml"],
        dir,
        &[],
        b"",
    );
    assert!(success(&nix, "cert-seal nix").contains("sops.secrets"));

    assert_covered(
        "cert-seal",
        &[],
        &["check", "seal", "inspect", "probe", "nix"],
    );
}

#[test]
fn leak_scan_honours_json() {
    let dir = tempfile::tempdir().unwrap();
    let dir = dir.path();
    write(dir, "tree/README.md", "nothing to see here\n");

    let doc = check("leak-scan", &["--json", "tree"], dir, b"", Expect::Json(0)).unwrap();
    assert!(doc.get("findings").is_some(), "{doc}");
    // Two outputs asked for: refused, not one silently chosen.
    check(
        "leak-scan",
        &["--json", "--format", "sarif", "tree"],
        dir,
        b"",
        Expect::Refused,
    );
    let doc = check("leak-scan", &["rules", "--json"], dir, b"", Expect::Json(0)).unwrap();
    assert!(!doc.as_array().unwrap().is_empty());

    let recipient = keygen(dir);
    fs_err::create_dir_all(dir.join("instance/secrets")).unwrap();
    encrypted(dir, &recipient);
    fs_err::rename(
        dir.join("secrets.yaml"),
        dir.join("instance/secrets/app.yaml"),
    )
    .unwrap();
    let doc = check(
        "leak-scan",
        &[
            "enroll",
            "--json",
            "--instance",
            "instance",
            "--identity",
            "key.txt",
            "-o",
            "fingerprints.json",
            "--domain",
            DOMAIN,
        ],
        dir,
        b"",
        Expect::Json(0),
    )
    .unwrap();
    assert_eq!(doc["secrets"], 1);
    assert_eq!(doc["domains"], 1);

    assert_covered("leak-scan", &[], &["enroll", "rules"]);
}

#[test]
fn closure_diff_honours_json() {
    let dir = tempfile::tempdir().unwrap();
    let dir = dir.path();
    // A `nix path-info --json` dump (the array shape): one path, no references.
    write(
        dir,
        "closure.json",
        r#"[{"path":"/nix/store/0f4ch7y9qsa1hxq0pb1c8dxzk4dpmv4q-hello-2.10",
             "narHash":"sha256-47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=",
             "narSize":120,"references":[]}]"#,
    );

    let doc = check(
        "closure-diff",
        &["compare", "--json", "closure.json", "closure.json"],
        dir,
        b"",
        Expect::Json(0),
    )
    .unwrap();
    assert_eq!(doc["verdict"]["result"], "identical", "{doc}");
    let doc = check(
        "closure-diff",
        &["snapshot", "--json", "closure.json"],
        dir,
        b"",
        Expect::Json(0),
    )
    .unwrap();
    assert!(doc.get("schema").is_some(), "{doc}");
    // With `-o` the snapshot goes to the file, and stdout says what was written.
    let doc = check(
        "closure-diff",
        &["snapshot", "--json", "-o", "snap.json", "closure.json"],
        dir,
        b"",
        Expect::Json(0),
    )
    .unwrap();
    assert_eq!(doc["paths"], 1, "{doc}");
    assert!(dir.join("snap.json").is_file());

    assert_covered("closure-diff", &[], &["compare", "snapshot"]);
}

#[test]
fn vm_prove_honours_json() {
    let Some(vars) = incus_test_env() else {
        return;
    };
    let var = |key: &str| vars[&format!("FROMGIT_INCUS_{key}")].clone();
    let dir = tempfile::tempdir().unwrap();
    let dir = dir.path();
    keygen(dir);
    fs_err::rename(dir.join("key.txt"), dir.join("bootstrap.txt")).unwrap();
    write(
        dir,
        "install.md",
        "# Runbook\n\n```sh {name=noop vm-prove=run timeout=10}\ntrue\n```\n",
    );
    let prefix = format!("t-json-{}", std::process::id());
    // A memory budget below the instance's memory: `plan` and `run` are
    // refused before anything is created, and `sweep` finds nothing of this prefix.
    write(
        dir,
        "vm-prove.toml",
        &format!(
            r#"[incus]
url = "{url}"
project = "{project}"
client_cert = "{cert}"
client_key = "{key}"
server_cert = "{ca}"

[instance]
image = "{image}"
memory = "256MiB"
name_prefix = "{prefix}"

[guardrails]
allowed_projects = ["{project}"]
allowed_name_prefixes = ["{prefix}"]
memory_budget = "128MiB"

[secret]
source = "bootstrap.txt"

[runbook]
path = "install.md"

[evidence]
dir = "evidence"
"#,
            url = var("URL"),
            project = var("PROJECT"),
            cert = var("CERT"),
            key = var("KEY"),
            ca = var("CA"),
            image = var("IMAGE"),
        ),
    );
    let config = ["--config", "vm-prove.toml"];

    let mut args = vec!["plan", "--json"];
    args.extend(config);
    let doc = check("vm-prove", &args, dir, b"", Expect::Json(2)).unwrap();
    assert_eq!(doc["passed"], false);
    let mut args = vec!["run", "--json"];
    args.extend(config);
    let doc = check("vm-prove", &args, dir, b"", Expect::Json(2)).unwrap();
    assert_eq!(doc["verdict"], "refused");
    let mut args = vec!["sweep", "--json"];
    args.extend(config);
    let doc = check("vm-prove", &args, dir, b"", Expect::Json(0)).unwrap();
    assert_eq!(doc["instances"], serde_json::json!([]));

    assert_covered("vm-prove", &[], &["plan", "run", "sweep"]);
}

#[test]
fn refusals_name_the_command() {
    let dir = tempfile::tempdir().unwrap();
    let out = run(
        &fromgit_bin("cert-seal"),
        ["nix", "--json", "missing.yaml"],
        dir.path(),
        &[],
        b"",
    );
    assert_eq!(
        String::from_utf8_lossy(&out.stderr),
        "error: `cert-seal nix` prints Nix source, not data: `--json` does not apply\n"
    );
}
