//! Guardrails, evaluated before anything changes. Each one is recorded with
//! the numbers it was decided on, so a refusal explains itself: the project
//! must be reachable with our certificate, the image must exist, and the
//! memory of the running instances plus the new one must fit the guideline.
//! A running instance without `limits.memory` is a refusal, not a guess.

use serde_json::json;

use crate::config::{human_size, parse_size, Config};
use crate::evidence::Guardrail;
use crate::incus::{Client, IncusError, Instance};

/// Tag keys written on every instance vm-prove creates.
pub const TAG_RUN_ID: &str = "user.vm-prove.run-id";
pub const TAG_CREATED: &str = "user.vm-prove.created";
pub const TAG_VERSION: &str = "user.vm-prove.tool-version";
pub const TAG_HOST: &str = "user.vm-prove.host";
pub const TAG_PID: &str = "user.vm-prove.pid";

/// Incus' "Running" status code.
pub const RUNNING: u16 = 103;

/// The outcome of all guardrails.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Evaluation {
    pub guardrails: Vec<Guardrail>,
    pub image_fingerprint: String,
}

impl Evaluation {
    pub fn passed(&self) -> bool {
        self.guardrails.iter().all(|g| g.passed)
    }
}

fn refused(name: &str, detail: String) -> Guardrail {
    Guardrail {
        name: name.to_owned(),
        passed: false,
        detail,
        numbers: serde_json::Value::Null,
    }
}

/// Sums the memory limits of running instances against the budget.
pub fn memory_guardrail(config: &Config, instances: &[Instance]) -> Guardrail {
    let (Ok(budget), Ok(new)) = (
        parse_size(&config.guardrails.memory_budget),
        parse_size(&config.instance.memory),
    ) else {
        return refused("memory", "the configured sizes do not parse".to_owned());
    };
    let mut used: u64 = 0;
    let mut running = Vec::new();
    let mut problems = Vec::new();
    for instance in instances.iter().filter(|i| i.status_code == RUNNING) {
        match instance.expanded_config.get("limits.memory") {
            None => problems.push(format!(
                "running instance `{}` has no `limits.memory`",
                instance.name
            )),
            Some(limit) => match parse_size(limit) {
                Ok(bytes) => {
                    used = used.saturating_add(bytes);
                    running.push(
                        json!({"name": instance.name, "limits.memory": limit, "bytes": bytes}),
                    );
                }
                Err(e) => problems.push(format!(
                    "running instance `{}` has `limits.memory` {e}",
                    instance.name
                )),
            },
        }
    }
    let total = used.saturating_add(new);
    let numbers = json!({
        "budget_bytes": budget,
        "running_bytes": used,
        "new_instance_bytes": new,
        "total_bytes": total,
        "running": running,
    });
    let (passed, detail) = if !problems.is_empty() {
        (
            false,
            format!(
                "{} (an unset limit cannot be budgeted)",
                problems.join("; ")
            ),
        )
    } else if total > budget {
        (
            false,
            format!(
                "running {} + new {} = {} exceeds the budget {}",
                human_size(used),
                human_size(new),
                human_size(total),
                human_size(budget)
            ),
        )
    } else {
        (
            true,
            format!(
                "running {} + new {} = {} within the budget {}",
                human_size(used),
                human_size(new),
                human_size(total),
                human_size(budget)
            ),
        )
    };
    Guardrail {
        name: "memory".to_owned(),
        passed,
        detail,
        numbers,
    }
}

/// Evaluates every server-side guardrail. Transport errors are errors, not refusals.
pub async fn evaluate(client: &Client, config: &Config) -> Result<Evaluation, IncusError> {
    let mut guardrails = Vec::new();
    let server = &client.server;
    guardrails.push(Guardrail {
        name: "server".to_owned(),
        passed: true,
        detail: format!(
            "{:?} {} ({} API extensions), certificate trusted, server certificate pinned",
            server.kind, server.version, server.extension_count
        ),
        numbers: serde_json::Value::Null,
    });
    match client.check_project().await {
        Ok(_) => guardrails.push(Guardrail {
            name: "project".to_owned(),
            passed: true,
            detail: format!(
                "only project `{}` is touched; every request carries it",
                client.project()
            ),
            numbers: serde_json::Value::Null,
        }),
        Err(IncusError::Api { code, message, .. }) => {
            guardrails.push(refused(
                "project",
                format!(
                    "project `{}` is not usable with this certificate ({code}: {message})",
                    client.project()
                ),
            ));
            guardrails.push(refused(
                "memory",
                "not evaluated: the project is not usable".to_owned(),
            ));
            return Ok(Evaluation {
                guardrails,
                image_fingerprint: String::new(),
            });
        }
        Err(e) => return Err(e),
    }
    let instances = client.list_instances().await?;
    guardrails.push(memory_guardrail(config, &instances));
    let mut image_fingerprint = String::new();
    match client.resolve_image(&config.instance.image).await {
        Ok(fp) => {
            image_fingerprint.clone_from(&fp);
            guardrails.push(Guardrail {
                name: "image".to_owned(),
                passed: true,
                detail: format!("`{}` is `{fp}`", config.instance.image),
                numbers: serde_json::Value::Null,
            });
        }
        Err(IncusError::Api { code, message, .. }) => guardrails.push(refused(
            "image",
            format!(
                "image `{}` is not available to the project ({code}: {message})",
                config.instance.image
            ),
        )),
        Err(e) => return Err(e),
    }
    if config.instance.kind == crate::config::InstanceType::VirtualMachine
        && !server.has("instances")
    {
        guardrails.push(refused(
            "type",
            "the server does not report the `instances` extension needed for VMs".to_owned(),
        ));
    }
    Ok(Evaluation {
        guardrails,
        image_fingerprint,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    fn config(budget: &str, memory: &str) -> Config {
        let text = format!(
            "[incus]\nurl = \"https://127.0.0.1:8443\"\nproject = \"p\"\nclient_cert = \"c\"\nclient_key = \"k\"\nserver_cert = \"s\"\n\
             [instance]\nimage = \"i\"\nmemory = \"{memory}\"\n[guardrails]\nmemory_budget = \"{budget}\"\n\
             [secret]\nsource = \"b\"\n[runbook]\npath = \"r\"\n"
        );
        toml::from_str(&text).unwrap()
    }

    fn instance(name: &str, status: u16, limit: Option<&str>) -> Instance {
        let mut expanded = BTreeMap::new();
        if let Some(l) = limit {
            expanded.insert("limits.memory".to_owned(), l.to_owned());
        }
        Instance {
            name: name.to_owned(),
            status_code: status,
            status: String::new(),
            project: "p".to_owned(),
            config: BTreeMap::new(),
            expanded_config: expanded,
        }
    }

    #[test]
    fn within_and_over_budget() {
        let running = [
            instance("a", RUNNING, Some("1GiB")),
            instance("stopped", 102, None),
        ];
        let g = memory_guardrail(&config("3GiB", "2GiB"), &running);
        assert!(g.passed, "{}", g.detail);
        assert_eq!(g.numbers["total_bytes"], 3_u64 << 30);
        let g = memory_guardrail(&config("2GiB", "2GiB"), &running);
        assert!(!g.passed);
        assert!(g.detail.contains("exceeds the budget 2GiB"), "{}", g.detail);
    }

    #[test]
    fn an_unset_or_relative_limit_is_a_refusal() {
        let g = memory_guardrail(&config("64GiB", "1GiB"), &[instance("x", RUNNING, None)]);
        assert!(!g.passed);
        assert!(
            g.detail.contains("`x` has no `limits.memory`"),
            "{}",
            g.detail
        );
        let g = memory_guardrail(
            &config("64GiB", "1GiB"),
            &[instance("y", RUNNING, Some("50%"))],
        );
        assert!(!g.passed);
        assert!(g.detail.contains("percentage"), "{}", g.detail);
    }
}
