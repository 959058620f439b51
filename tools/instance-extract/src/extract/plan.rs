//! The plan: every finding in the base, file by file, with what the
//! operator accepted in `instance-extract.toml` marked as such.

use std::path::Path;

use super::{ExtractError, Request, OPTIONS_MODULE};
use crate::evalread;
use crate::nixsrc::{self, Context, Finding, FindingKind, Needles, NixFile};

pub(super) const EVAL_READ_REASON: &str = "read when the configuration is evaluated: pure evaluation cannot read it, and its value would be copied into the world-readable store; sops-nix decrypts only at activation";

/// Every finding in the base, file by file.
pub struct Plan {
    pub files: Vec<NixFile>,
    pub findings: Vec<Finding>,
    /// `(key, name)` of the facts the operator named in `instance-extract.toml`.
    pub fact_names: Vec<(String, String)>,
    /// The home-manager modules: their `config` is the user's, not the host's.
    pub home_manager: std::collections::BTreeSet<std::path::PathBuf>,
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
        let home_manager = crate::hosts::home_manager_files(&files);
        Ok(Plan {
            home_manager,
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
