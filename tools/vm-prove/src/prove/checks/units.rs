//! Whether a configured unit converged, read from systemd's own state and,
//! for a oneshot systemd has already unloaded, from the journal.

use std::collections::BTreeMap;
use std::time::Duration;

use super::probe::check;
use crate::evidence::CheckRecord;
use crate::incus::Client;

/// The journal's last "start job finished" record of a unit in this boot
/// (message 39f53479…, `JOB_RESULT`): what is left of a oneshot that
/// systemd has unloaded after it exited.
const JOB_DONE_IN_JOURNAL: &str = "journalctl -b -u \"$1\" -o json --no-pager --output-fields=MESSAGE_ID,JOB_TYPE,JOB_RESULT | grep 39f53479d3a045ac8e11786248231fbf | grep '\"JOB_TYPE\":\"start\"' | tail -n 1";

pub(super) async fn unit_check(client: &Client, name: &str, unit: &str) -> CheckRecord {
    let script = format!(
        "systemctl show \"$1\" -p Id,LoadState,ActiveState,SubState,Result,ExecMainStatus,ExecMainStartTimestampMonotonic,ExecMainExitTimestampMonotonic,Type,RemainAfterExit,InvocationID && echo '--- journal' && {JOB_DONE_IN_JOURNAL}"
    );
    let name_of = format!("unit `{unit}`");
    let out = client
        .exec(
            name,
            &["sh", "-c", &script, "sh", unit],
            Duration::from_secs(120),
            &name_of,
        )
        .await;
    match out {
        Ok(out) if out.exit == 0 => {
            let text = String::from_utf8_lossy(&out.stdout).into_owned();
            let (show, journal) = text.split_once("--- journal").unwrap_or((&text, ""));
            let props: BTreeMap<&str, &str> =
                show.lines().filter_map(|l| l.split_once('=')).collect();
            let state = UnitState::of(&props, journal.trim());
            check(
                name_of,
                state.converged(),
                unit_expectation(&props),
                state.to_string(),
            )
        }
        Ok(out) => check(
            name_of,
            false,
            "loaded and converged".to_owned(),
            format!(
                "exit {}: {}",
                out.exit,
                String::from_utf8_lossy(&out.stderr).trim()
            ),
        ),
        Err(e) => check(
            name_of,
            false,
            "loaded and converged".to_owned(),
            format!("could not run: {e}"),
        ),
    }
}

fn unit_expectation(p: &BTreeMap<&str, &str>) -> String {
    if p.get("Type").copied() == Some("oneshot") {
        "oneshot: ran and exited 0 (enabled or not)".to_owned()
    } else {
        "service: loaded, active, running".to_owned()
    }
}

/// Where a unit stands, in systemd's terms, after the runbook.
#[derive(Debug, Clone, PartialEq, Eq)]
enum UnitState {
    /// A oneshot that ran and exited 0 (`how`: from its state, or from the journal).
    RanAndExited0 { how: &'static str },
    /// A service that is up.
    Running,
    /// A unit whose run failed.
    Failed { detail: String },
    /// No run of it in this boot.
    NeverRan,
    /// Still starting (a oneshot's `ExecStart` has not exited yet).
    Activating,
    /// No such unit, or it does not load.
    NotLoaded { load_state: String },
    /// A service that ran and is no longer running.
    Stopped { detail: String },
}

impl UnitState {
    /// Reads `systemctl show` and, for a oneshot whose state systemd no
    /// longer holds, the journal's last start job record.
    fn of(p: &BTreeMap<&str, &str>, journal_job: &str) -> UnitState {
        let get = |k: &str| p.get(k).copied().unwrap_or_default();
        let exited_at = get("ExecMainExitTimestampMonotonic")
            .parse::<u64>()
            .unwrap_or(0);
        let detail = || {
            format!(
                "ActiveState={} Result={} ExecMainStatus={}",
                get("ActiveState"),
                get("Result"),
                get("ExecMainStatus")
            )
        };
        if get("LoadState") != "loaded" {
            return UnitState::NotLoaded {
                load_state: get("LoadState").to_owned(),
            };
        }
        match get("ActiveState") {
            "activating" | "reloading" => return UnitState::Activating,
            "failed" => return UnitState::Failed { detail: detail() },
            _ => {}
        }
        if get("Result") != "success" {
            return UnitState::Failed { detail: detail() };
        }
        let oneshot = get("Type") == "oneshot";
        if get("InvocationID").is_empty() {
            // Unloaded after it ran (a oneshot started, not enabled), or never run.
            return match journal_job_result(journal_job).as_deref() {
                Some("done") if oneshot => UnitState::RanAndExited0 {
                    how: "from the journal: systemd no longer holds its state",
                },
                Some("done") => UnitState::Stopped {
                    detail: "started in this boot, no longer running".to_owned(),
                },
                Some(other) => UnitState::Failed {
                    detail: format!("the journal's start job: JOB_RESULT={other}"),
                },
                None => UnitState::NeverRan,
            };
        }
        if oneshot {
            let remain = get("RemainAfterExit") == "yes";
            let want = if remain { "active" } else { "inactive" };
            if exited_at > 0 && get("ExecMainStatus") == "0" && get("ActiveState") == want {
                UnitState::RanAndExited0 {
                    how: "from its state",
                }
            } else {
                UnitState::Failed { detail: detail() }
            }
        } else if get("ActiveState") == "active" && get("SubState") == "running" {
            UnitState::Running
        } else {
            UnitState::Stopped {
                detail: format!(
                    "ActiveState={} SubState={}",
                    get("ActiveState"),
                    get("SubState")
                ),
            }
        }
    }

    fn converged(&self) -> bool {
        matches!(self, UnitState::RanAndExited0 { .. } | UnitState::Running)
    }
}

impl std::fmt::Display for UnitState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            UnitState::RanAndExited0 { how } => write!(f, "ran and exited 0 ({how})"),
            UnitState::Running => write!(f, "active, running"),
            UnitState::Failed { detail } => write!(f, "failed: {detail}"),
            UnitState::NeverRan => write!(f, "never ran in this boot"),
            UnitState::Activating => write!(f, "still activating"),
            UnitState::NotLoaded { load_state } => write!(f, "not loaded (LoadState={load_state})"),
            UnitState::Stopped { detail } => write!(f, "not running: {detail}"),
        }
    }
}

/// `JOB_RESULT` of a journal JSON record, if the line is one.
fn journal_job_result(line: &str) -> Option<String> {
    let record: serde_json::Value = serde_json::from_str(line).ok()?;
    record["JOB_RESULT"].as_str().map(str::to_owned)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn props(pairs: &[(&'static str, &'static str)]) -> BTreeMap<&'static str, &'static str> {
        pairs.iter().copied().collect()
    }

    // Recorded `systemctl show` answers of systemd 252 (Debian 12) for
    // oneshots in each state, and a journal start-job record.
    const DROPPED: &[(&str, &str)] = &[
        ("Type", "oneshot"),
        ("RemainAfterExit", "no"),
        ("Result", "success"),
        ("ExecMainStartTimestampMonotonic", "0"),
        ("ExecMainExitTimestampMonotonic", "0"),
        ("ExecMainStatus", "0"),
        ("LoadState", "loaded"),
        ("ActiveState", "inactive"),
        ("SubState", "dead"),
        ("InvocationID", ""),
    ];
    const JOB_DONE: &str = r#"{"MESSAGE_ID":"39f53479d3a045ac8e11786248231fbf","JOB_TYPE":"start","JOB_RESULT":"done"}"#;

    #[test]
    fn oneshot_states_match_systemd() {
        let dropped = props(DROPPED);
        assert_eq!(
            UnitState::of(&dropped, JOB_DONE),
            UnitState::RanAndExited0 {
                how: "from the journal: systemd no longer holds its state"
            }
        );
        assert_eq!(UnitState::of(&dropped, ""), UnitState::NeverRan);
        assert!(matches!(
            UnitState::of(&dropped, &JOB_DONE.replace("done", "failed")),
            UnitState::Failed { .. }
        ));
        let mut failed = dropped.clone();
        failed.extend([
            ("Result", "exit-code"),
            ("ExecMainStatus", "1"),
            ("ActiveState", "failed"),
            ("ExecMainExitTimestampMonotonic", "853409157"),
            ("InvocationID", "86a1870ac3f14a67ad81b66723dbe5f1"),
        ]);
        let state = UnitState::of(&failed, "");
        assert!(!state.converged());
        assert_eq!(
            state.to_string(),
            "failed: ActiveState=failed Result=exit-code ExecMainStatus=1"
        );
        let mut activating = dropped.clone();
        activating.extend([
            ("ActiveState", "activating"),
            ("SubState", "start"),
            ("InvocationID", "2b8bc7972f554b1097d85b20ed301387"),
        ]);
        assert_eq!(UnitState::of(&activating, ""), UnitState::Activating);
        let mut enabled = dropped.clone();
        enabled.extend([
            ("ExecMainExitTimestampMonotonic", "123"),
            ("InvocationID", "106fbf3d27794c9c84612c0410c4e171"),
        ]);
        assert!(UnitState::of(&enabled, "").converged());
        enabled.insert("RemainAfterExit", "yes");
        assert!(!UnitState::of(&enabled, "").converged());
        enabled.insert("ActiveState", "active");
        assert!(UnitState::of(&enabled, "").converged());
        let mut missing = dropped.clone();
        missing.insert("LoadState", "not-found");
        assert_eq!(
            UnitState::of(&missing, JOB_DONE).to_string(),
            "not loaded (LoadState=not-found)"
        );
    }
}
