//! Public or secret: the verdict on a literal that looks like key material.
//!
//! Real hosts are full of long, random-looking values that are meant to be
//! public: SSH and `WireGuard` public keys, age recipients, PGP fingerprints,
//! OAuth client ids, store paths and hashes, commit-pinned references.
//! Refusing a host over them makes the tool unusable, so every candidate gets
//! a verdict with its reason, from its shape, the text before it and the
//! option it is bound to. Only a secret stops `apply`.

/// What a literal is, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    Public(String),
    Secret(String),
}

/// The key types OpenSSH writes before a public key's base64 body.
const SSH_KEY_TYPES: [&str; 8] = [
    "ssh-ed25519",
    "ssh-rsa",
    "ssh-dss",
    "ecdsa-sha2-nistp256",
    "ecdsa-sha2-nistp384",
    "ecdsa-sha2-nistp521",
    "sk-ssh-ed25519@openssh.com",
    "sk-ecdsa-sha2-nistp256@openssh.com",
];

const NIX32: &str = "0123456789abcdfghijklmnpqrsvwxyz";
const BECH32: &str = "qpzry9x8gf2tvdw0s3jn54khce6mua7l";

/// Option names whose string value is a secret whatever its shape.
const SECRET_OPTIONS: [&str; 12] = [
    "hashedpassword",
    "initialhashedpassword",
    "password",
    "initialpassword",
    "privatekey",
    "secret",
    "secretkey",
    "token",
    "apikey",
    "api_key",
    "clientsecret",
    "client_secret",
];

/// Option names whose value is public by definition.
fn is_public_option(option: &str) -> bool {
    let lower = option.to_ascii_lowercase();
    lower.contains("publickey")
        || lower.contains("public_key")
        || lower.contains("public-key")
        || lower.contains("pubkey")
        || lower == "clientid"
        || lower == "client_id"
        || lower.ends_with("fingerprint")
        || matches!(
            lower.as_str(),
            "hash" | "sha256" | "sha512" | "rev" | "narhash" | "vendorhash" | "cargohash"
        )
}

/// The NixOS option that replaces an inline secret, where one exists.
pub fn file_option_for(option: &str) -> Option<&'static str> {
    match option.to_ascii_lowercase().as_str() {
        "hashedpassword" | "initialhashedpassword" | "password" | "initialpassword" => Some(
            "`hashedPasswordFile = config.sops.secrets.\"…\".path;` with the sops-nix secret declared `neededForUsers = true`",
        ),
        "privatekey" => Some("`privateKeyFile` (a sops-nix secret's `.path`)"),
        _ => None,
    }
}

/// Whether an inline value bound to `option` is a secret by the option's name.
pub fn secret_by_option(option: &str, value: &str) -> Option<Verdict> {
    let lower = option.to_ascii_lowercase();
    (SECRET_OPTIONS.contains(&lower.as_str()) && !value.is_empty() && !value.starts_with('/'))
        .then(|| Verdict::Secret(format!("the value of `{option}`")))
}

/// The verdict on `word`, a long random-looking token found in a string;
/// `before` is the string's text before it, `option` the attribute it is
/// bound to (last component), if any.
pub fn classify(word: &str, before: &str, option: Option<&str>) -> Verdict {
    let before = before.trim_end();
    if word.starts_with("AGE-SECRET-KEY-1") {
        return Verdict::Secret("age secret key".to_owned());
    }
    if let Some(key_type) = SSH_KEY_TYPES
        .iter()
        .find(|t| before.ends_with(*t) && word.starts_with("AAAA"))
    {
        return Verdict::Public(format!("SSH public key ({key_type})"));
    }
    if is_crypt_hash(word)
        || is_crypt_hash(&before[before.rfind(char::is_whitespace).map_or(0, |i| i + 1)..])
    {
        return Verdict::Secret("password hash (crypt)".to_owned());
    }
    if let Some(option) = option {
        if let Some(verdict) = secret_by_option(option, word) {
            return verdict;
        }
        if is_public_option(option) {
            return Verdict::Public(format!("the value of `{option}`, public by definition"));
        }
    }
    if (word.starts_with("age1")
        && word[4..].chars().all(|c| BECH32.contains(c))
        && word.len() == 62)
        || (word.starts_with("age1")
            && word.len() > 62
            && word.chars().all(|c| c.is_ascii_alphanumeric()))
    {
        return Verdict::Public("age recipient".to_owned());
    }
    for algorithm in ["sha256-", "sha512-", "sha1-"] {
        if word.starts_with(algorithm) {
            return Verdict::Public("SRI hash".to_owned());
        }
    }
    if matches!(word.len(), 32 | 52 | 103) && word.chars().all(|c| NIX32.contains(c)) {
        return Verdict::Public("Nix32 hash".to_owned());
    }
    let hex = |w: &str| w.chars().all(|c| c.is_ascii_hexdigit());
    if word.len() == 40 && hex(word) {
        return Verdict::Public("commit id or PGP fingerprint".to_owned());
    }
    if matches!(word.len(), 64 | 128) && hex(word) {
        return Verdict::Public("hex digest".to_owned());
    }
    if let Some((_, last)) = word.rsplit_once('/') {
        if last.len() == 40 && hex(last) {
            return Verdict::Public("commit-pinned reference".to_owned());
        }
    }
    // `github:owner/repo`: a flake reference names a public repository.
    if ["github:", "gitlab:", "sourcehut:"]
        .iter()
        .any(|scheme| before.ends_with(scheme))
    {
        return Verdict::Public("flake reference (a repository's name)".to_owned());
    }
    if word.ends_with(".apps.googleusercontent.com") {
        return Verdict::Public("OAuth client id".to_owned());
    }
    Verdict::Secret(format!("high-entropy token ({} chars)", word.len()))
}

/// `$6$salt$hash`, `$y$…`, `$2b$…`: a crypt(3) password hash.
pub fn is_crypt_hash(text: &str) -> bool {
    let mut parts = text.split('$');
    parts.next() == Some("")
        && parts.next().is_some_and(|id| {
            matches!(
                id,
                "1" | "2a" | "2b" | "2y" | "5" | "6" | "y" | "gy" | "7" | "sha1"
            )
        })
        && parts.count() >= 2
}

#[cfg(test)]
mod tests {
    use super::*;

    fn public(word: &str, before: &str, option: Option<&str>) -> bool {
        matches!(classify(word, before, option), Verdict::Public(_))
    }

    #[test]
    fn public_material_is_public() {
        let ed = "AAAAC3NzaC1lZDI1NTE5AAAAIH3c4Jb8vUq6K5mG0zEwQe1nP3T8r2W5yX7dA9sL0fKk";
        for key_type in SSH_KEY_TYPES {
            assert!(
                public(ed, &format!("{key_type} "), Some("keys")),
                "{key_type}"
            );
        }
        assert!(public(
            "age1ql3z7hjy54pw3hyww5ayyfg7zqgvc7w3j2elw8zmrj2kg5sfn9aqmcac8p",
            "",
            None
        ));
        assert!(public(
            "sha256-47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=",
            "",
            Some("hash")
        ));
        assert!(public(
            "0c5b8vw40d1178xlpddw65q9gf1h2186jcc3p4swinwggbllv8mk",
            "",
            None
        ));
        assert!(public(
            "NixOS/nixpkgs/5e2a59a5b1a82f89f2c7e598302a9cacebb72a67",
            "github:",
            None
        ));
        assert!(public(
            "x4MsKlfd0JqOyPvGZ5Nw2t8cR1yBhE7aUj3iT6oVbQs=",
            "",
            Some("publicKey")
        ));
        assert!(public(
            "Iv1a8b7c6d5e4f3a2b1c0d9e8f7a6b5c4d3e2f1",
            "",
            Some("clientId")
        ));
    }

    #[test]
    fn secrets_are_secret() {
        let secret = |word: &str, before: &str, option: Option<&str>| {
            matches!(classify(word, before, option), Verdict::Secret(_))
        };
        assert!(secret(
            "AGE-SECRET-KEY-1QYQSZQGPQYQSZQGPQYQSZQGPQYQSZQGPQYQSZQGPQYQSZQGPQYQSHEUZ5Q",
            "",
            None
        ));
        assert!(secret("ghp_aB3dE5fG7hI9jK1lM3nO5pQ7rS9tU1vW3xY5", "", None));
        assert!(secret(
            "x4MsKlfd0JqOyPvGZ5Nw2t8cR1yBhE7aUj3iT6oVbQs=",
            "",
            Some("privateKey")
        ));
        assert!(is_crypt_hash("$6$rounds=5000$abc$def"));
        assert!(is_crypt_hash("$y$j9T$abc$def"));
        assert!(!is_crypt_hash("$HOME/x"));
        assert_eq!(
            secret_by_option("hashedPassword", "$6$x$y"),
            Some(Verdict::Secret("the value of `hashedPassword`".to_owned()))
        );
        assert_eq!(secret_by_option("passwordFile", "/run/x"), None);
        assert!(file_option_for("hashedPassword").is_some_and(|o| o.contains("neededForUsers")));
    }
}
