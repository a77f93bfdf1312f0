"""Losses for the gradient-descent baseline. Each returns ``(loss, dL/dlogits)``."""

import numpy as np

from ._checks import check_labels, check_logits_2d
from .kernels import backend_of

REDUCTIONS = ("mean", "sum")


def _reduce(per_sample, count, reduction):
    total = per_sample.sum(dtype=np.float64)
    return float(total / count) if reduction == "mean" else float(total)


def cross_entropy(logits, y, reduction="mean"):
    """``L = -sum_b log softmax(z_b)[y_b]`` (divided by B for "mean");
    ``dL/dz = softmax(z) - Y`` (divided by B)."""
    check_logits_2d(logits, "cross_entropy")
    y = check_labels(y, logits.shape[1], logits.shape[0])
    bk = backend_of(logits)  # scipy.special on the CPU, its CuPy twin on a GPU
    y = bk.asarray(y)
    rows = bk.xp.arange(len(y))
    loss = _reduce(-bk.special.log_softmax(logits, axis=1)[rows, y], len(y), reduction)
    grad = bk.special.softmax(logits, axis=1)
    grad[rows, y] -= 1
    if reduction == "mean":
        grad /= len(y)
    return loss, grad


def binary_cross_entropy_with_logits(logits, y, reduction="mean"):
    """One logit per sample ((B,) or (B, 1)), y in {0, 1}:
    ``L = -[y log s(z) + (1 - y) log(1 - s(z))]``, ``dL/dz = s(z) - y``."""
    z = logits.reshape(-1)
    bk = backend_of(z)
    xp = bk.xp
    target = bk.asarray(check_labels(y, 2, z.shape[0]), dtype=logits.dtype)
    # log(1 + exp(-|z|)) + max(z, 0) - z y, the stable form
    per = xp.logaddexp(0, -xp.abs(z)) + xp.maximum(z, 0) - z * target
    loss = _reduce(per, len(z), reduction)
    grad = bk.special.expit(z) - target
    if reduction == "mean":
        grad /= len(z)
    return loss, grad.reshape(logits.shape).astype(logits.dtype)


def mse(logits, y, reduction="mean"):
    """``L = sum (z - t)^2`` (divided by the number of elements for "mean", as torch); ``t`` is
    ``y`` itself when it has the logits' shape, else the one-hot encoding of labels ``y``."""
    bk = backend_of(logits)
    if not hasattr(y, "dtype"):
        y = np.asarray(y)
    if y.shape == logits.shape and y.dtype.kind == "f":
        target = bk.asarray(y, dtype=logits.dtype)
    else:
        check_logits_2d(logits, "mse with labels")
        labels = bk.asarray(check_labels(y, logits.shape[1], logits.shape[0]))
        target = bk.xp.zeros_like(logits)
        target[bk.xp.arange(len(labels)), labels] = 1
    diff = logits - target
    loss = _reduce(diff * diff, diff.size, reduction)
    grad = 2 * diff
    if reduction == "mean":
        grad /= diff.size
    return loss, grad


def snn_ce_rate(logits, y, reduction="mean"):
    """snntorch's ``functional.ce_rate_loss`` (0.9.4, no population code, no class weights):
    the cross-entropy of each step's spikes taken as logits, averaged over the T steps. Spikes
    S (T, B, C) (a SpikingSequential's output), labels y (B,)::

        L     = (1/T) sum_t sum_b -log softmax(S_t[b])[y_b]    (divided by B for "mean")
        dL/dS = (softmax(S_t) - Y) / T                          (divided by B for "mean")

    snntorch accumulates the loss in a float32 tensor whatever the spikes' dtype; here the sum
    is float64 and the gradient is in the spikes' dtype.
    """
    if getattr(logits, "ndim", 0) != 3:
        raise ValueError(
            f"snn_ce_rate expects spikes of shape (T, B, C) (a SpikingSequential's output), "
            f"got {getattr(logits, 'shape', None)}"
        )
    steps, batch, classes = logits.shape
    y = check_labels(y, classes, batch)
    bk = backend_of(logits)  # scipy.special on the CPU, its CuPy twin on a GPU
    y = bk.asarray(y)
    rows = bk.xp.arange(batch)
    per_step = -bk.special.log_softmax(logits, axis=2)[:, rows, y]  # (T, B)
    loss = _reduce(per_step, batch, reduction) / steps
    grad = bk.special.softmax(logits, axis=2)  # (T, B, C)
    grad[:, rows, y] -= 1
    grad /= steps * batch if reduction == "mean" else steps
    return loss, grad


LOSSES = {
    "cross_entropy": cross_entropy,
    "binary_cross_entropy_with_logits": binary_cross_entropy_with_logits,
    "mse": mse,
    "snn_ce_rate": snn_ce_rate,
}


def get(loss):
    if callable(loss):
        return loss
    try:
        return LOSSES[loss]
    except KeyError:
        raise ValueError(f"unknown loss {loss!r}; known: {', '.join(LOSSES)}") from None
