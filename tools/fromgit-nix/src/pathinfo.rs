//! Path metadata (NAR hash, size, references, deriver) from `nix path-info
//! --json` in every shape Nix and Lix have written, and from `.narinfo` files.

use serde_json::Value;
use thiserror::Error;

use crate::base_name::{BadBaseName, StoreBaseName};
use crate::hash::{HashError, Sha256Hash};
use crate::store_path::{self, StorePathError};

/// What is known about one store object. Paths are base names, checked by
/// the parser that read them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PathInfo {
    /// Base name, `<hash>-<name>`.
    pub path: StoreBaseName,
    /// The NAR hash, when recorded.
    pub nar_hash: Option<Sha256Hash>,
    /// The NAR size, when recorded.
    pub nar_size: Option<u64>,
    /// References, as base names (may include the path itself).
    pub references: Vec<StoreBaseName>,
    /// The deriver's base name.
    pub deriver: Option<StoreBaseName>,
    /// The content address, verbatim.
    pub ca: Option<String>,
}

/// Why path-info data was rejected.
#[derive(Debug, Error)]
pub enum PathInfoError {
    /// The document is not JSON (truncated or malformed).
    #[error("not valid JSON: {0}")]
    Json(#[from] serde_json::Error),
    /// The top level is neither an array, an object keyed by path, nor a versioned wrapper.
    #[error("unrecognised path-info JSON shape: {0}")]
    Shape(String),
    /// A path is reported invalid (`"valid": false` or `null`): not in that store.
    #[error("`{0}` is not valid in the store that produced this dump")]
    Invalid(String),
    /// A store path is malformed or outside the store directory.
    #[error(transparent)]
    StorePath(#[from] StorePathError),
    /// A base name (of a path, reference or deriver) is malformed.
    #[error(transparent)]
    BaseName(#[from] BadBaseName),
    /// A hash is malformed.
    #[error("`{path}`: {source}")]
    Hash {
        /// The path whose hash is bad.
        path: String,
        /// The cause.
        source: HashError,
    },
    /// A field has the wrong type.
    #[error("`{path}`: field `{field}` has the wrong type")]
    Field {
        /// The path whose entry is bad.
        path: String,
        /// The field.
        field: &'static str,
    },
    /// One path listed twice with different metadata: which entry is true
    /// cannot be told, and taking either would depend on their order.
    #[error("`{0}` is listed twice with different NAR hashes or metadata")]
    Conflict(String),
    /// Paths from more than one store directory.
    #[error("paths from different store directories: `{0}` and `{1}`")]
    MixedStoreDirs(String, String),
    /// A `.narinfo` line or field is malformed.
    #[error("narinfo: {0}")]
    NarInfo(String),
}

/// A parsed dump: the store directory and the path infos.
#[derive(Debug, Clone)]
pub struct Dump {
    /// The store directory the paths belong to.
    pub store_dir: String,
    /// The entries, one per path.
    pub infos: Vec<PathInfo>,
}

fn store_dir_of(abs: &str) -> Option<&str> {
    abs.rsplit_once('/').map(|(dir, _)| dir)
}

/// Turns a path (absolute, or a base name in the v2+ formats) into a base name.
fn to_base(p: &str, store_dir: &str) -> Result<StoreBaseName, PathInfoError> {
    if p.starts_with('/') {
        Ok(store_path::base_name_of(p, store_dir)?)
    } else {
        Ok(StoreBaseName::new(p)?)
    }
}

fn entry(path: &str, v: &Value, store_dir: &str) -> Result<PathInfo, PathInfoError> {
    if v.is_null() || v.get("valid").and_then(Value::as_bool) == Some(false) {
        return Err(PathInfoError::Invalid(path.to_owned()));
    }
    let field_err = |field| PathInfoError::Field {
        path: path.to_owned(),
        field,
    };
    let nar_hash = match v.get("narHash") {
        None | Some(Value::Null) => None,
        Some(h) => Some(
            Sha256Hash::from_json(h).map_err(|source| PathInfoError::Hash {
                path: path.to_owned(),
                source,
            })?,
        ),
    };
    let nar_size = match v.get("narSize") {
        None | Some(Value::Null) => None,
        Some(n) => Some(n.as_u64().ok_or_else(|| field_err("narSize"))?),
    };
    let mut references = Vec::new();
    match v.get("references") {
        None | Some(Value::Null) => {}
        Some(Value::Array(refs)) => {
            for r in refs {
                let r = r.as_str().ok_or_else(|| field_err("references"))?;
                references.push(to_base(r, store_dir)?);
            }
        }
        Some(_) => return Err(field_err("references")),
    }
    let deriver = match v.get("deriver") {
        None | Some(Value::Null) => None,
        Some(Value::String(d)) if d.is_empty() => None,
        Some(Value::String(d)) => Some(to_base(d, store_dir)?),
        Some(_) => return Err(field_err("deriver")),
    };
    let ca = match v.get("ca") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => Some(s.clone()),
        Some(other) => Some(other.to_string()),
    };
    Ok(PathInfo {
        path: to_base(path, store_dir)?,
        nar_hash,
        nar_size,
        references,
        deriver,
        ca,
    })
}

/// Parses `nix path-info --json` output of any known shape:
/// an array of objects with `path` (Nix ≤ 2.18, Lix); an object keyed by
/// absolute path (2.19–2.32, and `--json-format 1` with per-entry
/// `storeDir`); or `{"version":2|3,"storeDir":…,"info":{<base name>:…}}`.
/// `default_store_dir` applies when the document does not say.
pub fn parse_path_info_json(bytes: &[u8], default_store_dir: &str) -> Result<Dump, PathInfoError> {
    let doc: Value = crate::json::parse_strict(bytes)?;
    let mut pairs: Vec<(String, &Value)> = Vec::new();
    let mut store_dir: Option<String> = None;
    match &doc {
        Value::Array(items) => {
            for item in items {
                let path = item
                    .get("path")
                    .and_then(Value::as_str)
                    .ok_or_else(|| PathInfoError::Shape("array entry without `path`".into()))?;
                pairs.push((path.to_owned(), item));
            }
        }
        Value::Object(map) if map.contains_key("info") && map.contains_key("version") => {
            store_dir = map
                .get("storeDir")
                .and_then(Value::as_str)
                .map(str::to_owned);
            let info = map
                .get("info")
                .and_then(Value::as_object)
                .ok_or_else(|| PathInfoError::Shape("`info` is not an object".into()))?;
            for (k, v) in info {
                pairs.push((k.clone(), v));
            }
        }
        Value::Object(map) => {
            for (k, v) in map {
                if let Some(sd) = v.get("storeDir").and_then(Value::as_str) {
                    match &store_dir {
                        Some(prev) if prev != sd => {
                            return Err(PathInfoError::MixedStoreDirs(prev.clone(), sd.to_owned()))
                        }
                        _ => store_dir = Some(sd.to_owned()),
                    }
                }
                pairs.push((k.clone(), v));
            }
        }
        _ => {
            return Err(PathInfoError::Shape(
                "top level is not an array or object".into(),
            ))
        }
    }
    let store_dir = if let Some(sd) = store_dir {
        sd
    } else {
        {
            let mut found: Option<&str> = None;
            for (p, _) in &pairs {
                if p.starts_with('/') {
                    let sd = store_dir_of(p).unwrap_or(default_store_dir);
                    match found {
                        Some(prev) if prev != sd => {
                            return Err(PathInfoError::MixedStoreDirs(
                                prev.to_owned(),
                                sd.to_owned(),
                            ))
                        }
                        _ => found = Some(sd),
                    }
                }
            }
            found.unwrap_or(default_store_dir).to_owned()
        }
    };
    let infos = pairs
        .iter()
        .map(|(p, v)| {
            let abs = if p.starts_with('/') {
                p.clone()
            } else {
                format!("{store_dir}/{p}")
            };
            entry(&abs, v, &store_dir)
        })
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Dump {
        store_dir,
        infos: without_duplicates(infos)?,
    })
}

/// Drops repeated identical entries; a path repeated with different
/// metadata is a [`PathInfoError::Conflict`].
pub fn without_duplicates(infos: Vec<PathInfo>) -> Result<Vec<PathInfo>, PathInfoError> {
    let mut first_at: std::collections::HashMap<StoreBaseName, usize> =
        std::collections::HashMap::new();
    let mut kept: Vec<PathInfo> = Vec::with_capacity(infos.len());
    for info in infos {
        match first_at.get(&info.path) {
            Some(&index) if kept[index] != info => {
                return Err(PathInfoError::Conflict(info.path.to_string()));
            }
            Some(_) => {}
            None => {
                first_at.insert(info.path.clone(), kept.len());
                kept.push(info);
            }
        }
    }
    Ok(kept)
}

/// Records a `.narinfo` field, refusing a second, different value for it.
fn set_once(slot: &mut Option<String>, key: &str, value: &str) -> Result<(), PathInfoError> {
    match slot {
        Some(previous) if previous != value => Err(PathInfoError::NarInfo(format!(
            "`{key}` is given twice with different values"
        ))),
        _ => {
            *slot = Some(value.to_owned());
            Ok(())
        }
    }
}

/// Parses one `.narinfo` file. Returns the entry and its store directory.
pub fn parse_narinfo(text: &str) -> Result<(String, PathInfo), PathInfoError> {
    let mut store_path = None;
    let mut nar_hash = None;
    let mut nar_size = None;
    let mut references = Vec::new();
    let mut deriver = None;
    let mut ca = None;
    for line in text.lines() {
        if line.trim().is_empty() {
            continue;
        }
        let (k, v) = line
            .split_once(": ")
            .or_else(|| line.split_once(':'))
            .ok_or_else(|| {
                PathInfoError::NarInfo(format!("line without `key: value`: `{line}`"))
            })?;
        let v = v.trim();
        match k {
            "StorePath" => set_once(&mut store_path, k, v)?,
            "NarHash" => set_once(&mut nar_hash, k, v)?,
            "NarSize" => {
                nar_size = Some(
                    v.parse::<u64>()
                        .map_err(|_| PathInfoError::NarInfo(format!("bad NarSize `{v}`")))?,
                );
            }
            "References" => references = v.split_whitespace().map(str::to_owned).collect(),
            "Deriver" if !v.is_empty() && v != "unknown-deriver" => deriver = Some(v.to_owned()),
            "CA" if !v.is_empty() => ca = Some(v.to_owned()),
            _ => {}
        }
    }
    let abs = store_path.ok_or_else(|| PathInfoError::NarInfo("no `StorePath`".into()))?;
    let store_dir = store_dir_of(&abs)
        .ok_or_else(|| PathInfoError::NarInfo(format!("bad StorePath `{abs}`")))?
        .to_owned();
    let base = store_path::base_name_of(&abs, &store_dir)?;
    let nar_hash = nar_hash
        .map(|h| {
            h.parse::<Sha256Hash>()
                .map_err(|source| PathInfoError::Hash {
                    path: abs.clone(),
                    source,
                })
        })
        .transpose()?;
    let references = references
        .iter()
        .map(|r| StoreBaseName::new(r))
        .collect::<Result<Vec<_>, _>>()?;
    let deriver = deriver.as_deref().map(StoreBaseName::new).transpose()?;
    Ok((
        store_dir,
        PathInfo {
            path: base,
            nar_hash,
            nar_size,
            references,
            deriver,
            ca,
        },
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: &str = "/nix/store/b88n4acqmh2knzsxgwfq4a5r3wdwnpwr-app-2.0";
    const L: &str = "/nix/store/fy0hp0n6zv4k93b0fdgcblp223w0y3n6-libfoo-1.0";
    const SRI: &str = "sha256-ZBhNBAfED4UpMGFOVdp/9e5UHa3TZ78H3xJrxVxNe70=";

    fn check(dump: &Dump) {
        assert_eq!(dump.store_dir, "/nix/store");
        let app = dump
            .infos
            .iter()
            .find(|i| i.path.name() == "app-2.0")
            .unwrap();
        assert_eq!(app.nar_size, Some(168));
        assert_eq!(app.nar_hash, Some(SRI.parse().unwrap()));
        assert_eq!(
            app.references,
            vec![StoreBaseName::new(L.trim_start_matches("/nix/store/")).unwrap()]
        );
    }

    #[test]
    fn array_shape_nix_2_8_and_lix() {
        let doc = format!(
            r#"[{{"path":"{A}","narHash":"{SRI}","narSize":168,"references":["{L}"],"deriver":"/nix/store/8hil3nlif4bdxvavxkyd3yb42asik8zq-app-2.0.drv","registrationTime":1,"ultimate":true}},
               {{"path":"{L}","narHash":"{SRI}","narSize":1,"references":[]}}]"#
        );
        let dump = parse_path_info_json(doc.as_bytes(), "/nix/store").unwrap();
        check(&dump);
        assert_eq!(
            dump.infos[0].deriver.as_ref().map(StoreBaseName::as_str),
            Some("8hil3nlif4bdxvavxkyd3yb42asik8zq-app-2.0.drv")
        );
    }

    #[test]
    fn object_shapes_2_19_and_format_1() {
        let doc = format!(
            r#"{{"{A}":{{"narHash":"{SRI}","narSize":168,"references":["{L}"],"deriver":null,"ca":null}},
                "{L}":{{"narHash":"{SRI}","narSize":1,"references":[],"storeDir":"/nix/store","version":1}}}}"#
        );
        check(&parse_path_info_json(doc.as_bytes(), "/nix/store").unwrap());
    }

    #[test]
    fn versioned_wrapper_v2_v3() {
        let a = A.trim_start_matches("/nix/store/");
        let l = L.trim_start_matches("/nix/store/");
        let doc = format!(
            r#"{{"version":2,"storeDir":"/nix/store","info":{{
                "{a}":{{"narHash":{{"algo":"sha256","base16":"64184d0407c40f852930614e55da7ff5ee541dadd367bf07df126bc55c4d7bbd"}},"narSize":168,"references":["{l}"],"ca":{{"method":"nar","hash":"{SRI}"}}}},
                "{l}":{{"narHash":"{SRI}","narSize":1,"references":[]}}}}}}"#
        );
        check(&parse_path_info_json(doc.as_bytes(), "/nix/store").unwrap());
    }

    #[test]
    fn a_path_listed_twice_with_different_hashes_is_a_conflict_in_every_shape() {
        const OTHER: &str = "sha256-AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=";
        let a = A.trim_start_matches("/nix/store/");
        let conflicting = [
            format!(
                r#"[{{"path":"{A}","narHash":"{SRI}","references":[]}},{{"path":"{A}","narHash":"{OTHER}","references":[]}}]"#
            ),
            format!(
                r#"{{"{A}":{{"narHash":"{SRI}","references":[]}},"{A}":{{"narHash":"{OTHER}","references":[]}}}}"#
            ),
            format!(
                r#"{{"version":2,"storeDir":"/nix/store","info":{{"{a}":{{"narHash":"{SRI}","references":[]}},"{a}":{{"narHash":"{OTHER}","references":[]}}}}}}"#
            ),
            // The same path once absolute and once as a base name.
            format!(
                r#"{{"{A}":{{"narHash":"{SRI}","references":[]}},"{a}":{{"narHash":"{OTHER}","references":[]}}}}"#
            ),
        ];
        for doc in conflicting {
            let err = parse_path_info_json(doc.as_bytes(), "/nix/store").expect_err(&doc);
            assert!(err.to_string().contains(a), "{err}");
        }
        let identical = format!(
            r#"[{{"path":"{A}","narHash":"{SRI}","references":[]}},{{"path":"{A}","narHash":"{SRI}","references":[]}}]"#
        );
        let dump = parse_path_info_json(identical.as_bytes(), "/nix/store").expect("identical");
        assert_eq!(dump.infos.len(), 1);
    }

    #[test]
    fn rejects_invalid_truncated_and_foreign() {
        let invalid = format!(r#"[{{"path":"{A}","valid":false}}]"#);
        assert!(matches!(
            parse_path_info_json(invalid.as_bytes(), "/nix/store"),
            Err(PathInfoError::Invalid(_))
        ));
        let null = format!(r#"{{"{A}":null}}"#);
        assert!(matches!(
            parse_path_info_json(null.as_bytes(), "/nix/store"),
            Err(PathInfoError::Invalid(_))
        ));
        let truncated = format!(r#"[{{"path":"{A}","narHash":"{SRI}""#);
        assert!(matches!(
            parse_path_info_json(truncated.as_bytes(), "/nix/store"),
            Err(PathInfoError::Json(_))
        ));
        assert!(parse_path_info_json(b"42", "/nix/store").is_err());
        let bad_hash = format!(r#"[{{"path":"{A}","narHash":"sha256-xx"}}]"#);
        assert!(parse_path_info_json(bad_hash.as_bytes(), "/nix/store").is_err());
    }

    #[test]
    fn a_malformed_reference_or_deriver_is_refused_at_parse_time_by_name() {
        const BAD: &str = "fy0hp0n6zv4k93b0fdgcblp223w0y3ne-libfoo-1.0";
        let a = A.trim_start_matches("/nix/store/");
        for doc in [
            format!(r#"[{{"path":"{A}","narHash":"{SRI}","references":["/nix/store/{BAD}"]}}]"#),
            format!(r#"{{"{A}":{{"narHash":"{SRI}","references":["/nix/store/{BAD}"]}}}}"#),
            format!(
                r#"{{"version":2,"storeDir":"/nix/store","info":{{"{a}":{{"narHash":"{SRI}","references":["{BAD}"]}}}}}}"#
            ),
            format!(r#"[{{"path":"{A}","narHash":"{SRI}","references":[],"deriver":"{BAD}"}}]"#),
        ] {
            let err = parse_path_info_json(doc.as_bytes(), "/nix/store").expect_err(&doc);
            assert!(
                err.to_string()
                    == format!(
                        "`{BAD}` is not a valid store path base name (`<32 Nix32 chars>-<name>`)"
                    ),
                "{err}"
            );
        }
        let narinfo = format!("StorePath: {A}\nNarHash: {SRI}\nReferences: {BAD}\n");
        let err = parse_narinfo(&narinfo).expect_err("bad reference");
        assert!(err.to_string().contains(&format!("`{BAD}`")), "{err}");
    }

    #[test]
    fn narinfo() {
        let text = "StorePath: /nix/store/b88n4acqmh2knzsxgwfq4a5r3wdwnpwr-app-2.0\nURL: nar/x.nar.xz\nCompression: xz\nNarHash: sha256:02jhwfc2g1j95y5saxqvms2lnrcpxiays5730h9d9ja7p42k1zzs\nNarSize: 904\nReferences: fy0hp0n6zv4k93b0fdgcblp223w0y3n6-libfoo-1.0\nDeriver: 8hil3nlif4bdxvavxkyd3yb42asik8zq-app-2.0.drv\n";
        let (sd, info) = parse_narinfo(text).unwrap();
        assert_eq!(sd, "/nix/store");
        assert_eq!(info.nar_size, Some(904));
        assert_eq!(info.references.len(), 1);
        assert!(parse_narinfo("garbage").is_err());
        let twice =
            format!("{text}NarHash: sha256:1jhwfc2g1j95y5saxqvms2lnrcpxiays5730h9d9ja7p42k1zzs\n");
        let err = parse_narinfo(&twice).expect_err("two hashes");
        assert!(
            err.to_string().contains("`NarHash` is given twice"),
            "{err}"
        );
        let repeated =
            format!("{text}NarHash: sha256:02jhwfc2g1j95y5saxqvms2lnrcpxiays5730h9d9ja7p42k1zzs\n");
        assert!(parse_narinfo(&repeated).is_ok());
    }
}
