"""Numerical checks of the paper's claims about LFP (spec section 5), on random networks.

Each check builds a small random network from ``np.random.default_rng(seed)``, measures how far
the claim is from holding, and returns a :class:`Check` ``(name, error, tolerance, passed)``:

- conservation per layer: bias-free with eps -> 0, ``sum_i R_i = sum_j R_j`` through every layer;
  with biases, ``sum_i R_i = sum_j R_j (z_j - b_j) / stab(z_j)`` (any eps);
- implicit weight scaling: for piecewise-linear networks (Dense, Conv2d with stride 2 and padding,
  AvgPool, MaxPool, train-mode BatchNorm, Residual, Flatten; ReLU or LeakyReLU), eps -> 0 and the
  softmax_loss reward, ``F_theta = -|theta| * dL/dtheta`` with L the summed cross-entropy;
- secant slope: for Tanh, SiLU, ELU, Sigmoid and Step networks, LFP equals the |theta|-scaled
  backprop of ``-r/z`` in which every ``g'(a)`` is replaced by the secant ``g(a)/a``
  (Step: ``1[a>0]/a``; Sigmoid's secant is negative for a < 0), computed here from the layers'
  VJPs;
- update sparsity: zero weights, inputs that are zero over the batch and dead ReLU units give
  exactly zero feedback;
- descent: over N small LFP-SGD steps on a fixed batch the summed cross-entropy decreases
  monotonically, and one LFP-SGD step is gradient descent preconditioned by ``P = diag(|theta|)``:
  ``theta' = theta - lr * |theta| * dL/dtheta``.

``run_all(seed)`` runs them all; ``lfp-ref verify`` prints the table. Only the core is needed.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass

import numpy as np

from .. import engine, losses, optim, rewards
from ..kernels import CPU
from ..layers.activations import (
    ELU,
    Activation,
    LeakyReLU,
    ReLU,
    Sigmoid,
    SiLU,
    Step,
    Tanh,
)
from ..layers.base import LinearLayer, as_rng
from ..layers.containers import Residual, Sequential, observe
from ..layers.conv import Conv2d
from ..layers.dense import Dense
from ..layers.norm import BatchNorm1d, BatchNorm2d
from ..layers.pool import AvgPool2d, MaxPool2d
from ..layers.reshape import Flatten
from .crosscheck import format_table

# Tolerances, declared once.
# An identity that holds exactly in real arithmetic, evaluated in float64 along two different
# routes (e.g. LFP's r/z ratios vs backprop's products): a few units of rounding amplified by
# depth and by cancellation in sums; 1e-10 relative still catches any formula difference.
ROUNDING = 1e-10
# Properties that hold exactly in floating point too (0 * finite = 0; a monotone sequence).
EXACT = 0.0
# "eps -> 0": 1e-300 vanishes against every nonzero |z| (so z / stab(z) == 1 in float64) but keeps
# 0 / stab(0) at 0 (an all-zero pooling window, which receives zero reward).
EPS_TO_ZERO = 1e-300


@dataclass
class Check:
    """One verified claim: the measured ``error``, its ``tolerance``, and ``detail`` (what was
    measured, in words)."""

    name: str
    error: float
    tolerance: float
    passed: bool
    detail: str = ""

    def __iter__(self):
        # unpacks as (name, error, tolerance, passed)
        return iter((self.name, self.error, self.tolerance, self.passed))


def _check(name, error, tolerance, detail="", condition=True):
    error = float(error)
    return Check(name, error, tolerance, bool(condition and error <= tolerance), detail)


def _relative(actual, expected):
    """``max|actual - expected| / max|expected|`` (judged against the array's scale)."""
    actual, expected = np.asarray(actual), np.asarray(expected)
    scale = float(np.abs(expected).max(initial=0.0))
    diff = float(np.abs(actual - expected).max(initial=0.0))
    if scale == 0.0:
        return 0.0 if diff == 0.0 else float("inf")
    return diff / scale


def _random_affine(model, rng):
    """Move 1-D parameters (biases, BatchNorm's gamma/beta) off their init, with both signs, so
    that |theta| scaling and the bias paths are exercised."""
    for _, param in model.named_parameters():
        if param.ndim == 1:
            param[...] = rng.uniform(0.5, 1.5, param.shape) * rng.choice([-1.0, 1.0], param.shape)
    return model


def _batch(rng, shape, classes, batch_size=6):
    return rng.normal(size=(batch_size, *shape)), rng.integers(0, classes, size=batch_size)


# --------------------------------------------------------------------------- conservation


def _conservation_net(rng, bias):
    return Sequential(
        Conv2d(2, 4, 3, padding=1, bias=bias, rng=rng), ReLU(),
        AvgPool2d(2),
        Conv2d(4, 6, 3, stride=2, padding=1, bias=bias, rng=rng), LeakyReLU(0.1),
        MaxPool2d(2),
        Flatten(),
        Dense(6 * 2 * 2, 8, bias=bias, rng=rng), ReLU(),
        Dense(8, 3, bias=bias, rng=rng),
    )  # fmt: skip


def conservation(seed=0, bias=False):
    """Per layer and per sample, the reward that leaves a layer downwards equals what arrived,
    up to what the biases absorb (spec section 5).

    For every layer with reward ``R_out`` at its output and ``R_in`` at its input:
    ``sum R_in = sum R_out * (z - b) / stab(z)`` for Dense/Conv2d/AvgPool2d (b = 0 without bias),
    ``sum R_in = sum R_out`` for activations, MaxPool and Flatten. Bias-free, eps -> 0 makes the
    factor 1; with bias the identity holds for any eps (the default 1e-6 is used).

    error: ``max over layers and samples |sum R_in - rhs| / sum |R_out|`` (the scale a rounding
    error in those sums has).
    """
    rng = as_rng(seed)
    model = _conservation_net(rng, bias)
    if bias:
        _random_affine(model, rng)
    x, y = _batch(rng, (2, 16, 16), 3)
    eps = 1e-6 if bias else EPS_TO_ZERO
    reward = rewards.softmax_loss(model.forward(x), y)
    rule_for = engine.rule_resolver(eps=eps)
    error = 0.0
    for layer in reversed(model.layers):
        reward_in, _ = layer.feedback(reward, rule_for)
        expected = reward
        if isinstance(layer, LinearLayer):
            z = layer.cached_output
            b = getattr(layer, "bias", None)
            b = 0.0 if b is None else b.reshape(-1, *([1] * (z.ndim - 2)))
            expected = reward * (z - b) / CPU.elementwise.stabilize(z, eps, np.empty_like(z))
        axes = tuple(range(1, reward.ndim))
        lhs = reward_in.sum(axis=tuple(range(1, reward_in.ndim)))
        scale = np.abs(reward).sum(axis=axes).max()
        error = max(error, np.abs(lhs - expected.sum(axis=axes)).max() / scale)
        reward = reward_in
    which = "with bias: sum R_in = sum R_out (z - b)/stab(z)" if bias else "bias-free, eps -> 0"
    return _check(
        f"conservation per layer, {which}",
        error,
        ROUNDING,
        f"{len(model.layers)} layers (Conv2d, AvgPool, MaxPool, Dense, ReLU, LeakyReLU, Flatten)",
    )


# ---------------------------------------------------------------- implicit weight scaling


def _piecewise_linear_net(rng, activation):
    def act():
        return LeakyReLU(0.1) if activation == "leakyrelu" else ReLU()

    block = Sequential(
        Conv2d(4, 4, 3, padding=1, bias=False, rng=rng), BatchNorm2d(4), act(),
        Conv2d(4, 4, 3, padding=1, rng=rng),
    )  # fmt: skip
    # no bias right before a train-mode BatchNorm: its true gradient is exactly 0, so the relative
    # comparison would judge rounding noise
    return Sequential(
        Conv2d(2, 4, 3, stride=2, padding=1, bias=False, rng=rng), BatchNorm2d(4), act(),
        Residual(block), act(),
        MaxPool2d(2),
        Conv2d(4, 5, 3, padding=1, rng=rng), act(),
        AvgPool2d(2),
        Flatten(),
        Dense(5 * 2 * 2, 6, bias=False, rng=rng), BatchNorm1d(6), act(),
        Dense(6, 3, rng=rng),
    )  # fmt: skip


def implicit_weight_scaling(seed=0, activation="relu"):
    """For a piecewise-linear network with eps -> 0 and the softmax_loss reward,
    ``F_theta = -|theta| * dL/dtheta`` for every parameter, with L the summed cross-entropy, and
    the reward at the input is ``-x * dL/dx``.

    error: the largest ``max|F + |theta| g| / max||theta| g|`` over the parameters and the input.
    """
    if activation not in ("relu", "leakyrelu"):
        raise ValueError(f"activation must be 'relu' or 'leakyrelu', got {activation!r}")
    rng = as_rng(seed)
    model = _random_affine(_piecewise_linear_net(rng, activation), rng)
    x, y = _batch(rng, (2, 16, 16), 3)
    fb = engine.feedback(model, x, y, reward="softmax_loss", eps=EPS_TO_ZERO)
    grads = engine.gradients(model, x, y, loss="cross_entropy", reduction="sum")
    errors = [
        _relative(fb.params[name], -np.abs(param) * grads.params[name])
        for name, param in model.named_parameters()
    ]
    errors.append(_relative(fb.input_reward, -x * grads.input_grad))
    name = "LeakyReLU" if activation == "leakyrelu" else "ReLU"
    return _check(
        f"implicit weight scaling F = -|theta| dL/dtheta, {name} net",
        max(errors),
        ROUNDING,
        f"{len(errors) - 1} parameters + input; Dense, Conv2d (stride 2, padding), AvgPool, "
        "MaxPool, train-mode BatchNorm1d/2d, Residual, Flatten",
    )


# --------------------------------------------------------------------------- secant slope

SECANT_ACTIVATIONS = {"tanh": Tanh, "silu": SiLU, "elu": ELU, "sigmoid": Sigmoid, "step": Step}


def secant_backprop(model, seed_grad):
    """Backprop through a flat :class:`Sequential` that has run forward, with every activation's
    derivative ``g'(a)`` replaced by its secant slope ``g(a) / a`` (``1[a>0] / a`` for Step).

    Parameters
    ----------
    model : Sequential of LinearLayer, Activation and Flatten layers, after ``model.forward(x)``.
    seed_grad : the "gradient" at the output (for the secant identity, ``-r / z``).

    Returns
    -------
    dict: parameter name -> the modified gradient, shaped like the parameter.
    """
    grad, params = seed_grad, {}
    for name, layer in reversed(model.children()):
        if isinstance(layer, LinearLayer):
            grad, own = layer.vjp(grad)
            params.update({f"{name}.{k}": v for k, v in own.items()})
        elif isinstance(layer, Activation):
            pre, post = layer.saved()
            grad = grad * (post / pre)  # the secant slope g(a)/a in place of g'(a)
        elif isinstance(layer, Flatten):
            grad, _ = layer.backward(grad)
        else:
            raise TypeError(f"secant_backprop: no rule for {layer!r} (flat Sequential only)")
    return params


def secant_slope(seed=0, activation="tanh"):
    """For a network with a non-piecewise-linear activation, eps -> 0: LFP feedback equals
    ``-|theta| * G`` where G is the backprop of ``-r / z`` (r the softmax_loss reward, z the
    logits) with every ``g'(a)`` replaced by ``g(a) / a`` (:func:`secant_backprop`).

    error: the largest ``max|F - (-|theta| G)| / max||theta| G|`` over the parameters. The
    detail also gives how far F is from the true-gradient scaling ``-|theta| dL/dtheta``, which
    does NOT hold here (so the check is not the piecewise-linear identity in disguise).
    """
    if activation not in SECANT_ACTIVATIONS:
        raise ValueError(f"activation must be one of {sorted(SECANT_ACTIVATIONS)}")
    act = SECANT_ACTIVATIONS[activation]
    rng = as_rng(seed)
    model = Sequential(
        Conv2d(2, 3, 3, padding=1, rng=rng), act(),
        Flatten(),
        Dense(3 * 4 * 4, 8, rng=rng), act(),
        Dense(8, 3, rng=rng),
    )  # fmt: skip
    x, y = _batch(rng, (2, 4, 4), 3)
    fb = engine.feedback(model, x, y, reward="softmax_loss", eps=EPS_TO_ZERO)
    # the forward pass of feedback() is cached in the layers; secant_backprop reuses it
    modified = secant_backprop(model, -fb.reward / fb.logits)
    errors = [
        _relative(fb.params[name], -np.abs(param) * modified[name])
        for name, param in model.named_parameters()
    ]
    grads = engine.gradients(model, x, y, loss="cross_entropy", reduction="sum")
    gap = max(
        _relative(fb.params[name], -np.abs(param) * grads.params[name])
        for name, param in model.named_parameters()
    )
    return _check(
        f"secant slope: LFP = |theta|-scaled backprop with g(a)/a, {act.__name__} net",
        max(errors),
        ROUNDING,
        f"{len(errors)} parameters; differs from -|theta| dL/dtheta by {gap:.2g} (relative)",
    )


# --------------------------------------------------------------------------- update sparsity


def update_sparsity(seed=0):
    """Zero weights and silent inputs (zero for every sample of the batch: a zero input feature,
    a dead ReLU unit) receive exactly zero feedback, ``F_w_ij = sign(w_ij) sum_B R_{i<-j}`` with
    every message through them 0 (spec section 2); so do the incoming weights and the bias of a
    dead unit, since no reward reaches it.

    error: the largest |F| over those entries (must be exactly 0). The check also requires that
    such entries exist and that most other entries are nonzero, so that zeros are not everywhere
    (some others are zero too, legitimately: a connection whose input is zero on exactly the
    samples where its unit is inactive carries no message either).
    """
    rng = as_rng(seed)
    model = Sequential(Dense(6, 12, rng=rng), ReLU(), Dense(12, 12, rng=rng), ReLU(),
                       Dense(12, 3, rng=rng))  # fmt: skip
    x, y = _batch(rng, (6,), 3, batch_size=8)
    x[:, [0, 3]] = 0.0  # silent input features
    model[0].bias[[2, 7]] = -100.0  # dead units: these ReLUs output 0 for every sample
    for _, param in model.named_parameters():
        param[rng.random(param.shape) < 0.2] = 0.0
    fb = engine.feedback(model, x, y, reward="softmax_loss")
    dense = [(i, layer) for i, layer in enumerate(model.layers) if isinstance(layer, Dense)]
    # silent inputs of each Dense: zero over the whole batch, (I,)
    silent = [np.all(layer.cached_input == 0, axis=0) for _, layer in dense]
    expected_zero, others = [], []
    for k, (index, layer) in enumerate(dense):
        # a unit whose ReLU output is silent for the next Dense receives no reward
        dead = silent[k + 1] if k + 1 < len(dense) else np.zeros(layer.out_features, bool)
        masks = {
            "weight": (layer.weight == 0) | silent[k][None, :] | dead[:, None],
            "bias": (layer.bias == 0) | dead,
        }
        for name, mask in masks.items():
            feedback = fb.params[f"{index}.{name}"]
            expected_zero.append(feedback[mask])
            others.append(feedback[~mask])
    expected_zero, others = np.concatenate(expected_zero), np.concatenate(others)
    error = float(np.abs(expected_zero).max(initial=0.0))
    nonzero = float(np.mean(others != 0))
    return _check(
        "update sparsity: zero weights, silent inputs, dead units get F = 0 exactly",
        error,
        EXACT,
        f"{expected_zero.size} entries exactly 0; {nonzero:.0%} of the other {others.size} nonzero",
        condition=expected_zero.size > 0 and nonzero > 0.5,
    )


# --------------------------------------------------------------------------- descent


def _descent_net(rng):
    return _random_affine(
        Sequential(
            Conv2d(2, 4, 3, padding=1, rng=rng), ReLU(), MaxPool2d(2),
            Conv2d(4, 6, 3, stride=2, padding=1, rng=rng), ReLU(), AvgPool2d(2),
            Flatten(),
            Dense(6, 8, rng=rng), ReLU(),
            Dense(8, 3, rng=rng),
        ),
        rng,
    )  # fmt: skip


def _summed_ce(model, x, y):
    return losses.cross_entropy(model.forward(x), y, reduction="sum")[0]


def descent_monotone(seed=0, steps=20, lr=1e-2):
    """Over ``steps`` LFP-SGD steps (plain SGD, softmax_loss reward, eps -> 0) on one fixed batch
    of a ReLU CNN, the summed cross-entropy never increases.

    error: the largest step-to-step increase of L, relative to L before the first step (0 when
    it decreased at every step).
    """
    rng = as_rng(seed)
    model = _descent_net(rng)
    x, y = _batch(rng, (2, 8, 8), 3, batch_size=16)
    opt = optim.SGD(model, lr=lr)
    history = [_summed_ce(model, x, y)]
    for _ in range(steps):
        engine.lfp_step(model, opt, x, y, reward="softmax_loss", eps=EPS_TO_ZERO)
        history.append(_summed_ce(model, x, y))
    increase = max(b - a for a, b in zip(history, history[1:]))
    return _check(
        f"descent: summed CE decreases monotonically over {steps} LFP-SGD steps",
        max(increase, 0.0) / history[0],
        EXACT,
        f"L {history[0]:.4g} -> {history[-1]:.4g} (lr {lr:g}, batch 16)",
        condition=history[-1] < history[0],
    )


def descent_preconditioned(seed=0, lr=1e-2):
    """One LFP-SGD step (plain SGD, eps -> 0) equals gradient descent on the summed cross-entropy
    preconditioned by ``P = diag(|theta|)``: ``theta' = theta - lr * |theta| * dL/dtheta``.

    error: the largest ``max|theta'_LFP - theta'_GD| / max|theta'_GD - theta|`` over the
    parameters (relative to the size of the update, not of theta).
    """
    rng = as_rng(seed)
    model = _descent_net(rng)
    x, y = _batch(rng, (2, 8, 8), 3, batch_size=16)
    before = {name: param.copy() for name, param in model.named_parameters()}
    grads = engine.gradients(copy.deepcopy(model), x, y, loss="cross_entropy", reduction="sum")
    engine.lfp_step(model, optim.SGD(model, lr=lr), x, y, reward="softmax_loss", eps=EPS_TO_ZERO)
    errors = []
    for name, param in model.named_parameters():
        update = -lr * np.abs(before[name]) * grads.params[name]
        errors.append(_relative(param - before[name], update))
    return _check(
        "descent: one LFP-SGD step = GD preconditioned by P = diag(|theta|)",
        max(errors),
        ROUNDING,
        f"{len(errors)} parameters, lr {lr:g}",
    )


# --------------------------------------------------------------------------- spiking networks
#
# The SNN-LFP recursion (docs/numerical-contract.md section 6) against a literal oracle: the
# network unrolled in time, ``for t: for each layer`` forward and ``for t reversed: for each layer
# from the top`` backwards, each linear map worked connection by connection (the same logic as
# the test suite's tests/oracle/snn_net.py, written out here because tests/ is not installed).

#: the spike rate every LIF layer of the random networks is scaled towards
SNN_TARGET_RATE = 0.35
#: the weight scales tried for that (powers of two, and 1.5 times them)
SNN_SCALES = tuple(sorted(m * 2.0**k for m in (1.0, 1.5) for k in range(-4, 6)))
#: the random spiking networks: input shape, T, B, layers ("dense", out) / ("conv", out, k,
#: stride, padding) as LIF currents, ("maxpool", k), ("flatten",)
SNN_NETS = {
    "dense": ((10,), 6, 4, (("dense", 12), ("dense", 5))),
    "conv": (
        (2, 8, 8), 5, 3,
        (("conv", 3, 3, 1, 1), ("maxpool", 2), ("flatten",), ("dense", 4)),
    ),
}  # fmt: skip


def _snn_net(name, rng):
    """A random float64 SpikingSequential ``name`` of SNN_NETS, its input and labels, each LIF's
    parameters scaled so that its spike rate is near SNN_TARGET_RATE (biases of both signs, so
    that membranes go negative and the bias and normaliser shares are exercised)."""
    from ..snn import LIF, SpikingSequential

    shape, steps, batch, items = SNN_NETS[name]
    layers, size = [], shape
    for item in items:
        if item[0] == "dense":
            current = Dense(int(np.prod(size)), item[1], rng=rng, dtype=np.float64)
            size = (item[1],)
        elif item[0] == "conv":
            _, out, kernel, stride, padding = item
            current = Conv2d(size[0], out, kernel, stride, padding, rng=rng, dtype=np.float64)
            size = (out, *current.output_size(*size[1:]))
        if item[0] in ("dense", "conv"):
            current.bias[...] = rng.uniform(-0.5, 1.0, current.bias.shape)
            layers.append(LIF(current))
        elif item[0] == "maxpool":
            layers.append(MaxPool2d(item[1]))
            size = (size[0], size[1] // item[1], size[2] // item[1])
        else:
            layers.append(Flatten())
            size = (int(np.prod(size)),)
    net = SpikingSequential(*layers, timesteps=steps)
    x = rng.uniform(0, 1, (batch, *shape))
    for k, (_, lif) in enumerate(net.lif_layers()):
        weight, bias = lif.current.weight.copy(), lif.current.bias.copy()
        misses = []
        for scale in SNN_SCALES:
            lif.current.weight[...], lif.current.bias[...] = weight * scale, bias * scale
            net(x)
            misses.append(abs(float(net.lif_layers()[k][1].cached_spikes.mean()) - SNN_TARGET_RATE))
        scale = SNN_SCALES[int(np.argmin(misses))]
        lif.current.weight[...], lif.current.bias[...] = weight * scale, bias * scale
    y = rng.integers(0, net[-1].current.out_features, batch)
    return net, x, y


def _snn_connections(layer, in_shape):
    """``(i, j, k), out_shape``: input ``i`` (flat in one sample) feeds output ``j`` through weight
    ``k`` (flat), by explicit loops over the connections of the LIF's Dense or Conv2d."""
    weight = layer.current.weight
    if isinstance(layer.current, Dense):
        n_out, n_in = weight.shape
        pairs = [(i, j, j * n_in + i) for j in range(n_out) for i in range(n_in)]
        return tuple(np.array(v) for v in zip(*pairs)), (n_out,)
    out_ch, in_ch, kh, kw = weight.shape
    (sh, sw), (ph, pw) = layer.current.stride, layer.current.padding
    _, height, width = in_shape
    ho, wo = (height + 2 * ph - kh) // sh + 1, (width + 2 * pw - kw) // sw + 1
    triples = []
    for o, oh, ow, c, a, e in np.ndindex(out_ch, ho, wo, in_ch, kh, kw):
        ih, iw = oh * sh - ph + a, ow * sw - pw + e
        if 0 <= ih < height and 0 <= iw < width:
            triples.append(((c * height + ih) * width + iw, (o * ho + oh) * wo + ow,
                            ((o * in_ch + c) * kh + a) * kw + e))  # fmt: skip
    return tuple(np.array(v) for v in zip(*triples)), (out_ch, ho, wo)


def _snn_pool_argmax(a, size):
    """Per window of ``a`` (B, C, H, W): the flat index ``ih * W + iw`` of its FIRST maximum in
    row-major order, (B, C, H//size, W//size)."""
    batch, channels, height, width = a.shape
    argmax = np.empty((batch, channels, height // size, width // size), np.int64)
    for b, c, oh, ow in np.ndindex(*argmax.shape):
        best = None
        for dh, dw in np.ndindex(size, size):
            ih, iw = oh * size + dh, ow * size + dw
            if best is None or a[b, c, ih, iw] > a[b, c, best // width, best % width]:
                best = ih * width + iw
        argmax[b, c, oh, ow] = best
    return argmax


def snn_oracle(net, x, reward, eps):
    """The literal SNN-LFP of ``net`` (a float64 SpikingSequential of LIF, MaxPool2d, Flatten) on
    the static input ``x`` (B, ...) with ``reward`` (T, B, C) at the output spikes.

    Forward, per step and layer (``U_{-1} = 0``, ``H(u) = 1 iff u > 0``)::

        I_t = P(x_t) connection by connection,  reset_t = H(U_{t-1} - thr)
        U_t = beta U_{t-1} + I_t - reset_t thr,  S_t = H(U_t - thr)

    LFP, for t = T-1 down to 0, layers from the top (``M_{T-1} = 0``)::

        A_t = r_t + M_t,  D_t = |U_{t-1}| + |U_t + reset_t thr - U_{t-1}|,  rho_t = A_t / stab(D_t)
        M_{t-1} = beta U_{t-1} rho_t;  R_{i<-j} = x_i w_ij rho_j
        F_w += sign(w) sum_B R_{i<-j},  F_b += sign(b) sum_B b rho_j,  R_x_t = sum_j R_{i<-j}

    Returns ``(spikes (T, B, C), {parameter name: F}, input reward (B, ...))``.
    """
    from ..snn import LIF

    steps, batch = net.timesteps, x.shape[0]
    layers = net.children()
    inputs = {name: [] for name, _ in layers}  # per layer: its input at every step
    membranes = {name: [] for name, layer in layers if isinstance(layer, LIF)}
    outputs = []
    for t in range(steps):
        a = np.array(x, np.float64)
        for name, layer in layers:
            inputs[name].append(a)
            if isinstance(layer, LIF):
                (ci, cj, ck), out_shape = _snn_connections(layer, a.shape[1:])
                w, b = layer.current.weight.ravel(), layer.current.bias
                current = np.zeros((batch, int(np.prod(out_shape))))
                flat = a.reshape(batch, -1)
                for n in range(batch):
                    np.add.at(current[n], cj, flat[n, ci] * w[ck])
                current = current.reshape(batch, out_shape[0], -1) + b[:, None]
                previous = membranes[name][-1] if t else np.zeros(current.shape)
                reset = (previous - layer.threshold > 0) * layer.threshold
                u = layer.beta * previous + current - reset
                membranes[name].append(u)
                a = (u - layer.threshold > 0).astype(np.float64).reshape(batch, *out_shape)
            elif isinstance(layer, MaxPool2d):
                argmax = _snn_pool_argmax(a, layer.kernel_size[0])
                a = np.take_along_axis(
                    a.reshape(*a.shape[:2], -1), argmax.reshape(*argmax.shape[:2], -1), axis=2
                ).reshape(argmax.shape)
            else:
                a = a.reshape(batch, -1)
        outputs.append(a)
    feedback, handed, input_reward = {}, {}, np.zeros(x.shape)
    for t in reversed(range(steps)):
        r = np.array(reward[t], np.float64)
        for name, layer in reversed(layers):
            x_t = inputs[name][t]
            if isinstance(layer, LIF):
                u = membranes[name][t]
                previous = membranes[name][t - 1] if t else np.zeros(u.shape)
                total = r.reshape(u.shape) + handed.get(name, 0.0)
                reset = (previous - layer.threshold > 0) * layer.threshold
                d = np.abs(previous) + np.abs(u + reset - previous)
                rho = total / (d + eps * np.where(d >= 0, 1.0, -1.0))
                handed[name] = layer.beta * previous * rho
                (ci, cj, ck), _ = _snn_connections(layer, x_t.shape[1:])
                w, b = layer.current.weight.ravel(), layer.current.bias
                rho_flat = rho.reshape(batch, -1)
                messages = x_t.reshape(batch, -1)[:, ci] * w[ck] * rho_flat[:, cj]
                r_in = np.zeros((batch, x_t[0].size))
                for n in range(batch):
                    np.add.at(r_in[n], ci, messages[n])
                f_w = np.zeros(w.size)
                np.add.at(f_w, ck, np.sign(w[ck]) * messages.sum(axis=0))
                f_b = np.sign(b) * (b[None, :, None] * rho).sum(axis=(0, 2))
                f_w = f_w.reshape(layer.current.weight.shape)
                for key, value in ((f"{name}.current.weight", f_w), (f"{name}.current.bias", f_b)):
                    feedback[key] = feedback.get(key, 0.0) + value
                r = r_in.reshape(x_t.shape)
            elif isinstance(layer, MaxPool2d):
                argmax = _snn_pool_argmax(x_t, layer.kernel_size[0])
                routed = np.zeros(x_t.shape)
                width = x_t.shape[3]
                for b_, c, oh, ow in np.ndindex(*argmax.shape):
                    index = argmax[b_, c, oh, ow]
                    routed[b_, c, index // width, index % width] += r[b_, c, oh, ow]
                r = routed
            else:
                r = r.reshape(x_t.shape)
        input_reward += r
    return np.stack(outputs), feedback, input_reward


def snn_recursion(seed=0, eps=1e-6):
    """LFP through spiking networks (lfp_ref.snn: LIF layers, time folded into the batch, the
    recursion of docs/numerical-contract.md section 6 in the LIF kernels) equals the literal
    oracle :func:`snn_oracle` unrolled in time, on random float64 networks (a dense one, and a
    Conv2d + MaxPool2d + Dense one) with the rate-coded reward: every parameter's feedback and
    the reward at the input.

    error: the largest ``max|ours - oracle| / max|oracle|``; the forward spikes must agree
    exactly and every LIF layer must spike at a rate in (0.05, 0.95).
    """
    rng = as_rng(seed)
    errors, rates, same = [], [], True
    for name in SNN_NETS:
        net, x, y = _snn_net(name, rng)
        fb = engine.feedback(net, x, y, reward="snn_rate_coded", eps=eps)
        rates += [float(layer.cached_spikes.mean()) for _, layer in net.lif_layers()]
        spikes, feedback, input_reward = snn_oracle(net, x, fb.reward, eps)
        same = same and np.array_equal(spikes, fb.logits)
        errors += [_relative(fb.params[key], value) for key, value in feedback.items()]
        errors.append(_relative(fb.input_reward, input_reward))
    return _check(
        "SNN-LFP recursion = the literal oracle unrolled in time",
        max(errors),
        ROUNDING,
        f"{len(errors)} quantities of {len(SNN_NETS)} nets (Dense; Conv2d, MaxPool2d); spike "
        f"rates {min(rates):.2f}-{max(rates):.2f}; spikes {'equal' if same else 'DIFFER'}",
        condition=same and 0.05 < min(rates) and max(rates) < 0.95,
    )


def snn_shares(seed=0, eps=1e-6):
    """Where the reward goes in each LIF layer of the random spiking networks of
    :func:`snn_recursion` (:meth:`lfp_ref.snn.LIF.lfp_accounts`, per time step, summed here over
    the steps): to the layer below, to the bias, and NOT passed on (the normaliser's absolute
    values, the stabiliser). Measured, not asserted: the rule is not conservative.

    Returns ``(check, rows)``. The check is that the per-step accounts balance,
    ``arriving + from_next = to_below + bias + to_previous + normaliser + stabiliser`` up to
    rounding (error: ``max |other| / max |arriving + from_next|`` over layers and steps), and
    that what a step hands to step t-1 is what step t-1 receives. ``rows``: one dict per LIF
    layer with the sums over the steps and each as a fraction of the arriving reward.
    """
    rng = as_rng(seed)
    rows, errors, lost = [], [], []
    for name in SNN_NETS:
        net, x, y = _snn_net(name, rng)
        arriving = {}  # LIF name -> (reward arriving, reward leaving) of the feedback pass

        def record(prefix, container, child_name, child, kind, value_in, out, seen=arriving):
            if kind == "feedback" and hasattr(child, "lfp_accounts"):
                seen[child_name] = (value_in, out[0])

        with observe(net, record):
            engine.feedback(net, x, y, reward="snn_rate_coded", eps=eps)
        for layer_name, layer in net.lif_layers():
            came, left = arriving[layer_name]
            acc = layer.lfp_accounts(came, eps=eps, reward_leaving=left)
            inflow = acc["arriving"] + acc["from_next"]
            errors.append(float(np.abs(acc["other"]).max() / np.abs(inflow).max()))
            errors.append(_relative(acc["from_next"][:-1], acc["to_previous"][1:]))
            total = float(acc["arriving"].sum())
            sums = {k: float(v.sum()) for k, v in acc.items()}
            step_lost = np.abs(acc["normaliser"] + acc["stabiliser"]) / np.abs(inflow)
            lost.append(float(np.max(step_lost)))
            rows.append(
                {
                    "net": name,
                    "layer": layer_name,
                    "steps": net.timesteps,
                    **sums,
                    **{f"{k}_share": sums[k] / total for k in
                       ("to_below", "bias", "normaliser", "stabiliser")},
                    "max_step_lost_share": lost[-1],
                }
            )  # fmt: skip
    check = _check(
        "SNN-LFP per-step accounts balance (not conservative: shares measured)",
        max(errors),
        ROUNDING,
        f"{len(rows)} LIF layers; not passed on (normaliser + eps) up to {max(lost):.0%} of a "
        "step's incoming reward",
    )
    return check, rows


def snn_checks(seed=0):
    """The spiking-network checks (``lfp-ref verify --snn``): the recursion against the literal
    oracle and the balance of the per-step accounts."""
    return [snn_recursion(seed), snn_shares(seed)[0]]


def shares_table(rows, style="plain"):
    """:func:`snn_shares`' rows as a table: the reward arriving at each LIF layer (summed over
    the steps and the batch) and where it went, as fractions of it."""
    header = ("net", "LIF", "T", "sum r arriving", "to below", "bias", "normaliser (lost)",
              "stabiliser (lost)", "rounding", "max lost in a step")  # fmt: skip
    body = [
        (row["net"], row["layer"], str(row["steps"]), f"{row['arriving']:+.4e}",
         f"{row['to_below_share']:.1%}", f"{row['bias_share']:.1%}",
         f"{row['normaliser_share']:.1%}", f"{row['stabiliser_share']:.2e}",
         f"{row['other']:+.1e}", f"{row['max_step_lost_share']:.1%}")
        for row in rows
    ]  # fmt: skip
    note = (
        "Shares are of the reward arriving from above, summed over the steps (the transfers "
        "between steps cancel); signed sums, so a share can exceed 100% or be negative. "
        "'lost': not passed on (LIF.lfp_accounts)."
    )
    return format_table(header, body, style, note)


# --------------------------------------------------------------------------- all of them


def run_all(seed=0):
    """Every check, in table order, for one seed."""
    checks = [conservation(seed, bias=False), conservation(seed, bias=True)]
    checks += [implicit_weight_scaling(seed, a) for a in ("relu", "leakyrelu")]
    checks += [secant_slope(seed, a) for a in SECANT_ACTIVATIONS]
    checks += [update_sparsity(seed), descent_monotone(seed), descent_preconditioned(seed)]
    return checks


def to_table(checks, style="plain"):
    """The checks as an aligned plain-text (``"plain"``) or Markdown table, with a summary."""
    header = ("check", "measured error", "tolerance", "result", "detail")
    body = [
        (c.name, f"{c.error:.2e}", f"{c.tolerance:.0e}" if c.tolerance else "0 (exact)",
         "pass" if c.passed else "FAIL", c.detail)
        for c in checks
    ]  # fmt: skip
    failed = sum(not c.passed for c in checks)
    summary = f"{len(checks)} checks, {failed} failed: {'FAIL' if failed else 'PASS'}"
    return format_table(header, body, style, summary)


__all__ = [
    "EPS_TO_ZERO",
    "SNN_NETS",
    "EXACT",
    "ROUNDING",
    "SECANT_ACTIVATIONS",
    "Check",
    "conservation",
    "descent_monotone",
    "descent_preconditioned",
    "implicit_weight_scaling",
    "run_all",
    "secant_backprop",
    "secant_slope",
    "shares_table",
    "snn_checks",
    "snn_oracle",
    "snn_recursion",
    "snn_shares",
    "to_table",
    "update_sparsity",
]
