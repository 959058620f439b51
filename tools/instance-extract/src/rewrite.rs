//! Text edits on Nix source, computed on the lossless syntax tree and applied
//! to the original bytes: everything outside an edit stays byte-identical,
//! comments and odd formatting included.

use fromgit_nix::literal::string as nix_string;
use rnix::{SyntaxKind, SyntaxNode, TextRange};

/// Replace `range` of the original text with `text`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Edit {
    pub range: TextRange,
    pub text: String,
}

impl Edit {
    pub fn replace(range: TextRange, text: impl Into<String>) -> Self {
        Edit {
            range,
            text: text.into(),
        }
    }

    pub fn insert(offset: rnix::TextSize, text: impl Into<String>) -> Self {
        Edit {
            range: TextRange::empty(offset),
            text: text.into(),
        }
    }
}

/// Applies non-overlapping edits (in any order) to `text`.
pub fn apply(text: &str, edits: &[Edit]) -> String {
    let mut sorted: Vec<&Edit> = edits.iter().collect();
    sorted.sort_by_key(|e| (e.range.start(), e.range.end()));
    let mut out = String::with_capacity(text.len() + 256);
    let mut at = 0usize;
    for edit in sorted {
        let start = usize::from(edit.range.start());
        let end = usize::from(edit.range.end());
        if start < at {
            continue; // overlapping: the first edit wins
        }
        out.push_str(&text[at..start]);
        out.push_str(&edit.text);
        at = end;
    }
    out.push_str(&text[at..]);
    out
}

/// A Nix attribute name: bare when it is an identifier, quoted otherwise.
pub fn attr_name(name: &str) -> String {
    let mut chars = name.chars();
    let identifier = chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || "_'-".contains(c));
    if identifier {
        name.to_owned()
    } else {
        nix_string(name)
    }
}

/// The top-level expression of a file (under `NODE_ROOT`).
pub fn top_expression(root: &SyntaxNode) -> Option<SyntaxNode> {
    root.children().next()
}

/// For a module file `{ a, b, ... }: …`, the edit that brings `config` into
/// scope, or `None` when it already is. `Err` when the file is not a
/// function over an attribute pattern.
pub fn ensure_formal(root: &SyntaxNode, formal: &str) -> Result<Option<Edit>, ()> {
    let lambda = top_expression(root)
        .filter(|n| n.kind() == SyntaxKind::NODE_LAMBDA)
        .ok_or(())?;
    let pattern = lambda
        .children()
        .find(|n| n.kind() == SyntaxKind::NODE_PATTERN)
        .ok_or(())?;
    if has_formal(&pattern, formal) {
        return Ok(None);
    }
    let brace = pattern
        .children_with_tokens()
        .find(|e| e.kind() == SyntaxKind::TOKEN_L_BRACE)
        .ok_or(())?;
    let empty = !pattern.children_with_tokens().any(|e| {
        matches!(
            e.kind(),
            SyntaxKind::NODE_PAT_ENTRY | SyntaxKind::TOKEN_ELLIPSIS
        )
    });
    let spaced = brace
        .next_sibling_or_token()
        .is_some_and(|next| next.kind() == SyntaxKind::TOKEN_WHITESPACE);
    let text = match (empty, spaced) {
        (true, _) => format!(" {formal}"),
        (false, true) => format!(" {formal},"),
        (false, false) => format!(" {formal}, "),
    };
    Ok(Some(Edit::insert(brace.text_range().end(), text)))
}

/// Whether a pattern (`{ a, b, ... }`) names `formal`.
pub fn has_formal(pattern: &SyntaxNode, formal: &str) -> bool {
    pattern.children().any(|entry| {
        entry.kind() == SyntaxKind::NODE_PAT_ENTRY
            && entry
                .children()
                .next()
                .is_some_and(|ident| ident.text() == formal)
    })
}

/// Adds a formal after the last one of a pattern (`{ self, nixpkgs, new, ... }`).
pub fn add_formal_last(pattern: &SyntaxNode, formal: &str) -> Option<Edit> {
    if let Some(last) = pattern
        .children()
        .filter(|n| n.kind() == SyntaxKind::NODE_PAT_ENTRY)
        .last()
    {
        return Some(Edit::insert(last.text_range().end(), format!(", {formal}")));
    }
    let brace = pattern
        .children_with_tokens()
        .find(|e| e.kind() == SyntaxKind::TOKEN_L_BRACE)?;
    Some(Edit::insert(
        brace.text_range().end(),
        format!(" {formal},"),
    ))
}

/// The bindings (`NODE_ATTRPATH_VALUE`) directly in an attribute set.
pub fn bindings(set: &SyntaxNode) -> impl Iterator<Item = SyntaxNode> {
    set.children()
        .filter(|n| n.kind() == SyntaxKind::NODE_ATTRPATH_VALUE)
}

/// The attribute path of a binding as written, without whitespace.
pub fn binding_path(binding: &SyntaxNode) -> String {
    binding
        .children()
        .find(|n| n.kind() == SyntaxKind::NODE_ATTRPATH)
        .map(|p| p.text().to_string().split_whitespace().collect())
        .unwrap_or_default()
}

/// The value expression of a binding.
pub fn binding_value(binding: &SyntaxNode) -> Option<SyntaxNode> {
    binding
        .children()
        .filter(|n| n.kind() != SyntaxKind::NODE_ATTRPATH)
        .last()
}

/// The whitespace that starts the line `node` begins on.
pub fn indentation(text: &str, node: &SyntaxNode) -> String {
    let start = usize::from(node.text_range().start());
    let line_start = text[..start].rfind('\n').map_or(0, |i| i + 1);
    text[line_start..start]
        .chars()
        .take_while(|c| *c == ' ' || *c == '\t')
        .collect()
}

/// Inserts a binding after the last binding of `set` (or after `{` when it
/// has none), at the indentation of its siblings.
pub fn add_binding(text: &str, set: &SyntaxNode, binding: &str) -> Option<Edit> {
    if let Some(last) = bindings(set).last() {
        let indent = indentation(text, &last);
        return Some(Edit::insert(
            last.text_range().end(),
            format!("\n{indent}{binding}"),
        ));
    }
    let brace = set
        .children_with_tokens()
        .find(|e| e.kind() == SyntaxKind::TOKEN_L_BRACE)?;
    let indent = format!("{}  ", indentation(text, set));
    Some(Edit::insert(
        brace.text_range().end(),
        format!("\n{indent}{binding}\n"),
    ))
}

/// Appends an element to a list literal, before its `]`.
pub fn append_to_list(list: &SyntaxNode, element: &str) -> Option<Edit> {
    let close = list
        .children_with_tokens()
        .filter(|e| e.kind() == SyntaxKind::TOKEN_R_BRACK)
        .last()?;
    let before_close = close.prev_sibling_or_token();
    let newline_style = before_close
        .as_ref()
        .is_some_and(|e| e.kind() == SyntaxKind::TOKEN_WHITESPACE && e.to_string().contains('\n'));
    if newline_style {
        // `[\n  a\n  b\n]`: add `  c` on its own line, at the elements' indentation.
        let whitespace = before_close?;
        let last_element = list.children().last();
        let indent = last_element.map_or_else(
            || "  ".to_owned(),
            |e| {
                e.prev_sibling_or_token()
                    .map(|w| {
                        w.to_string()
                            .rsplit('\n')
                            .next()
                            .unwrap_or_default()
                            .to_owned()
                    })
                    .unwrap_or_default()
            },
        );
        Some(Edit::insert(
            whitespace.text_range().start(),
            format!("\n{indent}{element}"),
        ))
    } else {
        Some(Edit::insert(
            close.text_range().start(),
            format!("{element} "),
        ))
    }
}

/// The attribute path of `binding` from the top of the file, outermost first.
pub fn full_path(binding: &SyntaxNode) -> Vec<String> {
    let mut parts = Vec::new();
    for ancestor in binding
        .ancestors()
        .filter(|n| n.kind() == SyntaxKind::NODE_ATTRPATH_VALUE)
    {
        // One name per attribute node: `"a.b"` stays one name.
        let mut here: Vec<String> = ancestor
            .children()
            .find(|n| n.kind() == SyntaxKind::NODE_ATTRPATH)
            .map(|path| {
                path.children()
                    .map(|attr| attr.text().to_string().trim_matches('"').to_owned())
                    .collect()
            })
            .unwrap_or_default();
        here.append(&mut parts);
        parts = here;
    }
    parts
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> SyntaxNode {
        rnix::Root::parse(text).syntax()
    }

    #[test]
    fn edits_keep_every_other_byte() {
        let text = "{ a = 1;  # keep\n  b = \"x\"; }";
        let at = u32::try_from(text.find("\"x\"").expect("present")).expect("small");
        let edits = [
            Edit::replace(TextRange::new(at.into(), (at + 3).into()), "\"y\""),
            Edit::insert(0.into(), "# head\n"),
        ];
        assert_eq!(
            apply(text, &edits),
            "# head\n{ a = 1;  # keep\n  b = \"y\"; }"
        );
    }

    #[test]
    fn formal_is_added_once() {
        let text = "{ pkgs, ... }:\n{ }\n";
        let edit = ensure_formal(&parse(text), "config")
            .expect("module")
            .expect("edit");
        let out = apply(text, &[edit]);
        assert_eq!(out, "{ config, pkgs, ... }:\n{ }\n");
        assert_eq!(ensure_formal(&parse(&out), "config"), Ok(None));
        assert_eq!(ensure_formal(&parse("{ a = 1; }"), "config"), Err(()));
        let empty = "{ }: { }";
        let out = apply(
            empty,
            &[ensure_formal(&parse(empty), "config")
                .expect("ok")
                .expect("edit")],
        );
        assert_eq!(out, "{ config }: { }");
    }

    #[test]
    fn lists_and_sets_grow_in_their_own_style() {
        let text = "{\n  modules = [\n    ./a.nix\n    ./b.nix\n  ];\n  inline = [ a b ];\n}\n";
        let root = parse(text);
        let set = top_expression(&root).expect("set");
        let lists: Vec<SyntaxNode> = bindings(&set).filter_map(|b| binding_value(&b)).collect();
        let edits = [
            append_to_list(&lists[0], "./c.nix").expect("edit"),
            append_to_list(&lists[1], "c").expect("edit"),
            add_binding(text, &set, "x = 1;").expect("edit"),
        ];
        assert_eq!(
            apply(text, &edits),
            "{\n  modules = [\n    ./a.nix\n    ./b.nix\n    ./c.nix\n  ];\n  inline = [ a b c ];\n  x = 1;\n}\n"
        );
        assert_eq!(attr_name("cc-ci"), "cc-ci");
        assert_eq!(attr_name("a.b"), "\"a.b\"");
    }
}
