//! Waiting for an instance to come up (running with processes, then systemd
//! settled), for a new instance and for a resized one alike.

use std::time::{Duration, Instant};

use crate::guard;
use crate::incus::{Client, IncusError};

/// Waits until the instance runs with processes (a VM: its agent answers).
pub(super) async fn wait_running(
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

pub(super) async fn wait_ready(
    client: &Client,
    name: &str,
    timeout: Duration,
) -> anyhow::Result<String> {
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
