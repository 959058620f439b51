//! Tree mode: the files of a directory, scanned in parallel. This is what a
//! flake check can prove; history needs git.
//!
//! Ignore files are written by whoever writes the repository, so they must
//! not be able to hide what the repository holds: a committed `.ignore`
//! holding `*` would otherwise blind the scan. Inside a git work tree every
//! tracked file (`git add -f` included) is scanned whatever `.gitignore`,
//! `.ignore`, `.rgignore` or `.git/info/exclude` say; those files only skip
//! untracked files, and each skipped entry is reported. Outside git (a
//! flake's source in the Nix store) nothing is known to be untracked, so no
//! ignore file is honoured at all. Hidden files are always included,
//! because `.env` files are where secrets hide.

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use fromgit_fs::walk::{IgnoreFiles, Kind, SkipName, Walk};
use rayon::prelude::*;

use crate::engine::{display_bytes, Engine, Hit};
use crate::report::{Coverage, Skipped};
use crate::sopscheck::{self, Policy};

pub struct TreeHit {
    pub hit: Hit,
    pub path: String,
    pub file_name: bool,
}

pub struct TreeOutcome {
    pub hits: Vec<TreeHit>,
    pub coverage: Coverage,
    pub unproven: Vec<String>,
}

fn relative(root: &Path, path: &Path) -> String {
    let rel = path.strip_prefix(root).unwrap_or(path);
    #[cfg(unix)]
    {
        use std::os::unix::ffi::OsStrExt as _;
        display_bytes(rel.as_os_str().as_bytes())
    }
    #[cfg(not(unix))]
    {
        rel.to_string_lossy().into_owned()
    }
}

/// A file's hits, why it was skipped or unreadable, and its size.
type FileResult = (Vec<TreeHit>, Option<Skipped>, Option<String>, u64);

/// The regular files tracked by the git index of the work tree holding
/// `root`, relative to `root`; `None` when `root` is not in a work tree.
/// `Err` when there is a work tree but its index cannot be read.
fn tracked_files(root: &Path) -> Option<Result<HashSet<PathBuf>, String>> {
    let repo = gix::discover(root).ok()?;
    let workdir = repo.workdir()?.canonicalize().ok()?;
    let root = root.canonicalize().ok()?;
    let index = match repo.index_or_empty() {
        Ok(index) => index,
        Err(err) => return Some(Err(format!("cannot read the git index: {err}"))),
    };
    let mut tracked = HashSet::new();
    for entry in index.entries() {
        if !matches!(
            entry.mode,
            gix::index::entry::Mode::FILE | gix::index::entry::Mode::FILE_EXECUTABLE
        ) {
            continue;
        }
        let path = entry.path(&index);
        #[cfg(unix)]
        let path = {
            use std::os::unix::ffi::OsStrExt as _;
            workdir.join(std::ffi::OsStr::from_bytes(path))
        };
        #[cfg(not(unix))]
        let path = workdir.join(path.to_string());
        if let Ok(relative) = path.strip_prefix(&root) {
            tracked.insert(relative.to_path_buf());
        }
    }
    Some(Ok(tracked))
}

/// The entries an ignore file kept out of the walk: the children of walked
/// directories that the walk did not yield (a directory is one entry, with
/// a trailing `/`), except tracked files, which are scanned anyway; an
/// ignored directory holding tracked files is opened to list the rest.
fn ignored_entries(
    root: &Path,
    walked: &HashSet<PathBuf>,
    walked_dirs: &[PathBuf],
    tracked: &HashSet<PathBuf>,
) -> Vec<String> {
    let holds_tracked: HashSet<&Path> = tracked.iter().flat_map(|p| p.ancestors()).collect();
    let mut out = Vec::new();
    let mut dirs: Vec<(PathBuf, bool)> = walked_dirs.iter().map(|d| (d.clone(), false)).collect();
    while let Some((dir, inside_ignored)) = dirs.pop() {
        // The children of one directory, as the file system lists them; an
        // unreadable directory or entry is left out, as the walk left it.
        let children = Walk::new(&dir)
            .skip(SkipName::Exactly(".git"))
            .max_depth(1)
            .sorted(false)
            .entries()
            .flatten();
        for child in children {
            let is_dir = child.kind() == Kind::Dir;
            let path = child.into_path();
            if !inside_ignored && walked.contains(&path) {
                continue;
            }
            let relative = path.strip_prefix(root).unwrap_or(&path);
            if tracked.contains(relative) {
                continue;
            }
            if is_dir && holds_tracked.contains(relative) {
                dirs.push((path, true));
                continue;
            }
            let mut shown = self::relative(root, &path);
            if is_dir {
                shown.push('/');
            }
            out.push(shown);
        }
    }
    out.sort();
    out
}

/// Scans the tree under `root`; `progress` draws the walk's count and the
/// scan's bar on stderr when it is a terminal.
pub fn scan(
    root: &Path,
    engine: &Engine,
    max_size: u64,
    progress: bool,
) -> anyhow::Result<TreeOutcome> {
    let policy = Policy::load(root)?;
    let mut unproven = Vec::new();
    let tracked = match tracked_files(root) {
        Some(Ok(tracked)) => Some(tracked),
        Some(Err(reason)) => {
            tracing::warn!("{reason}: ignore files are not honoured");
            None
        }
        None => None,
    };
    // Inside a work tree the repository's own ignore files skip untracked
    // entries (tracked ones are added back below); never the user's global
    // excludes, nor the ignore files of the directories above the root.
    let honour = tracked.is_some();
    let walk = Walk::new(root)
        .skip(SkipName::Exactly(".git"))
        .ignore_files(IgnoreFiles {
            gitignore: honour,
            dot_ignore: honour,
            git_exclude: honour,
            git_global: false,
            parents: false,
            require_git: false,
        })
        .include_hidden(true)
        .follow_symlinks(false)
        .sorted(false);
    let mut files: Vec<(PathBuf, u64)> = Vec::new();
    let mut walked: HashSet<PathBuf> = HashSet::from([root.to_path_buf()]);
    let mut walked_dirs: Vec<PathBuf> = vec![root.to_path_buf()];
    let listing = fromgit_cli::progress::counter(progress, "walking the tree");
    for entry in walk.entries() {
        listing.inc(1);
        match entry {
            Ok(entry) => {
                match entry.kind() {
                    Kind::File => {
                        let size = entry.metadata().map_or(0, |m| m.len());
                        files.push((entry.path().to_path_buf(), size));
                    }
                    Kind::Dir => walked_dirs.push(entry.path().to_path_buf()),
                    Kind::Symlink | Kind::Other => {}
                }
                walked.insert(entry.into_path());
            }
            Err(err) => unproven.push(format!("cannot walk: {:#}", anyhow::Error::new(err))),
        }
    }
    listing.finish_and_clear();
    let mut ignored = Vec::new();
    if let Some(tracked) = &tracked {
        for relative in tracked {
            let path = root.join(relative);
            if walked.contains(&path) {
                continue;
            }
            // Tracked, hidden from the walk by an ignore file: scanned anyway.
            if let Ok(meta) = fs_err::symlink_metadata(&path) {
                if meta.is_file() {
                    files.push((path, meta.len()));
                }
            }
        }
        ignored = ignored_entries(root, &walked, &walked_dirs, tracked);
    }
    files.sort();
    let bar = fromgit_cli::progress::bar(progress, files.len() as u64, "scanning files");
    let results: Vec<FileResult> = files
        .par_iter()
        .inspect(|_| bar.inc(1))
        .map(|(path, size)| {
            let rel = relative(root, path);
            let mut hits: Vec<TreeHit> = engine
                .scan(rel.as_bytes())
                .into_iter()
                .map(|hit| TreeHit {
                    hit,
                    path: rel.clone(),
                    file_name: true,
                })
                .collect();
            if *size > max_size {
                let skipped = Skipped {
                    what: format!("`{rel}`"),
                    size: *size,
                    reason: format!("larger than --max-size ({max_size} bytes)"),
                };
                return (hits, Some(skipped), None, 0);
            }
            let data = match fs_err::read(path) {
                Ok(data) => data,
                Err(err) => return (hits, None, Some(err.to_string()), 0),
            };
            let mut found = engine.scan(&data);
            if policy.as_ref().is_some_and(|p| p.covers(&rel)) {
                if let Some(rule) = sopscheck::check_covered(&data, &rel) {
                    found.push(Hit {
                        rule: rule.to_owned(),
                        line: 1,
                        column: 1,
                        end_line: 1,
                        end_column: 1,
                        fingerprint: engine.fingerprint(rule, rel.as_bytes()),
                        known: None,
                    });
                }
            }
            hits.extend(found.into_iter().map(|hit| TreeHit {
                hit,
                path: rel.clone(),
                file_name: false,
            }));
            (hits, None, None, data.len() as u64)
        })
        .collect();
    bar.finish_and_clear();
    let mut coverage = Coverage {
        ignored,
        ..Coverage::default()
    };
    let mut hits = Vec::new();
    for (found, skipped, error, bytes) in results {
        hits.extend(found);
        if let Some(skipped) = skipped {
            coverage.skipped.push(skipped);
        } else if let Some(error) = error {
            unproven.push(error);
        } else {
            coverage.scanned += 1;
            coverage.bytes += bytes;
        }
    }
    if !coverage.skipped.is_empty() {
        unproven.push(format!(
            "{} file(s) were skipped for size",
            coverage.skipped.len()
        ));
    }
    Ok(TreeOutcome {
        hits,
        coverage,
        unproven,
    })
}
