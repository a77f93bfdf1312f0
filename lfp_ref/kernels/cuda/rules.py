"""The CUDA twins of ``kernels/cpu/rules.py``: the fused elementwise kernels of the LRP rules other
than epsilon (splitting by sign, the gamma-modified weights, masking the reward by the sign of the
output, accumulating signed messages). The contractions are the Dense GEMMs of ``dense``; the
stabiliser is ``elementwise.stabilized_ratio``.

Arrays come in flat-able (C-contiguous) device arrays with preallocated outputs. Same names,
signatures and argument checks (:func:`lfp_ref.kernels.checks.matching`) as the CPU module.
"""

from numba import cuda

from .. import checks
from ._launch import kernel
from .elementwise import _flat


@kernel
def _split_signs(values, positive, negative):
    # positive = max(v, 0), negative = min(v, 0) (torch's clamp(min=0) / clamp(max=0))
    for i in range(cuda.grid(1), values.size, cuda.gridsize(1)):
        v = values[i]
        if v > 0:
            positive[i] = v
            negative[i] = 0
        else:
            positive[i] = 0
            negative[i] = v


@kernel
def _gamma_weights(values, gamma, raised, lowered):
    # raised = v + gamma * max(v, 0), lowered = v + gamma * min(v, 0), as zennit's GammaMod
    for i in range(cuda.grid(1), values.size, cuda.gridsize(1)):
        v = values[i]
        if v > 0:
            raised[i] = v + gamma * v
            lowered[i] = v
        else:
            raised[i] = v
            lowered[i] = v + gamma * v


@kernel
def _split_by_output_sign(reward, z, positive, negative):
    # the gamma rule explains z > 0 and z < 0 with different weights; z == 0 gets nothing
    for i in range(cuda.grid(1), z.size, cuda.gridsize(1)):
        zi = z[i]
        positive[i] = reward[i] if zi > 0 else 0
        negative[i] = reward[i] if zi < 0 else 0


@kernel
def _accumulate_signed_product(param, modified, values, coef, out):
    # out += coef * sign(param) * modified * values, with sign(0) = 0 (zero weights get nothing)
    for i in range(cuda.grid(1), out.size, cuda.gridsize(1)):
        p = param[i]
        if p > 0:
            out[i] += coef * modified[i] * values[i]
        elif p < 0:
            out[i] -= coef * modified[i] * values[i]


@kernel
def _accumulate_product(a, b, out):
    for i in range(cuda.grid(1), out.size, cuda.gridsize(1)):
        out[i] += a[i] * b[i]


def split_signs(values, positive, negative):
    """``positive = max(values, 0)``, ``negative = min(values, 0)``, elementwise (x+ and x-,
    W+ and W-)."""
    outputs = (("positive", positive), ("negative", negative))
    checks.matching("split_signs", (("values", values),), outputs)
    _split_signs(values.size, _flat(values), _flat(positive), _flat(negative))
    return positive, negative


def gamma_weights(values, gamma, raised, lowered):
    """``raised = W + gamma W+`` and ``lowered = W + gamma W-`` (the gamma rule's W^ and Wv;
    the same for the bias)."""
    outputs = (("raised", raised), ("lowered", lowered))
    checks.matching("gamma_weights", (("values", values),), outputs)
    g = values.dtype.type(gamma)
    _gamma_weights(values.size, _flat(values), g, _flat(raised), _flat(lowered))
    return raised, lowered


def split_by_output_sign(reward, z, positive, negative):
    """``positive = reward * [z > 0]``, ``negative = reward * [z < 0]``, elementwise."""
    outputs = (("positive", positive), ("negative", negative))
    checks.matching("split_by_output_sign", (("z", z), ("reward", reward)), outputs)
    _split_by_output_sign(z.size, _flat(reward), _flat(z), _flat(positive), _flat(negative))
    return positive, negative


def accumulate_signed_product(param, modified, values, coef, out):
    """``out += coef * sign(param) * modified * values``, elementwise, ``sign(0) = 0``: adds one
    term's connection messages ``modified * values`` to the LFP feedback of ``param``."""
    inputs = (("out", out), ("param", param), ("modified", modified), ("values", values))
    checks.matching("accumulate_signed_product", inputs, (("out", out),))
    c = out.dtype.type(coef)
    _accumulate_signed_product(
        out.size, _flat(param), _flat(modified), _flat(values), c, _flat(out)
    )
    return out


def accumulate_product(a, b, out):
    """``out += a * b``, elementwise."""
    checks.matching("accumulate_product", (("out", out), ("a", a), ("b", b)), (("out", out),))
    _accumulate_product(out.size, _flat(a), _flat(b), _flat(out))
    return out
