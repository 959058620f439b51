//! `ssh://[USER@]HOST[:PORT]/PATH[?store=DIR]`: query a remote store in one
//! SSH round trip (`nix path-info -r --json` and `nix show-derivation -r`).
//! Extra `ssh` options come from `NIX_SSHOPTS`, as for Nix's own SSH stores.

use std::collections::HashMap;

use anyhow::{bail, Context as _, Result};
use fromgit_nix::command::{Argv, Nix, Ssh, SshHost};
use fromgit_nix::{drv, pathinfo, StoreDir};

use crate::side::{Drvs, Side, Source};

/// The separator line between the two JSON documents of the remote output.
const MARKER: &str = "--closure-diff-drvs--";

/// A parsed `ssh://` input.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SshSpec {
    /// `[user@]host`.
    pub host: SshHost,
    /// The port, when given.
    pub port: Option<u16>,
    /// The remote store path.
    pub path: String,
    /// A remote chroot store root (`?store=DIR`).
    pub store: Option<String>,
}

/// Parses `ssh://[USER@]HOST[:PORT]/PATH[?store=DIR]`.
pub fn parse(spec: &str) -> Result<SshSpec> {
    let rest = spec
        .strip_prefix("ssh://")
        .with_context(|| format!("`{spec}` does not start with `ssh://`"))?;
    let (rest, query) = match rest.split_once('?') {
        Some((r, q)) => (r, Some(q)),
        None => (rest, None),
    };
    let slash = rest.find('/').with_context(|| {
        format!("`{spec}` has no store path after the host (ssh://HOST/nix/store/…)")
    })?;
    let (authority, path) = rest.split_at(slash);
    if authority.is_empty() {
        bail!("`{spec}` has no host");
    }
    let (host, port) = match authority.rsplit_once(':') {
        Some((h, p)) if !h.ends_with(']') || authority.starts_with('[') => (
            h.to_owned(),
            Some(
                p.parse::<u16>()
                    .with_context(|| format!("`{spec}`: bad port `{p}`"))?,
            ),
        ),
        _ => (authority.to_owned(), None),
    };
    let mut store = None;
    if let Some(q) = query {
        for kv in q.split('&') {
            match kv.split_once('=') {
                Some(("store", v)) if !v.is_empty() => store = Some(v.to_owned()),
                _ => bail!("`{spec}`: unknown query parameter `{kv}` (only `store=DIR`)"),
            }
        }
    }
    let host = SshHost::new(&host).with_context(|| format!("`{spec}`"))?;
    Ok(SshSpec {
        host,
        port,
        path: path.to_owned(),
        store,
    })
}

/// The remote shell command (one round trip).
pub fn remote_command(s: &SshSpec) -> String {
    let nix = match &s.store {
        Some(d) => Nix::new().without_substituters().store(d),
        None => Nix::new().without_substituters(),
    };
    format!(
        "{} && echo && echo {MARKER} && {{ {} 2>/dev/null || echo null; }}",
        nix.path_info_closure([&s.path]).to_shell(),
        nix.show_derivation_closure([&s.path]).to_shell(),
    )
}

/// The `ssh` argument list.
pub fn ssh_argv(s: &SshSpec, extra_opts: &str) -> Argv {
    Ssh::new(s.host.clone())
        .port(s.port)
        .options_from(extra_opts)
        .remote(&remote_command(s))
}

/// Loads a side from a remote store.
pub fn load(spec: &str, store_dir: &StoreDir) -> Result<Side> {
    let s = parse(spec)?;
    // A symlink such as `/run/current-system` is resolved by the remote Nix;
    // the root is then the one path no other path refers to.
    let root = store_dir.store_path_of(&s.path).ok();
    let argv = ssh_argv(&s, &std::env::var("NIX_SSHOPTS").unwrap_or_default());
    tracing::info!("running {:?}", argv.to_vec());
    let out = argv
        .command()
        .stdin(std::process::Stdio::null())
        .output()
        .with_context(|| "Failed to run `ssh`".to_owned())?;
    if !out.status.success() {
        bail!(
            "`{spec}`: the remote query failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    let text = String::from_utf8_lossy(&out.stdout);
    let (infos_json, drvs_json) = text
        .split_once(MARKER)
        .with_context(|| format!("`{spec}`: the remote output is truncated"))?;
    let dump = pathinfo::parse_path_info_json(infos_json.trim().as_bytes(), store_dir.as_str())
        .with_context(|| format!("`{spec}`: the remote `nix path-info` output"))?;
    let mut drvs = HashMap::new();
    let v: serde_json::Value = serde_json::from_str(drvs_json.trim()).with_context(|| {
        format!("`{spec}`: the remote `nix show-derivation` output is not JSON")
    })?;
    if let Some(map) = v.as_object() {
        for (path, d) in map {
            let base = store_dir.base_name_of(path)?;
            let parsed =
                drv::from_json(d).with_context(|| format!("`{spec}`: derivation `{path}`"))?;
            drvs.insert(base, parsed);
        }
    }
    let mut side = Side {
        spec: spec.to_owned(),
        source: Source::Ssh,
        store_dir: StoreDir::new(&dump.store_dir).with_context(|| format!("`{spec}`"))?,
        roots: Vec::new(),
        root_drvs: Vec::new(),
        infos: dump
            .infos
            .into_iter()
            .map(|i| (i.path.clone(), std::sync::Arc::new(i)))
            .collect(),
        missing_references: std::collections::BTreeSet::new(),
        unrealised: false,
        drvs: if drvs.is_empty() {
            Drvs::None
        } else {
            Drvs::Parsed(drvs)
        },
        local_store: None,
    };
    side.roots = match root {
        Some(r) => vec![r],
        None => side.store_paths(&crate::side::infer_roots(&side.infos)),
    };
    side.root_drvs = side.derivers_of_roots();
    side.close_over_roots();
    Ok(side)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_urls() {
        let s = parse("ssh://root@127.0.0.1:2222/nix/store/abc-x?store=/tmp/st").unwrap();
        assert_eq!(s.host.as_str(), "root@127.0.0.1");
        assert_eq!(s.port, Some(2222));
        assert_eq!(s.path, "/nix/store/abc-x");
        assert_eq!(s.store.as_deref(), Some("/tmp/st"));
        let s = parse("ssh://host/run/current-system").unwrap();
        assert_eq!((s.host.as_str(), s.port), ("host", None));
        assert!(parse("ssh://host").is_err());
        assert!(parse("ssh:///nix/store/x").is_err());
        for hostile in [
            "ssh://-oProxyCommand=x/nix/store/x",
            "ssh://me@-oProxyCommand=x/nix/store/x",
        ] {
            let err = format!("{:#}", parse(hostile).expect_err(hostile));
            assert!(err.contains("may not start with `-`"), "{err}");
        }
        assert!(parse("ssh://h/p?evil=1").is_err());
    }

    #[test]
    fn remote_command_is_one_round_trip() {
        let s = parse("ssh://h/run/current-system?store=/tmp/st").unwrap();
        assert_eq!(
            remote_command(&s),
            "nix --extra-experimental-features nix-command --option substituters '' \
             path-info --recursive --json --store /tmp/st -- /run/current-system \
             && echo && echo --closure-diff-drvs-- && \
             { nix --extra-experimental-features nix-command --option substituters '' \
             show-derivation --recursive --store /tmp/st -- /run/current-system \
             2>/dev/null || echo null; }"
        );
    }

    #[test]
    fn argv_and_quoting() {
        let s = parse("ssh://me@h:22/nix/store/abc-it's").unwrap();
        let argv = ssh_argv(&s, "-i key -o StrictHostKeyChecking=yes");
        let argv = argv.to_strs().unwrap();
        assert_eq!(
            &argv[..9],
            [
                "ssh",
                "-i",
                "key",
                "-o",
                "StrictHostKeyChecking=yes",
                "-o",
                "BatchMode=yes",
                "-p",
                "22"
            ]
        );
        assert_eq!(argv[9], "--");
        assert_eq!(argv[10], "me@h");
        assert!(
            argv[11].contains(r"'/nix/store/abc-it'\''s'"),
            "{}",
            argv[11]
        );
    }
}
