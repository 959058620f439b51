{ config, ... }:
{
  imports = [
    ./instance-options.nix
  ];

  networking.domain = config.site.instance.domain;
  # Enabled, NixOS declares the `nginx` user that reads the certificate.
  services.nginx.enable = true;
  services.nginx.virtualHosts."www.${config.site.instance.domain}" = {
    forceSSL = true;
    sslCertificate = config.sops.secrets."tls/fullchain".path;
    sslCertificateKey = config.sops.secrets."tls/key".path;
  };
}
