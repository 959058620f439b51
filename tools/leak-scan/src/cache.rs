//! The clean-object cache that makes `--history` incremental without
//! commit ranges: the ids of objects already scanned clean, kept in
//! `.git/leak-scan/cache-<key>`, where the key hashes the tool version, the
//! rule set, the fingerprint file and the size limit. Any change to those
//! starts a new cache. Only ids are stored, never content; an object with
//! any hit (even a suppressed one) is never cached, so it is re-scanned and
//! its suppression stays in use.

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

pub struct Cache {
    path: PathBuf,
    clean: HashSet<[u8; 20]>,
    added: Vec<[u8; 20]>,
}

/// The version of the checks that are code, not rule files (the sops
/// checks): bumped when they find more, so that objects an older build
/// cached as clean are scanned again.
const CHECKS_VERSION: &[u8] = b"checks-2";

/// The cache key: what must not change for earlier results to hold.
pub fn key(rules: &[u8; 32], known: Option<&[u8; 32]>, max_size: u64) -> String {
    let mut hasher = Sha256::new();
    hasher.update(env!("CARGO_PKG_VERSION").as_bytes());
    hasher.update(CHECKS_VERSION);
    hasher.update(rules);
    hasher.update(known.map_or(&[0u8; 32][..], |k| &k[..]));
    hasher.update(max_size.to_le_bytes());
    hex::encode(&hasher.finalize()[..10])
}

impl Cache {
    /// Opens the cache in `git_dir`; a missing or damaged cache is empty.
    pub fn open(git_dir: &Path, key: &str) -> Self {
        let path = git_dir.join("leak-scan").join(format!("cache-{key}"));
        let mut clean = HashSet::new();
        match fs_err::read(&path) {
            Ok(bytes) if bytes.len() % 20 == 0 => {
                for chunk in bytes.chunks_exact(20) {
                    let mut id = [0u8; 20];
                    id.copy_from_slice(chunk);
                    clean.insert(id);
                }
            }
            Ok(_) => tracing::warn!("ignoring damaged cache `{}`", path.display()),
            Err(_) => {}
        }
        tracing::info!("cache `{}`: {} clean objects", path.display(), clean.len());
        Cache {
            path,
            clean,
            added: Vec::new(),
        }
    }

    pub fn contains(&self, id: &[u8]) -> bool {
        <[u8; 20]>::try_from(id).is_ok_and(|id| self.clean.contains(&id))
    }

    pub fn add(&mut self, id: &[u8]) {
        if let Ok(id) = <[u8; 20]>::try_from(id) {
            if !self.clean.contains(&id) {
                self.added.push(id);
            }
        }
    }

    /// Writes the cache back (atomically) when something was added.
    pub fn save(mut self) -> std::io::Result<()> {
        if self.added.is_empty() {
            return Ok(());
        }
        self.clean.extend(self.added.drain(..));
        let mut ids: Vec<[u8; 20]> = self.clean.into_iter().collect();
        ids.sort_unstable();
        let bytes: Vec<u8> = ids.concat();
        if let Some(dir) = self.path.parent() {
            fs_err::create_dir_all(dir)?;
        }
        fromgit_fs::write(&self.path, &bytes, fromgit_fs::Mode::KeepOrPublic)
            .map_err(std::io::Error::other)
    }
}
