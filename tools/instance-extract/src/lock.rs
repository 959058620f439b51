//! Whether the base's `flake.lock` locks the inputs `apply` added.
//!
//! A flake whose lock lacks an input is re-locked at its first build, to
//! whatever the input's URL points at then: the composed system would not
//! be the one that was checked. `apply` tries to lock the new inputs with
//! the `nix` on `PATH` (offline); when it cannot, the report says the lock
//! is stale and `verify` calls the base unproven until it is locked.

use std::path::Path;
use std::process::Command;

/// The inputs `apply` may add to the base flake.
const ADDED_INPUTS: [&str; 2] = ["instance", "sops-nix"];

/// The added inputs that `flake.nix` declares but `flake.lock` does not
/// lock. Empty when the base has no `flake.lock` (the first lock pins all).
pub fn stale_inputs(base: &Path) -> Vec<String> {
    let Ok(flake) = fs_err::read_to_string(base.join("flake.nix")) else {
        return Vec::new();
    };
    let Ok(lock) = fs_err::read_to_string(base.join("flake.lock")) else {
        return Vec::new();
    };
    let locked: Vec<String> = serde_json::from_str::<serde_json::Value>(&lock)
        .ok()
        .and_then(|v| {
            let root = v.get("root")?.as_str()?.to_owned();
            let inputs = v
                .get("nodes")?
                .get(root)?
                .get("inputs")?
                .as_object()?
                .clone();
            Some(inputs.keys().cloned().collect())
        })
        .unwrap_or_default();
    ADDED_INPUTS
        .iter()
        .filter(|input| {
            (flake.contains(&format!("{input}.url")) || flake.contains(&format!("inputs.{input}")))
                && !locked.iter().any(|l| l == *input)
        })
        .map(|input| (*input).to_owned())
        .collect()
}

/// Tries `nix flake lock --offline` in the base when its lock is stale;
/// returns what is still stale and, if the attempt failed, why.
pub fn try_lock(base: &Path) -> (Vec<String>, Option<String>) {
    let stale = stale_inputs(base);
    if stale.is_empty() {
        return (stale, None);
    }
    let attempt = Command::new("nix")
        .args([
            "--extra-experimental-features",
            "nix-command flakes",
            "flake",
            "lock",
            "--offline",
        ])
        .current_dir(base)
        .output();
    let why = match attempt {
        Err(err) => Some(format!("`nix` could not be run: {err}")),
        Ok(output) if !output.status.success() => {
            Some(format!("`nix flake lock --offline` failed: {}", {
                let stderr = String::from_utf8_lossy(&output.stderr);
                stderr
                    .lines()
                    .find(|l| l.contains("error:"))
                    .or_else(|| stderr.lines().rfind(|l| !l.trim().is_empty()))
                    .unwrap_or_default()
                    .trim()
                    .to_owned()
            }))
        }
        Ok(_) => None,
    };
    (stale_inputs(base), why)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_lock_without_the_new_inputs_is_stale() {
        let dir = tempfile::tempdir().expect("temp dir");
        fs_err::write(
            dir.path().join("flake.nix"),
            "{ inputs.nixpkgs.url = \"x\"; inputs.instance.url = \"path:../instance\"; inputs.sops-nix.url = \"y\"; outputs = _: { }; }",
        )
        .expect("write");
        assert!(
            stale_inputs(dir.path()).is_empty(),
            "no lock: nothing stale"
        );
        let lock = |inputs: &str| {
            format!("{{\"nodes\": {{\"root\": {{\"inputs\": {{{inputs}}}}}}}, \"root\": \"root\", \"version\": 7}}")
        };
        fs_err::write(
            dir.path().join("flake.lock"),
            lock("\"nixpkgs\": \"nixpkgs\""),
        )
        .expect("write");
        assert_eq!(stale_inputs(dir.path()), ["instance", "sops-nix"]);
        fs_err::write(
            dir.path().join("flake.lock"),
            lock(
                "\"nixpkgs\": \"nixpkgs\", \"instance\": \"instance\", \"sops-nix\": \"sops-nix\"",
            ),
        )
        .expect("write");
        assert!(stale_inputs(dir.path()).is_empty());
    }
}
