//! Recognising sops files without a key: the encrypted-value marker,
//! whether a text has the shape of a sops file, and which store it is in.
//! For tools that look at many files (leak-scan) before any is parsed.

use crate::file::Format;

pub use crate::cipher::{is_encrypted, ENCRYPTED_PREFIX};

/// Whether the bytes hold an encrypted value anywhere.
pub fn contains_encrypted(data: &[u8]) -> bool {
    memchr::memmem::find(data, ENCRYPTED_PREFIX.as_bytes()).is_some()
}

/// Whether a text has the shape of a sops file: an encrypted value and a
/// top-level `sops` key, in block style (a `sops:` line at column 0) or,
/// in a document that is one flow mapping or JSON object, as a key of it
/// (after a brace or a comma). Prose and source code that only mention
/// sops do not.
pub fn looks_like_sops(data: &[u8]) -> bool {
    if !contains_encrypted(data) {
        return false;
    }
    memchr::memmem::find_iter(data, b"sops").any(|at| {
        let quoted = at > 0 && matches!(data[at - 1], b'"' | b'\'');
        let start = at - usize::from(quoted);
        let mut end = at + 4;
        if quoted && data.get(end) == Some(&data[start]) {
            end += 1;
        } else if quoted {
            return false;
        }
        let after = data[end..].iter().find(|b| !matches!(b, b' ' | b'\t'));
        if after != Some(&b':') {
            return false;
        }
        let block_key = start == 0 || data[start - 1] == b'\n';
        let flow_key = Format::sniff(data) == Format::Json
            && matches!(
                data[..start]
                    .iter()
                    .rev()
                    .find(|b| !b.is_ascii_whitespace()),
                Some(b'{' | b',')
            );
        block_key || flow_key
    })
}

/// A looser test than [`looks_like_sops`]: the text names `sops` and `mac`
/// and holds an encrypted value, wherever they are. For a caller that must
/// fail on a damaged sops file rather than pass over it.
pub fn mentions_sops(text: &str) -> bool {
    text.contains("sops") && text.contains("mac") && contains_encrypted(text.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    const ENCRYPTED: &str = "db:\n    password: ENC[AES256_GCM,data:q83v,iv:AAAA,tag:BBBB,type:str]\nsops:\n    mac: ENC[AES256_GCM,data:q83v,iv:AAAA,tag:BBBB,type:str]\n    version: 3.9.4\n";

    #[test]
    fn encrypted_values_are_recognised_by_their_marker() {
        assert!(is_encrypted(
            "ENC[AES256_GCM,data:q83v,iv:AAAA,tag:BBBB,type:str]"
        ));
        assert!(!is_encrypted("hunter2"));
        assert!(!is_encrypted(" ENC[AES256_GCM,data:x]"));
        assert!(contains_encrypted(b"a: ENC[AES256_GCM,data:x]"));
        assert!(!contains_encrypted(b"a: ENC[AES128,data:x]"));
    }

    #[test]
    fn the_shape_of_a_sops_file() {
        assert!(looks_like_sops(ENCRYPTED.as_bytes()));
        assert!(mentions_sops(ENCRYPTED));
        let nested = "a: ENC[AES256_GCM,data:x]\nb:\n  sops: nested\n  mac: x\n";
        assert!(!looks_like_sops(nested.as_bytes()));
        assert!(mentions_sops(nested));
        assert!(looks_like_sops(
            b"{\n\t\"a\": \"ENC[AES256_GCM,data:x]\",\n\t\"sops\" : {\n\t}\n}"
        ));
        assert!(!looks_like_sops(b"sops:\n  mac: x\n"));
    }

    #[test]
    fn formats_are_sniffed_from_the_first_byte() {
        assert_eq!(Format::sniff(b" \n{\"a\": 1}"), Format::Json);
        assert_eq!(Format::sniff(b"a: 1\n"), Format::Yaml);
        assert_eq!(Format::sniff(b""), Format::Yaml);
        let path = std::path::Path::new("secrets/web.json");
        assert_eq!(Format::of(path, b"a: 1\n"), Format::Json);
        assert_eq!(
            Format::of(std::path::Path::new("secrets/web"), b"{}"),
            Format::Json
        );
    }
}
