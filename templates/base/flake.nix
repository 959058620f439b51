{
  description = "A generic NixOS base: no domain, no secret";

  inputs = {
    nixpkgs.url = "github:NixOS/nixpkgs/nixos-25.11";
    sops-nix.url = "github:Mic92/sops-nix";
    # The private instance repo (instance.nix, .sops.yaml, secrets/).
    instance.url = "path:../instance";
  };

  outputs = { self, nixpkgs, sops-nix, instance, ... }:
    let
      # Read before evaluation: the guest module to import depends on it.
      platform = (import "${instance}/instance.nix").platform or "unset";
    in
    {
      nixosModules.site = import ./configuration.nix;

      nixosConfigurations.host = nixpkgs.lib.nixosSystem {
        system = "x86_64-linux";
        modules = [
          self.nixosModules.site
          (import ./platform.nix platform)
          instance.nixosModules.instance
          sops-nix.nixosModules.sops
        ];
      };
    };
}
