"""``lfp-ref sweep GRID.toml --out runs/NAME``: train every point of a grid of configurations,
one run folder per point, on local worker processes or a Dask cluster; print a table.

    lfp-ref sweep grid.toml --out runs/toy-lr                  # local workers, one per core
    lfp-ref sweep grid.toml --out runs/toy-lr --workers 2
    lfp-ref sweep grid.toml --out runs/toy-lr --scheduler tcp://10.0.0.5:8786
    lfp-ref sweep grid.toml --out runs/toy-lr --dry-run        # list the points and their state

Repeating the command continues an interrupted sweep (finished points are skipped, started ones
resumed bit for bit). Each point opens with ``lfp-ref eval runs/toy-lr/POINT``. The grid file's
format is below (and in :mod:`lfp_ref.sweep`).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from . import CLIError

#: a summary longer than this prints the best rows only (results.csv has all)
MAX_TABLE_ROWS = 40


def _workers(text):
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer >= 0, got {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected an integer >= 0, got {text!r}")
    return value


def _grid_format():
    from .. import sweep

    doc = sweep.__doc__
    return "grid file format:\n" + doc[doc.index("The grid file (TOML)") :].split("::\n", 1)[1]


def add_parser(subparsers):
    parser = subparsers.add_parser(
        "sweep",
        help="train a grid of configurations (local workers or a Dask cluster)",
        description=(
            "Train every point of GRID.toml (a base TrainConfig, fields to vary, explicit "
            "points), one run folder per point under --out, named from the point's overrides; "
            "print a table and write OUT/results.csv. Repeat the command to continue an "
            "interrupted sweep: finished points are skipped, started ones resumed."
        ),
        epilog=_grid_format(),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("grid", type=Path, metavar="GRID.toml", help="the grid file")
    parser.add_argument("--out", type=Path, required=True, help="folder of the sweep's runs")
    where = parser.add_mutually_exclusive_group()
    where.add_argument(
        "--workers",
        type=_workers,
        help="local worker processes, one thread each (default: the grid file's [sweep] "
        "workers, else the number of CPUs; 0: one after the other in this process)",
    )
    where.add_argument(
        "--scheduler",
        metavar="ADDR",
        help="run on the Dask cluster of this scheduler (tcp://host:8786; needs "
        "lfp_ref[dask]); --out must be on a file system the workers share",
    )
    parser.add_argument(
        "--dry-run", action="store_true", help="list the points and their state, run nothing"
    )
    parser.add_argument("--no-progress", action="store_true", help="no progress line")
    parser.set_defaults(func=run)
    return parser


def run(args):
    from .. import sweep
    from .train import importable_cwd

    importable_cwd()  # user factories (package.module:function) from the current folder
    try:
        spec = sweep.load_grid(args.grid)
        points = spec.expand()
        if args.dry_run:
            states = [sweep.point_state(args.out / p.name, p.config) for p in points]
            for point, state in zip(points, states):
                print(f"{state:9s} {args.out / point.name}")
            counts = {s: states.count(s) for s in dict.fromkeys(states)}
            print(f"{len(points)} points: " + ", ".join(f"{n} {s}" for s, n in counts.items()))
            return 0
        result = sweep.run_sweep(
            spec,
            args.out,
            workers=args.workers,  # None: the grid file's [sweep] workers, else the CPUs
            scheduler=args.scheduler,
            progress=not args.no_progress,
        )
    except sweep.SweepError as exc:
        raise CLIError(str(exc)) from None
    print(result.table(max_rows=MAX_TABLE_ROWS))
    print(
        f"\n{len(result.rows)} points: {len(result.ran)} run now, {len(result.skipped)} "
        f"already finished, {len(result.failed)} failed, in {result.seconds:.1f} s; table in "
        f"{args.out / sweep.RESULTS_FILE}"
    )
    if result.failed:
        for name, error in result.failed.items():
            print(f"failed: {name}: {error}")
        print("run the same command again to retry the failed points")
        return 1
    return 0
