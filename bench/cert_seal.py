#!/usr/bin/env python3
"""Benchmark: `cert-seal check` against the openssl commands an operator runs
by hand for the same checks, side by side in one session.

The openssl side is the usual sequence: compare the key's and the leaf's
public keys, list the subjectAltNames and the extendedKeyUsage, verify the
chain, and `-checkend` 30 days; seven whole processes in one shell script.
`cert-seal check` does all of it (and more: chain order, duplicates, root,
key strength) in one process. Reports medians and the ratio.

Usage: python3 bench/cert_seal.py [--runs N] [--ours PATH]
Needs: openssl, cargo.
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

OPENSSL_CHECK = r"""set -eu
cd "$1"
a=$(openssl x509 -noout -pubkey -in leaf.pem | openssl sha256)
b=$(openssl pkey -pubout -in key.pem | openssl sha256)
[ "$a" = "$b" ]
openssl x509 -noout -ext subjectAltName -in leaf.pem | grep -q 'DNS:\*\.example\.net'
openssl x509 -noout -ext extendedKeyUsage -in leaf.pem | grep -q 'TLS Web Server Authentication'
openssl verify -CAfile root.pem -untrusted intermediate.pem leaf.pem >/dev/null
openssl x509 -noout -checkend 2592000 -in leaf.pem >/dev/null
"""


def make_pki(work):
    def ossl(*args):
        subprocess.run(["openssl", *args], cwd=work, check=True, capture_output=True)

    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes"]
    ossl("req", "-x509", *ec, "-keyout", "root.key", "-out", "root.pem", "-days", "3650", "-subj", "/CN=bench root",
         "-addext", "basicConstraints=critical,CA:true")
    ossl("req", *ec, "-keyout", "intermediate.key", "-out", "intermediate.csr", "-subj", "/CN=bench intermediate")
    with open(os.path.join(work, "ca.ext"), "w") as f:
        f.write("basicConstraints=critical,CA:true\n")
    ossl("x509", "-req", "-in", "intermediate.csr", "-CA", "root.pem", "-CAkey", "root.key", "-CAcreateserial",
         "-days", "1825", "-extfile", "ca.ext", "-out", "intermediate.pem")
    ossl("req", *ec, "-keyout", "key.pem", "-out", "leaf.csr", "-subj", "/CN=example.net")
    with open(os.path.join(work, "leaf.ext"), "w") as f:
        f.write("subjectAltName=DNS:*.example.net,DNS:example.net\nextendedKeyUsage=serverAuth\n")
    ossl("x509", "-req", "-in", "leaf.csr", "-CA", "intermediate.pem", "-CAkey", "intermediate.key",
         "-CAcreateserial", "-days", "90", "-extfile", "leaf.ext", "-out", "leaf.pem")
    with open(os.path.join(work, "fullchain.pem"), "w") as out:
        for name in ("leaf.pem", "intermediate.pem"):
            with open(os.path.join(work, name)) as f:
                out.write(f.read())
    with open(os.path.join(work, "check.sh"), "w") as f:
        f.write(OPENSSL_CHECK)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=31)
    parser.add_argument("--ours", default=None)
    args = parser.parse_args()
    ours = args.ours or release_binary(REPO, "cert-seal")
    work = tempfile.mkdtemp(prefix="fromgit-bench-")
    try:
        make_pki(work)
        tools = {
            "cert-seal check": lambda: timed(
                [ours, "check", "--cert", "fullchain.pem", "--key", "key.pem", "--domain", "example.net"], cwd=work),
            "openssl by hand (7 processes)": lambda: timed(["bash", os.path.join(work, "check.sh"), work]),
        }
        results = in_turn(tools, args.runs)
        baseline = results["openssl by hand (7 processes)"][0]
        print(f"runs per tool: {args.runs} (after 2 warm-up rounds), machine: {os.cpu_count()} cores")
        print()
        print("| tool | median (ms) | peak RSS (MiB) | speed-up vs openssl |")
        print("|---|---:|---:|---:|")
        for name, (median, peak) in results.items():
            print(f"| {name} | {median * 1000:.1f} | {peak / 1024:.1f} | {baseline / median:.1f}× |")
    finally:
        shutil.rmtree(work)


if __name__ == "__main__":
    main()
