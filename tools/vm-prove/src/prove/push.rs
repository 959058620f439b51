//! What goes into the instance before the runbook: the one secret, verified
//! in place without reading it back, and the repository bundles.

use std::path::Path;
use std::time::Duration;

use anyhow::Context as _;

use super::secret::Secret;
use crate::config::{parse_mode, Config, REPOS_DIR};
use crate::evidence::Evidence;
use crate::incus::Client;
use crate::repos::Bundle;

/// The numeric ids of an owner and group as written (a name, or `#<id>`):
/// names are looked up inside the instance (`getent`, read-only).
async fn resolve_owner(
    client: &Client,
    name: &str,
    owner: &str,
    group: &str,
) -> anyhow::Result<(u32, u32)> {
    let mut ids = [0u32; 2];
    for (slot, (database, text)) in ids.iter_mut().zip([("passwd", owner), ("group", group)]) {
        *slot = match crate::config::parse_owner(text).map_err(anyhow::Error::msg)? {
            crate::config::Owner::Id(id) => id,
            crate::config::Owner::Name(n) => {
                let out = client
                    .exec(
                        name,
                        &["getent", database, &n],
                        Duration::from_secs(60),
                        "looking up the key's owner",
                    )
                    .await?;
                String::from_utf8_lossy(&out.stdout)
                    .split(':')
                    .nth(2)
                    .and_then(|id| id.trim().parse().ok())
                    .filter(|_| out.exit == 0)
                    .ok_or_else(|| {
                        anyhow::anyhow!("`{n}` does not exist in the instance ({database})")
                    })?
            }
        };
    }
    Ok((ids[0], ids[1]))
}

pub(super) async fn push_secret(
    client: &Client,
    config: &Config,
    secret: &Secret,
    name: &str,
    ev: &mut Evidence,
) -> anyhow::Result<()> {
    let path = Path::new(&config.secret.path);
    let mode = parse_mode(&config.secret.mode).map_err(anyhow::Error::msg)?;
    let (uid, gid) = resolve_owner(client, name, &config.secret.owner, &config.secret.group)
        .await
        .context("`secret.owner`/`secret.group`")?;
    ev.secret.uid = uid;
    ev.secret.gid = gid;
    // Missing parent directories are created; the innermost one 0700, so the
    // write-then-chmod window of the file API is covered.
    let parents: Vec<&Path> = path
        .ancestors()
        .skip(1)
        .filter(|p| p.as_os_str() != "/")
        .collect();
    for (i, dir) in parents.iter().rev().enumerate() {
        let dir_mode = if i + 1 == parents.len() { 0o700 } else { 0o755 };
        let dir_text = dir.display().to_string();
        client
            .make_dir(name, &dir_text, uid, gid, dir_mode)
            .await
            .with_context(|| format!("Failed to create `{dir_text}` in the instance"))?;
    }
    client
        .push_file(
            name,
            &config.secret.path,
            secret.bytes.to_vec(),
            uid,
            gid,
            mode,
        )
        .await
        .context("Failed to push the bootstrap key")?;
    ev.secret.pushed = true;
    // Verify through exec, without reading the secret back.
    let out = client
        .exec(
            name,
            &[
                "sh",
                "-c",
                "stat -c '%a %u %g %s' \"$1\" && sha256sum \"$1\"",
                "sh",
                &config.secret.path,
            ],
            Duration::from_secs(60),
            "checking the pushed key",
        )
        .await?;
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let mut lines = text.lines();
    let observed = lines.next().unwrap_or_default().to_owned();
    let hash = lines
        .next()
        .and_then(|l| l.split_whitespace().next())
        .unwrap_or_default();
    let expected = format!("{:o} {uid} {gid} {}", mode, secret.bytes.len());
    ev.secret.content_matches =
        Some(out.exit == 0 && hash == secret.sha256() && observed == expected);
    ev.secret.observed = Some(observed);
    Ok(())
}

pub(super) async fn push_bundles(
    client: &Client,
    name: &str,
    bundles: &[Bundle],
    ev: &mut Evidence,
) -> anyhow::Result<()> {
    if bundles.is_empty() {
        return Ok(());
    }
    for dir in ["/var/lib/vm-prove", REPOS_DIR] {
        client
            .make_dir(name, dir, 0, 0, 0o700)
            .await
            .with_context(|| format!("Failed to create `{dir}` in the instance"))?;
    }
    for (bundle, record) in bundles.iter().zip(ev.repos.iter_mut()) {
        let bytes = fs_err::read(&bundle.file)?;
        client
            .push_file(name, &record.destination, bytes, 0, 0, 0o600)
            .await
            .with_context(|| format!("Failed to push repository `{}`", record.name))?;
        record.pushed = true;
    }
    Ok(())
}
