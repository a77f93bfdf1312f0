"""The CUDA twins of ``kernels/cpu/conv.py``: Conv2d as im2col plus GEMMs, in both column layouts
the layers use (see the CPU module's docstring for the layouts and the contractions):

- the row layout ``cols`` (B*Ho*Wo, C*kh*kw) that the LRP rules read (:func:`im2col`,
  :func:`nchw_to_rows`, :func:`col2im`);
- the sample-major layout ``cols[s]`` (C*kh*kw, Ho*Wo) of the layer's own passes
  (:func:`im2col_samples`, :func:`col2im_samples`, :func:`conv2d_forward_samples`,
  :func:`conv2d_vjp_samples`).

The copies are one thread per entry they write. The adjoints (col2im) are gathers, one thread per
input entry summing the column entries that im2col filled from it, in the order in which the CPU
twin's scatter adds them, so no two threads write one entry (no atomics) and the sums are
deterministic. The GEMMs go to the array namespace's matmul (cuBLAS on a device), the bias VJP's
sum to its sum. Same names, signatures and argument checks (the CPU module's check helpers,
built on :mod:`lfp_ref.kernels.checks`) as the CPU module.
"""

from numba import cuda

from .. import checks
from ..cpu.conv import _check_columns, _check_conv, _check_scratch
from ._launch import array_module, device_zeros, flat, kernel

# How the batch is cut into chunks of samples. A device wants large GEMMs, so the whole batch's
# column matrices are built at once up to WHOLE_BATCH_BYTES, else in chunks of CHUNK_BYTES (the
# CPU twin's 16 / 4 MiB are sized to its caches). Not tuned: no device run has been made yet.
WHOLE_BATCH_BYTES = 256 << 20
CHUNK_BYTES = 64 << 20


@kernel
def _im2col(x, kh, kw, sh, sw, ph, pw, dh, dw, ho, wo, cols):
    # cols (flat view of (B*Ho*Wo, C*kh*kw)); cols[row, (c*kh + i)*kw + j] = x[b, c, ih, iw]
    n_chan, height, width = x.shape[1], x.shape[2], x.shape[3]
    fan_in = n_chan * kh * kw
    for k in range(cuda.grid(1), cols.size, cuda.gridsize(1)):
        row = k // fan_in
        col = k - row * fan_in
        b = row // (ho * wo)
        pos = row - b * (ho * wo)
        oh = pos // wo
        ow = pos - oh * wo
        c = col // (kh * kw)
        tap = col - c * (kh * kw)
        i = tap // kw
        j = tap - i * kw
        ih = oh * sh - ph + i * dh
        iw = ow * sw - pw + j * dw
        if 0 <= ih < height and 0 <= iw < width:
            cols[k] = x[b, c, ih, iw]
        else:
            cols[k] = 0


@kernel
def _nchw_to_rows(v, out):
    # out (flat view of (B*Ho*Wo, O)); out[(b*Ho + oh)*Wo + ow, o] = v[b, o, oh, ow]
    n_out, ho, wo = v.shape[1], v.shape[2], v.shape[3]
    for k in range(cuda.grid(1), out.size, cuda.gridsize(1)):
        row = k // n_out
        o = k - row * n_out
        b = row // (ho * wo)
        pos = row - b * (ho * wo)
        oh = pos // wo
        out[k] = v[b, o, oh, pos - oh * wo]


@kernel
def _col2im(dcols, kh, kw, sh, sw, ph, pw, dh, dw, ho, wo, zero, out):
    # out[b, c, ih, iw] = the sum of the dcols entries im2col filled from x[b, c, ih, iw], added
    # in the CPU scatter's order: output positions (oh, ow) ascending, i.e. taps (i, j) descending
    n_chan, height, width = out.shape[1], out.shape[2], out.shape[3]
    fan_in = n_chan * kh * kw
    plane = height * width
    for k in range(cuda.grid(1), out.size, cuda.gridsize(1)):
        bc = k // plane
        rest = k - bc * plane
        ih = rest // width
        iw = rest - ih * width
        b = bc // n_chan
        c = bc - b * n_chan
        total = zero
        for i in range(kh - 1, -1, -1):
            th = ih + ph - i * dh  # oh * sh
            if th < 0 or th % sh != 0 or th // sh >= ho:
                continue
            oh = th // sh
            for j in range(kw - 1, -1, -1):
                tw = iw + pw - j * dw  # ow * sw
                if tw < 0 or tw % sw != 0 or tw // sw >= wo:
                    continue
                row = (b * ho + oh) * wo + tw // sw
                total += dcols[row * fan_in + (c * kh + i) * kw + j]
        out[b, c, ih, iw] = total


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
    CPU module's docstring."""
    geometry = (kernel_size, stride, padding, dilation)
    geometry, (ho, wo) = _check_columns("im2col", "x", x, "out", out, geometry)
    checks.output("im2col", "out", out, out.shape)
    kernel_size, stride, padding, dilation = geometry
    _im2col(out.size, x, *kernel_size, *stride, *padding, *dilation, ho, wo, flat(out))
    return out


def nchw_to_rows(v, out):
    """``out[(b*Ho + oh)*Wo + ow, o] = v[b, o, oh, ow]``: v (B, O, Ho, Wo) -> out (B*Ho*Wo, O)."""
    caller = "nchw_to_rows"
    checks.ndim(caller, "v", v, 4, "(B, O, Ho, Wo)")
    checks.float_array(caller, "v", v)
    batch, n_out, ho, wo = v.shape
    checks.output(caller, "out", out, (batch * ho * wo, n_out), "v", v)
    _nchw_to_rows(out.size, v, flat(out))
    return out


def col2im(dcols, kernel_size, stride, padding, dilation, out):
    """The adjoint of :func:`im2col`: sum dcols (B*Ho*Wo, C*kh*kw) into out (B, C, H, W), which is
    overwritten."""
    geometry = (kernel_size, stride, padding, dilation)
    geometry, (ho, wo) = _check_columns("col2im", "out", out, "dcols", dcols, geometry)
    checks.contiguous("col2im", "dcols", dcols)
    checks.output("col2im", "out", out, out.shape, need_contiguous=False)
    zero = out.dtype.type(0)
    _col2im(out.size, flat(dcols), *(v for pair in geometry for v in pair), ho, wo, zero, out)
    return out


def conv2d_vjp_bias(v, out):
    """``db = sum_{B,H,W} v``; v (B, O, Ho, Wo), out (O,): the array namespace's sum (the CPU
    twin's NumPy sum under the simulator)."""
    checks.ndim("conv2d_vjp_bias", "v", v, 4, "(B, O, Ho, Wo)")
    checks.float_array("conv2d_vjp_bias", "v", v)
    checks.output("conv2d_vjp_bias", "out", out, (v.shape[1],), "v", v, need_contiguous=False)
    return array_module(v).sum(v, axis=(0, 2, 3), out=out)


# -- sample-major columns (the layer's fast path) -------------------------------------------


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
    # cols (flat view of (S, C*kh*kw, Ho*Wo));
    # cols[s, (c*kh + i)*kw + j, oh*wo + ow] = x[s, c, oh*sh - ph + i*dh, ow*sw - pw + j*dw]
    n_chan, height, width = x.shape[1], x.shape[2], x.shape[3]
    fan_in = n_chan * kh * kw
    n_pos = ho * wo
    for k in range(cuda.grid(1), cols.size, cuda.gridsize(1)):
        line = k // n_pos  # s * fan_in + (c*kh + i)*kw + j
        pos = k - line * n_pos
        s = line // fan_in
        col = line - s * fan_in
        c = col // (kh * kw)
        tap = col - c * (kh * kw)
        i = tap // kw
        j = tap - i * kw
        oh = pos // wo
        ow = pos - oh * wo
        ih = oh * sh - ph + i * dh
        iw = ow * sw - pw + j * dw
        if 0 <= ih < height and 0 <= iw < width:
            cols[k] = x[s, c, ih, iw]
        else:
            cols[k] = 0


@kernel
def _col2im_samples(dcols, kh, kw, sh, sw, ph, pw, dh, dw, ho, wo, zero, out):
    # the adjoint of _im2col_samples, one thread per out entry, adding in the CPU scatter's
    # order: taps (i, j) ascending
    n_chan, height, width = out.shape[1], out.shape[2], out.shape[3]
    fan_in = n_chan * kh * kw
    n_pos = ho * wo
    plane = height * width
    for k in range(cuda.grid(1), out.size, cuda.gridsize(1)):
        sc = k // plane
        rest = k - sc * plane
        ih = rest // width
        iw = rest - ih * width
        s = sc // n_chan
        c = sc - s * n_chan
        total = zero
        for i in range(kh):
            th = ih + ph - i * dh  # oh * sh
            if th < 0 or th % sh != 0 or th // sh >= ho:
                continue
            oh = th // sh
            for j in range(kw):
                tw = iw + pw - j * dw  # ow * sw
                if tw < 0 or tw % sw != 0 or tw // sw >= wo:
                    continue
                line = s * fan_in + (c * kh + i) * kw + j
                total += dcols[line * n_pos + oh * wo + tw // sw]
        out[s, c, ih, iw] = total


@kernel
def _add_channel_bias(z, bias, n_pos):
    # z (flat view of (S, O, P)) += bias[o]
    n_out = bias.size
    for k in range(cuda.grid(1), z.size, cuda.gridsize(1)):
        z[k] += bias[(k // n_pos) % n_out]


def im2col_samples(x, kernel_size, stride, padding, dilation, out):
    """Fill the sample-major column matrices ``out`` (S, C*kh*kw, Ho*Wo) from x (S, C, H, W)."""
    caller = "im2col_samples"
    geometry = (kernel_size, stride, padding, dilation)
    geometry, (ho, wo) = _check_columns(caller, "x", x, "out", out, geometry, "samples")
    checks.contiguous(caller, "x", x)
    checks.output(caller, "out", out, out.shape)
    pairs = (v for pair in geometry for v in pair)
    _im2col_samples(out.size, x, *pairs, ho, wo, flat(out))
    return out


def col2im_samples(dcols, kernel_size, stride, padding, dilation, out):
    """The adjoint of :func:`im2col_samples`: sum dcols (S, C*kh*kw, Ho*Wo) into out
    (S, C, H, W), which is overwritten."""
    caller = "col2im_samples"
    geometry = (kernel_size, stride, padding, dilation)
    geometry, (ho, wo) = _check_columns(caller, "out", out, "dcols", dcols, geometry, "samples")
    checks.contiguous(caller, "dcols", dcols)
    checks.output(caller, "out", out, out.shape)
    zero = out.dtype.type(0)
    pairs = (v for pair in geometry for v in pair)
    _col2im_samples(out.size, flat(dcols), *pairs, ho, wo, zero, out)
    return out


def conv2d_forward_samples(x, weight, bias, stride, padding, dilation, cols, out):
    """``z = conv2d(x, W) + b`` chunk by chunk: per chunk of samples, im2col into ``cols``
    (S, C*kh*kw, Ho*Wo) and one batched GEMM ``z[s] = W2 @ cols[s]``. out (B, O, Ho, Wo). When S
    covers the batch, ``cols`` holds the whole batch's column matrices afterwards."""
    caller = "conv2d_forward_samples"
    n_out, fan_in, (ho, wo) = _check_conv(caller, x, weight, bias, stride, padding, dilation)
    _check_scratch(caller, "cols", cols, x, (fan_in, ho * wo))
    checks.output(caller, "out", out, (x.shape[0], n_out, ho, wo), "x", x)
    xp = array_module(x)
    n_batch, n_out = x.shape[0], weight.shape[0]
    chunk = cols.shape[0]
    w2 = weight.reshape(n_out, -1)  # (O, C*kh*kw)
    z3 = out.reshape(n_batch, n_out, -1)  # (B, O, Ho*Wo)
    for start in range(0, n_batch, chunk):
        stop = min(n_batch, start + chunk)
        block = cols[: stop - start]
        im2col_samples(x[start:stop], weight.shape[2:], stride, padding, dilation, block)
        xp.matmul(w2, block, out=z3[start:stop])  # (S, O, Ho*Wo)
        if bias is not None:
            chunk_z = z3[start:stop]
            _add_channel_bias(chunk_z.size, flat(chunk_z), bias, chunk_z.shape[2])
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
    caller = "conv2d_vjp_samples"
    n_out, fan_in, (ho, wo) = _check_conv(caller, x, weight, None, stride, padding, dilation)
    checks.same_dtype(caller, "v", v, "x", x)
    checks.shape(caller, "v", v, (x.shape[0], n_out, ho, wo), " (B, O, Ho, Wo)")
    checks.contiguous(caller, "v", v)
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
    xp = array_module(x)
    n_batch, n_out = x.shape[0], weight.shape[0]
    chunk = cols.shape[0]
    geometry = (weight.shape[2:], stride, padding, dilation)
    w2 = weight.reshape(n_out, -1)  # (O, C*kh*kw)
    v3 = v.reshape(n_batch, n_out, -1)  # (B, O, Ho*Wo)
    weight_t = device_zeros(weight, (w2.shape[1], n_out), weight.dtype)  # (C*kh*kw, O)
    for start in range(0, n_batch, chunk):
        stop = min(n_batch, start + chunk)
        size = stop - start
        block = cols[:size]
        if not cols_ready:
            im2col_samples(x[start:stop], *geometry, block)
        xp.matmul(block, v3[start:stop].transpose(0, 2, 1), out=partial[:size])
        weight_t += partial[:size].sum(axis=0)
        if input_out is not None:
            xp.matmul(w2.T, v3[start:stop], out=dcols[:size])  # (S, C*kh*kw, Ho*Wo)
            col2im_samples(dcols[:size], *geometry, input_out[start:stop])
    weight_out.reshape(n_out, -1)[...] = weight_t.T
    return weight_out, input_out
