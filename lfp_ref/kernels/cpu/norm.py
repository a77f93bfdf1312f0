"""BatchNorm kernels: per-channel batch statistics, the fused normalise/affine pass and the fused
vector-Jacobian products of the training-mode and eval-mode maps (docs/numerical-contract.md
section 2.2).

Layout: every kernel sees its arrays as (B, C, S), a free reshape of a C-contiguous array:
BatchNorm1d's (B, C) is S = 1, its (B, C, L) is S = L, BatchNorm2d's NCHW is S = H * W.
Statistics are per channel over the n = B * S entries of that channel.

Precision: the per-channel reductions (mean, sum of squared deviations, the VJP sums) accumulate
in float64 for float32 and float64 input alike, two passes (mean first, then the squared
deviations from it), and the per-channel scalars they produce stay float64. This is what torch's
CPU kernel does (``batch_norm_cpu_collect_stats`` accumulates in ``acc_type<float, false>``,
i.e. double), and it keeps float32 statistics of large batches accurate. Elementwise outputs
(xhat, z, J^T v) are written in the dtype of their ``out`` array. The VJP kernels recompute xhat
in float64 from x instead of reading a float32-rounded copy: for float32 that keeps J^T v at about
one float32 rounding even where it nearly cancels (n = 2 per channel, xhat ~ +-1).

Order of the sums. For float64 input (the verification dtype) each channel's sums run in index
order, which the CUDA twins reproduce bit for bit. For float32 input the same kernels are built
with ``reassociate=True`` (see ``_jit``): the order of the terms is left to the compiler, which
vectorises them (measured, 64 x 16 x 1024, 2 threads: the statistics 1.04 -> 0.27 ms, the VJP
sums 0.91 -> 0.31 ms); the contract fixes float64 accumulation and the two passes, not an order.

Parallelism: reductions run ``prange`` over channels (each channel's sum is written by exactly one
iteration: no shared ``+=``); elementwise passes run ``prange`` over the (b, c) rows they write.
"""

import numpy as np
from numba import prange

from .. import checks
from ._jit import kernel


@kernel
def _channel_stats(x, mean, var_sum):
    # mean_c = sum x / n;  var_sum_c = sum (x - mean_c)^2, both in float64
    nb, nc, ns = x.shape
    n = nb * ns
    for c in prange(nc):
        total = 0.0
        for b in range(nb):
            for s in range(ns):
                total += x[b, c, s]
        m = total / n
        squares = 0.0
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
    for row in prange(nb * nc):
        b = row // nc
        c = row - b * nc
        m = mean[c]
        k = inv_std[c]
        g = scale[c]
        h = shift[c]
        for s in range(ns):
            normalized = (x[b, c, s] - m) * k
            xhat[b, c, s] = normalized
            out[b, c, s] = normalized * g + h


@kernel(streaming=True)
def _channel_vjp_sums(v, x, mean, inv_std, sum_v, sum_v_xhat):
    # sum_v_c = sum v;  sum_v_xhat_c = sum v * xhat, both in float64, xhat recomputed in float64
    nb, nc, ns = v.shape
    for c in prange(nc):
        m = mean[c]
        k = inv_std[c]
        total = 0.0
        weighted = 0.0
        for b in range(nb):
            for s in range(ns):
                vi = v[b, c, s]
                total += vi
                weighted += vi * ((x[b, c, s] - m) * k)
        sum_v[c] = total
        sum_v_xhat[c] = weighted


# the float32 builds of the two reductions (see "Order of the sums" above). Reassociated, they
# vectorise and are bound by memory (streaming, see _jit); the strict float64 statistics are one
# chain of additions per channel, where the second core pays from PARALLEL_MIN_SIZE on (resnet-
# small's three 1M-entry calls: 5.2 ms serial, 2.9 parallel).
_channel_stats_reassociated = kernel(_channel_stats.py_func, reassociate=True, streaming=True)
_channel_vjp_sums_reassociated = kernel(_channel_vjp_sums.py_func, reassociate=True, streaming=True)


def _sums_for(dtype, strict, reassociated):
    """The reduction kernel for input of ``dtype``: reassociated for float32, else strict."""
    return reassociated if dtype == np.float32 else strict


@kernel(streaming=True)
def _vjp_input_train(v, x, mean, inv_std, scale, mean_v, mean_v_xhat, out):
    # out = scale_c * (v - mean_c(v) - xhat * mean_c(v * xhat)),  scale_c = gamma_c * inv_std_c
    nb, nc, ns = v.shape
    for row in prange(nb * nc):
        b = row // nc
        c = row - b * nc
        m = mean[c]
        k = inv_std[c]
        g = scale[c]
        mv = mean_v[c]
        mvx = mean_v_xhat[c]
        for s in range(ns):
            normalized = (x[b, c, s] - m) * k
            out[b, c, s] = g * (v[b, c, s] - mv - normalized * mvx)


@kernel
def _vjp_input_eval(v, scale, out):
    # out = scale_c * v,  scale_c = gamma_c / sqrt(running_var_c + eps)
    nb, nc, ns = v.shape
    for row in prange(nb * nc):
        b = row // nc
        c = row - b * nc
        k = scale[c]
        for s in range(ns):
            out[b, c, s] = k * v[b, c, s]


def _as3d(a):
    # a view, never a copy: a copied ``out`` would silently drop the result
    if a.ndim != 3 or not a.flags.c_contiguous:
        raise ValueError(f"BatchNorm kernels need C-contiguous (B, C, S) arrays, got {a.shape}")
    return a


_FLOAT64 = (np.dtype(np.float64),)


def _check(caller, blocks, channels=(), outputs=(), written=()):
    """The kernels' contract: ``blocks`` ((name, array) pairs; the first is the reference) and
    ``outputs`` are C-contiguous (B, C, S) arrays of the reference's shape and float dtype
    (outputs writeable); ``channels`` are float64 arrays of shape (C,), those in ``written``
    writeable."""
    ref_name, ref = blocks[0]
    checks.ndim(caller, ref_name, ref, 3, "(B, C, S)")
    checks.matching(caller, blocks, outputs)
    n_channels = ref.shape[1]
    for name, a in channels:
        checks.dtype_in(caller, name, a, _FLOAT64)
        checks.shape(caller, name, a, (n_channels,), f" (C,) with C = {n_channels} from {ref_name}")
        if name in written and not checks.is_writeable(a):
            raise ValueError(f"{caller}: {name} is written in place but is read-only")


def channel_stats(x, mean, var_sum):
    """Per-channel batch statistics of ``x`` (B, C, S), accumulated in float64.

    ``mean[c] = sum_{b,s} x[b, c, s] / n`` and ``var_sum[c] = sum_{b,s} (x[b, c, s] - mean[c])^2``
    with ``n = B * S``; the biased variance is ``var_sum / n``, the unbiased ``var_sum / (n - 1)``.
    ``mean`` and ``var_sum`` are float64 arrays of shape (C,).
    """
    written = ("mean", "var_sum")
    _check("channel_stats", (("x", x),), (("mean", mean), ("var_sum", var_sum)), (), written)
    stats = _sums_for(x.dtype, _channel_stats, _channel_stats_reassociated)
    stats.pick(x.size)(_as3d(x), mean, var_sum)
    return mean, var_sum


def normalize_affine(x, mean, inv_std, scale, shift, xhat, out):
    """``xhat = (x - mean_c) * inv_std_c`` and ``out = xhat * scale_c + shift_c``, fused.

    x, xhat, out: (B, C, S); mean, inv_std, scale (gamma, ones without affine), shift (beta,
    zeros without affine): float64 (C,).
    """
    channels = (("mean", mean), ("inv_std", inv_std), ("scale", scale), ("shift", shift))
    outputs = (("xhat", xhat), ("out", out))
    _check("normalize_affine", (("x", x),), channels, outputs)
    _normalize_affine.pick(x.size)(_as3d(x), mean, inv_std, scale, shift, _as3d(xhat), _as3d(out))
    return xhat, out


def channel_vjp_sums(v, x, mean, inv_std, sum_v, sum_v_xhat):
    """``sum_v[c] = sum_{b,s} v`` and ``sum_v_xhat[c] = sum_{b,s} v * xhat`` (float64 (C,)):
    the VJPs w.r.t. beta and gamma, and the two means of the training-mode input VJP.

    ``xhat = (x - mean_c) * inv_std_c`` is recomputed in float64 from x (the same expression as
    the forward's, so bitwise the cached xhat in float64) rather than read back rounded to
    float32: near-cancelling VJPs (small batches, xhat ~ +-1) would amplify that rounding.
    """
    channels = (("mean", mean), ("inv_std", inv_std), ("sum_v", sum_v), ("sum_v_xhat", sum_v_xhat))
    written = ("sum_v", "sum_v_xhat")
    _check("channel_vjp_sums", (("v", v), ("x", x)), channels, (), written)
    sums = _sums_for(v.dtype, _channel_vjp_sums, _channel_vjp_sums_reassociated)
    sums.pick(v.size)(_as3d(v), _as3d(x), mean, inv_std, sum_v, sum_v_xhat)
    return sum_v, sum_v_xhat


def vjp_input_train(v, x, mean, inv_std, scale, mean_v, mean_v_xhat, out):
    """The full training-mode Jacobian applied transposed:
    ``out = gamma_c inv_std_c (v - mean_c(v) - xhat mean_c(v xhat))``, means over (B, S).

    v, x, out are (B, C, S); the batch ``mean`` and ``inv_std`` (xhat is recomputed from x as in
    :func:`channel_vjp_sums`), ``scale = gamma * inv_std``, ``mean_v = sum_v / n`` and
    ``mean_v_xhat = sum_v_xhat / n`` are float64 (C,).
    """
    channels = (
        ("mean", mean),
        ("inv_std", inv_std),
        ("scale", scale),
        ("mean_v", mean_v),
        ("mean_v_xhat", mean_v_xhat),
    )
    _check("vjp_input_train", (("v", v), ("x", x)), channels, (("out", out),))
    _vjp_input_train.pick(v.size)(
        _as3d(v), _as3d(x), mean, inv_std, scale, mean_v, mean_v_xhat, _as3d(out)
    )
    return out


def vjp_input_eval(v, scale, out):
    """The eval-mode (diagonal) Jacobian applied transposed: ``out = scale_c * v`` with
    ``scale = gamma / sqrt(running_var + eps)`` (float64 (C,))."""
    _check("vjp_input_eval", (("v", v),), (("scale", scale),), (("out", out),))
    _vjp_input_eval.pick(v.size)(_as3d(v), scale, _as3d(out))
    return out


def update_running_stats(running_mean, running_var, mean, var_sum, n, factor):
    """torch's running-statistics update, in place, computed in float64 and stored in the buffers'
    dtype: ``running = factor * batch + (1 - factor) * running`` with the batch mean and the
    UNBIASED batch variance ``var_sum / (n - 1)`` (``factor`` is the momentum, or ``1 /
    num_batches_tracked`` for torch's ``momentum=None`` cumulative average)."""
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
    unbiased_var = var_sum / (n - 1)
    running_mean[...] = factor * mean + (1.0 - factor) * running_mean.astype(np.float64)
    running_var[...] = factor * unbiased_var + (1.0 - factor) * running_var.astype(np.float64)
    return running_mean, running_var
