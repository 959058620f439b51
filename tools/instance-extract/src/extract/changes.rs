//! The changes that apply a plan: the base rewrite and the instance repo,
//! computed entirely in memory; nothing is written here.

use std::path::{Path, PathBuf};

use fromgit_sops::Recipient;

use super::base_wiring::{import_options_module, options_module, wire_flake};
use super::edits::{finding_edits, Outcome};
use super::instance::instance_repo;
use super::plan::Plan;
use super::{ExtractError, FileChange, MovedSecret, Request, OPTIONS_MODULE};
use crate::facts::Facts;
use crate::hosts::Hosts;
use crate::nixsrc::{self, Finding};
use crate::renames;
use crate::rewrite;
use crate::runtime_options::RuntimeOption;

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
    /// The host being split, when the flake names it.
    pub host: Option<String>,
    /// The runtime-file options the rewrite writes.
    pub runtime_options: Vec<RuntimeOption>,
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
    let mut runtime_options = Vec::new();
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
                runtime_options: &mut runtime_options,
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
                sealed: None,
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
                    sealed: None,
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
            sealed: None,
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
            sealed: None,
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
        host: hosts
            .lists
            .iter()
            .find(|l| l.chosen)
            .map(|l| l.host.clone()),
        runtime_options,
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
