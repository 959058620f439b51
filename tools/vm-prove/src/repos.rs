//! The two repositories, made available inside the instance as git bundles
//! made from local checkouts: the instance needs no network access to a
//! forge and no credentials for the private instance repo, and the evidence
//! records exactly which commit (and which `flake.lock`) was proven.

use std::path::{Path, PathBuf};
use std::process::Command;

use serde::Serialize;
use sha2::{Digest as _, Sha256};

use crate::config::{RepoConfig, REPOS_DIR};

/// Why a repository could not be bundled.
#[derive(Debug, thiserror::Error)]
pub enum RepoError {
    #[error("repository `{name}` (`{path}`): {message}")]
    Git {
        name: String,
        path: String,
        message: String,
    },
    #[error("repository `{name}`: {source}")]
    Io {
        name: String,
        #[source]
        source: std::io::Error,
    },
}

/// A repository as proven, for the evidence.
#[derive(Debug, Clone, Serialize)]
pub struct RepoRecord {
    pub name: String,
    pub source: String,
    pub rev: String,
    pub commit: String,
    /// SHA-256 of `flake.lock` at that commit, when there is one.
    pub flake_lock_sha256: Option<String>,
    /// The checkout had uncommitted changes, which the bundle does not carry.
    pub uncommitted_changes: bool,
    /// Where the bundle lands inside the instance.
    pub destination: String,
    pub bundle_sha256: String,
    pub bundle_size: u64,
    pub pushed: bool,
}

/// A bundle written to a local temporary directory, ready to push.
#[derive(Debug)]
pub struct Bundle {
    pub record: RepoRecord,
    pub file: PathBuf,
}

fn git(repo: &RepoConfig, args: &[&str]) -> Result<Vec<u8>, RepoError> {
    let error = |message: String| RepoError::Git {
        name: repo.name.clone(),
        path: repo.path.display().to_string(),
        message,
    };
    let out = Command::new("git")
        .arg("-C")
        .arg(&repo.path)
        .args(args)
        .output()
        .map_err(|e| error(format!("cannot run git: {e}")))?;
    if !out.status.success() {
        return Err(error(format!(
            "`git {}` failed: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    Ok(out.stdout)
}

/// Bundles `repo.rev` of the checkout into `dir`.
pub fn bundle(repo: &RepoConfig, dir: &Path) -> Result<Bundle, RepoError> {
    let commit = String::from_utf8_lossy(&git(
        repo,
        &["rev-parse", "--verify", &format!("{}^{{commit}}", repo.rev)],
    )?)
    .trim()
    .to_owned();
    let flake_lock_sha256 = git(repo, &["show", &format!("{commit}:flake.lock")])
        .ok()
        .map(|lock| hex::encode(Sha256::digest(lock)));
    let uncommitted_changes =
        !git(repo, &["status", "--porcelain", "--untracked-files=no"])?.is_empty();
    let file = dir.join(format!("{}.bundle", repo.name));
    git(
        repo,
        &[
            "bundle",
            "create",
            "--quiet",
            &file.display().to_string(),
            &repo.rev,
        ],
    )?;
    let bytes = fs_err::read(&file).map_err(|source| RepoError::Io {
        name: repo.name.clone(),
        source,
    })?;
    Ok(Bundle {
        record: RepoRecord {
            name: repo.name.clone(),
            source: repo.path.display().to_string(),
            rev: repo.rev.clone(),
            commit,
            flake_lock_sha256,
            uncommitted_changes,
            destination: format!("{REPOS_DIR}/{}.bundle", repo.name),
            bundle_sha256: hex::encode(Sha256::digest(&bytes)),
            bundle_size: bytes.len() as u64,
            pushed: false,
        },
        file,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(dir: &Path, args: &[&str]) {
        let status = Command::new("git")
            .args(args)
            .current_dir(dir)
            .env("GIT_AUTHOR_NAME", "t")
            .env("GIT_AUTHOR_EMAIL", "t@t")
            .env("GIT_COMMITTER_NAME", "t")
            .env("GIT_COMMITTER_EMAIL", "t@t")
            .status()
            .unwrap();
        assert!(status.success(), "git {args:?}");
    }

    #[test]
    fn a_bundle_records_commit_lock_and_uncommitted_changes() {
        let dir = tempfile::tempdir().unwrap();
        let repo_dir = dir.path().join("base");
        fs_err::create_dir(&repo_dir).unwrap();
        run(&repo_dir, &["init", "-q", "-b", "main"]);
        fs_err::write(repo_dir.join("flake.lock"), "{}\n").unwrap();
        run(&repo_dir, &["add", "flake.lock"]);
        run(&repo_dir, &["commit", "-qm", "one"]);
        let repo = RepoConfig {
            name: "base".to_owned(),
            path: repo_dir.clone(),
            rev: "main".to_owned(),
        };
        let out = dir.path().join("out");
        fs_err::create_dir(&out).unwrap();
        let b = bundle(&repo, &out).unwrap();
        assert_eq!(b.record.commit.len(), 40);
        assert_eq!(
            b.record.flake_lock_sha256.as_deref(),
            Some(hex::encode(Sha256::digest(b"{}\n")).as_str())
        );
        assert!(!b.record.uncommitted_changes);
        assert!(b.record.bundle_size > 0);
        // The bundle is a real one: git clones it, and the commit checks out.
        run(
            dir.path(),
            &["clone", "-q", &b.file.display().to_string(), "clone"],
        );
        run(
            &dir.path().join("clone"),
            &["checkout", "-q", "--detach", &b.record.commit],
        );
        assert!(dir.path().join("clone/flake.lock").is_file());

        fs_err::write(repo_dir.join("flake.lock"), "{\"x\":1}\n").unwrap();
        assert!(bundle(&repo, &out).unwrap().record.uncommitted_changes);
        let missing = RepoConfig {
            rev: "no-such-branch".to_owned(),
            ..repo
        };
        let err = bundle(&missing, &out).unwrap_err().to_string();
        assert!(err.contains("`base`") && err.contains("rev-parse"), "{err}");
    }
}
