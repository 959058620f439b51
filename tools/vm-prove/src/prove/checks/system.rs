//! Checks of the system as a whole: no pending jobs, no failed units, and
//! `/run/current-system` the expected toplevel (its closure saved when not).

use std::path::Path;
use std::time::{Duration, Instant};

use fromgit_nix::command::Nix;
use fromgit_nix::StorePath;

use super::probe::{check, sh};
use crate::config::Config;
use crate::evidence::CheckRecord;
use crate::incus::Client;

/// `/run/current-system` against the expected toplevel. On a mismatch the
/// instance's closure (`nix path-info --json --recursive`, read-only) is
/// saved next to the evidence, where `closure-diff` explains the drift.
pub(super) async fn current_system_check(
    client: &Client,
    name: &str,
    toplevel: &str,
    evidence_dir: &Path,
    run_id: &str,
) -> CheckRecord {
    let check_name = "current-system".to_owned();
    let expected = format!("`/run/current-system` → `{toplevel}`");
    let observed = match sh(
        client,
        name,
        "readlink -f /run/current-system",
        "current system",
    )
    .await
    {
        Ok((0, path)) if !path.is_empty() => path,
        Ok((code, text)) => {
            return check(
                check_name,
                false,
                expected,
                format!("no /run/current-system (exit {code}: {text})"),
            )
        }
        Err(e) => return check(check_name, false, expected, format!("could not run: {e}")),
    };
    if observed == toplevel {
        return check(check_name, true, expected, format!("`{observed}`"));
    }
    let observed_path = match StorePath::new(&observed) {
        Ok(path) => path,
        Err(e) => {
            return check(
                check_name,
                false,
                expected,
                format!("`{observed}`; its closure cannot be recorded: {e}"),
            )
        }
    };
    let argv = Nix::new().path_info_closure([&observed_path]);
    let Some(words) = argv.to_strs() else {
        return check(
            check_name,
            false,
            expected,
            format!("`{observed}`; `{argv}` is not UTF-8"),
        );
    };
    let dump = client
        .exec(
            name,
            &words,
            Duration::from_secs(300),
            "recording the closure",
        )
        .await;
    let explanation = match dump {
        Ok(out) if out.exit == 0 => {
            let file = evidence_dir.join(format!("{run_id}.current-system.json"));
            match crate::evidence::write_private(&file, &out.stdout) {
                Ok(()) => format!(
                    "its closure is saved in `{}`: `closure-diff {toplevel} {}` explains the drift",
                    file.display(),
                    file.display()
                ),
                Err(e) => format!("its closure could not be saved: {e}"),
            }
        }
        Ok(out) => format!(
            "its closure could not be recorded (nix exited {}: {})",
            out.exit,
            String::from_utf8_lossy(&out.stderr).trim()
        ),
        Err(e) => format!("its closure could not be recorded: {e}"),
    };
    check(
        check_name,
        false,
        expected,
        format!("`{observed}`; {explanation}"),
    )
}

pub(super) async fn pending_jobs(client: &Client, config: &Config, name: &str) -> CheckRecord {
    let start = Instant::now();
    let settle = config.checks.settle_timeout.duration();
    let jobs = loop {
        match sh(
            client,
            name,
            "systemctl list-jobs --no-legend --plain",
            "pending jobs",
        )
        .await
        {
            Ok((_, text)) if text.is_empty() => break Ok(String::new()),
            Ok((_, text)) if start.elapsed() >= settle => break Ok(text),
            Ok(_) => tokio::time::sleep(Duration::from_millis(500)).await,
            Err(e) => break Err(e),
        }
    };
    match jobs {
        Ok(text) => check(
            "no-pending-jobs".to_owned(),
            text.is_empty(),
            "no jobs".to_owned(),
            if text.is_empty() {
                "no jobs".to_owned()
            } else {
                text
            },
        ),
        Err(e) => check(
            "no-pending-jobs".to_owned(),
            false,
            "no jobs".to_owned(),
            format!("could not run: {e}"),
        ),
    }
}

pub(super) async fn failed_units(client: &Client, name: &str) -> CheckRecord {
    let check_name = "no-failed-units".to_owned();
    let expected = "none".to_owned();
    match sh(
        client,
        name,
        "systemctl list-units --state=failed --no-legend --plain",
        "failed units",
    )
    .await
    {
        Ok((0, text)) if text.is_empty() => check(check_name, true, expected, "none".to_owned()),
        Ok((0, text)) => check(check_name, false, expected, text.replace('\n', "; ")),
        Ok((code, text)) => check(check_name, false, expected, format!("exit {code}: {text}")),
        Err(e) => check(check_name, false, expected, format!("could not run: {e}")),
    }
}
