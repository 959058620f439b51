//! Deleting the run's instance, and only if it carries this run's id; retried,
//! because a create may still be in flight after an interruption.

use std::time::Duration;

use crate::evidence::Teardown;
use crate::guard::TAG_RUN_ID;
use crate::incus::Client;

/// Deletes the instance if it is ours (tagged with this run id).
pub(super) async fn teardown(client: &Client, name: &str, run_id: &str) -> Teardown {
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
