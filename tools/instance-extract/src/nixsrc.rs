//! Nix source files, parsed losslessly (rnix keeps every byte, whitespace
//! and comments included), and the instance specifics found in them.
//!
//! Findings carry byte ranges into the original text, so a rewrite can
//! replace exactly those bytes and leave every other byte of the file as it
//! was.

use std::path::{Path, PathBuf};

use rnix::{SyntaxKind, SyntaxNode, TextRange};
use serde::Serialize;

/// A Nix file of the base, with its text and parse tree.
pub struct NixFile {
    /// Path relative to the base directory.
    pub relative: PathBuf,
    pub text: String,
    pub root: SyntaxNode,
    /// Byte offset where each line starts: a position is a binary search,
    /// not a count of the newlines before it (a file with tens of thousands
    /// of findings made that quadratic).
    line_starts: Vec<usize>,
}

/// Why the base could not be read.
#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    #[error("`{path}` line {line}, column {column}: Nix syntax error ({reason})")]
    Syntax {
        path: PathBuf,
        line: usize,
        column: usize,
        reason: String,
    },
    #[error("`{path}` line {line}: nested deeper than {limit} levels; refused rather than risk the parser's stack")]
    TooDeep {
        path: PathBuf,
        line: usize,
        limit: usize,
    },
    #[error("`{path}` is a symbolic link to `{target}`, outside the base; `apply` would copy it into the base (replace it with the file itself or drop it)")]
    SymlinkOutside { path: PathBuf, target: PathBuf },
    #[error(transparent)]
    Io(#[from] std::io::Error),
}

/// 1-based line and column of a byte offset.
pub fn line_column(text: &str, offset: usize) -> (usize, usize) {
    let before = &text[..offset.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    (line, column)
}

impl NixFile {
    pub fn parse(base: &Path, relative: PathBuf, text: String) -> Result<Self, SourceError> {
        if let Some(offset) = crate::nesting::too_deep_at(&text) {
            return Err(SourceError::TooDeep {
                path: base.join(&relative),
                line: line_column(&text, offset).0,
                limit: crate::nesting::MAX_NESTING,
            });
        }
        let parse = rnix::Root::parse(&text);
        if let Some(error) = parse.errors().first() {
            let offset = match error {
                rnix::ParseError::Unexpected(range)
                | rnix::ParseError::UnexpectedExtra(range)
                | rnix::ParseError::UnexpectedWanted(_, range, _)
                | rnix::ParseError::UnexpectedDoubleBind(range)
                | rnix::ParseError::DuplicatedArgs(range, _) => usize::from(range.start()),
                _ => text.len(),
            };
            let (line, column) = line_column(&text, offset);
            return Err(SourceError::Syntax {
                path: base.join(&relative),
                line,
                column,
                reason: error.to_string(),
            });
        }
        let root = parse.syntax();
        let line_starts = std::iter::once(0)
            .chain(text.match_indices('\n').map(|(at, _)| at + 1))
            .collect();
        Ok(NixFile {
            relative,
            text,
            root,
            line_starts,
        })
    }

    /// 1-based line and column (in characters) of a byte offset.
    pub fn line_column(&self, offset: usize) -> (usize, usize) {
        let offset = offset.min(self.text.len());
        let line = self.line_starts.partition_point(|&start| start <= offset);
        let start = self.line_starts[line - 1];
        let column = self
            .text
            .get(start..offset)
            .map_or(0, |l| l.chars().count())
            + 1;
        (line, column)
    }
}

/// Every `.nix` file under `base` (not `.git`, `result*` or hidden
/// directories), parsed, in path order.
pub fn read_tree(base: &Path) -> Result<Vec<NixFile>, SourceError> {
    let mut paths = Vec::new();
    let root = fs_err::canonicalize(base)?;
    collect(base, &root, base, &mut paths)?;
    paths.sort();
    paths
        .into_iter()
        .map(|relative| {
            let text = fs_err::read_to_string(base.join(&relative))?;
            NixFile::parse(base, relative, text)
        })
        .collect()
}

fn collect(
    base: &Path,
    root: &Path,
    dir: &Path,
    out: &mut Vec<PathBuf>,
) -> Result<(), SourceError> {
    for entry in fs_err::read_dir(dir)? {
        let entry = entry?;
        let path = entry.path();
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.starts_with('.') || name.starts_with("result") {
            continue;
        }
        if entry.file_type()?.is_symlink() {
            let target = fs_err::canonicalize(&path)?;
            if !target.starts_with(root) {
                return Err(SourceError::SymlinkOutside { path, target });
            }
            // A link within the base: its target is read where it lives.
            continue;
        }
        if entry.file_type()?.is_dir() {
            collect(base, root, &path, out)?;
        } else if path.extension().is_some_and(|e| e == "nix") {
            out.push(path.strip_prefix(base).unwrap_or(&path).to_path_buf());
        }
    }
    Ok(())
}

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

fn is_name_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '-' || c == '.'
}

/// `-1:`, the generation suffix of a Nix signing key's name
/// (`cache.example.org-1:…`): the domain ends before it.
fn is_key_name_suffix(rest: &str) -> bool {
    rest.strip_prefix('-').is_some_and(|r| {
        let digits = r.bytes().take_while(u8::is_ascii_digit).count();
        digits > 0 && r[digits..].starts_with(':')
    })
}

/// Occurrences of `domain` in `text` on name boundaries: `ci.example.net`
/// matches `example.net`, `notexample.net` and `example.network` do not.
/// DNS names are case-insensitive, so the match is too; ASCII lower-casing
/// keeps every byte offset.
pub fn domain_matches(text: &str, domain: &str) -> Vec<(usize, usize)> {
    let mut out = Vec::new();
    if domain.is_empty() {
        return out;
    }
    let text = &text.to_ascii_lowercase();
    let domain = &domain.to_ascii_lowercase();
    let mut from = 0;
    while let Some(found) = text[from..].find(domain) {
        let start = from + found;
        let end = start + domain.len();
        let before_ok = text[..start]
            .chars()
            .next_back()
            .is_none_or(|c| c == '.' || !is_name_char(c));
        let after_ok = text[end..].chars().next().is_none_or(|c| {
            !is_name_char(c)
                || (c == '.' && !text[end + 1..].starts_with(|c: char| c.is_ascii_alphanumeric()))
                || is_key_name_suffix(&text[end..])
        });
        if before_ok && after_ok {
            out.push((start, end));
        }
        from = end;
    }
    out
}

/// `text` with every name-bounded occurrence of `domain` replaced.
pub fn replace_domain(text: &str, domain: &str, replacement: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut at = 0;
    for (start, end) in domain_matches(text, domain) {
        out.push_str(&text[at..start]);
        out.push_str(replacement);
        at = end;
    }
    out.push_str(&text[at..]);
    out
}

/// Extends a domain match leftwards over subdomain labels and a mailbox, for
/// the message: `drone.example.net`, `admin@example.net`.
fn full_name(text: &str, start: usize, end: usize) -> (String, FindingKind) {
    let mut begin = start;
    while let Some(c) = text[..begin].chars().next_back() {
        if is_name_char(c) {
            begin -= c.len_utf8();
        } else {
            break;
        }
    }
    let mut kind = FindingKind::Domain;
    if text[..begin].ends_with('@') {
        let mut mailbox = begin - 1;
        while let Some(c) = text[..mailbox].chars().next_back() {
            if c.is_ascii_alphanumeric() || "._%+-".contains(c) {
                mailbox -= c.len_utf8();
            } else {
                break;
            }
        }
        if mailbox < begin - 1 {
            begin = mailbox;
            kind = FindingKind::Email;
        }
    }
    (text[begin..end].trim_start_matches('.').to_owned(), kind)
}

/// Scans one file for every kind of finding.
pub fn scan(file: &NixFile, needles: &Needles<'_>) -> Vec<Finding> {
    let mut findings = Vec::new();
    let mut secret_dirs: Vec<&str> = needles
        .secrets
        .iter()
        .filter_map(|(_, path)| Path::new(path).parent()?.to_str())
        .filter(|dir| dir.len() > 1)
        .collect();
    secret_dirs.sort_unstable();
    secret_dirs.dedup();
    let push =
        |findings: &mut Vec<Finding>, kind, range: TextRange, detail: String, secret, context| {
            let (line, column) = file.line_column(usize::from(range.start()));
            findings.push(Finding {
                kind,
                file: file.relative.clone(),
                line,
                column,
                detail,
                secret,
                reason: None,
                accept_key: None,
                option: None,
                range,
                context,
            });
        };
    for element in file.root.descendants_with_tokens() {
        let Some(token) = element.as_token() else {
            if let Some(node) = element.as_node() {
                if node.kind() == SyntaxKind::NODE_PATH_ABS {
                    let text = node.text().to_string();
                    if let Some((name, _)) = needles.secrets.iter().find(|(_, p)| *p == text) {
                        push(
                            &mut findings,
                            FindingKind::SecretPath,
                            node.text_range(),
                            text,
                            Some(name.clone()),
                            Context::PathLiteral,
                        );
                    } else if secret_dirs
                        .iter()
                        .any(|d| text.starts_with(&format!("{d}/")))
                    {
                        push(
                            &mut findings,
                            FindingKind::SecretDirectory,
                            node.text_range(),
                            text,
                            None,
                            Context::PathLiteral,
                        );
                    }
                }
            }
            continue;
        };
        let kind = token.kind();
        let context = match kind {
            SyntaxKind::TOKEN_STRING_CONTENT => Context::StringContent,
            SyntaxKind::TOKEN_URI => Context::Uri,
            SyntaxKind::TOKEN_COMMENT => Context::Comment,
            _ => continue,
        };
        let text = token.text();
        let base = usize::from(token.text_range().start());
        let at = |start: usize, end: usize| {
            TextRange::new(
                u32::try_from(base + start).unwrap_or(u32::MAX).into(),
                u32::try_from(base + end).unwrap_or(u32::MAX).into(),
            )
        };
        let whole_string = whole_string_range(token);
        for (start, end) in domain_matches(text, needles.domain) {
            let (name, found) = full_name(text, start, end);
            let kind = if context == Context::Comment {
                FindingKind::Comment
            } else {
                found
            };
            let (range, context) = match (context, whole_string) {
                (Context::Uri, _) => (token.text_range(), Context::Uri),
                (Context::StringContent, Some(range)) if start == 0 && end == text.len() => {
                    (range, Context::WholeString)
                }
                _ => (at(start, end), context),
            };
            push(&mut findings, kind, range, name, None, context);
            if context != Context::Comment && text[start..end] != *needles.domain {
                if let Some(finding) = findings.last_mut() {
                    finding.reason = Some(
                        "written in another letter case; the rewritten value takes the instance domain's case"
                            .to_owned(),
                    );
                }
            }
        }
        if context == Context::Comment {
            comment_facts(file, token, needles.domain, &mut findings);
            continue;
        }
        for (name, path) in needles.secrets {
            let mut from = 0;
            while let Some(found) = text[from..].find(path.as_str()) {
                let start = from + found;
                let end = start + path.len();
                let (range, context) = match whole_string {
                    Some(range) if text == path => (range, Context::WholeString),
                    _ => (at(start, end), Context::StringContent),
                };
                push(
                    &mut findings,
                    FindingKind::SecretPath,
                    range,
                    path.clone(),
                    Some(name.clone()),
                    context,
                );
                from = end;
            }
        }
        for dir in &secret_dirs {
            // `secretDir = "/var/lib/secrets";` then `"${secretDir}/db.pass"`:
            // the secret paths are built, not written, and cannot be rewritten.
            if text.trim_end_matches('/') == *dir {
                findings.push(Finding {
                    reason: Some(
                        "a directory of secrets: paths built from it (`\"${dir}/file\"`) are not rewritten; write the secret paths out so `--secret` finds them"
                            .to_owned(),
                    ),
                    ..new_finding(file, FindingKind::SecretDirectory, at(0, text.len()), text.to_owned(), Context::StringContent)
                });
            }
            for (start, _) in text.match_indices(&format!("{dir}/")) {
                let rest = &text[start..];
                let path: String = rest
                    .chars()
                    .take_while(|c| !c.is_whitespace() && *c != '"' && *c != '\'')
                    .collect();
                if !needles.secrets.iter().any(|(_, p)| *p == path) {
                    push(
                        &mut findings,
                        FindingKind::SecretDirectory,
                        at(start, start + path.len()),
                        path,
                        None,
                        Context::StringContent,
                    );
                }
            }
        }
        facts_and_literals(file, token, whole_string, needles.domain, &mut findings);
    }
    findings.sort_by_key(|f| (f.range.start(), f.kind as u8));
    findings
}

/// A finding at `range` of `file`, with its line and column.
fn new_finding(
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

/// Public addresses and foreign e-mail addresses in a comment; private
/// addresses identify nothing and stay.
fn comment_facts(
    file: &NixFile,
    token: &rnix::SyntaxToken,
    domain: &str,
    findings: &mut Vec<Finding>,
) {
    let text = token.text();
    let base = usize::from(token.text_range().start());
    let mut push = |kind, start: usize, end: usize, detail: String| {
        let range = TextRange::new(
            u32::try_from(base + start).unwrap_or(u32::MAX).into(),
            u32::try_from(base + end).unwrap_or(u32::MAX).into(),
        );
        findings.push(Finding {
            accept_key: Some(accept_key(&detail)),
            ..new_finding(file, kind, range, detail, Context::Comment)
        });
    };
    for address in crate::facts::addresses(text) {
        if address.left_because.is_none() {
            push(
                FindingKind::IpAddress,
                address.start,
                address.end,
                address.text,
            );
        }
    }
    for (start, end, email) in crate::facts::foreign_emails(text, domain) {
        push(FindingKind::ForeignEmail, start, end, email);
    }
}

/// IP addresses, e-mail addresses outside the domain and key material in
/// one string part.
fn facts_and_literals(
    file: &NixFile,
    token: &rnix::SyntaxToken,
    whole_string: Option<TextRange>,
    domain: &str,
    findings: &mut Vec<Finding>,
) {
    let text = token.text();
    let base = usize::from(token.text_range().start());
    let at = |start: usize, end: usize| {
        TextRange::new(
            u32::try_from(base + start).unwrap_or(u32::MAX).into(),
            u32::try_from(base + end).unwrap_or(u32::MAX).into(),
        )
    };
    let whole = |start: usize, end: usize| match whole_string {
        Some(range) if start == 0 && end == text.len() => (range, Context::WholeString),
        _ => (at(start, end), Context::StringContent),
    };
    let option = binding_option(token);
    // `version = "1.2.3.4"` is a version, not an address.
    let is_version = option
        .as_deref()
        .is_some_and(|o| o.to_ascii_lowercase().contains("version"));
    for address in crate::facts::addresses(text) {
        if is_version {
            continue;
        }
        let (range, context) = whole(address.start, address.end);
        findings.push(Finding {
            reason: address.left_because.map(str::to_owned),
            accept_key: Some(accept_key(&address.text)),
            ..new_finding(file, FindingKind::IpAddress, range, address.text, context)
        });
    }
    for (start, end, email) in crate::facts::foreign_emails(text, domain) {
        let (range, context) = whole(start, end);
        findings.push(Finding {
            accept_key: Some(accept_key(&email)),
            ..new_finding(file, FindingKind::ForeignEmail, range, email, context)
        });
    }
    for literal in literals(text, option.as_deref(), whole_string.is_some()) {
        let range = at(literal.start, literal.end);
        findings.push(Finding {
            reason: Some(literal.reason),
            accept_key: Some(accept_key(&text[literal.start..literal.end])),
            option: option.clone(),
            ..new_finding(
                file,
                literal.kind,
                range,
                literal.detail,
                Context::StringContent,
            )
        });
    }
}

/// The range of the whole string node (quotes included) when `token` is its
/// only content part.
fn whole_string_range(token: &rnix::SyntaxToken) -> Option<TextRange> {
    let parent = token.parent()?;
    if parent.kind() != SyntaxKind::NODE_STRING {
        return None;
    }
    let parts = parent
        .children_with_tokens()
        .filter(|e| {
            !matches!(
                e.kind(),
                SyntaxKind::TOKEN_STRING_START | SyntaxKind::TOKEN_STRING_END
            )
        })
        .count();
    // An attribute name must stay a string (`"${…}" = …`), so it is never whole.
    let is_attribute_name = parent
        .parent()
        .is_some_and(|p| p.kind() == SyntaxKind::NODE_ATTRPATH);
    (parts == 1 && !is_attribute_name).then(|| parent.text_range())
}

/// The acceptance key of a literal value: its SHA-256, never the value.
pub fn accept_key(value: &str) -> String {
    use sha2::Digest as _;
    format!(
        "sha256:{}",
        hex::encode(sha2::Sha256::digest(value.as_bytes()))
    )
}

/// The last attribute name of the binding whose value holds `token`
/// (`users.users.alice.hashedPassword = "…"` → `hashedPassword`), when the
/// token is in its value, not its name.
fn binding_option(token: &rnix::SyntaxToken) -> Option<String> {
    let binding = token
        .parent_ancestors()
        .find(|n| n.kind() == SyntaxKind::NODE_ATTRPATH_VALUE)?;
    let path = binding
        .children()
        .find(|n| n.kind() == SyntaxKind::NODE_ATTRPATH)?;
    if path.text_range().contains_range(token.text_range()) {
        return None;
    }
    let last = path.children().last()?;
    Some(last.text().to_string().trim_matches('"').to_owned())
}

/// A literal that looks like key material, with its verdict.
struct Literal {
    kind: FindingKind,
    start: usize,
    end: usize,
    /// Shape and length only, never the value.
    detail: String,
    reason: String,
}

/// Key material in one string part: PEM private keys, password hashes,
/// values of secret-named options, and long high-entropy words, each judged
/// public or secret by [`crate::classify`].
fn literals(text: &str, option: Option<&str>, whole: bool) -> Vec<Literal> {
    use crate::classify::{self, Verdict};
    let secret = |start, end, detail: String, reason: String| Literal {
        kind: FindingKind::LiteralSecret,
        start,
        end,
        detail,
        reason,
    };
    let trimmed = text.trim();
    if classify::is_crypt_hash(trimmed) {
        let start = text.len() - text.trim_start().len();
        return vec![secret(
            start,
            start + trimmed.len(),
            format!("password hash ({} chars)", trimmed.len()),
            "a crypt(3) password hash".to_owned(),
        )];
    }
    let shaped = literal_secrets(text);
    if whole && shaped.is_empty() {
        if let Some(Verdict::Secret(reason)) =
            option.and_then(|o| classify::secret_by_option(o, text))
        {
            return vec![secret(
                0,
                text.len(),
                format!("inline value ({} chars)", text.len()),
                reason,
            )];
        }
    }
    shaped
        .into_iter()
        .map(|(start, end, detail)| {
            let verdict = if detail.starts_with("high-entropy") {
                classify::classify(&text[start..end], &text[..start], option)
            } else {
                Verdict::Secret(detail.clone())
            };
            match verdict {
                Verdict::Public(reason) => Literal {
                    kind: FindingKind::PublicValue,
                    start,
                    end,
                    detail: format!("public value ({} chars)", end - start),
                    reason,
                },
                Verdict::Secret(reason) => secret(start, end, detail, reason),
            }
        })
        .collect()
}

/// PEM private keys, age secret keys and long high-entropy tokens. The detail
/// names the shape and length only.
fn literal_secrets(text: &str) -> Vec<(usize, usize, String)> {
    let mut out = Vec::new();
    if let Some(start) = text.find("-----BEGIN ") {
        if text[start..].starts_with("-----BEGIN OPENSSH PRIVATE KEY")
            || text[start..]
                .lines()
                .next()
                .is_some_and(|l| l.contains("PRIVATE KEY"))
        {
            let end = text[start..]
                .find("-----END ")
                .map_or(text.len(), |e| start + e);
            out.push((
                start,
                end,
                format!("PEM private key ({} bytes)", end - start),
            ));
        }
    }
    for (start, word) in tokens(text) {
        if word.starts_with("AGE-SECRET-KEY-1") {
            out.push((
                start,
                start + word.len(),
                format!("age secret key ({} chars)", word.len()),
            ));
        } else if word.len() >= 32
            && !is_name_path(word)
            && shannon_entropy(word) >= 4.0
            && !word.starts_with('/')
            && !word.contains('.')
        {
            out.push((
                start,
                start + word.len(),
                format!("high-entropy token ({} chars)", word.len()),
            ));
        }
    }
    out
}

/// `networking/wireguard/interfaces/wg0/privateKey`: a path of names (a
/// sops-nix secret name), long but not random. Random base64 has many
/// capitals and digits in each segment.
fn is_name_path(word: &str) -> bool {
    word.matches('/').count() >= 2
        && word.split('/').all(|segment| {
            segment.len() <= 32
                && segment.bytes().filter(u8::is_ascii_uppercase).count() <= 2
                && segment.bytes().filter(u8::is_ascii_digit).count() <= 3
                && !segment.contains(['+', '='])
        })
}

fn tokens(text: &str) -> impl Iterator<Item = (usize, &str)> {
    text.split(|c: char| !(c.is_ascii_alphanumeric() || "+/=_-.".contains(c)))
        .scan(0usize, move |offset, word| {
            let start = *offset;
            *offset += word.len() + 1;
            Some((start, word))
        })
        .filter(|(_, word)| !word.is_empty())
}

#[allow(clippy::cast_precision_loss)] // counts of a short token
fn shannon_entropy(word: &str) -> f64 {
    let mut counts = [0u32; 256];
    for b in word.bytes() {
        counts[usize::from(b)] += 1;
    }
    let len = word.len() as f64;
    counts
        .iter()
        .filter(|&&c| c > 0)
        .map(|&c| {
            let p = f64::from(c) / len;
            -p * p.log2()
        })
        .sum()
}

#[cfg(test)]
mod tests {

    #[test]
    fn positions_from_the_line_index_equal_counted_ones() {
        let text = "{ a = \"é.example.net\";\n\n  b = ''\n    x\n  '';\n}\n";
        let file = NixFile::parse(Path::new("."), "f.nix".into(), text.to_owned()).expect("parses");
        for offset in (0..=text.len()).filter(|o| text.is_char_boundary(*o)) {
            assert_eq!(
                file.line_column(offset),
                line_column(text, offset),
                "offset {offset}"
            );
        }
    }

    use super::*;

    #[test]
    fn domain_matches_respect_name_boundaries() {
        let text = "ci.example.net notexample.net example.network https://example.net/x admin@example.net example.net.";
        let found: Vec<&str> = domain_matches(text, "example.net")
            .into_iter()
            .map(|(s, e)| &text[s..e])
            .collect();
        assert_eq!(found.len(), 4, "{found:?}");
        assert!(is_name_path(
            "networking/wireguard/interfaces/wg0/privateKey"
        ));
        assert!(!is_name_path(
            "Nt1n1igEsHK/DWteidQMRAJmjpUgvmpmjUfUeE/DGGs="
        ));
    }

    #[test]
    fn findings_cover_every_syntactic_place() {
        let text = r#"{ config, ... }:
let host = "drone.example.net"; in {
  # served at example.net
  services.x."hooks.example.net" = { email = "admin@example.net"; };
  y = ''
    server_name example.net;
  '';
  z = [ "a" "https://${host}/example.net" ];
  u = https://example.net/path;
  cert = /var/lib/certs/live/fullchain.pem;
  key = "/var/lib/certs/live/privkey.pem";
  other = "/var/lib/certs/live/chain.pem";
  token = "ghp_aB3dE5fG7hI9jK1lM3nO5pQ7rS9tU1vW3xY5";
  ip = "203.0.113.7";
  version = "1.2.3.4";
}
"#;
        let file = NixFile::parse(Path::new("."), "m.nix".into(), text.to_owned()).expect("parses");
        let secrets = vec![
            (
                "tls/fullchain".to_owned(),
                "/var/lib/certs/live/fullchain.pem".to_owned(),
            ),
            (
                "tls/key".to_owned(),
                "/var/lib/certs/live/privkey.pem".to_owned(),
            ),
        ];
        let findings = scan(
            &file,
            &Needles {
                domain: "example.net",
                secrets: &secrets,
            },
        );
        let kinds: Vec<(FindingKind, usize, &str)> = findings
            .iter()
            .map(|f| (f.kind, f.line, f.detail.as_str()))
            .collect();
        let expect = [
            (FindingKind::Domain, 2, "drone.example.net"),
            (FindingKind::Comment, 3, "example.net"),
            (FindingKind::Domain, 4, "hooks.example.net"),
            (FindingKind::Email, 4, "admin@example.net"),
            (FindingKind::Domain, 6, "example.net"),
            (FindingKind::Domain, 8, "example.net"),
            (FindingKind::Domain, 9, "example.net"),
            (
                FindingKind::SecretPath,
                10,
                "/var/lib/certs/live/fullchain.pem",
            ),
            (
                FindingKind::SecretPath,
                11,
                "/var/lib/certs/live/privkey.pem",
            ),
            (
                FindingKind::SecretDirectory,
                12,
                "/var/lib/certs/live/chain.pem",
            ),
            (
                FindingKind::LiteralSecret,
                13,
                "high-entropy token (40 chars)",
            ),
            (FindingKind::IpAddress, 14, "203.0.113.7"),
        ];
        assert_eq!(kinds, expect);
        let key = findings.iter().find(|f| f.line == 11).expect("key path");
        assert_eq!(key.context, Context::WholeString);
        assert!(
            !format!("{findings:?}").contains("ghp_"),
            "no secret in findings"
        );
    }

    #[test]
    fn syntax_errors_name_file_line_and_column() {
        let err = NixFile::parse(
            Path::new("/base"),
            "bad.nix".into(),
            "{\n  a = ;\n}\n".to_owned(),
        )
        .err()
        .expect("refused");
        let message = err.to_string();
        assert!(
            message.starts_with("`/base/bad.nix` line 2, column"),
            "{message}"
        );
    }
}
