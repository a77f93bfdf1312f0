"""Losses for the gradient-descent baseline. Each returns ``(loss, dL/dlogits)``."""

import numpy as np
from scipy.special import expit, log_softmax, softmax

from ._checks import check_labels, check_logits_2d

REDUCTIONS = ("mean", "sum")


def _reduce(per_sample, count, reduction):
    total = per_sample.sum(dtype=np.float64)
    return float(total / count) if reduction == "mean" else float(total)


def cross_entropy(logits, y, reduction="mean"):
    """``L = -sum_b log softmax(z_b)[y_b]`` (divided by B for "mean");
    ``dL/dz = softmax(z) - Y`` (divided by B)."""
    check_logits_2d(logits, "cross_entropy")
    y = check_labels(y, logits.shape[1], logits.shape[0])
    rows = np.arange(len(y))
    loss = _reduce(-log_softmax(logits, axis=1)[rows, y], len(y), reduction)
    grad = softmax(logits, axis=1)
    grad[rows, y] -= 1
    if reduction == "mean":
        grad /= len(y)
    return loss, grad


def binary_cross_entropy_with_logits(logits, y, reduction="mean"):
    """One logit per sample ((B,) or (B, 1)), y in {0, 1}:
    ``L = -[y log s(z) + (1 - y) log(1 - s(z))]``, ``dL/dz = s(z) - y``."""
    z = logits.reshape(-1)
    target = check_labels(y, 2, z.shape[0]).astype(logits.dtype)
    # log(1 + exp(-|z|)) + max(z, 0) - z y, the stable form
    per = np.logaddexp(0, -np.abs(z)) + np.maximum(z, 0) - z * target
    loss = _reduce(per, len(z), reduction)
    grad = expit(z) - target
    if reduction == "mean":
        grad /= len(z)
    return loss, grad.reshape(logits.shape).astype(logits.dtype)


def mse(logits, y, reduction="mean"):
    """``L = sum (z - t)^2`` (divided by the number of elements for "mean", as torch); ``t`` is
    ``y`` itself when it has the logits' shape, else the one-hot encoding of labels ``y``."""
    y = np.asarray(y)
    if y.shape == logits.shape and y.dtype.kind == "f":
        target = y.astype(logits.dtype)
    else:
        check_logits_2d(logits, "mse with labels")
        labels = check_labels(y, logits.shape[1], logits.shape[0])
        target = np.zeros_like(logits)
        target[np.arange(len(labels)), labels] = 1
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
    rows = np.arange(batch)
    per_step = -log_softmax(logits, axis=2)[:, rows, y]  # (T, B)
    loss = _reduce(per_step, batch, reduction) / steps
    grad = softmax(logits, axis=2)  # (T, B, C)
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
