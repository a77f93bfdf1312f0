"""Fused elementwise kernels shared by every layer: the stabiliser and the |theta|, x scalings.

Arrays come in flat (1-D, C-contiguous) with a preallocated ``out``; ``out`` may alias an input.
"""

from numba import prange

from ._jit import kernel


@kernel
def _stabilized_ratio(reward, z, eps, out):
    # rho = r / stab(z), stab(z) = z + eps * sgn0(z), sgn0(0) = sgn0(-0.0) = +1
    for i in prange(z.size):
        zi = z[i]
        out[i] = reward[i] / (zi + eps if zi >= 0 else zi - eps)


@kernel
def _multiply_abs(values, param, out):
    # out = |param| * values
    for i in prange(values.size):
        out[i] = abs(param[i]) * values[i]


@kernel
def _multiply(a, b, out):
    for i in prange(a.size):
        out[i] = a[i] * b[i]


@kernel
def _stabilize(z, eps, out):
    for i in prange(z.size):
        zi = z[i]
        out[i] = zi + eps if zi >= 0 else zi - eps


def _flat(a):
    # a view, never a copy: a copied ``out`` would silently drop the result
    if not a.flags.c_contiguous:
        raise ValueError("elementwise kernels need C-contiguous arrays")
    return a.reshape(-1)


def stabilized_ratio(reward, z, eps, out):
    """``out = reward / (z + eps * sgn0(z))``, elementwise; the one stabiliser of lfp_ref."""
    _stabilized_ratio.pick(z.size)(_flat(reward), _flat(z), z.dtype.type(eps), _flat(out))
    return out


def stabilize(z, eps, out):
    """``out = z + eps * sgn0(z)`` with ``sgn0(0) = +1``."""
    _stabilize.pick(z.size)(_flat(z), z.dtype.type(eps), _flat(out))
    return out


def multiply_abs(values, param, out):
    """``out = |param| * values``, elementwise (the |theta| factor of LFP feedback)."""
    _multiply_abs.pick(values.size)(_flat(values), _flat(param), _flat(out))
    return out


def multiply(a, b, out):
    """``out = a * b``, elementwise."""
    _multiply.pick(a.size)(_flat(a), _flat(b), _flat(out))
    return out
