//! One object of the database scanned on its own: its content (for a tree,
//! its entry names) and the objects it references that the database lacks.
//! Both the pack walk and the object-by-object lookup produce these.

use std::collections::HashSet;

use gix::bstr::BString;
use gix::objs::Kind;
use gix::prelude::Find as _;
use gix::ObjectId;

use crate::engine::{Engine, Hit};

/// What one worker found in one object.
pub(super) struct Scanned {
    pub(super) id: ObjectId,
    pub(super) kind: Kind,
    pub(super) size: u64,
    /// For trees: the entry names, one per line, as scanned.
    pub(super) names: Vec<BString>,
    pub(super) hits: Vec<Hit>,
    pub(super) error: Option<String>,
    /// Objects it references that the object database does not hold.
    pub(super) missing: Vec<ObjectId>,
}

/// The objects of the database (all of them, listed before the scan) and
/// whether parents may be missing (a shallow clone, reported on its own).
pub(super) struct Known<'a> {
    pub(super) ids: &'a HashSet<ObjectId>,
    pub(super) shallow: bool,
}

pub(super) fn scan_object(
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
pub(super) fn scan_decoded(
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
