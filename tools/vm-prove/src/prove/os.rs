//! Whether the instance runs NixOS decides what a run can prove: blocks and
//! checks marked `needs=nixos` are not run elsewhere, and the evidence says so.

use std::time::Duration;

use crate::incus::Client;

/// What the instance runs, from `/etc/os-release`, and whether it is NixOS.
pub(super) async fn detect_os(client: &Client, name: &str) -> anyhow::Result<(String, bool)> {
    let out = client
        .exec(
            name,
            &[
                "sh",
                "-c",
                ". /etc/os-release 2>/dev/null; echo \"${ID:-unknown}\"; echo \"${PRETTY_NAME:-unknown}\"",
            ],
            Duration::from_secs(60),
            "reading /etc/os-release",
        )
        .await?;
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let mut lines = text.lines();
    let id = lines.next().unwrap_or("unknown").trim().to_owned();
    let pretty = lines.next().unwrap_or("unknown").trim().to_owned();
    Ok((pretty, id == "nixos"))
}

/// The most a run on this instance can prove, in words.
pub(super) fn level(os: &str, nixos: bool, kind: crate::config::InstanceType) -> String {
    let kind = match kind {
        crate::config::InstanceType::Container => "container",
        crate::config::InstanceType::VirtualMachine => "virtual machine",
    };
    if nixos {
        format!("a NixOS rebuild on a {os} {kind}")
    } else {
        format!("mechanics on a {os} {kind} (not NixOS; the host's rebuild is not proven)")
    }
}

/// Why a block or check was not run on an instance that is not NixOS.
pub const NEEDS_NIXOS: &str = "needs NixOS";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_level_says_what_can_be_proven() {
        use crate::config::InstanceType;
        assert_eq!(
            level("NixOS 25.11 (Xantusia)", true, InstanceType::VirtualMachine),
            "a NixOS rebuild on a NixOS 25.11 (Xantusia) virtual machine"
        );
        let debian = level(
            "Debian GNU/Linux 12 (bookworm)",
            false,
            InstanceType::Container,
        );
        assert!(
            debian
                .starts_with("mechanics on a Debian GNU/Linux 12 (bookworm) container (not NixOS"),
            "{debian}"
        );
    }
}
