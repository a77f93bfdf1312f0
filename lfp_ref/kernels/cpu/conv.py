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
serial or parallel build by size (see ``_jit``) and check what the kernels assume
(:mod:`lfp_ref.kernels.checks`): the geometry (pairs of ints, kernel, stride and dilation >= 1,
padding >= 0), 4-D inputs, the column matrices and outputs of the shapes the geometry gives, one
float dtype, C-contiguous arrays where a kernel indexes them flat, writeable outputs.

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

The batch-folded path. When the batch takes several chunks and one sample's GEMMs are small
and short (few output positions; :func:`batch_folded`), a chunk's column matrices are laid side
by side instead, ``cols[(c*kh + i)*kw + j, s, oh*Wo + ow]`` (C*kh*kw, S, Ho*Wo), so that each
contraction is one GEMM over the chunk, ``z_rows = W2 @ cols`` (O, S*Ho*Wo), and z and v are
swapped between (S, O, Ho*Wo) and (O, S, Ho*Wo) by a copy of contiguous runs.

The shifted-GEMM forward. For stride 1 and dilation 1 with enough channels, the forward pass
builds no column matrix: k*k GEMMs, one per kernel tap, each reading the zero-padded input at a
shifted offset, accumulate into the output (kn2row; :func:`shifted_forward` and the comment above
it say where and why).
"""

import numba
import numpy as np
from numba import prange

from .. import checks
from . import _blas
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


def _output_size(caller, image_shape, geometry):
    """``(Ho, Wo)`` of an image (B, C, H, W) under a checked geometry; >= 1 or a ValueError."""
    ho, wo = conv2d_output_size(*image_shape[2:], *geometry)
    if ho < 1 or wo < 1:
        raise ValueError(
            f"{caller}: an input of spatial size {image_shape[2]}x{image_shape[3]} gives no "
            f"output position under kernel_size={geometry[0]}, stride={geometry[1]}, "
            f"padding={geometry[2]}, dilation={geometry[3]} (output {ho}x{wo})"
        )
    return ho, wo


def _check_columns(caller, image_name, image, cols_name, cols, geometry, layout="rows"):
    """The geometry, a 4-D float image and a column matrix of its dtype and of the shape the
    geometry gives in ``layout``: "rows" (B*Ho*Wo, C*kh*kw), "samples" (B, C*kh*kw, Ho*Wo) or
    "folded" (C*kh*kw, B, Ho*Wo). Returns the checked geometry and (Ho, Wo)."""
    geometry = checks.geometry(caller, *geometry)
    checks.ndim(caller, image_name, image, 4, "(B, C, H, W)")
    checks.float_array(caller, image_name, image)
    checks.same_dtype(caller, cols_name, cols, image_name, image)
    ho, wo = _output_size(caller, image.shape, geometry)
    (kh, kw) = geometry[0]
    batch, fan_in = image.shape[0], image.shape[1] * kh * kw
    expected, names = {
        "rows": ((batch * ho * wo, fan_in), " (B*Ho*Wo, C*kh*kw)"),
        "samples": ((batch, fan_in, ho * wo), " (S, C*kh*kw, Ho*Wo)"),
        "folded": ((fan_in, batch, ho * wo), " (C*kh*kw, S, Ho*Wo)"),
    }[layout]
    checks.shape(caller, cols_name, cols, expected, names)
    return geometry, (ho, wo)


def im2col(x, kernel_size, stride, padding, dilation, out):
    """Fill the column matrix ``out`` (B*Ho*Wo, C*kh*kw) from x (B, C, H, W), laid out as in the
    module docstring."""
    geometry = (kernel_size, stride, padding, dilation)
    geometry, (ho, wo) = _check_columns("im2col", "x", x, "out", out, geometry)
    checks.output("im2col", "out", out, out.shape, need_contiguous=False)
    (kh, kw), (sh, sw), (ph, pw), (dh, dw) = geometry
    _im2col.pick(out.size)(x, kh, kw, sh, sw, ph, pw, dh, dw, ho, wo, out)
    return out


def nchw_to_rows(v, out):
    """``out[(b*Ho + oh)*Wo + ow, o] = v[b, o, oh, ow]``: v (B, O, Ho, Wo) -> out (B*Ho*Wo, O)."""
    caller = "nchw_to_rows"
    checks.ndim(caller, "v", v, 4, "(B, O, Ho, Wo)")
    checks.float_array(caller, "v", v)
    batch, n_out, ho, wo = v.shape
    expected = (batch * ho * wo, n_out)
    checks.output(caller, "out", out, expected, "v", v, need_contiguous=False)
    _nchw_to_rows.pick(out.size)(v, out)
    return out


def col2im(dcols, kernel_size, stride, padding, dilation, out):
    """The adjoint of :func:`im2col`: scatter-add dcols (B*Ho*Wo, C*kh*kw) into out
    (B, C, H, W), which is overwritten."""
    geometry = (kernel_size, stride, padding, dilation)
    geometry, (ho, wo) = _check_columns("col2im", "out", out, "dcols", dcols, geometry)
    checks.output("col2im", "out", out, out.shape, need_contiguous=False)
    (kh, kw), (sh, sw), (ph, pw), (dh, dw) = geometry
    _col2im.pick(dcols.size)(dcols, kh, kw, sh, sw, ph, pw, dh, dw, ho, wo, out)
    return out


def conv2d_vjp_bias(v, out):
    """``db = sum_{B,H,W} v``; v (B, O, Ho, Wo), out (O,)."""
    # NCHW, not v_rows: numpy reduces contiguous axes ~10x faster than a thin matrix's axis 0
    checks.ndim("conv2d_vjp_bias", "v", v, 4, "(B, O, Ho, Wo)")
    checks.float_array("conv2d_vjp_bias", "v", v)
    checks.output("conv2d_vjp_bias", "out", out, (v.shape[1],), "v", v, need_contiguous=False)
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


@kernel
def _im2col_folded(x, kh, kw, sh, sw, ph, pw, dh, dw, ho, wo, cols):
    # cols[(c*kh + i)*kw + j, s, oh*wo + ow] = x[s, c, oh*sh - ph + i*dh, ow*sw - pw + j*dw]:
    # one iteration per channel writes its taps' rows front to back (a loop over samples
    # outside, as in _im2col_samples, would write 300 rows far apart at once: measured slower)
    n_samples, n_chan, height, width = x.shape
    x_flat = x.reshape(-1)
    cols_flat = cols.reshape(-1)
    n_pos = ho * wo
    for c in prange(n_chan):
        for i in range(kh):
            for j in range(kw):
                shift = j * dw - pw
                lo = 0 if shift >= 0 else min((sw - 1 - shift) // sw, wo)
                hi = max(min((width - shift + sw - 1) // sw, wo), lo)
                row = ((c * kh + i) * kw + j) * n_samples * n_pos
                for s in range(n_samples):
                    plane = (s * n_chan + c) * height * width
                    for oh in range(ho):
                        ih = oh * sh - ph + i * dh
                        dst = np.uint64(row + s * n_pos + oh * wo)
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
def _col2im_folded(dcols, kh, kw, sh, sw, ph, pw, dh, dw, ho, wo, out):
    # the adjoint of _im2col_folded; one iteration per channel, which alone writes out[:, c]
    n_samples, n_chan, height, width = out.shape
    out_flat = out.reshape(-1)
    dcols_flat = dcols.reshape(-1)
    n_pos = ho * wo
    for c in prange(n_chan):
        for s in range(n_samples):
            plane = (s * n_chan + c) * height * width
            for t in range(np.uint64(height * width)):
                out_flat[np.uint64(plane) + t] = 0
        for i in range(kh):
            for j in range(kw):
                shift = j * dw - pw
                lo = 0 if shift >= 0 else min((sw - 1 - shift) // sw, wo)
                hi = max(min((width - shift + sw - 1) // sw, wo), lo)
                row = ((c * kh + i) * kw + j) * n_samples * n_pos
                for s in range(n_samples):
                    plane = (s * n_chan + c) * height * width
                    for oh in range(ho):
                        ih = oh * sh - ph + i * dh
                        if ih < 0 or ih >= height:
                            continue
                        src = np.uint64(row + s * n_pos + oh * wo)
                        dst = np.uint64(plane + ih * width + shift)
                        if sw == 1:
                            for t in range(np.uint64(lo), np.uint64(hi)):
                                out_flat[dst + t] += dcols_flat[src + t]
                        else:
                            step = np.uint64(sw)
                            for t in range(np.uint64(lo), np.uint64(hi)):
                                out_flat[dst + t * step] += dcols_flat[src + t]


@kernel
def _swap_leading(src, bias, out):
    # out[j, i, :] = src[i, j, :] (+ bias[i] when bias has entries); one iteration per out[j]
    n_i, n_j, n_pos = src.shape
    for j in prange(n_j):
        for i in range(n_i):
            if bias.size:
                b = bias[i]
                for t in range(n_pos):
                    out[j, i, t] = src[i, j, t] + b
            else:
                for t in range(n_pos):
                    out[j, i, t] = src[i, j, t]


def im2col_samples(x, kernel_size, stride, padding, dilation, out, folded=False):
    """Fill the sample-major column matrices ``out`` (S, C*kh*kw, Ho*Wo) from x (S, C, H, W),
    laid out as in the module docstring; with ``folded``, the batch-folded matrix ``out``
    (C*kh*kw, S, Ho*Wo), ``out[tap, s, p] = cols[s, tap, p]``."""
    caller = "im2col_samples"
    geometry = (kernel_size, stride, padding, dilation)
    layout = "folded" if folded else "samples"
    geometry, (ho, wo) = _check_columns(caller, "x", x, "out", out, geometry, layout)
    checks.contiguous(caller, "x", x)
    checks.output(caller, "out", out, out.shape)
    (kh, kw), (sh, sw), (ph, pw), (dh, dw) = geometry
    copy = _im2col_folded if folded else _im2col_samples
    copy.pick(out.size)(x, kh, kw, sh, sw, ph, pw, dh, dw, ho, wo, out)
    return out


def col2im_samples(dcols, kernel_size, stride, padding, dilation, out, folded=False):
    """The adjoint of :func:`im2col_samples`: scatter-add dcols (S, C*kh*kw, Ho*Wo), or with
    ``folded`` (C*kh*kw, S, Ho*Wo), into out (S, C, H, W), which is overwritten."""
    caller = "col2im_samples"
    geometry = (kernel_size, stride, padding, dilation)
    layout = "folded" if folded else "samples"
    geometry, (ho, wo) = _check_columns(caller, "out", out, "dcols", dcols, geometry, layout)
    checks.contiguous(caller, "dcols", dcols)
    checks.output(caller, "out", out, out.shape)
    (kh, kw), (sh, sw), (ph, pw), (dh, dw) = geometry
    scatter = _col2im_folded if folded else _col2im_samples
    scatter.pick(dcols.size)(dcols, kh, kw, sh, sw, ph, pw, dh, dw, ho, wo, out)
    return out


# Batch-folded GEMMs. When the batch is cut into chunks and one sample's products are short
# (few output positions), a chunk's column matrices are laid side by side, (C*kh*kw, S*Ho*Wo),
# and each pass is ONE GEMM per chunk instead of one per sample, at the price of swapping the
# two leading axes of z and v ((S, O, P) <-> (O, S, P), a copy of contiguous runs of P).
# Measured with 2 threads, forward + VJPs in one process, folded / sample-major:
# - 8x8 outputs win: the spiking CNN's second convolution (12 -> 64 channels, 5x5, 960 samples
#   of T x B) 0.86 (float32) and 0.92 (float64), the paper LeNet's second in float64 0.99;
# - 16x16 and more lose: a 1 -> 12, 5x5 layer (24x24 outputs) over 960 samples 1.53 / 1.45
#   (the spiking CNN's first layer, were it chunked), resnet-small's 16 -> 16 (32x32) 1.32 /
#   1.36, its 32 -> 32 (16x16) 1.05 / 1.05, its stride-2 16 -> 32 (16x16, chunked in float64)
#   1.69; the small VGG's (9.4M multiply-adds a sample) up to 1.3x on the VJPs.
# Hence both bounds: at most FOLD_MAX_POSITIONS output positions and FOLD_MAX_MACS a sample.
# Without chunks the sample-major path reuses the forward's columns, which the folded one cannot.
FOLD_MAX_POSITIONS = 128
FOLD_MAX_MACS = 4 << 20
# The one large GEMM wins by keeping both threads busy; in a process on one thread the
# per-sample GEMMs are as fast and the swaps are extra work (measured, float64, 1 thread: the
# paper LeNet's second convolution, chunked in float64, forward 1.47x, VJPs 1.26x; the spiking
# CNN's 1.14x / 1.03x). Numba's thread count stands for the process's: both it and OpenBLAS's
# default to the cores, and the benchmarks set the two alike.
FOLD_MIN_THREADS = 2


def batch_folded(batch, chunk, n_out, fan_in, n_positions):
    """Whether the chunked passes take the batch-folded GEMMs: the batch takes more than one
    chunk, one sample has at most FOLD_MAX_POSITIONS output positions (``Ho*Wo``) and fewer
    than FOLD_MAX_MACS multiply-adds (``O * C*kh*kw * Ho*Wo``), and Numba runs at least
    FOLD_MIN_THREADS threads."""
    return (
        chunk < batch
        and n_positions <= FOLD_MAX_POSITIONS
        and n_out * fan_in * n_positions < FOLD_MAX_MACS
        and numba.get_num_threads() >= FOLD_MIN_THREADS
    )


# The shifted-GEMM forward (kn2row). For stride 1 and dilation 1, output position (oh, ow) of
# sample b reads the padded input at (oh + i, ow + j) for tap (i, j). Lay the zero-padded batch
# out channels first, ``padded[c, (b*Hp + r)*Wp + q]`` (C, B*Hp*Wp), and index the outputs on
# the same grid, ``grid[o, (b*Hp + oh)*Wp + ow]``: tap (i, j) is then the same matrix shifted by
# ``i*Wp + j`` columns, and
#
#     grid = sum_{i, j} W[:, :, i, j] @ padded[:, i*Wp + j :][:, :n_cols]     (O, n_cols)
#
# k*k GEMMs accumulated into one output (BLAS's beta = 1, :mod:`._blas`) with no column matrix.
# The grid also holds positions that are not outputs (those with oh >= Ho or ow >= Wo, their
# windows wrap into the next row or sample); a copy keeps the outputs, adds the bias and
# writes NCHW. The wasted share is 1 - Ho*Wo / (Hp*Wp).
#
# Where it runs (forward only; measured in one process, float32 / float64, im2col -> shifted,
# batch 64, 3x3, padding 1): resnet-small's 16 -> 16 at 32x32 6.95 -> 5.09 / 10.3 -> 7.0 ms,
# its 32 -> 32 at 16x16 4.75 -> 3.38 / 9.2 -> 5.7, the small VGG's 32 -> 32 at 32x32
# 16.4 -> 13.7, its 64 -> 64 at 16x16 12.7 -> 10.0. Lost: 8 channels (float64 1.29x), 16 -> 16 at
# 8x8 (1.10x / 1.57x: the grid wastes 36 %). The input VJP as a shifted convolution of v (the
# flipped kernel, padding k - 1 - p) won on 16 channels and lost on 32 and 64 (1.1-1.4x against
# im2col sharing its columns with the weight VJP); the weight VJP as k*k GEMMs with the whole
# grid as the inner dimension lost everywhere (1.3-2.2x: 16x16 to 64x64 outputs, each a sum
# over ~65k columns). So both VJPs stay im2col, and the shifted forward runs only where the
# forward's columns would not serve the VJP anyway (the batch takes more than one chunk).
SHIFTED_MIN_CHANNELS = 16
SHIFTED_MIN_FILL = 0.6  # at least this share of the grid is outputs
# grid columns a GEMM writes: tiles of 16384, 32768 or all columns within 10 % of each other on
# the four layers above, 4096 up to 1.5x slower
SHIFTED_TILE = 32768


def shifted_forward(batch, chunk, channels, geometry, image_size):
    """Whether :func:`conv2d_forward_samples` takes the shifted GEMMs (see above): NumPy's
    OpenBLAS is at hand, the batch takes more than one chunk, ``channels`` (C) is at least
    SHIFTED_MIN_CHANNELS, stride and dilation are 1 and at least SHIFTED_MIN_FILL of the padded
    grid are outputs. ``geometry``: (kernel_size, stride, padding, dilation) as pairs;
    ``image_size``: (H, W)."""
    (kh, kw), stride, (ph, pw), dilation = geometry
    if not (_blas.AVAILABLE and chunk < batch and channels >= SHIFTED_MIN_CHANNELS):
        return False
    if tuple(stride) != (1, 1) or tuple(dilation) != (1, 1):
        return False
    hp, wp = image_size[0] + 2 * ph, image_size[1] + 2 * pw
    return (hp - kh + 1) * (wp - kw + 1) >= SHIFTED_MIN_FILL * hp * wp


@kernel(streaming=True)
def _gather_grid(grid, hp, wp, bias, out):
    # out[b, o, oh, ow] = grid[o, (b*hp + oh)*wp + ow] (+ bias[o] when bias has entries)
    n_batch, n_out, ho, wo = out.shape
    n_cols = grid.shape[1]
    grid_flat = grid.reshape(-1)
    out_flat = out.reshape(-1)
    for n in prange(n_batch * n_out):
        b = n // n_out
        o = n - b * n_out
        for oh in range(ho):
            src = np.uint64(o * n_cols + (b * hp + oh) * wp)
            dst = np.uint64(((b * n_out + o) * ho + oh) * wo)
            if bias.size:
                add = bias[o]
                for t in range(np.uint64(wo)):
                    out_flat[dst + t] = grid_flat[src + t] + add
            else:
                for t in range(np.uint64(wo)):
                    out_flat[dst + t] = grid_flat[src + t]


def _forward_shifted(x, weight, bias, padding, out):
    """:func:`conv2d_forward_samples` by shifted GEMMs (arguments checked there; stride and
    dilation 1)."""
    n_batch, channels, height, width = x.shape
    n_out, _, kh, kw = weight.shape
    ph, pw = padding
    hp, wp = height + 2 * ph, width + 2 * pw
    n_grid = n_batch * hp * wp
    n_cols = n_grid - (kh - 1) * wp - (kw - 1)  # the last output's grid column + 1 and more
    # the padded batch channels first is the batch-folded column matrix of a 1x1 kernel with
    # this padding: padded[c, (b*Hp + r)*Wp + q] = x[b, c, r - ph, q - pw]
    padded = np.empty((channels, n_grid), x.dtype)
    pad = _im2col_folded.pick(padded.size)
    pad(x, 1, 1, 1, 1, ph, pw, 1, 1, hp, wp, padded.reshape(channels, n_batch, hp * wp))
    taps = np.ascontiguousarray(weight.transpose(2, 3, 0, 1))  # (kh, kw, O, C)
    grid = np.empty((n_out, n_cols), x.dtype)
    for start in range(0, n_cols, SHIFTED_TILE):  # a tile of output columns stays in cache
        stop = min(start + SHIFTED_TILE, n_cols)
        for i in range(kh):
            for j in range(kw):
                shift = i * wp + j
                beta = 0.0 if i == j == 0 else 1.0
                _blas.gemm(taps[i, j], padded[:, start + shift : stop + shift],
                           grid[:, start:stop], beta)  # fmt: skip
    bias_entries = np.empty(0, x.dtype) if bias is None else bias
    _gather_grid.pick(out.size)(grid, hp, wp, bias_entries, out)
    return out


def _folded_view(scratch, rows, n_samples, n_positions):
    """The first ``rows * n_samples * n_positions`` entries of a C-contiguous scratch array as a
    (rows, n_samples, n_positions) batch-folded array (columns: rows = C*kh*kw; z and v: O)."""
    return scratch.reshape(-1)[: rows * n_samples * n_positions].reshape(
        rows, n_samples, n_positions
    )


def _check_conv(caller, x, weight, bias, stride, padding, dilation):
    """x (B, C, H, W) C-contiguous float, weight (O, C, kh, kw) and bias (O,) or None of its
    dtype, a geometry with at least one output position. Returns O, C*kh*kw and (Ho, Wo)."""
    checks.ndim(caller, "x", x, 4, "(B, C, H, W)")
    checks.float_array(caller, "x", x)
    checks.contiguous(caller, "x", x)
    checks.ndim(caller, "weight", weight, 4, "(O, C, kh, kw)")
    checks.same_dtype(caller, "weight", weight, "x", x)
    n_out, channels, kh, kw = weight.shape
    if channels != x.shape[1]:
        raise ValueError(
            f"{caller}: weight {tuple(weight.shape)} has {channels} input channels but x "
            f"{tuple(x.shape)} has {x.shape[1]}"
        )
    if bias is not None:
        checks.same_dtype(caller, "bias", bias, "x", x)
        checks.shape(caller, "bias", bias, (n_out,), " (O,)")
    geometry = checks.geometry(caller, (kh, kw), stride, padding, dilation)
    return n_out, channels * kh * kw, _output_size(caller, x.shape, geometry)


def _check_scratch(caller, name, scratch, x, per_sample, samples=None):
    """A C-contiguous, writeable scratch array (S, *per_sample) of x's dtype with S >= 1 (and S
    equal to ``samples`` when given)."""
    checks.ndim(caller, name, scratch, 3, f"(S, {per_sample[0]}, {per_sample[1]})")
    chunk = scratch.shape[0] if samples is None else samples
    if chunk < 1:
        raise ValueError(f"{caller}: {name} must hold at least one sample, got {scratch.shape}")
    checks.output(caller, name, scratch, (chunk, *per_sample), "x", x)


def _chunks(batch, chunk):
    """``(start, stop)`` of each chunk of the batch."""
    return [(start, min(batch, start + chunk)) for start in range(0, batch, chunk)]


def _alternating(cols, n_batch, single):
    """The column buffers successive chunks take turns in: ``cols`` and a second one of its
    shape, or ``cols`` alone when there is one chunk or ``single``. Overwriting the columns the
    last GEMM has just read costs: OpenBLAS's other thread read part of them, and writing those
    lines takes them back from its core (measured, float32, 7 samples of 16 channels at 32x32:
    im2col 0.20 ms alone, 0.35 ms right after the GEMM over the same buffer, 0.19 ms into the
    other buffer)."""
    if single or n_batch <= cols.shape[0]:
        return (cols, cols)
    return (cols, np.empty_like(cols))


def conv2d_forward_samples(x, weight, bias, stride, padding, dilation, cols, out):
    """``z = conv2d(x, W) + b`` chunk by chunk: per chunk of samples, im2col into ``cols``
    (S, C*kh*kw, Ho*Wo), S from :func:`samples_per_chunk`, and one GEMM per sample
    ``z[s] = W2 @ cols[s]``, or one per chunk on the batch-folded path (:func:`batch_folded`;
    ``cols`` is then scratch of the same size). out (B, O, Ho, Wo). When S covers the batch,
    ``cols`` holds the whole batch's sample-major column matrices afterwards
    (:func:`conv2d_vjp_samples` can reuse them). Where :func:`shifted_forward` says so, the
    pass takes the shifted GEMMs instead and leaves ``cols`` as it was (the batch then takes
    more than one chunk, so no VJP expects the columns)."""
    caller = "conv2d_forward_samples"
    n_out, fan_in, (ho, wo) = _check_conv(caller, x, weight, bias, stride, padding, dilation)
    _check_scratch(caller, "cols", cols, x, (fan_in, ho * wo))
    checks.output(caller, "out", out, (x.shape[0], n_out, ho, wo), "x", x)
    n_batch, n_pos, chunk = x.shape[0], ho * wo, cols.shape[0]
    (kh, kw), (sh, sw), (ph, pw), (dh, dw) = weight.shape[2:], stride, padding, dilation
    kernel_geometry = ((kh, kw), stride, padding, dilation)
    if shifted_forward(n_batch, chunk, x.shape[1], kernel_geometry, x.shape[2:]):
        return _forward_shifted(x, weight, bias, (ph, pw), out)
    folded = batch_folded(n_batch, chunk, n_out, fan_in, n_pos)
    geometry = (kh, kw, sh, sw, ph, pw, dh, dw, ho, wo)
    # the build: the sample-major copy by the chunk's size, the batch-folded one by the whole
    # batch's (its chunks are cut to cache size, just below the threshold; measured: threads
    # helped the folded copy of the spiking CNN and slowed the small VGG's sample-major one)
    whole = n_batch * fan_in * n_pos
    im2col = _im2col_folded.pick(whole) if folded else _im2col_samples.pick(chunk * fan_in * n_pos)
    w2 = weight.reshape(n_out, -1)  # (O, C*kh*kw)
    z3 = out.reshape(n_batch, n_out, -1)  # (B, O, Ho*Wo)
    swap = _swap_leading.pick(out.size)
    bias_entries = np.empty(0, x.dtype) if bias is None else bias  # the swap adds them
    z_buffer = np.empty(n_out * chunk * n_pos if folded else 0, x.dtype)  # every chunk's z rows
    buffers = _alternating(cols, n_batch, folded)
    for index, (start, stop) in enumerate(_chunks(n_batch, chunk)):
        size = stop - start
        if folded:
            block = _folded_view(cols, fan_in, size, n_pos)
            im2col(x[start:stop], *geometry, block)
            z_rows = _folded_view(z_buffer, n_out, size, n_pos)  # (O, S, Ho*Wo)
            np.matmul(w2, block.reshape(fan_in, -1), out=z_rows.reshape(n_out, -1))
            swap(z_rows, bias_entries, z3[start:stop])
            continue
        block = buffers[index % 2][:size]
        im2col(x[start:stop], *geometry, block)
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

    Scratch: cols and dcols (S, C*kh*kw, Ho*Wo), partial (S, C*kh*kw, O); on the batch-folded
    path (:func:`batch_folded`) cols and dcols hold (C*kh*kw, S, Ho*Wo) matrices and partial is
    not used. ``cols_ready``: cols already holds the whole batch's sample-major column matrices
    (the forward pass left them there).
    """
    caller = "conv2d_vjp_samples"
    n_out, fan_in, (ho, wo) = _check_conv(caller, x, weight, None, stride, padding, dilation)
    checks.same_dtype(caller, "v", v, "x", x)
    checks.shape(caller, "v", v, (x.shape[0], n_out, ho, wo), " (B, O, Ho, Wo)")
    _check_scratch(caller, "cols", cols, x, (fan_in, ho * wo))
    _check_scratch(caller, "partial", partial, x, (fan_in, n_out), cols.shape[0])
    checks.output(caller, "weight_out", weight_out, weight.shape, "x", x)
    if input_out is not None:
        _check_scratch(caller, "dcols", dcols, x, (fan_in, ho * wo), cols.shape[0])
        checks.output(caller, "input_out", input_out, x.shape, "x", x)
    if cols_ready and cols.shape[0] < x.shape[0]:
        raise ValueError(
            f"{caller}: cols_ready=True says cols holds the whole batch's columns, but cols "
            f"{tuple(cols.shape)} has room for {cols.shape[0]} of the {x.shape[0]} samples"
        )
    n_batch, n_pos, chunk = x.shape[0], ho * wo, cols.shape[0]
    folded = batch_folded(n_batch, chunk, n_out, fan_in, n_pos)
    (kh, kw), (sh, sw), (ph, pw), (dh, dw) = weight.shape[2:], stride, padding, dilation
    geometry = (kh, kw, sh, sw, ph, pw, dh, dw, ho, wo)
    w2 = weight.reshape(n_out, -1)  # (O, C*kh*kw)
    v3 = v.reshape(n_batch, n_out, -1)  # (B, O, Ho*Wo)
    if folded:
        return _vjp_folded(x, v3, w2, geometry, cols, dcols, weight_out, input_out, chunk)
    im2col = _im2col_samples.pick(chunk * fan_in * n_pos)  # as in the forward pass
    col2im = _col2im_samples.pick(chunk * fan_in * n_pos)
    weight_t = np.zeros((w2.shape[1], n_out), weight.dtype)  # (C*kh*kw, O)
    buffers = _alternating(cols, n_batch, cols_ready)
    for index, (start, stop) in enumerate(_chunks(n_batch, chunk)):
        size = stop - start
        block = buffers[index % 2][:size]
        if not cols_ready:
            im2col(x[start:stop], *geometry, block)
        # sample by sample (C*kh*kw, Ho*Wo) @ (Ho*Wo, O): measured faster than one GEMM over the
        # concatenated samples, which needs a transposed copy of the columns
        np.matmul(block, v3[start:stop].transpose(0, 2, 1), out=partial[:size])
        weight_t += partial[:size].sum(axis=0)
        if input_out is not None:
            np.matmul(w2.T, v3[start:stop], out=dcols[:size])  # (S, C*kh*kw, Ho*Wo)
            col2im(dcols[:size], *geometry, input_out[start:stop])
    weight_out.reshape(n_out, -1)[...] = weight_t.T
    return weight_out, input_out


def _vjp_folded(x, v3, w2, geometry, cols, dcols, weight_out, input_out, chunk):
    """:func:`conv2d_vjp_samples` on the batch-folded path (arguments checked there)."""
    n_batch, n_out, n_pos = v3.shape
    fan_in = w2.shape[1]
    im2col = _im2col_folded.pick(n_batch * fan_in * n_pos)
    col2im = _col2im_folded.pick(n_batch * fan_in * n_pos)
    swap = _swap_leading.pick(v3.size)
    no_bias = np.empty(0, x.dtype)
    weight_rows = np.zeros((n_out, fan_in), x.dtype)  # (O, C*kh*kw)
    v_buffer = np.empty(n_out * chunk * n_pos, x.dtype)  # every chunk's v rows
    for start, stop in _chunks(n_batch, chunk):
        size = stop - start
        block = _folded_view(cols, fan_in, size, n_pos)
        im2col(x[start:stop], *geometry, block)
        v_rows = _folded_view(v_buffer, n_out, size, n_pos)  # (O, S, Ho*Wo)
        swap(v3[start:stop], no_bias, v_rows)
        v_rows = v_rows.reshape(n_out, -1)  # (O, S*Ho*Wo)
        weight_rows += np.matmul(v_rows, block.reshape(fan_in, -1).T)  # np.matmul: see _blas
        if input_out is not None:
            dblock = _folded_view(dcols, fan_in, size, n_pos)
            np.matmul(w2.T, v_rows, out=dblock.reshape(fan_in, -1))  # (C*kh*kw, S*Ho*Wo)
            col2im(dblock, *geometry, input_out[start:stop])
    weight_out.reshape(n_out, -1)[...] = weight_rows
    return weight_out, input_out
