"""A run folder's files and what reads them: ``config.json``, the per-epoch ``metrics.csv`` and
per-step ``steps.csv`` (append-only, every float written as its shortest round-trip text, so
the csv keeps every bit), the same rows as JSON lines in ``metrics.jsonl`` (one object per step,
``{"type": "step", ...}``, and per epoch, ``{"type": "epoch", ...}``, in the order they
happened), :func:`read_run` for tables and plots, :func:`comparison_table` and the per-epoch
:func:`summary_line`.

``config.json`` holds ``{"config": TrainConfig.to_dict(), "info": {...}}``; the info records the
data (name, source, sizes, ``num_classes``, ``input_shape``), the model's parameter count, and
the environment of the run's start (:func:`run_environment`: Python, NumPy and Numba versions,
numba threads, the git commit of the lfp_ref checkout when it is one, the command line, the
start time).

Metrics, per epoch (``metrics.csv``; wall_time is the only column that is not reproducible):

==============  =============================================================================
train_loss      mean over the epoch's samples of the model's output loss (the cross-entropy
                of the logits; for a spiking network the rate-coded cross-entropy of the
                output spikes, :mod:`lfp_ref.train.outputs`) of the training forward pass
                (before each update, dropout active), every method
train_reward    mean over the epoch's samples of the output reward summed over classes (and
                time steps), ``sum_c r[b, c]``, of the configured reward at the same logits
                (every method; for softmax_loss it is ``sum_c z_c (Y_c - p_c)``)
running_acc     fraction of the epoch's samples classified correctly in their training
                forward pass (argmax of the class scores: the logits, or a spiking network's
                spike counts)
train_acc       accuracy on the whole training set after the epoch, in eval mode
test_loss       mean output loss on the test set after the epoch, eval mode
test_acc        accuracy on the test set after the epoch, eval mode
sparsity        fraction of exactly-zero entries of the weights (parameters with ndim >= 2:
                Dense and Conv weights)
lr              the optimizer's learning rate at the end of the epoch
wall_time       seconds spent on the epoch (steps and evaluation)
==============  =============================================================================

and per step (``steps.csv``): the batch's mean loss, mean summed reward and accuracy, the lr
used, and the test accuracy/loss at steps where ``eval_every`` asks for an evaluation.
"""

from __future__ import annotations

import csv
import datetime
import json
import os
import platform
import shlex
import subprocess
import sys
from pathlib import Path

import numpy as np

from . import checkpoint as ckpt
from .config import ConfigError

CONFIG_FILE = "config.json"
METRICS_FILE = "metrics.csv"
STEPS_FILE = "steps.csv"
JSONL_FILE = "metrics.jsonl"
LAST_CHECKPOINT = "last.npz"

METRIC_COLUMNS = (
    "epoch",
    "step",
    "lr",
    "train_loss",
    "train_reward",
    "running_acc",
    "train_acc",
    "test_loss",
    "test_acc",
    "sparsity",
    "wall_time",
)
STEP_COLUMNS = ("step", "epoch", "lr", "loss", "reward", "acc", "test_loss", "test_acc")
#: columns that depend on the clock, left out of reproducibility comparisons
TIMING_COLUMNS = ("wall_time",)


# --------------------------------------------------------------------------------------------
# csv files


def _format(value):
    if value is None:
        return ""
    if isinstance(value, (int, np.integer)) and not isinstance(value, bool):
        return str(int(value))
    return repr(float(value))  # shortest round-trip text: the csv keeps every bit


def _parse(text):
    if text == "":
        return None
    try:
        return int(text)
    except ValueError:
        return float(text)


def read_csv(path, columns=None):
    """Rows of a metrics/steps csv as dicts (ints, floats, None for empty cells).

    With ``columns``, the header must be exactly these columns (a ConfigError otherwise)."""
    with open(path, newline="") as file:
        reader = csv.DictReader(file)
        if columns is not None and tuple(reader.fieldnames or ()) != tuple(columns):
            raise ConfigError(
                f"{path} is not an lfp_ref {Path(path).name}: its header is "
                f"{','.join(reader.fieldnames or ()) or '(empty)'!r}, expected "
                f"{','.join(columns)!r}"
            )
        return [{k: _parse(v) for k, v in row.items()} for row in reader]


def truncate_csv(path, key, last, columns):
    """Keep the rows with ``row[key] <= last`` (the ones the checkpoint has seen); a torn last
    line from a killed process is dropped too."""
    if not path.exists():
        return
    text = path.read_text()
    lines = text.splitlines(keepends=True)
    if not lines or lines[0].rstrip("\n") != ",".join(columns):
        raise ckpt.CheckpointError(f"{path} does not have the expected header {columns}")
    keep = [lines[0]]
    index = columns.index(key)
    for line in lines[1:]:
        if not line.endswith("\n"):
            break
        try:
            value = int(line.split(",")[index])
        except (ValueError, IndexError):
            continue  # garbled: not a row the checkpoint has seen (those were fsynced whole)
        if value <= last:
            keep.append(line)
    ckpt.atomic_write(path, lambda file: file.write("".join(keep).encode()))


def truncate_jsonl(path, last_epoch, last_step):
    """Keep the JSON lines the checkpoint has seen: step objects with ``step <= last_step``,
    epoch objects with ``epoch <= last_epoch``; a torn or garbled line is dropped."""
    if not path.exists():
        return
    keep = []
    for line in path.read_text().splitlines(keepends=True):
        if not line.endswith("\n"):
            break
        try:
            record = json.loads(line)
            kind = record["type"]
            seen = record["step"] <= last_step if kind == "step" else record["epoch"] <= last_epoch
        except (ValueError, KeyError, TypeError):
            continue
        if seen:
            keep.append(line)
    ckpt.atomic_write(path, lambda file: file.write("".join(keep).encode()))


def _json_value(value):
    if isinstance(value, (int, np.integer)) and not isinstance(value, bool):
        return int(value)
    if value is None:
        return None
    value = float(value)
    return value if np.isfinite(value) else None  # JSON has no NaN or inf


class JsonlLog:
    """Append-only JSON lines, one object per record (``{"type": kind, **row}``); floats are
    written as their shortest round-trip text, as in the csv files."""

    def __init__(self, path):
        self.file = open(path, "a")

    def write(self, kind, row, columns):
        record = {"type": kind, **{c: _json_value(row.get(c)) for c in columns}}
        self.file.write(json.dumps(record, allow_nan=False) + "\n")

    def sync(self):
        self.file.flush()
        os.fsync(self.file.fileno())

    def close(self):
        if not self.file.closed:
            self.file.close()


class CsvLog:
    """Append-only csv with a fixed header; ``sync()`` makes the rows durable (before each
    checkpoint, so every row the checkpoint has seen is on disk)."""

    def __init__(self, path, columns):
        self.columns = columns
        new = not path.exists()
        self.file = open(path, "a", newline="")
        if new:
            self.file.write(",".join(columns) + "\n")

    def write(self, row):
        self.file.write(",".join(_format(row.get(c)) for c in self.columns) + "\n")

    def sync(self):
        self.file.flush()
        os.fsync(self.file.fileno())

    def close(self):
        if not self.file.closed:
            self.file.close()


# --------------------------------------------------------------------------------------------
# run folders


def _version(distribution):
    from importlib import metadata

    try:
        return metadata.version(distribution)
    except metadata.PackageNotFoundError:
        return None


def git_commit(timeout=5.0):
    """``(commit, dirty)`` of the git checkout lfp_ref is imported from, or None when it is not
    one (an installed package, no git, git too slow)."""
    checkout = Path(__file__).resolve().parents[2]
    if not (checkout / ".git").exists():
        return None

    def git(*args):
        return subprocess.run(
            ["git", "-C", str(checkout), *args],
            capture_output=True,
            text=True,
            timeout=timeout,
            check=True,
        ).stdout.strip()

    try:
        if Path(git("rev-parse", "--show-toplevel")).resolve() != checkout:
            return None
        commit = git("rev-parse", "HEAD")
        dirty = bool(git("status", "--porcelain", "--untracked-files=no"))
    except (OSError, subprocess.SubprocessError):
        return None
    return commit, dirty


def run_environment(argv=None):
    """What ``config.json``'s info records about where and how a run started: Python, NumPy
    and Numba versions, the git commit of the lfp_ref checkout (``git_commit`` and
    ``git_dirty``, absent when lfp_ref is not imported from a git checkout), the command line
    and the start time (ISO 8601, local time with its UTC offset)."""
    argv = sys.argv if argv is None else argv
    info = {
        "python_version": platform.python_version(),
        "numpy_version": np.__version__,
        "numba_version": _version("numba"),
        "lfp_ref_version": _version("lfp_ref") or "0+unknown",
        "command_line": shlex.join(str(arg) for arg in argv),
        "started_at": datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
    }
    commit = git_commit()
    if commit is not None:
        info["git_commit"], info["git_dirty"] = commit
    return info


def write_config(out, config, info):
    """Write ``out/config.json`` (``{"config": config.to_dict(), "info": info}``) atomically."""
    text = json.dumps({"config": config.to_dict(), "info": info}, indent=2) + "\n"
    ckpt.atomic_write(Path(out) / CONFIG_FILE, lambda file: file.write(text.encode()))


def read_config_file(out):
    """The parsed ``config.json`` of run folder ``out`` (``{"config": ..., "info": ...}``)."""
    config_path = Path(out) / CONFIG_FILE
    if not config_path.is_file():
        raise ConfigError(f"{out} is not a run folder (it has no {CONFIG_FILE})")
    try:
        saved = json.loads(config_path.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise ConfigError(f"{config_path} is not readable JSON ({exc})") from None
    if not isinstance(saved, dict) or not isinstance(saved.get("config"), dict):
        raise ConfigError(f"{config_path} has no 'config' section")
    return saved


def read_run(out):
    """A run folder's summary for tables and plots: ``{"path", "config", "info", "metrics",
    "steps"}`` (metrics and steps are the csv rows; empty lists when absent)."""
    out = Path(out)
    saved = read_config_file(out)
    run = {"path": out, "config": saved["config"], "info": saved.get("info", {})}
    for key, name, columns in (
        ("metrics", METRICS_FILE, METRIC_COLUMNS),
        ("steps", STEPS_FILE, STEP_COLUMNS),
    ):
        path = out / name
        try:
            run[key] = read_csv(path, columns) if path.exists() else []
        except (ValueError, csv.Error, UnicodeDecodeError) as exc:
            if isinstance(exc, ConfigError):
                raise
            raise ConfigError(f"{path} is not an lfp_ref {name} ({exc})") from None
    return run


def summary_line(row, epochs):
    """The one-line summary of an epoch's metrics row."""

    def num(value, fmt):
        return "-" if value is None else format(value, fmt)

    # "running" values are means over the epoch's training batches (before each update, dropout
    # on), the others the evaluation after the epoch (eval mode): every accuracy says which
    return (
        f"epoch {row['epoch']}/{epochs}: running: loss {num(row['train_loss'], '.4f')} "
        f"reward {num(row['train_reward'], '.4g')} acc {num(row['running_acc'], '.4f')} | "
        f"eval: train acc {num(row['train_acc'], '.4f')}, test acc "
        f"{num(row['test_acc'], '.4f')}, test loss {num(row['test_loss'], '.4f')} | "
        f"sparsity {num(row['sparsity'], '.4f')} | lr {num(row['lr'], '.4g')} | "
        f"{num(row['wall_time'], '.1f')} s"
    )


def comparison_table(runs):
    """A plain-text table of the last epoch of each run (``read_run`` dicts): method, model,
    data, epochs done, train and test accuracy, test loss, weight sparsity, training time."""
    header = ("run", "method", "model", "data", "epochs", "train acc", "test acc", "test loss",
              "sparsity", "time (s)")  # fmt: skip
    rows = []
    for run in runs:
        config, metrics = run["config"], run["metrics"]
        last = metrics[-1] if metrics else {}

        def cell(key, fmt, last=last):
            value = last.get(key)
            return "-" if value is None else format(value, fmt)

        seconds = sum(row.get("wall_time") or 0.0 for row in metrics)
        rows.append((
            str(run["path"]), str(config.get("method", "?")), str(config.get("model", "?")),
            str(run["info"].get("data_name", config.get("data", "?"))),
            f"{len(metrics)}/{config.get('epochs', '?')}",
            cell("train_acc", ".4f"), cell("test_acc", ".4f"), cell("test_loss", ".4f"),
            cell("sparsity", ".4f"), f"{seconds:.1f}",
        ))  # fmt: skip
    widths = [max(len(r[i]) for r in (header, *rows)) for i in range(len(header))]
    numeric = set(range(4, len(header)))

    def line(cells):
        return "  ".join(
            c.rjust(w) if i in numeric else c.ljust(w)
            for i, (c, w) in enumerate(zip(cells, widths))
        ).rstrip()

    return "\n".join([line(header), *(line(r) for r in rows)])


__all__ = [
    "CONFIG_FILE",
    "LAST_CHECKPOINT",
    "METRICS_FILE",
    "METRIC_COLUMNS",
    "STEPS_FILE",
    "STEP_COLUMNS",
    "TIMING_COLUMNS",
    "CsvLog",
    "JSONL_FILE",
    "JsonlLog",
    "comparison_table",
    "git_commit",
    "read_config_file",
    "read_csv",
    "read_run",
    "run_environment",
    "summary_line",
    "truncate_csv",
    "truncate_jsonl",
    "write_config",
]
