//! Outside `CI=true`, a test whose peer is missing is shown as ignored with
//! the reason instead of passing without having run: for each peer that is
//! not found, this emits `--cfg missing_<peer>`, which the tests' `ignore`
//! attributes name. Under `CI=true` nothing is ignored and a missing peer
//! fails its test.

#[path = "kit/src/peers.rs"]
mod peers;

fn main() {
    println!("cargo::rerun-if-changed=build.rs");
    println!("cargo::rerun-if-changed=kit/src/peers.rs");
    for var in [
        "CI",
        "PATH",
        "FROMGIT_INCUS_URL",
        "FROMGIT_INCUS_ENV",
        "FROMGIT_SARIF_SCHEMA",
    ] {
        println!("cargo::rerun-if-env-changed={var}");
    }
    let env_file = peers::incus_env_file();
    // A path that does not exist would rerun this script on every build.
    if env_file.exists() {
        println!("cargo::rerun-if-changed={}", env_file.display());
    }
    let mut missing = Vec::new();
    for (cfg, program) in peers::PEERS {
        println!("cargo::rustc-check-cfg=cfg(missing_{cfg})");
        println!("cargo::rerun-if-env-changed={}", peers::peer_var(program));
        if peers::find_peer(program).is_none() {
            missing.push(*cfg);
        }
    }
    for cfg in ["incus_daemon", "sarif_schema"] {
        println!("cargo::rustc-check-cfg=cfg(missing_{cfg})");
    }
    if !peers::incus_configured() {
        missing.push("incus_daemon");
    }
    if peers::sarif_schema().is_none() {
        missing.push("sarif_schema");
    }
    if std::env::var("CI").is_ok_and(|v| v == "true") {
        return;
    }
    for cfg in missing {
        println!("cargo::rustc-cfg=missing_{cfg}");
    }
}
