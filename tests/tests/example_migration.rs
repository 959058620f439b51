//! `examples/migrate`, the README's first command, runs end to end on the
//! example monolith with the binaries under test and every step it runs
//! passes; under `CI=true` no step may be skipped.

use std::path::Path;

use fromgit_e2e::{fromgit_bin, peer, run};

#[test]
fn the_example_migration_passes() {
    let Some(_) = peer("openssl") else { return };
    let repo = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let bin_dir = fromgit_bin("instance-extract");
    let bin_dir = bin_dir.parent().unwrap_or(Path::new("."));
    let output = run(
        Path::new("/bin/bash"),
        [repo.join("examples/migrate").as_os_str()],
        &repo,
        &[("FROMGIT_BIN_DIR", bin_dir.as_os_str())],
        b"",
    );
    let summary = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "examples/migrate failed:\n{summary}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    for step in [
        "keygen",
        "plan",
        "apply",
        "apply-again",
        "cert-seal",
        "verify",
    ] {
        assert!(
            summary
                .lines()
                .any(|l| l.starts_with(step) && l.contains(" ok ")),
            "step `{step}` did not pass:\n{summary}"
        );
    }
    assert!(!summary.contains("FAILED"), "{summary}");
    // CI installs every peer (Nix, the Incus daemon): no step may be skipped there.
    if std::env::var("CI").is_ok_and(|v| v == "true") {
        assert!(
            !summary.contains("skipped"),
            "a step was skipped under CI=true:\n{summary}"
        );
    }
}
