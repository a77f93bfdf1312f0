"""Grids of training runs: a base :class:`~lfp_ref.train.TrainConfig`, the fields to vary, one
run folder per point, a table of results, on any ``concurrent.futures`` executor.

::

    from lfp_ref.sweep import Sweep, run_sweep
    sweep = Sweep(TrainConfig(model="toy", data="blobs", epochs=10, clip=None),
                  grid={"method": ["lfp", "gd"], "lr": [1e-4, 1e-3, 1e-2]})
    result = run_sweep(sweep, "runs/toy-lr", workers=2)
    print(result.table())

Every point is a normal run folder under ``out`` (``config.json``, ``metrics.csv``,
``steps.csv``, ``last.npz``: ``lfp-ref eval out/POINT`` opens it), named from its overrides
(:func:`point_name`: ``lr=0.001__method=lfp``), plus ``sweep-point.json`` once the point is
finished. Running the same sweep again skips the finished points, resumes the unfinished ones
from their last checkpoint (bit for bit, :meth:`lfp_ref.train.Trainer.resume`) and starts the
others, so an interrupted sweep is continued by repeating the command. ``out/results.csv`` is
the table (one row per point: the overrides, the final and best metrics, the training time and
the run folder) and ``out/sweep.json`` the sweep as run.

Executors. By default a local process pool (:func:`local_executor`): spawned workers, each with
one Numba / BLAS thread (``NUMBA_NUM_THREADS``, ``OMP_NUM_THREADS``, ``OPENBLAS_NUM_THREADS``,
``MKL_NUM_THREADS`` = 1, set in the environment the workers start with, before they load NumPy
or Numba), so N workers use N cores. ``workers=0`` runs the points one after another in this
process (debugging, tests). With a Dask scheduler address, the points run on that cluster through
``distributed.Client(address).get_executor()`` (:func:`dask_executor`; ``pip install
'lfp_ref[dask]'``); then ``out`` must be a folder every worker can read and write (a shared file
system), and the workers' thread settings are the cluster's. Any other
``concurrent.futures.Executor`` can be passed as ``executor``.

The grid file (TOML) of ``lfp-ref sweep GRID.toml --out runs/NAME``::

    # the base configuration: any TrainConfig fields (defaults for the rest)
    [base]
    model = "toy"
    data = "blobs"
    epochs = 10
    batch_size = 128
    momentum = 0.95
    clip = "none"              # "none" is None for the optional fields (clip, rule, widths, ...)
    [base.data_options]
    seed = 0

    # the grid: field = [values]; every combination is a point
    [grid]
    method = ["lfp", "gd"]
    lr = [1e-4, 3e-4, 1e-3]
    seed = [0, 1]
    "data_options.seed" = [0, 1]   # a dotted key sets one entry of a dict field

    # optional explicit points, each a table of overrides of the base, run besides the grid
    [[points]]
    method = "gd"
    lr = 0.1
    [[points]]
    rule_for = { Conv2d = "zplus" }

The points are the grid's combinations (in the order of the keys and values as written) and
then the explicit ones; a point listed twice runs once. A ``sweep`` table may set
``workers`` (the default of ``--workers``).
"""

from __future__ import annotations

import concurrent.futures as cf
import contextlib
import csv
import dataclasses
import hashlib
import io
import itertools
import json
import os
import re
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from .train import checkpoint as _ckpt
from .train.config import ConfigError, TrainConfig
from .train.progress import Progress
from .train.runlog import CONFIG_FILE, read_config_file, read_run

#: a finished point's marker in its run folder (status, overrides, error)
POINT_FILE = "sweep-point.json"
RESULTS_FILE = "results.csv"
SWEEP_FILE = "sweep.json"

#: the environment of the local workers: one thread each, set before NumPy / Numba load
WORKER_ENV = {
    "NUMBA_NUM_THREADS": "1",
    "OMP_NUM_THREADS": "1",
    "OPENBLAS_NUM_THREADS": "1",
    "MKL_NUM_THREADS": "1",
}

#: the columns of results.csv after the overrides
RESULT_COLUMNS = (
    "status",
    "epochs_done",
    "final_test_acc",
    "final_train_acc",
    "final_test_loss",
    "final_train_loss",
    "final_sparsity",
    "best_test_acc",
    "best_epoch",
    "wall_time",
    "run_dir",
)

#: point states: finished (done or diverged), started (a run folder without the marker), new
DONE, DIVERGED, PARTIAL, NEW, FAILED = "done", "diverged", "partial", "new", "failed"

#: TrainConfig fields whose None the trainer replaces when a run starts (reward: the model's
#: default reward), so config.json holds a value where the sweep's config has None
FILLED_BY_TRAINER = ("reward",)

#: the TrainConfig fields a dotted grid key ("data_options.seed") may reach into
DICT_FIELDS = ("model_options", "data_options", "method_options", "rule_options", "rule_for")

_NAME_TEXT = re.compile(r"^[A-Za-z0-9.+-]+(_[A-Za-z0-9.+-]+)*$")
_MAX_NAME = 120


class SweepError(ValueError):
    """A sweep that cannot run: a bad grid file, an unknown field, a folder of another run."""


# --------------------------------------------------------------------------------------------
# points: overrides of the base configuration


def _fields():
    return {f.name: f for f in dataclasses.fields(TrainConfig)}


def _optional_fields():
    """TrainConfig fields that may be None (the grid file writes None as "none")."""
    return {name for name, f in _fields().items() if "None" in str(f.type)}


def _check_key(key, where):
    top = key.split(".", 1)[0]
    fields = _fields()
    if top not in fields:
        raise SweepError(
            f"{where}: {key!r} is not a TrainConfig field; known: {', '.join(sorted(fields))}"
        )
    if "." in key and top not in DICT_FIELDS:
        raise SweepError(
            f"{where}: a dotted key sets an entry of a dict field ({', '.join(DICT_FIELDS)}); "
            f"{top!r} is not one"
        )


def _from_file(key, value):
    """A grid-file value as TrainConfig takes it: "none" is None for the optional fields."""
    if key in _optional_fields() and isinstance(value, str) and value.strip().lower() == "none":
        return None
    return value


def apply_overrides(base, overrides):
    """``base`` with ``overrides`` (``{field: value}``; ``"dict_field.key"`` sets one entry of a
    dict field) applied, not yet validated."""
    top, nested = {}, {}
    for key, value in overrides.items():
        _check_key(key, "overrides")
        name, _, entry = key.partition(".")
        if entry:
            nested.setdefault(name, {})[entry] = value
        else:
            top[name] = value
    config = dataclasses.replace(base, **top)
    for name, entries in nested.items():
        current = dict(getattr(config, name) or {})
        for entry, value in entries.items():
            _set_dotted(current, entry, value)
        config = dataclasses.replace(config, **{name: current})
    return config


def _set_dotted(target, dotted, value):
    head, _, rest = dotted.partition(".")
    if not rest:
        target[head] = value
        return
    inner = dict(target.get(head) or {})
    _set_dotted(inner, rest, value)
    target[head] = inner


def _text(value):
    if isinstance(value, bool):
        return str(value).lower()
    if value is None:
        return "none"
    if isinstance(value, float):
        return repr(value)
    if isinstance(value, (int, str)):
        return str(value)
    return json.dumps(value, sort_keys=True, separators=(",", ":"))


def point_name(overrides):
    """The folder name of a point: ``key=value`` pairs sorted by key, joined by ``__``
    (``lr=0.001__method=lfp__seed=2``; ``base`` for no overrides). Values that are not plain
    text (dicts, lists, characters outside ``A-Za-z0-9._+-``) and names over 120 characters get
    a readable prefix and the first 10 hex digits of the SHA-1 of the overrides' JSON, so
    different overrides always give different names."""
    if not overrides:
        return "base"
    parts, plain = [], True
    for key in sorted(overrides):
        text = _text(overrides[key])
        if not _NAME_TEXT.match(text):
            plain = False
            text = re.sub(r"[^A-Za-z0-9.+-]+", "-", text).strip("-") or "x"
        parts.append(f"{key}={text}")
    name = "__".join(parts)
    if plain and len(name) <= _MAX_NAME:
        return name
    canonical = json.dumps(overrides, sort_keys=True, separators=(",", ":"))
    digest = hashlib.sha1(canonical.encode()).hexdigest()[:10]
    return f"{name[: _MAX_NAME - 11]}-{digest}"


@dataclass(frozen=True)
class Point:
    """One run of a sweep: its overrides, folder name and checked configuration."""

    overrides: dict
    name: str
    config: TrainConfig


@dataclass
class Sweep:
    """A base configuration, a grid ``{field: [values]}`` and explicit points (lists of
    overrides); :meth:`expand` makes the list of points (the grid's combinations, then the
    explicit points)."""

    base: TrainConfig = field(default_factory=TrainConfig)
    grid: dict = field(default_factory=dict)
    points: list = field(default_factory=list)
    workers: int | None = None

    def expand(self):
        """The checked points, grid first, duplicates dropped; SweepError names a bad one."""
        for key, values in self.grid.items():
            _check_key(key, "grid")
            if not isinstance(values, (list, tuple)) or not values:
                raise SweepError(
                    f"grid: {key!r} must be a non-empty list of values, got {values!r}"
                )
        keys = list(self.grid)
        combos = [dict(zip(keys, values)) for values in itertools.product(*self.grid.values())]
        if not keys:
            combos = [] if self.points else [{}]
        out, seen = [], {}
        for overrides in [*combos, *(dict(p) for p in self.points)]:
            overrides = {k: _from_file(k.split(".")[0], v) for k, v in overrides.items()}
            name = point_name(overrides)
            try:
                config = apply_overrides(self.base, overrides).validated()
            except (ConfigError, TypeError) as exc:
                raise SweepError(f"point {name}: {exc}") from None
            if name in seen:  # the same overrides listed twice: one run
                continue
            seen[name] = config
            out.append(Point(overrides, name, config))
        return out

    def to_dict(self):
        return {
            "base": self.base.to_dict(),
            "grid": {k: list(v) for k, v in self.grid.items()},
            "points": [dict(p) for p in self.points],
        }


def _toml():
    try:
        import tomllib
    except ModuleNotFoundError:  # Python 3.10
        try:
            import tomli as tomllib
        except ModuleNotFoundError:
            raise SweepError(
                "reading a grid file on Python 3.10 needs tomli: pip install tomli"
            ) from None
    return tomllib


def parse_grid(text, where="the grid file"):
    """A :class:`Sweep` from the text of a grid file (the format is in the module docstring)."""
    tomllib = _toml()
    try:
        spec = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise SweepError(f"{where} is not valid TOML: {exc}") from None
    unknown = sorted(set(spec) - {"base", "grid", "points", "sweep"})
    if unknown:
        raise SweepError(
            f"{where}: unknown tables {unknown}; use [base], [grid], [[points]], [sweep]"
        )
    base = spec.get("base", {})
    for key in base:
        _check_key(key, f"{where} [base]")
    base = {k: _from_file(k, v) for k, v in base.items()}
    if isinstance(base.get("widths"), list):
        base["widths"] = tuple(base["widths"])
    try:
        base_config = TrainConfig(**base)
        base_config.validated()
    except (ConfigError, TypeError) as exc:
        raise SweepError(f"{where} [base]: {exc}") from None
    points = spec.get("points", [])
    if not isinstance(points, list) or not all(isinstance(p, dict) for p in points):
        raise SweepError(f"{where}: points must be an array of tables ([[points]])")
    options = spec.get("sweep", {})
    unknown = sorted(set(options) - {"workers"})
    if unknown:
        raise SweepError(f"{where} [sweep]: unknown keys {unknown}; known: workers")
    grid = spec.get("grid", {})
    if not grid and not points:
        raise SweepError(f"{where} has neither a [grid] nor [[points]]: nothing to vary")
    return Sweep(base_config, grid, points, workers=options.get("workers"))


def load_grid(path):
    """The :class:`Sweep` of the grid file at ``path``."""
    path = Path(path)
    try:
        text = path.read_text()
    except OSError as exc:
        raise SweepError(f"cannot read the grid file {path}: {exc}") from None
    return parse_grid(text, str(path))


# --------------------------------------------------------------------------------------------
# run folders: state, the worker, the table row


def point_state(run_dir, config):
    """``"done"``/``"diverged"`` (finished), ``"partial"`` (a started run) or ``"new"``;
    SweepError when the folder holds a run of another configuration."""
    run_dir = Path(run_dir)
    if not (run_dir / CONFIG_FILE).is_file():
        return NEW
    try:
        saved = TrainConfig.from_dict(read_config_file(run_dir)["config"])
    except ConfigError as exc:
        raise SweepError(f"{run_dir}: {exc}") from None
    wanted = config.to_dict()
    diff = [
        f"{k}: {v!r} (folder) vs {wanted[k]!r} (sweep)"
        for k, v in saved.to_dict().items()
        if v != wanted[k] and not (k in FILLED_BY_TRAINER and wanted[k] is None)
    ]
    if diff:
        raise SweepError(
            f"{run_dir} holds a run of another configuration ({'; '.join(diff)}); the base "
            "configuration changed since it ran: choose another output folder"
        )
    marker = run_dir / POINT_FILE
    if marker.is_file():
        try:
            status = json.loads(marker.read_text()).get("status")
        except (OSError, json.JSONDecodeError):
            status = None
        if status in (DONE, DIVERGED):
            return status
    return PARTIAL


def _write_marker(run_dir, values):
    text = json.dumps(values, indent=2) + "\n"
    _ckpt.atomic_write(Path(run_dir) / POINT_FILE, lambda file: file.write(text.encode()))


def result_row(run_dir, overrides, status):
    """The table row of a point from its run folder: the overrides, then
    :data:`RESULT_COLUMNS` (``final_*`` from the last epoch, empty for a diverged run;
    ``best_test_acc`` over the epochs; ``wall_time`` the sum of the epochs' own times)."""
    run_dir = Path(run_dir)
    metrics = read_run(run_dir)["metrics"] if (run_dir / CONFIG_FILE).is_file() else []
    row = dict(overrides)
    last = metrics[-1] if metrics and status == DONE else {}
    tested = [m for m in metrics if m.get("test_acc") is not None]
    best = max(tested, key=lambda m: m["test_acc"]) if tested else {}
    row.update(
        status=status,
        epochs_done=len(metrics),
        final_test_acc=last.get("test_acc"),
        final_train_acc=last.get("train_acc"),
        final_test_loss=last.get("test_loss"),
        final_train_loss=last.get("train_loss"),
        final_sparsity=last.get("sparsity"),
        best_test_acc=best.get("test_acc"),
        best_epoch=best.get("epoch"),
        # each epoch's own seconds (steps and evaluation), summed once
        wall_time=sum(m.get("wall_time") or 0.0 for m in metrics),
        run_dir=run_dir.name,  # the point's folder, under the sweep's output folder
    )
    return row


def _quiet(*args, **kwargs):
    pass


def run_point(config, run_dir, overrides):
    """Train one point in ``run_dir`` (the worker function: top level and picklable): start it,
    resume it from its last checkpoint, or leave it when it is finished; returns its row.

    ``config`` is ``TrainConfig.to_dict()``. A run stopped by non-finite values is finished as
    ``"diverged"``; any other error propagates (the point stays unfinished)."""
    from .train import Trainer, TrainingDiverged

    config = TrainConfig.from_dict(config)
    run_dir = Path(run_dir)
    state = point_state(run_dir, config)
    if state in (DONE, DIVERGED):
        return result_row(run_dir, overrides, state)
    error = None
    try:
        if state == PARTIAL:
            trainer = Trainer.resume(run_dir, progress=False, log=_quiet)
        else:
            trainer = Trainer(config, out=run_dir, progress=False, log=_quiet, overwrite=True)
        trainer.run()
        status = DONE
    except TrainingDiverged as exc:
        status, error = DIVERGED, str(exc)
    _write_marker(run_dir, {"status": status, "overrides": overrides, "error": error})
    return result_row(run_dir, overrides, status)


# --------------------------------------------------------------------------------------------
# executors


class SerialExecutor(cf.Executor):
    """Runs each submitted call at once, in this process (``workers=0``)."""

    def submit(self, fn, /, *args, **kwargs):
        future = cf.Future()
        try:
            future.set_result(fn(*args, **kwargs))
        except BaseException as exc:  # noqa: BLE001 - handed to the caller through the future
            if isinstance(exc, (KeyboardInterrupt, SystemExit)):
                raise
            future.set_exception(exc)
        return future


def _init_worker(env):
    """The local workers' initializer: the one-thread environment (already in place when the
    worker started, see :func:`local_executor`) and Numba's thread count."""
    os.environ.update(env)
    if "numba" in sys.modules:
        import numba

        numba.set_num_threads(1)


@contextlib.contextmanager
def _environment(values):
    saved = {key: os.environ.get(key) for key in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


@contextlib.contextmanager
def local_executor(workers=None):
    """A process pool of ``workers`` (default: the CPU count) spawned workers with one Numba /
    BLAS thread each; ``workers=0``: :class:`SerialExecutor`.

    The spawned workers import NumPy and Numba while they unpickle their first call, before any
    initializer could run, so the thread variables are set in this process's environment while
    the pool starts its workers (spawned children inherit it) and restored afterwards; the
    initializer sets them again and pins Numba to one thread."""
    if workers == 0:
        yield SerialExecutor()
        return
    import multiprocessing

    workers = workers or os.cpu_count() or 1
    with _environment(WORKER_ENV):
        pool = cf.ProcessPoolExecutor(
            max_workers=workers,
            mp_context=multiprocessing.get_context("spawn"),
            initializer=_init_worker,
            initargs=(dict(WORKER_ENV),),
        )
        try:
            yield pool
        finally:
            pool.shutdown(wait=True, cancel_futures=True)


@contextlib.contextmanager
def dask_executor(address):
    """A ``concurrent.futures`` executor on the Dask cluster whose scheduler is at ``address``
    (``tcp://host:8786``; or a ``distributed.Client``): ``Client(address).get_executor()``."""
    try:
        import distributed
    except ModuleNotFoundError:
        raise SweepError(
            "running a sweep on a Dask cluster needs distributed: pip install 'lfp_ref[dask]'"
        ) from None
    if isinstance(address, distributed.Client):
        yield address.get_executor(pure=False)
        return
    with distributed.Client(address) as client:
        yield client.get_executor(pure=False)


# --------------------------------------------------------------------------------------------
# the sweep


@dataclass
class SweepResult:
    """What :func:`run_sweep` did: the rows (in the sweep's order), the names of the points
    it ran now and skipped, the failures (``{name: error text}``) and the override columns."""

    out: Path
    rows: list
    ran: list
    skipped: list
    failed: dict
    columns: list
    seconds: float

    def table(self, max_rows=None):
        """A plain-text table of the rows (overrides, status, final and best test accuracy,
        training seconds); ``max_rows`` keeps the best rows by final test accuracy."""
        return results_table(self.rows, self.columns, max_rows)


def _cell(value, column):
    if value is None:
        return "-"
    if isinstance(value, float):
        if column == "wall_time":
            return f"{value:.1f}"
        return f"{value:.4f}" if column.endswith(("_acc", "_loss", "sparsity")) else f"{value:g}"
    return _text(value)


def results_table(rows, columns, max_rows=None):
    """The text table of sweep rows (the override ``columns``, then status, final and best test
    accuracy, epochs and seconds)."""
    shown = list(rows)
    note = ""
    if max_rows is not None and len(shown) > max_rows:
        shown.sort(key=lambda r: -(r.get("final_test_acc") or -1.0))
        shown = shown[:max_rows]
        note = (
            f"\n({max_rows} best of {len(rows)} rows by final test accuracy; all in {RESULTS_FILE})"
        )
    header = [*columns, "status", "epochs", "test_acc", "best_test_acc", "time_s"]
    keys = [*columns, "status", "epochs_done", "final_test_acc", "best_test_acc", "wall_time"]
    body = [[_cell(row.get(k), k) for k in keys] for row in shown]
    widths = [max(len(r[i]) for r in (header, *body)) for i in range(len(header))]
    numeric = set(range(len(columns) + 1, len(header)))

    def line(cells):
        return "  ".join(
            c.rjust(w) if i in numeric else c.ljust(w)
            for i, (c, w) in enumerate(zip(cells, widths))
        ).rstrip()

    return "\n".join([line(header), *(line(r) for r in body)]) + note


def write_results(path, rows, columns):
    """Write the rows as csv (override columns, then :data:`RESULT_COLUMNS`; dicts and lists as
    JSON, None as an empty cell), atomically."""
    header = [*columns, *RESULT_COLUMNS]

    def cell(value):
        if value is None:
            return ""
        if isinstance(value, float):
            return repr(value)
        return _text(value)

    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(header)
    for row in rows:
        writer.writerow([cell(row.get(k)) for k in header])
    _ckpt.atomic_write(Path(path), lambda file: file.write(buffer.getvalue().encode()))


def read_results(path):
    """The rows of a results.csv (numbers parsed, empty cells None, JSON cells decoded)."""

    def parse(text):
        if text == "":
            return None
        for kind in (int, float):
            try:
                return kind(text)
            except ValueError:
                pass
        if text[:1] in "[{":
            try:
                return json.loads(text)
            except json.JSONDecodeError:
                return text
        return text

    with open(path, newline="") as file:
        return [{k: parse(v) for k, v in row.items()} for row in csv.DictReader(file)]


def _columns(points):
    columns = []
    for point in points:
        for key in point.overrides:
            if key not in columns:
                columns.append(key)
    return columns


def run_sweep(
    sweep,
    out,
    *,
    workers=None,
    scheduler=None,
    executor=None,
    progress=True,
    stream=None,
    log=None,
):
    """Run every point of ``sweep`` (a :class:`Sweep` or a list of :class:`Point`) under
    ``out``: finished points are skipped, started ones resumed, the others started.

    Parameters
    ----------
    workers : int, optional
        Local worker processes (default ``sweep.workers``, else the CPU count); 0: in this
        process, one point after the other.
    scheduler : str or distributed.Client, optional
        A Dask scheduler address: run on that cluster instead (:func:`dask_executor`).
    executor : concurrent.futures.Executor, optional
        Run on this executor instead (it is not shut down).
    progress : bool
        A progress line (points done / total, rate, eta) on ``stream`` (default stderr).
    log : callable, optional
        Receives one line per failed point (default: print to ``stream``).

    Returns
    -------
    SweepResult
        Also written: ``out/results.csv`` and ``out/sweep.json``. Points that raised are in
        ``failed`` (their rows have status "failed"); run the sweep again to retry them.
    """
    started = time.perf_counter()
    out = Path(out)
    stream = sys.stderr if stream is None else stream
    log = log or (lambda line: print(line, file=stream, flush=True))
    if isinstance(sweep, Sweep):
        points = sweep.expand()
        if workers is None:
            workers = sweep.workers
        spec = sweep.to_dict()
    else:
        points = list(sweep)
        spec = {"points": [p.overrides for p in points]}
    out.mkdir(parents=True, exist_ok=True)
    text = json.dumps(spec, indent=2, default=str) + "\n"
    _ckpt.atomic_write(out / SWEEP_FILE, lambda file: file.write(text.encode()))
    columns = _columns(points)
    rows, ran, skipped, failed, pending = {}, [], [], {}, []
    for point in points:
        state = point_state(out / point.name, point.config)
        if state in (DONE, DIVERGED):
            rows[point.name] = result_row(out / point.name, point.overrides, state)
            skipped.append(point.name)
        else:
            pending.append(point)
    bar = Progress(
        len(points), desc="sweep", initial=len(skipped), stream=stream, enabled=progress,
        plain_interval=5.0,
    )  # fmt: skip
    if pending:
        if executor is not None:
            context = contextlib.nullcontext(executor)
        elif scheduler is not None:
            context = dask_executor(scheduler)
        else:
            count = workers if workers is not None else os.cpu_count() or 1
            context = local_executor(min(count, len(pending)))
        diverged = sum(1 for r in rows.values() if r["status"] == DIVERGED)
        with context as pool:
            futures = {
                pool.submit(run_point, p.config.to_dict(), str(out / p.name), p.overrides): p
                for p in pending
            }
            try:
                for future in cf.as_completed(futures):
                    point = futures[future]
                    try:
                        row = future.result()
                    except Exception as exc:  # noqa: BLE001 - reported, the sweep goes on
                        failed[point.name] = f"{type(exc).__name__}: {exc}"
                        row = result_row(out / point.name, point.overrides, FAILED)
                        log(f"point {point.name} failed: {failed[point.name]}")
                    rows[point.name] = row
                    ran.append(point.name)
                    diverged += row["status"] == DIVERGED
                    bar.update(diverged=diverged, failed=len(failed))
            except BaseException:
                for future in futures:
                    future.cancel()
                bar.abandon()
                raise
    bar.close()
    ordered = [rows[p.name] for p in points]
    order = {p.name: i for i, p in enumerate(points)}
    ran.sort(key=order.get)
    write_results(out / RESULTS_FILE, ordered, columns)
    return SweepResult(out, ordered, ran, skipped, failed, columns, time.perf_counter() - started)


__all__ = [
    "DIVERGED",
    "DONE",
    "POINT_FILE",
    "Point",
    "RESULTS_FILE",
    "RESULT_COLUMNS",
    "SWEEP_FILE",
    "SerialExecutor",
    "Sweep",
    "SweepError",
    "SweepResult",
    "WORKER_ENV",
    "apply_overrides",
    "dask_executor",
    "load_grid",
    "local_executor",
    "parse_grid",
    "point_name",
    "point_state",
    "read_results",
    "result_row",
    "results_table",
    "run_point",
    "run_sweep",
    "write_results",
]
