"""The experiment as data: :class:`TrainConfig`, everything a training run needs, saved as a
run's ``config.json``, and its checks (:class:`ConfigError` names what is allowed).

A model is a zoo name (:func:`lfp_ref.zoo.known_models`) or a user factory
``"package.module:function"``; a dataset a name (:func:`lfp_ref.data.known_datasets`) or a user
loader ``"package.module:function"``; the method a name registered in :mod:`lfp_ref.methods`;
the rules one rule name, a zennit composite name, or a per-layer assignment. Factories are
imported when the config is checked, so a resumed or evaluated run finds them again by their
string (the module must be importable: installed, or its folder on ``PYTHONPATH``).
"""

from __future__ import annotations

import dataclasses
import importlib
import inspect
import json
import math
import os
import re
from dataclasses import dataclass, field

import numpy as np

from .. import methods as _methods
from .. import rewards as _rewards
from .. import rules as _rules
from .. import zoo

OPTIMIZERS = ("sgd", "adam", "adamw")
SCHEDULERS = ("none", "onecycle", "steplr")
DTYPES = ("float32", "float64")

#: the keyword arguments a model factory always receives (model_options may not set them)
FACTORY_ARGUMENTS = ("num_classes", "input_shape", "seed", "dtype")
#: TrainConfig fields that configure zoo models only
ZOO_FIELDS = ("activation", "widths")
#: what the trainer passes to lfp_ref.data.load itself (data_options may not set them)
DATA_ARGUMENTS = ("dtype", "root", "download")

_FACTORY = re.compile(r"^[A-Za-z_]\w*(\.[A-Za-z_]\w*)*:[A-Za-z_]\w*(\.[A-Za-z_]\w*)*$")


class ConfigError(ValueError):
    """A training configuration that cannot run (unknown name, value out of range)."""


@dataclass
class TrainConfig:
    """Everything that determines a training run (saved as ``config.json``).

    Model and data
        ``model``: a zoo name (:func:`lfp_ref.zoo.known_models`) or a user factory
        ``"package.module:function"``, called as ``factory(num_classes=..., input_shape=...,
        seed=..., dtype=..., **model_options)`` and returning an ``lfp_ref`` layer.
        ``model_options``: keyword arguments for the zoo builder or the factory.
        ``activation`` (default relu) and ``widths`` configure zoo models.
        ``data``: a dataset name (:func:`lfp_ref.data.known_datasets`, loaded in ``dtype``
        from ``data_root`` when set) or a user loader ``"package.module:function"``, called as
        ``loader(**data_options)`` and returning an :class:`lfp_ref.data.Dataset` (the trainer
        casts its inputs to ``dtype``). ``data_options``: keyword arguments for
        ``lfp_ref.data.load`` (e.g. ``{"seed": 1}``) or the loader. ``limit_train`` /
        ``limit_test`` keep the first N samples.
    Method
        ``method``: a name registered in :mod:`lfp_ref.methods` ("lfp", "gd", ...), with
        ``method_options`` (e.g. lfp's ``{"batch_reduction": "mean"}``).
    Rules (LFP), one way at a time
        ``rule``: a rule name for every layer (default "epsilon", see
        :func:`lfp_ref.methods.rule_arguments`); ``composite``: a zennit composite name
        (:data:`lfp_ref.composites.COMPOSITES`); ``rule_for``: ``{layer name or layer type name:
        rule name}``, e.g. ``{"Conv2d": "zplus", "0": "flat", "default": "epsilon"}``.
        ``rule_options``: the rule's or composite's options (``{"low": 0.0, "high": 1.0}``),
        with ``rule_for`` per rule name (``{"zbox": {"low": 0.0, "high": 1.0}}``). ``eps``:
        the epsilon rule's stabiliser. ``reward`` from ``lfp_ref.rewards.REWARDS``; None
        (default): the model's default reward (:func:`lfp_ref.train.outputs.default_reward`:
        softmax_loss, snn_rate_coded for a spiking network), which the :class:`Trainer` puts in
        its config once the model is built (so config.json records the name used).
    Optimization
        ``optimizer`` sgd, adam or adamw (``lr``, ``momentum`` is SGD's, ``weight_decay``);
        ``scheduler`` none, onecycle or steplr (``step_size``, ``gamma``); ``clip`` the global
        norm, None for no clipping.
    Run
        ``seed`` (weights, data order, dropout), ``dtype``, ``epochs``, ``batch_size``;
        ``checkpoint_every`` / ``eval_every`` count optimizer steps (None: only at epoch ends /
        never); ``keep_checkpoints`` also keeps ``epoch-NNN.npz`` per epoch.
    Transfer learning
        ``init_from``: a run folder (its ``last.npz``) or a checkpoint file whose model
        parameters and buffers initialise the model in place of the seed's random ones (the
        seed still sets the data order and the dropout masks). The model must have the same
        layer names and shapes (a :class:`ConfigError` names the first layer that differs);
        the values are cast to ``dtype``. Read when a run starts, never on resume (its
        checkpoints hold the weights), so the source may move afterwards; config.json's info
        records the checkpoint, its position and a digest of the weights read.
        ``trainable``: None (default) trains every parameter; else a list of layer names or
        dotted name prefixes (``["7", "10", "13"]``, ``["branch"]``, ``["13.bias"]``): an entry
        selects the parameters whose name is the entry or starts with the entry and a dot
        (``"1"`` selects ``1.weight``, not ``10.weight``), and only the selected parameters are
        updated. The others are frozen: the optimizer never steps them (momentum, weight decay
        and Adam's state included: they stay bit for bit as they are) and their feedback or
        gradient does not count towards the clipping norm (``clip`` applies to the trainable
        parameters' global norm, as ``torch.nn.utils.clip_grad_norm_`` over the parameters
        that have a gradient). LFP's reward and backprop's gradient still pass through frozen
        layers to the trainable layers below them; a frozen layer's own feedback is computed
        by the walk and dropped. Buffers (BatchNorm running statistics) of frozen layers still
        follow the data in training mode, as in torch. An entry that selects no parameter is
        a :class:`ConfigError` listing the layers that have parameters.

    The option dicts must hold JSON values (numbers, strings, lists, dicts, None).
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
    reward: str | None = None
    rule: str | None = None
    eps: float = 1e-6
    activation: str | None = None
    widths: tuple[int, ...] | None = None
    seed: int = 0
    dtype: str = "float32"
    limit_train: int | None = None
    limit_test: int | None = None
    data_root: str | None = None
    checkpoint_every: int | None = None
    keep_checkpoints: bool = False
    eval_every: int | None = None
    model_options: dict = field(default_factory=dict)
    data_options: dict = field(default_factory=dict)
    method_options: dict = field(default_factory=dict)
    composite: str | None = None
    rule_for: dict | None = None
    rule_options: dict = field(default_factory=dict)
    init_from: str | None = None
    trainable: tuple[str, ...] | None = None

    def validated(self):
        """A checked copy with canonical names; raises :class:`ConfigError`.

        Imports a model factory or data loader given as ``"package.module:function"``.
        """
        c = dataclasses.replace(self)
        for name in ("model_options", "data_options", "method_options", "rule_options"):
            setattr(c, name, _json_dict(name, getattr(c, name)))
        if c.rule_for is not None:
            c.rule_for = _json_dict("rule_for", c.rule_for)
            if not c.rule_for:
                raise ConfigError("rule_for is empty; give {layer or layer type: rule} or None")
        _check_model(c)
        c.method = _choice("method", c.method, _methods.known_methods())
        c.optimizer = _choice("optimizer", c.optimizer, OPTIMIZERS)
        c.scheduler = _choice("scheduler", c.scheduler, SCHEDULERS)
        c.dtype = _choice("dtype", c.dtype, DTYPES)
        _check_data(c)
        if c.reward is not None and c.reward not in _rewards.REWARDS:
            raise ConfigError(
                f"unknown reward {c.reward!r}; known: {', '.join(_rewards.REWARDS)} (or None: "
                "the model's default)"
            )
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
        _check_rules(c)
        c.keep_checkpoints = bool(c.keep_checkpoints)
        if c.data_root is not None:
            c.data_root = str(c.data_root)
        _check_transfer(c)
        return c

    def to_dict(self):
        """The config as JSON-ready values (what ``config.json`` holds)."""
        out = dataclasses.asdict(self)
        out["widths"] = list(self.widths) if self.widths is not None else None
        out["trainable"] = list(self.trainable) if self.trainable is not None else None
        return out

    def to_toml(self):
        """The config as TOML, one ``field = value`` line per field, in field order; what
        :meth:`from_toml` (and ``lfp-ref train --config FILE``) reads back to an equal config.

        ``clip = 0`` stands for no clipping (TOML has no null, as ``--clip 0``); other unset
        fields (None) are written as comments and read back as unset.
        """
        lines = [
            "# lfp_ref TrainConfig: lfp-ref train --config FILE, or "
            "lfp_ref.train.TrainConfig.from_toml(text)"
        ]
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if f.name in ("widths", "trainable") and value is not None:
                value = list(value)
            if value is None and f.name == "clip":
                lines.append("clip = 0  # no clipping")
            elif value is None:
                lines.append(f"# {f.name} is not set")
            else:
                lines.append(f"{f.name} = {_toml_value(value, f.name)}")
        return "\n".join(lines) + "\n"

    @classmethod
    def from_toml(cls, text, source="the TOML text"):
        """The config in TOML ``text`` (unvalidated: call :meth:`validated`); the keys are the
        field names, ``clip = 0`` means no clipping. Unknown keys and TOML syntax errors are a
        :class:`ConfigError` naming ``source``."""
        return cls(**toml_values(text, source))

    @classmethod
    def from_dict(cls, values):
        """The config from :meth:`to_dict` (or ``config.json``); unknown keys are an error,
        missing ones take their defaults (a config.json from before a field existed)."""
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - names)
        if unknown:
            raise ConfigError(
                f"unknown configuration keys {unknown}; known: {', '.join(sorted(names))}"
            )
        return cls(**values).validated()


# --------------------------------------------------------------------------------------------
# TOML


def _tomllib():
    try:
        import tomllib  # Python >= 3.11
    except ImportError:
        try:
            import tomli as tomllib  # Python 3.10: the same parser, as a package
        except ImportError:
            raise ConfigError(
                "reading TOML on Python 3.10 needs the tomli package: pip install tomli"
            ) from None
    return tomllib


_BARE_KEY = re.compile(r"^[A-Za-z0-9_-]+$")


def _toml_key(key):
    return key if _BARE_KEY.match(key) else json.dumps(key)


def _toml_value(value, where):
    """TOML for a JSON-like value: inline tables and arrays, JSON's string escapes (valid in
    TOML basic strings)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, np.integer)):
        return str(int(value))
    if isinstance(value, (float, np.floating)):
        value = float(value)
        if not math.isfinite(value):
            return ("-inf" if value < 0 else "inf") if math.isinf(value) else "nan"
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value).replace("\x7f", "\\u007f")
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_toml_value(v, where) for v in value) + "]"
    if isinstance(value, dict):
        items = [
            f"{_toml_key(str(k))} = {_toml_value(v, f'{where}.{k}')}" for k, v in value.items()
        ]
        return "{" + ", ".join(items) + "}"
    if value is None:
        raise ConfigError(f"{where} is None, which TOML cannot hold; leave the key out instead")
    raise ConfigError(f"{where} = {value!r} has no TOML form (numbers, strings, lists, dicts)")


def toml_values(text, source="the TOML text"):
    """The TrainConfig fields in TOML ``text`` as a dict (``clip = 0`` becomes None); unknown
    keys and syntax errors are a :class:`ConfigError` naming ``source``."""
    tomllib = _tomllib()
    try:
        values = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{source} is not valid TOML: {exc}") from None
    names = [f.name for f in dataclasses.fields(TrainConfig)]
    unknown = sorted(set(values) - set(names))
    if unknown:
        raise ConfigError(
            f"{source}: unknown keys {unknown}; a config file holds TrainConfig fields: "
            f"{', '.join(names)}"
        )
    if values.get("clip") == 0:
        values["clip"] = None
    return values


# --------------------------------------------------------------------------------------------
# checks of single values


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


def _json_dict(name, value):
    """``value`` as config.json will give it back (tuples become lists), or a ConfigError: the
    saved config must rebuild the same run."""
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise ConfigError(f"{name} must be a dict of keyword arguments, got {value!r}")
    bad_keys = [k for k in value if not isinstance(k, str)]
    if bad_keys:
        raise ConfigError(f"{name} keys must be strings, got {bad_keys!r}")
    try:
        return json.loads(json.dumps(value, allow_nan=False))
    except (TypeError, ValueError) as exc:
        raise ConfigError(
            f"{name} must hold JSON values (numbers, strings, lists, dicts, None) so that "
            f"config.json can rebuild the run; {exc}"
        ) from None


def _error_text(exc):
    # a KeyError's str() is the repr of its message; its first argument is the text
    return str(exc.args[0]) if isinstance(exc, KeyError) and exc.args else str(exc)


# --------------------------------------------------------------------------------------------
# factories "package.module:function"


def is_factory(name):
    """Whether a model or data name is a factory string (it holds a ``:``)."""
    return isinstance(name, str) and ":" in name


def import_factory(spec, what="model"):
    """The callable named by ``"package.module:function"`` (``function`` may be dotted, e.g.
    ``"pkg.mod:Class.build"``), imported; :class:`ConfigError` says what is wrong."""
    spec = spec.strip()
    if not _FACTORY.match(spec):
        raise ConfigError(
            f"{what} {spec!r} is neither a known name nor a factory 'package.module:function' "
            "(dotted Python names around one ':')"
        )
    module_name, _, attr_path = spec.partition(":")
    try:
        obj = importlib.import_module(module_name)
    except ImportError as exc:
        raise ConfigError(
            f"{what} factory {spec!r}: cannot import module {module_name!r} ({exc}); install it "
            "or put its folder on PYTHONPATH"
        ) from None
    for attr in attr_path.split("."):
        try:
            obj = getattr(obj, attr)
        except AttributeError:
            raise ConfigError(
                f"{what} factory {spec!r}: {getattr(obj, '__name__', module_name)!r} has no "
                f"attribute {attr!r}"
            ) from None
    if not callable(obj):
        raise ConfigError(f"{what} factory {spec!r} is not callable: {obj!r}")
    return obj


def check_call(function, what, **kwargs):
    """Whether ``function`` accepts these keyword arguments (a ConfigError otherwise); callables
    without a readable signature pass."""
    try:
        signature = inspect.signature(function)
    except (TypeError, ValueError):
        return
    try:
        signature.bind(**kwargs)
    except TypeError as exc:
        raise ConfigError(f"{what} cannot be called with {sorted(kwargs)}: {exc}") from None


# --------------------------------------------------------------------------------------------
# checks of the parts


def _reserved(name, options, reserved, hint):
    clash = sorted(set(options) & set(reserved))
    if clash:
        raise ConfigError(f"{name} may not set {clash}: {hint}")


def _check_model(c):
    if not isinstance(c.model, str) or not c.model.strip():
        raise ConfigError(f"model must be a zoo name or 'package.module:function', got {c.model!r}")
    _reserved(
        "model_options",
        c.model_options,
        FACTORY_ARGUMENTS + ZOO_FIELDS,
        "the trainer passes num_classes, input_shape, seed and dtype; activation and widths "
        "are config fields of their own",
    )
    if is_factory(c.model):
        c.model = c.model.strip()
        given = [name for name in ZOO_FIELDS if getattr(c, name) is not None]
        if given:
            raise ConfigError(
                f"{' and '.join(given)} configure zoo models; model {c.model!r} is a factory: "
                "pass its options in model_options"
            )
        factory = import_factory(c.model, "model")
        arguments = dict.fromkeys(FACTORY_ARGUMENTS) | c.model_options
        check_call(factory, f"model factory {c.model!r}", **arguments)
        return
    try:
        c.model = zoo.check_model_name(c.model)
        c.activation = zoo.check_activation("relu" if c.activation is None else c.activation)
        if c.widths is not None:
            c.widths = tuple(int(w) for w in c.widths)
            zoo.check_widths(c.model, c.widths)
    except (ValueError, TypeError) as exc:
        message = str(exc)
        if message.startswith("unknown model"):
            message += "; or a user factory 'package.module:function'"
        raise ConfigError(message) from None


def _check_data(c):
    if not isinstance(c.data, str) or not c.data.strip():
        raise ConfigError(
            f"data must be a dataset name or 'package.module:function', got {c.data!r}"
        )
    if is_factory(c.data):
        c.data = c.data.strip()
        if c.data_root is not None:
            raise ConfigError(
                f"data_root is for the named datasets; data {c.data!r} is a loader: pass its "
                "folder in data_options"
            )
        loader = import_factory(c.data, "data")
        check_call(loader, f"data loader {c.data!r}", **c.data_options)
        return
    _reserved(
        "data_options",
        c.data_options,
        DATA_ARGUMENTS,
        "use the dtype and data_root fields (and the download option of the trainer)",
    )


def _check_rules(c):
    """Exactly one of rule / composite / rule_for; the names and options must build."""
    for name in ("rule", "composite"):
        value = getattr(c, name)
        if value is not None and (not isinstance(value, str) or not value.strip()):
            raise ConfigError(
                f"{name} must be a name (a str, saved in config.json), got {value!r}; build "
                "other assignments with rule_for"
            )
    if c.rule is None and c.composite is None and c.rule_for is None:
        c.rule = "epsilon"
    try:
        arguments = _methods.rule_arguments(c)
    except (KeyError, ValueError, TypeError) as exc:
        message = _error_text(exc)
        if "needs the input bounds" in message:
            message += (
                "; in a TrainConfig: rule_options={'low': ..., 'high': ...} (lfp-ref train "
                "--rule-option low=0 --rule-option high=1)"
            )
        raise ConfigError(message) from None
    if arguments["composite"] is not None and c.composite is not None:
        c.composite = type(arguments["composite"]).__name__  # the zennit class name


def _check_transfer(c):
    """``init_from`` a path (kept as a str), ``trainable`` None or a non-empty list of distinct
    layer names / dotted prefixes (kept as a tuple). Whether the path holds a checkpoint and
    the names select parameters is checked against the model when a run starts."""
    if c.init_from is not None:
        if isinstance(c.init_from, os.PathLike):
            c.init_from = os.fspath(c.init_from)
        if not isinstance(c.init_from, str) or not c.init_from.strip():
            raise ConfigError(
                f"init_from must be a run folder or a checkpoint file (a path), got {c.init_from!r}"
            )
    if c.trainable is None:
        return
    if isinstance(c.trainable, str) or not isinstance(c.trainable, (list, tuple)):
        raise ConfigError(
            f"trainable must be a list of layer names or dotted name prefixes (e.g. ['7', "
            f"'10', '13']), or None to train every parameter; got {c.trainable!r}"
        )
    if not c.trainable:
        raise ConfigError(
            "trainable is empty, which would freeze every parameter; list the layers to train, "
            "or None to train all"
        )
    for entry in c.trainable:
        if (
            not isinstance(entry, str)
            or not entry
            or entry != entry.strip()
            or entry.startswith(".")
            or entry.endswith(".")
        ):
            raise ConfigError(
                f"trainable entries are layer names or dotted name prefixes such as '7', "
                f"'branch.0' or '13.bias'; got {entry!r} in {list(c.trainable)!r}"
            )
    repeated = sorted({e for e in c.trainable if list(c.trainable).count(e) > 1})
    if repeated:
        raise ConfigError(f"trainable lists {repeated} more than once")
    c.trainable = tuple(c.trainable)


def resolve_rule(name, eps):
    """The ``rule`` argument of :func:`lfp_ref.engine.lfp_step` for a rule name: None for
    "epsilon" (the engine's ``Epsilon(eps)``), else :func:`lfp_ref.rules.get`'s rule.

    Kept for existing callers; the trainer builds its rules with
    :func:`lfp_ref.methods.rule_arguments`.
    """
    if not isinstance(name, str):
        raise ConfigError(f"rule must be a name, got {name!r}")
    try:
        rule = _rules.get(name.strip())
    except (KeyError, ValueError) as exc:
        raise ConfigError(_error_text(exc)) from None
    return None if type(rule) is _rules.Epsilon else rule


__all__ = [
    "ConfigError",
    "DTYPES",
    "OPTIMIZERS",
    "SCHEDULERS",
    "TrainConfig",
    "check_call",
    "import_factory",
    "is_factory",
    "resolve_rule",
    "toml_values",
]
