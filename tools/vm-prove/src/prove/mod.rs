//! The run itself: guardrails, create a tagged instance, wait for it, push
//! the one secret, execute the marked runbook blocks, run the read-only
//! checks, and tear the instance down whatever happened (a failed step, a
//! failed check, SIGTERM or Ctrl-C, an internal error). Also `plan` (the same
//! evaluation, no change) and `sweep` (delete what a crashed run left).

mod blocks;
pub(crate) mod checks;
mod identity;
mod inputs;
mod os;
mod plan;
mod push;
mod report;
mod resize;
mod secret;
mod steps;
mod sweep;
mod teardown;
mod wait;

pub use os::NEEDS_NIXOS;
pub use plan::plan;
pub use secret::Secret;
pub use sweep::sweep;

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::Context as _;
use fromgit_cli::ExitStatus;

use crate::config::Config;
use crate::evidence::{now, InstanceRecord, Teardown};
use crate::guard::{self, Evaluation, TAG_CREATED, TAG_HOST, TAG_PID, TAG_RUN_ID, TAG_VERSION};
use crate::incus::Client;
use identity::{hostname, run_id, VERSION};
use inputs::load_inputs;
use report::{new_evidence, report, REFUSED};
use resize::resize;
use steps::{steps, StepsEnd};
use teardown::teardown;

/// Options of `vm-prove run`.
#[derive(Debug, Clone)]
pub struct RunOptions {
    pub keep_on_failure: bool,
    pub printer: fromgit_cli::Printer,
    /// Spinners on stderr while the instance is created, boots and is deleted.
    pub progress: bool,
}

/// How the guarded part ended.
enum Outcome {
    Passed,
    /// Everything that ran passed, but blocks or checks needing NixOS did not run.
    Unproven(String),
    Failed(String),
    Error(anyhow::Error),
    Interrupted(&'static str),
}

/// `vm-prove run`.
pub async fn run(
    config: &Config,
    config_path: &Path,
    options: RunOptions,
) -> anyhow::Result<ExitStatus> {
    let inputs = load_inputs(config)?;
    let client = Client::connect(&config.incus, crate::incus::Allowed::from_config(config)).await?;
    let run_id = run_id();
    let mut ev = new_evidence(config, config_path, &client, &inputs, &run_id);
    let dir = config.evidence.dir.clone();
    let evaluation: Evaluation = guard::evaluate(&client, config).await?;
    ev.guardrails.clone_from(&evaluation.guardrails);
    if !evaluation.passed() {
        let refusals: Vec<String> = evaluation
            .guardrails
            .iter()
            .filter(|g| !g.passed)
            .map(|g| format!("guardrail `{}` refused: {}", g.name, g.detail))
            .collect();
        for refusal in &refusals {
            tracing::error!("{refusal}");
        }
        ev.error = Some(refusals.join("; "));
        "refused".clone_into(&mut ev.verdict);
        "nothing proven (refused before any change)".clone_into(&mut ev.level);
        "nothing created".clone_into(&mut ev.teardown.action);
        ev.finished = Some(now());
        ev.write(&dir).context("Failed to write the evidence")?;
        report(&ev, &dir, &options.printer)?;
        return Ok(REFUSED);
    }

    if let Some(plan) = &evaluation.resize {
        let resized = resize(&client, plan, config.instance.ready_timeout.duration()).await;
        match resized {
            Ok(record) => ev.resize = Some(record),
            Err(e) => {
                "error".clone_into(&mut ev.verdict);
                ev.error = Some(format!("{e:#}"));
                "nothing created".clone_into(&mut ev.teardown.action);
                ev.finished = Some(now());
                ev.write(&dir).context("Failed to write the evidence")?;
                report(&ev, &dir, &options.printer)?;
                return Err(e);
            }
        }
    }

    let name = format!("{}-{}", config.instance.name_prefix, run_id);
    let mut tags = BTreeMap::new();
    tags.insert(TAG_RUN_ID.to_owned(), run_id.clone());
    tags.insert(TAG_CREATED.to_owned(), ev.started.clone());
    tags.insert(TAG_VERSION.to_owned(), VERSION.to_owned());
    tags.insert(TAG_HOST.to_owned(), hostname());
    tags.insert(TAG_PID.to_owned(), std::process::id().to_string());
    let mut instance_config = tags.clone();
    instance_config.insert("limits.memory".to_owned(), config.instance.memory.clone());
    if let Some(cpu) = config.instance.cpu {
        instance_config.insert("limits.cpu".to_owned(), cpu.to_string());
    }
    ev.instance = Some(InstanceRecord {
        name: name.clone(),
        kind: config.instance.kind.api_name().to_owned(),
        image: config.instance.image.clone(),
        image_fingerprint: evaluation.image_fingerprint.clone(),
        config: instance_config.clone(),
        profiles: config.instance.profiles.clone(),
        created: false,
    });
    // The name is on disk before the instance exists: a crash leaves a trace.
    ev.write(&dir).context("Failed to write the evidence")?;
    tracing::info!("run `{run_id}`: instance `{name}`");

    let outcome = {
        let steps = steps(
            &client,
            config,
            &inputs,
            &name,
            &instance_config,
            &evaluation,
            &mut ev,
            options.progress,
        );
        tokio::select! {
            result = steps => match result {
                Ok(StepsEnd::Passed) => Outcome::Passed,
                Ok(StepsEnd::Unproven(reason)) => Outcome::Unproven(reason),
                Ok(StepsEnd::Failed(reason)) => Outcome::Failed(reason),
                Err(e) => Outcome::Error(e),
            },
            signal = interrupted() => Outcome::Interrupted(signal),
        }
    };
    let (verdict, status) = match &outcome {
        Outcome::Passed => ("passed", ExitStatus::Success),
        Outcome::Unproven(reason) => {
            ev.error = Some(reason.clone());
            ("unproven", ExitStatus::Unproven)
        }
        Outcome::Failed(reason) => {
            ev.error = Some(reason.clone());
            ("failed", ExitStatus::Failure)
        }
        Outcome::Error(e) => {
            ev.error = Some(format!("{e:#}"));
            ("error", ExitStatus::Error)
        }
        Outcome::Interrupted(signal) => {
            ev.error = Some(format!("interrupted by {signal}"));
            ("interrupted", ExitStatus::Error)
        }
    };
    ev.verdict = verdict.to_owned();
    ev.executed = client.executed();
    if let Some(e) = &ev.error {
        tracing::error!("run `{run_id}` {verdict}: {e}");
    }

    // Teardown, always; `--keep-on-failure` is the one exception.
    if options.keep_on_failure && !matches!(outcome, Outcome::Passed | Outcome::Unproven(_)) {
        ev.teardown = Teardown {
            action: "KEPT (--keep-on-failure)".to_owned(),
            deleted: false,
            error: None,
        };
        fromgit_cli::warn(&format!(
            "--keep-on-failure: instance `{name}` in project `{}` was NOT deleted; delete it with `vm-prove sweep` or `incus delete --force {name} --project {}`",
            client.project(),
            client.project()
        ));
    } else {
        let spinner = fromgit_cli::progress::waiting(
            options.progress,
            &format!("deleting instance `{name}`"),
        );
        ev.teardown = teardown(&client, &name, &run_id).await;
        spinner.finish_and_clear();
    }
    ev.finished = Some(now());
    ev.write(&dir).context("Failed to write the evidence")?;
    report(&ev, &dir, &options.printer)?;
    if ev.teardown.error.is_some() {
        return Ok(ExitStatus::Error);
    }
    Ok(status)
}

/// Resolves on SIGTERM or SIGINT; never, if the handlers cannot be installed.
async fn interrupted() -> &'static str {
    use tokio::signal::unix::{signal, SignalKind};
    let (Ok(mut term), Ok(mut int)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) else {
        return std::future::pending().await;
    };
    tokio::select! {
        _ = term.recv() => "SIGTERM",
        _ = int.recv() => "SIGINT",
    }
}
