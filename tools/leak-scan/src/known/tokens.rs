//! How scanned text is cut into candidate tokens. Each fingerprint records
//! its tokenizer, so a scan hashes only the tokens whose shape can match.

use std::net::IpAddr;

use serde::{Deserialize, Serialize};

/// How the scanner cuts text into candidate tokens for a form.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Tokenizer {
    /// Runs of `[A-Za-z0-9_-]`.
    Word,
    /// Runs of `[A-Za-z0-9+/=_-]`.
    Base64,
    /// Runs of anything but whitespace, quotes and backticks.
    Wide,
    /// Runs of `[A-Za-z0-9.-]`, lower-cased, with every parent domain.
    Host,
    /// Runs of `[A-Za-z0-9._%+@-]` holding an `@`, lower-cased.
    Email,
    /// Runs of `[0-9A-Fa-f.:]`, parsed and printed canonically.
    Ip,
}

pub(super) const ALL_TOKENIZERS: [Tokenizer; 6] = [
    Tokenizer::Word,
    Tokenizer::Base64,
    Tokenizer::Wide,
    Tokenizer::Host,
    Tokenizer::Email,
    Tokenizer::Ip,
];

impl Tokenizer {
    pub(super) fn index(self) -> usize {
        self as usize
    }

    fn accepts(self, b: u8) -> bool {
        match self {
            Tokenizer::Word => b.is_ascii_alphanumeric() || b == b'_' || b == b'-',
            Tokenizer::Base64 => {
                b.is_ascii_alphanumeric() || matches!(b, b'+' | b'/' | b'=' | b'_' | b'-')
            }
            Tokenizer::Wide => {
                !(b.is_ascii_whitespace() || matches!(b, b'"' | b'\'' | b'`' | b'\\'))
            }
            Tokenizer::Host => b.is_ascii_alphanumeric() || b == b'.' || b == b'-',
            Tokenizer::Email => {
                b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'%' | b'+' | b'@' | b'-')
            }
            Tokenizer::Ip => b.is_ascii_hexdigit() || b == b'.' || b == b':',
        }
    }

    /// The finest tokenizer that keeps `form` in one token.
    pub(super) fn for_secret(form: &[u8]) -> Option<Tokenizer> {
        [Tokenizer::Word, Tokenizer::Base64, Tokenizer::Wide]
            .into_iter()
            .find(|tok| form.iter().all(|b| tok.accepts(*b)))
    }
}

/// Every run of four dot-separated decimal groups inside a token, as byte
/// ranges: the candidates for an IPv4 address inside a longer name.
pub(super) fn dotted_quads(token: &[u8]) -> Vec<(usize, usize)> {
    // Decimal groups (start, end) of each maximal run of digits and dots.
    let mut out = Vec::new();
    let mut groups: Vec<(usize, usize)> = Vec::new();
    let mut i = 0;
    while i <= token.len() {
        let at_digit = token.get(i).is_some_and(u8::is_ascii_digit);
        if at_digit {
            let from = i;
            while token.get(i).is_some_and(u8::is_ascii_digit) {
                i += 1;
            }
            // A group continues the run only right after a single dot.
            let continues = groups
                .last()
                .is_some_and(|&(_, end)| end + 1 == from && token[end] == b'.');
            let boundary = from == 0 || !token[from - 1].is_ascii_alphanumeric();
            if !continues {
                groups.clear();
                if !boundary && token[from - 1] != b'.' {
                    continue;
                }
            }
            groups.push((from, i));
            if groups.len() >= 4 {
                let first = groups[groups.len() - 4].0;
                let after = token.get(i);
                if !after.is_some_and(u8::is_ascii_alphanumeric) || after == Some(&b'.') {
                    out.push((first, i));
                }
            }
        } else {
            i += 1;
        }
    }
    out
}

/// Parses an address token, tolerating a `:port` after an IPv4 address.
pub(super) fn parse_ip(token: &[u8]) -> Option<IpAddr> {
    if !token.iter().any(u8::is_ascii_digit) || token.len() < 7 {
        return None;
    }
    let text = std::str::from_utf8(token).ok()?;
    let text = text.trim_matches(|c| c == '.' || c == ':');
    if let Ok(ip) = text.parse::<IpAddr>() {
        return Some(ip);
    }
    let (host, _port) = text.rsplit_once(':')?;
    host.parse::<std::net::Ipv4Addr>().ok().map(IpAddr::V4)
}

/// Maximal runs of bytes the tokenizer accepts. A `\n`, `\r` or `\t`
/// escape sequence counts as a delimiter, so that JSON-escaped PEM bodies
/// split into their lines.
pub(super) fn tokens(data: &[u8], tok: Tokenizer) -> impl Iterator<Item = (usize, usize)> + '_ {
    let mut i = 0;
    std::iter::from_fn(move || {
        while i < data.len() {
            if data[i] == b'\\' && matches!(data.get(i + 1), Some(b'n' | b'r' | b't')) {
                i += 2;
                continue;
            }
            if tok.accepts(data[i]) {
                break;
            }
            i += 1;
        }
        if i >= data.len() {
            return None;
        }
        let start = i;
        while i < data.len() && tok.accepts(data[i]) {
            if data[i] == b'\\' {
                break;
            }
            i += 1;
        }
        Some((start, i))
    })
}
