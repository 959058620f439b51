//! Unit tests of reading, matching and scanning Nix source.

use std::path::Path;

use super::literals::{is_compound_name, is_name_path};
use super::*;

#[test]
fn positions_from_the_line_index_equal_counted_ones() {
    let text = "{ a = \"é.example.net\";\n\n  b = ''\n    x\n  '';\n}\n";
    let file = NixFile::parse(Path::new("."), "f.nix".into(), text.to_owned()).expect("parses");
    for offset in (0..=text.len()).filter(|o| text.is_char_boundary(*o)) {
        assert_eq!(
            file.line_column(offset),
            line_column(text, offset),
            "offset {offset}"
        );
    }
}

#[test]
fn domain_matches_respect_name_boundaries() {
    let text = "ci.example.net notexample.net example.network https://example.net/x admin@example.net example.net.";
    let found: Vec<&str> = domain_matches(text, "example.net")
        .into_iter()
        .map(|(s, e)| &text[s..e])
        .collect();
    assert_eq!(found.len(), 4, "{found:?}");
    assert!(is_name_path(
        "networking/wireguard/interfaces/wg0/privateKey"
    ));
    assert!(!is_name_path(
        "Nt1n1igEsHK/DWteidQMRAJmjpUgvmpmjUfUeE/DGGs="
    ));
}

#[test]
fn findings_cover_every_syntactic_place() {
    let text = r#"{ config, ... }:
let host = "drone.example.net"; in {
  # served at example.net
  services.x."hooks.example.net" = { email = "admin@example.net"; };
  y = ''
    server_name example.net;
  '';
  z = [ "a" "https://${host}/example.net" ];
  u = https://example.net/path;
  cert = /var/lib/certs/live/fullchain.pem;
  key = "/var/lib/certs/live/privkey.pem";
  other = "/var/lib/certs/live/chain.pem";
  token = "ghp_aB3dE5fG7hI9jK1lM3nO5pQ7rS9tU1vW3xY5";
  ip = "203.0.113.7";
  version = "1.2.3.4";
}
"#;
    let file = NixFile::parse(Path::new("."), "m.nix".into(), text.to_owned()).expect("parses");
    let secrets = vec![
        (
            "tls/fullchain".to_owned(),
            "/var/lib/certs/live/fullchain.pem".to_owned(),
        ),
        (
            "tls/key".to_owned(),
            "/var/lib/certs/live/privkey.pem".to_owned(),
        ),
    ];
    let findings = scan(
        &file,
        &Needles {
            domain: "example.net",
            secrets: &secrets,
        },
    );
    let kinds: Vec<(FindingKind, usize, &str)> = findings
        .iter()
        .map(|f| (f.kind, f.line, f.detail.as_str()))
        .collect();
    let expect = [
        (FindingKind::Domain, 2, "drone.example.net"),
        (FindingKind::Comment, 3, "example.net"),
        (FindingKind::Domain, 4, "hooks.example.net"),
        (FindingKind::Email, 4, "admin@example.net"),
        (FindingKind::Domain, 6, "example.net"),
        (FindingKind::Domain, 8, "example.net"),
        (FindingKind::Domain, 9, "example.net"),
        (
            FindingKind::SecretPath,
            10,
            "/var/lib/certs/live/fullchain.pem",
        ),
        (
            FindingKind::SecretPath,
            11,
            "/var/lib/certs/live/privkey.pem",
        ),
        (
            FindingKind::SecretDirectory,
            12,
            "/var/lib/certs/live/chain.pem",
        ),
        (
            FindingKind::LiteralSecret,
            13,
            "high-entropy token (40 chars)",
        ),
        (FindingKind::IpAddress, 14, "203.0.113.7"),
    ];
    assert_eq!(kinds, expect);
    let key = findings.iter().find(|f| f.line == 11).expect("key path");
    assert_eq!(key.context, Context::WholeString);
    assert!(
        !format!("{findings:?}").contains("ghp_"),
        "no secret in findings"
    );
}

#[test]
fn syntax_errors_name_file_line_and_column() {
    let err = NixFile::parse(
        Path::new("/base"),
        "bad.nix".into(),
        "{\n  a = ;\n}\n".to_owned(),
    )
    .err()
    .expect("refused");
    let message = err.to_string();
    assert!(
        message.starts_with("`/base/bad.nix` line 2, column"),
        "{message}"
    );
}

/// Shapes met in a real public infrastructure flake: a flake input naming a
/// repository, an environment assignment of a numeric id, and a PEM key
/// whose base64 lines are the key (reported once, not line by line).
#[test]
fn real_shapes_are_judged_once_and_by_their_value() {
    let kinds = |text: &str| -> Vec<(FindingKind, String)> {
        let file = NixFile::parse(Path::new("."), "m.nix".into(), text.to_owned()).expect("parses");
        scan(
            &file,
            &Needles {
                domain: "example.org",
                secrets: &[],
            },
        )
        .into_iter()
        .map(|f| (f.kind, f.detail))
        .collect()
    };
    let flake = kinds(
        r#"{ inputs.tools.url = "github:nix-community/nixpkgs-update-github-releases"; outputs = _: { }; }"#,
    );
    assert!(
        flake
            .iter()
            .all(|(kind, _)| *kind == FindingKind::PublicValue),
        "{flake:?}"
    );
    let script = kinds(
        "{ script = ''\n  GITHUB_APP_INSTALLATION_ID=135242817 \\\n  API_TOKEN=Xq7vR2mK9pL4sT8wZ1nB6cF3hJ5dG0aYeU ./run\n''; }",
    );
    assert_eq!(
        script,
        [(
            FindingKind::LiteralSecret,
            "high-entropy token (34 chars)".to_owned()
        )],
        "only the assigned value is judged"
    );
    let pem = kinds(
        "{ text = ''\n  -----BEGIN OPENSSH PRIVATE KEY-----\n  b3BlbnNzaC1rZXktdjEAAAAABG5vbmUAAAAEbm9uZQAAAAAAAAABAAAAMwAAAAtzc2gtZW\n  QyNTUxOQAAACCQVnMW/wZWqrdWrjrRPhfEFFq1KLYguagSflLhFnVQmwAAAJASuMMnErjD\n  -----END OPENSSH PRIVATE KEY-----\n''; }",
    );
    assert_eq!(pem.len(), 1, "{pem:?}");
    assert!(pem[0].1.starts_with("PEM private key"), "{pem:?}");
}

#[test]
fn compound_names_are_not_tokens_but_uuids_and_keys_stay_suspect() {
    for name in [
        "ublock0_raymondhill_net-browser-action",
        "google/gemma-4-26B-A4B-it-qat-q4_0-gguf",
    ] {
        assert!(is_compound_name(name), "{name}");
    }
    for token in [
        "550e8400-e29b-41d4-a716-446655440000",
        "TH3WJAP-KYFMHKV-Q3QKLYO-QP4AS7X-7K2CH42-JKUQIDL-ZLWWTHO-JUJ2FH2",
        "x7kq-p2mz-r9tv-w3bn-k8jd-q5lc-v2hx-m4fs",
        "ghp_Xq7vR2mK9pL4sT8wZ1nB6cF3hJ5dG0aYeUab",
        "xoxb-123456789012-1234567890123-AbCdEfGhIjKlMnOpQrStUvWx",
        "Nt1n1igEsHK/DWteidQMRAJmjpUgvmpmjUfUeE/DGGs=",
    ] {
        assert!(!is_compound_name(token), "{token}");
    }
}
