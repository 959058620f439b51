//! The local inputs of a run (runbook, key, bundles, sealed certificates,
//! sops values), all read and checked before the server is contacted, so a
//! bad input stops the run before anything changes.

use std::collections::BTreeMap;

use anyhow::Context as _;
use fromgit_tls::CertSummary;
use sha2::{Digest as _, Sha256};

use super::secret::Secret;
use crate::config::{Config, TlsCheck};
use crate::repos::{self, Bundle};
use crate::runbook::{self, Block};

/// Local inputs, checked before the server is contacted.
pub(super) struct Inputs {
    pub(super) blocks: Vec<(Block, String)>,
    pub(super) runbook_sha256: String,
    /// The configured variables plus `repos.<name>.bundle` and `.commit`.
    pub(super) vars: BTreeMap<String, String>,
    pub(super) secret: Secret,
    pub(super) bundles: Vec<Bundle>,
    /// Holds the bundle files until the run ends.
    _bundle_dir: tempfile::TempDir,
    /// Each TLS check with the sealed certificate it expects.
    pub(super) tls: Vec<(TlsCheck, CertSummary)>,
    /// Each sops-nix secret check with the hash of its decrypted value.
    pub(super) sops: Vec<super::checks::sops_nix::Expected>,
}

pub(super) fn load_inputs(config: &Config) -> anyhow::Result<Inputs> {
    let text =
        fs_err::read_to_string(&config.runbook.path).context("Failed to read the runbook")?;
    let blocks = runbook::parse(&text, config.runbook.default_timeout.0)
        .with_context(|| format!("Runbook `{}`", config.runbook.path.display()))?;
    let secret = Secret::load(&config.secret.source)?;
    let sops =
        super::checks::sops_nix::expected(&config.checks.sops_secrets, &config.secret.source)?;
    let tls = config
        .checks
        .tls
        .iter()
        .map(|check| {
            let sealed = fromgit_tls::sealed::sealed_summary(&check.sealed)
                .with_context(|| format!("`checks.tls` for `{}`", check.server_name))?;
            Ok((check.clone(), sealed))
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    let bundle_dir = tempfile::Builder::new()
        .prefix("vm-prove-bundles")
        .tempdir()
        .context("Failed to create a directory for the repository bundles")?;
    let mut vars = BTreeMap::new();
    let mut bundles = Vec::new();
    for repo in &config.repos {
        let bundle = repos::bundle(repo, bundle_dir.path())?;
        if bundle.record.uncommitted_changes {
            fromgit_cli::warn(&format!(
                "repository `{}` has uncommitted changes; the proof uses commit {} without them",
                repo.name, bundle.record.commit
            ));
        }
        vars.insert(
            format!("repos.{}.bundle", repo.name),
            bundle.record.destination.clone(),
        );
        vars.insert(
            format!("repos.{}.commit", repo.name),
            bundle.record.commit.clone(),
        );
        bundles.push(bundle);
    }
    // Configured values may name the repositories' own placeholders, e.g.
    // `base_rev = "{{ repos.base.commit }}"`, so one runbook serves both
    // vm-prove's bundles and a person cloning by hand.
    for (name, value) in &config.runbook.vars {
        let value = runbook::fill(value, &vars).map_err(|unknown| {
            anyhow::anyhow!("`runbook.vars.{name}`: no value for `{{{{ {unknown} }}}}`")
        })?;
        vars.insert(name.clone(), value);
    }
    let rendered = blocks
        .into_iter()
        .map(|b| {
            let script = b.render(&vars)?;
            Ok((b, script))
        })
        .collect::<Result<Vec<_>, runbook::RunbookError>>()
        .with_context(|| format!("Runbook `{}`", config.runbook.path.display()))?;
    Ok(Inputs {
        blocks: rendered,
        runbook_sha256: hex::encode(Sha256::digest(text.as_bytes())),
        vars,
        secret,
        bundles,
        _bundle_dir: bundle_dir,
        tls,
        sops,
    })
}
