//! Which commit and path first brought an object in, and whether `HEAD`
//! still holds it: worked out after the scan, for the objects with hits only.

use std::collections::{HashMap, HashSet};

use gix::bstr::{BStr, BString, ByteSlice as _};
use gix::prelude::Find as _;
use gix::ObjectId;

#[derive(Default)]
pub(super) struct Provenance {
    /// Object → (first commit reaching it, its path there; for a tree, its directory).
    pub(super) first: HashMap<ObjectId, (ObjectId, BString)>,
    /// Objects in the tree of `HEAD`.
    pub(super) in_head: HashSet<ObjectId>,
}

/// Walks commits oldest first from every ref; visits each tree once, so the
/// first visit of an object is in the first commit (in walk order) that has it.
pub(super) fn provenance(
    repo: &gix::Repository,
    wanted: &HashSet<ObjectId>,
) -> anyhow::Result<Provenance> {
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
pub(super) fn walk_tree(
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
