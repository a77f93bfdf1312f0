"""The CUDA twins of ``kernels/cpu/dense.py``: ``z = x W^T + b`` and its vector-Jacobian products.

The contractions are GEMMs and go to the array namespace's matmul (cuBLAS through CuPy on a
device, NumPy's under the simulator), the batch sum of the bias VJP to its sum; the bias
broadcast is a kernel here. Same names, signatures and argument checks as the CPU module.
"""

from numba import cuda

from .. import checks
from ..cpu.dense import _matrices
from ._launch import array_module, flat, kernel


@kernel
def _add_bias_rows(out, bias):
    # out[b, o] += bias[o] with out the flat (B*O,) view of a C-contiguous (B, O) array, as
    # numpy's broadcast add
    n_out = bias.size
    for i in range(cuda.grid(1), out.size, cuda.gridsize(1)):
        out[i] += bias[i % n_out]


def dense_forward(x, weight, bias, out):
    """``out = x W^T + b``; x (B, I), weight (O, I), bias (O,) or None, out (B, O)."""
    caller = "dense_forward"
    checks.ndim(caller, "x", x, 2, "(B, I)")
    checks.ndim(caller, "weight", weight, 2, "(O, I)")
    (batch, fan_in), n_out = x.shape, weight.shape[0]
    others = [("weight", weight, (n_out, fan_in), f" (O, I) with I = {fan_in} from x")]
    if bias is not None:
        others.append(("bias", bias, (n_out,), " (O,)"))
    _matrices(caller, ("x", x), others, out, (batch, n_out))
    array_module(x).matmul(x, weight.T, out=out)  # (B, O)
    if bias is not None:
        checks.contiguous(caller, "out", out, output=True)
        _add_bias_rows(out.size, flat(out), bias)
    return out


def dense_vjp_input(rho, weight, out):
    """``out = rho W``: the VJP of ``x W^T`` w.r.t. x; rho (B, O), weight (O, I), out (B, I)."""
    caller = "dense_vjp_input"
    checks.ndim(caller, "rho", rho, 2, "(B, O)")
    checks.ndim(caller, "weight", weight, 2, "(O, I)")
    (batch, n_out), fan_in = rho.shape, weight.shape[1]
    others = [("weight", weight, (n_out, fan_in), f" (O, I) with O = {n_out} from rho")]
    _matrices(caller, ("rho", rho), others, out, (batch, fan_in))
    return array_module(rho).matmul(rho, weight, out=out)  # (B, I)


def dense_vjp_weight(x, rho, out):
    """``out = rho^T x``: the VJP w.r.t. W, summed over the batch; x (B, I), rho (B, O),
    out (O, I)."""
    caller = "dense_vjp_weight"
    checks.ndim(caller, "x", x, 2, "(B, I)")
    checks.ndim(caller, "rho", rho, 2, "(B, O)")
    batch, fan_in = x.shape
    n_out = rho.shape[1]
    others = [("rho", rho, (batch, n_out), f" (B, O) with B = {batch} from x")]
    _matrices(caller, ("x", x), others, out, (n_out, fan_in))
    xp = array_module(x)
    if x.shape[0] == 1:
        # one sample: an outer product (the CPU twin's special case, kept for equal results)
        return xp.multiply(rho.reshape(-1, 1), x.reshape(1, -1), out=out)
    return xp.matmul(rho.T, x, out=out)  # (O, I)


def bias_vjp(rho, out):
    """``out = sum_B rho``: the VJP w.r.t. the bias; rho (B, O), out (O,)."""
    caller = "bias_vjp"
    checks.ndim(caller, "rho", rho, 2, "(B, O)")
    _matrices(caller, ("rho", rho), [], out, (rho.shape[1],))
    return array_module(rho).sum(rho, axis=0, out=out)
