//! Derivations in their `ATerm` form (`Derive(…)`, the `.drv` file format), and
//! in the JSON form of `nix show-derivation`.

use std::collections::BTreeMap;

use thiserror::Error;

/// One output of a derivation.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct DrvOutput {
    /// The output path (empty for floating content-addressed or deferred outputs).
    pub path: String,
    /// `r:sha256`, `sha256` … for content-addressed outputs, else empty.
    pub hash_algo: String,
    /// The fixed hash (hex) of a fixed-output derivation, else empty.
    pub hash: String,
}

/// A parsed derivation.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Derivation {
    /// Outputs by name.
    pub outputs: BTreeMap<String, DrvOutput>,
    /// Input derivations (`.drv` paths) and the outputs used from each.
    pub input_drvs: BTreeMap<String, Vec<String>>,
    /// Input sources (store paths).
    pub input_srcs: Vec<String>,
    /// The platform, e.g. `x86_64-linux`.
    pub system: String,
    /// The builder program.
    pub builder: String,
    /// The builder's arguments.
    pub args: Vec<String>,
    /// The environment.
    pub env: BTreeMap<String, String>,
}

impl Derivation {
    /// Whether this is a fixed-output derivation (its output hash is given up front).
    pub fn is_fixed_output(&self) -> bool {
        self.outputs.len() == 1 && self.outputs.values().all(|o| !o.hash.is_empty())
    }
}

/// Why a derivation does not parse.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum DrvError {
    /// The `ATerm` text is malformed at the given byte offset.
    #[error("malformed derivation at byte {offset}: expected {expected}")]
    Syntax {
        /// Byte offset of the problem.
        offset: usize,
        /// What the parser expected there.
        expected: &'static str,
    },
    /// The text is not UTF-8.
    #[error("derivation is not valid UTF-8")]
    Utf8,
    /// The JSON form lacks a field or has the wrong type.
    #[error("derivation JSON: {0}")]
    Json(String),
}

struct Parser<'a> {
    s: &'a [u8],
    pos: usize,
}

impl Parser<'_> {
    fn err(&self, expected: &'static str) -> DrvError {
        DrvError::Syntax {
            offset: self.pos,
            expected,
        }
    }

    fn expect(&mut self, lit: &'static str) -> Result<(), DrvError> {
        if self.s[self.pos..].starts_with(lit.as_bytes()) {
            self.pos += lit.len();
            Ok(())
        } else {
            Err(self.err(lit))
        }
    }

    fn peek(&self) -> Option<u8> {
        self.s.get(self.pos).copied()
    }

    fn string(&mut self) -> Result<String, DrvError> {
        self.expect("\"")?;
        // Fast path: no escape before the closing quote (store paths, most values).
        let rest = &self.s[self.pos..];
        if let Some(end) = rest.iter().position(|&c| c == b'"' || c == b'\\') {
            if rest[end] == b'"' {
                let text = std::str::from_utf8(&rest[..end]).map_err(|_| DrvError::Utf8)?;
                self.pos += end + 1;
                return Ok(text.to_owned());
            }
        }
        let mut out = Vec::new();
        loop {
            let c = self.peek().ok_or_else(|| self.err("closing `\"`"))?;
            self.pos += 1;
            match c {
                b'"' => break,
                b'\\' => {
                    let e = self.peek().ok_or_else(|| self.err("escaped character"))?;
                    self.pos += 1;
                    out.push(match e {
                        b'n' => b'\n',
                        b'r' => b'\r',
                        b't' => b'\t',
                        other => other,
                    });
                }
                other => out.push(other),
            }
        }
        String::from_utf8(out).map_err(|_| DrvError::Utf8)
    }

    /// `[item,item,…]`
    fn list<T>(
        &mut self,
        mut item: impl FnMut(&mut Self) -> Result<T, DrvError>,
    ) -> Result<Vec<T>, DrvError> {
        self.expect("[")?;
        let mut out = Vec::new();
        if self.peek() == Some(b']') {
            self.pos += 1;
            return Ok(out);
        }
        loop {
            out.push(item(self)?);
            match self.peek() {
                Some(b',') => self.pos += 1,
                Some(b']') => {
                    self.pos += 1;
                    return Ok(out);
                }
                _ => return Err(self.err("`,` or `]`")),
            }
        }
    }
}

/// Parses the `ATerm` text of a `.drv` file.
pub fn parse_aterm(text: &[u8]) -> Result<Derivation, DrvError> {
    let mut p = Parser { s: text, pos: 0 };
    if p.s.starts_with(b"DrvWithVersion(") {
        p.expect("DrvWithVersion(")?;
        p.string()?;
        p.expect(",")?;
    } else {
        p.expect("Derive(")?;
    }
    let outputs = p.list(|p| {
        p.expect("(")?;
        let name = p.string()?;
        p.expect(",")?;
        let path = p.string()?;
        p.expect(",")?;
        let hash_algo = p.string()?;
        p.expect(",")?;
        let hash = p.string()?;
        p.expect(")")?;
        Ok((
            name,
            DrvOutput {
                path,
                hash_algo,
                hash,
            },
        ))
    })?;
    p.expect(",")?;
    let input_drvs = p.list(|p| {
        p.expect("(")?;
        let path = p.string()?;
        p.expect(",")?;
        let outs = p.list(Parser::string)?;
        p.expect(")")?;
        Ok((path, outs))
    })?;
    p.expect(",")?;
    let input_srcs = p.list(Parser::string)?;
    p.expect(",")?;
    let system = p.string()?;
    p.expect(",")?;
    let builder = p.string()?;
    p.expect(",")?;
    let args = p.list(Parser::string)?;
    p.expect(",")?;
    let env = p.list(|p| {
        p.expect("(")?;
        let k = p.string()?;
        p.expect(",")?;
        let v = p.string()?;
        p.expect(")")?;
        Ok((k, v))
    })?;
    p.expect(")")?;
    if p.pos != p.s.len() {
        return Err(p.err("end of derivation"));
    }
    Ok(Derivation {
        outputs: outputs.into_iter().collect(),
        input_drvs: input_drvs.into_iter().collect(),
        input_srcs,
        system,
        builder,
        args,
        env: env.into_iter().collect(),
    })
}

fn str_field(v: &serde_json::Value, key: &str) -> Result<String, DrvError> {
    v.get(key)
        .and_then(serde_json::Value::as_str)
        .map(str::to_owned)
        .ok_or_else(|| DrvError::Json(format!("missing string field `{key}`")))
}

fn str_list(v: Option<&serde_json::Value>, key: &str) -> Result<Vec<String>, DrvError> {
    let Some(v) = v else { return Ok(Vec::new()) };
    v.as_array()
        .ok_or_else(|| DrvError::Json(format!("`{key}` is not a list")))?
        .iter()
        .map(|x| {
            x.as_str()
                .map(str::to_owned)
                .ok_or_else(|| DrvError::Json(format!("`{key}` holds a non-string")))
        })
        .collect()
}

/// Parses one derivation value of `nix show-derivation` / `nix derivation show`.
pub fn from_json(v: &serde_json::Value) -> Result<Derivation, DrvError> {
    let mut d = Derivation {
        system: str_field(v, "system")?,
        builder: str_field(v, "builder")?,
        args: str_list(v.get("args"), "args")?,
        input_srcs: str_list(v.get("inputSrcs"), "inputSrcs")?,
        ..Derivation::default()
    };
    if let Some(outs) = v.get("outputs").and_then(|o| o.as_object()) {
        for (name, o) in outs {
            let field = |k: &str| {
                o.get(k)
                    .and_then(serde_json::Value::as_str)
                    .unwrap_or_default()
                    .to_owned()
            };
            d.outputs.insert(
                name.clone(),
                DrvOutput {
                    path: field("path"),
                    hash_algo: field("hashAlgo"),
                    hash: field("hash"),
                },
            );
        }
    }
    if let Some(inputs) = v.get("inputDrvs").and_then(|o| o.as_object()) {
        for (path, outs) in inputs {
            // Newer Nix writes `{"outputs": [...], "dynamicOutputs": {}}`.
            let list = outs.get("outputs").unwrap_or(outs);
            d.input_drvs
                .insert(path.clone(), str_list(Some(list), "inputDrvs")?);
        }
    }
    if let Some(env) = v.get("env").and_then(|o| o.as_object()) {
        for (k, val) in env {
            d.env
                .insert(k.clone(), val.as_str().unwrap_or_default().to_owned());
        }
    }
    Ok(d)
}

#[cfg(test)]
mod tests {
    use super::*;

    const APP: &str = "Derive([(\"out\",\"/nix/store/wkg9m9zshzq8p0zab2kl31wxzg048fsc-app-2.0\",\"\",\"\")],[(\"/nix/store/px3m4qd9ix5q93kkvzggmgijx0549n2d-libfoo-9.9.drv\",[\"out\"])],[],\"x86_64-linux\",\"/bin/sh\",[\"-c\",\"echo /nix/store/2sm4jfwzqk1mgml3wrmz6s1cb8w3ixcl-libfoo-9.9 > $out\"],[(\"builder\",\"/bin/sh\"),(\"name\",\"app-2.0\"),(\"out\",\"/nix/store/wkg9m9zshzq8p0zab2kl31wxzg048fsc-app-2.0\"),(\"system\",\"x86_64-linux\")])";

    #[test]
    fn parses_the_two_level_vector() {
        let d = parse_aterm(APP.as_bytes()).unwrap();
        assert_eq!(
            d.outputs["out"].path,
            "/nix/store/wkg9m9zshzq8p0zab2kl31wxzg048fsc-app-2.0"
        );
        assert_eq!(
            d.input_drvs["/nix/store/px3m4qd9ix5q93kkvzggmgijx0549n2d-libfoo-9.9.drv"],
            vec!["out"]
        );
        assert_eq!(d.builder, "/bin/sh");
        assert_eq!(d.args.len(), 2);
        assert_eq!(d.env["name"], "app-2.0");
        assert!(!d.is_fixed_output());
    }

    #[test]
    fn unescapes_strings() {
        let text = r#"Derive([("out","/nix/store/x","r:sha256","ab")],[],["/nix/store/src"],"x86_64-linux","/bin/sh",["a\"b\\c\nd\te"],[("k","v\r")])"#;
        let d = parse_aterm(text.as_bytes()).unwrap();
        assert_eq!(d.args, vec!["a\"b\\c\nd\te"]);
        assert_eq!(d.env["k"], "v\r");
        assert!(d.is_fixed_output());
    }

    #[test]
    fn rejects_truncated_and_trailing_input() {
        for n in [0, 7, 50, APP.len() - 1] {
            assert!(parse_aterm(&APP.as_bytes()[..n]).is_err(), "prefix {n}");
        }
        assert!(parse_aterm(format!("{APP}x").as_bytes()).is_err());
        assert!(parse_aterm(b"Derive(").is_err());
    }

    #[test]
    fn parses_show_derivation_json() {
        let v = serde_json::json!({
            "outputs": {"out": {"path": "/nix/store/a-x"}},
            "inputSrcs": ["/nix/store/b-src"],
            "inputDrvs": {"/nix/store/c-y.drv": ["out"]},
            "system": "x86_64-linux", "builder": "/bin/sh", "args": ["-c", "true"],
            "env": {"name": "x"}
        });
        let d = from_json(&v).unwrap();
        assert_eq!(d.outputs["out"].path, "/nix/store/a-x");
        assert_eq!(d.input_drvs["/nix/store/c-y.drv"], vec!["out"]);
        assert!(from_json(&serde_json::json!({})).is_err());
    }
}
