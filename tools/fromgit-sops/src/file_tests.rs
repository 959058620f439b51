use std::path::Path;

use super::*;
use crate::value::Scalar;

struct Party {
    identities: Identities,
    recipient: Recipient,
}

fn party() -> Party {
    use age::secrecy::ExposeSecret;
    let identity = age::x25519::Identity::generate();
    let mut identities = Identities::default();
    identities
        .add_age_keys(identity.to_string().expose_secret(), Path::new("test-key"))
        .expect("loads");
    Party {
        identities,
        recipient: Recipient::parse(&identity.to_public().to_string()).expect("valid"),
    }
}

const SAMPLE: &str =
    "db_password: hunter2\nempty: \"\"\nnothing: null\ntls:\n    wildcard:\n        \
                      key: \"-----BEGIN PRIVATE KEY-----\\nabc\\n-----END PRIVATE KEY-----\\n\"\n\
                      list:\n    - one\n    - two\nnote_unencrypted: visible\nport: 5432\n";

fn sample() -> Map {
    yaml::parse(SAMPLE).expect("sample parses")
}

/// The sample document sealed for one party, with the default selection.
fn seal_sample(party: &Party) -> Written {
    encrypt_new(
        Format::Yaml,
        &sample(),
        std::slice::from_ref(&party.recipient),
        Selection::default(),
    )
    .expect("encrypts")
}

fn write_and_read(written: &Written, format: Format) -> EncryptedFile {
    written.verify(written.text.as_bytes()).expect("self-check");
    EncryptedFile::parse(&written.text, format).expect("parses")
}

#[test]
fn a_new_file_decrypts_to_the_same_tree_and_leaves_plaintext_where_asked() {
    let alice = party();
    let written = seal_sample(&alice);
    let text = written.text.as_str();
    assert!(!text.contains("hunter2"));
    assert!(text.contains("note_unencrypted: visible\n"));
    assert!(text.contains("empty: \"\"\n"));
    assert!(text.contains("nothing: null\n"));
    assert!(text.contains("port: ENC[AES256_GCM,"));
    assert!(text.contains(",type:int]"));
    assert!(text.contains("    lastmodified: \""));
    assert!(text.contains("    unencrypted_suffix: _unencrypted\n    version: 3.9.4\n"));
    let file = write_and_read(&written, Format::Yaml);
    let decrypted = file.decrypt(&alice.identities).expect("decrypts");
    assert_eq!(decrypted.tree, sample());
}

#[test]
fn json_files_round_trip() {
    let alice = party();
    let tree = json::parse(r#"{"a":"x","n":1,"l":[true,null,"y"],"o":{}}"#).expect("parses");
    let written = encrypt_new(
        Format::Json,
        &tree,
        std::slice::from_ref(&alice.recipient),
        Selection::default(),
    )
    .expect("encrypts");
    assert!(written.text.contains("\"sops\": {"));
    let file = write_and_read(&written, Format::Json);
    assert_eq!(
        file.decrypt(&alice.identities).expect("decrypts").tree,
        tree
    );
}

fn feed(hasher: &mut MacHasher, value: &Value) {
    match value {
        Value::Scalar(s) => hasher.add(s),
        Value::Map(m) => m.iter().for_each(|(_, v)| feed(hasher, v)),
        Value::List(l) => l.iter().for_each(|v| feed(hasher, v)),
        Value::Null => {}
    }
}

#[test]
fn the_mac_is_sha512_over_leaves_in_document_order() {
    // The known answer from the sops-nix test file (sops-format notes, §16.1).
    let tree = yaml::parse("test_key: test_value\na_list:\n    - e1\n    - e3\nnested:\n    test:\n        file: another value\n")
        .expect("parses");
    let mut hasher = MacHasher::new(false);
    feed(&mut hasher, &Value::Map(tree));
    assert_eq!(
        hasher.finish().as_str(),
        "AF7CB2C2E17458555FC6A3F0E6FA3A8AF04EAF01E46217C09367E77BDEEBF3672D89F8E1F01A48E1D6C83E1FB4C958C783A7E073A45040330E08672C0BF15273"
    );
}

#[test]
fn tampering_is_caught_and_named() {
    let alice = party();
    let written = seal_sample(&alice);
    // A plaintext value edited by hand breaks the MAC.
    let edited = written
        .text
        .replace("note_unencrypted: visible", "note_unencrypted: changed");
    let file = EncryptedFile::parse(&edited, Format::Yaml).expect("parses");
    assert!(matches!(
        file.decrypt(&alice.identities),
        Err(SopsError::MacMismatch)
    ));

    // A ciphertext moved to another key fails with that key's path.
    let original = EncryptedFile::parse(&written.text, Format::Yaml).expect("parses");
    let mut moved = original.clone();
    let password = moved.tree[0].1.clone();
    moved.tree[4] = ("list".into(), Value::List(vec![password.clone(), password]));
    match moved.decrypt(&alice.identities) {
        Err(SopsError::Value { path, source }) => {
            assert_eq!(path.to_string(), r#"["list"][0]"#);
            assert_eq!(source, CipherError::Authentication);
        }
        other => panic!("{:?}", other.err()),
    }

    // Swapping list items keeps every AAD valid but breaks the MAC.
    let mut swapped = original.clone();
    let Value::List(items) = &mut swapped.tree[4].1 else {
        panic!("list")
    };
    {
        items.swap(0, 1);
    }
    assert!(matches!(
        swapped.decrypt(&alice.identities),
        Err(SopsError::MacMismatch)
    ));

    // A missing MAC.
    let no_mac = written
        .text
        .lines()
        .filter(|l| !l.trim_start().starts_with("mac:"))
        .collect::<Vec<_>>()
        .join("\n");
    assert!(matches!(
        EncryptedFile::parse(&no_mac, Format::Yaml),
        Err(SopsError::Metadata(MetadataError::MissingField("mac")))
    ));

    // A value left in plaintext where the rule says encrypted.
    let plain = written
        .text
        .replacen("db_password: ENC[", "db_password: \"xENC[", 1);
    let plain = plain.replacen(",type:str]\n", ",type:str]\"\n", 1);
    let file = EncryptedFile::parse(&plain, Format::Yaml).expect("parses");
    assert!(matches!(
        file.decrypt(&alice.identities),
        Err(SopsError::NotEncrypted { .. })
    ));
}

#[test]
fn a_stranger_is_told_which_recipients_the_file_has() {
    let alice = party();
    let mallory = party();
    let written = seal_sample(&alice);
    let file = EncryptedFile::parse(&written.text, Format::Yaml).expect("parses");
    let err = file.decrypt(&mallory.identities).err().expect("refused");
    let message = err.to_string();
    assert!(message.contains(alice.recipient.as_str()), "{message}");
    assert!(message.contains(mallory.recipient.as_str()), "{message}");
}

#[test]
fn reencrypt_keeps_ciphertext_of_unchanged_values() {
    let alice = party();
    let written = seal_sample(&alice);
    let file = EncryptedFile::parse(&written.text, Format::Yaml).expect("parses");
    let decrypted = file.decrypt(&alice.identities).expect("decrypts");
    let mut tree = decrypted.tree.clone();
    let path = KeyPath::parse_extract(r#"["db_password"]"#).expect("path");
    let mut root = Value::Map(tree);
    assert!(root.set(&path, Value::Scalar(Scalar::string("correct horse"))));
    let Value::Map(edited) = root else {
        unreachable!()
    };
    tree = edited;
    let rewritten = decrypted.reencrypt(&tree).expect("re-encrypts");
    rewritten
        .verify(rewritten.text.as_bytes())
        .expect("self-check");
    let again = EncryptedFile::parse(&rewritten.text, Format::Yaml).expect("parses");
    let value_of = |f: &EncryptedFile, i: usize| match &f.tree[i].1 {
        Value::Scalar(s) => s.text.as_str().to_owned(),
        other => format!("{other:?}"),
    };
    assert_ne!(
        value_of(&file, 0),
        value_of(&again, 0),
        "changed value gets a new ciphertext"
    );
    assert_eq!(
        file.tree[1..],
        again.tree[1..],
        "unchanged values keep their ciphertext"
    );
    assert_eq!(
        file.metadata.age, again.metadata.age,
        "same data key, same stanzas"
    );
    assert_ne!(file.metadata.mac, again.metadata.mac);
    assert_eq!(
        again.decrypt(&alice.identities).expect("decrypts").tree,
        tree
    );
}

#[test]
fn updatekeys_rewraps_and_rotate_replaces_the_data_key() {
    let alice = party();
    let bob = party();
    let written = seal_sample(&alice);
    let file = EncryptedFile::parse(&written.text, Format::Yaml).expect("parses");
    let decrypted = file.decrypt(&alice.identities).expect("decrypts");

    let (updated, changes) = decrypted
        .updatekeys(std::slice::from_ref(&bob.recipient))
        .expect("updates");
    updated.verify(updated.text.as_bytes()).expect("self-check");
    assert_eq!(changes.added, [bob.recipient.to_string()]);
    assert_eq!(changes.removed, [alice.recipient.to_string()]);
    let updated_file = EncryptedFile::parse(&updated.text, Format::Yaml).expect("parses");
    assert_eq!(updated_file.tree, file.tree, "values untouched");
    assert_eq!(updated_file.metadata.mac, file.metadata.mac);
    assert_eq!(
        updated_file.metadata.lastmodified,
        file.metadata.lastmodified
    );
    assert!(updated_file.decrypt(&bob.identities).is_ok());
    assert!(updated_file.decrypt(&alice.identities).is_err());

    let (rotated, _) = decrypted
        .rotate(std::slice::from_ref(&bob.recipient))
        .expect("rotates");
    rotated.verify(rotated.text.as_bytes()).expect("self-check");
    let rotated_file = EncryptedFile::parse(&rotated.text, Format::Yaml).expect("parses");
    assert_ne!(
        rotated_file.tree[0], file.tree[0],
        "every value re-encrypted"
    );
    let old_key = decrypted.data_key.clone();
    assert!(matches!(
        rotated_file.decrypt_with_key(old_key),
        Err(SopsError::Value { .. })
    ));
    assert_eq!(
        rotated_file
            .decrypt(&bob.identities)
            .expect("decrypts")
            .tree,
        sample()
    );
}

#[test]
fn refusals_of_what_cannot_be_written() {
    let alice = party();
    let reserved = yaml::parse("sops: x\n").expect("parses");
    assert!(matches!(
        encrypt_new(
            Format::Yaml,
            &reserved,
            std::slice::from_ref(&alice.recipient),
            Selection::default()
        ),
        Err(SopsError::ReservedKey)
    ));
    assert!(matches!(
        encrypt_new(Format::Yaml, &sample(), &[], Selection::default()),
        Err(SopsError::NoRecipients)
    ));
    let written = seal_sample(&alice);
    let with_pgp = written.text.replace(
        "    lastmodified:",
        "    pgp:\n        - fp: ABCD\n          enc: x\n    lastmodified:",
    );
    let file = EncryptedFile::parse(&with_pgp, Format::Yaml).expect("parses");
    let decrypted = file
        .decrypt(&alice.identities)
        .expect("age key still works");
    assert!(matches!(
        decrypted.updatekeys(std::slice::from_ref(&alice.recipient)),
        Err(SopsError::NotRewritable(m)) if m.contains("pgp")
    ));
    let with_comment = format!(
        "#ENC[AES256_GCM,data:x,iv:y,tag:z,type:comment]\n{}",
        written.text.as_str()
    );
    let file = EncryptedFile::parse(&with_comment, Format::Yaml).expect("parses");
    let decrypted = file.decrypt(&alice.identities).expect("decrypts");
    assert!(matches!(
        decrypted.rotate(std::slice::from_ref(&alice.recipient)),
        Err(SopsError::NotRewritable(_))
    ));
}

#[test]
fn encrypted_regex_selects_only_matching_subtrees() {
    let alice = party();
    let tree = yaml::parse("metadata:\n    name: app\ndata:\n    token: s3cret\n").expect("parses");
    let written = encrypt_new(
        Format::Yaml,
        &tree,
        std::slice::from_ref(&alice.recipient),
        Selection::EncryptedRegex("^data$".into()),
    )
    .expect("encrypts");
    assert!(written.text.contains("name: app\n"));
    assert!(!written.text.contains("s3cret"));
    assert!(written.text.contains("    encrypted_regex: \"^data$\"\n"));
    let file = write_and_read(&written, Format::Yaml);
    assert_eq!(
        file.decrypt(&alice.identities).expect("decrypts").tree,
        tree
    );
}

/// `"- "` repeated: a 40 KB block-style YAML nested 20,000 levels, the shape
/// that overflowed the stack before the readers counted depth.
fn nested_block_yaml(levels: usize) -> String {
    format!("k:\n{}x\n", "- ".repeat(levels))
}

fn nested_json(levels: usize) -> String {
    format!("{{\"k\":{}1{}}}", "[".repeat(levels), "]".repeat(levels))
}

#[test]
fn nesting_beyond_the_limit_is_refused_by_both_readers() {
    for format in [Format::Yaml, Format::Json] {
        let text = match format {
            Format::Yaml => nested_block_yaml(20_000),
            Format::Json => nested_json(20_000),
        };
        let err = format.parse(&text).expect_err("refused");
        assert!(
            err.to_string().contains("nested deeper than 100 levels"),
            "{err}"
        );
        let err = EncryptedFile::parse(&text, format).expect_err("refused");
        assert!(err.to_string().contains("nested deeper than"), "{err}");
    }
    // One level past the limit: the root map is level 1, each list one more.
    assert!(yaml::parse(&nested_block_yaml(crate::value::MAX_DEPTH)).is_err());
    assert!(json::parse(&nested_json(crate::value::MAX_DEPTH)).is_err());
}

#[test]
fn the_deepest_readable_document_round_trips_in_both_formats() {
    let alice = party();
    let levels = crate::value::MAX_DEPTH - 1;
    for (format, text) in [
        (Format::Yaml, nested_block_yaml(levels)),
        (Format::Json, nested_json(levels)),
    ] {
        let tree = format.parse(&text).expect("at the limit parses");
        assert_eq!(crate::value::depth(&tree), crate::value::MAX_DEPTH);
        let written = encrypt_new(
            format,
            &tree,
            std::slice::from_ref(&alice.recipient),
            Selection::default(),
        )
        .expect("encrypts");
        let file = write_and_read(&written, format);
        assert_eq!(
            file.decrypt(&alice.identities).expect("decrypts").tree,
            tree
        );
    }
}

#[test]
fn nothing_deeper_than_the_readers_accept_is_written() {
    let alice = party();
    let mut nested = Value::Scalar(Scalar::string("x"));
    for _ in 0..crate::value::MAX_DEPTH {
        nested = Value::List(vec![nested]);
    }
    let tree = vec![("k".to_owned(), nested)];
    for format in [Format::Yaml, Format::Json] {
        let result = encrypt_new(
            format,
            &tree,
            std::slice::from_ref(&alice.recipient),
            Selection::default(),
        );
        assert!(
            matches!(result, Err(SopsError::TooDeep(depth)) if depth == crate::value::MAX_DEPTH + 1),
            "{format:?}"
        );
    }
    let decrypted = encrypt_new(
        Format::Yaml,
        &sample(),
        std::slice::from_ref(&alice.recipient),
        Selection::default(),
    )
    .expect("encrypts");
    let file = write_and_read(&decrypted, Format::Yaml);
    let decrypted = file.decrypt(&alice.identities).expect("decrypts");
    assert!(matches!(
        decrypted.reencrypt(&tree),
        Err(SopsError::TooDeep(_))
    ));
}

#[test]
fn duplicate_keys_are_found_in_linear_time() {
    use std::fmt::Write as _;
    // 80,000 keys took 37 s in a release build while each key was compared
    // with every earlier one; a debug build now reads them in well under one.
    let keys = 80_000;
    let mut yaml_text = String::new();
    let mut json_text = String::from("{");
    for index in 0..keys {
        let _ = writeln!(yaml_text, "key{index}: v");
        let _ = write!(json_text, "\"key{index}\":\"v\",");
    }
    json_text.push_str("\"key0\":\"again\"}");
    let started = std::time::Instant::now();
    assert_eq!(yaml::parse(&yaml_text).expect("parses").len(), keys);
    let err = json::parse(&json_text).expect_err("duplicate");
    assert!(err.to_string().contains("duplicate key `key0`"), "{err}");
    let elapsed = started.elapsed();
    assert!(elapsed < std::time::Duration::from_secs(10), "{elapsed:?}");
}
