//! Secret files in place: owner, group, mode and size, and that `nobody`
//! cannot read them; the content is never read.

use super::probe::{check, sh};
use crate::config::parse_mode;
use crate::evidence::CheckRecord;
use crate::incus::Client;
use crate::prove::secret::Secret;

fn shell_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

/// Owner, group, mode and size of a secret file, and that `nobody` cannot
/// read it; the content is never read. An owner or group written `#<id>`
/// is compared numerically.
pub(super) async fn file_check(
    client: &Client,
    name: &str,
    secret: &Secret,
    path: String,
    owner: String,
    group: String,
    mode: String,
) -> CheckRecord {
    let script = format!(
        "stat -L -c '%U %G %u %g %a %s' {p}; if runuser -u nobody -- test -r {p}; then echo nobody-can-read; else echo nobody-cannot-read; fi",
        p = shell_quote(&path)
    );
    let want_mode = parse_mode(&mode)
        .map(|m| format!("{m:o}"))
        .unwrap_or(mode.clone());
    let expected = format!("{owner}:{group} {want_mode}, size > 0, not readable by nobody");
    let name_of = format!("secret `{path}`");
    match sh(client, name, &script, &name_of).await {
        Ok((0, text)) => {
            let mut lines = text.lines();
            let stat_line = lines.next().unwrap_or_default();
            let nobody = lines.next().unwrap_or_default();
            let (passed, observed) = stat_matches(stat_line, &owner, &group, &want_mode);
            check(
                name_of,
                passed && nobody == "nobody-cannot-read",
                expected,
                secret.redact(&format!("{observed}, {nobody}")),
            )
        }
        Ok((code, text)) => check(
            name_of,
            false,
            expected,
            format!("exit {code}: {}", secret.redact(&text)),
        ),
        Err(e) => check(name_of, false, expected, format!("could not run: {e}")),
    }
}

/// Compares `stat -c '%U %G %u %g %a %s'` with an owner and group as
/// written (a name, or `#<id>`) and an octal mode; also the size is not 0.
pub(crate) fn stat_matches(
    stat_line: &str,
    owner: &str,
    group: &str,
    mode: &str,
) -> (bool, String) {
    let fields: Vec<&str> = stat_line.split_whitespace().collect();
    let [user, grp, uid, gid, got_mode, size] = fields[..] else {
        return (false, stat_line.to_owned());
    };
    let is = |written: &str, name: &str, id: &str| match written.strip_prefix('#') {
        Some(want) => want == id,
        None => written == name,
    };
    let passed = is(owner, user, uid)
        && is(group, grp, gid)
        && got_mode == mode
        && size.parse::<u64>().is_ok_and(|s| s > 0);
    (
        passed,
        format!("{user}:{grp} (#{uid}:#{gid}) {got_mode}, {size} bytes"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn owners_by_name_or_id() {
        let line = "root nogroup 0 65534 400 12";
        assert!(stat_matches(line, "root", "#65534", "400").0);
        assert!(stat_matches(line, "#0", "nogroup", "400").0);
        assert!(!stat_matches(line, "#0", "root", "400").0);
        assert!(!stat_matches(line, "root", "nogroup", "600").0);
        assert!(!stat_matches("root root 0 0 400 0", "root", "root", "400").0);
        assert_eq!(
            stat_matches(line, "root", "nogroup", "400").1,
            "root:nogroup (#0:#65534) 400, 12 bytes"
        );
    }

    #[test]
    fn quoting() {
        assert_eq!(shell_quote("a'b"), r"'a'\''b'");
    }
}
