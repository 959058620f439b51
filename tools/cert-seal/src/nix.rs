//! The sops-nix declarations that turn the sealed pair into files at fixed
//! paths. The output is Nix source; it is parse-checked with real Nix in
//! the tests, and every string is escaped here rather than trusted.

use std::fmt::Write as _;
use std::path::Path;

use fromgit_nix::literal::string;

use crate::sealed::{FULLCHAIN_KEY, PRIVATE_KEY_KEY, TLS_KEY};

/// Why the declarations cannot be written.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum NixWiringError {
    #[error("`{0}` must be an absolute path")]
    RelativeTarget(String),
    #[error("`{0}` cannot be written as a Nix path literal (use a path without spaces or quotes)")]
    BadSopsFile(String),
}

/// The sops file as a Nix path literal (`./secrets/tls.yaml`).
fn path_literal(path: &Path) -> Result<String, NixWiringError> {
    let text = path.to_string_lossy();
    let valid = !text.is_empty()
        && text
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "._-+/".contains(c))
        && !text.ends_with('/');
    if !valid {
        return Err(NixWiringError::BadSopsFile(text.into_owned()));
    }
    Ok(
        if text.starts_with('/') || text.starts_with("./") || text.starts_with("../") {
            text.into_owned()
        } else {
            format!("./{text}")
        },
    )
}

pub struct Wiring<'a> {
    pub sops_file: &'a Path,
    pub fullchain_path: &'a str,
    pub key_path: &'a str,
    pub owner: &'a str,
    pub group: Option<&'a str>,
    pub restart_units: &'a [String],
    pub reload_units: &'a [String],
}

/// A NixOS module fragment declaring both secrets.
pub fn declarations(wiring: &Wiring<'_>) -> Result<String, NixWiringError> {
    for target in [wiring.fullchain_path, wiring.key_path] {
        if !target.starts_with('/') {
            return Err(NixWiringError::RelativeTarget(target.to_owned()));
        }
    }
    let sops_file = path_literal(wiring.sops_file)?;
    let key_mode = if wiring.group.is_some() {
        "0440"
    } else {
        "0400"
    };
    let mut out = String::from("{\n");
    for (name, path, mode) in [
        (FULLCHAIN_KEY, wiring.fullchain_path, "0444"),
        (PRIVATE_KEY_KEY, wiring.key_path, key_mode),
    ] {
        let _ = writeln!(
            out,
            "  sops.secrets.{} = {{",
            string(&format!("{TLS_KEY}/{name}"))
        );
        let _ = writeln!(out, "    sopsFile = {sops_file};");
        let _ = writeln!(out, "    path = {};", string(path));
        // The shape `instance-extract apply` writes: root is sops-nix's
        // default owner, and the group defaults to the owner's.
        if wiring.owner != "root" {
            let _ = writeln!(out, "    owner = {};", string(wiring.owner));
        }
        if let Some(group) = wiring.group {
            let _ = writeln!(out, "    group = {};", string(group));
        }
        let _ = writeln!(out, "    mode = {};", string(mode));
        for (option, units) in [
            ("restartUnits", wiring.restart_units),
            ("reloadUnits", wiring.reload_units),
        ] {
            if !units.is_empty() {
                let units: Vec<String> = units.iter().map(|u| string(u)).collect();
                let _ = writeln!(out, "    {option} = [ {} ];", units.join(" "));
            }
        }
        out.push_str("  };\n");
    }
    out.push_str("}\n");
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strings_and_paths_are_escaped_or_refused() {
        assert_eq!(string("a\"b${c}\\"), "\"a\\\"b\\${c}\\\\\"");
        assert_eq!(
            path_literal(Path::new("secrets/tls.yaml")).as_deref(),
            Ok("./secrets/tls.yaml")
        );
        assert!(path_literal(Path::new("my secrets.yaml")).is_err());
        let wiring = Wiring {
            sops_file: Path::new("secrets/tls.yaml"),
            fullchain_path: "relative.pem",
            key_path: "/k",
            owner: "nginx",
            group: None,
            restart_units: &[],
            reload_units: &[],
        };
        assert_eq!(
            declarations(&wiring),
            Err(NixWiringError::RelativeTarget("relative.pem".into()))
        );
    }

    #[test]
    fn the_shape_is_the_one_apply_writes() {
        let units = ["traefik.service".to_owned()];
        let root = declarations(&Wiring {
            sops_file: Path::new("secrets/tls.yaml"),
            fullchain_path: "/var/lib/tls/fullchain.pem",
            key_path: "/var/lib/tls/key.pem",
            owner: "root",
            group: None,
            restart_units: &units,
            reload_units: &[],
        })
        .expect("valid wiring");
        assert!(!root.contains("owner"), "{root}");
        assert!(!root.contains("reloadUnits"), "{root}");
        assert!(
            root.contains("restartUnits = [ \"traefik.service\" ];"),
            "{root}"
        );
    }
}
