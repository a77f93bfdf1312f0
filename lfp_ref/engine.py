"""The public passes over a whole model: LFP feedback, backprop gradients, and one training step
each way.

Sign convention (decided here and nowhere else): feedback ``F`` is positive for "grow |theta|";
LFP ascends it, so the optimizer, which descends, follows ``g = GRADIENT_PER_FEEDBACK * F = -F``:
:func:`feedback_to_gradient` turns feedback into that gradient, and :func:`lfp_step` hands the
factor to the optimizer's own pass (``step(F, scale=-1 * clipping factor)``) instead of
rewriting the feedback arrays.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from . import composites as _composites
from . import losses as _losses
from . import rewards as _rewards
from . import rules as _rules
from ._checks import check_array
from .kernels import backend_of
from .optim import clip_coefficient
from .rules import DEFAULT_EPS, Epsilon

BATCH_REDUCTIONS = ("sum", "mean")

#: The sign convention: the gradient an optimizer descends is this times the feedback.
GRADIENT_PER_FEEDBACK = -1.0


@dataclass
class Feedback:
    """What one LFP pass produced.

    params: parameter feedback by state-dict name (same shapes as the parameters).
    input_reward: the reward arriving at the input, shape of x.
    logits: the forward output. reward: the reward at the output.
    squared_norms: ``sum F**2`` of each parameter's feedback (float64), what clipping uses.
    """

    params: dict
    input_reward: np.ndarray
    logits: np.ndarray
    reward: np.ndarray
    squared_norms: dict


@dataclass
class Gradients:
    """What one backprop pass produced: ``params`` by state-dict name, ``input_grad``,
    ``logits``, the scalar ``loss`` and ``squared_norms`` (``sum g**2`` per parameter)."""

    params: dict
    input_grad: np.ndarray
    logits: np.ndarray
    loss: float
    squared_norms: dict


def rule_resolver(rule=None, eps=DEFAULT_EPS, composite=None, model=None):
    """The one dispatch point from what the caller asked for to the ``rule_for(layer)`` callable
    of the layer protocol.

    - ``composite`` (a :class:`lfp_ref.composites.Composite` or a zennit composite name such as
      ``"EpsilonPlus"``): its per-layer assignment for ``model``;
    - ``rule`` None: ``Epsilon(eps)`` for every layer (LFP-epsilon, spec section 2);
    - ``rule`` a callable ``layer -> rule``: used as is;
    - ``rule`` an :class:`~lfp_ref.rules.Epsilon` or :class:`~lfp_ref.rules.Norm` (or its name):
      that rule for every layer;
    - any other rule (or name, see :func:`lfp_ref.rules.get`): that rule for the Dense and Conv2d
      layers, while AvgPool2d, BatchNorm and the residual sum keep ``Epsilon(eps)``, so that LFP
      with, e.g., ZPlus still trains every parameter; with ``model`` given, a model holding an
      ``epsilon_only`` layer (a LIF) is a ValueError rather than a rule silently not applied.
    """
    if composite is not None:
        if rule is not None:
            raise ValueError("give rule= or composite=, not both")
        if model is None:
            raise ValueError("rule_resolver needs the model to resolve a composite")
        return _composites.get(composite).resolve(model)
    if isinstance(rule, _composites.Composite):
        raise TypeError(f"{rule!r} assigns rules per layer: pass it as composite=, not rule=")
    if rule is None:
        rule = Epsilon(eps)
    if callable(rule) and not hasattr(rule, "propagate"):
        return rule
    rule = _rules.get(rule)
    if isinstance(rule, Epsilon):
        return lambda layer: rule
    if model is not None:
        fixed = [name for name, layer in model.named_layers() if layer.epsilon_only]
        if fixed:  # e.g. a spiking net: the rule would apply to no LIF, silently
            raise ValueError(
                f"{rule!r} cannot apply to layer {fixed[0]!r}: {len(fixed)} layer(s) of this "
                "model propagate by the epsilon rule whatever they are given (LIF: through "
                "the membrane, spec section 6); use rule 'epsilon'"
            )
    fallback = Epsilon(eps)
    return lambda layer: rule if isinstance(layer, _rules.WEIGHTED_LAYERS) else fallback


def forward(model, x):
    """Validated forward pass that starts a new pass (the caches of earlier passes are dropped);
    returns ``(x, logits)``."""
    x = check_array(x, "x", model.dtype)
    model.clear_caches()
    logits = model.forward(x)
    if not backend_of(logits).xp.isfinite(logits).all():
        raise FloatingPointError(
            "the forward pass produced non-finite outputs; the weights or inputs are too large "
            "(check the learning rate)"
        )
    return x, logits


def resolve_reward(reward, logits, y):
    """The reward array at the output (the one place that turns ``reward=`` into an array):
    ``reward`` is a name from ``lfp_ref.rewards.REWARDS``, a callable ``(logits, y) -> r``, or
    the array itself. The result must have the logits' shape and be finite; it is cast to the
    logits' dtype."""
    if isinstance(reward, (list, tuple)) or backend_of(logits).is_array(reward):
        r = reward
    else:
        r = _rewards.get(reward)(logits, y)
    # an array's own shape first: np.shape reads the same, through two Python calls
    if getattr(r, "shape", None) != logits.shape and np.shape(r) != logits.shape:
        what = "the reward array" if r is reward else f"the reward {_rewards.name_of(reward)!r}"
        raise ValueError(f"{what} must have the logits' shape {logits.shape}, got {np.shape(r)}")
    return check_array(backend_of(logits).contiguous(r, dtype=logits.dtype), "reward")


def collect(model, params):
    """``(params, squared norms)`` by the model's parameter names, in registration order: the
    values of a layer used more than once (listed under each use's name by the containers) are
    summed under the first name; non-finite feedback is an error.

    This is the one finiteness check of a step. One pass per parameter: the float64 sum of
    squares is finite exactly when every entry is (unless float64 squares overflow, which the
    exact check below tells apart); the optimizer and clipping reuse the sums.
    """
    names = list(model._parameter_dict())  # the named_parameters() order
    if len(params) != len(names):  # more entries than parameters: a layer used more than once
        for alias, name in model.parameter_aliases().items():
            value = params.pop(alias, None)
            if value is not None:
                params[name] += value
    ordered, squared = {}, {}
    for name in names:
        value = params[name]
        bk = backend_of(value)
        squared[name] = bk.elementwise.sum_of_squares(value)  # a Python float
        if not math.isfinite(squared[name]) and not bk.xp.isfinite(value).all():
            raise FloatingPointError(f"non-finite feedback/gradient for parameter {name!r}")
        ordered[name] = value
    return ordered, squared


def feedback(
    model,
    x,
    y=None,
    reward="softmax_loss",
    eps=DEFAULT_EPS,
    batch_reduction="sum",
    rule=None,
    composite=None,
    input_reward=True,
):
    """Run LFP: forward, reward at the output, feedback back through every layer.

    Parameters
    ----------
    model : Layer
    x : ndarray, the input batch, in the model's dtype.
    y : ndarray of int, labels, passed to the reward function.
    reward : callable ``(logits, y) -> r``, a name from ``lfp_ref.rewards.REWARDS``, or the
        reward array itself (shape of the logits).
    eps : the stabiliser of the default LFP-epsilon rule (and of the layers a non-epsilon
        ``rule`` does not apply to); a composite carries its own ``epsilon`` and ``stabilizer``.
    batch_reduction : "sum" (the spec) or "mean" (divide parameter feedback by B, as the older
        zennit-based lfprop propagator did).
    rule : a rule or rule name (``lfp_ref.rules``; default ``Epsilon(eps)``) or a function
        ``layer -> rule``. A non-epsilon rule goes to the Dense and Conv2d layers; see
        :func:`rule_resolver`.
    composite : instead of ``rule``, a per-layer assignment: a
        :class:`lfp_ref.composites.Composite` or a zennit composite name (``"EpsilonPlus"``, ...).
    input_reward : False skips the reward at the input (``Feedback.input_reward`` is None):
        training needs only the parameters' feedback, and the first layer's input VJP is a full
        GEMM (a transposed convolution) spent on nothing. Parameter feedback is unchanged.

    Returns
    -------
    Feedback
    """
    if batch_reduction not in BATCH_REDUCTIONS:
        raise ValueError(
            f"batch_reduction must be one of {BATCH_REDUCTIONS}, got {batch_reduction!r}"
        )
    x, logits = forward(model, x)
    r = resolve_reward(reward, logits, y)
    rule_for = rule_resolver(rule, eps, composite, model)
    reward_in, params = model.feedback(r, rule_for, input_reward=input_reward)
    if batch_reduction == "mean":
        for value in params.values():
            value /= x.shape[0]
    ordered, squared = collect(model, params)
    return Feedback(ordered, reward_in, logits, r, squared)


def gradients(model, x, y, loss="cross_entropy", reduction="mean", input_grad=True):
    """Backprop: ``dL/dtheta`` for every parameter, with ``loss`` one of
    ``lfp_ref.losses.LOSSES`` (or a callable ``(logits, y, reduction) -> (loss, dL/dlogits)``).
    ``input_grad=False`` skips ``dL/dx`` (``Gradients.input_grad`` is None)."""
    if reduction not in _losses.REDUCTIONS:
        raise ValueError(f"reduction must be one of {_losses.REDUCTIONS}, got {reduction!r}")
    x, logits = forward(model, x)
    value, grad = _losses.get(loss)(logits, y, reduction=reduction)
    grad = backend_of(logits).contiguous(grad, dtype=logits.dtype)
    grad_in, params = model.backward(grad, input_grad=input_grad)
    ordered, squared = collect(model, params)
    return Gradients(ordered, grad_in, logits, value, squared)


def feedback_to_gradient(params):
    """The sign convention: the optimizer descends ``g = -F``, so LFP ascends the feedback.
    Negates ``params`` in place and returns it."""
    for value in params.values():
        value *= GRADIENT_PER_FEEDBACK
    return params


def _descend(optimizer, grads, squared_norms, clip_norm, scale=1.0):
    """``optimizer.step`` along ``scale * grads``, clipped to the global norm ``clip_norm``
    (torch's ``clip_grad_norm_``): the clipping factor joins ``scale`` in the optimizer's pass
    and the arrays in ``grads`` are left as they are."""
    if clip_norm is not None:
        scale *= clip_coefficient(squared_norms, clip_norm)[0]
    # the sums of squares of collect() already proved the arrays finite: no second scan
    optimizer.step(grads, scale=scale, squared_norms=squared_norms)


def lfp_step(
    model,
    optimizer,
    x,
    y,
    reward="softmax_loss",
    eps=DEFAULT_EPS,
    clip_norm=None,
    batch_reduction="sum",
    rule=None,
    composite=None,
):
    """One LFP training step: feedback ``F`` (with ``rule`` or ``composite``, see
    :func:`feedback`), then one optimizer step along ``g = -F``, globally clipped to ``clip_norm``
    when given. Returns the :class:`Feedback` (its ``params`` hold ``F``, unclipped)."""
    fb = feedback(
        model,
        x,
        y,
        reward=reward,
        eps=eps,
        batch_reduction=batch_reduction,
        rule=rule,
        composite=composite,
        input_reward=False,
    )
    _descend(optimizer, fb.params, fb.squared_norms, clip_norm, GRADIENT_PER_FEEDBACK)
    return fb


def gd_step(model, optimizer, x, y, loss="cross_entropy", reduction="mean", clip_norm=None):
    """One gradient-descent step with the same layers and optimizer (gradients clipped to the
    global norm ``clip_norm`` when given). Returns the :class:`Gradients` (unclipped)."""
    g = gradients(model, x, y, loss=loss, reduction=reduction, input_grad=False)
    _descend(optimizer, g.params, g.squared_norms, clip_norm)
    return g
