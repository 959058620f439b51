//! `--staged`: the full blob of every index entry that differs from `HEAD`,
//! and its path, so a PEM block is never split across diff hunks.

use std::collections::{HashMap, HashSet};

use anyhow::Context as _;
use gix::bstr::BString;
use gix::prelude::Find as _;
use gix::ObjectId;

use super::provenance::walk_tree;
use super::{root_of, GitHit, GitOutcome};
use crate::cache::Cache;
use crate::engine::{display_bytes, Engine, Hit};
use crate::report::{Coverage, Skipped, Source};
use crate::sopscheck;

/// Scans the index entries that differ from `HEAD`, and their paths.
pub fn staged(
    repo: &gix::Repository,
    engine: &Engine,
    max_size: u64,
    cache_key: Option<&str>,
) -> anyhow::Result<GitOutcome> {
    let root = root_of(repo);
    let mut unproven = Vec::new();
    let mut coverage = Coverage::default();
    let index = repo
        .index_or_empty()
        .context("Failed to read the git index")?;
    let mut head: HashMap<BString, ObjectId> = HashMap::new();
    if let Ok(tree) = repo.head_tree_id() {
        let mut buf = Vec::new();
        let mut visited = HashSet::new();
        walk_tree(
            repo,
            tree.detach(),
            BString::default(),
            &mut visited,
            &mut buf,
            &mut |id, path| {
                head.insert(path.to_owned(), id);
            },
        )?;
    }
    let policy = sopscheck::Policy::load(&root)?;
    let cache = cache_key.map(|key| Cache::open(repo.git_dir(), key));
    let mut hits = Vec::new();
    let mut buf = Vec::new();
    for entry in index.entries() {
        if entry.mode.is_submodule() {
            continue;
        }
        let path = entry.path(&index);
        if head.get(path) == Some(&entry.id) {
            continue;
        }
        let shown = display_bytes(path);
        for hit in engine.scan(path) {
            hits.push(GitHit {
                hit,
                source: Source::FileName,
                path: Some(shown.clone()),
                commit: None,
                blob: None,
                history_only: false,
            });
        }
        let covered = policy.as_ref().is_some_and(|p| p.covers(&shown));
        if !covered
            && cache
                .as_ref()
                .is_some_and(|c| c.contains(entry.id.as_bytes()))
        {
            coverage.cache_hits += 1;
            continue;
        }
        let header = match repo.find_header(entry.id) {
            Ok(header) => header,
            Err(err) => {
                unproven.push(format!("staged blob of `{shown}` cannot be read: {err}"));
                continue;
            }
        };
        if header.size() > max_size {
            coverage.skipped.push(Skipped {
                what: format!("`{shown}`"),
                size: header.size(),
                reason: format!("larger than --max-size ({max_size} bytes)"),
            });
            continue;
        }
        let Ok(Some(data)) = repo.objects.try_find(&entry.id, &mut buf) else {
            unproven.push(format!("staged blob of `{shown}` is missing"));
            continue;
        };
        let data = data.data;
        coverage.scanned += 1;
        coverage.bytes += data.len() as u64;
        let mut found = engine.scan(data);
        if covered {
            if let Some(rule) = sopscheck::check_covered(data, &shown) {
                found.push(Hit {
                    rule: rule.to_owned(),
                    line: 1,
                    column: 1,
                    end_line: 1,
                    end_column: 1,
                    fingerprint: engine.fingerprint(rule, shown.as_bytes()),
                    known: None,
                });
            }
        }
        for hit in found {
            hits.push(GitHit {
                hit,
                source: Source::File,
                path: Some(shown.clone()),
                commit: None,
                blob: Some(entry.id.to_string()),
                history_only: false,
            });
        }
    }
    if !coverage.skipped.is_empty() {
        unproven.push(format!(
            "{} staged file(s) were skipped for size",
            coverage.skipped.len()
        ));
    }
    Ok(GitOutcome {
        hits,
        coverage,
        unproven,
        root,
    })
}
