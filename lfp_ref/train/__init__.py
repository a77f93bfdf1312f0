"""The training loop behind ``lfp-ref train``: LFP or gradient descent, metrics, checkpoints,
bit-identical resume.

::

    from lfp_ref.train import TrainConfig, fit
    trainer = fit(TrainConfig(model="lenet", data="mnist-subset", method="lfp", epochs=1),
                  out="runs/lfp-lenet")
    trainer.history[-1]["test_acc"]

One step of each method (spec section 4):

- ``"lfp"``: :func:`lfp_ref.engine.lfp_step`: feedback ``F`` with the reward and rule, ``g = -F``,
  optional global-norm clipping (``clip``), optimizer step;
- ``"gd"``: :func:`lfp_ref.engine.gd_step`: backprop of the mean cross-entropy, the same clipping
  and optimizer.

The optimizer is SGD (``momentum``, ``weight_decay``), Adam or AdamW (``lr``, ``weight_decay``;
betas (0.9, 0.999)); the schedule none, OneCycle (stepped per batch, ``max_lr = lr``; it cycles
SGD's momentum / Adam's beta1 between 0.85 and 0.95, overriding ``momentum``, as torch does) or
StepLR (stepped per epoch, ``lr *= gamma`` every ``step_size`` epochs).

Metrics, per epoch (``metrics.csv``; wall_time is the only column that is not reproducible):

==============  =============================================================================
train_loss      mean over the epoch's samples of the cross-entropy of the logits of the
                training forward pass (before each update, dropout active), both methods
train_reward    mean over the epoch's samples of the output reward summed over classes,
                ``sum_c r[b, c]``, of the configured reward at the same logits (both methods;
                for softmax_loss it is ``sum_c z_c (Y_c - p_c)``)
running_acc     fraction of the epoch's samples classified correctly in their training
                forward pass
train_acc       accuracy on the whole training set after the epoch, in eval mode
test_loss       mean cross-entropy on the test set after the epoch, eval mode
test_acc        accuracy on the test set after the epoch, eval mode
sparsity        fraction of exactly-zero entries of the weights (parameters with ndim >= 2:
                Dense and Conv weights)
lr              the optimizer's learning rate at the end of the epoch
wall_time       seconds spent on the epoch (steps and evaluation)
==============  =============================================================================

and per step (``steps.csv``): the batch's mean loss, mean summed reward and accuracy, the lr
used, and the test accuracy/loss at steps where ``eval_every`` asks for an evaluation.

Reproducibility: the weights come from ``np.random.default_rng(seed)``, the data order of epoch
``e`` from ``default_rng([seed, e])`` (:func:`lfp_ref.data.batches`), the dropout masks from
Generators spawned from the seed. A checkpoint holds everything that changes during training
(weights, buffers, optimizer and scheduler state, each Dropout's Generator state, the position in
the data and the epoch's running sums), so a resumed run repeats the uninterrupted one bit for
bit, given the same thread count (NUMBA_NUM_THREADS, BLAS threads).
"""

from __future__ import annotations

import csv
import dataclasses
import json
import math
import os
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .. import data as _data
from .. import losses as _losses
from .. import rewards as _rewards
from .. import rules as _rules
from .. import zoo
from ..engine import forward, gd_step, lfp_step
from ..optim import SGD, Adam, AdamW, OneCycleLR, StepLR
from . import checkpoint as ckpt
from .progress import Progress

METHODS = ("lfp", "gd")
OPTIMIZERS = ("sgd", "adam", "adamw")
SCHEDULERS = ("none", "onecycle", "steplr")
DTYPES = ("float32", "float64")

CONFIG_FILE = "config.json"
METRICS_FILE = "metrics.csv"
STEPS_FILE = "steps.csv"
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

EVAL_BATCH_SIZE = 1000


class ConfigError(ValueError):
    """A training configuration that cannot run (unknown name, value out of range)."""


class TrainingDiverged(FloatingPointError):
    """Non-finite reward, feedback, logits or weights stopped the run."""


# --------------------------------------------------------------------------------------------
# configuration


@dataclass
class TrainConfig:
    """Everything that determines a training run (saved as ``config.json``).

    Names: ``model`` from :func:`lfp_ref.zoo.known_models`, ``data`` from
    :func:`lfp_ref.data.known_datasets`, ``reward`` from ``lfp_ref.rewards.REWARDS``, ``rule``
    "epsilon" (or any name ``lfp_ref.rules.get`` resolves), ``activation`` from
    ``lfp_ref.layers.ACTIVATIONS``. ``clip`` None means no clipping; ``momentum`` is SGD's;
    ``checkpoint_every`` / ``eval_every`` count optimizer steps (None: only at epoch ends /
    never); ``keep_checkpoints`` also keeps ``epoch-NNN.npz`` per epoch.
    """

    model: str = "lenet"
    data: str = "mnist"
    method: str = "lfp"
    epochs: int = 3
    batch_size: int = 128
    optimizer: str = "sgd"
    lr: float = 0.1
    momentum: float = 0.9
    weight_decay: float = 0.0
    scheduler: str = "none"
    step_size: int = 1
    gamma: float = 0.1
    clip: float | None = 3.0
    reward: str = "softmax_loss"
    rule: str = "epsilon"
    eps: float = 1e-6
    activation: str = "relu"
    widths: tuple[int, ...] | None = None
    seed: int = 0
    dtype: str = "float32"
    limit_train: int | None = None
    limit_test: int | None = None
    data_root: str | None = None
    checkpoint_every: int | None = None
    keep_checkpoints: bool = False
    eval_every: int | None = None

    def validated(self):
        """A checked copy with canonical names; raises :class:`ConfigError`."""
        c = dataclasses.replace(self)
        try:
            c.model = zoo.check_model_name(c.model)
            c.activation = zoo.check_activation(c.activation)
            if c.widths is not None:
                c.widths = tuple(int(w) for w in c.widths)
                zoo.check_widths(c.model, c.widths)
        except (ValueError, TypeError) as exc:
            raise ConfigError(str(exc)) from None
        c.method = _choice("method", c.method, METHODS)
        c.optimizer = _choice("optimizer", c.optimizer, OPTIMIZERS)
        c.scheduler = _choice("scheduler", c.scheduler, SCHEDULERS)
        c.dtype = _choice("dtype", c.dtype, DTYPES)
        if not isinstance(c.data, str) or not c.data.strip():
            raise ConfigError(f"data must be a dataset name, got {c.data!r}")
        if c.reward not in _rewards.REWARDS:
            raise ConfigError(f"unknown reward {c.reward!r}; known: {', '.join(_rewards.REWARDS)}")
        resolve_rule(c.rule, c.eps)
        for name in ("epochs", "batch_size", "step_size"):
            setattr(c, name, _positive_int(name, getattr(c, name)))
        for name in ("limit_train", "limit_test", "checkpoint_every", "eval_every"):
            if getattr(c, name) is not None:
                setattr(c, name, _positive_int(name, getattr(c, name)))
        if isinstance(c.seed, bool) or not isinstance(c.seed, (int, np.integer)) or c.seed < 0:
            raise ConfigError(f"seed must be an int >= 0, got {c.seed!r}")
        c.seed = int(c.seed)
        c.lr = _finite("lr", c.lr, minimum=0.0, strict=True)
        c.momentum = _finite("momentum", c.momentum, minimum=0.0)
        c.weight_decay = _finite("weight_decay", c.weight_decay, minimum=0.0)
        c.gamma = _finite("gamma", c.gamma, minimum=0.0, strict=True)
        c.eps = _finite("eps", c.eps, minimum=0.0)
        if c.clip is not None:
            c.clip = _finite("clip", c.clip, minimum=0.0, strict=True)
        c.keep_checkpoints = bool(c.keep_checkpoints)
        if c.data_root is not None:
            c.data_root = str(c.data_root)
        return c

    def to_dict(self):
        out = dataclasses.asdict(self)
        out["widths"] = list(self.widths) if self.widths is not None else None
        return out

    @classmethod
    def from_dict(cls, values):
        """The config from :meth:`to_dict` (or ``config.json``); unknown keys are an error."""
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - names)
        if unknown:
            raise ConfigError(
                f"unknown configuration keys {unknown}; known: {', '.join(sorted(names))}"
            )
        return cls(**values).validated()


def _choice(name, value, allowed):
    key = value.strip().lower() if isinstance(value, str) else value
    if key not in allowed:
        raise ConfigError(f"{name} must be one of {', '.join(allowed)}, got {value!r}")
    return key


def _positive_int(name, value):
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ConfigError(f"{name} must be a positive int, got {value!r}")
    return int(value)


def _finite(name, value, minimum, strict=False):
    try:
        value = float(value)
    except (TypeError, ValueError):
        raise ConfigError(f"{name} must be a number, got {value!r}") from None
    if not math.isfinite(value) or value < minimum or (strict and value == minimum):
        bound = f"> {minimum:g}" if strict else f">= {minimum:g}"
        raise ConfigError(f"{name} must be a finite number {bound}, got {value!r}")
    return value


def resolve_rule(name, eps):
    """The ``rule`` argument of :func:`lfp_ref.engine.lfp_step` for a rule name.

    "epsilon" is the engine's default LFP-epsilon (``None``: the engine builds ``Epsilon(eps)``);
    other names go to :func:`lfp_ref.rules.get`.
    """
    if not isinstance(name, str):
        raise ConfigError(f"rule must be a name, got {name!r}")
    key = name.strip().lower()
    if key == "epsilon":
        return None
    try:
        rule = _rules.get(key)
    except (KeyError, ValueError) as exc:
        # a KeyError's str() is the repr of its message; its first argument is the text
        raise ConfigError(str(exc.args[0]) if exc.args else repr(exc)) from None
    return rule


# --------------------------------------------------------------------------------------------
# data


def _canonical_data(name):
    return str(name).strip().lower().replace("_", "-")


def load_data(config, download=False):
    """The dataset ``config.data`` (``lfp_ref.data.load``) in the config's dtype, from
    ``config.data_root`` when set (the Trainer applies ``limit_train`` / ``limit_test``)."""
    kwargs = {"dtype": np.dtype(config.dtype)}
    if config.data_root is not None:
        kwargs["root"] = config.data_root
    if download:
        kwargs["download"] = True
    try:
        dataset = _data.load(config.data, **kwargs)
    except TypeError as exc:
        if "root" in kwargs or download:
            raise ConfigError(
                f"dataset {config.data!r} is generated or bundled, not read from files; drop "
                "the data root / download options"
            ) from exc
        raise
    except ValueError as exc:
        # an unknown name, or files that fail their checksum / format checks
        message = str(exc).strip().replace("\n", " ")
        if message.startswith("unknown dataset"):
            raise ConfigError(message) from None
        raise ConfigError(f"dataset {config.data!r}: {message}") from None
    return dataset


def limit(dataset, limit_train=None, limit_test=None):
    """A copy of ``dataset`` keeping the first ``limit_train`` / ``limit_test`` samples."""
    if limit_train is None and limit_test is None:
        return dataset
    return dataclasses.replace(
        dataset,
        x_train=dataset.x_train[:limit_train],
        y_train=dataset.y_train[:limit_train],
        x_test=dataset.x_test[:limit_test],
        y_test=dataset.y_test[:limit_test],
    )


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


def read_csv(path):
    """Rows of a metrics/steps csv as dicts (ints, floats, None for empty cells)."""
    with open(path, newline="") as file:
        return [{k: _parse(v) for k, v in row.items()} for row in csv.DictReader(file)]


def _truncate_csv(path, key, last, columns):
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


class _CsvLog:
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
# helpers


def weight_sparsity(model):
    """Fraction of exactly-zero entries among the weights (parameters with ndim >= 2)."""
    weights = [p for _, p in model.named_parameters() if p.ndim >= 2]
    total = sum(p.size for p in weights)
    zeros = sum(p.size - int(np.count_nonzero(p)) for p in weights)
    return zeros / total if total else 0.0


def evaluate(model, x, y, batch_size=EVAL_BATCH_SIZE):
    """``(accuracy, mean cross-entropy)`` of ``model`` on ``(x, y)`` in eval mode (the mode is
    restored afterwards). Returns ``(None, None)`` for an empty set."""
    if len(y) == 0:
        return None, None
    was_training = model.training
    model.eval()
    correct, loss_sum = 0, 0.0
    try:
        for start in range(0, len(y), batch_size):
            xb, yb = x[start : start + batch_size], y[start : start + batch_size]
            _, logits = forward(model, xb)
            loss_sum += _losses.cross_entropy(logits, yb, reduction="sum")[0]
            correct += int(np.count_nonzero(logits.argmax(axis=1) == yb))
    finally:
        model.train(was_training)
    return correct / len(y), loss_sum / len(y)


def _checked_reward(name):
    reward = _rewards.get(name)

    def checked(logits, y):
        r = reward(logits, y)
        finite = np.isfinite(r)
        if not finite.all():
            raise FloatingPointError(
                f"the reward {name!r} has {r.size - int(np.count_nonzero(finite))} non-finite "
                "entries at the output"
            )
        return r

    return checked


def _check_weights(model):
    for name, param in model.named_parameters():
        finite = np.isfinite(param)
        if not finite.all():
            raise FloatingPointError(
                f"parameter {name!r} has {param.size - int(np.count_nonzero(finite))} "
                "non-finite entries after the optimizer step"
            )


def _first_non_finite(model, x):
    """Which top-level layer of ``model`` first outputs non-finite values on ``x`` (a diagnosis
    when a run stops: it repeats the forward pass)."""
    children = model.children() or [("", model)]
    with np.errstate(all="ignore"):
        for name, layer in children:
            x = layer.forward(x)
            if not np.isfinite(x).all():
                return f"layer {name!r} ({layer!r})"
    return "no layer on a repeated forward pass"


def _threads():
    import numba

    return int(numba.get_num_threads())


# --------------------------------------------------------------------------------------------
# the trainer


class Trainer:
    """One training run: model, optimizer, schedule, data, position, files.

    Parameters
    ----------
    config : TrainConfig
    data : lfp_ref.data.Dataset, optional
        Use this dataset instead of loading ``config.data`` (``limit_*`` still apply).
    out : path, optional
        Run folder for config.json, metrics.csv, steps.csv and checkpoints; None: nothing is
        written.
    progress : bool
        Show a progress bar per epoch on ``stream`` (default stderr).
    log : callable
        Receives the per-epoch summary lines and notes (default ``print``).
    overwrite : bool
        Allow starting a fresh run in a folder that already holds one.

    Build with :meth:`resume` to continue a run from its last checkpoint.
    """

    def __init__(
        self,
        config,
        *,
        data=None,
        out=None,
        progress=True,
        log=print,
        stream=None,
        overwrite=False,
        download=False,
        _resuming=False,
    ):
        self.config = config = config.validated()
        self.out = Path(out) if out is not None else None
        if self.out is not None and not _resuming and not overwrite:
            if (self.out / LAST_CHECKPOINT).exists() or (self.out / METRICS_FILE).exists():
                raise ConfigError(
                    f"{self.out} already holds a run; continue it with --resume {self.out}, "
                    "or choose another output folder"
                )
        if data is not None and _canonical_data(data.name) != _canonical_data(config.data):
            raise ConfigError(
                f"the dataset given is {data.name!r} but the config says {config.data!r}; set "
                "config.data to the dataset's name (a resumed run reloads it by that name)"
            )
        dataset = load_data(config, download) if data is None else data
        dataset = limit(dataset, config.limit_train, config.limit_test)
        dtype = np.dtype(config.dtype)
        if len(dataset.y_train) == 0:
            raise ConfigError(f"dataset {dataset.name!r} has no training samples")
        self.dataset = dataset
        self.x_train = np.ascontiguousarray(dataset.x_train, dtype=dtype)
        self.y_train = dataset.y_train
        self.x_test = np.ascontiguousarray(dataset.x_test, dtype=dtype)
        self.y_test = dataset.y_test
        try:
            self.model = zoo.build(
                config.model,
                num_classes=dataset.num_classes,
                input_shape=dataset.input_shape,
                activation=config.activation,
                seed=config.seed,
                dtype=dtype,
                widths=config.widths,
            )
        except ValueError as exc:
            raise ConfigError(f"model {config.model!r} on {dataset.name!r}: {exc}") from None
        self.batches_per_epoch = -(-len(self.y_train) // config.batch_size)
        self.optimizer = self._make_optimizer()
        self.scheduler = self._make_scheduler()
        self.reward = _checked_reward(config.reward)
        self.rule = resolve_rule(config.rule, config.eps)
        self.progress = progress
        self.stream = stream
        self.log = log
        self.history = []
        # position: epochs done, batches done in the current epoch, optimizer steps done
        self.epoch, self.batch, self.step = 0, 0, 0
        self._reset_sums()
        self.last_checkpoint = None  # (path, step) of the newest checkpoint written or loaded
        self._metrics_log = self._steps_log = None
        self.saved_info = {}
        self._fresh = not _resuming

    # -- construction ------------------------------------------------------------------------

    def _make_optimizer(self):
        c = self.config
        if c.optimizer == "sgd":
            return SGD(self.model, lr=c.lr, momentum=c.momentum, weight_decay=c.weight_decay)
        cls = Adam if c.optimizer == "adam" else AdamW
        return cls(self.model, lr=c.lr, weight_decay=c.weight_decay)

    def _make_scheduler(self):
        c = self.config
        if c.scheduler == "onecycle":
            return OneCycleLR(
                self.optimizer, max_lr=c.lr, epochs=c.epochs, steps_per_epoch=self.batches_per_epoch
            )
        if c.scheduler == "steplr":
            return StepLR(self.optimizer, step_size=c.step_size, gamma=c.gamma)
        return None

    def _reset_sums(self):
        self.sums = {"loss": 0.0, "reward": 0.0, "correct": 0, "seen": 0, "seconds": 0.0}

    @classmethod
    def open(
        cls,
        out,
        *,
        checkpoint=None,
        data=None,
        progress=True,
        log=print,
        stream=None,
        download=False,
    ):
        """The run in folder ``out``, rebuilt from its ``config.json`` and restored from
        ``checkpoint`` (default ``out/last.npz``; a run stopped before its first checkpoint is
        at its start). Nothing in the folder changes; see :meth:`resume` to continue it."""
        out = Path(out)
        saved = _read_config_file(out)
        config = TrainConfig.from_dict(saved["config"])
        trainer = cls(
            config,
            data=data,
            out=out,
            progress=progress,
            log=log,
            stream=stream,
            download=download,
            _resuming=True,
        )
        trainer.saved_info = saved.get("info", {})
        path = Path(checkpoint) if checkpoint is not None else out / LAST_CHECKPOINT
        if checkpoint is not None or path.exists():
            trainer.load_checkpoint(path)
        return trainer

    @classmethod
    def resume(cls, out, *, data=None, progress=True, log=print, stream=None, download=False):
        """Continue the run in ``out`` from its last checkpoint (from the start when the run was
        stopped before its first checkpoint). Rows of metrics.csv / steps.csv written after the
        checkpoint are dropped; the run then repeats them exactly."""
        trainer = cls.open(
            out, data=data, progress=progress, log=log, stream=stream, download=download
        )
        threads = trainer.saved_info.get("numba_threads")
        if threads is not None and threads != _threads():
            log(
                f"note: the run started with {threads} numba threads, now {_threads()}; "
                "the continuation may differ from an uninterrupted run in the last bits"
            )
        if trainer.last_checkpoint is None:
            log(f"note: {out} has no checkpoint yet; starting the run from the beginning")
        trainer._truncate_logs()
        return trainer

    # -- checkpoints -------------------------------------------------------------------------

    def state(self):
        """The checkpoint dict (see :mod:`lfp_ref.checkpoint`)."""
        trainer = {
            "epoch": self.epoch,
            "batch": self.batch,
            "step": self.step,
            "config": json.dumps(self.config.to_dict(), sort_keys=True),
        }
        trainer.update({f"sum_{k}": v for k, v in self.sums.items()})
        return ckpt.capture(self.model, self.optimizer, self.scheduler, trainer)

    def load_checkpoint(self, path):
        """Restore model, optimizer, schedule, RNG states and position from ``path``."""
        state = ckpt.load(path)
        saved = ckpt.restore(state, self.model, self.optimizer, self.scheduler, where=str(path))
        try:
            saved_config = TrainConfig.from_dict(json.loads(saved["config"]))
            epoch, batch, step = int(saved["epoch"]), int(saved["batch"]), int(saved["step"])
            sums = {k: saved[f"sum_{k}"] for k in self.sums}
        except (KeyError, TypeError, ValueError) as exc:
            raise ckpt.CheckpointError(f"{path}: incomplete trainer state ({exc})") from None
        if saved_config != self.config:
            diff = [
                f"{k}: {v!r} (checkpoint) vs {getattr(self.config, k)!r}"
                for k, v in saved_config.to_dict().items()
                if v != self.config.to_dict()[k]
            ]
            raise ckpt.CheckpointError(f"{path} belongs to another configuration: {diff}")
        if batch > self.batches_per_epoch or epoch > self.config.epochs:
            raise ckpt.CheckpointError(
                f"{path} is at epoch {epoch}, batch {batch}, beyond this run's "
                f"{self.config.epochs} epochs of {self.batches_per_epoch} batches"
            )
        self.epoch, self.batch, self.step = epoch, batch, step
        self.sums = {
            "loss": float(sums["loss"]),
            "reward": float(sums["reward"]),
            "correct": int(sums["correct"]),
            "seen": int(sums["seen"]),
            "seconds": float(sums["seconds"]),
        }
        self.last_checkpoint = (Path(path), step)

    def save_checkpoint(self):
        """Write ``last.npz`` (and ``epoch-NNN.npz`` at an epoch end with keep_checkpoints)
        atomically, after making every csv row the checkpoint has seen durable."""
        if self.out is None:
            return
        for log in (self._metrics_log, self._steps_log):
            if log is not None:
                log.sync()
        state = self.state()
        path = self.out / LAST_CHECKPOINT
        ckpt.save(path, state)
        if self.config.keep_checkpoints and self.batch == 0 and self.epoch > 0:
            ckpt.save(self.out / f"epoch-{self.epoch:03d}.npz", state)
        self.last_checkpoint = (path, self.step)

    # -- files -------------------------------------------------------------------------------

    def _write_config(self):
        info = {
            "data_name": self.dataset.name,
            "data_source": self.dataset.source,
            "num_classes": int(self.dataset.num_classes),
            "input_shape": list(self.dataset.input_shape),
            "train_samples": len(self.y_train),
            "test_samples": len(self.y_test),
            "batches_per_epoch": self.batches_per_epoch,
            "parameters": int(sum(p.size for _, p in self.model.named_parameters())),
            "numba_threads": _threads(),
            "lfp_ref_version": _lfp_ref_version(),
            "numpy_version": np.__version__,
        }
        text = json.dumps({"config": self.config.to_dict(), "info": info}, indent=2) + "\n"
        ckpt.atomic_write(self.out / CONFIG_FILE, lambda file: file.write(text.encode()))

    def _truncate_logs(self):
        if self.out is None:
            return
        _truncate_csv(self.out / METRICS_FILE, "epoch", self.epoch, METRIC_COLUMNS)
        _truncate_csv(self.out / STEPS_FILE, "step", self.step, STEP_COLUMNS)
        if (self.out / METRICS_FILE).exists():
            self.history = read_csv(self.out / METRICS_FILE)

    def _open_logs(self):
        if self.out is None:
            return
        self.out.mkdir(parents=True, exist_ok=True)
        if self._fresh:
            # a new run (overwrite=True may have let it start where an old one lies): none of
            # the old run's files may survive to mix with the new ones
            for name in (LAST_CHECKPOINT, METRICS_FILE, STEPS_FILE):
                (self.out / name).unlink(missing_ok=True)
            for path in self.out.glob("epoch-[0-9][0-9][0-9].npz"):
                path.unlink()
            self._write_config()
            self._fresh = False
        self._metrics_log = _CsvLog(self.out / METRICS_FILE, METRIC_COLUMNS)
        self._steps_log = _CsvLog(self.out / STEPS_FILE, STEP_COLUMNS)

    def _close_logs(self):
        for log in (self._metrics_log, self._steps_log):
            if log is not None:
                log.sync()
                log.close()
        self._metrics_log = self._steps_log = None

    # -- the loop ----------------------------------------------------------------------------

    @property
    def done(self):
        return self.epoch >= self.config.epochs

    def run(self, max_steps=None):
        """Train until the configured number of epochs is done (or, with ``max_steps``, until
        that many optimizer steps have been taken in total; a checkpoint is written there).

        Returns the per-epoch history (list of dicts with :data:`METRIC_COLUMNS`).

        Raises
        ------
        TrainingDiverged
            Non-finite reward, feedback, logits or weights; the message names the epoch, the
            step and the parameter; the last checkpoint on disk is the last good state.
        """
        if self.out is None and max_steps is not None:
            raise ConfigError("max_steps stops a run to be resumed later: give an output folder")
        self._open_logs()
        try:
            if self.step == 0 and self.out is not None and self.last_checkpoint is None:
                self.save_checkpoint()  # the initial state: a resume can always start here
            while not self.done:
                if max_steps is not None and self.step >= max_steps:
                    break
                self._run_epoch(max_steps)
        finally:
            self._close_logs()
        return self.history

    def _run_epoch(self, max_steps):
        c = self.config
        order = _data.batches(
            self.x_train,
            self.y_train,
            c.batch_size,
            shuffle=True,
            seed=c.seed,
            epoch=self.epoch,
            start=self.batch,
        )
        bar = Progress(
            self.batches_per_epoch,
            desc=f"epoch {self.epoch + 1}/{c.epochs}",
            initial=self.batch,
            stream=self.stream,
            enabled=self.progress,
        )
        with bar:
            for xb, yb in order:
                started = time.perf_counter()
                row = self._train_step(xb, yb)
                if c.eval_every is not None and self.step % c.eval_every == 0:
                    row["test_acc"], row["test_loss"] = self._evaluate(self.x_test, self.y_test)
                self.sums["seconds"] += time.perf_counter() - started
                if self._steps_log is not None:
                    self._steps_log.write(row)
                seen = self.sums["seen"]
                bar.update(
                    loss=self.sums["loss"] / seen,
                    reward=self.sums["reward"] / seen,
                    acc=self.sums["correct"] / seen,
                )
                if self.batch == self.batches_per_epoch:
                    break
                stop = max_steps is not None and self.step >= max_steps
                if stop or (c.checkpoint_every and self.step % c.checkpoint_every == 0):
                    self.save_checkpoint()
                if stop:
                    return
        self._end_epoch()

    def _apply_step(self, xb, yb):
        """One optimizer step of the configured method; returns the logits and the reward."""
        c = self.config
        if c.method == "lfp":
            fb = lfp_step(
                self.model,
                self.optimizer,
                xb,
                yb,
                reward=self.reward,
                eps=c.eps,
                clip_norm=c.clip,
                rule=self.rule,
            )
            return fb.logits, fb.reward
        g = gd_step(
            self.model,
            self.optimizer,
            xb,
            yb,
            loss="cross_entropy",
            reduction="mean",
            clip_norm=c.clip,
        )
        return g.logits, self.reward(g.logits, yb)

    def _train_step(self, xb, yb):
        c = self.config
        lr = self.optimizer.lr
        try:
            # numpy's overflow warnings would only repeat what the checks report, less precisely
            with np.errstate(over="ignore", invalid="ignore"):
                logits, reward = self._apply_step(xb, yb)
                _check_weights(self.model)
        except FloatingPointError as exc:
            detail = str(exc)
            if detail.startswith("the forward pass"):
                detail += (
                    f"; the first non-finite output comes from {_first_non_finite(self.model, xb)}"
                )
            raise self._diverged(f"step {self.step + 1}", detail) from exc
        if self.scheduler is not None and c.scheduler == "onecycle":
            self.scheduler.step()
        self.step += 1
        self.batch += 1
        n = len(yb)
        loss_sum = _losses.cross_entropy(logits, yb, reduction="sum")[0]
        reward_sum = float(reward.sum(dtype=np.float64))
        correct = int(np.count_nonzero(logits.argmax(axis=1) == yb))
        self.sums["loss"] += loss_sum
        self.sums["reward"] += reward_sum
        self.sums["correct"] += correct
        self.sums["seen"] += n
        return {
            "step": self.step,
            "epoch": self.epoch + self.batch / self.batches_per_epoch,
            "lr": lr,
            "loss": loss_sum / n,
            "reward": reward_sum / n,
            "acc": correct / n,
        }

    def _diverged(self, where, exc):
        if self.last_checkpoint is not None:
            path, step = self.last_checkpoint
            kept = f"the last good checkpoint {path} (step {step}) is intact"
        else:
            kept = "no checkpoint was written (no output folder)"
        return TrainingDiverged(
            f"epoch {self.epoch + 1}, {where} (batch {self.batch + 1} of "
            f"{self.batches_per_epoch}): {exc}; {kept}. Lower the learning rate or set a "
            "gradient clip"
        )

    def _evaluate(self, x, y):
        try:
            with np.errstate(over="ignore", invalid="ignore"):
                return evaluate(self.model, x, y)
        except FloatingPointError as exc:
            raise self._diverged(f"evaluation after step {self.step}", exc) from exc

    def _end_epoch(self):
        started = time.perf_counter()
        train_acc, _ = self._evaluate(self.x_train, self.y_train)
        test_acc, test_loss = self._evaluate(self.x_test, self.y_test)
        if self.scheduler is not None and self.config.scheduler == "steplr":
            self.scheduler.step()
        seen = self.sums["seen"]
        row = {
            "epoch": self.epoch + 1,
            "step": self.step,
            "lr": self.optimizer.lr,
            "train_loss": self.sums["loss"] / seen,
            "train_reward": self.sums["reward"] / seen,
            "running_acc": self.sums["correct"] / seen,
            "train_acc": train_acc,
            "test_loss": test_loss,
            "test_acc": test_acc,
            "sparsity": weight_sparsity(self.model),
            "wall_time": self.sums["seconds"] + time.perf_counter() - started,
        }
        self.history.append(row)
        if self._metrics_log is not None:
            self._metrics_log.write(row)
        self.log(summary_line(row, self.config.epochs))
        self.epoch += 1
        self.batch = 0
        self._reset_sums()
        self.save_checkpoint()


def _lfp_ref_version():
    from .. import __version__

    return __version__


def summary_line(row, epochs):
    """The one-line summary of an epoch's metrics row."""

    def num(value, fmt):
        return "-" if value is None else format(value, fmt)

    return (
        f"epoch {row['epoch']}/{epochs}: train loss {num(row['train_loss'], '.4f')} "
        f"reward {num(row['train_reward'], '.4g')} acc {num(row['train_acc'], '.4f')} "
        f"(running {num(row['running_acc'], '.4f')}) | test loss {num(row['test_loss'], '.4f')} "
        f"acc {num(row['test_acc'], '.4f')} | sparsity {num(row['sparsity'], '.4f')} | "
        f"lr {num(row['lr'], '.4g')} | {num(row['wall_time'], '.1f')} s"
    )


def fit(config, *, data=None, out=None, progress=True, log=print, max_steps=None, **kwargs):
    """Train a model as ``config`` says; returns the :class:`Trainer` (``.model``,
    ``.history``). See :class:`Trainer` for the arguments."""
    trainer = Trainer(config, data=data, out=out, progress=progress, log=log, **kwargs)
    trainer.run(max_steps=max_steps)
    return trainer


def _read_config_file(out):
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
    saved = _read_config_file(out)
    run = {"path": out, "config": saved["config"], "info": saved.get("info", {})}
    for key, name in (("metrics", METRICS_FILE), ("steps", STEPS_FILE)):
        path = out / name
        try:
            run[key] = read_csv(path) if path.exists() else []
        except (ValueError, csv.Error) as exc:
            raise ConfigError(f"{path} is not a metrics csv ({exc})") from None
    return run


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
    "ConfigError",
    "METHODS",
    "METRIC_COLUMNS",
    "STEP_COLUMNS",
    "TIMING_COLUMNS",
    "TrainConfig",
    "Trainer",
    "TrainingDiverged",
    "evaluate",
    "fit",
    "load_data",
    "read_csv",
    "read_run",
    "comparison_table",
    "resolve_rule",
    "summary_line",
    "weight_sparsity",
]
