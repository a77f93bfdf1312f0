"""Dense (fully connected) kernels: ``z = x W^T + b`` and its vector-Jacobian products.

The contractions are GEMMs and go to BLAS; the elementwise parts live in ``elementwise``. Each
wrapper checks (:mod:`lfp_ref.kernels.checks`) that its matrices have the shapes the product
needs, one float dtype, and a writeable ``out`` of the result's shape.
"""

import numpy as np

from .. import checks


def _matrices(caller, first, others, out, out_shape):
    """``first`` (name, array) is a float32/float64 matrix; ``others`` are arrays of its dtype,
    each of the shape given with it; ``out`` is a writeable array of ``out_shape`` and that
    dtype."""
    name, a = first
    checks.float_array(caller, name, a)
    for other_name, other, expected, layout in others:
        checks.same_dtype(caller, other_name, other, name, a)
        checks.shape(caller, other_name, other, expected, layout)
    checks.same_dtype(caller, "out", out, name, a)
    checks.shape(caller, "out", out, out_shape)
    if not checks.is_writeable(out):
        raise ValueError(f"{caller}: out is written in place but is read-only")


def dense_forward(x, weight, bias, out):
    """``out = x W^T + b``; x (B, I), weight (O, I), bias (O,) or None, out (B, O)."""
    try:  # the common case in a few attribute reads; the detailed checks below say what is wrong
        (batch, fan_in), n_out = x.shape, weight.shape[0]
        others = (
            ((weight, (n_out, fan_in)),)
            if bias is None
            else ((weight, (n_out, fan_in)), (bias, (n_out,)))
        )
        ok = checks.agree(x, others, out, (batch, n_out))
    except (AttributeError, TypeError, ValueError, IndexError):
        ok = False
    if not ok:
        _check_dense_forward(x, weight, bias, out)
    np.matmul(x, weight.T, out=out)  # (B, O)
    if bias is not None:
        out += bias
    return out


def _check_dense_forward(x, weight, bias, out):
    caller = "dense_forward"
    checks.ndim(caller, "x", x, 2, "(B, I)")
    checks.ndim(caller, "weight", weight, 2, "(O, I)")
    (batch, fan_in), n_out = x.shape, weight.shape[0]
    others = [("weight", weight, (n_out, fan_in), f" (O, I) with I = {fan_in} from x")]
    if bias is not None:
        others.append(("bias", bias, (n_out,), " (O,)"))
    _matrices(caller, ("x", x), others, out, (batch, n_out))


def dense_vjp_input(rho, weight, out):
    """``out = rho W``: the VJP of ``x W^T`` w.r.t. x; rho (B, O), weight (O, I), out (B, I)."""
    try:
        (batch, n_out), fan_in = rho.shape, weight.shape[1]
        ok = checks.agree(rho, ((weight, (n_out, fan_in)),), out, (batch, fan_in))
    except (AttributeError, TypeError, ValueError, IndexError):
        ok = False
    if not ok:
        _check_dense_vjp_input(rho, weight, out)
    return np.matmul(rho, weight, out=out)  # (B, I)


def _check_dense_vjp_input(rho, weight, out):
    caller = "dense_vjp_input"
    checks.ndim(caller, "rho", rho, 2, "(B, O)")
    checks.ndim(caller, "weight", weight, 2, "(O, I)")
    (batch, n_out), fan_in = rho.shape, weight.shape[1]
    others = [("weight", weight, (n_out, fan_in), f" (O, I) with O = {n_out} from rho")]
    _matrices(caller, ("rho", rho), others, out, (batch, fan_in))


def dense_vjp_weight(x, rho, out):
    """``out = rho^T x``: the VJP w.r.t. W, summed over the batch; x (B, I), rho (B, O),
    out (O, I)."""
    try:
        (batch, fan_in), n_out = x.shape, rho.shape[1]
        ok = checks.agree(x, ((rho, (batch, n_out)),), out, (n_out, fan_in))
    except (AttributeError, TypeError, ValueError, IndexError):
        ok = False
    if not ok:
        _check_dense_vjp_weight(x, rho, out)
    if x.shape[0] == 1:
        # one sample: an outer product. NumPy's matmul does not hand the (O, 1) @ (1, I) case to
        # BLAS and took 15x longer (0.22 ms for 256 x 784) than this broadcast multiply, which
        # computes the same single products.
        return np.multiply(rho.reshape(-1, 1), x.reshape(1, -1), out=out)
    return np.matmul(rho.T, x, out=out)  # (O, I)


def _check_dense_vjp_weight(x, rho, out):
    caller = "dense_vjp_weight"
    checks.ndim(caller, "x", x, 2, "(B, I)")
    checks.ndim(caller, "rho", rho, 2, "(B, O)")
    batch, fan_in = x.shape
    n_out = rho.shape[1]
    others = [("rho", rho, (batch, n_out), f" (B, O) with B = {batch} from x")]
    _matrices(caller, ("x", x), others, out, (n_out, fan_in))


def bias_vjp(rho, out):
    """``out = sum_B rho``: the VJP w.r.t. the bias; rho (B, O), out (O,)."""
    try:
        ok = len(rho.shape) == 2 and checks.agree(rho, (), out, (rho.shape[1],))
    except (AttributeError, TypeError):
        ok = False
    if not ok:
        checks.ndim("bias_vjp", "rho", rho, 2, "(B, O)")
        _matrices("bias_vjp", ("rho", rho), [], out, (rho.shape[1],))
    if type(rho) is np.ndarray:
        # what np.sum hands a NumPy array to, without its Python-level argument handling
        # (about a microsecond)
        return np.add.reduce(rho, 0, None, out)
    return np.sum(rho, axis=0, out=out)
