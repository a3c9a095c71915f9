#!/usr/bin/env python3
"""numpy peer for clpool's benchmark cases; bench/compare runs it in a subprocess.

Reads a JSON list of cases on stdin, each {"op", "shape", "layout", "dtype", "input_copies"} as
`clpool bench --json` reports them (dtype float32 and one copy when absent), and prints one JSON object on stdout: numpy's version, the BLAS it runs on (the
OpenBLAS kernel actually chosen at run time, not just the build's), and per case the median and
minimum seconds over repetitions after warm-up, on data of the case's dtype.

What each case runs is the idiomatic numpy for the same result:
  avg   x.mean(axis=spatial axes)          max   x.max(axis=spatial axes)
  dense y = x @ w; y += b                  head  z = x.mean(axis=spatial); y = z @ w; y += b;
                                                 then softmax over each row (as clpool's bench head)
A pooling or head input is held in "input_copies" copies, taken in turn, as clpool's benchmark
holds it (so that an input larger than the last-level cache is read from memory by both).
For pooling, "shape" is the input in its layout ([N,C,*spatial] channels-first, [N,*spatial,C]
channels-last); dense is [M,K,N] (x [M,K], w [K,N]); head is the feature shape followed by the
number of classes, e.g. [N,C,H,W,classes].

It is a separate process so that compare can run it without OPENBLAS_CORETYPE/OPENBLAS_L2_SIZE:
OpenBLAS reads them once, when it is loaded, and a forced core type or cache size slows numpy.
"""
import argparse
import ctypes
import itertools
import json
import math
import os
import statistics
import sys
import time

import numpy as np

# Same stopping rule as clblast_sgemm.c: enough repetitions and enough time, or a hard time cap.
MAX_REPS = 1000
CAP_MIN_REPS = 3


def measure(fn, min_reps, min_time, max_time):
    """Median and minimum seconds of fn() after two warm-up calls (caches, page faults, threads)."""
    fn()
    fn()
    times = []
    began = time.perf_counter()
    while True:
        start = time.perf_counter()
        fn()
        end = time.perf_counter()
        times.append(end - start)
        elapsed = end - began
        if (len(times) >= MAX_REPS or (len(times) >= min_reps and elapsed >= min_time)
                or (len(times) >= CAP_MIN_REPS and elapsed >= max_time)):
            return statistics.median(times), min(times), len(times)


def spatial_axes(ndim, layout):
    """Axes that global pooling reduces: everything between N and C, wherever C is."""
    if layout == "channels-last":
        return tuple(range(1, ndim - 1))
    return tuple(range(2, ndim))


def channel_count(shape, layout):
    return shape[-1] if layout == "channels-last" else shape[1]


def prepare(case, rng):
    """Returns (callable, bytes, flops) for one case, counted as clpool counts them: bytes are what
    the operation must read plus write once, flops the multiply-adds of the dense part (and the
    reduction's adds for head)."""
    op, shape = case["op"], [int(d) for d in case["shape"]]
    layout = case.get("layout") or "channels-first"
    dtype = np.dtype({"float16": np.float16, "float64": np.float64}.get(case.get("dtype"), np.float32))
    f32 = dtype.itemsize

    def data(*dims):
        return rng.standard_normal(dims, dtype=np.float32).astype(dtype, copy=False)

    def rotating(*dims):
        """The next of the case's input copies at each call."""
        return itertools.cycle([data(*dims) for _ in range(int(case.get("input_copies") or 1))]).__next__

    if op in ("avg", "max"):
        inputs = rotating(*shape)
        axes = spatial_axes(len(shape), layout)
        reduce = np.mean if op == "avg" else np.max
        elements = math.prod(shape)
        pooled = elements // math.prod(shape[a] for a in axes)
        return (lambda: reduce(inputs(), axis=axes)), (elements + pooled) * f32, None
    if op == "dense":
        m, k, n = shape
        x, w, b = data(m, k), data(k, n), data(n)

        def dense():
            y = x @ w
            y += b
            return y
        return dense, (m * k + k * n + n + m * n) * f32, 2.0 * m * k * n
    if op == "head":
        features, classes = shape[:-1], shape[-1]
        channels = channel_count(features, layout)
        inputs, w, b = rotating(*features), data(channels, classes), data(classes)
        axes = spatial_axes(len(features), layout)
        rows, elements = features[0], math.prod(features)

        def head():
            y = inputs().mean(axis=axes) @ w
            y += b
            y -= y.max(axis=1, keepdims=True)
            np.exp(y, out=y)
            y /= y.sum(axis=1, keepdims=True)
            return y
        return (head, (elements + w.size + b.size + rows * classes) * f32,
                float(elements) + 2.0 * rows * channels * classes)
    raise ValueError(f"unknown op {op!r}")


def blas_info():
    """The BLAS numpy calls and, above all, the OpenBLAS kernel (core type) it picked at run time:
    threadpoolctl when installed, otherwise OpenBLAS's own get_corename through ctypes."""
    info = {"openblas_coretype_env": os.environ.get("OPENBLAS_CORETYPE"),
            "openblas_l2_size_env": os.environ.get("OPENBLAS_L2_SIZE")}
    try:
        import threadpoolctl
        for lib in threadpoolctl.threadpool_info():
            if lib.get("user_api") == "blas":
                info.update(source="threadpoolctl", library=lib.get("internal_api"),
                            version=lib.get("version"), core=lib.get("architecture"),
                            threads=lib.get("num_threads"), path=lib.get("filepath"))
                return info
    except ImportError:
        pass
    # numpy's wheels bundle OpenBLAS under a prefixed, 64-bit-integer symbol set; distro builds
    # export the plain names. Find the loaded library through the process's memory map.
    with open("/proc/self/maps") as maps:
        paths = sorted({line.split()[-1] for line in maps if "openblas" in line.lower() and "/" in line})
    for path in paths:
        lib = ctypes.CDLL(path)
        for prefix, suffix in (("scipy_openblas_", "64_"), ("openblas_", "64_"), ("scipy_openblas_", ""),
                               ("openblas_", "")):
            try:
                corename = getattr(lib, f"{prefix}get_corename{suffix}")
                threads = getattr(lib, f"{prefix}get_num_threads{suffix}")
                config = getattr(lib, f"{prefix}get_config{suffix}")
            except AttributeError:
                continue
            corename.restype = config.restype = ctypes.c_char_p
            configuration = config().decode()
            info.update(source="ctypes", library="openblas", version=configuration.split()[1],
                        core=corename().decode(), threads=threads(), config=configuration, path=path)
            return info
    info.update(source=None, library="unknown (no OpenBLAS loaded)")
    return info


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--min-reps", type=int, default=10)
    parser.add_argument("--min-time", type=float, default=0.5)
    parser.add_argument("--max-time", type=float, default=3.0)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    rng = np.random.default_rng(args.seed)
    np.ones((64, 64), np.float32) @ np.ones((64, 64), np.float32)  # load and start BLAS before asking about it
    results = []
    for case in json.load(sys.stdin):
        fn, nbytes, flops = prepare(case, rng)
        median, minimum, reps = measure(fn, args.min_reps, args.min_time, args.max_time)
        results.append(dict(op=case["op"], shape=case["shape"], layout=case.get("layout"), dtype=case.get("dtype", "float32"),
                            median_s=median, min_s=minimum, repetitions=reps, bytes=nbytes, flops=flops,
                            gbps=nbytes / median / 1e9,
                            gflops=flops / median / 1e9 if flops else None))
        del fn  # frees this case's arrays before the next case allocates its own
        print(f"numpy: {case['op']} {case['shape']} {case.get('layout') or ''} "
              f"{median * 1e3:.3f} ms", file=sys.stderr)
    json.dump(dict(numpy=np.__version__, python=sys.version.split()[0], blas=blas_info(), cases=results),
              sys.stdout)
    print()


if __name__ == "__main__":
    main()
