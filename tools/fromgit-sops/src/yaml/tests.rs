use super::*;

fn text_of(map: &Map, key: &str) -> (Kind, String) {
    match &map.iter().find(|(k, _)| k == key).expect("key present").1 {
        Value::Scalar(s) => (s.kind, s.text.as_str().to_owned()),
        other => panic!("not a scalar: {other:?}"),
    }
}

#[test]
fn plain_scalars_resolve_like_yaml_v3() {
    let map = parse(
        "s: hello\ni: 5432\nneg: -3\nf: 1.5\ne: 2e3\nb: True\nn: ~\nempty:\nq: '5432'\n\
         onword: on\ncolon: 12:30\n",
    )
    .expect("parses");
    assert_eq!(text_of(&map, "s"), (Kind::Str, "hello".into()));
    assert_eq!(text_of(&map, "i"), (Kind::Int, "5432".into()));
    assert_eq!(text_of(&map, "neg"), (Kind::Int, "-3".into()));
    assert_eq!(text_of(&map, "f"), (Kind::Float, "1.5".into()));
    assert_eq!(text_of(&map, "e"), (Kind::Float, "2000".into()));
    assert_eq!(text_of(&map, "b"), (Kind::Bool, "True".into()));
    assert_eq!(text_of(&map, "q"), (Kind::Str, "5432".into()));
    assert_eq!(text_of(&map, "onword"), (Kind::Str, "on".into()));
    assert_eq!(text_of(&map, "colon"), (Kind::Str, "12:30".into()));
    // Found by fuzzing: an overflowing float stays a string, as in yaml.v3.
    let huge = parse("h: 777E7777\n").expect("parses");
    assert_eq!(text_of(&huge, "h"), (Kind::Str, "777E7777".into()));
    assert_eq!(map[6].1, Value::Null);
    assert_eq!(map[7].1, Value::Null);
}

#[test]
fn ambiguous_plain_scalars_are_refused_with_their_line() {
    for (text, line) in [
        ("a: 1\nmode: 0755\n", 2),
        ("big: 1_000\n", 1),
        ("h: 0x1F\n", 1),
        ("d: 2024-01-02\n", 1),
        ("x: .inf\n", 1),
    ] {
        match parse(text) {
            Err(YamlError::At {
                line: l, reason, ..
            }) => {
                assert_eq!(l, line, "{text}");
                assert!(reason.contains("quote it"), "{reason}");
            }
            other => panic!("{text}: {other:?}"),
        }
    }
}

#[test]
fn structure_errors_are_clear() {
    assert_eq!(parse("a: 1\n---\nb: 2\n"), Err(YamlError::MultiDocument));
    assert_eq!(parse("- a\n- b\n"), Err(YamlError::RootNotMap));
    assert!(
        matches!(parse("a: 1\na: 2\n"), Err(YamlError::At { reason, .. }) if reason.contains("duplicate"))
    );
    assert!(matches!(
        parse("a: &x 1\nb: *x\n"),
        Err(YamlError::At { .. })
    ));
    assert!(
        matches!(parse("1: x\n"), Err(YamlError::At { reason, .. }) if reason.contains("keys must be strings"))
    );
    assert!(matches!(parse("a: [unclosed\n"), Err(YamlError::At { .. })));
    assert_eq!(parse(""), Ok(Vec::new()));
}

#[test]
fn emitter_output_reads_back_identically() {
    let source = "plain: hello\nquoted: \"yes\"\nnum: 7\nflt: 2.0\nt: false\nnothing: null\n\
                  empty: \"\"\nuni: \"grüße ✓\"\npem: |\n    -----BEGIN X-----\n    abc\n    -----END X-----\n\
                  nochomp: |-\n    a\n    b\nkeep: |+\n    a\n\n\nnested:\n    deep:\n        k: v\n\
                  list:\n    - one\n    - k: v\n      m: |\n        x\n        y\n    - - inner\n    - []\n\
                  emptymap: {}\nctrl: \"a\\u0001b\\tc\"\nlead: \"  spaced\\nx\"\n";
    let map = parse(source).expect("parses");
    let emitted = emit(&map);
    let reread = parse(&emitted).expect("emitted text parses");
    assert_eq!(map, reread, "emitted:\n{}", emitted.as_str());
    // A key longer than YAML's implicit-key limit (found by fuzzing).
    let long = vec![
        ("k\u{3}".repeat(400), Value::Scalar(Scalar::string("v"))),
        (
            "list".to_owned(),
            Value::List(vec![Value::Map(vec![("\u{3}".repeat(300), Value::Null)])]),
        ),
    ];
    assert_eq!(
        parse(&emit(&long)).as_ref(),
        Ok(&long),
        "{}",
        emit(&long).as_str()
    );
    assert!(emitted.contains("pem: |\n    -----BEGIN X-----\n"));
    assert!(emitted.contains("    - k: v\n      m: |\n        x\n"));
    assert!(emitted.contains("quoted: \"yes\"\n"));
    assert!(emitted.contains("flt: 2.0\n"));
}
