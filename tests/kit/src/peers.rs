//! Where a peer program is, without side effects.

use std::path::PathBuf;

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

/// Where the test Incus daemon's settings are written by `tests/incus-setup`.
pub fn incus_env_file() -> PathBuf {
    std::env::var_os("FROMGIT_INCUS_ENV")
        .map_or_else(|| PathBuf::from("/var/tmp/incus-ci/env"), PathBuf::from)
}
