//! `apply` writes every change or none: the instance repo is assembled in a
//! temporary directory and renamed into place, the base's files are staged
//! (written and checked by `fromgit-fs`) beside their targets and renamed
//! last; a failure on the way restores what was renamed.

use std::path::Path;

use anyhow::Context as _;
use fromgit_fs::Mode;

use crate::extract::{Changes, FileChange};

/// Writes every change or none.
pub(super) fn write_all(changes: &Changes, instance: &Path) -> anyhow::Result<()> {
    // Stage the base: checked temporary files beside their targets.
    let mut staged = Vec::new();
    for change in &changes.base {
        let dir = change.path.parent().unwrap_or(Path::new("."));
        fs_err::create_dir_all(dir)?;
        let temp = fromgit_fs::stage(
            &change.path,
            change.after.as_bytes(),
            Mode::KeepOrPublic,
            |_| Ok::<(), std::convert::Infallible>(()),
        )
        .with_context(|| format!("Failed to stage `{}`", change.path.display()))?;
        staged.push((temp, change));
    }
    for (_, new) in &changes.renamed {
        if let Some(dir) = new.parent() {
            fs_err::create_dir_all(dir)?;
        }
    }
    // Assemble the instance repo in a temporary sibling directory.
    let absolute = std::path::absolute(instance)?;
    let parent = absolute.parent().unwrap_or(Path::new("/")).to_path_buf();
    fs_err::create_dir_all(&parent)?;
    let assembly = tempfile::Builder::new()
        .prefix(".fromgit-instance-")
        .tempdir_in(&parent)
        .with_context(|| {
            format!(
                "Failed to stage the instance repo in `{}`",
                parent.display()
            )
        })?;
    for change in &changes.instance {
        let path = assembly.path().join(&change.path);
        if let Some(dir) = path.parent() {
            fs_err::create_dir_all(dir)?;
        }
        let context = || format!("Failed to write the instance's `{}`", change.path.display());
        match &change.sealed {
            // Ciphertext, owner-only as sops makes it, and proven to decrypt
            // from the bytes on disk.
            Some(written) => fromgit_fs::write_checked(
                &path,
                change.after.as_bytes(),
                Mode::KeepOrPrivate,
                |bytes| written.verify(bytes),
            )
            .with_context(context)?,
            None => fromgit_fs::write(&path, change.after.as_bytes(), Mode::KeepOrPublic)
                .with_context(context)?,
        }
    }
    // Commit: the instance directory first (one rename), then the base files.
    if absolute.exists() {
        fs_err::remove_dir(&absolute)?; // empty, checked before
    }
    let assembled = assembly.keep();
    fs_err::rename(&assembled, &absolute)?;
    let mut done: Vec<&FileChange> = Vec::new();
    for (temp, change) in staged {
        if let Err(err) = temp.commit() {
            restore(&done, &absolute);
            return Err(err).with_context(|| {
                format!(
                    "Failed to replace `{}`; the split was rolled back",
                    change.path.display()
                )
            });
        }
        done.push(change);
    }
    // Last, the files whose names carried the domain, and the directories
    // they leave empty.
    for (old, _) in &changes.renamed {
        fs_err::remove_file(old)?;
        let mut dir = old.parent();
        while let Some(parent) = dir {
            if fs_err::remove_dir(parent).is_err() {
                break;
            }
            dir = parent.parent();
        }
    }
    Ok(())
}

fn restore(done: &[&FileChange], instance: &Path) {
    for change in done {
        let _ = match &change.before {
            Some(before) => fromgit_fs::write(&change.path, before.as_bytes(), Mode::KeepOrPublic)
                .map_err(std::io::Error::other),
            None => fs_err::remove_file(&change.path),
        };
    }
    let _ = fs_err::remove_dir_all(instance);
}
