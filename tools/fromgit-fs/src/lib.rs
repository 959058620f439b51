//! The one write path of the fromgit tools. Every file the suite writes
//! (`-o` outputs, the instance repo and the base's files, sops files, keys,
//! snapshots, evidence, fingerprints, caches) goes through [`write`],
//! [`write_checked`], [`create_new`] or [`stage`]:
//!
//! 1. the bytes go to a temporary file in the target's directory
//!    (`.NAME.XXXXXX.fromgit-tmp`), whose mode is set before any byte is
//!    written, and are flushed to disk;
//! 2. the temporary file is read back: the bytes must be the ones given,
//!    and pass the caller's check (a sops file must decrypt, MAC included);
//! 3. it is renamed over the target, and the directory is flushed so that
//!    the rename itself is durable.
//!
//! A crash or a failed check at any point leaves the old file as it was; a
//! temporary file that a crash left behind is removed, with a warning, by
//! the next write of the same file. A target that is a symlink is written
//! through: the file it points to is replaced and the link stays a link.
//! A target that is a stream, a FIFO or a character device such as
//! `/dev/stdout`, has nothing to replace: the check runs on the bytes, which
//! are then written to it in place. Any other target that is not a regular
//! file is refused.
//!
//! Reading a tree is the other half of the crate's domain: [`walk`] is the
//! one directory walker of the suite.

pub mod walk;

use std::convert::Infallible;
use std::io::Write as _;
use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};

use zeroize::Zeroizing;

const TEMP_SUFFIX: &str = ".fromgit-tmp";
const RANDOM_LEN: usize = 6;

/// The permissions of a written file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Owner-only (0600) whatever the old file's mode: keys, evidence,
    /// fingerprints, anything derived from key material.
    Private,
    /// An existing file keeps its mode; a new one is owner-only (0600), as
    /// sops creates its files.
    KeepOrPrivate,
    /// An existing file keeps its mode; a new one is 0644: reports,
    /// snapshots, the repos' public files.
    KeepOrPublic,
}

/// Why a file could not be written; the target is left as it was.
#[derive(Debug, thiserror::Error)]
pub enum WriteError<E: std::error::Error + 'static = Infallible> {
    /// A file-system step failed.
    #[error("could not write `{}`: {source}", path.display())]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    /// The bytes read back from disk are not the bytes written.
    #[error("`{}` was left unchanged: the bytes read back differ from those written", path.display())]
    ReadBack { path: PathBuf },
    /// The caller's check of the bytes read back failed.
    #[error("`{}` was left unchanged: {source}", path.display())]
    Check { path: PathBuf, source: E },
    /// [`create_new`] found something at the path.
    #[error("`{}` already exists", path.display())]
    Exists { path: PathBuf },
    /// The target is a directory, a socket or a block device.
    #[error("`{}` is not a regular file", path.display())]
    NotAFile { path: PathBuf },
}

impl WriteError {
    /// The same error, typed for a write whose check fails with `E`.
    fn widen<E: std::error::Error + 'static>(self) -> WriteError<E> {
        match self {
            WriteError::Io { path, source } => WriteError::Io { path, source },
            WriteError::ReadBack { path } => WriteError::ReadBack { path },
            WriteError::Check { source, .. } => match source {},
            WriteError::Exists { path } => WriteError::Exists { path },
            WriteError::NotAFile { path } => WriteError::NotAFile { path },
        }
    }
}

/// Replaces (or creates) `target` with `contents`, read back and compared.
pub fn write(target: &Path, contents: &[u8], mode: Mode) -> Result<(), WriteError> {
    if is_stream(target) {
        return write_stream(target, contents);
    }
    stage(target, contents, mode, |_| Ok::<(), Infallible>(()))?.commit()
}

/// Like [`write`], once `check` also accepts the bytes read back.
pub fn write_checked<E, F>(
    target: &Path,
    contents: &[u8],
    mode: Mode,
    check: F,
) -> Result<(), WriteError<E>>
where
    E: std::error::Error + 'static,
    F: FnOnce(&[u8]) -> Result<(), E>,
{
    if is_stream(target) {
        check(contents).map_err(|source| WriteError::Check {
            path: target.to_path_buf(),
            source,
        })?;
        return write_stream(target, contents).map_err(WriteError::widen);
    }
    stage(target, contents, mode, check)?
        .commit()
        .map_err(WriteError::widen)
}

/// Whether `target` is a FIFO or a character device (`/dev/stdout`).
fn is_stream(target: &Path) -> bool {
    use std::os::unix::fs::FileTypeExt as _;
    fs_err::metadata(target).is_ok_and(|meta| {
        let kind = meta.file_type();
        kind.is_fifo() || kind.is_char_device()
    })
}

fn write_stream(target: &Path, contents: &[u8]) -> Result<(), WriteError> {
    fs_err::OpenOptions::new()
        .write(true)
        .open(target)
        .and_then(|mut stream| stream.write_all(contents))
        .map_err(|source| WriteError::Io {
            path: target.to_path_buf(),
            source,
        })
}

/// Creates `target`, which must not exist (not even as a symlink), with
/// `contents`, read back and compared; never replaces anything.
pub fn create_new(target: &Path, contents: &[u8], mode: Mode) -> Result<(), WriteError> {
    if fs_err::symlink_metadata(target).is_ok() {
        return Err(WriteError::Exists {
            path: target.to_path_buf(),
        });
    }
    let staged = prepare(target, target, contents, mode, |_| Ok::<(), Infallible>(()))?;
    let Staged { temp, target, dir } = staged;
    match temp.persist_noclobber(&target) {
        Ok(_) => sync_dir(&dir, &target),
        Err(err) if err.error.kind() == std::io::ErrorKind::AlreadyExists => {
            Err(WriteError::Exists { path: target })
        }
        Err(err) => Err(WriteError::Io {
            path: target,
            source: err.error,
        }),
    }
}

/// Writes, flushes, reads back and checks a temporary file beside `target`
/// without touching `target`: [`Staged::commit`] renames it into place,
/// dropping it removes it. For writes of several files that must all
/// happen or none.
pub fn stage<E, F>(
    target: &Path,
    contents: &[u8],
    mode: Mode,
    check: F,
) -> Result<Staged, WriteError<E>>
where
    E: std::error::Error + 'static,
    F: FnOnce(&[u8]) -> Result<(), E>,
{
    let resolved;
    let real = if fs_err::symlink_metadata(target).is_ok_and(|m| m.file_type().is_symlink()) {
        resolved = fs_err::canonicalize(target).map_err(|source| WriteError::Io {
            path: target.to_path_buf(),
            source,
        })?;
        resolved.as_path()
    } else {
        target
    };
    prepare(target, real, contents, mode, check)
}

/// A checked temporary file waiting to replace its target.
#[derive(Debug)]
#[must_use = "a staged file is removed unless committed"]
pub struct Staged {
    temp: tempfile::NamedTempFile,
    target: PathBuf,
    dir: PathBuf,
}

impl Staged {
    /// The file the staged one replaces (a symlink's target, resolved).
    pub fn target(&self) -> &Path {
        &self.target
    }

    /// Renames the staged file over its target and flushes the directory.
    pub fn commit(self) -> Result<(), WriteError> {
        let Staged { temp, target, dir } = self;
        temp.persist(&target).map_err(|err| WriteError::Io {
            path: target.clone(),
            source: err.error,
        })?;
        sync_dir(&dir, &target)
    }
}

/// `shown` names the target in errors; `real` is where it is written.
fn prepare<E, F>(
    shown: &Path,
    real: &Path,
    contents: &[u8],
    mode: Mode,
    check: F,
) -> Result<Staged, WriteError<E>>
where
    E: std::error::Error + 'static,
    F: FnOnce(&[u8]) -> Result<(), E>,
{
    let io = |source: std::io::Error| WriteError::Io {
        path: shown.to_path_buf(),
        source,
    };
    let dir = match real.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent,
        _ => Path::new("."),
    };
    let name = real
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let existing = fs_err::metadata(real);
    if existing.as_ref().is_ok_and(|meta| !meta.is_file()) {
        return Err(WriteError::NotAFile {
            path: shown.to_path_buf(),
        });
    }
    remove_stale_temp_files(dir, &name);
    let permissions = std::fs::Permissions::from_mode(match (mode, existing) {
        (Mode::Private, _) => 0o600,
        (Mode::KeepOrPrivate | Mode::KeepOrPublic, Ok(meta)) => meta.permissions().mode(),
        (Mode::KeepOrPrivate, Err(err)) if err.kind() == std::io::ErrorKind::NotFound => 0o600,
        (Mode::KeepOrPublic, Err(err)) if err.kind() == std::io::ErrorKind::NotFound => 0o644,
        (_, Err(err)) => return Err(io(err)),
    });
    let mut temp = tempfile::Builder::new()
        .prefix(&format!(".{name}."))
        .rand_bytes(RANDOM_LEN)
        .suffix(TEMP_SUFFIX)
        .permissions(permissions.clone())
        .tempfile_in(dir)
        .map_err(io)?;
    // The builder's mode is filtered by the umask; the final one is set
    // before any content is written.
    temp.as_file().set_permissions(permissions).map_err(io)?;
    temp.write_all(contents).map_err(io)?;
    temp.as_file().sync_all().map_err(io)?;
    let written = Zeroizing::new(fs_err::read(temp.path()).map_err(io)?);
    if written.as_slice() != contents {
        return Err(WriteError::ReadBack {
            path: shown.to_path_buf(),
        });
    }
    check(&written).map_err(|source| WriteError::Check {
        path: shown.to_path_buf(),
        source,
    })?;
    Ok(Staged {
        temp,
        target: real.to_path_buf(),
        dir: dir.to_path_buf(),
    })
}

fn sync_dir(dir: &Path, target: &Path) -> Result<(), WriteError> {
    fs_err::File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|source| WriteError::Io {
            path: target.to_path_buf(),
            source,
        })
}

/// Whether `file_name` is a temporary file of a write of `name`:
/// `.NAME.XXXXXX.fromgit-tmp`, exactly, so that the temporary file of
/// `a.b` is never taken for one of `a`.
fn is_temp_of(file_name: &str, name: &str) -> bool {
    file_name
        .strip_prefix('.')
        .and_then(|rest| rest.strip_prefix(name))
        .and_then(|rest| rest.strip_prefix('.'))
        .and_then(|rest| rest.strip_suffix(TEMP_SUFFIX))
        .is_some_and(|random| {
            random.len() == RANDOM_LEN && random.bytes().all(|b| b.is_ascii_alphanumeric())
        })
}

/// Removes the temporary files an interrupted write of `name` left in
/// `dir`. Failing to list or remove them only costs a warning.
fn remove_stale_temp_files(dir: &Path, name: &str) {
    let Ok(entries) = fs_err::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        if is_temp_of(&entry.file_name().to_string_lossy(), name) {
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
    use std::os::unix::fs::FileTypeExt as _;

    #[derive(Debug, thiserror::Error)]
    #[error("rejected")]
    struct Rejected;

    fn leftovers(dir: &Path) -> Vec<String> {
        let mut names: Vec<String> = fs_err::read_dir(dir)
            .expect("readable")
            .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    }

    fn mode_of(path: &Path) -> u32 {
        fs_err::metadata(path).expect("stat").permissions().mode() & 0o777
    }

    #[test]
    fn a_failed_check_leaves_the_old_file_and_no_temp_file() {
        let dir = tempfile::tempdir().expect("tempdir");
        let target = dir.path().join("secrets.yaml");
        fs_err::write(&target, "old").expect("write");
        let result = write_checked(&target, b"new", Mode::KeepOrPrivate, |_| Err(Rejected));
        assert!(matches!(result, Err(WriteError::Check { .. })));
        assert_eq!(fs_err::read_to_string(&target).expect("read"), "old");
        assert_eq!(leftovers(dir.path()), ["secrets.yaml"]);
    }

    #[test]
    fn the_check_sees_the_bytes_on_disk() {
        let dir = tempfile::tempdir().expect("tempdir");
        let target = dir.path().join("out.json");
        write_checked(&target, b"{}\n", Mode::KeepOrPublic, |bytes| {
            assert_eq!(bytes, b"{}\n");
            Ok::<(), Rejected>(())
        })
        .expect("written");
        assert_eq!(fs_err::read(&target).expect("read"), b"{}\n");
    }

    #[test]
    fn modes_are_explicit() {
        let dir = tempfile::tempdir().expect("tempdir");
        let public = dir.path().join("report.json");
        write(&public, b"a", Mode::KeepOrPublic).expect("written");
        assert_eq!(mode_of(&public), 0o644);
        let sops = dir.path().join("secrets.yaml");
        write(&sops, b"a", Mode::KeepOrPrivate).expect("written");
        assert_eq!(mode_of(&sops), 0o600);
        // An existing file keeps its mode unless the mode is private.
        fs_err::set_permissions(&public, std::fs::Permissions::from_mode(0o640)).expect("chmod");
        write(&public, b"b", Mode::KeepOrPublic).expect("written");
        assert_eq!(mode_of(&public), 0o640);
        write(&public, b"c", Mode::Private).expect("written");
        assert_eq!(mode_of(&public), 0o600);
        assert_eq!(fs_err::read(&public).expect("read"), b"c");
    }

    #[test]
    fn stale_temp_files_of_the_same_name_only_are_removed() {
        let dir = tempfile::tempdir().expect("tempdir");
        let stale = dir.path().join(".secrets.yaml.Ab12Cd.fromgit-tmp");
        fs_err::write(&stale, "ENC[…]").expect("write");
        let other = dir.path().join(".other.yaml.Ab12Cd.fromgit-tmp");
        fs_err::write(&other, "x").expect("write");
        // A temporary file of `secrets.yaml.bak` is not one of `secrets.yaml`.
        let longer = dir.path().join(".secrets.yaml.bak.Ab12Cd.fromgit-tmp");
        fs_err::write(&longer, "x").expect("write");
        let target = dir.path().join("secrets.yaml");
        write(&target, b"new", Mode::KeepOrPrivate).expect("written");
        assert_eq!(
            leftovers(dir.path()),
            [
                ".other.yaml.Ab12Cd.fromgit-tmp",
                ".secrets.yaml.bak.Ab12Cd.fromgit-tmp",
                "secrets.yaml"
            ]
        );
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
        write(&link, b"new", Mode::KeepOrPrivate).expect("written");
        assert!(fs_err::symlink_metadata(&link)
            .expect("lstat")
            .file_type()
            .is_symlink());
        assert_eq!(fs_err::read_to_string(&real).expect("read"), "new");
        let dangling = dir.path().join("dangling.yaml");
        std::os::unix::fs::symlink(dir.path().join("missing"), &dangling).expect("symlink");
        assert!(write(&dangling, b"new", Mode::KeepOrPrivate).is_err());
        assert!(fs_err::symlink_metadata(&dangling)
            .expect("lstat")
            .file_type()
            .is_symlink());
    }

    #[test]
    fn create_new_never_replaces() {
        let dir = tempfile::tempdir().expect("tempdir");
        let key = dir.path().join("key.txt");
        create_new(&key, b"one", Mode::Private).expect("created");
        assert_eq!(mode_of(&key), 0o600);
        let again = create_new(&key, b"two", Mode::Private);
        assert!(matches!(again, Err(WriteError::Exists { .. })), "{again:?}");
        assert_eq!(fs_err::read(&key).expect("read"), b"one");
        let link = dir.path().join("link.txt");
        std::os::unix::fs::symlink(dir.path().join("missing"), &link).expect("symlink");
        assert!(matches!(
            create_new(&link, b"x", Mode::Private),
            Err(WriteError::Exists { .. })
        ));
        assert!(!dir.path().join("missing").exists());
        assert_eq!(leftovers(dir.path()), ["key.txt", "link.txt"]);
    }

    #[test]
    fn a_staged_file_replaces_its_target_only_when_committed() {
        let dir = tempfile::tempdir().expect("tempdir");
        let target = dir.path().join("flake.nix");
        fs_err::write(&target, "old").expect("write");
        let staged = stage(&target, b"new", Mode::KeepOrPublic, |_| {
            Ok::<(), Rejected>(())
        })
        .expect("staged");
        assert_eq!(fs_err::read_to_string(&target).expect("read"), "old");
        drop(staged);
        assert_eq!(leftovers(dir.path()), ["flake.nix"]);
        stage(&target, b"new", Mode::KeepOrPublic, |_| {
            Ok::<(), Rejected>(())
        })
        .expect("staged")
        .commit()
        .expect("committed");
        assert_eq!(fs_err::read_to_string(&target).expect("read"), "new");
        assert_eq!(leftovers(dir.path()), ["flake.nix"]);
    }

    #[test]
    fn a_stream_is_written_in_place_and_anything_else_not_a_file_is_refused() {
        let dir = tempfile::tempdir().expect("tempdir");
        write(Path::new("/dev/null"), b"x", Mode::KeepOrPublic).expect("written");
        let rejected = write_checked(Path::new("/dev/null"), b"x", Mode::Private, |_| {
            Err(Rejected)
        });
        assert!(matches!(rejected, Err(WriteError::Check { .. })));
        assert!(fs_err::metadata("/dev/null")
            .expect("stat")
            .file_type()
            .is_char_device());
        let sub = dir.path().join("sub");
        fs_err::create_dir(&sub).expect("mkdir");
        assert!(matches!(
            write(&sub, b"x", Mode::KeepOrPublic),
            Err(WriteError::NotAFile { .. })
        ));
        assert!(sub.is_dir());
        assert_eq!(leftovers(dir.path()), ["sub"]);
    }

    #[test]
    fn errors_name_the_path() {
        let dir = tempfile::tempdir().expect("tempdir");
        let target = dir.path().join("missing-dir/out.json");
        let err = write(&target, b"x", Mode::KeepOrPublic).expect_err("no directory");
        assert!(err.to_string().contains("missing-dir/out.json"), "{err}");
    }
}
