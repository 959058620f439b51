# A stand-in for nixpkgs with only what fromgit's flake uses, each package a
# trivial derivation, so that `nix flake show` and `nix flake check
# --no-build` can evaluate the real flake offline. A wrong attribute name in
# the flake is a missing attribute here, and fails the test.
{
  description = "nixpkgs stand-in for offline evaluation of the fromgit flake";

  outputs = { self }:
    let
      systems = [ "x86_64-linux" "aarch64-linux" ];
      genAttrs = names: f: builtins.listToAttrs (map (name: { inherit name; value = f name; }) names);
      lib = {
        inherit genAttrs;
        importTOML = path: builtins.fromTOML (builtins.readFile path);
        makeBinPath = packages: builtins.concatStringsSep ":" (map (p: "${p}/bin") packages);
        concatMap = builtins.concatMap;
        escapeShellArg = arg: "'${arg}'";
        escapeShellArgs = args: builtins.concatStringsSep " " (map (arg: "'${arg}'") args);
        licenses = { mit = "MIT"; asl20 = "Apache-2.0"; };
        platforms.linux = systems;
        fileset = {
          unions = files:
            assert builtins.all builtins.pathExists files;
            files;
          toSource = { root, fileset }: root;
        };
      };
      packagesFor = system:
        let
          stub = name: derivation {
            inherit name system;
            builder = "/bin/sh";
            args = [ "-c" "echo ${name} > $out" ];
          };
          pkgs = {
            inherit lib;
            stdenv.hostPlatform.system = system;
            callPackage = f: args:
              let fn = if builtins.isFunction f then f else import f;
              in fn (builtins.intersectAttrs (builtins.functionArgs fn) pkgs // args);
            rustPlatform.buildRustPackage = attrs:
              assert builtins.pathExists attrs.cargoLock.lockFile;
              # Path arithmetic, not interpolation: the check must not copy the tree.
              assert builtins.pathExists (attrs.src + "/Cargo.toml");
              stub attrs.pname // { inherit (attrs) version; };
            runCommand = name: env: script: stub name;
            mkShell = attrs: stub "shell";
            nixfmt-rfc-style = stub "nixfmt";
          } // genAttrs [ "makeWrapper" "sops" "age" "openssh" "openssl" "nix" "incus" "cargo" "rustc" "clippy" "rustfmt" ] stub;
        in
        pkgs;
    in
    {
      inherit lib;
      legacyPackages = genAttrs systems packagesFor;
    };
}
