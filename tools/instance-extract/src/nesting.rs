//! A bound on how deeply a Nix file nests, checked on the token stream
//! before the file is parsed.
//!
//! The parser and every walk over its tree recurse once per nesting level, so
//! a hostile or generated file (a list nested 100,000 deep) would overflow
//! the stack. The tokenizer does not recurse; counting on its output lets
//! such a file be refused with its line instead of crashing.

use rnix::SyntaxKind;

/// Deeper than any hand-written module; far below what the stack can hold.
pub const MAX_NESTING: usize = 512;

/// The byte offset of the first token that takes the file beyond
/// [`MAX_NESTING`], if any.
///
/// Each bracket (`{`, `[`, `(`, `${`) opens a level; within a level every
/// construct the parser nests to the right (`let`, `if`, `with`, `assert`, a
/// lambda's `:`, `!`, a prefix `-`) and every binary operator count as one
/// more, so the count bounds the depth of the syntax tree from above. A `;`
/// ends a binding, and with it what nested inside the binding, except the
/// `;` of a `with` or `assert`, whose body nests on; a `let` counts until
/// its bracket closes (so 512 sibling `let`s in one bracket are refused).
pub fn too_deep_at(text: &str) -> Option<usize> {
    let mut levels: Vec<Level> = vec![Level::default()];
    let mut depth = 0usize;
    let mut offset = 0usize;
    let mut previous_is_value = false;
    for (kind, token) in rnix::tokenize(text) {
        let at = offset;
        offset += token.len();
        let level = levels.len() - 1;
        match kind {
            SyntaxKind::TOKEN_L_BRACE
            | SyntaxKind::TOKEN_L_BRACK
            | SyntaxKind::TOKEN_L_PAREN
            | SyntaxKind::TOKEN_INTERPOL_START => {
                levels.push(Level::default());
                depth += 1;
            }
            SyntaxKind::TOKEN_R_BRACE
            | SyntaxKind::TOKEN_R_BRACK
            | SyntaxKind::TOKEN_R_PAREN
            | SyntaxKind::TOKEN_INTERPOL_END
                if level > 0 =>
            {
                let closed = levels.pop().unwrap_or_default();
                depth -= 1 + closed.enclosing + closed.pending + closed.binding;
            }
            SyntaxKind::TOKEN_SEMICOLON => {
                let here = &mut levels[level];
                if here.pending > 0 {
                    here.binding += here.pending;
                    here.pending = 0;
                } else {
                    depth -= here.binding;
                    here.binding = 0;
                }
            }
            SyntaxKind::TOKEN_WHITESPACE | SyntaxKind::TOKEN_COMMENT => continue,
            SyntaxKind::TOKEN_LET => {
                levels[level].enclosing += 1;
                depth += 1;
            }
            SyntaxKind::TOKEN_WITH | SyntaxKind::TOKEN_ASSERT => {
                levels[level].pending += 1;
                depth += 1;
            }
            kind if nests(kind) || (kind == SyntaxKind::TOKEN_SUB && previous_is_value) => {
                levels[level].binding += 1;
                depth += 1;
            }
            _ => {}
        }
        if depth > MAX_NESTING {
            return Some(at);
        }
        previous_is_value = matches!(
            kind,
            SyntaxKind::TOKEN_IDENT
                | SyntaxKind::TOKEN_INTEGER
                | SyntaxKind::TOKEN_FLOAT
                | SyntaxKind::TOKEN_URI
                | SyntaxKind::TOKEN_PATH_ABS
                | SyntaxKind::TOKEN_PATH_REL
                | SyntaxKind::TOKEN_PATH_HOME
                | SyntaxKind::TOKEN_PATH_SEARCH
                | SyntaxKind::TOKEN_STRING_END
                | SyntaxKind::TOKEN_R_BRACE
                | SyntaxKind::TOKEN_R_BRACK
                | SyntaxKind::TOKEN_R_PAREN
        );
    }
    None
}

/// What nests within one bracket.
#[derive(Default)]
struct Level {
    /// `let`: open until the bracket closes.
    enclosing: usize,
    /// `with`, `assert` before their own `;`.
    pending: usize,
    /// Lambdas, conditionals and operators of the current binding.
    binding: usize,
}

/// Tokens after which the parser descends one level within the same bracket.
fn nests(kind: SyntaxKind) -> bool {
    use SyntaxKind as K;
    matches!(
        kind,
        K::TOKEN_IF
            | K::TOKEN_COLON
            | K::TOKEN_INVERT
            | K::TOKEN_SUB
            | K::TOKEN_ADD
            | K::TOKEN_MUL
            | K::TOKEN_DIV
            | K::TOKEN_CONCAT
            | K::TOKEN_UPDATE
            | K::TOKEN_AND_AND
            | K::TOKEN_OR_OR
            | K::TOKEN_IMPLICATION
            | K::TOKEN_EQUAL
            | K::TOKEN_NOT_EQUAL
            | K::TOKEN_LESS
            | K::TOKEN_LESS_OR_EQ
            | K::TOKEN_MORE
            | K::TOKEN_MORE_OR_EQ
            | K::TOKEN_QUESTION
            | K::TOKEN_PIPE_LEFT
            | K::TOKEN_PIPE_RIGHT
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fmt::Write as _;

    #[test]
    fn ordinary_modules_pass() {
        let module = "{ config, lib, ... }:\nlet x = a: b: a + b; in {\n  y = lib.mkIf (!config.z) [ (x 1 2) \"${toString (1 - 2)}\" ];\n}\n";
        assert_eq!(too_deep_at(module), None);
    }

    #[test]
    fn deep_brackets_and_chains_are_found_at_the_first_excess() {
        let lists = format!("{}{}", "[".repeat(100_000), "]".repeat(100_000));
        assert_eq!(too_deep_at(&lists), Some(MAX_NESTING));
        let lambdas = "x: ".repeat(10_000) + "x";
        assert!(too_deep_at(&lambdas).is_some());
        let sums = "1 + ".repeat(10_000) + "1";
        assert!(too_deep_at(&sums).is_some());
        let withs = "with x; ".repeat(10_000) + "x";
        assert!(too_deep_at(&withs).is_some());
        // Siblings do not add up: a long flat list or set is fine.
        let flat = format!("[ {} ]", "[ 1 ] ".repeat(100_000));
        assert_eq!(too_deep_at(&flat), None);
        let bindings = (0..10_000).fold(String::new(), |mut text, i| {
            let _ = writeln!(text, "a{i} = x: with x; x + {i} // {{ }};");
            text
        });
        assert_eq!(
            too_deep_at(&format!("{{ pkgs, ... }}: {{\n{bindings}}}")),
            None
        );
    }
}
