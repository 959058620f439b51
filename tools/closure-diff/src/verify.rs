//! `--verify-on-disk`: recompute the NAR hash of every local path, in
//! parallel, and compare it with what each side recorded.

use std::path::PathBuf;
use std::time::Instant;

use fromgit_nix::{nar, Sha256Hash};
use rayon::prelude::*;
use rustc_hash::FxHashMap;
use serde::Serialize;

use crate::side::Side;

/// A path whose bytes on disk do not match the recorded NAR hash.
#[derive(Debug, Clone, Serialize)]
pub struct Mismatch {
    /// Absolute store path.
    pub path: String,
    /// The recorded hash (`sha256:<nix32>`).
    pub recorded: String,
    /// The hash of the NAR serialisation of what is on disk now.
    pub actual: String,
    /// The recorded NAR size.
    pub recorded_size: Option<u64>,
    /// The size of the NAR of what is on disk now.
    pub actual_size: u64,
}

/// A path that could not be checked.
#[derive(Debug, Clone, Serialize)]
pub struct Unchecked {
    /// Absolute store path.
    pub path: String,
    /// Why not.
    pub reason: String,
}

/// The outcome of the on-disk check.
#[derive(Debug, Clone, Default, Serialize)]
pub struct DiskCheck {
    /// Paths whose NAR was recomputed.
    pub checked: usize,
    /// Bytes of NAR serialised.
    pub nar_bytes: u64,
    /// Wall time, in seconds.
    pub seconds: f64,
    /// Paths that differ from their recorded hash.
    pub mismatches: Vec<Mismatch>,
    /// Paths that could not be read or have no recorded hash.
    pub unchecked: Vec<Unchecked>,
}

/// A recorded NAR hash and size.
type Recorded = (Option<Sha256Hash>, Option<u64>);

/// Checks every path of both sides that lives in a local store. Each
/// distinct (real path, recorded hash) pair is hashed once.
pub fn verify(sides: &[&Side], jobs: Option<usize>, progress: bool) -> DiskCheck {
    let start = Instant::now();
    let mut index: FxHashMap<PathBuf, usize> = FxHashMap::default();
    let mut work: Vec<(PathBuf, String, Vec<Recorded>)> = Vec::new();
    let mut out = DiskCheck::default();
    for side in sides {
        let Some(dir) = &side.local_store else {
            continue;
        };
        for (base, info) in &side.infos {
            let real = dir.join(base);
            let i = *index.entry(real.clone()).or_insert_with(|| {
                work.push((real, side.abs(base), Vec::new()));
                work.len() - 1
            });
            let recorded = &mut work[i].2;
            if !recorded.contains(&(info.nar_hash, info.nar_size)) {
                recorded.push((info.nar_hash, info.nar_size));
            }
        }
    }
    // Largest first, so that no thread is left with a big path at the end.
    work.sort_unstable_by_key(|w| {
        std::cmp::Reverse(w.2.iter().filter_map(|r| r.1).max().unwrap_or(0))
    });
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(jobs.unwrap_or(0))
        .build();
    let bar = fromgit_cli::progress::bar(progress, work.len() as u64, "hashing store paths");
    let run = || {
        work.par_iter()
            .map(|(real, abs, recorded)| {
                let hashed = nar::hash_path(real);
                bar.inc(1);
                (abs, recorded, hashed)
            })
            .collect::<Vec<_>>()
    };
    let results = match pool {
        Ok(pool) => pool.install(run),
        Err(_) => run(),
    };
    bar.finish_and_clear();
    for (abs, recorded, result) in results {
        match result {
            Err(e) => out.unchecked.push(Unchecked {
                path: abs.clone(),
                reason: e.to_string(),
            }),
            Ok((hash, size)) => {
                out.checked += 1;
                out.nar_bytes += size;
                for (want, want_size) in recorded {
                    match want {
                        None => out.unchecked.push(Unchecked {
                            path: abs.clone(),
                            reason: "no NAR hash recorded".to_owned(),
                        }),
                        Some(w) if *w != hash || want_size.is_some_and(|s| s != size) => {
                            out.mismatches.push(Mismatch {
                                path: abs.clone(),
                                recorded: w.to_string(),
                                actual: hash.to_string(),
                                recorded_size: *want_size,
                                actual_size: size,
                            });
                        }
                        Some(_) => {}
                    }
                }
            }
        }
    }
    out.mismatches.sort_by(|a, b| a.path.cmp(&b.path));
    out.unchecked.sort_by(|a, b| a.path.cmp(&b.path));
    out.seconds = start.elapsed().as_secs_f64();
    out
}
