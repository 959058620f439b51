//! `examples/migrate`, the README's first command, runs end to end on the
//! example monolith with the binaries under test: every step runs and
//! passes (none skipped, under `CI=true` where every peer is installed), and
//! its last line accounts for each proof at the level it was made. Without a
//! proving peer it says what was not proven and does not exit 0; as a user
//! who cannot install what is missing, it refuses before doing anything.

#![allow(clippy::unwrap_used, clippy::panic, clippy::print_stderr)]

use std::ffi::OsStr;
use std::os::unix::fs::{symlink, MetadataExt as _};
use std::path::{Path, PathBuf};
use std::process::Output;

use fromgit_testkit::{bin_dir, peer, repo_root as repo, run};

fn migrate(env: &[(&str, &OsStr)]) -> Output {
    run(
        Path::new("/bin/bash"),
        [repo().join("examples/migrate").as_os_str()],
        &repo(),
        env,
        b"",
    )
}

fn step_line<'a>(summary: &'a str, step: &str) -> Option<&'a str> {
    summary
        .lines()
        .find(|l| l.split_whitespace().next() == Some(step))
}

const STEPS: [&str; 13] = [
    "keygen",
    "plan",
    "apply",
    "apply-again",
    "cert-check",
    "cert-seal",
    "cert-inspect",
    "verify",
    "enroll",
    "scan-base",
    "scan-monolith",
    "closure-diff",
    "vm-prove",
];

#[test]
#[cfg_attr(
    any(missing_openssl, missing_nix_build, missing_git, missing_incus_daemon),
    ignore = "needs `openssl`, `nix-build`, `git` and the Incus test daemon; one was not found when the tests were built: `bash tests/run --install-only` installs them; under CI=true the test fails instead"
)]
fn the_example_migration_passes() {
    let Some(_) = peer("openssl") else { return };
    let bin = bin_dir();
    let output = migrate(&[("FROMGIT_BIN_DIR", bin.as_os_str())]);
    let summary = String::from_utf8_lossy(&output.stdout);
    let in_ci = std::env::var("CI").is_ok_and(|v| v == "true");
    if !in_ci && output.status.code() == Some(3) {
        eprintln!("skipping the full check: a proving peer is missing here:\n{summary}");
        return;
    }
    assert_eq!(
        output.status.code(),
        Some(0),
        "examples/migrate did not pass:\n{summary}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    for step in STEPS {
        let line = step_line(&summary, step)
            .unwrap_or_else(|| panic!("step `{step}` is missing:\n{summary}"));
        assert!(
            line.contains(" ok "),
            "step `{step}` did not pass:\n{summary}"
        );
    }
    assert!(!summary.contains("skipped"), "{summary}");
    let account = summary.lines().last().unwrap_or_default();
    assert!(
        account.starts_with("proven on this machine: split")
            && account.contains("live rebuild mechanics")
            && account.contains("a Debian container, not NixOS")
            && !account.contains("NOT proven here")
            && account.contains("Needs the real NixOS host: nixos-rebuild switch"),
        "the account line overclaims or omits a proof:\n{account}"
    );
}

/// A PATH with every program of /usr/bin and /bin but Nix's: the example
/// then cannot build closures.
fn path_without_nix(dir: &Path) -> PathBuf {
    let shadow = dir.join("bin");
    fs_err::create_dir_all(&shadow).unwrap();
    for system_dir in ["/usr/local/bin", "/usr/bin", "/bin"] {
        let Ok(entries) = fs_err::read_dir(system_dir) else {
            continue;
        };
        for entry in entries.flatten() {
            let name = entry.file_name();
            let link = shadow.join(&name);
            if name.to_string_lossy().starts_with("nix") || link.exists() {
                continue;
            }
            symlink(entry.path(), link).unwrap();
        }
    }
    shadow
}

#[test]
#[cfg_attr(
    missing_openssl,
    ignore = "`openssl` not found when the tests were built: `bash tests/run --install-only` installs it; under CI=true the test fails instead"
)]
fn without_nix_the_closure_is_not_proven_and_the_exit_is_3() {
    let Some(_) = peer("openssl") else { return };
    let dir = tempfile::tempdir().unwrap();
    let bin = bin_dir();
    let shadow = path_without_nix(dir.path());
    let mut path = bin.clone().into_os_string();
    path.push(":");
    path.push(&shadow);
    let output = migrate(&[
        ("FROMGIT_BIN_DIR", bin.as_os_str()),
        ("NO_INSTALL", OsStr::new("1")),
        ("PATH", &path),
    ]);
    let summary = String::from_utf8_lossy(&output.stdout);
    assert_eq!(
        output.status.code(),
        Some(3),
        "a skipped proof must make the run unproven:\n{summary}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let closure = step_line(&summary, "closure-diff").unwrap_or_default();
    assert!(closure.contains("skipped"), "{summary}");
    let account = summary.lines().last().unwrap_or_default();
    let Some((_, not_proven)) = account.split_once("NOT proven here:") else {
        panic!("the account must name what was not proven:\n{account}");
    };
    assert!(not_proven.contains("closure"), "{account}");
    assert!(
        !account
            .split_once("NOT proven here:")
            .is_some_and(|(made, _)| made.contains("closure")),
        "{account}"
    );
}

#[test]
#[cfg_attr(
    missing_setpriv,
    ignore = "`setpriv` not found when the tests were built: `bash tests/run --install-only` installs it; under CI=true the test fails instead"
)]
fn a_user_who_cannot_install_is_refused_before_any_step() {
    let Some(setpriv) = peer("setpriv") else {
        return;
    };
    // /proc/self belongs to the process's effective user.
    if fs_err::metadata("/proc/self").map_or(true, |m| m.uid() != 0) {
        eprintln!("skipping: needs root to run the example as another user");
        return;
    }
    let bin = bin_dir();
    // `nobody` cannot reach the daemon's socket, so the Incus step's needs
    // are missing for it, and it cannot install them.
    let output = run(
        &setpriv,
        [
            OsStr::new("--reuid=nobody"),
            OsStr::new("--regid=nogroup"),
            OsStr::new("--clear-groups"),
            OsStr::new("/bin/bash"),
            repo().join("examples/migrate").as_os_str(),
        ],
        Path::new("/tmp"),
        &[
            ("FROMGIT_BIN_DIR", bin.as_os_str()),
            ("TMPDIR", OsStr::new("/tmp")),
        ],
        b"",
    );
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("a local Incus daemon") && stderr.contains("needs root"),
        "the refusal must say what is missing and why it stops:\n{stderr}"
    );
    assert!(output.stdout.is_empty(), "no step may have run");
}
