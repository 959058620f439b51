//! `closure-diff` against the real Nix 2.8 store (Debian's `nix-bin`), offline.
//!
//! Every test builds small closures with `builtins.derivation` and `/bin/sh`
//! in its own throwaway chroot store (`nix-build --store DIR`), so tests run
//! in parallel and repeatedly without touching `/nix` or each other. NAR
//! hashes are checked against `nix-hash` and `nix-store --dump`, the package
//! view against `nix store diff-closures`, and the SSH input against a real
//! `sshd` on 127.0.0.1.
//!
//! Over 600 lines on purpose: each input kind (store, snapshot, ssh, drv) is
//! compared against the real `nix` in one test binary sharing the store set-up.

#![allow(
    clippy::unwrap_used,
    clippy::panic,
    clippy::unused_self,
    clippy::similar_names,
    clippy::zombie_processes
)]

use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::process::Output;

use fromgit_testkit::{fromgit_bin, peer, run, start_sshd, success, text};

/// The fixture system: a toplevel, a `system-path`, and packages with
/// realistic names, one of which (`libfoo`) sits deep in the graph.
const SYSTEM_NIX: &str = r#"
{ v ? "1.0", msg ? "hi", fw ? "20240101", rev ? "1a2b3c4", extra ? false, noise ? false }:
let
  mk = name: script: derivation {
    inherit name;
    system = builtins.currentSystem;
    builder = "/bin/sh";
    PATH = "/usr/bin";
    args = [ "-c" script ];
  };
  libfoo = mk "libfoo-${v}" "echo ${msg} > $out";
  openssl = mk "openssl-3.0.13-dev" "mkdir -p $out/include; echo ${libfoo} > $out/include/ref.h";
  hello = mk "hello-2.10" ''
    mkdir -p $out/bin $out/share/empty $out/share/doc
    printf '#!/bin/sh\necho hello\n' > $out/bin/hello
    chmod +x $out/bin/hello
    ln -s hello $out/bin/hi
    ln -s /etc/passwd $out/share/abs
    echo B > $out/share/doc/B
    echo a > $out/share/doc/a
    chmod 654 $out/share/doc/a
    echo ${openssl} > $out/share/ref
    ${if noise then "head -c 32 /dev/urandom | od -x > $out/share/noise" else ""}
  '';
  firmware = mk "firmware-linux-nonfree-${fw}-zstd" "echo fw > $out";
  tool = mk "mytool-${rev}" "echo tool > $out";
  sops = mk "sops-nix-0.1" "echo sops > $out";
  pkgs = [ hello firmware tool ] ++ (if extra then [ sops ] else [ ]);
  syspath = mk "system-path" "mkdir $out; echo ${toString pkgs} > $out/pkgs";
in
mk "nixos-system-machine-24.11" "mkdir $out; ln -s ${syspath} $out/sw"
"#;

const NIX_CONFIG: &str = "substituters =\n\
    experimental-features = nix-command flakes\n\
    build-users-group =\n\
    extra-sandbox-paths = /bin/sh=/usr/bin/dash /lib /lib64 /usr/bin";

/// A throwaway work directory with one or more chroot stores.
struct Fixture {
    dir: tempfile::TempDir,
    nix_build: PathBuf,
}

impl Fixture {
    fn new() -> Option<Self> {
        let nix_build = peer("nix-build")?;
        peer("nix")?;
        let dir = tempfile::tempdir().unwrap();
        fs_err::write(dir.path().join("system.nix"), SYSTEM_NIX).unwrap();
        Some(Self { dir, nix_build })
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    fn store(&self, name: &str) -> PathBuf {
        self.path().join(name)
    }

    fn env(&self) -> Vec<(&'static str, &'static OsStr)> {
        vec![("NIX_CONFIG", OsStr::new(NIX_CONFIG))]
    }

    /// Builds the fixture system into the store `store` and returns its path.
    fn build(&self, store: &str, args: &[(&str, &str)]) -> String {
        let store = self.store(store);
        let mut argv: Vec<String> = vec![
            "--store".into(),
            store.display().to_string(),
            "system.nix".into(),
            "--no-out-link".into(),
        ];
        for (k, v) in args {
            if *v == "true" || *v == "false" {
                argv.extend(["--arg".into(), (*k).into(), (*v).into()]);
            } else {
                argv.extend(["--argstr".into(), (*k).into(), (*v).into()]);
            }
        }
        let out = run(&self.nix_build, &argv, self.path(), &self.env(), b"");
        success(&out, "nix-build").trim().to_owned()
    }

    fn nix(&self, args: &[&str]) -> String {
        let nix = peer("nix").unwrap();
        let out = run(&nix, args, self.path(), &self.env(), b"");
        success(&out, &format!("nix {args:?}"))
    }

    fn closure_diff(&self, args: &[&str]) -> Output {
        run(
            &fromgit_bin("closure-diff"),
            args,
            self.path(),
            &self.env(),
            b"",
        )
    }

    /// The real directory of a store object in a chroot store.
    fn real(&self, store: &str, path: &str) -> PathBuf {
        self.store(store).join(path.trim_start_matches('/'))
    }
}

fn code(out: &Output) -> Option<i32> {
    out.status.code()
}

fn explain(out: &Output) -> String {
    format!(
        "exit {:?}\nstdout:\n{}\nstderr:\n{}",
        out.status.code(),
        text(&out.stdout),
        text(&out.stderr)
    )
}

fn assert_exit(out: &Output, want: i32) {
    assert_eq!(code(out), Some(want), "{}", explain(out));
}

/// Parses `nix store diff-closures` lines into (name, old, new), ANSI stripped.
fn diff_closures(fx: &Fixture, store: &str, a: &str, b: &str) -> Vec<(String, String, String)> {
    let st = fx.store(store).display().to_string();
    let out = fx.nix(&["store", "diff-closures", "--store", &st, a, b]);
    let mut plain = String::new();
    let mut chars = out.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            for d in chars.by_ref() {
                if d == 'm' {
                    break;
                }
            }
        } else {
            plain.push(c);
        }
    }
    plain
        .lines()
        .filter_map(|line| {
            let (name, rest) = line.split_once(": ")?;
            let versions = rest.split(", ").next().unwrap_or("");
            let (old, new) = versions.split_once(" → ")?;
            Some((
                name.trim().to_owned(),
                old.trim().to_owned(),
                new.trim().to_owned(),
            ))
        })
        .collect()
}

/// Our package lines: `[TAG] name ... old → new` as (tag, name).
fn our_packages(stdout: &str) -> Vec<(String, String)> {
    stdout
        .lines()
        .filter_map(|l| {
            let l = l.trim_start();
            let rest = l.strip_prefix('[')?;
            let (tag, rest) = rest.split_once("] ")?;
            if tag.len() != 1 {
                return None;
            }
            Some((tag.to_owned(), rest.split_whitespace().next()?.to_owned()))
        })
        .collect()
}

#[test]
#[cfg_attr(
    any(missing_nix_build, missing_nix),
    ignore = "needs `nix-build` and `nix`; one was not found when the tests were built: `bash tests/run --install-only` installs them; under CI=true the test fails instead"
)]
fn identical_rebuild_in_another_store_is_byte_identical_and_verified() {
    let Some(fx) = Fixture::new() else { return };
    let a = fx.build("st1", &[]);
    let b = fx.build("st2", &[]);
    assert_eq!(a, b, "an input-addressed rebuild keeps its path");
    let st1 = fx.store("st1").display().to_string();
    let st2 = fx.store("st2").display().to_string();
    // Snapshot the second store, compare the first against it.
    let snap = fx.path().join("snap.json");
    let out = fx.closure_diff(&[
        "snapshot",
        "--store",
        &st2,
        &b,
        "-o",
        snap.to_str().unwrap(),
    ]);
    assert_exit(&out, 0);
    let snap_text = fs_err::read_to_string(&snap).unwrap();
    assert!(
        snap_text.contains("\"schema\":\"closure-diff-snapshot-v1\""),
        "{snap_text}"
    );
    assert!(
        snap_text.contains("-libfoo-1.0.drv\":\"Derive("),
        "drvs are recorded"
    );

    let out = fx.closure_diff(&["--store", &st1, &a, snap.to_str().unwrap()]);
    assert_exit(&out, 0);
    let stdout = text(&out.stdout);
    assert!(
        stdout.contains("closure-diff: IDENTICAL (requested level: byte-identical)"),
        "{stdout}"
    );
    assert!(
        stdout.contains("byte-identical    holds        7 paths"),
        "{stdout}"
    );
    assert!(!stdout.contains('\u{1b}'), "no colour through a pipe");

    // The on-disk level: every NAR recomputed in parallel matches Nix's record.
    let out = fx.closure_diff(&[
        "compare",
        "--store",
        &st1,
        "--verify-on-disk",
        &a,
        snap.to_str().unwrap(),
        "--json",
    ]);
    assert_exit(&out, 0);
    let json = text(&out.stdout);
    assert!(json.contains("\"schema_version\": 1"), "{json}");
    assert!(json.contains("\"result\": \"identical\""), "{json}");
    assert!(
        json.contains("\"strongest_level_holding\": \"verified-on-disk\""),
        "{json}"
    );
    assert!(json.contains("\"checked\": 7"), "{json}");

    // Same toplevel at the weakest level.
    let out = fx.closure_diff(&["--store", &st1, "--level", "same-path", &a, &a]);
    assert_exit(&out, 0);
}

#[test]
#[cfg_attr(
    any(missing_nix_build, missing_nix, missing_nix_hash, missing_nix_store),
    ignore = "needs `nix-build`, `nix`, `nix-hash` and `nix-store`; one was not found when the tests were built: `bash tests/run --install-only` installs them; under CI=true the test fails instead"
)]
fn nar_hashes_agree_with_nix_hash_and_nix_store_dump() {
    let Some(fx) = Fixture::new() else { return };
    let Some(nix_hash) = peer("nix-hash") else {
        return;
    };
    let Some(nix_store) = peer("nix-store") else {
        return;
    };
    let top = fx.build("st", &[]);
    let st = fx.store("st").display().to_string();
    // Alter hello (executable bits, symlinks, bytewise-sorted names, an
    // empty directory) after registration: the report then shows our hash of
    // what is on disk, to compare with Nix's own tools.
    let info = fx.nix(&["path-info", "--store", &st, "--recursive", &top]);
    let hello = info
        .lines()
        .find(|l| l.ends_with("-hello-2.10"))
        .unwrap()
        .trim()
        .to_owned();
    let real = fx.real("st", &hello);
    let doc = real.join("share/doc/a");
    let mut perms = fs_err::metadata(real.join("share/doc"))
        .unwrap()
        .permissions();
    std::os::unix::fs::PermissionsExt::set_mode(&mut perms, 0o755);
    fs_err::set_permissions(real.join("share/doc"), perms).unwrap();
    let _ = fs_err::remove_file(&doc);
    fs_err::write(&doc, b"tampered\n").unwrap();

    let out = fx.closure_diff(&["--store", &st, "--verify-on-disk", &top, &top]);
    assert_exit(&out, 1);
    let stdout = text(&out.stdout);
    let line = stdout
        .lines()
        .find(|l| l.contains("MODIFIED"))
        .unwrap_or_else(|| panic!("{stdout}"));
    assert!(line.contains(&hello), "{line}");
    let ours = line
        .rsplit("on disk sha256:")
        .next()
        .unwrap()
        .trim()
        .to_owned();

    let want = run(
        &nix_hash,
        ["--type", "sha256", "--base32"]
            .iter()
            .map(OsStr::new)
            .chain([real.as_os_str()]),
        fx.path(),
        &[],
        b"",
    );
    assert_eq!(
        ours,
        success(&want, "nix-hash").trim(),
        "NAR hash vs nix-hash"
    );

    let dump = run(
        &nix_store,
        [OsStr::new("--dump"), real.as_os_str()],
        fx.path(),
        &[],
        b"",
    );
    assert!(
        dump.status.success(),
        "nix-store --dump: {}",
        text(&dump.stderr)
    );
    let nar_file = fx.path().join("hello.nar");
    fs_err::write(&nar_file, &dump.stdout).unwrap();
    let flat = run(
        &nix_hash,
        [
            OsStr::new("--flat"),
            OsStr::new("--type"),
            OsStr::new("sha256"),
            OsStr::new("--base32"),
            nar_file.as_os_str(),
        ],
        fx.path(),
        &[],
        b"",
    );
    assert_eq!(
        ours,
        success(&flat, "nix-hash --flat").trim(),
        "NAR hash vs sha256(nix-store --dump)"
    );
    let json = text(
        &fx.closure_diff(&["--store", &st, "--verify-on-disk", &top, &top, "--json"])
            .stdout,
    );
    assert!(
        json.contains(&format!("\"actual_size\": {}", dump.stdout.len())),
        "NAR size vs nix-store --dump: {json}"
    );

    // Nix agrees that the path was modified.
    let verify = run(
        &peer("nix").unwrap(),
        ["store", "verify", "--store", &st, &hello],
        fx.path(),
        &fx.env(),
        b"",
    );
    assert!(
        text(&verify.stderr).contains("was modified"),
        "{}",
        text(&verify.stderr)
    );
}

#[test]
#[cfg_attr(
    any(missing_nix_build, missing_nix),
    ignore = "needs `nix-build` and `nix`; one was not found when the tests were built: `bash tests/run --install-only` installs them; under CI=true the test fails instead"
)]
fn version_bump_deep_in_the_graph_is_traced_to_the_bumped_derivation() {
    let Some(fx) = Fixture::new() else { return };
    let a = fx.build("st", &[]);
    let b = fx.build(
        "st",
        &[("v", "1.1"), ("fw", "20240202"), ("rev", "9f8e7d6")],
    );
    let st = fx.store("st").display().to_string();
    let out = fx.closure_diff(&["--store", &st, &a, &b]);
    assert_exit(&out, 1);
    let stdout = text(&out.stdout);
    let frontier: Vec<&str> = stdout
        .lines()
        .filter(|l| l.contains("[frontier]"))
        .collect();
    assert_eq!(
        frontier.len(),
        3,
        "libfoo, firmware and mytool are the causes:\n{stdout}"
    );
    assert!(
        frontier
            .iter()
            .any(|l| l.contains("-libfoo-1.0.drv → ") && l.contains("-libfoo-1.1.drv")),
        "{stdout}"
    );
    assert!(
        !stdout.contains("[also changed]"),
        "the toplevel and the dependents are not causes:\n{stdout}"
    );
    assert!(
        stdout.contains("env.name: \"libfoo-1.0\" → \"libfoo-1.1\""),
        "{stdout}"
    );
    assert!(stdout.contains("[U] libfoo"), "{stdout}");
    assert!(
        stdout.contains("[C] mytool"),
        "hash-like versions are `changed`:\n{stdout}"
    );
    assert!(
        stdout.contains("[B] hello"),
        "dependents are rebuilt with the same version:\n{stdout}"
    );
    assert!(stdout.contains("[B] openssl (dev)"), "{stdout}");

    // The package view agrees with `nix store diff-closures` on every
    // package whose version changed (ours keeps output-like suffixes such as
    // `-zstd` in the version; diff-closures drops them: docs/closure-diff.md).
    let theirs = diff_closures(&fx, "st", &a, &b);
    let ours = our_packages(&stdout);
    let ours_versioned: Vec<&str> = ours
        .iter()
        .filter(|(t, _)| t != "B")
        .map(|(_, n)| n.as_str())
        .collect();
    let mut theirs_names: Vec<&str> = theirs.iter().map(|(n, _, _)| n.as_str()).collect();
    theirs_names.sort_unstable();
    let mut ours_sorted = ours_versioned.clone();
    ours_sorted.sort_unstable();
    assert_eq!(
        ours_sorted, theirs_names,
        "ours: {ours:?}\ntheirs: {theirs:?}"
    );
    let libfoo = theirs.iter().find(|(n, _, _)| n == "libfoo").unwrap();
    assert_eq!((libfoo.1.as_str(), libfoo.2.as_str()), ("1.0", "1.1"));
    let fw = theirs
        .iter()
        .find(|(n, _, _)| n == "firmware-linux-nonfree")
        .unwrap();
    assert_eq!((fw.1.as_str(), fw.2.as_str()), ("20240101", "20240202"));
    assert!(stdout.contains("20240101-zstd → 20240202-zstd"), "{stdout}");

    let json = text(&fx.closure_diff(&["--store", &st, &a, &b, "--json"]).stdout);
    assert!(json.contains("\"result\": \"differs\""), "{json}");
    assert!(json.contains("\"inputs_changed\": false"), "{json}");
    assert!(!json.contains("\"inputs_changed\": true"), "{json}");
}

#[test]
#[cfg_attr(
    any(missing_nix_build, missing_nix),
    ignore = "needs `nix-build` and `nix`; one was not found when the tests were built: `bash tests/run --install-only` installs them; under CI=true the test fails instead"
)]
fn same_name_and_version_with_other_contents_is_rebuilt_not_unchanged() {
    let Some(fx) = Fixture::new() else { return };
    let st = fx.store("st").display().to_string();
    // A different recipe under the same name and version.
    let a = fx.build("st", &[]);
    let b = fx.build("st", &[("msg", "bye")]);
    let out = fx.closure_diff(&["--store", &st, &a, &b]);
    assert_exit(&out, 1);
    let stdout = text(&out.stdout);
    assert!(stdout.contains("[B] libfoo"), "{stdout}");
    assert!(
        stdout.contains("env.args")
            || stdout.contains("args[1]: \"echo hi > $out\" → \"echo bye > $out\""),
        "{stdout}"
    );
    let theirs = diff_closures(&fx, "st", &a, &b);
    assert!(
        theirs.is_empty(),
        "diff-closures shows nothing for a same-version rebuild: {theirs:?}"
    );

    // The same store path with different bytes: a non-reproducible build,
    // done in two stores. Only the NAR hash tells them apart.
    let x = fx.build("n1", &[("noise", "true")]);
    let y = fx.build("n2", &[("noise", "true")]);
    assert_eq!(x, y);
    let n1 = fx.store("n1").display().to_string();
    let n2 = fx.store("n2").display().to_string();
    let snap = fx.path().join("n2.json");
    assert_exit(
        &fx.closure_diff(&["snapshot", "--store", &n2, &y, "-o", snap.to_str().unwrap()]),
        0,
    );
    let out = fx.closure_diff(&["--store", &n1, &x, snap.to_str().unwrap()]);
    assert_exit(&out, 1);
    let stdout = text(&out.stdout);
    assert!(stdout.contains("same-path         holds"), "{stdout}");
    assert!(stdout.contains("byte-identical    FAILS"), "{stdout}");
    assert!(
        stdout.contains("[B] hello") && stdout.contains("[same store path, different NAR hash]"),
        "{stdout}"
    );
    assert!(
        stdout.contains("Same store path, different bytes"),
        "{stdout}"
    );
    // At the weakest level the same pair passes, and says bytes were not checked.
    let out = fx.closure_diff(&[
        "--store",
        &n1,
        "--level",
        "same-path",
        &x,
        snap.to_str().unwrap(),
    ]);
    assert_exit(&out, 0);
    assert!(text(&out.stdout).contains("bytes not checked"));
}

#[test]
#[cfg_attr(
    any(missing_nix_build, missing_nix),
    ignore = "needs `nix-build` and `nix`; one was not found when the tests were built: `bash tests/run --install-only` installs them; under CI=true the test fails instead"
)]
fn store_path_missing_on_one_side_and_incomplete_dumps() {
    let Some(fx) = Fixture::new() else { return };
    let st = fx.store("st").display().to_string();
    let a = fx.build("st", &[]);
    let b = fx.build("st", &[("extra", "true")]);
    let out = fx.closure_diff(&["--store", &st, &a, &b]);
    assert_exit(&out, 1);
    let stdout = text(&out.stdout);
    assert!(stdout.contains("[A] sops-nix"), "{stdout}");
    assert!(
        stdout.contains("7 → 8 paths (3 added, 2 removed"),
        "{stdout}"
    );
    let theirs = diff_closures(&fx, "st", &a, &b);
    assert!(
        theirs
            .iter()
            .any(|(n, o, nw)| n == "sops-nix" && o == "∅" && nw == "0.1"),
        "{theirs:?}"
    );

    // A `nix path-info -r --json` dump (Nix 2.8: the array shape) matches the DB.
    let dump = fx.nix(&["path-info", "--store", &st, "--recursive", "--json", &a]);
    let dump_file = fx.path().join("dump.json");
    fs_err::write(&dump_file, &dump).unwrap();
    let out = fx.closure_diff(&["--store", &st, &a, dump_file.to_str().unwrap()]);
    assert_exit(&out, 0);
    assert!(
        text(&out.stdout).contains("(path-info-json, 7 paths)"),
        "{}",
        explain(&out)
    );

    // Drop one entry that others refer to: the dump is not closed, so the
    // verdict is unproven (exit 3), never identical.
    let body = dump
        .trim()
        .strip_prefix("[{")
        .unwrap()
        .strip_suffix("}]")
        .unwrap();
    let entries: Vec<&str> = body.split("},{").collect();
    let kept: Vec<&str> = entries
        .iter()
        .copied()
        .filter(|e| !e.contains("-libfoo-1.0\","))
        .collect();
    assert_eq!(kept.len(), entries.len() - 1, "{dump}");
    let partial = format!("[{{{}}}]", kept.join("},{"));
    let partial_file = fx.path().join("partial.json");
    fs_err::write(&partial_file, &partial).unwrap();
    let out = fx.closure_diff(&["--store", &st, &a, partial_file.to_str().unwrap()]);
    assert_exit(&out, 3);
    assert!(
        text(&out.stdout).contains("referenced paths are missing"),
        "{}",
        explain(&out)
    );

    // A `file://` binary cache (a directory of .narinfo files).
    let cache = fx.path().join("cache");
    fx.nix(&[
        "copy",
        "--store",
        &st,
        "--to",
        &format!("file://{}", cache.display()),
        &a,
    ]);
    let out = fx.closure_diff(&["--store", &st, cache.to_str().unwrap(), &a]);
    assert_exit(&out, 0);
    assert!(
        text(&out.stdout).contains("(narinfo, 7 paths)"),
        "{}",
        explain(&out)
    );

    // A `.drv` input: its outputs are realised, so it is the same closure.
    let drv = fx.nix(&["path-info", "--store", &st, "--json", &a]);
    let deriver = drv
        .split("\"deriver\":\"")
        .nth(1)
        .unwrap()
        .split('"')
        .next()
        .unwrap()
        .to_owned();
    let out = fx.closure_diff(&["--store", &st, &deriver, &a]);
    assert_exit(&out, 0);
}

#[test]
#[cfg_attr(
    any(missing_nix_build, missing_nix),
    ignore = "needs `nix-build` and `nix`; one was not found when the tests were built: `bash tests/run --install-only` installs them; under CI=true the test fails instead"
)]
fn expected_drift_allows_only_what_it_names() {
    let Some(fx) = Fixture::new() else { return };
    let st = fx.store("st").display().to_string();
    let a = fx.build("st", &[]);
    let b = fx.build("st", &[("extra", "true")]);
    let out = fx.closure_diff(&["--store", &st, "--expect-drift", "sops-nix*", &a, &b]);
    assert_exit(&out, 0);
    let stdout = text(&out.stdout);
    assert!(stdout.contains("IDENTICAL EXCEPT EXPECTED"), "{stdout}");
    assert!(
        stdout.contains("`sops-nix*` matched packages: sops-nix"),
        "{stdout}"
    );
    let json = text(
        &fx.closure_diff(&[
            "--store",
            &st,
            "--expect-drift",
            "sops-nix*",
            &a,
            &b,
            "--json",
        ])
        .stdout,
    );
    assert!(
        json.contains("\"result\": \"identical-except-expected\""),
        "{json}"
    );

    // A pattern that does not cover the drift.
    let out = fx.closure_diff(&["--store", &st, "--expect-drift", "hello", &a, &b]);
    assert_exit(&out, 1);
    // Expected sops-nix, but libfoo was bumped too: that is not allowed.
    let c = fx.build("st", &[("extra", "true"), ("v", "1.1")]);
    let out = fx.closure_diff(&["--store", &st, "--expect-drift", "sops-nix*", &a, &c]);
    assert_exit(&out, 1);
    assert!(
        text(&out.stdout).contains("UNEXPECTED package `libfoo`"),
        "{}",
        explain(&out)
    );
    // Both named: allowed.
    let out = fx.closure_diff(&[
        "--store",
        &st,
        "--expect-drift",
        "sops-nix*",
        "--expect-drift",
        "libfoo",
        &a,
        &c,
    ]);
    assert_exit(&out, 0);
}

#[test]
#[cfg_attr(
    any(missing_nix_build, missing_nix),
    ignore = "needs `nix-build` and `nix`; one was not found when the tests were built: `bash tests/run --install-only` installs them; under CI=true the test fails instead"
)]
fn missing_drv_files_are_named_and_the_package_view_remains() {
    let Some(fx) = Fixture::new() else { return };
    let st = fx.store("st").display().to_string();
    let a = fx.build("st", &[]);
    let b = fx.build("st", &[("v", "1.1")]);
    let snap = fx.path().join("b.json");
    assert_exit(
        &fx.closure_diff(&[
            "snapshot",
            "--no-drvs",
            "--store",
            &st,
            &b,
            "-o",
            snap.to_str().unwrap(),
        ]),
        0,
    );
    let out = fx.closure_diff(&["--store", &st, &a, snap.to_str().unwrap()]);
    assert_exit(&out, 1);
    let stdout = text(&out.stdout);
    assert!(stdout.contains("Missing .drv files"), "{stdout}");
    assert!(
        stdout.contains("-nixos-system-machine-24.11.drv"),
        "{stdout}"
    );
    assert!(stdout.contains("[U] libfoo"), "{stdout}");
}

#[test]
#[cfg_attr(
    any(missing_nix_build, missing_nix),
    ignore = "needs `nix-build` and `nix`; one was not found when the tests were built: `bash tests/run --install-only` installs them; under CI=true the test fails instead"
)]
fn bad_inputs_fail_with_exit_2_and_name_the_culprit() {
    let Some(fx) = Fixture::new() else { return };
    let st = fx.store("st").display().to_string();
    let a = fx.build("st", &[]);
    let check = |args: &[&str], needle: &str| {
        let out = fx.closure_diff(args);
        assert_exit(&out, 2);
        assert!(
            out.stdout.is_empty(),
            "no verdict on bad input: {}",
            explain(&out)
        );
        assert!(
            text(&out.stderr).contains(needle),
            "stderr lacks `{needle}`: {}",
            explain(&out)
        );
    };
    // Not in the store.
    let ghost = "/nix/store/00000000000000000000000000000000-ghost-1.0";
    check(&["--store", &st, &a, ghost], ghost);
    // Not a store path nor a file.
    check(
        &["--store", &st, &a, "no-such-file.json"],
        "no-such-file.json",
    );
    // Truncated JSON dump.
    let dump = fx.nix(&["path-info", "--store", &st, "--recursive", "--json", &a]);
    let trunc = fx.path().join("trunc.json");
    fs_err::write(&trunc, &dump[..dump.len() / 2]).unwrap();
    check(&["--store", &st, &a, trunc.to_str().unwrap()], "trunc.json");
    // A dump with an invalid path (`nix path-info` of a path not in the store).
    let invalid = fx.path().join("invalid.json");
    fs_err::write(
        &invalid,
        format!("[{{\"path\":\"{ghost}\",\"valid\":false}}]"),
    )
    .unwrap();
    check(
        &["--store", &st, &a, invalid.to_str().unwrap()],
        "not valid",
    );
    // A snapshot from another store directory.
    let snap = fx.path().join("snap.json");
    assert_exit(
        &fx.closure_diff(&["snapshot", "--store", &st, &a, "-o", snap.to_str().unwrap()]),
        0,
    );
    let other = fs_err::read_to_string(&snap)
        .unwrap()
        .replace("\"storeDir\":\"/nix/store\"", "\"storeDir\":\"/gnu/store\"");
    let other_file = fx.path().join("other-store.json");
    fs_err::write(&other_file, other).unwrap();
    check(
        &["--store", &st, &a, other_file.to_str().unwrap()],
        "/gnu/store",
    );
    // A `.drv` that does not parse.
    let bad_drv = "/nix/store/11111111111111111111111111111111-broken-1.0.drv";
    fs_err::write(fx.real("st", bad_drv), "Derive([(\"out\"").unwrap();
    check(&["--store", &st, bad_drv, &a], "broken-1.0.drv");
    // An unreachable SSH host.
    check(
        &["--store", &st, &a, &format!("ssh://127.0.0.1:1{a}")],
        "ssh://127.0.0.1:1",
    );
    // A bad level.
    check(&["--level", "bogus", &a, &a], "bogus");
}

#[test]
#[cfg_attr(
    any(
        missing_nix_build,
        missing_nix,
        missing_sshd,
        missing_ssh_keygen,
        missing_ssh
    ),
    ignore = "needs `nix-build`, `nix`, `sshd`, `ssh-keygen` and `ssh`; one was not found when the tests were built: `bash tests/run --install-only` installs them; under CI=true the test fails instead"
)]
fn ssh_input_against_a_real_sshd() {
    let Some(fx) = Fixture::new() else { return };
    let ssh_dir = fx.path().join("ssh");
    fs_err::create_dir_all(&ssh_dir).unwrap();
    let Some(sshd) = start_sshd(&ssh_dir) else {
        return;
    };
    let st = fx.store("st").display().to_string();
    let a = fx.build("st", &[]);
    let b = fx.build("st", &[("v", "1.1")]);
    let env = [
        ("NIX_CONFIG", OsStr::new(NIX_CONFIG)),
        ("NIX_SSHOPTS", OsStr::new(sshd.opts.as_str())),
    ];
    let remote = |p: &str| format!("ssh://127.0.0.1:{}{p}?store={st}", sshd.port);
    let cd = fromgit_bin("closure-diff");
    let out = run(&cd, ["--store", &st, &a, &remote(&a)], fx.path(), &env, b"");
    assert_exit(&out, 0);
    assert!(
        text(&out.stdout).contains("(ssh, 7 paths)"),
        "{}",
        explain(&out)
    );
    // Root cause through the remote `.drv` graph.
    let out = run(&cd, ["--store", &st, &a, &remote(&b)], fx.path(), &env, b"");
    assert_exit(&out, 1);
    let stdout = text(&out.stdout);
    assert!(
        stdout
            .lines()
            .any(|l| l.contains("[frontier]") && l.contains("-libfoo-1.1.drv")),
        "{stdout}"
    );
    // One SSH session for the whole closure, not one per path.
    let log = fs_err::read_to_string(ssh_dir.join("sshd.log")).unwrap_or_default();
    let sessions = log.matches("Accepted publickey").count();
    assert!(
        sessions <= 2,
        "expected one session per query, sshd log:\n{log}"
    );
    // A path that is not in the remote store.
    let ghost = "/nix/store/00000000000000000000000000000000-ghost-1.0";
    let out = run(
        &cd,
        ["--store", &st, &a, &remote(ghost)],
        fx.path(),
        &env,
        b"",
    );
    assert_exit(&out, 2);
}
