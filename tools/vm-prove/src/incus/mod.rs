//! Our own Incus/LXD REST client. No published crate talks to the API
//! directly, and vm-prove needs guarantees a generic client does not give:
//! the server certificate is pinned (exactly the configured certificate is
//! accepted), every request carries the one configured project (a URL naming
//! another project is refused before it is sent), operations are waited on
//! and their envelopes parsed (HTTP 200 from `/wait` alone means nothing),
//! and the file headers follow the detected server (`X-Incus-*` or `X-LXD-*`).

mod allowed;
mod api;
mod client;
mod error;
mod exec;
mod pinning;

pub use allowed::Allowed;
pub use api::{
    parse_envelope, parse_exec_return, parse_exec_sockets, parse_instances, parse_operation_state,
    parse_server_info, Envelope, ExecOutput, ExecSockets, Instance, InstanceState, OperationState,
    ServerInfo, ServerKind,
};
pub use client::Client;
pub use error::IncusError;
pub use exec::{OutputSender, Stream};
