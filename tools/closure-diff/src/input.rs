//! Loading one side of a comparison from any supported input.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustc_hash::FxHashMap;

use anyhow::{bail, Context as _, Result};
use fromgit_nix::command::{Argv, Nix};
use fromgit_nix::db::{DbError, NixDb};
use fromgit_nix::drv;
use fromgit_nix::pathinfo::{self, PathInfo};
use fromgit_nix::{StoreBaseName, StoreDir, StorePath};

use crate::cli::StoreArgs;
use crate::side::{infer_roots, Drvs, Side, Source};
use crate::snapshot;

/// The real directory holding store objects for a local store root.
pub fn real_store_dir(store: &StoreArgs) -> PathBuf {
    let root = store.store.clone().unwrap_or_else(|| PathBuf::from("/"));
    root.join(store.store_dir.as_str().trim_start_matches('/'))
}

/// Follows symlinks (`./result`, `/run/current-system`) until the path is in
/// the store directory; returns the store path of the object.
fn resolve_store_path(spec: &str, store_dir: &StoreDir) -> Option<StorePath> {
    let mut cur = std::path::absolute(spec).ok()?;
    for _ in 0..40 {
        let s = cur.to_str()?;
        if s.starts_with(&format!("{store_dir}/")) {
            return store_dir.store_path_of(s).ok();
        }
        let target = fs_err::read_link(&cur).ok()?;
        cur = if target.is_absolute() {
            target
        } else {
            cur.parent()?.join(target)
        };
    }
    None
}

/// Loads one side.
pub fn load(spec: &str, store: &StoreArgs) -> Result<Side> {
    let store_dir = &store.store_dir;
    if spec.starts_with("ssh://") {
        return crate::ssh::load(spec, store_dir);
    }
    if let Some(abs) = resolve_store_path(spec, store_dir) {
        return if abs.is_derivation() {
            load_drv_input(spec, &abs, store)
        } else {
            load_store_paths(spec, &[abs], store)
        };
    }
    let path = Path::new(spec);
    let meta = fs_err::metadata(path).with_context(|| {
        format!(
            "`{spec}` is not a store path under `{store_dir}`, nor a readable file or directory"
        )
    })?;
    let side = if meta.is_dir() {
        load_narinfo_dir(spec, path, store_dir)?
    } else {
        let bytes = fs_err::read(path)?;
        let doc = match fromgit_nix::json::parse_strict(&bytes) {
            Ok(doc) => doc,
            Err(err) if err.to_string().contains(fromgit_nix::json::CONFLICT) => {
                bail!("`{spec}`: {err}: which entry is true cannot be told")
            }
            Err(err) => {
                return Err(err).with_context(|| {
                    format!("`{spec}` is not valid JSON (truncated or malformed dump?)")
                })
            }
        };
        if doc.get("schema").is_some() {
            snapshot::load(spec, &doc)?
        } else {
            load_dump(spec, &bytes, store_dir)?
        }
    };
    if &side.store_dir != store_dir {
        bail!(
            "`{spec}` describes the store directory `{}`, but this comparison uses `{store_dir}`: \
             its paths cannot be compared\nhint: pass `--store-dir {}` when both sides come from that store",
            side.store_dir,
            side.store_dir
        );
    }
    Ok(side)
}

fn from_infos(mut side: Side, infos: Vec<PathInfo>) -> Result<Side> {
    let infos = pathinfo::without_duplicates(infos).with_context(|| format!("`{}`", side.spec))?;
    for info in infos {
        side.infos.insert(info.path.clone(), Arc::new(info));
    }
    side.roots = side.store_paths(&infer_roots(&side.infos));
    if side.roots.is_empty() {
        bail!(
            "`{}` lists no paths (or only a reference cycle): nothing to compare",
            side.spec
        );
    }
    side.root_drvs = side.derivers_of_roots();
    side.close_over_roots();
    Ok(side)
}

fn load_dump(spec: &str, bytes: &[u8], store_dir: &StoreDir) -> Result<Side> {
    let dump = pathinfo::parse_path_info_json(bytes, store_dir.as_str())
        .with_context(|| format!("`{spec}` is not a usable `nix path-info --json` dump"))?;
    let dump_dir = StoreDir::new(&dump.store_dir).with_context(|| format!("`{spec}`"))?;
    let side = Side::new(spec, Source::PathInfoJson, &dump_dir);
    from_infos(side, dump.infos)
}

fn load_narinfo_dir(spec: &str, dir: &Path, store_dir: &StoreDir) -> Result<Side> {
    let mut infos = Vec::new();
    let mut found_dir: Option<String> = None;
    for entry in fs_err::read_dir(dir)? {
        let entry = entry?;
        let name = entry.file_name();
        if !name.to_string_lossy().ends_with(".narinfo") {
            continue;
        }
        let file = entry.path();
        let text = fs_err::read_to_string(&file)?;
        let (sd, info) = pathinfo::parse_narinfo(&text)
            .with_context(|| format!("`{}` is not a valid .narinfo", file.display()))?;
        if let Some(prev) = &found_dir {
            if prev != &sd {
                bail!(
                    "`{}` belongs to store directory `{sd}`, others in `{spec}` to `{prev}`",
                    file.display()
                );
            }
        }
        found_dir = Some(sd);
        infos.push(info);
    }
    let Some(sd) = found_dir else {
        bail!("`{spec}` is a directory without `.narinfo` files (not a binary cache)");
    };
    let _ = store_dir;
    let sd = StoreDir::new(&sd).with_context(|| format!("`{spec}`"))?;
    let side = Side::new(spec, Source::Narinfo, &sd);
    from_infos(side, infos)
}

/// Loads both sides. When both are store paths in the same local database,
/// one query covers both closures (they usually share most of their paths);
/// otherwise each side is loaded on its own, in parallel.
pub fn load_pair(
    old: &str,
    new: &str,
    store: &StoreArgs,
    local: Option<LocalPair>,
) -> Result<(Side, Side)> {
    if let Some(local) = local {
        return load_pair_from_db(old, new, store, local);
    }
    std::thread::scope(|s| {
        let a = s.spawn(|| load(old, store));
        let b = load(new, store);
        let a = a
            .join()
            .map_err(|_| anyhow::anyhow!("loading `{old}` crashed"))?;
        Ok((a?, b?))
    })
}

/// Two local store paths of one database, resolved, and the open database.
pub struct LocalPair {
    old: StorePath,
    new: StorePath,
    db: NixDb,
}

/// Both inputs as store paths of the one local database, when they are.
pub fn local_pair(old: &str, new: &str, store: &StoreArgs) -> Option<LocalPair> {
    let store_dir = &store.store_dir;
    if store.use_cli || old.starts_with("ssh://") || new.starts_with("ssh://") {
        return None;
    }
    let a = resolve_store_path(old, store_dir)?;
    let b = resolve_store_path(new, store_dir)?;
    if a.is_derivation() || b.is_derivation() {
        return None;
    }
    let root_dir = store.store.clone().unwrap_or_else(|| PathBuf::from("/"));
    let db = NixDb::open(&NixDb::path_for_root(&root_dir)).ok()?;
    Some(LocalPair { old: a, new: b, db })
}

/// Sides that carry only what the root-cause walk needs (toplevels, their
/// derivers, where `.drv` files are), read before the closures so that the
/// walk can run while the closures load. `None` when not both local.
pub fn drv_only_pair(
    local: &LocalPair,
    old: &str,
    new: &str,
    store: &StoreArgs,
) -> Option<(Side, Side)> {
    let (a, b, db) = (&local.old, &local.new, &local.db);
    let store_dir = &store.store_dir;
    let real = real_store_dir(store);
    let make = |spec: &str, root: &StorePath| -> Option<Side> {
        let mut side = Side::new(spec, Source::Db, store_dir);
        side.roots = vec![root.clone()];
        let deriver = db.deriver(root).ok()??;
        side.root_drvs = vec![store_dir.store_path_of(&deriver).ok()?];
        side.drvs = Drvs::Local(real.clone());
        Some(side)
    };
    Some((make(old, a)?, make(new, b)?))
}

fn load_pair_from_db(
    old: &str,
    new: &str,
    store: &StoreArgs,
    local: LocalPair,
) -> Result<(Side, Side)> {
    let store_dir = &store.store_dir;
    let LocalPair { old: a, new: b, db } = local;
    let root_dir = store.store.clone().unwrap_or_else(|| PathBuf::from("/"));
    for (spec, root) in [(old, &a), (new, &b)] {
        if !db.is_valid(root)? {
            bail!(
                "`{spec}` is not in the store `{}`: `{root}` is not registered in its database",
                root_dir.display()
            );
        }
    }
    let t0 = std::time::Instant::now();
    let mut shared: FxHashMap<StoreBaseName, Arc<PathInfo>> = db
        .closure(&[a.clone(), b.clone()], store_dir.as_str())?
        .into_iter()
        .map(|i| (i.path.clone(), Arc::new(i)))
        .collect();
    tracing::debug!(
        "{} path infos for both sides in {:?}",
        shared.len(),
        t0.elapsed()
    );
    let real = real_store_dir(store);
    let mut make = |spec: &str, root: &StorePath, take: bool| -> Result<Side> {
        let mut side = Side::new(spec, Source::Db, store_dir);
        side.infos.reserve(shared.len());
        let mut stack = vec![root.base()];
        while let Some(p) = stack.pop() {
            if side.infos.contains_key(&p) {
                continue;
            }
            let info = if take {
                shared.remove(&p)
            } else {
                shared.get(&p).cloned()
            };
            let Some(info) = info else {
                side.missing_references.insert(p);
                continue;
            };
            stack.extend(
                info.references
                    .iter()
                    .filter(|r| !side.infos.contains_key(*r))
                    .cloned(),
            );
            side.infos.insert(p, info);
        }
        side.roots = vec![root.clone()];
        side.root_drvs = side.derivers_of_roots();
        side.drvs = Drvs::Local(real.clone());
        side.local_store = Some(real.clone());
        Ok(side)
    };
    let old_side = make(old, &a, false)?;
    let new_side = make(new, &b, true)?;
    // Closing the connection unmaps and frees its page cache; the process
    // does not need it again and ends soon, so skip that work.
    std::mem::forget(db);
    std::mem::forget(shared);
    Ok((old_side, new_side))
}

/// Loads the closure of local store paths from the database, or through
/// `nix path-info` when the database cannot be opened.
pub fn load_store_paths(spec: &str, roots: &[StorePath], store: &StoreArgs) -> Result<Side> {
    let store_dir = &store.store_dir;
    let root_dir = store.store.clone().unwrap_or_else(|| PathBuf::from("/"));
    let mut side = Side::new(spec, Source::Db, store_dir);
    let t0 = std::time::Instant::now();
    let infos = if store.use_cli {
        side.source = Source::Cli;
        path_info_cli(roots, store)?
    } else {
        let db_path = NixDb::path_for_root(&root_dir);
        let opened = NixDb::open(&db_path);
        tracing::debug!("`{spec}`: database opened in {:?}", t0.elapsed());
        match opened {
            Ok(db) => match db.closure(roots, store_dir.as_str()) {
                Ok(infos) => infos,
                Err(e @ DbError::NotValid(_)) => {
                    return Err(anyhow::Error::new(e).context(format!(
                        "`{spec}` is not in the store `{}`",
                        root_dir.display()
                    )))
                }
                Err(e) => return Err(e.into()),
            },
            Err(e) => {
                tracing::info!("{e}; falling back to `nix path-info`");
                side.source = Source::Cli;
                path_info_cli(roots, store)?
            }
        }
    };
    tracing::debug!("`{spec}`: {} path infos in {:?}", infos.len(), t0.elapsed());
    side.roots = roots.to_vec();
    side.infos = infos
        .into_iter()
        .map(|i| (i.path.clone(), Arc::new(i)))
        .collect();
    side.root_drvs = side.derivers_of_roots();
    // The database query returned exactly the closure: no need to close it again.
    let real = real_store_dir(store);
    side.drvs = Drvs::Local(real.clone());
    side.local_store = Some(real);
    Ok(side)
}

/// The argument list of the `nix path-info` query.
pub fn path_info_argv(roots: &[StorePath], store: &StoreArgs) -> Argv {
    let nix = match &store.store {
        Some(root) => Nix::new().store(root.as_os_str()),
        None => Nix::new(),
    };
    nix.path_info_closure(roots)
}

fn path_info_cli(roots: &[StorePath], store: &StoreArgs) -> Result<Vec<PathInfo>> {
    let argv = path_info_argv(roots, store);
    let out = argv
        .command()
        .env("NIX_CONFIG", "substituters =")
        .output()
        .with_context(|| format!("Failed to run `{argv}`"))?;
    if !out.status.success() {
        bail!(
            "`{argv}` failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    let dump = pathinfo::parse_path_info_json(&out.stdout, store.store_dir.as_str())
        .with_context(|| format!("output of `{argv}`"))?;
    Ok(dump.infos)
}

fn load_drv_input(spec: &str, abs: &StorePath, store: &StoreArgs) -> Result<Side> {
    let real = real_store_dir(store);
    let file = real.join(abs.base_name());
    let bytes = fs_err::read(&file)
        .with_context(|| format!("`{spec}`: the derivation `{abs}` is not in the store"))?;
    let d = drv::parse_aterm(&bytes)
        .with_context(|| format!("`{}` does not parse as a derivation", file.display()))?;
    let outputs: Vec<StorePath> = d
        .outputs
        .values()
        .filter(|o| !o.path.is_empty())
        .map(|o| {
            store
                .store_dir
                .store_path_of(&o.path)
                .with_context(|| format!("`{spec}`: an output of `{abs}`"))
        })
        .collect::<Result<_>>()?;
    let db = if store.use_cli {
        None
    } else {
        NixDb::open(&NixDb::path_for_root(
            &store.store.clone().unwrap_or_else(|| PathBuf::from("/")),
        ))
        .ok()
    };
    let realised = match &db {
        Some(db) => {
            let mut all = !outputs.is_empty();
            for o in &outputs {
                all &= db.is_valid(o)?;
            }
            all
        }
        None => false,
    };
    let mut side = if realised {
        load_store_paths(spec, &outputs, store)?
    } else {
        let mut side = Side::new(spec, Source::Db, &store.store_dir);
        side.unrealised = true;
        side.roots = outputs;
        side.drvs = Drvs::Local(real.clone());
        side.local_store = Some(real);
        side
    };
    side.root_drvs = vec![abs.clone()];
    Ok(side)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn path_info_argv_is_fixed() {
        let store = StoreArgs {
            store: Some(PathBuf::from("/tmp/st")),
            store_dir: StoreDir::default(),
            use_cli: true,
        };
        let root: StorePath = "/nix/store/hbzqcq91kds495bgrlq6rpyp54q2y0xw-a"
            .parse()
            .unwrap();
        assert_eq!(
            path_info_argv(&[root], &store).to_strs().unwrap(),
            [
                "nix",
                "--extra-experimental-features",
                "nix-command",
                "path-info",
                "--recursive",
                "--json",
                "--store",
                "/tmp/st",
                "--",
                "/nix/store/hbzqcq91kds495bgrlq6rpyp54q2y0xw-a"
            ]
        );
    }
}
