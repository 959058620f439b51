//! A sops YAML file: the reader never panics, and a plaintext document that
//! reads back emits to text that reads back to the same tree.
#![no_main]

use fromgit_sops::{yaml, EncryptedFile, Format};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let _ = EncryptedFile::parse(text, Format::Yaml);
    if let Ok(tree) = yaml::parse(text) {
        let emitted = yaml::emit(&tree);
        assert_eq!(yaml::parse(&emitted).ok(), Some(tree), "emit/parse round trip");
    }
});
