{
  description = "Private instance data for site";

  outputs = { self }: {
    nixosModules.instance = { ... }: {
      site.instance = import ./instance.nix;
      sops.defaultSopsFile = ./secrets/secrets.yaml;
    };
  };
}
