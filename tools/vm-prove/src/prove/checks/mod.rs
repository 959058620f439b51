//! The read-only checks after the runbook: which ones run, in which order,
//! and which are recorded as not run because a `needs=nixos` block was skipped.

pub(crate) mod files;
mod probe;
pub(crate) mod sops_nix;
mod system;
mod units;

use std::future::Future;
use std::pin::Pin;

use super::inputs::Inputs;
use super::os::NEEDS_NIXOS;
use crate::config::Config;
use crate::evidence::CheckRecord;
use crate::incus::Client;
use crate::tls;
use files::file_check;
use system::{current_system_check, failed_units, pending_jobs};
use units::unit_check;

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

/// The read-only checks after the runbook. Pending jobs drain first, so
/// that the unit states are final; then every other check runs at once.
pub(super) async fn checks(
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
        concurrent.push(Box::pin(sops_nix::check(client, name, expected)));
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
