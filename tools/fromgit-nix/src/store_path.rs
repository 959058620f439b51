//! Store path syntax (`<storeDir>/<32 Nix32 chars>-<name>`) and the path
//! computations of `src/libstore/store-dir-config.cc`.

use sha2::{Digest as _, Sha256};
use thiserror::Error;

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
    #[error("`{0}` is not a valid store path base name (`<32 Nix32 chars>-<name>`)")]
    BadBaseName(String),
}

/// Checks a store path base name: a 32-character Nix32 hash, `-`, then a
/// name of 1 to 211 characters from `[A-Za-z0-9+-._?=]`.
pub fn validate_base_name(base: &str) -> Result<(), StorePathError> {
    let bad = || StorePathError::BadBaseName(base.to_owned());
    let (hash, name) = base.split_at_checked(32).ok_or_else(bad)?;
    let name = name.strip_prefix('-').ok_or_else(bad)?;
    if !nix32::is_nix32(hash)
        || name.is_empty()
        || name.len() > 211
        || !name
            .bytes()
            .all(|c| c.is_ascii_alphanumeric() || b"+-._?=".contains(&c))
    {
        return Err(bad());
    }
    Ok(())
}

/// The name part of a valid base name (after the hash and `-`).
pub fn name_of(base: &str) -> &str {
    base.get(33..).unwrap_or(base)
}

/// Splits an absolute store path into its base name, validating it. Anything
/// below the store object (`/nix/store/x-foo/bin/sh`) is cut off.
pub fn base_name_of<'a>(path: &'a str, store_dir: &str) -> Result<&'a str, StorePathError> {
    let not_in_store = || StorePathError::NotInStore {
        path: path.to_owned(),
        store_dir: store_dir.to_owned(),
    };
    let rest = path
        .strip_prefix(store_dir)
        .and_then(|r| r.strip_prefix('/'))
        .ok_or_else(not_in_store)?;
    let base = rest.split('/').next().unwrap_or(rest);
    validate_base_name(base)?;
    Ok(base)
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
    fn validates_base_names() {
        validate_base_name("hbzqcq91kds495bgrlq6rpyp54q2y0xw-t").unwrap();
        validate_base_name("b6wzvjp55iapvbbnd0fx9w1ag6bznr1q-hello-1.0.drv").unwrap();
        for bad in [
            "hbzqcq91kds495bgrlq6rpyp54q2y0xw",
            "hbzqcq91kds495bgrlq6rpyp54q2y0xw-",
            "hbzqcq91kds495bgrlq6rpyp54q2y0ex-t",
            "hbzqcq91kds495bgrlq6rpyp54q2y0xw-a/b",
            "short-name",
        ] {
            assert!(validate_base_name(bad).is_err(), "{bad}");
        }
        assert_eq!(
            base_name_of(
                "/nix/store/hbzqcq91kds495bgrlq6rpyp54q2y0xw-t/bin/x",
                "/nix/store"
            ),
            Ok("hbzqcq91kds495bgrlq6rpyp54q2y0xw-t")
        );
        assert!(base_name_of("/tmp/hbzqcq91kds495bgrlq6rpyp54q2y0xw-t", "/nix/store").is_err());
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
