//! What a TLS server actually serves: connect with a given SNI, complete
//! the handshake, and return the certificate chain the server presented.
//!
//! Trust is not the question here (the sealed certificate may come from a
//! private CA, and the host may not be in DNS yet): the proof is that the
//! leaf's fingerprint equals the sealed one. Handshake signatures are still
//! verified, so the peer must hold the served certificate's private key.

use std::io::{Read as _, Write as _};
use std::net::{TcpStream, ToSocketAddrs as _};
use std::sync::Arc;
use std::time::Duration;

use rustls::pki_types::ServerName;

use crate::verifier::{client_config, Accept};

/// Why a probe could not complete.
#[derive(Debug, thiserror::Error)]
pub enum ProbeError {
    #[error("`{0}` is not a valid server name for SNI")]
    BadServerName(String),
    #[error("cannot resolve `{0}`")]
    Resolve(String),
    #[error("cannot connect to `{address}`: {source}")]
    Connect {
        address: String,
        source: std::io::Error,
    },
    #[error("TLS handshake with `{address}` failed: {reason}")]
    Handshake { address: String, reason: String },
    #[error("`{0}` presented no certificate")]
    NoCertificate(String),
}

/// A client connection that accepts any chain (still checking handshake
/// signatures), for a caller that carries the bytes itself: vm-prove drives
/// it through a relay inside an instance.
pub fn client_connection(sni: &str) -> Result<rustls::ClientConnection, ProbeError> {
    let handshake_error = |err: rustls::Error| ProbeError::Handshake {
        address: sni.to_owned(),
        reason: err.to_string(),
    };
    let config = client_config(Accept::AnyChain)
        .map_err(handshake_error)?
        .with_no_client_auth();
    let server_name = ServerName::try_from(sni.to_owned())
        .map_err(|_| ProbeError::BadServerName(sni.to_owned()))?;
    rustls::ClientConnection::new(Arc::new(config), server_name).map_err(handshake_error)
}

/// The chain a finished handshake presented, leaf first, as DER.
pub fn presented_chain(
    connection: &rustls::ClientConnection,
    address: &str,
) -> Result<Vec<Vec<u8>>, ProbeError> {
    let chain: Vec<Vec<u8>> = connection
        .peer_certificates()
        .unwrap_or_default()
        .iter()
        .map(|cert| cert.as_ref().to_vec())
        .collect();
    if chain.is_empty() {
        return Err(ProbeError::NoCertificate(address.to_owned()));
    }
    Ok(chain)
}

/// Connects to `address` (`host:port`) with SNI `sni` and returns the served
/// chain, leaf first, as DER.
pub fn served_chain(
    address: &str,
    sni: &str,
    timeout: Duration,
) -> Result<Vec<Vec<u8>>, ProbeError> {
    let mut connection = client_connection(sni)?;
    let socket_address = address
        .to_socket_addrs()
        .map_err(|_| ProbeError::Resolve(address.to_owned()))?
        .next()
        .ok_or_else(|| ProbeError::Resolve(address.to_owned()))?;
    let connect_error = |source| ProbeError::Connect {
        address: address.to_owned(),
        source,
    };
    let mut socket = TcpStream::connect_timeout(&socket_address, timeout).map_err(connect_error)?;
    socket
        .set_read_timeout(Some(timeout))
        .map_err(connect_error)?;
    socket
        .set_write_timeout(Some(timeout))
        .map_err(connect_error)?;
    while connection.is_handshaking() {
        connection
            .complete_io(&mut socket)
            .map_err(|err| ProbeError::Handshake {
                address: address.to_owned(),
                reason: err.to_string(),
            })?;
    }
    let chain = presented_chain(&connection, address);
    // Close politely; the server's reply does not matter.
    connection.send_close_notify();
    let _ = connection.complete_io(&mut socket);
    let _ = socket.flush();
    let _ = socket.read(&mut [0u8; 1]);
    chain
}
