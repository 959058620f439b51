//! The configuration's allow-lists, enforced by the client itself: a request
//! that would change anything outside the allowed projects and instance names
//! is refused before it is sent, whatever the certificate permits.

use serde_json::Value;

/// What the configuration allows to be changed, enforced by the client on
/// every request that changes anything, whatever the certificate permits.
#[derive(Debug, Clone, Default)]
pub struct Allowed {
    pub projects: Vec<String>,
    /// Instances named `<prefix>-…` may be created, changed and deleted.
    pub name_prefixes: Vec<String>,
    /// Instances allowed by exact name (the one configured resize target).
    pub instances: Vec<String>,
}

impl Allowed {
    pub fn from_config(config: &crate::config::Config) -> Allowed {
        Allowed {
            projects: config.guardrails.allowed_projects.clone(),
            name_prefixes: config.guardrails.allowed_name_prefixes.clone(),
            instances: config
                .guardrails
                .resize
                .iter()
                .map(|r| r.instance.clone())
                .collect(),
        }
    }

    pub(super) fn instance(&self, name: &str) -> bool {
        self.instances.iter().any(|i| i == name)
            || self.name_prefixes.iter().any(|p| {
                name.strip_prefix(p.as_str())
                    .is_some_and(|rest| rest.starts_with('-') && rest.len() > 1)
            })
    }

    /// Whether a request that changes something may be sent: its project
    /// is allowed, and it targets an allowed instance (or creates one).
    pub fn change(
        &self,
        project: &str,
        path: &str,
        body: Option<&Value>,
    ) -> std::result::Result<(), String> {
        if !self.projects.iter().any(|p| p == project) {
            return Err(format!(
                "project `{project}` is not in `guardrails.allowed_projects`"
            ));
        }
        let path = path.split('?').next().unwrap_or(path);
        if path == "/1.0/instances" {
            let name = body.and_then(|b| b["name"].as_str()).unwrap_or_default();
            return if self.instance(name) {
                Ok(())
            } else {
                Err(format!(
                    "instance name `{name}` has no prefix in `guardrails.allowed_name_prefixes`"
                ))
            };
        }
        if let Some(rest) = path.strip_prefix("/1.0/instances/") {
            let name = rest.split('/').next().unwrap_or_default();
            return if self.instance(name) {
                Ok(())
            } else {
                Err(format!(
                    "instance `{name}` has no prefix in `guardrails.allowed_name_prefixes` and is not `guardrails.resize.instance`"
                ))
            };
        }
        if path.starts_with("/1.0/operations/") {
            return Ok(());
        }
        Err(format!("`{path}` is not an instance"))
    }
}
