//! sops-nix secrets checked by their NixOS name: what activation left on
//! the instance (`/run/secrets` linked to the newest generation
//! `/run/secrets.d/<n>`, each `/run/secrets/<name>` inside it with its
//! owner, group and mode) and that it holds the value the pushed key
//! decrypts from the instance repo. The value is decrypted here, before
//! anything is created, only to be hashed; neither it nor its hash is
//! recorded: the evidence says whether the hashes are equal.

use std::path::Path;
use std::time::Duration;

use anyhow::Context as _;
use sha2::{Digest as _, Sha256};

use crate::config::{parse_mode, SopsSecretCheck};
use crate::evidence::CheckRecord;
use crate::incus::Client;

/// A secret to check, with the SHA-256 of its decrypted value.
pub struct Expected {
    pub check: SopsSecretCheck,
    digest: [u8; 32],
}

impl std::fmt::Debug for Expected {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Expected({})", self.check.name)
    }
}

/// Decrypts every checked secret with the bootstrap key and keeps its hash.
pub fn expected(checks: &[SopsSecretCheck], key_file: &Path) -> anyhow::Result<Vec<Expected>> {
    if checks.is_empty() {
        return Ok(Vec::new());
    }
    let mut identities = fromgit_sops::Identities::default();
    identities
        .add_file(key_file)
        .context("Failed to read the bootstrap key (`secret.source`)")?;
    let mut out = Vec::new();
    for check in checks {
        let what = || {
            format!(
                "`checks.sops_secrets` `{}`: `{}` in `{}`",
                check.name,
                check.key(),
                check.sops_file.display()
            )
        };
        let format =
            fromgit_sops::Format::from_path(&check.sops_file).unwrap_or(fromgit_sops::Format::Yaml);
        let text = fs_err::read_to_string(&check.sops_file).with_context(what)?;
        let file = fromgit_sops::EncryptedFile::parse(&text, format).with_context(what)?;
        let decrypted = file
            .decrypt(&identities)
            .with_context(|| format!("{}: the pushed key does not decrypt it", what()))?;
        let mut node: Option<&fromgit_sops::Value> = None;
        let mut map = &decrypted.tree;
        for part in check.key().split('/') {
            node = map.iter().find(|(k, _)| k == part).map(|(_, v)| v);
            match node {
                Some(fromgit_sops::Value::Map(inner)) => map = inner,
                _ => break,
            }
        }
        let Some(fromgit_sops::Value::Scalar(value)) = node else {
            anyhow::bail!("{}: no such value, or it is not a string", what());
        };
        out.push(Expected {
            check: check.clone(),
            digest: Sha256::digest(value.text.as_bytes()).into(),
        });
    }
    Ok(out)
}

/// Reads what activation left for one secret; prints nothing of its content.
const INSPECT: &str = r#"p="/run/secrets/$1"
echo "link $(readlink /run/secrets)"
echo "newest $(ls /run/secrets.d 2>/dev/null | grep -E '^[0-9]+$' | sort -n | tail -n 1)"
echo "real $(readlink -f "$p")"
echo "stat $(stat -L -c '%U %G %u %g %a %s' "$p" 2>/dev/null)"
echo "sha256 $(sha256sum < "$p" 2>/dev/null | cut -d' ' -f1)"
if runuser -u nobody -- test -r "$p"; then echo "nobody can-read"; else echo "nobody cannot-read"; fi"#;

/// The check of one secret, named `sops secret <name>`.
pub async fn check(client: &Client, instance: &str, expected: &Expected) -> CheckRecord {
    let c = &expected.check;
    let name = format!("sops secret `{}`", c.name);
    let mode = parse_mode(&c.mode).map_or(c.mode.clone(), |m| format!("{m:o}"));
    let wanted = format!(
        "`/run/secrets` → newest `/run/secrets.d/<n>`, `/run/secrets/{}` in it, {}:{} {mode}, the value of `{}` in `{}`, not readable by nobody",
        c.name,
        c.owner,
        c.group,
        c.key(),
        c.sops_file.display()
    );
    let out = client
        .exec(
            instance,
            &["sh", "-c", INSPECT, "sh", &c.name],
            Duration::from_secs(120),
            &name,
        )
        .await;
    let (passed, observed) = match out {
        Ok(out) => judge(&String::from_utf8_lossy(&out.stdout), expected, &mode),
        Err(e) => (false, format!("could not run: {e}")),
    };
    CheckRecord {
        name,
        passed,
        expected: wanted,
        observed,
        not_run: None,
    }
}

fn judge(report: &str, expected: &Expected, mode: &str) -> (bool, String) {
    let field = |key: &str| {
        report
            .lines()
            .find_map(|l| l.strip_prefix(key)?.strip_prefix(' '))
            .unwrap_or_default()
            .trim()
    };
    let link = field("link");
    let newest = format!("/run/secrets.d/{}", field("newest"));
    let real = field("real");
    let c = &expected.check;
    let generation = link
        .strip_prefix("/run/secrets.d/")
        .is_some_and(|n| !n.is_empty() && n.chars().all(|d| d.is_ascii_digit()));
    let linked = generation && link == newest;
    let inside = !link.is_empty() && real.starts_with(&format!("{link}/"));
    let (stat_ok, stat) = super::files::stat_matches(field("stat"), &c.owner, &c.group, mode);
    let content = hex::decode(field("sha256")).is_ok_and(|d| d == expected.digest);
    let nobody = field("nobody") == "cannot-read";
    let observed = format!(
        "`/run/secrets` → `{}`{}, `/run/secrets/{}` is `{}`{}, {stat}, content matches the decrypted value: {content}, nobody {}",
        if link.is_empty() { "(no link)" } else { link },
        if linked { " (newest)" } else { " (not the newest generation)" },
        c.name,
        if real.is_empty() { "(missing)" } else { real },
        if inside { "" } else { " (not inside it)" },
        if nobody { "cannot read it" } else { "CAN read it" },
    );
    (linked && inside && stat_ok && content && nobody, observed)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn expected(value: &[u8]) -> Expected {
        Expected {
            check: SopsSecretCheck {
                name: "tls/key".to_owned(),
                sops_file: "secrets.yaml".into(),
                key: None,
                owner: "nginx".to_owned(),
                group: "#0".to_owned(),
                mode: "0400".to_owned(),
            },
            digest: Sha256::digest(value).into(),
        }
    }

    // A recorded answer of INSPECT on an instance where activation ran.
    const ACTIVATED: &str = "link /run/secrets.d/2\nnewest 2\nreal /run/secrets.d/2/tls/key\nstat nginx root 60 0 400 5\nsha256 2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824\nnobody cannot-read\n";

    #[test]
    fn what_activation_left_is_judged_by_name() {
        let (passed, observed) = judge(ACTIVATED, &expected(b"hello"), "400");
        assert!(passed, "{observed}");
        assert!(observed.contains("content matches the decrypted value: true"));
        assert!(!observed.contains("2cf24dba"), "the hash is not recorded");
        let (passed, observed) = judge(ACTIVATED, &expected(b"other"), "400");
        assert!(!passed && observed.contains("matches the decrypted value: false"));
        let stale = ACTIVATED.replace("newest 2", "newest 3");
        assert!(!judge(&stale, &expected(b"hello"), "400").0);
        let outside = ACTIVATED.replace("real /run/secrets.d/2/", "real /etc/");
        assert!(!judge(&outside, &expected(b"hello"), "400").0);
        assert!(
            !judge(
                "link \nnewest \nreal \nstat \nsha256 \nnobody cannot-read\n",
                &expected(b"hello"),
                "400"
            )
            .0
        );
    }
}
