use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, KeyPair,
    SignatureAlgorithm, PKCS_ECDSA_P256_SHA256, PKCS_ECDSA_P384_SHA384, PKCS_ED25519,
};
use time::macros::datetime;
use time::{Duration, OffsetDateTime};
use zeroize::Zeroizing;

use super::*;

const DOMAIN: &str = "example.net";
const NOW: OffsetDateTime = datetime!(2026-06-01 12:00 UTC);

struct Ca {
    cert: rcgen::Certificate,
    key: KeyPair,
}

fn ca(name: &str, issuer: Option<&Ca>) -> Ca {
    let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).unwrap();
    let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.distinguished_name.push(DnType::CommonName, name);
    params.not_before = NOW - Duration::days(365);
    params.not_after = NOW + Duration::days(3650);
    let cert = match issuer {
        None => params.self_signed(&key).unwrap(),
        Some(issuer) => params.signed_by(&key, &issuer.cert, &issuer.key).unwrap(),
    };
    Ca { cert, key }
}

struct Leaf {
    names: Vec<String>,
    not_before: OffsetDateTime,
    not_after: OffsetDateTime,
    purposes: Vec<ExtendedKeyUsagePurpose>,
}

impl Default for Leaf {
    fn default() -> Self {
        Leaf {
            names: vec![format!("*.{DOMAIN}"), DOMAIN.to_owned()],
            not_before: NOW - Duration::days(1),
            not_after: NOW + Duration::days(90),
            purposes: vec![ExtendedKeyUsagePurpose::ServerAuth],
        }
    }
}

impl Leaf {
    fn sign(&self, key: &KeyPair, issuer: &Ca) -> Vec<u8> {
        let mut params = CertificateParams::new(self.names.clone()).unwrap();
        params.distinguished_name.push(DnType::CommonName, DOMAIN);
        params.not_before = self.not_before;
        params.not_after = self.not_after;
        params.extended_key_usages.clone_from(&self.purposes);
        params
            .signed_by(key, &issuer.cert, &issuer.key)
            .unwrap()
            .der()
            .to_vec()
    }
}

/// A root and the intermediate that issues the leaves.
struct Pki {
    root: Ca,
    intermediate: Ca,
}

impl Pki {
    fn new() -> Pki {
        let root = ca("fromgit test root", None);
        let intermediate = ca("fromgit test intermediate", Some(&root));
        Pki { root, intermediate }
    }

    /// The leaf followed by the intermediate, as a CA hands it out.
    fn chain(&self, key: &KeyPair, leaf: &Leaf) -> Vec<Vec<u8>> {
        vec![
            leaf.sign(key, &self.intermediate),
            self.intermediate.cert.der().to_vec(),
        ]
    }
}

fn key(alg: &'static SignatureAlgorithm) -> KeyPair {
    KeyPair::generate_for(alg).unwrap()
}

/// The private key as `openssl genpkey` writes it (PKCS #8).
fn pkcs8(key: &KeyPair) -> KeyInput {
    KeyInput {
        label: "PRIVATE KEY".to_owned(),
        der: Zeroizing::new(key.serialize_der()),
    }
}

fn policy() -> Policy<'static> {
    Policy {
        domain: DOMAIN,
        now: NOW,
        min_days: 30,
        allow_short: false,
    }
}

/// The ids of the checks that refuse `chain` with `key` under `policy`.
fn refused(chain: Vec<Vec<u8>>, key: &KeyInput, policy: &Policy<'_>) -> Vec<Refusal> {
    let input = ChainInput { der: chain };
    let certs = parse_chain(&input).unwrap();
    check(&certs, key, policy)
}

fn ids(refusals: &[Refusal]) -> Vec<&'static str> {
    refusals.iter().map(|r| r.check).collect()
}

#[test]
fn a_good_pair_of_each_key_type_passes() {
    let pki = Pki::new();
    for (alg, want) in [
        (&PKCS_ECDSA_P256_SHA256, KeyType::P256),
        (&PKCS_ECDSA_P384_SHA384, KeyType::P384),
        (&PKCS_ED25519, KeyType::Ed25519),
    ] {
        let key = key(alg);
        let input = ChainInput {
            der: pki.chain(&key, &Leaf::default()),
        };
        let certs = parse_chain(&input).unwrap();
        assert_eq!(key_type(&certs[0]), Some(want));
        assert_eq!(check(&certs, &pkcs8(&key), &policy()), vec![], "{want}");
    }
}

#[test]
fn a_key_of_another_pair_or_an_unknown_label_is_refused() {
    let pki = Pki::new();
    let key = key(&PKCS_ECDSA_P256_SHA256);
    let other = self::key(&PKCS_ECDSA_P256_SHA256);
    let chain = pki.chain(&key, &Leaf::default());
    let refusals = refused(chain.clone(), &pkcs8(&other), &policy());
    assert_eq!(ids(&refusals), ["key-mismatch"]);

    let ed25519 = self::key(&PKCS_ED25519);
    assert_eq!(
        ids(&refused(chain.clone(), &pkcs8(&ed25519), &policy())),
        ["key-mismatch"]
    );

    let unknown = KeyInput {
        label: "OPENSSH PRIVATE KEY".to_owned(),
        der: Zeroizing::new(key.serialize_der()),
    };
    let refusals = refused(chain, &unknown, &policy());
    assert_eq!(ids(&refusals), ["key-type"]);
    assert!(
        refusals[0].message.contains("`OPENSSH PRIVATE KEY`"),
        "{}",
        refusals[0].message
    );
}

#[test]
fn the_names_must_list_the_apex_and_the_wildcard() {
    let pki = Pki::new();
    let key = key(&PKCS_ECDSA_P256_SHA256);
    let names_refusal = |names: &[&str], domain: &str| {
        let leaf = Leaf {
            names: names.iter().map(|n| (*n).to_owned()).collect(),
            ..Leaf::default()
        };
        let policy = Policy { domain, ..policy() };
        refused(pki.chain(&key, &leaf), &pkcs8(&key), &policy)
            .into_iter()
            .find(|r| r.check == "names")
            .map(|r| r.message)
    };
    assert_eq!(
        names_refusal(&["*.example.net", "example.net"], DOMAIN),
        None
    );
    // Case and a trailing dot do not matter, on either side.
    assert_eq!(
        names_refusal(&["*.EXAMPLE.net.", "Example.Net"], "example.NET."),
        None
    );

    let only_wildcard = names_refusal(&["*.example.net"], DOMAIN).unwrap();
    assert!(
        only_wildcard.ends_with("do not cover `example.net`"),
        "{only_wildcard}"
    );
    let only_apex = names_refusal(&["example.net"], DOMAIN).unwrap();
    assert!(
        only_apex.ends_with("do not cover `*.example.net`"),
        "{only_apex}"
    );
    // A wildcard covers one label: `*.*.` and a parent's wildcard do not count.
    let deeper = names_refusal(&["*.*.example.net", "example.net"], DOMAIN).unwrap();
    assert!(deeper.contains("`*.example.net`"), "{deeper}");
    let parent = names_refusal(&["*.net", "example.net"], DOMAIN).unwrap();
    assert!(parent.contains("`*.example.net`"), "{parent}");
    let other = names_refusal(&["*.example.org", "example.org"], DOMAIN).unwrap();
    assert!(
        other.contains("(*.example.org, example.org)")
            && other.ends_with("`*.example.net` and `example.net`"),
        "{other}"
    );
}

#[test]
fn the_common_name_alone_does_not_count() {
    let pki = Pki::new();
    let key = key(&PKCS_ECDSA_P256_SHA256);
    let leaf = Leaf {
        names: Vec::new(),
        ..Leaf::default()
    };
    let refusals = refused(pki.chain(&key, &leaf), &pkcs8(&key), &policy());
    assert_eq!(ids(&refusals), ["names"]);
    assert!(
        refusals[0].message.contains("(none)"),
        "{}",
        refusals[0].message
    );
}

#[test]
fn the_chain_runs_leaf_first_without_repeats_or_the_root() {
    let pki = Pki::new();
    let key = key(&PKCS_ECDSA_P256_SHA256);
    let leaf = Leaf::default().sign(&key, &pki.intermediate);
    let intermediate = pki.intermediate.cert.der().to_vec();
    let root = pki.root.cert.der().to_vec();
    let key = pkcs8(&key);

    assert_eq!(
        ids(&refused(vec![leaf.clone()], &key, &policy())),
        Vec::<&str>::new()
    );
    assert_eq!(
        ids(&refused(
            vec![leaf.clone(), intermediate.clone(), root.clone()],
            &key,
            &policy()
        )),
        ["chain-root"]
    );
    let reversed = refused(vec![intermediate.clone(), leaf.clone()], &key, &policy());
    assert!(ids(&reversed).contains(&"chain-order"), "{reversed:?}");
    let repeated = refused(
        vec![leaf.clone(), intermediate.clone(), intermediate.clone()],
        &key,
        &policy(),
    );
    assert_eq!(ids(&repeated), ["chain-duplicate"]);
    assert!(
        repeated[0].message.starts_with("certificate 3 ")
            && repeated[0].message.ends_with("repeats certificate 2"),
        "{}",
        repeated[0].message
    );
    // Same subject name, another key: the issuer name matches, the
    // signature does not.
    let impostor = ca("fromgit test intermediate", Some(&pki.root));
    let forged = refused(vec![leaf, impostor.cert.der().to_vec()], &key, &policy());
    assert_eq!(ids(&forged), ["chain-order"]);
    assert!(
        forged[0]
            .message
            .starts_with("certificate 1 (`CN=example.net`) is not signed by certificate 2"),
        "{}",
        forged[0].message
    );
}

#[test]
fn the_validity_window_and_the_renewal_margin() {
    let pki = Pki::new();
    let key = key(&PKCS_ECDSA_P256_SHA256);
    let at = |leaf: &Leaf, now: OffsetDateTime, allow_short: bool| {
        let policy = Policy {
            now,
            allow_short,
            ..policy()
        };
        ids(&refused(pki.chain(&key, leaf), &pkcs8(&key), &policy))
    };
    let leaf = Leaf {
        not_before: NOW,
        not_after: NOW + Duration::days(60),
        ..Leaf::default()
    };
    assert_eq!(at(&leaf, NOW, false), Vec::<&str>::new());
    assert_eq!(
        at(&leaf, NOW - Duration::seconds(1), false),
        ["not-yet-valid"]
    );
    // Exactly 30 whole days left passes `--min-days 30`; a second less does not.
    assert_eq!(
        at(&leaf, NOW + Duration::days(30), false),
        Vec::<&str>::new()
    );
    let short = NOW + Duration::days(30) + Duration::seconds(1);
    assert_eq!(at(&leaf, short, false), ["expires-soon"]);
    assert_eq!(at(&leaf, short, true), Vec::<&str>::new());
    let last_second = NOW + Duration::days(60) - Duration::seconds(1);
    assert_eq!(at(&leaf, last_second, true), Vec::<&str>::new());
    // notAfter itself is already too late, and --allow-short does not help.
    assert_eq!(at(&leaf, NOW + Duration::days(60), true), ["expired"]);

    let refusals = {
        let policy = Policy {
            now: short,
            ..policy()
        };
        refused(pki.chain(&key, &leaf), &pkcs8(&key), &policy)
    };
    assert!(
        refusals[0]
            .message
            .contains("expires in 29 day(s), under `--min-days 30`"),
        "{}",
        refusals[0].message
    );
}

#[test]
fn an_expired_intermediate_is_named() {
    let root = ca("fromgit test root", None);
    let ikey = key(&PKCS_ECDSA_P256_SHA256);
    let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params
        .distinguished_name
        .push(DnType::CommonName, "old intermediate");
    params.not_before = NOW - Duration::days(400);
    params.not_after = NOW - Duration::days(1);
    let intermediate = Ca {
        cert: params.signed_by(&ikey, &root.cert, &root.key).unwrap(),
        key: ikey,
    };
    let key = key(&PKCS_ECDSA_P256_SHA256);
    let chain = vec![
        Leaf::default().sign(&key, &intermediate),
        intermediate.cert.der().to_vec(),
    ];
    let refusals = refused(chain, &pkcs8(&key), &policy());
    assert_eq!(ids(&refusals), ["expired"]);
    assert!(
        refusals[0]
            .message
            .starts_with("certificate 2 (`CN=old intermediate`) expired on"),
        "{}",
        refusals[0].message
    );
}

#[test]
fn the_leaf_must_be_for_servers() {
    let pki = Pki::new();
    let key = key(&PKCS_ECDSA_P256_SHA256);
    let with = |purposes: Vec<ExtendedKeyUsagePurpose>| {
        let leaf = Leaf {
            purposes,
            ..Leaf::default()
        };
        refused(pki.chain(&key, &leaf), &pkcs8(&key), &policy())
    };
    let none = with(Vec::new());
    assert_eq!(ids(&none), ["server-auth"]);
    assert!(
        none[0].message.contains("no extendedKeyUsage"),
        "{}",
        none[0].message
    );
    let client = with(vec![ExtendedKeyUsagePurpose::ClientAuth]);
    assert_eq!(ids(&client), ["server-auth"]);
    assert!(client[0].message.contains("does not include serverAuth"));
    assert!(with(vec![
        ExtendedKeyUsagePurpose::ClientAuth,
        ExtendedKeyUsagePurpose::ServerAuth
    ])
    .is_empty());
}

#[test]
fn every_refusal_is_reported_at_once() {
    let pki = Pki::new();
    let key = key(&PKCS_ECDSA_P256_SHA256);
    let other = self::key(&PKCS_ECDSA_P384_SHA384);
    let leaf = Leaf {
        names: vec!["example.org".to_owned()],
        not_after: NOW - Duration::days(1),
        not_before: NOW - Duration::days(90),
        purposes: Vec::new(),
    };
    let refusals = refused(pki.chain(&key, &leaf), &pkcs8(&other), &policy());
    assert_eq!(
        ids(&refusals),
        ["key-mismatch", "names", "expired", "server-auth"]
    );
}

#[test]
fn an_empty_or_unparsable_chain_is_input_error() {
    let key = pkcs8(&key(&PKCS_ECDSA_P256_SHA256));
    assert_eq!(ids(&check(&[], &key, &policy())), ["input"]);
    let pki = Pki::new();
    let input = ChainInput {
        der: vec![pki.intermediate.cert.der().to_vec(), b"not DER".to_vec()],
    };
    let Err(refusal) = parse_chain(&input) else {
        panic!("a chain with a block that is no certificate parsed");
    };
    assert_eq!(refusal.check, "input");
    assert!(
        refusal.message.starts_with("certificate 2 of the chain"),
        "{}",
        refusal.message
    );
}
