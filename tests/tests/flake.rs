//! The flake, evaluated offline with Nix 2.8: `nixpkgs` is overridden by a
//! stand-in that provides only what the flake uses
//! (`tests/fixtures/flake/nixpkgs`), so a wrong attribute name, a missing app
//! or a template path that does not exist fails here. Also: `nix flake init`
//! from the instance template, and the template agreeing with what
//! `instance-extract apply` writes.

#![allow(clippy::unwrap_used, clippy::panic, clippy::missing_panics_doc)]

use std::ffi::OsStr;
use std::path::Path;
use std::process::Output;

use fromgit_testkit::{peer, repo_root as repo, run, success, BINARIES};

const SYSTEMS: [&str; 2] = ["x86_64-linux", "aarch64-linux"];
const NIX_CONFIG: &str = "substituters =\nexperimental-features = nix-command flakes";

/// Nix 2.8 without a daemon: concurrent evaluations of the same flake race
/// on adding its source to the store, so this file runs them one at a time.
static NIX: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn nix(nix: &Path, args: &[&str], dir: &Path) -> Output {
    let _one_at_a_time = NIX
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let stand_in = format!(
        "path:{}",
        repo().join("tests/fixtures/flake/nixpkgs").display()
    );
    let mut full: Vec<&str> = args.to_vec();
    full.extend([
        "--no-write-lock-file",
        "--override-input",
        "nixpkgs",
        &stand_in,
    ]);
    // A fresh fetcher cache: a stale one can point at store paths that are gone.
    let cache = tempfile::tempdir().unwrap();
    run(
        nix,
        full,
        dir,
        &[
            ("NIX_CONFIG", OsStr::new(NIX_CONFIG)),
            ("XDG_CACHE_HOME", cache.path().as_os_str()),
        ],
        b"",
    )
}

#[test]
#[cfg_attr(
    missing_nix,
    ignore = "`nix` not found when the tests were built: `bash tests/run --install-only` installs it; under CI=true the test fails instead"
)]
fn flake_show_lists_every_output() {
    let Some(nix_bin) = peer("nix") else { return };
    let flake = repo().display().to_string();
    let output = nix(&nix_bin, &["flake", "show", "--json", &flake], &repo());
    let json: serde_json::Value =
        serde_json::from_str(&success(&output, "nix flake show")).unwrap();
    let kind = |path: &[&str]| {
        let mut node = &json;
        for part in path {
            node = &node[*part];
        }
        node["type"].as_str().map(str::to_owned)
    };
    for system in SYSTEMS {
        for bin in BINARIES.into_iter().chain(["default"]) {
            assert_eq!(
                kind(&["packages", system, bin]).as_deref(),
                Some("derivation"),
                "package {bin} for {system}"
            );
        }
        for bin in BINARIES {
            assert_eq!(
                kind(&["apps", system, bin]).as_deref(),
                Some("app"),
                "app {bin} for {system}"
            );
        }
        for check in ["build", "tests", "clippy", "fmt", "leak-scan"] {
            assert_eq!(
                kind(&["checks", system, check]).as_deref(),
                Some("derivation"),
                "check {check} for {system}"
            );
        }
        assert_eq!(
            kind(&["devShells", system, "default"]).as_deref(),
            Some("derivation")
        );
        assert_eq!(kind(&["formatter", system]).as_deref(), Some("derivation"));
    }
    for template in ["base", "instance"] {
        assert_eq!(
            kind(&["templates", template]).as_deref(),
            Some("template"),
            "template {template}"
        );
    }
}

#[test]
#[cfg_attr(
    missing_nix,
    ignore = "`nix` not found when the tests were built: `bash tests/run --install-only` installs it; under CI=true the test fails instead"
)]
fn flake_check_evaluates_offline() {
    let Some(nix_bin) = peer("nix") else { return };
    let flake = repo().display().to_string();
    let output = nix(&nix_bin, &["flake", "check", "--no-build", &flake], &repo());
    success(&output, "nix flake check --no-build");
}

#[test]
#[cfg_attr(
    missing_nix,
    ignore = "`nix` not found when the tests were built: `bash tests/run --install-only` installs it; under CI=true the test fails instead"
)]
fn flake_init_writes_the_instance_template() {
    let Some(nix_bin) = peer("nix") else { return };
    let dir = tempfile::tempdir().unwrap();
    let template = format!("{}#instance", repo().display());
    let output = run(
        &nix_bin,
        ["flake", "init", "-t", &template],
        dir.path(),
        &[("NIX_CONFIG", OsStr::new(NIX_CONFIG))],
        b"",
    );
    success(&output, "nix flake init -t …#instance");
    for file in ["flake.nix", "instance.nix", ".sops.yaml", "README.md"] {
        assert!(
            dir.path().join(file).is_file(),
            "`{file}` missing after `nix flake init`"
        );
    }
    let rules = fs_err::read_to_string(dir.path().join(".sops.yaml")).unwrap();
    assert!(
        rules.contains("instance-extract secrets recipient --ssh"),
        "{rules}"
    );
}

#[test]
#[cfg_attr(
    missing_age_keygen,
    ignore = "`age-keygen` not found when the tests were built: `bash tests/run --install-only` installs it; under CI=true the test fails instead"
)]
fn the_instance_template_is_what_apply_writes() {
    let Some(key) = fromgit_testkit::age_keygen(
        &std::env::temp_dir(),
        &format!("template-{}", std::process::id()),
    ) else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let base = dir.path().join("base");
    fs_err::create_dir_all(&base).unwrap();
    fs_err::write(base.join("flake.nix"), "{ outputs = { self }: { }; }\n").unwrap();
    fs_err::write(
        base.join("configuration.nix"),
        "{ config, ... }:\n{\n  networking.domain = \"example.org\";\n}\n",
    )
    .unwrap();
    let output = run(
        &fromgit_testkit::fromgit_bin("instance-extract"),
        [
            "apply",
            "--base",
            "base",
            "--instance",
            "instance",
            "--domain",
            "example.org",
            "--name",
            "site",
            "-r",
            &key.recipient,
        ],
        dir.path(),
        &[],
        b"",
    );
    success(&output, "instance-extract apply");
    fs_err::remove_file(&key.file).unwrap();
    for file in ["flake.nix", "instance.nix"] {
        // The template adds the Incus platform fact, which `apply` does not know.
        let template = fs_err::read_to_string(repo().join("templates/instance").join(file))
            .unwrap()
            .lines()
            .filter(|line| !line.contains("platform"))
            .fold(String::new(), |text, line| text + line + "\n");
        assert_eq!(
            fs_err::read_to_string(dir.path().join("instance").join(file)).unwrap(),
            template,
            "templates/instance/{file} differs from what `apply` writes"
        );
    }
    let options = fs_err::read_to_string(base.join("instance-options.nix")).unwrap();
    let template =
        fs_err::read_to_string(repo().join("templates/base/instance-options.nix")).unwrap();
    assert!(
        template.starts_with(&options[..options.rfind("}\n").unwrap()]),
        "templates/base/instance-options.nix does not start like the generated module:\n{options}"
    );
}
