{
  description = "fromgit: split a NixOS flake into a generic base and a private instance, and prove the split";

  inputs.nixpkgs.url = "github:NixOS/nixpkgs/nixos-25.11";

  outputs =
    { self, nixpkgs }:
    let
      inherit (nixpkgs) lib;

      systems = [
        "x86_64-linux"
        "aarch64-linux"
      ];
      forAllSystems = f: lib.genAttrs systems (system: f nixpkgs.legacyPackages.${system});

      bins = [
        "instance-extract"
        "cert-seal"
        "leak-scan"
        "closure-diff"
        "vm-prove"
      ];
    in
    {
      packages = forAllSystems (
        pkgs:
        lib.genAttrs bins (
          bin:
          pkgs.callPackage ./nix/package.nix {
            pname = bin;
            bins = [ bin ];
          }
        )
        // {
          # All five binaries from a single workspace build.
          default = pkgs.callPackage ./nix/package.nix {
            pname = "fromgit";
            inherit bins;
          };
        }
      );

      apps = lib.genAttrs systems (
        system:
        lib.genAttrs bins (bin: {
          type = "app";
          program = "${self.packages.${system}.${bin}}/bin/${bin}";
          meta.description = "Run ${bin}";
        })
      );

      checks = forAllSystems (
        pkgs:
        pkgs.callPackage ./nix/checks.nix {
          package = self.packages.${pkgs.stdenv.hostPlatform.system}.default;
          flakeSource = self;
        }
      );

      devShells = forAllSystems (pkgs: {
        default = pkgs.mkShell {
          packages = with pkgs; [
            cargo
            rustc
            clippy
            rustfmt
            sops
            age
            openssh
            nix
            incus
          ];
        };
      });

      formatter = forAllSystems (pkgs: pkgs.nixfmt-rfc-style);

      templates = {
        base = {
          path = ./templates/base;
          description = "A generic NixOS base flake, free of instance data, for an Incus container or virtual machine";
        };
        instance = {
          path = ./templates/instance;
          description = "A private instance repo that imports a base and holds its sops secrets";
        };
      };
    };
}
