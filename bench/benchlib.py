"""Shared helpers of the benchmark scripts: whole-process timing with peak
memory, and tools run in turn so that all see the same machine load."""

import os
import statistics
import subprocess
import sys
import tempfile
import time


def timed(argv, env=None, stdout_path=os.devnull, cwd=None):
    """Runs argv with stdout to a file; returns (seconds, peak RSS in KiB).

    The peak comes from GNU time (Debian's `time`): a child's ru_maxrss as
    seen from here would start at this Python process's own size, because
    the high-water mark survives fork and exec.
    """
    with tempfile.NamedTemporaryFile("r") as rss, open(stdout_path, "wb") as out:
        start = time.perf_counter()
        proc = subprocess.run(
            ["/usr/bin/time", "-f", "%M", "-o", rss.name, *argv],
            env=env, cwd=cwd, stdout=out, stderr=subprocess.PIPE, check=False,
        )
        elapsed = time.perf_counter() - start
        if proc.returncode != 0:
            sys.exit(f"failed: {' '.join(map(str, argv))}\n{proc.stderr.decode(errors='replace')}")
        return elapsed, int(rss.read().strip().splitlines()[-1])


def in_turn(tools, runs, warmup=2):
    """Calls each tool's `run()` (returning seconds, peak KiB) in turn, round
    after round; returns {name: (median seconds, peak KiB)}."""
    times = {name: [] for name in tools}
    peaks = {name: 0 for name in tools}
    for round_index in range(runs + warmup):
        for name, run in tools.items():
            seconds, peak = run()
            if round_index >= warmup:
                times[name].append(seconds)
                peaks[name] = max(peaks[name], peak)
    return {name: (statistics.median(times[name]), peaks[name]) for name in tools}


def release_binary(repo, name):
    subprocess.run(["cargo", "build", "--release", "--locked", "-q", "-p", name], cwd=repo, check=True)
    return os.path.join(repo, "target", "release", name)
