//! Store path syntax (`<storeDir>/<32 Nix32 chars>-<name>`) and the path
//! computations of `src/libstore/store-dir-config.cc`.

use sha2::{Digest as _, Sha256};
use thiserror::Error;

use crate::base_name::{self, BadBaseName, StoreBaseName, HASH_LEN};
use crate::nix32;

/// The default store directory.
pub const DEFAULT_STORE_DIR: &str = "/nix/store";

/// Why a string is not a store path or store path base name.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum StorePathError {
    /// The path does not start with the store directory.
    #[error("`{path}` is not in the store directory `{store_dir}`")]
    NotInStore {
        /// The offending path.
        path: String,
        /// The expected store directory.
        store_dir: String,
    },
    /// The base name is not `<32 Nix32 chars>-<name>` with a valid name.
    #[error(transparent)]
    BadBaseName(#[from] BadBaseName),
    /// The store directory is not a canonical absolute path.
    #[error("`{dir}` is not a valid store directory: {why}")]
    BadStoreDir {
        /// The offending directory.
        dir: String,
        /// What is wrong with it.
        why: &'static str,
    },
    /// The path is not `<store dir>/<base name>` (a relative path, or one
    /// that names a file inside a store object).
    #[error("`{0}` is not a store path (`<store dir>/<32 Nix32 chars>-<name>`)")]
    NotAStorePath(String),
}

/// Splits an absolute path in `store_dir` into the base name of the store
/// object it is or lies below (`/nix/store/x-foo/bin/sh` gives `x-foo`),
/// checked.
fn split_base<'a>(path: &'a str, store_dir: &str) -> Result<&'a str, StorePathError> {
    let not_in_store = || StorePathError::NotInStore {
        path: path.to_owned(),
        store_dir: store_dir.to_owned(),
    };
    let rest = path
        .strip_prefix(store_dir)
        .and_then(|r| r.strip_prefix('/'))
        .ok_or_else(not_in_store)?;
    let base = rest.split('/').next().unwrap_or(rest);
    base_name::check(base)?;
    Ok(base)
}

/// The base name of the store object an absolute path in `store_dir` is,
/// or lies below (`/nix/store/x-foo/bin/sh` gives `x-foo`).
pub fn base_name_of(path: &str, store_dir: &str) -> Result<StoreBaseName, StorePathError> {
    split_base(path, store_dir).map(StoreBaseName::from_checked)
}

/// A store directory: an absolute, canonical path such as `/nix/store`
/// (no trailing `/`, no empty, `.` or `..` component), checked once.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct StoreDir(Box<str>);

impl StoreDir {
    /// Checks `dir`.
    pub fn new(dir: &str) -> Result<Self, StorePathError> {
        let bad = |why| StorePathError::BadStoreDir {
            dir: dir.to_owned(),
            why,
        };
        let rest = dir.strip_prefix('/').ok_or_else(|| bad("not absolute"))?;
        if rest.is_empty() {
            return Err(bad("the root directory cannot hold store paths"));
        }
        if dir.contains('\0') {
            return Err(bad("contains a NUL byte"));
        }
        if rest
            .split('/')
            .any(|c| c.is_empty() || c == "." || c == "..")
        {
            return Err(bad(
                "not canonical (a trailing `/`, `//`, or a `.` or `..` component)",
            ));
        }
        Ok(Self(dir.into()))
    }

    /// The directory as a string.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The store path of a base name in this directory.
    pub fn join(&self, base: &StoreBaseName) -> StorePath {
        StorePath {
            path: format!("{}/{base}", self.0).into(),
            base_start: self.0.len() + 1,
        }
    }

    /// The absolute path of a base name in this directory, as a string.
    pub fn abs(&self, base: &StoreBaseName) -> String {
        format!("{}/{base}", self.0)
    }

    /// The base name of the store object `path` is, or lies below.
    pub fn base_name_of(&self, path: &str) -> Result<StoreBaseName, StorePathError> {
        base_name_of(path, &self.0)
    }

    /// Parses `path` as a store path in this directory; a path below a store
    /// object (`/nix/store/x-foo/bin/sh`) is refused.
    pub fn parse(&self, path: &str) -> Result<StorePath, StorePathError> {
        let sp = self.store_path_of(path)?;
        if sp.as_str().len() != path.len() {
            return Err(StorePathError::NotAStorePath(path.to_owned()));
        }
        Ok(sp)
    }

    /// The store object `path` is, or lies below (`/nix/store/x-foo/bin/sh`
    /// gives `/nix/store/x-foo`).
    pub fn store_path_of(&self, path: &str) -> Result<StorePath, StorePathError> {
        let base = split_base(path, &self.0)?;
        Ok(StorePath {
            path: path[..self.0.len() + 1 + base.len()].into(),
            base_start: self.0.len() + 1,
        })
    }
}

impl Default for StoreDir {
    fn default() -> Self {
        Self(DEFAULT_STORE_DIR.into())
    }
}

impl std::fmt::Display for StoreDir {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl AsRef<str> for StoreDir {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl std::str::FromStr for StoreDir {
    type Err = StorePathError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::new(s)
    }
}

impl TryFrom<&str> for StoreDir {
    type Error = StorePathError;
    fn try_from(s: &str) -> Result<Self, Self::Error> {
        Self::new(s)
    }
}

impl TryFrom<String> for StoreDir {
    type Error = StorePathError;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        Self::new(&s)
    }
}

impl serde::Serialize for StoreDir {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.0)
    }
}

impl<'de> serde::Deserialize<'de> for StoreDir {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Self::new(&s).map_err(serde::de::Error::custom)
    }
}

/// An absolute store path, `<store dir>/<32 Nix32 chars>-<name>`, checked
/// once: its store directory, hash part and name are valid, and it names a
/// store object, not a file inside one. Ordered and hashed as its string.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct StorePath {
    path: Box<str>,
    /// Where the base name starts (after the store directory and `/`).
    base_start: usize,
}

impl StorePath {
    /// Parses an absolute store path; its store directory is everything
    /// before the last `/`.
    pub fn new(path: &str) -> Result<Self, StorePathError> {
        let not_store_path = || StorePathError::NotAStorePath(path.to_owned());
        let (dir, _) = path.rsplit_once('/').ok_or_else(not_store_path)?;
        let dir = StoreDir::new(dir).map_err(|_| not_store_path())?;
        dir.parse(path)
    }

    /// The whole path.
    pub fn as_str(&self) -> &str {
        &self.path
    }

    /// The store directory, without the trailing `/`.
    pub fn store_dir(&self) -> &str {
        &self.path[..self.base_start - 1]
    }

    /// The base name, `<hash>-<name>`.
    pub fn base_name(&self) -> &str {
        &self.path[self.base_start..]
    }

    /// The base name, as its own type (the identity within the store).
    pub fn base(&self) -> StoreBaseName {
        StoreBaseName::from_checked(self.base_name())
    }

    /// The 32-character Nix32 hash part.
    pub fn hash_part(&self) -> &str {
        &self.base_name()[..HASH_LEN]
    }

    /// The name after the hash and `-`.
    pub fn name(&self) -> &str {
        &self.base_name()[HASH_LEN + 1..]
    }

    /// Whether this is a derivation: its name ends in `.drv`, compared as
    /// Nix does (case-sensitively).
    pub fn is_derivation(&self) -> bool {
        self.name().as_bytes().ends_with(b".drv")
    }
}

impl std::fmt::Display for StorePath {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.path)
    }
}

impl AsRef<str> for StorePath {
    fn as_ref(&self) -> &str {
        &self.path
    }
}

impl AsRef<std::ffi::OsStr> for StorePath {
    fn as_ref(&self) -> &std::ffi::OsStr {
        self.path.as_ref().as_ref()
    }
}

impl AsRef<std::path::Path> for StorePath {
    fn as_ref(&self) -> &std::path::Path {
        self.path.as_ref().as_ref()
    }
}

impl std::str::FromStr for StorePath {
    type Err = StorePathError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::new(s)
    }
}

impl TryFrom<&str> for StorePath {
    type Error = StorePathError;
    fn try_from(s: &str) -> Result<Self, Self::Error> {
        Self::new(s)
    }
}

impl TryFrom<String> for StorePath {
    type Error = StorePathError;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        Self::new(&s)
    }
}

impl serde::Serialize for StorePath {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.path)
    }
}

impl<'de> serde::Deserialize<'de> for StorePath {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Self::new(&s).map_err(serde::de::Error::custom)
    }
}

/// XOR-folds a SHA-256 digest to 20 bytes, as Nix does for store path hashes.
pub fn compress20(digest: &[u8]) -> [u8; 20] {
    let mut out = [0u8; 20];
    for (i, b) in digest.iter().enumerate() {
        out[i % 20] ^= b;
    }
    out
}

/// `storeDir/nix32(compress20(sha256(type:sha256:hex(inner):storeDir:name)))-name`.
pub fn make_store_path(kind: &str, inner: &[u8; 32], store_dir: &str, name: &str) -> String {
    let fingerprint = format!("{kind}:sha256:{}:{store_dir}:{name}", hex::encode(inner));
    let digest = Sha256::digest(fingerprint.as_bytes());
    format!("{store_dir}/{}-{name}", nix32::encode(&compress20(&digest)))
}

/// The path of a text store object (`.drv` files, `builtins.toFile`).
pub fn make_text_path(contents: &[u8], references: &[&str], store_dir: &str, name: &str) -> String {
    let mut refs: Vec<&str> = references.to_vec();
    refs.sort_unstable();
    let mut kind = String::from("text");
    for r in refs {
        kind.push(':');
        kind.push_str(r);
    }
    let inner: [u8; 32] = Sha256::digest(contents).into();
    make_store_path(&kind, &inner, store_dir, name)
}

/// The output path name: `name` for `out`, otherwise `name-output`.
pub fn output_path_name(drv_name: &str, output: &str) -> String {
    if output == "out" {
        drv_name.to_owned()
    } else {
        format!("{drv_name}-{output}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_in_a_store_dir_split_into_checked_base_names() {
        assert_eq!(
            base_name_of(
                "/nix/store/hbzqcq91kds495bgrlq6rpyp54q2y0xw-t/bin/x",
                "/nix/store"
            )
            .unwrap()
            .as_str(),
            "hbzqcq91kds495bgrlq6rpyp54q2y0xw-t"
        );
        assert!(matches!(
            base_name_of("/tmp/hbzqcq91kds495bgrlq6rpyp54q2y0xw-t", "/nix/store"),
            Err(StorePathError::NotInStore { .. })
        ));
        let err = base_name_of(
            "/nix/store/hbzqcq91kds495bgrlq6rpyp54q2y0ex-t",
            "/nix/store",
        )
        .expect_err("bad hash");
        assert_eq!(
            err.to_string(),
            "`hbzqcq91kds495bgrlq6rpyp54q2y0ex-t` is not a valid store path base name \
             (`<32 Nix32 chars>-<name>`)"
        );
    }

    #[test]
    fn store_dirs_are_canonical_absolute_paths() {
        assert_eq!(StoreDir::default().as_str(), "/nix/store");
        assert_eq!(
            "/tmp/st/store".parse::<StoreDir>().unwrap().as_str(),
            "/tmp/st/store"
        );
        for bad in [
            "",
            "/",
            "nix/store",
            "/nix/store/",
            "/nix//store",
            "/nix/./store",
            "/nix/../store",
            "/a\0b",
        ] {
            let err = StoreDir::new(bad).expect_err(bad);
            assert!(
                matches!(&err, StorePathError::BadStoreDir { dir, .. } if dir == bad),
                "{bad}: {err}"
            );
        }
    }

    #[test]
    fn store_paths_are_checked_once_and_split() {
        let p: StorePath = "/nix/store/b6wzvjp55iapvbbnd0fx9w1ag6bznr1q-hello-1.0.drv"
            .parse()
            .unwrap();
        assert_eq!(p.store_dir(), "/nix/store");
        assert_eq!(p.hash_part(), "b6wzvjp55iapvbbnd0fx9w1ag6bznr1q");
        assert_eq!(p.name(), "hello-1.0.drv");
        assert_eq!(
            p.base_name(),
            "b6wzvjp55iapvbbnd0fx9w1ag6bznr1q-hello-1.0.drv"
        );
        assert!(p.is_derivation());
        assert_eq!(p.to_string(), p.as_str());
        assert_eq!(
            serde_json::to_string(&p).unwrap(),
            "\"/nix/store/b6wzvjp55iapvbbnd0fx9w1ag6bznr1q-hello-1.0.drv\""
        );
        let back: StorePath = serde_json::from_str(&serde_json::to_string(&p).unwrap()).unwrap();
        assert_eq!(back, p);
        let other = StorePath::try_from("/tmp/st/hbzqcq91kds495bgrlq6rpyp54q2y0xw-t").unwrap();
        assert_eq!(other.store_dir(), "/tmp/st");
        assert!(!other.is_derivation());
        assert!(p < other, "ordered as strings");

        for bad in [
            "hbzqcq91kds495bgrlq6rpyp54q2y0xw-t",
            "/hbzqcq91kds495bgrlq6rpyp54q2y0xw-t",
            "/nix//store/hbzqcq91kds495bgrlq6rpyp54q2y0xw-t",
            "/nix/store/hbzqcq91kds495bgrlq6rpyp54q2y0xw-t/bin/sh",
            "/nix/store/hbzqcq91kds495bgrlq6rpyp54q2y0ex-t",
            "/nix/store/hbzqcq91kds495bgrlq6rpyp54q2y0xw-",
            "/nix/store/hbzqcq91kds495bgrlq6rpyp54q2y0xw-..",
        ] {
            let err = StorePath::try_from(bad).expect_err(bad);
            let tail = bad.rsplit('/').next().unwrap_or(bad);
            assert!(err.to_string().contains(tail), "{bad}: {err}");
        }
        assert!(serde_json::from_str::<StorePath>("\"/nix/store/x-y\"").is_err());
    }

    #[test]
    fn a_store_dir_parses_only_its_own_paths() {
        let dir = StoreDir::default();
        let p = dir
            .parse("/nix/store/hbzqcq91kds495bgrlq6rpyp54q2y0xw-t")
            .unwrap();
        assert_eq!(dir.join(&p.base()), p);
        assert_eq!(dir.abs(&p.base()), p.as_str());
        assert_eq!(
            dir.store_path_of("/nix/store/hbzqcq91kds495bgrlq6rpyp54q2y0xw-t/bin/x")
                .unwrap(),
            p
        );
        assert!(matches!(
            dir.parse("/nix/store/hbzqcq91kds495bgrlq6rpyp54q2y0xw-t/bin/x"),
            Err(StorePathError::NotAStorePath(_))
        ));
        assert!(matches!(
            dir.parse("/tmp/st/hbzqcq91kds495bgrlq6rpyp54q2y0xw-t"),
            Err(StorePathError::NotInStore { .. })
        ));
        assert!(matches!(
            dir.parse("/nix/storefoo/hbzqcq91kds495bgrlq6rpyp54q2y0xw-t"),
            Err(StorePathError::NotInStore { .. })
        ));
    }

    #[test]
    fn source_path_vector_v1() {
        let inner: [u8; 32] =
            hex::decode("faff3005b947c9d41204e314ed55ec97654b85ae1b77a58b2f49862798e3500a")
                .unwrap()
                .try_into()
                .unwrap();
        assert_eq!(
            make_store_path("source", &inner, "/nix/store", "t"),
            "/nix/store/hbzqcq91kds495bgrlq6rpyp54q2y0xw-t"
        );
    }

    #[test]
    fn text_path_vectors_v2_v5() {
        let hello = "Derive([(\"out\",\"/nix/store/r66mxzhcias4zcf5mfrdlgc05a5d3hrp-hello-1.0\",\"\",\"\")],[],[],\"x86_64-linux\",\"/bin/sh\",[\"-c\",\"echo hi > $out\"],[(\"builder\",\"/bin/sh\"),(\"name\",\"hello-1.0\"),(\"out\",\"/nix/store/r66mxzhcias4zcf5mfrdlgc05a5d3hrp-hello-1.0\"),(\"system\",\"x86_64-linux\")])";
        assert_eq!(hello.len(), 269);
        assert_eq!(
            make_text_path(hello.as_bytes(), &[], "/nix/store", "hello-1.0.drv"),
            "/nix/store/b6wzvjp55iapvbbnd0fx9w1ag6bznr1q-hello-1.0.drv"
        );
        let app = "Derive([(\"out\",\"/nix/store/wkg9m9zshzq8p0zab2kl31wxzg048fsc-app-2.0\",\"\",\"\")],[(\"/nix/store/px3m4qd9ix5q93kkvzggmgijx0549n2d-libfoo-9.9.drv\",[\"out\"])],[],\"x86_64-linux\",\"/bin/sh\",[\"-c\",\"echo /nix/store/2sm4jfwzqk1mgml3wrmz6s1cb8w3ixcl-libfoo-9.9 > $out\"],[(\"builder\",\"/bin/sh\"),(\"name\",\"app-2.0\"),(\"out\",\"/nix/store/wkg9m9zshzq8p0zab2kl31wxzg048fsc-app-2.0\"),(\"system\",\"x86_64-linux\")])";
        assert_eq!(
            make_text_path(
                app.as_bytes(),
                &["/nix/store/px3m4qd9ix5q93kkvzggmgijx0549n2d-libfoo-9.9.drv"],
                "/nix/store",
                "app-2.0.drv"
            ),
            "/nix/store/jzkni6y830y118smzsl3j7xmrlsq56k7-app-2.0.drv"
        );
        assert_eq!(
            output_path_name("openssl-3.0.13", "dev"),
            "openssl-3.0.13-dev"
        );
    }
}
