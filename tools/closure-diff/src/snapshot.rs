//! Our own snapshot format: everything a comparison needs from one machine
//! (paths, NAR hashes and sizes, references, derivers and optionally the
//! `.drv` files), so that another machine can compare without access.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use anyhow::{bail, Context as _, Result};
use fromgit_nix::pathinfo::PathInfo;
use fromgit_nix::{Sha256Hash, StoreBaseName, StoreDir, StorePath};
use serde_json::{json, Value};

use crate::side::{Drvs, Side, Source};

/// The `schema` value of snapshot files.
pub const SCHEMA: &str = "closure-diff-snapshot-v1";

/// Every `.drv` reachable from the roots' derivers, as `ATerm` text.
fn collect_drvs(side: &Side) -> Result<(BTreeMap<StoreBaseName, String>, Vec<String>)> {
    let Drvs::Local(dir) = &side.drvs else {
        return Ok((BTreeMap::new(), Vec::new()));
    };
    let mut texts = BTreeMap::new();
    let mut missing = Vec::new();
    let mut stack: Vec<StoreBaseName> = side.root_drvs.iter().map(StorePath::base).collect();
    let mut seen = BTreeSet::new();
    while let Some(base) = stack.pop() {
        if !seen.insert(base.clone()) {
            continue;
        }
        let file = dir.join(&base);
        let text = match fs_err::read_to_string(&file) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                missing.push(side.abs(&base));
                continue;
            }
            Err(e) => return Err(e.into()),
        };
        let d = fromgit_nix::drv::parse_aterm(text.as_bytes())
            .with_context(|| format!("`{}` does not parse as a derivation", file.display()))?;
        for input in d.input_drvs.keys() {
            stack.push(side.store_dir.base_name_of(input)?);
        }
        texts.insert(base, text);
    }
    Ok((texts, missing))
}

/// Renders a side as a snapshot document.
pub fn render(side: &Side, with_drvs: bool) -> Result<Value> {
    let mut paths = BTreeMap::new();
    for (base, info) in &side.infos {
        paths.insert(
            base.clone(),
            json!({
                "narHash": info.nar_hash.map(|h| h.to_sri()),
                "narSize": info.nar_size,
                "references": info.references,
                "deriver": info.deriver,
                "ca": info.ca,
            }),
        );
    }
    let mut doc = json!({
        "schema": SCHEMA,
        "storeDir": side.store_dir,
        "roots": side.roots.iter().map(StorePath::base_name).collect::<Vec<_>>(),
        "rootDrvs": side.root_drvs.iter().map(StorePath::base_name).collect::<Vec<_>>(),
        "source": side.source,
        "paths": paths,
    });
    if with_drvs {
        let (drvs, missing) = collect_drvs(side)?;
        for m in &missing {
            fromgit_cli::warn(&format!(
                "`{m}` is not in the store: left out of the snapshot"
            ));
        }
        doc["drvs"] = json!(drvs);
        doc["missingDrvs"] = json!(missing);
    }
    Ok(doc)
}

fn strings(v: Option<&Value>, what: &str, spec: &str) -> Result<Vec<String>> {
    match v {
        None | Some(Value::Null) => Ok(Vec::new()),
        Some(Value::Array(a)) => a
            .iter()
            .map(|x| {
                x.as_str()
                    .map(str::to_owned)
                    .with_context(|| format!("`{spec}`: `{what}` holds a non-string"))
            })
            .collect(),
        Some(_) => bail!("`{spec}`: `{what}` is not a list"),
    }
}

/// Loads a snapshot document.
pub fn load(spec: &str, doc: &Value) -> Result<Side> {
    let schema = doc
        .get("schema")
        .and_then(Value::as_str)
        .unwrap_or_default();
    if schema != SCHEMA {
        bail!("`{spec}` has schema `{schema}`, expected `{SCHEMA}`");
    }
    let store_dir = doc
        .get("storeDir")
        .and_then(Value::as_str)
        .with_context(|| format!("`{spec}`: no `storeDir`"))?;
    let store_dir = StoreDir::new(store_dir).with_context(|| format!("`{spec}`"))?;
    let store_paths = |what: &str| -> Result<Vec<StorePath>> {
        strings(doc.get(what), what, spec)?
            .iter()
            .map(|base| {
                let base =
                    StoreBaseName::new(base).with_context(|| format!("`{spec}`: `{what}`"))?;
                Ok(store_dir.join(&base))
            })
            .collect()
    };
    let paths = doc
        .get("paths")
        .and_then(Value::as_object)
        .with_context(|| format!("`{spec}`: no `paths` object"))?;
    let mut infos = rustc_hash::FxHashMap::default();
    for (base, v) in paths {
        let base = StoreBaseName::new(base).with_context(|| format!("`{spec}`"))?;
        let nar_hash = match v.get("narHash") {
            None | Some(Value::Null) => None,
            Some(h) => Some(
                Sha256Hash::from_json(h)
                    .with_context(|| format!("`{spec}`: `{base}`: bad narHash"))?,
            ),
        };
        let nar_size = match v.get("narSize") {
            None | Some(Value::Null) => None,
            Some(n) => Some(
                n.as_u64()
                    .with_context(|| format!("`{spec}`: `{base}`: narSize is not a number"))?,
            ),
        };
        let references = strings(v.get("references"), "references", spec)?
            .iter()
            .map(|r| StoreBaseName::new(r).with_context(|| format!("`{spec}`: `{base}`")))
            .collect::<Result<Vec<_>>>()?;
        let deriver = v
            .get("deriver")
            .and_then(Value::as_str)
            .map(|d| {
                StoreBaseName::new(d).with_context(|| format!("`{spec}`: `{base}`: `deriver`"))
            })
            .transpose()?;
        let ca = v.get("ca").and_then(Value::as_str).map(str::to_owned);
        infos.insert(
            base.clone(),
            std::sync::Arc::new(PathInfo {
                path: base,
                nar_hash,
                nar_size,
                references,
                deriver,
                ca,
            }),
        );
    }
    let roots = store_paths("roots")?;
    if roots.is_empty() {
        bail!("`{spec}`: the snapshot names no roots");
    }
    let mut drvs = HashMap::new();
    if let Some(map) = doc.get("drvs").and_then(Value::as_object) {
        for (k, v) in map {
            let text = v
                .as_str()
                .with_context(|| format!("`{spec}`: drv `{k}` is not a string"))?;
            let base = StoreBaseName::new(k).with_context(|| format!("`{spec}`: drv `{k}`"))?;
            drvs.insert(base, text.to_owned());
        }
    }
    let side = Side {
        spec: spec.to_owned(),
        source: Source::Snapshot,
        root_drvs: store_paths("rootDrvs")?,
        store_dir,
        roots,
        infos,
        missing_references: BTreeSet::new(),
        unrealised: false,
        drvs: if drvs.is_empty() {
            Drvs::None
        } else {
            Drvs::Texts(drvs)
        },
        local_store: None,
    };
    let mut side = side;
    side.close_over_roots();
    Ok(side)
}

#[cfg(test)]
mod tests {
    use super::*;

    const ROOT: &str = "hbzqcq91kds495bgrlq6rpyp54q2y0xw-t";
    const DRV: &str = "b6wzvjp55iapvbbnd0fx9w1ag6bznr1q-hello-1.0.drv";

    fn doc(store_dir: &str, root: &str) -> Value {
        json!({
            "schema": SCHEMA,
            "storeDir": store_dir,
            "roots": [root],
            "rootDrvs": [DRV],
            "paths": {ROOT: {"narHash": null, "narSize": 1, "references": [], "deriver": DRV}},
        })
    }

    #[test]
    fn roots_are_store_paths_and_round_trip_as_base_names() {
        let side = load("snap.json", &doc("/tmp/st", ROOT)).unwrap();
        assert_eq!(side.store_dir.as_str(), "/tmp/st");
        assert_eq!(side.roots[0].as_str(), format!("/tmp/st/{ROOT}"));
        assert_eq!(side.root_drvs[0].base_name(), DRV);
        let again = render(&side, false).unwrap();
        assert_eq!(again["roots"], json!([ROOT]));
        assert_eq!(again["rootDrvs"], json!([DRV]));
        assert_eq!(again["storeDir"], json!("/tmp/st"));
    }

    #[test]
    fn a_malformed_reference_deriver_or_drv_is_refused_at_load_by_name() {
        const BAD: &str = "hbzqcq91kds495bgrlq6rpyp54q2y0ex-libfoo";
        let mut bad_reference = doc("/nix/store", ROOT);
        bad_reference["paths"][ROOT]["references"] = json!([BAD]);
        let mut bad_deriver = doc("/nix/store", ROOT);
        bad_deriver["paths"][ROOT]["deriver"] = json!(BAD);
        let mut bad_drv = doc("/nix/store", ROOT);
        bad_drv["drvs"] = json!({BAD: "Derive()"});
        for (what, doc) in [
            ("references", bad_reference),
            ("deriver", bad_deriver),
            ("drv", bad_drv),
        ] {
            let err = format!("{:#}", load("snap.json", &doc).expect_err(what));
            assert!(
                err.starts_with("`snap.json`: ")
                    && err.contains(&format!("`{BAD}` is not a valid store path base name")),
                "{what}: {err}"
            );
        }
    }

    #[test]
    fn a_bad_root_or_store_dir_is_refused_by_name() {
        let err = format!(
            "{:#}",
            load("snap.json", &doc("/nix/store", "x-y")).unwrap_err()
        );
        assert!(err.contains("`x-y`") && err.contains("`roots`"), "{err}");
        let err = format!(
            "{:#}",
            load("snap.json", &doc("nix/store", ROOT)).unwrap_err()
        );
        assert!(
            err.contains("`nix/store` is not a valid store directory"),
            "{err}"
        );
    }
}
