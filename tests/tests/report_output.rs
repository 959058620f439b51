//! The printer's flags on every command: each command that prints a report
//! takes `--format` and, unless its `-o` already names the file it
//! produces, `-o FILE`; a command without them is listed here with the
//! reason. The list of commands is read from each binary's `--help`, so a
//! new command that prints a report without the flags fails here.

#![allow(clippy::unwrap_used, clippy::panic, clippy::missing_panics_doc)]

use std::path::Path;

use fromgit_e2e::cli::{help, leaf_commands};
use fromgit_e2e::{fromgit_bin, run, stderr, stdout};

/// Commands with no report to shape, and why.
const NO_FORMAT: [(&str, &str, &str); 4] = [
    ("cert-seal", "nix", "prints Nix source"),
    ("closure-diff", "snapshot", "the snapshot is JSON already"),
    (
        "instance-extract",
        "secrets encrypt",
        "prints the sops file",
    ),
    (
        "instance-extract",
        "secrets decrypt",
        "prints the plaintext",
    ),
];

/// Commands with `--format` whose `-o` is not the report's, and why.
const FORMAT_WITHOUT_OUTPUT: [(&str, &str, &str); 5] = [
    ("cert-seal", "seal", "`--out` names the sealed file"),
    ("leak-scan", "enroll", "`-o` names the fingerprint file"),
    (
        "instance-extract",
        "secrets keygen",
        "`-o` names the key file",
    ),
    (
        "instance-extract",
        "secrets updatekeys",
        "rewrites its file in place, as sops does; sops' `--output` would be that file",
    ),
    (
        "instance-extract",
        "secrets rotate",
        "rewrites its file in place, as sops does; sops' `--output` would be that file",
    ),
];

/// `secrets set` prints nothing at all.
const SILENT: [(&str, &str); 1] = [("instance-extract", "secrets set")];

#[test]
fn every_command_that_prints_a_report_takes_format_and_output() {
    for binary in [
        "instance-extract",
        "cert-seal",
        "leak-scan",
        "closure-diff",
        "vm-prove",
    ] {
        let mut paths = leaf_commands(binary);
        // leak-scan's scan and closure-diff's compare also run without a subcommand.
        paths.push(Vec::new());
        for path in paths {
            let name = path.join(" ");
            let text = help(binary, &path);
            let listed = |list: &[(&str, &str, &str)]| {
                list.iter().any(|(b, c, _)| *b == binary && *c == name)
            };
            if listed(&NO_FORMAT) || SILENT.iter().any(|(b, c)| *b == binary && *c == name) {
                assert!(
                    !text.contains("--format <FORMAT>"),
                    "`{binary} {name}` is listed as having no report but takes `--format`"
                );
                continue;
            }
            if path.is_empty() && text.contains("Commands:") && !text.contains("--format") {
                continue; // a binary whose every action is a subcommand
            }
            assert!(
                text.contains("--format <FORMAT>"),
                "`{binary} {name}` prints a report but has no `--format`:\n{text}"
            );
            let has_output = text.contains("-o, --output <FILE>")
                && text.contains("Write the report to FILE instead of stdout");
            assert_eq!(
                has_output,
                !listed(&FORMAT_WITHOUT_OUTPUT),
                "`{binary} {name}`: `-o` for the report is {}expected:\n{text}",
                if has_output { "not " } else { "" }
            );
        }
    }
}

fn dump(dir: &Path) {
    // A `nix path-info --json` dump (the array shape): one path, no references.
    fromgit_e2e::write_file(
        dir,
        "closure.json",
        r#"[{"path":"/nix/store/0f4ch7y9qsa1hxq0pb1c8dxzk4dpmv4q-hello-2.10",
             "narHash":"sha256-47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=",
             "narSize":120,"references":[]}]"#,
    );
}

#[test]
fn a_report_goes_whole_to_the_file_o_names_in_the_format_asked() {
    let dir = tempfile::tempdir().unwrap();
    let dir = dir.path();
    dump(dir);
    let bin = fromgit_bin("closure-diff");
    let compare = ["closure.json", "closure.json"];

    let out = run(
        &bin,
        ["--format", "json", "-o", "report.json"]
            .iter()
            .chain(&compare),
        dir,
        &[],
        b"",
    );
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(out.stdout.is_empty(), "stdout: {}", stdout(&out));
    let doc: serde_json::Value =
        serde_json::from_slice(&fs_err::read(dir.join("report.json")).unwrap()).unwrap();
    assert_eq!(doc["verdict"]["result"], "identical", "{doc}");

    // `--json` is short for `--format json`: the same document's shape.
    let out = run(&bin, ["--json"].iter().chain(&compare), dir, &[], b"");
    let short: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(short["verdict"], doc["verdict"]);

    // A human report in a file is never coloured, whatever `--color` says.
    let out = run(
        &bin,
        ["--color", "always", "-o", "report.txt"]
            .iter()
            .chain(&compare),
        dir,
        &[],
        b"",
    );
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let human = fs_err::read_to_string(dir.join("report.txt")).unwrap();
    assert!(!human.is_empty() && !human.contains('\u{1b}'), "{human:?}");
    // ... and on stdout it is, when asked for.
    let out = run(
        &bin,
        ["--color", "always"].iter().chain(&compare),
        dir,
        &[],
        b"",
    );
    assert!(stdout(&out).contains('\u{1b}'), "{}", stdout(&out));

    // `-o -` is stdout.
    let out = run(
        &bin,
        ["-o", "-", "--json"].iter().chain(&compare),
        dir,
        &[],
        b"",
    );
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    serde_json::from_slice::<serde_json::Value>(&out.stdout).unwrap();
    assert!(!dir.join("-").exists());
}

#[test]
fn contradictory_or_unwritable_output_is_refused_and_leaves_the_file_alone() {
    let dir = tempfile::tempdir().unwrap();
    let dir = dir.path();
    dump(dir);
    let bin = fromgit_bin("closure-diff");

    let out = run(
        &bin,
        [
            "--json",
            "--format",
            "human",
            "closure.json",
            "closure.json",
        ],
        dir,
        &[],
        b"",
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(out.stdout.is_empty());
    assert!(
        stderr(&out).contains("`--json` and `--format human` contradict each other"),
        "{}",
        stderr(&out)
    );

    // A report that cannot be written: exit 2 naming the file, the old file kept.
    fromgit_e2e::write_file(dir, "kept/report.txt", "old report\n");
    let target = dir.join("kept/report.txt");
    let blocked = dir.join("kept/report.txt/inside");
    let out = run(
        &bin,
        [
            "-o".as_ref(),
            blocked.as_os_str(),
            "closure.json".as_ref(),
            "closure.json".as_ref(),
        ],
        dir,
        &[],
        b"",
    );
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("report.txt/inside"),
        "{}",
        stderr(&out)
    );
    assert_eq!(fs_err::read_to_string(target).unwrap(), "old report\n");
}
