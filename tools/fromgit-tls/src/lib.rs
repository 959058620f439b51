//! `fromgit-tls`: the TLS and X.509 code `cert-seal` and `vm-prove` share,
//! so that `vm-prove` needs no part of `cert-seal`: certificate facts, the
//! sealed certificate layout, the rustls client with its verifier, the probe.

pub mod facts;
pub mod key;
pub mod pinned;
pub mod probe;
pub mod sealed;
pub mod verifier;

pub use facts::{parse_der, CertSummary};
