//! Tree mode: the files of a directory, walked like ripgrep walks them
//! (honouring `.gitignore`, `.ignore` and `.git/info/exclude`, hidden files
//! included because `.env` files are where secrets hide), scanned in
//! parallel. This is what a flake check can prove; history needs git.

use std::path::{Path, PathBuf};

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

pub fn scan(root: &Path, engine: &Engine, max_size: u64) -> anyhow::Result<TreeOutcome> {
    let policy = Policy::load(root)?;
    let mut files: Vec<(PathBuf, u64)> = Vec::new();
    let mut unproven = Vec::new();
    let walker = ignore::WalkBuilder::new(root)
        .hidden(false)
        .parents(false)
        .require_git(false)
        .git_global(false)
        .filter_entry(|entry| entry.file_name() != ".git")
        .build();
    for entry in walker {
        match entry {
            Ok(entry) => {
                if entry.file_type().is_some_and(|t| t.is_file()) {
                    let size = entry.metadata().map_or(0, |m| m.len());
                    files.push((entry.into_path(), size));
                }
            }
            Err(err) => unproven.push(format!("cannot walk: {err}")),
        }
    }
    files.sort();
    let results: Vec<FileResult> = files
        .par_iter()
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
    let mut coverage = Coverage::default();
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
