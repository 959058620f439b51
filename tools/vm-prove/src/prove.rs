//! The run itself: guardrails, create a tagged instance, wait for it, push
//! the one secret, execute the marked runbook blocks, run the read-only
//! checks, and tear the instance down whatever happened (a failed step, a
//! failed check, SIGTERM or Ctrl-C, an internal error). Also `plan` (the same
//! evaluation, no change) and `sweep` (delete what a crashed run left).

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::future::Future;
use std::path::Path;
use std::pin::Pin;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use fromgit_cli::ExitStatus;
use serde_json::json;
use sha2::{Digest as _, Sha256};
use zeroize::Zeroizing;

use cert_seal::sealed::CertSummary;

use crate::config::{parse_mode, Config, TlsCheck, REPOS_DIR};
use crate::evidence::{
    now, BlockRecord, CheckRecord, Evidence, InstanceRecord, ResizeRecord, SecretRecord, Teardown,
};
use crate::guard::{self, Evaluation, TAG_CREATED, TAG_HOST, TAG_PID, TAG_RUN_ID, TAG_VERSION};
use crate::incus::{Client, IncusError, Stream};
use crate::repos::{self, Bundle};
use crate::runbook::{self, Block};
use crate::tls;

const VERSION: &str = env!("CARGO_PKG_VERSION");

/// The bootstrap key, read once; its `Debug` never shows the content.
pub struct Secret {
    bytes: Zeroizing<Vec<u8>>,
    /// Lines that must never appear in any output (redacted if they do).
    lines: Vec<Zeroizing<String>>,
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Secret({} bytes)", self.bytes.len())
    }
}

impl Secret {
    /// Reads the key file and checks that it holds exactly one age identity.
    pub fn load(path: &Path) -> anyhow::Result<Secret> {
        let bytes = Zeroizing::new(
            fs_err::read(path).context("Failed to read the bootstrap key (`secret.source`)")?,
        );
        let text = std::str::from_utf8(&bytes).map_err(|_| {
            anyhow::anyhow!(
                "`{}` is not an age identity file (not text)",
                path.display()
            )
        })?;
        let keys: Vec<&str> = text
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty() && !l.starts_with('#'))
            .collect();
        let valid = keys.len() == 1 && is_age_identity(keys[0]);
        if !valid {
            anyhow::bail!(
                "`{}` is not an age identity file: expected exactly one `AGE-SECRET-KEY-1…` line",
                path.display()
            );
        }
        let lines = keys
            .iter()
            .map(|k| Zeroizing::new((*k).to_owned()))
            .collect();
        Ok(Secret { bytes, lines })
    }

    fn redact(&self, text: &str) -> String {
        let mut out = text.to_owned();
        for line in &self.lines {
            out = out.replace(line.as_str(), "[redacted secret]");
            out = out.replace(&line.to_ascii_lowercase(), "[redacted secret]");
        }
        out
    }

    fn sha256(&self) -> String {
        hex::encode(Sha256::digest(&self.bytes))
    }
}

fn is_age_identity(line: &str) -> bool {
    const CHARSET: &str = "qpzry9x8gf2tvdw0s3jn54khce6mua7l";
    line.strip_prefix("AGE-SECRET-KEY-1").is_some_and(|rest| {
        rest.len() == 58
            && rest
                .chars()
                .all(|c| CHARSET.contains(c.to_ascii_lowercase()) && !c.is_ascii_lowercase())
    })
}

/// Local inputs, checked before the server is contacted.
struct Inputs {
    blocks: Vec<(Block, String)>,
    runbook_sha256: String,
    /// The configured variables plus `repos.<name>.bundle` and `.commit`.
    vars: BTreeMap<String, String>,
    secret: Secret,
    bundles: Vec<Bundle>,
    /// Holds the bundle files until the run ends.
    _bundle_dir: tempfile::TempDir,
    /// Each TLS check with the sealed certificate it expects.
    tls: Vec<(TlsCheck, CertSummary)>,
    /// Each sops-nix secret check with the hash of its decrypted value.
    sops: Vec<crate::sopsnix::Expected>,
}

fn load_inputs(config: &Config) -> anyhow::Result<Inputs> {
    let text =
        fs_err::read_to_string(&config.runbook.path).context("Failed to read the runbook")?;
    let blocks = runbook::parse(&text, config.runbook.default_timeout.0)
        .with_context(|| format!("Runbook `{}`", config.runbook.path.display()))?;
    let secret = Secret::load(&config.secret.source)?;
    let sops = crate::sopsnix::expected(&config.checks.sops_secrets, &config.secret.source)?;
    let tls = config
        .checks
        .tls
        .iter()
        .map(|check| {
            let sealed = cert_seal::sealed_summary(&check.sealed)
                .with_context(|| format!("`checks.tls` for `{}`", check.server_name))?;
            Ok((check.clone(), sealed))
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    let bundle_dir = tempfile::Builder::new()
        .prefix("vm-prove-bundles")
        .tempdir()
        .context("Failed to create a directory for the repository bundles")?;
    let mut vars = BTreeMap::new();
    let mut bundles = Vec::new();
    for repo in &config.repos {
        let bundle = repos::bundle(repo, bundle_dir.path())?;
        if bundle.record.uncommitted_changes {
            fromgit_cli::warn(&format!(
                "repository `{}` has uncommitted changes; the proof uses commit {} without them",
                repo.name, bundle.record.commit
            ));
        }
        vars.insert(
            format!("repos.{}.bundle", repo.name),
            bundle.record.destination.clone(),
        );
        vars.insert(
            format!("repos.{}.commit", repo.name),
            bundle.record.commit.clone(),
        );
        bundles.push(bundle);
    }
    // Configured values may name the repositories' own placeholders, e.g.
    // `base_rev = "{{ repos.base.commit }}"`, so one runbook serves both
    // vm-prove's bundles and a person cloning by hand.
    for (name, value) in &config.runbook.vars {
        let value = runbook::fill(value, &vars).map_err(|unknown| {
            anyhow::anyhow!("`runbook.vars.{name}`: no value for `{{{{ {unknown} }}}}`")
        })?;
        vars.insert(name.clone(), value);
    }
    let rendered = blocks
        .into_iter()
        .map(|b| {
            let script = b.render(&vars)?;
            Ok((b, script))
        })
        .collect::<Result<Vec<_>, runbook::RunbookError>>()
        .with_context(|| format!("Runbook `{}`", config.runbook.path.display()))?;
    Ok(Inputs {
        blocks: rendered,
        runbook_sha256: hex::encode(Sha256::digest(text.as_bytes())),
        vars,
        secret,
        bundles,
        _bundle_dir: bundle_dir,
        tls,
        sops,
    })
}

fn stderr_line(text: &str) {
    use std::io::Write as _;
    let mut err = std::io::stderr().lock();
    let _ = writeln!(err, "{text}");
}

/// `vm-prove plan`: evaluate, print, change nothing.
pub async fn plan(
    config: &Config,
    config_path: &Path,
    json_out: bool,
) -> anyhow::Result<ExitStatus> {
    let inputs = load_inputs(config)?;
    let client = Client::connect(&config.incus, crate::incus::Allowed::from_config(config)).await?;
    let evaluation = guard::evaluate(&client, config).await?;
    let steps = plan_steps(config, &inputs, &evaluation);
    if json_out {
        fromgit_cli::write_json(&json!({
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
        fromgit_cli::write_stdout(text.as_bytes())?;
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

fn random_hex(bytes: usize) -> String {
    let mut buf = vec![0u8; bytes];
    if getrandom::getrandom(&mut buf).is_err() {
        // Uniqueness, not secrecy: fall back to the clock.
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or_default();
        return format!("{nanos:08x}");
    }
    hex::encode(buf)
}

fn run_id() -> String {
    let t = time::OffsetDateTime::now_utc();
    format!(
        "{:04}{:02}{:02}-{:02}{:02}{:02}-{}",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second(),
        random_hex(3)
    )
}

fn hostname() -> String {
    fs_err::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_owned())
        .unwrap_or_default()
}

/// A guardrail refusal: nothing was created or changed, and nothing about
/// the host was found wrong; the run could not be made, as with any other
/// error (exit 2), and its verdict `refused` says why.
const REFUSED: ExitStatus = ExitStatus::Error;

/// Options of `vm-prove run`.
#[derive(Debug, Clone, Copy)]
pub struct RunOptions {
    pub keep_on_failure: bool,
    pub json: bool,
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
        report(&ev, &dir, options.json)?;
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
                report(&ev, &dir, options.json)?;
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
        ev.teardown = teardown(&client, &name, &run_id).await;
    }
    ev.finished = Some(now());
    ev.write(&dir).context("Failed to write the evidence")?;
    report(&ev, &dir, options.json)?;
    if ev.teardown.error.is_some() {
        return Ok(ExitStatus::Error);
    }
    Ok(status)
}

/// The evidence of a run that has not started anything yet.
fn new_evidence(
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

fn report(ev: &Evidence, dir: &Path, json_out: bool) -> anyhow::Result<()> {
    if json_out {
        fromgit_cli::write_json(ev)?;
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
        fromgit_cli::write_stdout(text.as_bytes())?;
    }
    Ok(())
}

/// The configured resize: stop, set `limits.memory`, start, wait until it
/// runs again (no hotplug), and read the value back.
async fn resize(
    client: &Client,
    plan: &guard::ResizePlan,
    timeout: Duration,
) -> anyhow::Result<ResizeRecord> {
    let start = Instant::now();
    let name = &plan.instance;
    tracing::info!(
        "resizing `{name}`: limits.memory {} → {}",
        plan.before.as_deref().unwrap_or("(unset)"),
        plan.after
    );
    if plan.running {
        client
            .change_state(name, "stop", false, plan.stop_timeout)
            .await
            .with_context(|| format!("Failed to stop `{name}` for the resize"))?;
    }
    client
        .set_config(name, "limits.memory", &plan.after)
        .await
        .with_context(|| format!("Failed to set limits.memory on `{name}`"))?;
    if plan.running {
        client
            .change_state(name, "start", false, Duration::from_secs(30))
            .await
            .with_context(|| format!("Failed to start `{name}` after the resize"))?;
        wait_running(client, name, start, timeout).await?;
    }
    let observed = client
        .get_instance(name)
        .await?
        .and_then(|i| i.config.get("limits.memory").cloned());
    Ok(ResizeRecord {
        instance: name.clone(),
        before: plan.before.clone(),
        after: plan.after.clone(),
        observed,
        restarted: plan.running,
        seconds: (start.elapsed().as_secs_f64() * 10.0).round() / 10.0,
    })
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

/// Deletes the instance if it is ours (tagged with this run id).
async fn teardown(client: &Client, name: &str, run_id: &str) -> Teardown {
    let mut last_error = None;
    for attempt in 0..5 {
        if attempt > 0 {
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
        match client.get_instance(name).await {
            Ok(None) if attempt == 0 => {
                // A create may still be in flight after an interruption: look again.
                last_error = None;
            }
            Ok(None) => {
                return Teardown {
                    action: "force-stop and delete".to_owned(),
                    deleted: last_error.is_none() && attempt > 0,
                    error: last_error,
                }
            }
            Ok(Some(instance)) => {
                if instance.config.get(TAG_RUN_ID).map(String::as_str) != Some(run_id) {
                    return Teardown {
                        action: "refused".to_owned(),
                        deleted: false,
                        error: Some(format!(
                            "instance `{name}` is not tagged with this run id; not deleting it"
                        )),
                    };
                }
                match client.delete_instance(name).await {
                    Ok(_) => {
                        tracing::info!("deleted instance `{name}`");
                        return Teardown {
                            action: "force-stop and delete".to_owned(),
                            deleted: true,
                            error: None,
                        };
                    }
                    Err(e) => last_error = Some(e.to_string()),
                }
            }
            Err(e) => last_error = Some(e.to_string()),
        }
    }
    Teardown {
        action: "force-stop and delete".to_owned(),
        deleted: false,
        error: last_error
            .or_else(|| Some("the instance could not be confirmed deleted".to_owned())),
    }
}

/// How the guarded steps ended, when they could run.
enum StepsEnd {
    Passed,
    Unproven(String),
    Failed(String),
}

/// What the instance runs, from `/etc/os-release`, and whether it is NixOS.
async fn detect_os(client: &Client, name: &str) -> anyhow::Result<(String, bool)> {
    let out = client
        .exec(
            name,
            &[
                "sh",
                "-c",
                ". /etc/os-release 2>/dev/null; echo \"${ID:-unknown}\"; echo \"${PRETTY_NAME:-unknown}\"",
            ],
            Duration::from_secs(60),
            "reading /etc/os-release",
        )
        .await?;
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let mut lines = text.lines();
    let id = lines.next().unwrap_or("unknown").trim().to_owned();
    let pretty = lines.next().unwrap_or("unknown").trim().to_owned();
    Ok((pretty, id == "nixos"))
}

/// The most a run on this instance can prove, in words.
fn level(os: &str, nixos: bool, kind: crate::config::InstanceType) -> String {
    let kind = match kind {
        crate::config::InstanceType::Container => "container",
        crate::config::InstanceType::VirtualMachine => "virtual machine",
    };
    if nixos {
        format!("a NixOS rebuild on a {os} {kind}")
    } else {
        format!("mechanics on a {os} {kind} (not NixOS; the host's rebuild is not proven)")
    }
}

/// The guarded steps; `Err` is an error, not a verdict on the host.
async fn steps(
    client: &Client,
    config: &Config,
    inputs: &Inputs,
    name: &str,
    instance_config: &BTreeMap<String, String>,
    evaluation: &Evaluation,
    ev: &mut Evidence,
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
    let ready = wait_ready(client, name, config.instance.ready_timeout.duration()).await?;
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

/// Waits until the instance runs with processes (a VM: its agent answers).
async fn wait_running(
    client: &Client,
    name: &str,
    start: Instant,
    timeout: Duration,
) -> anyhow::Result<()> {
    loop {
        let state = client.state(name).await?;
        if state.status_code == guard::RUNNING && state.processes > 0 {
            return Ok(());
        }
        if start.elapsed() > timeout {
            anyhow::bail!(
                "instance `{name}` did not start within {} s (status {})",
                timeout.as_secs(),
                state.status_code
            );
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

async fn wait_ready(client: &Client, name: &str, timeout: Duration) -> anyhow::Result<String> {
    let start = Instant::now();
    wait_running(client, name, start, timeout).await?;
    loop {
        let left = timeout.saturating_sub(start.elapsed());
        if left.is_zero() {
            anyhow::bail!(
                "instance `{name}`: systemd did not finish booting within {} s",
                timeout.as_secs()
            );
        }
        let secs = left.as_secs().clamp(1, 30).to_string();
        let out = client
            .exec(
                name,
                &["timeout", &secs, "systemctl", "is-system-running", "--wait"],
                left + Duration::from_secs(30),
                "waiting for systemd",
            )
            .await;
        match out {
            Ok(o) => {
                let state = String::from_utf8_lossy(&o.stdout).trim().to_owned();
                if state == "running" || state == "degraded" {
                    return Ok(format!("systemd `{state}`"));
                }
            }
            Err(IncusError::OperationFailed { .. }) => {}
            Err(e) => return Err(e.into()),
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// The numeric ids of an owner and group as written (a name, or `#<id>`):
/// names are looked up inside the instance (`getent`, read-only).
async fn resolve_owner(
    client: &Client,
    name: &str,
    owner: &str,
    group: &str,
) -> anyhow::Result<(u32, u32)> {
    let mut ids = [0u32; 2];
    for (slot, (database, text)) in ids.iter_mut().zip([("passwd", owner), ("group", group)]) {
        *slot = match crate::config::parse_owner(text).map_err(anyhow::Error::msg)? {
            crate::config::Owner::Id(id) => id,
            crate::config::Owner::Name(n) => {
                let out = client
                    .exec(
                        name,
                        &["getent", database, &n],
                        Duration::from_secs(60),
                        "looking up the key's owner",
                    )
                    .await?;
                String::from_utf8_lossy(&out.stdout)
                    .split(':')
                    .nth(2)
                    .and_then(|id| id.trim().parse().ok())
                    .filter(|_| out.exit == 0)
                    .ok_or_else(|| {
                        anyhow::anyhow!("`{n}` does not exist in the instance ({database})")
                    })?
            }
        };
    }
    Ok((ids[0], ids[1]))
}

async fn push_secret(
    client: &Client,
    config: &Config,
    secret: &Secret,
    name: &str,
    ev: &mut Evidence,
) -> anyhow::Result<()> {
    let path = Path::new(&config.secret.path);
    let mode = parse_mode(&config.secret.mode).map_err(anyhow::Error::msg)?;
    let (uid, gid) = resolve_owner(client, name, &config.secret.owner, &config.secret.group)
        .await
        .context("`secret.owner`/`secret.group`")?;
    ev.secret.uid = uid;
    ev.secret.gid = gid;
    // Missing parent directories are created; the innermost one 0700, so the
    // write-then-chmod window of the file API is covered.
    let parents: Vec<&Path> = path
        .ancestors()
        .skip(1)
        .filter(|p| p.as_os_str() != "/")
        .collect();
    for (i, dir) in parents.iter().rev().enumerate() {
        let dir_mode = if i + 1 == parents.len() { 0o700 } else { 0o755 };
        let dir_text = dir.display().to_string();
        client
            .make_dir(name, &dir_text, uid, gid, dir_mode)
            .await
            .with_context(|| format!("Failed to create `{dir_text}` in the instance"))?;
    }
    client
        .push_file(
            name,
            &config.secret.path,
            secret.bytes.to_vec(),
            uid,
            gid,
            mode,
        )
        .await
        .context("Failed to push the bootstrap key")?;
    ev.secret.pushed = true;
    // Verify through exec, without reading the secret back.
    let out = client
        .exec(
            name,
            &[
                "sh",
                "-c",
                "stat -c '%a %u %g %s' \"$1\" && sha256sum \"$1\"",
                "sh",
                &config.secret.path,
            ],
            Duration::from_secs(60),
            "checking the pushed key",
        )
        .await?;
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let mut lines = text.lines();
    let observed = lines.next().unwrap_or_default().to_owned();
    let hash = lines
        .next()
        .and_then(|l| l.split_whitespace().next())
        .unwrap_or_default();
    let expected = format!("{:o} {uid} {gid} {}", mode, secret.bytes.len());
    ev.secret.content_matches =
        Some(out.exit == 0 && hash == secret.sha256() && observed == expected);
    ev.secret.observed = Some(observed);
    Ok(())
}

/// Splits a block's output into lines as it streams in, prints each one
/// (redacted) the moment it is complete, and keeps the last ones for the
/// evidence (a rebuild prints a lot; only the tail is kept).
struct LiveOutput<'a> {
    block: &'a str,
    secret: &'a Secret,
    partial: [Vec<u8>; 2],
    tail: std::collections::VecDeque<String>,
    keep: usize,
}

impl LiveOutput<'_> {
    fn push(&mut self, stream: Stream, chunk: &[u8]) {
        let i = usize::from(stream == Stream::Stderr);
        self.partial[i].extend_from_slice(chunk);
        while let Some(end) = self.partial[i].iter().position(|&b| b == b'\n') {
            let line: Vec<u8> = self.partial[i].drain(..=end).collect();
            self.line(&line[..end]);
        }
    }

    fn line(&mut self, bytes: &[u8]) {
        let text = self.secret.redact(&String::from_utf8_lossy(bytes));
        stderr_line(&format!("[{}] {text}", self.block));
        if self.tail.len() == self.keep {
            self.tail.pop_front();
        }
        if self.keep > 0 {
            self.tail.push_back(text);
        }
    }

    /// The last lines, once the block has ended.
    fn finish(mut self) -> String {
        for i in 0..2 {
            let rest = std::mem::take(&mut self.partial[i]);
            if !rest.is_empty() {
                self.line(&rest);
            }
        }
        Vec::from(self.tail).join("\n")
    }
}

async fn push_bundles(
    client: &Client,
    name: &str,
    bundles: &[Bundle],
    ev: &mut Evidence,
) -> anyhow::Result<()> {
    if bundles.is_empty() {
        return Ok(());
    }
    for dir in ["/var/lib/vm-prove", REPOS_DIR] {
        client
            .make_dir(name, dir, 0, 0, 0o700)
            .await
            .with_context(|| format!("Failed to create `{dir}` in the instance"))?;
    }
    for (bundle, record) in bundles.iter().zip(ev.repos.iter_mut()) {
        let bytes = fs_err::read(&bundle.file)?;
        client
            .push_file(name, &record.destination, bytes, 0, 0, 0o600)
            .await
            .with_context(|| format!("Failed to push repository `{}`", record.name))?;
        record.pushed = true;
    }
    Ok(())
}

async fn run_block(
    client: &Client,
    name: &str,
    block: &Block,
    script: &str,
    secret: &Secret,
    tail_lines: usize,
) -> BlockRecord {
    let start = Instant::now();
    let timeout = block.timeout.to_string();
    let command = [
        "timeout", "-k", "10", &timeout, "bash", "-euo", "pipefail", "-c", script,
    ];
    let (sender, mut receiver) = tokio::sync::mpsc::unbounded_channel();
    let mut live = LiveOutput {
        block: &block.name,
        secret,
        partial: [Vec::new(), Vec::new()],
        tail: std::collections::VecDeque::with_capacity(tail_lines),
        keep: tail_lines,
    };
    let what = format!("block `{}`", block.name);
    let exec = async {
        let result = client
            .exec_attached(
                name,
                &command,
                Duration::from_secs(block.timeout + 60),
                &what,
                None,
                &sender,
            )
            .await;
        drop(sender);
        result
    };
    let print = async {
        while let Some((stream, chunk)) = receiver.recv().await {
            live.push(stream, &chunk);
        }
    };
    let (result, ()) = tokio::join!(exec, print);
    let output_tail = live.finish();
    let duration = start.elapsed().as_secs_f64();
    let mut record = BlockRecord {
        name: block.name.clone(),
        line: block.line,
        source_sha256: block.source_sha256(),
        timeout_seconds: block.timeout,
        exit: None,
        timed_out: false,
        duration_seconds: (duration * 1000.0).round() / 1000.0,
        output_tail,
        error: None,
        not_run: None,
    };
    match result {
        Ok(exit) => {
            record.exit = Some(exit);
            record.timed_out = exit == 124 || exit == 137;
        }
        Err(IncusError::Timeout { .. }) => record.timed_out = true,
        Err(e) => record.error = Some(e.to_string()),
    }
    record
}

async fn sh(
    client: &Client,
    name: &str,
    script: &str,
    what: &str,
) -> Result<(i32, String), String> {
    client
        .exec(name, &["sh", "-c", script], Duration::from_secs(120), what)
        .await
        .map(|o| (o.exit, String::from_utf8_lossy(&o.stdout).trim().to_owned()))
        .map_err(|e| e.to_string())
}

fn shell_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

fn check(name: String, passed: bool, expected: String, observed: String) -> CheckRecord {
    CheckRecord {
        name,
        passed,
        expected,
        observed,
        not_run: None,
    }
}

/// A check that depends on what a skipped `needs=nixos` block would have
/// built: recorded, neither passed nor failed.
fn not_run_check(name: String, expected: String) -> CheckRecord {
    CheckRecord {
        name,
        passed: false,
        expected,
        observed: "-".to_owned(),
        not_run: Some(NEEDS_NIXOS.to_owned()),
    }
}

/// Why a block or check was not run on an instance that is not NixOS.
pub const NEEDS_NIXOS: &str = "needs NixOS";

/// The read-only checks after the runbook. Pending jobs drain first, so
/// that the unit states are final; then every other check runs at once.
async fn checks(
    client: &Client,
    config: &Config,
    name: &str,
    run_id: &str,
    inputs: &Inputs,
    activation_skipped: bool,
) -> Vec<CheckRecord> {
    let mut out = vec![pending_jobs(client, config, name).await];
    if activation_skipped {
        let key = &config.secret.path;
        let key_check = file_check(
            client,
            name,
            &inputs.secret,
            key.clone(),
            config.secret.owner.clone(),
            config.secret.group.clone(),
            config.secret.mode.clone(),
        );
        let (failed, key_record) = tokio::join!(failed_units(client, name), key_check);
        out.extend([failed, key_record]);
        out.extend(
            config
                .checks
                .units
                .iter()
                .map(|u| not_run_check(format!("unit `{u}`"), "loaded and converged".to_owned())),
        );
        out.extend(
            config
                .checks
                .secrets
                .iter()
                .filter(|s| s.path != *key)
                .map(|s| {
                    not_run_check(
                        format!("secret `{}`", s.path),
                        format!("{} {} {}", s.owner, s.group, s.mode),
                    )
                }),
        );
        out.extend(inputs.sops.iter().map(|e| {
            not_run_check(
                format!("sops secret `{}`", e.check.name),
                format!(
                    "installed by activation, {} {} {}; its value decrypts with the pushed key",
                    e.check.owner, e.check.group, e.check.mode
                ),
            )
        }));
        out.extend(inputs.tls.iter().map(|(c, sealed)| {
            not_run_check(
                format!("tls `{}` at `{}`", c.server_name, c.address),
                format!("serves {}", sealed.sha256_fingerprint),
            )
        }));
        if let Some(toplevel) = &config.checks.current_system {
            out.push(not_run_check(
                "current-system".to_owned(),
                format!("`/run/current-system` → `{toplevel}`"),
            ));
        }
        return out;
    }
    // The pushed key itself must still be in place, unchanged in owner and
    // mode; listed in `checks.secrets` too, it is checked once (the
    // configuration makes sure both say the same).
    let mut files: Vec<(String, String, String, String)> = Vec::new();
    if !config
        .checks
        .secrets
        .iter()
        .any(|s| s.path == config.secret.path)
    {
        files.push((
            config.secret.path.clone(),
            config.secret.owner.clone(),
            config.secret.group.clone(),
            config.secret.mode.clone(),
        ));
    }
    files.extend(config.checks.secrets.iter().map(|s| {
        (
            s.path.clone(),
            s.owner.clone(),
            s.group.clone(),
            s.mode.clone(),
        )
    }));
    let mut concurrent: Vec<Pin<Box<dyn Future<Output = CheckRecord> + '_>>> =
        vec![Box::pin(failed_units(client, name))];
    for unit in &config.checks.units {
        concurrent.push(Box::pin(unit_check(client, name, unit)));
    }
    for (path, owner, group, mode) in files {
        concurrent.push(Box::pin(file_check(
            client,
            name,
            &inputs.secret,
            path,
            owner,
            group,
            mode,
        )));
    }
    for expected in &inputs.sops {
        concurrent.push(Box::pin(crate::sopsnix::check(client, name, expected)));
    }
    for (check, sealed) in &inputs.tls {
        concurrent.push(Box::pin(tls::check(client, name, check, sealed)));
    }
    if let Some(toplevel) = &config.checks.current_system {
        concurrent.push(Box::pin(current_system_check(
            client,
            name,
            toplevel,
            &config.evidence.dir,
            run_id,
        )));
    }
    out.extend(futures_util::future::join_all(concurrent).await);
    out
}

/// `/run/current-system` against the expected toplevel. On a mismatch the
/// instance's closure (`nix path-info --json --recursive`, read-only) is
/// saved next to the evidence, where `closure-diff` explains the drift.
async fn current_system_check(
    client: &Client,
    name: &str,
    toplevel: &str,
    evidence_dir: &Path,
    run_id: &str,
) -> CheckRecord {
    let check_name = "current-system".to_owned();
    let expected = format!("`/run/current-system` → `{toplevel}`");
    let observed = match sh(
        client,
        name,
        "readlink -f /run/current-system",
        "current system",
    )
    .await
    {
        Ok((0, path)) if !path.is_empty() => path,
        Ok((code, text)) => {
            return check(
                check_name,
                false,
                expected,
                format!("no /run/current-system (exit {code}: {text})"),
            )
        }
        Err(e) => return check(check_name, false, expected, format!("could not run: {e}")),
    };
    if observed == toplevel {
        return check(check_name, true, expected, format!("`{observed}`"));
    }
    let dump = client
        .exec(
            name,
            &[
                "nix",
                "--extra-experimental-features",
                "nix-command",
                "path-info",
                "--json",
                "--recursive",
                &observed,
            ],
            Duration::from_secs(300),
            "recording the closure",
        )
        .await;
    let explanation = match dump {
        Ok(out) if out.exit == 0 => {
            let file = evidence_dir.join(format!("{run_id}.current-system.json"));
            match crate::evidence::write_private(&file, &out.stdout) {
                Ok(()) => format!(
                    "its closure is saved in `{}`: `closure-diff {toplevel} {}` explains the drift",
                    file.display(),
                    file.display()
                ),
                Err(e) => format!("its closure could not be saved: {e}"),
            }
        }
        Ok(out) => format!(
            "its closure could not be recorded (nix exited {}: {})",
            out.exit,
            String::from_utf8_lossy(&out.stderr).trim()
        ),
        Err(e) => format!("its closure could not be recorded: {e}"),
    };
    check(
        check_name,
        false,
        expected,
        format!("`{observed}`; {explanation}"),
    )
}

async fn pending_jobs(client: &Client, config: &Config, name: &str) -> CheckRecord {
    let start = Instant::now();
    let settle = config.checks.settle_timeout.duration();
    let jobs = loop {
        match sh(
            client,
            name,
            "systemctl list-jobs --no-legend --plain",
            "pending jobs",
        )
        .await
        {
            Ok((_, text)) if text.is_empty() => break Ok(String::new()),
            Ok((_, text)) if start.elapsed() >= settle => break Ok(text),
            Ok(_) => tokio::time::sleep(Duration::from_millis(500)).await,
            Err(e) => break Err(e),
        }
    };
    match jobs {
        Ok(text) => check(
            "no-pending-jobs".to_owned(),
            text.is_empty(),
            "no jobs".to_owned(),
            if text.is_empty() {
                "no jobs".to_owned()
            } else {
                text
            },
        ),
        Err(e) => check(
            "no-pending-jobs".to_owned(),
            false,
            "no jobs".to_owned(),
            format!("could not run: {e}"),
        ),
    }
}

async fn failed_units(client: &Client, name: &str) -> CheckRecord {
    let check_name = "no-failed-units".to_owned();
    let expected = "none".to_owned();
    match sh(
        client,
        name,
        "systemctl list-units --state=failed --no-legend --plain",
        "failed units",
    )
    .await
    {
        Ok((0, text)) if text.is_empty() => check(check_name, true, expected, "none".to_owned()),
        Ok((0, text)) => check(check_name, false, expected, text.replace('\n', "; ")),
        Ok((code, text)) => check(check_name, false, expected, format!("exit {code}: {text}")),
        Err(e) => check(check_name, false, expected, format!("could not run: {e}")),
    }
}

/// The journal's last "start job finished" record of a unit in this boot
/// (message 39f53479…, `JOB_RESULT`): what is left of a oneshot that
/// systemd has unloaded after it exited.
const JOB_DONE_IN_JOURNAL: &str = "journalctl -b -u \"$1\" -o json --no-pager --output-fields=MESSAGE_ID,JOB_TYPE,JOB_RESULT | grep 39f53479d3a045ac8e11786248231fbf | grep '\"JOB_TYPE\":\"start\"' | tail -n 1";

async fn unit_check(client: &Client, name: &str, unit: &str) -> CheckRecord {
    let script = format!(
        "systemctl show \"$1\" -p Id,LoadState,ActiveState,SubState,Result,ExecMainStatus,ExecMainStartTimestampMonotonic,ExecMainExitTimestampMonotonic,Type,RemainAfterExit,InvocationID && echo '--- journal' && {JOB_DONE_IN_JOURNAL}"
    );
    let name_of = format!("unit `{unit}`");
    let out = client
        .exec(
            name,
            &["sh", "-c", &script, "sh", unit],
            Duration::from_secs(120),
            &name_of,
        )
        .await;
    match out {
        Ok(out) if out.exit == 0 => {
            let text = String::from_utf8_lossy(&out.stdout).into_owned();
            let (show, journal) = text.split_once("--- journal").unwrap_or((&text, ""));
            let props: BTreeMap<&str, &str> =
                show.lines().filter_map(|l| l.split_once('=')).collect();
            let state = UnitState::of(&props, journal.trim());
            check(
                name_of,
                state.converged(),
                unit_expectation(&props),
                state.to_string(),
            )
        }
        Ok(out) => check(
            name_of,
            false,
            "loaded and converged".to_owned(),
            format!(
                "exit {}: {}",
                out.exit,
                String::from_utf8_lossy(&out.stderr).trim()
            ),
        ),
        Err(e) => check(
            name_of,
            false,
            "loaded and converged".to_owned(),
            format!("could not run: {e}"),
        ),
    }
}

fn unit_expectation(p: &BTreeMap<&str, &str>) -> String {
    if p.get("Type").copied() == Some("oneshot") {
        "oneshot: ran and exited 0 (enabled or not)".to_owned()
    } else {
        "service: loaded, active, running".to_owned()
    }
}

/// Where a unit stands, in systemd's terms, after the runbook.
#[derive(Debug, Clone, PartialEq, Eq)]
enum UnitState {
    /// A oneshot that ran and exited 0 (`how`: from its state, or from the journal).
    RanAndExited0 { how: &'static str },
    /// A service that is up.
    Running,
    /// A unit whose run failed.
    Failed { detail: String },
    /// No run of it in this boot.
    NeverRan,
    /// Still starting (a oneshot's `ExecStart` has not exited yet).
    Activating,
    /// No such unit, or it does not load.
    NotLoaded { load_state: String },
    /// A service that ran and is no longer running.
    Stopped { detail: String },
}

impl UnitState {
    /// Reads `systemctl show` and, for a oneshot whose state systemd no
    /// longer holds, the journal's last start job record.
    fn of(p: &BTreeMap<&str, &str>, journal_job: &str) -> UnitState {
        let get = |k: &str| p.get(k).copied().unwrap_or_default();
        let exited_at = get("ExecMainExitTimestampMonotonic")
            .parse::<u64>()
            .unwrap_or(0);
        let detail = || {
            format!(
                "ActiveState={} Result={} ExecMainStatus={}",
                get("ActiveState"),
                get("Result"),
                get("ExecMainStatus")
            )
        };
        if get("LoadState") != "loaded" {
            return UnitState::NotLoaded {
                load_state: get("LoadState").to_owned(),
            };
        }
        match get("ActiveState") {
            "activating" | "reloading" => return UnitState::Activating,
            "failed" => return UnitState::Failed { detail: detail() },
            _ => {}
        }
        if get("Result") != "success" {
            return UnitState::Failed { detail: detail() };
        }
        let oneshot = get("Type") == "oneshot";
        if get("InvocationID").is_empty() {
            // Unloaded after it ran (a oneshot started, not enabled), or never run.
            return match journal_job_result(journal_job).as_deref() {
                Some("done") if oneshot => UnitState::RanAndExited0 {
                    how: "from the journal: systemd no longer holds its state",
                },
                Some("done") => UnitState::Stopped {
                    detail: "started in this boot, no longer running".to_owned(),
                },
                Some(other) => UnitState::Failed {
                    detail: format!("the journal's start job: JOB_RESULT={other}"),
                },
                None => UnitState::NeverRan,
            };
        }
        if oneshot {
            let remain = get("RemainAfterExit") == "yes";
            let want = if remain { "active" } else { "inactive" };
            if exited_at > 0 && get("ExecMainStatus") == "0" && get("ActiveState") == want {
                UnitState::RanAndExited0 {
                    how: "from its state",
                }
            } else {
                UnitState::Failed { detail: detail() }
            }
        } else if get("ActiveState") == "active" && get("SubState") == "running" {
            UnitState::Running
        } else {
            UnitState::Stopped {
                detail: format!(
                    "ActiveState={} SubState={}",
                    get("ActiveState"),
                    get("SubState")
                ),
            }
        }
    }

    fn converged(&self) -> bool {
        matches!(self, UnitState::RanAndExited0 { .. } | UnitState::Running)
    }
}

impl std::fmt::Display for UnitState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            UnitState::RanAndExited0 { how } => write!(f, "ran and exited 0 ({how})"),
            UnitState::Running => write!(f, "active, running"),
            UnitState::Failed { detail } => write!(f, "failed: {detail}"),
            UnitState::NeverRan => write!(f, "never ran in this boot"),
            UnitState::Activating => write!(f, "still activating"),
            UnitState::NotLoaded { load_state } => write!(f, "not loaded (LoadState={load_state})"),
            UnitState::Stopped { detail } => write!(f, "not running: {detail}"),
        }
    }
}

/// `JOB_RESULT` of a journal JSON record, if the line is one.
fn journal_job_result(line: &str) -> Option<String> {
    let record: serde_json::Value = serde_json::from_str(line).ok()?;
    record["JOB_RESULT"].as_str().map(str::to_owned)
}

/// Owner, group, mode and size of a secret file, and that `nobody` cannot
/// read it; the content is never read. An owner or group written `#<id>`
/// is compared numerically.
async fn file_check(
    client: &Client,
    name: &str,
    secret: &Secret,
    path: String,
    owner: String,
    group: String,
    mode: String,
) -> CheckRecord {
    let script = format!(
        "stat -L -c '%U %G %u %g %a %s' {p}; if runuser -u nobody -- test -r {p}; then echo nobody-can-read; else echo nobody-cannot-read; fi",
        p = shell_quote(&path)
    );
    let want_mode = parse_mode(&mode)
        .map(|m| format!("{m:o}"))
        .unwrap_or(mode.clone());
    let expected = format!("{owner}:{group} {want_mode}, size > 0, not readable by nobody");
    let name_of = format!("secret `{path}`");
    match sh(client, name, &script, &name_of).await {
        Ok((0, text)) => {
            let mut lines = text.lines();
            let stat_line = lines.next().unwrap_or_default();
            let nobody = lines.next().unwrap_or_default();
            let (passed, observed) = stat_matches(stat_line, &owner, &group, &want_mode);
            check(
                name_of,
                passed && nobody == "nobody-cannot-read",
                expected,
                secret.redact(&format!("{observed}, {nobody}")),
            )
        }
        Ok((code, text)) => check(
            name_of,
            false,
            expected,
            format!("exit {code}: {}", secret.redact(&text)),
        ),
        Err(e) => check(name_of, false, expected, format!("could not run: {e}")),
    }
}

/// Compares `stat -c '%U %G %u %g %a %s'` with an owner and group as
/// written (a name, or `#<id>`) and an octal mode; also the size is not 0.
pub(crate) fn stat_matches(
    stat_line: &str,
    owner: &str,
    group: &str,
    mode: &str,
) -> (bool, String) {
    let fields: Vec<&str> = stat_line.split_whitespace().collect();
    let [user, grp, uid, gid, got_mode, size] = fields[..] else {
        return (false, stat_line.to_owned());
    };
    let is = |written: &str, name: &str, id: &str| match written.strip_prefix('#') {
        Some(want) => want == id,
        None => written == name,
    };
    let passed = is(owner, user, uid)
        && is(group, grp, gid)
        && got_mode == mode
        && size.parse::<u64>().is_ok_and(|s| s > 0);
    (
        passed,
        format!("{user}:{grp} (#{uid}:#{gid}) {got_mode}, {size} bytes"),
    )
}

/// `vm-prove sweep`: deletes instances left tagged by a run that is gone.
pub async fn sweep(config: &Config, json_out: bool) -> anyhow::Result<ExitStatus> {
    let client = Client::connect(&config.incus, crate::incus::Allowed::from_config(config)).await?;
    let instances = client.list_instances().await?;
    let me = hostname();
    let now_t = time::OffsetDateTime::now_utc();
    let max_age =
        time::Duration::seconds(i64::try_from(config.sweep.max_age.0).unwrap_or(i64::MAX / 120));
    let mut results = Vec::new();
    let mut errors = 0;
    for instance in instances {
        let Some(run) = instance.config.get(TAG_RUN_ID) else {
            continue; // not ours: never touched
        };
        let host = instance
            .config
            .get(TAG_HOST)
            .map(String::as_str)
            .unwrap_or_default();
        let pid = instance
            .config
            .get(TAG_PID)
            .and_then(|p| p.parse::<u32>().ok());
        let created = instance.config.get(TAG_CREATED).and_then(|c| {
            time::OffsetDateTime::parse(c, &time::format_description::well_known::Rfc3339).ok()
        });
        let old = created.is_none_or(|c| now_t - c > max_age);
        let reason = if host == me && pid.is_none_or(|p| !run_alive(p)) {
            Some(format!(
                "its run (pid {}) on this host is gone",
                pid.map_or("?".to_owned(), |p| p.to_string())
            ))
        } else if old {
            Some(format!("older than {}", config.sweep.max_age))
        } else {
            None
        };
        let (action, error) = match &reason {
            None => ("kept: its run is still alive".to_owned(), None),
            Some(_) if !client.may_change_instance(&instance.name) => (
                "kept: its name has no prefix in `guardrails.allowed_name_prefixes`".to_owned(),
                None,
            ),
            Some(_) => match client.delete_instance(&instance.name).await {
                Ok(_) => ("deleted".to_owned(), None),
                Err(e) => {
                    errors += 1;
                    ("delete failed".to_owned(), Some(e.to_string()))
                }
            },
        };
        tracing::info!("sweep: `{}` (run {run}): {action}", instance.name);
        results.push(json!({
            "name": instance.name,
            "run_id": run,
            "reason": reason,
            "action": action,
            "error": error,
        }));
    }
    if json_out {
        fromgit_cli::write_json(
            &json!({"schema_version": 1, "project": client.project(), "instances": results}),
        )?;
    } else {
        let mut text = format!(
            "vm-prove sweep in project `{}`: {} tagged instance(s)\n",
            client.project(),
            results.len()
        );
        for r in &results {
            let _ = writeln!(
                text,
                "  {}: {}{}",
                r["name"].as_str().unwrap_or_default(),
                r["action"].as_str().unwrap_or_default(),
                r["reason"]
                    .as_str()
                    .map(|s| format!(" ({s})"))
                    .unwrap_or_default()
            );
        }
        fromgit_cli::write_stdout(text.as_bytes())?;
    }
    Ok(if errors == 0 {
        ExitStatus::Success
    } else {
        ExitStatus::Error
    })
}

/// Whether a vm-prove process with this pid is alive on this host.
fn run_alive(pid: u32) -> bool {
    fs_err::read(format!("/proc/{pid}/cmdline"))
        .is_ok_and(|c| String::from_utf8_lossy(&c).contains("vm-prove"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn age_identities() {
        let key = "AGE-SECRET-KEY-1QQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQ";
        assert!(is_age_identity(key));
        assert!(!is_age_identity(&key.to_ascii_lowercase()));
        assert!(!is_age_identity("AGE-SECRET-KEY-1BBB"));
        assert!(!is_age_identity("ssh-ed25519 AAAA"));
    }

    #[test]
    fn secrets_are_redacted_and_debug_hides_them() {
        let dir = tempfile::tempdir().unwrap();
        let key = "AGE-SECRET-KEY-1QQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQ";
        let file = dir.path().join("k.txt");
        fs_err::write(
            &file,
            format!("# created: now\n# public key: age1x\n{key}\n"),
        )
        .unwrap();
        let secret = Secret::load(&file).unwrap();
        assert_eq!(
            secret.redact(&format!("x {key} y")),
            "x [redacted secret] y"
        );
        assert!(!format!("{secret:?}").contains("AGE"));
        fs_err::write(&file, "not a key\n").unwrap();
        assert!(Secret::load(&file).is_err());
        assert!(Secret::load(&dir.path().join("missing")).is_err());
    }

    #[test]
    fn live_output_splits_lines_redacts_and_keeps_the_tail() {
        let dir = tempfile::tempdir().unwrap();
        let key = "AGE-SECRET-KEY-1QQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQ";
        let file = dir.path().join("k.txt");
        fs_err::write(&file, format!("{key}\n")).unwrap();
        let secret = Secret::load(&file).unwrap();
        let mut live = LiveOutput {
            block: "b",
            secret: &secret,
            partial: [Vec::new(), Vec::new()],
            tail: std::collections::VecDeque::new(),
            keep: 2,
        };
        live.push(Stream::Stdout, b"one\ntw");
        live.push(Stream::Stderr, b"warn: ");
        live.push(Stream::Stdout, format!("o {key}\nthree").as_bytes());
        live.push(Stream::Stderr, b"late\n");
        // Chunks of one stream join across pushes; the streams never mix.
        assert_eq!(live.tail, ["two [redacted secret]", "warn: late"]);
        assert_eq!(live.finish(), "warn: late\nthree");
    }

    fn props(pairs: &[(&'static str, &'static str)]) -> BTreeMap<&'static str, &'static str> {
        pairs.iter().copied().collect()
    }

    // Recorded `systemctl show` answers of systemd 252 (Debian 12) for
    // oneshots in each state, and a journal start-job record.
    const DROPPED: &[(&str, &str)] = &[
        ("Type", "oneshot"),
        ("RemainAfterExit", "no"),
        ("Result", "success"),
        ("ExecMainStartTimestampMonotonic", "0"),
        ("ExecMainExitTimestampMonotonic", "0"),
        ("ExecMainStatus", "0"),
        ("LoadState", "loaded"),
        ("ActiveState", "inactive"),
        ("SubState", "dead"),
        ("InvocationID", ""),
    ];
    const JOB_DONE: &str = r#"{"MESSAGE_ID":"39f53479d3a045ac8e11786248231fbf","JOB_TYPE":"start","JOB_RESULT":"done"}"#;

    #[test]
    fn oneshot_states_match_systemd() {
        let dropped = props(DROPPED);
        assert_eq!(
            UnitState::of(&dropped, JOB_DONE),
            UnitState::RanAndExited0 {
                how: "from the journal: systemd no longer holds its state"
            }
        );
        assert_eq!(UnitState::of(&dropped, ""), UnitState::NeverRan);
        assert!(matches!(
            UnitState::of(&dropped, &JOB_DONE.replace("done", "failed")),
            UnitState::Failed { .. }
        ));
        let mut failed = dropped.clone();
        failed.extend([
            ("Result", "exit-code"),
            ("ExecMainStatus", "1"),
            ("ActiveState", "failed"),
            ("ExecMainExitTimestampMonotonic", "853409157"),
            ("InvocationID", "86a1870ac3f14a67ad81b66723dbe5f1"),
        ]);
        let state = UnitState::of(&failed, "");
        assert!(!state.converged());
        assert_eq!(
            state.to_string(),
            "failed: ActiveState=failed Result=exit-code ExecMainStatus=1"
        );
        let mut activating = dropped.clone();
        activating.extend([
            ("ActiveState", "activating"),
            ("SubState", "start"),
            ("InvocationID", "2b8bc7972f554b1097d85b20ed301387"),
        ]);
        assert_eq!(UnitState::of(&activating, ""), UnitState::Activating);
        let mut enabled = dropped.clone();
        enabled.extend([
            ("ExecMainExitTimestampMonotonic", "123"),
            ("InvocationID", "106fbf3d27794c9c84612c0410c4e171"),
        ]);
        assert!(UnitState::of(&enabled, "").converged());
        enabled.insert("RemainAfterExit", "yes");
        assert!(!UnitState::of(&enabled, "").converged());
        enabled.insert("ActiveState", "active");
        assert!(UnitState::of(&enabled, "").converged());
        let mut missing = dropped.clone();
        missing.insert("LoadState", "not-found");
        assert_eq!(
            UnitState::of(&missing, JOB_DONE).to_string(),
            "not loaded (LoadState=not-found)"
        );
    }

    #[test]
    fn owners_by_name_or_id() {
        let line = "root nogroup 0 65534 400 12";
        assert!(stat_matches(line, "root", "#65534", "400").0);
        assert!(stat_matches(line, "#0", "nogroup", "400").0);
        assert!(!stat_matches(line, "#0", "root", "400").0);
        assert!(!stat_matches(line, "root", "nogroup", "600").0);
        assert!(!stat_matches("root root 0 0 400 0", "root", "root", "400").0);
        assert_eq!(
            stat_matches(line, "root", "nogroup", "400").1,
            "root:nogroup (#0:#65534) 400, 12 bytes"
        );
    }

    #[test]
    fn the_level_says_what_can_be_proven() {
        use crate::config::InstanceType;
        assert_eq!(
            level("NixOS 25.11 (Xantusia)", true, InstanceType::VirtualMachine),
            "a NixOS rebuild on a NixOS 25.11 (Xantusia) virtual machine"
        );
        let debian = level(
            "Debian GNU/Linux 12 (bookworm)",
            false,
            InstanceType::Container,
        );
        assert!(
            debian
                .starts_with("mechanics on a Debian GNU/Linux 12 (bookworm) container (not NixOS"),
            "{debian}"
        );
    }

    #[test]
    fn quoting() {
        assert_eq!(shell_quote("a'b"), r"'a'\''b'");
    }
}
