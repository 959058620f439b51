//! The client bound to one server and one project: every URL carries the
//! project, every change is checked against the allow-lists, and operations
//! are waited on until their envelope says how they ended.

use std::sync::Arc;
use std::time::{Duration, Instant};

use reqwest::{Method, Url};
use serde_json::Value;

use super::allowed::Allowed;
use super::api::{
    parse_envelope, parse_instances, parse_operation_state, parse_server_info, Envelope, Instance,
    InstanceState, OperationState, ServerInfo, ServerKind,
};
use super::error::{transport, IncusError, Result};
use super::pinning::tls_config;
use crate::config::IncusConfig;

/// The project a URL names in its query, if any.
fn url_project(url: &Url) -> Option<String> {
    url.query_pairs()
        .find(|(k, _)| k == "project")
        .map(|(_, v)| v.into_owned())
}

/// A client bound to one server and one project.
#[derive(Debug, Clone)]
pub struct Client {
    pub(super) http: reqwest::Client,
    base: Url,
    project: String,
    pub(super) timeout: Duration,
    pub server: ServerInfo,
    allowed: Allowed,
    /// What every exec was for, in the order they started: the evidence
    /// shows that nothing ran in the instance beyond the runbook and checks.
    executed: Arc<std::sync::Mutex<Vec<String>>>,
}

impl Client {
    /// Connects, checks that the certificate is trusted and detects the server.
    pub async fn connect(config: &IncusConfig, allowed: Allowed) -> Result<Client> {
        let tls = tls_config(config)?;
        let mut builder = reqwest::Client::builder()
            .use_preconfigured_tls(tls)
            .no_proxy()
            .connect_timeout(Duration::from_secs(config.request_timeout.0.max(1)));
        if let Some(proxy) = &config.proxy {
            let proxy = reqwest::Proxy::all(proxy).map_err(|source| IncusError::Transport {
                what: format!("proxy `{proxy}`"),
                source,
            })?;
            builder = builder.proxy(proxy);
        }
        let http = builder.build().map_err(|source| IncusError::Transport {
            what: "building the HTTP client".to_owned(),
            source,
        })?;
        let base = Url::parse(&config.url).map_err(|e| IncusError::Protocol {
            what: "`incus.url`".to_owned(),
            message: e.to_string(),
        })?;
        let mut client = Client {
            http,
            base,
            project: config.project.clone(),
            timeout: Duration::from_secs(config.request_timeout.0.max(1)),
            server: ServerInfo {
                kind: ServerKind::Incus,
                version: String::new(),
                auth: String::new(),
                extension_count: 0,
                extensions: Vec::new(),
            },
            allowed,
            executed: Arc::default(),
        };
        let meta = client.sync(Method::GET, "/1.0", None, "GET /1.0").await?;
        client.server = parse_server_info(&meta)?;
        Ok(client)
    }

    pub fn project(&self) -> &str {
        &self.project
    }

    /// What each exec so far was for, in order.
    pub fn executed(&self) -> Vec<String> {
        self.executed
            .lock()
            .map(|log| log.clone())
            .unwrap_or_default()
    }

    pub(super) fn record_exec(&self, what: &str) {
        if let Ok(mut log) = self.executed.lock() {
            log.push(what.to_owned());
        }
    }

    /// Builds the URL for a path (possibly one the server handed back), with the
    /// project added; a URL naming another project is refused.
    pub fn url(&self, path: &str) -> Result<Url> {
        let mut url = self.base.join(path).map_err(|e| IncusError::Protocol {
            what: path.to_owned(),
            message: e.to_string(),
        })?;
        if url.host_str() != self.base.host_str() || url.port() != self.base.port() {
            return Err(IncusError::Protocol {
                what: path.to_owned(),
                message: "the URL points at another server".to_owned(),
            });
        }
        match url_project(&url) {
            Some(other) if other != self.project => {
                return Err(IncusError::OtherProject {
                    url: path.to_owned(),
                    other,
                    project: self.project.clone(),
                })
            }
            Some(_) => {}
            None => {
                url.query_pairs_mut().append_pair("project", &self.project);
            }
        }
        Ok(url)
    }

    pub(super) async fn send(
        &self,
        method: Method,
        path: &str,
        body: Option<&Value>,
        timeout: Option<Duration>,
        what: &str,
    ) -> Result<reqwest::Response> {
        let url = self.url(path)?;
        if method != Method::GET {
            self.may_change(url.path(), body, what)?;
        }
        tracing::debug!("{method} {url}");
        let mut request = self.http.request(method, url);
        if let Some(t) = timeout {
            request = request.timeout(t);
        }
        if let Some(body) = body {
            request = request.json(body);
        }
        request.send().await.map_err(transport(what))
    }

    async fn envelope(response: reqwest::Response, what: &str) -> Result<Envelope> {
        let status = response.status();
        let bytes = response.bytes().await.map_err(transport(what))?;
        parse_envelope(status.as_u16(), &bytes, what)
    }

    /// A synchronous call: returns `metadata`.
    pub async fn sync(
        &self,
        method: Method,
        path: &str,
        body: Option<&Value>,
        what: &str,
    ) -> Result<Value> {
        Ok(self.start(method, path, body, what).await?.metadata)
    }

    /// An asynchronous call: waits for the operation and returns its metadata.
    pub async fn operation(
        &self,
        method: Method,
        path: &str,
        body: Option<&Value>,
        deadline: Duration,
        what: &str,
    ) -> Result<Value> {
        let envelope = self.start(method, path, body, what).await?;
        if envelope.kind == "sync" {
            return Ok(envelope.metadata);
        }
        self.wait(&envelope.operation, deadline, what).await
    }

    /// Sends a request that may start an operation, without waiting for it.
    pub(super) async fn start(
        &self,
        method: Method,
        path: &str,
        body: Option<&Value>,
        what: &str,
    ) -> Result<Envelope> {
        let response = self
            .send(method, path, body, Some(self.timeout), what)
            .await?;
        let envelope = Self::envelope(response, what).await?;
        if envelope.kind != "sync" && envelope.operation.is_empty() {
            return Err(IncusError::Protocol {
                what: what.to_owned(),
                message: "an async answer without an operation".to_owned(),
            });
        }
        Ok(envelope)
    }

    /// Long-polls `/wait` until the operation ends or the deadline passes.
    pub async fn wait(&self, operation: &str, deadline: Duration, what: &str) -> Result<Value> {
        let start = Instant::now();
        let path = format!("{}/wait", operation.split('?').next().unwrap_or(operation));
        loop {
            let left = deadline.saturating_sub(start.elapsed());
            if left.is_zero() {
                return Err(IncusError::Timeout {
                    what: what.to_owned(),
                    seconds: deadline.as_secs(),
                });
            }
            let poll = left.as_secs().clamp(1, 30);
            let mut url = self.url(&path)?;
            url.query_pairs_mut()
                .append_pair("timeout", &poll.to_string());
            let response = self
                .http
                .get(url)
                .timeout(Duration::from_secs(poll + 30))
                .send()
                .await
                .map_err(transport(what))?;
            match Self::envelope(response, what).await {
                Ok(envelope) => match parse_operation_state(&envelope.metadata) {
                    OperationState::Succeeded => return Ok(envelope.metadata),
                    OperationState::Failed(message) => {
                        return Err(IncusError::OperationFailed {
                            what: what.to_owned(),
                            message,
                        })
                    }
                    OperationState::Running => {}
                },
                Err(IncusError::Api {
                    code: 500, message, ..
                }) if message.contains("deadline exceeded") => {}
                Err(IncusError::Api {
                    code: 400, message, ..
                }) => {
                    return Err(IncusError::OperationFailed {
                        what: what.to_owned(),
                        message,
                    })
                }
                Err(other) => return Err(other),
            }
        }
    }

    /// Whether the allow-lists let this client change the named instance.
    pub fn may_change_instance(&self, name: &str) -> bool {
        self.allowed.projects.contains(&self.project) && self.allowed.instance(name)
    }

    /// Refuses a change the allow-lists do not permit, before it is sent.
    fn may_change(&self, path: &str, body: Option<&Value>, what: &str) -> Result<()> {
        self.allowed
            .change(&self.project, path, body)
            .map_err(|reason| IncusError::NotAllowed {
                what: what.to_owned(),
                reason,
            })
    }

    /// The configured project, read back: fails when it is missing or not ours.
    pub async fn check_project(&self) -> Result<Value> {
        let path = format!("/1.0/projects/{}", self.project);
        self.sync(
            Method::GET,
            &path,
            None,
            &format!("project `{}`", self.project),
        )
        .await
    }

    pub async fn list_instances(&self) -> Result<Vec<Instance>> {
        let meta = self
            .sync(
                Method::GET,
                "/1.0/instances?recursion=1",
                None,
                "listing instances",
            )
            .await?;
        parse_instances(meta, &self.project)
    }

    /// `None` when the instance does not exist.
    pub async fn get_instance(&self, name: &str) -> Result<Option<Instance>> {
        let what = format!("instance `{name}`");
        match self
            .sync(Method::GET, &format!("/1.0/instances/{name}"), None, &what)
            .await
        {
            Ok(meta) => serde_json::from_value(meta)
                .map(Some)
                .map_err(|e| IncusError::Protocol {
                    what,
                    message: e.to_string(),
                }),
            Err(IncusError::Api { code: 404, .. }) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Checks that an image alias or fingerprint is visible to the project; returns its fingerprint.
    pub async fn resolve_image(&self, image: &str) -> Result<String> {
        let what = format!("image `{image}`");
        match self
            .sync(
                Method::GET,
                &format!("/1.0/images/aliases/{image}"),
                None,
                &what,
            )
            .await
        {
            Ok(meta) => Ok(meta["target"].as_str().unwrap_or_default().to_owned()),
            Err(IncusError::Api { code: 404, .. }) => {
                let meta = self
                    .sync(Method::GET, &format!("/1.0/images/{image}"), None, &what)
                    .await?;
                Ok(meta["fingerprint"].as_str().unwrap_or_default().to_owned())
            }
            Err(e) => Err(e),
        }
    }

    /// Creates (and, where supported, starts) an instance.
    pub async fn create_instance(&self, body: &Value, deadline: Duration) -> Result<()> {
        let what = format!(
            "creating instance `{}`",
            body["name"].as_str().unwrap_or("?")
        );
        self.operation(Method::POST, "/1.0/instances", Some(body), deadline, &what)
            .await
            .map(|_| ())
    }

    pub async fn state(&self, name: &str) -> Result<InstanceState> {
        let what = format!("state of `{name}`");
        let meta = self
            .sync(
                Method::GET,
                &format!("/1.0/instances/{name}/state"),
                None,
                &what,
            )
            .await?;
        serde_json::from_value(meta).map_err(|e| IncusError::Protocol {
            what,
            message: e.to_string(),
        })
    }

    /// `start`, `stop` (graceful, within `timeout`, unless `force`) and the like.
    pub async fn change_state(
        &self,
        name: &str,
        action: &str,
        force: bool,
        timeout: Duration,
    ) -> Result<()> {
        let body = serde_json::json!({"action": action, "timeout": timeout.as_secs(), "force": force, "stateful": false});
        self.operation(
            Method::PUT,
            &format!("/1.0/instances/{name}/state"),
            Some(&body),
            timeout + Duration::from_secs(60),
            &format!("{action} `{name}`"),
        )
        .await
        .map(|_| ())
    }

    /// Sets one configuration key of an instance (`PATCH` merges, so
    /// nothing else changes).
    pub async fn set_config(&self, name: &str, key: &str, value: &str) -> Result<()> {
        let body = serde_json::json!({"config": {key: value}});
        self.operation(
            Method::PATCH,
            &format!("/1.0/instances/{name}"),
            Some(&body),
            Duration::from_secs(120),
            &format!("setting `{key}` on `{name}`"),
        )
        .await
        .map(|_| ())
    }

    /// Force-stops and deletes; `Ok(false)` when it was already gone.
    pub async fn delete_instance(&self, name: &str) -> Result<bool> {
        match self
            .change_state(name, "stop", true, Duration::from_secs(30))
            .await
        {
            Ok(()) => {}
            Err(IncusError::Api { code: 404, .. }) => return Ok(false),
            // Already stopped: fine, the delete below decides.
            Err(e) => tracing::debug!("stop `{name}`: {e}"),
        }
        match self
            .operation(
                Method::DELETE,
                &format!("/1.0/instances/{name}"),
                None,
                Duration::from_secs(120),
                &format!("deleting `{name}`"),
            )
            .await
        {
            Ok(_) => Ok(true),
            Err(IncusError::Api { code: 404, .. }) => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Creates a directory (idempotent) with the given owner and mode.
    pub async fn make_dir(
        &self,
        name: &str,
        path: &str,
        uid: u32,
        gid: u32,
        mode: u32,
    ) -> Result<()> {
        self.files_post(name, path, Vec::new(), uid, gid, mode, "directory")
            .await
    }

    /// Pushes a new file with the given owner and mode.
    pub async fn push_file(
        &self,
        name: &str,
        path: &str,
        content: Vec<u8>,
        uid: u32,
        gid: u32,
        mode: u32,
    ) -> Result<()> {
        self.files_post(name, path, content, uid, gid, mode, "file")
            .await
    }

    #[allow(clippy::too_many_arguments)]
    async fn files_post(
        &self,
        name: &str,
        path: &str,
        content: Vec<u8>,
        uid: u32,
        gid: u32,
        mode: u32,
        kind: &str,
    ) -> Result<()> {
        let what = format!("pushing {kind} `{path}` into `{name}`");
        let mut url = self.url(&format!("/1.0/instances/{name}/files"))?;
        self.may_change(url.path(), None, &what)?;
        url.query_pairs_mut().append_pair("path", path);
        let prefix = self.server.kind.header_prefix();
        let response = self
            .http
            .post(url)
            .timeout(self.timeout)
            .header("Content-Type", "application/octet-stream")
            .header(format!("{prefix}-uid"), uid.to_string())
            .header(format!("{prefix}-gid"), gid.to_string())
            .header(format!("{prefix}-mode"), format!("{mode:04o}"))
            .header(format!("{prefix}-type"), kind)
            .header(format!("{prefix}-write"), "overwrite")
            .body(content)
            .send()
            .await
            .map_err(transport(&what))?;
        Self::envelope(response, &what).await.map(|_| ())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn client() -> Client {
        let tls = rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(rustls::RootCertStore::empty())
        .with_no_client_auth();
        Client {
            http: reqwest::Client::builder()
                .use_preconfigured_tls(tls)
                .build()
                .unwrap(),
            base: Url::parse("https://127.0.0.1:8443").unwrap(),
            project: "fromgit-ci".to_owned(),
            timeout: Duration::from_secs(1),
            server: ServerInfo {
                kind: ServerKind::Incus,
                version: "6.0.4".to_owned(),
                auth: "trusted".to_owned(),
                extension_count: 0,
                extensions: Vec::new(),
            },
            allowed: Allowed::default(),
            executed: Arc::default(),
        }
    }

    #[test]
    fn only_allowed_projects_and_instances_may_change() {
        let allowed = Allowed {
            projects: vec!["fromgit-ci".to_owned()],
            name_prefixes: vec!["vmprove".to_owned()],
            instances: vec!["host".to_owned()],
        };
        let create = serde_json::json!({"name": "vmprove-1"});
        assert!(allowed
            .change("fromgit-ci", "/1.0/instances", Some(&create))
            .is_ok());
        assert!(allowed
            .change("default", "/1.0/instances", Some(&create))
            .unwrap_err()
            .contains("`guardrails.allowed_projects`"));
        let other = serde_json::json!({"name": "prod-db"});
        assert!(allowed
            .change("fromgit-ci", "/1.0/instances", Some(&other))
            .is_err());
        for ok in [
            "/1.0/instances/vmprove-1/exec",
            "/1.0/instances/host/state",
            "/1.0/operations/abc",
        ] {
            assert!(allowed.change("fromgit-ci", ok, None).is_ok(), "{ok}");
        }
        for refused in [
            "/1.0/instances/vmprove/state",
            "/1.0/instances/vmprovex-1",
            "/1.0/instances/prod-db/files",
            "/1.0/projects/fromgit-ci",
            "/1.0/images/abc",
        ] {
            assert!(
                allowed.change("fromgit-ci", refused, None).is_err(),
                "{refused}"
            );
        }
        // The client refuses before sending: nothing answers on this address.
        let client = Client {
            allowed,
            ..client()
        };
        let refused = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
            .block_on(client.delete_instance("prod-db"));
        assert!(
            matches!(refused, Err(IncusError::NotAllowed { .. })),
            "{refused:?}"
        );
    }

    #[test]
    fn every_url_carries_the_project() {
        let c = client();
        assert_eq!(
            c.url("/1.0/instances?recursion=1").unwrap().as_str(),
            "https://127.0.0.1:8443/1.0/instances?recursion=1&project=fromgit-ci"
        );
        // A log URL handed back by the server, without a project.
        assert_eq!(
            c.url("/1.0/instances/a/logs/exec-output/exec_1.stdout")
                .unwrap()
                .as_str(),
            "https://127.0.0.1:8443/1.0/instances/a/logs/exec-output/exec_1.stdout?project=fromgit-ci"
        );
        assert!(c.url("/1.0/operations/x?project=fromgit-ci").is_ok());
    }

    #[test]
    fn other_projects_and_servers_are_refused() {
        let c = client();
        let err = c.url("/1.0/instances?project=default").unwrap_err();
        assert!(matches!(err, IncusError::OtherProject { .. }), "{err}");
        assert!(c.url("https://elsewhere:8443/1.0").is_err());
    }
}
