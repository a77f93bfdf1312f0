"""``lfp-ref compare RUN RUN ...``: a table of the runs' final metrics and a PNG of their
learning curves (``--out DIR``, default the folder that holds the runs)."""

from __future__ import annotations

import os
from pathlib import Path

from . import CLIError
from .train import folder_path

FIGURE_NAME = "learning_curves.png"


def add_parser(subparsers):
    parser = subparsers.add_parser(
        "compare",
        help="compare runs: a table and a learning-curve PNG",
        description=(
            "Print a table of the last epoch of each run (method, model, data, train/test "
            f"accuracy, test loss, weight sparsity, time) and write {FIGURE_NAME} (training "
            "loss and accuracy over epochs) next to the runs or into --out."
        ),
    )
    parser.add_argument("runs", type=folder_path, nargs="+", metavar="RUN", help="run folders")
    parser.add_argument(
        "--out", type=folder_path, help="folder for the PNG (default: the runs' common parent)"
    )
    parser.add_argument(
        "--no-plot", action="store_true", help="print the table only (default: off)"
    )
    parser.set_defaults(func=run)
    return parser


def default_figure_dir(runs):
    """The deepest folder that holds all the runs."""
    parents = [str(Path(run).resolve().parent) for run in runs]
    return Path(os.path.commonpath(parents))


def run(args):
    from ..train import ConfigError, comparison_table, read_run

    try:
        runs = [read_run(path) for path in args.runs]
    except ConfigError as exc:
        raise CLIError(str(exc)) from None
    print(comparison_table(runs))
    if args.no_plot:
        return 0
    from ..train.plots import learning_curves

    target = (args.out or default_figure_dir(args.runs)) / FIGURE_NAME
    for run_info in runs:
        run_info["label"] = str(run_info["path"])
    try:
        learning_curves(runs, target, title="learning curves")
    except ImportError as exc:
        print(f"note: no figure written; {exc}")
        return 0
    except OSError as exc:
        raise CLIError(f"cannot write {target}: {exc}") from None
    print(f"wrote {target}")
    return 0
