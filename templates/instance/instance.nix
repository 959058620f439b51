# The instance's facts: plain data, read by `nixosModules.instance`.
{
  domain = "example.org";
  # The Incus guest: "incus-container" or "incus-vm" (the base's platform.nix).
  platform = "incus-container";
}
