//! vm-prove against the real Incus daemon that `tests/incus-setup` starts,
//! on Debian containers: mechanics, never a NixOS rebuild. docs/install.md
//! as written (unproven: its `needs=nixos` blocks do not run) and broken;
//! successful runs of hand-written runbooks; sops-nix secrets on a stand-in
//! for activation; unit states; a failing block, a block that times out,
//! failed checks; refusals before anything is created (the allow-list with
//! an unrestricted certificate, a restricted certificate, an over-budget
//! memory guideline); SIGTERM in the middle of the runbook, and a sweep
//! after a simulated crash (SIGKILL). Every test uses its own instance name
//! prefix and checks that no instance with it remains.
//!
//! The daemon is found through `FROMGIT_INCUS_URL`, `_CERT`, `_KEY`, `_CA`,
//! `_PROJECT`, `_IMAGE`, or the `env` file incus-setup writes
//! (`/var/tmp/incus-ci/env`, or `FROMGIT_INCUS_ENV`). Without it the tests
//! skip, except under `CI=true`, where they fail.
//!
//! Over 600 lines on purpose: every test drives the one real Incus daemon
//! through the same guarded set-up; splitting would repeat it per binary.

#![allow(
    clippy::unwrap_used,
    clippy::panic,
    clippy::missing_panics_doc,
    clippy::print_stderr
)]

use std::collections::BTreeMap;
use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use fromgit_testkit::{
    age_keygen, fromgit_bin, incus_test_env, peer, run, start_sshd, success, text,
};

struct Daemon {
    vars: BTreeMap<String, String>,
    incus: PathBuf,
}

impl Daemon {
    fn find() -> Option<Daemon> {
        let incus = peer("incus")?;
        let vars = incus_test_env()?;
        Some(Daemon { vars, incus })
    }

    fn var(&self, key: &str) -> &str {
        &self.vars[&format!("FROMGIT_INCUS_{key}")]
    }

    /// Instance names in the test project starting with `prefix`.
    fn instances(&self, prefix: &str) -> Vec<String> {
        let out = Command::new(&self.incus)
            .args([
                "list",
                "--project",
                self.var("PROJECT"),
                "--format",
                "csv",
                "-c",
                "n",
            ])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "incus list: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter(|n| n.starts_with(&format!("{prefix}-")))
            .map(str::to_owned)
            .collect()
    }

    fn incus(&self, args: &[&str]) -> std::process::Output {
        Command::new(&self.incus).args(args).output().unwrap()
    }
}

/// An instance a test made by hand (not by vm-prove), deleted when dropped,
/// so that a failing assertion does not leave it in the project.
struct ForeignInstance<'a> {
    daemon: &'a Daemon,
    name: String,
}

impl<'a> ForeignInstance<'a> {
    /// `incus <verb> <image> <name> [args]` in the test project.
    fn new(daemon: &'a Daemon, verb: &str, name: String, args: &[&str]) -> Self {
        let mut all = vec![
            verb,
            daemon.var("IMAGE"),
            &name,
            "--project",
            daemon.var("PROJECT"),
        ];
        all.extend_from_slice(args);
        let out = daemon.incus(&all);
        assert!(out.status.success(), "{}", text(&out.stderr));
        ForeignInstance { daemon, name }
    }
}

impl Drop for ForeignInstance<'_> {
    fn drop(&mut self) {
        let _ = self.daemon.incus(&[
            "delete",
            "--force",
            &self.name,
            "--project",
            self.daemon.var("PROJECT"),
        ]);
    }
}

/// A scratch directory with a bootstrap key, a runbook and a `vm-prove.toml`.
struct Setup {
    dir: tempfile::TempDir,
    prefix: String,
    key: String,
    recipient: String,
}

const OK_RUNBOOK: &str = r#"# Test runbook

Prose, and a block that is documentation only:

```sh
echo never run
```

```sh {name=check-key vm-prove=run timeout=30}
test -s /var/lib/sops-nix/key.txt
test "$(stat -c %a /var/lib/sops-nix/key.txt)" = 600
grep -q '^AGE-SECRET-KEY-1' /var/lib/sops-nix/key.txt
```

```sh {name=secrets vm-prove=run timeout=30}
install -d -m 0751 /run/secrets
printf '%s\n' "{{ greeting }}" > /run/secrets/greeting
chmod 0400 /run/secrets/greeting
# What switch-to-configuration leaves behind, without NixOS.
install -d /nix/store/0f4ch7y9qsa1hxq0pb1c8dxzk4dpmv4q-nixos-system-ci-25.11
ln -sfn /nix/store/0f4ch7y9qsa1hxq0pb1c8dxzk4dpmv4q-nixos-system-ci-25.11 /run/current-system
```

```sh {name=oneshot vm-prove=run timeout=60}
cat > /etc/systemd/system/hello.service <<'UNIT'
[Unit]
Description=vm-prove test oneshot
[Service]
Type=oneshot
ExecStart=/bin/sh -c 'echo hello > /var/lib/hello'
[Install]
WantedBy=multi-user.target
UNIT
systemctl daemon-reload
systemctl enable --now hello.service
cat /var/lib/hello
```
"#;

impl Setup {
    fn new(daemon: &Daemon, test: &str, runbook: &str, extra: &str) -> Option<Setup> {
        let dir = tempfile::tempdir().unwrap();
        let key = age_keygen(dir.path(), "bootstrap")?;
        let key_text = fs_err::read_to_string(&key.file).unwrap();
        let key_line = key_text
            .lines()
            .find(|l| l.starts_with("AGE-SECRET-KEY-1"))
            .unwrap()
            .to_owned();
        let mut random = [0u8; 3];
        getrandom_bytes(&mut random);
        let prefix = format!("t-{test}-{}", hex_lower(&random));
        fs_err::write(dir.path().join("install.md"), runbook).unwrap();
        let config = format!(
            r#"[incus]
url = "{url}"
project = "{project}"
client_cert = "{cert}"
client_key = "{ckey}"
server_cert = "{ca}"

[instance]
image = "{image}"
memory = "256MiB"
name_prefix = "{prefix}"
ready_timeout = "90s"

[guardrails]
allowed_projects = ["{allowed}"]
allowed_name_prefixes = ["{prefix}"]
memory_budget = "{budget}"

[secret]
source = "bootstrap.txt"

[runbook]
path = "{runbook}"
vars = {{ greeting = "hello"{more_vars} }}

[evidence]
dir = "evidence"
{extra}
"#,
            url = daemon.var("URL"),
            project = extra_override(extra, "project").unwrap_or(daemon.var("PROJECT")),
            cert = daemon.var("CERT"),
            ckey = daemon.var("KEY"),
            ca = daemon.var("CA"),
            image = extra_override(extra, "image").unwrap_or(daemon.var("IMAGE")),
            budget = extra_override(extra, "budget").unwrap_or("16GiB"),
            runbook = extra_override(extra, "runbook").unwrap_or("install.md"),
            allowed = extra_override(extra, "allowed").unwrap_or(daemon.var("PROJECT")),
            more_vars = extra_override(extra, "vars")
                .map(|v| format!(", {v}"))
                .unwrap_or_default(),
        );
        // `extra` lines starting with `#!` are overrides, not TOML.
        let config: String = config
            .lines()
            .filter(|l| !l.starts_with("#!"))
            .flat_map(|l| [l, "\n"])
            .collect();
        fs_err::write(dir.path().join("vm-prove.toml"), config).unwrap();
        Some(Setup {
            dir,
            prefix,
            key: key_line,
            recipient: key.recipient,
        })
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Adds TOML at the end of `vm-prove.toml`.
    fn append_config(&self, toml: &str) {
        let config = self.path().join("vm-prove.toml");
        let mut text = fs_err::read_to_string(&config).unwrap();
        text.push_str(toml);
        fs_err::write(&config, text).unwrap();
    }

    fn vm_prove(&self, args: &[&str]) -> std::process::Output {
        run(
            &fromgit_bin("vm-prove"),
            args,
            self.path(),
            &[("FROMGIT_LOG", OsStr::new("info"))],
            b"",
        )
    }

    /// The single evidence JSON of this setup.
    fn evidence(&self) -> serde_json::Value {
        let dir = self.path().join("evidence");
        let files: Vec<PathBuf> = fs_err::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.extension() == Some(OsStr::new("json")))
            .collect();
        assert_eq!(files.len(), 1, "{files:?}");
        serde_json::from_str(&fs_err::read_to_string(&files[0]).unwrap()).unwrap()
    }

    /// No file written by the run holds the key.
    fn assert_no_secret_in_evidence(&self, outputs: &[&[u8]]) {
        let dir = self.path().join("evidence");
        if dir.is_dir() {
            for entry in fs_err::read_dir(&dir).unwrap() {
                let text = fs_err::read_to_string(entry.unwrap().path()).unwrap();
                assert!(
                    !text.contains(&self.key),
                    "the key leaked into the evidence"
                );
            }
        }
        for out in outputs {
            assert!(
                !String::from_utf8_lossy(out).contains(&self.key),
                "the key leaked into the output"
            );
        }
    }
}

/// `#!project=…`, `#!allowed=…` (the one allowed project), `#!budget=…`,
/// `#!image=…` and `#!runbook=…` lines in
/// `extra` override the defaults; `#!vars=…` adds `runbook.vars` entries.
fn extra_override<'a>(extra: &'a str, key: &str) -> Option<&'a str> {
    extra.lines().find_map(|l| {
        l.strip_prefix("#!")
            .and_then(|r| r.strip_prefix(&format!("{key}=")))
    })
}

fn getrandom_bytes(buf: &mut [u8]) {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    let mix = nanos ^ u128::from(std::process::id()) << 64;
    for (i, b) in buf.iter_mut().enumerate() {
        *b = u8::try_from((mix >> (i * 8 + 4)) & 0xff).unwrap();
    }
}

fn hex_lower(bytes: &[u8]) -> String {
    bytes
        .iter()
        .flat_map(|b| {
            let hex = b"0123456789abcdef";
            [
                char::from(hex[usize::from(b >> 4)]),
                char::from(hex[usize::from(b & 15)]),
            ]
        })
        .collect()
}

/// Asserts a command's exit status and that its stderr names `needle`.
fn assert_exit(out: &std::process::Output, code: i32, needle: &str) {
    assert_eq!(out.status.code(), Some(code), "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains(needle),
        "`{needle}` is not in:\n{}",
        text(&out.stderr)
    );
}

#[test]
#[cfg_attr(
    any(missing_incus, missing_incus_daemon, missing_age_keygen),
    ignore = "needs `incus`, `age-keygen` and the Incus test daemon; one was not found when the tests were built: `bash tests/run --install-only` installs them; under CI=true the test fails instead"
)]
fn vm_prove_successful_run_then_nothing_remains() {
    let Some(daemon) = Daemon::find() else { return };
    let extra = "[checks]\nunits = [\"hello.service\"]\ncurrent_system = \"/nix/store/0f4ch7y9qsa1hxq0pb1c8dxzk4dpmv4q-nixos-system-ci-25.11\"\n[[checks.secrets]]\npath = \"/run/secrets/greeting\"\nmode = \"0400\"\n";
    let Some(setup) = Setup::new(&daemon, "ok", OK_RUNBOOK, extra) else {
        return;
    };

    let plan = setup.vm_prove(&["plan", "--config", "vm-prove.toml", "--json"]);
    assert_eq!(plan.status.code(), Some(0), "{}", text(&plan.stderr));
    let plan: serde_json::Value = serde_json::from_slice(&plan.stdout).unwrap();
    assert_eq!(plan["passed"], true);
    let names: Vec<&str> = plan["guardrails"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| g["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        ["allow-list", "server", "project", "memory", "image"]
    );
    assert!(
        daemon.instances(&setup.prefix).is_empty(),
        "plan created something"
    );

    let out = setup.vm_prove(&["run", "--config", "vm-prove.toml"]);
    assert_eq!(out.status.code(), Some(0), "stderr:\n{}", text(&out.stderr));
    assert!(
        text(&out.stdout).contains(": passed"),
        "{}",
        text(&out.stdout)
    );
    let ev = setup.evidence();
    assert_eq!(ev["verdict"], "passed");
    assert_eq!(ev["schema_version"], 1);
    let blocks = ev["blocks"].as_array().unwrap();
    let names: Vec<&str> = blocks.iter().map(|b| b["name"].as_str().unwrap()).collect();
    assert_eq!(
        names,
        ["check-key", "secrets", "oneshot"],
        "only marked blocks, in order"
    );
    for b in blocks {
        assert_eq!(b["exit"], 0);
        assert_eq!(b["source_sha256"].as_str().unwrap().len(), 64);
    }
    assert!(blocks[2]["output_tail"].as_str().unwrap().contains("hello"));
    assert_eq!(ev["secret"]["content_matches"], true);
    assert_eq!(
        ev["secret"]["observed"],
        format!("600 0 0 {}", ev["secret"]["size"])
    );
    let checks = ev["checks"].as_array().unwrap();
    for c in checks {
        assert_eq!(c["passed"], true, "{c}");
    }
    let check_names: Vec<&str> = checks.iter().map(|c| c["name"].as_str().unwrap()).collect();
    assert_eq!(
        check_names,
        [
            "no-pending-jobs",
            "no-failed-units",
            "unit `hello.service`",
            "secret `/var/lib/sops-nix/key.txt`",
            "secret `/run/secrets/greeting`",
            "current-system"
        ]
    );
    assert_eq!(ev["teardown"]["deleted"], true);
    let tags = &ev["instance"]["config"];
    assert_eq!(tags["user.vm-prove.run-id"], ev["run_id"]);
    let md = fs_err::read_to_string(
        setup
            .path()
            .join("evidence")
            .join(format!("{}.md", ev["run_id"].as_str().unwrap())),
    )
    .unwrap();
    assert!(
        md.contains("`oneshot`") && md.contains("deleted true"),
        "{md}"
    );
    assert!(
        md.contains(
            "mechanics on a Debian GNU/Linux 12 (bookworm) container (not NixOS; the host's rebuild is not proven): 3 block(s) ran (3 exited 0), 6 of 6 check(s) passed; the instance was deleted."
        ),
        "{md}"
    );
    // Everything that ran in the instance: the blocks, and read-only commands.
    let executed: Vec<&str> = ev["executed"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e.as_str().unwrap())
        .collect();
    for block in ["block `check-key`", "block `secrets`", "block `oneshot`"] {
        assert!(executed.contains(&block), "{executed:?}");
    }
    let read_only = [
        "waiting for systemd",
        "reading /etc/os-release",
        "looking up the key's owner",
        "checking the pushed key",
        "pending jobs",
        "failed units",
        "unit `hello.service`",
        "secret `/var/lib/sops-nix/key.txt`",
        "secret `/run/secrets/greeting`",
        "current system",
    ];
    for what in &executed {
        assert!(
            what.starts_with("block `") || read_only.contains(what),
            "`{what}` ran in the instance"
        );
    }
    setup.assert_no_secret_in_evidence(&[&out.stdout, &out.stderr]);
    assert!(
        daemon.instances(&setup.prefix).is_empty(),
        "the instance remains"
    );
}

#[test]
#[cfg_attr(
    any(missing_incus, missing_incus_daemon, missing_age_keygen),
    ignore = "needs `incus`, `age-keygen` and the Incus test daemon; one was not found when the tests were built: `bash tests/run --install-only` installs them; under CI=true the test fails instead"
)]
fn vm_prove_failing_block_exits_1_and_deletes() {
    let Some(daemon) = Daemon::find() else { return };
    let runbook = "```sh {name=first vm-prove=run timeout=30}\ntouch /root/first\n```\n\n```sh {name=fails vm-prove=run timeout=30}\necho about to fail\nfalse\n```\n\n```sh {name=never vm-prove=run timeout=30}\ntouch /root/never\n```\n";
    let Some(setup) = Setup::new(&daemon, "fail", runbook, "") else {
        return;
    };
    let out = setup.vm_prove(&["run", "--config", "vm-prove.toml"]);
    assert_eq!(out.status.code(), Some(1), "stderr:\n{}", text(&out.stderr));
    let ev = setup.evidence();
    assert_eq!(ev["verdict"], "failed");
    let blocks = ev["blocks"].as_array().unwrap();
    assert_eq!(blocks.len(), 2, "the block after the failure must not run");
    assert_eq!(blocks[1]["name"], "fails");
    assert_eq!(blocks[1]["exit"], 1);
    assert!(blocks[1]["output_tail"]
        .as_str()
        .unwrap()
        .contains("about to fail"));
    assert!(ev["error"]
        .as_str()
        .unwrap()
        .contains("block `fails` exited with 1"));
    assert_eq!(ev["teardown"]["deleted"], true);
    assert!(
        daemon.instances(&setup.prefix).is_empty(),
        "the instance remains"
    );
}

#[test]
#[cfg_attr(
    any(missing_incus, missing_incus_daemon, missing_age_keygen),
    ignore = "needs `incus`, `age-keygen` and the Incus test daemon; one was not found when the tests were built: `bash tests/run --install-only` installs them; under CI=true the test fails instead"
)]
fn vm_prove_block_timeout_and_failed_check() {
    let Some(daemon) = Daemon::find() else { return };
    // A block that outlives its timeout.
    let runbook = "```sh {name=slow vm-prove=run timeout=2}\nsleep 30\n```\n";
    let Some(setup) = Setup::new(&daemon, "slow", runbook, "") else {
        return;
    };
    let start = Instant::now();
    let out = setup.vm_prove(&["run", "--config", "vm-prove.toml"]);
    assert_eq!(out.status.code(), Some(1), "stderr:\n{}", text(&out.stderr));
    assert!(
        start.elapsed() < Duration::from_secs(25),
        "the timeout was not enforced"
    );
    let ev = setup.evidence();
    assert_eq!(ev["blocks"][0]["timed_out"], true);
    assert!(daemon.instances(&setup.prefix).is_empty());

    // A runbook that succeeds but leaves a failed unit and a world-readable secret.
    let runbook = "```sh {name=bad-unit vm-prove=run timeout=30}\nprintf '[Service]\\nType=oneshot\\nExecStart=/bin/false\\n' > /etc/systemd/system/broken.service\nsystemctl daemon-reload\nsystemctl start broken.service || true\ninstall -d /run/secrets\necho x > /run/secrets/open\nchmod 0644 /run/secrets/open\n```\n";
    let extra = "[checks]\nunits = [\"broken.service\"]\ncurrent_system = \"/nix/store/0f4ch7y9qsa1hxq0pb1c8dxzk4dpmv4q-nixos-system-ci-25.11\"\n[[checks.secrets]]\npath = \"/run/secrets/open\"\nmode = \"0400\"\n";
    let Some(setup) = Setup::new(&daemon, "check", runbook, extra) else {
        return;
    };
    let out = setup.vm_prove(&["run", "--config", "vm-prove.toml"]);
    assert_eq!(out.status.code(), Some(1), "stderr:\n{}", text(&out.stderr));
    let ev = setup.evidence();
    assert_eq!(ev["blocks"][0]["exit"], 0);
    let failed: Vec<&str> = ev["checks"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["passed"] == false)
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        failed,
        [
            "no-failed-units",
            "unit `broken.service`",
            "secret `/run/secrets/open`",
            "current-system"
        ],
        "{ev}"
    );
    assert_eq!(ev["teardown"]["deleted"], true);
    assert!(daemon.instances(&setup.prefix).is_empty());
}

#[test]
#[cfg_attr(
    any(missing_incus, missing_incus_daemon, missing_age_keygen),
    ignore = "needs `incus`, `age-keygen` and the Incus test daemon; one was not found when the tests were built: `bash tests/run --install-only` installs them; under CI=true the test fails instead"
)]
fn vm_prove_wrong_project_refused_before_any_change() {
    let Some(daemon) = Daemon::find() else { return };
    // Allowed by the configuration, but not by the restricted certificate:
    // the second layer refuses.
    let Some(setup) = Setup::new(
        &daemon,
        "proj",
        OK_RUNBOOK,
        "#!project=default\n#!allowed=default\n",
    ) else {
        return;
    };
    let plan = setup.vm_prove(&["plan", "--config", "vm-prove.toml"]);
    assert_eq!(plan.status.code(), Some(2), "{}", text(&plan.stderr));
    assert!(
        text(&plan.stdout).contains("REFUSED project"),
        "{}",
        text(&plan.stdout)
    );
    let out = setup.vm_prove(&["run", "--config", "vm-prove.toml"]);
    assert_exit(&out, 2, "project `default` is not usable");
    assert!(
        text(&out.stdout).contains(": refused"),
        "{}",
        text(&out.stdout)
    );
    let ev = setup.evidence();
    assert_eq!(ev["verdict"], "refused");
    assert!(ev["instance"].is_null(), "nothing may be created");
    assert!(daemon.instances(&setup.prefix).is_empty());
    // The default project was not touched either.
    let all = daemon.incus(&["list", "--project", "default", "--format", "csv", "-c", "n"]);
    assert!(!text(&all.stdout).contains(&setup.prefix));
}

#[test]
#[cfg_attr(
    any(missing_incus, missing_incus_daemon, missing_age_keygen),
    ignore = "needs `incus`, `age-keygen` and the Incus test daemon; one was not found when the tests were built: `bash tests/run --install-only` installs them; under CI=true the test fails instead"
)]
fn vm_prove_over_budget_memory_refused_before_any_change() {
    let Some(daemon) = Daemon::find() else { return };
    let Some(setup) = Setup::new(&daemon, "mem", OK_RUNBOOK, "#!budget=128MiB\n") else {
        return;
    };
    let out = setup.vm_prove(&["plan", "--config", "vm-prove.toml", "--json"]);
    assert_eq!(out.status.code(), Some(2));
    let plan: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let memory = plan["guardrails"]
        .as_array()
        .unwrap()
        .iter()
        .find(|g| g["name"] == "memory")
        .unwrap()
        .clone();
    assert_eq!(memory["passed"], false);
    assert_eq!(memory["numbers"]["budget_bytes"], 128_u64 << 20);
    assert_eq!(memory["numbers"]["new_instance_bytes"], 256_u64 << 20);
    let out = setup.vm_prove(&["run", "--config", "vm-prove.toml"]);
    assert_exit(&out, 2, "exceeds the budget 128MiB");
    assert_eq!(setup.evidence()["verdict"], "refused");
    assert!(daemon.instances(&setup.prefix).is_empty());
}

#[test]
#[cfg_attr(
    any(missing_incus, missing_incus_daemon, missing_age_keygen),
    ignore = "needs `incus`, `age-keygen` and the Incus test daemon; one was not found when the tests were built: `bash tests/run --install-only` installs them; under CI=true the test fails instead"
)]
fn vm_prove_bad_key_is_an_error_before_any_change() {
    let Some(daemon) = Daemon::find() else { return };
    let Some(setup) = Setup::new(&daemon, "key", OK_RUNBOOK, "") else {
        return;
    };
    fs_err::write(setup.path().join("bootstrap.txt"), "not an age identity\n").unwrap();
    let out = setup.vm_prove(&["run", "--config", "vm-prove.toml"]);
    assert_exit(&out, 2, "is not an age identity file");
    fs_err::remove_file(setup.path().join("bootstrap.txt")).unwrap();
    let out = setup.vm_prove(&["plan", "--config", "vm-prove.toml"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(daemon.instances(&setup.prefix).is_empty());
}

/// Starts `vm-prove run` in the background, with stderr in a file.
fn spawn_run(setup: &Setup) -> (std::process::Child, PathBuf) {
    let log = setup.path().join("stderr.log");
    let child = Command::new(fromgit_bin("vm-prove"))
        .args(["run", "--config", "vm-prove.toml"])
        .current_dir(setup.path())
        .env("NO_COLOR", "1")
        .env("FROMGIT_LOG", "info")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::from(
            fs_err::File::create(&log).unwrap().into_parts().0,
        ))
        .spawn()
        .unwrap();
    (child, log)
}

fn wait_for_text(file: &Path, needle: &str, child: &mut std::process::Child) {
    let start = Instant::now();
    loop {
        if fs_err::read_to_string(file).is_ok_and(|t| t.contains(needle)) {
            return;
        }
        if let Some(status) = child.try_wait().unwrap() {
            panic!(
                "vm-prove ended early ({status}):\n{}",
                fs_err::read_to_string(file).unwrap_or_default()
            );
        }
        assert!(
            start.elapsed() < Duration::from_secs(120),
            "`{needle}` never appeared"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn signal(child: &std::process::Child, sig: &str) {
    let status = Command::new("kill")
        .args([format!("-{sig}"), child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
}

const SLOW_RUNBOOK: &str = "```sh {name=marker vm-prove=run timeout=30}\ntouch /root/started\n```\n\n```sh {name=sleep vm-prove=run timeout=120}\necho sleeping-now\nsleep 100\n```\n";

#[test]
#[cfg_attr(
    any(missing_incus, missing_incus_daemon, missing_age_keygen),
    ignore = "needs `incus`, `age-keygen` and the Incus test daemon; one was not found when the tests were built: `bash tests/run --install-only` installs them; under CI=true the test fails instead"
)]
fn vm_prove_sigterm_mid_runbook_deletes_the_instance() {
    let Some(daemon) = Daemon::find() else { return };
    let Some(setup) = Setup::new(&daemon, "term", SLOW_RUNBOOK, "") else {
        return;
    };
    let (mut child, log) = spawn_run(&setup);
    // The block never finishes: its first line can only show if output streams live.
    wait_for_text(&log, "[sleep] sleeping-now", &mut child);
    assert_eq!(daemon.instances(&setup.prefix).len(), 1);
    signal(&child, "TERM");
    let status = child.wait().unwrap();
    assert_eq!(
        status.code(),
        Some(2),
        "{}",
        fs_err::read_to_string(&log).unwrap()
    );
    let ev = setup.evidence();
    assert_eq!(ev["verdict"], "interrupted");
    assert_eq!(ev["teardown"]["deleted"], true);
    assert!(
        daemon.instances(&setup.prefix).is_empty(),
        "the instance remains after SIGTERM"
    );
}

#[test]
#[cfg_attr(
    any(missing_incus, missing_incus_daemon, missing_age_keygen),
    ignore = "needs `incus`, `age-keygen` and the Incus test daemon; one was not found when the tests were built: `bash tests/run --install-only` installs them; under CI=true the test fails instead"
)]
fn vm_prove_sweep_after_a_crash_deletes_only_tagged_leftovers() {
    let Some(daemon) = Daemon::find() else { return };
    let Some(setup) = Setup::new(&daemon, "sweep", SLOW_RUNBOOK, "") else {
        return;
    };
    let (mut child, log) = spawn_run(&setup);
    wait_for_text(&log, "==> block `sleep`", &mut child);
    // A crash: no chance to clean up.
    signal(&child, "KILL");
    let _ = child.wait();
    let left = daemon.instances(&setup.prefix);
    assert_eq!(left.len(), 1, "the crash should leave the instance behind");
    // An instance vm-prove did not create, with the same prefix: never touched.
    let foreign = format!("{}-foreign", setup.prefix);
    let guard = ForeignInstance::new(&daemon, "init", foreign.clone(), &[]);
    // Tagged as an abandoned run of this host, but outside the allowed prefixes.
    let outside = format!("{}x-tagged", setup.prefix);
    let host = fs_err::read_to_string("/proc/sys/kernel/hostname").unwrap();
    let host_tag = format!("user.vm-prove.host={}", host.trim());
    let outside_guard = ForeignInstance::new(
        &daemon,
        "init",
        outside.clone(),
        &["-c", "user.vm-prove.run-id=abandoned", "-c", &host_tag],
    );

    let out = setup.vm_prove(&["sweep", "--config", "vm-prove.toml", "--json"]);
    let report = text(&out.stdout);
    let outside_left = daemon.incus(&[
        "list",
        &outside,
        "--project",
        daemon.var("PROJECT"),
        "--format",
        "csv",
        "-c",
        "n",
    ]);
    drop(guard);
    drop(outside_guard);
    assert_eq!(
        text(&outside_left.stdout).trim(),
        outside,
        "swept outside the allow-list"
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let report: serde_json::Value = serde_json::from_str(&report).unwrap();
    let mine = report["instances"]
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["name"] == left[0].as_str())
        .unwrap()
        .clone();
    assert_eq!(mine["action"], "deleted", "{report}");
    let kept = report["instances"]
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["name"] == outside.as_str())
        .unwrap()
        .clone();
    assert_eq!(
        kept["action"],
        "kept: its name has no prefix in `guardrails.allowed_name_prefixes`"
    );
    assert!(
        !report.to_string().contains(&foreign),
        "an untagged instance appeared in the sweep"
    );
    let remaining = daemon.instances(&setup.prefix);
    assert!(remaining.iter().all(|n| n == &foreign), "{remaining:?}");
}

/// A wildcard certificate for `example.net` signed by a throwaway root:
/// returns (leaf chain PEM, key PEM).
fn wildcard_certificate() -> (String, String) {
    use rcgen::{
        BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, KeyPair,
    };
    let now = time::OffsetDateTime::now_utc();
    let root_key = KeyPair::generate().unwrap();
    let mut root = CertificateParams::new(Vec::<String>::new()).unwrap();
    root.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    root.distinguished_name
        .push(DnType::CommonName, "vm-prove test root");
    root.not_before = now - time::Duration::days(1);
    root.not_after = now + time::Duration::days(3650);
    let root_cert = root.self_signed(&root_key).unwrap();
    let leaf_key = KeyPair::generate().unwrap();
    let mut leaf =
        CertificateParams::new(vec!["*.example.net".to_owned(), "example.net".to_owned()]).unwrap();
    leaf.distinguished_name
        .push(DnType::CommonName, "example.net");
    leaf.not_before = now - time::Duration::days(1);
    leaf.not_after = now + time::Duration::days(90);
    leaf.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    let leaf_cert = leaf.signed_by(&leaf_key, &root_cert, &root_key).unwrap();
    (leaf_cert.pem(), leaf_key.serialize_pem())
}

fn git(dir: &Path, args: &[&str]) -> String {
    fromgit_testkit::git(dir, args).trim().to_owned()
}

/// The two repositories of a fromgit host: a generic base (with a
/// `flake.lock`) and an instance repo whose certificate is sealed by
/// cert-seal to the bootstrap key. Returns the `[[repos]]`/`[checks]` TOML.
fn fromgit_repos(setup: &Setup) -> String {
    let base = setup.path().join("base");
    let instance = setup.path().join("instance");
    fs_err::create_dir_all(&base).unwrap();
    fs_err::create_dir_all(instance.join("secrets")).unwrap();
    git(&base, &["init", "-q", "-b", "main"]);
    fs_err::write(base.join("flake.lock"), "{\"version\": 7}\n").unwrap();
    fs_err::write(base.join("README.md"), "generic base\n").unwrap();
    git(&base, &["add", "."]);
    git(&base, &["commit", "-qm", "base"]);

    git(&instance, &["init", "-q", "-b", "main"]);
    fs_err::write(
        instance.join(".sops.yaml"),
        format!(
            "creation_rules:\n  - path_regex: secrets/.*\\.yaml$\n    age: {}\n",
            setup.recipient
        ),
    )
    .unwrap();
    let (chain, key) = wildcard_certificate();
    let scratch = tempfile::tempdir().unwrap();
    fs_err::write(scratch.path().join("chain.pem"), chain).unwrap();
    fs_err::write(scratch.path().join("key.pem"), key).unwrap();
    let sealed = run(
        &fromgit_bin("cert-seal"),
        [
            OsStr::new("seal"),
            OsStr::new("--cert"),
            scratch.path().join("chain.pem").as_os_str(),
            OsStr::new("--key"),
            scratch.path().join("key.pem").as_os_str(),
            OsStr::new("--domain"),
            OsStr::new("example.net"),
            OsStr::new("--out"),
            OsStr::new("secrets/secrets.yaml"),
        ],
        &instance,
        &[],
        b"",
    );
    success(&sealed, "cert-seal seal");
    git(&instance, &["add", "."]);
    git(&instance, &["commit", "-qm", "instance"]);
    r#"
[[repos]]
name = "base"
path = "base"
rev = "main"

[[repos]]
name = "instance"
path = "instance"

[checks]
units = ["tls-test.service"]
[[checks.secrets]]
path = "/run/secrets/tls.key"
mode = "0400"
[[checks.tls]]
server_name = "ci.example.net"
sealed = "instance/secrets/secrets.yaml"
"#
    .to_owned()
}

/// Clones both bundles, decrypts the certificate with the pushed key and
/// the real sops, and serves it with `openssl s_server` as a systemd unit:
/// the shape of a NixOS rebuild with sops-nix, on Debian.
const TLS_RUNBOOK: &str = r#"# Install

```sh {name=clone vm-prove=run timeout=60}
git clone -q "{{ base_repo }}" /srv/base
git -C /srv/base checkout -q --detach "{{ base_rev }}"
git clone -q {{ repos.instance.bundle }} /srv/instance
git -C /srv/instance checkout -q --detach {{ repos.instance.commit }}
test -s /srv/base/flake.lock
```

```sh {name=decrypt vm-prove=run timeout=60}
install -d -m 0751 /run/secrets
export SOPS_AGE_KEY_FILE=/var/lib/sops-nix/key.txt
umask 077
CERT_SOURCE
chmod 0400 /run/secrets/tls.crt /run/secrets/tls.key
```

```sh {name=serve vm-prove=run timeout=60}
cat > /etc/systemd/system/tls-test.service <<'UNIT'
[Service]
ExecStart=/usr/bin/openssl s_server -quiet -accept 443 -cert /run/secrets/tls.crt -key /run/secrets/tls.key -www
[Install]
WantedBy=multi-user.target
UNIT
systemctl daemon-reload
systemctl enable --now tls-test.service
for i in $(seq 100); do
  if (exec 3<>/dev/tcp/127.0.0.1/443) 2>/dev/null; then echo listening; exit 0; fi
  sleep 0.1
done
echo "nothing listens on 443" >&2
exit 1
```
"#;

const SEALED_CERT: &str = "sops -d --extract '[\"tls\"][\"fullchain\"]' /srv/instance/secrets/secrets.yaml > /run/secrets/tls.crt\nsops -d --extract '[\"tls\"][\"key\"]' /srv/instance/secrets/secrets.yaml > /run/secrets/tls.key";

#[test]
#[cfg_attr(
    any(missing_incus, missing_incus_daemon, missing_age_keygen),
    ignore = "needs `incus`, `age-keygen` and the Incus test daemon; one was not found when the tests were built: `bash tests/run --install-only` installs them; under CI=true the test fails instead"
)]
fn vm_prove_full_proof_from_bundles_serves_the_sealed_certificate() {
    let Some(daemon) = Daemon::find() else { return };
    let runbook = TLS_RUNBOOK.replace("CERT_SOURCE", SEALED_CERT);
    // As in docs/install.md: the runbook names `base_repo` and `base_rev`,
    // and the configuration points them at the pushed bundle.
    let vars =
        "#!vars=base_repo = \"{{ repos.base.bundle }}\", base_rev = \"{{ repos.base.commit }}\"\n";
    let Some(setup) = Setup::new(&daemon, "tls", &runbook, vars) else {
        return;
    };
    setup.append_config(&fromgit_repos(&setup));

    let out = setup.vm_prove(&["run", "--config", "vm-prove.toml"]);
    assert_eq!(out.status.code(), Some(0), "stderr:\n{}", text(&out.stderr));
    let ev = setup.evidence();
    assert_eq!(ev["verdict"], "passed", "{ev}");
    let repos = ev["repos"].as_array().unwrap();
    assert_eq!(repos.len(), 2);
    assert_eq!(
        repos[0]["commit"],
        git(&setup.path().join("base"), &["rev-parse", "HEAD"])
    );
    assert_eq!(
        repos[0]["flake_lock_sha256"],
        sha256_hex(b"{\"version\": 7}\n")
    );
    assert_eq!(repos[1]["flake_lock_sha256"], serde_json::Value::Null);
    assert_eq!(ev["runbook_vars"]["base_rev"], repos[0]["commit"]);
    assert_eq!(
        ev["runbook_vars"]["base_repo"],
        "/var/lib/vm-prove/repos/base.bundle"
    );
    assert!(repos.iter().all(|r| r["pushed"] == true));
    let tls = ev["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "tls `ci.example.net` at `127.0.0.1:443`")
        .unwrap_or_else(|| panic!("no TLS check in {ev}"))
        .clone();
    assert_eq!(tls["passed"], true, "{tls}");
    let inspect = run(
        &fromgit_bin("cert-seal"),
        ["inspect", "--json", "instance/secrets/secrets.yaml"],
        setup.path(),
        &[],
        b"",
    );
    let inspect: serde_json::Value =
        serde_json::from_str(&success(&inspect, "cert-seal inspect")).unwrap();
    let fingerprint = inspect["certificate"]["sha256_fingerprint"]
        .as_str()
        .unwrap();
    assert!(
        tls["observed"].as_str().unwrap().contains(fingerprint),
        "{tls}"
    );
    assert!(ev["checks"]
        .as_array()
        .unwrap()
        .iter()
        .all(|c| c["passed"] == true));
    assert_eq!(ev["teardown"]["deleted"], true);
    setup.assert_no_secret_in_evidence(&[&out.stdout, &out.stderr]);
    assert!(daemon.instances(&setup.prefix).is_empty());
}

#[test]
#[cfg_attr(
    any(missing_incus, missing_incus_daemon, missing_age_keygen),
    ignore = "needs `incus`, `age-keygen` and the Incus test daemon; one was not found when the tests were built: `bash tests/run --install-only` installs them; under CI=true the test fails instead"
)]
fn vm_prove_wrong_certificate_served_fails_the_tls_check() {
    let Some(daemon) = Daemon::find() else { return };
    // The runbook serves a certificate of its own instead of the sealed one.
    let runbook = TLS_RUNBOOK.replace(
        "CERT_SOURCE",
        "openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 2 -subj /CN=ci.example.net -keyout /run/secrets/tls.key -out /run/secrets/tls.crt 2>/dev/null",
    );
    let vars =
        "#!vars=base_repo = \"{{ repos.base.bundle }}\", base_rev = \"{{ repos.base.commit }}\"\n";
    let Some(setup) = Setup::new(&daemon, "wrongtls", &runbook, vars) else {
        return;
    };
    setup.append_config(&fromgit_repos(&setup));

    let out = setup.vm_prove(&["run", "--config", "vm-prove.toml"]);
    assert_eq!(out.status.code(), Some(1), "stderr:\n{}", text(&out.stderr));
    let ev = setup.evidence();
    assert_eq!(ev["verdict"], "failed");
    let failed: Vec<&str> = ev["checks"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["passed"] == false)
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert_eq!(failed, ["tls `ci.example.net` at `127.0.0.1:443`"], "{ev}");
    assert_eq!(ev["teardown"]["deleted"], true);
    assert!(daemon.instances(&setup.prefix).is_empty());
}

fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::Digest as _;
    hex_lower(&sha2::Sha256::digest(bytes))
}

/// Sets one `key = "…"` of the `[incus]` table, replacing any earlier value.
fn set_incus_field(setup: &Setup, key: &str, value: &str) {
    let config = setup.path().join("vm-prove.toml");
    let text = fs_err::read_to_string(&config).unwrap();
    let mut out = String::new();
    for line in text
        .lines()
        .filter(|l| !l.starts_with(&format!("{key} = ")))
    {
        out.push_str(line);
        out.push('\n');
        if line == "[incus]" {
            out.push_str(&[key, " = \"", value, "\"\n"].concat());
        }
    }
    fs_err::write(&config, out).unwrap();
}

#[test]
#[cfg_attr(
    any(missing_incus, missing_incus_daemon, missing_age_keygen),
    ignore = "needs `incus`, `age-keygen` and the Incus test daemon; one was not found when the tests were built: `bash tests/run --install-only` installs them; under CI=true the test fails instead"
)]
fn vm_prove_server_certificate_not_the_pinned_one_is_refused() {
    let Some(daemon) = Daemon::find() else { return };
    let Some(setup) = Setup::new(&daemon, "pin", OK_RUNBOOK, "") else {
        return;
    };
    // Any other certificate: the client's own.
    set_incus_field(&setup, "server_cert", daemon.var("CERT"));
    for command in ["plan", "run"] {
        let out = setup.vm_prove(&[command, "--config", "vm-prove.toml"]);
        assert_eq!(
            out.status.code(),
            Some(2),
            "{command}: {}",
            text(&out.stderr)
        );
        assert!(
            text(&out.stderr).contains("not the pinned `server_cert`"),
            "{command}: {}",
            text(&out.stderr)
        );
    }
    assert!(daemon.instances(&setup.prefix).is_empty());
}

#[test]
#[cfg_attr(
    any(
        missing_incus,
        missing_incus_daemon,
        missing_age_keygen,
        missing_sshd,
        missing_ssh_keygen,
        missing_ssh
    ),
    ignore = "needs `incus`, `age-keygen`, `sshd`, `ssh-keygen`, `ssh` and the Incus test daemon; one was not found when the tests were built: `bash tests/run --install-only` installs them; under CI=true the test fails instead"
)]
fn vm_prove_through_a_socks5_proxy() {
    let Some(daemon) = Daemon::find() else { return };
    let Some(setup) = Setup::new(&daemon, "socks", OK_RUNBOOK, "") else {
        return;
    };
    let ssh_dir = setup.path().join("ssh");
    fs_err::create_dir_all(&ssh_dir).unwrap();
    let Some(sshd) = start_sshd(&ssh_dir) else {
        return;
    };
    // OpenSSH's dynamic forwarding is a real SOCKS5 proxy.
    let proxy_port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut ssh = Command::new(peer("ssh").unwrap())
        .args(sshd.opts.split_whitespace())
        .args([
            "-N",
            "-o",
            "ExitOnForwardFailure=yes",
            "-D",
            &format!("127.0.0.1:{proxy_port}"),
            "-p",
            &sshd.port.to_string(),
            "root@127.0.0.1",
        ])
        .stdin(Stdio::null())
        .spawn()
        .unwrap();
    let start = Instant::now();
    while std::net::TcpStream::connect(("127.0.0.1", proxy_port)).is_err() {
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "ssh -D never listened"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    set_incus_field(
        &setup,
        "proxy",
        &format!("socks5h://127.0.0.1:{proxy_port}"),
    );
    // A whole run (requests, operations and exec websockets) through the proxy.
    let out = setup.vm_prove(&["run", "--config", "vm-prove.toml"]);
    assert_eq!(out.status.code(), Some(0), "stderr:\n{}", text(&out.stderr));
    assert_eq!(setup.evidence()["verdict"], "passed");
    // Without the proxy, nothing gets through: it really was the way in.
    let _ = ssh.kill();
    let _ = ssh.wait();
    let out = setup.vm_prove(&["plan", "--config", "vm-prove.toml"]);
    assert_exit(&out, 2, "cannot reach the Incus server");
    assert!(daemon.instances(&setup.prefix).is_empty());
}

#[test]
#[cfg_attr(
    any(missing_incus, missing_incus_daemon, missing_age_keygen),
    ignore = "needs `incus`, `age-keygen` and the Incus test daemon; one was not found when the tests were built: `bash tests/run --install-only` installs them; under CI=true the test fails instead"
)]
fn vm_prove_resizes_the_one_named_host_first() {
    let Some(daemon) = Daemon::find() else { return };
    let Some(setup) = Setup::new(&daemon, "resize", OK_RUNBOOK, "") else {
        return;
    };
    // A host vm-prove did not create: the one it may resize to make room.
    let host = format!("{}-host", setup.prefix);
    setup.append_config(&format!(
        "[guardrails.resize]\ninstance = \"{host}\"\nmemory = \"384MiB\"\n"
    ));
    let project = daemon.var("PROJECT").to_owned();
    let guard = ForeignInstance::new(
        &daemon,
        "launch",
        host.clone(),
        &["-c", "limits.memory=512MiB"],
    );
    // A host is up and running when it is resized: a container still booting
    // ignores a clean shutdown.
    let start = Instant::now();
    loop {
        let state = daemon.incus(&[
            "exec",
            &host,
            "--project",
            &project,
            "--",
            "systemctl",
            "is-system-running",
            "--wait",
        ]);
        let state = text(&state.stdout);
        if ["running", "degraded"].contains(&state.trim()) {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(90),
            "the host never booted: {state}"
        );
        std::thread::sleep(Duration::from_millis(250));
    }

    let plan = setup.vm_prove(&["plan", "--config", "vm-prove.toml", "--json"]);
    let out = setup.vm_prove(&["run", "--config", "vm-prove.toml"]);
    let state = daemon.incus(&[
        "list",
        &host,
        "--project",
        &project,
        "--format",
        "csv",
        "-c",
        "s",
    ]);
    let limit = daemon.incus(&[
        "config",
        "get",
        &host,
        "limits.memory",
        "--project",
        &project,
    ]);
    drop(guard);

    assert_eq!(plan.status.code(), Some(0), "{}", text(&plan.stderr));
    let plan: serde_json::Value = serde_json::from_slice(&plan.stdout).unwrap();
    let resize = plan["guardrails"]
        .as_array()
        .unwrap()
        .iter()
        .find(|g| g["name"] == "resize")
        .unwrap()
        .clone();
    assert_eq!(resize["numbers"]["before"], "512MiB", "{resize}");
    assert_eq!(resize["numbers"]["after"], "384MiB");
    let memory = plan["guardrails"]
        .as_array()
        .unwrap()
        .iter()
        .find(|g| g["name"] == "memory")
        .unwrap()
        .clone();
    let counted = memory["numbers"]["running"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["name"] == host.as_str())
        .unwrap()
        .clone();
    assert_eq!(
        counted["bytes"],
        384_u64 << 20,
        "the budget counts the new limit"
    );

    assert_eq!(out.status.code(), Some(0), "stderr:\n{}", text(&out.stderr));
    let ev = setup.evidence();
    assert_eq!(ev["resize"]["before"], "512MiB");
    assert_eq!(ev["resize"]["after"], "384MiB");
    assert_eq!(ev["resize"]["observed"], "384MiB");
    assert_eq!(ev["resize"]["restarted"], true);
    assert_eq!(text(&state.stdout).trim(), "RUNNING", "the host runs again");
    assert_eq!(text(&limit.stdout).trim(), "384MiB");
    assert!(
        daemon.instances(&setup.prefix).is_empty(),
        "only the host remained, and it is deleted"
    );
}

#[test]
#[cfg_attr(
    any(missing_incus, missing_incus_daemon, missing_age_keygen),
    ignore = "needs `incus`, `age-keygen` and the Incus test daemon; one was not found when the tests were built: `bash tests/run --install-only` installs them; under CI=true the test fails instead"
)]
fn vm_prove_faults_are_clear_and_nothing_is_created() {
    let Some(daemon) = Daemon::find() else { return };
    // An image the project does not have: a refusal, before any change.
    let Some(setup) = Setup::new(&daemon, "noimage", OK_RUNBOOK, "#!image=no-such-image\n") else {
        return;
    };
    let out = setup.vm_prove(&["run", "--config", "vm-prove.toml"]);
    assert_exit(&out, 2, "image `no-such-image` is not available");
    assert_eq!(setup.evidence()["verdict"], "refused");
    assert!(daemon.instances(&setup.prefix).is_empty());

    // A runbook without a single marked block.
    fs_err::write(
        setup.path().join("install.md"),
        "```sh\necho documentation\n```\n",
    )
    .unwrap();
    let out = setup.vm_prove(&["plan", "--config", "vm-prove.toml"]);
    assert_exit(&out, 2, "install.md");
    fs_err::write(setup.path().join("install.md"), OK_RUNBOOK).unwrap();

    // A client certificate the server does not trust.
    let scratch = tempfile::tempdir().unwrap();
    let key = rcgen::KeyPair::generate().unwrap();
    let cert = rcgen::CertificateParams::new(vec!["stranger".to_owned()])
        .unwrap()
        .self_signed(&key)
        .unwrap();
    let cert_file = scratch.path().join("stranger.crt");
    let key_file = scratch.path().join("stranger.key");
    fs_err::write(&cert_file, cert.pem()).unwrap();
    fs_err::write(&key_file, key.serialize_pem()).unwrap();
    set_incus_field(&setup, "client_cert", &cert_file.display().to_string());
    set_incus_field(&setup, "client_key", &key_file.display().to_string());
    let out = setup.vm_prove(&["run", "--config", "vm-prove.toml"]);
    assert_exit(&out, 2, "client certificate is not trusted");

    // A server that does not answer.
    set_incus_field(&setup, "url", "https://127.0.0.1:1");
    let out = setup.vm_prove(&["plan", "--config", "vm-prove.toml"]);
    assert_exit(&out, 2, "cannot reach the Incus server");
    assert!(daemon.instances(&setup.prefix).is_empty());
}

#[test]
#[cfg_attr(
    any(missing_incus, missing_incus_daemon, missing_age_keygen),
    ignore = "needs `incus`, `age-keygen` and the Incus test daemon; one was not found when the tests were built: `bash tests/run --install-only` installs them; under CI=true the test fails instead"
)]
fn vm_prove_instance_that_never_comes_up_is_an_error_and_deleted() {
    let Some(daemon) = Daemon::find() else { return };
    let Some(setup) = Setup::new(&daemon, "noboot", OK_RUNBOOK, "") else {
        return;
    };
    let config = setup.path().join("vm-prove.toml");
    let text_config = fs_err::read_to_string(&config)
        .unwrap()
        .replace("ready_timeout = \"90s\"", "ready_timeout = \"0s\"");
    fs_err::write(&config, text_config).unwrap();
    let out = setup.vm_prove(&["run", "--config", "vm-prove.toml"]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));
    let ev = setup.evidence();
    assert_eq!(ev["verdict"], "error");
    assert!(ev["error"].as_str().unwrap().contains("within 0 s"), "{ev}");
    assert!(
        ev["blocks"].as_array().unwrap().is_empty(),
        "no block may run"
    );
    assert_eq!(ev["teardown"]["deleted"], true);
    assert!(daemon.instances(&setup.prefix).is_empty());
}

/// The repository's own runbook, as written.
fn repository_runbook() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/install.md")
}

/// The two repositories of `examples/monolith` split by the real
/// `instance-extract apply` (secrets sealed to the bootstrap key), each
/// committed; returns the `[[repos]]` TOML. docs/install.md's placeholders
/// point at their bundles through `runbook.vars` (see `MONOLITH_VARS`).
fn monolith_repos(setup: &Setup) -> String {
    let example = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/monolith");
    let base = setup.path().join("base");
    let instance = setup.path().join("instance");
    let host = setup.path().join("host");
    fs_err::create_dir_all(&host).unwrap();
    let copy = Command::new("cp")
        .arg("-r")
        .arg(&example)
        .arg(&base)
        .status()
        .unwrap();
    assert!(copy.success());
    let mut secrets = Vec::new();
    for (name, file) in [
        ("tls/fullchain", "fullchain.pem"),
        ("tls/key", "privkey.pem"),
        ("drone/oauth", "drone-oauth-secret"),
        ("drone/rpc", "drone-rpc-secret"),
        ("webhook/hmac", "webhook-hmac"),
    ] {
        let mut value = [0u8; 12];
        getrandom_bytes(&mut value);
        fs_err::write(host.join(file), hex_lower(&value)).unwrap();
        secrets.push("--secret".to_owned());
        secrets.push(format!("{name}={}", host.join(file).display()));
    }
    for entry in walk(&base) {
        let text = fs_err::read_to_string(&entry).unwrap();
        if text.contains("@SECRETS@") {
            fs_err::write(
                &entry,
                text.replace("@SECRETS@", &host.display().to_string()),
            )
            .unwrap();
        }
    }
    let mut args: Vec<String> = [
        "apply",
        "--base",
        "base",
        "--instance",
        "instance",
        "--domain",
        "ci.example.net",
        "-r",
        &setup.recipient,
    ]
    .iter()
    .map(|s| (*s).to_owned())
    .collect();
    args.extend(secrets);
    let apply = run(
        &fromgit_bin("instance-extract"),
        &args,
        setup.path(),
        &[],
        b"",
    );
    success(&apply, "instance-extract apply");
    for repo in [&base, &instance] {
        git(repo, &["init", "-q", "-b", "main"]);
        git(repo, &["add", "-A"]);
        git(repo, &["commit", "-qm", "as split by instance-extract"]);
    }
    "\n[[repos]]\nname = \"base\"\npath = \"base\"\n\n[[repos]]\nname = \"instance\"\npath = \"instance\"\n"
        .to_owned()
}

/// docs/install.md's placeholders, pointed at the pushed bundles.
const MONOLITH_VARS: &str = "#!vars=host = \"cc-ci\", base_repo = \"{{ repos.base.bundle }}\", base_rev = \"{{ repos.base.commit }}\", instance_repo = \"{{ repos.instance.bundle }}\", instance_rev = \"{{ repos.instance.commit }}\"\n";

fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    for entry in fs_err::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            files.extend(walk(&path));
        } else {
            files.push(path);
        }
    }
    files
}

/// Each block's name with its exit or why it did not run.
fn block_outcomes(ev: &serde_json::Value) -> Vec<(String, String)> {
    ev["blocks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| {
            let outcome = match b["not_run"].as_str() {
                Some(why) => format!("not run: {why}"),
                None => b["exit"].to_string(),
            };
            (b["name"].as_str().unwrap().to_owned(), outcome)
        })
        .collect()
}

#[test]
#[cfg_attr(
    any(missing_incus, missing_incus_daemon, missing_age_keygen),
    ignore = "needs `incus`, `age-keygen` and the Incus test daemon; one was not found when the tests were built: `bash tests/run --install-only` installs them; under CI=true the test fails instead"
)]
fn vm_prove_runs_docs_install_md_as_written_on_debian_and_exits_unproven() {
    let Some(daemon) = Daemon::find() else { return };
    let runbook = repository_runbook();
    let extra = format!("#!runbook={}\n{MONOLITH_VARS}", runbook.display());
    let Some(setup) = Setup::new(&daemon, "docs", "", &extra) else {
        return;
    };
    setup.append_config(&monolith_repos(&setup));
    // What activation would install: decrypted here with the pushed key,
    // checked in the instance only on NixOS.
    setup.append_config(SOPS_SECRET_CHECKS);

    let out = setup.vm_prove(&["run", "--config", "vm-prove.toml"]);
    assert_eq!(out.status.code(), Some(3), "stderr:\n{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    assert!(stdout.contains(": unproven"), "{stdout}");
    assert!(
        stdout.contains("mechanics on a Debian GNU/Linux 12 (bookworm) container (not NixOS"),
        "{stdout}"
    );
    assert!(
        stdout.contains("2 block(s) and 2 check(s) not run: needs NixOS"),
        "{stdout}"
    );
    let ev = setup.evidence();
    assert_eq!(ev["verdict"], "unproven");
    assert_eq!(ev["nixos"], false);
    let expected_sha = sha256_hex(&fs_err::read(&runbook).unwrap());
    assert_eq!(ev["runbook_sha256"], expected_sha, "the runbook as written");
    let outcomes = block_outcomes(&ev);
    let outcomes: Vec<(&str, &str)> = outcomes
        .iter()
        .map(|(n, o)| (n.as_str(), o.as_str()))
        .collect();
    assert_eq!(
        outcomes,
        [
            ("check-key", "0"),
            ("clone-base", "0"),
            ("clone-instance", "0"),
            ("check-decrypt", "0"),
            ("switch", "not run: needs NixOS"),
            ("check-secrets", "not run: needs NixOS"),
            ("check-failed-units", "0"),
        ]
    );
    assert!(ev["error"].as_str().unwrap().contains("`switch`"), "{ev}");
    assert_eq!(ev["sops_decrypted"].as_array().unwrap().len(), 2, "{ev}");
    let mut not_run = Vec::new();
    for c in ev["checks"].as_array().unwrap() {
        if c["not_run"] == "needs NixOS" {
            not_run.push(c["name"].as_str().unwrap());
        } else {
            assert_eq!(c["passed"], true, "{c}");
        }
    }
    assert_eq!(
        not_run,
        ["sops secret `tls/key`", "sops secret `drone/rpc`"],
        "{ev}"
    );
    assert!(
        !text(&out.stderr).contains("[switch]"),
        "the switch block ran"
    );
    assert_eq!(ev["teardown"]["deleted"], true);
    setup.assert_no_secret_in_evidence(&[&out.stdout, &out.stderr]);
    assert!(daemon.instances(&setup.prefix).is_empty());
}

#[test]
#[cfg_attr(
    any(missing_incus, missing_incus_daemon, missing_age_keygen),
    ignore = "needs `incus`, `age-keygen` and the Incus test daemon; one was not found when the tests were built: `bash tests/run --install-only` installs them; under CI=true the test fails instead"
)]
fn vm_prove_fails_docs_install_md_with_a_broken_step() {
    let Some(daemon) = Daemon::find() else { return };
    let written = fs_err::read_to_string(repository_runbook()).unwrap();
    // The instance clone checks out a commit that does not exist.
    let broken = written.replace(
        "git -C /var/lib/fromgit/instance checkout --detach \"{{ instance_rev }}\"",
        "git -C /var/lib/fromgit/instance checkout --detach \"{{ instance_rev }}~1\"",
    );
    assert_ne!(broken, written, "docs/install.md no longer has that step");
    let Some(setup) = Setup::new(&daemon, "docsbroken", &broken, MONOLITH_VARS) else {
        return;
    };
    setup.append_config(&monolith_repos(&setup));

    let out = setup.vm_prove(&["run", "--config", "vm-prove.toml"]);
    assert_eq!(out.status.code(), Some(1), "stderr:\n{}", text(&out.stderr));
    let ev = setup.evidence();
    assert_eq!(ev["verdict"], "failed");
    let outcomes = block_outcomes(&ev);
    assert_eq!(outcomes.len(), 3, "{outcomes:?}");
    assert_eq!(outcomes[2].0, "clone-instance");
    assert_ne!(outcomes[2].1, "0");
    assert!(ev["error"]
        .as_str()
        .unwrap()
        .contains("block `clone-instance` exited with"));
    assert_eq!(ev["teardown"]["deleted"], true);
    assert!(daemon.instances(&setup.prefix).is_empty());
}

/// A client certificate trusted without restriction, made for one test and
/// removed from the trust store when dropped.
struct UnrestrictedCertificate<'a> {
    daemon: &'a Daemon,
    fingerprint: String,
    cert: PathBuf,
    key: PathBuf,
}

impl<'a> UnrestrictedCertificate<'a> {
    fn trust(daemon: &'a Daemon, dir: &Path, name: &str) -> Self {
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = rcgen::CertificateParams::new(vec![name.to_owned()])
            .unwrap()
            .self_signed(&key)
            .unwrap();
        let cert_file = dir.join(format!("{name}.crt"));
        let key_file = dir.join(format!("{name}.key"));
        fs_err::write(&cert_file, cert.pem()).unwrap();
        fs_err::write(&key_file, key.serialize_pem()).unwrap();
        let out = daemon.incus(&[
            "config",
            "trust",
            "add-certificate",
            &cert_file.display().to_string(),
            "--name",
            name,
        ]);
        assert!(out.status.success(), "{}", text(&out.stderr));
        UnrestrictedCertificate {
            daemon,
            fingerprint: sha256_hex(cert.der()),
            cert: cert_file,
            key: key_file,
        }
    }
}

impl Drop for UnrestrictedCertificate<'_> {
    fn drop(&mut self) {
        let _ = self
            .daemon
            .incus(&["config", "trust", "remove", &self.fingerprint]);
    }
}

#[test]
#[cfg_attr(
    any(missing_incus, missing_incus_daemon, missing_age_keygen),
    ignore = "needs `incus`, `age-keygen` and the Incus test daemon; one was not found when the tests were built: `bash tests/run --install-only` installs them; under CI=true the test fails instead"
)]
fn vm_prove_allow_list_refuses_the_default_project_whatever_the_certificate_permits() {
    let Some(daemon) = Daemon::find() else { return };
    let Some(setup) = Setup::new(&daemon, "allow", OK_RUNBOOK, "#!project=default\n") else {
        return;
    };
    let name = format!("{}-unrestricted", setup.prefix);
    let cert = UnrestrictedCertificate::trust(&daemon, setup.path(), &name);
    set_incus_field(&setup, "client_cert", &cert.cert.display().to_string());
    set_incus_field(&setup, "client_key", &cert.key.display().to_string());

    let plan = setup.vm_prove(&["plan", "--config", "vm-prove.toml"]);
    let run_out = setup.vm_prove(&["run", "--config", "vm-prove.toml"]);
    // The control: allowed by the configuration, the certificate reaches
    // `default` (plan only reads).
    let config = setup.path().join("vm-prove.toml");
    let allowed_default = fs_err::read_to_string(&config).unwrap().replace(
        &format!("allowed_projects = [\"{}\"]", daemon.var("PROJECT")),
        "allowed_projects = [\"default\"]",
    );
    fs_err::write(setup.path().join("control.toml"), allowed_default).unwrap();
    let control = setup.vm_prove(&["plan", "--config", "control.toml", "--json"]);
    let in_default = daemon.incus(&["list", "--project", "default", "--format", "csv", "-c", "n"]);
    drop(cert);
    let trusted = daemon.incus(&["config", "trust", "list", "--format", "csv"]);
    assert!(
        !text(&trusted.stdout).contains(&name),
        "the certificate is still trusted"
    );

    assert_eq!(plan.status.code(), Some(2), "{}", text(&plan.stderr));
    assert!(
        text(&plan.stdout).contains("REFUSED allow-list: project `default` (`incus.project`) is not in `guardrails.allowed_projects`"),
        "{}",
        text(&plan.stdout)
    );
    assert_exit(&run_out, 2, "guardrail `allow-list` refused");
    assert!(
        text(&run_out.stdout).contains(": refused\n"),
        "{}",
        text(&run_out.stdout)
    );
    let ev = setup.evidence();
    assert_eq!(ev["verdict"], "refused");
    assert!(ev["instance"].is_null(), "nothing may be created");
    assert!(!text(&in_default.stdout).contains(&setup.prefix));
    assert!(daemon.instances(&setup.prefix).is_empty());

    let control: serde_json::Value = serde_json::from_slice(&control.stdout)
        .unwrap_or_else(|_| panic!("{}", text(&control.stderr)));
    let project = control["guardrails"]
        .as_array()
        .unwrap()
        .iter()
        .find(|g| g["name"] == "project")
        .unwrap()
        .clone();
    assert_eq!(
        project["passed"], true,
        "the certificate is not unrestricted: {project}"
    );
}

#[test]
#[cfg_attr(
    any(missing_incus, missing_incus_daemon, missing_age_keygen),
    ignore = "needs `incus`, `age-keygen` and the Incus test daemon; one was not found when the tests were built: `bash tests/run --install-only` installs them; under CI=true the test fails instead"
)]
fn vm_prove_unit_checks_match_systemd() {
    let Some(daemon) = Daemon::find() else { return };
    // Four oneshots, none enabled: one started and exited 0 (systemd then
    // unloads it), one that fails, one never started, one still running.
    let runbook = r#"```sh {name=units vm-prove=run timeout=60}
for unit in started:/bin/true failing:/bin/false never:/bin/true slow:'/bin/sleep 300'; do
  printf '[Service]\nType=oneshot\nExecStart=%s\n' "${unit#*:}" > "/etc/systemd/system/${unit%%:*}.service"
done
systemctl daemon-reload
systemctl start started.service
systemctl start failing.service || true
systemctl start --no-block slow.service
```
"#;
    let extra = "[checks]\nunits = [\"started.service\", \"failing.service\", \"never.service\", \"slow.service\"]\nsettle_timeout = 1\n";
    let Some(setup) = Setup::new(&daemon, "units", runbook, extra) else {
        return;
    };
    let out = setup.vm_prove(&["run", "--config", "vm-prove.toml"]);
    assert_eq!(out.status.code(), Some(1), "stderr:\n{}", text(&out.stderr));
    let ev = setup.evidence();
    let units: BTreeMap<&str, (bool, &str)> = ev["checks"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|c| {
            let name = c["name"].as_str()?.strip_prefix("unit `")?;
            Some((
                name.trim_end_matches('`'),
                (c["passed"] == true, c["observed"].as_str().unwrap()),
            ))
        })
        .collect();
    assert_eq!(
        units["started.service"],
        (
            true,
            "ran and exited 0 (from the journal: systemd no longer holds its state)"
        ),
        "{units:?}"
    );
    assert_eq!(
        units["failing.service"],
        (
            false,
            "failed: ActiveState=failed Result=exit-code ExecMainStatus=1"
        )
    );
    assert_eq!(units["never.service"], (false, "never ran in this boot"));
    assert_eq!(units["slow.service"], (false, "still activating"));
    assert_eq!(ev["teardown"]["deleted"], true);
    assert!(daemon.instances(&setup.prefix).is_empty());
}

#[test]
#[cfg_attr(
    any(missing_incus, missing_incus_daemon, missing_age_keygen),
    ignore = "needs `incus`, `age-keygen` and the Incus test daemon; one was not found when the tests were built: `bash tests/run --install-only` installs them; under CI=true the test fails instead"
)]
fn vm_prove_owner_by_name_and_the_key_listed_once() {
    let Some(daemon) = Daemon::find() else { return };
    let extra = "[checks]\nsettle_timeout = \"30s\"\n[[checks.secrets]]\npath = \"/var/lib/sops-nix/key.txt\"\nowner = \"root\"\ngroup = \"#0\"\nmode = \"0600\"\n";
    let Some(setup) = Setup::new(&daemon, "owner", OK_RUNBOOK, extra) else {
        return;
    };
    let config = setup.path().join("vm-prove.toml");
    let written = fs_err::read_to_string(&config).unwrap();
    // A duration without a known unit: an error that names the field.
    fs_err::write(
        &config,
        written.replace("ready_timeout = \"90s\"", "ready_timeout = \"90 seconds\""),
    )
    .unwrap();
    let out = setup.vm_prove(&["plan", "--config", "vm-prove.toml"]);
    assert_exit(&out, 2, "`ready_timeout = \"90 seconds\"`");
    assert!(
        text(&out.stderr).contains("not a duration"),
        "{}",
        text(&out.stderr)
    );
    fs_err::write(
        &config,
        written.replace(
            "source = \"bootstrap.txt\"",
            "source = \"bootstrap.txt\"\nowner = \"root\"\ngroup = \"#0\"",
        ),
    )
    .unwrap();

    let out = setup.vm_prove(&["run", "--config", "vm-prove.toml"]);
    assert_eq!(out.status.code(), Some(0), "stderr:\n{}", text(&out.stderr));
    let ev = setup.evidence();
    assert_eq!(ev["secret"]["owner"], "root");
    assert_eq!(ev["secret"]["uid"], 0);
    let key_checks = ev["checks"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["name"] == "secret `/var/lib/sops-nix/key.txt`")
        .count();
    assert_eq!(key_checks, 1, "{ev}");
    assert!(daemon.instances(&setup.prefix).is_empty());
}

/// What `sops-install-secrets` does at activation (a generation directory
/// under `/run/secrets.d`, each value decrypted with the key file into it
/// with its owner and mode, `/run/secrets` pointed at it), done by the
/// runbook with the real `sops` on Debian: a stand-in for NixOS activation.
const ACTIVATION_STAND_IN: &str = r#"```sh {name=clone vm-prove=run timeout=120}
git clone -q "{{ repos.instance.bundle }}" /srv/instance
git -C /srv/instance checkout -q --detach "{{ repos.instance.commit }}"
```

```sh {name=activation-stand-in vm-prove=run timeout=60}
export SOPS_AGE_KEY_FILE=/var/lib/sops-nix/key.txt
umask 077
gen=/run/secrets.d/1
install -d -m 0751 /run/secrets.d "$gen" "$gen/tls" "$gen/drone"
sops -d --extract '["tls"]["key"]' /srv/instance/secrets/secrets.yaml > "$gen/tls/key"
RPC_VALUE > "$gen/drone/rpc"
chmod 0400 "$gen/tls/key"
chmod 0440 "$gen/drone/rpc"
chown daemon:daemon "$gen/drone/rpc"
ln -sfn "$gen" /run/secrets
```
"#;

const SOPS_SECRET_CHECKS: &str = r#"
[checks]
[[checks.sops_secrets]]
name = "tls/key"
sops_file = "instance/secrets/secrets.yaml"

[[checks.sops_secrets]]
name = "drone/rpc"
sops_file = "instance/secrets/secrets.yaml"
owner = "daemon"
group = "daemon"
mode = "0440"
"#;

#[test]
#[cfg_attr(
    any(missing_incus, missing_incus_daemon, missing_age_keygen),
    ignore = "needs `incus`, `age-keygen` and the Incus test daemon; one was not found when the tests were built: `bash tests/run --install-only` installs them; under CI=true the test fails instead"
)]
fn vm_prove_sops_nix_secrets_by_name_on_a_stand_in_for_activation() {
    let Some(daemon) = Daemon::find() else { return };
    for (variant, value, code) in [
        (
            "sopsnix",
            "sops -d --extract '[\"drone\"][\"rpc\"]' /srv/instance/secrets/secrets.yaml",
            0,
        ),
        ("sopsnixbad", "echo not-the-sealed-value", 1),
    ] {
        let runbook = ACTIVATION_STAND_IN.replace("RPC_VALUE", value);
        let Some(setup) = Setup::new(&daemon, variant, &runbook, "") else {
            return;
        };
        setup.append_config(&monolith_repos(&setup));
        setup.append_config(SOPS_SECRET_CHECKS);
        let out = setup.vm_prove(&["run", "--config", "vm-prove.toml"]);
        assert_eq!(
            out.status.code(),
            Some(code),
            "{variant}: stderr:\n{}",
            text(&out.stderr)
        );
        let ev = setup.evidence();
        let sops: BTreeMap<&str, (bool, &str)> = ev["checks"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|c| {
                let name = c["name"].as_str()?.strip_prefix("sops secret `")?;
                Some((
                    name.trim_end_matches('`'),
                    (c["passed"] == true, c["observed"].as_str().unwrap()),
                ))
            })
            .collect();
        assert_eq!(sops.len(), 2, "{ev}");
        let (passed, observed) = sops["tls/key"];
        assert!(passed, "{observed}");
        assert!(
            observed.contains("`/run/secrets` → `/run/secrets.d/1` (newest)")
                && observed.contains("root:root (#0:#0) 400")
                && observed.contains("content matches the decrypted value: true"),
            "{observed}"
        );
        let (passed, observed) = sops["drone/rpc"];
        assert!(observed.contains("daemon:daemon"), "{observed}");
        assert_eq!(passed, code == 0, "{variant}: {observed}");
        assert_eq!(
            observed.contains("content matches the decrypted value: true"),
            code == 0,
            "{observed}"
        );
        assert_eq!(ev["sops_decrypted"].as_array().unwrap().len(), 2);
        setup.assert_no_secret_in_evidence(&[&out.stdout, &out.stderr]);
        assert!(daemon.instances(&setup.prefix).is_empty());
    }
}

/// The `toml` block of docs/vm-prove.md's "The NixOS run" section.
fn documented_nixos_configuration() -> String {
    let doc =
        fs_err::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/vm-prove.md"))
            .unwrap();
    let section = doc.split("## The NixOS run").nth(1).unwrap();
    let block = section.split("```toml\n").nth(1).unwrap();
    block.split("\n```").next().unwrap().to_owned()
}

#[test]
#[cfg_attr(
    any(missing_incus, missing_incus_daemon, missing_age_keygen),
    ignore = "needs `incus`, `age-keygen` and the Incus test daemon; one was not found when the tests were built: `bash tests/run --install-only` installs them; under CI=true the test fails instead"
)]
fn vm_prove_plan_accepts_the_documented_nixos_configuration() {
    let Some(daemon) = Daemon::find() else { return };
    let Some(setup) = Setup::new(&daemon, "nixosdoc", "", "") else {
        return;
    };
    // What the configuration names next to it: the repos, the key, fromgit's runbook.
    monolith_repos(&setup);
    let (chain, key) = wildcard_certificate();
    fs_err::write(setup.path().join("chain.pem"), chain).unwrap();
    fs_err::write(setup.path().join("key.pem"), key).unwrap();
    let sealed = run(
        &fromgit_bin("cert-seal"),
        [
            "seal",
            "--cert",
            "chain.pem",
            "--key",
            "key.pem",
            "--domain",
            "example.net",
            "--into",
            "instance/secrets/secrets.yaml",
            "--identity",
            "bootstrap.txt",
        ],
        setup.path(),
        &[],
        b"",
    );
    success(&sealed, "cert-seal seal --into");
    fs_err::create_dir_all(setup.path().join("fromgit/docs")).unwrap();
    fs_err::copy(
        repository_runbook(),
        setup.path().join("fromgit/docs/install.md"),
    )
    .unwrap();

    // The documented configuration, pointed at the local daemon: only its
    // address, certificates and project change.
    let mut config = documented_nixos_configuration()
        .replace("terraform-ci", daemon.var("PROJECT"))
        .replace("https://b1:8443", daemon.var("URL"));
    for (file, local) in [
        ("client.crt", daemon.var("CERT")),
        ("client.key", daemon.var("KEY")),
        ("server.crt", daemon.var("CA")),
    ] {
        config = config.replace(
            &format!("/srv/incus-terraform-nix-vm-creator/terraform-secrets/{file}"),
            local,
        );
    }
    let config: String = config
        .lines()
        .filter(|l| !l.starts_with("proxy = "))
        .flat_map(|l| [l, "\n"])
        .collect();
    fs_err::write(setup.path().join("nixos.toml"), &config).unwrap();
    let before = daemon.instances("vmprove");

    let out = setup.vm_prove(&["plan", "--config", "nixos.toml"]);
    let plan = text(&out.stdout);
    assert_eq!(out.status.code(), Some(2), "{plan}\n{}", text(&out.stderr));
    assert!(
        plan.contains("REFUSED image: image `nixos-25.11` is not available"),
        "{plan}"
    );
    assert!(plan.contains("ok      allow-list"), "{plan}");
    assert!(
        plan.contains("A run would be refused before any change."),
        "{plan}"
    );
    let runbook = fs_err::read_to_string(repository_runbook()).unwrap();
    let switch_line = runbook
        .lines()
        .position(|l| l.contains("name=switch "))
        .expect("docs/install.md has a `switch` block")
        + 1;
    let switch_step =
        format!("run block `switch` (line {switch_line}, timeout 3600 s); needs NixOS");
    for step in [
        "create virtual-machine `vmprove-<run id>` from image `nixos-25.11` with limits.memory=4GiB",
        switch_step.as_str(),
        "run block `check-secrets`",
        "check: sops-nix secret `tls/key` at `/run/secrets/tls/key`",
        "check: sops-nix secret `webhook/hmac`",
        "check: `/run/current-system` resolves to `/nix/store/…-nixos-system-cc-ci-25.11`",
        "inside the instance serves",
        "force-stop and delete the instance (always)",
    ] {
        assert!(plan.contains(step), "`{step}` is not in:\n{plan}");
    }
    assert_eq!(
        daemon.instances("vmprove"),
        before,
        "plan created something"
    );
    assert!(daemon.instances(&setup.prefix).is_empty());
}
