//! Where the domain occurs in a text: on name boundaries and in any letter
//! case, so that neither `notexample.net` nor `example.network` counts.

use super::finding::FindingKind;

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
pub(super) fn full_name(text: &str, start: usize, end: usize) -> (String, FindingKind) {
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
