//! Hostile and careless inputs against the built binaries (issue 15): files
//! nested past every parser's depth, crafted file names, conflicting closure
//! inputs, empty pipes, symlinks, stale temporary files, edited clear values.
//! Each case failed before its fix: an abort (exit 134), a silent success, or
//! a wrong verdict.

#![allow(clippy::unwrap_used, clippy::panic, clippy::missing_panics_doc)]

use std::ffi::OsStr;
use std::os::unix::fs::PermissionsExt as _;
use std::path::Path;
use std::process::Output;

use fromgit_testkit::{age_keygen, fromgit_bin, peer, run, stderr, success};
use rcgen::{BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, KeyPair};
use time::{Duration, OffsetDateTime};

/// sops-nix's public test recipient: encrypting to it needs no key here.
const PUBLIC_RECIPIENT: &str = "age1yt3tfqlfrwdwx0z0ynwplcr6qxcxfaqycuprpmy89nr83ltx74tqdpszlw";

fn tool<I, S>(name: &str, args: I, dir: &Path, stdin: &[u8]) -> Output
where
    I: IntoIterator<Item = S>,
    S: AsRef<OsStr>,
{
    run(&fromgit_bin(name), args, dir, &[], stdin)
}

/// Exit 2, not a signal (an abort has no exit code), and one error line.
fn assert_error_exit(output: &Output, what: &str) {
    assert_eq!(
        output.status.code(),
        Some(2),
        "{what}: {:?}\nstderr: {}",
        output.status,
        stderr(output)
    );
    let text = stderr(output);
    assert!(text.starts_with("error: "), "{what}: {text}");
    assert!(!text.contains("Caused by"), "{what}: {text}");
}

/// A 40 KB block-style YAML nested 20,000 levels.
fn nested_yaml() -> String {
    format!("k:\n{}x\n", "- ".repeat(20_000))
}

fn nested_json() -> String {
    format!("{{\"k\":{}1{}}}", "[".repeat(20_000), "]".repeat(20_000))
}

/// Every way a binary reads a YAML or JSON file, on `file`.
fn every_reader(file: &str) -> Vec<(&'static str, Vec<String>)> {
    let s = |args: &[&str]| args.iter().map(|a| (*a).to_owned()).collect::<Vec<_>>();
    let mut runs = vec![
        (
            "instance-extract",
            s(&["secrets", "encrypt", "--recipient", PUBLIC_RECIPIENT, file]),
        ),
        ("instance-extract", s(&["secrets", "decrypt", file])),
        ("instance-extract", s(&["secrets", "set", file, r#"["k"]"#])),
    ];
    if Path::new(file)
        .extension()
        .is_some_and(|e| e == "yaml" || e == "yml")
    {
        runs.push(("cert-seal", s(&["inspect", file])));
        runs.push(("cert-seal", s(&["nix", file])));
    } else {
        runs.push(("closure-diff", s(&[file, file])));
    }
    runs
}

#[test]
fn every_binary_refuses_nested_and_crafted_name_files_with_exit_2() {
    let dir = tempfile::tempdir().unwrap();
    let crafted = "x\n\u{1b}[32mproven clean\u{1b}[0m.yaml";
    for (name, text) in [
        ("deep.yaml", nested_yaml()),
        ("deep.json", nested_json()),
        (crafted, nested_yaml()),
    ] {
        fs_err::write(dir.path().join(name), &text).unwrap();
        for (binary, args) in every_reader(name) {
            let what = format!("{binary} {}", args.join(" ").escape_debug());
            let output = tool(binary, &args, dir.path(), b"value");
            assert_error_exit(&output, &what);
            let text = stderr(&output);
            assert!(!text.contains('\u{1b}'), "{what}: raw escape in {text:?}");
            assert!(
                text.lines().all(|line| !line.starts_with("proven clean")),
                "{what}: {text:?}"
            );
            if name != crafted {
                assert!(text.contains(name), "{what}: {text}");
            }
            if binary != "closure-diff" {
                assert!(
                    text.contains("nested deeper than 100 levels"),
                    "{what}: {text}"
                );
            }
        }
    }
}

const APP: &str = "b88n4acqmh2knzsxgwfq4a5r3wdwnpwr-app-2.0";
const LIB: &str = "fy0hp0n6zv4k93b0fdgcblp223w0y3n6-libfoo-1.0";
const HASH_A: &str = "sha256-ZBhNBAfED4UpMGFOVdp/9e5UHa3TZ78H3xJrxVxNe70=";
const HASH_B: &str = "sha256-AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=";

fn entry(base: &str, hash: &str, refs: &[&str]) -> String {
    let refs: Vec<String> = refs.iter().map(|r| format!("\"/nix/store/{r}\"")).collect();
    format!(
        r#"{{"path":"/nix/store/{base}","narHash":"{hash}","narSize":1,"references":[{}]}}"#,
        refs.join(",")
    )
}

fn narinfo(base: &str, hash: &str, refs: &str) -> String {
    format!(
        "StorePath: /nix/store/{base}\nURL: nar/x.nar\nCompression: none\nNarHash: {hash}\nNarSize: 1\nReferences: {refs}\n"
    )
}

#[test]
fn closure_diff_refuses_a_path_listed_twice_with_different_hashes() {
    let dir = tempfile::tempdir().unwrap();
    let write = |name: &str, text: &str| fs_err::write(dir.path().join(name), text).unwrap();
    let good = format!(
        "[{},{}]",
        entry(APP, HASH_A, &[LIB]),
        entry(LIB, HASH_A, &[])
    );
    write("good.json", &good);
    // The later entry for `libfoo` claims another hash: order must not decide.
    write(
        "array.json",
        &format!(
            "[{},{},{}]",
            entry(APP, HASH_A, &[LIB]),
            entry(LIB, HASH_A, &[]),
            entry(LIB, HASH_B, &[])
        ),
    );
    let object_entry =
        |hash: &str| format!(r#"{{"narHash":"{hash}","narSize":1,"references":[]}}"#);
    write(
        "object.json",
        &format!(
            r#"{{"/nix/store/{APP}":{{"narHash":"{HASH_A}","narSize":1,"references":["/nix/store/{LIB}"]}},"/nix/store/{LIB}":{},"/nix/store/{LIB}":{}}}"#,
            object_entry(HASH_A),
            object_entry(HASH_B)
        ),
    );
    write(
        "snapshot.json",
        &format!(
            r#"{{"schema":"closure-diff-snapshot-v1","storeDir":"/nix/store","roots":["{APP}"],"paths":{{"{APP}":{{"narHash":"{HASH_A}","narSize":1,"references":["{LIB}"]}},"{LIB}":{},"{LIB}":{}}}}}"#,
            object_entry(HASH_A),
            object_entry(HASH_B)
        ),
    );
    let cache = dir.path().join("cache");
    fs_err::create_dir(&cache).unwrap();
    fs_err::write(cache.join("app.narinfo"), narinfo(APP, HASH_A, LIB)).unwrap();
    fs_err::write(cache.join("lib-a.narinfo"), narinfo(LIB, HASH_A, "")).unwrap();
    fs_err::write(cache.join("lib-b.narinfo"), narinfo(LIB, HASH_B, "")).unwrap();

    for input in ["array.json", "object.json", "snapshot.json", "cache"] {
        for args in [["good.json", input], [input, "good.json"]] {
            let output = tool("closure-diff", args, dir.path(), b"");
            let what = format!("closure-diff {}", args.join(" "));
            assert_error_exit(&output, &what);
            assert!(stderr(&output).contains(LIB), "{what}: {}", stderr(&output));
        }
    }
    // An identical repetition says nothing new and is accepted.
    write(
        "repeated.json",
        &format!(
            "[{},{},{}]",
            entry(APP, HASH_A, &[LIB]),
            entry(LIB, HASH_A, &[]),
            entry(LIB, HASH_A, &[])
        ),
    );
    let output = tool(
        "closure-diff",
        ["good.json", "repeated.json"],
        dir.path(),
        b"",
    );
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
}

/// A file encrypted by `instance-extract` for a fresh age key.
struct Secrets {
    dir: tempfile::TempDir,
    key: fromgit_testkit::AgeKey,
}

impl Secrets {
    fn new() -> Option<Secrets> {
        let dir = tempfile::tempdir().unwrap();
        let key = age_keygen(dir.path(), "age")?;
        Some(Secrets { dir, key })
    }

    fn path(&self, name: &str) -> std::path::PathBuf {
        self.dir.path().join(name)
    }

    fn run(&self, args: &[&str], stdin: &[u8]) -> Output {
        let mut all: Vec<&OsStr> = args.iter().map(OsStr::new).collect();
        if matches!(args.get(1), Some(&("set" | "decrypt"))) {
            all.extend([OsStr::new("--identity"), self.key.file.as_os_str()]);
        }
        tool("instance-extract", all, self.dir.path(), stdin)
    }

    fn encrypt(&self, plain: &str, out: &str) {
        fs_err::write(self.path("plain.yaml"), plain).unwrap();
        let output = self.run(
            &[
                "secrets",
                "encrypt",
                "--recipient",
                &self.key.recipient,
                "plain.yaml",
                "-o",
                out,
            ],
            b"",
        );
        success(&output, "secrets encrypt -o");
    }

    fn value(&self, file: &str, key: &str) -> String {
        success(
            &self.run(&["secrets", "decrypt", "--extract", key, file], b""),
            "secrets decrypt --extract",
        )
    }
}

#[test]
#[cfg_attr(
    missing_age_keygen,
    ignore = "`age-keygen` not found when the tests were built: `bash tests/run --install-only` installs it; under CI=true the test fails instead"
)]
fn careless_secrets_use_is_refused_or_handled() {
    let Some(secrets) = Secrets::new() else {
        return;
    };
    secrets.encrypt("db: hunter2\n", "secrets.yaml");
    // A new encrypted file is owner-only, as sops writes it.
    let mode = fs_err::metadata(secrets.path("secrets.yaml"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);

    // An empty pipe does not silently blank a secret.
    let before = fs_err::read(secrets.path("secrets.yaml")).unwrap();
    let empty = secrets.run(&["secrets", "set", "secrets.yaml", r#"["db"]"#], b"");
    assert_error_exit(&empty, "set with empty stdin");
    assert!(
        stderr(&empty).contains("--allow-empty"),
        "{}",
        stderr(&empty)
    );
    assert_eq!(fs_err::read(secrets.path("secrets.yaml")).unwrap(), before);
    let allowed = secrets.run(
        &[
            "secrets",
            "set",
            "--allow-empty",
            "secrets.yaml",
            r#"["db"]"#,
        ],
        b"",
    );
    success(&allowed, "set --allow-empty");
    assert_eq!(secrets.value("secrets.yaml", r#"["db"]"#), "");

    // A symlink is written through and stays a link; a crash's leftovers go.
    fs_err::create_dir(secrets.path("real")).unwrap();
    secrets.encrypt("db: one\n", "real/secrets.yaml");
    std::os::unix::fs::symlink("real/secrets.yaml", secrets.path("link.yaml")).unwrap();
    let stale = secrets.path("real/.secrets.yaml.AbCdEf.fromgit-tmp");
    fs_err::write(&stale, "ENC[left by a crash]").unwrap();
    let set = secrets.run(&["secrets", "set", "link.yaml", r#"["db"]"#], b"two");
    success(&set, "set through a symlink");
    assert!(fs_err::symlink_metadata(secrets.path("link.yaml"))
        .unwrap()
        .file_type()
        .is_symlink());
    assert_eq!(secrets.value("real/secrets.yaml", r#"["db"]"#), "two");
    assert!(!stale.exists(), "the stale temporary file is removed");
    assert!(
        stderr(&set).contains("interrupted write"),
        "{}",
        stderr(&set)
    );

    // A directory given as a file is named as one.
    fs_err::create_dir(secrets.path("dir.yaml")).unwrap();
    for args in [
        vec!["secrets", "decrypt", "dir.yaml"],
        vec![
            "secrets",
            "encrypt",
            "--recipient",
            PUBLIC_RECIPIENT,
            "dir.yaml",
        ],
    ] {
        let output = secrets.run(&args, b"");
        assert_error_exit(&output, "a directory as the file");
        assert!(
            stderr(&output).contains("is a directory"),
            "{}",
            stderr(&output)
        );
    }
}

#[test]
#[cfg_attr(
    missing_ssh_keygen,
    ignore = "`ssh-keygen` not found when the tests were built: `bash tests/run --install-only` installs it; under CI=true the test fails instead"
)]
fn recipient_refuses_a_file_with_two_ssh_keys() {
    let Some(ssh_keygen) = peer("ssh-keygen") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let mut both = String::new();
    for name in ["a", "b"] {
        let output = run(
            &ssh_keygen,
            ["-q", "-t", "ed25519", "-N", "", "-f", name],
            dir.path(),
            &[],
            b"",
        );
        success(&output, "ssh-keygen");
        both.push_str(&fs_err::read_to_string(dir.path().join(format!("{name}.pub"))).unwrap());
    }
    fs_err::write(dir.path().join("two.pub"), &both).unwrap();
    let output = tool(
        "instance-extract",
        ["secrets", "recipient", "--ssh", "two.pub"],
        dir.path(),
        b"",
    );
    assert_error_exit(&output, "recipient --ssh with two keys");
    assert!(
        stderr(&output).contains("2 public keys"),
        "{}",
        stderr(&output)
    );
    let one = tool(
        "instance-extract",
        ["secrets", "recipient", "--ssh", "a.pub"],
        dir.path(),
        b"",
    );
    assert!(success(&one, "recipient --ssh").starts_with("age1"));
}

const DOMAIN: &str = "example.net";

/// A wildcard leaf signed by an intermediate: `(chain, key)` PEM files.
fn wildcard_pair(dir: &Path) -> (std::path::PathBuf, std::path::PathBuf) {
    let ca = |name: &str, issuer: Option<(&rcgen::Certificate, &KeyPair)>| {
        let key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.distinguished_name.push(DnType::CommonName, name);
        params.not_before = OffsetDateTime::now_utc() - Duration::days(30);
        params.not_after = OffsetDateTime::now_utc() + Duration::days(3650);
        let cert = match issuer {
            None => params.self_signed(&key).unwrap(),
            Some((cert, issuer_key)) => params.signed_by(&key, cert, issuer_key).unwrap(),
        };
        (cert, key)
    };
    let (root, root_key) = ca("hostile test root", None);
    let (intermediate, intermediate_key) =
        ca("hostile test intermediate", Some((&root, &root_key)));
    let key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
    let mut params =
        CertificateParams::new(vec![format!("*.{DOMAIN}"), DOMAIN.to_owned()]).unwrap();
    params.distinguished_name.push(DnType::CommonName, DOMAIN);
    params.not_before = OffsetDateTime::now_utc() - Duration::days(1);
    params.not_after = OffsetDateTime::now_utc() + Duration::days(90);
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    let leaf = params
        .signed_by(&key, &intermediate, &intermediate_key)
        .unwrap();
    let chain = dir.join("chain.pem");
    fs_err::write(&chain, format!("{}{}", leaf.pem(), intermediate.pem())).unwrap();
    let key_file = dir.join("key.pem");
    fs_err::write(&key_file, key.serialize_pem()).unwrap();
    (chain, key_file)
}

#[test]
#[cfg_attr(
    missing_age_keygen,
    ignore = "`age-keygen` not found when the tests were built: `bash tests/run --install-only` installs it; under CI=true the test fails instead"
)]
fn cert_seal_names_bad_input_and_checks_clear_values_with_a_key() {
    let Some(age) = Secrets::new() else {
        return;
    };
    let dir = age.dir.path();
    let (chain, key) = wildcard_pair(dir);
    let pair = |extra: &[&str]| {
        let mut args = vec![
            "check".to_owned(),
            "--cert".to_owned(),
            chain.display().to_string(),
            "--key".to_owned(),
            key.display().to_string(),
        ];
        args.extend(extra.iter().map(|a| (*a).to_owned()));
        tool("cert-seal", args, dir, b"")
    };
    assert_eq!(pair(&["--domain", ""]).status.code(), Some(2));

    let text = fs_err::read_to_string(&chain).unwrap();
    let truncated = dir.join("truncated.pem");
    fs_err::write(&truncated, &text[..text.len() / 3]).unwrap();
    let output = tool(
        "cert-seal",
        [
            "check",
            "--cert",
            "truncated.pem",
            "--key",
            "key.pem",
            "--domain",
            DOMAIN,
        ],
        dir,
        b"",
    );
    assert_eq!(output.status.code(), Some(1));
    let said = String::from_utf8_lossy(&output.stdout);
    assert!(said.contains("truncated PEM"), "{said}");
    assert!(!said.contains("DER"), "{said}");

    let sealed = tool(
        "cert-seal",
        [
            "seal",
            "--cert",
            "chain.pem",
            "--key",
            "key.pem",
            "--domain",
            DOMAIN,
            "--out",
            "tls.yaml",
            "--recipient",
            &age.key.recipient,
        ],
        dir,
        b"",
    );
    success(&sealed, "cert-seal seal");
    let inspect = |extra: &[&str]| {
        let mut args = vec!["inspect", "tls.yaml"];
        args.extend(extra);
        tool("cert-seal", args, dir, b"")
    };
    let identity = age.key.file.to_str().unwrap();
    let unkeyed = success(&inspect(&[]), "inspect");
    assert!(unkeyed.contains("unauthenticated"), "{unkeyed}");
    let keyed = success(&inspect(&["--identity", identity]), "inspect --identity");
    assert!(keyed.contains("match the decrypted certificate"), "{keyed}");

    // Edited clear values: 72 more years of validity, unnoticed without the key.
    let file = fs_err::read_to_string(dir.join("tls.yaml")).unwrap();
    let year = OffsetDateTime::now_utc().year();
    let edited: String = file
        .lines()
        .map(|line| {
            if line.trim_start().starts_with("not_after:") {
                line.replace(&format!("{year}-"), &format!("{}-", year + 72))
                    .replace(&format!("{}-", year + 1), &format!("{}-", year + 73))
            } else {
                line.to_owned()
            }
        })
        .collect::<Vec<_>>()
        .join("\n")
        + "\n";
    assert_ne!(edited, file, "not_after was edited");
    fs_err::write(dir.join("tls.yaml"), edited).unwrap();
    let unkeyed = inspect(&[]);
    assert_eq!(unkeyed.status.code(), Some(0));
    assert!(String::from_utf8_lossy(&unkeyed.stdout).contains("unauthenticated"));
    let keyed = inspect(&["--identity", identity]);
    assert_eq!(keyed.status.code(), Some(1), "{}", stderr(&keyed));
    assert!(String::from_utf8_lossy(&keyed.stdout).contains("MISMATCH"));
    let json = tool(
        "cert-seal",
        ["inspect", "--json", "tls.yaml", "--identity", identity],
        dir,
        b"",
    );
    let report: serde_json::Value = serde_json::from_slice(&json.stdout).unwrap();
    assert_eq!(report["matches_sealed"], serde_json::json!(false));
    assert_eq!(report["ok"], serde_json::json!(false));
}
