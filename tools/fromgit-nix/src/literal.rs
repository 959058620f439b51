//! Nix language literals, for the tools that write Nix source: every string
//! they put into a `.nix` file goes through here, so no value can end the
//! literal early or start an interpolation.

/// A double-quoted Nix string literal holding exactly `text`.
pub fn string(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 2);
    out.push('"');
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            // `\$` is a literal dollar, so `${` can never open an interpolation.
            '$' => out.push_str("\\$"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

#[cfg(test)]
mod tests {
    use super::string;

    #[test]
    fn quotes_backslashes_interpolations_and_controls_are_escaped() {
        assert_eq!(string("a\"b${c}\\"), r#""a\"b\${c}\\""#);
        assert_eq!(string("one\ntwo\r\tthree"), r#""one\ntwo\r\tthree""#);
        assert_eq!(string(""), r#""""#);
        assert_eq!(string("ci.example.org"), r#""ci.example.org""#);
    }
}
