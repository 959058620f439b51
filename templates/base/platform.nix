# The Incus guest platform: what a blank NixOS instance on Incus needs to
# boot, from nixpkgs' own guest modules. A container gets
# `virtualisation/lxc-container.nix` (container boot, the init link Incus
# starts); a virtual machine gets `virtualisation/incus-virtual-machine.nix`
# (the Incus agent, systemd-boot, the root and ESP file systems by label,
# the QEMU guest drivers), which is its hardware configuration.
#
# One fact chooses: `platform` in the instance repo's `instance.nix`. A
# module's `imports` cannot read `config`, so `flake.nix` reads the fact and
# calls this file with it; the option below declares the same fact, typed,
# and the assertion keeps the imported module and the option equal.
platform:
{ config, lib, modulesPath, ... }:
let
  guestModules = {
    incus-container = modulesPath + "/virtualisation/lxc-container.nix";
    incus-vm = modulesPath + "/virtualisation/incus-virtual-machine.nix";
  };
in
{
  # An unknown value imports nothing; the option's type then names it.
  imports = if guestModules ? ${platform} then [ guestModules.${platform} ] else [ ];

  options.site.instance.platform = lib.mkOption {
    type = lib.types.enum (builtins.attrNames guestModules);
    description = "The Incus guest this host is, set by the private instance repo.";
  };

  config.assertions = [
    {
      assertion = config.site.instance.platform == platform;
      message = "`site.instance.platform` is `${config.site.instance.platform}`, but flake.nix imported the guest module for `${platform}`";
    }
  ];
}
