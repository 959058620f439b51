//! Reading the certificate chain and the private key from PEM files, and
//! refusing input that is not what it claims to be: an empty file, DER
//! where PEM is expected, a key where the chain should be, an encrypted key.
//!
//! The key's bytes stay in zeroizing buffers and never appear in a message.

use std::path::Path;

use zeroize::Zeroizing;

/// A refusal of the input itself (exit 1), as opposed to an I/O error (exit 2).
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum InputRefusal {
    #[error("`{0}` is empty")]
    Empty(String),
    #[error(
        "`{0}` is not PEM (DER or other binary data?); convert it with `openssl x509 -inform der`"
    )]
    NotPem(String),
    #[error("`{path}` holds a `{label}` block where only certificates belong (a key in the chain file?)")]
    NotACertificate { path: String, label: String },
    #[error(
        "`{path}` holds a `{label}` block where a private key belongs (the chain in the key file?)"
    )]
    NotAKey { path: String, label: String },
    #[error("`{0}` holds {1} private keys; give exactly one")]
    SeveralKeys(String, usize),
    #[error("`{0}` is an encrypted private key; decrypt it first (`openssl pkey -in KEY -out -`), since sops will protect it")]
    EncryptedKey(String),
    #[error("`{0}` has text outside its PEM blocks that is not a PEM block")]
    Garbage(String),
    /// A block begins and never ends: a file cut short.
    #[error("`{0}` holds a truncated PEM block (a `-----BEGIN` line without its `-----END` line)")]
    Truncated(String),
}

/// The chain, leaf first, as DER blocks.
pub struct ChainInput {
    pub der: Vec<Vec<u8>>,
}

/// The private key block: its PEM label and its DER bytes.
pub struct KeyInput {
    pub label: String,
    pub der: Zeroizing<Vec<u8>>,
}

pub enum Read<T> {
    Ok(T),
    Refused(InputRefusal),
}

fn blocks(path: &Path, bytes: &[u8]) -> Result<Vec<pem::Pem>, InputRefusal> {
    let name = path.display().to_string();
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Err(InputRefusal::Empty(name));
    }
    let Ok(text) = std::str::from_utf8(bytes) else {
        return Err(InputRefusal::NotPem(name));
    };
    if !text.contains("-----BEGIN ") {
        return Err(InputRefusal::NotPem(name));
    }
    if text.matches("-----BEGIN ").count() > text.matches("-----END ").count() {
        return Err(InputRefusal::Truncated(name));
    }
    let parsed = pem::parse_many(text).map_err(|_| InputRefusal::NotPem(name.clone()))?;
    if parsed.is_empty() {
        return Err(InputRefusal::NotPem(name));
    }
    // pem skips text between blocks; refuse anything but whitespace and
    // comment-like lines so that a truncated block is not silently dropped.
    let begins = text.matches("-----BEGIN ").count();
    if begins != parsed.len() {
        return Err(InputRefusal::Garbage(name));
    }
    Ok(parsed)
}

pub fn read_chain(path: &Path) -> std::io::Result<Read<ChainInput>> {
    Ok(chain_from_bytes(path, &fs_err::read(path)?))
}

/// The chain in `bytes`, read from `path` (named in refusals).
pub fn chain_from_bytes(path: &Path, bytes: &[u8]) -> Read<ChainInput> {
    let parsed = match blocks(path, bytes) {
        Ok(parsed) => parsed,
        Err(refusal) => return Read::Refused(refusal),
    };
    let mut der = Vec::with_capacity(parsed.len());
    for block in parsed {
        if block.tag() != "CERTIFICATE" {
            return Read::Refused(InputRefusal::NotACertificate {
                path: path.display().to_string(),
                label: block.tag().to_owned(),
            });
        }
        der.push(block.into_contents());
    }
    Read::Ok(ChainInput { der })
}

pub fn read_key(path: &Path) -> std::io::Result<Read<KeyInput>> {
    let bytes = Zeroizing::new(fs_err::read(path)?);
    let name = path.display().to_string();
    if let Ok(text) = std::str::from_utf8(&bytes) {
        // Legacy OpenSSL encryption marks the block with headers, not a label.
        if text.contains("ENCRYPTED") && text.contains("-----BEGIN ") {
            let label_encrypted = text.contains("-----BEGIN ENCRYPTED PRIVATE KEY-----");
            if label_encrypted || text.contains("Proc-Type: 4,ENCRYPTED") {
                return Ok(Read::Refused(InputRefusal::EncryptedKey(name)));
            }
        }
    }
    let parsed = match blocks(path, &bytes) {
        Ok(parsed) => parsed,
        Err(refusal) => return Ok(Read::Refused(refusal)),
    };
    let keys = parsed
        .iter()
        .filter(|b| b.tag().ends_with("PRIVATE KEY"))
        .count();
    if let Some(other) = parsed.iter().find(|b| !b.tag().ends_with("PRIVATE KEY")) {
        return Ok(Read::Refused(InputRefusal::NotAKey {
            path: name,
            label: other.tag().to_owned(),
        }));
    }
    if keys != 1 {
        return Ok(Read::Refused(InputRefusal::SeveralKeys(name, keys)));
    }
    let mut parsed = parsed;
    let block = parsed.remove(0);
    Ok(Read::Ok(KeyInput {
        label: block.tag().to_owned(),
        der: Zeroizing::new(block.into_contents()),
    }))
}

/// PEM with LF endings, 64-column base64 and a trailing newline, built in
/// a zeroizing buffer (the key passes through here).
pub fn normalised_pem(label: &str, der: &[u8]) -> Zeroizing<String> {
    use base64::Engine as _;
    let body = Zeroizing::new(base64::engine::general_purpose::STANDARD.encode(der));
    let mut out = Zeroizing::new(String::with_capacity(body.len() + body.len() / 64 + 64));
    out.push_str("-----BEGIN ");
    out.push_str(label);
    out.push_str("-----\n");
    for line in body.as_bytes().chunks(64) {
        out.push_str(std::str::from_utf8(line).unwrap_or_default());
        out.push('\n');
    }
    out.push_str("-----END ");
    out.push_str(label);
    out.push_str("-----\n");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn block(label: &str, der: &[u8]) -> String {
        normalised_pem(label, der).to_string()
    }

    fn chain_refusal(bytes: &[u8]) -> InputRefusal {
        match chain_from_bytes(Path::new("fullchain.pem"), bytes) {
            Read::Refused(refusal) => refusal,
            Read::Ok(chain) => panic!("accepted {} block(s)", chain.der.len()),
        }
    }

    fn key_file(text: &str) -> (tempfile::TempDir, std::path::PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("privkey.pem");
        fs_err::write(&path, text).unwrap();
        (dir, path)
    }

    fn key_refusal(text: &str) -> (InputRefusal, String) {
        let (_dir, path) = key_file(text);
        match read_key(&path).unwrap() {
            Read::Refused(refusal) => (refusal, path.display().to_string()),
            Read::Ok(key) => panic!("accepted a `{}` block", key.label),
        }
    }

    #[test]
    fn the_chain_keeps_its_blocks_in_order() {
        let text = format!(
            "{}{}",
            block("CERTIFICATE", b"leaf"),
            block("CERTIFICATE", b"issuer")
        );
        let Read::Ok(chain) = chain_from_bytes(Path::new("fullchain.pem"), text.as_bytes()) else {
            panic!("a chain of two certificate blocks was refused");
        };
        assert_eq!(chain.der, [b"leaf".to_vec(), b"issuer".to_vec()]);
    }

    #[test]
    fn a_chain_that_is_not_pem_certificates_is_refused_by_name() {
        let name = "fullchain.pem".to_owned();
        assert_eq!(chain_refusal(b" \n\t\n"), InputRefusal::Empty(name.clone()));
        assert_eq!(
            chain_refusal(&[0x30, 0x82, 0xff, 0x01]),
            InputRefusal::NotPem(name.clone())
        );
        assert_eq!(
            chain_refusal(b"just text\n"),
            InputRefusal::NotPem(name.clone())
        );
        let cut = block("CERTIFICATE", &[7; 200]);
        let cut = &cut[..cut.find("-----END").unwrap()];
        assert_eq!(
            chain_refusal(cut.as_bytes()),
            InputRefusal::Truncated(name.clone())
        );
        let with_key = format!(
            "{}{}",
            block("CERTIFICATE", b"leaf"),
            block("EC PRIVATE KEY", b"k")
        );
        assert_eq!(
            chain_refusal(with_key.as_bytes()),
            InputRefusal::NotACertificate {
                path: name,
                label: "EC PRIVATE KEY".to_owned()
            }
        );
    }

    #[test]
    fn one_unencrypted_private_key_is_read() {
        let (_dir, path) = key_file(&block("PRIVATE KEY", &[42; 48]));
        let Read::Ok(key) = read_key(&path).unwrap() else {
            panic!("one PKCS #8 block was refused");
        };
        assert_eq!(key.label, "PRIVATE KEY");
        assert_eq!(key.der.as_slice(), [42; 48]);
    }

    #[test]
    fn an_encrypted_a_doubled_or_a_misplaced_key_is_refused() {
        let (refusal, path) = key_refusal(&block("ENCRYPTED PRIVATE KEY", &[1; 64]));
        assert_eq!(refusal, InputRefusal::EncryptedKey(path));

        let legacy = block("RSA PRIVATE KEY", &[2; 64]).replacen(
            "-----\n",
            "-----\nProc-Type: 4,ENCRYPTED\nDEK-Info: AES-128-CBC,00112233445566778899AABBCCDDEEFF\n\n",
            1,
        );
        let (refusal, path) = key_refusal(&legacy);
        assert_eq!(refusal, InputRefusal::EncryptedKey(path));

        let two = format!(
            "{}{}",
            block("PRIVATE KEY", &[3; 48]),
            block("PRIVATE KEY", &[4; 48])
        );
        let (refusal, path) = key_refusal(&two);
        assert_eq!(refusal, InputRefusal::SeveralKeys(path, 2));

        let (refusal, path) = key_refusal(&block("CERTIFICATE", b"leaf"));
        assert_eq!(
            refusal,
            InputRefusal::NotAKey {
                path,
                label: "CERTIFICATE".to_owned()
            }
        );
    }

    #[test]
    fn normalised_pem_has_64_column_lines_and_parses_back() {
        let der: Vec<u8> = (0..=255).collect();
        let text = normalised_pem("CERTIFICATE", &der);
        let body: Vec<&str> = text
            .lines()
            .skip(1)
            .take_while(|l| !l.starts_with("-----"))
            .collect();
        assert!(
            body[..body.len() - 1].iter().all(|l| l.len() == 64),
            "{body:?}"
        );
        assert!(body.last().unwrap().len() <= 64);
        assert!(text.ends_with("-----END CERTIFICATE-----\n"));
        assert_eq!(pem::parse(text.as_bytes()).unwrap().contents(), der);
    }
}
