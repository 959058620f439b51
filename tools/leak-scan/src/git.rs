//! The two git modes, read with gix and never through `git log -p`:
//!
//! - `--history` enumerates the object database in pack order (Nosey
//!   Parker's design), so each distinct blob is inflated and scanned once,
//!   in parallel, whatever the number of commits and paths it appears in;
//!   commits, tags and tree entry names are scanned too, as are ref names.
//!   Which commit and path introduced a blob is worked out afterwards, only
//!   for the objects with findings. A shallow or partial clone, an object
//!   that cannot be read, or a skipped blob makes the run unproven.
//! - `--staged` scans the full blob of every index entry that differs from
//!   `HEAD` (not diff hunks, which split PEM blocks), plus its path.

use std::collections::{HashMap, HashSet};
use std::io::IsTerminal as _;
use std::path::{Path, PathBuf};

use anyhow::Context as _;
use gix::bstr::{BStr, BString, ByteSlice as _};
use gix::objs::Kind;
use gix::prelude::Find as _;
use gix::ObjectId;
use rayon::prelude::*;

use crate::cache::Cache;
use crate::engine::{display_bytes, Engine, Hit};
use crate::packwalk;
use crate::report::{Coverage, Skipped, Source};
use crate::sopscheck;

/// A hit located in git: the object it was found in and what the object is.
pub struct GitHit {
    pub hit: Hit,
    pub source: Source,
    pub path: Option<String>,
    pub commit: Option<String>,
    pub blob: Option<String>,
    pub history_only: bool,
}

pub struct GitOutcome {
    pub hits: Vec<GitHit>,
    pub coverage: Coverage,
    pub unproven: Vec<String>,
    /// The work tree root, where `.leak-scan.toml` and `.sops.yaml` live.
    pub root: PathBuf,
}

pub struct HistoryOptions<'a> {
    pub since: Option<&'a str>,
    pub max_size: u64,
    pub cache_key: Option<String>,
    pub progress: bool,
}

/// Opens the repository containing `dir`, with a clear error when there is none.
pub fn open(dir: &Path) -> anyhow::Result<gix::Repository> {
    let repo = gix::discover(dir)
        .map_err(|err| anyhow::anyhow!("`{}` is not in a git repository: {err}", dir.display()))?;
    Ok(repo)
}

pub fn root_of(repo: &gix::Repository) -> PathBuf {
    repo.workdir()
        .map_or_else(|| repo.git_dir().to_path_buf(), Path::to_path_buf)
}

/// What one worker found in one object.
pub(crate) struct Scanned {
    id: ObjectId,
    kind: Kind,
    size: u64,
    /// For trees: the entry names, one per line, as scanned.
    names: Vec<BString>,
    hits: Vec<Hit>,
    error: Option<String>,
    /// Objects it references that the object database does not hold.
    missing: Vec<ObjectId>,
}

/// The objects of the database (all of them, listed before the scan) and
/// whether parents may be missing (a shallow clone, reported on its own).
pub(crate) struct Known<'a> {
    pub(crate) ids: &'a HashSet<ObjectId>,
    pub(crate) shallow: bool,
}

fn scan_object(
    repo: &gix::Repository,
    engine: &Engine,
    id: ObjectId,
    buf: &mut Vec<u8>,
    known: &Known<'_>,
) -> Scanned {
    match repo.objects.try_find(&id, buf) {
        Ok(Some(data)) => scan_decoded(engine, id, data.kind, data.data, repo.object_hash(), known),
        Ok(None) => Scanned::failed(id, format!("object {id} is missing")),
        Err(err) => Scanned::failed(id, format!("object {id} cannot be read: {err}")),
    }
}

impl Scanned {
    fn failed(id: ObjectId, error: String) -> Self {
        Scanned {
            id,
            kind: Kind::Blob,
            size: 0,
            names: Vec::new(),
            hits: Vec::new(),
            error: Some(error),
            missing: Vec::new(),
        }
    }
}

/// Scans one decoded object: its content (a tree's entry names), and the
/// objects it references that the database does not hold.
pub(crate) fn scan_decoded(
    engine: &Engine,
    id: ObjectId,
    kind: Kind,
    data: &[u8],
    hash: gix::hash::Kind,
    known: &Known<'_>,
) -> Scanned {
    let mut out = Scanned {
        id,
        kind,
        size: data.len() as u64,
        names: Vec::new(),
        hits: Vec::new(),
        error: None,
        missing: Vec::new(),
    };
    let mut check = |target: ObjectId| {
        if !known.ids.contains(&target) {
            out.missing.push(target);
        }
    };
    match kind {
        Kind::Commit => {
            let mut iter = gix::objs::CommitRefIter::from_bytes(data, hash);
            if let Ok(tree) = iter.tree_id() {
                check(tree);
            }
            if !known.shallow {
                for parent in iter.parent_ids() {
                    check(parent);
                }
            }
        }
        Kind::Tag => {
            if let Ok(target) = gix::objs::TagRefIter::from_bytes(data, hash).target_id() {
                check(target);
            }
        }
        Kind::Tree => {
            for entry in gix::objs::TreeRefIter::from_bytes(data, hash).flatten() {
                if !entry.mode.is_commit() {
                    check(entry.oid.to_owned());
                }
            }
        }
        Kind::Blob => {}
    }
    match kind {
        Kind::Blob | Kind::Commit | Kind::Tag => out.hits = engine.scan(data),
        Kind::Tree => {
            let mut joined = Vec::new();
            for entry in gix::objs::TreeRefIter::from_bytes(data, hash) {
                match entry {
                    Ok(entry) => {
                        joined.extend_from_slice(entry.filename);
                        joined.push(b'\n');
                        out.names.push(entry.filename.to_owned());
                    }
                    Err(err) => {
                        out.error = Some(format!("tree {id} cannot be decoded: {err}"));
                        return out;
                    }
                }
            }
            out.hits = engine.scan(&joined);
            if out.hits.is_empty() {
                out.names = Vec::new();
            }
        }
    }
    out
}

fn unproven_repo_state(repo: &gix::Repository) -> Vec<String> {
    let mut reasons = Vec::new();
    if repo.is_shallow() {
        reasons.push("the repository is a shallow clone: history before the shallow boundary is missing (fetch with `--unshallow` or `fetch-depth: 0`)".to_owned());
    }
    let config = repo.config_snapshot();
    if config.string("extensions.partialClone").is_some() {
        reasons.push("the repository is a partial clone: objects held only by the promisor remote were not scanned".to_owned());
    }
    reasons
}

fn progress_bar(show: bool, len: u64) -> indicatif::ProgressBar {
    if !show || !std::io::stderr().is_terminal() {
        return indicatif::ProgressBar::hidden();
    }
    let bar = indicatif::ProgressBar::with_draw_target(
        Some(len),
        indicatif::ProgressDrawTarget::stderr(),
    );
    if let Ok(style) = indicatif::ProgressStyle::with_template(
        "{spinner} scanning objects {pos}/{len} [{bar:30}] {per_sec} {eta}",
    ) {
        bar.set_style(style.progress_chars("=> "));
    }
    bar
}

/// Every object reachable from `rev` (for `--since`).
fn reachable_from(repo: &gix::Repository, rev: &str) -> anyhow::Result<HashSet<ObjectId>> {
    let tip = repo
        .rev_parse_single(rev)
        .with_context(|| format!("cannot resolve `--since {rev}`"))?
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

/// Scans all of history. `Err` only for errors that make the run meaningless.
#[allow(clippy::too_many_lines)]
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

    // 1. Enumerate every object in pack order.
    let mut seen: HashSet<ObjectId> = HashSet::new();
    let mut candidates: Vec<ObjectId> = Vec::new();
    let iter = repo
        .objects
        .iter()
        .context("cannot list the object database")?
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
        if cache.as_ref().is_some_and(|c| c.contains(id.as_bytes())) {
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

    let bar = progress_bar(options.progress, candidates.len() as u64);
    let known = Known {
        ids: &seen,
        shallow: repo.is_shallow(),
    };
    // 2. When most objects are to be scanned, walk the packs whole (every
    // entry inflated once); what they do not hold is looked up below.
    let mut results: Vec<Scanned> = Vec::new();
    if candidates.len() * 2 >= seen.len() {
        let wanted: HashSet<ObjectId> = candidates.iter().copied().collect();
        let walked = packwalk::scan_packs(&packwalk::Walk {
            objects_dir: repo.objects.store_ref().path(),
            hash: repo.object_hash(),
            wanted: &wanted,
            engine,
            known: &known,
            max_size: options.max_size,
            bar: &bar,
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
    }

    // 3. The rest, object by object, with kind and size from its header.
    let mut todo: Vec<ObjectId> = Vec::new();
    for id in candidates {
        match repo.find_header(id) {
            Ok(header) => {
                if header.kind() == Kind::Blob && header.size() > options.max_size {
                    coverage.skipped.push(Skipped {
                        what: format!("blob {id}"),
                        size: header.size(),
                        reason: format!("larger than --max-size ({} bytes)", options.max_size),
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
    let sync = repo.clone().into_sync();
    let looked_up: Vec<Scanned> = todo
        .par_chunks(256)
        .map_init(
            || (sync.to_thread_local(), Vec::new()),
            |(repo, buf), chunk| {
                let out: Vec<Scanned> = chunk
                    .iter()
                    .map(|id| scan_object(repo, engine, *id, buf, &known))
                    .collect();
                bar.inc(chunk.len() as u64);
                out
            },
        )
        .flatten_iter()
        .collect();
    results.extend(looked_up);
    bar.finish_and_clear();

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

    // 4. Ref names.
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

    // 5. Provenance, only for what has hits.
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

#[derive(Default)]
struct Provenance {
    /// Object → (first commit reaching it, its path there; for a tree, its directory).
    first: HashMap<ObjectId, (ObjectId, BString)>,
    /// Objects in the tree of `HEAD`.
    in_head: HashSet<ObjectId>,
}

/// Walks commits oldest first from every ref; visits each tree once, so the
/// first visit of an object is in the first commit (in walk order) that has it.
fn provenance(repo: &gix::Repository, wanted: &HashSet<ObjectId>) -> anyhow::Result<Provenance> {
    let mut out = Provenance::default();
    let mut tips: Vec<ObjectId> = Vec::new();
    for reference in repo.references()?.all()?.flatten() {
        let mut reference = reference;
        if let Ok(id) = reference.peel_to_id() {
            if let Ok(object) = repo.find_object(id.detach()) {
                if let Ok(commit) = object.peel_to_commit() {
                    tips.push(commit.id);
                }
            }
        }
    }
    if let Ok(head) = repo.head_commit() {
        tips.push(head.id);
        if let Ok(tree) = head.tree_id() {
            let mut buf = Vec::new();
            let mut visited = HashSet::new();
            walk_tree(
                repo,
                tree.detach(),
                BString::default(),
                &mut visited,
                &mut buf,
                &mut |id, _path| {
                    out.in_head.insert(id);
                },
            )?;
        }
    }
    tips.sort();
    tips.dedup();
    let mut commits: Vec<ObjectId> = Vec::new();
    for info in repo.rev_walk(tips).all()? {
        commits.push(info?.id);
    }
    commits.reverse();
    let mut visited = HashSet::new();
    let mut buf = Vec::new();
    for commit_id in commits {
        if out.first.len() == wanted.len() {
            break;
        }
        let commit = repo.find_commit(commit_id)?;
        let tree = commit.tree_id()?.detach();
        let first = &mut out.first;
        walk_tree(
            repo,
            tree,
            BString::default(),
            &mut visited,
            &mut buf,
            &mut |id, path| {
                if wanted.contains(&id) && !first.contains_key(&id) {
                    first.insert(id, (commit_id, path.to_owned()));
                }
            },
        )?;
    }
    Ok(out)
}

/// Visits every entry under `tree` (trees not visited before), calling `f`
/// with each object id and its path (for a tree: the tree's own path).
fn walk_tree(
    repo: &gix::Repository,
    tree: ObjectId,
    path: BString,
    visited: &mut HashSet<ObjectId>,
    buf: &mut Vec<u8>,
    f: &mut dyn FnMut(ObjectId, &BStr),
) -> anyhow::Result<()> {
    let mut stack = vec![(tree, path)];
    while let Some((tree, path)) = stack.pop() {
        if !visited.insert(tree) {
            continue;
        }
        f(tree, path.as_bstr());
        let Some(data) = repo
            .objects
            .try_find(&tree, buf)
            .map_err(|e| anyhow::anyhow!(e))?
        else {
            continue;
        };
        let mut children = Vec::new();
        for entry in gix::objs::TreeRefIter::from_bytes(data.data, repo.object_hash()) {
            let entry = entry?;
            let mut child = path.clone();
            if !child.is_empty() {
                child.push(b'/');
            }
            child.extend_from_slice(entry.filename);
            if entry.mode.is_tree() {
                children.push((entry.oid.to_owned(), child));
            } else if !entry.mode.is_commit() {
                f(entry.oid.to_owned(), child.as_bstr());
            }
        }
        stack.extend(children);
    }
    Ok(())
}

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
    let index = repo.index_or_empty().context("cannot read the git index")?;
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
