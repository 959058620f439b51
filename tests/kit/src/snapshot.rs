//! Snapshots of a tool's run (exit code, stdout, stderr) on `insta`, with
//! filters for what varies from one run or machine to the next.

use std::path::{Path, PathBuf};
use std::process::Output;

use crate::{bin_dir, repo_root, text};

/// What varies per run, whatever the test, and its stable stand-in. Paths
/// given with [`Filters::path`] come first, then these, in this order.
const GENERIC: &[(&str, &str)] = &[
    (r"/tmp/\.tmp[A-Za-z0-9]+", "[TEMP]"),
    (
        r"\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:?\d{2}| UTC)?",
        "[TIME]",
    ),
    (r"\b\d+(\.\d+)? ?(ns|µs|us|ms)\b", "[DURATION]"),
    (r"\b\d+\.\d+ ?s\b", "[DURATION]"),
    (
        r#""(\w*(?:duration|elapsed|_ms|_secs|_seconds)\w*)": ?\d+(\.\d+)?"#,
        r#""$1": "[DURATION]""#,
    ),
    (r"AGE-SECRET-KEY-1[02-9AC-HJ-NP-Z]{58}", "[AGE_SECRET_KEY]"),
    (r"\bage1[02-9ac-hj-np-z]{58}\b", "[AGE_RECIPIENT]"),
    (r"ssh-ed25519 AAAA[A-Za-z0-9+/]+=*", "ssh-ed25519 [SSH_KEY]"),
    (r"ENC\[AES256_GCM,[^\]]*\]", "ENC[…]"),
    (r"/nix/store/[0-9a-df-np-sv-z]{32}-", "/nix/store/[HASH]-"),
    (r"sha256[-:][A-Za-z0-9+/]{43}=", "sha256-[HASH]"),
    (r"\b([0-9A-Fa-f]{2}:){31}[0-9A-Fa-f]{2}\b", "[FINGERPRINT]"),
    (r"\b[0-9a-f]{64}\b", "[SHA256]"),
    (r"\b[0-9a-f]{40}\b", "[GIT_OID]"),
];

/// The filters of one snapshot: the generic ones, and the paths of this run.
#[derive(Clone, Debug)]
pub struct Filters {
    paths: Vec<(PathBuf, String)>,
    extra: Vec<(String, String)>,
}

impl Default for Filters {
    fn default() -> Self {
        Self::new()
    }
}

impl Filters {
    /// The generic filters, and the repository and binaries' directories as
    /// `[REPO]` and `[BIN]`.
    pub fn new() -> Self {
        let filters = Self {
            paths: Vec::new(),
            extra: Vec::new(),
        };
        filters.path(&bin_dir(), "BIN").path(&repo_root(), "REPO")
    }

    /// Writes `path` (as given and canonical) as `[NAME]`. Paths are
    /// replaced before anything else, the first given first.
    #[must_use]
    pub fn path(mut self, path: &Path, name: &str) -> Self {
        let stand_in = format!("[{name}]");
        if let Ok(canonical) = path.canonicalize() {
            if canonical != path {
                self.paths.push((canonical, stand_in.clone()));
            }
        }
        self.paths.push((path.to_owned(), stand_in));
        self
    }

    /// One more filter: `regex` replaced by `replacement`, after the others.
    #[must_use]
    pub fn add(mut self, regex: &str, replacement: &str) -> Self {
        self.extra.push((regex.to_owned(), replacement.to_owned()));
        self
    }

    /// The `insta` settings that apply these filters.
    pub fn settings(&self) -> insta::Settings {
        let mut settings = insta::Settings::clone_current();
        settings.set_omit_expression(true);
        settings.set_prepend_module_to_snapshot(false);
        // Longest first: a path inside another (a temp dir under the repo)
        // must not lose its own name to the outer one.
        let mut paths = self.paths.clone();
        paths.sort_by_key(|(path, _)| std::cmp::Reverse(path.as_os_str().len()));
        for (path, stand_in) in paths {
            let literal = regex::escape(&path.to_string_lossy());
            settings.add_filter(&literal, stand_in);
        }
        for (regex, replacement) in GENERIC {
            settings.add_filter(regex, *replacement);
        }
        for (regex, replacement) in &self.extra {
            settings.add_filter(regex, replacement.as_str());
        }
        settings
    }
}

/// A run as a snapshot records it: the exit code, then stdout and stderr.
pub fn render(output: &Output) -> String {
    let code = output.status.code().map_or_else(
        || format!("none ({})", output.status),
        |code| code.to_string(),
    );
    format!(
        "exit_code: {code}\n----- stdout -----\n{}\n----- stderr -----\n{}",
        text(&output.stdout),
        text(&output.stderr)
    )
}

/// Asserts that a run (a [`std::process::Output`]) matches its snapshot,
/// after [`Filters`]: `tool_snapshot!(name, output)` with the default
/// filters, or `tool_snapshot!(name, output, filters)`. The snapshot file is
/// `snapshots/<name>.snap` next to the test file. Under `CI=true` a missing
/// or different snapshot fails and no `.snap.new` is written.
#[macro_export]
macro_rules! tool_snapshot {
    ($name:expr, $output:expr) => {
        $crate::tool_snapshot!($name, $output, $crate::snapshot::Filters::new())
    };
    ($name:expr, $output:expr, $filters:expr) => {{
        let settings = $crate::snapshot::Filters::settings(&$filters);
        let rendered = $crate::snapshot::render(&$output);
        settings.bind(|| $crate::insta::assert_snapshot!($name, rendered));
    }};
}

#[cfg(test)]
mod tests {
    use super::Filters;

    #[test]
    fn what_varies_per_run_is_replaced() {
        let bech32 = "qpzry9x8gf2tvdw0s3jn54khce6mua7l";
        let recipient = format!("age1{bech32}{}", &bech32[..26]);
        let identity = format!("AGE-SECRET-{}-1{}", "KEY", recipient[4..].to_uppercase());
        let text = format!(
            "/tmp/.tmpAbC123/x.yaml sealed at 2026-12-03T07:27:23Z in 1.25s (40 ms) for {recipient}\n\
             {identity}\n\
             /nix/store/b88n4acqmh2knzsxgwfq4a5r3wdwnpwr-app-2.0 {}\n\
             {{\"elapsed_ms\": 1234}} {}\n\
             kept: 2 secrets, 30 days",
            "ab".repeat(32),
            ["7F"; 32].join(":")
        );
        Filters::new().settings().bind(|| {
            insta::assert_snapshot!(text, @r#"
            [TEMP]/x.yaml sealed at [TIME] in [DURATION] ([DURATION]) for [AGE_RECIPIENT]
            [AGE_SECRET_KEY]
            /nix/store/[HASH]-app-2.0 [SHA256]
            {"elapsed_ms": "[DURATION]"} [FINGERPRINT]
            kept: 2 secrets, 30 days
            "#);
        });
    }

    #[test]
    fn a_path_inside_another_keeps_its_own_name() {
        let outer = std::path::Path::new("/work/repo");
        let inner = outer.join("target/debug");
        let filters = Filters::new().path(outer, "OUTER").path(&inner, "INNER");
        let text = "/work/repo/target/debug/leak-scan in /work/repo";
        filters.settings().bind(|| {
            insta::assert_snapshot!(text, @"[INNER]/leak-scan in [OUTER]");
        });
    }
}
