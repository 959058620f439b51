{
  description = "Private instance data for site";

  outputs = { self }: {
    nixosModules.instance = { ... }: {
      site.instance = import ./instance.nix;
      sops.defaultSopsFile = ./secrets/secrets.yaml;
      # The bootstrap key, put on the host by hand (fromgit's docs/install.md).
      sops.age.keyFile = "/var/lib/sops-nix/key.txt";
      # Not the host's SSH keys: on a new host they are new, nothing is encrypted to them.
      sops.age.sshKeyPaths = [ ];
      sops.gnupg.sshKeyPaths = [ ];
      sops.age.generateKey = false;
    };
  };
}
