//! A `.leak-scan.toml` suppressions file: parsing, matching findings against
//! it and listing the unused entries never panic; an accepted entry always
//! suppresses a finding whose fingerprint it prefixes.
#![no_main]

use leak_scan::engine::Engine;
use leak_scan::rules::RuleSet;
use leak_scan::suppress::{Suppressions, DEFAULT_SALT};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(mut suppressions) = Suppressions::parse(text, ".leak-scan.toml") else {
        return;
    };
    let _ = suppressions.suppresses(
        "generic-secret-assignment",
        "0088fc23445d0123456789abcdef0123",
    );
    let _ = suppressions.suppresses("age-secret-key", "");
    let entries = suppressions.entries.clone();
    for entry in &entries {
        let mut fingerprint = entry.fingerprint.clone();
        fingerprint.extend(std::iter::repeat_n('0', 32 - fingerprint.len()));
        let rule = entry.rule.as_deref().unwrap_or("any-rule");
        assert!(suppressions.suppresses(rule, &fingerprint), "{entry:?}");
    }
    assert_eq!(suppressions.unused().count(), 0);
    if let Ok(rules) = RuleSet::from_sources(&[]) {
        let salt = suppressions.salt.as_deref().unwrap_or(DEFAULT_SALT);
        let _ = Engine::new(rules, None, salt).fingerprint("age-secret-key", b"a b\tc");
    }
});
