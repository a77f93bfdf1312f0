"""The CUDA twins of ``kernels/cpu/norm.py``: BatchNorm's per-channel statistics, the fused
normalise/affine pass, the fused VJPs and the running-statistics update (see the CPU module for
the layout (B, C, S) and the precision: per-channel sums in float64, elementwise outputs in the
dtype of ``out``).

Reductions run one thread per channel over its (B, S) entries in the CPU twin's order (b, then
s), so the statistics equal the CPU's bit for bit where the arithmetic is the same; elementwise
passes run one thread per entry. Same names, signatures and argument checks (the CPU module's
check helper) as the CPU module.
"""

import numpy as np
from numba import cuda

from .. import checks
from ..cpu.norm import _check
from ._launch import kernel


@kernel
def _channel_stats(x, mean, var_sum):
    # mean_c = sum x / n;  var_sum_c = sum (x - mean_c)^2, both in float64
    nb, nc, ns = x.shape
    n = nb * ns
    for c in range(cuda.grid(1), nc, cuda.gridsize(1)):
        total = np.float64(0.0)
        for b in range(nb):
            for s in range(ns):
                total += x[b, c, s]
        m = total / n
        squares = np.float64(0.0)
        for b in range(nb):
            for s in range(ns):
                d = x[b, c, s] - m
                squares += d * d
        mean[c] = m
        var_sum[c] = squares


@kernel
def _normalize_affine(x, mean, inv_std, scale, shift, xhat, out):
    # xhat = (x - mean_c) * inv_std_c;  out = xhat * scale_c + shift_c
    nb, nc, ns = x.shape
    for k in range(cuda.grid(1), x.size, cuda.gridsize(1)):
        row = k // ns
        s = k - row * ns
        b = row // nc
        c = row - b * nc
        normalized = (x[b, c, s] - mean[c]) * inv_std[c]
        xhat[b, c, s] = normalized
        out[b, c, s] = normalized * scale[c] + shift[c]


@kernel
def _channel_vjp_sums(v, x, mean, inv_std, sum_v, sum_v_xhat):
    # sum_v_c = sum v;  sum_v_xhat_c = sum v * xhat, both in float64, xhat recomputed in float64
    nb, nc, ns = v.shape
    for c in range(cuda.grid(1), nc, cuda.gridsize(1)):
        m = mean[c]
        k = inv_std[c]
        total = np.float64(0.0)
        weighted = np.float64(0.0)
        for b in range(nb):
            for s in range(ns):
                vi = v[b, c, s]
                total += vi
                weighted += vi * ((x[b, c, s] - m) * k)
        sum_v[c] = total
        sum_v_xhat[c] = weighted


@kernel
def _vjp_input_train(v, x, mean, inv_std, scale, mean_v, mean_v_xhat, out):
    # out = scale_c * (v - mean_c(v) - xhat * mean_c(v * xhat)),  scale_c = gamma_c * inv_std_c
    nb, nc, ns = v.shape
    for k in range(cuda.grid(1), v.size, cuda.gridsize(1)):
        row = k // ns
        s = k - row * ns
        b = row // nc
        c = row - b * nc
        normalized = (x[b, c, s] - mean[c]) * inv_std[c]
        out[b, c, s] = scale[c] * (v[b, c, s] - mean_v[c] - normalized * mean_v_xhat[c])


@kernel
def _vjp_input_eval(v, scale, out):
    # out = scale_c * v,  scale_c = gamma_c / sqrt(running_var_c + eps)
    nb, nc, ns = v.shape
    for k in range(cuda.grid(1), v.size, cuda.gridsize(1)):
        row = k // ns
        s = k - row * ns
        b = row // nc
        c = row - b * nc
        out[b, c, s] = scale[c] * v[b, c, s]


@kernel
def _update_running_stats(running_mean, running_var, mean, var_sum, n, factor, keep):
    # running = factor * batch + (1 - factor) * running, in float64 (keep = 1 - factor), with the
    # unbiased batch variance
    for c in range(cuda.grid(1), mean.size, cuda.gridsize(1)):
        unbiased_var = var_sum[c] / (n - 1)
        running_mean[c] = factor * mean[c] + keep * np.float64(running_mean[c])
        running_var[c] = factor * unbiased_var + keep * np.float64(running_var[c])


def _as3d(a):
    # a view, never a copy: a copied ``out`` would silently drop the result
    if a.ndim != 3 or not a.flags.c_contiguous:
        raise ValueError(f"BatchNorm kernels need C-contiguous (B, C, S) arrays, got {a.shape}")
    return a


def channel_stats(x, mean, var_sum):
    """Per-channel batch statistics of ``x`` (B, C, S), accumulated in float64.

    ``mean[c] = sum_{b,s} x[b, c, s] / n`` and ``var_sum[c] = sum_{b,s} (x[b, c, s] - mean[c])^2``
    with ``n = B * S``; ``mean`` and ``var_sum`` are float64 arrays of shape (C,).
    """
    written = ("mean", "var_sum")
    _check("channel_stats", (("x", x),), (("mean", mean), ("var_sum", var_sum)), (), written)
    _channel_stats(x.shape[1], _as3d(x), mean, var_sum)
    return mean, var_sum


def normalize_affine(x, mean, inv_std, scale, shift, xhat, out):
    """``xhat = (x - mean_c) * inv_std_c`` and ``out = xhat * scale_c + shift_c``, fused.

    x, xhat, out: (B, C, S); mean, inv_std, scale, shift: float64 (C,).
    """
    channels = (("mean", mean), ("inv_std", inv_std), ("scale", scale), ("shift", shift))
    outputs = (("xhat", xhat), ("out", out))
    _check("normalize_affine", (("x", x),), channels, outputs)
    _normalize_affine(x.size, _as3d(x), mean, inv_std, scale, shift, _as3d(xhat), _as3d(out))
    return xhat, out


def channel_vjp_sums(v, x, mean, inv_std, sum_v, sum_v_xhat):
    """``sum_v[c] = sum_{b,s} v`` and ``sum_v_xhat[c] = sum_{b,s} v * xhat`` (float64 (C,)),
    ``xhat`` recomputed in float64 from x."""
    channels = (("mean", mean), ("inv_std", inv_std), ("sum_v", sum_v), ("sum_v_xhat", sum_v_xhat))
    written = ("sum_v", "sum_v_xhat")
    _check("channel_vjp_sums", (("v", v), ("x", x)), channels, (), written)
    _channel_vjp_sums(v.shape[1], _as3d(v), _as3d(x), mean, inv_std, sum_v, sum_v_xhat)
    return sum_v, sum_v_xhat


def vjp_input_train(v, x, mean, inv_std, scale, mean_v, mean_v_xhat, out):
    """The full training-mode Jacobian applied transposed:
    ``out = gamma_c inv_std_c (v - mean_c(v) - xhat mean_c(v xhat))``, means over (B, S)."""
    channels = (
        ("mean", mean),
        ("inv_std", inv_std),
        ("scale", scale),
        ("mean_v", mean_v),
        ("mean_v_xhat", mean_v_xhat),
    )
    _check("vjp_input_train", (("v", v), ("x", x)), channels, (("out", out),))
    _vjp_input_train(
        v.size, _as3d(v), _as3d(x), mean, inv_std, scale, mean_v, mean_v_xhat, _as3d(out)
    )
    return out


def vjp_input_eval(v, scale, out):
    """The eval-mode (diagonal) Jacobian applied transposed: ``out = scale_c * v``."""
    _check("vjp_input_eval", (("v", v),), (("scale", scale),), (("out", out),))
    _vjp_input_eval(v.size, _as3d(v), scale, _as3d(out))
    return out


def update_running_stats(running_mean, running_var, mean, var_sum, n, factor):
    """torch's running-statistics update, in place, computed in float64 and stored in the buffers'
    dtype: ``running = factor * batch + (1 - factor) * running`` with the batch mean and the
    UNBIASED batch variance ``var_sum / (n - 1)``."""
    caller = "update_running_stats"
    checks.float_array(caller, "running_mean", running_mean)
    checks.ndim(caller, "running_mean", running_mean, 1, "(C,)")
    n_channels = running_mean.shape[0]
    checks.output(
        caller, "running_var", running_var, (n_channels,), "running_mean", running_mean, False
    )
    checks.output(caller, "running_mean", running_mean, (n_channels,), need_contiguous=False)
    for name, a in (("mean", mean), ("var_sum", var_sum)):
        checks.shape(caller, name, a, (n_channels,), f" (C,) with C = {n_channels}")
    factor = float(factor)
    _update_running_stats(
        mean.size, running_mean, running_var, mean, var_sum, int(n), factor, 1.0 - factor
    )
    return running_mean, running_var
