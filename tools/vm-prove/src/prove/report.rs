//! What a run records and tells: the evidence it starts from, the account it
//! prints when it ends, and the exit status of a guardrail refusal.

use std::path::Path;

use fromgit_cli::ExitStatus;

use super::identity::VERSION;
use super::inputs::Inputs;
use crate::config::Config;
use crate::evidence::{now, Evidence, SecretRecord, Teardown};
use crate::incus::Client;

/// A guardrail refusal: nothing was created or changed, and nothing about
/// the host was found wrong; the run could not be made, as with any other
/// error (exit 2), and its verdict `refused` says why.
pub(super) const REFUSED: ExitStatus = ExitStatus::Error;

/// The evidence of a run that has not started anything yet.
pub(super) fn new_evidence(
    config: &Config,
    config_path: &Path,
    client: &Client,
    inputs: &Inputs,
    run_id: &str,
) -> Evidence {
    Evidence {
        schema_version: 1,
        tool: "vm-prove".to_owned(),
        tool_version: VERSION.to_owned(),
        run_id: run_id.to_owned(),
        started: now(),
        finished: None,
        config_file: config_path.display().to_string(),
        project: client.project().to_owned(),
        server: Some(client.server.clone()),
        runbook: config.runbook.path.display().to_string(),
        runbook_sha256: inputs.runbook_sha256.clone(),
        runbook_vars: inputs.vars.clone(),
        repos: inputs.bundles.iter().map(|b| b.record.clone()).collect(),
        guardrails: Vec::new(),
        resize: None,
        instance: None,
        readiness: None,
        instance_os: None,
        nixos: None,
        level: "nothing proven".to_owned(),
        secret: SecretRecord {
            source: config.secret.source.display().to_string(),
            destination: config.secret.path.clone(),
            owner: config.secret.owner.clone(),
            group: config.secret.group.clone(),
            mode: config.secret.mode.clone(),
            size: inputs.secret.bytes.len(),
            ..SecretRecord::default()
        },
        blocks: Vec::new(),
        sops_decrypted: inputs
            .sops
            .iter()
            .map(|e| {
                format!(
                    "`{}`: `{}` in `{}`",
                    e.check.name,
                    e.check.key(),
                    e.check.sops_file.display()
                )
            })
            .collect(),
        checks: Vec::new(),
        executed: Vec::new(),
        teardown: Teardown::default(),
        verdict: "running".to_owned(),
        error: None,
    }
}

pub(super) fn report(
    ev: &Evidence,
    dir: &Path,
    printer: &fromgit_cli::Printer,
) -> anyhow::Result<()> {
    if printer.json() {
        printer.print_json(ev)?;
    } else {
        let text = format!(
            "vm-prove run `{}`: {}\n{}\n{}evidence: `{}` and `{}`\n",
            ev.run_id,
            ev.verdict,
            ev.account(),
            ev.error
                .as_ref()
                .map(|e| format!("why: {e}\n"))
                .unwrap_or_default(),
            Evidence::json_path(dir, &ev.run_id).display(),
            Evidence::markdown_path(dir, &ev.run_id).display()
        );
        printer.print_text(&text)?;
    }
    Ok(())
}
