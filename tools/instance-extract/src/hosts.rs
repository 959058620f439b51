//! Which files belong to the host being split.
//!
//! A flake may define several hosts that share a repository. Only the
//! chosen host (the one whose modules reach `--module`) is rewritten and
//! wired; files that only other hosts use stay as they are and are reported,
//! so a split never changes a host the operator did not name.

use std::collections::BTreeSet;
use std::path::{Component, Path, PathBuf};

use rnix::{SyntaxKind, SyntaxNode};

use crate::nixsrc::NixFile;
use crate::rewrite;

/// `base/relative` resolved lexically (`..` pops), or `None` when it leaves
/// the base.
fn normalize(path: &Path) -> Option<PathBuf> {
    let mut out = PathBuf::new();
    for component in path.components() {
        match component {
            Component::CurDir => {}
            Component::ParentDir => {
                if !out.pop() {
                    return None;
                }
            }
            Component::Normal(part) => out.push(part),
            Component::RootDir | Component::Prefix(_) => return None,
        }
    }
    Some(out)
}

/// The base-relative `.nix` files that relative path literals under `node`
/// name, read from the directory `dir` (a directory means its
/// `default.nix`).
fn named_files(node: &SyntaxNode, dir: &Path, known: &BTreeSet<PathBuf>) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for literal in node
        .descendants()
        .filter(|n| n.kind() == SyntaxKind::NODE_PATH_REL)
    {
        let text = literal.text().to_string();
        // `../home/alice/${config.networking.hostName}.nix` names one of the
        // files of `../home/alice/`: all of them are reached.
        if let Some((prefix, _)) = text.split_once("${") {
            let Some(parent) = prefix
                .rfind('/')
                .and_then(|i| normalize(&dir.join(&prefix[..i])))
            else {
                continue;
            };
            out.extend(
                known
                    .iter()
                    .filter(|f| f.parent() == Some(parent.as_path()))
                    .cloned(),
            );
            continue;
        }
        let Some(path) = normalize(&dir.join(&text)) else {
            continue;
        };
        if known.contains(&path) {
            out.push(path);
        } else {
            let default = path.join("default.nix");
            if known.contains(&default) {
                out.push(default);
            }
        }
    }
    out
}

/// Every file reachable from `roots` through relative path literals.
fn reachable(files: &[NixFile], roots: &[PathBuf]) -> BTreeSet<PathBuf> {
    let known: BTreeSet<PathBuf> = files.iter().map(|f| f.relative.clone()).collect();
    let mut seen = BTreeSet::new();
    let mut queue: Vec<PathBuf> = roots.to_vec();
    while let Some(path) = queue.pop() {
        if !seen.insert(path.clone()) {
            continue;
        }
        if let Some(file) = files.iter().find(|f| f.relative == path) {
            let dir = path.parent().unwrap_or(Path::new(""));
            queue.extend(named_files(&file.root, dir, &known));
        }
    }
    seen
}

/// One `nixosConfigurations.<host>.modules` list of the flake.
pub struct HostList {
    pub host: String,
    pub list: SyntaxNode,
    /// Whether this host's modules reach the entry module (or name no file,
    /// as `[ self.nixosModules.x ]` does).
    pub chosen: bool,
}

/// The hosts of the flake and the files only other hosts use.
pub struct Hosts {
    pub lists: Vec<HostList>,
    pub others_only: BTreeSet<PathBuf>,
}

impl Hosts {
    pub fn new(files: &[NixFile], entry: &Path) -> Hosts {
        let known: BTreeSet<PathBuf> = files.iter().map(|f| f.relative.clone()).collect();
        let mut lists = Vec::new();
        let mut chosen_roots = vec![entry.to_path_buf()];
        let mut other_roots = Vec::new();
        if let Some(flake) = files.iter().find(|f| f.relative == Path::new("flake.nix")) {
            for (host, list) in module_lists(&flake.root) {
                let paths = named_files(&list, Path::new(""), &known);
                let chosen = paths.is_empty() || reachable(files, &paths).contains(entry);
                if chosen {
                    chosen_roots.extend(paths);
                } else {
                    other_roots.extend(paths);
                }
                lists.push(HostList { host, list, chosen });
            }
        }
        let chosen = reachable(files, &chosen_roots);
        let others_only = reachable(files, &other_roots)
            .into_iter()
            .filter(|p| !chosen.contains(p))
            .collect();
        Hosts { lists, others_only }
    }
}

/// `(host, modules list)` of every `nixosConfigurations` entry.
fn module_lists(root: &SyntaxNode) -> Vec<(String, SyntaxNode)> {
    let mut out = Vec::new();
    for node in root
        .descendants()
        .filter(|n| n.kind() == SyntaxKind::NODE_ATTRPATH_VALUE)
    {
        if rewrite::binding_path(&node) != "modules" {
            continue;
        }
        let Some(list) =
            rewrite::binding_value(&node).filter(|v| v.kind() == SyntaxKind::NODE_LIST)
        else {
            continue;
        };
        let host = node.ancestors().find_map(|a| {
            if a.kind() != SyntaxKind::NODE_ATTRPATH_VALUE {
                return None;
            }
            let path = rewrite::binding_path(&a);
            if let Some(host) = path.strip_prefix("nixosConfigurations.") {
                return Some(host.split('.').next().unwrap_or(host).to_owned());
            }
            // `nixosConfigurations = { host = …; }`: the binding right under it.
            let parent_binding = a.parent()?.parent()?;
            (parent_binding.kind() == SyntaxKind::NODE_ATTRPATH_VALUE
                && rewrite::binding_path(&parent_binding) == "nixosConfigurations")
                .then_some(path)
        });
        if let Some(host) = host {
            out.push((host.trim_matches('"').to_owned(), list));
        }
    }
    out
}

/// The home-manager modules: the files reached from a path under a
/// `home-manager.*` binding (`home-manager.users.<name>`,
/// `home-manager.sharedModules`) or the flake's `homeManagerModules` /
/// `homeModules` output, and all they reach.
pub fn home_manager_files(files: &[NixFile]) -> BTreeSet<PathBuf> {
    let known: BTreeSet<PathBuf> = files.iter().map(|f| f.relative.clone()).collect();
    let mut roots = Vec::new();
    for file in files {
        let dir = file.relative.parent().unwrap_or(Path::new(""));
        let flake = file.relative == Path::new("flake.nix");
        for binding in file
            .root
            .descendants()
            .filter(|n| n.kind() == SyntaxKind::NODE_ATTRPATH_VALUE)
        {
            let path = rewrite::full_path(&binding);
            let home = path.first().is_some_and(|p| p == "home-manager")
                || (flake
                    && path
                        .iter()
                        .any(|p| p == "homeManagerModules" || p == "homeModules"));
            if home {
                if let Some(value) = rewrite::binding_value(&binding) {
                    roots.extend(named_files(&value, dir, &known));
                }
            }
        }
    }
    reachable(files, &roots)
}

/// The plain-function calls in `file`, `import ./target.nix { … }`, each with
/// the base-relative file it calls. Such a file is no module: its caller
/// passes exactly the arguments it names.
pub fn plain_calls(file: &NixFile, known: &BTreeSet<PathBuf>) -> Vec<(PathBuf, SyntaxNode)> {
    let dir = file.relative.parent().unwrap_or(Path::new(""));
    file.root
        .descendants()
        .filter(|n| n.kind() == SyntaxKind::NODE_APPLY)
        .filter_map(|outer| {
            let inner = outer
                .children()
                .next()
                .filter(|n| n.kind() == SyntaxKind::NODE_APPLY)?;
            let mut parts = inner.children();
            if !parts.next().is_some_and(|f| f.text() == "import") {
                return None;
            }
            let path = parts
                .next()
                .filter(|p| p.kind() == SyntaxKind::NODE_PATH_REL)?;
            let target = named_files(&path, dir, known).into_iter().next()?;
            Some((target, outer))
        })
        .collect()
}

/// The first file (and line) that calls `target` as a plain function.
pub fn function_caller(files: &[NixFile], target: &Path) -> Option<(PathBuf, usize)> {
    let known: BTreeSet<PathBuf> = files.iter().map(|f| f.relative.clone()).collect();
    files.iter().find_map(|file| {
        plain_calls(file, &known)
            .into_iter()
            .find(|(called, _)| called == target)
            .map(|(_, call)| {
                let line = file.line_column(usize::from(call.text_range().start())).0;
                (file.relative.clone(), line)
            })
    })
}

/// The first file (and line) that imports `target` as a value: `import
/// ./target.nix` not applied to arguments, or `import "${self}/…/target.nix"`.
pub fn value_import(files: &[NixFile], target: &Path) -> Option<(PathBuf, usize)> {
    let known: BTreeSet<PathBuf> = files.iter().map(|f| f.relative.clone()).collect();
    let suffix = format!("/{}", target.display());
    files.iter().find_map(|file| {
        let dir = file.relative.parent().unwrap_or(Path::new(""));
        file.root
            .descendants()
            .filter(|n| n.kind() == SyntaxKind::NODE_APPLY)
            .find(|apply| {
                let mut parts = apply.children();
                if !parts.next().is_some_and(|f| f.text() == "import") {
                    return false;
                }
                let Some(argument) = parts.next() else {
                    return false;
                };
                let called = apply.parent().is_some_and(|p| {
                    p.kind() == SyntaxKind::NODE_APPLY
                        && p.children().next().as_ref() == Some(apply)
                });
                let names_target = if argument.kind() == SyntaxKind::NODE_PATH_REL {
                    named_files(&argument, dir, &known)
                        .first()
                        .map(PathBuf::as_path)
                        == Some(target)
                } else {
                    argument
                        .text()
                        .to_string()
                        .trim_matches('"')
                        .ends_with(&suffix)
                };
                names_target && !called
            })
            .map(|apply| {
                let line = file.line_column(usize::from(apply.text_range().start())).0;
                (file.relative.clone(), line)
            })
    })
}

/// The flake's `outputs` function, and how its body names the `instance`
/// input: `instance` when `outputs` takes an attribute pattern (`apply`
/// adds the formal), `inputs.instance` when it takes one argument `inputs`.
pub fn flake_outputs(file: &NixFile) -> Option<(SyntaxNode, String)> {
    let top =
        rewrite::top_expression(&file.root).filter(|n| n.kind() == SyntaxKind::NODE_ATTR_SET)?;
    let outputs = rewrite::bindings(&top)
        .find(|b| rewrite::binding_path(b) == "outputs")
        .and_then(|b| rewrite::binding_value(&b))
        .filter(|v| v.kind() == SyntaxKind::NODE_LAMBDA)?;
    let parameter = outputs.children().next()?;
    let input = match parameter.kind() {
        SyntaxKind::NODE_PATTERN => "instance".to_owned(),
        SyntaxKind::NODE_IDENT_PARAM => format!("{}.instance", parameter.text()),
        _ => return None,
    };
    Some((outputs, input))
}

/// Whether the string at `offset` is the value of the flake's `description`.
pub fn in_description(file: &NixFile, offset: rnix::TextSize) -> bool {
    file.relative == Path::new("flake.nix")
        && file
            .root
            .token_at_offset(offset)
            .right_biased()
            .and_then(|t| {
                t.parent_ancestors()
                    .find(|n| n.kind() == SyntaxKind::NODE_ATTRPATH_VALUE)
            })
            .is_some_and(|b| rewrite::binding_path(&b) == "description")
}

/// The path literal that names `target` from the module `from`:
/// `./instance-options.nix`, `../instance-options.nix`.
pub fn path_literal(from: &Path, target: &str) -> String {
    let depth = from.parent().map_or(0, |p| p.components().count());
    if depth == 0 {
        format!("./{target}")
    } else {
        format!("{}{target}", "../".repeat(depth))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(relative: &str, text: &str) -> NixFile {
        NixFile::parse(Path::new("."), relative.into(), text.to_owned()).expect("parses")
    }

    #[test]
    fn only_the_chosen_hosts_files_are_its_own() {
        let files = vec![
            file("flake.nix", "{ outputs = { self, nixpkgs }: { nixosConfigurations = { web1 = nixpkgs.lib.nixosSystem { modules = [ ./hosts/web1.nix ]; }; build = nixpkgs.lib.nixosSystem { modules = [ ./hosts/build.nix ./roles/common.nix ]; }; }; }; }"),
            file("hosts/web1.nix", "{ ... }: { imports = [ ../roles/common.nix ../roles/web ]; }"),
            file("hosts/build.nix", "{ ... }: { imports = [ ../roles/builder.nix ]; }"),
            file("roles/common.nix", "{ }"),
            file("roles/web/default.nix", "{ }"),
            file("roles/builder.nix", "{ }"),
        ];
        let hosts = Hosts::new(&files, Path::new("hosts/web1.nix"));
        let chosen: Vec<(&str, bool)> = hosts
            .lists
            .iter()
            .map(|l| (l.host.as_str(), l.chosen))
            .collect();
        assert_eq!(chosen, [("web1", true), ("build", false)]);
        let others: Vec<&Path> = hosts.others_only.iter().map(PathBuf::as_path).collect();
        assert_eq!(
            others,
            [Path::new("hosts/build.nix"), Path::new("roles/builder.nix")]
        );
        assert_eq!(
            path_literal(Path::new("hosts/web1.nix"), "x.nix"),
            "../x.nix"
        );
        assert_eq!(
            path_literal(Path::new("configuration.nix"), "x.nix"),
            "./x.nix"
        );
    }

    #[test]
    fn the_flake_outputs_name_the_instance_input_as_they_bind_it() {
        let input = |text: &str| flake_outputs(&file("flake.nix", text)).map(|(_, input)| input);
        assert_eq!(
            input("{ outputs = { self, nixpkgs, ... }@inputs: { }; }").as_deref(),
            Some("instance")
        );
        assert_eq!(
            input("{ outputs = inputs: { }; }").as_deref(),
            Some("inputs.instance")
        );
        assert_eq!(input("{ outputs = import ./outputs.nix; }"), None);
    }
}
