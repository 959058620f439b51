//! Git repositories and files built at test time, and deterministic text.

use std::ffi::OsStr;
use std::path::Path;

use crate::{run, success};

/// The author and committer of every commit a test makes.
pub const GIT_IDENTITY: [(&str, &str); 4] = [
    ("GIT_AUTHOR_NAME", "fromgit test"),
    ("GIT_AUTHOR_EMAIL", "test@example.com"),
    ("GIT_COMMITTER_NAME", "fromgit test"),
    ("GIT_COMMITTER_EMAIL", "test@example.com"),
];

/// Runs `git` in `dir` as the test identity; returns stdout, panics on failure.
pub fn git(dir: &Path, args: &[&str]) -> String {
    let env: Vec<(&str, &OsStr)> = GIT_IDENTITY
        .iter()
        .map(|(k, v)| (*k, OsStr::new(*v)))
        .collect();
    let output = run(Path::new("git"), args, dir, &env, b"");
    success(&output, &format!("git {}", args.join(" ")))
}

/// Writes `content` to `dir/path`, creating the parent directories.
pub fn write_file(dir: &Path, path: &str, content: impl AsRef<[u8]>) {
    let path = dir.join(path);
    fs_err::create_dir_all(path.parent().unwrap()).unwrap();
    fs_err::write(path, content).unwrap();
}

/// Letters and digits.
pub const ALNUM: &str = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
/// The standard base64 alphabet.
pub const BASE64: &str = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/// Deterministic pseudo-random text (a linear congruential generator), so
/// that planted values are the same on every run.
pub struct Rng(pub u64);

impl Rng {
    /// The next 31-bit value.
    pub fn step(&mut self) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        self.0 >> 33
    }

    /// `n` characters drawn from `alphabet`.
    pub fn text(&mut self, n: usize, alphabet: &str) -> String {
        let chars: Vec<char> = alphabet.chars().collect();
        (0..n)
            .map(|_| chars[usize::try_from(self.step()).unwrap() % chars.len()])
            .collect()
    }
}
