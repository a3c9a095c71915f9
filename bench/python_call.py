#!/usr/bin/env python3
"""What one call from Python costs: global average pooling of a [1,2048,7,7] float32 array (a
ResNet-50 head's input) through the clpool module, next to the same call made from Swift
(`clpool bench`, which times the library in-process) and a whole `clpool pool` process on a
.npy file. The target is Python <= 2x the Swift call: ctypes adds a few microseconds per call,
and the array is passed without a copy.

  make python && python3 bench/python_call.py [--backend cpu opencl] [--check]

Single calls are timed, in Swift (by `clpool bench`) and in Python, in alternating rounds; the
table gives the median and minimum microseconds per call and, against Swift, the median of the
rounds' ratios of medians. --check exits 1 when
a backend misses the target.
"""
import argparse
import json
import os
import pathlib
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "python"))

import numpy as np  # noqa: E402

import clpool  # noqa: E402

SHAPE = (1, 2048, 7, 7)
TARGET = 2.0


def python_call(backend, x, seconds):
    """Median and minimum seconds of single calls after warm-up, each timed on its own as
    `clpool bench` times the Swift call."""
    for _ in range(50):
        backend.global_avg_pool(x)
    times, deadline = [], time.perf_counter() + seconds
    while len(times) < 100 or (time.perf_counter() < deadline and len(times) < 100_000):
        start = time.perf_counter()
        backend.global_avg_pool(x)
        times.append(time.perf_counter() - start)
    return statistics.median(times), min(times)


def swift_call(clpool_binary, kind, seconds):
    shape = "x".join(map(str, SHAPE))
    result = subprocess.run(
        [clpool_binary, "bench", "--op", "avg", "--shape", shape, "--backend", kind, "--min-time", str(seconds), "--json"],
        capture_output=True, text=True, check=True)
    case = json.loads(result.stdout)["cases"][0]
    return case["median_s"], case["min_s"]


def pool_process(clpool_binary, kind, x, runs):
    with tempfile.TemporaryDirectory() as folder:
        source, output = os.path.join(folder, "x.npy"), os.path.join(folder, "z.npy")
        np.save(source, x)
        times = []
        for _ in range(runs):
            start = time.perf_counter()
            subprocess.run([clpool_binary, "pool", source, "-o", output, "--backend", kind], check=True, capture_output=True)
            times.append(time.perf_counter() - start)
        return statistics.median(times), min(times)


def microseconds(seconds):
    return f"{seconds * 1e6:10.1f}"


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--backend", nargs="+", default=["cpu", "opencl"], help="backends to time (default: cpu opencl)")
    parser.add_argument("--clpool", default=str(ROOT / ".build" / "release" / "clpool"), help="the clpool executable")
    parser.add_argument("--seconds", type=float, default=1.0, help="minimum seconds of calls per case")
    parser.add_argument("--rounds", type=int, default=5, help="alternating Swift/Python rounds per backend")
    parser.add_argument("--process-runs", type=int, default=10, help="clpool pool processes per backend")
    parser.add_argument("--check", action="store_true", help=f"exit 1 unless Python <= {TARGET:g}x the Swift call")
    arguments = parser.parse_args()

    x = np.random.default_rng(0).standard_normal(SHAPE, dtype=np.float32)
    print(f"global average pool of {'x'.join(map(str, SHAPE))} float32; microseconds per call")
    print(f"{'backend':8} {'case':16} {'median':>10} {'min':>10} {'vs Swift':>9}")
    missed = []
    for kind in arguments.backend:
        try:
            backend = clpool.Backend(kind)
        except clpool.Error as error:
            print(f"{kind:8} skipped: {error}")
            continue
        # Swift and Python alternate, round by round, so that load from elsewhere on the machine
        # falls on both; the ratio is the median of the rounds' ratios.
        swift_rounds, python_rounds = [], []
        for _ in range(arguments.rounds):
            swift_rounds.append(swift_call(arguments.clpool, kind, arguments.seconds / arguments.rounds))
            python_rounds.append(python_call(backend, x, arguments.seconds / arguments.rounds))
        ratio = statistics.median(p[0] / s[0] for p, s in zip(python_rounds, swift_rounds))
        summary = lambda rounds: (statistics.median(r[0] for r in rounds), min(r[1] for r in rounds))
        swift = summary(swift_rounds)
        rows = [
            ("Swift call", swift, 1.0),
            ("Python call", summary(python_rounds), ratio),
            ("clpool pool", process := pool_process(arguments.clpool, kind, x, arguments.process_runs), process[0] / swift[0]),
        ]
        for name, (median, minimum), versus in rows:
            print(f"{kind:8} {name:16} {microseconds(median)} {microseconds(minimum)} {versus:8.2f}x")
        if ratio > TARGET:
            missed.append(f"{kind}: Python {ratio:.2f}x the Swift call")
        backend.close()
    print(f"target Python <= {TARGET:g}x Swift: " + ("met" if not missed else "missed (" + "; ".join(missed) + ")"))
    return 1 if missed and arguments.check else 0


if __name__ == "__main__":
    sys.exit(main())
