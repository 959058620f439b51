# The instance's facts: plain data, read by `nixosModules.instance`.
{
  domain = "example.org";
}
