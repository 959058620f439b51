# The flake's checks: the build, the test suite (the tests that need no
# network; tests whose peer program is absent from the sandbox are ignored,
# with the reason),
# clippy with warnings denied, formatting, and leak-scan over the flake's
# own source tree.
{
  lib,
  rustPlatform,
  runCommand,
  cargo,
  rustfmt,
  clippy,
  sops,
  age,
  openssl,
  openssh,
  package,
  flakeSource,
}:
let
  src = import ./source.nix { inherit lib; };
  workspaceCheck =
    name: attrs:
    rustPlatform.buildRustPackage (
      {
        pname = "fromgit-${name}";
        inherit (package) version;
        inherit src;
        cargoLock.lockFile = ../Cargo.lock;
        installPhase = "touch $out";
      }
      // attrs
    );
in
{
  build = package;

  tests = workspaceCheck "tests" {
    # Build the binaries first: the end-to-end crate runs them.
    buildPhase = "cargo build --workspace --offline";
    nativeCheckInputs = [
      sops
      age
      openssl
      openssh
    ];
    checkPhase = "cargo test --workspace --offline";
    doCheck = true;
  };

  clippy = workspaceCheck "clippy" {
    nativeBuildInputs = [ clippy ];
    buildPhase = "cargo clippy --workspace --all-targets --offline -- -D warnings";
    doCheck = false;
  };

  # A tree-only scan: the store copy of the flake has no git history.
  leak-scan = runCommand "fromgit-leak-scan-tree" { } ''
    ${package}/bin/leak-scan --fail-unused-suppressions ${flakeSource}
    touch $out
  '';

  fmt = runCommand "fromgit-fmt" { nativeBuildInputs = [ cargo rustfmt ]; } ''
    cd ${src}
    cargo fmt --all -- --check
    touch $out
  '';
}
