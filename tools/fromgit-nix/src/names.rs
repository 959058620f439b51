//! Package names and versions by Nix's own rules (`src/libstore/names.cc`).

use std::cmp::Ordering;

/// Output names peeled off a store path name when no `.drv` says otherwise.
pub const KNOWN_OUTPUTS: &[&str] = &[
    "bin", "dev", "out", "lib", "man", "doc", "info", "debug", "static", "modules", "devdoc",
    "examples", "tests", "py", "python", "terminfo", "locales", "mo", "sbin", "devman",
];

/// Nix's `DrvName` split: the name ends at the first `-` not followed by a letter.
pub fn split_name(full: &str) -> (&str, &str) {
    let bytes = full.as_bytes();
    for (i, &c) in bytes.iter().enumerate() {
        if c == b'-' && bytes.get(i + 1).is_some_and(|n| !n.is_ascii_alphabetic()) {
            return (&full[..i], &full[i + 1..]);
        }
    }
    (full, "")
}

/// A store object's name split into package name, version and output.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PackageName {
    /// The package name (`DrvName.name`).
    pub pname: String,
    /// The version without the output suffix (may be empty).
    pub version: String,
    /// The output (`out` when there is no suffix); `drv` for derivations.
    pub output: String,
}

/// Splits a store path name (without the hash) into package, version and
/// output. The output suffix comes from `outputs` when the deriver is known,
/// otherwise from [`KNOWN_OUTPUTS`].
pub fn package_name(name: &str, outputs: Option<&[String]>) -> PackageName {
    let (pname, version, output) = package_parts(name, outputs);
    PackageName {
        pname: pname.to_owned(),
        version: version.to_owned(),
        output: output.to_owned(),
    }
}

/// [`package_name`] without allocating: (package name, version, output).
pub fn package_parts<'a>(name: &'a str, outputs: Option<&[String]>) -> (&'a str, &'a str, &'a str) {
    if let Some(base) = name.strip_suffix(".drv") {
        let (pname, version) = split_name(base);
        return (pname, version, "drv");
    }
    let mut output = "out";
    let mut base = name;
    if let Some((head, tail)) = name.rsplit_once('-') {
        let is_output = match outputs {
            Some(outs) => outs.iter().any(|o| o == tail && o != "out"),
            None => KNOWN_OUTPUTS.contains(&tail) && tail != "out",
        };
        if is_output && !head.is_empty() {
            output = tail;
            base = head;
        }
    }
    let (pname, version) = split_name(base);
    (pname, version, output)
}

fn components(v: &str) -> Vec<&str> {
    let bytes = v.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        let c = bytes[i];
        if c == b'.' || c == b'-' {
            i += 1;
            continue;
        }
        let start = i;
        if c.is_ascii_digit() {
            while i < bytes.len() && bytes[i].is_ascii_digit() {
                i += 1;
            }
        } else {
            while i < bytes.len()
                && !(bytes[i].is_ascii_digit() || bytes[i] == b'.' || bytes[i] == b'-')
            {
                i += 1;
            }
        }
        out.push(&v[start..i]);
    }
    out
}

fn as_int(c: &str) -> Option<i32> {
    if c.is_empty() || !c.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    c.parse().ok()
}

fn component_lt(c1: &str, c2: &str) -> bool {
    let (n1, n2) = (as_int(c1), as_int(c2));
    if let (Some(a), Some(b)) = (n1, n2) {
        a < b
    } else if (c1.is_empty() && n2.is_some()) || (c1 == "pre" && c2 != "pre") {
        true
    } else if c2 == "pre" {
        false
    } else if n2.is_some() {
        true
    } else if n1.is_some() {
        false
    } else {
        c1 < c2
    }
}

/// Nix's `compareVersions`.
pub fn compare_versions(v1: &str, v2: &str) -> Ordering {
    let (a, b) = (components(v1), components(v2));
    for i in 0..a.len().max(b.len()) {
        let c1 = a.get(i).copied().unwrap_or("");
        let c2 = b.get(i).copied().unwrap_or("");
        if component_lt(c1, c2) {
            return Ordering::Less;
        }
        if component_lt(c2, c1) {
            return Ordering::Greater;
        }
    }
    Ordering::Equal
}

/// Whether a version looks like a git hash (7 to 40 hex digits with a letter
/// among them): such versions are "changed", never up or down.
pub fn is_hash_like(version: &str) -> bool {
    version.split(['-', '.']).any(|part| {
        (7..=40).contains(&part.len())
            && part
                .bytes()
                .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
            && part.bytes().any(|b| b.is_ascii_alphabetic())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn drv_name_split_matches_nix() {
        assert_eq!(split_name("hello-2.10"), ("hello", "2.10"));
        assert_eq!(split_name("openssl-3.0.13-dev"), ("openssl", "3.0.13-dev"));
        assert_eq!(
            split_name("firmware-linux-nonfree-20240101-zstd"),
            ("firmware-linux-nonfree", "20240101-zstd")
        );
        assert_eq!(split_name("foo-_bar-1.0"), ("foo", "_bar-1.0"));
        assert_eq!(split_name("tool-deadbeef1"), ("tool-deadbeef1", ""));
        assert_eq!(
            split_name("hello-unstable-2024-01-01"),
            ("hello-unstable", "2024-01-01")
        );
    }

    #[test]
    fn peels_outputs() {
        let p = package_name("openssl-3.0.13-dev", None);
        assert_eq!(
            (p.pname.as_str(), p.version.as_str(), p.output.as_str()),
            ("openssl", "3.0.13", "dev")
        );
        let p = package_name("firmware-linux-nonfree-20240101-zstd", None);
        assert_eq!(
            (p.version.as_str(), p.output.as_str()),
            ("20240101-zstd", "out")
        );
        let outs = vec!["out".to_owned(), "zstd".to_owned()];
        let p = package_name("firmware-linux-nonfree-20240101-zstd", Some(&outs));
        assert_eq!(
            (p.version.as_str(), p.output.as_str()),
            ("20240101", "zstd")
        );
        let p = package_name("hello-2.10.drv", None);
        assert_eq!((p.pname.as_str(), p.output.as_str()), ("hello", "drv"));
        let p = package_name("man-db-2.12", None);
        assert_eq!(p.pname, "man-db");
    }

    #[test]
    fn version_order_matches_nix() {
        use Ordering::{Equal, Greater, Less};
        for (a, b, want) in [
            ("1.0", "2.3", Less),
            ("2.1", "2.3", Less),
            ("2.3", "2.3", Equal),
            ("2.5", "2.3", Greater),
            ("3.1", "3.1.1", Less),
            ("2.3a", "2.3.1", Less),
            ("2.3pre1", "2.3", Less),
            ("2.3pre3", "2.3pre12", Less),
            ("2.3a", "2.3c", Less),
            ("2.3pre1", "2.3c", Less),
            ("2.3pre1", "2.3q", Less),
            ("1.0", "1.0.0", Less),
            ("20240101", "20240202", Less),
        ] {
            assert_eq!(compare_versions(a, b), want, "{a} vs {b}");
        }
        assert!(is_hash_like("unstable-e7aabca"));
        assert!(!is_hash_like("20240101"));
        assert!(!is_hash_like("2.10"));
    }
}
