//! TLS towards the server: exactly the configured `server_cert` is accepted
//! (not whatever a CA vouches for), and the client certificate the server
//! trusts is presented.

use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, SignatureScheme};

use super::error::{IncusError, Result};
use crate::config::IncusConfig;

/// Accepts exactly the pinned certificate, still checking the handshake signature.
#[derive(Debug)]
struct PinnedServer {
    cert: CertificateDer<'static>,
    provider: Arc<rustls::crypto::CryptoProvider>,
}

impl ServerCertVerifier for PinnedServer {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> std::result::Result<ServerCertVerified, rustls::Error> {
        if end_entity.as_ref() == self.cert.as_ref() {
            Ok(ServerCertVerified::assertion())
        } else {
            Err(rustls::Error::General(
                "the server's certificate is not the pinned `server_cert`".to_owned(),
            ))
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

fn tls_error(path: &std::path::Path, message: impl std::fmt::Display) -> IncusError {
    IncusError::Tls {
        path: path.display().to_string(),
        message: message.to_string(),
    }
}

pub(super) fn tls_config(config: &IncusConfig) -> Result<rustls::ClientConfig> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let pinned = CertificateDer::from_pem_file(&config.server_cert)
        .map_err(|e| tls_error(&config.server_cert, e))?;
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(&config.client_cert)
        .map_err(|e| tls_error(&config.client_cert, e))?
        .collect::<std::result::Result<_, _>>()
        .map_err(|e| tls_error(&config.client_cert, e))?;
    if chain.is_empty() {
        return Err(tls_error(&config.client_cert, "no certificate in the file"));
    }
    let key = PrivateKeyDer::from_pem_file(&config.client_key)
        .map_err(|e| tls_error(&config.client_key, e))?;
    let verifier = Arc::new(PinnedServer {
        cert: pinned,
        provider: Arc::clone(&provider),
    });
    rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| tls_error(&config.client_cert, e))?
        .dangerous()
        .with_custom_certificate_verifier(verifier)
        .with_client_auth_cert(chain, key)
        .map_err(|e| tls_error(&config.client_key, e))
}
