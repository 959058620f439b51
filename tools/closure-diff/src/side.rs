//! One side of a comparison: the type every loader fills and every check
//! reads. It depends on no loader, so that the loaders (`input`, `snapshot`,
//! `ssh`) depend on it and never on one another.

use std::collections::{BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Context as _, Result};
use fromgit_nix::drv::{self, Derivation};
use fromgit_nix::pathinfo::PathInfo;
use fromgit_nix::{StoreBaseName, StoreDir, StorePath};
use rustc_hash::FxHashMap;

/// Where a side's path metadata came from (the evidence source).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Source {
    /// The local store database, opened read-only.
    Db,
    /// `nix path-info -r --json` run locally.
    Cli,
    /// A `nix path-info --json` dump file.
    PathInfoJson,
    /// A directory of `.narinfo` files.
    Narinfo,
    /// A `closure-diff snapshot` file.
    Snapshot,
    /// A remote store queried over SSH.
    Ssh,
}

/// Where a side's `.drv` files can be read.
#[derive(Debug, Clone, Default)]
pub enum Drvs {
    /// Not available at all.
    #[default]
    None,
    /// Files in a local store directory (the real directory on disk).
    Local(PathBuf),
    /// `ATerm` texts by base name (from a snapshot).
    Texts(HashMap<StoreBaseName, String>),
    /// Already parsed, by base name (from `nix show-derivation` over SSH).
    Parsed(HashMap<StoreBaseName, Derivation>),
}

/// One side of a comparison.
#[derive(Debug, Clone)]
pub struct Side {
    /// The input as the user gave it.
    pub spec: String,
    /// The evidence source.
    pub source: Source,
    /// The logical store directory.
    pub store_dir: StoreDir,
    /// The toplevels.
    pub roots: Vec<StorePath>,
    /// The `.drv` files the roots were built from, when known.
    pub root_drvs: Vec<StorePath>,
    /// Every path of the closure, by base name.
    pub infos: FxHashMap<StoreBaseName, Arc<PathInfo>>,
    /// References that point outside the loaded data (an incomplete dump).
    pub missing_references: BTreeSet<StoreBaseName>,
    /// Roots whose outputs are not realised (a `.drv` input): no path metadata.
    pub unrealised: bool,
    /// How to read `.drv` files.
    pub drvs: Drvs,
    /// The real directory of this side's store objects, when they are local.
    pub local_store: Option<PathBuf>,
}

impl Side {
    pub(crate) fn new(spec: &str, source: Source, store_dir: &StoreDir) -> Self {
        Self {
            spec: spec.to_owned(),
            source,
            store_dir: store_dir.clone(),
            roots: Vec::new(),
            root_drvs: Vec::new(),
            infos: FxHashMap::default(),
            missing_references: BTreeSet::new(),
            unrealised: false,
            drvs: Drvs::None,
            local_store: None,
        }
    }

    /// Keeps only the closure of the roots and records dangling references.
    pub fn close_over_roots(&mut self) {
        let mut keep: FxHashMap<StoreBaseName, Arc<PathInfo>> = FxHashMap::default();
        keep.reserve(self.infos.len());
        let mut stack: Vec<StoreBaseName> = self.roots.iter().map(StorePath::base).collect();
        while let Some(p) = stack.pop() {
            if keep.contains_key(&p) {
                continue;
            }
            if let Some(info) = self.infos.remove(&p) {
                for r in &info.references {
                    if !keep.contains_key(r) {
                        stack.push(r.clone());
                    }
                }
                keep.insert(p, info);
            } else {
                self.missing_references.insert(p);
            }
        }
        self.infos = keep;
    }

    /// Whether the toplevels differ from `other`'s (as sets).
    pub fn roots_differ(&self, other: &Side) -> bool {
        let mut a: Vec<&StorePath> = self.roots.iter().collect();
        let mut b: Vec<&StorePath> = other.roots.iter().collect();
        a.sort();
        b.sort();
        a != b
    }

    /// The store paths of base names in this side's store directory.
    pub(crate) fn store_paths<'a>(
        &self,
        bases: impl IntoIterator<Item = &'a StoreBaseName>,
    ) -> Vec<StorePath> {
        bases.into_iter().map(|b| self.store_dir.join(b)).collect()
    }

    /// The derivers of the roots, as far as the path infos record them.
    pub(crate) fn derivers_of_roots(&self) -> Vec<StorePath> {
        self.store_paths(
            self.roots
                .iter()
                .filter_map(|r| self.infos.get(r.base_name()))
                .filter_map(|i| i.deriver.as_ref()),
        )
    }

    /// The absolute path of a base name.
    pub fn abs(&self, base: &StoreBaseName) -> String {
        self.store_dir.abs(base)
    }

    /// Reads and parses a `.drv` by base name. `Ok(None)` when it is not available.
    pub fn load_drv(&self, base: &StoreBaseName) -> Result<Option<Derivation>> {
        match &self.drvs {
            Drvs::None => Ok(None),
            Drvs::Parsed(map) => Ok(map.get(base).cloned()),
            Drvs::Texts(map) => map
                .get(base)
                .map(|text| {
                    drv::parse_aterm(text.as_bytes()).with_context(|| {
                        format!("`{}` (in `{}`) does not parse", self.abs(base), self.spec)
                    })
                })
                .transpose(),
            Drvs::Local(dir) => {
                let file = dir.join(base);
                match read_small(&file) {
                    Ok(bytes) => drv::parse_aterm(&bytes).map(Some).with_context(|| {
                        format!("`{}` does not parse as a derivation", file.display())
                    }),
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
                    Err(e) => Err(e.into()),
                }
            }
        }
    }
}

/// Reads a whole (usually small) file without a `stat` first.
fn read_small(path: &Path) -> std::io::Result<Vec<u8>> {
    use std::io::Read as _;
    let mut bytes = Vec::with_capacity(8 * 1024);
    fs_err::File::open(path)?.read_to_end(&mut bytes)?;
    Ok(bytes)
}

/// Roots of a dump: the paths no other path refers to.
pub(crate) fn infer_roots(infos: &FxHashMap<StoreBaseName, Arc<PathInfo>>) -> Vec<StoreBaseName> {
    let mut referenced = BTreeSet::new();
    for info in infos.values() {
        for r in &info.references {
            if r != &info.path {
                referenced.insert(r);
            }
        }
    }
    let mut roots: Vec<StoreBaseName> = infos
        .keys()
        .filter(|p| !referenced.contains(p))
        .cloned()
        .collect();
    roots.sort();
    roots
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roots_are_the_unreferenced_paths() {
        let base = |name: &str| {
            StoreBaseName::new(&format!("hbzqcq91kds495bgrlq6rpyp54q2y0xw-{name}")).unwrap()
        };
        let mk = |p: &str, refs: &[&str]| PathInfo {
            path: base(p),
            nar_hash: None,
            nar_size: None,
            references: refs.iter().map(|s| base(s)).collect(),
            deriver: None,
            ca: None,
        };
        let infos: FxHashMap<StoreBaseName, Arc<PathInfo>> =
            [mk("a", &["a", "b"]), mk("b", &["c"]), mk("c", &[])]
                .into_iter()
                .map(|i| (i.path.clone(), Arc::new(i)))
                .collect();
        assert_eq!(infer_roots(&infos), vec![base("a")]);
    }
}
