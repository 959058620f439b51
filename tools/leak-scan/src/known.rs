//! Instance rules without plaintext. `enroll` turns the instance's secret
//! values, domains, addresses and e-mail addresses into salted keyed hashes
//! (HMAC-SHA-256 keyed by a random salt kept in the file, truncated to 128
//! bits) of every form a leak may take: the raw value, each significant line
//! of a multi-line value (a PEM body line), its base64, base64url and hex
//! forms and their 64- and 76-column lines. The file records each form's
//! length and tokenizer, so that a scan hashes only the tokens whose shape
//! and length can match, and reports a hit without ever knowing the value.
//!
//! Anyone holding the file can test guesses at HMAC speed: that is harmless
//! for random secrets and not for short passwords or names, hence the
//! warnings at enrollment.

use std::collections::{HashMap, HashSet};
use std::net::IpAddr;

use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD};
use base64::Engine as _;
use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;

use crate::rules::{INSTANCE_ADDRESS, INSTANCE_DOMAIN, INSTANCE_EMAIL, INSTANCE_SECRET};

pub const FORMAT: &str = "leak-scan-fingerprints";
pub const ALGORITHM: &str = "hmac-sha256-128";
/// Shorter values match too much generic text to be enrolled at all.
pub const MIN_SECRET_LEN: usize = 8;
/// Lines of a multi-line value shorter than this are not significant.
pub const MIN_LINE_LEN: usize = 20;
/// Below this estimated entropy a value's hash can be brute-forced.
pub const LOW_ENTROPY_BITS: f64 = 64.0;

/// Why a fingerprint file cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum KnownError {
    #[error(transparent)]
    Io(#[from] std::io::Error),
    /// Not JSON, truncated, or the wrong shape.
    #[error("not a valid fingerprint file: {0}")]
    Parse(String),
    /// Written by a different tool or version.
    #[error("unsupported fingerprint file: {0}")]
    Unsupported(String),
    /// The integrity check does not match the entries (edited or corrupt).
    #[error("the fingerprint file's check value does not match its entries (corrupt or edited)")]
    CheckMismatch,
}

/// What an enrolled value is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    Secret,
    Domain,
    Address,
    Email,
}

impl Kind {
    pub fn rule_id(self) -> &'static str {
        match self {
            Kind::Secret => INSTANCE_SECRET,
            Kind::Domain => INSTANCE_DOMAIN,
            Kind::Address => INSTANCE_ADDRESS,
            Kind::Email => INSTANCE_EMAIL,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Kind::Secret => "secret",
            Kind::Domain => "domain",
            Kind::Address => "address",
            Kind::Email => "email",
        }
    }

    fn tag(self) -> &'static [u8] {
        match self {
            Kind::Secret => b"v",
            Kind::Domain => b"h",
            Kind::Address => b"i",
            Kind::Email => b"e",
        }
    }
}

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

const ALL_TOKENIZERS: [Tokenizer; 6] = [
    Tokenizer::Word,
    Tokenizer::Base64,
    Tokenizer::Wide,
    Tokenizer::Host,
    Tokenizer::Email,
    Tokenizer::Ip,
];

impl Tokenizer {
    fn index(self) -> usize {
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
    fn for_secret(form: &[u8]) -> Option<Tokenizer> {
        [Tokenizer::Word, Tokenizer::Base64, Tokenizer::Wide]
            .into_iter()
            .find(|tok| form.iter().all(|b| tok.accepts(*b)))
    }
}

/// One line of the fingerprint file.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct EntryRecord {
    pub label: String,
    pub kind: Kind,
    pub transform: String,
    pub tokenizer: Tokenizer,
    pub len: usize,
    pub fp: String,
}

/// The fingerprint file: no plaintext, only keyed hashes and their shapes.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FingerprintFile {
    pub schema_version: u32,
    pub format: String,
    pub algorithm: String,
    pub salt: String,
    pub entries: Vec<EntryRecord>,
    pub check: String,
}

fn keyed(salt: &[u8]) -> Hmac<Sha256> {
    #[allow(clippy::expect_used)]
    Hmac::<Sha256>::new_from_slice(salt).expect("HMAC accepts keys of any length")
}

fn fingerprint(key: &Hmac<Sha256>, kind: Kind, form: &[u8]) -> [u8; 16] {
    let mut mac = key.clone();
    mac.update(b"leak-scan/fp/v1\0");
    mac.update(kind.tag());
    mac.update(&[0]);
    mac.update(form);
    let full = mac.finalize().into_bytes();
    let mut out = [0u8; 16];
    out.copy_from_slice(&full[..16]);
    out
}

fn check_value(key: &Hmac<Sha256>, entries: &[EntryRecord]) -> String {
    let mut mac = key.clone();
    mac.update(b"leak-scan/check/v1\0");
    for e in entries {
        for part in [
            e.label.as_str(),
            e.kind.name(),
            e.transform.as_str(),
            &format!("{:?}", e.tokenizer),
            &e.len.to_string(),
            e.fp.as_str(),
        ] {
            mac.update(part.as_bytes());
            mac.update(&[0]);
        }
    }
    hex::encode(mac.finalize().into_bytes())
}

/// Estimated entropy of a value in bits, from its length and character classes.
pub fn estimated_bits(value: &[u8]) -> f64 {
    let mut alphabet = 0u32;
    if value.iter().any(u8::is_ascii_lowercase) {
        alphabet += 26;
    }
    if value.iter().any(u8::is_ascii_uppercase) {
        alphabet += 26;
    }
    if value.iter().any(u8::is_ascii_digit) {
        alphabet += 10;
    }
    if value.iter().any(|b| !b.is_ascii_alphanumeric()) {
        alphabet += 33;
    }
    #[allow(clippy::cast_precision_loss)]
    let len = value.len() as f64;
    len * f64::from(alphabet.max(2)).log2()
}

/// Builds a fingerprint file.
pub struct Enroller {
    salt: [u8; 32],
    key: Hmac<Sha256>,
    pub entries: Vec<EntryRecord>,
    seen: HashSet<[u8; 16]>,
    counters: HashMap<Kind, usize>,
    pub warnings: Vec<String>,
}

impl Enroller {
    pub fn new() -> Result<Self, getrandom::Error> {
        let mut salt = [0u8; 32];
        getrandom::getrandom(&mut salt)?;
        Ok(Self::with_salt(salt))
    }

    pub fn with_salt(salt: [u8; 32]) -> Self {
        Enroller {
            key: keyed(&salt),
            salt,
            entries: Vec::new(),
            seen: HashSet::new(),
            counters: HashMap::new(),
            warnings: Vec::new(),
        }
    }

    fn next_label(&mut self, kind: Kind) -> String {
        let n = self.counters.entry(kind).or_insert(0);
        *n += 1;
        format!("{}-{n}", kind.name())
    }

    fn add(&mut self, label: &str, kind: Kind, transform: &str, tokenizer: Tokenizer, form: &[u8]) {
        let fp = fingerprint(&self.key, kind, form);
        if self.seen.insert(fp) {
            self.entries.push(EntryRecord {
                label: label.to_owned(),
                kind,
                transform: transform.to_owned(),
                tokenizer,
                len: form.len(),
                fp: hex::encode(fp),
            });
        }
    }

    /// Enrolls a secret value and its encodings; returns its label, or
    /// `None` when it is too short to enroll.
    pub fn secret(&mut self, origin: &str, value: &str) -> Option<String> {
        let trimmed = value.trim();
        if trimmed.len() < MIN_SECRET_LEN {
            self.warnings.push(format!(
                "{origin}: value of {} bytes is too short to enroll (under {MIN_SECRET_LEN}): it would match ordinary text",
                trimmed.len()
            ));
            return None;
        }
        let label = self.next_label(Kind::Secret);
        let bits = estimated_bits(trimmed.as_bytes());
        if bits < LOW_ENTROPY_BITS {
            self.warnings.push(format!(
                "{origin} ({label}): low-entropy value (about {bits:.0} bits): anyone holding the fingerprint file can brute-force it; rotate it for a random one"
            ));
        }
        let lines: Vec<&str> = trimmed.lines().map(str::trim).collect();
        if lines.len() == 1 {
            if let Some(tok) = Tokenizer::for_secret(trimmed.as_bytes()) {
                self.add(&label, Kind::Secret, "raw", tok, trimmed.as_bytes());
            }
        } else {
            let mut body = String::new();
            for line in &lines {
                if line.starts_with("-----") {
                    continue;
                }
                if !line.contains(':') {
                    body.push_str(line);
                }
                if line.len() >= MIN_LINE_LEN {
                    if let Some(tok) = Tokenizer::for_secret(line.as_bytes()) {
                        self.add(&label, Kind::Secret, "line", tok, line.as_bytes());
                    }
                }
            }
            if body.len() >= MIN_LINE_LEN && body.len() != lines.first().map_or(0, |l| l.len()) {
                if let Some(tok) = Tokenizer::for_secret(body.as_bytes()) {
                    self.add(&label, Kind::Secret, "joined-lines", tok, body.as_bytes());
                }
            }
        }
        // Encodings of the value as written and of the value with a final newline.
        let mut with_newline = zeroize::Zeroizing::new(trimmed.to_owned());
        with_newline.push('\n');
        let raw_forms: [(&str, &[u8]); 2] = [
            ("", trimmed.as_bytes()),
            ("+newline", with_newline.as_bytes()),
        ];
        for (suffix, bytes) in raw_forms {
            let encodings: [(&str, zeroize::Zeroizing<String>); 6] = [
                ("base64", STANDARD.encode(bytes).into()),
                ("base64-unpadded", STANDARD_NO_PAD.encode(bytes).into()),
                ("base64url", URL_SAFE.encode(bytes).into()),
                ("base64url-unpadded", URL_SAFE_NO_PAD.encode(bytes).into()),
                ("hex", hex::encode(bytes).into()),
                ("hex-upper", hex::encode_upper(bytes).into()),
            ];
            for (name, form) in &encodings {
                let transform = format!("{name}{suffix}");
                if let Some(tok) = Tokenizer::for_secret(form.as_bytes()) {
                    self.add(&label, Kind::Secret, &transform, tok, form.as_bytes());
                }
            }
            let b64 = &encodings[0].1;
            for width in [64usize, 76] {
                if b64.len() <= width {
                    continue;
                }
                for chunk in b64.as_bytes().chunks(width) {
                    if chunk.len() >= MIN_LINE_LEN {
                        self.add(
                            &label,
                            Kind::Secret,
                            &format!("base64-{width}-line{suffix}"),
                            Tokenizer::Base64,
                            chunk,
                        );
                    }
                }
            }
        }
        Some(label)
    }

    /// Enrolls a domain name (matched with all its subdomains).
    pub fn domain(&mut self, name: &str) -> Option<String> {
        let name = name.trim().trim_end_matches('.').to_ascii_lowercase();
        if name.is_empty() || !name.contains('.') {
            return None;
        }
        let label = self.next_label(Kind::Domain);
        self.add(
            &label,
            Kind::Domain,
            "lowercase",
            Tokenizer::Host,
            name.as_bytes(),
        );
        Some(label)
    }

    pub fn address(&mut self, ip: IpAddr) -> String {
        let label = self.next_label(Kind::Address);
        self.add(
            &label,
            Kind::Address,
            "canonical",
            Tokenizer::Ip,
            ip.to_string().as_bytes(),
        );
        label
    }

    pub fn email(&mut self, address: &str) -> String {
        let address = address.trim().to_ascii_lowercase();
        let label = self.next_label(Kind::Email);
        self.add(
            &label,
            Kind::Email,
            "lowercase",
            Tokenizer::Email,
            address.as_bytes(),
        );
        label
    }

    pub fn finish(self) -> FingerprintFile {
        let check = check_value(&self.key, &self.entries);
        FingerprintFile {
            schema_version: 1,
            format: FORMAT.to_owned(),
            algorithm: ALGORITHM.to_owned(),
            salt: hex::encode(self.salt),
            entries: self.entries,
            check,
        }
    }
}

/// An enrolled entry, ready to match.
#[derive(Debug, Clone)]
pub struct Entry {
    pub label: String,
    pub kind: Kind,
    pub transform: String,
    pub fp: [u8; 16],
}

/// A match of an entry in some content (byte offsets).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KnownMatch {
    pub entry: usize,
    pub start: usize,
    pub end: usize,
}

/// A loaded fingerprint file.
pub struct KnownSet {
    key: Hmac<Sha256>,
    pub entries: Vec<Entry>,
    by_fp: HashMap<[u8; 16], usize>,
    /// Per tokenizer: which token lengths can match.
    lengths: [HashSet<usize>; 6],
    /// Hash of the file's text, which keys the clean-blob cache.
    pub digest: [u8; 32],
}

impl KnownSet {
    pub fn load(path: &std::path::Path) -> Result<Self, KnownError> {
        let text = fs_err::read(path)?;
        Self::parse(&text)
    }

    pub fn parse(text: &[u8]) -> Result<Self, KnownError> {
        use sha2::Digest as _;
        let file: FingerprintFile =
            serde_json::from_slice(text).map_err(|err| KnownError::Parse(err.to_string()))?;
        if file.format != FORMAT || file.schema_version != 1 {
            return Err(KnownError::Unsupported(format!(
                "format `{}` version {}",
                file.format, file.schema_version
            )));
        }
        if file.algorithm != ALGORITHM {
            return Err(KnownError::Unsupported(format!(
                "algorithm `{}`",
                file.algorithm
            )));
        }
        let salt =
            hex::decode(&file.salt).map_err(|err| KnownError::Parse(format!("salt: {err}")))?;
        if salt.len() < 16 {
            return Err(KnownError::Parse("salt shorter than 16 bytes".to_owned()));
        }
        let key = keyed(&salt);
        if check_value(&key, &file.entries) != file.check {
            return Err(KnownError::CheckMismatch);
        }
        let mut entries = Vec::with_capacity(file.entries.len());
        let mut by_fp = HashMap::new();
        let mut lengths: [HashSet<usize>; 6] = Default::default();
        for record in file.entries {
            let mut fp = [0u8; 16];
            hex::decode_to_slice(&record.fp, &mut fp)
                .map_err(|err| KnownError::Parse(format!("entry fingerprint: {err}")))?;
            by_fp.insert(fp, entries.len());
            lengths[record.tokenizer.index()].insert(record.len);
            entries.push(Entry {
                label: record.label,
                kind: record.kind,
                transform: record.transform,
                fp,
            });
        }
        Ok(KnownSet {
            key,
            entries,
            by_fp,
            lengths,
            digest: sha2::Sha256::digest(text).into(),
        })
    }

    fn lookup(&self, kind: Kind, form: &[u8], start: usize, end: usize, out: &mut Vec<KnownMatch>) {
        if let Some(entry) = self.by_fp.get(&fingerprint(&self.key, kind, form)) {
            if self.entries[*entry].kind == kind {
                out.push(KnownMatch {
                    entry: *entry,
                    start,
                    end,
                });
            }
        }
    }

    /// Hashes the candidate tokens of `data` whose shape and length can match.
    pub fn scan(&self, data: &[u8]) -> Vec<KnownMatch> {
        let mut out = Vec::new();
        let mut lower = Vec::new();
        for tok in ALL_TOKENIZERS {
            let lengths = &self.lengths[tok.index()];
            if lengths.is_empty() {
                continue;
            }
            for (start, end) in tokens(data, tok) {
                let token = &data[start..end];
                match tok {
                    Tokenizer::Word | Tokenizer::Base64 | Tokenizer::Wide => {
                        if lengths.contains(&token.len()) {
                            self.lookup(Kind::Secret, token, start, end, &mut out);
                        }
                        // `name=value` and `name:value` inside one token.
                        if tok != Tokenizer::Word {
                            if let Some(cut) = token.iter().position(|b| *b == b'=' || *b == b':') {
                                let rest = &token[cut + 1..];
                                if !rest.is_empty() && lengths.contains(&rest.len()) {
                                    self.lookup(Kind::Secret, rest, start + cut + 1, end, &mut out);
                                }
                            }
                        }
                    }
                    Tokenizer::Host => {
                        let trimmed_start = token.iter().position(|b| *b != b'.' && *b != b'-');
                        let Some(lead) = trimmed_start else { continue };
                        let tail = token
                            .iter()
                            .rposition(|b| *b != b'.' && *b != b'-')
                            .unwrap_or(0);
                        let host = &token[lead..=tail];
                        if memchr::memchr(b'.', host).is_none() {
                            continue;
                        }
                        lower.clear();
                        lower.extend(host.iter().map(u8::to_ascii_lowercase));
                        let host_start = start + lead;
                        // Every run of whole labels: parent domains (`a.b.d` → `b.d`) and
                        // names followed by more labels (`mail.d.nix`, a file name).
                        let mut starts = vec![0];
                        let mut ends = Vec::new();
                        for dot in memchr::memchr_iter(b'.', &lower) {
                            starts.push(dot + 1);
                            ends.push(dot);
                        }
                        ends.push(lower.len());
                        for &from in &starts {
                            for &to in &ends {
                                if to > from && lengths.contains(&(to - from)) {
                                    let name = &lower[from..to];
                                    self.lookup(
                                        Kind::Domain,
                                        name,
                                        host_start + from,
                                        host_start + to,
                                        &mut out,
                                    );
                                }
                            }
                        }
                    }
                    Tokenizer::Email => {
                        if memchr::memchr(b'@', token).is_none() {
                            continue;
                        }
                        let trimmed: &[u8] = token.strip_suffix(b".").unwrap_or(token);
                        if lengths.contains(&trimmed.len()) {
                            lower.clear();
                            lower.extend(trimmed.iter().map(u8::to_ascii_lowercase));
                            self.lookup(
                                Kind::Email,
                                &lower,
                                start,
                                start + trimmed.len(),
                                &mut out,
                            );
                        }
                    }
                    Tokenizer::Ip => {
                        if let Some(ip) = parse_ip(token) {
                            let canonical = ip.to_string();
                            self.lookup(Kind::Address, canonical.as_bytes(), start, end, &mut out);
                        } else {
                            // An IPv4 address run into hex-looking text, as in a
                            // file name (`192.0.2.7.conf`, `a.192.0.2.7.bad`).
                            for (from, to) in dotted_quads(token) {
                                if let Ok(ip) = std::str::from_utf8(&token[from..to])
                                    .unwrap_or_default()
                                    .parse::<std::net::Ipv4Addr>()
                                {
                                    let canonical = ip.to_string();
                                    self.lookup(
                                        Kind::Address,
                                        canonical.as_bytes(),
                                        start + from,
                                        start + to,
                                        &mut out,
                                    );
                                }
                            }
                        }
                    }
                }
            }
        }
        out.sort_by_key(|m| (m.start, m.entry));
        out.dedup_by_key(|m| (m.start, m.entry));
        out
    }
}

/// Every run of four dot-separated decimal groups inside a token, as byte
/// ranges: the candidates for an IPv4 address inside a longer name.
fn dotted_quads(token: &[u8]) -> Vec<(usize, usize)> {
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
fn parse_ip(token: &[u8]) -> Option<IpAddr> {
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
fn tokens(data: &[u8], tok: Tokenizer) -> impl Iterator<Item = (usize, usize)> + '_ {
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

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn set(enroll: impl FnOnce(&mut Enroller)) -> (KnownSet, String) {
        let mut enroller = Enroller::with_salt([7; 32]);
        enroll(&mut enroller);
        let file = enroller.finish();
        let text = serde_json::to_string_pretty(&file).unwrap();
        (KnownSet::parse(text.as_bytes()).unwrap(), text)
    }

    fn labels(set: &KnownSet, data: &str) -> Vec<String> {
        set.scan(data.as_bytes())
            .iter()
            .map(|m| {
                format!(
                    "{}:{}",
                    set.entries[m.entry].label, set.entries[m.entry].transform
                )
            })
            .collect()
    }

    // Split so that this file does not hold what `leak-scan` finds.
    const PEM: &str = concat!("-----BEGIN PRIVATE", " KEY-----\nMC4CAQAwBQYDK2VwBCIEIGyp3Z1ZJ1j8tXxpr4QZb7n2uKh9Lm0aF4eT5cS1dQwR\nmN2sQ9vX3bT7kL1pZ8yR4wE6uI0oP2aS5dF7gH9jK3l=\n-----END PRIVATE KEY-----\n");

    #[test]
    fn the_file_holds_no_plaintext_and_finds_every_form() {
        let value = "Vx9-kQ2mZ7pL4wR8tY3nB6cD";
        let (set, text) = set(|e| {
            e.secret("a.yaml:db", value).unwrap();
            e.secret("a.yaml:key", PEM).unwrap();
            e.domain("Fabrikam.test.");
            e.address("192.0.2.7".parse().unwrap());
            e.email("ops@fabrikam.test");
        });
        assert!(!text.contains(value));
        assert!(!text.contains("MC4CAQAw"));
        assert!(!text.to_ascii_lowercase().contains("fabrikam"));
        assert!(!text.contains("192.0.2.7"));
        assert_eq!(
            labels(&set, &format!("pw = \"{value}\";")),
            ["secret-1:raw"]
        );
        assert_eq!(labels(&set, &format!("pw={value}")), ["secret-1:raw"]);
        let b64 = STANDARD.encode(value);
        assert_eq!(labels(&set, &format!("x: {b64}")), ["secret-1:base64"]);
        assert_eq!(labels(&set, &hex::encode(value)), ["secret-1:hex"]);
        let nix = "  key = ''\n    MC4CAQAwBQYDK2VwBCIEIGyp3Z1ZJ1j8tXxpr4QZb7n2uKh9Lm0aF4eT5cS1dQwR\n  '';";
        assert_eq!(labels(&set, nix), ["secret-2:line"]);
        let json = concat!(
            "{\"k\": \"-----BEGIN PRIVATE",
            " KEY-----\\nMC4CAQAwBQYDK2VwBCIEIGyp3Z1ZJ1j8tXxpr4QZb7n2uKh9Lm0aF4eT5cS1dQwR\\n\"}"
        );
        assert_eq!(labels(&set, json), ["secret-2:line"]);
        let wrapped = STANDARD.encode(PEM);
        let wrapped: Vec<String> = wrapped
            .as_bytes()
            .chunks(76)
            .map(|c| String::from_utf8(c.to_vec()).unwrap())
            .collect();
        assert!(labels(&set, &wrapped.join("\n"))
            .iter()
            .any(|l| l.contains("base64-76-line")));
        assert_eq!(
            labels(&set, "see https://git.FABRIKAM.test/x"),
            ["domain-1:lowercase"]
        );
        assert_eq!(
            labels(&set, "hosts.\"web.fabrikam.test\" = {"),
            ["domain-1:lowercase"]
        );
        assert_eq!(labels(&set, "ip 192.0.2.7:22"), ["address-1:canonical"]);
        assert!(labels(&set, "mail ops@fabrikam.test.").contains(&"email-1:lowercase".to_owned()));
        assert_eq!(
            labels(&set, "hosts/mail.fabrikam.test.nix"),
            ["domain-1:lowercase"]
        );
        assert!(labels(&set, "fabrikam.testing notfabrikam.test 192.0.2.70").is_empty());
        for name in [
            "192.0.2.7",
            "hosts/192.0.2.7.nix",
            "hosts/192.0.2.7.conf",
            "hosts/192.0.2.7/default.nix",
            "hosts/node.192.0.2.7.bad",
            "dead.beef.192.0.2.7",
        ] {
            assert_eq!(labels(&set, name), ["address-1:canonical"], "{name}");
        }
        for name in ["hosts/192.0.2.70.conf", "1192.0.2.7.conf", "v10.192.0.2.7e"] {
            assert!(labels(&set, name).is_empty(), "{name}");
        }
    }

    #[test]
    fn short_and_weak_values_warn() {
        let mut e = Enroller::with_salt([1; 32]);
        assert!(e.secret("a", "22").is_none());
        assert!(e.secret("b", "password1").is_some());
        assert_eq!(e.warnings.len(), 2);
        assert!(e.secret("c", "Vx9-kQ2mZ7pL4wR8tY3nB6cD").is_some());
        assert_eq!(e.warnings.len(), 2);
    }

    #[test]
    fn corrupt_and_truncated_files_are_refused() {
        let (_, text) = set(|e| {
            e.domain("fabrikam.test");
        });
        assert!(matches!(
            KnownSet::parse(&text.as_bytes()[..text.len() / 2]),
            Err(KnownError::Parse(_))
        ));
        let edited = text.replacen("\"domain-1\"", "\"domain-2\"", 1);
        assert!(matches!(
            KnownSet::parse(edited.as_bytes()),
            Err(KnownError::CheckMismatch)
        ));
    }
}
