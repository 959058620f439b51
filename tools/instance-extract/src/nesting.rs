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
/// more, so the count bounds the depth of the syntax tree from above.
pub fn too_deep_at(text: &str) -> Option<usize> {
    let mut levels: Vec<usize> = vec![0];
    let mut depth = 0usize;
    let mut offset = 0usize;
    let mut previous_is_value = false;
    for (kind, token) in rnix::tokenize(text) {
        let at = offset;
        offset += token.len();
        match kind {
            SyntaxKind::TOKEN_L_BRACE
            | SyntaxKind::TOKEN_L_BRACK
            | SyntaxKind::TOKEN_L_PAREN
            | SyntaxKind::TOKEN_INTERPOL_START => {
                levels.push(0);
                depth += 1;
            }
            SyntaxKind::TOKEN_R_BRACE
            | SyntaxKind::TOKEN_R_BRACK
            | SyntaxKind::TOKEN_R_PAREN
            | SyntaxKind::TOKEN_INTERPOL_END
                if levels.len() > 1 =>
            {
                depth -= 1 + levels.pop().unwrap_or(0);
            }
            SyntaxKind::TOKEN_WHITESPACE | SyntaxKind::TOKEN_COMMENT => continue,
            SyntaxKind::TOKEN_SUB if previous_is_value => count(&mut levels, &mut depth),
            kind if nests(kind) => count(&mut levels, &mut depth),
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

fn count(levels: &mut [usize], depth: &mut usize) {
    if let Some(level) = levels.last_mut() {
        *level += 1;
        *depth += 1;
    }
}

/// Tokens after which the parser descends one level within the same bracket.
fn nests(kind: SyntaxKind) -> bool {
    use SyntaxKind as K;
    matches!(
        kind,
        K::TOKEN_LET
            | K::TOKEN_IF
            | K::TOKEN_WITH
            | K::TOKEN_ASSERT
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
        // Siblings do not add up: a long flat list is fine.
        let flat = format!("[ {} ]", "[ 1 ] ".repeat(100_000));
        assert_eq!(too_deep_at(&flat), None);
    }
}
