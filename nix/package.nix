# Builds fromgit binaries from the whole Cargo workspace in one `cargo build`.
# `bins` picks the binaries (each package is named after its binary); every
# one of them is wrapped so the external programs it drives come from nixpkgs.
{
  lib,
  stdenv,
  rustPlatform,
  makeWrapper,
  installShellFiles,
  sops,
  age,
  openssh,
  nix,
  pname ? "fromgit",
  bins ? [
    "instance-extract"
    "cert-seal"
    "leak-scan"
    "closure-diff"
    "vm-prove"
  ],
  mainProgram ? builtins.head bins,
}:

let
  workspace = (lib.importTOML ../Cargo.toml).workspace.package;
  runtimePath = lib.makeBinPath [
    sops
    age
    openssh
    nix
  ];
in
rustPlatform.buildRustPackage {
  inherit pname;
  inherit (workspace) version;

  src = import ./source.nix { inherit lib; };

  cargoLock.lockFile = ../Cargo.lock;

  cargoBuildFlags = lib.concatMap (bin: [
    "--package"
    bin
  ]) bins;

  # Tests run in CI and in dedicated flake checks, not in every package build.
  doCheck = false;

  nativeBuildInputs = [
    makeWrapper
    installShellFiles
  ];

  # Man pages and completions come from each binary's `--generate KIND`,
  # before it is wrapped; a cross build cannot run it and ships without them.
  postInstall = ''
    for bin in ${lib.escapeShellArgs bins}; do
      ${lib.optionalString (stdenv.buildPlatform.canExecute stdenv.hostPlatform) ''
        "$out/bin/$bin" --generate man > "$bin.1"
        installManPage "$bin.1"
        installShellCompletion --cmd "$bin" \
          --bash <("$out/bin/$bin" --generate complete-bash) \
          --zsh <("$out/bin/$bin" --generate complete-zsh) \
          --fish <("$out/bin/$bin" --generate complete-fish)
      ''}
      wrapProgram "$out/bin/$bin" --prefix PATH : ${lib.escapeShellArg runtimePath}
    done
  '';

  meta = {
    description = "Split a NixOS flake into a generic base and a private instance, and prove the split";
    license = with lib.licenses; [
      mit
      asl20
    ];
    platforms = lib.platforms.linux;
    inherit mainProgram;
  };
}
