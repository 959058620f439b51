//! What a scan reports: one place in the base that carries instance data,
//! what kind it is, where it sits in the syntax, and the key that accepts it.

use std::path::PathBuf;

use rnix::TextRange;
use serde::Serialize;

use super::file::NixFile;

/// What kind of instance specific a finding is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum FindingKind {
    /// The domain or a name under it, in a string or URI.
    Domain,
    /// An e-mail address under the domain.
    Email,
    /// The domain in a comment.
    Comment,
    /// A host path given with `--secret`.
    SecretPath,
    /// Another path under a directory that holds secrets.
    SecretDirectory,
    /// An IP address literal in a string.
    IpAddress,
    /// An e-mail address outside the domain (the operator's, the ACME
    /// account's): an instance fact.
    ForeignEmail,
    /// A secret written into the Nix source itself.
    LiteralSecret,
    /// A value that looks like key material but is public (an SSH public
    /// key, an age recipient, a hash): reported, never a reason to refuse.
    PublicValue,
    /// A literal the operator accepted in `instance-extract.toml`.
    Accepted,
    /// A secret read while the configuration is evaluated
    /// (`builtins.readFile`, `import` of a secret file).
    EvalTimeRead,
}

/// One place in the base that carries instance data.
#[derive(Debug, Clone, Serialize)]
pub struct Finding {
    pub kind: FindingKind,
    pub file: PathBuf,
    pub line: usize,
    pub column: usize,
    /// What was found: the name, the path, or for literal secrets only their
    /// shape and length (never the value).
    pub detail: String,
    /// The `--secret` name for secret paths.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub secret: Option<String>,
    /// Why a literal is judged public or secret, or why a finding is left.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// For literals: `sha256:<hex>` of the value, the key that accepts the
    /// finding in `instance-extract.toml` (it stops matching when the value
    /// changes).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub accept_key: Option<String>,
    /// The option a literal is bound to (`hashedPassword`), for the hint.
    #[serde(skip)]
    pub option: Option<String>,
    #[serde(skip)]
    pub range: TextRange,
    #[serde(skip)]
    pub context: Context,
}

/// Where a finding sits in the syntax, which decides how it is rewritten.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Context {
    /// Inside the content of a string (`"…"` or `''…''`).
    #[default]
    StringContent,
    /// A whole string node whose content is exactly the match (range covers the quotes).
    WholeString,
    /// An unquoted URI literal (range covers the token).
    Uri,
    /// An absolute path literal (range covers the node).
    PathLiteral,
    /// A comment.
    Comment,
}

/// What to look for.
pub struct Needles<'a> {
    pub domain: &'a str,
    /// `(name, host path)` pairs from `--secret`.
    pub secrets: &'a [(String, String)],
}

/// A finding at `range` of `file`, with its line and column.
pub(super) fn new_finding(
    file: &NixFile,
    kind: FindingKind,
    range: TextRange,
    detail: String,
    context: Context,
) -> Finding {
    let (line, column) = file.line_column(usize::from(range.start()));
    Finding {
        kind,
        file: file.relative.clone(),
        line,
        column,
        detail,
        secret: None,
        reason: None,
        accept_key: None,
        option: None,
        range,
        context,
    }
}
