//! Every `.nix` file of the repository parses with the real Nix parser
//! (`nix-instantiate --parse`, Nix 2.8 from Debian), and `flake.lock` pins
//! the nixpkgs release the workspace's `rust-version` was chosen for.

#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};

use fromgit_testkit::{peer, repo_root as repo, run, success};

fn nix_files(dir: &Path, found: &mut Vec<PathBuf>) {
    for entry in fs_err::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        if path.is_dir() {
            if !matches!(name.as_str(), "target" | ".git" | ".cache") {
                nix_files(&path, found);
            }
        } else if path.extension().is_some_and(|e| e == "nix") {
            found.push(path);
        }
    }
}

#[test]
#[cfg_attr(
    missing_nix_instantiate,
    ignore = "`nix-instantiate` not found when the tests were built: `bash tests/run --install-only` installs it; under CI=true the test fails instead"
)]
fn every_nix_file_parses() {
    let Some(nix_instantiate) = peer("nix-instantiate") else {
        return;
    };
    let mut files = Vec::new();
    nix_files(&repo(), &mut files);
    assert!(
        files.iter().any(|f| f.ends_with("flake.nix")),
        "flake.nix not found"
    );
    for file in files {
        let output = run(
            &nix_instantiate,
            [std::ffi::OsStr::new("--parse"), file.as_os_str()],
            &repo(),
            &[],
            b"",
        );
        success(
            &output,
            &format!("nix-instantiate --parse {}", file.display()),
        );
    }
}

#[test]
fn flake_lock_pins_nixos_25_11() {
    let lock = fs_err::read_to_string(repo().join("flake.lock")).unwrap();
    for pinned in [
        "\"rev\": \"8fd9daa3db09ced9700431c5b7ad0e8ba199b575\"",
        "\"narHash\": \"sha256-Ti+ZBvW6yrWWAg2szExVTwCd4qOJ3KlVr1tFHfyfi8Q=\"",
        "\"lastModified\": 1778430510",
    ] {
        assert!(lock.contains(pinned), "flake.lock lacks {pinned}");
    }
}
