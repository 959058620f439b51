//! Interop with the real `sops` binary, both directions, on generated trees:
//! our files decrypt with `sops -d` to the same values, sops' files decrypt
//! with ours, and each side's `updatekeys`/`rotate` accept the other's files.
//!
//! Over 600 lines on purpose: every sops operation is checked in both
//! directions (ours read by sops, sops' read by ours) in one test binary.

#![allow(clippy::unwrap_used, clippy::panic, clippy::missing_panics_doc)]

use std::ffi::OsStr;
use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};

use fromgit_sops::{Format, Kind, Map, Scalar, Value};
use fromgit_testkit::{age_keygen, fromgit_bin, peer, run, success, AgeKey};

/// A deterministic generator (xorshift), so a failing tree can be reproduced.
struct Gen(u64);

impl Gen {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0.wrapping_shl(13);
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0.wrapping_shl(17);
        self.0
    }

    fn below(&mut self, n: u64) -> usize {
        usize::try_from(self.next() % n).unwrap()
    }

    fn word(&mut self) -> String {
        const PARTS: [&str; 12] = [
            "drone",
            "gitea",
            "hook",
            "token",
            "tls",
            "db",
            "ключ",
            "秘密",
            "dash-board",
            "ci.runner",
            "a",
            "z9",
        ];
        let mut word = PARTS[self.below(12)].to_owned();
        word.push_str(&self.below(1000).to_string());
        word
    }

    fn string(&mut self) -> String {
        match self.below(8) {
            0 => String::new(),
            1 => pem_bundle(1 + self.below(3), 20 + self.below(40)),
            2 => "grüße ✓ \t tab, \"quotes\", back\\slash, émoji 🔑".to_owned(),
            3 => format!("{}\n{}\n", self.word(), self.word()),
            4 => "0755".to_owned(),
            5 => "true".to_owned(),
            _ => format!("s3cret-{:016x}", self.next()),
        }
    }

    fn leaf(&mut self) -> Value {
        match self.below(10) {
            0 => Value::Null,
            1 => Value::Scalar(
                Scalar::canonical(Kind::Int, (self.below(100_000)).to_string().into()).unwrap(),
            ),
            2 => Value::Scalar(Scalar::canonical(Kind::Bool, "true".to_owned().into()).unwrap()),
            _ => Value::Scalar(Scalar::string(self.string())),
        }
    }

    fn map(&mut self, depth: usize) -> Map {
        let mut map: Map = Vec::new();
        for _ in 0..=self.below(6) {
            let mut key = self.word();
            if self.below(6) == 0 {
                key.push_str("_unencrypted");
            }
            if map.iter().any(|(k, _)| *k == key) || key == "sops" {
                continue;
            }
            let value = match (depth, self.below(5)) {
                (0, _) | (_, 0..=2) => self.leaf(),
                (_, 3) => Value::Map(self.map(depth - 1)),
                _ => Value::List(
                    (0..self.below(4))
                        .map(|_| {
                            if self.below(3) == 0 {
                                Value::Map(self.map(depth - 1))
                            } else {
                                self.leaf()
                            }
                        })
                        .collect(),
                ),
            };
            map.push((key, value));
        }
        map
    }
}

fn pem_bundle(blocks: usize, lines: usize) -> String {
    let mut pem = String::new();
    for block in 0..blocks {
        pem.push_str("-----BEGIN CERTIFICATE-----\n");
        for line in 0..lines {
            let fill = char::from(b'A' + u8::try_from((block + line) % 26).unwrap());
            pem.push_str(&fill.to_string().repeat(64));
            pem.push('\n');
        }
        pem.push_str("-----END CERTIFICATE-----\n");
    }
    pem
}

struct Env {
    dir: tempfile::TempDir,
    sops: PathBuf,
    ours: PathBuf,
    alice: AgeKey,
    bob: AgeKey,
}

impl Env {
    fn new() -> Option<Env> {
        let sops = peer("sops")?;
        let dir = tempfile::tempdir().unwrap();
        let alice = age_keygen(dir.path(), "alice")?;
        let bob = age_keygen(dir.path(), "bob")?;
        Some(Env {
            dir,
            sops,
            ours: fromgit_bin("instance-extract"),
            alice,
            bob,
        })
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn sops<I: IntoIterator<Item = S>, S: AsRef<OsStr>>(
        &self,
        key: &AgeKey,
        args: I,
    ) -> std::process::Output {
        run(
            &self.sops,
            args,
            self.dir.path(),
            &[("SOPS_AGE_KEY_FILE", key.file.as_os_str())],
            b"",
        )
    }

    fn ours<I: IntoIterator<Item = S>, S: AsRef<OsStr>>(&self, args: I) -> std::process::Output {
        run(&self.ours, args, self.dir.path(), &[], b"")
    }

    fn sops_decrypt(&self, key: &AgeKey, file: &Path) -> Map {
        let output = self.sops(key, [OsStr::new("-d"), file.as_os_str()]);
        let text = success(&output, "sops -d");
        parse(file, &text)
    }

    fn our_decrypt(&self, key: &AgeKey, file: &Path) -> Map {
        let output = self.ours([
            OsStr::new("secrets"),
            OsStr::new("decrypt"),
            OsStr::new("--identity"),
            key.file.as_os_str(),
            file.as_os_str(),
        ]);
        parse(file, &success(&output, "instance-extract secrets decrypt"))
    }

    fn write(&self, name: &str, text: &str) -> PathBuf {
        let path = self.path(name);
        fs_err::write(&path, text).unwrap();
        path
    }

    fn config(&self, recipients: &[&AgeKey]) {
        let list: Vec<&str> = recipients.iter().map(|k| k.recipient.as_str()).collect();
        self.write(
            ".sops.yaml",
            &format!("creation_rules:\n  - age: {}\n", list.join(",")),
        );
    }
}

fn format_of(path: &Path) -> Format {
    Format::from_path(path).unwrap()
}

fn parse(path: &Path, text: &str) -> Map {
    format_of(path)
        .parse(text)
        .unwrap_or_else(|err| panic!("cannot parse decrypted `{}`: {err}\n{text}", path.display()))
}

/// Trees are equal up to what YAML cannot tell apart: an integral float is
/// printed as an int by sops.
fn assert_same(left: &Map, right: &Map, what: &str) {
    fn norm(value: &Value) -> Value {
        match value {
            Value::Map(map) => Value::Map(map.iter().map(|(k, v)| (k.clone(), norm(v))).collect()),
            Value::List(items) => Value::List(items.iter().map(norm).collect()),
            Value::Scalar(s) if s.kind == Kind::Float && !s.text.contains('.') => {
                Value::Scalar(Scalar::canonical(Kind::Int, s.text.clone()).unwrap())
            }
            other => other.clone(),
        }
    }
    assert_eq!(
        norm(&Value::Map(left.clone())),
        norm(&Value::Map(right.clone())),
        "{what}"
    );
}

/// The `ENC[…]` values of the data (not the MAC), in document order; layout
/// differences between sops' emitter and ours do not matter here.
fn leaf_texts(text: &str) -> Vec<String> {
    text.lines()
        .filter(|l| !l.trim_start().starts_with("mac:"))
        .filter_map(|l| {
            l.find("ENC[AES256_GCM")
                .map(|start| l[start..].trim_end_matches('"').to_owned())
        })
        .collect()
}

fn meta_line<'a>(text: &'a str, field: &str) -> &'a str {
    text.lines()
        .find(|l| l.trim_start().starts_with(field))
        .unwrap_or_else(|| panic!("no `{field}` in\n{text}"))
}

#[test]
#[cfg_attr(
    any(missing_sops, missing_age_keygen),
    ignore = "needs `sops` and `age-keygen`; one was not found when the tests were built: `bash tests/run --install-only` installs them; under CI=true the test fails instead"
)]
fn our_files_decrypt_with_sops() {
    let Some(env) = Env::new() else { return };
    for seed in 1..=12_u64 {
        let tree = Gen(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15)).map(3);
        for name in ["gen.yaml", "gen.json"] {
            let plain = env.path(&format!("plain-{seed}-{name}"));
            fs_err::write(&plain, format_of(&plain).emit(&tree).as_bytes()).unwrap();
            let sealed = env.path(&format!("sealed-{seed}-{name}"));
            let output = env.ours([
                OsStr::new("secrets"),
                OsStr::new("encrypt"),
                OsStr::new("-r"),
                OsStr::new(&env.alice.recipient),
                OsStr::new("-r"),
                OsStr::new(&env.bob.recipient),
                OsStr::new("-o"),
                sealed.as_os_str(),
                plain.as_os_str(),
            ]);
            success(&output, "instance-extract secrets encrypt");
            let reference = parse(&plain, &fs_err::read_to_string(&plain).unwrap());
            assert_same(
                &env.sops_decrypt(&env.alice, &sealed),
                &reference,
                &format!("seed {seed} {name} via alice"),
            );
            assert_same(
                &env.sops_decrypt(&env.bob, &sealed),
                &reference,
                &format!("seed {seed} {name} via bob"),
            );
        }
    }
}

#[test]
#[cfg_attr(
    any(missing_sops, missing_age_keygen),
    ignore = "needs `sops` and `age-keygen`; one was not found when the tests were built: `bash tests/run --install-only` installs them; under CI=true the test fails instead"
)]
fn sops_files_decrypt_with_ours() {
    let Some(env) = Env::new() else { return };
    env.config(&[&env.alice]);
    for seed in 1..=12_u64 {
        let tree = Gen(seed.wrapping_mul(0xD1B5_4A32_D192_ED03)).map(3);
        for name in ["gen.yaml", "gen.json"] {
            let plain = env.path(&format!("{seed}-{name}"));
            let mut text = format_of(&plain).emit(&tree).to_string();
            if format_of(&plain) == Format::Yaml {
                // sops encrypts comments; ours must skip them when reading.
                text.insert_str(0, "# a comment sops will encrypt\n");
            }
            fs_err::write(&plain, &text).unwrap();
            let output = env.sops(
                &env.alice,
                [OsStr::new("-e"), OsStr::new("-i"), plain.as_os_str()],
            );
            success(&output, "sops -e");
            assert_same(
                &env.our_decrypt(&env.alice, &plain),
                &tree,
                &format!("seed {seed} {name}"),
            );
        }
    }
}

#[test]
#[cfg_attr(
    any(missing_sops, missing_age_keygen),
    ignore = "needs `sops` and `age-keygen`; one was not found when the tests were built: `bash tests/run --install-only` installs them; under CI=true the test fails instead"
)]
fn sops_encrypted_regex_and_typed_values_decrypt_with_ours() {
    let Some(env) = Env::new() else { return };
    env.config(&[&env.alice]);
    let source = "# top comment\nmetadata:\n    name: app\n    port: 8080\ndata:\n    token: s3cret\n    \
                  ratio: 1.5\n    enabled: true\n    pem: |\n        -----BEGIN KEY-----\n        abc\n        -----END KEY-----\n\
                  list:\n    # a comment inside a list\n    - x\n    - y\n";
    let plain = env.write("typed.yaml", source);
    let output = env.sops(
        &env.alice,
        [
            OsStr::new("-e"),
            OsStr::new("--encrypted-regex"),
            OsStr::new("^(data|list)$"),
            OsStr::new("-i"),
            plain.as_os_str(),
        ],
    );
    success(&output, "sops -e --encrypted-regex");
    let sealed = fs_err::read_to_string(&plain).unwrap();
    assert!(
        sealed.contains("name: app"),
        "metadata stays plaintext:\n{sealed}"
    );
    assert!(sealed.contains("type:comment"));
    let expected = fromgit_sops::yaml::parse(source).unwrap();
    let ours = env.our_decrypt(&env.alice, &plain);
    assert_same(&ours, &expected, "typed values and selection");
}

#[test]
#[cfg_attr(
    any(missing_sops, missing_age_keygen),
    ignore = "needs `sops` and `age-keygen`; one was not found when the tests were built: `bash tests/run --install-only` installs them; under CI=true the test fails instead"
)]
fn updatekeys_and_rotate_interoperate() {
    let Some(env) = Env::new() else { return };
    let tree = Gen(77).map(3);
    let file = env.path("keys.yaml");
    fs_err::write(&file, Format::Yaml.emit(&tree).as_bytes()).unwrap();

    // Ours writes for alice; sops updatekeys adds bob; both decrypt with sops.
    env.config(&[&env.alice]);
    success(
        &env.ours(["secrets", "encrypt", "-i", "keys.yaml"]),
        "encrypt",
    );
    let before = fs_err::read_to_string(&file).unwrap();
    env.config(&[&env.alice, &env.bob]);
    success(
        &env.sops(&env.alice, ["updatekeys", "-y", "keys.yaml"]),
        "sops updatekeys",
    );
    let after = fs_err::read_to_string(&file).unwrap();
    assert_eq!(
        leaf_texts(&before),
        leaf_texts(&after),
        "sops updatekeys keeps our values"
    );
    assert_same(
        &env.sops_decrypt(&env.bob, &file),
        &tree,
        "bob after sops updatekeys",
    );

    // Ours updatekeys drops alice from a sops-touched file: values, MAC and
    // lastmodified byte-identical, bob still decrypts with sops, alice cannot.
    env.config(&[&env.bob]);
    let report = success(
        &env.ours([
            "secrets",
            "updatekeys",
            "--json",
            "--identity",
            "bob.txt",
            "keys.yaml",
        ]),
        "our updatekeys",
    );
    assert!(report.contains(&env.alice.recipient), "{report}");
    let updated = fs_err::read_to_string(&file).unwrap();
    assert_eq!(leaf_texts(&after), leaf_texts(&updated));
    assert_eq!(meta_line(&after, "mac:"), meta_line(&updated, "mac:"));
    assert_eq!(
        meta_line(&after, "lastmodified:"),
        meta_line(&updated, "lastmodified:")
    );
    assert!(!updated.contains(&env.alice.recipient));
    assert_same(
        &env.sops_decrypt(&env.bob, &file),
        &tree,
        "bob after our updatekeys",
    );
    assert!(!env.sops(&env.alice, ["-d", "keys.yaml"]).status.success());

    // A second run changes nothing.
    let again = success(
        &env.ours([
            "secrets",
            "updatekeys",
            "--identity",
            "bob.txt",
            "keys.yaml",
        ]),
        "noop",
    );
    assert!(again.starts_with("unchanged"), "{again}");
    assert_eq!(fs_err::read_to_string(&file).unwrap(), updated);

    // Ours rotates a sops-written file: every value re-encrypted, sops reads it.
    success(
        &env.sops(&env.bob, ["rotate", "-i", "keys.yaml"]),
        "sops rotate",
    );
    let sops_rotated = fs_err::read_to_string(&file).unwrap();
    success(
        &env.ours([
            "secrets",
            "rotate",
            "--identity",
            "bob.txt",
            "--add-recipient",
            &env.alice.recipient,
            "keys.yaml",
        ]),
        "our rotate",
    );
    let rotated = fs_err::read_to_string(&file).unwrap();
    let old: Vec<String> = leaf_texts(&sops_rotated);
    assert!(
        leaf_texts(&rotated).iter().all(|l| !old.contains(l)),
        "every ciphertext changed"
    );
    assert_same(
        &env.sops_decrypt(&env.alice, &file),
        &tree,
        "alice after our rotate",
    );
    assert_same(
        &env.sops_decrypt(&env.bob, &file),
        &tree,
        "bob after our rotate",
    );
}

#[test]
#[cfg_attr(
    any(missing_sops, missing_age_keygen),
    ignore = "needs `sops` and `age-keygen`; one was not found when the tests were built: `bash tests/run --install-only` installs them; under CI=true the test fails instead"
)]
fn set_keeps_unchanged_ciphertext_and_sops_reads_the_result() {
    let Some(env) = Env::new() else { return };
    env.config(&[&env.alice]);
    let file = env.write("set.yaml", "a: one\nb: two\nlist:\n    - x\n    - x\n");
    success(&env.sops(&env.alice, ["-e", "-i", "set.yaml"]), "sops -e");
    let before = fs_err::read_to_string(&file).unwrap();
    let output = run(
        &env.ours,
        [
            "secrets",
            "set",
            "--identity",
            "alice.txt",
            "set.yaml",
            r#"["b"]"#,
        ],
        env.dir.path(),
        &[],
        b"-----BEGIN PRIVATE KEY-----\nnew\n-----END PRIVATE KEY-----\n",
    );
    success(&output, "our set");
    let after = fs_err::read_to_string(&file).unwrap();
    let (old, new) = (leaf_texts(&before), leaf_texts(&after));
    assert_eq!(old[0], new[0], "`a` keeps its ciphertext");
    assert_ne!(old[1], new[1], "`b` is re-encrypted");
    assert_eq!(
        old[2..],
        new[2..],
        "equal list items keep their own ciphertexts"
    );
    let decrypted = env.sops_decrypt(&env.alice, &file);
    let expected = fromgit_sops::yaml::parse(
        "a: one\nb: |\n    -----BEGIN PRIVATE KEY-----\n    new\n    -----END PRIVATE KEY-----\nlist:\n    - x\n    - x\n",
    )
    .unwrap();
    assert_same(&decrypted, &expected, "after set");
}

#[test]
#[cfg_attr(
    any(missing_sops, missing_age_keygen),
    ignore = "needs `sops` and `age-keygen`; one was not found when the tests were built: `bash tests/run --install-only` installs them; under CI=true the test fails instead"
)]
fn the_old_metadata_layout_is_read_and_rewritten() {
    let Some(env) = Env::new() else { return };
    env.config(&[&env.alice]);
    let file = env.write("old.yaml", "test_key: test_value\na_list:\n    - e1\n    - e3\nnested:\n    test:\n        file: another value\n");
    success(&env.sops(&env.alice, ["-e", "-i", "old.yaml"]), "sops -e");
    // The layout sops 3.7 to 3.9 wrote: empty key-source lists first.
    let text = fs_err::read_to_string(&file).unwrap().replace(
        "sops:\n",
        "sops:\n    kms: []\n    gcp_kms: []\n    azure_kv: []\n    hc_vault: []\n    pgp: []\n",
    );
    fs_err::write(&file, &text).unwrap();
    let expected = fromgit_sops::yaml::parse("test_key: test_value\na_list:\n    - e1\n    - e3\nnested:\n    test:\n        file: another value\n").unwrap();
    assert_same(
        &env.sops_decrypt(&env.alice, &file),
        &expected,
        "sops reads the old layout",
    );
    assert_same(
        &env.our_decrypt(&env.alice, &file),
        &expected,
        "ours reads the old layout",
    );
    env.config(&[&env.alice, &env.bob]);
    success(
        &env.ours([
            "secrets",
            "updatekeys",
            "--identity",
            "alice.txt",
            "old.yaml",
        ]),
        "our updatekeys",
    );
    assert_same(
        &env.sops_decrypt(&env.bob, &file),
        &expected,
        "sops reads our rewrite",
    );
}

#[test]
#[cfg_attr(
    any(missing_sops, missing_age_keygen, missing_ssh_keygen),
    ignore = "needs `sops`, `age-keygen` and `ssh-keygen`; one was not found when the tests were built: `bash tests/run --install-only` installs them; under CI=true the test fails instead"
)]
fn ssh_host_keys_convert_as_sops_nix_does() {
    let Some(env) = Env::new() else { return };
    let Some(keygen) = peer("ssh-keygen") else {
        return;
    };
    let key = env.path("ssh_host_ed25519_key");
    success(
        &run(
            &keygen,
            [
                OsStr::new("-q"),
                OsStr::new("-t"),
                OsStr::new("ed25519"),
                OsStr::new("-N"),
                OsStr::new(""),
                OsStr::new("-f"),
                key.as_os_str(),
            ],
            env.dir.path(),
            &[],
            b"",
        ),
        "ssh-keygen",
    );
    let recipient = success(
        &env.ours(["secrets", "recipient", "--ssh", "ssh_host_ed25519_key.pub"]),
        "recipient",
    )
    .trim()
    .to_owned();
    assert!(
        recipient.starts_with("age1") && recipient.len() == 62,
        "{recipient}"
    );
    // Real sops wraps for the derived recipient; the host key decrypts with ours.
    let file = env.write("host.yaml", "k: v\n");
    success(
        &env.sops(&env.alice, ["-e", "--age", &recipient, "-i", "host.yaml"]),
        "sops -e --age",
    );
    let output = env.ours([
        "secrets",
        "decrypt",
        "--identity",
        "ssh_host_ed25519_key",
        "host.yaml",
    ]);
    assert_eq!(success(&output, "decrypt with host key"), "k: v\n");
    let _ = file;
}

#[test]
#[cfg_attr(
    any(missing_sops, missing_age_keygen),
    ignore = "needs `sops` and `age-keygen`; one was not found when the tests were built: `bash tests/run --install-only` installs them; under CI=true the test fails instead"
)]
fn keygen_writes_a_key_file_age_reads() {
    let Some(env) = Env::new() else { return };
    let Some(keygen) = peer("age-keygen") else {
        return;
    };
    let recipient = success(&env.ours(["secrets", "keygen", "-o", "new.txt"]), "keygen");
    let derived = run(
        &keygen,
        [OsStr::new("-y"), env.path("new.txt").as_os_str()],
        env.dir.path(),
        &[],
        b"",
    );
    assert_eq!(success(&derived, "age-keygen -y"), recipient);
    assert_eq!(
        fs_err::metadata(env.path("new.txt"))
            .unwrap()
            .permissions()
            .mode()
            & 0o777,
        0o600
    );
    assert_eq!(
        env.ours(["secrets", "keygen", "-o", "new.txt"])
            .status
            .code(),
        Some(2),
        "never overwrites"
    );
}

#[test]
fn ssh_to_age_known_vector() {
    // A public key and the recipient that ssh-to-age printed for it.
    let dir = tempfile::tempdir().unwrap();
    fs_err::write(
        dir.path().join("k.pub"),
        "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAICYvKXGcG4a19tTT0Rycbn+D0r/YlKltLJ9dY2gR/Fjx openpgp:0x47C9F3FF\n",
    )
    .unwrap();
    let output = run(
        &fromgit_bin("instance-extract"),
        ["secrets", "recipient", "--ssh", "k.pub"],
        dir.path(),
        &[],
        b"",
    );
    assert_eq!(
        success(&output, "recipient").trim(),
        "age18s8m9hvlrwvltgys4lafyyqe356ntc7e06t4kd2nccqm5amsaa2s878mju"
    );
}
