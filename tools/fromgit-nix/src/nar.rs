//! NAR serialisation (`nix-store --dump`), streamed into a hasher: the NAR
//! is never held in memory.

use std::io::{self, Write};
use std::os::fd::{BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt as _;
use std::path::{Path, PathBuf};

use rustix::fs::{self, AtFlags, FileType, Mode, OFlags};

use sha2::{Digest as _, Sha256};
use thiserror::Error;

use crate::hash::Sha256Hash;

/// Why a path could not be serialised.
#[derive(Debug, Error)]
pub enum NarError {
    /// Writing the serialisation failed.
    #[error(transparent)]
    Io(#[from] io::Error),
    /// Reading `path` failed.
    #[error("cannot read `{path}`: {source}")]
    At {
        /// The path being read.
        path: PathBuf,
        /// The cause.
        source: io::Error,
    },
    /// A device node, FIFO or socket: NAR cannot represent it.
    #[error("`{0}` has an unsupported file type (not a regular file, directory or symlink)")]
    UnsupportedType(PathBuf),
    /// Directories nested deeper than [`MAX_DEPTH`]: refused before the
    /// recursion outgrows the stack (each level also holds a descriptor).
    #[error("`{0}` is nested more than {MAX_DEPTH} directories deep")]
    TooDeep(PathBuf),
    /// The file's size changed while it was read.
    #[error("`{0}` changed size while it was being read")]
    SizeChanged(PathBuf),
}

fn pad(w: &mut impl Write, len: u64) -> io::Result<()> {
    let rem = (8 - len % 8) % 8;
    // `rem` is below 8.
    w.write_all(&[0u8; 8][..usize::try_from(rem).unwrap_or(0)])
}

fn s(w: &mut impl Write, bytes: &[u8]) -> io::Result<()> {
    let len = bytes.len() as u64;
    w.write_all(&len.to_le_bytes())?;
    w.write_all(bytes)?;
    pad(w, len)
}

thread_local! {
    /// One read buffer per thread, reused for every file (zeroed once).
    static READ_BUFFER: std::cell::RefCell<Vec<u8>> = std::cell::RefCell::new(vec![0u8; 128 * 1024]);
}

/// An I/O error on `path`, named in the message.
fn at(path: &Path, err: rustix::io::Errno) -> NarError {
    NarError::At {
        path: path.to_owned(),
        source: err.into(),
    }
}

/// Writes a regular file's `contents` field from an open file of `len` bytes.
fn contents(w: &mut impl Write, path: &Path, fd: &OwnedFd, len: u64) -> Result<(), NarError> {
    w.write_all(&len.to_le_bytes())?;
    READ_BUFFER.with(|cell| read_contents(w, path, fd, len, &mut cell.borrow_mut()))?;
    pad(w, len)?;
    Ok(())
}

fn read_contents(
    w: &mut impl Write,
    path: &Path,
    fd: &OwnedFd,
    len: u64,
    buf: &mut [u8],
) -> Result<(), NarError> {
    let mut left = len;
    loop {
        // Ask for one byte more than is left: on a regular file a short read
        // means end of file, so a file that grew is caught without an extra
        // read call, and one that shrank reads 0 bytes early.
        let want = usize::try_from((left + 1).min(buf.len() as u64)).unwrap_or(buf.len());
        let n = rustix::io::read(fd, &mut buf[..want]).map_err(|e| at(path, e))?;
        if n as u64 > left {
            return Err(NarError::SizeChanged(path.to_owned()));
        }
        if n == 0 {
            if left == 0 {
                break;
            }
            return Err(NarError::SizeChanged(path.to_owned()));
        }
        w.write_all(&buf[..n])?;
        left -= n as u64;
        if left == 0 && n < want {
            break;
        }
    }
    Ok(())
}

/// A regular file, already open.
fn regular(w: &mut impl Write, path: &Path, fd: &OwnedFd) -> Result<(), NarError> {
    let st = fs::fstat(fd).map_err(|e| at(path, e))?;
    if FileType::from_raw_mode(st.st_mode) != FileType::RegularFile {
        return Err(NarError::UnsupportedType(path.to_owned()));
    }
    s(w, b"regular")?;
    if st.st_mode & 0o100 != 0 {
        s(w, b"executable")?;
        s(w, b"")?;
    }
    s(w, b"contents")?;
    let len = u64::try_from(st.st_size).unwrap_or(0);
    contents(w, path, fd, len)
}

const READ: OFlags = OFlags::RDONLY
    .union(OFlags::CLOEXEC)
    .union(OFlags::NOFOLLOW);

/// The deepest directory nesting serialised. Store paths nest a few dozen
/// levels; the serialiser recurses once per level and keeps each level's
/// directory open.
pub const MAX_DEPTH: usize = 512;

/// A directory, already open: its entries are read from the descriptor and
/// each child is opened relative to it (no path walk from the root).
fn directory(w: &mut impl Write, path: &Path, fd: OwnedFd, depth: usize) -> Result<(), NarError> {
    if depth > MAX_DEPTH {
        return Err(NarError::TooDeep(path.to_owned()));
    }
    s(w, b"directory")?;
    let mut dir = fs::Dir::new(fd).map_err(|e| at(path, e))?;
    let mut entries: Vec<(Vec<u8>, FileType)> = Vec::new();
    while let Some(entry) = dir.read() {
        let entry = entry.map_err(|e| at(path, e))?;
        let name = entry.file_name().to_bytes();
        if name == b"." || name == b".." {
            continue;
        }
        entries.push((name.to_vec(), entry.file_type()));
    }
    entries.sort_by(|a, b| a.0.cmp(&b.0));
    let dirfd = dir.fd().map_err(|e| at(path, e))?;
    for (name, kind) in entries {
        let child = path.join(std::ffi::OsStr::from_bytes(&name));
        s(w, b"entry")?;
        s(w, b"(")?;
        s(w, b"name")?;
        s(w, &name)?;
        s(w, b"node")?;
        let kind = if kind == FileType::Unknown {
            let st = fs::statat(dirfd, name.as_slice(), AtFlags::SYMLINK_NOFOLLOW)
                .map_err(|e| at(&child, e))?;
            FileType::from_raw_mode(st.st_mode)
        } else {
            kind
        };
        node_at(w, &child, dirfd, &name, kind, depth + 1)?;
        s(w, b")")?;
    }
    Ok(())
}

/// Serialises the node `name` of the directory `dirfd` (or a path, with `CWD`).
fn node_at(
    w: &mut impl Write,
    path: &Path,
    dirfd: BorrowedFd<'_>,
    name: &[u8],
    kind: FileType,
    depth: usize,
) -> Result<(), NarError> {
    s(w, b"(")?;
    s(w, b"type")?;
    match kind {
        FileType::Symlink => {
            s(w, b"symlink")?;
            s(w, b"target")?;
            let target = fs::readlinkat(dirfd, name, Vec::new()).map_err(|e| at(path, e))?;
            s(w, target.as_bytes())?;
        }
        FileType::RegularFile => {
            let fd = fs::openat(dirfd, name, READ, Mode::empty()).map_err(|e| at(path, e))?;
            regular(w, path, &fd)?;
        }
        FileType::Directory => {
            let fd = fs::openat(dirfd, name, READ.union(OFlags::DIRECTORY), Mode::empty())
                .map_err(|e| at(path, e))?;
            directory(w, path, fd, depth)?;
        }
        _ => return Err(NarError::UnsupportedType(path.to_owned())),
    }
    s(w, b")")?;
    Ok(())
}

/// Writes the NAR serialisation of `path` (not followed if it is a symlink).
pub fn dump(path: &Path, w: &mut impl Write) -> Result<(), NarError> {
    s(w, b"nix-archive-1")?;
    let name = path.as_os_str().as_bytes();
    let st = fs::statat(fs::CWD, name, AtFlags::SYMLINK_NOFOLLOW).map_err(|e| at(path, e))?;
    node_at(
        w,
        path,
        fs::CWD,
        name,
        FileType::from_raw_mode(st.st_mode),
        1,
    )
}

/// A writer that hashes and counts what passes through it.
struct HashCounter {
    hasher: Sha256,
    len: u64,
}

impl Write for HashCounter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.hasher.update(buf);
        self.len += buf.len() as u64;
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// The NAR hash and NAR size of `path`, computed while streaming.
pub fn hash_path(path: &Path) -> Result<(Sha256Hash, u64), NarError> {
    // No write buffer: the hasher keeps its own partial block, and file
    // contents go from the read buffer straight into it.
    let mut w = HashCounter {
        hasher: Sha256::new(),
        len: 0,
    };
    dump(path, &mut w)?;
    Ok((Sha256Hash(w.hasher.finalize().into()), w.len))
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt as _;

    use super::*;

    fn write(path: &Path, data: &[u8], mode: u32) {
        fs_err::write(path, data).unwrap();
        fs_err::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
    }

    #[test]
    fn vector_n1_directory() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("t");
        fs_err::create_dir(&root).unwrap();
        write(&root.join("a"), b"hello\n", 0o644);
        write(&root.join("b"), b"#!/bin/sh\n", 0o755);
        std::os::unix::fs::symlink("a", root.join("c")).unwrap();
        write(&root.join("B"), b"x", 0o644);
        let mut nar = Vec::new();
        dump(&root, &mut nar).unwrap();
        assert_eq!(nar.len(), 904);
        assert_eq!(&nar[..8], &13u64.to_le_bytes());
        let (hash, size) = hash_path(&root).unwrap();
        assert_eq!(size, 904);
        assert_eq!(
            hash.to_hex(),
            "faff3005b947c9d41204e314ed55ec97654b85ae1b77a58b2f49862798e3500a"
        );
        assert_eq!(
            hash.to_nix32(),
            "02jhwfc2g1j95y5saxqvms2lnrcpxiays5730h9d9ja7p42k1zzs"
        );
    }

    #[test]
    fn vectors_n2_to_n6_single_nodes() {
        let dir = tempfile::tempdir().unwrap();
        let empty = dir.path().join("empty");
        fs_err::create_dir(&empty).unwrap();
        let plain = dir.path().join("plain");
        write(&plain, b"hello\n", 0o644);
        let exec = dir.path().join("exec");
        write(&exec, b"hello\n", 0o744);
        let group_x = dir.path().join("group-x");
        write(&group_x, b"hello\n", 0o654);
        let link = dir.path().join("link");
        std::os::unix::fs::symlink("/etc/passwd", &link).unwrap();
        let cases = [
            (
                &empty,
                96,
                "0sjjj9z1dhilhpc8pq4154czrb79z9cm044jvn75kxcjv6v5l2m5",
            ),
            (
                &plain,
                120,
                "04zwf782yjwnh3q6hz5izfd6jyip8kgw6g6yj43fiqhbyhdd0dqw",
            ),
            (
                &exec,
                152,
                "1yhh619m3cy1mird7f0l7zsmiv9rayqn075zinda2g7rscwn0hv5",
            ),
            (
                &group_x,
                120,
                "04zwf782yjwnh3q6hz5izfd6jyip8kgw6g6yj43fiqhbyhdd0dqw",
            ),
            (
                &link,
                128,
                "0k3jvaz5x59dc26nr87r7s907bj59fiv66wcy4w3svkal9qx7b0p",
            ),
        ];
        for (path, size, nix32) in cases {
            let (hash, got) = hash_path(path).unwrap();
            assert_eq!(
                (got, hash.to_nix32().as_str()),
                (size, nix32),
                "{}",
                path.display()
            );
        }
    }

    #[test]
    fn directories_nested_past_the_limit_are_refused() {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path().join("deep");
        // Built relative to each new level: the full path outgrows PATH_MAX.
        fs_err::create_dir(&root).unwrap();
        let mut fd = fs::open(&root, READ.union(OFlags::DIRECTORY), Mode::empty()).unwrap();
        for _ in 0..MAX_DEPTH + 5 {
            fs::mkdirat(&fd, "d", Mode::from_raw_mode(0o755)).unwrap();
            fd = fs::openat(&fd, "d", READ.union(OFlags::DIRECTORY), Mode::empty()).unwrap();
        }
        assert!(matches!(hash_path(&root), Err(NarError::TooDeep(_))));
    }

    #[test]
    fn rejects_fifos_and_missing_paths() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("missing");
        let err = hash_path(&missing).unwrap_err().to_string();
        assert!(err.contains("missing"), "{err}");
        // A FIFO inside a tree is refused from its directory entry, never opened.
        let tree = dir.path().join("tree");
        fs_err::create_dir(&tree).unwrap();
        let status = std::process::Command::new("mkfifo")
            .arg(tree.join("pipe"))
            .status();
        if status.is_ok_and(|s| s.success()) {
            let err = hash_path(&tree).unwrap_err();
            assert!(matches!(err, NarError::UnsupportedType(_)), "{err}");
        }
    }

    #[test]
    fn files_of_every_size_round_trip_through_the_reader() {
        let dir = tempfile::tempdir().unwrap();
        for len in [
            0usize,
            1,
            7,
            8,
            9,
            128 * 1024 - 1,
            128 * 1024,
            128 * 1024 + 1,
            300_000,
        ] {
            let path = dir.path().join(format!("f{len}"));
            let data: Vec<u8> = (0..len).map(|i| u8::try_from(i % 251).unwrap()).collect();
            write(&path, &data, 0o644);
            let mut nar = Vec::new();
            dump(&path, &mut nar).unwrap();
            let padded = len.div_ceil(8) * 8;
            // magic 24, "(" "type" "regular" "contents" 16 each, length 8,
            // the data and its padding, ")" 16: the N3 vector has 120 bytes.
            assert_eq!(nar.len(), 112 + padded, "{len}");
            assert_eq!(&nar[96..96 + len], &data[..]);
        }
    }
}
