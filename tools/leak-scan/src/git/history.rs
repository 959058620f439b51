//! `--history`: every object of the database, each distinct one scanned once
//! (whole packs when most are wanted, else one by one), then ref names, then
//! where the objects with hits came from.

use std::collections::HashSet;

use anyhow::Context as _;
use gix::objs::Kind;
use gix::prelude::Find as _;
use gix::ObjectId;
use rayon::prelude::*;

use super::object::{scan_object, Known, Scanned};
use super::packwalk;
use super::provenance::{provenance, Provenance};
use super::{root_of, GitHit, GitOutcome};
use crate::cache::Cache;
use crate::engine::{display_bytes, Engine};
use crate::report::{Coverage, Skipped, Source};

pub struct HistoryOptions<'a> {
    pub since: Option<&'a str>,
    pub max_size: u64,
    pub cache_key: Option<String>,
    pub progress: bool,
}

/// What every scanning step needs: the repository, the engine, which
/// objects exist, the size limit and the progress bar.
struct ObjectScan<'a> {
    repo: &'a gix::Repository,
    engine: &'a Engine,
    known: &'a Known<'a>,
    max_size: u64,
    bar: &'a indicatif::ProgressBar,
}

/// Scans all of history. `Err` only for errors that make the run meaningless.
pub fn history(
    repo: &gix::Repository,
    engine: &Engine,
    options: &HistoryOptions<'_>,
) -> anyhow::Result<GitOutcome> {
    let mut unproven = unproven_repo_state(repo);
    let root = root_of(repo);
    let mut coverage = Coverage::default();
    let excluded = match options.since {
        Some(rev) => reachable_from(repo, rev)?,
        None => HashSet::new(),
    };
    let mut cache = options
        .cache_key
        .as_ref()
        .map(|key| Cache::open(repo.git_dir(), key));

    let (seen, mut candidates) = enumerate_objects(
        repo,
        &excluded,
        cache.as_ref(),
        &mut coverage,
        &mut unproven,
    )?;
    let bar = fromgit_cli::progress::bar(
        options.progress,
        candidates.len() as u64,
        "scanning objects",
    );
    let known = Known {
        ids: &seen,
        shallow: is_shallow(repo),
    };
    let scan = ObjectScan {
        repo,
        engine,
        known: &known,
        max_size: options.max_size,
        bar: &bar,
    };
    // When most objects are to be scanned, walk the packs whole (every
    // entry inflated once); what they do not hold is looked up after.
    let mut results: Vec<Scanned> = Vec::new();
    if candidates.len() * 2 >= seen.len() {
        results = scan_whole_packs(&scan, &mut candidates, &mut coverage, &mut unproven);
    }
    results.extend(scan_one_by_one(
        &scan,
        candidates,
        &mut coverage,
        &mut unproven,
    ));
    bar.finish_and_clear();
    let with_hits = tally(results, cache.as_mut(), &mut coverage, &mut unproven);

    let mut hits = ref_name_hits(repo, engine, &mut unproven)?;
    hits.extend(locate_hits(repo, with_hits)?);
    if let Some(cache) = cache {
        if let Err(err) = cache.save() {
            tracing::warn!("cannot save the clean-object cache: {err}");
        }
    }
    Ok(GitOutcome {
        hits,
        coverage,
        unproven,
        root,
    })
}

/// Step 1: every object of the database in pack order (all of them, and
/// those to scan: not excluded by `--since`, not known clean from the cache).
fn enumerate_objects(
    repo: &gix::Repository,
    excluded: &HashSet<ObjectId>,
    cache: Option<&Cache>,
    coverage: &mut Coverage,
    unproven: &mut Vec<String>,
) -> anyhow::Result<(HashSet<ObjectId>, Vec<ObjectId>)> {
    let mut seen: HashSet<ObjectId> = HashSet::new();
    let mut candidates: Vec<ObjectId> = Vec::new();
    let iter = repo
        .objects
        .iter()
        .context("Failed to list the object database")?
        .with_ordering(
            gix::odb::store::iter::Ordering::PackAscendingOffsetThenLooseLexicographical,
        );
    let mut enumeration_errors = 0usize;
    for id in iter {
        let id = match id {
            Ok(id) => id,
            Err(err) => {
                enumeration_errors += 1;
                tracing::warn!("object database: {err}");
                continue;
            }
        };
        if !seen.insert(id) || excluded.contains(&id) {
            continue;
        }
        if cache.is_some_and(|c| c.contains(id.as_bytes())) {
            coverage.cache_hits += 1;
            continue;
        }
        candidates.push(id);
    }
    if enumeration_errors > 0 {
        unproven.push(format!(
            "{enumeration_errors} object(s) of the object database could not be listed"
        ));
    }
    Ok((seen, candidates))
}

/// Step 2: walks the packs whole; drops from `candidates` what they held.
fn scan_whole_packs(
    scan: &ObjectScan<'_>,
    candidates: &mut Vec<ObjectId>,
    coverage: &mut Coverage,
    unproven: &mut Vec<String>,
) -> Vec<Scanned> {
    let mut results: Vec<Scanned> = Vec::new();
    let wanted: HashSet<ObjectId> = candidates.iter().copied().collect();
    let walked = packwalk::scan_packs(&packwalk::Walk {
        objects_dir: scan.repo.objects.store_ref().path(),
        hash: scan.repo.object_hash(),
        wanted: &wanted,
        engine: scan.engine,
        known: scan.known,
        max_size: scan.max_size,
        bar: scan.bar,
    });
    for failure in walked.unwalkable_packs {
        tracing::info!("{failure}; its objects are read one by one");
    }
    for damage in walked.damaged_packs {
        tracing::warn!("{damage}; its objects are read one by one");
        unproven.push(format!("{damage} (a damaged pack)"));
    }
    let mut done: HashSet<ObjectId> = HashSet::with_capacity(wanted.len());
    for (id, skipped) in walked.skipped {
        if done.insert(id) {
            coverage.skipped.push(skipped);
        }
    }
    results.reserve(walked.scanned.len());
    for scanned in walked.scanned {
        if done.insert(scanned.id) {
            results.push(scanned);
        }
    }
    candidates.retain(|id| !done.contains(id));
    results
}

/// Step 3: the rest, object by object, with kind and size from its header.
fn scan_one_by_one(
    scan: &ObjectScan<'_>,
    candidates: Vec<ObjectId>,
    coverage: &mut Coverage,
    unproven: &mut Vec<String>,
) -> Vec<Scanned> {
    let mut todo: Vec<ObjectId> = Vec::new();
    for id in candidates {
        match scan.repo.find_header(id) {
            Ok(header) => {
                if header.kind() == Kind::Blob && header.size() > scan.max_size {
                    coverage.skipped.push(Skipped {
                        what: format!("blob {id}"),
                        size: header.size(),
                        reason: format!("larger than --max-size ({} bytes)", scan.max_size),
                    });
                    continue;
                }
                todo.push(id);
            }
            Err(err) => {
                unproven.push(format!("object {id} cannot be read: {err}"));
            }
        }
    }
    // In parallel, in pack-order chunks so each worker's delta cache stays warm.
    let (engine, known, bar) = (scan.engine, scan.known, scan.bar);
    let sync = scan.repo.clone().into_sync();
    todo.par_chunks(256)
        .map_init(
            || (sync.to_thread_local(), Vec::new()),
            |(repo, buf), chunk| {
                let out: Vec<Scanned> = chunk
                    .iter()
                    .map(|id| scan_object(repo, engine, *id, buf, known))
                    .collect();
                bar.inc(chunk.len() as u64);
                out
            },
        )
        .flatten_iter()
        .collect()
}

/// Counts what was scanned, caches the clean objects, records why the run
/// is not proof (unreadable, missing, skipped objects) and keeps the
/// objects with hits.
fn tally(
    results: Vec<Scanned>,
    mut cache: Option<&mut Cache>,
    coverage: &mut Coverage,
    unproven: &mut Vec<String>,
) -> Vec<Scanned> {
    let mut with_hits = Vec::new();
    let mut missing: Vec<ObjectId> = Vec::new();
    for scanned in results {
        missing.extend(&scanned.missing);
        if let Some(err) = scanned.error {
            unproven.push(err);
            continue;
        }
        coverage.scanned += 1;
        coverage.bytes += scanned.size;
        if scanned.hits.is_empty() {
            if let Some(cache) = cache.as_mut() {
                cache.add(scanned.id.as_bytes());
            }
        } else {
            with_hits.push(scanned);
        }
    }
    missing.sort();
    missing.dedup();
    if !missing.is_empty() {
        let shown: Vec<String> = missing.iter().take(5).map(ToString::to_string).collect();
        unproven.push(format!(
            "{} object(s) referenced by history are missing from the object database (a partial clone or a damaged repository): {}{}",
            missing.len(),
            shown.join(", "),
            if missing.len() > 5 { ", …" } else { "" }
        ));
    }
    if !coverage.skipped.is_empty() {
        unproven.push(format!(
            "{} blob(s) were skipped for size",
            coverage.skipped.len()
        ));
    }
    with_hits
}

/// Step 4: ref names.
fn ref_name_hits(
    repo: &gix::Repository,
    engine: &Engine,
    unproven: &mut Vec<String>,
) -> anyhow::Result<Vec<GitHit>> {
    let mut hits = Vec::new();
    for reference in repo.references()?.all()? {
        let Ok(reference) = reference else {
            unproven.push("a reference could not be read".to_owned());
            continue;
        };
        let name = reference.name().as_bstr();
        for hit in engine.scan(name) {
            hits.push(GitHit {
                hit,
                source: Source::Ref,
                path: Some(display_bytes(name)),
                commit: None,
                blob: None,
                history_only: false,
            });
        }
    }
    Ok(hits)
}

/// Step 5: provenance, only for what has hits, and each hit located by it.
fn locate_hits(repo: &gix::Repository, with_hits: Vec<Scanned>) -> anyhow::Result<Vec<GitHit>> {
    let wanted: HashSet<ObjectId> = with_hits
        .iter()
        .filter(|s| matches!(s.kind, Kind::Blob | Kind::Tree))
        .map(|s| s.id)
        .collect();
    let provenance = if wanted.is_empty() {
        Provenance::default()
    } else {
        provenance(repo, &wanted)?
    };
    let mut hits = Vec::new();
    for scanned in with_hits {
        let id_hex = scanned.id.to_string();
        for hit in scanned.hits {
            let located = match scanned.kind {
                Kind::Commit => GitHit {
                    hit,
                    source: Source::Commit,
                    path: None,
                    commit: Some(id_hex.clone()),
                    blob: None,
                    history_only: false,
                },
                Kind::Tag => GitHit {
                    hit,
                    source: Source::Tag,
                    path: None,
                    commit: None,
                    blob: Some(id_hex.clone()),
                    history_only: false,
                },
                Kind::Tree => {
                    let name = scanned
                        .names
                        .get(hit.line.saturating_sub(1))
                        .map(|n| n.as_slice())
                        .unwrap_or_default();
                    let (commit, dir) = provenance.first.get(&scanned.id).cloned().unzip();
                    let path = match dir {
                        Some(dir) if !dir.is_empty() => {
                            format!("{}/{}", display_bytes(&dir), display_bytes(name))
                        }
                        _ => display_bytes(name),
                    };
                    let mut hit = hit;
                    hit.line = 1;
                    hit.end_line = 1;
                    GitHit {
                        hit,
                        source: Source::FileName,
                        path: Some(path),
                        commit: commit.map(|c| c.to_string()),
                        blob: Some(id_hex.clone()),
                        history_only: !provenance.in_head.contains(&scanned.id),
                    }
                }
                Kind::Blob => match provenance.first.get(&scanned.id) {
                    Some((commit, path)) => GitHit {
                        hit,
                        source: Source::File,
                        path: Some(display_bytes(path)),
                        commit: Some(commit.to_string()),
                        blob: Some(id_hex.clone()),
                        history_only: !provenance.in_head.contains(&scanned.id),
                    },
                    None => GitHit {
                        hit,
                        source: Source::UnreachableBlob,
                        path: None,
                        commit: None,
                        blob: Some(id_hex.clone()),
                        history_only: true,
                    },
                },
            };
            hits.push(located);
        }
    }
    Ok(hits)
}

/// A shallow file whose configured path cannot be used counts as shallow:
/// the history is then not claimed complete.
fn is_shallow(repo: &gix::Repository) -> bool {
    repo.is_shallow().unwrap_or(true)
}

fn unproven_repo_state(repo: &gix::Repository) -> Vec<String> {
    let mut reasons = Vec::new();
    if is_shallow(repo) {
        reasons.push("the repository is a shallow clone: history before the shallow boundary is missing (fetch with `--unshallow` or `fetch-depth: 0`)".to_owned());
    }
    let config = repo.config_snapshot();
    if config.string("extensions.partialClone").is_some() {
        reasons.push("the repository is a partial clone: objects held only by the promisor remote were not scanned".to_owned());
    }
    reasons
}

/// Every object reachable from `rev` (for `--since`).
fn reachable_from(repo: &gix::Repository, rev: &str) -> anyhow::Result<HashSet<ObjectId>> {
    let tip = repo
        .rev_parse_single(rev)
        .with_context(|| format!("Failed to resolve `--since {rev}`"))?
        .detach();
    let mut seen = HashSet::new();
    let mut buf = Vec::new();
    let walk = repo.rev_walk([tip]).all()?;
    for info in walk {
        let info = info?;
        let commit = repo.find_commit(info.id)?;
        seen.insert(info.id);
        let tree = commit.tree_id()?.detach();
        let mut stack = vec![tree];
        while let Some(tree) = stack.pop() {
            if !seen.insert(tree) {
                continue;
            }
            let Some(data) = repo
                .objects
                .try_find(&tree, &mut buf)
                .map_err(|e| anyhow::anyhow!(e))?
            else {
                continue;
            };
            for entry in gix::objs::TreeRefIter::from_bytes(data.data, repo.object_hash()).flatten()
            {
                if entry.mode.is_tree() {
                    stack.push(entry.oid.to_owned());
                } else {
                    seen.insert(entry.oid.to_owned());
                }
            }
        }
    }
    Ok(seen)
}
