//! Enrolment: every form a leaked value may take (raw, per line, base64,
//! hex, wrapped lines), hashed under a fresh salt, with a warning for each
//! value too short or too weak to be protected by its hash.

use std::collections::{HashMap, HashSet};
use std::net::IpAddr;

use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD};
use base64::Engine as _;
use hmac::Hmac;
use sha2::Sha256;

use super::format::{
    check_value, fingerprint, keyed, EntryRecord, FingerprintFile, Kind, ALGORITHM, FORMAT,
};
use super::tokens::Tokenizer;

/// Shorter values match too much generic text to be enrolled at all.
pub const MIN_SECRET_LEN: usize = 8;
/// Lines of a multi-line value shorter than this are not significant.
pub const MIN_LINE_LEN: usize = 20;
/// Below this estimated entropy a value's hash can be brute-forced.
pub const LOW_ENTROPY_BITS: f64 = 64.0;

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
        getrandom::fill(&mut salt)?;
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
