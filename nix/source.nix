# The workspace sources Cargo reads: manifests, lock file, the crates under
# `tools/` (with their non-Rust data such as leak-scan's rules) and the
# `tests` workspace member with its fixtures and the example it runs on.
{ lib }:
lib.fileset.toSource {
  root = ../.;
  fileset = lib.fileset.unions [
    ../Cargo.toml
    ../Cargo.lock
    ../clippy.toml
    ../tools
    ../tests
    ../examples
  ];
}
