//! leak-scan's SARIF validates against the official SARIF 2.1.0 schema (as
//! Microsoft ships it, `FROMGIT_SARIF_SCHEMA`), with Python's `jsonschema`:
//! the format GitHub code scanning ingests.

#![allow(clippy::unwrap_used, clippy::panic, clippy::print_stderr)]

use std::path::PathBuf;

use fromgit_testkit::peers::sarif_schema;
use fromgit_testkit::{fromgit_bin, in_ci, peer, run, success};

fn schema() -> Option<PathBuf> {
    let path = sarif_schema();
    if path.is_none() {
        assert!(
            !in_ci(),
            "the SARIF schema is required under CI=true (FROMGIT_SARIF_SCHEMA; `bash tests/run --install-only` fetches it)"
        );
        eprintln!("skipping: FROMGIT_SARIF_SCHEMA is not set");
    }
    path
}

#[test]
#[cfg_attr(
    any(missing_sarif_schema, missing_python3),
    ignore = "needs `python3` and the SARIF schema (FROMGIT_SARIF_SCHEMA); one was not found when the tests were built: `bash tests/run --install-only` installs them; under CI=true the test fails instead"
)]
fn sarif_output_validates_against_the_schema() {
    let Some(schema) = schema() else { return };
    let Some(python) = peer("python3") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    // Findings of several rules in two files, one of them with a non-ASCII name.
    let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)
        .unwrap()
        .serialize_pem();
    fs_err::write(dir.path().join("key.pem"), &key).unwrap();
    let age: String = (0..58)
        .map(|i| char::from(b"qpzry9x8gf2tvdw0s3jn54khce6mua7l"[(i * 7) % 32]).to_ascii_uppercase())
        .collect();
    fs_err::write(
        dir.path().join("réglages.nix"),
        format!("{{ k = \"AGE-SECRET-KEY-1{age}\"; }}\n"),
    )
    .unwrap();
    let report = dir.path().join("report.sarif");
    let output = run(
        &fromgit_bin("leak-scan"),
        [
            dir.path().to_str().unwrap(),
            "--format",
            "sarif",
            "-o",
            report.to_str().unwrap(),
        ],
        dir.path(),
        &[],
        b"",
    );
    assert_eq!(
        output.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let sarif = fs_err::read_to_string(&report).unwrap();
    assert!(sarif.contains("\"results\""), "{sarif}");
    assert!(!sarif.contains(&age), "the secret is in the SARIF");
    let check = "import json, sys, jsonschema\n\
                 jsonschema.validate(json.load(open(sys.argv[1])), json.load(open(sys.argv[2])))\n\
                 print('valid')";
    let output = run(
        &python,
        [
            "-c",
            check,
            report.to_str().unwrap(),
            schema.to_str().unwrap(),
        ],
        dir.path(),
        &[],
        b"",
    );
    assert_eq!(success(&output, "jsonschema validation").trim(), "valid");
}
