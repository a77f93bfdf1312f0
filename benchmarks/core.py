"""LFP step vs GD step of lfp_ref itself, and first-call compile time.

    python -m benchmarks.core [--repeats 30]

Each configuration interleaves LFP and GD steps so that machine drift hits both alike; the
medians and their ratio are printed as a Markdown table.
"""

import argparse
import os
import platform
import subprocess
import sys
import tempfile
import time

import numpy as np

import lfp_ref as lfp
from benchmarks.models import MODELS, batch

CONFIGS = [("mlp-256", 128), ("mlp-256", 64), ("lenet-5", 128), ("lenet-5", 64)]


def step_times(name, batch_size, dtype=np.float32, repeats=30, warmup=5):
    """Median seconds per LFP step and per GD step (SGD with momentum, clipping at 3.0)."""
    x, y = batch(name, batch_size, dtype)
    models = {m: MODELS[name][0](np.random.default_rng(0), dtype) for m in ("lfp", "gd")}
    opts = {m: lfp.optim.SGD(models[m], lr=0.01, momentum=0.9) for m in models}
    steps = {
        "lfp": lambda: lfp.lfp_step(models["lfp"], opts["lfp"], x, y, clip_norm=3.0),
        "gd": lambda: lfp.gd_step(models["gd"], opts["gd"], x, y, clip_norm=3.0),
    }
    times = {m: [] for m in steps}
    for i in range(warmup + repeats):
        for method, step in steps.items():
            start = time.perf_counter()
            step()
            if i >= warmup:
                times[method].append(time.perf_counter() - start)
    return {m: float(np.median(t)) for m, t in times.items()}


_FIRST_CALL = """
import time, numpy as np
t0 = time.perf_counter()
import lfp_ref as lfp
from benchmarks.models import MODELS, batch
x, y = batch("lenet-5", 8, np.float32)
model = MODELS["lenet-5"][0](np.random.default_rng(0), np.float32)
opt = lfp.optim.SGD(model, lr=0.01)
t1 = time.perf_counter()
lfp.lfp_step(model, opt, x, y); lfp.gd_step(model, opt, x, y)
t2 = time.perf_counter()
lfp.lfp_step(model, opt, x, y); lfp.gd_step(model, opt, x, y)
t3 = time.perf_counter()
print(t1 - t0, (t2 - t1) - (t3 - t2))
"""


def first_call_seconds(cache_dir):
    """(import seconds, first LFP+GD step minus a warm one) in a fresh process."""
    env = {**os.environ, "NUMBA_CACHE_DIR": cache_dir}
    out = subprocess.run(
        [sys.executable, "-c", _FIRST_CALL], env=env, capture_output=True, text=True, check=True
    ).stdout.split()
    return float(out[0]), float(out[1])


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=30)
    args = parser.parse_args(argv)
    print(
        f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
        f"NUMBA_NUM_THREADS={os.environ.get('NUMBA_NUM_THREADS', 'default')}"
    )
    print("| model | batch | LFP step ms | GD step ms | LFP / GD |")
    print("|---|---|---|---|---|")
    for name, batch_size in CONFIGS:
        t = step_times(name, batch_size, repeats=args.repeats)
        print(
            f"| {name} | {batch_size} | {t['lfp'] * 1e3:.2f} | {t['gd'] * 1e3:.2f} | "
            f"{t['lfp'] / t['gd']:.2f} |",
            flush=True,
        )
    with tempfile.TemporaryDirectory() as cold:
        _, cold_compile = first_call_seconds(cold)
        _, warm_compile = first_call_seconds(cold)
    print(
        f"\nfirst LFP+GD step over a warm one (LeNet-5, float32): cold cache {cold_compile:.1f} s, "
        f"warm cache {warm_compile:.2f} s"
    )


if __name__ == "__main__":
    main()
