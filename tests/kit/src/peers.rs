//! Where a peer program is, without side effects: shared by the kit's
//! `peer` and by the e2e crate's build script, which marks the tests of a
//! missing peer as ignored (`missing_<identifier>` cfgs).

use std::path::PathBuf;

/// The peers the end-to-end tests run against: (cfg identifier, program).
/// `sshd` is also looked for in `/usr/sbin`.
pub const PEERS: &[(&str, &str)] = &[
    ("age_keygen", "age-keygen"),
    ("detect_secrets", "detect-secrets"),
    ("git", "git"),
    ("gitleaks", "gitleaks"),
    ("incus", "incus"),
    ("nix", "nix"),
    ("nix_build", "nix-build"),
    ("nix_hash", "nix-hash"),
    ("nix_instantiate", "nix-instantiate"),
    ("nix_store", "nix-store"),
    ("openssl", "openssl"),
    ("pre_commit", "pre-commit"),
    ("python3", "python3"),
    ("setpriv", "setpriv"),
    ("sops", "sops"),
    ("ssh", "ssh"),
    ("ssh_keygen", "ssh-keygen"),
    ("sshd", "sshd"),
];

/// The variable that names a peer explicitly: `FROMGIT_<NAME>`, upper case,
/// `-` as `_`.
pub fn peer_var(name: &str) -> String {
    format!("FROMGIT_{}", name.to_ascii_uppercase().replace('-', "_"))
}

/// `FROMGIT_<NAME>` when it names a file, else the first `name` on PATH.
pub fn find_peer(name: &str) -> Option<PathBuf> {
    std::env::var_os(peer_var(name))
        .map(PathBuf::from)
        .filter(|p| p.is_file())
        .or_else(|| {
            std::env::var_os("PATH").and_then(|paths| {
                std::env::split_paths(&paths)
                    .map(|dir| dir.join(name))
                    .find(|candidate| candidate.is_file())
            })
        })
        .or_else(|| {
            let sbin = PathBuf::from("/usr/sbin").join(name);
            (name == "sshd" && sbin.is_file()).then_some(sbin)
        })
}

/// Whether `FROMGIT_SARIF_SCHEMA` names the SARIF 2.1.0 schema file.
pub fn sarif_schema() -> Option<PathBuf> {
    std::env::var_os("FROMGIT_SARIF_SCHEMA")
        .map(PathBuf::from)
        .filter(|p| p.is_file())
}

/// Where the test Incus daemon's settings are written by `tests/incus-setup`.
pub fn incus_env_file() -> PathBuf {
    std::env::var_os("FROMGIT_INCUS_ENV")
        .map_or_else(|| PathBuf::from("/var/tmp/incus-ci/env"), PathBuf::from)
}

/// Whether the test Incus daemon is configured (its URL is known).
// The build script has no fs-err; an unreadable file only means "not configured".
#[allow(clippy::disallowed_methods)]
pub fn incus_configured() -> bool {
    std::env::var_os("FROMGIT_INCUS_URL").is_some()
        || std::fs::read_to_string(incus_env_file()).is_ok_and(|text| {
            text.lines()
                .any(|line| line.trim_start().starts_with("FROMGIT_INCUS_URL="))
        })
}
