//! Every way a request to the server can fail, as one typed error, so a
//! caller can tell a refusal (an API code, a guardrail) from an unreachable server.

/// Errors talking to the server.
#[derive(Debug, thiserror::Error)]
pub enum IncusError {
    /// Local TLS material could not be loaded.
    #[error("Failed to load `{path}`: {message}")]
    Tls { path: String, message: String },
    /// The request never got an HTTP answer (unreachable, TLS rejected, proxy down).
    #[error("{what}: cannot reach the Incus server")]
    Transport {
        what: String,
        #[source]
        source: reqwest::Error,
    },
    /// The server answered with an error envelope.
    #[error("{what}: the server refused ({code}): {message}")]
    Api {
        what: String,
        code: u16,
        message: String,
    },
    /// An operation finished in failure.
    #[error("{what}: the operation failed: {message}")]
    OperationFailed { what: String, message: String },
    /// An operation did not finish in time.
    #[error("{what}: no result within {seconds} s")]
    Timeout { what: String, seconds: u64 },
    /// The answer did not have the expected shape.
    #[error("{what}: unexpected answer: {message}")]
    Protocol { what: String, message: String },
    /// The client refused a change the configuration's allow-lists do not permit.
    #[error("refused: {what}: {reason}")]
    NotAllowed { what: String, reason: String },
    /// The client refused to send a request outside its project.
    #[error("refused: `{url}` names project `{other}`, but only `{project}` may be touched")]
    OtherProject {
        url: String,
        other: String,
        project: String,
    },
}

impl IncusError {
    /// The API error code, if the server answered with one.
    pub fn api_code(&self) -> Option<u16> {
        match self {
            IncusError::Api { code, .. } => Some(*code),
            _ => None,
        }
    }
}

pub(super) type Result<T> = std::result::Result<T, IncusError>;

/// Maps a request that got no HTTP answer to [`IncusError::Transport`].
pub(super) fn transport(what: &str) -> impl FnOnce(reqwest::Error) -> IncusError + '_ {
    move |source| IncusError::Transport {
        what: what.to_owned(),
        source,
    }
}
