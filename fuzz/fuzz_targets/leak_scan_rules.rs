//! A leak-scan rule file (`--rules FILE`): loading and compiling never
//! panic, and the compiled rules scan fixed text, the input itself and a
//! name to redact without panicking; every match lies inside the content
//! and its secret inside the match.
#![no_main]

use leak_scan::engine::Engine;
use leak_scan::rules::RuleSet;
use leak_scan::suppress::DEFAULT_SALT;
use libfuzzer_sys::fuzz_target;

const TEXT: &[u8] = b"# services.nix\n{ services.web = { enable = true; port = 8080; };\n  user = \"ops\"; hosts = [ \"192.0.2.7\" \"2001:db8::1\" ];\n}\nkey: value\n\t\xc3\xa9t\xc3\xa9 \\n end\r\n";
const BINARY: &[u8] = b"\x7fELF\x02\x01\x01\x00\x00\x00key=value\x00\xff\xfe";

fn check(rules: &RuleSet, data: &[u8], text: bool) {
    let mut out = Vec::new();
    rules.scan(data, text, &mut out);
    for m in &out {
        assert!(m.rule < rules.rules.len());
        assert!(m.start <= m.secret_start && m.secret_start <= m.secret_end);
        assert!(m.secret_end <= m.end && m.end <= data.len(), "{m:?}");
    }
}

fuzz_target!(|data: &[u8]| {
    let Ok(source) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(rules) = RuleSet::from_sources(&[("fuzz.toml".to_owned(), source.to_owned())]) else {
        return;
    };
    check(&rules, TEXT, true);
    check(&rules, BINARY, false);
    check(&rules, data, true);
    for rule in &rules.rules {
        assert!(rules.get(&rule.spec.id).is_some());
        for example in rule
            .spec
            .examples
            .iter()
            .chain(&rule.spec.negative_examples)
        {
            let _ = rule.finds(example);
        }
    }
    let engine = Engine::new(rules, None, DEFAULT_SALT);
    for hit in engine.scan(TEXT).iter().chain(&engine.scan(data)) {
        assert!(
            hit.line >= 1 && hit.column >= 1 && hit.end_line >= hit.line,
            "{hit:?}"
        );
    }
    let _ = engine.redact("hosts/web.example.net/key = value.nix");
    let _ = engine.redact(source);
    let _ = engine.catalog();
});
