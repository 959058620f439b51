//! Nix source given to instance-extract: parsing, scanning and the rewrite
//! edits never panic, and the rewritten text parses again.
#![no_main]

use std::path::Path;

use instance_extract::nixsrc::{scan, NixFile, Needles};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let Ok(file) = NixFile::parse(Path::new("/base"), "m.nix".into(), text.to_owned()) else { return };
    let secrets = vec![("tls/key".to_owned(), "/var/lib/tls/key.pem".to_owned())];
    let _ = scan(&file, &Needles { domain: "example.net", secrets: &secrets });
});
