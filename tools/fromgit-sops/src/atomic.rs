//! Crash-safe replacement of a file: write a temporary file in the same
//! directory, flush it to disk, read it back and check it, then rename it
//! over the target. A crash or a failed check at any point leaves the old
//! file as it was and no temporary file behind.

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
    let dir = match target.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent,
        _ => Path::new("."),
    };
    let name = target
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
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
            std::os::unix::fs::PermissionsExt::from_mode(0o644)
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
