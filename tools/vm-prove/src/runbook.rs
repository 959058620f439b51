//! The install runbook is Markdown meant for people; vm-prove executes only
//! the fenced blocks explicitly marked `{name=… vm-prove=run timeout=…}`, in
//! order, so the proof shows that the documented steps, and nothing else,
//! make the system. Everything else in the file is documentation.

use std::collections::BTreeMap;

use sha2::{Digest as _, Sha256};

/// Why a runbook cannot be used.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum RunbookError {
    /// A marked block has no `name=`.
    #[error("line {line}: a `vm-prove=run` block needs `name=…`")]
    MissingName { line: usize },
    /// Two marked blocks share a name.
    #[error("line {line}: block name `{name}` is used twice")]
    DuplicateName { line: usize, name: String },
    /// `timeout=` is not a positive duration.
    #[error("line {line}: `timeout={value}` is not a duration (seconds, or `90s`, `15m`, `2h`)")]
    BadTimeout { line: usize, value: String },
    /// `needs=` names something other than `nixos`.
    #[error("line {line}: `needs={value}` is not known (only `needs=nixos`)")]
    BadNeeds { line: usize, value: String },
    /// A fence was opened and never closed.
    #[error("line {line}: the code block is never closed")]
    Unclosed { line: usize },
    /// No block is marked to run.
    #[error("no code block is marked `vm-prove=run`")]
    NoBlocks,
    /// A `{{ placeholder }}` has no value in `runbook.vars`.
    #[error("block `{block}`: no value for `{{{{ {name} }}}}` (set it in `runbook.vars`)")]
    UnknownVar { block: String, name: String },
}

/// One marked block.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Block {
    pub name: String,
    /// 1-based line of the opening fence.
    pub line: usize,
    /// Seconds, from `timeout=` or the configured default.
    pub timeout: u64,
    /// The block as written.
    pub source: String,
    /// Marked `needs=nixos`: it only makes sense on NixOS (e.g.
    /// `nixos-rebuild switch`), so it is not run elsewhere, and a run that
    /// skips it proves less than the runbook.
    pub needs_nixos: bool,
}

impl Block {
    /// SHA-256 of the source as written, hex.
    pub fn source_sha256(&self) -> String {
        hex::encode(Sha256::digest(self.source.as_bytes()))
    }

    /// The source with `{{ name }}` placeholders filled in.
    pub fn render(&self, vars: &BTreeMap<String, String>) -> Result<String, RunbookError> {
        fill(&self.source, vars).map_err(|name| RunbookError::UnknownVar {
            block: self.name.clone(),
            name,
        })
    }
}

/// `text` with every `{{ name }}` replaced by its value; `Err(name)` for
/// the first placeholder without one.
pub fn fill(text: &str, vars: &BTreeMap<String, String>) -> Result<String, String> {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(start) = rest.find("{{") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let Some(end) = after.find("}}") else {
            out.push_str(&rest[start..]);
            rest = "";
            break;
        };
        let name = after[..end].trim();
        out.push_str(vars.get(name).ok_or_else(|| name.to_owned())?);
        rest = &after[end + 2..];
    }
    out.push_str(rest);
    Ok(out)
}

/// The `key=value` attributes between braces in an info string.
fn attributes(info: &str) -> Option<BTreeMap<String, String>> {
    let open = info.find('{')?;
    let close = info.rfind('}')?;
    if close <= open {
        return None;
    }
    Some(
        info[open + 1..close]
            .split_whitespace()
            .filter_map(|pair| {
                pair.split_once('=')
                    .map(|(k, v)| (k.to_owned(), v.trim_matches('"').to_owned()))
            })
            .collect(),
    )
}

/// Parses the marked blocks of a runbook, in order.
pub fn parse(text: &str, default_timeout: u64) -> Result<Vec<Block>, RunbookError> {
    let mut blocks: Vec<Block> = Vec::new();
    let mut lines = text.lines().enumerate();
    while let Some((index, line)) = lines.next() {
        let trimmed = line.trim_start();
        let Some(fence_char @ ('`' | '~')) = trimmed.chars().next() else {
            continue;
        };
        let fence_len = trimmed.chars().take_while(|&c| c == fence_char).count();
        if fence_len < 3 {
            continue;
        }
        let info = &trimmed[fence_len..];
        let mut body = Vec::new();
        let mut closed = false;
        for (_, inner) in lines.by_ref() {
            let t = inner.trim();
            if t.len() >= fence_len && t.chars().all(|c| c == fence_char) {
                closed = true;
                break;
            }
            body.push(inner);
        }
        if !closed {
            return Err(RunbookError::Unclosed { line: index + 1 });
        }
        let Some(attrs) = attributes(info) else {
            continue;
        };
        if attrs.get("vm-prove").map(String::as_str) != Some("run") {
            continue;
        }
        let line_no = index + 1;
        let name = attrs
            .get("name")
            .filter(|n| !n.is_empty())
            .ok_or(RunbookError::MissingName { line: line_no })?
            .clone();
        if blocks.iter().any(|b| b.name == name) {
            return Err(RunbookError::DuplicateName {
                line: line_no,
                name,
            });
        }
        let timeout = match attrs.get("timeout") {
            None => default_timeout,
            Some(v) => match v
                .parse::<u64>()
                .or_else(|_| v.parse::<crate::config::Seconds>().map(|s| s.0))
            {
                Ok(t) if t > 0 => t,
                _ => {
                    return Err(RunbookError::BadTimeout {
                        line: line_no,
                        value: v.clone(),
                    })
                }
            },
        };
        let needs_nixos = match attrs.get("needs").map(String::as_str) {
            None => false,
            Some("nixos") => true,
            Some(other) => {
                return Err(RunbookError::BadNeeds {
                    line: line_no,
                    value: other.to_owned(),
                })
            }
        };
        let mut source = body.join("\n");
        source.push('\n');
        blocks.push(Block {
            name,
            line: line_no,
            timeout,
            source,
            needs_nixos,
        });
    }
    if blocks.is_empty() {
        return Err(RunbookError::NoBlocks);
    }
    Ok(blocks)
}

#[cfg(test)]
mod tests {
    use super::*;

    const DOC: &str = "# T\n\n```sh {name=one vm-prove=run timeout=30}\necho {{ who }}\n```\n\n```sh\nnot run\n```\n\n````sh {name=two vm-prove=run}\n```\nnested\n```\n````\n\n```nix\n{ a = 1; }\n```\n";

    #[test]
    fn marked_blocks_in_order() {
        let blocks = parse(DOC, 600).unwrap();
        assert_eq!(blocks.len(), 2);
        assert_eq!(blocks[0].name, "one");
        assert_eq!(blocks[0].timeout, 30);
        let minutes = parse("```sh {name=m vm-prove=run timeout=15m}\nx\n```\n", 5).unwrap();
        assert_eq!(minutes[0].timeout, 900);
        assert_eq!(blocks[0].line, 3);
        assert_eq!(blocks[0].source, "echo {{ who }}\n");
        assert_eq!(blocks[1].name, "two");
        assert_eq!(blocks[1].timeout, 600);
        assert_eq!(blocks[1].source, "```\nnested\n```\n");
        assert!(!blocks[0].needs_nixos);
        let blocks = parse("```sh {name=s vm-prove=run needs=nixos}\nx\n```\n", 5).unwrap();
        assert!(blocks[0].needs_nixos);
    }

    #[test]
    fn placeholders() {
        let blocks = parse(DOC, 600).unwrap();
        let mut vars = BTreeMap::new();
        assert_eq!(
            blocks[0].render(&vars),
            Err(RunbookError::UnknownVar {
                block: "one".to_owned(),
                name: "who".to_owned()
            })
        );
        vars.insert("who".to_owned(), "me".to_owned());
        assert_eq!(blocks[0].render(&vars).unwrap(), "echo me\n");
        assert_eq!(blocks[0].source_sha256().len(), 64);
    }

    #[test]
    fn bad_runbooks() {
        assert_eq!(
            parse("# nothing\n```sh\nx\n```\n", 5),
            Err(RunbookError::NoBlocks)
        );
        assert_eq!(
            parse("```sh {vm-prove=run}\nx\n```\n", 5),
            Err(RunbookError::MissingName { line: 1 })
        );
        assert!(matches!(
            parse("```sh {name=a vm-prove=run timeout=x}\nx\n```\n", 5),
            Err(RunbookError::BadTimeout { .. })
        ));
        assert!(matches!(
            parse(
                "```sh {name=a vm-prove=run}\nx\n```\n```sh {name=a vm-prove=run}\ny\n```\n",
                5
            ),
            Err(RunbookError::DuplicateName { .. })
        ));
        assert!(matches!(
            parse("```sh {name=a vm-prove=run needs=debian}\nx\n```\n", 5),
            Err(RunbookError::BadNeeds { .. })
        ));
        assert_eq!(
            parse("```sh {name=a vm-prove=run}\nx\n", 5),
            Err(RunbookError::Unclosed { line: 1 })
        );
    }

    #[test]
    fn the_repository_runbook_parses() {
        let text = fs_err::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../docs/install.md"
        ))
        .unwrap();
        let blocks = parse(&text, 600).unwrap();
        let names: Vec<&str> = blocks.iter().map(|b| b.name.as_str()).collect();
        assert_eq!(
            names,
            [
                "check-key",
                "clone-base",
                "clone-instance",
                "check-decrypt",
                "switch",
                "check-secrets",
                "check-failed-units"
            ]
        );
        let needs_nixos: Vec<&str> = blocks
            .iter()
            .filter(|b| b.needs_nixos)
            .map(|b| b.name.as_str())
            .collect();
        assert_eq!(needs_nixos, ["switch", "check-secrets"]);
    }
}
