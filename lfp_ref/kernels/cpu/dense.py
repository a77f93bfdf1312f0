"""Dense (fully connected) kernels: ``z = x W^T + b`` and its vector-Jacobian products.

The contractions are GEMMs and go to BLAS; the elementwise parts live in ``elementwise``.
"""

import numpy as np


def dense_forward(x, weight, bias, out):
    """``out = x W^T + b``; x (B, I), weight (O, I), bias (O,) or None, out (B, O)."""
    np.matmul(x, weight.T, out=out)  # (B, O)
    if bias is not None:
        out += bias
    return out


def dense_vjp_input(rho, weight, out):
    """``out = rho W``: the VJP of ``x W^T`` w.r.t. x; rho (B, O), out (B, I)."""
    return np.matmul(rho, weight, out=out)  # (B, I)


def dense_vjp_weight(x, rho, out):
    """``out = rho^T x``: the VJP w.r.t. W, summed over the batch; out (O, I)."""
    if x.shape[0] == 1:
        # one sample: an outer product. NumPy's matmul does not hand the (O, 1) @ (1, I) case to
        # BLAS and took 15x longer (0.22 ms for 256 x 784) than this broadcast multiply, which
        # computes the same single products.
        return np.multiply(rho.reshape(-1, 1), x.reshape(1, -1), out=out)
    return np.matmul(rho.T, x, out=out)  # (O, I)


def bias_vjp(rho, out):
    """``out = sum_B rho``: the VJP w.r.t. the bias; rho (B, O), out (O,)."""
    return np.sum(rho, axis=0, out=out)
