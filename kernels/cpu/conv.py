"""Conv2d kernels (NCHW input, torch weight layout (O, C, kh, kw)): im2col plus one BLAS GEMM per
pass.

Layout. The column matrix ``cols`` is (B*Ho*Wo, C*kh*kw): row ``(b*Ho + oh)*Wo + ow`` holds the
input patch seen by output position (oh, ow) of sample b, and column ``(c*kh + i)*kw + j`` holds

    x[b, c, oh*sh - ph + i*dh, ow*sw - pw + j*dw]      (0 where that falls in the padding)

The column order is the order of ``weight.reshape(O, C*kh*kw)`` (``W2``), and the rows are the
output positions in NHWC order (``rows`` below), so every contraction is one GEMM:

    forward       z_rows = cols @ W2^T              (B*Ho*Wo, O), then NCHW + bias
    weight VJP    dW2    = v_rows^T @ cols          (O, C*kh*kw), summed over batch and positions
    input VJP     dcols  = v_rows @ W2              (B*Ho*Wo, C*kh*kw), then col2im

Kernels take arrays and ints and write into preallocated arrays; the public wrappers pick the
serial or parallel build by size (see ``_jit``) and do no validation.
"""

import numpy as np
from numba import prange

from ._jit import kernel


@kernel
def _im2col(x, kh, kw, sh, sw, ph, pw, dh, dw, ho, wo, cols):
    # cols (B*Ho*Wo, C*kh*kw); each (b, oh) block of rows is written by one iteration
    n_batch, n_chan, height, width = x.shape
    for n in prange(n_batch * ho):
        b = n // ho
        oh = n - b * ho
        for ow in range(wo):
            row = n * wo + ow
            for c in range(n_chan):
                for i in range(kh):
                    ih = oh * sh - ph + i * dh
                    col = (c * kh + i) * kw
                    if ih < 0 or ih >= height:
                        for j in range(kw):
                            cols[row, col + j] = 0
                    else:
                        for j in range(kw):
                            iw = ow * sw - pw + j * dw
                            if iw < 0 or iw >= width:
                                cols[row, col + j] = 0
                            else:
                                cols[row, col + j] = x[b, c, ih, iw]


@kernel
def _rows_to_nchw(rows, bias, out):
    # out[b, o, p] = rows[b*P + p, o] (+ bias[o] when bias is non-empty); out (B, O, Ho, Wo)
    n_batch, n_out, ho, wo = out.shape
    n_pos = ho * wo
    add_bias = bias.shape[0] != 0
    for b in prange(n_batch):
        base = b * n_pos
        for o in range(n_out):
            for oh in range(ho):
                for ow in range(wo):
                    value = rows[base + oh * wo + ow, o]
                    if add_bias:
                        value += bias[o]
                    out[b, o, oh, ow] = value


@kernel
def _nchw_to_rows(v, out):
    # out[b*P + p, o] = v[b, o, p]; out (B*Ho*Wo, O)
    n_batch, n_out, ho, wo = v.shape
    for n in prange(n_batch * ho):
        b = n // ho
        oh = n - b * ho
        for ow in range(wo):
            row = n * wo + ow
            for o in range(n_out):
                out[row, o] = v[b, o, oh, ow]


@kernel
def _col2im(dcols, kh, kw, sh, sw, ph, pw, dh, dw, ho, wo, out):
    # the adjoint of _im2col: out[b, c, ih, iw] = sum of the dcols entries that im2col filled from
    # x[b, c, ih, iw]. One iteration per sample, accumulating only into out[b].
    n_batch, n_chan, height, width = out.shape
    for b in prange(n_batch):
        out[b] = 0
        for oh in range(ho):
            for ow in range(wo):
                row = (b * ho + oh) * wo + ow
                for c in range(n_chan):
                    for i in range(kh):
                        ih = oh * sh - ph + i * dh
                        if ih < 0 or ih >= height:
                            continue
                        col = (c * kh + i) * kw
                        for j in range(kw):
                            iw = ow * sw - pw + j * dw
                            if 0 <= iw < width:
                                out[b, c, ih, iw] += dcols[row, col + j]


def conv2d_output_size(height, width, kernel_size, stride, padding, dilation):
    """``(Ho, Wo)`` with ``Ho = (H + 2*ph - dh*(kh - 1) - 1) // sh + 1`` (torch, floor mode);
    non-positive when the padded input is smaller than the dilated kernel."""
    (kh, kw), (sh, sw), (ph, pw), (dh, dw) = kernel_size, stride, padding, dilation
    return (
        (height + 2 * ph - dh * (kh - 1) - 1) // sh + 1,
        (width + 2 * pw - dw * (kw - 1) - 1) // sw + 1,
    )


def im2col(x, kernel_size, stride, padding, dilation, out):
    """Fill the column matrix ``out`` (B*Ho*Wo, C*kh*kw) from x (B, C, H, W), laid out as in the
    module docstring."""
    ho, wo = conv2d_output_size(*x.shape[2:], kernel_size, stride, padding, dilation)
    _im2col.pick(out.size)(x, *kernel_size, *stride, *padding, *dilation, ho, wo, out)
    return out


def rows_to_nchw(rows, bias, out):
    """``out[b, o, oh, ow] = rows[(b*Ho + oh)*Wo + ow, o] + bias[o]``; bias None for no bias."""
    if bias is None:
        bias = np.zeros(0, dtype=out.dtype)
    _rows_to_nchw.pick(out.size)(rows, bias, out)
    return out


def nchw_to_rows(v, out):
    """``out[(b*Ho + oh)*Wo + ow, o] = v[b, o, oh, ow]``: v (B, O, Ho, Wo) -> out (B*Ho*Wo, O)."""
    _nchw_to_rows.pick(out.size)(v, out)
    return out


def col2im(dcols, kernel_size, stride, padding, dilation, out):
    """The adjoint of :func:`im2col`: scatter-add dcols (B*Ho*Wo, C*kh*kw) into out
    (B, C, H, W), which is overwritten."""
    ho, wo = conv2d_output_size(*out.shape[2:], kernel_size, stride, padding, dilation)
    _col2im.pick(dcols.size)(dcols, *kernel_size, *stride, *padding, *dilation, ho, wo, out)
    return out


def conv2d_forward(x, weight, bias, stride, padding, dilation, cols, z_rows, out):
    """``z = conv2d(x, W) + b``: x (B, C, H, W), weight (O, C, kh, kw), bias (O,) or None.

    Scratch and outputs, all preallocated: cols (B*Ho*Wo, C*kh*kw) is filled with the column
    matrix (keep it for :func:`conv2d_vjp_weight`), z_rows (B*Ho*Wo, O), out (B, O, Ho, Wo).
    """
    n_out = weight.shape[0]
    im2col(x, weight.shape[2:], stride, padding, dilation, cols)
    np.matmul(cols, weight.reshape(n_out, -1).T, out=z_rows)  # (B*Ho*Wo, O)
    return rows_to_nchw(z_rows, bias, out)  # (B, O, Ho, Wo)


def conv2d_vjp_weight(cols, v_rows, out):
    """``dW = v_rows^T @ cols``, the VJP w.r.t. the weight summed over batch and positions;
    v_rows (B*Ho*Wo, O) from :func:`nchw_to_rows`, out (O, C, kh, kw)."""
    np.matmul(v_rows.T, cols, out=out.reshape(out.shape[0], -1))  # (O, C*kh*kw)
    return out


def conv2d_vjp_bias(v, out):
    """``db = sum_{B,H,W} v``; v (B, O, Ho, Wo), out (O,)."""
    # NCHW, not v_rows: numpy reduces contiguous axes ~10x faster than a thin matrix's axis 0
    return np.sum(v, axis=(0, 2, 3), out=out)


def conv2d_vjp_input(v_rows, weight, stride, padding, dilation, dcols, out):
    """``dx = col2im(v_rows @ W2)``, the VJP w.r.t. the input (the transposed convolution);
    dcols (B*Ho*Wo, C*kh*kw) is scratch, out (B, C, H, W)."""
    np.matmul(v_rows, weight.reshape(weight.shape[0], -1), out=dcols)  # (B*Ho*Wo, C*kh*kw)
    return col2im(dcols, weight.shape[2:], stride, padding, dilation, out)
