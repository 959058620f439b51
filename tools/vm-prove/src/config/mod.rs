//! The one configuration file, `vm-prove.toml`. Everything a run touches is
//! named here (server, project, image, the one secret, the runbook, the
//! checks), so that a reviewer can read what a proof will do before it runs.
//! Relative paths are resolved against the directory of the file.

mod load;
mod schema;
mod validate;
mod values;

pub use load::ConfigError;
pub use schema::{
    ChecksConfig, Config, EvidenceConfig, Guardrails, IncusConfig, InstanceConfig, InstanceType,
    RepoConfig, Resize, RunbookConfig, SecretCheck, SecretConfig, SopsSecretCheck, SweepConfig,
    TlsCheck, REPOS_DIR,
};
pub use values::{human_size, parse_mode, parse_owner, parse_size, Owner, Seconds};
