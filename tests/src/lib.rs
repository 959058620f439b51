//! Harness for the end-to-end tests: finds the fromgit binaries and the
//! real peer programs, and runs them in throwaway directories.
//!
//! A peer that is missing fails the test under `CI=true` (CI installs every
//! peer, so a missing one is a broken CI, not a reason to pass), and skips it
//! with a message naming the peer otherwise.

#![allow(clippy::panic, clippy::print_stderr, clippy::missing_panics_doc)]

use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

/// A fromgit binary: `FROMGIT_BIN_DIR/<name>`, or the workspace's `target/debug`.
pub fn fromgit_bin(name: &str) -> PathBuf {
    let dir = std::env::var_os("FROMGIT_BIN_DIR").map_or_else(
        || {
            let target = std::env::var_os("CARGO_TARGET_DIR").map_or_else(
                || Path::new(env!("CARGO_MANIFEST_DIR")).join("../target"),
                PathBuf::from,
            );
            target.join("debug")
        },
        PathBuf::from,
    );
    let path = dir.join(name);
    assert!(
        path.is_file(),
        "`{}` is missing: run `cargo build --workspace` first or set FROMGIT_BIN_DIR",
        path.display()
    );
    path
}

fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true")
}

/// Finds a peer program: `FROMGIT_<NAME>` (upper case, `-` as `_`), else PATH.
/// `None` means "skip" outside CI; under `CI=true` a missing peer panics.
pub fn peer(name: &str) -> Option<PathBuf> {
    let var = format!("FROMGIT_{}", name.to_ascii_uppercase().replace('-', "_"));
    let found = std::env::var_os(&var)
        .map(PathBuf::from)
        .filter(|p| p.is_file())
        .or_else(|| {
            std::env::var_os("PATH").and_then(|paths| {
                std::env::split_paths(&paths)
                    .map(|dir| dir.join(name))
                    .find(|candidate| candidate.is_file())
            })
        });
    if found.is_none() {
        assert!(
            !in_ci(),
            "peer `{name}` is required under CI=true but is not installed (set {var} or put it on PATH)"
        );
        eprintln!("skipping: peer `{name}` not found (set {var} or put it on PATH)");
    }
    found
}

/// Runs a command to completion, feeding `stdin`.
pub fn run<I, S>(
    program: &Path,
    args: I,
    dir: &Path,
    env: &[(&str, &OsStr)],
    stdin: &[u8],
) -> Output
where
    I: IntoIterator<Item = S>,
    S: AsRef<OsStr>,
{
    use std::io::Write as _;
    let mut command = Command::new(program);
    command
        .args(args)
        .current_dir(dir)
        .env("HOME", dir)
        .env_remove("SOPS_AGE_KEY_FILE")
        .env_remove("SOPS_AGE_KEY")
        .env("NO_COLOR", "1")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for (key, value) in env {
        command.env(key, value);
    }
    let mut child = command
        .spawn()
        .unwrap_or_else(|err| panic!("cannot start `{}`: {err}", program.display()));
    if let Some(mut pipe) = child.stdin.take() {
        pipe.write_all(stdin)
            .unwrap_or_else(|err| panic!("stdin: {err}"));
    }
    child
        .wait_with_output()
        .unwrap_or_else(|err| panic!("`{}` did not finish: {err}", program.display()))
}

/// Asserts success and returns stdout as text.
pub fn success(output: &Output, what: &str) -> String {
    assert!(
        output.status.success(),
        "{what} failed with {:?}\nstderr:\n{}",
        output.status.code(),
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout.clone())
        .unwrap_or_else(|_| panic!("{what}: stdout is not UTF-8"))
}

/// An age identity made by the real `age-keygen`, in its own key file.
pub struct AgeKey {
    pub file: PathBuf,
    pub recipient: String,
}

pub fn age_keygen(dir: &Path, name: &str) -> Option<AgeKey> {
    let keygen = peer("age-keygen")?;
    let file = dir.join(format!("{name}.txt"));
    let output = run(&keygen, [OsStr::new("-o"), file.as_os_str()], dir, &[], b"");
    success(&output, "age-keygen");
    let public = run(&keygen, [OsStr::new("-y"), file.as_os_str()], dir, &[], b"");
    let recipient = success(&public, "age-keygen -y").trim().to_owned();
    Some(AgeKey { file, recipient })
}
