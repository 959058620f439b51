//! The one directory walker of the suite. Each caller states every filter it
//! wants (names skipped, ignore files, hidden files, symlinks, depth, order)
//! instead of inheriting the `ignore` crate's defaults, which honour `.ignore`
//! files and global git excludes: a committed `.ignore` once hid files from a scan.

use std::ffi::OsStr;
use std::io;
use std::path::{Path, PathBuf};

/// Which ignore files hide entries from the walk. Each one is off unless
/// set; [`IgnoreFiles::NONE`] honours none, so that what a repository holds
/// cannot hide itself.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[allow(clippy::struct_excessive_bools)]
pub struct IgnoreFiles {
    /// `.gitignore` files in the walked directories.
    pub gitignore: bool,
    /// `.ignore` files (ripgrep's and the `ignore` crate's own).
    pub dot_ignore: bool,
    /// The repository's `.git/info/exclude`.
    pub git_exclude: bool,
    /// The user's global git excludes (`core.excludesFile`).
    pub git_global: bool,
    /// The ignore files of the root's parent directories too.
    pub parents: bool,
    /// The git files (`.gitignore`, excludes) only inside a git repository.
    pub require_git: bool,
}

impl IgnoreFiles {
    /// No ignore file hides anything.
    pub const NONE: Self = Self {
        gitignore: false,
        dot_ignore: false,
        git_exclude: false,
        git_global: false,
        parents: false,
        require_git: false,
    };
}

/// A rule on an entry's name: the entry, and all under it, is not walked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SkipName {
    /// The name is exactly this (`.git`).
    Exactly(&'static str),
    /// The name starts with this (`result`, which also covers `result-man`).
    StartsWith(&'static str),
}

impl SkipName {
    fn matches(self, name: &OsStr) -> bool {
        let name = name.as_encoded_bytes();
        match self {
            Self::Exactly(skipped) => name == skipped.as_bytes(),
            Self::StartsWith(prefix) => name.starts_with(prefix.as_bytes()),
        }
    }
}

/// What an entry is; with [`Walk::follow_symlinks`] a link that resolves
/// is what it points to, and one that does not stays a [`Kind::Symlink`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Dir,
    File,
    Symlink,
    /// A FIFO, socket or device.
    Other,
}

impl Kind {
    fn of(file_type: std::fs::FileType) -> Self {
        if file_type.is_symlink() {
            Self::Symlink
        } else if file_type.is_dir() {
            Self::Dir
        } else if file_type.is_file() {
            Self::File
        } else {
            Self::Other
        }
    }
}

/// One entry under the root (the root itself is not one).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    path: PathBuf,
    depth: usize,
    kind: Kind,
    followed: bool,
}

impl Entry {
    /// The path: the root joined with the names down to this entry.
    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn into_path(self) -> PathBuf {
        self.path
    }

    /// 1 for the root's children.
    pub fn depth(&self) -> usize {
        self.depth
    }

    pub fn kind(&self) -> Kind {
        self.kind
    }

    /// The entry's metadata; a symlink's own unless links are followed.
    ///
    /// # Errors
    /// When the entry cannot be stat'ed (it vanished, a link broke).
    pub fn metadata(&self) -> io::Result<std::fs::Metadata> {
        if self.followed {
            fs_err::metadata(&self.path)
        } else {
            fs_err::symlink_metadata(&self.path)
        }
    }
}

/// Why part of a tree could not be walked.
#[derive(Debug, thiserror::Error)]
pub enum WalkError {
    /// A directory (the root included) or entry that cannot be read.
    #[error("cannot list `{}`", path.display())]
    Unreadable {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("`{}` is not a directory", path.display())]
    NotADirectory { path: PathBuf },
    /// A followed symlink that leads back to a directory above it.
    #[error("`{}` is a symbolic link to its own ancestor `{}`", link.display(), ancestor.display())]
    Loop { link: PathBuf, ancestor: PathBuf },
    /// An error of the walk that names no path (such as a bad ignore file).
    #[error("cannot walk: {0}")]
    Other(String),
}

impl WalkError {
    fn from_ignore(err: ignore::Error) -> Self {
        match err {
            ignore::Error::WithDepth { err, .. } => Self::from_ignore(*err),
            ignore::Error::Loop { ancestor, child } => Self::Loop {
                link: child,
                ancestor,
            },
            ignore::Error::WithPath { path, err } => match *err {
                ignore::Error::WithDepth { err, .. } => match *err {
                    ignore::Error::Io(source) => Self::Unreadable {
                        path,
                        source: os_error(source),
                    },
                    other => Self::Other(format!("{}: {other}", path.display())),
                },
                ignore::Error::Io(source) => Self::Unreadable {
                    path,
                    source: os_error(source),
                },
                other => Self::Other(format!("{}: {other}", path.display())),
            },
            other => Self::Other(other.to_string()),
        }
    }
}

/// The operating system's error inside the walker's wrapping of it, whose
/// text repeats the path that the [`WalkError`] already names.
fn os_error(err: io::Error) -> io::Error {
    let os = err
        .get_ref()
        .and_then(|inner| inner.source())
        .and_then(|source| source.downcast_ref::<io::Error>());
    match os {
        Some(os) => match os.raw_os_error() {
            Some(code) => io::Error::from_raw_os_error(code),
            None => io::Error::new(os.kind(), os.to_string()),
        },
        None => err,
    }
}

/// A walk of the tree under `root`, configured explicitly. The defaults of
/// [`Walk::new`]: no name skipped, no ignore file honoured, hidden entries
/// walked, symlinks reported and never followed, any depth, sorted by name.
#[derive(Debug, Clone)]
pub struct Walk {
    root: PathBuf,
    skip: Vec<SkipName>,
    ignore_files: IgnoreFiles,
    include_hidden: bool,
    follow_symlinks: bool,
    max_depth: Option<usize>,
    sorted: bool,
}

impl Walk {
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Self {
            root: root.into(),
            skip: Vec::new(),
            ignore_files: IgnoreFiles::NONE,
            include_hidden: true,
            follow_symlinks: false,
            max_depth: None,
            sorted: true,
        }
    }

    /// Entries whose name matches `rule` are not walked, nor what is below
    /// them. The root is never skipped.
    #[must_use]
    pub fn skip(mut self, rule: SkipName) -> Self {
        self.skip.push(rule);
        self
    }

    #[must_use]
    pub fn ignore_files(mut self, ignore_files: IgnoreFiles) -> Self {
        self.ignore_files = ignore_files;
        self
    }

    /// Whether entries whose name starts with `.` are walked.
    #[must_use]
    pub fn include_hidden(mut self, yes: bool) -> Self {
        self.include_hidden = yes;
        self
    }

    /// Whether a symlink is walked as what it points to (loops are
    /// [`WalkError::Loop`]); otherwise it is an entry of [`Kind::Symlink`].
    #[must_use]
    pub fn follow_symlinks(mut self, yes: bool) -> Self {
        self.follow_symlinks = yes;
        self
    }

    /// Only entries at most `depth` levels below the root (1: its children).
    #[must_use]
    pub fn max_depth(mut self, depth: usize) -> Self {
        self.max_depth = Some(depth);
        self
    }

    /// Whether each directory's entries come sorted by name (the walk is
    /// then deterministic), or in the order the file system lists them.
    #[must_use]
    pub fn sorted(mut self, yes: bool) -> Self {
        self.sorted = yes;
        self
    }

    /// Every entry under the root, depth first, and the errors met on the
    /// way; each caller decides whether an error is fatal.
    pub fn entries(&self) -> impl Iterator<Item = Result<Entry, WalkError>> {
        let ignore_files = self.ignore_files;
        let mut builder = ignore::WalkBuilder::new(&self.root);
        builder
            .standard_filters(false)
            .hidden(!self.include_hidden)
            .ignore(ignore_files.dot_ignore)
            .git_ignore(ignore_files.gitignore)
            .git_exclude(ignore_files.git_exclude)
            .git_global(ignore_files.git_global)
            .parents(ignore_files.parents)
            .require_git(ignore_files.require_git)
            .ignore_case_insensitive(false)
            .follow_links(self.follow_symlinks)
            .same_file_system(false)
            .max_depth(self.max_depth);
        if self.sorted {
            builder.sort_by_file_name(OsStr::cmp);
        }
        let skip = self.skip.clone();
        if !skip.is_empty() {
            builder.filter_entry(move |entry| !skip.iter().any(|r| r.matches(entry.file_name())));
        }
        let follow = self.follow_symlinks;
        let skip = self.skip.clone();
        let include_hidden = self.include_hidden;
        let root = self.root.clone();
        builder.build().filter_map(move |item| match item {
            Ok(entry) if entry.depth() == 0 => {
                let is_dir = entry.file_type().is_some_and(|t| t.is_dir());
                (!is_dir).then(|| {
                    Err(WalkError::NotADirectory {
                        path: entry.into_path(),
                    })
                })
            }
            Ok(entry) => {
                let kind = entry.file_type().map_or(Kind::Other, Kind::of);
                Some(Ok(Entry {
                    depth: entry.depth(),
                    path: entry.into_path(),
                    kind,
                    followed: follow,
                }))
            }
            Err(err) => {
                let err = WalkError::from_ignore(err);
                if follow {
                    if let Some(link) = broken_link(&root, &err) {
                        let name = link.path.file_name().unwrap_or_default();
                        return (!skipped(name, &skip, include_hidden)).then_some(Ok(link));
                    }
                }
                Some(Err(err))
            }
        })
    }
}

/// When following links, a link that cannot be followed (its target is
/// missing) is reported as the symlink it is; `None` when `err` is no such
/// link.
fn broken_link(root: &Path, err: &WalkError) -> Option<Entry> {
    let WalkError::Unreadable { path, .. } = err else {
        return None;
    };
    let depth = path.strip_prefix(root).ok()?.components().count();
    let is_link = fs_err::symlink_metadata(path).is_ok_and(|m| m.file_type().is_symlink());
    // A link to a directory that cannot be listed was walked as that
    // directory: its error stays an error.
    let broken = fs_err::metadata(path).is_err();
    (depth > 0 && is_link && broken).then(|| Entry {
        path: path.clone(),
        depth,
        kind: Kind::Symlink,
        followed: false,
    })
}

/// Whether a name is kept out of the walk by the skip rules or as hidden.
fn skipped(name: &OsStr, skip: &[SkipName], include_hidden: bool) -> bool {
    let hidden = !include_hidden && name.as_encoded_bytes().starts_with(b".");
    hidden || skip.iter().any(|rule| rule.matches(name))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tree() -> tempfile::TempDir {
        let dir = tempfile::tempdir().expect("tempdir");
        for (path, text) in [
            (".ignore", "*\n"),
            (".gitignore", "b.txt\n"),
            (".env", "TOKEN=x\n"),
            ("a.txt", "a\n"),
            ("b.txt", "b\n"),
            ("sub/c.nix", "{}\n"),
            ("sub/deeper/d.nix", "{}\n"),
            (".git/config", "[core]\n"),
            ("result-man/e", "e\n"),
        ] {
            let path = dir.path().join(path);
            fs_err::create_dir_all(path.parent().expect("parent")).expect("mkdir");
            fs_err::write(&path, text).expect("write");
        }
        dir
    }

    fn names(walk: &Walk, root: &Path) -> Vec<String> {
        walk.entries()
            .map(|entry| {
                let entry = entry.expect("walkable");
                let name = entry.path().strip_prefix(root).expect("under root");
                let name = name.to_string_lossy().into_owned();
                match entry.kind() {
                    Kind::Dir => format!("{name}/"),
                    Kind::Symlink => format!("{name}@"),
                    Kind::File | Kind::Other => name,
                }
            })
            .collect()
    }

    #[test]
    fn an_ignore_file_hides_nothing_unless_asked() {
        let dir = tree();
        let all = names(
            &Walk::new(dir.path()).skip(SkipName::Exactly(".git")),
            dir.path(),
        );
        assert_eq!(
            all,
            [
                ".env",
                ".gitignore",
                ".ignore",
                "a.txt",
                "b.txt",
                "result-man/",
                "result-man/e",
                "sub/",
                "sub/c.nix",
                "sub/deeper/",
                "sub/deeper/d.nix"
            ]
        );
        let honoured = IgnoreFiles {
            dot_ignore: true,
            ..IgnoreFiles::NONE
        };
        let hidden = names(&Walk::new(dir.path()).ignore_files(honoured), dir.path());
        assert!(hidden.is_empty(), "{hidden:?}");
    }

    #[test]
    fn a_gitignore_hides_only_when_asked() {
        let dir = tree();
        let git = IgnoreFiles {
            gitignore: true,
            ..IgnoreFiles::NONE
        };
        let walk = Walk::new(dir.path()).skip(SkipName::Exactly(".git"));
        assert!(names(&walk, dir.path()).contains(&"b.txt".to_owned()));
        assert!(!names(&walk.ignore_files(git), dir.path()).contains(&"b.txt".to_owned()));
    }

    #[test]
    fn names_hidden_entries_and_depth_are_the_callers_choice() {
        let dir = tree();
        let walk = Walk::new(dir.path())
            .include_hidden(false)
            .skip(SkipName::StartsWith("result"))
            .max_depth(2);
        assert_eq!(
            names(&walk, dir.path()),
            ["a.txt", "b.txt", "sub/", "sub/c.nix", "sub/deeper/"]
        );
    }

    #[test]
    fn a_symlink_is_reported_and_followed_only_when_asked() {
        let dir = tempfile::tempdir().expect("tempdir");
        fs_err::create_dir(dir.path().join("real")).expect("mkdir");
        fs_err::write(dir.path().join("real/f"), "f").expect("write");
        std::os::unix::fs::symlink("real", dir.path().join("link")).expect("symlink");
        std::os::unix::fs::symlink("missing", dir.path().join("broken")).expect("symlink");
        let walk = Walk::new(dir.path());
        assert_eq!(
            names(&walk, dir.path()),
            ["broken@", "link@", "real/", "real/f"]
        );
        assert_eq!(
            names(&walk.follow_symlinks(true), dir.path()),
            ["broken@", "link/", "link/f", "real/", "real/f"]
        );
    }

    #[test]
    fn a_loop_is_an_error_when_following() {
        let dir = tempfile::tempdir().expect("tempdir");
        fs_err::create_dir(dir.path().join("d")).expect("mkdir");
        std::os::unix::fs::symlink("..", dir.path().join("d/up")).expect("symlink");
        let errors: Vec<WalkError> = Walk::new(dir.path())
            .follow_symlinks(true)
            .entries()
            .filter_map(Result::err)
            .collect();
        assert!(
            matches!(errors.as_slice(), [WalkError::Loop { .. }]),
            "{errors:?}"
        );
    }

    #[test]
    fn an_unreadable_root_or_a_file_is_an_error_naming_it() {
        let dir = tempfile::tempdir().expect("tempdir");
        let missing = dir.path().join("missing");
        let errors: Vec<String> = Walk::new(&missing)
            .entries()
            .map(|e| e.expect_err("no root").to_string())
            .collect();
        assert_eq!(errors, [format!("cannot list `{}`", missing.display())]);
        let file = dir.path().join("file");
        fs_err::write(&file, "x").expect("write");
        let errors: Vec<String> = Walk::new(&file)
            .entries()
            .map(|e| e.expect_err("a file").to_string())
            .collect();
        assert_eq!(errors, [format!("`{}` is not a directory", file.display())]);
    }

    #[test]
    fn the_cause_is_the_systems_error_alone() {
        let dir = tempfile::tempdir().expect("tempdir");
        let missing = dir.path().join("missing");
        let Some(Err(WalkError::Unreadable { source, .. })) = Walk::new(&missing).entries().next()
        else {
            panic!("no error");
        };
        assert_eq!(source.kind(), io::ErrorKind::NotFound);
        assert!(!source.to_string().contains("missing"), "{source}");
    }
}
