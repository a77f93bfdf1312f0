"""The CUDA twins of ``kernels/cpu/pool.py``: 2-D average and max pooling (NCHW, torch semantics,
floor mode; see the CPU module for the conventions).

- forward passes: one thread per output entry, the window scanned in row-major order;
- the AvgPool VJP: one thread per input entry gathering the windows that cover it, in the order
  in which the CPU twin's scatter adds them (no two threads write one entry, no atomics);
- MaxPool's routing (:func:`route_to_argmax`, whose signature has no window geometry): one thread
  per (sample, channel) plane, adding its outputs in order, as the CPU twin does.

The divisor ``kh*kw`` enters as a scalar of the arrays' dtype, so a device and the simulator
compute the same float32 roundings (the CPU twin divides by an integer, in float64 under numba:
float32 results may differ from it in the last bit where a quotient is added). Same names,
signatures and argument checks (the CPU module's check helpers) as the CPU module; as there, the
VALUES of ``argmax`` are trusted.
"""

import math

import numpy as np
from numba import cuda

from .. import checks
from ..cpu.pool import _check_pool, _writeable
from ._launch import kernel


@kernel
def _avgpool2d_forward(x, kh, kw, sh, sw, ph, pw, count, zero, out):
    # out = (sum of the window's in-image taps, row-major, from 0) / (kh*kw)
    n_chan, height, width = x.shape[1], x.shape[2], x.shape[3]
    ho, wo = out.shape[2], out.shape[3]
    for k in range(cuda.grid(1), out.size, cuda.gridsize(1)):
        bc = k // (ho * wo)
        pos = k - bc * (ho * wo)
        oh = pos // wo
        ow = pos - oh * wo
        b = bc // n_chan
        c = bc - b * n_chan
        total = zero
        for i in range(kh):
            ih = oh * sh - ph + i
            if ih < 0 or ih >= height:
                continue
            for j in range(kw):
                iw = ow * sw - pw + j
                if 0 <= iw < width:
                    total += x[b, c, ih, iw]
        out[b, c, oh, ow] = total / count


@kernel
def _avgpool2d_vjp(v, kh, kw, sh, sw, ph, pw, count, zero, out):
    # out[b, c, ih, iw] = sum over the windows (oh, ow) covering it of v[b, c, oh, ow] / (kh*kw),
    # in the CPU scatter's order: oh ascending, then the tap column j ascending
    n_chan, height, width = out.shape[1], out.shape[2], out.shape[3]
    ho, wo = v.shape[2], v.shape[3]
    for k in range(cuda.grid(1), out.size, cuda.gridsize(1)):
        bc = k // (height * width)
        rest = k - bc * (height * width)
        ih = rest // width
        iw = rest - ih * width
        b = bc // n_chan
        c = bc - b * n_chan
        total = zero
        for oh in range(ho):
            i = ih - (oh * sh - ph)
            if i < 0 or i >= kh:
                continue
            for j in range(kw):
                tw = iw + pw - j  # ow * sw
                if tw < 0 or tw % sw != 0 or tw // sw >= wo:
                    continue
                total += v[b, c, oh, tw // sw] / count
        out[b, c, ih, iw] = total


@kernel
def _maxpool2d_forward(x, kh, kw, sh, sw, ph, pw, out, argmax):
    n_chan, height, width = x.shape[1], x.shape[2], x.shape[3]
    ho, wo = out.shape[2], out.shape[3]
    for k in range(cuda.grid(1), out.size, cuda.gridsize(1)):
        bc = k // (ho * wo)
        pos = k - bc * (ho * wo)
        oh = pos // wo
        ow = pos - oh * wo
        b = bc // n_chan
        c = bc - b * n_chan
        h0 = max(oh * sh - ph, 0)
        h1 = min(oh * sh - ph + kh, height)
        w0 = max(ow * sw - pw, 0)
        w1 = min(ow * sw - pw + kw, width)
        # padding is -inf, so it never beats an input; strict '>' keeps the first maximum. NaN
        # wins, as in torch's CPU kernel.
        best = x[b, c, h0, w0]
        best_index = h0 * width + w0
        for ih in range(h0, h1):
            for iw in range(w0, w1):
                value = x[b, c, ih, iw]
                if value > best or math.isnan(value):
                    best = value
                    best_index = ih * width + iw
        out[b, c, oh, ow] = best
        argmax[b, c, oh, ow] = best_index


@kernel
def _route_to_argmax(v, argmax, out):
    # per (b, c) plane: out[b, c].flat[argmax] += v[b, c, oh, ow] in (oh, ow) order; overlapping
    # windows accumulate within the plane, which only this thread writes
    n_chan, height, width = out.shape[1], out.shape[2], out.shape[3]
    ho, wo = v.shape[2], v.shape[3]
    for plane in range(cuda.grid(1), out.shape[0] * n_chan, cuda.gridsize(1)):
        b = plane // n_chan
        c = plane - b * n_chan
        for ih in range(height):
            for iw in range(width):
                out[b, c, ih, iw] = 0
        for oh in range(ho):
            for ow in range(wo):
                index = argmax[b, c, oh, ow]
                ih = index // width
                out[b, c, ih, index - ih * width] += v[b, c, oh, ow]


def pool2d_output_size(height, width, kernel_size, stride, padding):
    """``(Ho, Wo)`` with ``Ho = (H + 2*ph - kh) // sh + 1`` (torch, floor mode)."""
    (kh, kw), (sh, sw), (ph, pw) = kernel_size, stride, padding
    return (height + 2 * ph - kh) // sh + 1, (width + 2 * pw - kw) // sw + 1


def _count_and_zero(a, kernel_size):
    kind = a.dtype.type
    return kind(kernel_size[0] * kernel_size[1]), kind(0)


def avgpool2d_forward(x, kernel_size, stride, padding, out):
    """``out[b, c, oh, ow] = sum(window) / (kh*kw)``, padding counted as zeros;
    x (B, C, H, W), out (B, C, Ho, Wo)."""
    geometry = _check_pool("avgpool2d_forward", "x", x, "out", out, kernel_size, stride, padding)
    _writeable("avgpool2d_forward", "out", out)
    kernel_size, stride, padding = geometry
    count, zero = _count_and_zero(out, kernel_size)
    _avgpool2d_forward(out.size, x, *kernel_size, *stride, *padding, count, zero, out)
    return out


def avgpool2d_vjp(v, kernel_size, stride, padding, out):
    """The VJP of :func:`avgpool2d_forward` w.r.t. x: each ``v[b, c, oh, ow] / (kh*kw)`` added to
    every input of its window; v (B, C, Ho, Wo), out (B, C, H, W) (overwritten)."""
    geometry = _check_pool("avgpool2d_vjp", "out", out, "v", v, kernel_size, stride, padding)
    _writeable("avgpool2d_vjp", "out", out)
    kernel_size, stride, padding = geometry
    count, zero = _count_and_zero(out, kernel_size)
    _avgpool2d_vjp(out.size, v, *kernel_size, *stride, *padding, count, zero, out)
    return out


def maxpool2d_forward(x, kernel_size, stride, padding, out, argmax):
    """``out = max(window)`` with ``argmax`` (int64, same shape as out) the flat index
    ``ih*W + iw`` of the first maximum in a row-major scan of the window."""
    caller = "maxpool2d_forward"
    geometry = _check_pool(caller, "x", x, "out", out, kernel_size, stride, padding)
    _writeable(caller, "out", out)
    checks.dtype_in(caller, "argmax", argmax, (np.dtype(np.int64),))
    checks.shape(caller, "argmax", argmax, out.shape, " (the shape of out)")
    checks.contiguous(caller, "argmax", argmax, output=True)
    _writeable(caller, "argmax", argmax)
    kernel_size, stride, padding = geometry
    _maxpool2d_forward(out.size, x, *kernel_size, *stride, *padding, out, argmax)
    return out, argmax


def route_to_argmax(v, argmax, out):
    """``out[b, c].flat[argmax[b, c, oh, ow]] += v[b, c, oh, ow]`` (out overwritten): MaxPool's
    gradient, and its LFP reward routing. v and argmax (int64, from :func:`maxpool2d_forward`,
    whose values are trusted) (B, C, Ho, Wo), out (B, C, H, W) of v's dtype; all C-contiguous."""
    caller = "route_to_argmax"
    checks.ndim(caller, "out", out, 4, "(B, C, H, W)")
    checks.ndim(caller, "v", v, 4, "(B, C, Ho, Wo)")
    checks.float_array(caller, "v", v)
    checks.contiguous(caller, "v", v)
    checks.dtype_in(caller, "argmax", argmax, (np.dtype(np.int64),))
    checks.shape(caller, "argmax", argmax, v.shape, " (the shape of v)")
    checks.contiguous(caller, "argmax", argmax)
    checks.output(caller, "out", out, out.shape, "v", v)
    if tuple(out.shape[:2]) != tuple(v.shape[:2]):
        raise ValueError(
            f"{caller}: out {tuple(out.shape)} and v {tuple(v.shape)} must have the same batch "
            "and channels (B, C)"
        )
    _route_to_argmax(out.shape[0] * out.shape[1], v, argmax, out)
    return out
