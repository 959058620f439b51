//! `verify --base`'s sops-nix checks: what sops-nix will do on the host
//! with the composed base + instance, before any host exists.
//!
//! The composed configuration is evaluated with real Nix through a stand-in
//! of the module system and of sops-nix (`tests/fixtures/sops-nix`, checked
//! against the real module by `tests/sops-nix-conformance`); the manifest it
//! yields is the one `sops-install-secrets` would receive. Without Nix the
//! checks are not run and the verdict is unproven, never passed.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::Context as _;
use fromgit_fs::walk::{Entry, Kind as WalkKind, Walk};
use fromgit_nix::literal::string as nix_string;
use fromgit_sops::{config, EncryptedFile, Format, Identities, Kind, Map, Value};
use serde::Deserialize;

/// One check's verdict, as `verify` reports it.
pub struct Item {
    pub name: String,
    pub ok: bool,
    pub detail: String,
}

impl Item {
    fn new(name: &str, problems: &[String], ok_detail: String) -> Item {
        Item {
            name: name.to_owned(),
            ok: problems.is_empty(),
            detail: if problems.is_empty() {
                ok_detail
            } else {
                problems.join("; ")
            },
        }
    }
}

/// The sops-nix checks ran, or could not run (why).
pub enum Outcome {
    Checked(Vec<Item>),
    Unproven(String),
}

/// The stand-in's files, written to a temporary directory with their layout.
const STAND_IN: &[(&str, &str)] = &[
    (
        "sops-nix/compose.nix",
        include_str!("../../../tests/fixtures/sops-nix/compose.nix"),
    ),
    (
        "sops-nix/stand-in.nix",
        include_str!("../../../tests/fixtures/sops-nix/stand-in.nix"),
    ),
    (
        "sops-nix/nixos-users.nix",
        include_str!("../../../tests/fixtures/sops-nix/nixos-users.nix"),
    ),
    (
        "instance-extract/eval.nix",
        include_str!("../../../tests/fixtures/instance-extract/eval.nix"),
    ),
];

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Evaluated {
    failed_assertions: Vec<String>,
    undeclared_owners: Vec<String>,
    users: BTreeMap<String, String>,
    sources: BTreeMap<String, String>,
    generate_key: bool,
    manifest: Option<Manifest>,
    manifest_for_users: Option<Manifest>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Manifest {
    secrets: Vec<ManifestSecret>,
    age_key_file: Option<String>,
    age_ssh_key_paths: Vec<String>,
    ssh_key_paths: Vec<String>,
    gnupg_home: Option<String>,
}

#[derive(Deserialize)]
struct ManifestSecret {
    name: String,
    key: String,
    format: String,
    owner: Option<String>,
    group: Option<String>,
}

fn nix_instantiate() -> Option<PathBuf> {
    if let Some(path) = std::env::var_os("FROMGIT_NIX_INSTANTIATE") {
        return Some(PathBuf::from(path));
    }
    std::env::split_paths(&std::env::var_os("PATH")?)
        .map(|dir| dir.join("nix-instantiate"))
        .find(|p| p.is_file())
}

fn path_expression(path: &Path) -> anyhow::Result<String> {
    let absolute = std::path::absolute(path)?;
    Ok(format!(
        "(/. + {})",
        nix_string(&absolute.to_string_lossy())
    ))
}

/// Evaluates the composed configuration through the stand-in.
fn evaluate(
    nix: &Path,
    base: &Path,
    module: &Path,
    instance: &Path,
) -> anyhow::Result<Result<Evaluated, String>> {
    let dir = tempfile::tempdir().context("Failed to make a temporary directory")?;
    for (relative, text) in STAND_IN {
        let path = dir.path().join(relative);
        if let Some(parent) = path.parent() {
            fs_err::create_dir_all(parent)?;
        }
        fromgit_fs::write(&path, text.as_bytes(), fromgit_fs::Mode::KeepOrPublic)?;
    }
    let expression = format!(
        "let r = import {compose} {{ modules = [ {module} ((import {flake}).outputs {{ self = null; }}).nixosModules.instance ]; }}; \
         ok = r.undeclaredOwners == [ ]; in {{ \
         inherit (r) failedAssertions undeclaredOwners users sources generateKey; \
         manifest = if ok then r.manifest else null; \
         manifestForUsers = if ok then r.manifestForUsers else null; }}",
        compose = path_expression(&dir.path().join("sops-nix/compose.nix"))?,
        module = path_expression(&base.join(module))?,
        flake = path_expression(&instance.join("flake.nix"))?,
    );
    let output = Command::new(nix)
        .args(["--eval", "--strict", "--json", "--readonly-mode", "-E"])
        .arg(&expression)
        .env("NIX_CONFIG", "substituters =")
        .output()
        .with_context(|| format!("Failed to run `{}`", nix.display()))?;
    if !output.status.success() {
        let stderr = String::from_utf8_lossy(&output.stderr);
        let message: Vec<&str> = stderr
            .lines()
            .filter(|l| !l.contains("warning:"))
            .map(str::trim)
            .filter(|l| !l.is_empty())
            .collect();
        return Ok(Err(message.join(" ")));
    }
    serde_json::from_slice(&output.stdout)
        .map(Ok)
        .context("`nix-instantiate` printed JSON that is not the stand-in's result")
}

/// Runs the sops-nix checks on the composed configuration.
pub fn check(
    base: &Path,
    module: &Path,
    instance: &Path,
    key_file: &str,
    host_keys: &[PathBuf],
    identities: &Identities,
) -> anyhow::Result<Outcome> {
    let Some(nix) = nix_instantiate() else {
        return Ok(Outcome::Unproven(
            "`nix-instantiate` is not on `PATH`: the composed sops-nix configuration was not evaluated".to_owned(),
        ));
    };
    let evaluated = match evaluate(&nix, base, module, instance)? {
        Ok(evaluated) => evaluated,
        // The stand-in knows a small part of `lib` and of the module
        // system: an error may be its own limit, not the configuration's.
        Err(message) => {
            return Ok(Outcome::Unproven(format!(
                "the stand-in could not evaluate the composed configuration: {message}"
            )))
        }
    };
    let mut items = vec![Item::new(
        "sops-nix: assertions",
        &evaluated.failed_assertions,
        "sops-nix's assertions hold (stand-in)".to_owned(),
    )];
    let mut owner_problems: Vec<String> = evaluated
        .undeclared_owners
        .iter()
        .map(|o| format!("owner `{o}` is not declared: declare `users.users.{o}` with a `group` (sops-nix's `group` default reads it)"))
        .collect();
    let secrets: Vec<&ManifestSecret> = evaluated
        .manifest
        .iter()
        .chain(&evaluated.manifest_for_users)
        .flat_map(|m| &m.secrets)
        .collect();
    for secret in &secrets {
        if let Some(owner) = &secret.owner {
            if evaluated.users.get(owner).is_some_and(String::is_empty)
                && secret.group.as_deref().unwrap_or_default().is_empty()
            {
                owner_problems.push(format!(
                    "secret `{}`: owner `{owner}` has no group: set `users.users.{owner}.group`",
                    secret.name
                ));
            }
        }
    }
    items.push(Item::new(
        "sops-nix: owners declared",
        &owner_problems,
        "every secret's owner and group exist in the evaluated users".to_owned(),
    ));
    if let Some(manifest) = &evaluated.manifest {
        items.push(key_check(manifest, &evaluated, key_file));
        items.push(host_key_check(manifest, instance, host_keys)?);
    }
    items.extend(value_checks(
        &secrets,
        &evaluated.sources,
        instance,
        identities,
    ));
    Ok(Outcome::Checked(items))
}

fn key_check(manifest: &Manifest, evaluated: &Evaluated, key_file: &str) -> Item {
    let mut problems = Vec::new();
    match manifest.age_key_file.as_deref() {
        Some(path) if path == key_file => {}
        Some(path) => problems.push(format!(
            "sops-nix reads the age key from `{path}`, not from the bootstrap key's `{key_file}`"
        )),
        None => problems.push(format!(
            "`sops.age.keyFile` is not set: sops-nix will not use the bootstrap key at `{key_file}`"
        )),
    }
    if evaluated.generate_key {
        problems.push(
            "`sops.age.generateKey` is on: a key made on the host decrypts nothing in git"
                .to_owned(),
        );
    }
    if manifest.gnupg_home.is_some() {
        problems.push("`sops.gnupg.home` is set: fromgit writes no PGP recipients".to_owned());
    }
    Item::new(
        "sops-nix: bootstrap key",
        &problems,
        format!("the manifest's age key file is `{key_file}`"),
    )
}

/// SSH host keys in the manifest must each have a recipient in `.sops.yaml`.
fn host_key_check(
    manifest: &Manifest,
    instance: &Path,
    host_keys: &[PathBuf],
) -> anyhow::Result<Item> {
    let mut problems = Vec::new();
    if !manifest.ssh_key_paths.is_empty() {
        problems.push(format!(
            "sops-nix would import {} as GnuPG keys, to which nothing is encrypted (OpenSSH is enabled): set `sops.gnupg.sshKeyPaths = [ ]`",
            manifest.ssh_key_paths.join(", ")
        ));
    }
    if !manifest.age_ssh_key_paths.is_empty() {
        let rules = fs_err::read_to_string(instance.join(config::CONFIG_NAME))?;
        let mut missing = Vec::new();
        for key in host_keys {
            let line = fs_err::read_to_string(key)?;
            let recipient = fromgit_sops::keys::ssh_public_key_to_recipient(line.trim())
                .with_context(|| format!("`--host-key {}`", key.display()))?;
            if !rules.contains(recipient.as_str()) {
                missing.push(format!("{} ({recipient})", key.display()));
            }
        }
        if host_keys.is_empty() {
            problems.push(format!(
                "sops-nix would also decrypt with {} (OpenSSH is enabled), a new host's new key that no secret is encrypted to: set `sops.age.sshKeyPaths = [ ]`, or add the host's recipient to `.sops.yaml` and pass `--host-key`",
                manifest.age_ssh_key_paths.join(", ")
            ));
        } else if !missing.is_empty() {
            problems.push(format!(
                "host keys whose recipient is not in `.sops.yaml`: {}",
                missing.join(", ")
            ));
        }
    }
    Ok(Item::new(
        "sops-nix: host keys",
        &problems,
        if manifest.age_ssh_key_paths.is_empty() {
            "no SSH host key is used: the key file is the only key source".to_owned()
        } else {
            "every SSH host key sops-nix uses has its recipient in `.sops.yaml`".to_owned()
        },
    ))
}

/// Every declared secret has a string value in its file, and every value of
/// the instance's sops files is declared by some secret.
fn value_checks(
    secrets: &[&ManifestSecret],
    sources: &BTreeMap<String, String>,
    instance: &Path,
    identities: &Identities,
) -> Vec<Item> {
    let mut missing = Vec::new();
    let mut declared: BTreeMap<PathBuf, Vec<String>> = BTreeMap::new();
    let mut trees: BTreeMap<PathBuf, Result<Map, String>> = BTreeMap::new();
    let decrypt = |file: &Path| -> Result<Map, String> {
        let text = fs_err::read_to_string(file).map_err(|e| e.to_string())?;
        let format = Format::from_path(file).ok_or("not a YAML or JSON sops file")?;
        let encrypted = EncryptedFile::parse(&text, format).map_err(|e| e.to_string())?;
        let decrypted = encrypted.decrypt(identities).map_err(|e| e.to_string())?;
        Ok(decrypted.tree.clone())
    };
    for secret in secrets {
        let Some(source) = sources.get(&secret.name) else {
            continue;
        };
        let file = PathBuf::from(source);
        if !matches!(secret.format.as_str(), "yaml" | "json") {
            missing.push(format!(
                "secret `{}`: format `{}` is not checked",
                secret.name, secret.format
            ));
            continue;
        }
        let tree = trees.entry(file.clone()).or_insert_with(|| decrypt(&file));
        declared
            .entry(file.clone())
            .or_default()
            .push(secret.key.clone());
        match tree {
            Err(err) => missing.push(format!(
                "secret `{}`: `{}` does not decrypt with the identity: {err}",
                secret.name, source
            )),
            Ok(tree) => {
                if secret.key.is_empty() {
                    continue;
                }
                match lookup(tree, &secret.key) {
                    Some(Value::Scalar(s)) if s.kind == Kind::Str => {}
                    Some(_) => missing.push(format!(
                        "secret `{}`: the value of key `{}` in `{source}` is not a string",
                        secret.name, secret.key
                    )),
                    None => missing.push(format!(
                        "secret `{}`: `{source}` has no value at key `{}`",
                        secret.name, secret.key
                    )),
                }
            }
        }
    }
    let files = sops_files(&instance.join("secrets"));
    let mut undeclared = Vec::new();
    for file in files {
        let canonical = fs_err::canonicalize(&file).unwrap_or(file.clone());
        let keys: Vec<String> = declared
            .iter()
            .filter(|(f, _)| fs_err::canonicalize(f).is_ok_and(|c| c == canonical))
            .flat_map(|(_, k)| k.clone())
            .collect();
        if keys.iter().any(String::is_empty) {
            continue;
        }
        let Ok(tree) = decrypt(&file) else { continue };
        let mut leaves = BTreeSet::new();
        collect_leaves(&tree, "", &mut leaves);
        for leaf in leaves {
            if !keys.contains(&leaf) {
                undeclared.push(format!("`{leaf}` in `{}`", file.display()));
            }
        }
    }
    vec![
        Item::new(
            "sops-nix: every secret has a value",
            &missing,
            format!(
                "each of the {} declared secret(s) has a string value in its sops file, decrypted with the identity",
                secrets.len()
            ),
        ),
        Item::new(
            "sops-nix: every value is declared",
            &if undeclared.is_empty() {
                Vec::new()
            } else {
                vec![format!(
                    "values no `sops.secrets` entry declares (sops-nix never installs them): {}",
                    undeclared.join(", ")
                )]
            },
            "every encrypted value of the instance's sops files is a declared secret".to_owned(),
        ),
    ]
}

/// sops-nix's key lookup: `/` separates levels.
fn lookup<'a>(tree: &'a Map, key: &str) -> Option<&'a Value> {
    let mut parts = key.split('/');
    let first = parts.next()?;
    let mut value = tree.iter().find(|(k, _)| k == first).map(|(_, v)| v)?;
    for part in parts {
        let Value::Map(map) = value else { return None };
        value = map.iter().find(|(k, _)| k == part).map(|(_, v)| v)?;
    }
    Some(value)
}

/// The key paths of every value, except clear ones (sops' `_unencrypted`
/// suffix: facts such as the sealed certificate's, not secrets).
fn collect_leaves(map: &Map, prefix: &str, out: &mut BTreeSet<String>) {
    for (key, value) in map {
        if key.ends_with("_unencrypted") {
            continue;
        }
        let path = if prefix.is_empty() {
            key.clone()
        } else {
            format!("{prefix}/{key}")
        };
        match value {
            Value::Map(inner) => collect_leaves(inner, &path, out),
            _ => {
                out.insert(path);
            }
        }
    }
}

/// What under `secrets/` is named as a sops file and is not a directory
/// (links listed, not followed); what cannot be read is left out.
pub(crate) fn sops_files(dir: &Path) -> Vec<PathBuf> {
    let walk = Walk::new(dir).include_hidden(true).follow_symlinks(false);
    let mut out: Vec<PathBuf> = walk
        .entries()
        .flatten()
        .filter(|entry| entry.kind() != WalkKind::Dir && Format::from_path(entry.path()).is_some())
        .map(Entry::into_path)
        .collect();
    out.sort();
    out
}

/// Symlinks under `secrets/` whose target lies outside the instance repo:
/// what they point at is not in git, so the repo would not be the secrets.
pub fn symlinks_outside(instance: &Path) -> Vec<String> {
    let root = fs_err::canonicalize(instance).unwrap_or_else(|_| instance.to_path_buf());
    // What cannot be read is left out.
    let walk = Walk::new(instance.join("secrets"))
        .include_hidden(true)
        .follow_symlinks(false);
    let mut found = Vec::new();
    for entry in walk.entries().flatten() {
        if entry.kind() != WalkKind::Symlink {
            continue;
        }
        let path = entry.path();
        let inside = fs_err::canonicalize(path).is_ok_and(|t| t.starts_with(&root));
        if !inside {
            let target = fs_err::read_link(path)
                .map(|t| t.display().to_string())
                .unwrap_or_default();
            found.push(format!("`{}` → `{target}`", path.display()));
        }
    }
    found.sort();
    found
}
