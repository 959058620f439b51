//! `vm-prove plan`: the guardrail evaluation and the steps a run would take,
//! printed without changing anything, so a reviewer sees a run before it happens.

use std::fmt::Write as _;
use std::path::Path;

use fromgit_cli::ExitStatus;
use serde_json::json;

use super::inputs::{load_inputs, Inputs};
use super::report::REFUSED;
use crate::config::Config;
use crate::guard::{self, Evaluation, TAG_RUN_ID};
use crate::incus::Client;

/// `vm-prove plan`: evaluate, print, change nothing.
pub async fn plan(
    config: &Config,
    config_path: &Path,
    printer: &fromgit_cli::Printer,
) -> anyhow::Result<ExitStatus> {
    let inputs = load_inputs(config)?;
    let client = Client::connect(&config.incus, crate::incus::Allowed::from_config(config)).await?;
    let evaluation = guard::evaluate(&client, config).await?;
    let steps = plan_steps(config, &inputs, &evaluation);
    if printer.json() {
        printer.print_json(&json!({
            "schema_version": 1,
            "config_file": config_path.display().to_string(),
            "server": client.server,
            "project": client.project(),
            "guardrails": evaluation.guardrails,
            "passed": evaluation.passed(),
            "steps": steps,
        }))?;
    } else {
        let mut text = format!(
            "vm-prove plan for `{}` (project `{}`, {:?} {})\n\nGuardrails:\n",
            config_path.display(),
            client.project(),
            client.server.kind,
            client.server.version
        );
        for g in &evaluation.guardrails {
            let _ = writeln!(
                text,
                "  {} {}: {}",
                if g.passed { "ok     " } else { "REFUSED" },
                g.name,
                g.detail
            );
        }
        text.push_str("\nSteps a run would take:\n");
        for (i, step) in steps.iter().enumerate() {
            let _ = writeln!(text, "  {}. {step}", i + 1);
        }
        if !evaluation.passed() {
            text.push_str("\nA run would be refused before any change.\n");
        }
        printer.print_text(&text)?;
    }
    Ok(if evaluation.passed() {
        ExitStatus::Success
    } else {
        REFUSED
    })
}

fn plan_steps(config: &Config, inputs: &Inputs, evaluation: &Evaluation) -> Vec<String> {
    let mut steps = Vec::new();
    if let Some(r) = &evaluation.resize {
        steps.push(format!("resize {r}"));
    }
    steps.extend([
        format!(
            "create {} `{}-<run id>` from image `{}` with limits.memory={}, tagged `{TAG_RUN_ID}`",
            config.instance.kind.api_name(),
            config.instance.name_prefix,
            config.instance.image,
            config.instance.memory
        ),
        format!(
            "wait up to {} s for it to be up",
            config.instance.ready_timeout.0
        ),
        format!(
            "push the bootstrap key `{}` to `{}` (owner {}, group {}, mode {}): the only secret",
            config.secret.source.display(),
            config.secret.path,
            config.secret.owner,
            config.secret.group,
            config.secret.mode
        ),
    ]);
    for bundle in &inputs.bundles {
        let r = &bundle.record;
        steps.push(format!(
            "push repository `{}` (`{}` at `{}` = {}) as a git bundle to `{}`",
            r.name, r.source, r.rev, r.commit, r.destination
        ));
    }
    for (block, _) in &inputs.blocks {
        steps.push(format!(
            "run block `{}` (line {}, timeout {} s){}",
            block.name,
            block.line,
            block.timeout,
            if block.needs_nixos {
                "; needs NixOS: not run on another system, and the run is then at most unproven"
            } else {
                ""
            }
        ));
    }
    steps.push(format!(
        "check: no failed units, no pending jobs; units {:?}; secrets {:?}",
        config.checks.units,
        config
            .checks
            .secrets
            .iter()
            .map(|s| s.path.as_str())
            .collect::<Vec<_>>()
    ));
    for expected in &inputs.sops {
        let c = &expected.check;
        steps.push(format!(
            "check: sops-nix secret `{}` at `/run/secrets/{}` in the newest `/run/secrets.d/<n>`, {}:{} {}, holding the value of `{}` in `{}` (decrypted here with the pushed key: it does)",
            c.name,
            c.name,
            c.owner,
            c.group,
            c.mode,
            c.key(),
            c.sops_file.display()
        ));
    }
    if let Some(toplevel) = &config.checks.current_system {
        steps.push(format!(
            "check: `/run/current-system` resolves to `{toplevel}`"
        ));
    }
    for (check, sealed) in &inputs.tls {
        steps.push(format!(
            "check: `{}` inside the instance serves {} under SNI `{}`",
            check.address, sealed.sha256_fingerprint, check.server_name
        ));
    }
    steps.push("force-stop and delete the instance (always)".to_owned());
    steps
}
