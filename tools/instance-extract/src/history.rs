//! A fresh git history for the rewritten base.
//!
//! Rewriting the tree does not clean the repository: every earlier commit
//! still names the domain and may hold secrets. With `--new-history` the
//! monolith's git directory is moved aside (kept, beside the base, for the
//! operator) and the base starts again with one commit of the generic tree.

use std::path::{Path, PathBuf};
use std::process::Command;

/// Why the history could not be restarted.
#[derive(Debug, thiserror::Error)]
pub enum HistoryError {
    #[error("`{0}` already exists; move it away to keep the monolith's history there")]
    Occupied(PathBuf),
    #[error(
        "`{0}` is a git worktree or submodule (its `.git` is a file); restart its history by hand"
    )]
    NotADirectory(PathBuf),
    #[error("`git {args}` failed ({status}): {stderr}")]
    ChildFailed {
        args: String,
        status: String,
        stderr: String,
    },
    #[error(transparent)]
    Io(#[from] std::io::Error),
}

/// Where the monolith's git directory goes: `<base>.monolith.git` beside it.
pub fn kept_history(base: &Path) -> std::io::Result<PathBuf> {
    let absolute = std::path::absolute(base)?;
    let name = absolute
        .file_name()
        .map_or_else(|| "base".to_owned(), |n| n.to_string_lossy().into_owned());
    Ok(absolute.with_file_name(format!("{name}.monolith.git")))
}

/// Checks, before anything is written, that the history can be restarted.
pub fn check(base: &Path) -> Result<(), HistoryError> {
    let git_dir = base.join(".git");
    if git_dir.exists() && !git_dir.is_dir() {
        return Err(HistoryError::NotADirectory(base.to_owned()));
    }
    let kept = kept_history(base)?;
    if git_dir.exists() && kept.exists() {
        return Err(HistoryError::Occupied(kept));
    }
    Ok(())
}

fn git(base: &Path, args: &[&str]) -> Result<String, HistoryError> {
    let output = Command::new("git")
        .arg("-C")
        .arg(base)
        .args(args)
        .output()?;
    if !output.status.success() {
        return Err(HistoryError::ChildFailed {
            args: args.join(" "),
            status: output.status.to_string(),
            stderr: String::from_utf8_lossy(&output.stderr).trim().to_owned(),
        });
    }
    Ok(String::from_utf8_lossy(&output.stdout).trim().to_owned())
}

/// Moves the old git directory aside (when there is one) and commits the
/// base's tree as the first commit of a new history. Returns the new
/// commit and where the old history went.
pub fn restart(base: &Path) -> Result<(String, Option<PathBuf>), HistoryError> {
    let git_dir = base.join(".git");
    let kept = if git_dir.is_dir() {
        let kept = kept_history(base)?;
        fs_err::rename(&git_dir, &kept)?;
        Some(kept)
    } else {
        None
    };
    git(base, &["init", "-q"])?;
    git(base, &["add", "-A"])?;
    let mut commit = vec![];
    // The operator's identity when git has one; otherwise the tool's.
    if git(base, &["config", "user.email"]).is_err() {
        commit.extend([
            "-c",
            "user.name=instance-extract",
            "-c",
            "user.email=instance-extract@localhost",
        ]);
    }
    commit.extend([
        "commit",
        "-q",
        "-m",
        "Generic base, split from its instance by instance-extract",
    ]);
    git(base, &commit)?;
    Ok((git(base, &["rev-parse", "HEAD"])?, kept))
}
