//! The edits that rewrite one file's findings: the domain and the facts over
//! the instance options, secret paths and evaluation-time reads over the
//! sops-nix paths, or a refusal that names the line and why.

use rnix::SyntaxKind;

use super::plan::{Plan, EVAL_READ_REASON};
use super::{ExtractError, Request};
use crate::evalread;
use crate::facts::{Facts, Group};
use crate::hosts;
use crate::inline::{self, InlineSecret};
use crate::nixsrc::{self, Context, Finding, FindingKind, NixFile};
use crate::rewrite::{self, Edit};
use crate::runtime_options::{self, RuntimeOption};

use super::scope::{plain_call_edits, reads_facts, Scope, FACTS_ARGUMENT};

/// The edits that rewrite one file's findings over the instance option and
/// the sops-nix paths; findings left as they are go to `left`.
/// Where `finding_edits` sorts the findings of a file.
pub(super) struct Outcome<'a> {
    pub(super) inline: &'a mut Vec<InlineSecret>,
    pub(super) rewritten: &'a mut Vec<Finding>,
    pub(super) left: &'a mut Vec<Finding>,
    pub(super) facts: &'a mut Facts,
    pub(super) runtime_options: &'a mut Vec<RuntimeOption>,
}

pub(super) fn finding_edits(
    request: &Request<'_>,
    plan: &Plan,
    file: &NixFile,
    outcome: &mut Outcome<'_>,
) -> Result<Vec<Edit>, ExtractError> {
    let scope = Scope::of(plan, file);
    let findings: Vec<&Finding> = plan
        .findings
        .iter()
        .filter(|f| f.file == file.relative)
        .collect();
    let mut edits = plain_call_edits(request, plan, file, &scope)?;
    let mut uses_facts = !edits.is_empty();
    let mut needs_config = false;
    let reads = evalread::find(file, request.secrets);
    if !reads.is_empty() {
        edits.extend(eval_read_edits(request, file, &reads, &findings, outcome)?);
        needs_config = true;
    }
    for finding in &findings {
        if finding.kind == FindingKind::EvalTimeRead
            || reads.iter().any(|r| r.range.contains_range(finding.range))
        {
            continue;
        }
        let root = if reads_facts(file, finding) && finding.context != Context::Comment {
            uses_facts = true;
            scope
                .root(request, finding.range)
                .map_err(|reason| ExtractError::Unrewritable {
                    file: request.base.join(&file.relative),
                    line: finding.line,
                    reason,
                })?
        } else {
            String::new()
        };
        let domain_expr = format!("{root}.domain");
        let edit = match (finding.kind, finding.context) {
            (FindingKind::Comment, _) => Edit::replace(finding.range, "<instance domain>"),
            (FindingKind::IpAddress, Context::Comment) => {
                Edit::replace(finding.range, "<instance address>")
            }
            (FindingKind::ForeignEmail, Context::Comment) => {
                Edit::replace(finding.range, "<instance e-mail>")
            }
            (FindingKind::Domain | FindingKind::Email, Context::Uri) => {
                let uri = &file.text
                    [usize::from(finding.range.start())..usize::from(finding.range.end())];
                let body =
                    nixsrc::replace_domain(uri, request.domain, &format!("${{{domain_expr}}}"));
                Edit::replace(finding.range, format!("\"{body}\""))
            }
            (FindingKind::Domain | FindingKind::Email, context)
                if hosts::in_description(file, finding.range.start()) =>
            {
                // The flake's description is read without evaluation: plain text only.
                let text = if context == Context::WholeString {
                    "\"<instance domain>\""
                } else {
                    "<instance domain>"
                };
                edits.push(Edit::replace(finding.range, text));
                outcome.rewritten.push((*finding).clone());
                continue;
            }
            (FindingKind::Domain, Context::WholeString) => {
                Edit::replace(finding.range, domain_expr.clone())
            }
            (FindingKind::Domain | FindingKind::Email, _) => {
                refuse_in_let(file, finding)?;
                Edit::replace(finding.range, format!("${{{domain_expr}}}"))
            }
            (FindingKind::SecretPath, context) => {
                needs_config = true;
                let name = finding.secret.as_deref().unwrap_or_default();
                let expression = Request::secret_expression(name);
                match context {
                    Context::WholeString | Context::PathLiteral => {
                        Edit::replace(finding.range, expression)
                    }
                    _ => Edit::replace(finding.range, format!("${{{expression}}}")),
                }
            }
            (FindingKind::LiteralSecret, _) if inline::plan_move(file, finding).is_some() => {
                if let Some((moves, secret)) = inline::plan_move(file, finding) {
                    edits.extend(moves);
                    outcome.runtime_options.extend(runtime_options::at(
                        file,
                        finding.range.start(),
                        secret.form,
                    ));
                    outcome.inline.push(secret);
                }
                needs_config = true;
                outcome.rewritten.push((*finding).clone());
                continue;
            }
            (FindingKind::LiteralSecret, _) => {
                let instead = finding
                    .option
                    .as_deref()
                    .and_then(crate::classify::file_option_for)
                    .map_or_else(
                        || "move it to a file on the host and pass `--secret NAME=PATH`".to_owned(),
                        |option| format!("use {option}"),
                    );
                return Err(ExtractError::Unrewritable {
                    file: request.base.join(&file.relative),
                    line: finding.line,
                    reason: format!(
                        "a secret is written into the Nix source ({}: {}); {instead}; if it is not secret, accept it in `{}` with key `{}` and a reason",
                        finding.detail,
                        finding.reason.as_deref().unwrap_or("looks secret"),
                        crate::accept::ACCEPT_FILE,
                        finding.accept_key.as_deref().unwrap_or_default(),
                    ),
                });
            }
            (FindingKind::IpAddress, context) if finding.reason.is_none() => {
                refuse_in_let(file, finding)?;
                fact_edit(&root, outcome.facts, Group::Address, finding, context)
            }
            (FindingKind::ForeignEmail, context) => {
                refuse_in_let(file, finding)?;
                fact_edit(&root, outcome.facts, Group::Email, finding, context)
            }
            (
                FindingKind::IpAddress
                | FindingKind::SecretDirectory
                | FindingKind::PublicValue
                | FindingKind::Accepted
                | FindingKind::EvalTimeRead,
                _,
            ) => {
                outcome.left.push((*finding).clone());
                continue;
            }
        };
        edits.push(edit);
        outcome.rewritten.push((*finding).clone());
    }
    edits.extend(scope_formal(
        request,
        file,
        plan,
        &scope,
        &findings,
        needs_config,
        uses_facts,
    )?);
    Ok(edits)
}

/// The edits that turn each evaluation-time read of a `--secret` into the
/// option's runtime-file form; any other read refuses the split.
fn eval_read_edits(
    request: &Request<'_>,
    file: &NixFile,
    reads: &[evalread::EvalRead],
    findings: &[&Finding],
    outcome: &mut Outcome<'_>,
) -> Result<Vec<Edit>, ExtractError> {
    let mut edits = Vec::new();
    for read in reads {
        let (line, _) = file.line_column(usize::from(read.range.start()));
        let (Some(name), Some((option_range, form))) = (&read.secret, read.file_form) else {
            let instead = if read.secret.is_some() {
                "bind the secret to the option's runtime-file form (`passwordFile`, `environmentFile`, `LoadCredential`, …) by hand"
            } else {
                "pass the file with `--secret NAME=PATH` and use the option's runtime-file form (`passwordFile`, `environmentFile`, `LoadCredential`, …)"
            };
            return Err(ExtractError::Unrewritable {
                file: request.base.join(&file.relative),
                line,
                reason: format!(
                    "`{}` of `{}` is {EVAL_READ_REASON}; {instead}",
                    read.reader, read.target
                ),
            });
        };
        edits.push(Edit::replace(option_range, form));
        outcome
            .runtime_options
            .extend(runtime_options::at(file, option_range.start(), form));
        edits.push(Edit::replace(read.range, Request::secret_expression(name)));
        if let Some(finding) = findings
            .iter()
            .find(|f| f.kind == FindingKind::EvalTimeRead && f.range == read.range)
        {
            outcome.rewritten.push(Finding {
                reason: Some(format!(
                    "now `{form}` with the sops-nix path, read at activation"
                )),
                ..(*finding).clone()
            });
        }
    }
    Ok(edits)
}

/// The edit that brings the facts (and `config`) into the file's scope, or
/// the refusal that says why it cannot.
fn scope_formal(
    request: &Request<'_>,
    file: &NixFile,
    plan: &Plan,
    scope: &Scope,
    findings: &[&Finding],
    needs_config: bool,
    uses_facts: bool,
) -> Result<Option<Edit>, ExtractError> {
    let first = findings
        .iter()
        .find(|f| f.context != Context::Comment && !hosts::in_description(file, f.range.start()))
        .map_or(1, |f| f.line);
    let refuse = |reason: String| ExtractError::Unrewritable {
        file: request.base.join(&file.relative),
        line: first,
        reason,
    };
    match scope {
        Scope::Module if needs_config || uses_facts => {
            match rewrite::ensure_formal(&file.root, "config") {
                Ok(edit) => Ok(edit),
                Err(()) => bare_module_formal(request, plan, file, "config").map_err(refuse),
            }
        }
        Scope::HomeManager if needs_config => Err(refuse(
            "a home-manager module (its `config` is the user's) uses a secret's path: write `osConfig.sops.secrets.\"…\".path` by hand, or use sops-nix's home-manager module".to_owned(),
        )),
        Scope::HomeManager if uses_facts => match rewrite::ensure_formal(&file.root, "osConfig") {
            Ok(edit) => Ok(edit),
            Err(()) => bare_module_formal(request, plan, file, "osConfig").map_err(refuse),
        },
        Scope::PlainFunction { caller, line } if needs_config => Err(refuse(format!(
            "the file is a plain function called by `{}` line {line} (`import … {{ … }}`), not a module: it cannot read a sops-nix secret's path; pass the path to it from the caller by hand",
            caller.display()
        ))),
        Scope::PlainFunction { caller, line } if uses_facts => {
            rewrite::ensure_formal(&file.root, FACTS_ARGUMENT).map_err(|()| {
                refuse(format!(
                    "the file is a plain function called by `{}` line {line}, but not over an attribute pattern (`{{ a, b }}: …`): the instance's values cannot be passed to it; pass them by hand",
                    caller.display()
                ))
            })
        }
        Scope::Flake { .. } if needs_config => Err(refuse(
            "a secret's path is used in `flake.nix`, which cannot read a NixOS option; move the value into a module".to_owned(),
        )),
        _ => Ok(None),
    }
}

/// A module written as a bare attribute set (`{ services.x = …; }`) becomes
/// a function of `formal` (`config`, `osConfig`), unless some file also imports it as a value
/// (`(import ./known-hosts.nix).programs…`), which a function would break.
fn bare_module_formal(
    request: &Request<'_>,
    plan: &Plan,
    file: &NixFile,
    formal: &str,
) -> Result<Option<Edit>, String> {
    let top = rewrite::top_expression(&file.root).filter(|top| {
        matches!(
            top.kind(),
            SyntaxKind::NODE_ATTR_SET | SyntaxKind::NODE_LET_IN
        )
    });
    let Some(top) = top else {
        return Err("the file is not a NixOS module function (`{ config, ... }: …`), so the instance option cannot be referenced here".to_owned());
    };
    if let Some((user, line)) = hosts::value_import(&plan.files, &file.relative) {
        return Err(format!(
            "the file is a module written as a bare attribute set, and `{}` line {line} also imports it as a value (`import …`): making it a function of `{formal}` would break that use; pass the instance's values to it by hand",
            request.base.join(user).display()
        ));
    }
    Ok(Some(Edit::insert(
        top.text_range().start(),
        format!("{{ {formal}, ... }}:\n"),
    )))
}

/// The edit that reads an address or e-mail address from the facts.
fn fact_edit(
    root: &str,
    facts: &mut Facts,
    group: Group,
    finding: &Finding,
    context: Context,
) -> Edit {
    let expression = format!("{root}.{}", facts.name(group, &finding.detail));
    if context == Context::WholeString {
        Edit::replace(finding.range, expression)
    } else {
        Edit::replace(finding.range, format!("${{{expression}}}"))
    }
}

/// Dynamic attribute names are not allowed in `let` bindings: a domain used
/// as a `let` attribute name cannot become an interpolation.
fn refuse_in_let(file: &NixFile, finding: &Finding) -> Result<(), ExtractError> {
    let Some(token) = file
        .root
        .token_at_offset(finding.range.start())
        .right_biased()
    else {
        return Ok(());
    };
    let in_attrpath = token
        .parent_ancestors()
        .any(|n| n.kind() == SyntaxKind::NODE_ATTRPATH);
    let binding = token
        .parent_ancestors()
        .find(|n| n.kind() == SyntaxKind::NODE_ATTRPATH_VALUE);
    let in_let = binding.and_then(|b| b.parent()).is_some_and(|p| {
        matches!(
            p.kind(),
            SyntaxKind::NODE_LET_IN | SyntaxKind::NODE_LEGACY_LET
        )
    });
    if in_attrpath && in_let {
        return Err(ExtractError::Unrewritable {
            file: file.relative.clone(),
            line: finding.line,
            reason: format!(
                "`{}` names a `let` binding, which cannot be computed from an option",
                finding.detail
            ),
        });
    }
    Ok(())
}
