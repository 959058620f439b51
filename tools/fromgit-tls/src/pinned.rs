//! A mutual-TLS client from PEM files: the server's pinned certificate, and
//! the client chain and key the server trusts (how vm-prove reaches Incus).

use std::path::{Path, PathBuf};

use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

use crate::verifier::{client_config, Accept};

/// The PEM files of a pinned mutual-TLS client.
pub struct PinnedFiles<'a> {
    pub server_cert: &'a Path,
    pub client_cert: &'a Path,
    pub client_key: &'a Path,
}

/// A file that could not be loaded or used, and why.
#[derive(Debug, thiserror::Error)]
#[error("`{}`: {message}", path.display())]
pub struct LoadError {
    pub path: PathBuf,
    pub message: String,
}

fn load_error(path: &Path, message: impl std::fmt::Display) -> LoadError {
    LoadError {
        path: path.to_owned(),
        message: message.to_string(),
    }
}

/// A client that accepts exactly `server_cert` (named `pinned_as` when it
/// refuses another) and presents `client_cert` with `client_key`.
pub fn pinned_client_config(
    files: &PinnedFiles<'_>,
    pinned_as: &str,
) -> Result<rustls::ClientConfig, LoadError> {
    let pinned = CertificateDer::from_pem_file(files.server_cert)
        .map_err(|e| load_error(files.server_cert, e))?;
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(files.client_cert)
        .map_err(|e| load_error(files.client_cert, e))?
        .collect::<Result<_, _>>()
        .map_err(|e| load_error(files.client_cert, e))?;
    if chain.is_empty() {
        return Err(load_error(files.client_cert, "no certificate in the file"));
    }
    let key = PrivateKeyDer::from_pem_file(files.client_key)
        .map_err(|e| load_error(files.client_key, e))?;
    client_config(Accept::Pinned {
        certificate: pinned,
        pinned_as: pinned_as.to_owned(),
    })
    .map_err(|e| load_error(files.client_cert, e))?
    .with_client_auth_cert(chain, key)
    .map_err(|e| load_error(files.client_key, e))
}
