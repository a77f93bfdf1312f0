"""Peer harness: run the public PyTorch packages on a ``torch.nn`` model, in float64.

The cross-checks compare lfp_ref against

- ``lfprop`` 1.0.0 (LXT-based propagator ``lfprop.propagation.propagator_lxt.LFPEpsilonComposite``
  and the reward classes in ``lfprop.rewards.reward_functions``),
- ``zennit`` 0.5.1 (LRP composites and the ``Gradient`` attributor),
- plain ``torch`` autograd.

Everything here imports torch/lfprop/zennit lazily, inside the functions, so
``import lfp_ref.peers`` works without them; the first call raises an ImportError that says
how to install them (``make crosscheck``, or the ``crosscheck`` extra; see
docs/crosscheck-env.md).

Every function works on a deep copy of the model converted to float64 (``.double()``): the
caller's model is never wrapped, re-typed, or left with ``.feedback`` attributes, and a BatchNorm
in train mode updates the running statistics of the copy only. Results are float64 NumPy arrays,
parameter results keyed by the model's own state-dict names (``"0.weight"``, ...).

Residual blocks (``lfp_ref.verify.interop.TorchResidual``) carry their addition as a module,
``TorchSum``; each copy gets the peer's own Sum in its place (:func:`_replace_sums`): lfprop's
``lfprop.model.custom_resnet.Sum``, the only class its LFP-epsilon rule is registered for, and for
zennit an adapter around ``zennit.layer.Sum``, which its composites give the Norm rule. Both then
split the reward at ``a + b`` in proportion to ``a`` and ``b`` (spec section 2).

What lfprop 1.0.0 actually computes (read from its source and verified in tests/test_peers.py):

- stabiliser: ``zennit.core.stabilize(z, eps, clip=False, norm_scale=False)``
  = ``z + eps * sgn0(z)`` with ``sgn0(0) = +1`` (spec section 1); default ``eps = 1e-6``.
- ``rho = r / stab(z)``; parameter feedback ``param.feedback = |theta| * VJP_theta(rho)``
  (``torch.autograd.grad(z, theta, rho)``), outgoing reward ``x * VJP_x(rho)``: spec section 2.
- batch reduction: SUM (the VJP sums over the batch; nothing divides by B).
- activations (zennit ``Activation`` types, lfprop ``Step``): identity rule. Flatten, MaxPool and
  Dropout get no rule, so plain autograd runs through them (reshape, arg-max routing, mask/(1-p)).
- the input must require grad: otherwise NO layer gets feedback (the LXT autograd Functions see
  no grad-requiring tensor input, so the whole output is detached and autograd raises);
  ``param.feedback`` is overwritten on every call. This harness handles both.
"""

from __future__ import annotations

import copy
import functools
import warnings
from dataclasses import dataclass
from typing import Any

import numpy as np

_INSTALL_HINT = (
    "lfp_ref.peers needs torch, torchvision, lfprop==1.0.0, zennit==0.5.1, lxt==0.6.1 and "
    "transformers<5. Run `make crosscheck`, or install the `crosscheck` extra: "
    "pip install -e '.[crosscheck]' (see docs/crosscheck-env.md)."
)

#: spec name -> lfprop 1.0.0 class name in ``lfprop.rewards.reward_functions``
LFPROP_REWARDS: dict[str, str] = {
    "softmax_loss": "SoftmaxLossReward",
    "sigmoid_loss": "SigmoidLossReward",
    "binary_sigmoid_loss": "BinarySigmoidLossReward",
    "bounded_softmax": "BoundedSoftmaxReward",
    "correct_classification": "CorrectclassificationReward",
    "misclassification": "MisclassificationReward",
    "maximize_neuron": "MaximizeSingleNeuron",
    "minimize_neuron": "MinimizeSingleNeuron",
    "snn_rate_coded": "SnnCorrectClassRewardSpikesRateCoded",
}

# spec keyword -> lfprop keyword (BoundedSoftmaxReward)
_REWARD_KWARG_NAMES = {
    "lower": "lower_bound",
    "higher": "higher_bound",
    "sign_only": "logit_sign_only",
}

#: zennit 0.5.1 composite names accepted by :func:`zennit_relevance`
ZENNIT_COMPOSITES = (
    "EpsilonPlus",
    "EpsilonAlpha2Beta1",
    "EpsilonPlusFlat",
    "EpsilonAlpha2Beta1Flat",
    "EpsilonGammaBox",
)


# --------------------------------------------------------------------------- lazy imports


def _torch():
    from .interop import import_torch  # the one place torch is imported (its OpenMP setting)

    try:
        return import_torch()
    except ImportError as err:  # pragma: no cover - depends on the environment
        raise ImportError(_INSTALL_HINT) from err


@functools.lru_cache(maxsize=1)
def _lfprop():
    """Return (propagator_lxt, reward_functions) of lfprop."""
    _torch()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            from lfprop.propagation import propagator_lxt
            from lfprop.rewards import reward_functions
    except ImportError as err:
        raise ImportError(f"{_INSTALL_HINT} (import failed: {err})") from err
    return propagator_lxt, reward_functions


@functools.lru_cache(maxsize=1)
def _zennit():
    _torch()
    try:
        import zennit.attribution
        import zennit.canonizers
        import zennit.composites
        import zennit.layer
    except ImportError as err:
        raise ImportError(f"{_INSTALL_HINT} (import failed: {err})") from err
    return zennit


def missing_peer() -> str | None:
    """The first of torch, lfprop, zennit that cannot be imported (with the imports lfp_ref's
    peers need), or None when all can."""
    for name, load in (("torch", _torch), ("lfprop", _lfprop), ("zennit", _zennit)):
        try:
            load()
        except ImportError:
            return name
    return None


def peer_versions() -> dict[str, str | None]:
    """Installed versions of the peer packages (None where missing); no import of them."""
    from importlib import metadata

    out: dict[str, str | None] = {}
    for name in ("torch", "torchvision", "lfprop", "zennit", "lxt", "transformers"):
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = None
    return out


# --------------------------------------------------------------------------- helpers


def _as_f64(torch, a):
    if isinstance(a, torch.Tensor):
        return a.detach().to(torch.float64).clone()
    return torch.as_tensor(np.asarray(a, dtype=np.float64)).clone()


def _as_labels(torch, y):
    if isinstance(y, torch.Tensor):
        return y.detach().clone()
    y = np.asarray(y)
    if np.issubdtype(y.dtype, np.integer):
        return torch.as_tensor(y.astype(np.int64))
    return torch.as_tensor(y.astype(np.float64))


def _f64_copy(model):
    """Deep copy in float64, same train/eval mode; no parameter keeps a stale ``.feedback``."""
    m = copy.deepcopy(model).double()
    for p in m.parameters():
        if hasattr(p, "feedback"):
            del p.feedback
        p.grad = None
    return m


def _replace_sums(model, make_sum):
    """Replace every :class:`lfp_ref.verify.interop.TorchSum` (the addition of a residual block) in
    ``model`` by ``make_sum()``, in place; returns how many were replaced.

    The residual addition needs its own rule: lfprop 1.0.0 applies LFP-epsilon only to modules of
    its class ``lfprop.model.custom_resnet.Sum`` (``forward(x, identity)``), zennit 0.5.1 gives
    the Norm rule only to ``zennit.layer.Sum`` (one stacked input). Without the swap both peers
    would let autograd copy the whole reward to each summand instead of splitting it.
    """
    from .interop import TorchSum

    replaced = 0
    for parent in list(model.modules()):
        for name, child in list(parent.named_children()):
            if type(child) is TorchSum:
                setattr(parent, name, make_sum())
                replaced += 1
    return replaced


@functools.lru_cache(maxsize=1)
def _zennit_sum_class():
    """A two-input adapter around ``zennit.layer.Sum``: zennit's hooks read only their module's
    first input, so the summands are stacked and summed by the inner zennit layer, which the
    composites give the Norm rule (``R_a = a * r / stab(a + b)``, likewise for b)."""
    torch = _torch()
    zennit_sum = _zennit().layer.Sum

    class ZennitTwoInputSum(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.sum = zennit_sum(dim=-1)

        def forward(self, a, b):
            return self.sum(torch.stack([a, b], dim=-1))

    return ZennitTwoInputSum


def _reward_object(name: str, reward_kwargs: dict[str, Any] | None):
    _, reward_functions = _lfprop()
    if name not in LFPROP_REWARDS:
        raise ValueError(f"unknown reward {name!r}; known: {sorted(LFPROP_REWARDS)}")
    cls = getattr(reward_functions, LFPROP_REWARDS[name])
    kwargs = {_REWARD_KWARG_NAMES.get(k, k): v for k, v in (reward_kwargs or {}).items()}
    return cls(device="cpu", **kwargs)


# --------------------------------------------------------------------------- lfprop


def lfprop_reward(name: str, logits, y, **reward_kwargs) -> np.ndarray:
    """The reward lfprop 1.0.0's reward class ``name`` gives at the output, float64.

    ``name`` is a spec name (section 3, keys of :data:`LFPROP_REWARDS`); ``logits`` is (B, C)
    (for ``binary_sigmoid_loss`` (B, 1) with ``y`` of shape (B,) in {0, 1}; for
    ``snn_rate_coded`` the spike train (T, B, C)). ``bounded_softmax`` takes ``lower``,
    ``higher``, ``sign_only`` (or lfprop's ``lower_bound``, ``higher_bound``, ``logit_sign_only``).

    Formulas in lfprop 1.0.0 (all match spec section 3; note ``sign(0) = 0`` in torch):
    softmax_loss ``z * (Y - softmax(z))``; sigmoid_loss ``z * (Y - s(z))``;
    binary_sigmoid_loss ``z * (y - s(z))``; correct_classification ``sign(z_y)`` at the label
    when ``z_y == max z`` (ties count as correct); misclassification ``-sign(z)`` where
    ``z > z_y``; maximize/minimize_neuron ``+/- sign(z) (1 - s(z))``; snn_rate_coded as spec
    section 6 WITHOUT the 1/T factor.
    """
    torch = _torch()
    obj = _reward_object(name, reward_kwargs)
    z = _as_f64(torch, logits)
    labels = _as_labels(torch, y)
    if name == "binary_sigmoid_loss":
        labels = labels.to(torch.float64)
    with torch.no_grad():
        r = obj(z, labels)
    return r.detach().to(torch.float64).numpy().copy()


@dataclass
class LfpropResult:
    """What one lfprop 1.0.0 propagation gives (all float64 NumPy)."""

    feedback: dict[str, np.ndarray]  # parameter feedback, keyed by state-dict name
    input_reward: np.ndarray  # R_x at the model input
    logits: np.ndarray  # model output
    reward: np.ndarray  # reward the reward class put at the output


def lfprop_propagate(
    torch_model,
    x,
    y,
    reward: str = "softmax_loss",
    eps: float = 1e-6,
    *,
    reward_kwargs: dict[str, Any] | None = None,
    strict: bool = True,
) -> LfpropResult:
    """Run lfprop 1.0.0's ``LFPEpsilonComposite(epsilon=eps)`` with its reward class ``reward``.

    This is lfprop's documented training step (README "How it works"): register the composite,
    forward an input that requires grad, compute the reward from the (detached) output, and call
    ``torch.autograd.grad(outputs, inputs, grad_outputs=reward)``; the feedback is then read from
    ``param.feedback``. ``strict=True`` raises if a trainable parameter received no feedback (a
    layer type that lfprop has no rule for, or a model that is a single bare layer: lfprop only
    wraps *children* of the model).
    """
    torch = _torch()
    propagator_lxt, _ = _lfprop()
    reward_fn = _reward_object(reward, reward_kwargs)

    model = _f64_copy(torch_model)
    from lfprop.model.custom_resnet import Sum as LfpropSum

    _replace_sums(model, LfpropSum)
    params = {n: p for n, p in model.named_parameters()}

    xt = _as_f64(torch, x).requires_grad_(True)
    labels = _as_labels(torch, y)
    if reward == "binary_sigmoid_loss":
        labels = labels.to(torch.float64)

    composite = propagator_lxt.LFPEpsilonComposite(epsilon=eps)
    with warnings.catch_warnings():
        # lxt's Composite.remove() warns "not yet fully tested" on every exit
        warnings.simplefilter("ignore")
        with composite.context(model) as modified:
            out = modified(xt)
            r = reward_fn(out.detach(), labels).detach().to(torch.float64)
            (r_in,) = torch.autograd.grad((out,), (xt,), grad_outputs=(r,), retain_graph=False)

    feedback: dict[str, np.ndarray] = {}
    missing = []
    for n, p in params.items():
        fb = getattr(p, "feedback", None)
        if fb is None:
            if p.requires_grad:
                missing.append(n)
            continue
        feedback[n] = fb.detach().to(torch.float64).numpy().copy()
    if strict and missing:
        raise ValueError(
            f"lfprop gave no feedback to {missing}: no LFP rule for that layer type, or the model "
            "is a bare layer (wrap it in torch.nn.Sequential)"
        )
    return LfpropResult(
        feedback=feedback,
        input_reward=r_in.detach().numpy().copy(),
        logits=out.detach().numpy().copy(),
        reward=r.numpy().copy(),
    )


def lfprop_feedback(
    torch_model,
    x,
    y,
    reward: str = "softmax_loss",
    eps: float = 1e-6,
    **kwargs,
) -> dict[str, np.ndarray]:
    """Parameter feedback from lfprop 1.0.0 (``LFPEpsilonComposite`` + reward class), float64,
    keyed by the torch state-dict names. Summed over the batch (lfprop does not divide by B).
    See :func:`lfprop_propagate` for the keyword arguments."""
    return lfprop_propagate(torch_model, x, y, reward=reward, eps=eps, **kwargs).feedback


# --------------------------------------------------------------------------- zennit


def _zennit_composite(name: str, *, low, high, epsilon, stabilizer, gamma, canonizers):
    z = _zennit()
    comps = z.composites
    if name not in ZENNIT_COMPOSITES:
        raise ValueError(f"unknown composite {name!r}; known: {ZENNIT_COMPOSITES}")
    cls = getattr(comps, name)
    if name == "EpsilonGammaBox":
        if low is None or high is None:
            raise ValueError("EpsilonGammaBox needs the input bounds: pass low= and high=")
        return cls(
            low=low,
            high=high,
            epsilon=epsilon,
            gamma=gamma,
            stabilizer=stabilizer,
            canonizers=canonizers,
        )
    return cls(epsilon=epsilon, stabilizer=stabilizer, canonizers=canonizers)


def zennit_relevance(
    torch_model,
    x,
    target,
    composite: str,
    *,
    low=None,
    high=None,
    epsilon: float = 1e-6,
    stabilizer: float = 1e-6,
    gamma: float = 0.25,
    start: str = "one_hot",
    merge_batchnorm: bool = False,
) -> np.ndarray:
    """Input relevance from zennit 0.5.1's ``composite``, via ``zennit.attribution.Gradient``.

    ``target`` holds integer labels (B,) (or one int for the whole batch). What the relevance
    starts from at the output (the ``attr_output`` handed to the attributor, which zennit uses
    verbatim as ``grad_outputs`` of ``torch.autograd.grad``, and which every rule hook treats as
    the incoming relevance R_j):

    - ``start="one_hot"`` (zennit's own convention, ``torch.eye(C)[y]``): R_out = one-hot, NOT
      multiplied by the logit, so the input relevance sums to ~1 per sample (bias-free ReLU net).
    - ``start="logit"``: R_out = one-hot * logit, the classic LRP start (sums to ~z_y).

    ``low``/``high`` are ZBox's input bounds for EpsilonGammaBox (floats, or arrays broadcastable
    to the input, e.g. shape (1, C, 1, 1)); they reach zennit as float64 tensors (a plain float
    would be rounded to float32 by zennit). ``merge_batchnorm=True`` applies zennit's
    ``SequentialMergeBatchNorm`` canonizer (without it zennit passes relevance through BN
    unchanged). Other parameters are the composites' own (defaults = zennit's).
    """
    torch = _torch()
    z = _zennit()
    model = _f64_copy(torch_model)
    _replace_sums(model, _zennit_sum_class())
    xt = _as_f64(torch, x).requires_grad_(True)
    # bounds as float64 tensors, scalars too: zennit's ``expand`` turns a Python float into
    # ``torch.tensor(value)``, i.e. rounds it to float32 (torch's default dtype), which shows up
    # as a ~1e-8 relative error in ZBox's relevance
    low = None if low is None else _as_f64(torch, low)
    high = None if high is None else _as_f64(torch, high)
    canonizers = [z.canonizers.SequentialMergeBatchNorm()] if merge_batchnorm else None
    comp = _zennit_composite(
        composite,
        low=low,
        high=high,
        epsilon=epsilon,
        stabilizer=stabilizer,
        gamma=gamma,
        canonizers=canonizers,
    )
    tgt = torch.as_tensor(
        np.broadcast_to(np.asarray(target, dtype=np.int64), (xt.shape[0],)).copy()
    )

    def attr_output(output):
        onehot = torch.eye(output.shape[1], dtype=output.dtype)[tgt]
        if start == "one_hot":
            return onehot
        if start == "logit":
            return onehot * output.detach()
        raise ValueError(f"start must be 'one_hot' or 'logit', not {start!r}")

    with z.attribution.Gradient(model=model, composite=comp) as attributor:
        _, relevance = attributor(xt, attr_output)
    return relevance.detach().numpy().copy()


# --------------------------------------------------------------------------- torch autograd

_LOSSES = ("cross_entropy", "bce_with_logits", "mse")


def torch_gradients(
    torch_model, x, y, loss: str = "cross_entropy", reduction: str = "mean"
) -> dict[str, np.ndarray]:
    """dL/dtheta by torch autograd, float64, keyed by state-dict names.

    ``loss``: ``cross_entropy`` (integer labels), ``bce_with_logits`` (targets shaped like the
    output, or (B,) for a one-logit output) or ``mse``; ``reduction``: ``mean`` or ``sum``.
    """
    torch = _torch()
    if loss not in _LOSSES:
        raise ValueError(f"unknown loss {loss!r}; known: {_LOSSES}")
    if reduction not in ("mean", "sum"):
        raise ValueError("reduction must be 'mean' or 'sum'")
    model = _f64_copy(torch_model)
    xt = _as_f64(torch, x)
    out = model(xt)
    F = torch.nn.functional
    if loss == "cross_entropy":
        L = F.cross_entropy(out, _as_labels(torch, y).long(), reduction=reduction)
    else:
        t = _as_f64(torch, y).reshape(out.shape)
        if loss == "bce_with_logits":
            L = F.binary_cross_entropy_with_logits(out, t, reduction=reduction)
        else:
            L = F.mse_loss(out, t, reduction=reduction)
    names = [n for n, p in model.named_parameters() if p.requires_grad]
    ps = [p for n, p in model.named_parameters() if p.requires_grad]
    grads = torch.autograd.grad(L, ps, allow_unused=True)
    return {
        n: (np.zeros(tuple(p.shape)) if g is None else g.detach().numpy().copy())
        for n, p, g in zip(names, ps, grads, strict=True)
    }


__all__ = [
    "LFPROP_REWARDS",
    "ZENNIT_COMPOSITES",
    "LfpropResult",
    "lfprop_feedback",
    "lfprop_propagate",
    "lfprop_reward",
    "missing_peer",
    "peer_versions",
    "torch_gradients",
    "zennit_relevance",
]
