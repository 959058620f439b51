{ config, ... }:
{
  imports = [
    ./instance-options.nix
  ];

  networking.domain = config.site.instance.domain;
  services.nginx.virtualHosts."www.${config.site.instance.domain}" = {
    forceSSL = true;
    sslCertificate = config.sops.secrets."tls/fullchain".path;
    sslCertificateKey = config.sops.secrets."tls/key".path;
  };
}
