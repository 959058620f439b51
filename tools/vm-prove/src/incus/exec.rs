//! Commands inside the instance: recorded execs, whose output is fetched from
//! the server's logs afterwards, and attached ones, whose stdin and output
//! travel over the operation's websockets while the command runs.

use std::time::Duration;

use futures_util::{SinkExt as _, StreamExt as _};
use reqwest::{Method, StatusCode};
use serde_json::Value;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::WebSocketStream;

use super::api::{parse_exec_return, parse_exec_sockets, ExecOutput};
use super::client::Client;
use super::error::{transport, IncusError, Result};

/// Which output stream a chunk of an attached exec came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stream {
    Stdout,
    Stderr,
}

/// Where an attached exec delivers its output, chunk by chunk, as it arrives.
pub type OutputSender = tokio::sync::mpsc::UnboundedSender<(Stream, Vec<u8>)>;

/// After the command has ended, how long its output may still trickle in
/// (a background process holding the pipe open must not hang the run).
const OUTPUT_GRACE: Duration = Duration::from_secs(2);

const EXEC_PATH: &str = "/run/wrappers/bin:/run/current-system/sw/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// The body of `POST /1.0/instances/<n>/exec`; `PATH` covers NixOS and FHS systems.
fn exec_body(command: &[&str], attached: bool) -> Value {
    serde_json::json!({
        "command": command,
        "environment": {"HOME": "/root", "LANG": "C.UTF-8", "PATH": EXEC_PATH},
        "wait-for-websocket": attached,
        "interactive": false,
        "record-output": !attached,
        "user": 0,
        "group": 0,
        "cwd": "/root",
    })
}

impl Client {
    /// Runs a command with recorded output and returns its exit status and output.
    pub async fn exec(
        &self,
        name: &str,
        command: &[&str],
        deadline: Duration,
        what: &str,
    ) -> Result<ExecOutput> {
        self.record_exec(what);
        let body = exec_body(command, false);
        let meta = self
            .operation(
                Method::POST,
                &format!("/1.0/instances/{name}/exec"),
                Some(&body),
                deadline,
                what,
            )
            .await?;
        let exit = parse_exec_return(&meta, what)?;
        let inner = &meta["metadata"];
        let stdout = self.fetch_log(&inner["output"]["1"], what).await?;
        let stderr = self.fetch_log(&inner["output"]["2"], what).await?;
        Ok(ExecOutput {
            exit,
            stdout,
            stderr,
        })
    }

    /// GETs an exec log URL (with the project added) and deletes it.
    async fn fetch_log(&self, url: &Value, what: &str) -> Result<Vec<u8>> {
        let Some(path) = url.as_str() else {
            return Ok(Vec::new());
        };
        let response = self
            .send(Method::GET, path, None, Some(self.timeout), what)
            .await?;
        let status = response.status();
        if !status.is_success() {
            return Err(IncusError::Api {
                what: format!("{what}: output log"),
                code: status.as_u16(),
                message: "the recorded output could not be fetched".to_owned(),
            });
        }
        let bytes = response.bytes().await.map_err(transport(what))?.to_vec();
        if let Err(e) = self
            .send(Method::DELETE, path, None, Some(self.timeout), what)
            .await
        {
            tracing::debug!("deleting an exec log: {e}");
        }
        Ok(bytes)
    }

    /// Opens one websocket of an operation, through the same pinned TLS
    /// client (and proxy) as every other request.
    async fn websocket(
        &self,
        operation: &str,
        secret: &str,
        what: &str,
    ) -> Result<WebSocketStream<reqwest::Upgraded>> {
        let path = operation.split('?').next().unwrap_or(operation);
        let mut url = self.url(&format!("{path}/websocket"))?;
        url.query_pairs_mut().append_pair("secret", secret);
        let mut nonce = [0u8; 16];
        getrandom::fill(&mut nonce).map_err(|e| IncusError::Protocol {
            what: what.to_owned(),
            message: format!("no randomness for the websocket key: {e}"),
        })?;
        let key = base64::Engine::encode(&base64::engine::general_purpose::STANDARD, nonce);
        let response = self
            .http
            .get(url)
            .header("Connection", "Upgrade")
            .header("Upgrade", "websocket")
            .header("Sec-WebSocket-Version", "13")
            .header("Sec-WebSocket-Key", &key)
            .send()
            .await
            .map_err(transport(what))?;
        let accepted = response
            .headers()
            .get("Sec-WebSocket-Accept")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        if response.status() != StatusCode::SWITCHING_PROTOCOLS
            || accepted.as_deref()
                != Some(
                    &tokio_tungstenite::tungstenite::handshake::derive_accept_key(key.as_bytes()),
                )
        {
            return Err(IncusError::Protocol {
                what: what.to_owned(),
                message: format!(
                    "the websocket was not accepted (HTTP {})",
                    response.status()
                ),
            });
        }
        let upgraded = response.upgrade().await.map_err(transport(what))?;
        Ok(WebSocketStream::from_raw_socket(
            upgraded,
            tokio_tungstenite::tungstenite::protocol::Role::Client,
            None,
        )
        .await)
    }

    /// Runs a command with its standard streams attached: what arrives on
    /// `input` goes to its stdin (end of file when the sender is dropped, at
    /// once when there is none), and its output goes to `output` chunk by
    /// chunk as it is produced. Returns the exit status. Past `deadline` the
    /// command is killed (SIGKILL through the control socket).
    pub async fn exec_attached(
        &self,
        name: &str,
        command: &[&str],
        deadline: Duration,
        what: &str,
        input: Option<tokio::sync::mpsc::Receiver<Vec<u8>>>,
        output: &OutputSender,
    ) -> Result<i32> {
        self.record_exec(what);
        let envelope = self
            .start(
                Method::POST,
                &format!("/1.0/instances/{name}/exec"),
                Some(&exec_body(command, true)),
                what,
            )
            .await?;
        let operation = envelope.operation;
        let sockets = parse_exec_sockets(&envelope.metadata, what)?;
        // The command starts once every socket is connected.
        let mut control = self.websocket(&operation, &sockets.control, what).await?;
        let stdin = self.websocket(&operation, &sockets.stdin, what).await?;
        let stdout = self.websocket(&operation, &sockets.stdout, what).await?;
        let stderr = self.websocket(&operation, &sockets.stderr, what).await?;
        let (ended, ended_rx) = tokio::sync::watch::channel(false);
        let finished = async {
            let result = self.wait(&operation, deadline, what).await;
            let _ = ended.send(true);
            result
        };
        let (result, (), (), ()) = tokio::join!(
            finished,
            feed_stdin(stdin, input, ended_rx.clone()),
            pump_output(stdout, Stream::Stdout, output, ended_rx.clone()),
            pump_output(stderr, Stream::Stderr, output, ended_rx),
        );
        if matches!(result, Err(IncusError::Timeout { .. })) {
            let kill = Message::text(r#"{"command":"signal","args":null,"signal":9}"#);
            if let Err(e) = control.send(kill).await {
                tracing::debug!("{what}: could not send SIGKILL: {e}");
            }
        }
        let _ = control.close(None).await;
        match result {
            Ok(meta) => parse_exec_return(&meta, what),
            // Incus turns exit status 127 into a failed operation.
            Err(IncusError::OperationFailed { message, .. }) if message == "Command not found" => {
                Ok(127)
            }
            Err(e) => Err(e),
        }
    }
}

/// Writes `input` to the command's stdin; an empty text message is the end
/// of file (the barrier of Incus' websocket mirror; LXD reads it the same way).
async fn feed_stdin(
    mut socket: WebSocketStream<reqwest::Upgraded>,
    input: Option<tokio::sync::mpsc::Receiver<Vec<u8>>>,
    mut ended: tokio::sync::watch::Receiver<bool>,
) {
    if let Some(mut input) = input {
        loop {
            tokio::select! {
                chunk = input.recv() => match chunk {
                    Some(chunk) => {
                        if socket.send(Message::binary(chunk)).await.is_err() {
                            return;
                        }
                    }
                    None => break,
                },
                _ = ended.wait_for(|e| *e) => return,
            }
        }
    }
    let _ = socket.send(Message::text("")).await;
    // Keep the socket open until the command ends: closing it early can end the exec.
    let _ = ended.wait_for(|e| *e).await;
    let _ = socket.close(None).await;
}

/// Forwards one output stream until its end-of-stream barrier, or a short
/// grace period after the command has ended.
async fn pump_output(
    mut socket: WebSocketStream<reqwest::Upgraded>,
    stream: Stream,
    output: &OutputSender,
    mut ended: tokio::sync::watch::Receiver<bool>,
) {
    let grace = async {
        let _ = ended.wait_for(|e| *e).await;
        tokio::time::sleep(OUTPUT_GRACE).await;
    };
    tokio::pin!(grace);
    loop {
        tokio::select! {
            message = socket.next() => match message {
                Some(Ok(Message::Binary(bytes))) => {
                    let _ = output.send((stream, bytes.to_vec()));
                }
                Some(Ok(Message::Ping(_) | Message::Pong(_) | Message::Frame(_))) => {}
                Some(Ok(Message::Text(_) | Message::Close(_)) | Err(_)) | None => break,
            },
            () = &mut grace => break,
        }
    }
    let _ = socket.close(None).await;
}
