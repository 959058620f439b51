//! Secrets read while the configuration is evaluated.
//!
//! `builtins.readFile /var/lib/secrets/token`, `lib.fileContents …` or
//! `import ./secrets.nix` put the secret's bytes into the evaluated
//! configuration: pure evaluation cannot read them at all, and whatever
//! uses the value copies it into the world-readable store. sops-nix
//! decrypts at activation, after evaluation, so such a read cannot simply
//! point at the sops-nix path: it must become the option's runtime-file
//! form, or the split is refused with the place and the reason.

use rnix::{SyntaxKind, SyntaxNode, TextRange};

use crate::nixsrc::NixFile;
use crate::rewrite;

/// Functions that read a file's contents at evaluation time.
const READERS: [&str; 6] = [
    "builtins.readFile",
    "readFile",
    "lib.fileContents",
    "lib.strings.fileContents",
    "fileContents",
    "import",
];

/// Option names whose value has a runtime-file sibling in NixOS modules
/// (`password` → `passwordFile`). A convention, not a rule: `apply` looks
/// each written option up in the host's option tree (`runtime_options`).
const FILE_FORMS: [(&str, &str); 9] = [
    ("password", "passwordFile"),
    ("hashedPassword", "hashedPasswordFile"),
    ("token", "tokenFile"),
    ("secret", "secretFile"),
    ("apiKey", "apiKeyFile"),
    ("privateKey", "privateKeyFile"),
    ("secretKey", "secretKeyFile"),
    ("clientSecret", "clientSecretFile"),
    ("key", "keyFile"),
];

/// One evaluation-time read of something secret.
#[derive(Debug, Clone)]
pub struct EvalRead {
    /// The whole application (`builtins.readFile /x`).
    pub range: TextRange,
    pub reader: String,
    /// The path as written.
    pub target: String,
    /// The `--secret` name when the path is one.
    pub secret: Option<String>,
    /// When the read is the whole value of a binding whose option has a
    /// runtime-file form: the range of the option's name and that form.
    pub file_form: Option<(TextRange, &'static str)>,
}

fn looks_secret(path: &str) -> bool {
    let lower = path.to_ascii_lowercase();
    [
        "secret", "passw", "token", "cred", "private", ".key", "key.", "/keys/", "htpasswd", ".env",
    ]
    .iter()
    .any(|needle| lower.contains(needle))
}

/// The path an argument names, when it is a literal: a path, a string
/// without interpolation, or a string that interpolates a path.
fn literal_target(argument: &SyntaxNode) -> Option<String> {
    match argument.kind() {
        SyntaxKind::NODE_PATH_ABS | SyntaxKind::NODE_PATH_REL | SyntaxKind::NODE_PATH_HOME => {
            Some(argument.text().to_string())
        }
        SyntaxKind::NODE_STRING => Some(argument.text().to_string().trim_matches('"').to_owned()),
        SyntaxKind::NODE_PAREN => argument.children().next().and_then(|n| literal_target(&n)),
        // `config.sops.secrets.x.path`: a runtime path read at evaluation.
        SyntaxKind::NODE_SELECT => {
            let text = argument.text().to_string();
            text.contains("sops.secrets").then_some(text)
        }
        _ => None,
    }
}

/// Every evaluation-time read of a `--secret` path or a secret-looking file.
pub fn find(file: &NixFile, secrets: &[(String, String)]) -> Vec<EvalRead> {
    let mut out = Vec::new();
    for apply in file
        .root
        .descendants()
        .filter(|n| n.kind() == SyntaxKind::NODE_APPLY)
    {
        let mut children = apply.children();
        let (Some(function), Some(argument)) = (children.next(), children.next()) else {
            continue;
        };
        let reader: String = function.text().to_string().split_whitespace().collect();
        if !READERS.contains(&reader.as_str()) {
            continue;
        }
        let Some(target) = literal_target(&argument) else {
            continue;
        };
        let secret = secrets
            .iter()
            .find(|(_, path)| target == *path || target.ends_with(&format!("/{path}")))
            .map(|(name, _)| name.clone());
        if secret.is_none() && !looks_secret(&target) && !target.contains("sops.secrets") {
            continue;
        }
        out.push(EvalRead {
            range: apply.text_range(),
            reader,
            target,
            secret,
            file_form: file_form(&apply),
        });
    }
    out
}

/// The option-name range and runtime-file form when `apply` is the whole
/// value of a binding like `password = builtins.readFile …;`.
fn file_form(apply: &SyntaxNode) -> Option<(TextRange, &'static str)> {
    let binding = apply.parent()?;
    if binding.kind() != SyntaxKind::NODE_ATTRPATH_VALUE
        || rewrite::binding_value(&binding).as_ref() != Some(apply)
    {
        return None;
    }
    let path = binding
        .children()
        .find(|n| n.kind() == SyntaxKind::NODE_ATTRPATH)?;
    let last = path.children().last()?;
    let name = last.text().to_string();
    FILE_FORMS
        .iter()
        .find(|(option, _)| *option == name)
        .map(|(_, form)| (last.text_range(), *form))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    #[test]
    fn reads_of_secrets_are_found_with_their_file_form() {
        let text = r#"{ config, lib, ... }: {
  a.password = builtins.readFile /var/lib/app/db-pass;
  b.settings.token = "${lib.fileContents "/etc/secrets/token"}";
  c = import ./secrets.nix;
  d = builtins.readFile ./motd.txt;
  e.key = builtins.readFile config.sops.secrets.x.path;
}"#;
        let file = NixFile::parse(Path::new("."), "m.nix".into(), text.to_owned()).expect("parses");
        let secrets = [("db".to_owned(), "/var/lib/app/db-pass".to_owned())];
        let found = find(&file, &secrets);
        let summary: Vec<(&str, &str, Option<&str>, Option<&str>)> = found
            .iter()
            .map(|r| {
                (
                    r.reader.as_str(),
                    r.target.as_str(),
                    r.secret.as_deref(),
                    r.file_form.map(|(_, form)| form),
                )
            })
            .collect();
        assert_eq!(
            summary,
            [
                (
                    "builtins.readFile",
                    "/var/lib/app/db-pass",
                    Some("db"),
                    Some("passwordFile")
                ),
                ("lib.fileContents", "/etc/secrets/token", None, None),
                ("import", "./secrets.nix", None, None),
                (
                    "builtins.readFile",
                    "config.sops.secrets.x.path",
                    None,
                    Some("keyFile")
                ),
            ]
        );
    }
}
