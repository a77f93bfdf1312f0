"""The CUDA twins of ``kernels/cpu/elementwise.py``: the stabiliser, the |theta| and x scalings,
ReLU and its VJP, the float64 sum of squares, the finiteness check and the fused SGD update.

Same names, signatures, semantics and argument checks (:mod:`lfp_ref.kernels.checks`) as the CPU
module; arrays come in flat-able (C-contiguous) device arrays with a preallocated ``out``, which
may alias an input (each thread reads its entries before writing them). One thread per entry, in
a grid-stride loop (see ``_launch``).
"""

import math

import numpy as np
from numba import cuda

from .. import checks
from ._launch import (
    array_module,
    device_contiguous,
    device_empty,
    device_zeros,
    flat,
    kernel,
    total_threads,
)

_flat = flat  # the name the CPU twin exports (rules import it)


@kernel
def _stabilized_ratio(reward, z, eps, out):
    # rho = r / stab(z), stab(z) = z + eps * sgn0(z), sgn0(0) = sgn0(-0.0) = +1
    for i in range(cuda.grid(1), z.size, cuda.gridsize(1)):
        zi = z[i]
        out[i] = reward[i] / (zi + eps if zi >= 0 else zi - eps)


@kernel
def _multiply_abs(values, param, out):
    for i in range(cuda.grid(1), values.size, cuda.gridsize(1)):
        out[i] = abs(param[i]) * values[i]


@kernel
def _multiply(a, b, out):
    for i in range(cuda.grid(1), a.size, cuda.gridsize(1)):
        out[i] = a[i] * b[i]


@kernel
def _stabilize(z, eps, out):
    for i in range(cuda.grid(1), z.size, cuda.gridsize(1)):
        zi = z[i]
        out[i] = zi + eps if zi >= 0 else zi - eps


@kernel
def _relu(x, out):
    zero = out.dtype.type(0)
    for i in range(cuda.grid(1), x.size, cuda.gridsize(1)):
        xi = x[i]
        out[i] = xi if (xi > 0 or xi != xi) else zero


@kernel
def _relu_vjp(grad, x, out):
    one = out.dtype.type(1)
    zero = out.dtype.type(0)
    for i in range(cuda.grid(1), x.size, cuda.gridsize(1)):
        out[i] = grad[i] * (one if x[i] > 0 else zero)


def stabilized_ratio(reward, z, eps, out):
    """``out = reward / (z + eps * sgn0(z))``, elementwise; the one stabiliser of lfp_ref.

    ``reward``, ``z`` and ``out``: C-contiguous, of ``z``'s shape and dtype (float32/float64)."""
    checks.matching("stabilized_ratio", (("z", z), ("reward", reward)), (("out", out),))
    _stabilized_ratio(z.size, _flat(reward), _flat(z), z.dtype.type(eps), _flat(out))
    return out


def stabilize(z, eps, out):
    """``out = z + eps * sgn0(z)`` with ``sgn0(0) = +1``; ``out`` of ``z``'s shape and dtype."""
    checks.matching("stabilize", (("z", z),), (("out", out),))
    _stabilize(z.size, _flat(z), z.dtype.type(eps), _flat(out))
    return out


def multiply_abs(values, param, out):
    """``out = |param| * values``, elementwise (the |theta| factor of LFP feedback); all three of
    one shape and dtype."""
    checks.matching("multiply_abs", (("values", values), ("param", param)), (("out", out),))
    _multiply_abs(values.size, _flat(values), _flat(param), _flat(out))
    return out


def multiply(a, b, out):
    """``out = a * b``, elementwise; all three of one shape and dtype."""
    checks.matching("multiply", (("a", a), ("b", b)), (("out", out),))
    _multiply(a.size, _flat(a), _flat(b), _flat(out))
    return out


def relu(x, out):
    """``out = max(x, 0)`` as ``np.maximum(x, 0)``: NaN stays NaN, -0.0 becomes +0.0."""
    checks.matching("relu", (("x", x),), (("out", out),))
    _relu(x.size, _flat(x), _flat(out))
    return out


def relu_vjp(grad, x, out):
    """``out = grad * (x > 0)``, ReLU's vector-Jacobian product (its derivative at 0 is 0)."""
    checks.matching("relu_vjp", (("grad", grad), ("x", x)), (("out", out),))
    _relu_vjp(x.size, _flat(grad), _flat(x), _flat(out))
    return out


# -- reductions and fused updates for the optimizers ------------------------------------------


@kernel
def _sum_of_squares_partials(values, partials):
    # thread t sums v^2 over i = t, t + step, ... in float64; the partials are summed after
    start = cuda.grid(1)
    step = cuda.gridsize(1)
    total = np.float64(0.0)
    for i in range(start, values.size, step):
        v = np.float64(values[i])
        total += v * v
    if start < partials.size:
        partials[start] = total


@kernel
def _any_non_finite(values, flag):
    # flag[0] = 1 if some entry is inf or NaN; every writer writes the same 1 (a benign race)
    for i in range(cuda.grid(1), values.size, cuda.gridsize(1)):
        if not math.isfinite(values[i]):
            flag[0] = 1


@kernel
def _sgd_update(
    param, grad, buf, lr, momentum, dampening_factor, weight_decay, nesterov, mode, scale
):
    # torch's SGD for one parameter, in the parameter's dtype and in numpy's order of operations
    # (see lfp_ref.optim.SGD): mode 0 no momentum, 1 first momentum step (buf = g), 2 later steps
    for i in range(cuda.grid(1), param.size, cuda.gridsize(1)):
        g = grad[i] * scale
        if weight_decay != 0:
            g = g + weight_decay * param[i]
        if mode == 1:
            buf[i] = g
        elif mode == 2:
            buf[i] = buf[i] * momentum + dampening_factor * g
        if mode != 0:
            g = g + momentum * buf[i] if nesterov else buf[i]
        param[i] = param[i] + lr * g


def sum_of_squares(values):
    """``sum_i values_i**2`` accumulated in float64 (float32 input is widened element by element;
    a non-contiguous array goes through a contiguous device copy): one float64 partial sum per
    thread, then the partials summed by the array namespace. Deterministic for a given launch
    geometry; the order of the terms differs from the CPU twin's (the contract leaves it open)."""
    checks.float_array("sum_of_squares", "values", values)
    if values.size == 0:
        return 0.0
    if not values.flags.c_contiguous:
        values = device_contiguous(values)
    partials = device_zeros(values, total_threads(values.size), np.float64)
    _sum_of_squares_partials(values.size, _flat(values), partials)
    return float(array_module(values).sum(partials))


def all_finite(values):
    """Whether every entry of a float32/float64 array is finite (one pass, one flag).
    ``values`` must be C-contiguous."""
    checks.float_array("all_finite", "values", values)
    checks.contiguous("all_finite", "values", values)
    if values.size == 0:
        return True
    flag = device_zeros(values, 1, np.int32)
    _any_non_finite(values.size, _flat(values), flag)
    return int(flag[0]) == 0


def sgd_update(
    param, grad, buf, lr, momentum, dampening, weight_decay, nesterov, first_step, scale=1.0
):
    """One fused pass of torch's SGD update for one parameter, in place (``buf`` None without
    momentum); scalars are rounded to the parameter's dtype as NumPy's weak scalars are::

        g   = scale * g                                   (exact when scale is 1)
        g   = g + weight_decay * p                        (if weight_decay != 0)
        buf = g  (first_step)   or   buf = momentum * buf + (1 - dampening) * g
        g   = g + momentum * buf  (nesterov)   or   g = buf          (if momentum != 0)
        p   = p + (-lr) * g

    ``param``, ``grad`` and ``buf``: C-contiguous, of ``param``'s shape and dtype; ``param`` and
    ``buf`` are written. ``buf`` may be None only without momentum.
    """
    caller = "sgd_update"
    if buf is None:
        checks.matching(caller, (("param", param), ("grad", grad)), (("param", param),))
        if momentum != 0:
            raise ValueError(
                f"{caller}: momentum={momentum!r} needs a momentum buffer of param's shape "
                f"{tuple(param.shape)}, got buf=None"
            )
    else:
        outputs = (("param", param), ("buf", buf))
        checks.matching(caller, (("param", param), ("grad", grad)), outputs)
    kind = param.dtype.type
    mode = 0 if momentum == 0 else (1 if first_step else 2)
    buf = device_empty(param, 0, param.dtype) if buf is None else _flat(buf)
    _sgd_update(
        param.size,
        _flat(param),
        _flat(grad),
        buf,
        kind(-lr),
        kind(momentum),
        kind(1 - dampening),
        kind(weight_decay),
        bool(nesterov),
        mode,
        kind(scale),
    )
    return param
