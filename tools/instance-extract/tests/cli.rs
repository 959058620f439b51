//! The `instance-extract secrets` command line on bad input: every refusal
//! exits 2 with a message that names the file and what is wrong, prints
//! nothing on stdout, never shows a secret value, and leaves files unchanged.

#![allow(clippy::unwrap_used)]

use std::path::PathBuf;
use std::process::{Command, Output};

use age::secrecy::ExposeSecret as _;

const SECRET: &str = "hunter2-very-secret";

struct Fixture {
    dir: tempfile::TempDir,
    recipient: String,
}

impl Fixture {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let identity = age::x25519::Identity::generate();
        fs_err::write(
            dir.path().join("key.txt"),
            format!("# test key\n{}\n", identity.to_string().expose_secret()),
        )
        .unwrap();
        let fixture = Fixture {
            dir,
            recipient: identity.to_public().to_string(),
        };
        fixture.write(
            "plain.yaml",
            &format!("db:\n    password: {SECRET}\n    port: 5432\nnote_unencrypted: hello\n"),
        );
        let out = fixture.run(&[
            "secrets",
            "encrypt",
            "-r",
            &fixture.recipient,
            "-o",
            "secrets.yaml",
            "plain.yaml",
        ]);
        assert!(out.status.success(), "{}", text(&out.stderr));
        fixture
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn write(&self, name: &str, contents: &str) -> PathBuf {
        let path = self.path(name);
        fs_err::write(&path, contents).unwrap();
        path
    }

    fn sealed(&self) -> String {
        fs_err::read_to_string(self.path("secrets.yaml")).unwrap()
    }

    fn run(&self, args: &[&str]) -> Output {
        Command::new(env!("CARGO_BIN_EXE_instance-extract"))
            .args(args)
            .current_dir(self.dir.path())
            .env_remove("SOPS_AGE_KEY_FILE")
            .env_remove("SOPS_AGE_KEY")
            .env_remove("FROMGIT_LOG")
            .env("NO_COLOR", "1")
            .output()
            .unwrap()
    }

    fn decrypt(&self, file: &str) -> Output {
        self.run(&["-vv", "secrets", "decrypt", "--identity", "key.txt", file])
    }
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// Exit 2, empty stdout, a message containing every `needle`, no secret.
fn assert_refused(out: &Output, needles: &[&str]) {
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "stderr:\n{stderr}");
    assert!(
        out.stdout.is_empty(),
        "stdout must stay empty:\n{}",
        text(&out.stdout)
    );
    for needle in needles {
        assert!(
            stderr.contains(needle),
            "`{needle}` missing from:\n{stderr}"
        );
    }
    assert!(!stderr.contains(SECRET), "secret leaked:\n{stderr}");
    assert!(
        !stderr.contains("AGE-SECRET-KEY"),
        "identity leaked:\n{stderr}"
    );
    assert!(!stderr.contains("panicked"), "{stderr}");
}

/// Replaces the `ENC[…]` of the password with `f(enc)`.
fn with_password(fixture: &Fixture, f: impl Fn(&str) -> String) -> PathBuf {
    let sealed = fixture.sealed();
    let line = sealed
        .lines()
        .find(|l| l.contains("password: ENC["))
        .unwrap();
    let enc = line.trim().trim_start_matches("password: ");
    fixture.write("broken.yaml", &sealed.replace(enc, &f(enc)))
}

#[test]
fn a_good_file_decrypts_and_extracts() {
    let fixture = Fixture::new();
    let out = fixture.decrypt("secrets.yaml");
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert_eq!(
        text(&out.stdout),
        format!("db:\n    password: {SECRET}\n    port: 5432\nnote_unencrypted: hello\n")
    );
    assert!(!text(&out.stderr).contains(SECRET));
    let out = fixture.run(&[
        "secrets",
        "decrypt",
        "--identity",
        "key.txt",
        "--extract",
        r#"["db"]["password"]"#,
        "secrets.yaml",
    ]);
    assert_eq!(text(&out.stdout), SECRET);
    fixture.write("list.yaml", "l:\n    - a\n    - b: c\n");
    let out = fixture.run(&[
        "secrets",
        "encrypt",
        "-r",
        &fixture.recipient,
        "-o",
        "list.sealed.yaml",
        "list.yaml",
    ]);
    assert!(out.status.success());
    let out = fixture.run(&[
        "secrets",
        "decrypt",
        "--identity",
        "key.txt",
        "--extract",
        r#"["l"]"#,
        "list.sealed.yaml",
    ]);
    assert_eq!(text(&out.stdout), "- a\n- b: c\n");
    let out = fixture.run(&[
        "secrets",
        "decrypt",
        "--identity",
        "key.txt",
        "--extract",
        r#"["l"][1]"#,
        "--output-type",
        "json",
        "list.sealed.yaml",
    ]);
    assert_eq!(text(&out.stdout), "{\n\t\"b\": \"c\"\n}\n");
}

#[test]
fn truncated_enc_value() {
    let fixture = Fixture::new();
    with_password(&fixture, |enc| enc[..enc.len() - 12].to_owned());
    assert_refused(
        &fixture.decrypt("broken.yaml"),
        &["broken.yaml", r#"["db"]["password"]"#, "not a sops value"],
    );
}

#[test]
fn bad_base64() {
    let fixture = Fixture::new();
    with_password(&fixture, |enc| enc.replacen("data:", "data:%%", 1));
    assert_refused(
        &fixture.decrypt("broken.yaml"),
        &[
            "broken.yaml",
            r#"["db"]["password"]"#,
            "`data` is not valid base64",
        ],
    );
}

#[test]
fn wrong_tag() {
    let fixture = Fixture::new();
    with_password(&fixture, |enc| {
        let start = enc.find(",tag:").unwrap() + 5;
        let end = enc.find(",type:").unwrap();
        format!("{}AAAAAAAAAAAAAAAAAAAAAA=={}", &enc[..start], &enc[end..])
    });
    assert_refused(
        &fixture.decrypt("broken.yaml"),
        &[
            "broken.yaml",
            r#"["db"]["password"]"#,
            "authentication failed",
        ],
    );
}

#[test]
fn unknown_type() {
    let fixture = Fixture::new();
    with_password(&fixture, |enc| enc.replace("type:str]", "type:blob]"));
    assert_refused(
        &fixture.decrypt("broken.yaml"),
        &["broken.yaml", "unknown value type `blob`"],
    );
}

#[test]
fn missing_and_tampered_mac() {
    let fixture = Fixture::new();
    let sealed = fixture.sealed();
    let mac_line = sealed
        .lines()
        .find(|l| l.trim_start().starts_with("mac:"))
        .unwrap();
    fixture.write("nomac.yaml", &sealed.replace(&format!("{mac_line}\n"), ""));
    assert_refused(
        &fixture.decrypt("nomac.yaml"),
        &["nomac.yaml", "`sops.mac` is missing"],
    );

    // A MAC from another file: authentic ciphertext, wrong key.
    let other = Fixture::new();
    let other_mac = other
        .sealed()
        .lines()
        .find(|l| l.trim_start().starts_with("mac:"))
        .unwrap()
        .to_owned();
    fixture.write("othermac.yaml", &sealed.replace(mac_line, &other_mac));
    assert_refused(
        &fixture.decrypt("othermac.yaml"),
        &["othermac.yaml", "MAC could not be decrypted"],
    );

    // A plaintext value edited by hand.
    fixture.write(
        "edited.yaml",
        &sealed.replace("note_unencrypted: hello", "note_unencrypted: hullo"),
    );
    assert_refused(
        &fixture.decrypt("edited.yaml"),
        &["edited.yaml", "MAC mismatch"],
    );
}

#[test]
fn missing_sops_block() {
    let fixture = Fixture::new();
    assert_refused(
        &fixture.decrypt("plain.yaml"),
        &["plain.yaml", "not sops-encrypted"],
    );
}

#[test]
fn no_matching_creation_rule() {
    let fixture = Fixture::new();
    fixture.write(
        ".sops.yaml",
        &format!(
            "creation_rules:\n  - path_regex: ^secrets/.*\\.yaml$\n    age: {}\n",
            fixture.recipient
        ),
    );
    let before = fs_err::read_to_string(fixture.path("plain.yaml")).unwrap();
    let out = fixture.run(&["secrets", "encrypt", "-i", "plain.yaml"]);
    assert_refused(&out, &["no creation rule", ".sops.yaml", "plain.yaml"]);
    assert_eq!(
        fs_err::read_to_string(fixture.path("plain.yaml")).unwrap(),
        before,
        "input untouched"
    );
}

#[test]
fn identity_that_matches_no_recipient() {
    let fixture = Fixture::new();
    let stranger = age::x25519::Identity::generate();
    fixture.write(
        "stranger.txt",
        &format!("{}\n", stranger.to_string().expose_secret()),
    );
    let out = fixture.run(&[
        "secrets",
        "decrypt",
        "--identity",
        "stranger.txt",
        "secrets.yaml",
    ]);
    assert_refused(
        &out,
        &[
            "secrets.yaml",
            &fixture.recipient,
            &stranger.to_public().to_string(),
        ],
    );
}

#[test]
fn unreadable_inputs_name_the_path_or_flag() {
    let fixture = Fixture::new();
    assert_refused(
        &fixture.run(&[
            "secrets",
            "decrypt",
            "--identity",
            "nope.txt",
            "secrets.yaml",
        ]),
        &["nope.txt"],
    );
    assert_refused(
        &fixture.run(&["secrets", "decrypt", "--identity", "key.txt", "absent.yaml"]),
        &["absent.yaml"],
    );
    assert_refused(
        &fixture.run(&["secrets", "decrypt", "secrets.yaml"]),
        &["--identity"],
    );
    fixture.write("secrets.txt", "x");
    assert_refused(
        &fixture.run(&["secrets", "decrypt", "--identity", "key.txt", "secrets.txt"]),
        &["secrets.txt", "--input-type"],
    );
    assert_refused(
        &fixture.run(&[
            "secrets",
            "encrypt",
            "-r",
            "age1notarecipient",
            "plain.yaml",
        ]),
        &["--recipient", "age1notarecipient"],
    );
    fixture.write("bad.yaml", "a: 1\n  b: [\n");
    assert_refused(
        &fixture.run(&["secrets", "encrypt", "-r", &fixture.recipient, "bad.yaml"]),
        &["bad.yaml", "line"],
    );
    assert_refused(
        &fixture.run(&[
            "secrets",
            "decrypt",
            "--identity",
            "key.txt",
            "--extract",
            "db.password",
            "secrets.yaml",
        ]),
        &["--extract", "db.password"],
    );
}
