//! `cert-seal` against real components: certificates generated here (a
//! root, an intermediate, wildcard leaves of every key type, broken ones),
//! `openssl` cross-checking the verdicts, the real `sops` decrypting every
//! sealed file, `openssl s_server` on 127.0.0.1 for `probe`, and Nix 2.8
//! parsing the printed declarations.
//!
//! Over 600 lines on purpose: every refusal of `check` and `seal` is a case
//! against real openssl-made certificates, sharing one certificate factory.

#![allow(clippy::unwrap_used, clippy::panic, clippy::missing_panics_doc)]

use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::process::{Child, Output};

use fromgit_testkit::{age_keygen, fromgit_bin, peer, run, stdout, success, AgeKey};
use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, KeyPair,
    SignatureAlgorithm, SubjectPublicKeyInfo,
};
use time::{Duration, OffsetDateTime};

const DOMAIN: &str = "example.net";

struct Ca {
    cert: rcgen::Certificate,
    key: KeyPair,
}

fn ca(name: &str, issuer: Option<&Ca>) -> Ca {
    let key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
    let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.distinguished_name.push(DnType::CommonName, name);
    params.not_before = OffsetDateTime::now_utc() - Duration::days(30);
    params.not_after = OffsetDateTime::now_utc() + Duration::days(3650);
    let cert = match issuer {
        None => params.self_signed(&key).unwrap(),
        Some(issuer) => params.signed_by(&key, &issuer.cert, &issuer.key).unwrap(),
    };
    Ca { cert, key }
}

/// A leaf to generate: everything a test may want to break.
struct LeafSpec {
    names: Vec<String>,
    not_before: OffsetDateTime,
    not_after: OffsetDateTime,
    purposes: Vec<ExtendedKeyUsagePurpose>,
}

impl Default for LeafSpec {
    fn default() -> Self {
        LeafSpec {
            names: vec![format!("*.{DOMAIN}"), DOMAIN.to_owned()],
            not_before: OffsetDateTime::now_utc() - Duration::days(1),
            not_after: OffsetDateTime::now_utc() + Duration::days(90),
            purposes: vec![ExtendedKeyUsagePurpose::ServerAuth],
        }
    }
}

/// The test PKI and a scratch directory with the peers.
struct Pki {
    dir: tempfile::TempDir,
    root: Ca,
    intermediate: Ca,
    openssl: PathBuf,
}

impl Pki {
    fn new() -> Option<Pki> {
        let openssl = peer("openssl")?;
        let root = ca("fromgit test root", None);
        let intermediate = ca("fromgit test intermediate", Some(&root));
        let pki = Pki {
            dir: tempfile::tempdir().unwrap(),
            root,
            intermediate,
            openssl,
        };
        pki.write("root.pem", &pki.root.cert.pem());
        pki.write("intermediate.pem", &pki.intermediate.cert.pem());
        Some(pki)
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn write(&self, name: &str, text: &str) -> PathBuf {
        let path = self.path(name);
        fs_err::write(&path, text).unwrap();
        path
    }

    fn openssl<I: IntoIterator<Item = S>, S: AsRef<OsStr>>(&self, args: I) -> Output {
        run(&self.openssl, args, self.dir.path(), &[], b"")
    }

    /// A key pair of the given algorithm; RSA keys come from `openssl genpkey`.
    fn key(&self, alg: &'static SignatureAlgorithm, rsa_bits: u32) -> KeyPair {
        if alg == &rcgen::PKCS_RSA_SHA256 {
            let output = self.openssl([
                "genpkey".to_owned(),
                "-algorithm".to_owned(),
                "RSA".to_owned(),
                "-pkeyopt".to_owned(),
                format!("rsa_keygen_bits:{rsa_bits}"),
            ]);
            KeyPair::from_pem_and_sign_algo(&success(&output, "openssl genpkey"), alg).unwrap()
        } else {
            KeyPair::generate_for(alg).unwrap()
        }
    }

    /// Writes `<name>.chain.pem` (leaf + intermediate) and `<name>.key.pem`.
    fn leaf(&self, name: &str, key: &KeyPair, spec: &LeafSpec) -> (PathBuf, PathBuf) {
        let cert = self.sign_leaf(key, spec);
        let chain = self.write(
            &format!("{name}.chain.pem"),
            &format!("{}{}", cert.pem(), self.intermediate.cert.pem()),
        );
        let key = self.write(&format!("{name}.key.pem"), &key.serialize_pem());
        (chain, key)
    }

    fn sign_leaf(&self, key: &impl rcgen::PublicKeyData, spec: &LeafSpec) -> rcgen::Certificate {
        let mut params = CertificateParams::new(spec.names.clone()).unwrap();
        params.distinguished_name.push(DnType::CommonName, DOMAIN);
        params.not_before = spec.not_before;
        params.not_after = spec.not_after;
        params.extended_key_usages.clone_from(&spec.purposes);
        params
            .signed_by(key, &self.intermediate.cert, &self.intermediate.key)
            .unwrap()
    }

    fn cert_seal<I: IntoIterator<Item = S>, S: AsRef<OsStr>>(&self, args: I) -> Output {
        run(&fromgit_bin("cert-seal"), args, self.dir.path(), &[], b"")
    }

    fn check(&self, chain: &Path, key: &Path, extra: &[&str]) -> Output {
        let mut args: Vec<&OsStr> = vec![
            OsStr::new("check"),
            OsStr::new("--cert"),
            chain.as_os_str(),
            OsStr::new("--key"),
            key.as_os_str(),
            OsStr::new("--domain"),
            OsStr::new(DOMAIN),
        ];
        args.extend(extra.iter().map(OsStr::new));
        self.cert_seal(args)
    }
}

fn assert_passes(output: &Output, what: &str) {
    assert_eq!(
        output.status.code(),
        Some(0),
        "{what} should pass:\n{}{}",
        stdout(output),
        String::from_utf8_lossy(&output.stderr)
    );
}

fn assert_refused(output: &Output, check: &str, what: &str) {
    let text = stdout(output);
    assert_eq!(
        output.status.code(),
        Some(1),
        "{what} should be refused:\n{text}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        text.contains(&format!("refused ({check})")),
        "{what}: no `{check}` refusal in:\n{text}"
    );
}

#[test]
#[cfg_attr(
    missing_openssl,
    ignore = "`openssl` not found when the tests were built: `bash tests/run --install-only` installs it; under CI=true the test fails instead"
)]
fn every_key_type_passes_and_a_foreign_key_is_refused() {
    let Some(pki) = Pki::new() else { return };
    for (name, alg) in [
        ("rsa", &rcgen::PKCS_RSA_SHA256),
        ("p256", &rcgen::PKCS_ECDSA_P256_SHA256),
        ("p384", &rcgen::PKCS_ECDSA_P384_SHA384),
        ("ed25519", &rcgen::PKCS_ED25519),
    ] {
        let key = pki.key(alg, 2048);
        let (chain, key_file) = pki.leaf(name, &key, &LeafSpec::default());
        assert_passes(&pki.check(&chain, &key_file, &[]), name);
        // openssl agrees the chain verifies up to the root.
        let leaf_only = pki.write(
            &format!("{name}.leaf.pem"),
            &fs_err::read_to_string(&chain).unwrap()[..],
        );
        let verify = pki.openssl([
            OsStr::new("verify"),
            OsStr::new("-CAfile"),
            OsStr::new("root.pem"),
            OsStr::new("-untrusted"),
            OsStr::new("intermediate.pem"),
            leaf_only.as_os_str(),
        ]);
        success(&verify, "openssl verify");
        let other = pki.key(alg, 2048);
        let other_file = pki.write(&format!("{name}.other.key.pem"), &other.serialize_pem());
        assert_refused(
            &pki.check(&chain, &other_file, &[]),
            "key-mismatch",
            &format!("{name} with a foreign key"),
        );
    }
}

#[test]
#[cfg_attr(
    missing_openssl,
    ignore = "`openssl` not found when the tests were built: `bash tests/run --install-only` installs it; under CI=true the test fails instead"
)]
fn names_must_cover_the_apex_and_the_wildcard() {
    let Some(pki) = Pki::new() else { return };
    let key = pki.key(&rcgen::PKCS_ECDSA_P256_SHA256, 0);
    for (label, names) in [
        ("wildcard only", vec![format!("*.{DOMAIN}")]),
        ("apex only", vec![DOMAIN.to_owned()]),
        (
            "deeper wildcard",
            vec![format!("*.ci.{DOMAIN}"), DOMAIN.to_owned()],
        ),
        (
            "other domain",
            vec!["*.example.org".to_owned(), "example.org".to_owned()],
        ),
    ] {
        let spec = LeafSpec {
            names,
            ..LeafSpec::default()
        };
        let (chain, key_file) = pki.leaf("names", &key, &spec);
        assert_refused(&pki.check(&chain, &key_file, &[]), "names", label);
    }
}

#[test]
#[cfg_attr(
    missing_openssl,
    ignore = "`openssl` not found when the tests were built: `bash tests/run --install-only` installs it; under CI=true the test fails instead"
)]
fn chain_order_duplicates_and_root_are_refused() {
    let Some(pki) = Pki::new() else { return };
    let key = pki.key(&rcgen::PKCS_ECDSA_P256_SHA256, 0);
    let leaf = pki.sign_leaf(&key, &LeafSpec::default());
    let key_file = pki.write("key.pem", &key.serialize_pem());
    let (l, i, r) = (leaf.pem(), pki.intermediate.cert.pem(), pki.root.cert.pem());
    let reversed = pki.write("reversed.pem", &format!("{i}{l}"));
    assert_refused(
        &pki.check(&reversed, &key_file, &[]),
        "chain-order",
        "intermediate first",
    );
    let duplicate = pki.write("duplicate.pem", &format!("{l}{i}{i}"));
    assert_refused(
        &pki.check(&duplicate, &key_file, &[]),
        "chain-duplicate",
        "intermediate twice",
    );
    let with_root = pki.write("with-root.pem", &format!("{l}{i}{r}"));
    assert_refused(
        &pki.check(&with_root, &key_file, &[]),
        "chain-root",
        "root included",
    );
    let skipped = pki.write("skipped.pem", &format!("{l}{r}"));
    assert_refused(
        &pki.check(&skipped, &key_file, &[]),
        "chain-order",
        "intermediate missing, root next",
    );
    let good = pki.write("good.pem", &format!("{l}{i}"));
    assert_passes(&pki.check(&good, &key_file, &[]), "leaf, intermediate");
}

#[test]
#[cfg_attr(
    missing_openssl,
    ignore = "`openssl` not found when the tests were built: `bash tests/run --install-only` installs it; under CI=true the test fails instead"
)]
fn validity_window_and_renewal_margin() {
    let Some(pki) = Pki::new() else { return };
    let key = pki.key(&rcgen::PKCS_ECDSA_P256_SHA256, 0);
    let now = OffsetDateTime::now_utc();
    let expired = LeafSpec {
        not_before: now - Duration::days(100),
        not_after: now - Duration::days(10),
        ..LeafSpec::default()
    };
    let (chain, key_file) = pki.leaf("expired", &key, &expired);
    assert_refused(
        &pki.check(&chain, &key_file, &[]),
        "expired",
        "expired leaf",
    );
    // openssl agrees: it expires within 0 seconds.
    assert_eq!(
        pki.openssl([
            OsStr::new("x509"),
            OsStr::new("-noout"),
            OsStr::new("-checkend"),
            OsStr::new("0"),
            OsStr::new("-in"),
            chain.as_os_str()
        ])
        .status
        .code(),
        Some(1)
    );

    let future = LeafSpec {
        not_before: now + Duration::days(2),
        ..LeafSpec::default()
    };
    let (chain, key_file) = pki.leaf("future", &key, &future);
    assert_refused(
        &pki.check(&chain, &key_file, &[]),
        "not-yet-valid",
        "future leaf",
    );

    let short = LeafSpec {
        not_after: now + Duration::days(10),
        ..LeafSpec::default()
    };
    let (chain, key_file) = pki.leaf("short", &key, &short);
    assert_refused(
        &pki.check(&chain, &key_file, &[]),
        "expires-soon",
        "10 days left",
    );
    let month = (30 * 86_400).to_string();
    assert_eq!(
        pki.openssl([
            OsStr::new("x509"),
            OsStr::new("-noout"),
            OsStr::new("-checkend"),
            OsStr::new(&month),
            OsStr::new("-in"),
            chain.as_os_str()
        ])
        .status
        .code(),
        Some(1)
    );
    assert_passes(
        &pki.check(&chain, &key_file, &["--allow-short"]),
        "10 days with --allow-short",
    );
    assert_passes(
        &pki.check(&chain, &key_file, &["--min-days", "5"]),
        "10 days with --min-days 5",
    );
}

#[test]
#[cfg_attr(
    missing_openssl,
    ignore = "`openssl` not found when the tests were built: `bash tests/run --install-only` installs it; under CI=true the test fails instead"
)]
fn purpose_and_key_strength() {
    let Some(pki) = Pki::new() else { return };
    let key = pki.key(&rcgen::PKCS_ECDSA_P256_SHA256, 0);
    let client_only = LeafSpec {
        purposes: vec![ExtendedKeyUsagePurpose::ClientAuth],
        ..LeafSpec::default()
    };
    let (chain, key_file) = pki.leaf("client", &key, &client_only);
    assert_refused(
        &pki.check(&chain, &key_file, &[]),
        "server-auth",
        "clientAuth only",
    );
    let no_eku = LeafSpec {
        purposes: Vec::new(),
        ..LeafSpec::default()
    };
    let (chain, key_file) = pki.leaf("noeku", &key, &no_eku);
    assert_refused(&pki.check(&chain, &key_file, &[]), "server-auth", "no EKU");

    // A 1024-bit RSA leaf: the key comes from openssl, the certificate from
    // the intermediate (signing tools refuse to hold such a key themselves).
    let weak = pki.openssl([
        "genpkey",
        "-algorithm",
        "RSA",
        "-pkeyopt",
        "rsa_keygen_bits:1024",
    ]);
    let weak_key = pki.write("weak.key.pem", &success(&weak, "openssl genpkey 1024"));
    let public = pki.openssl([
        OsStr::new("pkey"),
        OsStr::new("-pubout"),
        OsStr::new("-in"),
        weak_key.as_os_str(),
    ]);
    let spki = SubjectPublicKeyInfo::from_pem(&success(&public, "openssl pkey -pubout")).unwrap();
    let leaf = pki.sign_leaf(&spki, &LeafSpec::default());
    let chain = pki.write(
        "weak.chain.pem",
        &format!("{}{}", leaf.pem(), pki.intermediate.cert.pem()),
    );
    let output = pki.check(&chain, &weak_key, &[]);
    assert_refused(&output, "weak-key", "RSA 1024");
    assert!(
        !stdout(&output).contains("key-mismatch"),
        "the weak key does match:\n{}",
        stdout(&output)
    );
}

#[test]
#[cfg_attr(
    missing_openssl,
    ignore = "`openssl` not found when the tests were built: `bash tests/run --install-only` installs it; under CI=true the test fails instead"
)]
fn input_that_is_not_what_it_claims() {
    let Some(pki) = Pki::new() else { return };
    let key = pki.key(&rcgen::PKCS_ECDSA_P256_SHA256, 0);
    let (chain, key_file) = pki.leaf("good", &key, &LeafSpec::default());

    let encrypted = pki.openssl([
        OsStr::new("pkcs8"),
        OsStr::new("-topk8"),
        OsStr::new("-v2"),
        OsStr::new("aes-256-cbc"),
        OsStr::new("-passout"),
        OsStr::new("pass:fromgit"),
        OsStr::new("-in"),
        key_file.as_os_str(),
    ]);
    let encrypted = pki.write(
        "encrypted.key.pem",
        &success(&encrypted, "openssl pkcs8 -topk8"),
    );
    assert_refused(
        &pki.check(&chain, &encrypted, &[]),
        "input",
        "encrypted key",
    );

    let der = pki.openssl([
        OsStr::new("x509"),
        OsStr::new("-outform"),
        OsStr::new("der"),
        OsStr::new("-in"),
        chain.as_os_str(),
    ]);
    assert!(der.status.success());
    let der_file = pki.path("leaf.der");
    fs_err::write(&der_file, &der.stdout).unwrap();
    assert_refused(&pki.check(&der_file, &key_file, &[]), "input", "DER chain");

    let empty = pki.write("empty.pem", "");
    assert_refused(&pki.check(&empty, &key_file, &[]), "input", "empty chain");
    assert_refused(&pki.check(&chain, &empty, &[]), "input", "empty key");
    assert_refused(
        &pki.check(&key_file, &key_file, &[]),
        "input",
        "key where the chain belongs",
    );
    assert_refused(
        &pki.check(&chain, &chain, &[]),
        "input",
        "chain where the key belongs",
    );

    let missing = pki.check(&pki.path("absent.pem"), &key_file, &[]);
    assert_eq!(missing.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&missing.stderr).contains("absent.pem"));
}

/// The sealing side: needs sops and age too.
struct Sealing {
    pki: Pki,
    sops: PathBuf,
    age: AgeKey,
}

impl Sealing {
    fn new() -> Option<Sealing> {
        let pki = Pki::new()?;
        let sops = peer("sops")?;
        let age = age_keygen(pki.dir.path(), "age")?;
        pki.write(
            ".sops.yaml",
            &format!(
                "creation_rules:\n  - path_regex: secrets/.*\\.yaml$\n    age: {}\n",
                age.recipient
            ),
        );
        fs_err::create_dir_all(pki.path("secrets")).unwrap();
        Some(Sealing { pki, sops, age })
    }

    fn sops_extract(&self, file: &str, path: &str) -> String {
        let output = run(
            &self.sops,
            ["-d", "--extract", path, file],
            self.pki.dir.path(),
            &[("SOPS_AGE_KEY_FILE", self.age.file.as_os_str())],
            b"",
        );
        success(&output, "sops -d --extract")
    }

    fn seal(&self, chain: &Path, key: &Path, extra: &[&str]) -> Output {
        let mut args: Vec<&OsStr> = vec![
            OsStr::new("seal"),
            OsStr::new("--cert"),
            chain.as_os_str(),
            OsStr::new("--key"),
            key.as_os_str(),
            OsStr::new("--domain"),
            OsStr::new(DOMAIN),
        ];
        args.extend(extra.iter().map(OsStr::new));
        self.pki.cert_seal(args)
    }
}

#[test]
#[cfg_attr(
    any(missing_openssl, missing_sops, missing_age_keygen),
    ignore = "needs `openssl`, `sops` and `age-keygen`; one was not found when the tests were built: `bash tests/run --install-only` installs them; under CI=true the test fails instead"
)]
fn seal_inspect_renew_round_trip_through_sops() {
    let Some(sealing) = Sealing::new() else {
        return;
    };
    let pki = &sealing.pki;
    let key = pki.key(&rcgen::PKCS_ECDSA_P256_SHA256, 0);
    let (chain, key_file) = pki.leaf("first", &key, &LeafSpec::default());
    // No identity anywhere: sealing needs only the public recipient.
    let output = sealing.seal(&chain, &key_file, &["--out", "secrets/tls.yaml"]);
    assert_passes(&output, "seal");
    let sealed = fs_err::read_to_string(pki.path("secrets/tls.yaml")).unwrap();
    assert!(!sealed.contains("PRIVATE KEY"), "the key is encrypted");
    assert_eq!(
        sealing.sops_extract("secrets/tls.yaml", r#"["tls"]["fullchain"]"#),
        fs_err::read_to_string(&chain).unwrap()
    );
    assert_eq!(
        sealing.sops_extract("secrets/tls.yaml", r#"["tls"]["key"]"#),
        fs_err::read_to_string(&key_file).unwrap()
    );

    let inspect = pki.cert_seal(["inspect", "--json", "secrets/tls.yaml"]);
    assert_passes(&inspect, "inspect without any key");
    let report = stdout(&inspect);
    assert!(report.contains(&format!("\"*.{DOMAIN}\"")), "{report}");
    assert!(
        report.contains("\"days_left\": 89") || report.contains("\"days_left\": 90"),
        "{report}"
    );
    assert_eq!(
        pki.cert_seal(["inspect", "--min-days", "120", "secrets/tls.yaml"])
            .status
            .code(),
        Some(1)
    );

    // A renewal that drops the apex is refused and leaves the file alone.
    let narrower = LeafSpec {
        names: vec![
            format!("*.{DOMAIN}"),
            DOMAIN.to_owned(),
            format!("ci.{DOMAIN}"),
        ],
        not_after: OffsetDateTime::now_utc() + Duration::days(200),
        ..LeafSpec::default()
    };
    let (renewed_chain, renewed_key) = pki.leaf("second", &key, &narrower);
    let output = sealing.seal(&renewed_chain, &renewed_key, &["--out", "secrets/tls.yaml"]);
    assert_passes(&output, "renewal adding a name");
    let text = stdout(&output);
    assert!(
        text.contains(&format!("- name added: ci.{DOMAIN}")),
        "{text}"
    );
    assert!(
        text.contains("tls: renew *.example.net certificate"),
        "{text}"
    );
    assert_eq!(
        sealing.sops_extract("secrets/tls.yaml", r#"["tls"]["fullchain"]"#),
        fs_err::read_to_string(&renewed_chain).unwrap()
    );

    let before = fs_err::read_to_string(pki.path("secrets/tls.yaml")).unwrap();
    let (first_chain, first_key) = pki.leaf("third", &key, &LeafSpec::default());
    let output = sealing.seal(&first_chain, &first_key, &["--out", "secrets/tls.yaml"]);
    assert_refused(&output, "names-removed", "dropping ci.example.net");
    assert_eq!(
        fs_err::read_to_string(pki.path("secrets/tls.yaml")).unwrap(),
        before
    );
    assert_passes(
        &sealing.seal(
            &first_chain,
            &first_key,
            &["--out", "secrets/tls.yaml", "--allow-name-removal"],
        ),
        "with --allow-name-removal",
    );
}

#[test]
#[cfg_attr(
    any(missing_openssl, missing_sops, missing_age_keygen),
    ignore = "needs `openssl`, `sops` and `age-keygen`; one was not found when the tests were built: `bash tests/run --install-only` installs them; under CI=true the test fails instead"
)]
fn seal_into_keeps_other_ciphertexts() {
    let Some(sealing) = Sealing::new() else {
        return;
    };
    let pki = &sealing.pki;
    pki.write(
        "secrets/secrets.yaml",
        "drone:\n    rpc_secret: abc123\nwebhook: s3cret\n",
    );
    let encrypt = run(
        &sealing.sops,
        ["-e", "-i", "secrets/secrets.yaml"],
        pki.dir.path(),
        &[],
        b"",
    );
    success(&encrypt, "sops -e");
    let before = fs_err::read_to_string(pki.path("secrets/secrets.yaml")).unwrap();
    let key = pki.key(&rcgen::PKCS_ED25519, 0);
    let (chain, key_file) = pki.leaf("into", &key, &LeafSpec::default());
    let output = sealing.seal(
        &chain,
        &key_file,
        &[
            "--into",
            "secrets/secrets.yaml",
            "--identity",
            sealing.age.file.to_str().unwrap(),
        ],
    );
    assert_passes(&output, "seal --into");
    let after = fs_err::read_to_string(pki.path("secrets/secrets.yaml")).unwrap();
    for line in before
        .lines()
        .filter(|l| l.contains("rpc_secret:") || l.contains("webhook:"))
    {
        assert!(after.contains(line.trim()), "`{line}` changed:\n{after}");
    }
    assert_eq!(
        sealing.sops_extract("secrets/secrets.yaml", r#"["webhook"]"#),
        "s3cret"
    );
    assert_eq!(
        sealing.sops_extract("secrets/secrets.yaml", r#"["tls"]["key"]"#),
        fs_err::read_to_string(&key_file).unwrap()
    );
}

/// An `openssl s_server` on 127.0.0.1, killed on drop.
struct Server {
    child: Child,
    address: String,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn serve(pki: &Pki, leaf: &Path, key: &Path) -> Server {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut server = Server {
        child: std::process::Command::new(&pki.openssl)
            .args([
                "s_server",
                "-quiet",
                "-accept",
                &format!("127.0.0.1:{port}"),
            ])
            .arg("-cert")
            .arg(leaf)
            .arg("-key")
            .arg(key)
            .arg("-cert_chain")
            .arg(pki.path("intermediate.pem"))
            .current_dir(pki.dir.path())
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap(),
        address: format!("127.0.0.1:{port}"),
    };
    for _ in 0..100 {
        if std::net::TcpStream::connect(&server.address).is_ok() {
            return server;
        }
        if let Ok(Some(status)) = server.child.try_wait() {
            panic!("openssl s_server exited with {status}");
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    panic!("openssl s_server did not start on {}", server.address);
}

#[test]
#[cfg_attr(
    any(missing_openssl, missing_sops, missing_age_keygen),
    ignore = "needs `openssl`, `sops` and `age-keygen`; one was not found when the tests were built: `bash tests/run --install-only` installs them; under CI=true the test fails instead"
)]
fn probe_tells_the_sealed_certificate_from_another() {
    let Some(sealing) = Sealing::new() else {
        return;
    };
    let pki = &sealing.pki;
    let key = pki.key(&rcgen::PKCS_ECDSA_P256_SHA256, 0);
    let (chain, key_file) = pki.leaf("served", &key, &LeafSpec::default());
    assert_passes(
        &sealing.seal(&chain, &key_file, &["--out", "secrets/tls.yaml"]),
        "seal",
    );
    let leaf_only = pki.write("served.leaf.pem", &fs_err::read_to_string(&chain).unwrap());

    let right = serve(pki, &leaf_only, &key_file);
    let output = pki.cert_seal([
        "probe",
        &right.address,
        "--sni",
        &format!("ci.{DOMAIN}"),
        "--expect",
        "secrets/tls.yaml",
    ]);
    assert_passes(&output, "probe of the sealed certificate");
    assert!(stdout(&output).starts_with("match"), "{}", stdout(&output));

    let other_key = pki.key(&rcgen::PKCS_ECDSA_P256_SHA256, 0);
    let (other_chain, other_key_file) = pki.leaf("other", &other_key, &LeafSpec::default());
    let wrong = serve(pki, &other_chain, &other_key_file);
    let output = pki.cert_seal([
        "probe",
        &wrong.address,
        "--sni",
        DOMAIN,
        "--expect",
        "secrets/tls.yaml",
    ]);
    assert_eq!(output.status.code(), Some(1), "{}", stdout(&output));
    let text = stdout(&output);
    assert!(text.starts_with("MISMATCH"), "{text}");
    assert_eq!(
        text.matches("valid 20").count(),
        2,
        "both validity windows shown:\n{text}"
    );

    let closed = pki.cert_seal([
        "probe",
        "127.0.0.1:1",
        "--expect",
        "secrets/tls.yaml",
        "--timeout",
        "2",
    ]);
    assert_eq!(closed.status.code(), Some(2));
}

#[test]
#[cfg_attr(
    any(
        missing_openssl,
        missing_sops,
        missing_age_keygen,
        missing_nix_instantiate
    ),
    ignore = "needs `openssl`, `sops`, `age-keygen` and `nix-instantiate`; one was not found when the tests were built: `bash tests/run --install-only` installs them; under CI=true the test fails instead"
)]
fn nix_declarations_parse_with_real_nix() {
    let Some(sealing) = Sealing::new() else {
        return;
    };
    let Some(nix_instantiate) = peer("nix-instantiate") else {
        return;
    };
    let pki = &sealing.pki;
    let key = pki.key(&rcgen::PKCS_ECDSA_P256_SHA256, 0);
    let (chain, key_file) = pki.leaf("nix", &key, &LeafSpec::default());
    assert_passes(
        &sealing.seal(&chain, &key_file, &["--out", "secrets/tls.yaml"]),
        "seal",
    );
    let output = pki.cert_seal([
        "nix",
        "secrets/tls.yaml",
        "--owner",
        "nginx",
        "--group",
        "acme",
        "--reload-unit",
        "nginx.service",
        "--fullchain-path",
        "/var/lib/tls/fullchain.pem",
        "--key-path",
        "/var/lib/tls/key.pem",
    ]);
    let nix = success(&output, "cert-seal nix");
    assert!(nix.contains("sops.secrets.\"tls/key\""), "{nix}");
    assert!(nix.contains("sopsFile = ./secrets/tls.yaml;"), "{nix}");
    assert!(nix.contains("mode = \"0440\";"), "{nix}");
    let module = pki.write("tls.nix", &nix);
    success(
        &run(
            &nix_instantiate,
            [OsStr::new("--parse"), module.as_os_str()],
            pki.dir.path(),
            &[],
            b"",
        ),
        "nix-instantiate --parse",
    );
}
