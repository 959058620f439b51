//! A store object's identity within one store directory, its base name
//! `<32 Nix32 chars>-<name>`, checked once where it is parsed: path-info
//! dumps, snapshots and reports carry this type, not a string to re-check.

use std::borrow::Borrow;
use std::sync::Arc;

use thiserror::Error;

use crate::nix32;

/// The length of the hash part of a store path base name.
pub const HASH_LEN: usize = 32;

/// The longest name Nix accepts (`StorePath::MaxPathLen`).
pub const MAX_NAME_LEN: usize = 211;

/// A string that is not `<32 Nix32 chars>-<name>` with a valid name.
#[derive(Debug, Error, PartialEq, Eq)]
#[error("`{0}` is not a valid store path base name (`<32 Nix32 chars>-<name>`)")]
pub struct BadBaseName(pub String);

/// Whether `name` is a store path name as Nix's `checkName` accepts it:
/// 1 to 211 characters from `[A-Za-z0-9+-._?=]`, whose first dash-separated
/// component is not `.` or `..`.
fn is_valid_name(name: &str) -> bool {
    let first = name.split('-').next().unwrap_or(name);
    !name.is_empty()
        && name.len() <= MAX_NAME_LEN
        && first != "."
        && first != ".."
        && name
            .bytes()
            .all(|c| c.is_ascii_alphanumeric() || b"+-._?=".contains(&c))
}

/// Checks a base name as Nix's `path.cc` does: a 32-character Nix32 hash,
/// `-`, then a name as [`is_valid_name`] describes it.
pub(crate) fn check(base: &str) -> Result<(), BadBaseName> {
    let bad = || BadBaseName(base.to_owned());
    let (hash, name) = base.split_at_checked(HASH_LEN).ok_or_else(bad)?;
    let name = name.strip_prefix('-').ok_or_else(bad)?;
    if !nix32::is_nix32(hash) || !is_valid_name(name) {
        return Err(bad());
    }
    Ok(())
}

/// A checked store path base name, `<32 Nix32 chars>-<name>`. Cloning it
/// shares one allocation (a closure names each path many times, as a key
/// and as a reference). Ordered, hashed and borrowed as its string, so maps
/// keyed by it are looked up by `&str`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct StoreBaseName(Arc<str>);

impl StoreBaseName {
    /// Checks `base`.
    pub fn new(base: &str) -> Result<Self, BadBaseName> {
        check(base)?;
        Ok(Self(base.into()))
    }

    /// Wraps a base name its caller has already checked.
    pub(crate) fn from_checked(base: &str) -> Self {
        Self(base.into())
    }

    /// The base name as a string.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The 32-character Nix32 hash part.
    pub fn hash_part(&self) -> &str {
        &self.0[..HASH_LEN]
    }

    /// The name after the hash and `-`.
    pub fn name(&self) -> &str {
        &self.0[HASH_LEN + 1..]
    }

    /// Whether this is a derivation: its name ends in `.drv`, compared as
    /// Nix does (case-sensitively).
    pub fn is_derivation(&self) -> bool {
        self.name().as_bytes().ends_with(b".drv")
    }
}

impl std::fmt::Display for StoreBaseName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl AsRef<str> for StoreBaseName {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl AsRef<std::path::Path> for StoreBaseName {
    fn as_ref(&self) -> &std::path::Path {
        self.0.as_ref().as_ref()
    }
}

impl Borrow<str> for StoreBaseName {
    fn borrow(&self) -> &str {
        &self.0
    }
}

impl std::str::FromStr for StoreBaseName {
    type Err = BadBaseName;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::new(s)
    }
}

impl TryFrom<&str> for StoreBaseName {
    type Error = BadBaseName;
    fn try_from(s: &str) -> Result<Self, Self::Error> {
        Self::new(s)
    }
}

impl TryFrom<String> for StoreBaseName {
    type Error = BadBaseName;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        Self::new(&s)
    }
}

impl serde::Serialize for StoreBaseName {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.0)
    }
}

impl<'de> serde::Deserialize<'de> for StoreBaseName {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Self::new(&s).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HASH: &str = "hbzqcq91kds495bgrlq6rpyp54q2y0xw";

    #[test]
    fn accepts_what_nix_accepts_and_splits_it() {
        let drv = StoreBaseName::new("b6wzvjp55iapvbbnd0fx9w1ag6bznr1q-hello-1.0.drv").unwrap();
        assert_eq!(drv.hash_part(), "b6wzvjp55iapvbbnd0fx9w1ag6bznr1q");
        assert_eq!(drv.name(), "hello-1.0.drv");
        assert!(drv.is_derivation());
        assert_eq!(drv.to_string(), drv.as_str());
        for ok in [
            "t",
            ".a",
            "..a",
            ".gitignore",
            "a.",
            "a-.",
            "a?b=c+d_e",
            "A-Z0-9",
            &"x".repeat(MAX_NAME_LEN),
        ] {
            let base = format!("{HASH}-{ok}");
            let parsed =
                StoreBaseName::try_from(base.as_str()).unwrap_or_else(|e| panic!("{ok}: {e}"));
            assert_eq!(parsed.name(), ok);
            assert!(!parsed.is_derivation());
        }
        assert!(!StoreBaseName::new(&format!("{HASH}-x.DRV"))
            .unwrap()
            .is_derivation());
    }

    #[test]
    fn refuses_what_path_cc_refuses_naming_it() {
        for bad in [
            // Bad hash characters (`e`, `o`, `u`, `t` are not Nix32) or case.
            "hbzqcq91kds495bgrlq6rpyp54q2y0ex-t".to_owned(),
            "hbzqcq91kds495bgrlq6rpyp54q2y0xo-t".to_owned(),
            "HBZQCQ91KDS495BGRLQ6RPYP54Q2Y0XW-t".to_owned(),
            // Wrong length of the hash part.
            "hbzqcq91kds495bgrlq6rpyp54q2y0x-t".to_owned(),
            "hbzqcq91kds495bgrlq6rpyp54q2y0xww-t".to_owned(),
            "short-name".to_owned(),
            String::new(),
            // No name, or no dash.
            HASH.to_owned(),
            format!("{HASH}-"),
            format!("{HASH}_t"),
            // Bad name characters.
            format!("{HASH}-a b"),
            format!("{HASH}-a/b"),
            format!("{HASH}-a:b"),
            format!("{HASH}-é"),
            format!("{HASH}-a\0b"),
            // `.`-leading names Nix refuses, and a name too long.
            format!("{HASH}-."),
            format!("{HASH}-.."),
            format!("{HASH}-.-a"),
            format!("{HASH}-..-a"),
            format!("{HASH}-{}", "x".repeat(MAX_NAME_LEN + 1)),
        ] {
            let err = StoreBaseName::new(&bad).expect_err(&bad);
            assert_eq!(err, BadBaseName(bad.clone()));
            assert!(err.to_string().contains(&format!("`{bad}`")), "{err}");
        }
    }

    #[test]
    fn maps_keyed_by_it_are_looked_up_by_str_and_it_serialises_as_its_string() {
        let base = StoreBaseName::new(&format!("{HASH}-t")).unwrap();
        let map: std::collections::HashMap<StoreBaseName, u8> = [(base.clone(), 1)].into();
        assert_eq!(map.get(format!("{HASH}-t").as_str()), Some(&1));
        let tree: std::collections::BTreeSet<StoreBaseName> = [base.clone()].into();
        assert!(tree.contains(format!("{HASH}-t").as_str()));
        let json = serde_json::to_string(&base).unwrap();
        assert_eq!(json, format!("\"{HASH}-t\""));
        assert_eq!(serde_json::from_str::<StoreBaseName>(&json).unwrap(), base);
        assert!(serde_json::from_str::<StoreBaseName>("\"x-y\"").is_err());
        let other = StoreBaseName::new("b6wzvjp55iapvbbnd0fx9w1ag6bznr1q-t").unwrap();
        assert!(other < base, "ordered as strings");
    }
}
