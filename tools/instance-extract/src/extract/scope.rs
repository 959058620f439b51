//! Where a file reads the instance's facts from: a module from its
//! `config`, the flake's `outputs` from the `instance` input's
//! `instance.nix`, a plain function (`import ./x.nix { … }`) from an
//! argument its callers pass.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use rnix::{SyntaxKind, SyntaxNode, TextRange};

use super::plan::Plan;
use super::{ExtractError, Request};
use crate::hosts;
use crate::nixsrc::{Context, Finding, FindingKind, NixFile};
use crate::rewrite::{self, Edit};

/// The argument through which a plain function receives the facts.
pub(super) const FACTS_ARGUMENT: &str = "instanceFacts";

pub(super) enum Scope {
    /// A NixOS module: `config.<name>.instance`.
    Module,
    /// `flake.nix`: inside `outputs`, the `instance` input's `instance.nix`.
    Flake {
        outputs: Option<(TextRange, String)>,
        /// The flake's top-level bindings: `inputs`, `nixConfig`, ….
        bindings: Vec<(TextRange, String)>,
    },
    /// A file its callers call as a function, not a module.
    PlainFunction { caller: PathBuf, line: usize },
    /// A home-manager module: its `config` is the user's; the host's is
    /// `osConfig` (home-manager used as a NixOS module passes it).
    HomeManager,
}

impl Scope {
    pub(super) fn of(plan: &Plan, file: &NixFile) -> Scope {
        if file.relative == Path::new("flake.nix") {
            let bindings = rewrite::top_expression(&file.root)
                .filter(|n| n.kind() == SyntaxKind::NODE_ATTR_SET)
                .map(|top| {
                    rewrite::bindings(&top)
                        .map(|b| (b.text_range(), rewrite::binding_path(&b)))
                        .collect()
                })
                .unwrap_or_default();
            return Scope::Flake {
                outputs: hosts::flake_outputs(file)
                    .map(|(outputs, input)| (outputs.text_range(), input)),
                bindings,
            };
        }
        match hosts::function_caller(&plan.files, &file.relative) {
            Some((caller, line)) => Scope::PlainFunction { caller, line },
            None if plan.home_manager.contains(&file.relative) => Scope::HomeManager,
            None => Scope::Module,
        }
    }

    /// The expression that holds the facts (`<root>.domain`,
    /// `<root>.addresses.<name>`), or why there is none at `at`.
    pub(super) fn root(&self, request: &Request<'_>, at: TextRange) -> Result<String, String> {
        match self {
            Scope::Module => Ok(format!("config.{}.instance", rewrite::attr_name(request.name))),
            Scope::HomeManager => Ok(format!(
                "osConfig.{}.instance",
                rewrite::attr_name(request.name)
            )),
            Scope::PlainFunction { .. } => Ok(FACTS_ARGUMENT.to_owned()),
            Scope::Flake { outputs: None, .. } => Err(
                "`flake.nix` names the instance, but its `outputs` is not a function literal that could read the `instance` input; write the value by hand".to_owned(),
            ),
            Scope::Flake {
                outputs: Some((range, input)),
                bindings,
            } => {
                if range.contains_range(at) {
                    return Ok(format!("(import \"${{{input}}}/instance.nix\")"));
                }
                let binding = bindings
                    .iter()
                    .find(|(range, _)| range.contains_range(at))
                    .map_or("", |(_, name)| name.as_str());
                let instead = if binding.starts_with("nixConfig") {
                    "move the setting into a module of the host (`nix.settings`)"
                } else if binding.starts_with("inputs") {
                    "point the input at a URL that does not name the instance, or pass it at build time (`--override-input`)"
                } else {
                    "move it into `outputs`"
                };
                Err(format!(
                    "the instance is named in `flake.nix` in `{binding}`, which Nix reads without evaluating anything, so no instance value can stand there; {instead}"
                ))
            }
        }
    }
}

/// Whether a finding becomes a read of the facts (not a comment, not the
/// flake's description, not a secret).
pub(super) fn reads_facts(file: &NixFile, finding: &Finding) -> bool {
    match finding.kind {
        FindingKind::Domain | FindingKind::Email => {
            !hosts::in_description(file, finding.range.start())
        }
        FindingKind::IpAddress => finding.context != Context::Comment && finding.reason.is_none(),
        FindingKind::ForeignEmail => finding.context != Context::Comment,
        _ => false,
    }
}

/// The edits that pass the facts to each plain function `file` calls that
/// reads them: `import ./x.nix { …; instanceFacts = <root>; }`. Returns the
/// edits and whether any call needed them.
pub(super) fn plain_call_edits(
    request: &Request<'_>,
    plan: &Plan,
    file: &NixFile,
    scope: &Scope,
) -> Result<Vec<Edit>, ExtractError> {
    let known: BTreeSet<PathBuf> = plan.files.iter().map(|f| f.relative.clone()).collect();
    let mut edits = Vec::new();
    for (target, call) in hosts::plain_calls(file, &known) {
        let Some(called) = plan.files.iter().find(|f| f.relative == target) else {
            continue;
        };
        let reads = plan
            .findings
            .iter()
            .any(|f| f.file == target && reads_facts(called, f));
        if !reads {
            continue;
        }
        let line = file.line_column(usize::from(call.text_range().start())).0;
        let refuse = |reason: String| ExtractError::Unrewritable {
            file: request.base.join(&file.relative),
            line,
            reason,
        };
        if matches!(scope, Scope::PlainFunction { .. }) {
            return Err(refuse(format!(
                "`{}` is a plain function called from another plain function; pass the instance's values down the calls by hand",
                target.display()
            )));
        }
        let argument = call
            .children()
            .nth(1)
            .filter(|n| n.kind() == SyntaxKind::NODE_ATTR_SET)
            .ok_or_else(|| {
                refuse(format!(
                    "`{}` is called with an argument that is not an attribute set literal; add `{FACTS_ARGUMENT}` to it by hand",
                    target.display()
                ))
            })?;
        if has_binding(&argument, FACTS_ARGUMENT) {
            continue;
        }
        let root = scope.root(request, call.text_range()).map_err(refuse)?;
        let binding = format!("{FACTS_ARGUMENT} = {root};");
        if rewrite::bindings(&argument).next().is_none() {
            edits.push(Edit::replace(
                argument.text_range(),
                format!("{{ {binding} }}"),
            ));
        } else {
            edits.extend(rewrite::add_binding(&file.text, &argument, &binding));
        }
    }
    Ok(edits)
}

fn has_binding(set: &SyntaxNode, name: &str) -> bool {
    rewrite::bindings(set).any(|b| rewrite::binding_path(&b) == name)
}
