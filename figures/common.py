"""What the figure scripts share: the three modes, the output folders, running a grid of
training runs through :mod:`lfp_ref.sweep`, summarising accuracies over seeds, the toy network
with an activation after every layer, and writing PNGs and numbers.

Modes (every script): ``--smoke`` (seconds: the test suite's), ``--quick`` (minutes: ``make
figures``) and the default full mode (``make figures-full``). A script writes its PNG and the
numbers behind it under ``figures/out/<name>/<mode>/``, its training runs (normal run folders,
``lfp-ref eval`` opens each) under ``figures/out/<name>/<mode>/runs/``, and in full mode copies
the PNG to ``figures/png/<name>.png`` (committed). Rerunning a script skips the runs that are
finished (the sweep resumes), so only the plotting is repeated.
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import os
import shutil
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # lfp_ref and figures.common (a model factory) importable
    sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402

from lfp_ref import zoo  # noqa: E402
from lfp_ref.layers.activations import ACTIVATIONS  # noqa: E402
from lfp_ref.layers.containers import Sequential  # noqa: E402

FIGURES = ROOT / "figures"
OUT = FIGURES / "out"
PNG = FIGURES / "png"
MODES = ("smoke", "quick", "full")
DPI = 100

#: the toy data sets: classes and epochs (the paper: 10 epochs, 15 for swirls)
TOY_SETS = {"blobs": (2, 10), "circles": (2, 10), "swirls": (3, 15)}

#: the paper's MNIST training settings (its LeNet and MLP runs), shared by the part-2 scripts
PAPER_MNIST = dict(
    batch_size=128,
    optimizer="sgd",
    lr=0.1,
    momentum=0.9,
    clip=3.0,
    eps=1e-6,
    seed=0,
    dtype="float32",
)

#: this module as a TrainConfig model factory
TOY_NET = "figures.common:toy_net"


# --------------------------------------------------------------------------------------------
# command line and folders


def parser(doc, data_root=None):
    """The common command line: ``--quick``, ``--smoke``, ``--workers``, ``--out``, and
    ``--data-root`` (a folder, default None) when ``data_root`` gives its help text."""
    p = argparse.ArgumentParser(
        description=doc.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    modes = p.add_mutually_exclusive_group()
    modes.add_argument("--quick", action="store_true", help="the minutes version (make figures)")
    modes.add_argument("--smoke", action="store_true", help="a seconds-long check (the tests)")
    p.add_argument(
        "--workers",
        type=int,
        default=None,
        help="worker processes for the training runs (default: the CPU count; 0: in this process)",
    )
    p.add_argument("--out", type=Path, default=None, help="output folder (default figures/out)")
    if data_root is not None:
        p.add_argument("--data-root", type=Path, default=None, help=data_root)
    return p


def mode_of(args):
    return "smoke" if args.smoke else "quick" if args.quick else "full"


def out_dir(name, args):
    """``<out>/<name>/<mode>/``, created."""
    folder = (args.out or OUT) / name / mode_of(args)
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def workers_of(args):
    if args.workers is not None:
        return args.workers
    return 0 if args.smoke else (os.cpu_count() or 1)


class Timer:
    """Prints ``<name> (<mode>): <seconds> s`` at the end of a script."""

    def __init__(self, name, mode):
        self.name, self.mode = name, mode

    def __enter__(self):
        self.start = time.perf_counter()
        print(f"== figure {self.name} ({self.mode} mode)", flush=True)
        return self

    def __exit__(self, *exc):
        seconds = time.perf_counter() - self.start
        print(f"== figure {self.name} ({self.mode} mode): {seconds:.1f} s", flush=True)


# --------------------------------------------------------------------------------------------
# sweeps and summaries


def run_grid(points, base, out, workers, label):
    """Train every point (a list of override dicts) of ``base`` under ``out`` with
    :func:`lfp_ref.sweep.run_sweep` (finished runs are skipped); returns the result rows.
    A point that fails raises."""
    from lfp_ref.sweep import Sweep, run_sweep

    print(f"{label}: {len(points)} training runs in {out}", flush=True)
    result = run_sweep(Sweep(base, points=points), out, workers=workers, progress=True)
    if result.failed:
        name, error = next(iter(result.failed.items()))
        raise RuntimeError(f"{len(result.failed)} runs failed, e.g. {name}: {error}")
    print(
        f"{label}: {len(result.ran)} run now, {len(result.skipped)} already done "
        f"({result.seconds:.0f} s)",
        flush=True,
    )
    return result.rows


def accuracy(row, num_classes):
    """The final test accuracy of a sweep row; a diverged run counts as chance (``1 / C``)."""
    if row["status"] == "diverged":
        return 1.0 / num_classes
    return row["final_test_acc"]


def summarise(rows, keys, num_classes_of):
    """``{key tuple: {"n", "mean", "std", "min", "max", "diverged", "accs"}}`` of the final
    test accuracies grouped by ``keys``; ``num_classes_of(row)`` gives the chance level used
    for diverged runs."""
    groups = {}
    for row in rows:
        key = tuple(row[k] for k in keys)
        groups.setdefault(key, []).append(row)
    summary = {}
    for key, group in groups.items():
        accs = np.array([accuracy(r, num_classes_of(r)) for r in group])
        summary[key] = {
            "n": len(accs),
            "mean": float(accs.mean()),
            "std": float(accs.std()),
            "min": float(accs.min()),
            "max": float(accs.max()),
            "diverged": sum(r["status"] == "diverged" for r in group),
            "accs": accs,
        }
    return summary


def best_lr(by_lr):
    """The learning rate with the highest mean accuracy (``{lr: stats}``); ties go to the
    smaller spread, then the smaller learning rate."""
    return min(by_lr, key=lambda lr: (-round(by_lr[lr]["mean"], 12), by_lr[lr]["std"], lr))


def lr_grid(mantissas, exponents):
    """``sorted({m * 10**k})`` as clean floats (``3e-4``, not ``0.00030000000000000003``)."""
    return sorted({float(f"{m}e{k}") for k in exponents for m in mantissas})


def metrics_of(run_dir):
    from lfp_ref.train import read_run

    return read_run(run_dir)["metrics"]


def load_model(run_dir):
    """The trained model of a run folder (its last checkpoint), in eval mode, and its data."""
    from lfp_ref.train import Trainer

    trainer = Trainer.open(run_dir, progress=False, log=lambda *a: None)
    return trainer.model.eval(), trainer


# --------------------------------------------------------------------------------------------
# the toy network with an activation after every layer


def toy_net(num_classes, input_shape, seed, dtype, nonlinearity="relu", output=True):
    """The paper's toy network 2-32-16-C (``lfp_ref.zoo``'s "toy", the same weights for the
    same seed) with ``nonlinearity`` after every layer, the output layer included when
    ``output`` (figure 2 of the toy experiments). A TrainConfig model factory:
    ``model="figures.common:toy_net"``, ``model_options={"nonlinearity": "tanh"}``."""
    if nonlinearity not in ACTIVATIONS:
        raise ValueError(f"nonlinearity must be one of {', '.join(ACTIVATIONS)}")
    net = zoo.build(
        "toy",
        num_classes=num_classes,
        input_shape=input_shape,
        activation=nonlinearity,
        seed=seed,
        dtype=dtype,
    )
    layers = list(net)
    if output:
        layers.append(ACTIVATIONS[nonlinearity]())
    return Sequential(*layers)


# --------------------------------------------------------------------------------------------
# writing


def write_csv(path, rows, columns=None):
    """Rows (dicts) as csv; floats with repr precision."""
    rows = list(rows)
    columns = columns or (list(rows[0]) if rows else [])
    with open(path, "w", newline="") as file:
        writer = csv.writer(file, lineterminator="\n")
        writer.writerow(columns)
        for row in rows:
            writer.writerow(["" if row.get(c) is None else _number(row.get(c)) for c in columns])
    print(f"wrote {path}")


def _number(value):
    if isinstance(value, (float, np.floating)):
        return repr(float(value))
    if isinstance(value, np.integer):
        return int(value)
    return value


def write_json(path, values):
    def default(value):
        if isinstance(value, np.ndarray):
            return value.tolist()
        if isinstance(value, (np.floating, np.integer)):
            return value.item()
        return str(value)

    Path(path).write_text(json.dumps(values, indent=2, default=default) + "\n")
    print(f"wrote {path}")


def save_figure(fig, name, folder, mode, dpi=DPI):
    """Write ``folder/<name>.png``; in full mode copy it to ``figures/png/<name>.png``."""
    import matplotlib.pyplot as plt
    from PIL import Image

    path = Path(folder) / f"{name}.png"
    fig.savefig(path, dpi=dpi)
    plt.close(fig)
    # a 256-colour palette: plots lose nothing visible and the file a factor of 3 or so
    with Image.open(path) as image:
        small = image.convert("RGB").quantize(256, method=Image.Quantize.MEDIANCUT)
    small.save(path, optimize=True)
    size = path.stat().st_size
    print(f"wrote {path} ({size / 1024:.0f} KB)")
    if mode == "full":
        PNG.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, PNG / f"{name}.png")
        print(f"copied to {PNG / f'{name}.png'}")
    return path


def pyplot():
    """matplotlib.pyplot on the Agg backend (no display needed)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    plt.rcParams.update({"font.size": 9, "axes.titlesize": 10})
    return plt


def fmt_lr(lr):
    """``3e-04`` style for titles and tables."""
    return f"{lr:.0e}" if lr > 0 and math.isfinite(lr) else str(lr)
