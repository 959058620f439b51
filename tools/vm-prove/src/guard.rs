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
    /// The resize a run will do first, when one is configured and allowed.
    pub resize: Option<ResizePlan>,
}

/// A resize, decided before anything changes.
#[derive(Debug, Clone, serde::Serialize)]
pub struct ResizePlan {
    pub instance: String,
    /// `limits.memory` before (unset when `None`).
    pub before: Option<String>,
    pub after: String,
    /// Running instances are stopped, changed and started again.
    pub running: bool,
    /// How long its clean shutdown may take; it is never forced.
    #[serde(skip)]
    pub stop_timeout: std::time::Duration,
}

impl std::fmt::Display for ResizePlan {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "`{}` limits.memory {} → {}{}",
            self.instance,
            self.before.as_deref().unwrap_or("(unset)"),
            self.after,
            if self.running {
                " (stop cleanly, set, start, wait)"
            } else {
                " (stopped: set only)"
            }
        )
    }
}

/// Checks the configured resize against the instances of the project: the
/// target must exist and must not be one of vm-prove's own throwaways.
pub fn resize_guardrail(
    config: &Config,
    instances: &[Instance],
) -> Option<(Guardrail, Option<ResizePlan>)> {
    let resize = config.guardrails.resize.as_ref()?;
    let Some(target) = instances.iter().find(|i| i.name == resize.instance) else {
        return Some((
            refused(
                "resize",
                format!(
                    "instance `{}` does not exist in the project",
                    resize.instance
                ),
            ),
            None,
        ));
    };
    if target.config.contains_key(TAG_RUN_ID) {
        return Some((
            refused(
                "resize",
                format!(
                    "instance `{}` is a vm-prove throwaway, not a host to make room on",
                    resize.instance
                ),
            ),
            None,
        ));
    }
    let plan = ResizePlan {
        instance: target.name.clone(),
        before: target.config.get("limits.memory").cloned(),
        after: resize.memory.clone(),
        running: target.status_code == RUNNING,
        stop_timeout: resize.stop_timeout.duration(),
    };
    let guardrail = Guardrail {
        name: "resize".to_owned(),
        passed: true,
        detail: plan.to_string(),
        numbers: json!({"instance": plan.instance, "before": plan.before, "after": plan.after, "running": plan.running}),
    };
    Some((guardrail, Some(plan)))
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
    let resized = config.guardrails.resize.as_ref();
    for instance in instances.iter().filter(|i| i.status_code == RUNNING) {
        // The resized instance counts with the limit it will have.
        let limit = match resized {
            Some(r) if r.instance == instance.name => Some(&r.memory),
            _ => instance.expanded_config.get("limits.memory"),
        };
        match limit {
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

/// The configuration's own allow-lists: the project and the instance name
/// prefix must be named there, whatever the certificate would permit.
pub fn allow_list_guardrail(config: &Config) -> Guardrail {
    let g = &config.guardrails;
    let project = &config.incus.project;
    let prefix = &config.instance.name_prefix;
    let (passed, detail) = if !g.allowed_projects.contains(project) {
        (
            false,
            format!(
                "project `{project}` (`incus.project`) is not in `guardrails.allowed_projects` {:?}",
                g.allowed_projects
            ),
        )
    } else if !g.allowed_name_prefixes.contains(prefix) {
        (
            false,
            format!(
                "name prefix `{prefix}` (`instance.name_prefix`) is not in `guardrails.allowed_name_prefixes` {:?}",
                g.allowed_name_prefixes
            ),
        )
    } else {
        (
            true,
            format!(
                "project `{project}` and name prefix `{prefix}` are allowed; the client refuses any change elsewhere"
            ),
        )
    };
    Guardrail {
        name: "allow-list".to_owned(),
        passed,
        detail,
        numbers: json!({"allowed_projects": g.allowed_projects, "allowed_name_prefixes": g.allowed_name_prefixes}),
    }
}

/// Evaluates every guardrail, the configuration's allow-lists first (a
/// refusal there stops before the project is even looked at). Transport
/// errors are errors, not refusals.
pub async fn evaluate(client: &Client, config: &Config) -> Result<Evaluation, IncusError> {
    let server = &client.server;
    let allow_list = allow_list_guardrail(config);
    if !allow_list.passed {
        return Ok(Evaluation {
            guardrails: vec![
                allow_list,
                refused("project", "not evaluated: not allowed".to_owned()),
            ],
            image_fingerprint: String::new(),
            resize: None,
        });
    }
    let mut guardrails = vec![allow_list];
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
                resize: None,
            });
        }
        Err(e) => return Err(e),
    }
    let instances = client.list_instances().await?;
    let mut resize = None;
    if let Some((guardrail, plan)) = resize_guardrail(config, &instances) {
        guardrails.push(guardrail);
        resize = plan;
    }
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
        resize,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    fn config(budget: &str, memory: &str) -> Config {
        let text = format!(
            "[incus]\nurl = \"https://127.0.0.1:8443\"\nproject = \"p\"\nclient_cert = \"c\"\nclient_key = \"k\"\nserver_cert = \"s\"\n\
             [instance]\nimage = \"i\"\nmemory = \"{memory}\"\n[guardrails]\nallowed_projects = [\"p\"]\nallowed_name_prefixes = [\"vmprove\"]\nmemory_budget = \"{budget}\"\n\
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
    fn a_resize_counts_with_its_new_limit_and_only_targets_hosts() {
        let mut c = config("3GiB", "1GiB");
        c.guardrails.resize = Some(crate::config::Resize {
            instance: "host".to_owned(),
            memory: "2GiB".to_owned(),
            stop_timeout: crate::config::Seconds(120),
        });
        // Unset before: the resize gives it a limit, so it can be budgeted.
        let host = instance("host", RUNNING, None);
        let g = memory_guardrail(&c, std::slice::from_ref(&host));
        assert!(g.passed, "{}", g.detail);
        assert_eq!(g.numbers["total_bytes"], 3_u64 << 30);
        let (g, plan) = resize_guardrail(&c, &[host]).unwrap();
        assert!(g.passed);
        let plan = plan.unwrap();
        assert_eq!(
            (plan.before, plan.after.as_str(), plan.running),
            (None, "2GiB", true)
        );

        let (g, plan) = resize_guardrail(&c, &[instance("other", RUNNING, None)]).unwrap();
        assert!(!g.passed && plan.is_none());
        assert!(g.detail.contains("does not exist"), "{}", g.detail);
        let mut throwaway = instance("host", RUNNING, Some("1GiB"));
        throwaway
            .config
            .insert(TAG_RUN_ID.to_owned(), "r".to_owned());
        let (g, _) = resize_guardrail(&c, &[throwaway]).unwrap();
        assert!(!g.passed);
        assert!(resize_guardrail(&config("3GiB", "1GiB"), &[]).is_none());
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
