//! The scan of one file: every token and absolute path of its syntax tree,
//! searched for the domain, the `--secret` paths, addresses, foreign e-mail
//! addresses and key material.

use std::path::Path;

use rnix::{SyntaxKind, TextRange};

use super::domain::{domain_matches, full_name};
use super::file::NixFile;
use super::finding::{new_finding, Context, Finding, FindingKind, Needles};
use super::literals::literals;
use crate::accept::accept_key;

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
