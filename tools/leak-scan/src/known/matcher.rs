//! Matching: a loaded, verified fingerprint file and the scan that hashes
//! the candidate tokens of some content against it.

use std::collections::{HashMap, HashSet};

use hmac::Hmac;
use sha2::Sha256;

use super::format::{check_value, fingerprint, keyed, FingerprintFile, Kind, ALGORITHM, FORMAT};
use super::tokens::{dotted_quads, parse_ip, tokens, Tokenizer, ALL_TOKENIZERS};

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
