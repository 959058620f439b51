//! `verify --base` on the base's git history, not only its tree.
//!
//! A base whose tree is generic can still carry the instance in every
//! earlier commit: a push publishes them all. Every object of the base's
//! repository (blobs, trees' file names, commit messages) is read once with
//! `git cat-file --batch-all-objects` and checked for the facts of
//! `instance.nix` (any letter case) and the decrypted secret values. Hits
//! name the object, never the value.

use std::io::{BufRead as _, BufReader, Read as _};
use std::path::Path;
use std::process::{Command, Stdio};

use fromgit_sops::{EncryptedFile, Format, Identities, Value};
use zeroize::Zeroizing;

use crate::basecheck::Outcome;

/// Values shorter than this match by chance (a port, `true`).
const MIN_SECRET_LEN: usize = 8;

/// The decrypted values of the leaves that were `ENC[…]` in the file (clear,
/// MAC-covered facts are not secrets).
fn secret_leaves(encrypted: &Value, decrypted: &Value, out: &mut Vec<Zeroizing<Vec<u8>>>) {
    match (encrypted, decrypted) {
        (Value::Map(e), Value::Map(d)) => {
            for ((_, ev), (_, dv)) in e.iter().zip(d) {
                secret_leaves(ev, dv, out);
            }
        }
        (Value::List(e), Value::List(d)) => {
            for (ev, dv) in e.iter().zip(d) {
                secret_leaves(ev, dv, out);
            }
        }
        (Value::Scalar(e), Value::Scalar(d))
            if e.text.starts_with("ENC[") && d.text.len() >= MIN_SECRET_LEN =>
        {
            out.push(Zeroizing::new(d.text.as_bytes().to_vec()));
        }
        _ => {}
    }
}

/// The decrypted values of every sops file under `instance/secrets`, at any
/// depth (`secrets/hosts/web.yaml` as well as `secrets/web.yaml`), as the
/// sops checks find them.
fn secret_values(instance: &Path, identities: &Identities) -> Vec<Zeroizing<Vec<u8>>> {
    let mut out = Vec::new();
    for path in crate::sops_check::sops_files(&instance.join("secrets")) {
        let Some(format) = Format::from_path(&path) else {
            continue;
        };
        let Ok(text) = fs_err::read_to_string(&path) else {
            continue;
        };
        let Ok(file) = EncryptedFile::parse(&text, format) else {
            continue;
        };
        if let Ok(decrypted) = file.decrypt(identities) {
            for ((_, encrypted), (_, plain)) in file.tree.iter().zip(&decrypted.tree) {
                secret_leaves(encrypted, plain, &mut out);
            }
        }
    }
    out
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    !needle.is_empty() && haystack.windows(needle.len()).any(|w| w == needle)
}

/// Scans every object of the base's repository; `None` when the base is no
/// git repository.
pub fn check(base: &Path, instance: &Path, identities: &Identities) -> Option<Outcome> {
    if !base.join(".git").exists() {
        return None;
    }
    let facts = fs_err::read_to_string(instance.join("instance.nix"))
        .map(|text| crate::basecheck::facts(&text))
        .unwrap_or_default();
    let secrets = secret_values(instance, identities);
    let fail = |detail: String| Outcome {
        name: "base: history holds no fact or secret",
        ok: false,
        detail,
    };
    let child = Command::new("git")
        .arg("-C")
        .arg(base)
        .args(["cat-file", "--batch-all-objects", "--batch"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn();
    let Ok(mut child) = child else {
        return Some(fail(
            "`git` could not be run to read the history".to_owned(),
        ));
    };
    let Some(stdout) = child.stdout.take() else {
        return Some(fail("no output from `git cat-file`".to_owned()));
    };
    let mut reader = BufReader::new(stdout);
    let mut hits = Vec::new();
    let mut objects = 0usize;
    let mut header = String::new();
    loop {
        header.clear();
        if reader.read_line(&mut header).unwrap_or(0) == 0 {
            break;
        }
        let mut parts = header.split_whitespace();
        let (Some(oid), Some(kind), Some(size)) = (parts.next(), parts.next(), parts.next()) else {
            break;
        };
        let Ok(size) = size.parse::<usize>() else {
            break;
        };
        let mut body = Zeroizing::new(vec![0u8; size + 1]);
        if reader.read_exact(&mut body).is_err() {
            break;
        }
        objects += 1;
        let lower = Zeroizing::new(body.to_ascii_lowercase());
        let short = &oid[..oid.len().min(12)];
        for (index, fact) in facts.iter().enumerate() {
            if contains(&lower, fact.as_bytes()) {
                hits.push(format!(
                    "{kind} {short} (fact {} of instance.nix)",
                    index + 1
                ));
            }
        }
        if secrets.iter().any(|secret| contains(&body, secret)) {
            hits.push(format!("{kind} {short} (a secret of the instance)"));
        }
    }
    let status = child.wait().ok().filter(std::process::ExitStatus::success);
    if status.is_none() {
        return Some(fail("`git cat-file --batch-all-objects` failed".to_owned()));
    }
    Some(if hits.is_empty() {
        Outcome {
            name: "base: history holds no fact or secret",
            ok: true,
            detail: format!(
                "none of {} facts and {} secret values in any of the repository's {objects} objects",
                facts.len(),
                secrets.len()
            ),
        }
    } else {
        fail(format!("reachable in the repository: {}", hits.join(", ")))
    })
}
