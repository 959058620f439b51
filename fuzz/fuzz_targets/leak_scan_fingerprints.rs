//! A leak-scan fingerprint file (`--fingerprints FILE`): loading and
//! scanning never panic. The fuzzer cannot forge the file's integrity
//! value, so the entries it writes are also sealed with a fixed salt and
//! loaded again (a sealed file with well-formed fingerprints must load).
//! The input is also enrolled as a value: a secret, domain or e-mail
//! address written as enrolled is found again by a scan.
#![no_main]

use leak_scan::known::{Enroller, FingerprintFile, KnownSet};
use libfuzzer_sys::fuzz_target;

const TEXT: &[u8] = b"services.web.fqdn = \"web.example.net\";\nacme.email = \"ops@example.net\";\nlisten = [ \"192.0.2.7:443\" \"[2001:db8::1]:443\" ];\nvalue = \"Vx9-kQ2mZ7pL4wR8\" # c2VjcmV0LXZhbHVl 736563726574\n\\nline\\tnext\n";

fn scan(set: &KnownSet, data: &[u8]) {
    for m in set.scan(TEXT).iter().chain(&set.scan(data)) {
        assert!(m.entry < set.entries.len());
        assert!(m.start <= m.end, "{m:?}");
    }
}

fn sealed(enroller: Enroller) -> KnownSet {
    let file = serde_json::to_vec(&enroller.finish()).expect("the file serializes");
    KnownSet::parse(&file).expect("a sealed file loads")
}

fn wide(b: u8) -> bool {
    !(b.is_ascii_whitespace() || matches!(b, b'"' | b'\'' | b'`' | b'\\'))
}

fn found(set: &KnownSet, text: &str, transform: &str) -> bool {
    set.scan(text.as_bytes())
        .iter()
        .any(|m| set.entries[m.entry].transform == transform)
}

fuzz_target!(|data: &[u8]| {
    if let Ok(set) = KnownSet::parse(data) {
        scan(&set, data);
    }
    if let Ok(file) = serde_json::from_slice::<FingerprintFile>(data) {
        let well_formed = file
            .entries
            .iter()
            .all(|e| e.fp.len() == 32 && e.fp.bytes().all(|b| b.is_ascii_hexdigit()));
        let mut enroller = Enroller::with_salt([7; 32]);
        enroller.entries = file.entries;
        let file = serde_json::to_vec(&enroller.finish()).expect("the file serializes");
        match KnownSet::parse(&file) {
            Ok(set) => scan(&set, data),
            Err(err) => assert!(!well_formed, "a sealed file does not load: {err}"),
        }
    }
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let mut enroller = Enroller::with_salt([9; 32]);
    let secret = enroller.secret("fuzz", text).is_some();
    let set = sealed(enroller);
    scan(&set, data);
    let value = text.trim();
    if secret && !value.contains('\n') && value.bytes().all(wide) {
        assert!(found(&set, value, "raw"), "an enrolled secret is not found");
    }
    let mut enroller = Enroller::with_salt([9; 32]);
    let domain = enroller.domain(text).is_some();
    enroller.email(text);
    if let Ok(ip) = value.parse() {
        enroller.address(ip);
    }
    let set = sealed(enroller);
    scan(&set, data);
    let name = value.trim_end_matches('.').to_ascii_lowercase();
    let host = |b: u8| b.is_ascii_alphanumeric() || b == b'.' || b == b'-';
    let edge = |b: Option<&u8>| b.is_some_and(u8::is_ascii_alphanumeric);
    if domain
        && name.bytes().all(host)
        && edge(name.as_bytes().first())
        && edge(name.as_bytes().last())
    {
        assert!(
            found(&set, &name, "lowercase"),
            "an enrolled domain is not found"
        );
    }
});
