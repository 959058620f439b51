//! `vm-prove sweep`: deletes instances left tagged by a run that is gone, and
//! only those, so a crashed run does not leave its instance behind for good.

use std::fmt::Write as _;

use fromgit_cli::ExitStatus;
use serde_json::json;

use super::identity::hostname;
use crate::config::Config;
use crate::guard::{TAG_CREATED, TAG_HOST, TAG_PID, TAG_RUN_ID};
use crate::incus::Client;

/// `vm-prove sweep`: deletes instances left tagged by a run that is gone.
pub async fn sweep(config: &Config, printer: &fromgit_cli::Printer) -> anyhow::Result<ExitStatus> {
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
    if printer.json() {
        printer.print_json(
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
        printer.print_text(&text)?;
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
