"""Systematic cross-checks of lfp_ref against the public PyTorch packages, in float64.

For a model (an lfp_ref model or a ``torch.nn`` module), an input batch and labels,
:func:`crosscheck` compares

(a) lfp_ref's LFP-epsilon feedback (softmax_loss reward, ``eps = 1e-6``) with lfprop 1.0.0's
    ``LFPEpsilonComposite`` (sums over the batch), for every parameter and for the reward at the
    input; and lfp_ref's ``batch_reduction="mean"`` with the older zennit-based lfprop semantics
    (the batch mean). lfprop 1.0.0 does not ship that older propagator (its ``propagation``
    package holds only the LXT-based ``propagator_lxt`` and the SNN, regression and ViT variants),
    so the "mean" rows compare against lfprop 1.0.0's summed feedback divided by B, which is what
    the old propagator's batch reduction amounted to; its other differences (BN running statistics
    updated twice per step, reward copied rather than split at a residual Sum; spec section 7) are
    not reproduced;
(b) lfp_ref's LRP relevances (``lfp_ref.attribution.attribute``, started from the label's logit)
    with zennit 0.5.1 for each composite; models with BatchNorm are compared in eval mode with the
    BatchNorm merged into the layer before it on both sides (zennit's SequentialMergeBatchNorm,
    ``lfp_ref.composites.merge_batchnorm``), as spec section 5 says;
(c) lfp_ref's backprop gradients (mean cross-entropy) with torch autograd.

Every row reports the largest absolute difference and the largest difference relative to the
peer's scale, ``max|ours - peer| / max|peer|`` (entries that cancel to ~0 are judged against the
array's scale, as tests/tolerances.py does), and passes when that is at most :data:`RTOL`.

    report = crosscheck_model("lenet", seed=0)
    print(report.to_table())
    report.passed
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field

import numpy as np

from .. import engine, zoo
from ..composites import merge_batchnorm
from ..explain.attribution import attribute
from ..layers.base import NormalizationLayer, WeightedLayer, as_rng, check_dtype
from ..layers.containers import Sequential
from ..layers.dropout import Dropout
from ..rules import DEFAULT_EPS
from . import interop

# Tolerances, declared once: the largest accepted max|ours - peer| / max|peer|.
# float64 on both sides: the two implementations evaluate the same formulas with differently
# ordered sums (BLAS vs torch's kernels), so they differ by a few units of rounding (~1e-16)
# amplified by the divisions by stab(z) and by the depth of the network; 1e-10 leaves four orders
# of magnitude for that and still catches any formula difference.
RTOL = {np.dtype(np.float64): 1e-10}
# float32 lfp_ref against the float64 peers: float32 rounding (~6e-8 per operation) accumulated
# over sums of O(100) terms and amplified by the divisions by stab(z) when |z| is small.
RTOL[np.dtype(np.float32)] = 2e-4

#: zennit 0.5.1 composites compared in check (b)
COMPOSITES = ("EpsilonPlus", "EpsilonAlpha2Beta1", "EpsilonPlusFlat", "EpsilonAlpha2Beta1Flat",
              "EpsilonGammaBox")  # fmt: skip

#: the check names, in table order
CHECKS = ("lfprop", "lfprop-mean", "zennit", "torch")

_PEER_LABEL = {
    "lfprop": "lfprop 1.0.0 LFPEpsilonComposite (sum)",
    "lfprop-mean": "lfprop 1.0.0 / B (old zennit-based lfprop, mean)",
    "zennit": "zennit 0.5.1",
    "torch": "torch autograd",
}


# --------------------------------------------------------------------------- the report


@dataclass
class Row:
    """One comparison. ``passed`` is None when it could not be run (``note`` says why)."""

    model: str
    check: str
    quantity: str
    max_abs: float | None
    max_rel: float | None
    tolerance: float
    passed: bool | None
    note: str = ""

    @property
    def result(self):
        if self.passed is None:
            return "n/a"
        return "pass" if self.passed else "FAIL"


@dataclass
class Report:
    """The rows of one or more cross-checks."""

    rows: list = field(default_factory=list)

    @property
    def compared(self):
        return [r for r in self.rows if r.passed is not None]

    @property
    def failures(self):
        return [r for r in self.rows if r.passed is False]

    @property
    def unavailable(self):
        return [r for r in self.rows if r.passed is None]

    @property
    def passed(self):
        """True when at least one comparison ran and none failed (rows that could not run, "n/a",
        neither pass nor fail; see :attr:`unavailable`)."""
        return bool(self.compared) and not self.failures

    def __add__(self, other):
        return Report(self.rows + other.rows)

    def to_table(self, style="markdown"):
        """The rows as a Markdown table (``style="markdown"``) or aligned plain text
        (``"plain"``), with a summary line."""
        header = ("model", "check", "quantity", "max abs diff", "max rel diff", "tolerance",
                  "result")  # fmt: skip
        body = [
            (
                r.model,
                _PEER_LABEL.get(r.check, r.check),
                r.quantity,
                "-" if r.max_abs is None else f"{r.max_abs:.2e}",
                "-" if r.max_rel is None else f"{r.max_rel:.2e}",
                f"{r.tolerance:.0e}",
                r.result + (f" ({r.note})" if r.note else ""),
            )
            for r in self.rows
        ]
        summary = (
            f"{len(self.compared)} compared, {len(self.failures)} failed, "
            f"{len(self.unavailable)} not available: {'PASS' if self.passed else 'FAIL'}"
        )
        return format_table(header, body, style, summary)


def format_table(header, rows, style="markdown", summary=""):
    """A Markdown (``style="markdown"``) or aligned plain-text (``"plain"``) table of string
    cells, followed by a blank line and ``summary`` when given."""
    if style == "markdown":
        lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
        lines += ["| " + " | ".join(cells) + " |" for cells in rows]
    elif style == "plain":
        widths = [max(len(cells[i]) for cells in [header, *rows]) for i in range(len(header))]
        lines = ["  ".join(c.ljust(w) for c, w in zip(cells, widths)).rstrip()
                 for cells in [header, *rows]]  # fmt: skip
        lines.insert(1, "  ".join("-" * w for w in widths))
    else:
        raise ValueError(f"style must be 'markdown' or 'plain', got {style!r}")
    return "\n".join([*lines, "", summary] if summary else lines)


def compare(ours, peer):
    """``(max|ours - peer|, max|ours - peer| / max|peer|)``, in float64; the relative difference
    is 0 where both are all zero and inf where only the peer is."""
    ours = np.asarray(ours, dtype=np.float64)
    peer = np.asarray(peer, dtype=np.float64)
    if ours.shape != peer.shape:
        raise ValueError(f"shapes differ: lfp_ref {ours.shape}, peer {peer.shape}")
    max_abs = float(np.abs(ours - peer).max(initial=0.0))
    scale = float(np.abs(peer).max(initial=0.0))
    if scale == 0.0:
        return max_abs, 0.0 if max_abs == 0.0 else float("inf")
    return max_abs, max_abs / scale


def _row(model, check, quantity, ours, peer, tolerance, scale_of=None):
    """A row comparing ``ours`` with ``peer``; ``scale_of`` (an array) replaces the peer as the
    scale of the relative difference, for quantities that are 0 in exact arithmetic."""
    max_abs, max_rel = compare(ours, peer)
    note = ""
    if scale_of is not None:
        scale = float(np.abs(np.asarray(scale_of, dtype=np.float64)).max(initial=0.0))
        max_rel = 0.0 if max_abs == 0.0 else (max_abs / scale if scale else float("inf"))
        note = "cancels by construction (bias before train-mode BN); relative to the weight's scale"
    return Row(model, check, quantity, max_abs, max_rel, tolerance, max_rel <= tolerance, note)


def zero_by_construction(model):
    """``{bias name: weight name}`` for the biases of weighted layers (Dense, Conv2d) directly
    followed (in a Sequential) by a normalization layer (BatchNorm) in training mode.

    The batch mean removes such a bias: its gradient is exactly 0 in exact arithmetic, and its
    LFP feedback ``|b| sum_B x / stab(x) * J^T rho_BN`` only O(eps), because ``J^T rho_BN``
    sums to 0 over the batch. Both sides then compute a sum of O(1) terms that cancel, whose
    rounding error is O(1e-16) of the terms, not of the result (measured: up to 8e-10 relative to
    the result for the feedback). Those rows are judged against the scale of the same layer's
    weight row (``scale_of`` of :func:`_row`), the size of the terms that cancel.
    """
    pairs = {}
    for prefix, layer in model.named_layers():
        if not isinstance(layer, Sequential):
            continue
        children = layer.children()
        for (name, first), (_, second) in zip(children, children[1:]):
            if (
                isinstance(first, WeightedLayer)
                and first.bias is not None
                and isinstance(second, NormalizationLayer)
                and (second.training or second.running_mean is None)
            ):
                base = f"{prefix}.{name}" if prefix else name
                pairs[f"{base}.bias"] = f"{base}.weight"
    return pairs


# --------------------------------------------------------------------------- the checks


def _has(model, types):
    return any(isinstance(layer, types) for _, layer in model.named_layers())


def _check_comparable(model):
    for name, layer in model.named_layers():
        if isinstance(layer, Dropout) and layer.training and layer.p > 0:
            raise ValueError(
                f"crosscheck: Dropout {name!r} is in training mode; torch and lfp_ref draw "
                "different masks, so nothing would match. Call model.eval() (or set p=0)."
            )


def _lfprop_rows(label, lfp_model, torch_model, x, y, eps, tolerance, checks):
    from . import peers

    peer = peers.lfprop_propagate(torch_model, x, y, reward="softmax_loss", eps=eps)
    zero = zero_by_construction(lfp_model)
    rows = []
    if "lfprop" in checks:
        ours = engine.feedback(copy.deepcopy(lfp_model), x, y, reward="softmax_loss", eps=eps)
        for name, value in ours.params.items():
            scale = peer.feedback[zero[name]] if name in zero else None
            rows.append(_row(label, "lfprop", name, value, peer.feedback[name], tolerance, scale))
        rows.append(
            _row(label, "lfprop", "input reward", ours.input_reward, peer.input_reward, tolerance)
        )
    if "lfprop-mean" in checks:
        mean = engine.feedback(
            copy.deepcopy(lfp_model), x, y, reward="softmax_loss", eps=eps, batch_reduction="mean"
        )
        batch = len(x)
        for name, value in mean.params.items():
            scale = peer.feedback[zero[name]] / batch if name in zero else None
            expected = peer.feedback[name] / batch
            rows.append(_row(label, "lfprop-mean", name, value, expected, tolerance, scale))
    return rows


def _zennit_rows(label, lfp_model, torch_model, x, y, tolerance, composites):
    from . import peers

    has_bn = _has(lfp_model, NormalizationLayer)
    # attribution is an eval-time computation: both sides in eval mode, BN merged (spec 5)
    ours_model = copy.deepcopy(lfp_model).eval()
    if has_bn:
        # zennit 0.5.1's merge leaves BN's eps behind (forward off by 1/sqrt(1 + eps)): replicate
        ours_model = merge_batchnorm(ours_model, keep_bn_eps=True)
    peer_model = copy.deepcopy(torch_model).eval()
    bounds = {"low": float(x.min()), "high": float(x.max())}
    rows = []
    for name in composites:
        kwargs = bounds if name == "EpsilonGammaBox" else {}
        peer = peers.zennit_relevance(
            peer_model, x, y, name, start="logit", merge_batchnorm=has_bn, **kwargs
        )
        ours = attribute(copy.deepcopy(ours_model), x, y, composite=name, start="logit", **kwargs)
        rows.append(_row(label, "zennit", f"{name} input relevance", ours, peer, tolerance))
    return rows


def _torch_rows(label, lfp_model, torch_model, x, y, tolerance):
    from . import peers

    peer = peers.torch_gradients(torch_model, x, y, loss="cross_entropy", reduction="mean")
    ours = engine.gradients(copy.deepcopy(lfp_model), x, y, loss="cross_entropy", reduction="mean")
    zero = zero_by_construction(lfp_model)
    return [
        _row(label, "torch", n, v, peer[n], tolerance, peer[zero[n]] if n in zero else None)
        for n, v in ours.params.items()
    ]


def crosscheck(
    model,
    x,
    y,
    *,
    name="model",
    dtype=np.float64,
    eps=DEFAULT_EPS,
    torch_model=None,
    checks=CHECKS,
    composites=COMPOSITES,
):
    """Compare lfp_ref with lfprop 1.0.0, zennit 0.5.1 and torch autograd on one model and batch.

    Parameters
    ----------
    model : lfp_ref model or torch.nn.Module
        A torch module is converted with :func:`lfp_ref.interop.from_torch`. Neither the model
        nor its BatchNorm running statistics are changed (every pass runs on a copy).
    x : ndarray, the input batch. y : ndarray of int, the labels (B,).
    name : the model's label in the table.
    dtype : float64 (the verification default) or float32 for lfp_ref's side; the peers always
        compute in float64. The tolerance is ``RTOL[dtype]``.
    eps : the LFP-epsilon stabiliser, both sides.
    torch_model : the torch twin the peers run on; default ``lfp_ref.interop.to_torch(model)``.
        Give one to check a conversion (or a model) of your own.
    checks : which of :data:`CHECKS` to run: "lfprop" (a), "lfprop-mean" (a, batch mean),
        "zennit" (b), "torch" (c).
    composites : the zennit composites for check (b).

    Returns
    -------
    Report
        One row per parameter for (a) and (c), one per composite for (b).
    """
    unknown = sorted(set(checks) - set(CHECKS))
    if unknown:
        raise ValueError(f"unknown checks {unknown}; choose from {CHECKS}")
    torch = interop.import_torch()
    dtype = check_dtype(dtype)
    tolerance = RTOL[dtype]
    if isinstance(model, torch.nn.Module):
        if torch_model is None:
            torch_model = model
        model = interop.from_torch(model)
    lfp_model = copy.deepcopy(model).to(dtype)
    _check_comparable(lfp_model)
    if torch_model is None:
        torch_model = interop.to_torch(model)
    x = np.ascontiguousarray(x, dtype=dtype)
    y = np.asarray(y)
    rows = []
    if "lfprop" in checks or "lfprop-mean" in checks:
        rows += _lfprop_rows(name, lfp_model, torch_model, x, y, eps, tolerance, checks)
    if "zennit" in checks:
        rows += _zennit_rows(name, lfp_model, torch_model, x, y, tolerance, composites)
    if "torch" in checks:
        rows += _torch_rows(name, lfp_model, torch_model, x, y, tolerance)
    return Report(rows)


# --------------------------------------------------------------------------- the models


@dataclass(frozen=True)
class ModelSpec:
    """A cross-check model: a model of :mod:`lfp_ref.zoo` with its options, one sample's shape,
    the classes and a one-line description. ``spec.build(rng)`` builds it in float64, drawing
    the weights from ``rng`` (a seed or a Generator)."""

    model: str
    options: dict
    input_shape: tuple
    num_classes: int
    description: str

    def build(self, rng):
        return zoo.build(
            self.model,
            num_classes=self.num_classes,
            input_shape=self.input_shape,
            seed=as_rng(rng),
            dtype=np.float64,
            **self.options,
        )


# the BatchNorm models: no bias right before a train-mode BatchNorm (the batch mean removes it,
# so its true gradient and feedback are exactly 0 and both sides would return rounding noise);
# BatchNorm's gamma/beta and running statistics drawn off their 1/0 init (randomize_batchnorm)
_BATCHNORM = {"bias_before_norm": False, "randomize_batchnorm": True}

#: the cross-check models by name: models of the catalog :mod:`lfp_ref.zoo` (small, so that
#: every check runs in about a second)
MODELS = {
    "mlp": ModelSpec("mlp", {"widths": (16, 12)}, (10,), 5, "Dense 10-16-12-5, ReLU"),
    "lenet": ModelSpec(
        "lenet-tiny",
        {"mode": "eval", "dropout_rng": "shared"},
        (1, 16, 16),
        10,
        "LeNet: Conv5-ReLU-MaxPool x2, Dense, Dropout(0.5); eval mode",
    ),
    "vgg-small": ModelSpec(
        "vgg-tiny",
        {**_BATCHNORM, "mode": "train"},
        (3, 8, 8),
        6,
        "VGG-style CNN, Conv-BatchNorm-ReLU, MaxPool, AvgPool, Dense-BatchNorm1d; train mode",
    ),
    "resnet-small": ModelSpec(
        "resnet-tiny",
        {**_BATCHNORM, "mode": "eval"},
        (3, 8, 8),
        6,
        "residual CNN: stem, identity block, stride-2 block with 1x1 conv shortcut, BatchNorm "
        "(eval mode, random running statistics), AvgPool",
    ),
}


def build_model(name, seed=0, batch_size=8):
    """``(model, x, y)`` for a cross-check model of :data:`MODELS`: float64 weights, input and
    labels drawn from ``np.random.default_rng(seed)`` (weights first)."""
    if name not in MODELS:
        raise ValueError(f"unknown cross-check model {name!r}; choose from {', '.join(MODELS)}")
    if int(batch_size) < 2:
        raise ValueError(f"batch_size must be at least 2 (train-mode BatchNorm), got {batch_size}")
    spec = MODELS[name]
    rng = as_rng(seed)
    model = spec.build(rng)
    x = rng.normal(size=(int(batch_size), *spec.input_shape))
    y = rng.integers(0, spec.num_classes, size=int(batch_size))
    return model, x, y


def crosscheck_model(name, seed=0, batch_size=8, dtype=np.float64, **kwargs):
    """:func:`crosscheck` on the named model of :data:`MODELS` (``"all"``: every one)."""
    names = list(MODELS) if name == "all" else [name]
    report = Report()
    for each in names:
        model, x, y = build_model(each, seed=seed, batch_size=batch_size)
        report += crosscheck(model, x, y, name=each, dtype=dtype, **kwargs)
    return report


__all__ = [
    "CHECKS",
    "COMPOSITES",
    "MODELS",
    "RTOL",
    "ModelSpec",
    "Report",
    "Row",
    "build_model",
    "compare",
    "crosscheck",
    "crosscheck_model",
    "format_table",
    "zero_by_construction",
]
