"""Global-norm gradient clipping, ``torch.nn.utils.clip_grad_norm_`` with the L2 norm.

- :func:`clip_grad_norm` scales the gradient arrays in place;
- :func:`clip_coefficient` is its factor alone, from squared norms the caller already has: the
  engine's training steps fold it into ``Optimizer.step(grads, scale=...)`` instead of rewriting
  the gradients.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Mapping

import numpy as np

from ..kernels import backend_of
from .optimizers import _SUPPORTED_DTYPES, _is_array, _writeable

__all__ = ["clip_grad_norm", "clip_coefficient"]


def clip_grad_norm(grads, max_norm: float) -> float:
    r"""Scale all gradients in place so that their global L2 norm is at most about ``max_norm``.

    ``torch.nn.utils.clip_grad_norm_`` with ``norm_type=2``::

        total = || (||g_1||_2, ..., ||g_n||_2) ||_2          (in float64)
        factor = min(1, max_norm / (total + 1e-6))
        g_k = g_k * factor                                    for every k

    Parameters
    ----------
    grads : Mapping[str, ndarray] or iterable of ndarray or ndarray
        Floating-point, writeable gradient arrays; modified in place.
    max_norm : float
        Positive, finite.

    Returns
    -------
    float
        The total norm *before* clipping.

    Raises
    ------
    ValueError
        If the total norm is NaN or inf (torch's ``error_if_nonfinite=True``; torch's default
        would silently scale every gradient by NaN).
    """
    if isinstance(grads, Mapping):
        named = list(grads.items())
    elif _is_array(grads):
        named = [("grads", grads)]
    else:
        named = [(f"grads[{i}]", g) for i, g in enumerate(grads)]
    _check_max_norm(max_norm)
    for name, grad in named:
        if not _is_array(grad) or grad.dtype not in _SUPPORTED_DTYPES:
            raise ValueError(
                f"clip_grad_norm needs float32/float64 ndarrays, {name} is "
                f"{getattr(grad, 'dtype', type(grad).__name__)}"
            )
        if not _writeable(grad):
            raise ValueError(f"clip_grad_norm scales in place, but {name} is read-only")
    if not named:
        return 0.0
    squared = {name: backend_of(g).elementwise.sum_of_squares(g) for name, g in named}
    factor, total = clip_coefficient(squared, max_norm)
    if factor < 1.0:  # torch multiplies by 1.0 too, which is the identity
        for _, grad in named:
            grad *= factor
    return total


def clip_coefficient(squared_norms: Mapping[str, float], max_norm: float) -> tuple[float, float]:
    """``(factor, total)`` of :func:`clip_grad_norm` from each gradient's squared L2 norm
    (name -> float): ``total = ||(||g_1||, ..., ||g_n||)||`` and ``factor = min(1, max_norm /
    (total + 1e-6))``. Raises ValueError when the total is NaN or inf."""
    _check_max_norm(max_norm)
    if not isinstance(squared_norms, Mapping):
        raise TypeError(
            "clip_coefficient needs a dict name -> float sum of squares of each gradient, got "
            f"{type(squared_norms).__name__}"
        )
    norms = np.array([math.sqrt(value) for value in squared_norms.values()])  # float64
    total = float(np.linalg.norm(norms))
    if not math.isfinite(total):
        bad = [name for name, n in zip(squared_norms, norms, strict=True) if not math.isfinite(n)]
        raise ValueError(
            f"the total gradient norm is {total}; non-finite in {bad[:5] or 'the sum'} "
            "(the feedback overflowed or diverged upstream)"
        )
    return min(max_norm / (total + 1e-6), 1.0), total


def _check_max_norm(max_norm) -> None:
    if isinstance(max_norm, bool) or not isinstance(max_norm, numbers.Real):
        raise ValueError(f"max_norm must be a positive float, got {max_norm!r}")
    if not (max_norm > 0 and math.isfinite(max_norm)):
        raise ValueError(f"max_norm must be a positive finite float, got {float(max_norm)}")
