//! The base-side checks of `verify` beyond the domain: every instance fact
//! of `instance.nix` is gone from the base, every relative path the base's
//! Nix files name exists, and no secret is read at evaluation time.
//!
//! A rewrite that imports a file written elsewhere, or leaves an address
//! behind, must not be called verified.

use std::path::{Path, PathBuf};

use rnix::SyntaxKind;

use crate::nixsrc::{self, NixFile};

/// One check's outcome, as `verify` reports it.
pub struct Outcome {
    pub name: &'static str,
    pub ok: bool,
    pub detail: String,
}

/// The string values of `instance.nix` that identify the instance: the
/// domain, addresses and e-mail addresses (what `leak-scan enroll`
/// fingerprints too). Attribute names are code, not facts, and a setting
/// such as `platform = "incus-vm"` names a kind of host, not this one: a
/// value without a dot, a colon or an `@` is no host name, address or
/// e-mail address.
pub fn facts(instance_nix: &str) -> Vec<String> {
    let Ok(file) = NixFile::parse(
        Path::new("."),
        "instance.nix".into(),
        instance_nix.to_owned(),
    ) else {
        return Vec::new();
    };
    let mut out: Vec<String> = file
        .root
        .descendants_with_tokens()
        .filter_map(rnix::NodeOrToken::into_token)
        .filter(|t| t.kind() == SyntaxKind::TOKEN_STRING_CONTENT)
        .map(|t| t.text().to_ascii_lowercase())
        .filter(|t| t.contains(['.', ':', '@']))
        .collect();
    out.sort();
    out.dedup();
    out
}

/// Runs the checks over the base's text files and parsed Nix files.
pub fn run(base: &Path, instance_nix: &str, text_files: &[(PathBuf, String)]) -> Vec<Outcome> {
    let facts = facts(instance_nix);
    let mut fact_hits = Vec::new();
    for (relative, text) in text_files {
        let lower = text.to_ascii_lowercase();
        for (index, fact) in facts.iter().enumerate() {
            if lower.contains(fact.as_str()) {
                // Name the fact by its place in instance.nix, never by value.
                fact_hits.push(format!(
                    "{} (fact {} of instance.nix)",
                    relative.display(),
                    index + 1
                ));
            }
        }
    }
    let built = built_secret_paths(text_files);
    let mut missing = Vec::new();
    let mut reads = Vec::new();
    let files = nixsrc::read_tree(base).unwrap_or_default();
    for file in &files {
        let dir = file.relative.parent().unwrap_or(Path::new(""));
        for node in file
            .root
            .descendants()
            .filter(|n| n.kind() == SyntaxKind::NODE_PATH_REL)
        {
            // Interpolated paths (`./${x}.nix`) are not literal.
            if node.children().next().is_some() {
                continue;
            }
            let target = base.join(dir).join(node.text().to_string());
            if !target.exists() {
                let (line, _) = file.line_column(usize::from(node.text_range().start()));
                missing.push(format!(
                    "{}:{line}: `{}`",
                    file.relative.display(),
                    node.text()
                ));
            }
        }
        for read in crate::evalread::find(file, &[]) {
            let (line, _) = file.line_column(usize::from(read.range.start()));
            reads.push(format!(
                "{}:{line}: `{}` of `{}`",
                file.relative.display(),
                read.reader,
                read.target
            ));
        }
    }
    vec![
        Outcome {
            name: "base: no path built from a secret directory",
            ok: built.is_empty(),
            detail: if built.is_empty() {
                "no reference to the directories of the sops-nix secrets other than their declared paths".to_owned()
            } else {
                format!(
                    "out-of-band paths in a secret directory: {}",
                    built.join("; ")
                )
            },
        },
        Outcome {
            name: "base: no instance fact",
            ok: fact_hits.is_empty(),
            detail: if fact_hits.is_empty() {
                format!(
                    "none of the {} facts of `instance.nix` occurs in the base, in any case",
                    facts.len()
                )
            } else {
                format!("still in {}", fact_hits.join(", "))
            },
        },
        Outcome {
            name: "base: every relative path resolves",
            ok: missing.is_empty(),
            detail: if missing.is_empty() {
                "every relative path literal names an existing file".to_owned()
            } else {
                format!("missing: {}", missing.join("; "))
            },
        },
        Outcome {
            name: "base: no secret read at evaluation time",
            ok: reads.is_empty(),
            detail: if reads.is_empty() {
                "no `readFile`, `fileContents` or `import` of a secret".to_owned()
            } else {
                format!("read at evaluation time: {}", reads.join("; "))
            },
        },
    ]
}

/// References to the directory of a secret that the generated module
/// declares (`secretDir = "/var/lib/secrets";`, `"/var/lib/secrets/other"`),
/// other than the declared paths themselves: files there are placed by hand.
fn built_secret_paths(text_files: &[(PathBuf, String)]) -> Vec<String> {
    let Some((_, options)) = text_files
        .iter()
        .find(|(p, _)| p == Path::new(crate::extract::OPTIONS_MODULE))
    else {
        return Vec::new();
    };
    let declared: Vec<&str> = options
        .split("path = \"")
        .skip(1)
        .filter_map(|rest| rest.split('"').next())
        .collect();
    let mut dirs: Vec<&str> = declared
        .iter()
        .filter_map(|p| Path::new(p).parent()?.to_str())
        .filter(|d| d.len() > 1)
        .collect();
    dirs.sort_unstable();
    dirs.dedup();
    let mut out = Vec::new();
    for (relative, text) in text_files {
        if relative.extension().is_none_or(|e| e != "nix")
            || relative == Path::new(crate::extract::OPTIONS_MODULE)
        {
            continue;
        }
        for dir in &dirs {
            for (start, _) in text.match_indices(dir) {
                let path: String = text[start..]
                    .chars()
                    .take_while(|c| !c.is_whitespace() && !"\"';$".contains(*c))
                    .collect();
                let bounded = path.len() == dir.len() || path[dir.len()..].starts_with('/');
                if bounded && !declared.contains(&path.as_str()) {
                    let (line, _) = nixsrc::line_column(text, start);
                    out.push(format!("{}:{line}: `{path}`", relative.display()));
                }
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn facts_are_the_string_values() {
        let found =
            facts("{\n  domain = \"Example.org\";\n  addresses = { a1 = \"203.0.113.7\"; };\n}\n");
        assert_eq!(found, ["203.0.113.7", "example.org"]);
    }

    #[test]
    fn a_setting_that_names_a_kind_of_host_is_no_fact() {
        let found = facts(
            "{\n  domain = \"example.org\";\n  platform = \"incus-vm\";\n  emails = { e1 = \"ops@example.com\"; };\n  addresses = { a1 = \"2001:db8::7\"; };\n}\n",
        );
        assert_eq!(found, ["2001:db8::7", "example.org", "ops@example.com"]);
    }
}
