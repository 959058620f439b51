#!/usr/bin/env python3
"""Benchmark: `leak-scan --history` against gitleaks 8.30.1 (`gitleaks git`)
and Kingfisher 2.14 (`--no-validate`), whole-process, on one history of real
source text; and `leak-scan --staged` on a 10-file change in a 10,000-file
repository.

The history is built here, once, from the workspace's vendored dependency
sources (cargo's registry source tree): a first commit with a few crates,
then a few hundred commits that each add a crate and edit some existing
files, so that the distinct blob bytes exceed 300 MB. It is packed with
`git repack` as a real clone would be, and kept under .cache/bench/ for
later runs. Every tool scans the same repository in turn, round after
round; medians and the peak RSS are reported with the throughput ratios.

Real public histories are measured the same way, beside the generated one:
`--real PATH` (repeatable) names a bare git directory (for example one that
the search tool's fetch brought: a large Go or Rust project with a long
history, and a Nix repository of many small commits). They are read in
place and never copied into the repository. `--only-real` skips the
generated history and the staged measurement.

Usage: python3 bench/leak_scan.py [--runs N] [--ours PATH] [--min-mb M]
                                  [--real PATH]... [--only-real]
Needs: git, GNU time (/usr/bin/time), cargo, the peers venv (tests/run
--install-only installs gitleaks and Kingfisher into .cache/peers).
"""

import argparse
import glob
import os
import random
import subprocess
import sys
import tempfile

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from benchlib import in_turn, release_binary, timed  # noqa: E402

TEXT = (".rs", ".md", ".toml", ".txt", ".json", ".yml", ".yaml", ".c", ".h", ".py", ".sh")
CACHE = os.path.join(REPO, ".cache", "bench")
PEERS = os.path.join(REPO, ".cache", "peers", "bin")
# Exit codes that mean "ran, found something": leak-scan and gitleaks 1, Kingfisher 200/205.
ACCEPT = r'"$@"; rc=$?; case $rc in 0|1|200|205) exit 0;; *) exit $rc;; esac'


def registry_sources():
    roots = sorted(glob.glob(os.path.expanduser("~/.cargo/registry/src/*/")))
    if not roots:
        sys.exit("no cargo registry sources: run `cargo fetch` in the workspace first")
    crates = []
    for root in roots:
        for name in sorted(os.listdir(root)):
            files = []
            base = os.path.join(root, name)
            for dirpath, dirnames, filenames in os.walk(base):
                dirnames.sort()
                for f in sorted(filenames):
                    path = os.path.join(dirpath, f)
                    if f.endswith(TEXT) and os.path.isfile(path) and os.path.getsize(path) < (1 << 20):
                        files.append((os.path.relpath(path, root), path))
            if files:
                crates.append(files)
    return crates


def fast_import_stream(out, crates, commits, min_bytes):
    """Writes a git fast-import stream; returns the distinct blob bytes."""
    rng = random.Random(1234)
    state = {}  # path -> content bytes
    total = 0
    when = 1_700_000_000

    def commit(index, message, changes):
        nonlocal when
        when += 3600
        out.write(f"commit refs/heads/main\nmark :{index + 1}\n".encode())
        out.write(f"committer Bench <bench@example.com> {when} +0000\n".encode())
        msg = message.encode()
        out.write(b"data %d\n%s\n" % (len(msg), msg))
        if index > 0:
            out.write(f"from :{index}\n".encode())
        for path, data in changes:
            out.write(b"M 100644 inline %s\ndata %d\n" % (path.encode(), len(data)))
            out.write(data)
            out.write(b"\n")

    def read(path):
        with open(path, "rb") as f:
            return f.read()

    queue = list(crates)
    first = []
    while queue and sum(len(d) for _, d in first) < 40 << 20:
        first.extend((rel, read(src)) for rel, src in queue.pop(0))
    for rel, data in first:
        state[rel] = data
        total += len(data)
    commit(0, "import the first crates", first)
    for i in range(1, commits + 1):
        changes = []
        if queue:
            for rel, src in queue.pop(0):
                data = read(src)
                changes.append((rel, data))
        big = [p for p, d in state.items() if len(d) >= 16 << 10]
        edits = max(8, (min_bytes - total) // max(1, (commits - i + 1)) // (64 << 10))
        for path in rng.sample(big, min(len(big), int(edits))):
            data = state[path] + f"\n// revision {i}: {rng.getrandbits(64):x}\n".encode()
            changes.append((path, data))
        for path, data in changes:
            state[path] = data
            total += len(data)
        commit(i, f"change {i}: {len(changes)} files", changes)
    return total


def blob_bytes(path):
    """The distinct blob bytes of a repository, as git counts them."""
    out = subprocess.run(
        ["git", "cat-file", "--batch-all-objects", "--batch-check=%(objecttype) %(objectsize)"],
        cwd=path, check=True, capture_output=True, text=True).stdout
    return sum(int(size) for kind, size in (line.split() for line in out.splitlines()) if kind == "blob")


def build_history(path, commits, min_mb):
    marker = os.path.join(path, "BENCH-BYTES")
    if os.path.exists(marker):
        return blob_bytes(path)
    subprocess.run(["rm", "-rf", path], check=True)
    subprocess.run(["git", "init", "-q", "--bare", "-b", "main", path], check=True)
    crates = registry_sources()
    proc = subprocess.Popen(["git", "fast-import", "--quiet"], cwd=path, stdin=subprocess.PIPE)
    total = fast_import_stream(proc.stdin, crates, commits, min_mb << 20)
    proc.stdin.close()
    if proc.wait() != 0:
        sys.exit("git fast-import failed")
    subprocess.run(["git", "repack", "-adq", "--window=10"], cwd=path, check=True)
    with open(marker, "w") as f:
        f.write(str(total))
    return blob_bytes(path)


def build_staged(path):
    if os.path.exists(os.path.join(path, ".git")):
        subprocess.run(["git", "reset", "-q", "--hard"], cwd=path, check=True)
    else:
        os.makedirs(path)
        subprocess.run(["git", "init", "-q", "-b", "main"], cwd=path, check=True)
        for i in range(10_000):
            d = os.path.join(path, f"mod{i // 100:03d}")
            os.makedirs(d, exist_ok=True)
            with open(os.path.join(d, f"file{i:05d}.nix"), "w") as f:
                f.write(f"{{ config, lib, ... }}:\n{{\n  services.unit{i}.enable = true;\n}}\n")
        env = dict(os.environ, GIT_AUTHOR_NAME="b", GIT_AUTHOR_EMAIL="b@example.com",
                   GIT_COMMITTER_NAME="b", GIT_COMMITTER_EMAIL="b@example.com")
        subprocess.run(["git", "add", "-A"], cwd=path, check=True)
        subprocess.run(["git", "commit", "-q", "-m", "base"], cwd=path, check=True, env=env)
    for i in range(10):
        with open(os.path.join(path, f"mod{i:03d}", f"file{i * 100:05d}.nix"), "a") as f:
            f.write(f"# edited {i}\n")
    subprocess.run(["git", "add", "-A"], cwd=path, check=True)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--commits", type=int, default=300)
    parser.add_argument("--min-mb", type=int, default=320)
    parser.add_argument("--ours", help="a leak-scan binary (default: cargo build --release)")
    parser.add_argument("--real", action="append", default=[], metavar="PATH",
                        help="a real bare git directory to measure on as well (repeatable)")
    parser.add_argument("--only-real", action="store_true",
                        help="measure only the --real histories")
    args = parser.parse_args()

    ours = os.path.abspath(args.ours) if args.ours else release_binary(REPO, "leak-scan")
    gitleaks = os.path.join(PEERS, "gitleaks")
    kingfisher = os.path.join(PEERS, "kingfisher")
    for tool in (gitleaks, kingfisher):
        if not os.access(tool, os.X_OK):
            sys.exit(f"missing {tool}: run `bash tests/run --install-only`")

    scratch = tempfile.mkdtemp(prefix="leak-scan-bench-")
    kf_env = dict(os.environ, HOME=scratch, XDG_CACHE_HOME=os.path.join(scratch, "cache"))

    def wrapped(argv):
        return ["sh", "-c", ACCEPT, "sh", *argv]

    def compare_on(label, history):
        mib = blob_bytes(history) / (1 << 20)
        commits = subprocess.run(["git", "rev-list", "--all", "--count"], cwd=history, check=True,
                                 capture_output=True, text=True).stdout.strip()
        objects = subprocess.run(["git", "count-objects", "-v"], cwd=history, check=True,
                                 capture_output=True, text=True).stdout
        packed = next((line.split()[1] for line in objects.splitlines() if line.startswith("in-pack:")), "?")
        print(f"\n{label}: {commits} commits, {packed} packed objects, {mib:.1f} MiB of distinct blob text",
              flush=True)
        tools = {
            "leak-scan --history": lambda: timed(wrapped([ours, "--history", "--no-cache", "-q", history])),
            "gitleaks git": lambda: timed(wrapped(
                [gitleaks, "git", "--no-banner", "--log-level", "error", history])),
            "kingfisher scan --no-validate": lambda: timed(wrapped(
                [kingfisher, "scan", history, "--no-validate", "--no-update-check", "-q"]), env=kf_env),
        }
        results = in_turn(tools, args.runs, warmup=1)
        base = results["leak-scan --history"][0]
        print()
        print("| tool | median (s) | throughput (MiB/s) | peak RSS (MiB) | leak-scan speed-up |")
        print("|---|---:|---:|---:|---:|")
        for name, (seconds, peak) in results.items():
            print(f"| {name} | {seconds:.2f} | {mib / seconds:.1f} | {peak / 1024:.1f} | {seconds / base:.2f}× |")

    for path in args.real:
        if not os.path.isdir(path):
            sys.exit(f"--real {path}: not a directory")
        compare_on(f"real history {os.path.basename(os.path.dirname(os.path.abspath(path))) or path}", path)
    if args.only_real:
        return

    history = os.path.join(CACHE, "leak-scan-history.git")
    build_history(history, args.commits, args.min_mb)
    compare_on(f"generated history ({args.commits + 1} commits of crate sources)", history)

    staged = os.path.join(CACHE, "leak-scan-staged")
    build_staged(staged)
    staged_tools = {
        "leak-scan --staged (10 of 10,000 files)": lambda: timed([ours, "--staged", "--no-cache"], cwd=staged),
    }
    staged_results = in_turn(staged_tools, max(10, args.runs * 5), warmup=2)
    print()
    print("| command | median (ms) | peak RSS (MiB) |")
    print("|---|---:|---:|")
    for name, (seconds, peak) in staged_results.items():
        print(f"| {name} | {seconds * 1000:.1f} | {peak / 1024:.1f} |")


if __name__ == "__main__":
    main()
