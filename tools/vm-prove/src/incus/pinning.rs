//! TLS towards the server: exactly the configured `server_cert` is accepted
//! (not whatever a CA vouches for), and the client certificate the server
//! trusts is presented.

use fromgit_tls::pinned::{pinned_client_config, PinnedFiles};

use super::error::{IncusError, Result};
use crate::config::IncusConfig;

pub(super) fn tls_config(config: &IncusConfig) -> Result<rustls::ClientConfig> {
    let files = PinnedFiles {
        server_cert: &config.server_cert,
        client_cert: &config.client_cert,
        client_key: &config.client_key,
    };
    pinned_client_config(&files, "`server_cert`").map_err(|e| IncusError::Tls {
        path: e.path.display().to_string(),
        message: e.message,
    })
}
