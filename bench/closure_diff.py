#!/usr/bin/env python3
"""Benchmark: `closure-diff` against `nix store diff-closures` (Nix 2.8) and dix 2.2.

Builds two system closures of 2,002 store paths each in the local Nix store
(`bench/closure_diff.nix`: 2,000 packages in a tree, a system-path and a
toplevel, offline, with /bin/sh as builder), the second with 100 leaf
packages bumped, so the two differ in 102 of their paths (5.1%). Then, in one
session and in turn (round after round, so every tool sees the same load):

1. whole-process `closure-diff A B` (the byte-identical level, with the
   package view and the root-cause walk of the `.drv` graphs), against
   `nix store diff-closures A B` and `dix A B`;
2. whole-process `closure-diff --verify-on-disk A A` (every NAR recomputed and
   compared with the database) against `nix store verify --no-trust -r A`.

Reports median wall time, peak RSS and the ratios; the `--verify-on-disk`
throughput is the closure's NAR bytes divided by the median time.

Usage: python3 bench/closure_diff.py [--runs N] [--packages N] [--bump N]
Needs: nix-bin (Debian, Nix 2.8), cargo (installs dix 2.2.0 into
.cache/bench with `cargo install dix@2.2.0 --locked`), GNU time, root (the
local store is written).
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from benchlib import in_turn, release_binary  # noqa: E402

CACHE = os.path.join(REPO, ".cache", "bench")
NIX_CONFIG = "\n".join([
    "substituters =",
    "experimental-features = nix-command flakes",
    "build-users-group =",
    "extra-sandbox-paths = /bin/sh=/usr/bin/dash /lib /lib64 /usr/bin",
])
ENV = dict(os.environ, NIX_CONFIG=NIX_CONFIG, NO_COLOR="1")


def timed_any(argv, ok=(0,)):
    """Like benchlib.timed, but accepts the exit codes in `ok` (closure-diff
    exits 1 when the closures differ)."""
    with tempfile.NamedTemporaryFile("r") as rss, open(os.devnull, "wb") as out:
        start = time.perf_counter()
        proc = subprocess.run(["/usr/bin/time", "-f", "%M", "-o", rss.name, *argv],
                              env=ENV, stdout=out, stderr=subprocess.PIPE, check=False)
        elapsed = time.perf_counter() - start
        if proc.returncode not in ok:
            sys.exit(f"failed ({proc.returncode}): {' '.join(argv)}\n{proc.stderr.decode(errors='replace')}")
        return elapsed, int(rss.read().strip().splitlines()[-1])


def dix_binary():
    path = os.path.join(CACHE, "bin", "dix")
    if not os.path.exists(path):
        subprocess.run(["cargo", "install", "dix@2.2.0", "--locked", "--root", CACHE], check=True)
    version = subprocess.run([path, "--version"], capture_output=True, text=True, check=True).stdout.strip()
    if "2.2.0" not in version:
        sys.exit(f"{path} is `{version}`, not dix 2.2.0")
    return path, version


def build(packages, bump, link):
    out = subprocess.run(
        ["nix-build", os.path.join(REPO, "bench", "closure_diff.nix"),
         "--arg", "n", str(packages), "--arg", "bump", str(bump), "-j", "2", "-o", link],
        env=ENV, check=True, capture_output=True, text=True)
    return out.stdout.strip()


def closure(path):
    out = subprocess.run(["nix-store", "-qR", path], env=ENV, check=True, capture_output=True, text=True)
    return set(out.stdout.split())


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=11)
    parser.add_argument("--packages", type=int, default=2000)
    parser.add_argument("--bump", type=int, default=100)
    parser.add_argument("--ours", default=None)
    args = parser.parse_args()

    os.makedirs(CACHE, exist_ok=True)
    dix, dix_version = dix_binary()
    ours = args.ours or release_binary(REPO, "closure-diff")
    nix_version = subprocess.run(["nix", "--version"], capture_output=True, text=True, check=True).stdout.strip()

    a = build(args.packages, 0, os.path.join(CACHE, "closure-a"))
    b = build(args.packages, args.bump, os.path.join(CACHE, "closure-b"))
    ca, cb = closure(a), closure(b)
    differ = len(ca ^ cb) // 2
    print(f"A: {a} ({len(ca)} paths)\nB: {b} ({len(cb)} paths)\n"
          f"differing: {differ} of {len(ca)} paths ({100 * differ / len(ca):.1f}%)")
    report = json.loads(subprocess.run([ours, "--json", "--verify-on-disk", a, a], env=ENV,
                                       capture_output=True, text=True).stdout)
    nar_bytes = report["disk"]["nar_bytes"]
    assert report["verdict"]["result"] == "identical", report["verdict"]
    diff = json.loads(subprocess.run([ours, "--json", a, b], env=ENV, capture_output=True, text=True).stdout)
    frontier = [c for c in diff["root_cause"]["causes"] if not c["inputs_changed"]]
    print(f"closure-diff A B: {diff['verdict']['result']}, {len(diff['packages'])} packages differ, "
          f"{len(frontier)} root-cause derivations on the frontier")

    diff_tools = {
        "closure-diff": lambda: timed_any([ours, a, b], ok=(1,)),
        "nix store diff-closures": lambda: timed_any(["nix", "store", "diff-closures", a, b]),
        "dix": lambda: timed_any([dix, a, b]),
    }
    diff_results = in_turn(diff_tools, args.runs)
    verify_tools = {
        "closure-diff --verify-on-disk": lambda: timed_any([ours, "--verify-on-disk", a, a]),
        "nix store verify --no-trust": lambda: timed_any(["nix", "store", "verify", "--no-trust", "-r", a]),
    }
    verify_results = in_turn(verify_tools, max(3, args.runs // 2))

    print(f"\nruns per tool: {args.runs} (diff) and {max(3, args.runs // 2)} (verify), after 2 warm-up rounds; "
          f"machine: {os.cpu_count()} cores; {nix_version}; {dix_version}\n")
    nix_diff = diff_results["nix store diff-closures"][0]
    dix_diff = diff_results["dix"][0]
    print("| tool | median wall time (ms) | peak RSS (MiB) | vs `nix store diff-closures` | vs dix |")
    print("|---|---:|---:|---:|---:|")
    for name, (median, peak) in diff_results.items():
        print(f"| {name} | {median * 1000:.1f} | {peak / 1024:.1f} | {nix_diff / median:.2f}× | {dix_diff / median:.2f}× |")
    print()
    nix_verify = verify_results["nix store verify --no-trust"][0]
    print(f"NAR bytes of the closure: {nar_bytes} ({nar_bytes / 2**20:.1f} MiB)\n")
    print("| tool | median wall time (ms) | throughput (MiB/s) | peak RSS (MiB) | vs `nix store verify` |")
    print("|---|---:|---:|---:|---:|")
    for name, (median, peak) in verify_results.items():
        print(f"| {name} | {median * 1000:.1f} | {nar_bytes / 2**20 / median:.0f} | {peak / 1024:.1f} | {nix_verify / median:.2f}× |")


if __name__ == "__main__":
    main()
