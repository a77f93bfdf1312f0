"""Before/after: lfp_ref's own LFP and GD steps in this tree against another checkout.

    python -m benchmarks.ab --baseline /path/to/old/checkout [--rounds 5] [--models ...]

For every benchmark model and dtype, fresh processes of the two trees take turns (A B B A A B
...), each timing the LFP step and the GD step of the model interleaved as ``benchmarks.run``
does (blocks of back-to-back steps, the start of each block dropped), so that whatever else the
machine does hits both trees alike. The result per configuration is the median over the rounds
of the per-round ratio new / old, with its range; a ratio above 1 means the new tree is slower.

The baseline checkout needs only its sources: it is imported with its root first on PYTHONPATH,
with this interpreter (for a checkout from before the kernels moved into the package, link
``lfp_ref/kernels`` to its top-level ``kernels``).

``--in-process``: both trees in ONE process per round instead, each imported under its own set
of modules, their four steps (old and new LFP and GD) interleaved in blocks; the ratio is taken
within the process. A process's luck (which core, which pages, the other threads' timing: up to
+-10 % from one process to the next on a 2-core VM) then hits both trees alike. The module sets
are swapped into ``sys.modules`` before each step, so that an import inside a function finds its
own tree's module (a dict update of ~100 entries, both trees alike).

Every worker process gets lfp_ref.runtime's allocator setting (glibc keeps freed memory for
reuse) whether or not the tree has it; ``LFP_REF_MALLOC=default`` compares with glibc's default.
"""

import argparse
import json
import subprocess
import sys
from pathlib import Path

import numpy as np

from benchmarks.run import MODEL_ORDER, thread_env

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent

_WORKER = """
import json, sys
import numpy as np
import ctypes, os
if os.environ.get("LFP_REF_MALLOC", "").lower() != "default":
    # lfp_ref.runtime.tune_allocator's setting, made here so that both trees get it (older
    # checkouts do not have it): which blocks glibc maps afresh otherwise depends on the order
    # of a tree's allocations, a luck of the draw worth up to 25 % of a LeNet step
    libc = ctypes.CDLL("libc.so.6")
    libc.mallopt(-3, 1 << 30), libc.mallopt(-1, 1 << 30)
from benchmarks import models
from benchmarks.run import CLIP, LR, MOMENTUM, _interleaved
from lfp_ref import engine, optim
name, dtype, repeats = sys.argv[1], np.dtype(sys.argv[2]), int(sys.argv[3])
x, y = models.batch(name, dtype=dtype)
lfp_model, gd_model = models.build(name, dtype), models.build(name, dtype)
lfp_opt = optim.SGD(lfp_model, lr=LR, momentum=MOMENTUM)
gd_opt = optim.SGD(gd_model, lr=LR, momentum=MOMENTUM)
times = _interleaved({
    "LFP": lambda: engine.lfp_step(lfp_model, lfp_opt, x, y, clip_norm=CLIP),
    "GD": lambda: engine.gd_step(gd_model, gd_opt, x, y, clip_norm=CLIP),
}, repeats)
print(json.dumps({k: v["median"] for k, v in times.items()}))
"""


_IN_PROCESS_WORKER = """
import json, sys
import ctypes, os
if os.environ.get("LFP_REF_MALLOC", "").lower() != "default":
    libc = ctypes.CDLL("libc.so.6")
    libc.mallopt(-3, 1 << 30), libc.mallopt(-1, 1 << 30)
import numpy as np
here, name, dtype, repeats = sys.argv[1], sys.argv[2], np.dtype(sys.argv[3]), int(sys.argv[4])
trees = dict(zip(("old", "new"), sys.argv[5:7]))
sys.path.insert(0, here)
from benchmarks.run import CLIP, LR, MOMENTUM, _interleaved
sys.path[:] = [p for p in sys.path if p not in ("", here)]  # "": the working directory


def ours(module_name):  # "kernels": the top-level package of checkouts before the move
    return module_name.split(".")[0] in ("lfp_ref", "benchmarks", "kernels")


def load(tree):
    # a fresh import of the tree's lfp_ref and benchmarks.models, its models built and stepped
    # once while its root is on sys.path (so that imports made inside functions come from it)
    for key in [k for k in sys.modules if ours(k)]:
        del sys.modules[key]
    sys.path.insert(0, tree)
    try:
        from benchmarks import models
        from lfp_ref import engine, optim

        assert engine.__file__.startswith(tree), (engine.__file__, tree)
        x, y = models.batch(name, dtype=dtype)
        lfp_model, gd_model = models.build(name, dtype), models.build(name, dtype)
        lfp_opt = optim.SGD(lfp_model, lr=LR, momentum=MOMENTUM)
        gd_opt = optim.SGD(gd_model, lr=LR, momentum=MOMENTUM)
        lfp_args, gd_args = (lfp_model, lfp_opt, x, y), (gd_model, gd_opt, x, y)
        engine.lfp_step(*lfp_args, clip_norm=CLIP)
        engine.gd_step(*gd_args, clip_norm=CLIP)
    finally:
        sys.path.remove(tree)
    modules = {k: m for k, m in sys.modules.items() if ours(k)}

    def lfp():
        sys.modules.update(modules)
        engine.lfp_step(*lfp_args, clip_norm=CLIP)

    def gd():
        sys.modules.update(modules)
        engine.gd_step(*gd_args, clip_norm=CLIP)

    return lfp, gd


contenders = {}
for label, tree in trees.items():
    contenders[f"{label} LFP"], contenders[f"{label} GD"] = load(tree)
times = _interleaved(contenders, repeats)
print(json.dumps({k: v["median"] for k, v in times.items()}))
"""


def _worker(code, args, cwd, env, what):
    """Run a worker script in a fresh process; its last line of output, as JSON."""
    done = subprocess.run(
        [sys.executable, "-c", code, *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=1800,
    )
    if done.returncode != 0:
        raise RuntimeError(f"{what} failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def run_both(baseline, name, dtype, repeats, threads):
    """One process with both trees (``--in-process``): {"old LFP": s, "new LFP": s, ...}."""
    env = thread_env(threads)
    env.pop("PYTHONPATH", None)
    args = [str(ROOT), name, dtype, str(repeats), str(baseline), str(ROOT)]
    return _worker(_IN_PROCESS_WORKER, args, ROOT, env, f"{name} {dtype} (both trees)")


def run_tree(tree, name, dtype, repeats, threads):
    env = thread_env(threads)
    env["PYTHONPATH"] = str(tree)
    return _worker(_WORKER, [name, dtype, str(repeats)], tree, env, f"{tree}: {name} {dtype}")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--baseline", required=True, type=Path, help="the other checkout")
    parser.add_argument("--rounds", type=int, default=5, help="process pairs per configuration")
    parser.add_argument("--repeats", type=int, default=20, help="timed steps per process")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--models", default=",".join(MODEL_ORDER))
    parser.add_argument("--dtypes", default="float32,float64")
    parser.add_argument(
        "--in-process",
        action="store_true",
        help="both trees in one process per round (default: a process per tree and round)",
    )
    args = parser.parse_args(argv)
    rows = []
    print("| model | dtype | step | old ms | new ms | new/old (median, range) |")
    print("|---|---|---|---|---|---|")
    for name in args.models.split(","):
        for dtype in args.dtypes.split(","):
            old, new = [], []
            for r in range(args.rounds):
                if args.in_process:
                    both = run_both(args.baseline, name, dtype, args.repeats, args.threads)
                    for label, out in (("old", old), ("new", new)):
                        out.append({step: both[f"{label} {step}"] for step in ("LFP", "GD")})
                    continue
                order = (args.baseline, ROOT) if r % 2 == 0 else (ROOT, args.baseline)
                for tree in order:
                    result = run_tree(tree, name, dtype, args.repeats, args.threads)
                    (new if tree == ROOT else old).append(result)
            for step in ("LFP", "GD"):
                ratios = [n[step] / o[step] for n, o in zip(new, old)]
                old_ms = 1e3 * float(np.median([o[step] for o in old]))
                new_ms = 1e3 * float(np.median([n[step] for n in new]))
                ratio = float(np.median(ratios))
                rows.append((name, dtype, step, ratio))
                print(
                    f"| {name} | {dtype} | {step} | {old_ms:.2f} | {new_ms:.2f} | "
                    f"{ratio:.3f} ({min(ratios):.3f}-{max(ratios):.3f}) |",
                    flush=True,
                )
    worst = max(rows, key=lambda row: row[3])
    print(f"\nslowest relative to the baseline: {worst[0]} {worst[1]} {worst[2]} {worst[3]:.3f}")


if __name__ == "__main__":
    main()
