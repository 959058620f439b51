//! Key material in a string: PEM private keys, age secret keys, password
//! hashes and long high-entropy words, told apart from public values and
//! from sops-nix secret names, and described by shape and length only.

use super::finding::FindingKind;

/// A literal that looks like key material, with its verdict.
pub(super) struct Literal {
    pub(super) kind: FindingKind,
    pub(super) start: usize,
    pub(super) end: usize,
    /// Shape and length only, never the value.
    pub(super) detail: String,
    pub(super) reason: String,
}

/// Key material in one string part: PEM private keys, password hashes,
/// values of secret-named options, and long high-entropy words, each judged
/// public or secret by [`crate::classify`].
pub(super) fn literals(text: &str, option: Option<&str>, whole: bool) -> Vec<Literal> {
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
    let mut pem = 0..0;
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
            pem = start..end;
        }
    }
    for (start, word) in tokens(text) {
        // The key's base64 lines are the key, already reported whole.
        if pem.contains(&start) {
            continue;
        }
        if word.starts_with("AGE-SECRET-KEY-1") {
            out.push((
                start,
                start + word.len(),
                format!("age secret key ({} chars)", word.len()),
            ));
        } else if word.len() >= 32
            && !is_name_path(word)
            && !is_compound_name(word)
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
pub(super) fn is_name_path(word: &str) -> bool {
    word.matches('/').count() >= 2
        && word.split('/').all(|segment| {
            segment.len() <= 32
                && segment.bytes().filter(u8::is_ascii_uppercase).count() <= 2
                && segment.bytes().filter(u8::is_ascii_digit).count() <= 3
                && !segment.contains(['+', '='])
        })
}

/// `ublock0_raymondhill_net-browser-action`,
/// `google/gemma-4-26B-A4B-it-qat-q4_0-gguf`: a name joined from short words,
/// long but not random. At least half of its runs between separators are
/// lowercase words (a vowel, more letters than digits); random groups such
/// as a Syncthing device id (`TH3WJAP-KYFMHKV-…`) or a UUID have none.
pub(super) fn is_compound_name(word: &str) -> bool {
    let runs: Vec<&str> = word.split(['-', '_', '/', ':']).collect();
    let wordy = |run: &&str| {
        let letters = run.bytes().filter(u8::is_ascii_lowercase).count();
        let digits = run.bytes().filter(u8::is_ascii_digit).count();
        letters + digits == run.len()
            && letters > digits
            && run.bytes().any(|b| b"aeiouy".contains(&b))
    };
    runs.len() >= 3
        && !word.contains(['+', '='])
        && runs.iter().all(|run| run.len() <= 12)
        && runs.iter().filter(|run| wordy(run)).count() * 2 >= runs.len()
}

fn tokens(text: &str) -> impl Iterator<Item = (usize, &str)> {
    text.split(|c: char| !(c.is_ascii_alphanumeric() || "+/=_-.".contains(c)))
        .scan(0usize, move |offset, word| {
            let start = *offset;
            *offset += word.len() + 1;
            Some((start, word))
        })
        .filter(|(_, word)| !word.is_empty())
        .map(|(start, word)| match assigned_value(word) {
            Some(value) => (start + word.len() - value.len(), value),
            None => (start, word),
        })
}

/// The value of `NAME=value` (a shell or environment assignment): only the
/// value can be secret. Base64 has `=` only as trailing padding, so a name
/// followed by `=` and more is never part of one.
fn assigned_value(word: &str) -> Option<&str> {
    let (name, value) = word.split_once('=')?;
    let identifier = name
        .chars()
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
    (identifier && !value.is_empty() && !value.starts_with('=')).then_some(value)
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
