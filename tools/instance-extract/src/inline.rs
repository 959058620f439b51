//! Secrets written into the Nix source, moved into the instance's sops file.
//!
//! A value such as `hashedPassword = "$6$…";` cannot stay in a base that is
//! meant to be public. When its option has a runtime-file form the value is
//! moved: the binding becomes `hashedPasswordFile = config.sops.secrets."…".path;`
//! and the bytes go, encrypted, into `secrets/secrets.yaml`. A user's
//! password hash is declared `neededForUsers`, because NixOS creates users
//! before the ordinary secrets are decrypted. Everything else is refused.

use rnix::SyntaxKind;
use zeroize::Zeroizing;

use crate::nixsrc::{Finding, NixFile};
use crate::rewrite::{self, Edit};

/// A secret moved out of the source; the value lives only in memory.
pub struct InlineSecret {
    /// The sops-nix name: the binding's attribute path, `/`-separated.
    pub name: String,
    pub value: Zeroizing<String>,
    pub needed_for_users: bool,
    /// The runtime-file option that now reads it (`hashedPasswordFile`).
    pub form: &'static str,
    /// `file:line`, for the report.
    pub location: String,
}

/// Options whose inline value has a runtime-file form that holds the same
/// bytes. `users.users.*.password` (plain text) has none: refused.
const FILE_FORMS: [(&str, &str); 5] = [
    ("hashedPassword", "hashedPasswordFile"),
    ("privateKey", "privateKeyFile"),
    ("password", "passwordFile"),
    ("token", "tokenFile"),
    ("secretKey", "secretKeyFile"),
];

/// The edits and the moved secret for a literal secret that is the whole
/// plain `"…"` value of a binding with a runtime-file form; `None` when it
/// cannot be moved this way.
pub fn plan_move(file: &NixFile, finding: &Finding) -> Option<(Vec<Edit>, InlineSecret)> {
    let token = file
        .root
        .token_at_offset(finding.range.start())
        .right_biased()?;
    if token.kind() != SyntaxKind::TOKEN_STRING_CONTENT
        || token.text_range() != finding.range
        || token.text().contains('\\')
    {
        return None;
    }
    let string = token.parent()?;
    let plain = string.first_token().is_some_and(|t| t.text() == "\"");
    let parts = string
        .children_with_tokens()
        .filter(|e| {
            !matches!(
                e.kind(),
                SyntaxKind::TOKEN_STRING_START | SyntaxKind::TOKEN_STRING_END
            )
        })
        .count();
    if string.kind() != SyntaxKind::NODE_STRING || !plain || parts != 1 {
        return None;
    }
    let binding = string.parent()?;
    if binding.kind() != SyntaxKind::NODE_ATTRPATH_VALUE
        || rewrite::binding_value(&binding).as_ref() != Some(&string)
    {
        return None;
    }
    let last = binding
        .children()
        .find(|n| n.kind() == SyntaxKind::NODE_ATTRPATH)?
        .children()
        .last()?;
    let option = last.text().to_string();
    let path = rewrite::full_path(&binding);
    let users = path.starts_with(&["users".to_owned(), "users".to_owned()]);
    if users && option == "password" {
        return None;
    }
    let form = FILE_FORMS.iter().find(|(o, _)| *o == option)?.1;
    let name = path
        .iter()
        .map(|p| p.replace('/', "-"))
        .collect::<Vec<_>>()
        .join("/");
    let edits = vec![
        Edit::replace(last.text_range(), form),
        Edit::replace(
            string.text_range(),
            format!(
                "config.sops.secrets.{}.path",
                fromgit_nix::literal::string(&name)
            ),
        ),
    ];
    Some((
        edits,
        InlineSecret {
            name,
            value: Zeroizing::new(token.text().to_owned()),
            needed_for_users: users,
            form,
            location: format!("{}:{}", file.relative.display(), finding.line),
        },
    ))
}
