//! What sops-nix does with an instance repo, proven before any host exists:
//! the composed base + instance evaluates (real `nix-instantiate`) through
//! the sops-nix stand-in of `tests/fixtures/sops-nix` (checked against the
//! real module by `tests/sops-nix-conformance`), the manifest's key file is
//! where `docs/install.md` puts the bootstrap key, every manifest secret
//! decrypts with the real `sops` and that key alone to the original bytes,
//! and every owner exists. `instance-extract verify --base` passes, and
//! fails for each way the wiring can be broken.
//!
//! Over 600 lines on purpose: one test binary per peer set keeps the composed
//! base, its instance and each way of breaking the wiring in one place.

#![allow(clippy::unwrap_used, clippy::panic, clippy::print_stderr)]

use std::ffi::OsStr;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Output;

use fromgit_testkit::{
    age_keygen, copy_fixture, fromgit_bin, peer, repo_root as repo, run, success, AgeKey,
};

const DOMAIN: &str = "ci.example.net";
const SECRETS: &[(&str, &str)] = &[
    ("tls/fullchain", "fullchain.pem"),
    ("tls/key", "privkey.pem"),
    ("drone/oauth", "drone-oauth-secret"),
    ("drone/rpc", "drone-rpc-secret"),
    ("webhook/hmac", "webhook-hmac"),
];

struct Peers {
    sops: PathBuf,
    nix_instantiate: PathBuf,
}

fn peers() -> Option<Peers> {
    Some(Peers {
        sops: peer("sops")?,
        nix_instantiate: peer("nix-instantiate")?,
    })
}

/// `examples/monolith` migrated by `apply`, in a temporary directory.
struct Migrated {
    dir: tempfile::TempDir,
    key: AgeKey,
    peers: Peers,
}

impl Migrated {
    /// `edit_base` changes the monolith before the split.
    fn new(edit_base: impl Fn(&Path), extra: &[&str]) -> Option<Migrated> {
        let peers = peers()?;
        let dir = tempfile::tempdir().unwrap();
        let key = age_keygen(dir.path(), "bootstrap")?;
        let host = dir.path().join("host");
        fs_err::create_dir_all(&host).unwrap();
        for (_, file) in SECRETS {
            fs_err::write(host.join(file), format!("value of {file}\n")).unwrap();
        }
        copy_fixture(
            &repo().join("examples/monolith"),
            &dir.path().join("cc-ci"),
            &host,
        );
        edit_base(&dir.path().join("cc-ci"));
        let mut args: Vec<String> = [
            "apply",
            "--base",
            "cc-ci",
            "--instance",
            "instance",
            "--domain",
            DOMAIN,
            "--recipient",
        ]
        .map(str::to_owned)
        .to_vec();
        args.push(key.recipient.clone());
        for (name, file) in SECRETS {
            args.push("--secret".into());
            args.push(format!("{name}={}", host.join(file).display()));
        }
        args.extend(extra.iter().map(|s| (*s).to_owned()));
        let migrated = Migrated { dir, key, peers };
        success(&migrated.ours(&args), "instance-extract apply");
        Some(migrated)
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn ours<S: AsRef<OsStr>>(&self, args: &[S]) -> Output {
        run(
            &fromgit_bin("instance-extract"),
            args,
            self.dir.path(),
            &[],
            b"",
        )
    }

    fn verify(&self) -> Output {
        let key = self.key.file.to_str().unwrap();
        self.ours(&[
            "verify",
            "--instance",
            "instance",
            "--identity",
            key,
            "--base",
            "cc-ci",
        ])
    }

    fn edit(&self, file: &str, from: &str, to: &str) {
        let path = self.path(file);
        let text = fs_err::read_to_string(&path).unwrap();
        assert!(text.contains(from), "`{from}` not in {file}:\n{text}");
        fs_err::write(&path, text.replacen(from, to, 1)).unwrap();
    }
}

/// The stand-in's view of the composed configuration.
fn evaluate(
    nix_instantiate: &Path,
    dir: &Path,
    base_module: &Path,
    instance: &Path,
) -> serde_json::Value {
    let compose = repo().join("tests/fixtures/sops-nix/compose.nix");
    let expression = format!(
        "let r = import {} {{ modules = [ {} ((import {}).outputs {{ self = null; }}).nixosModules.instance ]; }}; in \
         {{ inherit (r) failedAssertions undeclaredOwners users sources manifest; }}",
        compose.display(),
        base_module.display(),
        instance.join("flake.nix").display()
    );
    let output = run(
        nix_instantiate,
        [
            "--eval",
            "--strict",
            "--json",
            "--readonly-mode",
            "-E",
            &expression,
        ],
        dir,
        &[("NIX_CONFIG", OsStr::new("substituters ="))],
        b"",
    );
    serde_json::from_str(&success(&output, "nix-instantiate --eval (stand-in)")).unwrap()
}

/// The manifest's facts that matter on a blank host, checked with real
/// programs: key file, decryption with the bootstrap key alone, owners.
fn assert_blank_host_decrypts(
    peers: &Peers,
    dir: &Path,
    key: &AgeKey,
    evaluated: &serde_json::Value,
    originals: &[(&str, Vec<u8>)],
) {
    assert_eq!(
        evaluated["failedAssertions"],
        serde_json::json!([]),
        "{evaluated:#}"
    );
    assert_eq!(
        evaluated["undeclaredOwners"],
        serde_json::json!([]),
        "{evaluated:#}"
    );
    let manifest = &evaluated["manifest"];
    let key_file = manifest["ageKeyFile"].as_str().unwrap();
    let install = fs_err::read_to_string(repo().join("docs/install.md")).unwrap();
    assert!(
        install.contains(&format!("sops.age.keyFile = \"{key_file}\";"))
            && install.contains(&format!("test -s {key_file}")),
        "the manifest's key file `{key_file}` is not where docs/install.md puts the key"
    );
    assert_eq!(manifest["ageSshKeyPaths"], serde_json::json!([]));
    assert_eq!(manifest["sshKeyPaths"], serde_json::json!([]));
    let secrets = manifest["secrets"].as_array().unwrap();
    assert_eq!(secrets.len(), originals.len(), "{manifest:#}");
    for secret in secrets {
        let name = secret["name"].as_str().unwrap();
        let source = evaluated["sources"][name].as_str().unwrap();
        let extract =
            secret["key"]
                .as_str()
                .unwrap()
                .split('/')
                .fold(String::new(), |mut out, part| {
                    let _ = write!(out, "[\"{part}\"]");
                    out
                });
        let output = run(
            &peers.sops,
            ["-d", "--extract", &extract, source],
            dir,
            &[("SOPS_AGE_KEY_FILE", key.file.as_os_str())],
            b"",
        );
        let plain = success(&output, "sops -d --extract");
        let original = &originals.iter().find(|(n, _)| *n == name).unwrap().1;
        assert_eq!(plain.as_bytes(), original.as_slice(), "secret `{name}`");
        if let Some(owner) = secret["owner"].as_str() {
            let group = evaluated["users"][owner].as_str();
            assert!(
                group.is_some_and(|g| !g.is_empty()),
                "owner `{owner}` of `{name}` is not an evaluated user with a group"
            );
            assert_eq!(secret["group"].as_str(), group, "{secret:#}");
        }
    }
}

fn monolith_originals() -> Vec<(&'static str, Vec<u8>)> {
    SECRETS
        .iter()
        .map(|(name, file)| (*name, format!("value of {file}\n").into_bytes()))
        .collect()
}

fn report(output: &Output) -> String {
    format!(
        "exit {:?}\nstdout:\n{}\nstderr:\n{}",
        output.status.code(),
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

/// A `verify` that fails (exit 1) on the named check.
fn assert_fails_on(output: &Output, check: &str, detail: &str) {
    let text = report(output);
    assert_eq!(output.status.code(), Some(1), "{text}");
    assert!(
        text.lines()
            .any(|l| l.starts_with("FAIL") && l.contains(check) && l.contains(detail)),
        "no FAIL `{check}` … `{detail}`:\n{text}"
    );
}

#[test]
#[cfg_attr(
    any(missing_sops, missing_nix_instantiate, missing_age_keygen),
    ignore = "needs `sops`, `nix-instantiate` and `age-keygen`; one was not found when the tests were built: `bash tests/run --install-only` installs them; under CI=true the test fails instead"
)]
fn the_migrated_monolith_decrypts_on_a_blank_host_with_the_bootstrap_key_alone() {
    let Some(migrated) = Migrated::new(|_| {}, &[]) else {
        return;
    };
    let evaluated = evaluate(
        &migrated.peers.nix_instantiate,
        migrated.dir.path(),
        &migrated.path("cc-ci/configuration.nix"),
        &migrated.path("instance"),
    );
    assert_blank_host_decrypts(
        &migrated.peers,
        migrated.dir.path(),
        &migrated.key,
        &evaluated,
        &monolith_originals(),
    );
    let output = migrated.verify();
    assert_eq!(output.status.code(), Some(0), "{}", report(&output));
    // templates/instance wires the key exactly as apply does.
    let flake = fs_err::read_to_string(migrated.path("instance/flake.nix")).unwrap();
    let start = flake.find("sops.defaultSopsFile").unwrap();
    let wiring = &flake[start..flake.find("    };\n  };").unwrap()];
    assert!(wiring.contains("sops.age.keyFile"), "{flake}");
    let template = fs_err::read_to_string(repo().join("templates/instance/flake.nix")).unwrap();
    assert!(
        template.contains(wiring),
        "templates/instance/flake.nix does not wire the key as apply does:\n{wiring}"
    );
}

#[test]
#[cfg_attr(
    any(missing_sops, missing_nix_instantiate, missing_age_keygen),
    ignore = "needs `sops`, `nix-instantiate` and `age-keygen`; one was not found when the tests were built: `bash tests/run --install-only` installs them; under CI=true the test fails instead"
)]
fn an_enabled_service_owns_the_secret_it_reads_and_is_restarted() {
    // With traefik enabled, NixOS declares its user: the certificate is its.
    // A systemd `EnvironmentFile` is read by systemd as root: its unit restarts.
    let Some(migrated) = Migrated::new(
        |base| {
            let entry = base.join("configuration.nix");
            let text = fs_err::read_to_string(&entry).unwrap();
            let rpc = base.parent().unwrap().join("host/drone-rpc-secret");
            fs_err::write(
                &entry,
                text.replacen(
                    "networking.hostName",
                    &format!(
                        "systemd.services.drone-runner.serviceConfig.EnvironmentFile = \"{}\";\n  networking.hostName",
                        rpc.display()
                    ),
                    1,
                ),
            )
            .unwrap();
            let proxy = base.join("services/proxy.nix");
            let text = fs_err::read_to_string(&proxy).unwrap();
            fs_err::write(
                &proxy,
                text.replacen(
                    "{\n  services.traefik",
                    "{\n  services.traefik.enable = true;\n  services.traefik",
                    1,
                ),
            )
            .unwrap();
        },
        &["--secret-attr", "webhook/hmac:mode=0440"],
    ) else {
        return;
    };
    let options = fs_err::read_to_string(migrated.path("cc-ci/instance-options.nix")).unwrap();
    assert!(
        options.contains(r#""tls/key" = { path = "#)
            && options.contains(r#"owner = "traefik"; restartUnits = [ "traefik.service" ];"#),
        "{options}"
    );
    assert!(options.contains(r#"mode = "0440";"#), "{options}");
    assert!(
        options.contains(r#"restartUnits = [ "drone-runner.service" ];"#),
        "{options}"
    );
    let evaluated = evaluate(
        &migrated.peers.nix_instantiate,
        migrated.dir.path(),
        &migrated.path("cc-ci/configuration.nix"),
        &migrated.path("instance"),
    );
    assert_blank_host_decrypts(
        &migrated.peers,
        migrated.dir.path(),
        &migrated.key,
        &evaluated,
        &monolith_originals(),
    );
    let key = evaluated["manifest"]["secrets"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"] == "tls/key")
        .unwrap()
        .clone();
    assert_eq!(key["owner"], "traefik");
    assert_eq!(key["group"], "traefik");
    let output = migrated.verify();
    assert_eq!(output.status.code(), Some(0), "{}", report(&output));
}

#[test]
#[cfg_attr(
    any(missing_sops, missing_nix_instantiate, missing_age_keygen),
    ignore = "needs `sops`, `nix-instantiate` and `age-keygen`; one was not found when the tests were built: `bash tests/run --install-only` installs them; under CI=true the test fails instead"
)]
fn the_instance_template_decrypts_with_the_bootstrap_key_alone() {
    let Some(peers) = peers() else { return };
    let dir = tempfile::tempdir().unwrap();
    let Some(key) = age_keygen(dir.path(), "bootstrap") else {
        return;
    };
    copy_fixture(
        &repo().join("templates/base"),
        &dir.path().join("base"),
        dir.path(),
    );
    let instance = dir.path().join("instance");
    copy_fixture(&repo().join("templates/instance"), &instance, dir.path());
    let rules = fs_err::read_to_string(instance.join(".sops.yaml")).unwrap();
    fs_err::write(
        instance.join(".sops.yaml"),
        rules.replace("age1REPLACE-WITH-THE-BOOTSTRAP-RECIPIENT", &key.recipient),
    )
    .unwrap();
    let plain = dir.path().join("plain.yaml");
    fs_err::write(&plain, "tls:\n  fullchain: the chain\n  key: the key\n").unwrap();
    let output = run(
        &peers.sops,
        ["-e", "--age", &key.recipient, plain.to_str().unwrap()],
        dir.path(),
        &[],
        b"",
    );
    fs_err::create_dir_all(instance.join("secrets")).unwrap();
    fs_err::write(
        instance.join("secrets/secrets.yaml"),
        success(&output, "sops -e"),
    )
    .unwrap();
    fs_err::remove_file(&plain).unwrap();
    let evaluated = evaluate(
        &peers.nix_instantiate,
        dir.path(),
        &dir.path().join("base/configuration.nix"),
        &instance,
    );
    assert_blank_host_decrypts(
        &peers,
        dir.path(),
        &key,
        &evaluated,
        &[
            ("tls/fullchain", b"the chain".to_vec()),
            ("tls/key", b"the key".to_vec()),
        ],
    );
    let output = run(
        &fromgit_bin("instance-extract"),
        [
            "verify",
            "--instance",
            "instance",
            "--identity",
            key.file.to_str().unwrap(),
            "--base",
            "base",
        ],
        dir.path(),
        &[],
        b"",
    );
    assert_eq!(output.status.code(), Some(0), "{}", report(&output));
}

#[test]
#[cfg_attr(
    any(missing_sops, missing_nix_instantiate, missing_age_keygen),
    ignore = "needs `sops`, `nix-instantiate` and `age-keygen`; one was not found when the tests were built: `bash tests/run --install-only` installs them; under CI=true the test fails instead"
)]
fn verify_fails_without_the_key_file() {
    let Some(migrated) = Migrated::new(|_| {}, &[]) else {
        return;
    };
    migrated.edit(
        "instance/flake.nix",
        "sops.age.keyFile = \"/var/lib/sops-nix/key.txt\";",
        "",
    );
    // Without the key file and without OpenSSH, sops-nix has no key at all.
    let output = migrated.verify();
    assert_fails_on(
        &output,
        "sops-nix: bootstrap key",
        "`sops.age.keyFile` is not set",
    );
    assert_fails_on(
        &output,
        "sops-nix: assertions",
        "No key source configured for sops",
    );
}

#[test]
#[cfg_attr(
    any(missing_sops, missing_nix_instantiate, missing_age_keygen),
    ignore = "needs `sops`, `nix-instantiate` and `age-keygen`; one was not found when the tests were built: `bash tests/run --install-only` installs them; under CI=true the test fails instead"
)]
fn verify_fails_when_openssh_would_add_the_new_host_keys() {
    let Some(migrated) = Migrated::new(
        |base| {
            let entry = base.join("configuration.nix");
            let text = fs_err::read_to_string(&entry).unwrap();
            fs_err::write(
                &entry,
                text.replacen(
                    "networking.hostName",
                    "services.openssh.enable = true;\n  networking.hostName",
                    1,
                ),
            )
            .unwrap();
        },
        &[],
    ) else {
        return;
    };
    // With the empty lists that apply writes, OpenSSH changes nothing.
    let output = migrated.verify();
    assert_eq!(output.status.code(), Some(0), "{}", report(&output));
    migrated.edit("instance/flake.nix", "sops.age.sshKeyPaths = [ ];", "");
    migrated.edit("instance/flake.nix", "sops.gnupg.sshKeyPaths = [ ];", "");
    let output = migrated.verify();
    assert_fails_on(
        &output,
        "sops-nix: host keys",
        "/etc/ssh/ssh_host_ed25519_key",
    );
    assert_fails_on(&output, "sops-nix: host keys", "/etc/ssh/ssh_host_rsa_key");
}

#[test]
#[cfg_attr(
    any(missing_sops, missing_nix_instantiate, missing_age_keygen),
    ignore = "needs `sops`, `nix-instantiate` and `age-keygen`; one was not found when the tests were built: `bash tests/run --install-only` installs them; under CI=true the test fails instead"
)]
fn verify_fails_on_a_declared_secret_without_a_value() {
    let Some(migrated) = Migrated::new(|_| {}, &[]) else {
        return;
    };
    migrated.edit(
        "cc-ci/instance-options.nix",
        "config.sops.secrets = {",
        "config.sops.secrets = {\n    \"drone/token\" = { };",
    );
    let output = migrated.verify();
    assert_fails_on(
        &output,
        "sops-nix: every secret has a value",
        "has no value at key `drone/token`",
    );
}

#[test]
#[cfg_attr(
    any(missing_sops, missing_nix_instantiate, missing_age_keygen),
    ignore = "needs `sops`, `nix-instantiate` and `age-keygen`; one was not found when the tests were built: `bash tests/run --install-only` installs them; under CI=true the test fails instead"
)]
fn verify_fails_on_a_value_declared_nowhere() {
    let Some(migrated) = Migrated::new(|_| {}, &[]) else {
        return;
    };
    let key = migrated.key.file.to_str().unwrap().to_owned();
    let output = run(
        &fromgit_bin("instance-extract"),
        [
            "secrets",
            "set",
            "instance/secrets/secrets.yaml",
            "[\"forgotten\"]",
            "--identity",
            &key,
        ],
        migrated.dir.path(),
        &[],
        b"never declared",
    );
    success(&output, "instance-extract secrets set");
    let output = migrated.verify();
    assert_fails_on(&output, "sops-nix: every value is declared", "`forgotten`");
}

#[test]
#[cfg_attr(
    any(missing_sops, missing_nix_instantiate, missing_age_keygen),
    ignore = "needs `sops`, `nix-instantiate` and `age-keygen`; one was not found when the tests were built: `bash tests/run --install-only` installs them; under CI=true the test fails instead"
)]
fn verify_fails_on_an_undeclared_owner() {
    let Some(migrated) = Migrated::new(|_| {}, &["--secret-attr", "drone/rpc:owner=drone"]) else {
        return;
    };
    let report_text = fs_err::read_to_string(migrated.path("cc-ci/instance-options.nix")).unwrap();
    assert!(report_text.contains(r#"owner = "drone";"#), "{report_text}");
    // The monolith names `users.users.drone` only for `extraGroups`: no group.
    let output = migrated.verify();
    assert_fails_on(
        &output,
        "sops-nix: owners declared",
        "owner `drone` has no group",
    );
    migrated.edit(
        "cc-ci/instance-options.nix",
        r#"owner = "drone";"#,
        r#"owner = "ghost";"#,
    );
    let output = migrated.verify();
    assert_fails_on(
        &output,
        "sops-nix: owners declared",
        "owner `ghost` is not declared",
    );
}

#[test]
#[cfg_attr(
    any(missing_sops, missing_nix_instantiate, missing_age_keygen),
    ignore = "needs `sops`, `nix-instantiate` and `age-keygen`; one was not found when the tests were built: `bash tests/run --install-only` installs them; under CI=true the test fails instead"
)]
fn verify_fails_on_a_secrets_symlink_out_of_the_repo() {
    let Some(migrated) = Migrated::new(|_| {}, &[]) else {
        return;
    };
    std::os::unix::fs::symlink(
        migrated.path("host"),
        migrated.path("instance/secrets/host"),
    )
    .unwrap();
    let output = migrated.verify();
    assert_fails_on(
        &output,
        "secrets: no link out of the repo",
        "instance/secrets/host",
    );
}

#[test]
#[cfg_attr(
    any(missing_sops, missing_nix_instantiate, missing_age_keygen),
    ignore = "needs `sops`, `nix-instantiate` and `age-keygen`; one was not found when the tests were built: `bash tests/run --install-only` installs them; under CI=true the test fails instead"
)]
fn verify_is_unproven_without_nix() {
    let Some(migrated) = Migrated::new(|_| {}, &[]) else {
        return;
    };
    let key = migrated.key.file.to_str().unwrap().to_owned();
    let output = run(
        &fromgit_bin("instance-extract"),
        [
            "verify",
            "--instance",
            "instance",
            "--identity",
            &key,
            "--base",
            "cc-ci",
        ],
        migrated.dir.path(),
        &[("PATH", OsStr::new("/nonexistent"))],
        b"",
    );
    let text = report(&output);
    assert_eq!(output.status.code(), Some(3), "{text}");
    assert!(
        text.contains("`nix-instantiate` is not on `PATH`"),
        "{text}"
    );
}

/// A CA and a leaf for `*.DOMAIN` and `DOMAIN` made by `openssl`:
/// `tls.pem` and `tls.key` in `work`.
fn wildcard_certificate(openssl: &Path, work: &Path, domain: &str) {
    let openssl_run = |args: &[&str]| {
        success(&run(openssl, args, work, &[], b""), "openssl");
    };
    openssl_run(&[
        "req",
        "-x509",
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:P-256",
        "-nodes",
        "-days",
        "3650",
        "-subj",
        "/CN=example CA",
        "-addext",
        "basicConstraints=critical,CA:true",
        "-keyout",
        "ca.key",
        "-out",
        "ca.pem",
    ]);
    let subject = format!("/CN={domain}");
    openssl_run(&[
        "req",
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:P-256",
        "-nodes",
        "-subj",
        &subject,
        "-keyout",
        "tls.key",
        "-out",
        "tls.csr",
    ]);
    fs_err::write(
        work.join("tls.ext"),
        format!("subjectAltName=DNS:*.{domain},DNS:{domain}\nextendedKeyUsage=serverAuth\n"),
    )
    .unwrap();
    openssl_run(&[
        "x509",
        "-req",
        "-in",
        "tls.csr",
        "-CA",
        "ca.pem",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-days",
        "90",
        "-extfile",
        "tls.ext",
        "-out",
        "tls.pem",
    ]);
}

/// `cert-seal nix` declares the sealed pair in the shape `apply` writes:
/// composed with an instance, sops-nix gives the key to the declared owner
/// and the real `sops` decrypts it from the sealed file with the bootstrap
/// key alone.
#[test]
#[cfg_attr(
    any(
        missing_sops,
        missing_nix_instantiate,
        missing_age_keygen,
        missing_openssl
    ),
    ignore = "needs `sops`, `nix-instantiate`, `age-keygen` and `openssl`; one was not found when the tests were built: `bash tests/run --install-only` installs them; under CI=true the test fails instead"
)]
fn cert_seal_declarations_decrypt_for_their_owner() {
    let Some(peers) = peers() else { return };
    let Some(openssl) = peer("openssl") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let Some(key) = age_keygen(dir.path(), "bootstrap") else {
        return;
    };
    let work = dir.path();
    wildcard_certificate(&openssl, work, "example.org");
    let base = work.join("base");
    fs_err::create_dir_all(&base).unwrap();
    fs_err::write(
        base.join("configuration.nix"),
        "{ ... }: { services.nginx.enable = true; }\n",
    )
    .unwrap();
    let instance = work.join("instance");
    copy_fixture(&repo().join("templates/instance"), &instance, work);
    fs_err::create_dir_all(instance.join("secrets")).unwrap();
    let rules = fs_err::read_to_string(instance.join(".sops.yaml")).unwrap();
    fs_err::write(
        instance.join(".sops.yaml"),
        rules.replace("age1REPLACE-WITH-THE-BOOTSTRAP-RECIPIENT", &key.recipient),
    )
    .unwrap();
    let cert_seal = fromgit_bin("cert-seal");
    let output = run(
        &cert_seal,
        [
            "seal",
            "--cert",
            "tls.pem",
            "--key",
            "tls.key",
            "--domain",
            "example.org",
            "--out",
            "instance/secrets/tls.yaml",
            "-r",
            &key.recipient,
        ],
        work,
        &[],
        b"",
    );
    success(&output, "cert-seal seal");
    let output = run(
        &cert_seal,
        [
            "nix",
            "secrets/tls.yaml",
            "--owner",
            "nginx",
            "--reload-unit",
            "nginx.service",
        ],
        &instance,
        &[],
        b"",
    );
    fs_err::write(instance.join("tls.nix"), success(&output, "cert-seal nix")).unwrap();
    let flake = fs_err::read_to_string(instance.join("flake.nix")).unwrap();
    fs_err::write(
        instance.join("flake.nix"),
        flake.replacen(
            "nixosModules.instance = { ... }: {",
            "nixosModules.instance = { ... }: {\n      imports = [ ./tls.nix ];",
            1,
        ),
    )
    .unwrap();
    let evaluated = evaluate(
        &peers.nix_instantiate,
        work,
        &base.join("configuration.nix"),
        &instance,
    );
    assert_blank_host_decrypts(
        &peers,
        work,
        &key,
        &evaluated,
        &[
            ("tls/fullchain", fs_err::read(work.join("tls.pem")).unwrap()),
            ("tls/key", fs_err::read(work.join("tls.key")).unwrap()),
        ],
    );
    let secret = evaluated["manifest"]["secrets"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"] == "tls/key")
        .unwrap()
        .clone();
    assert_eq!(secret["owner"], "nginx");
    assert_eq!(secret["group"], "nginx");
    assert_eq!(secret["reloadUnits"], serde_json::json!(["nginx.service"]));
    let output = run(
        &fromgit_bin("instance-extract"),
        [
            "verify",
            "--instance",
            "instance",
            "--identity",
            key.file.to_str().unwrap(),
            "--base",
            "base",
        ],
        work,
        &[],
        b"",
    );
    assert_eq!(output.status.code(), Some(0), "{}", report(&output));
}

/// The second provisioning choice: the host also decrypts with its own SSH
/// key, whose recipient `apply` must have put into `.sops.yaml`.
#[test]
#[cfg_attr(
    any(
        missing_ssh_keygen,
        missing_sops,
        missing_nix_instantiate,
        missing_age_keygen
    ),
    ignore = "needs `ssh-keygen`, `sops`, `nix-instantiate` and `age-keygen`; one was not found when the tests were built: `bash tests/run --install-only` installs them; under CI=true the test fails instead"
)]
fn host_key_decryption_needs_the_host_recipient_and_verify_checks_it() {
    let Some(ssh_keygen) = peer("ssh-keygen") else {
        return;
    };
    let refused = Migrated::new(|_| {}, &[]).map(|m| {
        let output = m.ours(&[
            "apply",
            "--base",
            "cc-ci",
            "--instance",
            "other",
            "--domain",
            DOMAIN,
            "--secret",
            "x=/etc/hostname",
            "-r",
            &m.key.recipient,
            "--host-key-decryption",
        ]);
        assert_eq!(output.status.code(), Some(2), "{}", report(&output));
        assert!(
            report(&output).contains("--recipient-ssh"),
            "{}",
            report(&output)
        );
        assert!(!m.path("other").exists());
    });
    if refused.is_none() {
        return;
    }
    let keys = tempfile::tempdir().unwrap();
    let host_key = keys.path().join("ssh_host_ed25519_key");
    success(
        &run(
            &ssh_keygen,
            [
                "-q",
                "-t",
                "ed25519",
                "-N",
                "",
                "-f",
                host_key.to_str().unwrap(),
            ],
            keys.path(),
            &[],
            b"",
        ),
        "ssh-keygen",
    );
    let public = format!("{}.pub", host_key.display());
    let Some(migrated) = Migrated::new(
        |_| {},
        &["--host-key-decryption", "--recipient-ssh", &public],
    ) else {
        return;
    };
    let flake = fs_err::read_to_string(migrated.path("instance/flake.nix")).unwrap();
    assert!(
        flake.contains("sops.age.sshKeyPaths = [ \"/etc/ssh/ssh_host_ed25519_key\" ];")
            && flake.contains("sops.age.keyFile = \"/var/lib/sops-nix/key.txt\";"),
        "{flake}"
    );
    let output = migrated.verify();
    assert_fails_on(&output, "sops-nix: host keys", "pass `--host-key`");
    let key = migrated.key.file.to_str().unwrap().to_owned();
    let output = migrated.ours(&[
        "verify",
        "--instance",
        "instance",
        "--identity",
        &key,
        "--base",
        "cc-ci",
        "--host-key",
        &public,
    ]);
    assert_eq!(output.status.code(), Some(0), "{}", report(&output));
    // The host key alone, converted as sops-nix converts it, opens the secrets.
    let output = migrated.ours(&[
        "secrets",
        "decrypt",
        "instance/secrets/secrets.yaml",
        "--identity",
        host_key.to_str().unwrap(),
        "--extract",
        "[\"tls\"][\"key\"]",
    ]);
    assert_eq!(
        success(&output, "secrets decrypt with the host key"),
        "value of privkey.pem\n"
    );
}

/// A base the stand-in cannot evaluate (it knows little of `lib`) is
/// unproven, never passed nor failed.
#[test]
#[cfg_attr(
    any(missing_sops, missing_nix_instantiate, missing_age_keygen),
    ignore = "needs `sops`, `nix-instantiate` and `age-keygen`; one was not found when the tests were built: `bash tests/run --install-only` installs them; under CI=true the test fails instead"
)]
fn verify_is_unproven_when_the_stand_in_cannot_evaluate_the_base() {
    let Some(migrated) = Migrated::new(|_| {}, &[]) else {
        return;
    };
    migrated.edit(
        "cc-ci/configuration.nix",
        "networking.hostName",
        "services.nginx.enable = pkgs.lib.mkDefault false;\n  networking.hostName",
    );
    let output = migrated.verify();
    let text = report(&output);
    assert_eq!(output.status.code(), Some(3), "{text}");
    assert!(
        text.contains("the stand-in could not evaluate the composed configuration"),
        "{text}"
    );
}

/// The stand-in against the real sops-nix module and nixpkgs `lib`: runs
/// `tests/sops-nix-conformance` on their source trees, named by
/// `FROMGIT_SOPS_NIX_SRC` and `FROMGIT_NIXPKGS_LIB_SRC`. No package registry
/// ships them and they are never part of this repository, so CI cannot
/// install them: the test is ignored (listed as such, never a silent pass)
/// and run by hand with `cargo test -p fromgit-e2e --test sops_nix -- --ignored`.
#[test]
#[ignore = "needs the sops-nix and nixpkgs lib source trees (FROMGIT_SOPS_NIX_SRC, FROMGIT_NIXPKGS_LIB_SRC), which no registry ships"]
fn the_stand_in_matches_the_real_sops_nix_module() {
    let (Some(sops_nix), Some(nixpkgs_lib)) = (
        std::env::var_os("FROMGIT_SOPS_NIX_SRC"),
        std::env::var_os("FROMGIT_NIXPKGS_LIB_SRC"),
    ) else {
        panic!("set FROMGIT_SOPS_NIX_SRC and FROMGIT_NIXPKGS_LIB_SRC to the two source trees");
    };
    if peers().is_none() || peer("ssh-keygen").is_none() {
        return;
    }
    let bin = fromgit_bin("instance-extract");
    let output = run(
        Path::new("/bin/bash"),
        [
            repo().join("tests/sops-nix-conformance").as_os_str(),
            &sops_nix,
            &nixpkgs_lib,
        ],
        &repo(),
        &[("FROMGIT_BIN_DIR", bin.parent().unwrap().as_os_str())],
        b"",
    );
    let summary = success(&output, "tests/sops-nix-conformance");
    assert_eq!(summary.lines().count(), 14, "{summary}");
    assert!(summary.lines().all(|l| l.contains(": same |")), "{summary}");
}
