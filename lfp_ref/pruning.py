"""Weight sparsity and magnitude pruning: the Gini coefficient of ``|w|``, per-layer quantiles of
``|w|``, and pruning the smallest weights of a model, over the whole model or layer by layer.

::

    from lfp_ref import pruning
    pruning.layer_gini(model)                          # {"1.weight": 0.41, ...}
    pruned = pruning.magnitude_prune(model, 0.9)       # a copy, 90 % of the weights zeroed
    pruned = pruning.magnitude_prune(model, 0.9, scope="layer")

What is pruned. The prunable weights are the ``weight`` of every :class:`lfp_ref.WeightedLayer`
(Dense and Conv2d, the LIF layers' current included), each listed once under its first name
(a shared layer is one tensor), in the order of ``model.named_parameters()``. Biases,
BatchNorm's gamma and beta and the running statistics are never pruned (the usual convention:
they are few and each one shifts a whole unit or channel).

How many. With ``n`` prunable weights (the model's, ``scope="global"``, or each layer's,
``scope="layer"``) exactly ``k = floor(rate * n + 1/2)`` (``rate * n`` rounded half up) of
them are set to zero: those of smallest ``|w|``. Ties are broken by position, deterministically:
among equal ``|w|`` the weight that comes first (layers in ``named_parameters`` order, entries
in C order) is pruned first. Weights that are already zero count among the smallest, so after
pruning at least ``k`` are zero.

The caller's model is not changed unless ``inplace=True``: :func:`magnitude_prune` returns a
pruned deep copy (parameters and buffers copied, on the model's device).
"""

from __future__ import annotations

import copy
import math
import numbers

import numpy as np

from .kernels import backend_of
from .layers.base import WeightedLayer

SCOPES = ("global", "layer")


def _host(array):
    """A float64 NumPy copy of a parameter (CPU or device)."""
    return np.array(backend_of(array).to_numpy(array), dtype=np.float64)


def prunable_weights(model):
    """``{dotted name: weight array}`` of the weights that pruning acts on: the ``weight`` of
    every Dense / Conv2d (:class:`lfp_ref.WeightedLayer`) of ``model``, each once, in
    ``named_parameters`` order. The arrays are the live parameters (not copies).

    Raises
    ------
    ValueError
        ``model`` has no Dense or Conv2d weight."""
    weighted = {}
    for prefix, layer in model.named_layers():
        if isinstance(layer, WeightedLayer) and getattr(layer, "weight", None) is not None:
            weighted[f"{prefix}.weight" if prefix else "weight"] = layer.weight
    if not weighted:
        raise ValueError(
            f"{type(model).__name__} has no prunable weights: magnitude pruning acts on the "
            "weight of Dense and Conv2d layers (lfp_ref.WeightedLayer), and there is none"
        )
    # named_parameters' order (torch's), which is also the tie-breaking order
    order = [name for name, _ in model.named_parameters() if name in weighted]
    return {name: weighted[name] for name in order}


def gini(values):
    """The Gini coefficient of ``|values|``: 0 when all magnitudes are equal, ``(n - 1) / n``
    (-> 1) when one of n is nonzero; the usual measure of how concentrated (sparse) a weight
    vector is (Hurley and Rickard 2009).

    With ``a`` the magnitudes sorted ascending, ``a_(1) <= ... <= a_(n)``::

        G = 2 * sum_i i * a_(i) / (n * sum_i a_(i)) - (n + 1) / n

    which equals the mean absolute difference over twice the mean,
    ``sum_ij |a_i - a_j| / (2 n^2 mean(a))``. Computed in float64; all zeros give 0.

    Parameters
    ----------
    values : array_like
        Any shape (flattened); the signs are dropped.

    Raises
    ------
    ValueError
        Empty, or not finite.
    """
    a = np.abs(np.asarray(values, dtype=np.float64)).ravel()
    if a.size == 0:
        raise ValueError("gini needs at least one value, got an empty array")
    if not np.all(np.isfinite(a)):
        raise ValueError("gini needs finite values, got NaN or infinity")
    total = a.sum()
    if total == 0:
        return 0.0
    a.sort()
    n = a.size
    ranks = np.arange(1, n + 1, dtype=np.float64)
    return float(2.0 * np.dot(ranks, a) / (n * total) - (n + 1) / n)


def layer_gini(model):
    """``{weight name: gini(|w|)}`` for every prunable weight (:func:`prunable_weights`)."""
    return {name: gini(_host(w)) for name, w in prunable_weights(model).items()}


def model_gini(model):
    """The Gini coefficient of all prunable weights of ``model`` together."""
    return gini(np.concatenate([_host(w).ravel() for w in prunable_weights(model).values()]))


def weight_quantiles(model, qs=(0.0, 0.1, 0.25, 0.5, 0.75, 0.9, 0.99, 1.0)):
    """``{weight name: quantiles of |w|}`` (float64 arrays of ``len(qs)``, NumPy's linear
    interpolation) for every prunable weight, and ``"all"`` for all of them together.

    Raises
    ------
    ValueError
        A quantile outside [0, 1], or no quantiles.
    """
    qs = np.asarray(qs, dtype=np.float64).ravel()
    if qs.size == 0 or not np.all((qs >= 0) & (qs <= 1)):
        raise ValueError(f"quantiles must be numbers in [0, 1], got {qs.tolist()}")
    weights = {name: np.abs(_host(w)).ravel() for name, w in prunable_weights(model).items()}
    out = {name: np.quantile(a, qs) for name, a in weights.items()}
    out["all"] = np.quantile(np.concatenate(list(weights.values())), qs)
    return out


def _check_rate(rate):
    if (
        isinstance(rate, (bool, np.bool_))
        or not isinstance(rate, numbers.Real)
        or not math.isfinite(rate)
        or not 0 <= rate < 1
    ):
        raise ValueError(
            f"the pruning rate must be a fraction 0 <= rate < 1 of the weights to zero, got "
            f"{rate!r}"
        )
    return float(rate)


def _check_scope(scope):
    if scope not in SCOPES:
        raise ValueError(
            f"scope must be 'global' (the smallest |w| of the whole model) or 'layer' (the "
            f"smallest of each layer), got {scope!r}"
        )
    return scope


def pruned_count(n, rate):
    """How many of ``n`` weights a pruning rate zeroes: ``floor(rate * n + 1/2)``."""
    return int(math.floor(_check_rate(rate) * n + 0.5))


def _smallest(magnitudes, k):
    """A boolean mask of the ``k`` smallest entries of the 1-D ``magnitudes``, ties to the
    earlier index (a stable sort)."""
    mask = np.zeros(magnitudes.size, dtype=bool)
    mask[np.argsort(magnitudes, kind="stable")[:k]] = True
    return mask


def pruning_masks(model, rate, scope="global"):
    """``{weight name: boolean mask, True where the weight is kept}`` of magnitude pruning at
    ``rate`` (see the module docstring: ``floor(rate * n + 1/2)`` smallest ``|w|`` removed,
    of the whole model or of each layer, ties to the earlier position).

    Parameters
    ----------
    model : lfp_ref layer
    rate : float
        The fraction of weights to zero, ``0 <= rate < 1``.
    scope : {"global", "layer"}
        ``"global"``: one threshold over all prunable weights (layers with many small weights
        lose more); ``"layer"``: the same fraction of every layer.

    Raises
    ------
    ValueError
        A rate outside [0, 1), an unknown scope, a model without prunable weights.
    """
    rate, scope = _check_rate(rate), _check_scope(scope)
    magnitudes = {name: np.abs(_host(w)) for name, w in prunable_weights(model).items()}
    if scope == "layer":
        return {
            name: ~_smallest(a.ravel(), pruned_count(a.size, rate)).reshape(a.shape)
            for name, a in magnitudes.items()
        }
    flat = np.concatenate([a.ravel() for a in magnitudes.values()])  # named_parameters order
    kept = ~_smallest(flat, pruned_count(flat.size, rate))
    masks, start = {}, 0
    for name, a in magnitudes.items():
        masks[name] = kept[start : start + a.size].reshape(a.shape)
        start += a.size
    return masks


def apply_masks(model, masks, inplace=False):
    """Zero the weights where ``masks`` (``{weight name: boolean array, True = kept}``) is
    False; returns the pruned model: a deep copy of ``model``, or ``model`` itself when
    ``inplace``.

    Raises
    ------
    ValueError
        A mask names no prunable weight or has another shape than its weight.
    """
    weights = prunable_weights(model)
    for name, mask in masks.items():
        if name not in weights:
            raise ValueError(f"mask {name!r} names no prunable weight; they are {list(weights)}")
        if np.shape(mask) != tuple(weights[name].shape):
            raise ValueError(
                f"mask {name!r} has shape {np.shape(mask)}, its weight {tuple(weights[name].shape)}"
            )
    target = model if inplace else copy.deepcopy(model)
    state = target.state_dict()  # host copies
    for name, mask in masks.items():
        state[name] = np.where(np.asarray(mask, dtype=bool), state[name], 0).astype(
            state[name].dtype
        )
    return target.load_state_dict(state)  # written back in place, on the model's device


def magnitude_prune(model, rate, scope="global", inplace=False):
    """``model`` with the fraction ``rate`` of its Dense / Conv2d weights of smallest ``|w|``
    set to zero (biases and BatchNorm parameters untouched): :func:`pruning_masks` then
    :func:`apply_masks`.

    Parameters
    ----------
    model : lfp_ref layer
    rate : float
        ``0 <= rate < 1``; exactly ``floor(rate * n + 1/2)`` weights are zeroed (of all ``n``
        prunable weights with ``scope="global"``, of each layer's with ``"layer"``).
    scope : {"global", "layer"}
    inplace : bool
        False (default): a pruned deep copy is returned and ``model`` is unchanged.

    Returns
    -------
    The pruned model (in ``model``'s mode, dtype and device).
    """
    return apply_masks(model, pruning_masks(model, rate, scope), inplace=inplace)


def zero_fraction(model):
    """The fraction of exactly-zero entries among the prunable weights."""
    weights = [_host(w) for w in prunable_weights(model).values()]
    return sum(int(np.count_nonzero(w == 0)) for w in weights) / sum(w.size for w in weights)


__all__ = [
    "SCOPES",
    "apply_masks",
    "gini",
    "layer_gini",
    "magnitude_prune",
    "model_gini",
    "prunable_weights",
    "pruned_count",
    "pruning_masks",
    "weight_quantiles",
    "zero_fraction",
]
