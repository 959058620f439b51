//! The TLS check: what the service inside the instance serves, compared
//! with the certificate sealed in the instance repo. The handshake runs
//! here, with `fromgit-tls`'s probe client, over a byte relay inside the
//! instance (bash's `/dev/tcp` on an attached exec), so the operator does
//! not need a route to the instance and the instance needs no extra tool.

use std::time::Duration;

use fromgit_tls::CertSummary;
use tokio::sync::mpsc;

use crate::config::TlsCheck;
use crate::evidence::CheckRecord;
use crate::incus::{Client, Stream};

/// Relays stdin to `host:port` and the answer to stdout; stops reading when stdin ends.
const RELAY: &str = r#"exec 3<>"/dev/tcp/$1/$2" || exit 111
cat <&3 &
reader=$!
cat >&3
kill "$reader" 2>/dev/null
wait "$reader" 2>/dev/null
exit 0"#;

/// Completes a TLS handshake through the relay; returns the served chain.
async fn handshake(
    sni: &str,
    address: &str,
    to_server: mpsc::Sender<Vec<u8>>,
    from_server: &mut mpsc::UnboundedReceiver<(Stream, Vec<u8>)>,
) -> Result<Vec<Vec<u8>>, String> {
    let mut connection = fromgit_tls::probe::client_connection(sni).map_err(|e| e.to_string())?;
    let mut relay_errors = Vec::new();
    loop {
        while connection.wants_write() {
            let mut record = Vec::new();
            connection
                .write_tls(&mut record)
                .map_err(|e| e.to_string())?;
            if to_server.send(record).await.is_err() {
                return Err("the relay ended".to_owned());
            }
        }
        if !connection.is_handshaking() {
            break;
        }
        match from_server.recv().await {
            Some((Stream::Stdout, data)) => {
                let mut rest = data.as_slice();
                while !rest.is_empty() {
                    connection.read_tls(&mut rest).map_err(|e| e.to_string())?;
                    connection
                        .process_new_packets()
                        .map_err(|e| format!("TLS handshake with `{address}` failed: {e}"))?;
                }
            }
            Some((Stream::Stderr, data)) => relay_errors.extend_from_slice(&data),
            None => {
                let detail = String::from_utf8_lossy(&relay_errors).trim().to_owned();
                return Err(if detail.is_empty() {
                    format!("`{address}` closed the connection during the handshake")
                } else {
                    format!("cannot connect to `{address}`: {detail}")
                });
            }
        }
    }
    fromgit_tls::probe::presented_chain(&connection, address).map_err(|e| e.to_string())
}

/// What `address` inside the instance serves under `sni`.
async fn served_chain(
    client: &Client,
    instance: &str,
    check: &TlsCheck,
    timeout: Duration,
) -> Result<Vec<Vec<u8>>, String> {
    let (host, port) = check
        .host_port()
        .ok_or_else(|| format!("`{}` is not host:port", check.address))?;
    let port = port.to_string();
    let (to_server, stdin) = mpsc::channel(16);
    let (output, mut from_server) = mpsc::unbounded_channel();
    let what = format!("TLS relay to `{}`", check.address);
    let relay = async {
        let result = client
            .exec_attached(
                instance,
                &["bash", "-c", RELAY, "relay", host, &port],
                timeout,
                &what,
                Some(stdin),
                &output,
            )
            .await;
        drop(output);
        result
    };
    let probe = async {
        // Dropping the sender ends the relay's stdin, and so the relay.
        tokio::time::timeout(
            timeout,
            handshake(
                &check.server_name,
                &check.address,
                to_server,
                &mut from_server,
            ),
        )
        .await
        .unwrap_or_else(|_| Err(format!("no TLS handshake within {} s", timeout.as_secs())))
    };
    let (relayed, chain) = tokio::join!(relay, probe);
    match (chain, relayed) {
        (Ok(chain), _) => Ok(chain),
        (Err(e), Ok(111)) => Err(format!("nothing listens on `{}`: {e}", check.address)),
        (Err(e), _) => Err(e),
    }
}

/// Compares the served leaf with the sealed one.
pub async fn check(
    client: &Client,
    instance: &str,
    check: &TlsCheck,
    sealed: &CertSummary,
) -> CheckRecord {
    let name = format!("tls `{}` at `{}`", check.server_name, check.address);
    let expected = format!(
        "the sealed certificate {} (`{}`)",
        sealed.sha256_fingerprint,
        check.sealed.display()
    );
    let observed = match served_chain(client, instance, check, Duration::from_secs(30)).await {
        Err(e) => Err(e),
        Ok(chain) => fromgit_tls::parse_der(&chain[0])
            .map(|leaf| CertSummary::of(&leaf))
            .ok_or_else(|| "the served leaf is not a valid X.509 certificate".to_owned()),
    };
    match observed {
        Ok(served) => CheckRecord {
            not_run: None,
            passed: served.sha256_fingerprint == sealed.sha256_fingerprint,
            name,
            expected,
            observed: format!(
                "served {} for {} valid {} .. {}",
                served.sha256_fingerprint,
                served.names.join(", "),
                served.not_before,
                served.not_after
            ),
        },
        Err(e) => CheckRecord {
            not_run: None,
            name,
            passed: false,
            expected,
            observed: e,
        },
    }
}
