{ lib, ... }:
let
  # every router is a subdomain of the instance
  routers = {
    drone = { host = "drone.ci.example.net"; port = 8080; };
    hooks = { host = "hooks.ci.example.net"; port = 9000; };
    dash  = { host = "dash.ci.example.net";   port = 3000; };
  };
in
{
  services.traefik.dynamicConfigOptions.http = {
    routers = lib.mapAttrs (name: r: {
      rule = "Host(`${r.host}`)";
      service = name;
      tls = { };
    }) routers;
    services = lib.mapAttrs (name: r: {
      loadBalancer.servers = [ { url = "http://127.0.0.1:${toString r.port}"; } ];
    }) routers;
  };

  # The wildcard certificate, copied onto the host by hand.
  services.traefik.dynamicConfigOptions.tls.certificates = [
    { certFile = "@SECRETS@/fullchain.pem"; keyFile = "@SECRETS@/privkey.pem"; }
  ];
  services.traefik.staticConfigOptions.entryPoints.websecure.address = ":443";
}
