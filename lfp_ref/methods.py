"""Training methods by name: what one optimizer step on a batch does.

The trainer (:mod:`lfp_ref.train`) knows no method by name: ``TrainConfig.method`` is looked up
here with :func:`get_method`, and the factory it returns builds a :class:`Method` from the
configuration and the model. Two are registered:

- ``"lfp"``: :func:`lfp_ref.engine.lfp_step`: feedback ``F`` with the configured reward and rule
  assignment (``rule``, ``composite`` or ``rule_for``, see :func:`rule_arguments`), ``g = -F``,
  global-norm clipping (``clip``), optimizer step. Option (``method_options``):
  ``batch_reduction`` "sum" (the spec, default) or "mean";
- ``"gd"``: :func:`lfp_ref.engine.gd_step`: backprop of the mean cross-entropy, the same clipping
  and optimizer; the configured reward is only measured, for the logs.

A new method (Feedback Alignment, a spiking method, ...) registers itself without touching the
trainer::

    from lfp_ref import engine
    from lfp_ref.methods import Method, StepResult, register_method

    @register_method("sign-sgd")
    class SignSGD(Method):
        def step(self, model, optimizer, x, y):
            g = engine.gradients(model, x, y, input_grad=False)
            optimizer.step({k: np.sign(v) for k, v in g.params.items()})
            return StepResult(g.logits, self.reward(g.logits, y))

    fit(TrainConfig(method="sign-sgd", ...))

Method protocol (what the trainer calls):

``factory(config, model) -> method``
    Build it; read what it needs from the config (``clip``, ``reward``, ``eps``, the rule
    fields, ``method_options``, ``seed``, ...). Unknown ``method_options`` are a ValueError.
``method.step(model, optimizer, x, y) -> StepResult``
    One optimizer step on the batch; returns the logits of the step's forward pass (before the
    update) and the configured reward at them, shape (B, C) each: the trainer logs loss,
    summed reward and accuracy from these. Non-finite values raise FloatingPointError.
``method.state_dict() -> dict`` / ``method.load_state_dict(state)``
    Whatever the method holds that changes during training or cannot be rebuilt from the
    config (fixed random feedback matrices, a Generator's state as a JSON string): arrays,
    scalars or strings. Checkpoints save it under ``method/<key>`` and a resumed run restores
    it, so the continuation repeats the uninterrupted run bit for bit. Empty for lfp and gd.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from . import composites as _composites
from . import rewards as _rewards
from . import rules as _rules
from .engine import gd_step, lfp_step, rule_resolver
from .layers import base as _layer_base

#: registered methods, ``{name: factory(config, model) -> Method}``, in registration order
METHODS = {}

#: the ``rule_for`` key for the Dense and Conv2d layers no other key matches
DEFAULT_RULE_KEY = "default"


@dataclass
class StepResult:
    """What one training step hands the trainer for its logs.

    logits : (B, C) the forward output the step computed, before the update.
    reward : (B, C) the configured reward at those logits.
    """

    logits: np.ndarray
    reward: np.ndarray


def _canonical(name):
    return name.strip().lower() if isinstance(name, str) else name


def register_method(name, factory=None, *, replace=False):
    """Register a training method under ``name`` (case-insensitive).

    Use as a decorator, ``@register_method("sign-sgd")`` on a :class:`Method` subclass or any
    ``factory(config, model) -> method``, or call ``register_method("sign-sgd", factory)``.
    Registering a taken name is a ValueError unless ``replace=True``. Returns the factory.
    """
    key = _canonical(name)
    if not isinstance(key, str) or not key:
        raise ValueError(f"a method name is a non-empty str, got {name!r}")

    def add(factory):
        if not callable(factory):
            raise TypeError(f"method {key!r}: the factory must be callable, got {factory!r}")
        if key in METHODS and METHODS[key] is not factory and not replace:
            raise ValueError(
                f"a method named {key!r} is already registered ({METHODS[key]!r}); choose "
                "another name or pass replace=True"
            )
        METHODS[key] = factory
        return factory

    return add if factory is None else add(factory)


def unregister_method(name):
    """Remove a registered method (tests that register their own clean up with this)."""
    METHODS.pop(_canonical(name), None)


def known_methods():
    """The registered method names, in registration order."""
    return tuple(METHODS)


def get_method(name):
    """The factory registered as ``name``; a ValueError lists the known names."""
    key = _canonical(name)
    if key not in METHODS:
        raise ValueError(f"method must be one of {', '.join(METHODS)}, got {name!r}")
    return METHODS[key]


def checked_reward(name):
    """The reward function ``name`` (``lfp_ref.rewards``), raising FloatingPointError when it
    returns non-finite values (the trainer turns that into a diagnosis of the step)."""
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


# --------------------------------------------------------------------------------------------
# rules from the configuration


def layer_type(name):
    """The layer class of :mod:`lfp_ref.layers` called ``name`` (case-insensitive: "Conv2d",
    "dense", a family such as "WeightedLayer"), or None when no class has that name."""
    from . import layers

    key = name.lower()
    for attr in layers.__all__:
        cls = getattr(layers, attr)
        if isinstance(cls, type) and issubclass(cls, _layer_base.Layer) and attr.lower() == key:
            return cls
    return None


def _named_rule(name, options, eps):
    """``lfp_ref.rules.get(name, **options)``; the plain epsilon rule takes the config's eps."""
    try:
        rule = _rules.get(name, **options)
    except TypeError as exc:
        raise TypeError(f"rule {name!r} with rule_options {options}: {exc}") from exc
    if type(rule) is _rules.Epsilon and "eps" not in options:
        rule = _rules.Epsilon(eps)
    return rule


def rule_arguments(config):
    """The ``rule=`` / ``composite=`` arguments of :func:`lfp_ref.engine.lfp_step` that the
    configuration asks for. Names are resolved by :func:`lfp_ref.rules.get` and
    :func:`lfp_ref.composites.get`; the engine's :func:`~lfp_ref.engine.rule_resolver` places
    them on the layers.

    - ``rule`` (default "epsilon"): that rule, built with ``rule_options`` (e.g.
      ``{"low": 0, "high": 1}`` for zbox); the plain epsilon rule uses ``config.eps``. Epsilon
      goes to every layer; another rule to Dense and Conv2d, the rest keep ``Epsilon(eps)``;
    - ``composite``: a zennit composite name, built with ``rule_options`` (EpsilonGammaBox's
      ``low``/``high``, ``epsilon``, ``gamma``, ``stabilizer``);
    - ``rule_for``: ``{layer name or layer type name: rule name}`` as a
      :class:`lfp_ref.composites.Composite` (the key "default" sets the rule of the remaining
      Dense and Conv2d layers, epsilon otherwise); ``rule_options`` is then
      ``{rule name: {option: value}}``.

    Raises ValueError or TypeError (unknown names, bad options, two ways at once); layer names
    are checked against the model when the composite is resolved.
    """
    given = [key for key in ("rule", "composite", "rule_for") if getattr(config, key) is not None]
    if len(given) > 1:
        raise ValueError(
            f"give one way of assigning rules, got {' and '.join(given)}: rule (one rule "
            "name), composite (a zennit composite name) or rule_for (per layer)"
        )
    options = dict(config.rule_options or {})
    if config.composite is not None:
        return {"rule": None, "composite": _composites.get(config.composite, **options)}
    if config.rule_for is None:
        rule = "epsilon" if config.rule is None else config.rule
        return {"rule": _named_rule(rule, options, config.eps), "composite": None}
    used = {_canonical(rule) for rule in config.rule_for.values()}
    for rule, rule_options in options.items():
        if _canonical(rule) not in used or not isinstance(rule_options, dict):
            raise ValueError(
                "with rule_for, rule_options maps a rule name used in rule_for to its options, "
                f"e.g. {{'zbox': {{'low': 0.0, 'high': 1.0}}}}; got {rule!r}: {rule_options!r}"
            )
    by_rule = {_canonical(rule): opts for rule, opts in options.items()}

    def build(rule, where):
        if not isinstance(rule, str):
            raise TypeError(f"rule_for[{where!r}] must be a rule name, got {rule!r}")
        try:
            return _named_rule(rule, by_rule.get(_canonical(rule), {}), config.eps)
        except (TypeError, ValueError) as exc:
            raise type(exc)(f"rule_for[{where!r}]: {exc}") from exc

    default, layer_types, names = None, {}, {}
    for key, rule in config.rule_for.items():
        if key == DEFAULT_RULE_KEY:
            default = build(rule, key)
        elif (cls := layer_type(key)) is not None:
            layer_types[cls] = build(rule, key)
        else:
            names[key] = build(rule, key)
    if default is None:
        default = _rules.Epsilon(config.eps)
    return {
        "rule": None,
        "composite": _composites.Composite(default, layer_types=layer_types, names=names),
    }


# --------------------------------------------------------------------------------------------
# the method base class and the two built-in methods


class Method:
    """Base class of the training methods (see the module docstring for the protocol).

    ``Method(config, model)`` keeps the config, builds the checked reward
    (``self.reward(logits, y)``) and refuses ``method_options`` that are not in
    :attr:`options`. Subclasses implement :meth:`step`; a stateful one also overrides
    :meth:`state_dict` and :meth:`load_state_dict`.
    """

    #: name -> default of the options ``method_options`` may set
    options = {}

    def __init__(self, config, model):
        self.config = config
        given = dict(getattr(config, "method_options", None) or {})
        unknown = sorted(set(given) - set(self.options))
        if unknown:
            known = ", ".join(self.options) or "none"
            raise ValueError(
                f"method {config.method!r} has no options {unknown}; its options: {known}"
            )
        self.settings = {**self.options, **given}
        self.reward = checked_reward(config.reward)

    def step(self, model, optimizer, x, y):
        """One optimizer step on the batch ``(x, y)``; returns a :class:`StepResult`."""
        raise NotImplementedError

    def state_dict(self):
        """What a checkpoint must hold to resume this method bit for bit (default: nothing)."""
        return {}

    def load_state_dict(self, state):
        """Restore :meth:`state_dict`'s output; ValueError when it does not fit."""
        if state:
            raise ValueError(
                f"method {self.config.method!r} holds no state, got entries {sorted(state)}"
            )

    def __repr__(self):
        return f"{type(self).__name__}({self.settings})" if self.settings else type(self).__name__


@register_method("lfp")
class LFP(Method):
    """Layer-wise Feedback Propagation: one :func:`lfp_ref.engine.lfp_step` per batch."""

    options = {"batch_reduction": "sum"}

    def __init__(self, config, model):
        super().__init__(config, model)
        arguments = rule_arguments(config)
        # resolved once: a composite's per-layer table is the same at every step
        self.rule_for = rule_resolver(eps=config.eps, model=model, **arguments)

    def step(self, model, optimizer, x, y):
        fb = lfp_step(
            model,
            optimizer,
            x,
            y,
            reward=self.reward,
            eps=self.config.eps,
            clip_norm=self.config.clip,
            batch_reduction=self.settings["batch_reduction"],
            rule=self.rule_for,
        )
        return StepResult(fb.logits, fb.reward)


@register_method("gd")
class GradientDescent(Method):
    """Gradient descent: one :func:`lfp_ref.engine.gd_step` of the model's output loss, mean
    over the batch (cross-entropy; a spiking network's rate-coded cross-entropy, see
    :func:`lfp_ref.train.outputs.loss_name`, so "gd" on a spiking net is surrogate BPTT with
    each LIF's own surrogate); the configured reward is computed for the logs only."""

    def __init__(self, config, model):
        super().__init__(config, model)
        from .train.outputs import loss_name  # here: lfp_ref.train imports this module

        self.loss = loss_name(model)

    def step(self, model, optimizer, x, y):
        g = gd_step(
            model,
            optimizer,
            x,
            y,
            loss=self.loss,
            reduction="mean",
            clip_norm=self.config.clip,
        )
        return StepResult(g.logits, self.reward(g.logits, y))


__all__ = [
    "DEFAULT_RULE_KEY",
    "GradientDescent",
    "LFP",
    "METHODS",
    "Method",
    "StepResult",
    "checked_reward",
    "get_method",
    "known_methods",
    "layer_type",
    "register_method",
    "rule_arguments",
    "unregister_method",
]


# --------------------------------------------------------------------------------------------
# Feedback Alignment: lfp_ref/feedback_alignment.py registers the method "fa" (imported here so
# that every user of the registry finds it)

from . import feedback_alignment as _feedback_alignment  # noqa: E402, F401
from .snn import methods as _snn_methods  # noqa: E402, F401  (registers "surrogate")
