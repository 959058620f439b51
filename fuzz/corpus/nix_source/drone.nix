{ config, pkgs, ... }:
{
  services.drone = {
    enable = true;
    server = {
      host="drone.ci.example.net";   # odd formatting on purpose
      proto = "https";
      oauth = {
        clientId = "drone-ci";
        clientSecretFile = "@SECRETS@/drone-oauth-secret";
        authorizeUrl = "https://git.ci.example.net/login/oauth/authorize";
      };
      rpcSecretFile =
        "@SECRETS@/drone-rpc-secret";
    };
    runnerEnv = ''
      DRONE_RPC_HOST=drone.ci.example.net
      DRONE_RPC_PROTO=https
    '';
  };

  services.nginx.virtualHosts."dash.ci.example.net" = {
    locations."/".proxyPass = "http://127.0.0.1:3000";
  };
  users.users.drone.extraGroups = [ "ci" ];
}
