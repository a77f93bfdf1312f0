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

The layer's own passes use the sample-major fast path below; the rules (``lfp_ref.rules``) see a
convolution in this row layout, through :func:`im2col`, :func:`nchw_to_rows` and :func:`col2im`.

Kernels take arrays and ints and write into preallocated arrays; the public wrappers pick the
serial or parallel build by size (see ``_jit``) and do no validation.

The fast path: sample-major columns. The layer's own passes use a second layout, one column
matrix per sample, ``cols[s]`` of shape (C*kh*kw, Ho*Wo) with

    cols[s, (c*kh + i)*kw + j, oh*Wo + ow] = x[s, c, oh*sh - ph + i*dh, ow*sw - pw + j*dw]

(0 in the padding), so that per sample every contraction is a GEMM whose result is already in
NCHW order (no transposition of z, v or dx):

    forward       z[s]   = W2 @ cols[s]                     (O, Ho*Wo)
    weight VJP    dW2^T  = sum_s cols[s] @ v[s]^T           (C*kh*kw, O)
    input VJP     dcols  = W2^T @ v[s], then col2im         (C*kh*kw, Ho*Wo)

The batch is processed in chunks of samples whose column matrices fit in ``CHUNK_BYTES`` (they
stay in cache between the im2col and the GEMM that reads them). The copy kernels walk each
(sample, channel, tap, output row) as one contiguous run of output columns and index through flat
arrays with unsigned offsets: with signed offsets numba checks for negative indices and LLVM
does not vectorise the run (measured: 5x slower).
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


def conv2d_vjp_bias(v, out):
    """``db = sum_{B,H,W} v``; v (B, O, Ho, Wo), out (O,)."""
    # NCHW, not v_rows: numpy reduces contiguous axes ~10x faster than a thin matrix's axis 0
    return np.sum(v, axis=(0, 2, 3), out=out)


# -- sample-major columns (the layer's fast path) -------------------------------------------

# How the batch is cut into chunks of samples (measured with 2 threads, float32, forward + both
# VJPs of the benchmark convolutions):
# - when the whole batch's column matrices fit in WHOLE_BATCH_BYTES they are built once, in one
#   chunk, and the weight VJP reuses them: rebuilding them chunk by chunk made the paper
#   LeNet's second convolution (8x8 outputs: short, costly runs to copy) 1.4x slower;
# - otherwise chunks of CHUNK_BYTES, small enough that a chunk is still in cache when its GEMMs
#   read it: on the VGG convolutions 4 MiB was the best of 1, 2, 4, 16 and 64 MiB (by 0-15%).
WHOLE_BATCH_BYTES = 16 << 20
CHUNK_BYTES = 4 << 20


def samples_per_chunk(batch, fan_in, n_positions, itemsize):
    """How many samples' column matrices (``fan_in * n_positions`` entries each) go in one
    chunk: the whole batch if it fits in ``WHOLE_BATCH_BYTES``, else as many as fit in
    ``CHUNK_BYTES``; at least 1."""
    per_sample = max(fan_in * n_positions * itemsize, 1)
    if batch * per_sample <= WHOLE_BATCH_BYTES:
        return int(batch)
    return int(min(batch, max(1, CHUNK_BYTES // per_sample)))


@kernel
def _im2col_samples(x, kh, kw, sh, sw, ph, pw, dh, dw, ho, wo, cols):
    # cols[s, (c*kh + i)*kw + j, oh*wo + ow] = x[s, c, oh*sh - ph + i*dh, ow*sw - pw + j*dw]
    n_samples, n_chan, height, width = x.shape
    x_flat = x.reshape(-1)
    cols_flat = cols.reshape(-1)
    fan_in = n_chan * kh * kw
    n_pos = ho * wo
    for s in prange(n_samples):
        for c in range(n_chan):
            plane = (s * n_chan + c) * height * width
            for i in range(kh):
                for j in range(kw):
                    shift = j * dw - pw
                    # the output columns whose input column lies inside the image: [lo, hi)
                    lo = 0 if shift >= 0 else min((sw - 1 - shift) // sw, wo)
                    hi = max(min((width - shift + sw - 1) // sw, wo), lo)
                    row = (s * fan_in + (c * kh + i) * kw + j) * n_pos
                    for oh in range(ho):
                        ih = oh * sh - ph + i * dh
                        dst = np.uint64(row + oh * wo)
                        if ih < 0 or ih >= height:
                            for t in range(np.uint64(wo)):
                                cols_flat[dst + t] = 0
                            continue
                        for t in range(np.uint64(lo)):
                            cols_flat[dst + t] = 0
                        src = np.uint64(plane + ih * width + shift)
                        if sw == 1:
                            for t in range(np.uint64(lo), np.uint64(hi)):
                                cols_flat[dst + t] = x_flat[src + t]
                        else:
                            step = np.uint64(sw)
                            for t in range(np.uint64(lo), np.uint64(hi)):
                                cols_flat[dst + t] = x_flat[src + t * step]
                        for t in range(np.uint64(hi), np.uint64(wo)):
                            cols_flat[dst + t] = 0


@kernel
def _col2im_samples(dcols, kh, kw, sh, sw, ph, pw, dh, dw, ho, wo, out):
    # the adjoint of _im2col_samples; each sample's plane is written by one iteration only
    n_samples, n_chan, height, width = out.shape
    out_flat = out.reshape(-1)
    dcols_flat = dcols.reshape(-1)
    fan_in = n_chan * kh * kw
    n_pos = ho * wo
    for s in prange(n_samples):
        for c in range(n_chan):
            plane = (s * n_chan + c) * height * width
            for t in range(np.uint64(height * width)):
                out_flat[np.uint64(plane) + t] = 0
            for i in range(kh):
                for j in range(kw):
                    shift = j * dw - pw
                    lo = 0 if shift >= 0 else min((sw - 1 - shift) // sw, wo)
                    hi = max(min((width - shift + sw - 1) // sw, wo), lo)
                    row = (s * fan_in + (c * kh + i) * kw + j) * n_pos
                    for oh in range(ho):
                        ih = oh * sh - ph + i * dh
                        if ih < 0 or ih >= height:
                            continue
                        src = np.uint64(row + oh * wo)
                        dst = np.uint64(plane + ih * width + shift)
                        if sw == 1:
                            for t in range(np.uint64(lo), np.uint64(hi)):
                                out_flat[dst + t] += dcols_flat[src + t]
                        else:
                            step = np.uint64(sw)
                            for t in range(np.uint64(lo), np.uint64(hi)):
                                out_flat[dst + t * step] += dcols_flat[src + t]


def im2col_samples(x, kernel_size, stride, padding, dilation, out):
    """Fill the sample-major column matrices ``out`` (S, C*kh*kw, Ho*Wo) from x (S, C, H, W),
    laid out as in the module docstring."""
    ho, wo = conv2d_output_size(*x.shape[2:], kernel_size, stride, padding, dilation)
    _im2col_samples.pick(out.size)(x, *kernel_size, *stride, *padding, *dilation, ho, wo, out)
    return out


def col2im_samples(dcols, kernel_size, stride, padding, dilation, out):
    """The adjoint of :func:`im2col_samples`: scatter-add dcols (S, C*kh*kw, Ho*Wo) into out
    (S, C, H, W), which is overwritten."""
    ho, wo = conv2d_output_size(*out.shape[2:], kernel_size, stride, padding, dilation)
    _col2im_samples.pick(dcols.size)(dcols, *kernel_size, *stride, *padding, *dilation, ho, wo, out)
    return out


def conv2d_forward_samples(x, weight, bias, stride, padding, dilation, cols, out):
    """``z = conv2d(x, W) + b`` chunk by chunk: per chunk of samples, im2col into ``cols``
    (S, C*kh*kw, Ho*Wo), S from :func:`samples_per_chunk`, and one GEMM per sample
    ``z[s] = W2 @ cols[s]``. out (B, O, Ho, Wo). When S covers the batch, ``cols`` holds the
    whole batch's column matrices afterwards (:func:`conv2d_vjp_samples` can reuse them)."""
    n_batch, n_out = x.shape[0], weight.shape[0]
    chunk = cols.shape[0]
    w2 = weight.reshape(n_out, -1)  # (O, C*kh*kw)
    z3 = out.reshape(n_batch, n_out, -1)  # (B, O, Ho*Wo)
    for start in range(0, n_batch, chunk):
        stop = min(n_batch, start + chunk)
        block = cols[: stop - start]
        im2col_samples(x[start:stop], weight.shape[2:], stride, padding, dilation, block)
        np.matmul(w2, block, out=z3[start:stop])  # (S, O, Ho*Wo)
        if bias is not None:  # while the chunk's outputs are in cache
            z3[start:stop] += bias[:, None]
    return out


def conv2d_vjp_samples(
    x,
    weight,
    v,
    stride,
    padding,
    dilation,
    cols,
    dcols,
    partial,
    weight_out,
    input_out,
    cols_ready=False,
):
    """Both VJPs of the convolution at x, chunk by chunk::

        weight_out = sum_s (cols[s] @ v[s]^T)^T          (O, C, kh, kw)
        input_out  = col2im(W2^T @ v[s])                 (B, C, H, W); None skips it

    Scratch: cols and dcols (S, C*kh*kw, Ho*Wo), partial (S, C*kh*kw, O). ``cols_ready``: cols
    already holds the whole batch's column matrices (the forward pass left them there).
    """
    n_batch, n_out = x.shape[0], weight.shape[0]
    chunk = cols.shape[0]
    geometry = (weight.shape[2:], stride, padding, dilation)
    w2 = weight.reshape(n_out, -1)  # (O, C*kh*kw)
    v3 = v.reshape(n_batch, n_out, -1)  # (B, O, Ho*Wo)
    weight_t = np.zeros((w2.shape[1], n_out), weight.dtype)  # (C*kh*kw, O)
    for start in range(0, n_batch, chunk):
        stop = min(n_batch, start + chunk)
        size = stop - start
        block = cols[:size]
        if not cols_ready:
            im2col_samples(x[start:stop], *geometry, block)
        # sample by sample (C*kh*kw, Ho*Wo) @ (Ho*Wo, O): measured faster than one GEMM over the
        # concatenated samples, which needs a transposed copy of the columns
        np.matmul(block, v3[start:stop].transpose(0, 2, 1), out=partial[:size])
        weight_t += partial[:size].sum(axis=0)
        if input_out is not None:
            np.matmul(w2.T, v3[start:stop], out=dcols[:size])  # (S, C*kh*kw, Ho*Wo)
            col2im_samples(dcols[:size], *geometry, input_out[start:stop])
    weight_out.reshape(n_out, -1)[...] = weight_t.T
    return weight_out, input_out
