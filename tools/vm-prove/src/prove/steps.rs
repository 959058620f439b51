//! The guarded steps of a run, in order: create, wait, push, run the blocks,
//! check. They end in a verdict on the host, or in an error that is none.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use serde_json::json;

use super::blocks::{run_block, stderr_line};
use super::checks::checks;
use super::inputs::Inputs;
use super::os::{detect_os, level, NEEDS_NIXOS};
use super::push::{push_bundles, push_secret};
use super::wait::wait_ready;
use crate::config::Config;
use crate::evidence::{BlockRecord, Evidence};
use crate::guard::Evaluation;
use crate::incus::Client;

/// How the guarded steps ended, when they could run.
pub(super) enum StepsEnd {
    Passed,
    Unproven(String),
    Failed(String),
}

/// The guarded steps; `Err` is an error, not a verdict on the host.
#[allow(clippy::too_many_arguments)] // the run's parts, each borrowed apart from `ev`, which it fills
pub(super) async fn steps(
    client: &Client,
    config: &Config,
    inputs: &Inputs,
    name: &str,
    instance_config: &BTreeMap<String, String>,
    evaluation: &Evaluation,
    ev: &mut Evidence,
    progress: bool,
) -> anyhow::Result<StepsEnd> {
    // Create (and start).
    let start_with_create = client.server.has("instance_create_start");
    let source = if evaluation.image_fingerprint.is_empty() {
        json!({"type": "image", "alias": config.instance.image})
    } else {
        json!({"type": "image", "fingerprint": evaluation.image_fingerprint})
    };
    let body = json!({
        "name": name,
        "type": config.instance.kind.api_name(),
        "source": source,
        "config": instance_config,
        "profiles": config.instance.profiles,
        "ephemeral": false,
        "description": "vm-prove throwaway instance",
        "start": start_with_create,
    });
    let t0 = Instant::now();
    let spinner = fromgit_cli::progress::waiting(progress, &format!("creating instance `{name}`"));
    client
        .create_instance(&body, Duration::from_secs(300))
        .await
        .context("Failed to create the instance")?;
    if let Some(i) = ev.instance.as_mut() {
        i.created = true;
    }
    if !start_with_create {
        client
            .change_state(name, "start", false, Duration::from_secs(30))
            .await?;
    }
    // Wait until it is up.
    spinner.set_message(format!("waiting for instance `{name}` to boot"));
    let ready = wait_ready(client, name, config.instance.ready_timeout.duration()).await?;
    spinner.finish_and_clear();
    ev.readiness = Some(format!("{ready} after {:.1} s", t0.elapsed().as_secs_f64()));
    tracing::info!("instance `{name}` is up: {ready}");
    let (os, nixos) = detect_os(client, name).await?;
    ev.level = level(&os, nixos, config.instance.kind);
    ev.instance_os = Some(os);
    ev.nixos = Some(nixos);

    // The one secret.
    push_secret(client, config, &inputs.secret, name, ev).await?;
    if ev.secret.content_matches != Some(true) {
        return Ok(StepsEnd::Failed(
            "the bootstrap key did not arrive intact".to_owned(),
        ));
    }
    push_bundles(client, name, &inputs.bundles, ev).await?;

    // The runbook.
    let mut skipped = Vec::new();
    for (block, script) in &inputs.blocks {
        if block.needs_nixos && !nixos {
            stderr_line(&format!(
                "==> block `{}`: not run: {NEEDS_NIXOS}",
                block.name
            ));
            ev.blocks.push(BlockRecord {
                name: block.name.clone(),
                line: block.line,
                source_sha256: block.source_sha256(),
                timeout_seconds: block.timeout,
                exit: None,
                timed_out: false,
                duration_seconds: 0.0,
                output_tail: String::new(),
                error: None,
                not_run: Some(NEEDS_NIXOS.to_owned()),
            });
            skipped.push(format!("`{}`", block.name));
            continue;
        }
        stderr_line(&format!(
            "==> block `{}` (timeout {} s)",
            block.name, block.timeout
        ));
        let record = run_block(
            client,
            name,
            block,
            script,
            &inputs.secret,
            config.evidence.tail_lines,
        )
        .await;
        let failed = record.exit != Some(0);
        let reason = if record.timed_out {
            format!("block `{}` timed out after {} s", block.name, block.timeout)
        } else if let Some(e) = &record.error {
            format!("block `{}` could not run: {e}", block.name)
        } else {
            format!(
                "block `{}` exited with {}",
                block.name,
                record.exit.unwrap_or(-1)
            )
        };
        ev.blocks.push(record);
        if failed {
            return Ok(StepsEnd::Failed(reason));
        }
    }

    // Read-only checks; those about what a skipped block would have built are not run.
    let activation_skipped = !skipped.is_empty();
    ev.checks = checks(
        client,
        config,
        name,
        &ev.run_id.clone(),
        inputs,
        activation_skipped,
    )
    .await;
    let failed: Vec<&str> = ev
        .checks
        .iter()
        .filter(|c| !c.passed && c.not_run.is_none())
        .map(|c| c.name.as_str())
        .collect();
    if !failed.is_empty() {
        return Ok(StepsEnd::Failed(format!(
            "checks failed: {}",
            failed.join(", ")
        )));
    }
    if activation_skipped {
        let checks_not_run = ev.checks.iter().filter(|c| c.not_run.is_some()).count();
        return Ok(StepsEnd::Unproven(format!(
            "{NEEDS_NIXOS}: block(s) {} and {checks_not_run} check(s) were not run on {}; everything that ran passed",
            skipped.join(", "),
            ev.instance_os.as_deref().unwrap_or("this instance")
        )));
    }
    Ok(StepsEnd::Passed)
}
