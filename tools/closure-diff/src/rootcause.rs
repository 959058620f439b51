//! Root cause: walk both `.drv` graphs from the toplevels, pairing inputs by
//! package name and outputs (so version bumps are followed), and report the
//! derivations whose own recipe changed, once input paths are mapped across.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::rc::Rc;

use rustc_hash::FxHashMap;

use anyhow::{Context as _, Result};
use fromgit_nix::base_name::HASH_LEN;
use fromgit_nix::drv::Derivation;
use fromgit_nix::names;
use fromgit_nix::{StoreBaseName, StorePath};
use serde::Serialize;

use crate::compare::{matching_pattern, DriftPattern};
use crate::side::Side;

/// A value that differs between the two recipes.
#[derive(Debug, Clone, Serialize)]
pub struct ValueChange {
    /// What differs: `env.NAME`, `args[I]`, `builder`, `system`, `output.NAME.hash`.
    pub field: String,
    /// Old value (absent when added).
    pub old: Option<String>,
    /// New value (absent when removed).
    pub new: Option<String>,
    /// The old value with old paths mapped to new ones (what was compared).
    #[serde(skip)]
    pub mapped_old: Option<String>,
}

/// A derivation whose own recipe changed.
#[derive(Debug, Clone, Serialize)]
pub struct Cause {
    /// The old `.drv` path.
    pub old_drv: String,
    /// The new `.drv` path.
    pub new_drv: String,
    /// Whether any paired input derivation also changed. `false` = on the frontier.
    pub inputs_changed: bool,
    /// Environment, argument, builder and system differences, after mapping
    /// old input and output paths to the new ones.
    pub changes: Vec<ValueChange>,
    /// Input derivations only in the new recipe.
    pub inputs_added: Vec<String>,
    /// Input derivations only in the old recipe.
    pub inputs_removed: Vec<String>,
    /// Input sources only in the new recipe.
    pub sources_added: Vec<String>,
    /// Input sources only in the old recipe.
    pub sources_removed: Vec<String>,
    /// The `--expect-drift` pattern that allows this change.
    pub expected_by: Option<String>,
}

/// The result of the walk.
#[derive(Debug, Clone, Default, Serialize)]
pub struct RootCause {
    /// Whether both graphs could be walked completely.
    pub complete: bool,
    /// `.drv` files that were needed but are not available.
    pub missing_drvs: Vec<String>,
    /// Why the walk was not done, when it was not.
    pub skipped: Option<String>,
    /// Derivation pairs visited whose paths differ.
    pub changed_derivations: usize,
    /// Derivations with own changes; the frontier first.
    pub causes: Vec<Cause>,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum State {
    Same,
    Changed,
    Unknown,
}

/// A derivation as the walk reads it: its input derivations and sources
/// parsed as store paths of its side once, when the `.drv` is loaded.
struct Recipe {
    drv: Derivation,
    /// Input derivations by base name, with the outputs used from each.
    inputs: BTreeMap<StoreBaseName, Vec<String>>,
    /// Input sources.
    sources: BTreeSet<StorePath>,
}

impl Recipe {
    /// Parses the inputs of `drv`, the derivation `base` of `side`.
    fn new(drv: Derivation, base: &StoreBaseName, side: &Side) -> Result<Self> {
        let context = || format!("an input of `{}` (in `{}`)", side.abs(base), side.spec);
        let inputs = drv
            .input_drvs
            .iter()
            .map(|(path, outputs)| {
                let input = side.store_dir.parse(path).with_context(context)?;
                Ok((input.base(), outputs.clone()))
            })
            .collect::<Result<_>>()?;
        let sources = drv
            .input_srcs
            .iter()
            .map(|path| side.store_dir.parse(path).with_context(context))
            .collect::<Result<_>>()?;
        Ok(Self {
            drv,
            inputs,
            sources,
        })
    }
}

struct Walk<'a> {
    old: &'a Side,
    new: &'a Side,
    cache_old: FxHashMap<StoreBaseName, Option<Rc<Recipe>>>,
    cache_new: FxHashMap<StoreBaseName, Option<Rc<Recipe>>>,
    memo: FxHashMap<(StoreBaseName, StoreBaseName), State>,
    missing: BTreeSet<String>,
    causes: Vec<Cause>,
    patterns: &'a [DriftPattern],
}

fn drv_name(base: &StoreBaseName) -> &str {
    let name = base.name();
    name.strip_suffix(".drv").unwrap_or(name)
}

fn pname(base: &StoreBaseName) -> String {
    names::split_name(drv_name(base)).0.to_owned()
}

/// Old and new inputs paired, then the inputs only in the new recipe and
/// those only in the old one.
type Pairing = (
    Vec<(StoreBaseName, StoreBaseName)>,
    Vec<StoreBaseName>,
    Vec<StoreBaseName>,
);

/// Pairs old and new inputs by (package name, outputs used); exact matches first.
fn pair_inputs(
    a: &BTreeMap<StoreBaseName, Vec<String>>,
    b: &BTreeMap<StoreBaseName, Vec<String>>,
) -> Pairing {
    let mut pairs = Vec::new();
    let mut left: BTreeMap<(String, Vec<String>), Vec<StoreBaseName>> = BTreeMap::new();
    let mut right: BTreeMap<(String, Vec<String>), Vec<StoreBaseName>> = BTreeMap::new();
    for (p, outs) in a {
        if b.get(p) == Some(outs) {
            pairs.push((p.clone(), p.clone()));
        } else {
            left.entry((pname(p), outs.clone()))
                .or_default()
                .push(p.clone());
        }
    }
    for (p, outs) in b {
        if a.get(p) != Some(outs) {
            right
                .entry((pname(p), outs.clone()))
                .or_default()
                .push(p.clone());
        }
    }
    let mut removed = Vec::new();
    for (key, olds) in left {
        let news = right.remove(&key).unwrap_or_default();
        let n = olds.len().min(news.len());
        for i in 0..n {
            pairs.push((olds[i].clone(), news[i].clone()));
        }
        removed.extend(olds.into_iter().skip(n));
        right.insert(key, news.into_iter().skip(n).collect());
    }
    let added = right.into_values().flatten().collect();
    (pairs, added, removed)
}

/// Rewrites, in one pass, every store path of `s` that `subst` maps (keyed
/// by its hash part) to its replacement.
fn rewrite_paths(s: &str, prefix: &str, subst: &HashMap<&str, (&str, &str)>) -> String {
    if subst.is_empty() {
        return s.to_owned();
    }
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(i) = rest.find(prefix) {
        let at = &rest[i..];
        let hit = at
            .get(prefix.len()..prefix.len() + HASH_LEN)
            .and_then(|hash| subst.get(hash))
            .filter(|(from, _)| at.starts_with(from));
        if let Some((from, to)) = hit {
            out.push_str(&rest[..i]);
            out.push_str(to);
            rest = &rest[i + from.len()..];
        } else {
            let step = i + prefix.len();
            out.push_str(&rest[..step]);
            rest = &rest[step..];
        }
    }
    out.push_str(rest);
    out
}

/// Removes `path` and one adjacent separator from `s`.
fn strip_path(s: &str, path: &str) -> String {
    let mut out = s.to_owned();
    while let Some(i) = out.find(path) {
        let end = i + path.len();
        let before = out[..i].chars().next_back();
        if let Some(c) = before.filter(|c| matches!(c, ' ' | ':' | '\n' | ',')) {
            out.replace_range(i - c.len_utf8()..end, "");
        } else {
            let after = out[end..].chars().next();
            let extra = after
                .filter(|c| matches!(c, ' ' | ':' | '\n' | ','))
                .map_or(0, char::len_utf8);
            out.replace_range(i..end + extra, "");
        }
    }
    out
}

impl Walk<'_> {
    fn get(&mut self, old_side: bool, base: &StoreBaseName) -> Result<Option<Rc<Recipe>>> {
        let (side, cache) = if old_side {
            (self.old, &mut self.cache_old)
        } else {
            (self.new, &mut self.cache_new)
        };
        if let Some(d) = cache.get(base) {
            return Ok(d.clone());
        }
        let d = match side.load_drv(base)? {
            Some(drv) => Some(Rc::new(Recipe::new(drv, base, side)?)),
            None => None,
        };
        if d.is_none() {
            self.missing.insert(side.abs(base));
        }
        cache.insert(base.clone(), d.clone());
        Ok(d)
    }

    #[allow(clippy::too_many_lines)]
    fn visit(&mut self, a: &StoreBaseName, b: &StoreBaseName) -> Result<State> {
        if a == b {
            return Ok(State::Same);
        }
        let key = (a.clone(), b.clone());
        if let Some(s) = self.memo.get(&key) {
            return Ok(*s);
        }
        // Mark before descending (a cycle cannot occur in a store, but be safe).
        self.memo.insert(key.clone(), State::Changed);
        let (Some(ra), Some(rb)) = (self.get(true, a)?, self.get(false, b)?) else {
            self.memo.insert(key, State::Unknown);
            return Ok(State::Unknown);
        };
        let (da, db) = (&ra.drv, &rb.drv);
        let (pairs, added, removed) = pair_inputs(&ra.inputs, &rb.inputs);
        let mut inputs_changed = false;
        let mut subst: Vec<(String, String)> = Vec::new();
        for (x, y) in &pairs {
            let state = self.visit(x, y)?;
            if state != State::Same {
                inputs_changed = true;
            }
            if x != y {
                if let (Some(rx), Some(ry)) = (self.get(true, x)?, self.get(false, y)?) {
                    for (o, ox) in &rx.drv.outputs {
                        if let Some(oy) = ry.drv.outputs.get(o) {
                            if !ox.path.is_empty() && ox.path != oy.path {
                                subst.push((ox.path.clone(), oy.path.clone()));
                            }
                        }
                    }
                }
            }
        }
        for (o, oa) in &da.outputs {
            if let Some(ob) = db.outputs.get(o) {
                if !oa.path.is_empty() && oa.path != ob.path {
                    subst.push((oa.path.clone(), ob.path.clone()));
                }
            }
        }
        // Pair sources by name, so a changed source is one change, and map its path.
        let mut sources_removed: Vec<&StorePath> = ra.sources.difference(&rb.sources).collect();
        let mut sources_added: Vec<&StorePath> = rb.sources.difference(&ra.sources).collect();
        for s in &sources_removed {
            if let Some(t) = sources_added.iter().find(|t| t.name() == s.name()) {
                subst.push((s.to_string(), t.to_string()));
            }
        }
        let prefix = format!("{}/", self.old.store_dir);
        let by_hash: HashMap<&str, (&str, &str)> = subst
            .iter()
            .filter_map(|(from, to)| {
                let hash = from.strip_prefix(&prefix)?.get(..HASH_LEN)?;
                Some((hash, (from.as_str(), to.as_str())))
            })
            .collect();
        let map = |s: &str| -> String { rewrite_paths(s, &prefix, &by_hash) };
        let mut changes = Vec::new();
        let mut cmp = |field: String, x: Option<&String>, y: Option<&String>| {
            let mx = x.map(|v| map(v));
            if mx.as_ref() != y {
                changes.push(ValueChange {
                    field,
                    old: x.cloned(),
                    new: y.cloned(),
                    mapped_old: mx,
                });
            }
        };
        cmp("system".into(), Some(&da.system), Some(&db.system));
        cmp("builder".into(), Some(&da.builder), Some(&db.builder));
        for i in 0..da.args.len().max(db.args.len()) {
            cmp(format!("args[{i}]"), da.args.get(i), db.args.get(i));
        }
        let keys: BTreeSet<&String> = da.env.keys().chain(db.env.keys()).collect();
        for k in keys {
            cmp(format!("env.{k}"), da.env.get(k), db.env.get(k));
        }
        for (o, oa) in &da.outputs {
            let ob = db.outputs.get(o);
            let (ha, hb) = (Some(&oa.hash), ob.map(|x| &x.hash));
            if ha != hb {
                cmp(format!("output.{o}.hash"), ha, hb);
            }
        }
        for o in db.outputs.keys() {
            if !da.outputs.contains_key(o) {
                changes.push(ValueChange {
                    field: format!("output.{o}"),
                    old: None,
                    new: Some(o.clone()),
                    mapped_old: None,
                });
            }
        }
        let renamed: BTreeSet<&str> = subst.iter().map(|(f, _)| f.as_str()).collect();
        sources_removed.retain(|s| !renamed.contains(s.as_str()));
        let renamed_to: BTreeSet<&str> = subst.iter().map(|(_, t)| t.as_str()).collect();
        let mut sources_changed = Vec::new();
        sources_added.retain(|s| {
            if renamed_to.contains(s.as_str()) {
                sources_changed.push(*s);
                false
            } else {
                true
            }
        });
        for s in sources_changed {
            changes.push(ValueChange {
                mapped_old: None,
                field: format!("source.{}", s.name()),
                old: da
                    .input_srcs
                    .iter()
                    .find(|x| subst.iter().any(|(f, t)| f == *x && t == s.as_str()))
                    .cloned(),
                new: Some(s.to_string()),
            });
        }
        let own = !changes.is_empty()
            || !added.is_empty()
            || !removed.is_empty()
            || !sources_added.is_empty()
            || !sources_removed.is_empty();
        if own || !inputs_changed {
            let name = pname(a);
            let versions = [
                names::split_name(drv_name(a)).1,
                names::split_name(drv_name(b)).1,
            ];
            let mut expected_by = matching_pattern(self.patterns, &name, &versions, "out")
                .map(|p| p.as_str().to_owned());
            if expected_by.is_none() {
                expected_by = self.explained_by_expected_inputs(
                    &changes,
                    &added,
                    &removed,
                    &sources_added,
                    &sources_removed,
                )?;
            }
            self.causes.push(Cause {
                old_drv: self.old.abs(a),
                new_drv: self.new.abs(b),
                inputs_changed,
                changes,
                inputs_added: added.iter().map(|d| self.new.abs(d)).collect(),
                inputs_removed: removed.iter().map(|d| self.old.abs(d)).collect(),
                sources_added: sources_added.iter().map(ToString::to_string).collect(),
                sources_removed: sources_removed.iter().map(ToString::to_string).collect(),
                expected_by,
            });
        }
        self.memo.insert(key, State::Changed);
        Ok(State::Changed)
    }

    /// A change made only of expected inputs coming or going (e.g. `sops-nix`
    /// added to a system): every added or removed input matches a pattern, and
    /// every other difference disappears once their paths are removed.
    fn explained_by_expected_inputs(
        &mut self,
        changes: &[ValueChange],
        added: &[StoreBaseName],
        removed: &[StoreBaseName],
        sources_added: &[&StorePath],
        sources_removed: &[&StorePath],
    ) -> Result<Option<String>> {
        if self.patterns.is_empty()
            || (added.is_empty()
                && removed.is_empty()
                && sources_added.is_empty()
                && sources_removed.is_empty())
        {
            return Ok(None);
        }
        let mut pattern = None;
        let mut strip = Vec::new();
        for (list, old_side) in [(added, false), (removed, true)] {
            for input in list {
                let (name, version) = names::split_name(drv_name(input));
                let Some(p) = matching_pattern(self.patterns, name, &[version], "out") else {
                    return Ok(None);
                };
                pattern = Some(p.as_str().to_owned());
                if let Some(d) = self.get(old_side, input)? {
                    strip.extend(d.drv.outputs.values().map(|o| o.path.clone()));
                }
            }
        }
        for src in sources_added.iter().chain(sources_removed) {
            let (name, version) = names::split_name(src.name());
            let Some(p) = matching_pattern(self.patterns, name, &[version], "out") else {
                return Ok(None);
            };
            pattern = Some(p.as_str().to_owned());
            strip.push(src.to_string());
        }
        for c in changes {
            if c.field.starts_with("source.") {
                return Ok(None);
            }
            let mut x = c.mapped_old.clone().unwrap_or_default();
            let mut y = c.new.clone().unwrap_or_default();
            for p in &strip {
                x = strip_path(&x, p);
                y = strip_path(&y, p);
            }
            if !strip_eq(&x, &y) {
                return Ok(None);
            }
        }
        Ok(pattern)
    }
}

fn strip_eq(x: &str, y: &str) -> bool {
    x.split_whitespace().eq(y.split_whitespace())
}

/// Walks both graphs. Never fails on a missing `.drv`: that is reported.
pub fn analyse(old: &Side, new: &Side, patterns: &[DriftPattern]) -> Result<RootCause> {
    let mut rc = RootCause::default();
    if old.root_drvs.is_empty() || new.root_drvs.is_empty() {
        rc.skipped = Some(format!(
            "no deriver recorded for the toplevel of `{}`",
            if old.root_drvs.is_empty() {
                &old.spec
            } else {
                &new.spec
            }
        ));
        return Ok(rc);
    }
    let mut walk = Walk {
        old,
        new,
        cache_old: FxHashMap::default(),
        cache_new: FxHashMap::default(),
        memo: FxHashMap::default(),
        missing: BTreeSet::new(),
        causes: Vec::new(),
        patterns,
    };
    let roots = |side: &Side| -> BTreeMap<StoreBaseName, Vec<String>> {
        side.root_drvs
            .iter()
            .map(|d| (d.base(), vec!["out".to_owned()]))
            .collect()
    };
    let (old_roots, new_roots) = (roots(old), roots(new));
    let (mut pairs, mut added, mut removed) = pair_inputs(&old_roots, &new_roots);
    if pairs.is_empty() && added.len() == 1 && removed.len() == 1 {
        // Two single toplevels with different names: compare them anyway.
        pairs.push((removed.remove(0), added.remove(0)));
    }
    let mut unknown = false;
    for (a, b) in &pairs {
        if walk.visit(a, b)? == State::Unknown {
            unknown = true;
        }
    }
    rc.changed_derivations = walk.memo.len();
    rc.missing_drvs = walk.missing.into_iter().collect();
    rc.complete = rc.missing_drvs.is_empty() && !unknown && added.is_empty() && removed.is_empty();
    walk.causes.sort_by(|x, y| {
        x.inputs_changed
            .cmp(&y.inputs_changed)
            .then(x.new_drv.cmp(&y.new_drv))
    });
    rc.causes = walk.causes;
    // The parsed derivations are only needed for the walk, and the process
    // ends soon after it: freeing them one by one would only delay the exit.
    std::mem::forget(walk.cache_old);
    std::mem::forget(walk.cache_new);
    Ok(rc)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rewrites_paths_in_one_pass() {
        let from = format!("/nix/store/{}-libfoo-1.0", "a".repeat(32));
        let to = format!("/nix/store/{}-libfoo-1.1", "b".repeat(32));
        let other = format!("/nix/store/{}-libfoo-1.0x", "a".repeat(32));
        let subst: HashMap<&str, (&str, &str)> = [(&from[11..43], (from.as_str(), to.as_str()))]
            .into_iter()
            .collect();
        let s = format!("echo {from}/lib {from} /nix/store/short {other}");
        assert_eq!(
            rewrite_paths(&s, "/nix/store/", &subst),
            format!("echo {to}/lib {to} /nix/store/short {to}x")
        );
    }

    #[test]
    fn strips_paths_with_a_separator() {
        assert_eq!(strip_path("/a /b /c", "/b"), "/a /c");
        assert_eq!(strip_path("/b:/a", "/b"), "/a");
        assert_eq!(strip_path("x", "/b"), "x");
    }

    #[test]
    fn pairs_inputs_across_version_bumps() {
        let base = |s: &str| StoreBaseName::new(s).unwrap();
        let inputs = |names: &[&str]| -> BTreeMap<StoreBaseName, Vec<String>> {
            names
                .iter()
                .map(|n| (base(n), vec!["out".to_owned()]))
                .collect()
        };
        let a = inputs(&[
            "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa-libfoo-1.0.drv",
            "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb-same-1.0.drv",
            "cccccccccccccccccccccccccccccccc-gone-1.0.drv",
        ]);
        let b = inputs(&[
            "dddddddddddddddddddddddddddddddd-libfoo-1.1.drv",
            "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb-same-1.0.drv",
            "ffffffffffffffffffffffffffffffff-new-1.0.drv",
        ]);
        let (pairs, added, removed) = pair_inputs(&a, &b);
        assert!(pairs.contains(&(
            base("aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa-libfoo-1.0.drv"),
            base("dddddddddddddddddddddddddddddddd-libfoo-1.1.drv")
        )));
        assert_eq!(
            added,
            vec![base("ffffffffffffffffffffffffffffffff-new-1.0.drv")]
        );
        assert_eq!(
            removed,
            vec![base("cccccccccccccccccccccccccccccccc-gone-1.0.drv")]
        );
    }
}
