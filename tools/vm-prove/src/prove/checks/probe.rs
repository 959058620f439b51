//! What every check is made of: a read-only shell command in the instance,
//! and the record of what it found.

use std::time::Duration;

use crate::evidence::CheckRecord;
use crate::incus::Client;

pub(super) async fn sh(
    client: &Client,
    name: &str,
    script: &str,
    what: &str,
) -> Result<(i32, String), String> {
    client
        .exec(name, &["sh", "-c", script], Duration::from_secs(120), what)
        .await
        .map(|o| (o.exit, String::from_utf8_lossy(&o.stdout).trim().to_owned()))
        .map_err(|e| e.to_string())
}

pub(super) fn check(name: String, passed: bool, expected: String, observed: String) -> CheckRecord {
    CheckRecord {
        name,
        passed,
        expected,
        observed,
        not_run: None,
    }
}
