//! The one secret of a run, the bootstrap age key: read once, never shown
//! (its `Debug` hides it), and redacted from anything printed or recorded.

use std::path::Path;

use anyhow::Context as _;
use sha2::{Digest as _, Sha256};
use zeroize::Zeroizing;

/// The bootstrap key, read once; its `Debug` never shows the content.
pub struct Secret {
    pub(super) bytes: Zeroizing<Vec<u8>>,
    /// Lines that must never appear in any output (redacted if they do).
    lines: Vec<Zeroizing<String>>,
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Secret({} bytes)", self.bytes.len())
    }
}

impl Secret {
    /// Reads the key file and checks that it holds exactly one age identity.
    pub fn load(path: &Path) -> anyhow::Result<Secret> {
        let bytes = Zeroizing::new(
            fs_err::read(path).context("Failed to read the bootstrap key (`secret.source`)")?,
        );
        let text = std::str::from_utf8(&bytes).map_err(|_| {
            anyhow::anyhow!(
                "`{}` is not an age identity file (not text)",
                path.display()
            )
        })?;
        let keys: Vec<&str> = text
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty() && !l.starts_with('#'))
            .collect();
        let valid = keys.len() == 1 && is_age_identity(keys[0]);
        if !valid {
            anyhow::bail!(
                "`{}` is not an age identity file: expected exactly one `AGE-SECRET-KEY-1…` line",
                path.display()
            );
        }
        let lines = keys
            .iter()
            .map(|k| Zeroizing::new((*k).to_owned()))
            .collect();
        Ok(Secret { bytes, lines })
    }

    pub(super) fn redact(&self, text: &str) -> String {
        let mut out = text.to_owned();
        for line in &self.lines {
            out = out.replace(line.as_str(), "[redacted secret]");
            out = out.replace(&line.to_ascii_lowercase(), "[redacted secret]");
        }
        out
    }

    pub(super) fn sha256(&self) -> String {
        hex::encode(Sha256::digest(&self.bytes))
    }
}

fn is_age_identity(line: &str) -> bool {
    const CHARSET: &str = "qpzry9x8gf2tvdw0s3jn54khce6mua7l";
    line.strip_prefix("AGE-SECRET-KEY-1").is_some_and(|rest| {
        rest.len() == 58
            && rest
                .chars()
                .all(|c| CHARSET.contains(c.to_ascii_lowercase()) && !c.is_ascii_lowercase())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn age_identities() {
        let key = "AGE-SECRET-KEY-1QQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQ";
        assert!(is_age_identity(key));
        assert!(!is_age_identity(&key.to_ascii_lowercase()));
        assert!(!is_age_identity("AGE-SECRET-KEY-1BBB"));
        assert!(!is_age_identity("ssh-ed25519 AAAA"));
    }

    #[test]
    fn secrets_are_redacted_and_debug_hides_them() {
        let dir = tempfile::tempdir().unwrap();
        let key = "AGE-SECRET-KEY-1QQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQ";
        let file = dir.path().join("k.txt");
        fs_err::write(
            &file,
            format!("# created: now\n# public key: age1x\n{key}\n"),
        )
        .unwrap();
        let secret = Secret::load(&file).unwrap();
        assert_eq!(
            secret.redact(&format!("x {key} y")),
            "x [redacted secret] y"
        );
        assert!(!format!("{secret:?}").contains("AGE"));
        fs_err::write(&file, "not a key\n").unwrap();
        assert!(Secret::load(&file).is_err());
        assert!(Secret::load(&dir.path().join("missing")).is_err());
    }
}
