//! fromgit keeps its own tree generic: `leak-scan` over the repository's
//! working tree (a tree-only scan: the history is checked by the pre-push
//! hook, not here, since a CI clone may be shallow) finds nothing beyond the
//! reasoned suppressions in `.leak-scan.toml`, and none of those is stale.

use fromgit_testkit::{fromgit_bin, repo_root, run};

#[test]
fn the_repository_tree_is_clean() {
    let repo = repo_root();
    let output = run(
        &fromgit_bin("leak-scan"),
        [".", "--fail-unused-suppressions"],
        &repo,
        &[],
        b"",
    );
    assert_eq!(
        output.status.code(),
        Some(0),
        "leak-scan found something in fromgit's own tree:\n{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}
