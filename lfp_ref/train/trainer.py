"""The training loop: :class:`Trainer` builds a run from a :class:`~lfp_ref.train.TrainConfig`
(data, model, optimizer, schedule, training method), runs it epoch by epoch, writes the run
folder and checkpoints, and resumes bit for bit; :func:`fit` is the one-call form.

One step is whatever the configured method does (:mod:`lfp_ref.methods`: ``"lfp"`` and
``"gd"`` are built in, others register there); the trainer only logs the logits and reward the
step returns. What it reads off a model's output (the class scores whose argmax is the
prediction, the loss it logs and evaluates, the reward of a config that names none) the model
answers through :mod:`lfp_ref.train.outputs`: the logits and the cross-entropy by default, the
spike counts and the rate-coded cross-entropy for a spiking network (output (T, B, C)).

The optimizer is SGD (``momentum``, ``weight_decay``), Adam or AdamW (``lr``,
``weight_decay``; betas (0.9, 0.999)); the schedule none, OneCycle (stepped per batch,
``max_lr = lr``; it cycles SGD's momentum / Adam's beta1 between 0.85 and 0.95, overriding
``momentum``, as torch does) or StepLR (stepped per epoch, ``lr *= gamma`` every ``step_size``
epochs).

Reproducibility: the weights come from ``np.random.default_rng(seed)``, the data order of epoch
``e`` from ``default_rng([seed, e])`` (:func:`lfp_ref.data.batches`), the dropout masks from
Generators spawned from the seed. A checkpoint holds everything that changes during training
(weights, buffers, optimizer and scheduler state, each Dropout's Generator state, the method's
state, the position in the data and the epoch's running sums), so a resumed run repeats the
uninterrupted one bit for bit, given the same thread count (NUMBA_NUM_THREADS, BLAS threads).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import shutil
import time
import warnings
from pathlib import Path

import numpy as np

from .. import data as _data
from .. import methods as _methods
from .. import rules as _rules
from .. import zoo
from ..engine import forward
from ..kernels import backend_of
from ..layers.base import Layer, WeightedLayer
from ..optim import SGD, Adam, AdamW, OneCycleLR, StepLR, clip_coefficient
from ..runtime import tune_allocator
from . import checkpoint as ckpt
from . import outputs as _outputs
from . import runlog
from .config import ConfigError, TrainConfig, import_factory, is_factory
from .progress import Progress
from .runlog import (
    JSONL_FILE,
    LAST_CHECKPOINT,
    METRIC_COLUMNS,
    METRICS_FILE,
    STEP_COLUMNS,
    STEPS_FILE,
    read_csv,
    summary_line,
)

EVAL_BATCH_SIZE = 1000


class TrainingDiverged(FloatingPointError):
    """Non-finite reward, feedback, logits or weights stopped the run."""


class OutputRuleWarning(UserWarning):
    """The output layer gets a rule (z+, alpha-beta) that LFP does not train well with."""


#: the rules that make LFP train badly on the output layer (they divide by z+ >= 0)
OUTPUT_RULES_TO_AVOID = (_rules.ZPlus, _rules.AlphaBeta)


# --------------------------------------------------------------------------------------------
# data and model from the config


def _canonical_data(name):
    return str(name).strip().lower().replace("_", "-")


def load_data(config, download=False):
    """The dataset of ``config``: ``lfp_ref.data.load(config.data, **config.data_options)`` in
    the config's dtype (from ``config.data_root`` when set), or the user loader
    ``"package.module:function"`` called with ``data_options``. The Trainer applies
    ``limit_train`` / ``limit_test``."""
    if is_factory(config.data):
        if download:
            raise ConfigError(f"data {config.data!r} is a user loader: it cannot be downloaded")
        loader = import_factory(config.data, "data")
        try:
            dataset = loader(**config.data_options)
        except TypeError as exc:
            raise ConfigError(f"data loader {config.data!r}: {exc}") from exc
        if not isinstance(dataset, _data.Dataset):
            raise ConfigError(
                f"data loader {config.data!r} returned {type(dataset).__name__}, not an "
                "lfp_ref.data.Dataset(x_train, y_train, x_test, y_test, num_classes, name, source)"
            )
        return dataset
    kwargs = {"dtype": np.dtype(config.dtype), **config.data_options}
    if config.data_root is not None:
        kwargs["root"] = config.data_root
    if download:
        kwargs["download"] = True
    try:
        dataset = _data.load(config.data, **kwargs)
    except TypeError as exc:
        message = str(exc)
        if "unexpected keyword" in message and any(
            f"'{key}'" in message for key in ("root", "download") if key in kwargs
        ):
            raise ConfigError(
                f"dataset {config.data!r} is generated or bundled, not read from files; drop "
                "the data root / download options"
            ) from exc
        if "unexpected keyword" in message:
            raise ConfigError(f"data_options of dataset {config.data!r}: {message}") from None
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


def build_model(config, dataset):
    """The model of ``config`` for ``dataset`` (its ``num_classes`` and ``input_shape``):
    ``lfp_ref.zoo.build`` for a zoo name, else the user factory, called as
    ``factory(num_classes=..., input_shape=..., seed=..., dtype=..., **model_options)``.
    Raises :class:`ConfigError`."""
    dtype = np.dtype(config.dtype)
    num_classes, input_shape = int(dataset.num_classes), tuple(dataset.input_shape)
    where = f"model {config.model!r} on {dataset.name!r}"
    if not is_factory(config.model):
        try:
            return zoo.build(
                config.model,
                num_classes=num_classes,
                input_shape=input_shape,
                activation=config.activation,
                seed=config.seed,
                dtype=dtype,
                widths=config.widths,
                **config.model_options,
            )
        except (ValueError, TypeError) as exc:
            raise ConfigError(f"{where}: {exc}") from None
    factory = import_factory(config.model, "model")
    model = factory(
        num_classes=num_classes,
        input_shape=input_shape,
        seed=config.seed,
        dtype=dtype,
        **config.model_options,
    )
    if not isinstance(model, Layer):
        raise ConfigError(
            f"model factory {config.model!r} returned {type(model).__name__}, not an lfp_ref "
            "layer; return e.g. lfp_ref.Sequential(lfp_ref.Flatten(), lfp_ref.Dense(...), ...)"
        )
    if model.dtype is not None and model.dtype != dtype:
        raise ConfigError(
            f"model factory {config.model!r} built {model.dtype} parameters but the config's "
            f"dtype is {dtype}; build the layers with dtype=dtype"
        )
    bad = ckpt.non_finite_entries({f"model/{k}": v for k, v in model.state_dict().items()})
    if bad:
        raise ConfigError(
            f"model factory {config.model!r} built non-finite values (NaN or inf) in "
            f"{ckpt.describe_non_finite(bad)}; initialise every parameter and buffer finitely"
        )
    return model


def check_finite_data(dataset):
    """A :class:`ConfigError` naming the split and the first sample when the inputs of
    ``dataset`` hold NaN or inf (training on them can only diverge)."""
    for split in ("x_train", "x_test"):
        x = np.asarray(getattr(dataset, split))
        if x.dtype.kind not in "fc" or x.size == 0:
            continue
        finite = np.isfinite(x.reshape(len(x), -1)).all(axis=1)  # (N,)
        if not finite.all():
            first = int(np.argmin(finite))
            raise ConfigError(
                f"dataset {dataset.name!r}: {split} holds non-finite values (NaN or inf) in "
                f"{int(np.count_nonzero(~finite))} of {len(x)} samples, the first at index "
                f"{first}; fix the data or its loader"
            )


def output_rule_warning(model, rule_for, config=None):
    """The warning text when ``rule_for`` (a method's resolved ``rule_for(layer) -> Rule``)
    gives the model's last weighted layer z+ or alpha-beta, else None.

    z+ and alpha-beta divide the reward by ``z+ >= 0`` (the positive part of the layer's
    output), so on the output layer a negative logit's update points the wrong way: training
    then tends to stay below chance (test accuracy 0.08-0.20 measured on the 3-class swirls).
    """
    last = None
    for name, layer in model.named_layers():
        if isinstance(layer, WeightedLayer):
            last = (name, layer)
    if last is None:
        return None
    name, layer = last
    rule = rule_for(layer)
    if not isinstance(rule, OUTPUT_RULES_TO_AVOID):
        return None
    rule_name = "alpha2beta1" if isinstance(rule, _rules.AlphaBeta) else "zplus"
    if config is not None and isinstance(config.rule, str):
        rule_name = config.rule
    return (
        f"the output layer {name!r} ({layer!r}) gets the rule {rule!r}: z+ and alpha-beta "
        "divide the reward by z+ >= 0, so a negative logit's update points the wrong way and "
        "training tends to run below chance (test accuracy 0.08-0.20 on the 3-class swirls); keep "
        f"epsilon on the output layer: rule_for={{'default': '{rule_name}', '{name}': 'epsilon'}} "
        f"(lfp-ref train --rule-for default={rule_name} --rule-for {name}=epsilon) or a "
        "composite such as EpsilonPlus"
    )


# --------------------------------------------------------------------------------------------
# transfer learning: init_from and trainable


def _checkpoint_of(source):
    """The checkpoint file ``init_from`` names: a file as given, a run folder's ``last.npz``."""
    path = Path(source).expanduser()
    if path.is_dir():
        checkpoint = path / LAST_CHECKPOINT
        if not checkpoint.is_file():
            raise ConfigError(
                f"init_from: the folder {path} holds no checkpoint ({LAST_CHECKPOINT}); give a "
                "run folder that has trained (or one of its epoch-NNN.npz files)"
            )
        return checkpoint
    if not path.is_file():
        raise ConfigError(f"init_from: no run folder or checkpoint file at {path}")
    return path


def _weights_digest(state):
    digest = hashlib.sha256()
    for name in sorted(state):
        digest.update(name.encode())
        digest.update(np.ascontiguousarray(state[name]).tobytes())
    return digest.hexdigest()[:16]


def load_initial_weights(model, source):
    """Copy the model parameters and buffers of the checkpoint ``source`` (a run folder, whose
    ``last.npz`` is read, or a checkpoint file) into ``model`` (``TrainConfig.init_from``),
    cast to the model's dtype. Returns what config.json's info records: the checkpoint's path,
    its position (epoch, step) and a digest of the weights read.

    Raises
    ------
    ConfigError
        No checkpoint at ``source``, an unreadable or non-finite one, or a model whose layer
        names or shapes differ from the checkpoint's (the message names the first layer).
    """
    path = _checkpoint_of(source)
    try:
        state = ckpt.load(path)
    except ckpt.CheckpointError as exc:
        raise ConfigError(f"init_from: {exc}") from None
    weights = {k[len("model/") :]: v for k, v in state.items() if k.startswith("model/")}
    if not weights:
        raise ConfigError(f"init_from: {path} holds no model weights (no model/ entries)")
    bad = ckpt.non_finite_entries({f"model/{k}": v for k, v in weights.items()})
    if bad:
        raise ConfigError(
            f"init_from: {path} holds non-finite values in {ckpt.describe_non_finite(bad)}"
        )
    layers = dict(model.named_layers())
    ours = model.state_dict()

    def layer_of(key):
        name = key.rpartition(".")[0]
        layer = layers.get(name)
        return f"layer {name!r} ({layer!r})" if layer is not None else f"layer {name!r}"

    for key, value in ours.items():
        if key not in weights:
            raise ConfigError(
                f"init_from: {path} has no {key!r} for {layer_of(key)}: it was saved from "
                "another architecture (init_from needs the same layer names and shapes)"
            )
        if np.shape(weights[key]) != value.shape:
            raise ConfigError(
                f"init_from: {layer_of(key)} has {key!r} of shape {value.shape}, but {path} "
                f"holds shape {tuple(np.shape(weights[key]))}; init_from needs the same layer "
                "names and shapes (the same model, widths and number of classes)"
            )
    extra = sorted(set(weights) - set(ours))
    if extra:
        raise ConfigError(
            f"init_from: {path} holds {extra[:5]}, which this model does not have: it was "
            "saved from another architecture"
        )
    try:
        model.load_state_dict(weights)
    except ValueError as exc:
        raise ConfigError(f"init_from: {path}: {exc}") from None
    info = {"checkpoint": str(path.resolve()), "weights_sha256": _weights_digest(weights)}
    for key in ("epoch", "step"):
        if f"trainer/{key}" in state:
            info[key] = int(state[f"trainer/{key}"])
    return info


def _selects(name, entry):
    return name == entry or name.startswith(entry + ".")


def trainable_parameters(model, trainable):
    """The names of the parameters of ``model`` that ``TrainConfig.trainable`` selects (all for
    None), in ``named_parameters()`` order: a name equal to an entry or starting with the entry
    and a dot. An entry that selects nothing is a :class:`ConfigError` listing the layers
    that have parameters."""
    names = [name for name, _ in model.named_parameters()]
    if trainable is None:
        return names
    unused = [e for e in trainable if not any(_selects(name, e) for name in names)]
    if unused:
        layers = [name for name, layer in model.named_layers() if layer.own_parameters()]
        raise ConfigError(
            f"trainable: {unused} select no parameter of the model; the layers with "
            f"parameters are {layers} (an entry is a layer name, a dotted prefix of layer "
            "names, or a parameter name such as '13.bias')"
        )
    return [name for name in names if any(_selects(name, e) for e in trainable)]


class TrainableStep:
    """The optimizer a training method steps when ``TrainConfig.trainable`` freezes part of
    the model: :meth:`step` hands the wrapped optimizer the trainable parameters' entries
    only, and applies the global-norm clipping over those (the method is built without
    ``clip``, so the clipping factor is computed once, over what is updated). Everything else
    (``lr``, ``state_dict``, ...) is the wrapped optimizer's.

    With every parameter trainable the product ``scale * factor`` is the one the engine forms,
    so the steps are the same bit for bit as without ``trainable``.
    """

    def __init__(self, optimizer, names, clip):
        self.optimizer = optimizer
        self.names = frozenset(names)
        self.clip = clip
        self.parameters = {n: p for n, p in optimizer.parameters.items() if n in self.names}

    def step(self, grads, scale=1.0, squared_norms=None):
        grads = {name: value for name, value in grads.items() if name in self.names}
        if squared_norms is not None:
            squared_norms = {n: v for n, v in squared_norms.items() if n in self.names}
        if self.clip is not None:
            norms = squared_norms
            if norms is None or set(norms) != set(grads):
                norms = {
                    name: backend_of(value).elementwise.sum_of_squares(value)
                    for name, value in grads.items()
                }
            scale *= clip_coefficient(norms, self.clip)[0]
        self.optimizer.step(grads, scale=scale, squared_norms=squared_norms)

    def __getattr__(self, name):
        if name == "optimizer":  # not set yet (a copy being built): no recursion
            raise AttributeError(name)
        return getattr(self.optimizer, name)

    def __repr__(self):
        return f"TrainableStep({self.optimizer!r}, {len(self.parameters)} trainable)"


# --------------------------------------------------------------------------------------------
# helpers


def weight_sparsity(model):
    """Fraction of exactly-zero entries among the weights (parameters with ndim >= 2)."""
    weights = [p for _, p in model.named_parameters() if p.ndim >= 2]
    total = sum(p.size for p in weights)
    zeros = sum(p.size - int(np.count_nonzero(p)) for p in weights)
    return zeros / total if total else 0.0


def evaluate(model, x, y, batch_size=EVAL_BATCH_SIZE):
    """``(accuracy, mean loss)`` of ``model`` on ``(x, y)`` in eval mode (the mode is restored
    afterwards), read off the outputs as :mod:`lfp_ref.train.outputs` says: the argmax of the
    class scores and the model's output loss (the logits and the cross-entropy by default; the
    spike counts and the rate-coded cross-entropy for a spiking network). Returns
    ``(None, None)`` for an empty set."""
    if len(y) == 0:
        return None, None
    was_training = model.training
    model.eval()
    correct, loss_sum = 0, 0.0
    try:
        for start in range(0, len(y), batch_size):
            xb, yb = x[start : start + batch_size], y[start : start + batch_size]
            _, logits = forward(model, xb)
            loss_sum += _outputs.output_loss(model, logits, yb, reduction="sum")
            correct += _outputs.correct(model, logits, yb)
    finally:
        model.train(was_training)
    return correct / len(y), loss_sum / len(y)


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
    """One training run: model, optimizer, schedule, method, data, position, files.

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
    download : bool
        Download a missing named dataset.
    warn_rules : bool
        Warn (:class:`OutputRuleWarning`) when the method puts z+ or alpha-beta on the output
        layer, where LFP trains badly (see :func:`output_rule_warning`).

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
        warn_rules=True,
        _resuming=False,
    ):
        self.config = config = config.validated()
        tune_allocator()  # freed arrays reused, no page faults per step (lfp_ref.runtime)
        self.out = Path(out) if out is not None else None
        if self.out is not None and self.out.exists() and not self.out.is_dir():
            raise ConfigError(f"the output folder {self.out} is a file; choose a folder")
        if self.out is not None and not _resuming and not overwrite:
            if (self.out / LAST_CHECKPOINT).exists() or (self.out / METRICS_FILE).exists():
                raise ConfigError(
                    f"{self.out} already holds a run; continue it with --resume {self.out}, "
                    "or choose another output folder"
                )
        named = not is_factory(config.data)
        if (
            data is not None
            and named
            and _canonical_data(data.name) != _canonical_data(config.data)
        ):
            raise ConfigError(
                f"the dataset given is {data.name!r} but the config says {config.data!r}; set "
                "config.data to the dataset's name (a resumed run reloads it by that name)"
            )
        dataset = load_data(config, download) if data is None else data
        dataset = limit(dataset, config.limit_train, config.limit_test)
        dtype = np.dtype(config.dtype)
        if len(dataset.y_train) == 0:
            raise ConfigError(f"dataset {dataset.name!r} has no training samples")
        check_finite_data(dataset)
        self.dataset = dataset
        self.x_train = np.ascontiguousarray(dataset.x_train, dtype=dtype)
        self.y_train = dataset.y_train
        self.x_test = np.ascontiguousarray(dataset.x_test, dtype=dtype)
        self.y_test = dataset.y_test
        self.model = build_model(config, dataset)
        self.init_info = None  # what init_from read (config.json's info["init_from"])
        if config.init_from is not None and not _resuming:
            self.init_info = load_initial_weights(self.model, config.init_from)
        if config.reward is None:  # the model's default, recorded in config.json by its name
            self.config = config = dataclasses.replace(
                config, reward=_outputs.default_reward(self.model)
            )
        self.batches_per_epoch = -(-len(self.y_train) // config.batch_size)
        self.optimizer = self._make_optimizer()
        self.scheduler = self._make_scheduler()
        # what the method steps: the optimizer, or with `trainable` its view that updates the
        # trainable parameters only and clips over them (the method then clips nothing)
        self.trainable = trainable_parameters(self.model, config.trainable)
        method_config, self._step_optimizer = config, self.optimizer
        if config.trainable is not None:
            method_config = dataclasses.replace(config, clip=None)
            self._step_optimizer = TrainableStep(self.optimizer, self.trainable, config.clip)
        try:
            self.method = _methods.get_method(config.method)(method_config, self.model)
        except (KeyError, ValueError, TypeError) as exc:
            message = str(exc.args[0]) if isinstance(exc, KeyError) and exc.args else str(exc)
            raise ConfigError(
                f"method {config.method!r} with model {config.model!r}: {message}"
            ) from exc
        # a method that places LFP rules on the layers exposes its resolver as ``rule_for``
        resolver = getattr(self.method, "rule_for", None)
        if warn_rules and callable(resolver):
            message = output_rule_warning(self.model, resolver, config)
            if message is not None:
                warnings.warn(message, OutputRuleWarning, stacklevel=2)
        self.progress = progress
        self.stream = stream
        self.log = log
        self.history = []
        # position: epochs done, batches done in the current epoch, optimizer steps done
        self.epoch, self.batch, self.step = 0, 0, 0
        self._reset_sums()
        self.last_checkpoint = None  # (path, step) of the newest checkpoint written or loaded
        self._metrics_log = self._steps_log = self._jsonl_log = None
        self.saved_info = {}
        self._fresh = not _resuming
        self._extended_from = None  # the epochs of a finished run that resume() extends
        self._stepped = False  # whether this Trainer has completed a step (see _mismatch)

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
        epochs=None,
        warn_rules=False,
    ):
        """The run in folder ``out``, rebuilt from its ``config.json`` and restored from
        ``checkpoint`` (default ``out/last.npz``; a run stopped before its first checkpoint is
        at its start). Nothing in the folder changes; see :meth:`resume` to continue it.
        ``epochs``: see :meth:`resume`; ``warn_rules``: see :class:`Trainer` (off: opening a
        run to evaluate it says nothing about how it trains).

        A model factory or data loader named in config.json is imported again: its module must
        be importable (installed, or its folder on PYTHONPATH)."""
        out = Path(out)
        saved = runlog.read_config_file(out)
        config = TrainConfig.from_dict(saved["config"])
        extended_from = None
        if epochs is not None and epochs != config.epochs:
            extended_from = config.epochs
            config = _extended(config, epochs, out)
        trainer = cls(
            config,
            data=data,
            out=out,
            progress=progress,
            log=log,
            stream=stream,
            download=download,
            warn_rules=warn_rules,
            _resuming=True,
        )
        trainer.saved_info = saved.get("info", {})
        trainer._extended_from = extended_from
        path = Path(checkpoint) if checkpoint is not None else out / LAST_CHECKPOINT
        if checkpoint is not None or path.exists():
            trainer.load_checkpoint(path)
        elif config.init_from is not None:  # stopped before its first checkpoint: at its start
            trainer.init_info = load_initial_weights(trainer.model, config.init_from)
        return trainer

    @classmethod
    def resume(
        cls, out, *, data=None, progress=True, log=print, stream=None, download=False, epochs=None
    ):
        """Continue the run in ``out`` from its last checkpoint (from the start when the run was
        stopped before its first checkpoint). Rows of metrics.csv / steps.csv / metrics.jsonl
        written after the checkpoint are dropped; the run then repeats them exactly.

        ``epochs``: extend the run to this many epochs (at least its configured number; a
        finished run continues). The result equals, bit for bit, a run started with
        ``epochs``; config.json then records the new number (and the extension under
        ``info["extended"]``). Not for the OneCycle schedule, which is planned over the
        configured epochs (a ConfigError).
        """
        trainer = cls.open(
            out,
            data=data,
            progress=progress,
            log=log,
            stream=stream,
            download=download,
            epochs=epochs,
            warn_rules=True,
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
        """The checkpoint dict (see :mod:`lfp_ref.train.checkpoint`)."""
        trainer = {
            "epoch": self.epoch,
            "batch": self.batch,
            "step": self.step,
            "config": json.dumps(self.config.to_dict(), sort_keys=True),
        }
        trainer.update({f"sum_{k}": v for k, v in self.sums.items()})
        return ckpt.capture(self.model, self.optimizer, self.scheduler, trainer, self.method)

    def load_checkpoint(self, path):
        """Restore model, optimizer, schedule, RNG states, the method's state and the position
        from ``path``."""
        state = ckpt.load(path)
        saved = ckpt.restore(
            state, self.model, self.optimizer, self.scheduler, str(path), method=self.method
        )
        try:
            saved_config = TrainConfig.from_dict(json.loads(saved["config"]))
            epoch, batch, step = int(saved["epoch"]), int(saved["batch"]), int(saved["step"])
            sums = {k: saved[f"sum_{k}"] for k in self.sums}
        except (KeyError, TypeError, ValueError) as exc:
            raise ckpt.CheckpointError(f"{path}: incomplete trainer state ({exc})") from None
        if self.config.scheduler != "onecycle":
            # the number of epochs changes nothing before the last one: an extended run's
            # checkpoints (and epoch-NNN.npz files) stay valid
            saved_config = dataclasses.replace(saved_config, epochs=self.config.epochs)
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
        """Write ``last.npz`` (and, first, ``epoch-NNN.npz`` at an epoch end with
        keep_checkpoints) atomically, after making every log row the checkpoint has seen
        durable. A process killed between the two writes leaves last.npz at the previous
        checkpoint, so a resumed run writes the epoch file again.

        Raises
        ------
        TrainingDiverged
            The state holds NaN or inf (in a buffer, the optimizer's state): nothing is
            written, the last checkpoint stays the last good one.
        """
        if self.out is None:
            return
        for log in self._logs():
            log.sync()
        state = self.state()
        path = self.out / LAST_CHECKPOINT
        try:
            if self._at_epoch_end() and self.config.keep_checkpoints:
                ckpt.save(self.epoch_checkpoint(self.epoch), state)
            ckpt.save(path, state)
        except ckpt.NonFiniteStateError as exc:
            at_end = self._at_epoch_end()
            epoch = self.epoch if at_end else self.epoch + 1
            where = f"{'end, ' if at_end else ''}checkpoint after step {self.step}"
            raise self._diverged(where, exc, epoch=epoch) from exc
        self.last_checkpoint = (path, self.step)

    def epoch_checkpoint(self, epoch):
        """The path of the kept checkpoint of epoch ``epoch`` (keep_checkpoints)."""
        return self.out / f"epoch-{epoch:03d}.npz"

    def _at_epoch_end(self):
        return self.batch == 0 and self.epoch > 0

    def _logs(self):
        return [log for log in (self._metrics_log, self._steps_log, self._jsonl_log) if log]

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
            **runlog.run_environment(),
        }
        if self.init_info is not None:
            info["init_from"] = self.init_info
        if self.config.trainable is not None:
            info["trainable_parameters"] = list(self.trainable)
        runlog.write_config(self.out, self.config, info)

    def _write_extension(self):
        """config.json of a run extended by ``resume(epochs=...)``: the new epochs, and the
        extension recorded in the info."""
        info = dict(self.saved_info)
        environment = runlog.run_environment()
        info["extended"] = [
            *info.get("extended", []),
            {
                "from_epochs": self._extended_from,
                "to_epochs": self.config.epochs,
                "command_line": environment["command_line"],
                "at": environment["started_at"],
            },
        ]
        runlog.write_config(self.out, self.config, info)
        self.saved_info = info
        self._extended_from = None

    def _truncate_logs(self):
        if self.out is None:
            return
        runlog.truncate_csv(self.out / METRICS_FILE, "epoch", self.epoch, METRIC_COLUMNS)
        runlog.truncate_csv(self.out / STEPS_FILE, "step", self.step, STEP_COLUMNS)
        runlog.truncate_jsonl(self.out / JSONL_FILE, self.epoch, self.step)
        if (self.out / METRICS_FILE).exists():
            self.history = read_csv(self.out / METRICS_FILE, METRIC_COLUMNS)

    def _open_logs(self):
        if self.out is None:
            return
        if self.out.exists() and not self.out.is_dir():
            raise ConfigError(f"the output folder {self.out} is a file; choose a folder")
        self.out.mkdir(parents=True, exist_ok=True)
        ckpt.remove_temporaries(self.out)  # left by writers killed mid-write
        if self._fresh:
            # a new run (overwrite=True may have let it start where an old one lies): none of
            # the old run's files may survive to mix with the new ones
            for name in (LAST_CHECKPOINT, METRICS_FILE, STEPS_FILE, JSONL_FILE):
                (self.out / name).unlink(missing_ok=True)
            for path in self.out.glob("epoch-[0-9][0-9][0-9].npz"):
                path.unlink()
            self._write_config()
            self._fresh = False
        elif self._extended_from is not None:
            self._write_extension()
        self._metrics_log = runlog.CsvLog(self.out / METRICS_FILE, METRIC_COLUMNS)
        self._steps_log = runlog.CsvLog(self.out / STEPS_FILE, STEP_COLUMNS)
        self._jsonl_log = runlog.JsonlLog(self.out / JSONL_FILE)
        self._restore_epoch_checkpoint()

    def _restore_epoch_checkpoint(self):
        """With keep_checkpoints, a run resumed at an epoch end whose epoch file is missing (a
        process killed between the two writes by an older lfp_ref, a file deleted) gets it
        back: it is the same state as last.npz."""
        if not (self.config.keep_checkpoints and self._at_epoch_end()):
            return
        if self.last_checkpoint is None or self.last_checkpoint[1] != self.step:
            return
        target = self.epoch_checkpoint(self.epoch)
        if not target.exists():
            source = self.last_checkpoint[0]
            with open(source, "rb") as file:
                ckpt.atomic_write(target, lambda out: shutil.copyfileobj(file, out))

    def _close_logs(self, ignore_errors=False):
        """Make the log rows durable and close the files; with ``ignore_errors`` (an error is
        already on its way) a failing flush (a full disk) does not replace it."""
        error = None
        for log in self._logs():
            try:
                log.sync()
            except OSError as exc:
                error = error or exc
            try:
                log.close()
            except OSError as exc:
                error = error or exc
        self._metrics_log = self._steps_log = self._jsonl_log = None
        if error is not None and not ignore_errors:
            raise error

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
        try:
            self._open_logs()
            if self.step == 0 and self.out is not None and self.last_checkpoint is None:
                self.save_checkpoint()  # the initial state: a resume can always start here
            while not self.done:
                if max_steps is not None and self.step >= max_steps:
                    break
                self._run_epoch(max_steps)
        except BaseException:
            self._close_logs(ignore_errors=True)
            raise
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
                    self._jsonl_log.write("step", row, STEP_COLUMNS)
                seen = self.sums["seen"]
                # means over the epoch's batches so far (not an evaluation: see summary_line)
                bar.update(**{
                    "running loss": self.sums["loss"] / seen,
                    "reward": self.sums["reward"] / seen,
                    "running acc": self.sums["correct"] / seen,
                })  # fmt: skip
                if self.batch == self.batches_per_epoch:
                    break
                stop = max_steps is not None and self.step >= max_steps
                if stop or (c.checkpoint_every and self.step % c.checkpoint_every == 0):
                    self.save_checkpoint()
                if stop:
                    return
        self._end_epoch()

    def _train_step(self, xb, yb):
        c = self.config
        lr = self.optimizer.lr
        try:
            # numpy's overflow warnings would only repeat what the checks report, less precisely
            with np.errstate(over="ignore", invalid="ignore"):
                result = self.method.step(self.model, self._step_optimizer, xb, yb)
                _check_weights(self.model)
        except FloatingPointError as exc:
            detail, advice = self._diagnose(exc, xb)
            raise self._diverged(f"step {self.step + 1}", detail, advice) from exc
        except (ValueError, TypeError) as exc:
            if self._stepped:
                raise
            raise self._mismatch(exc) from exc
        if self.scheduler is not None and c.scheduler == "onecycle":
            self.scheduler.step()
        self.step += 1
        self.batch += 1
        logits, reward = result.logits, result.reward
        n = len(yb)
        try:
            loss_sum = _outputs.output_loss(self.model, logits, yb, reduction="sum")
            correct = _outputs.correct(self.model, logits, yb)
        except (ValueError, TypeError) as exc:
            if self._stepped:
                raise
            raise self._mismatch(exc) from exc
        self._stepped = True
        reward_sum = float(reward.sum(dtype=np.float64))
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

    def _mismatch(self, exc):
        """The ConfigError for a first step that fails with a ValueError or TypeError: the
        method and the model's output do not fit (e.g. a method whose loss wants logits (B, C)
        on a spiking network's spikes (T, B, C)); later steps raise as they are."""
        c = self.config
        return ConfigError(
            f"method {c.method!r} cannot train model {c.model!r}: its first step failed: {exc} "
            "(a spiking network trains with 'lfp' or 'surrogate'; a model with another output "
            "layout answers lfp_ref.train.outputs' protocol)"
        )

    def _diagnose(self, exc, xb):
        """``(what made a step non-finite, what to do)``, in the words of what the user can
        change (None: the default advice, lower the learning rate or clip)."""
        detail = str(exc)
        if not detail.startswith("the forward pass"):
            return detail, None
        bad_input = xb.size - int(np.count_nonzero(np.isfinite(xb)))
        if bad_input:
            return (
                f"the input batch holds {bad_input} non-finite values (NaN or inf)",
                "Fix the data (or its loader)",
            )
        bad = ckpt.non_finite_entries({f"model/{k}": v for k, v in self.model.state_dict().items()})
        if bad:
            return (
                "the forward pass produced non-finite outputs because the model held non-finite "
                f"values before this step, in {ckpt.describe_non_finite(bad)}",
                "Something outside the optimizer changed the model; rebuild or reload it",
            )
        return (
            "the forward pass produced non-finite outputs: the weights grew too large; the "
            f"first non-finite output comes from {_first_non_finite(self.model, xb)}",
            None,
        )

    def _diverged(self, where, exc, advice=None, epoch=None):
        if self.last_checkpoint is not None:
            # checkpoints hold finite values only (checkpoint.save refuses others)
            path, step = self.last_checkpoint
            kept = f"the last good checkpoint {path} (step {step}) is intact"
        elif self.out is None:
            kept = "no checkpoint was written (no output folder)"
        else:
            kept = "no checkpoint was written"
        if where.startswith("step"):
            where += f" (batch {self.batch + 1} of {self.batches_per_epoch})"
        advice = advice or "Lower the learning rate or set a gradient clip"
        epoch = self.epoch + 1 if epoch is None else epoch
        return TrainingDiverged(f"epoch {epoch}, {where}: {exc}; {kept}. {advice}")

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
            self._jsonl_log.write("epoch", row, METRIC_COLUMNS)
        self.log(summary_line(row, self.config.epochs))
        self.epoch += 1
        self.batch = 0
        self._reset_sums()
        self.save_checkpoint()


def _extended(config, epochs, out):
    """``config`` with ``epochs`` for :meth:`Trainer.resume`'s extension, or a ConfigError."""
    if isinstance(epochs, bool) or not isinstance(epochs, (int, np.integer)) or epochs < 1:
        raise ConfigError(f"epochs must be a positive int, got {epochs!r}")
    if epochs < config.epochs:
        raise ConfigError(
            f"{out} is configured for {config.epochs} epochs; --epochs {epochs} would shorten "
            f"it (a run can only be extended); give at least {config.epochs}"
        )
    if config.scheduler == "onecycle":
        raise ConfigError(
            f"{out} uses the onecycle schedule, planned over its {config.epochs} epochs: it "
            "cannot be extended bit for bit; start a new run with the epochs you want"
        )
    return dataclasses.replace(config, epochs=int(epochs))


def fit(config, *, data=None, out=None, progress=True, log=print, max_steps=None, **kwargs):
    """Train a model as ``config`` says; returns the :class:`Trainer` (``.model``,
    ``.history``). See :class:`Trainer` for the arguments."""
    trainer = Trainer(config, data=data, out=out, progress=progress, log=log, **kwargs)
    trainer.run(max_steps=max_steps)
    return trainer


__all__ = [
    "EVAL_BATCH_SIZE",
    "OUTPUT_RULES_TO_AVOID",
    "OutputRuleWarning",
    "Trainer",
    "TrainingDiverged",
    "build_model",
    "check_finite_data",
    "evaluate",
    "TrainableStep",
    "fit",
    "limit",
    "load_data",
    "load_initial_weights",
    "output_rule_warning",
    "trainable_parameters",
    "weight_sparsity",
]
