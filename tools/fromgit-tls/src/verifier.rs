//! Which server certificate a fromgit client accepts: any chain (a probe
//! reports what a server serves, trusted or not) or exactly one pinned
//! certificate (the Incus API). Handshake signatures are verified either way.

use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::WantsClientCert;
use rustls::crypto::{verify_tls12_signature, verify_tls13_signature, CryptoProvider};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{ClientConfig, ConfigBuilder, DigitallySignedStruct, SignatureScheme};

/// The server certificates a client accepts.
#[derive(Debug)]
pub enum Accept {
    /// Any chain; the caller reads what was presented from the connection.
    AnyChain,
    /// Exactly this end-entity certificate, not whatever a CA vouches for;
    /// `pinned_as` names it in the refusal (e.g. ``"`server_cert`"``).
    Pinned {
        certificate: CertificateDer<'static>,
        pinned_as: String,
    },
}

#[derive(Debug)]
struct ServerCertificate {
    accept: Accept,
    provider: Arc<CryptoProvider>,
}

impl ServerCertVerifier for ServerCertificate {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        match &self.accept {
            Accept::AnyChain => Ok(ServerCertVerified::assertion()),
            Accept::Pinned {
                certificate,
                pinned_as,
            } => {
                if end_entity.as_ref() == certificate.as_ref() {
                    Ok(ServerCertVerified::assertion())
                } else {
                    Err(rustls::Error::General(format!(
                        "the server's certificate is not the pinned {pinned_as}"
                    )))
                }
            }
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls12_signature(
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
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(
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

/// A client configuration on ring with the safe default protocol versions
/// and the given acceptance, waiting for the caller's client-auth choice.
pub fn client_config(
    accept: Accept,
) -> Result<ConfigBuilder<ClientConfig, WantsClientCert>, rustls::Error> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let verifier = Arc::new(ServerCertificate {
        accept,
        provider: Arc::clone(&provider),
    });
    Ok(ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .dangerous()
        .with_custom_certificate_verifier(verifier))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn certificate(name: &str) -> CertificateDer<'static> {
        let key = rcgen::KeyPair::generate().unwrap();
        let params = rcgen::CertificateParams::new(vec![name.to_owned()]).unwrap();
        params.self_signed(&key).unwrap().der().clone()
    }

    fn verify(accept: Accept, served: &CertificateDer<'_>) -> Result<(), rustls::Error> {
        let verifier = ServerCertificate {
            accept,
            provider: Arc::new(rustls::crypto::ring::default_provider()),
        };
        let name = ServerName::try_from("example.net").unwrap();
        verifier
            .verify_server_cert(served, &[], &name, &[], UnixTime::now())
            .map(|_| ())
    }

    #[test]
    fn a_pin_accepts_exactly_its_certificate_and_a_probe_any() {
        let pinned = certificate("incus.example.net");
        let other = certificate("example.net");
        let pin = || Accept::Pinned {
            certificate: pinned.clone(),
            pinned_as: "`server_cert`".to_owned(),
        };
        assert!(verify(pin(), &pinned).is_ok());
        let Err(refusal) = verify(pin(), &other) else {
            panic!("a pin accepted another certificate");
        };
        assert_eq!(
            refusal.to_string(),
            "unexpected error: the server's certificate is not the pinned `server_cert`"
        );
        assert!(verify(Accept::AnyChain, &other).is_ok());
    }
}
