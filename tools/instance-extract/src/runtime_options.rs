//! Whether the runtime-file options `apply` writes exist.
//!
//! `apply` turns `token = builtins.readFile …` into `tokenFile = …` and an
//! inline `hashedPassword` into `hashedPasswordFile`: the names follow the
//! NixOS convention, but a service may not have that option, and the
//! rewritten host would then fail to evaluate. With `nix` on `PATH` and the
//! host's nixpkgs in the store, the host's own option tree is read
//! (`nix eval --offline … .options`) and each written option looked up in
//! it, through submodules (`users.users.<name>.hashedPasswordFile`).

use std::path::{Path, PathBuf};
use std::process::Command;

use rnix::{SyntaxKind, TextSize};
use serde::Serialize;

use crate::nixsrc::NixFile;
use crate::rewrite;

/// A runtime-file option a rewrite writes, and where.
#[derive(Debug, Clone, Serialize)]
pub struct RuntimeOption {
    pub file: PathBuf,
    pub line: usize,
    /// The option's attribute path; `<name>` stands for a computed name.
    pub path: Vec<String>,
}

impl RuntimeOption {
    pub fn dotted(&self) -> String {
        self.path.join(".")
    }
}

/// The option path of the binding around `offset`, its last name replaced
/// by `form`: `services.app.token` → `services.app.tokenFile`. A leading
/// `config.` (a module with `options` and `config`) is not part of the name.
pub fn at(file: &NixFile, offset: TextSize, form: &str) -> Option<RuntimeOption> {
    let token = file.root.token_at_offset(offset).right_biased()?;
    let binding = token
        .parent_ancestors()
        .find(|n| n.kind() == SyntaxKind::NODE_ATTRPATH_VALUE)?;
    let mut path = rewrite::full_path(&binding);
    if path.first().is_some_and(|p| p == "config") && path.len() > 1 {
        path.remove(0);
    }
    form.clone_into(path.last_mut()?);
    Some(RuntimeOption {
        file: file.relative.clone(),
        line: file.line_column(usize::from(offset)).0,
        path,
    })
}

/// What reading the host's option tree found.
#[derive(Debug)]
pub enum Checked {
    /// Every option is declared.
    Declared,
    /// These are not options of the host.
    Missing(Vec<RuntimeOption>),
    /// The option tree could not be read; why.
    Unproven(String),
}

/// Walks `options` along each path: an option whose type has sub-options
/// (a submodule, `attrsOf (submodule …)`) is entered, and a name it does
/// not declare is taken as the attribute name of an `attrsOf` element.
const WALK: &str = r#"paths: options:
let
  isOption = node: builtins.isAttrs node && (node._type or null) == "option";
  step = node: key:
    if node == null then null
    else if isOption node then
      let subs = if node ? type && node.type ? getSubOptions then node.type.getSubOptions [ ] else { };
      in if subs ? ${key} then subs.${key} else if subs == { } then null else subs
    else if builtins.isAttrs node then node.${key} or null
    else null;
in map (path: isOption (builtins.foldl' step options path)) paths"#;

/// Looks each option up in host `host` of the flake at `base`.
pub fn check(base: &Path, host: Option<&str>, options: &[RuntimeOption]) -> Checked {
    if options.is_empty() {
        return Checked::Declared;
    }
    let Some(host) = host else {
        return Checked::Unproven(
            "the entry module belongs to no `nixosConfigurations` host of the flake".to_owned(),
        );
    };
    let Ok(base) = fs_err::canonicalize(base) else {
        return Checked::Unproven(format!("`{}` cannot be resolved", base.display()));
    };
    let paths: Vec<&[String]> = options.iter().map(|o| o.path.as_slice()).collect();
    let Ok(paths) = serde_json::to_string(&paths) else {
        return Checked::Unproven("the option paths cannot be encoded".to_owned());
    };
    let apply = format!(
        "({WALK}) (builtins.fromJSON {})",
        fromgit_nix::literal::string(&paths)
    );
    let installable = format!(
        "{}#nixosConfigurations.{}.options",
        base.display(),
        fromgit_nix::literal::string(host)
    );
    let output = Command::new("nix")
        .args([
            "--extra-experimental-features",
            "nix-command flakes",
            "eval",
            "--offline",
            "--no-write-lock-file",
            "--json",
            &installable,
            "--apply",
            &apply,
        ])
        .output();
    let output = match output {
        Err(err) => return Checked::Unproven(format!("`nix` could not be run: {err}")),
        Ok(output) => output,
    };
    if !output.status.success() {
        let stderr = String::from_utf8_lossy(&output.stderr);
        let why = stderr
            .lines()
            .map(str::trim)
            .find(|l| l.starts_with("error:"))
            .unwrap_or("no message")
            .to_owned();
        return Checked::Unproven(format!(
            "`nix eval` of host `{host}`'s options failed offline: {why}"
        ));
    }
    let Ok(declared) = serde_json::from_slice::<Vec<bool>>(&output.stdout) else {
        return Checked::Unproven("`nix eval` printed something other than a list".to_owned());
    };
    let missing: Vec<RuntimeOption> = options
        .iter()
        .zip(declared)
        .filter(|(_, declared)| !declared)
        .map(|(option, _)| option.clone())
        .collect();
    if missing.is_empty() {
        Checked::Declared
    } else {
        Checked::Missing(missing)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_option_path_is_read_from_the_bindings_around_it() {
        let text = "{ config, ... }: { config = { services.app.settings = { token = builtins.readFile /run/x; }; }; users.users.\"ops\".hashedPassword = \"$6$x\"; }";
        let file = NixFile::parse(Path::new("."), "m.nix".into(), text.to_owned()).expect("parses");
        let offset = |needle: &str| {
            TextSize::from(u32::try_from(text.find(needle).expect("found")).expect("small"))
        };
        let token = at(&file, offset("token ="), "tokenFile").expect("a binding");
        assert_eq!(token.dotted(), "services.app.settings.tokenFile");
        let hash = at(&file, offset("$6$x"), "hashedPasswordFile").expect("a binding");
        assert_eq!(hash.dotted(), "users.users.ops.hashedPasswordFile");
        assert_eq!(hash.line, 1);
    }
}
