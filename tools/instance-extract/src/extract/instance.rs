//! The private instance repo: its facts as plain data, its flake, and the
//! moved secrets encrypted for the recipients.

use std::fmt::Write as _;
use std::path::PathBuf;

use fromgit_nix::literal::string as nix_string;
use fromgit_sops::{Format, Map, Recipient, Scalar, Value};
use sha2::{Digest as _, Sha256};
use zeroize::Zeroizing;

use super::{ExtractError, FileChange, MovedSecret, Request};
use crate::facts::Facts;
use crate::inline::InlineSecret;
use crate::rewrite;

/// `instance.nix`: the domain and the other facts, plain data.
fn instance_facts(domain: &str, facts: &Facts) -> String {
    let mut text = format!(
        "# The instance's facts: plain data, read by `nixosModules.instance`.\n{{\n  domain = {};\n",
        nix_string(domain)
    );
    for (group, values) in [("addresses", &facts.addresses), ("emails", &facts.emails)] {
        if values.is_empty() {
            continue;
        }
        let _ = writeln!(text, "  {group} = {{");
        for (value, name) in values {
            let _ = writeln!(
                text,
                "    {} = {};",
                rewrite::attr_name(name),
                nix_string(value)
            );
        }
        text.push_str("  };\n");
    }
    text.push_str("}\n");
    text
}

/// The instance repo's files, the secrets encrypted for `recipients`.
pub(super) fn instance_repo(
    request: &Request<'_>,
    recipients: &[Recipient],
    facts: &Facts,
    inline: &[InlineSecret],
) -> Result<(Vec<FileChange>, Vec<MovedSecret>), ExtractError> {
    let mut tree: Value = Value::Map(Map::new());
    let mut moved = Vec::new();
    for (name, path) in request.secrets {
        let bytes = Zeroizing::new(fs_err::read(path).map_err(|source| {
            ExtractError::SecretUnreadable {
                name: name.clone(),
                path: path.clone(),
                source,
            }
        })?);
        let text = Zeroizing::new(
            std::str::from_utf8(&bytes)
                .map_err(|_| ExtractError::SecretNotText(name.clone()))?
                .to_owned(),
        );
        moved.push(MovedSecret {
            name: name.clone(),
            source: path.clone(),
            sha256: hex::encode(Sha256::digest(&*bytes)),
        });
        // sops-nix reads `a/b` as the key `b` under the map `a`.
        let mut key_path = fromgit_sops::KeyPath::default();
        for part in name.split('/') {
            key_path.push(fromgit_sops::value::PathStep::Key(part.to_owned()));
        }
        tree.set(
            &key_path,
            Value::Scalar(Scalar {
                kind: fromgit_sops::Kind::Str,
                text,
            }),
        );
    }
    for secret in inline {
        moved.push(MovedSecret {
            name: secret.name.clone(),
            source: format!("inline at {}", secret.location),
            sha256: hex::encode(Sha256::digest(secret.value.as_bytes())),
        });
        let mut key_path = fromgit_sops::KeyPath::default();
        for part in secret.name.split('/') {
            key_path.push(fromgit_sops::value::PathStep::Key(part.to_owned()));
        }
        tree.set(
            &key_path,
            Value::Scalar(Scalar {
                kind: fromgit_sops::Kind::Str,
                text: secret.value.clone(),
            }),
        );
    }
    let tree = match tree {
        Value::Map(map) => map,
        _ => Map::new(),
    };
    let mut files = vec![
        ("instance.nix".to_owned(), instance_facts(request.domain, facts)),
        ("flake.nix".to_owned(), crate::wiring::instance_flake(request.name, &request.sops.keys)),
        ("README.md".to_owned(), format!(
            "# Private instance repo\n\nThe instance data of a fromgit base (`{}`): `instance.nix` holds the facts\n\
             (the domain), `secrets/secrets.yaml` the sops-encrypted secrets, `.sops.yaml`\n\
             the recipients. The base composes it through its `instance` flake input.\n\n\
             Check it with `instance-extract verify --instance . --identity KEY`.\n",
            request.name
        )),
    ];
    let rules: Vec<&str> = recipients.iter().map(Recipient::as_str).collect();
    files.push((
        ".sops.yaml".to_owned(),
        format!(
            "creation_rules:\n  - path_regex: ^secrets/.*\\.yaml$\n    age: >-\n      {}\n",
            rules.join(",\n      ")
        ),
    ));
    let mut changes: Vec<FileChange> = files
        .into_iter()
        .map(|(name, after)| FileChange {
            path: PathBuf::from(name),
            before: None,
            after,
            sealed: None,
        })
        .collect();
    if !request.secrets.is_empty() || !inline.is_empty() {
        let written = fromgit_sops::encrypt_new(
            Format::Yaml,
            &tree,
            recipients,
            fromgit_sops::metadata::Selection::default(),
        )?;
        written.verify(written.text.as_bytes())?;
        changes.push(FileChange {
            path: PathBuf::from("secrets/secrets.yaml"),
            before: None,
            after: written.text.to_string(),
            sealed: Some(written),
        });
    }
    Ok((changes, moved))
}
