"""Fused elementwise kernels shared by every layer: the stabiliser, the |theta|, x scalings and
ReLU with its VJP.

Arrays come in flat (1-D, C-contiguous) with a preallocated ``out``; ``out`` may alias an input.
The kernels loop over the size of one array and index the others by the same index, so every
public wrapper checks (:mod:`lfp_ref.kernels.checks`) that all its arrays have one shape and one
dtype (float32 or float64), are C-contiguous, and that its outputs are writeable.
"""

import numpy as np
from numba import prange

from .. import checks
from ._jit import kernel


@kernel(streaming=True)
def _stabilized_ratio(reward, z, eps, out):
    # rho = r / stab(z), stab(z) = z + eps * sgn0(z), sgn0(0) = sgn0(-0.0) = +1
    for i in prange(z.size):
        zi = z[i]
        out[i] = reward[i] / (zi + eps if zi >= 0 else zi - eps)


@kernel(streaming=True)
def _multiply_abs(values, param, out):
    # out = |param| * values
    for i in prange(values.size):
        out[i] = abs(param[i]) * values[i]


@kernel(streaming=True)
def _multiply(a, b, out):
    for i in prange(a.size):
        out[i] = a[i] * b[i]


@kernel(streaming=True)
def _stabilize(z, eps, out):
    for i in prange(z.size):
        zi = z[i]
        out[i] = zi + eps if zi >= 0 else zi - eps


@kernel(streaming=True)
def _relu(x, out):
    # np.maximum(x, 0) exactly: x where x > 0, NaN stays NaN, +0.0 otherwise (also for -0.0).
    # NumPy's maximum against a scalar runs 4x slower than this loop (float32, 1.2M entries:
    # 0.44 against 0.11 ms, one thread; NumPy 2.4, AVX-512).
    zero = out.dtype.type(0)
    for i in prange(x.size):
        xi = x[i]
        out[i] = xi if (xi > 0 or xi != xi) else zero


@kernel(streaming=True)
def _relu_vjp(grad, x, out):
    # grad * (x > 0) as the product with 1 or 0, so that inf and NaN in grad propagate as in
    # ``grad * (x > 0).astype(dtype)``, without the mask array
    one = out.dtype.type(1)
    zero = out.dtype.type(0)
    for i in prange(x.size):
        out[i] = grad[i] * (one if x[i] > 0 else zero)


def _flat(a):
    # a view, never a copy: a copied ``out`` would silently drop the result
    if not a.flags.c_contiguous:
        raise ValueError("elementwise kernels need C-contiguous arrays")
    return a.reshape(-1)


# The wrappers below flatten with ``a.reshape(-1)`` directly where their checks have just proven
# every array C-contiguous (then the reshape is a view): _flat's own test would repeat them.


def stabilized_ratio(reward, z, eps, out):
    """``out = reward / (z + eps * sgn0(z))``, elementwise; the one stabiliser of lfp_ref.

    ``reward``, ``z`` and ``out``: C-contiguous, of ``z``'s shape and dtype (float32/float64)."""
    if not checks.elementwise_ok(z, reward, out):
        checks.matching("stabilized_ratio", (("z", z), ("reward", reward)), (("out", out),))
    _stabilized_ratio.pick(z.size)(
        reward.reshape(-1), z.reshape(-1), z.dtype.type(eps), out.reshape(-1)
    )
    return out


def stabilize(z, eps, out):
    """``out = z + eps * sgn0(z)`` with ``sgn0(0) = +1``; ``out`` of ``z``'s shape and dtype."""
    if not checks.elementwise_ok(z, None, out):
        checks.matching("stabilize", (("z", z),), (("out", out),))
    _stabilize.pick(z.size)(z.reshape(-1), z.dtype.type(eps), out.reshape(-1))
    return out


def multiply_abs(values, param, out):
    """``out = |param| * values``, elementwise (the |theta| factor of LFP feedback); all three of
    one shape and dtype."""
    if not checks.elementwise_ok(values, param, out):
        inputs = (("values", values), ("param", param))
        checks.matching("multiply_abs", inputs, (("out", out),))
    _multiply_abs.pick(values.size)(values.reshape(-1), param.reshape(-1), out.reshape(-1))
    return out


def multiply(a, b, out):
    """``out = a * b``, elementwise; all three of one shape and dtype."""
    if not checks.elementwise_ok(a, b, out):
        checks.matching("multiply", (("a", a), ("b", b)), (("out", out),))
    _multiply.pick(a.size)(a.reshape(-1), b.reshape(-1), out.reshape(-1))
    return out


def relu(x, out):
    """``out = max(x, 0)`` as ``np.maximum(x, 0)``: NaN stays NaN, -0.0 becomes +0.0; ``x`` and
    ``out`` C-contiguous, of one shape and dtype (float32/float64)."""
    if not checks.elementwise_ok(x, None, out):
        checks.matching("relu", (("x", x),), (("out", out),))
    _relu.pick(x.size)(x.reshape(-1), out.reshape(-1))
    return out


def relu_vjp(grad, x, out):
    """``out = grad * (x > 0)``, ReLU's vector-Jacobian product (its derivative at 0 is 0); all
    three of one shape and dtype."""
    if not checks.elementwise_ok(grad, x, out):
        checks.matching("relu_vjp", (("grad", grad), ("x", x)), (("out", out),))
    _relu_vjp.pick(x.size)(grad.reshape(-1), x.reshape(-1), out.reshape(-1))
    return out


# -- reductions and fused updates for the optimizers ------------------------------------------


@kernel(reassociate=True)
def _sum_of_squares(values):
    # sum v^2 in float64, reassociated (see _jit): the order of the terms is free
    total = 0.0
    for i in range(values.size):
        v = np.float64(values[i])
        total += v * v
    return total


@kernel
def _max_exponent_bits(bits, exponent_mask):
    # max over i of (bits[i] & mask): equals the mask iff some entry is inf or NaN (all exponent
    # bits set). An integer max reduction, which LLVM vectorises.
    largest = exponent_mask - exponent_mask  # a zero of the bits' type
    for i in range(bits.size):
        largest = max(largest, bits[i] & exponent_mask)
    return largest


@kernel
def _sgd_update(
    param, grad, buf, lr, momentum, dampening_factor, weight_decay, nesterov, mode, scale
):
    # torch's SGD for one parameter, in the parameter's dtype and in numpy's order of operations
    # (see lfp_ref.optim.SGD): mode 0 no momentum, 1 first momentum step (buf = g), 2 later steps
    for i in prange(param.size):
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


_EXPONENT_MASKS = {
    np.dtype(np.float32): (np.uint32, np.uint32(0x7F800000)),
    np.dtype(np.float64): (np.uint64, np.uint64(0x7FF0000000000000)),
}


def sum_of_squares(values):
    """``sum_i values_i**2`` accumulated in float64 (float32 input is widened element by element,
    never copied; a non-contiguous array goes through a float64 copy)."""
    checks.float_array("sum_of_squares", "values", values)
    if not values.flags.c_contiguous:
        flat = values.astype(np.float64).ravel()
        return float(np.dot(flat, flat))
    return float(_sum_of_squares(values.reshape(-1)))


def all_finite(values):
    """Whether every entry of a float32/float64 array is finite, in one pass without a
    temporary (``np.isfinite(values).all()`` allocates a boolean array). ``values`` must be
    C-contiguous."""
    checks.float_array("all_finite", "values", values)
    checks.contiguous("all_finite", "values", values)
    bit_type, mask = _EXPONENT_MASKS[values.dtype]
    return _max_exponent_bits(_flat(values).view(bit_type), mask) != mask


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
    ``buf`` are written. ``buf`` may be None only without momentum (the kernel reads and writes
    it whenever ``momentum != 0``).
    """
    caller = "sgd_update"
    if buf is None:
        if not checks.elementwise_ok(grad, None, param):
            checks.matching(caller, (("param", param), ("grad", grad)), (("param", param),))
        if momentum != 0:
            raise ValueError(
                f"{caller}: momentum={momentum!r} needs a momentum buffer of param's shape "
                f"{tuple(param.shape)}, got buf=None"
            )
    elif not (checks.elementwise_ok(grad, buf, param) and checks.is_writeable(buf)):
        outputs = (("param", param), ("buf", buf))
        checks.matching(caller, (("param", param), ("grad", grad)), outputs)
    kind = param.dtype.type
    mode = 0 if momentum == 0 else (1 if first_step else 2)
    buf = param[:0].reshape(-1) if buf is None else buf.reshape(-1)
    _sgd_update.pick(param.size)(
        param.reshape(-1),
        grad.reshape(-1),
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
