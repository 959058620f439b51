//! Nix store formats from untrusted places: `.drv` ATerm, `nix path-info`
//! JSON of every shape, `.narinfo` and Nix32 never panic; Nix32 round-trips.
#![no_main]

use fromgit_nix::{drv, nix32, pathinfo};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = drv::parse_aterm(data);
    let _ = pathinfo::parse_path_info_json(data, "/nix/store");
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = pathinfo::parse_narinfo(text);
        if let Ok(bytes) = nix32::decode(text) {
            assert_eq!(nix32::decode(&nix32::encode(&bytes)).ok(), Some(bytes));
        }
    }
});
