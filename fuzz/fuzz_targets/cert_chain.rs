//! PEM and X.509 input to cert-seal: the first byte splits the input into a
//! certificate chain (PEM text) and a private key (DER); parsing and every
//! check never panic.
#![no_main]

use cert_seal::check::{check, parse_chain, Policy};
use std::path::Path;

use cert_seal::pem_input::{chain_from_bytes, KeyInput, Read};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&split, rest)) = data.split_first() else { return };
    let split = usize::from(split).min(rest.len());
    let (chain_bytes, key_der) = rest.split_at(rest.len() - split);
    let Read::Ok(chain) = chain_from_bytes(Path::new("fuzz.pem"), chain_bytes) else { return };
    let Ok(certificates) = parse_chain(&chain) else { return };
    for label in ["PRIVATE KEY", "RSA PRIVATE KEY", "EC PRIVATE KEY"] {
        let key = KeyInput {
            label: label.to_owned(),
            der: zeroize::Zeroizing::new(key_der.to_vec()),
        };
        let policy = Policy {
            domain: "example.net",
            now: time::OffsetDateTime::UNIX_EPOCH,
            min_days: 30,
            allow_short: false,
        };
        let _ = check(&certificates, &key, &policy);
    }
});
