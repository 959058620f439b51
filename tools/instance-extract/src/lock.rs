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

/// What `try_lock` did about the added inputs.
#[derive(Debug, Default)]
pub struct LockOutcome {
    /// Added inputs still not locked.
    pub stale: Vec<String>,
    /// Why the lock attempt failed, when it did.
    pub why: Option<String>,
    /// The command that locks the inputs by hand.
    pub command: String,
    /// Where a relative `instance` input was locked from (by content).
    pub instance_from: Option<String>,
}

/// The `--override-input` that lets Nix lock a relative `path:` instance
/// input. Nix refuses to fetch `path:../instance` (it points outside the
/// base's store path), but records the override in the lock under the
/// input's original URL, pinned by its `narHash`: the base then evaluates
/// without the override, and the host overrides it anyway (`docs/install.md`).
pub fn instance_override(instance: &Path, instance_url: &str) -> Option<String> {
    let relative = instance_url.strip_prefix("path:").unwrap_or(instance_url);
    if !(relative.starts_with("./") || relative.starts_with("../")) {
        return None;
    }
    let absolute = fs_err::canonicalize(instance).ok()?;
    let absolute = absolute.to_str()?;
    // A URL character in the path would change what Nix reads.
    if absolute.contains(['?', '#', '%']) || absolute.chars().any(char::is_whitespace) {
        return None;
    }
    Some(format!("path:{absolute}"))
}

/// Tries `nix flake lock --offline` in the base when its lock is stale,
/// locking a relative instance input from the instance directory.
pub fn try_lock(base: &Path, instance: &Path, instance_url: &str) -> LockOutcome {
    let stale = stale_inputs(base);
    let from = instance_override(instance, instance_url)
        .filter(|_| stale.iter().any(|input| input == "instance"));
    let mut args: Vec<String> = [
        "--extra-experimental-features",
        "nix-command flakes",
        "flake",
        "lock",
        "--offline",
    ]
    .map(str::to_owned)
    .to_vec();
    if let Some(from) = &from {
        args.extend([
            "--override-input".to_owned(),
            "instance".to_owned(),
            from.clone(),
        ]);
    }
    let command = format!(
        "nix flake lock{}",
        from.as_ref().map_or_else(String::new, |from| format!(
            " --override-input instance {from}"
        ))
    );
    if stale.is_empty() {
        return LockOutcome {
            stale,
            command,
            ..LockOutcome::default()
        };
    }
    let attempt = Command::new("nix").args(&args).current_dir(base).output();
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
    let stale = stale_inputs(base);
    let instance_from = from.filter(|_| !stale.iter().any(|input| input == "instance"));
    LockOutcome {
        stale,
        why,
        command,
        instance_from,
    }
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

    #[test]
    fn only_a_relative_instance_url_is_locked_from_the_directory() {
        let dir = tempfile::tempdir().expect("temp dir");
        let absolute = fs_err::canonicalize(dir.path()).expect("canonical");
        let expected = format!("path:{}", absolute.display());
        for relative in ["path:../instance", "../instance", "./instance", "path:./x"] {
            assert_eq!(
                instance_override(dir.path(), relative).as_deref(),
                Some(expected.as_str()),
                "{relative}"
            );
        }
        for fetched in [
            "path:/srv/instance",
            "git+ssh://git@host/ops/instance",
            "github:ops/instance",
        ] {
            assert_eq!(instance_override(dir.path(), fetched), None, "{fetched}");
        }
        let odd = dir.path().join("a#b");
        fs_err::create_dir(&odd).expect("mkdir");
        assert_eq!(instance_override(&odd, "path:../instance"), None);
    }
}
