//! Unit tests of enrolment and matching together: what one writes, the
//! other must find, and the file must hold no plaintext.

#![allow(clippy::unwrap_used)]

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;

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
    let nix =
        "  key = ''\n    MC4CAQAwBQYDK2VwBCIEIGyp3Z1ZJ1j8tXxpr4QZb7n2uKh9Lm0aF4eT5cS1dQwR\n  '';";
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
