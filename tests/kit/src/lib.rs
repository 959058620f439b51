//! Shared helpers of the end-to-end tests (the `fromgit-e2e` crate): finds
//! the fromgit binaries and the real peer programs, runs them in throwaway
//! directories, builds git repositories, and snapshots their output with
//! filters for what varies per run ([`tool_snapshot!`]).
//!
//! A peer that is missing fails the test under `CI=true` (CI installs every
//! peer, so a missing one is a broken CI, not a reason to pass); otherwise the
//! e2e crate's build script marks the test ignored, naming the peer.

#![allow(
    clippy::panic,
    clippy::unwrap_used,
    clippy::print_stderr,
    clippy::missing_panics_doc
)]

pub mod cli;
pub mod git;
pub mod peers;
pub mod snapshot;
pub mod source;

pub use git::{git, write_file, Rng, ALNUM, BASE64, GIT_IDENTITY};
pub use insta;

use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

/// The five fromgit binaries.
pub const BINARIES: [&str; 5] = [
    "instance-extract",
    "cert-seal",
    "leak-scan",
    "closure-diff",
    "vm-prove",
];

/// The workspace's root directory.
pub fn repo_root() -> PathBuf {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    root.canonicalize().unwrap_or(root)
}

/// Where the fromgit binaries are: `FROMGIT_BIN_DIR`, or the workspace's
/// `target/debug`.
pub fn bin_dir() -> PathBuf {
    std::env::var_os("FROMGIT_BIN_DIR").map_or_else(
        || {
            std::env::var_os("CARGO_TARGET_DIR")
                .map_or_else(|| repo_root().join("target"), PathBuf::from)
                .join("debug")
        },
        PathBuf::from,
    )
}

/// A fromgit binary: `FROMGIT_BIN_DIR/<name>`, or the workspace's `target/debug`.
pub fn fromgit_bin(name: &str) -> PathBuf {
    let path = bin_dir().join(name);
    assert!(
        path.is_file(),
        "`{}` is missing: run `cargo build --workspace` first or set FROMGIT_BIN_DIR",
        path.display()
    );
    path
}

/// Whether this is a CI run (`CI=true`), where every peer must be present.
pub fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true")
}

/// Finds a peer program: `FROMGIT_<NAME>` (upper case, `-` as `_`), else PATH.
/// `None` means "skip" outside CI; under `CI=true` a missing peer panics.
/// (Outside CI the e2e crate's build script marks a test whose peer is
/// missing as ignored; this `None` is reached when PATH changed since.)
pub fn peer(name: &str) -> Option<PathBuf> {
    let var = peers::peer_var(name);
    let found = peers::find_peer(name);
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
        // clap wraps help at COLUMNS when no terminal is attached: fixed, so
        // that help texts are the same on every machine.
        .env("COLUMNS", "100")
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
        // A program that refuses its input before reading it closes the pipe
        // early: that is its answer, not the harness's failure.
        if let Err(err) = pipe.write_all(stdin) {
            assert!(err.kind() == std::io::ErrorKind::BrokenPipe, "stdin: {err}");
        }
    }
    child
        .wait_with_output()
        .unwrap_or_else(|err| panic!("`{}` did not finish: {err}", program.display()))
}

/// Bytes as text, invalid UTF-8 replaced.
pub fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// A finished program's stdout, as text.
pub fn stdout(output: &Output) -> String {
    text(&output.stdout)
}

/// A finished program's stderr, as text.
pub fn stderr(output: &Output) -> String {
    text(&output.stderr)
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

/// Copies a fixture tree, writing `secrets_dir` wherever a file says
/// `@SECRETS@` (the fixtures name the host's secret files through it).
pub fn copy_fixture(from: &Path, to: &Path, secrets_dir: &Path) {
    fs_err::create_dir_all(to).unwrap();
    for entry in fs_err::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_fixture(&entry.path(), &target, secrets_dir);
        } else {
            let text = fs_err::read_to_string(entry.path()).unwrap();
            fs_err::write(
                &target,
                text.replace("@SECRETS@", secrets_dir.to_str().unwrap()),
            )
            .unwrap();
        }
    }
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

/// A real `sshd` on 127.0.0.1, killed when dropped.
pub struct Sshd {
    child: std::process::Child,
    pub port: u16,
    /// Options for `ssh` (and `NIX_SSHOPTS`): the client key and the pinned host key.
    pub opts: String,
}

impl Drop for Sshd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts `sshd` on a free port of 127.0.0.1 with a fresh host key and one
/// authorised client key, all in `dir`; `None` when a peer is missing.
#[allow(clippy::zombie_processes)] // `Sshd`'s `Drop` kills and waits.
pub fn start_sshd(dir: &Path) -> Option<Sshd> {
    let sshd = if Path::new("/usr/sbin/sshd").is_file() {
        PathBuf::from("/usr/sbin/sshd")
    } else {
        peer("sshd")?
    };
    let keygen = peer("ssh-keygen")?;
    peer("ssh")?;
    for key in ["host_ed25519", "client_ed25519"] {
        let out = run(
            &keygen,
            ["-q", "-t", "ed25519", "-N", "", "-f", key],
            dir,
            &[],
            b"",
        );
        success(&out, "ssh-keygen");
    }
    fs_err::copy(dir.join("client_ed25519.pub"), dir.join("authorized_keys")).unwrap();
    fs_err::create_dir_all("/run/sshd").ok();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let d = dir.display();
    let config = format!(
        "Port {port}\nListenAddress 127.0.0.1\nHostKey {d}/host_ed25519\nAuthorizedKeysFile {d}/authorized_keys\n\
         PermitRootLogin prohibit-password\nPasswordAuthentication no\nKbdInteractiveAuthentication no\n\
         UsePAM no\nPidFile {d}/sshd.pid\nStrictModes no\n"
    );
    fs_err::write(dir.join("sshd_config"), config).unwrap();
    let host_pub = fs_err::read_to_string(dir.join("host_ed25519.pub")).unwrap();
    fs_err::write(
        dir.join("known_hosts"),
        format!("[127.0.0.1]:{port} {host_pub}"),
    )
    .unwrap();
    let child = std::process::Command::new(&sshd)
        .args(["-D", "-f"])
        .arg(dir.join("sshd_config"))
        .arg("-E")
        .arg(dir.join("sshd.log"))
        .spawn()
        .unwrap();
    for _ in 0..100 {
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            let opts = format!(
                "-i {d}/client_ed25519 -o UserKnownHostsFile={d}/known_hosts -o StrictHostKeyChecking=yes -o IdentitiesOnly=yes"
            );
            return Some(Sshd { child, port, opts });
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    panic!(
        "sshd did not start: {}",
        fs_err::read_to_string(dir.join("sshd.log")).unwrap_or_default()
    );
}

/// The test Incus daemon's settings (`FROMGIT_INCUS_URL`, `_CERT`, `_KEY`,
/// `_CA`, `_PROJECT`, `_IMAGE`), from the environment or the `env` file
/// `tests/incus-setup` writes (`/var/tmp/incus-ci/env`, or
/// `FROMGIT_INCUS_ENV`). Without them: `None`, or a failure under `CI=true`.
pub fn incus_test_env() -> Option<std::collections::BTreeMap<String, String>> {
    let mut vars = std::collections::BTreeMap::new();
    if let Ok(text) = fs_err::read_to_string(peers::incus_env_file()) {
        for line in text.lines() {
            if let Some((k, v)) = line.split_once('=') {
                vars.insert(k.trim().to_owned(), v.trim().to_owned());
            }
        }
    }
    for key in ["URL", "CERT", "KEY", "CA", "PROJECT", "IMAGE"] {
        let name = format!("FROMGIT_INCUS_{key}");
        if let Ok(v) = std::env::var(&name) {
            vars.insert(name, v);
        }
    }
    if vars.contains_key("FROMGIT_INCUS_URL") {
        return Some(vars);
    }
    assert!(
        !in_ci(),
        "the Incus daemon is required under CI=true: run `bash tests/incus-setup`"
    );
    eprintln!("skipping: no Incus daemon (run `bash tests/incus-setup`)");
    None
}
