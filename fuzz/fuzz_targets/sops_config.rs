//! A `.sops.yaml`: parsing and rule lookup never panic.
#![no_main]

use std::path::Path;

use fromgit_sops::config::CreationRules;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    if let Ok(rules) = CreationRules::parse(Path::new("/fuzz/.sops.yaml"), text) {
        let _ = rules.rule_for(Path::new("/fuzz/secrets/secrets.yaml"));
        let _ = rules.matching("secrets/tls.yaml");
    }
});
