//! Whole-pack scanning for `--history`. When most of a repository's objects
//! are to be scanned, resolving each pack's delta trees once, as
//! `git index-pack` does, inflates every entry exactly once; looking the
//! objects up one by one re-inflates every delta base that has fallen out
//! of the (small, per-thread) cache, and decodes each entry's header a
//! second time to learn its size.
//!
//! Only the repository's own packs are walked. Whatever they do not hold
//! (loose objects, alternates, a pack that cannot be read) is left to the
//! caller's object-by-object path, so a damaged pack still makes the run
//! unproven there rather than silently shrinking it.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use gix::objs::Kind;
use gix::odb::pack;
use gix::ObjectId;

use super::object::{scan_decoded, Known, Scanned};
use crate::engine::Engine;
use crate::report::Skipped;

/// What the walk of every pack produced.
#[derive(Default)]
pub(crate) struct PackScan {
    pub scanned: Vec<Scanned>,
    /// Blobs over `--max-size`, decoded but not scanned.
    pub skipped: Vec<(ObjectId, Skipped)>,
    /// Packs that could not be walked (a version 1 index), with why; their
    /// objects were not scanned here.
    pub unwalkable_packs: Vec<String>,
    /// Packs found damaged, with why: their objects were not scanned here,
    /// and the run cannot be proven.
    pub damaged_packs: Vec<String>,
}

enum PackFailure {
    Unwalkable(String),
    Damaged(String),
}

/// The `.idx` files of the repository's own packs.
fn pack_indices(objects_dir: &Path) -> Vec<PathBuf> {
    let Ok(entries) = fs_err::read_dir(objects_dir.join("pack")) else {
        return Vec::new();
    };
    let mut indices: Vec<PathBuf> = entries
        .filter_map(Result::ok)
        .map(|entry| entry.path())
        .filter(|path| path.extension().is_some_and(|ext| ext == "idx"))
        .collect();
    indices.sort();
    indices
}

/// One worker's findings, handed over when the worker is done with it.
struct Collector {
    local: PackScan,
    shared: Arc<Mutex<PackScan>>,
}

impl Clone for Collector {
    fn clone(&self) -> Self {
        Collector {
            local: PackScan::default(),
            shared: Arc::clone(&self.shared),
        }
    }
}

impl Drop for Collector {
    fn drop(&mut self) {
        let mut shared = self.shared.lock().unwrap_or_else(PoisonError::into_inner);
        shared.scanned.append(&mut self.local.scanned);
        shared.skipped.append(&mut self.local.skipped);
    }
}

pub(crate) struct Walk<'a> {
    pub objects_dir: &'a Path,
    pub hash: gix::hash::Kind,
    /// The objects to scan; every other object of a pack is decoded (a delta
    /// base may be needed) but not scanned.
    pub wanted: &'a HashSet<ObjectId>,
    pub engine: &'a Engine,
    pub known: &'a Known<'a>,
    pub max_size: u64,
    pub bar: &'a indicatif::ProgressBar,
}

/// Walks every pack of `walk.objects_dir` and scans the wanted objects.
pub(crate) fn scan_packs(walk: &Walk<'_>) -> PackScan {
    let mut total = PackScan::default();
    for index in pack_indices(walk.objects_dir) {
        match scan_pack(walk, &index) {
            Ok(mut scan) => {
                total.scanned.append(&mut scan.scanned);
                total.skipped.append(&mut scan.skipped);
            }
            Err(PackFailure::Unwalkable(why)) => total
                .unwalkable_packs
                .push(format!("pack {}: {why}", index.display())),
            Err(PackFailure::Damaged(why)) => total
                .damaged_packs
                .push(format!("pack {}: {why}", index.display())),
        }
    }
    total
}

/// One pack's walk. Traversal decodes an entry without reading its zlib
/// trailer, so each entry's raw bytes are checked against the CRC32 the index
/// recorded for them (as `git index-pack` computed it); a pack with a damaged
/// entry is dropped whole, since its deltas' results are suspect too.
fn scan_pack(walk: &Walk<'_>, index: &Path) -> Result<PackScan, PackFailure> {
    let bundle =
        pack::Bundle::at(index, walk.hash).map_err(|err| PackFailure::Damaged(err.to_string()))?;
    if bundle.index.version() == pack::index::Version::V1 {
        return Err(PackFailure::Unwalkable(
            "a version 1 index records no CRC32 to check entries against".to_owned(),
        ));
    }
    let offsets = bundle.index.sorted_offsets();
    let pack_end = bundle.pack.pack_end() as u64;
    let damaged = AtomicBool::new(false);
    let shared = Arc::new(Mutex::new(PackScan::default()));
    let mut collector = Collector {
        local: PackScan::default(),
        shared: Arc::clone(&shared),
    };
    let (pack_data, offsets, damaged_flag) = (&bundle.pack, &offsets, &damaged);
    let processor = move |kind: Kind,
                          data: &[u8],
                          entry: &pack::index::Entry,
                          _progress: &dyn gix::progress::Progress|
          -> gix::Result {
        let start = entry.pack_offset;
        let end = match offsets.binary_search(&start) {
            Ok(at) => offsets.get(at + 1).copied().unwrap_or(pack_end),
            Err(_) => start,
        };
        let intact = pack_data
            .entry_slice(start..end)
            .is_some_and(|raw| Some(crc32fast::hash(raw)) == entry.crc32);
        if !intact {
            damaged_flag.store(true, Ordering::Relaxed);
            return Ok(());
        }
        if !walk.wanted.contains(&entry.oid) {
            return Ok(());
        }
        walk.bar.inc(1);
        if kind == Kind::Blob && data.len() as u64 > walk.max_size {
            collector.local.skipped.push((
                entry.oid,
                Skipped {
                    what: format!("blob {}", entry.oid),
                    size: data.len() as u64,
                    reason: format!("larger than --max-size ({} bytes)", walk.max_size),
                },
            ));
            return Ok(());
        }
        collector.local.scanned.push(scan_decoded(
            walk.engine,
            entry.oid,
            kind,
            data,
            walk.hash,
            walk.known,
        ));
        Ok(())
    };
    bundle
        .index
        .traverse(
            &bundle.pack,
            &mut gix::progress::Discard,
            &AtomicBool::new(false),
            processor,
            pack::index::traverse::Options {
                traversal: pack::index::traverse::Algorithm::DeltaTreeLookup,
                thread_limit: None,
                // Object ids are the index's, entries are checked by CRC32
                // above: hashing every decoded object again would double the
                // time of a scan.
                check: pack::index::traverse::SafetyCheck::SkipFileAndObjectChecksumVerification,
                alloc_limit_bytes: None,
                make_pack_lookup_cache: || pack::cache::Never,
            },
        )
        .map_err(|err| PackFailure::Damaged(err.to_string()))?;
    if damaged.load(Ordering::Relaxed) {
        return Err(PackFailure::Damaged(
            "an entry does not match the CRC32 its index records".to_owned(),
        ));
    }
    let scan = std::mem::take(&mut *shared.lock().unwrap_or_else(PoisonError::into_inner));
    Ok(scan)
}
