{ pkgs, ... }:
{
  services.webhook = {
    hooks.deploy = {
      execute-command = "/run/current-system/sw/bin/deploy";
      trigger-rule.match = {
        type = "payload-hmac-sha256";
        secret-file = "@SECRETS@/webhook-hmac";
        parameter = { source = "header"; name = "X-Hub-Signature-256"; };
      };
    };
    urlPrefix = "https://hooks.ci.example.net/hooks";
    notify = [ "admin@ci.example.net" "ops@ci.example.net" ];
  };
}
