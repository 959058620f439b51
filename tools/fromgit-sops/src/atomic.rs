//! Crash-safe replacement of a file: write a temporary file in the same
//! directory, flush it to disk, read it back and check it, then rename it
//! over the target. A crash or a failed check at any point leaves the old
//! file as it was; a temporary file that a crash left behind (ciphertext
//! only) is removed, with a warning, by the next write of the same file.
//!
//! A target that is a symlink is written through: the file it points to is
//! replaced and the link stays a link. A new file is owner-only (0600), as
//! sops creates its files, whatever the umask.

use std::io::Write;
use std::path::Path;

/// Why a file could not be replaced.
#[derive(Debug, thiserror::Error)]
pub enum AtomicWriteError<E: std::error::Error + 'static> {
    #[error("could not write `{path}`: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
    /// The check on the bytes read back from disk failed; the target is untouched.
    #[error("`{path}` was left unchanged: {source}")]
    Check { path: String, source: E },
}

/// Replaces `target` with `contents` once `check` accepts the bytes read back
/// from the temporary file. Keeps the target's permissions when it exists.
pub fn replace_checked<E, F>(
    target: &Path,
    contents: &[u8],
    check: F,
) -> Result<(), AtomicWriteError<E>>
where
    E: std::error::Error + 'static,
    F: FnOnce(&[u8]) -> Result<(), E>,
{
    replace(target, contents, None, check)
}

/// Like [`replace_checked`], for files derived from key material: owner-only
/// (0600) from their creation on, whatever the old file's mode.
pub fn replace_checked_private<E, F>(
    target: &Path,
    contents: &[u8],
    check: F,
) -> Result<(), AtomicWriteError<E>>
where
    E: std::error::Error + 'static,
    F: FnOnce(&[u8]) -> Result<(), E>,
{
    replace(target, contents, Some(0o600), check)
}

fn replace<E, F>(
    target: &Path,
    contents: &[u8],
    mode: Option<u32>,
    check: F,
) -> Result<(), AtomicWriteError<E>>
where
    E: std::error::Error + 'static,
    F: FnOnce(&[u8]) -> Result<(), E>,
{
    let display = target.display().to_string();
    let io = |source: std::io::Error| AtomicWriteError::Io {
        path: display.clone(),
        source,
    };
    let resolved;
    let target = if fs_err::symlink_metadata(target).is_ok_and(|m| m.file_type().is_symlink()) {
        resolved = fs_err::canonicalize(target).map_err(io)?;
        resolved.as_path()
    } else {
        target
    };
    let dir = match target.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent,
        _ => Path::new("."),
    };
    let name = target
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    remove_stale_temp_files(dir, &name);
    let mut temp = tempfile::Builder::new()
        .prefix(&format!(".{name}."))
        .suffix(".fromgit-tmp")
        .tempfile_in(dir)
        .map_err(io)?;
    // The final mode is set before any content is written.
    let permissions = match (mode, fs_err::metadata(target)) {
        (Some(mode), _) => std::os::unix::fs::PermissionsExt::from_mode(mode),
        (None, Ok(meta)) => meta.permissions(),
        (None, Err(err)) if err.kind() == std::io::ErrorKind::NotFound => {
            std::os::unix::fs::PermissionsExt::from_mode(0o600)
        }
        (None, Err(err)) => return Err(io(err)),
    };
    temp.as_file().set_permissions(permissions).map_err(io)?;
    temp.write_all(contents).map_err(io)?;
    temp.as_file().sync_all().map_err(io)?;
    let written = zeroize::Zeroizing::new(fs_err::read(temp.path()).map_err(io)?);
    check(&written).map_err(|source| AtomicWriteError::Check {
        path: display.clone(),
        source,
    })?;
    temp.persist(target).map_err(|err| io(err.error))?;
    // Make the rename itself durable.
    fs_err::File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io)?;
    Ok(())
}

/// Removes the `.NAME.*.fromgit-tmp` files an interrupted write of `name`
/// left in `dir`. Failing to list or remove them only costs a warning.
fn remove_stale_temp_files(dir: &Path, name: &str) {
    let prefix = format!(".{name}.");
    let Ok(entries) = fs_err::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let file_name = entry.file_name();
        let file_name = file_name.to_string_lossy();
        if file_name.starts_with(&prefix) && file_name.ends_with(".fromgit-tmp") {
            match fs_err::remove_file(entry.path()) {
                Ok(()) => tracing::warn!(
                    "removed `{}`, left behind by an interrupted write",
                    entry.path().display()
                ),
                Err(err) => tracing::warn!("{err}"),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, thiserror::Error)]
    #[error("rejected")]
    struct Rejected;

    fn leftovers(dir: &Path) -> Vec<String> {
        fs_err::read_dir(dir)
            .expect("readable")
            .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
            .collect()
    }

    #[test]
    fn a_failed_check_leaves_the_old_file_and_no_temp_file() {
        let dir = tempfile::tempdir().expect("tempdir");
        let target = dir.path().join("secrets.yaml");
        fs_err::write(&target, "old").expect("write");
        let result = replace_checked(&target, b"new", |_| Err(Rejected));
        assert!(matches!(result, Err(AtomicWriteError::Check { .. })));
        assert_eq!(fs_err::read_to_string(&target).expect("read"), "old");
        assert_eq!(leftovers(dir.path()), ["secrets.yaml"]);
    }

    #[test]
    fn new_files_are_owner_only_and_stale_temp_files_are_removed() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().expect("tempdir");
        let stale = dir.path().join(".secrets.yaml.Ab12Cd.fromgit-tmp");
        fs_err::write(&stale, "ENC[…]").expect("write");
        let other = dir.path().join(".other.yaml.Ab12Cd.fromgit-tmp");
        fs_err::write(&other, "x").expect("write");
        let target = dir.path().join("secrets.yaml");
        replace_checked(&target, b"new", |_| Ok::<(), Rejected>(())).expect("written");
        let mode = fs_err::metadata(&target)
            .expect("stat")
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        let mut left = leftovers(dir.path());
        left.sort();
        assert_eq!(left, [".other.yaml.Ab12Cd.fromgit-tmp", "secrets.yaml"]);
    }

    #[test]
    fn a_symlink_is_written_through_and_stays_a_link() {
        let dir = tempfile::tempdir().expect("tempdir");
        let real_dir = dir.path().join("store");
        fs_err::create_dir(&real_dir).expect("mkdir");
        let real = real_dir.join("secrets.yaml");
        fs_err::write(&real, "old").expect("write");
        let link = dir.path().join("link.yaml");
        std::os::unix::fs::symlink(&real, &link).expect("symlink");
        replace_checked(&link, b"new", |_| Ok::<(), Rejected>(())).expect("written");
        assert!(fs_err::symlink_metadata(&link)
            .expect("lstat")
            .file_type()
            .is_symlink());
        assert_eq!(fs_err::read_to_string(&real).expect("read"), "new");
        let dangling = dir.path().join("dangling.yaml");
        std::os::unix::fs::symlink(dir.path().join("missing"), &dangling).expect("symlink");
        assert!(replace_checked(&dangling, b"new", |_| Ok::<(), Rejected>(())).is_err());
        assert!(fs_err::symlink_metadata(&dangling)
            .expect("lstat")
            .file_type()
            .is_symlink());
    }

    #[test]
    fn a_passing_check_replaces_and_keeps_the_mode() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().expect("tempdir");
        let target = dir.path().join("secrets.yaml");
        fs_err::write(&target, "old").expect("write");
        fs_err::set_permissions(&target, std::fs::Permissions::from_mode(0o600)).expect("chmod");
        replace_checked(&target, b"new", |bytes| {
            assert_eq!(bytes, b"new");
            Ok::<(), Rejected>(())
        })
        .expect("replaced");
        assert_eq!(fs_err::read_to_string(&target).expect("read"), "new");
        let mode = fs_err::metadata(&target)
            .expect("stat")
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        assert_eq!(leftovers(dir.path()), ["secrets.yaml"]);
    }
}
