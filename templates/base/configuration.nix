{ config, pkgs, ... }:
{
  imports = [
    ./instance-options.nix
  ];

  # Later rebuilds fetch the repos with it.
  environment.systemPackages = [ pkgs.git ];
  nix.settings.experimental-features = [ "nix-command" "flakes" ];
  # The release this host was first installed with; never change it afterwards.
  system.stateVersion = "25.11";

  networking.domain = config.site.instance.domain;
  # Enabled, NixOS declares the `nginx` user that reads the certificate.
  services.nginx.enable = true;
  services.nginx.virtualHosts."www.${config.site.instance.domain}" = {
    forceSSL = true;
    sslCertificate = config.sops.secrets."tls/fullchain".path;
    sslCertificateKey = config.sops.secrets."tls/key".path;
  };
}
