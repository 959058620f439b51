//! A sops JSON file: the reader never panics, and emit/parse round-trips.
#![no_main]

use fromgit_sops::{json, EncryptedFile, Format};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let _ = EncryptedFile::parse(text, Format::Json);
    if let Ok(tree) = json::parse(text) {
        let emitted = json::emit(&tree);
        assert_eq!(json::parse(&emitted).ok(), Some(tree), "emit/parse round trip");
    }
});
