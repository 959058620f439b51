#!/usr/bin/env python3
"""Benchmark: `instance-extract plan` and `apply` on a generated base of 500
Nix files (about 50,000 lines), against what an operator does by hand
(`grep -rn` to find the domain, `sed -i` to replace it), side by side.

grep and sed see only text: they cannot tell a comment from a string, an
attribute name from a `let` binding, or add `config` to a module's
arguments; the comparison shows what the syntax-aware rewrite costs.

Usage: python3 bench/instance_extract.py [--runs N] [--ours PATH]
Needs: age-keygen, cargo, grep, sed.
"""

import argparse
import os
import shutil
import subprocess
import sys
import tempfile

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from benchlib import in_turn, release_binary, timed  # noqa: E402

DOMAIN = "ci.example.net"
MODULE = """{{ config, lib, pkgs, ... }}:
# service {n}: served under {domain}
let
  host = "svc{n}.{domain}";
  port = {port};
in
{{
  services.nginx.virtualHosts."svc{n}.{domain}" = {{
    forceSSL = true;
    locations."/".proxyPass = "http://127.0.0.1:${{toString port}}";
    extraConfig = ''
      add_header X-Served-By svc{n}.{domain};
      proxy_set_header Host $host;
    '';
  }};
  systemd.services."svc{n}" = {{
    description = "service {n}";
    environment = {{
      PUBLIC_URL = "https://svc{n}.{domain}/";
      MAIL_FROM = "noreply@{domain}";
      LOG_LEVEL = "info";
    }};
    serviceConfig = {{
      ExecStart = "${{pkgs.hello}}/bin/hello --port ${{toString port}}";
      DynamicUser = true;
      Restart = "always";
    }};
  }};
{filler}
}}
"""


def make_base(root, files=500):
    os.makedirs(os.path.join(root, "services"))
    filler = "\n".join(f"  # note {i}: nothing instance-specific here\n  x{i} = {i};" for i in range(32))
    for n in range(files):
        with open(os.path.join(root, "services", f"svc{n}.nix"), "w") as f:
            f.write(MODULE.format(n=n, domain=DOMAIN, port=10000 + n, filler=filler))
    imports = "\n".join(f"    ./services/svc{n}.nix" for n in range(files))
    with open(os.path.join(root, "configuration.nix"), "w") as f:
        f.write(f"{{ config, ... }}:\n{{\n  imports = [\n{imports}\n  ];\n  networking.domain = \"{DOMAIN}\";\n}}\n")
    with open(os.path.join(root, "flake.nix"), "w") as f:
        f.write("{\n  inputs.nixpkgs.url = \"github:NixOS/nixpkgs/nixos-25.11\";\n  outputs = { self, nixpkgs, ... }: {\n"
                "    nixosConfigurations.host = nixpkgs.lib.nixosSystem { modules = [ ./configuration.nix ]; };\n  };\n}\n")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--ours", default=None)
    args = parser.parse_args()
    ours = args.ours or release_binary(REPO, "instance-extract")
    work = tempfile.mkdtemp(prefix="fromgit-bench-")
    try:
        pristine = os.path.join(work, "pristine")
        make_base(pristine)
        lines = sum(1 for d, _, fs in os.walk(pristine) for f in fs for _ in open(os.path.join(d, f)))
        key = os.path.join(work, "key.txt")
        subprocess.run(["age-keygen", "-o", key], check=True, capture_output=True)
        recipient = subprocess.run(["age-keygen", "-y", key], check=True, capture_output=True, text=True).stdout.strip()
        scratch = os.path.join(work, "scratch")

        def fresh_copy():
            shutil.rmtree(scratch, ignore_errors=True)
            shutil.copytree(pristine, os.path.join(scratch, "base"))
            return os.path.join(scratch, "base")

        def apply_ours():
            base = fresh_copy()
            return timed([ours, "apply", "--base", base, "--instance", os.path.join(scratch, "instance"),
                          "--domain", DOMAIN, "--name", "site", "-r", recipient])

        def sed_by_hand():
            base = fresh_copy()
            files = [os.path.join(d, f) for d, _, fs in os.walk(base) for f in fs]
            return timed(["sed", "-i", f"s/{DOMAIN}/${{config.site.instance.domain}}/g", *files])

        results = in_turn({
            "instance-extract plan": lambda: timed([ours, "plan", "--base", pristine, "--domain", DOMAIN]),
            "grep -rn (by hand)": lambda: timed(["grep", "-rnF", DOMAIN, pristine]),
            "instance-extract apply": apply_ours,
            "sed -i (by hand)": sed_by_hand,
        }, args.runs)
        print(f"base: 500 Nix files, {lines} lines; runs per tool: {args.runs} (after 2 warm-up rounds), "
              f"machine: {os.cpu_count()} cores")
        print()
        print("| command | median (ms) | peak RSS (MiB) |")
        print("|---|---:|---:|")
        for name, (median, peak) in results.items():
            print(f"| {name} | {median * 1000:.1f} | {peak / 1024:.1f} |")
    finally:
        shutil.rmtree(work)


if __name__ == "__main__":
    main()
