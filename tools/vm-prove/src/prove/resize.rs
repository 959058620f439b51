//! The configured resize that makes room before a run, on the one instance
//! vm-prove may change without having created it.

use std::time::{Duration, Instant};

use anyhow::Context as _;

use super::wait::wait_running;
use crate::evidence::ResizeRecord;
use crate::guard;
use crate::incus::Client;

/// The configured resize: stop, set `limits.memory`, start, wait until it
/// runs again (no hotplug), and read the value back.
pub(super) async fn resize(
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
