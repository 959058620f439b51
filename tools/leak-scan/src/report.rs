//! The report model and its three renderers (human text, JSON, SARIF
//! 2.1.0). Renderers hold no logic, and nothing in the model holds secret
//! bytes: a finding is a rule, a place and a keyed fingerprint, so no
//! format can leak what was found, by construction rather than by a flag.

use std::fmt::Write as _;

use serde::Serialize;
use serde_json::{json, Value};

use crate::engine::{KnownHit, Level, RuleInfo};

/// Where the scanned bytes came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Source {
    /// A file's content (tree mode, or a blob in the index or history).
    File,
    /// A file or directory name.
    FileName,
    /// A commit object: message, author and committer.
    Commit,
    /// An annotated tag object.
    Tag,
    /// A ref name.
    Ref,
    /// A blob no commit reaches (dangling or only in the reflog).
    UnreachableBlob,
}

/// One finding. Only the rule, where, and a fingerprint: never the secret.
#[derive(Debug, Clone, Serialize)]
pub struct Finding {
    pub rule: String,
    pub level: Level,
    pub message: String,
    pub source: Source,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    pub line: usize,
    pub column: usize,
    pub end_line: usize,
    pub end_column: usize,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub commit: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub blob: Option<String>,
    /// The blob is not in the tree of `HEAD`: only history holds it.
    pub history_only: bool,
    /// Keyed fingerprint of the rule, the location (path, or commit, tag or
    /// blob id) and the content (hex, 128 bits): what suppressions name.
    pub fingerprint: String,
    /// Keyed fingerprint of the rule and the content only (hex, 128 bits):
    /// stable across moves, for SARIF's `partialFingerprints`.
    pub content_fingerprint: String,
    /// The short id shown to people (the fingerprint's first 12 hex digits).
    pub id: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub known: Option<KnownHit>,
}

/// Something that was not scanned, and why.
#[derive(Debug, Clone, Serialize)]
pub struct Skipped {
    pub what: String,
    pub size: u64,
    pub reason: String,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct Coverage {
    /// Files (tree, staged) or objects (history) scanned in this run.
    pub scanned: u64,
    pub bytes: u64,
    /// Objects known clean from an earlier run and not read again.
    pub cache_hits: u64,
    pub skipped: Vec<Skipped>,
    /// Tree mode in a git work tree: untracked entries an ignore file kept
    /// out of the scan (a directory once, with a trailing `/`). Tracked
    /// files are always scanned, so these do not make the run unproven.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub ignored: Vec<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct UnusedSuppression {
    pub fingerprint: String,
    pub reason: String,
}

/// A whole run.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub schema_version: u32,
    pub tool: &'static str,
    pub version: &'static str,
    pub mode: &'static str,
    /// True when every object in scope was scanned and every check ran.
    pub complete: bool,
    pub unproven_reasons: Vec<String>,
    pub findings: Vec<Finding>,
    pub suppressed: usize,
    pub unused_suppressions: Vec<UnusedSuppression>,
    pub coverage: Coverage,
    #[serde(skip)]
    pub rules: Vec<RuleInfo>,
}

/// Human text: one block per finding, then the coverage summary.
pub fn human(report: &Report) -> String {
    let mut out = String::new();
    for f in &report.findings {
        let place = match (&f.path, f.source) {
            (Some(path), _) => format!("{path}:{}:{}", f.line, f.column),
            (None, Source::Commit | Source::Tag) => format!(
                "{} {} line {}",
                source_name(f.source),
                f.commit
                    .as_deref()
                    .or(f.blob.as_deref())
                    .map_or("", |id| &id[..id.len().min(12)]),
                f.line
            ),
            (None, _) => source_name(f.source).to_owned(),
        };
        let _ = writeln!(out, "{}  {place}  id {}", f.rule, f.id);
        let mut detail = vec![f.message.clone()];
        if f.history_only {
            detail.push("in history only".to_owned());
        }
        if let Some(commit) = &f.commit {
            detail.push(format!("commit {}", &commit[..commit.len().min(12)]));
        }
        if let Some(blob) = &f.blob {
            detail.push(format!("blob {}", &blob[..blob.len().min(12)]));
        }
        let _ = writeln!(out, "  {}", detail.join("; "));
    }
    for unused in &report.unused_suppressions {
        let _ = writeln!(
            out,
            "unused suppression {} ({}): it matches nothing any more; remove it",
            unused.fingerprint, unused.reason
        );
    }
    let c = &report.coverage;
    let _ =
        write!(
        out,
        "leak-scan {}: {} finding(s), {} suppressed; scanned {} {} ({}), {} from cache, {} skipped",
        report.mode,
        report.findings.len(),
        report.suppressed,
        c.scanned,
        if report.mode == "history" { "objects" } else { "files" },
        human_bytes(c.bytes),
        c.cache_hits,
        c.skipped.len()
    );
    out.push('\n');
    for s in &c.skipped {
        let _ = writeln!(
            out,
            "  skipped {} ({}): {}",
            s.what,
            human_bytes(s.size),
            s.reason
        );
    }
    if !c.ignored.is_empty() {
        let shown: Vec<&str> = c.ignored.iter().take(10).map(String::as_str).collect();
        let _ = writeln!(
            out,
            "  not scanned: {} untracked entr{} kept out by ignore files: {}{}",
            c.ignored.len(),
            if c.ignored.len() == 1 { "y" } else { "ies" },
            shown.join(", "),
            if c.ignored.len() > shown.len() {
                ", …"
            } else {
                ""
            }
        );
    }
    if report.complete {
        if report.findings.is_empty() {
            out.push_str("proven clean\n");
        }
    } else {
        for reason in &report.unproven_reasons {
            let _ = writeln!(out, "unproven: {reason}");
        }
    }
    out
}

fn source_name(source: Source) -> &'static str {
    match source {
        Source::File => "file",
        Source::FileName => "file name",
        Source::Commit => "commit",
        Source::Tag => "tag",
        Source::Ref => "ref name",
        Source::UnreachableBlob => "unreachable blob",
    }
}

#[allow(clippy::cast_precision_loss)]
fn human_bytes(bytes: u64) -> String {
    const UNITS: [&str; 4] = ["B", "KiB", "MiB", "GiB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{bytes} B")
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}

pub fn json(report: &Report) -> Result<String, serde_json::Error> {
    let mut text = serde_json::to_string_pretty(report)?;
    text.push('\n');
    Ok(text)
}

/// SARIF 2.1.0 as GitHub code scanning accepts it: unique rule ids, every
/// result with `ruleIndex`, repo-relative URIs under `%SRCROOT%`, 1-based
/// regions, a content `partialFingerprints`, no snippets.
pub fn sarif(report: &Report) -> Result<String, serde_json::Error> {
    let rules: Vec<Value> = report
        .rules
        .iter()
        .map(|rule| {
            json!({
                "id": rule.id,
                "name": camel(&rule.id),
                "shortDescription": { "text": rule.name },
                "fullDescription": { "text": rule.description },
                "help": { "text": format!("{}. Remove the value from the file and from history (rewrite it), rotate it, and never suppress a real secret.", rule.description.trim_end_matches('.')) },
                "defaultConfiguration": { "level": level_name(rule.level) },
                "properties": { "tags": rule.tags },
            })
        })
        .collect();
    let results: Vec<Value> = report
        .findings
        .iter()
        .map(|f| {
            let rule_index = report.rules.iter().position(|r| r.id == f.rule).unwrap_or(0);
            let mut result = json!({
                "ruleId": f.rule,
                "ruleIndex": rule_index,
                "level": level_name(f.level),
                "message": { "text": sarif_message(f) },
                "partialFingerprints": { "leakScanContent/v1": f.content_fingerprint },
                "properties": {
                    "source": f.source,
                    "historyOnly": f.history_only,
                },
            });
            if let (Some(path), Source::File | Source::FileName) = (&f.path, f.source) {
                result["locations"] = json!([{
                    "physicalLocation": {
                        "artifactLocation": { "uri": uri_encode(path), "uriBaseId": "%SRCROOT%" },
                        "region": {
                            "startLine": f.line,
                            "startColumn": f.column,
                            "endLine": f.end_line,
                            "endColumn": f.end_column.max(if f.end_line == f.line { f.column + 1 } else { 1 }),
                        }
                    }
                }]);
            }
            if let Some(commit) = &f.commit {
                result["properties"]["commit"] = json!(commit);
            }
            if let Some(blob) = &f.blob {
                result["properties"]["blob"] = json!(blob);
            }
            result
        })
        .collect();
    let notifications: Vec<Value> = report
        .unproven_reasons
        .iter()
        .map(|reason| json!({ "level": "error", "message": { "text": format!("unproven: {reason}") } }))
        .collect();
    let doc = json!({
        "$schema": "https://json.schemastore.org/sarif-2.1.0.json",
        "version": "2.1.0",
        "runs": [{
            "tool": { "driver": {
                "name": "leak-scan",
                "version": report.version,
                "semanticVersion": report.version,
                "rules": rules,
            }},
            "automationDetails": { "id": format!("leak-scan/{}/", report.mode) },
            "originalUriBaseIds": { "%SRCROOT%": { "description": { "text": "The root of the scanned repository" } } },
            "invocations": [{
                "executionSuccessful": report.complete,
                "toolExecutionNotifications": notifications,
            }],
            "results": results,
        }],
    });
    let mut text = serde_json::to_string_pretty(&doc)?;
    text.push('\n');
    Ok(text)
}

fn sarif_message(f: &Finding) -> String {
    let mut text = f.message.clone();
    if f.history_only {
        text.push_str(" (in history only");
        if let Some(commit) = &f.commit {
            let _ = write!(text, ", introduced in commit {commit}");
        }
        text.push(')');
    }
    let _ = write!(text, " [id {}]", f.id);
    text
}

fn level_name(level: Level) -> &'static str {
    match level {
        Level::Error => "error",
        Level::Warning => "warning",
    }
}

fn camel(id: &str) -> String {
    id.split('-')
        .map(|part| {
            let mut chars = part.chars();
            chars.next().map_or_else(String::new, |first| {
                first.to_ascii_uppercase().to_string() + chars.as_str()
            })
        })
        .collect()
}

/// Percent-encodes what a relative URI reference may not hold as is.
fn uri_encode(path: &str) -> String {
    let mut out = String::with_capacity(path.len());
    for b in path.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~/!$&'()*+,;=:@".contains(&b) {
            out.push(char::from(b));
        } else {
            let _ = write!(out, "%{b:02X}");
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uris_are_relative_and_encoded() {
        assert_eq!(uri_encode("a b/ç.txt"), "a%20b/%C3%A7.txt");
        assert_eq!(camel("age-secret-key"), "AgeSecretKey");
    }
}
