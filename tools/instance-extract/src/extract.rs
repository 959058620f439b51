//! The split of a monolithic flake into a generic base and a private
//! instance repo: the plan (what is instance-specific, and where), and the
//! changes that apply it, computed entirely in memory before anything is
//! written.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use rnix::SyntaxKind;
use serde::Serialize;
use sha2::{Digest as _, Sha256};
use zeroize::Zeroizing;

use fromgit_nix::literal::string as nix_string;
use fromgit_sops::{Format, Map, Recipient, Scalar, Value};

use crate::evalread;
use crate::facts::{Facts, Group};
use crate::hosts::{self, Hosts};
use crate::inline::{self, InlineSecret};
use crate::nixsrc::{self, Context, Finding, FindingKind, Needles, NixFile};
use crate::renames;
use crate::rewrite::{self, Edit};

/// The module the base gains: the instance option, declared once, and the
/// sops-nix declarations of the moved secrets.
pub const OPTIONS_MODULE: &str = "instance-options.nix";

/// What the command line asked for.
pub struct Request<'a> {
    pub base: &'a Path,
    pub domain: &'a str,
    /// `(name, host path)` pairs.
    pub secrets: &'a [(String, String)],
    /// The option namespace: `config.<name>.instance.domain`.
    pub name: &'a str,
    /// The base's entry module, relative to the base.
    pub module: &'a Path,
    /// The sops-nix key wiring and per-secret overrides.
    pub sops: &'a crate::wiring::SopsRequest,
}

impl Request<'_> {
    pub fn domain_expression(&self) -> String {
        format!("config.{}.instance.domain", rewrite::attr_name(self.name))
    }

    fn secret_expression(name: &str) -> String {
        format!("config.sops.secrets.{}.path", nix_string(name))
    }
}

/// Errors of plan and apply; each names the file, flag or key at fault.
#[derive(Debug, thiserror::Error)]
pub enum ExtractError {
    #[error("`{0}` is not a flake: it has no `flake.nix`")]
    NotAFlake(PathBuf),
    #[error(transparent)]
    Source(#[from] nixsrc::SourceError),
    #[error("`{file}` line {line}: {reason}")]
    Unrewritable {
        file: PathBuf,
        line: usize,
        reason: String,
    },
    #[error("the entry module `{0}` does not exist (pass `--module`)")]
    NoEntryModule(PathBuf),
    #[error("`--secret {name}={path}`: cannot read the host file: {source}")]
    SecretUnreadable {
        name: String,
        path: String,
        source: std::io::Error,
    },
    #[error("`--secret {0}`: the secret file is not UTF-8 text")]
    SecretNotText(String),
    #[error(transparent)]
    Sops(#[from] fromgit_sops::SopsError),
    #[error(transparent)]
    Accept(#[from] crate::accept::AcceptError),
}

const EVAL_READ_REASON: &str = "read when the configuration is evaluated: pure evaluation cannot read it, and its value would be copied into the world-readable store; sops-nix decrypts only at activation";

/// Every finding in the base, file by file.
pub struct Plan {
    pub files: Vec<NixFile>,
    pub findings: Vec<Finding>,
    /// `(key, name)` of the facts the operator named in `instance-extract.toml`.
    pub fact_names: Vec<(String, String)>,
}

impl Plan {
    pub fn read(request: &Request<'_>) -> Result<Self, ExtractError> {
        if !request.base.join("flake.nix").is_file() {
            return Err(ExtractError::NotAFlake(request.base.to_owned()));
        }
        let files = nixsrc::read_tree(request.base)?;
        let needles = Needles {
            domain: request.domain,
            secrets: request.secrets,
        };
        let config = crate::accept::read(request.base)?;
        let accepted = config.accept;
        let mut findings: Vec<Finding> = files
            .iter()
            // The generated module declares where sops-nix puts each secret:
            // those paths are sanctioned there.
            .filter(|file| file.relative != Path::new(OPTIONS_MODULE))
            .flat_map(|file| nixsrc::scan(file, &needles))
            .collect();
        for file in &files {
            if file.relative == Path::new(OPTIONS_MODULE) {
                continue;
            }
            for read in evalread::find(file, request.secrets) {
                let (line, column) = file.line_column(usize::from(read.range.start()));
                findings.push(Finding {
                    kind: FindingKind::EvalTimeRead,
                    file: file.relative.clone(),
                    line,
                    column,
                    detail: format!("`{}` of `{}`", read.reader, read.target),
                    secret: read.secret.clone(),
                    reason: Some(EVAL_READ_REASON.to_owned()),
                    accept_key: None,
                    option: None,
                    range: read.range,
                    context: Context::StringContent,
                });
            }
        }
        findings.sort_by(|a, b| (&a.file, a.range.start()).cmp(&(&b.file, b.range.start())));
        for finding in &mut findings {
            let entry = accepted
                .iter()
                .find(|entry| finding.accept_key.as_deref() == Some(entry.key.as_str()));
            if let Some(entry) = entry {
                finding.kind = FindingKind::Accepted;
                finding.reason = Some(format!(
                    "accepted in `{}`: {}",
                    crate::accept::ACCEPT_FILE,
                    entry.reason
                ));
            }
        }
        Ok(Plan {
            files,
            findings,
            fact_names: config
                .fact
                .into_iter()
                .map(|fact| (fact.key, fact.name))
                .collect(),
        })
    }

    pub fn mentions_domain(&self) -> bool {
        self.findings.iter().any(|f| {
            matches!(
                f.kind,
                FindingKind::Domain | FindingKind::Email | FindingKind::Comment
            )
        })
    }
}

/// A file to create or replace, with its previous content for the diff.
pub struct FileChange {
    pub path: PathBuf,
    pub before: Option<String>,
    pub after: String,
}

/// A secret moved into the instance repo, as the report shows it.
#[derive(Debug, Serialize)]
pub struct MovedSecret {
    pub name: String,
    pub source: String,
    pub sha256: String,
}

/// Everything `apply` would do.
pub struct Changes {
    pub base: Vec<FileChange>,
    /// Base files named after the instance: `(old, new)`, both absolute.
    /// The new file is among `base`; the old one is removed last.
    pub renamed: Vec<(PathBuf, PathBuf)>,
    pub instance: Vec<FileChange>,
    pub rewritten: Vec<Finding>,
    pub moved: Vec<MovedSecret>,
    pub options: Vec<String>,
    /// Findings left as they are, with the reason (IP addresses, other paths).
    pub left: Vec<Finding>,
    /// Wiring the flake could not get automatically, for the operator.
    pub manual: Vec<String>,
    /// Each moved secret's sops-nix owner, mode and units.
    pub settings: Vec<crate::wiring::SecretSettings>,
    /// The flake's other hosts, whose modules were left as they are.
    pub other_hosts: Vec<String>,
}

/// Computes the base rewrite and the instance repo; writes nothing.
pub fn changes(
    request: &Request<'_>,
    plan: &Plan,
    recipients: &[Recipient],
    instance_url: &str,
) -> Result<Changes, ExtractError> {
    let mut base = Vec::new();
    let mut rewritten = Vec::new();
    let mut left = Vec::new();
    let mut manual = Vec::new();
    let mut facts = Facts::with_names(plan.fact_names.clone());
    let mut inline = Vec::new();
    let entry = request.module.to_path_buf();
    if !plan.files.iter().any(|f| f.relative == entry) {
        return Err(ExtractError::NoEntryModule(request.base.join(&entry)));
    }
    let hosts = Hosts::new(&plan.files, &entry);
    let mut renamed = Vec::new();
    for old in
        renames::named_files(request.base, request.domain).map_err(nixsrc::SourceError::from)?
    {
        let Some(new) = renames::renamed(&old, request.domain) else {
            continue;
        };
        if request.base.join(&new).exists() {
            return Err(ExtractError::Unrewritable {
                file: request.base.join(&old),
                line: 1,
                reason: format!(
                    "its name carries the domain, and the generic name `{}` is taken",
                    new.display()
                ),
            });
        }
        renamed.push((old, new));
    }
    for file in &plan.files {
        if hosts.others_only.contains(&file.relative) {
            left.extend(
                plan.findings
                    .iter()
                    .filter(|f| f.file == file.relative)
                    .map(|f| Finding {
                        reason: Some("in a file only other hosts use; left as it is".to_owned()),
                        ..f.clone()
                    }),
            );
            continue;
        }
        let mut edits = finding_edits(
            request,
            plan,
            file,
            &mut Outcome {
                inline: &mut inline,
                rewritten: &mut rewritten,
                left: &mut left,
                facts: &mut facts,
            },
        )?;
        edits.extend(renames::path_literal_edits(file, request.domain));
        if file.relative == entry {
            edits.extend(import_options_module(file)?);
        }
        if file.relative == Path::new("flake.nix") {
            edits.extend(wire_flake(file, &hosts, instance_url, &mut manual));
        }
        if let Some((_, new)) = renamed.iter().find(|(old, _)| *old == file.relative) {
            base.push(FileChange {
                path: request.base.join(new),
                before: None,
                after: rewrite::apply(&file.text, &edits),
            });
            continue;
        }
        if !edits.is_empty() {
            let after = rewrite::apply(&file.text, &edits);
            if after != file.text {
                base.push(FileChange {
                    path: request.base.join(&file.relative),
                    before: Some(file.text.clone()),
                    after,
                });
            }
        }
    }
    for (old, new) in &renamed {
        if old.extension().is_some_and(|e| e == "nix") {
            continue;
        }
        let text = fs_err::read_to_string(request.base.join(old)).map_err(|_| {
            ExtractError::Unrewritable {
                file: request.base.join(old),
                line: 1,
                reason: "its name carries the domain and it is not text; rename it by hand"
                    .to_owned(),
            }
        })?;
        base.push(FileChange {
            path: request.base.join(new),
            before: None,
            after: text,
        });
    }
    let (settings, notes) = crate::wiring::secret_settings(
        &plan.files,
        &plan.findings,
        request.secrets,
        &request.sops.overrides,
    );
    manual.extend(notes);
    let options_path = request.base.join(OPTIONS_MODULE);
    let options_text = options_module(request, &settings, &inline);
    let existing = fs_err::read_to_string(&options_path).ok();
    if existing.as_deref() != Some(options_text.as_str()) {
        base.push(FileChange {
            path: options_path,
            before: existing,
            after: options_text,
        });
    }
    let (instance, moved) = instance_repo(request, recipients, &facts, &inline)?;
    let mut options = vec![format!("{}.instance.domain", request.name)];
    for (group, values) in [("addresses", &facts.addresses), ("emails", &facts.emails)] {
        options.extend(
            values
                .iter()
                .map(|(_, name)| format!("{}.instance.{group}.{name}", request.name)),
        );
    }
    Ok(Changes {
        base,
        renamed: renamed
            .into_iter()
            .map(|(old, new)| (request.base.join(old), request.base.join(new)))
            .collect(),
        instance,
        rewritten,
        moved,
        options,
        other_hosts: hosts
            .lists
            .iter()
            .filter(|l| !l.chosen)
            .map(|l| l.host.clone())
            .collect(),
        left,
        manual,
        settings,
    })
}

/// The edits that rewrite one file's findings over the instance option and
/// the sops-nix paths; findings left as they are go to `left`.
/// Where `finding_edits` sorts the findings of a file.
struct Outcome<'a> {
    inline: &'a mut Vec<InlineSecret>,
    rewritten: &'a mut Vec<Finding>,
    left: &'a mut Vec<Finding>,
    facts: &'a mut Facts,
}

fn finding_edits(
    request: &Request<'_>,
    plan: &Plan,
    file: &NixFile,
    outcome: &mut Outcome<'_>,
) -> Result<Vec<Edit>, ExtractError> {
    let domain_expr = request.domain_expression();
    let findings: Vec<&Finding> = plan
        .findings
        .iter()
        .filter(|f| f.file == file.relative)
        .collect();
    let mut edits = Vec::new();
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
                fact_edit(request, outcome.facts, Group::Address, finding, context)
            }
            (FindingKind::ForeignEmail, context) => {
                refuse_in_let(file, finding)?;
                fact_edit(request, outcome.facts, Group::Email, finding, context)
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
        if finding.context != Context::Comment {
            needs_config = true;
        }
        edits.push(edit);
        outcome.rewritten.push((*finding).clone());
    }
    if needs_config {
        match rewrite::ensure_formal(&file.root, "config") {
            Ok(Some(edit)) => {
                if let Some((caller, line)) = hosts::function_caller(&plan.files, &file.relative) {
                    return Err(ExtractError::Unrewritable {
                        file: request.base.join(&file.relative),
                        line: findings.first().map_or(1, |f| f.line),
                        reason: format!(
                            "the file is a plain function called by `{}` line {line} (`import … {{ … }}`), not a module: giving it a `config` argument would break that call; pass the instance's values to it from the caller by hand",
                            caller.display()
                        ),
                    });
                }
                edits.push(edit);
            }
            Ok(None) => {}
            Err(()) => {
                let first = findings
                    .iter()
                    .find(|f| {
                        f.context != Context::Comment
                            && !hosts::in_description(file, f.range.start())
                    })
                    .map_or(1, |f| f.line);
                let reason = if file.relative == Path::new("flake.nix") {
                    "the domain is used in `flake.nix` outside `description` (a colmena `deployment.targetHost`, a `specialArgs` value): the flake cannot read a NixOS option; move the value into a module or write it by hand"
                } else {
                    "the file is not a NixOS module function (`{ config, ... }: …`), so the instance option cannot be referenced here"
                };
                return Err(ExtractError::Unrewritable {
                    file: request.base.join(&file.relative),
                    line: first,
                    reason: reason.to_owned(),
                });
            }
        }
    }
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
        edits.push(Edit::replace(read.range, Request::secret_expression(name)));
        if let Some(finding) = findings
            .iter()
            .find(|f| f.kind == FindingKind::EvalTimeRead && f.range == read.range)
        {
            outcome.rewritten.push(Finding {
                reason: Some(format!(
                    "now `{form}` with the sops-nix path, read at activation; check that the service has `{form}`"
                )),
                ..(*finding).clone()
            });
        }
    }
    Ok(edits)
}

/// The edit that reads an address or e-mail address from its instance
/// option.
fn fact_edit(
    request: &Request<'_>,
    facts: &mut Facts,
    group: Group,
    finding: &Finding,
    context: Context,
) -> Edit {
    let expression = format!(
        "config.{}.instance.{}",
        rewrite::attr_name(request.name),
        facts.name(group, &finding.detail)
    );
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

/// Adds the options module to the entry module's `imports`, as a path that
/// resolves from the entry module's own directory.
fn import_options_module(file: &NixFile) -> Result<Vec<Edit>, ExtractError> {
    let element = hosts::path_literal(&file.relative, OPTIONS_MODULE);
    if file.text.contains(&element) {
        return Ok(Vec::new());
    }
    let unrewritable = |reason: &str| ExtractError::Unrewritable {
        file: file.relative.clone(),
        line: 1,
        reason: reason.to_owned(),
    };
    let body = rewrite::top_expression(&file.root)
        .and_then(|lambda| {
            if lambda.kind() == SyntaxKind::NODE_LAMBDA {
                lambda.children().last()
            } else {
                Some(lambda)
            }
        })
        // `let … in { … }`: the set is the body after `in`.
        .and_then(|body| {
            if body.kind() == SyntaxKind::NODE_LET_IN {
                body.children().last()
            } else {
                Some(body)
            }
        })
        .filter(|n| n.kind() == SyntaxKind::NODE_ATTR_SET)
        .ok_or_else(|| unrewritable("the entry module does not return an attribute set; add `imports = [ ./instance-options.nix ];` by hand"))?;
    if let Some(imports) = rewrite::bindings(&body).find(|b| rewrite::binding_path(b) == "imports")
    {
        let list = rewrite::binding_value(&imports)
            .filter(|v| v.kind() == SyntaxKind::NODE_LIST)
            .ok_or_else(|| unrewritable("`imports` is not a list literal"))?;
        return Ok(rewrite::append_to_list(&list, &element)
            .into_iter()
            .collect());
    }
    Ok(
        rewrite::add_binding(&file.text, &body, &format!("imports = [ {element} ];"))
            .into_iter()
            .collect(),
    )
}

/// Wires the base flake: an `instance` input (and sops-nix when the base does
/// not use it yet), the formal arguments of `outputs`, and the modules of
/// each `nixosConfigurations` entry.
fn wire_flake(
    file: &NixFile,
    hosts: &Hosts,
    instance_url: &str,
    manual: &mut Vec<String>,
) -> Vec<Edit> {
    let mut edits = Vec::new();
    let Some(top) =
        rewrite::top_expression(&file.root).filter(|n| n.kind() == SyntaxKind::NODE_ATTR_SET)
    else {
        manual.push(
            "flake.nix: the top level is not an attribute set; add the `instance` input by hand"
                .to_owned(),
        );
        return edits;
    };
    let needs_sops = !file.text.contains("sops-nix");
    let mut inputs: Vec<(&str, String)> = Vec::new();
    if !file.text.contains("instance.url") && !file.text.contains("inputs.instance") {
        inputs.push(("instance", instance_url.to_owned()));
    }
    if needs_sops {
        inputs.push(("sops-nix", "github:Mic92/sops-nix".to_owned()));
    }
    let input_set = rewrite::bindings(&top)
        .find(|b| rewrite::binding_path(b) == "inputs")
        .and_then(|b| rewrite::binding_value(&b))
        .filter(|v| v.kind() == SyntaxKind::NODE_ATTR_SET);
    for (name, url) in &inputs {
        let line = format!("{name}.url = {};", nix_string(url));
        let edit = if let Some(set) = &input_set {
            rewrite::add_binding(&file.text, set, &line)
        } else if let Some(last) = rewrite::bindings(&top)
            .filter(|b| rewrite::binding_path(b).starts_with("inputs."))
            .last()
        {
            Some(Edit::insert(
                last.text_range().end(),
                format!("\n{}inputs.{line}", rewrite::indentation(&file.text, &last)),
            ))
        } else {
            rewrite::add_binding(&file.text, &top, &format!("inputs.{line}"))
        };
        edits.extend(edit);
    }
    let outputs = rewrite::bindings(&top)
        .find(|b| rewrite::binding_path(b) == "outputs")
        .and_then(|b| rewrite::binding_value(&b))
        .filter(|v| v.kind() == SyntaxKind::NODE_LAMBDA);
    let Some(outputs) = outputs else {
        manual.push(
            "flake.nix: `outputs` is not a function literal; pass `instance` to it by hand"
                .to_owned(),
        );
        return edits;
    };
    let formals: Vec<&str> = if needs_sops {
        vec!["instance", "sops-nix"]
    } else {
        vec!["instance"]
    };
    for formal in formals {
        if let Some(pattern) = outputs
            .children()
            .find(|n| n.kind() == SyntaxKind::NODE_PATTERN)
        {
            if !rewrite::has_formal(&pattern, formal) {
                edits.extend(rewrite::add_formal_last(&pattern, formal));
            }
        } else {
            manual.push(format!("flake.nix: `outputs` takes no attribute pattern; make `{formal}` available to it by hand"));
        }
    }
    let mut wired = 0;
    for node in outputs
        .descendants()
        .filter(|n| n.kind() == SyntaxKind::NODE_ATTRPATH_VALUE)
    {
        if rewrite::binding_path(&node) != "modules" {
            continue;
        }
        let in_configurations = node.ancestors().any(|a| {
            a.kind() == SyntaxKind::NODE_ATTRPATH_VALUE
                && rewrite::binding_path(&a).contains("nixosConfigurations")
        });
        let Some(list) =
            rewrite::binding_value(&node).filter(|v| v.kind() == SyntaxKind::NODE_LIST)
        else {
            continue;
        };
        let other_host = hosts
            .lists
            .iter()
            .any(|l| !l.chosen && l.list.text_range() == list.text_range());
        if !in_configurations || other_host {
            continue;
        }
        let text = list.text().to_string();
        if !text.contains("instance.nixosModules.instance") {
            edits.extend(rewrite::append_to_list(
                &list,
                "instance.nixosModules.instance",
            ));
        }
        if needs_sops {
            edits.extend(rewrite::append_to_list(&list, "sops-nix.nixosModules.sops"));
        }
        wired += 1;
    }
    if wired == 0 && !file.text.contains("instance.nixosModules.instance") {
        manual.push("flake.nix: no `nixosConfigurations.<host>.modules` list found; add `instance.nixosModules.instance` to it by hand".to_owned());
    }
    edits
}

fn options_module(
    request: &Request<'_>,
    settings: &[crate::wiring::SecretSettings],
    inline: &[InlineSecret],
) -> String {
    let name = rewrite::attr_name(request.name);
    let mut text = format!(
        "# Generated by `instance-extract apply`: the instance's facts, declared once.\n\
         # The private instance repo sets them through its `nixosModules.instance`.\n\
         {{ lib, ... }}:\n{{\n  options.{name}.instance.domain = lib.mkOption {{\n    \
         type = lib.types.str;\n    description = \"The instance's domain, set by the private instance repo.\";\n  }};\n  \
         options.{name}.instance.addresses = lib.mkOption {{\n    type = lib.types.attrsOf lib.types.str;\n    default = {{ }};\n    \
         description = \"The instance's IP addresses, by neutral name.\";\n  }};\n  \
         options.{name}.instance.emails = lib.mkOption {{\n    type = lib.types.attrsOf lib.types.str;\n    default = {{ }};\n    \
         description = \"The instance's e-mail addresses outside its domain, by neutral name.\";\n  }};\n"
    );
    if !request.secrets.is_empty() {
        text.push_str("\n  # Secrets that used to be placed on the host by hand, now decrypted by\n  # sops-nix from the instance repo to the same paths.\n");
        text.push_str("  config.sops.secrets = {\n");
        for (secret, path) in request.secrets {
            let found = settings.iter().find(|s| &s.name == secret);
            let _ = writeln!(text, "{}", crate::wiring::secret_entry(secret, path, found));
        }
        text.push_str("  };\n");
    }
    if !inline.is_empty() {
        text.push_str("\n  # Secrets that were written into the Nix source, now in the instance's\n  # sops file; a user's password hash is needed before users exist.\n");
        for secret in inline {
            let needed = if secret.needed_for_users {
                " neededForUsers = true; "
            } else {
                " "
            };
            let _ = writeln!(
                text,
                "  config.sops.secrets.{} = {{{needed}}};",
                nix_string(&secret.name)
            );
        }
    }
    text.push_str("}\n");
    text
}

/// `instance.nix`: the domain and the other facts, plain data.
fn instance_facts(domain: &str, facts: &Facts) -> String {
    let mut text = format!(
        "# The instance's facts: plain data, read by `nixosModules.instance`.\n{{\n  domain = {};\n",
        nix_string(domain)
    );
    for (group, values) in [("addresses", &facts.addresses), ("emails", &facts.emails)] {
        if values.is_empty() {
            continue;
        }
        let _ = writeln!(text, "  {group} = {{");
        for (value, name) in values {
            let _ = writeln!(
                text,
                "    {} = {};",
                rewrite::attr_name(name),
                nix_string(value)
            );
        }
        text.push_str("  };\n");
    }
    text.push_str("}\n");
    text
}

/// The instance repo's files, the secrets encrypted for `recipients`.
fn instance_repo(
    request: &Request<'_>,
    recipients: &[Recipient],
    facts: &Facts,
    inline: &[InlineSecret],
) -> Result<(Vec<FileChange>, Vec<MovedSecret>), ExtractError> {
    let mut tree: Value = Value::Map(Map::new());
    let mut moved = Vec::new();
    for (name, path) in request.secrets {
        let bytes = Zeroizing::new(fs_err::read(path).map_err(|source| {
            ExtractError::SecretUnreadable {
                name: name.clone(),
                path: path.clone(),
                source,
            }
        })?);
        let text = Zeroizing::new(
            std::str::from_utf8(&bytes)
                .map_err(|_| ExtractError::SecretNotText(name.clone()))?
                .to_owned(),
        );
        moved.push(MovedSecret {
            name: name.clone(),
            source: path.clone(),
            sha256: hex::encode(Sha256::digest(&*bytes)),
        });
        // sops-nix reads `a/b` as the key `b` under the map `a`.
        let mut key_path = fromgit_sops::KeyPath::default();
        for part in name.split('/') {
            key_path.push(fromgit_sops::value::PathStep::Key(part.to_owned()));
        }
        tree.set(
            &key_path,
            Value::Scalar(Scalar {
                kind: fromgit_sops::Kind::Str,
                text,
            }),
        );
    }
    for secret in inline {
        moved.push(MovedSecret {
            name: secret.name.clone(),
            source: format!("inline at {}", secret.location),
            sha256: hex::encode(Sha256::digest(secret.value.as_bytes())),
        });
        let mut key_path = fromgit_sops::KeyPath::default();
        for part in secret.name.split('/') {
            key_path.push(fromgit_sops::value::PathStep::Key(part.to_owned()));
        }
        tree.set(
            &key_path,
            Value::Scalar(Scalar {
                kind: fromgit_sops::Kind::Str,
                text: secret.value.clone(),
            }),
        );
    }
    let tree = match tree {
        Value::Map(map) => map,
        _ => Map::new(),
    };
    let mut files = vec![
        ("instance.nix".to_owned(), instance_facts(request.domain, facts)),
        ("flake.nix".to_owned(), crate::wiring::instance_flake(request.name, &request.sops.keys)),
        ("README.md".to_owned(), format!(
            "# Private instance repo\n\nThe instance data of a fromgit base (`{}`): `instance.nix` holds the facts\n\
             (the domain), `secrets/secrets.yaml` the sops-encrypted secrets, `.sops.yaml`\n\
             the recipients. The base composes it through its `instance` flake input.\n\n\
             Check it with `instance-extract verify --instance . --identity KEY`.\n",
            request.name
        )),
    ];
    let rules: Vec<&str> = recipients.iter().map(Recipient::as_str).collect();
    files.push((
        ".sops.yaml".to_owned(),
        format!(
            "creation_rules:\n  - path_regex: ^secrets/.*\\.yaml$\n    age: >-\n      {}\n",
            rules.join(",\n      ")
        ),
    ));
    let mut changes: Vec<FileChange> = files
        .into_iter()
        .map(|(name, after)| FileChange {
            path: PathBuf::from(name),
            before: None,
            after,
        })
        .collect();
    if !request.secrets.is_empty() || !inline.is_empty() {
        let written = fromgit_sops::encrypt_new(
            Format::Yaml,
            &tree,
            recipients,
            fromgit_sops::metadata::Selection::default(),
        )?;
        written.verify(written.text.as_bytes())?;
        changes.push(FileChange {
            path: PathBuf::from("secrets/secrets.yaml"),
            before: None,
            after: written.text.to_string(),
        });
    }
    Ok((changes, moved))
}
