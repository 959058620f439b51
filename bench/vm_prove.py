#!/usr/bin/env python3
"""Benchmark: a whole `vm-prove run` against a hand-written shell script that
does the same proof with the `incus` CLI, side by side in one session.

Both sides do the same sequence on the same image, in the same project:
create a container, wait for systemd, push the bootstrap key, push the base
and instance repos as git bundles, run the same install blocks (clone,
decrypt the sealed certificate with sops, start a TLS service), check the
units, the secret files and the served certificate, then delete. The script
runs its checks one after the other, as such scripts do; vm-prove runs the
independent ones at once. Reports medians and the ratio.

Usage: python3 bench/vm_prove.py [--runs N] [--ours PATH]
Needs: the Incus daemon of `tests/incus-setup` (its env file), incus, git,
openssl, age-keygen, cargo.
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

KEY_PATH = "/var/lib/sops-nix/key.txt"
SEALED = "/srv/instance/secrets/secrets.yaml"

# The install runbook, once: vm-prove reads it as Markdown, the script as files.
BLOCKS = [
    ("clone", """git clone -q {base} /srv/base
git -C /srv/base checkout -q --detach {base_commit}
git clone -q {instance} /srv/instance
git -C /srv/instance checkout -q --detach {instance_commit}"""),
    ("decrypt", f"""install -d -m 0751 /run/secrets
export SOPS_AGE_KEY_FILE={KEY_PATH}
umask 077
sops -d --extract '["tls"]["fullchain"]' {SEALED} > /run/secrets/tls.crt
sops -d --extract '["tls"]["key"]' {SEALED} > /run/secrets/tls.key
chmod 0400 /run/secrets/tls.crt /run/secrets/tls.key"""),
    ("serve", """cat > /etc/systemd/system/tls-test.service <<'UNIT'
[Service]
ExecStart=/usr/bin/openssl s_server -quiet -accept 443 -cert /run/secrets/tls.crt -key /run/secrets/tls.key -www
[Install]
WantedBy=multi-user.target
UNIT
systemctl daemon-reload
systemctl enable --now tls-test.service
for i in $(seq 100); do
  if (exec 3<>/dev/tcp/127.0.0.1/443) 2>/dev/null; then exit 0; fi
  sleep 0.1
done
exit 1"""),
]

SCRIPT = r"""set -euo pipefail
work=$1 project=$2 image=$3 name=$4 fingerprint=$5
inc() { incus --project "$project" "$@"; }
trap 'inc delete --force "$name" >/dev/null 2>&1 || true' EXIT
inc launch "$image" "$name" -c limits.memory=256MiB -c user.bench=1 >/dev/null
until inc exec "$name" -- systemctl is-system-running --wait >/dev/null 2>&1; do sleep 0.25; done
inc exec "$name" -- install -d -m 0700 /var/lib/sops-nix /var/lib/vm-prove /var/lib/vm-prove/repos
inc file push --mode 0600 "$work/bootstrap.txt" "$name/var/lib/sops-nix/key.txt"
for repo in base instance; do
  git -C "$work/$repo" bundle create --quiet "$work/$repo.bundle" HEAD
  inc file push --mode 0600 "$work/$repo.bundle" "$name/var/lib/vm-prove/repos/$repo.bundle"
done
for block in "$work"/block-*.sh; do
  inc exec "$name" -- timeout -k 10 600 bash -euo pipefail -c "$(cat "$block")" >/dev/null
done
[ -z "$(inc exec "$name" -- systemctl list-jobs --no-legend --plain)" ]
[ -z "$(inc exec "$name" -- systemctl list-units --state=failed --no-legend --plain)" ]
inc exec "$name" -- systemctl show tls-test.service -p ActiveState | grep -qx ActiveState=active
for f in /var/lib/sops-nix/key.txt /run/secrets/tls.key; do
  inc exec "$name" -- stat -c '%U %G %a %s' "$f" >/dev/null
  ! inc exec "$name" -- runuser -u nobody -- test -r "$f"
done
served=$(inc exec "$name" -- bash -c 'openssl s_client -connect 127.0.0.1:443 -servername ci.example.net </dev/null 2>/dev/null | openssl x509 -noout -fingerprint -sha256')
[ "${served#*=}" = "$fingerprint" ]
inc delete --force "$name"
trap - EXIT
"""


def run(argv, cwd=None, env=None):
    return subprocess.run(argv, cwd=cwd, env=env, check=True, capture_output=True, text=True).stdout


def git(repo, *args):
    env = dict(os.environ, GIT_AUTHOR_NAME="bench", GIT_AUTHOR_EMAIL="bench@fromgit.invalid",
               GIT_COMMITTER_NAME="bench", GIT_COMMITTER_EMAIL="bench@fromgit.invalid")
    return run(["git", "-C", repo, *args], env=env).strip()


def make_repos(work, cert_seal):
    run(["age-keygen", "-o", os.path.join(work, "bootstrap.txt")])
    recipient = run(["age-keygen", "-y", os.path.join(work, "bootstrap.txt")]).strip()
    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes"]
    run(["openssl", "req", "-x509", *ec, "-keyout", "root.key", "-out", "root.pem", "-days", "30",
         "-subj", "/CN=bench root", "-addext", "basicConstraints=critical,CA:true"], cwd=work)
    run(["openssl", "req", *ec, "-keyout", "key.pem", "-out", "leaf.csr", "-subj", "/CN=example.net"], cwd=work)
    with open(os.path.join(work, "leaf.ext"), "w") as f:
        f.write("subjectAltName=DNS:*.example.net,DNS:example.net\nextendedKeyUsage=serverAuth\n")
    run(["openssl", "x509", "-req", "-in", "leaf.csr", "-CA", "root.pem", "-CAkey", "root.key", "-CAcreateserial",
         "-days", "90", "-extfile", "leaf.ext", "-out", "leaf.pem"], cwd=work)
    base, instance = os.path.join(work, "base"), os.path.join(work, "instance")
    os.makedirs(base)
    os.makedirs(os.path.join(instance, "secrets"))
    with open(os.path.join(base, "flake.lock"), "w") as f:
        f.write('{"version": 7}\n')
    with open(os.path.join(instance, ".sops.yaml"), "w") as f:
        f.write(f"creation_rules:\n  - path_regex: secrets/.*\\.yaml$\n    age: {recipient}\n")
    run([cert_seal, "seal", "--cert", os.path.join(work, "leaf.pem"), "--key", os.path.join(work, "key.pem"),
         "--domain", "example.net", "--out", "secrets/secrets.yaml"], cwd=instance)
    for repo in (base, instance):
        git(repo, "init", "-q", "-b", "main")
        git(repo, "add", ".")
        git(repo, "commit", "-qm", "bench")
    fingerprint = run(["openssl", "x509", "-noout", "-fingerprint", "-sha256", "-in", "leaf.pem"], cwd=work)
    return fingerprint.strip().split("=", 1)[1], git(base, "rev-parse", "HEAD"), git(instance, "rev-parse", "HEAD")


def write_inputs(work, env, fingerprint_commits):
    _, base_commit, instance_commit = fingerprint_commits
    values = {"base": "/var/lib/vm-prove/repos/base.bundle", "instance": "/var/lib/vm-prove/repos/instance.bundle",
              "base_commit": base_commit, "instance_commit": instance_commit}
    with open(os.path.join(work, "install.md"), "w") as md:
        md.write("# Install\n")
        for index, (name, body) in enumerate(BLOCKS):
            templated = (body.replace("{base}", "{{ repos.base.bundle }}")
                         .replace("{instance}", "{{ repos.instance.bundle }}")
                         .replace("{base_commit}", "{{ repos.base.commit }}")
                         .replace("{instance_commit}", "{{ repos.instance.commit }}"))
            md.write(f"\n```sh {{name={name} vm-prove=run timeout=600}}\n{templated}\n```\n")
            with open(os.path.join(work, f"block-{index}.sh"), "w") as f:
                f.write(body.format(**values) if name == "clone" else body)
    with open(os.path.join(work, "vm-prove.toml"), "w") as f:
        f.write(f"""[incus]
url = "{env['FROMGIT_INCUS_URL']}"
project = "{env['FROMGIT_INCUS_PROJECT']}"
client_cert = "{env['FROMGIT_INCUS_CERT']}"
client_key = "{env['FROMGIT_INCUS_KEY']}"
server_cert = "{env['FROMGIT_INCUS_CA']}"

[instance]
image = "{env['FROMGIT_INCUS_IMAGE']}"
memory = "256MiB"
name_prefix = "bench"

[guardrails]
allowed_projects = ["{env['FROMGIT_INCUS_PROJECT']}"]
allowed_name_prefixes = ["bench"]
memory_budget = "16GiB"

[secret]
source = "bootstrap.txt"

[runbook]
path = "install.md"

[[repos]]
name = "base"
path = "base"

[[repos]]
name = "instance"
path = "instance"

[checks]
units = ["tls-test.service"]
[[checks.secrets]]
path = "/run/secrets/tls.key"
[[checks.tls]]
server_name = "ci.example.net"
sealed = "instance/secrets/secrets.yaml"

[evidence]
dir = "evidence"
""")
    with open(os.path.join(work, "by-hand.sh"), "w") as f:
        f.write(SCRIPT)


def load_env():
    path = os.environ.get("FROMGIT_INCUS_ENV", "/var/tmp/incus-ci/env")
    env = {}
    with open(path) as f:
        for line in f:
            key, _, value = line.strip().partition("=")
            env[key] = value
    return env


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--ours", default=None)
    args = parser.parse_args()
    ours = args.ours or release_binary(REPO, "vm-prove")
    cert_seal = release_binary(REPO, "cert-seal")
    env = load_env()
    work = tempfile.mkdtemp(prefix="fromgit-bench-")
    counter = iter(range(1_000_000))
    try:
        values = make_repos(work, cert_seal)
        write_inputs(work, env, values)
        tools = {
            "vm-prove run": lambda: timed([ours, "run", "--config", "vm-prove.toml"], cwd=work),
            "incus CLI script": lambda: timed(
                ["bash", os.path.join(work, "by-hand.sh"), work, env["FROMGIT_INCUS_PROJECT"],
                 env["FROMGIT_INCUS_IMAGE"], f"bench-sh-{os.getpid()}-{next(counter)}", values[0]]),
        }
        results = in_turn(tools, args.runs, warmup=1)
        baseline = results["incus CLI script"][0]
        print(f"runs per tool: {args.runs} (after 1 warm-up round), machine: {os.cpu_count()} cores")
        print()
        print("| tool | median (s) | peak RSS (MiB) | time vs the script |")
        print("|---|---:|---:|---:|")
        for name, (median, peak) in results.items():
            print(f"| {name} | {median:.2f} | {peak / 1024:.1f} | {median / baseline:.2f}× |")
    finally:
        shutil.rmtree(work)


if __name__ == "__main__":
    main()
