//! Crash safety: `secrets rotate`, `cert-seal seal --into` and
//! `instance-extract apply` are killed mid-write, at every point a file-size
//! limit can stop them (`ulimit -f`, which ends the process with SIGXFSZ
//! when a write crosses it), and afterwards every file they touch is either
//! the complete old version or the complete new one, the real sops still
//! decrypts the secrets file, and nothing left behind holds a plaintext
//! secret.

#![allow(clippy::unwrap_used, clippy::panic, clippy::missing_panics_doc)]

use std::collections::BTreeMap;
use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::process::Output;

use fromgit_testkit::{age_keygen, fromgit_bin, peer, run, success, AgeKey};

const SECRET: &str = "crash-secret-5b1d9e7c3a0f2468ace1";

/// File-size limits in 512-byte blocks: from "nothing can be written" to
/// "everything fits".
const LIMITS: [u32; 12] = [0, 1, 2, 3, 4, 5, 6, 8, 12, 16, 32, 4096];

/// Runs `binary args` under `ulimit -f limit`.
fn limited(dir: &Path, limit: u32, binary: &Path, args: &[&str], env: &[(&str, &OsStr)]) -> Output {
    let mut full = vec!["-c", "ulimit -f \"$0\" && exec \"$@\""];
    let limit = limit.to_string();
    full.push(&limit);
    let binary = binary.to_str().unwrap();
    full.push(binary);
    full.extend_from_slice(args);
    run(Path::new("/bin/sh"), full, dir, env, b"")
}

fn tree(dir: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
    let mut out = BTreeMap::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(current) = stack.pop() {
        let Ok(entries) = fs_err::read_dir(&current) else {
            continue;
        };
        for entry in entries {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
            } else {
                out.insert(path.clone(), fs_err::read(&path).unwrap());
            }
        }
    }
    out
}

fn assert_no_plaintext(dir: &Path, what: &str) {
    for (path, bytes) in tree(dir) {
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        if name == "plain.yaml"
            || name.starts_with("secret-source")
            || path.extension().is_some_and(|e| e == "txt")
        {
            continue; // the test's own inputs
        }
        assert!(
            !String::from_utf8_lossy(&bytes).contains(SECRET),
            "{what}: `{}` holds the plaintext secret",
            path.display()
        );
    }
}

struct Setup {
    dir: tempfile::TempDir,
    key: AgeKey,
    sops: PathBuf,
}

impl Setup {
    fn new() -> Option<Setup> {
        let sops = peer("sops")?;
        let dir = tempfile::tempdir().unwrap();
        let key = age_keygen(dir.path(), "key")?;
        Some(Setup { dir, key, sops })
    }

    fn sops_decrypts(&self, file: &str) -> String {
        let output = run(
            &self.sops,
            ["-d", file],
            self.dir.path(),
            &[("SOPS_AGE_KEY_FILE", self.key.file.as_os_str())],
            b"",
        );
        success(&output, &format!("sops -d {file}"))
    }

    fn seal_fresh(&self, name: &str, plain: &str) -> Vec<u8> {
        fs_err::write(self.dir.path().join("plain.yaml"), plain).unwrap();
        let output = run(
            &fromgit_bin("instance-extract"),
            [
                "secrets",
                "encrypt",
                "-r",
                &self.key.recipient,
                "-o",
                name,
                "plain.yaml",
            ],
            self.dir.path(),
            &[],
            b"",
        );
        success(&output, "encrypt");
        fs_err::read(self.dir.path().join(name)).unwrap()
    }
}

#[test]
#[cfg_attr(
    any(missing_sops, missing_age_keygen),
    ignore = "needs `sops` and `age-keygen`; one was not found when the tests were built: `bash tests/run --install-only` installs them; under CI=true the test fails instead"
)]
fn rotate_is_all_or_nothing() {
    let Some(setup) = Setup::new() else { return };
    let mut killed = 0;
    for limit in LIMITS {
        let old = setup.seal_fresh("secrets.yaml", &format!("token: {SECRET}\nother: value\n"));
        let key = setup.key.file.to_str().unwrap();
        let output = limited(
            setup.dir.path(),
            limit,
            &fromgit_bin("instance-extract"),
            &["secrets", "rotate", "--identity", key, "secrets.yaml"],
            &[],
        );
        killed += usize::from(!output.status.success());
        let now = fs_err::read(setup.dir.path().join("secrets.yaml")).unwrap();
        if output.status.success() {
            assert_ne!(
                now, old,
                "limit {limit}: rotate succeeded but left the file as it was"
            );
        } else {
            assert_eq!(now, old, "limit {limit}: a killed rotate changed the file");
        }
        assert!(
            setup.sops_decrypts("secrets.yaml").contains(SECRET),
            "limit {limit}"
        );
        assert_no_plaintext(setup.dir.path(), &format!("rotate under limit {limit}"));
    }
    assert!(
        killed >= 3,
        "the limits never interrupted a write ({killed} kills): the test proves nothing"
    );
}

#[test]
#[cfg_attr(
    any(missing_sops, missing_age_keygen, missing_openssl),
    ignore = "needs `sops`, `age-keygen` and `openssl`; one was not found when the tests were built: `bash tests/run --install-only` installs them; under CI=true the test fails instead"
)]
fn seal_into_is_all_or_nothing() {
    let Some(setup) = Setup::new() else { return };
    let Some(openssl) = peer("openssl") else {
        return;
    };
    let dir = setup.dir.path();
    let generated = run(
        &openssl,
        [
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-keyout",
            "privkey.pem",
            "-out",
            "fullchain.pem",
            "-days",
            "90",
            "-subj",
            "/CN=example.net",
            "-addext",
            "subjectAltName=DNS:*.example.net,DNS:example.net",
            "-addext",
            "extendedKeyUsage=serverAuth",
        ],
        dir,
        &[],
        b"",
    );
    success(&generated, "openssl req");
    let mut killed = 0;
    for limit in LIMITS {
        let old = setup.seal_fresh("secrets.yaml", &format!("webhook: {SECRET}\n"));
        let key = setup.key.file.to_str().unwrap();
        let output = limited(
            dir,
            limit,
            &fromgit_bin("cert-seal"),
            &[
                "seal",
                "--cert",
                "fullchain.pem",
                "--key",
                "privkey.pem",
                "--domain",
                "example.net",
                "--into",
                "secrets.yaml",
                "--identity",
                key,
            ],
            &[],
        );
        killed += usize::from(!output.status.success());
        let now = fs_err::read(dir.join("secrets.yaml")).unwrap();
        let decrypted = setup.sops_decrypts("secrets.yaml");
        assert!(
            decrypted.contains(SECRET),
            "limit {limit}: the other secret is gone"
        );
        if output.status.success() {
            assert!(
                decrypted.contains("BEGIN PRIVATE KEY"),
                "limit {limit}: sealed but no key"
            );
        } else {
            assert_eq!(now, old, "limit {limit}: a killed seal changed the file");
        }
        assert_no_plaintext(dir, &format!("seal --into under limit {limit}"));
    }
    assert!(
        killed >= 3,
        "the limits never interrupted a write ({killed} kills)"
    );
}

#[test]
#[cfg_attr(
    any(missing_sops, missing_age_keygen),
    ignore = "needs `sops` and `age-keygen`; one was not found when the tests were built: `bash tests/run --install-only` installs them; under CI=true the test fails instead"
)]
fn apply_leaves_every_file_old_or_new() {
    let Some(setup) = Setup::new() else { return };
    let dir = setup.dir.path();
    let source = dir.join("secret-source");
    fs_err::write(&source, SECRET).unwrap();
    let pristine = BTreeMap::from([
        (
            "flake.nix",
            "{\n  inputs.nixpkgs.url = \"github:NixOS/nixpkgs/nixos-25.11\";\n  outputs = { self, nixpkgs, ... }: {\n    nixosConfigurations.host = nixpkgs.lib.nixosSystem { modules = [ ./configuration.nix ]; };\n  };\n}\n".to_owned(),
        ),
        (
            "configuration.nix",
            format!("{{ config, ... }}:\n{{\n  networking.domain = \"crash.example.net\";\n  token = \"{}\";\n}}\n", source.display()),
        ),
    ]);
    let mut killed = 0;
    let mut new_versions: BTreeMap<String, Vec<u8>> = BTreeMap::new();
    for limit in LIMITS.iter().rev() {
        let base = dir.join("base");
        let _ = fs_err::remove_dir_all(&base);
        let _ = fs_err::remove_dir_all(dir.join("instance"));
        fs_err::create_dir_all(&base).unwrap();
        for (name, text) in &pristine {
            fs_err::write(base.join(name), text).unwrap();
        }
        let secret = format!("token={}", source.display());
        let output = limited(
            dir,
            *limit,
            &fromgit_bin("instance-extract"),
            &[
                "apply",
                "--base",
                "base",
                "--instance",
                "instance",
                "--domain",
                "crash.example.net",
                "--secret",
                &secret,
                "-r",
                &setup.key.recipient,
            ],
            &[],
        );
        if output.status.success() {
            // The run that fits records the complete new versions.
            for (path, bytes) in tree(&base) {
                new_versions.insert(
                    path.file_name().unwrap().to_string_lossy().into_owned(),
                    bytes,
                );
            }
            assert!(setup
                .sops_decrypts("instance/secrets/secrets.yaml")
                .contains(SECRET));
        } else {
            killed += 1;
            for (path, bytes) in tree(&base) {
                let name = path.file_name().unwrap().to_string_lossy().into_owned();
                if name.starts_with(".fromgit-") || name.ends_with(".fromgit-tmp") {
                    continue; // a staged file the kill left behind: never read by anyone, checked below
                }
                let old = pristine.get(name.as_str()).map(|t| t.as_bytes().to_vec());
                let new = new_versions.get(&name).cloned();
                assert!(
                    Some(&bytes) == old.as_ref() || Some(&bytes) == new.as_ref(),
                    "limit {limit}: `{name}` is neither the old nor the new version"
                );
            }
            if dir.join("instance/secrets/secrets.yaml").exists() {
                assert!(setup
                    .sops_decrypts("instance/secrets/secrets.yaml")
                    .contains(SECRET));
            }
        }
        assert_no_plaintext(dir, &format!("apply under limit {limit}"));
    }
    assert!(!new_versions.is_empty(), "no run completed");
    assert!(
        killed >= 3,
        "the limits never interrupted a write ({killed} kills)"
    );
}
