"""2-D pooling kernels (NCHW, torch semantics, floor mode).

Window (oh, ow) covers input rows ``oh*sh - ph + i`` (i < kh) and columns ``ow*sw - pw + j``
(j < kw). AvgPool counts padding in the divisor (torch's ``count_include_pad=True``), so every
window is divided by ``kh*kw``. MaxPool treats padding as -inf and records the FIRST arg-max in a
row-major scan of the window, as the flat index ``ih*W + iw`` into the sample's channel (torch's
``return_indices`` convention).

Every kernel runs one (sample, channel) plane per iteration and writes only into that plane.
"""

import numpy as np
from numba import prange

from ._jit import kernel


@kernel
def _avgpool2d_forward(x, kh, kw, sh, sw, ph, pw, out):
    n_batch, n_chan, height, width = x.shape
    ho, wo = out.shape[2], out.shape[3]
    count = kh * kw
    for n in prange(n_batch * n_chan):
        b = n // n_chan
        c = n - b * n_chan
        for oh in range(ho):
            for ow in range(wo):
                total = 0.0
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
def _avgpool2d_vjp(v, kh, kw, sh, sw, ph, pw, out):
    # spread v / (kh*kw) over each window; overlapping windows accumulate within the plane
    n_batch, n_chan, height, width = out.shape
    ho, wo = v.shape[2], v.shape[3]
    count = kh * kw
    for n in prange(n_batch * n_chan):
        b = n // n_chan
        c = n - b * n_chan
        out[b, c] = 0
        for oh in range(ho):
            for ow in range(wo):
                share = v[b, c, oh, ow] / count
                for i in range(kh):
                    ih = oh * sh - ph + i
                    if ih < 0 or ih >= height:
                        continue
                    for j in range(kw):
                        iw = ow * sw - pw + j
                        if 0 <= iw < width:
                            out[b, c, ih, iw] += share


@kernel
def _maxpool2d_forward(x, kh, kw, sh, sw, ph, pw, out, argmax):
    n_batch, n_chan, height, width = x.shape
    ho, wo = out.shape[2], out.shape[3]
    for n in prange(n_batch * n_chan):
        b = n // n_chan
        c = n - b * n_chan
        for oh in range(ho):
            h0 = max(oh * sh - ph, 0)
            h1 = min(oh * sh - ph + kh, height)
            for ow in range(wo):
                w0 = max(ow * sw - pw, 0)
                w1 = min(ow * sw - pw + kw, width)
                # padding is -inf, so it never beats an input; strict '>' keeps the first
                # maximum. NaN wins, as in torch's CPU kernel.
                best = x[b, c, h0, w0]
                best_index = h0 * width + w0
                for ih in range(h0, h1):
                    for iw in range(w0, w1):
                        value = x[b, c, ih, iw]
                        if value > best or np.isnan(value):
                            best = value
                            best_index = ih * width + iw
                out[b, c, oh, ow] = best
                argmax[b, c, oh, ow] = best_index


@kernel
def _route_to_argmax(v, argmax, out):
    # out[b, c, argmax] += v[b, c, oh, ow]; overlapping windows accumulate within the plane
    n_batch, n_chan, height, width = out.shape
    ho, wo = v.shape[2], v.shape[3]
    for n in prange(n_batch * n_chan):
        b = n // n_chan
        c = n - b * n_chan
        out[b, c] = 0
        for oh in range(ho):
            for ow in range(wo):
                index = argmax[b, c, oh, ow]
                out[b, c, index // width, index % width] += v[b, c, oh, ow]


def pool2d_output_size(height, width, kernel_size, stride, padding):
    """``(Ho, Wo)`` with ``Ho = (H + 2*ph - kh) // sh + 1`` (torch, floor mode)."""
    (kh, kw), (sh, sw), (ph, pw) = kernel_size, stride, padding
    return (height + 2 * ph - kh) // sh + 1, (width + 2 * pw - kw) // sw + 1


def avgpool2d_forward(x, kernel_size, stride, padding, out):
    """``out[b, c, oh, ow] = sum(window) / (kh*kw)``, padding counted as zeros;
    x (B, C, H, W), out (B, C, Ho, Wo)."""
    _avgpool2d_forward.pick(x.size)(x, *kernel_size, *stride, *padding, out)
    return out


def avgpool2d_vjp(v, kernel_size, stride, padding, out):
    """The VJP of :func:`avgpool2d_forward` w.r.t. x: each ``v[b, c, oh, ow] / (kh*kw)`` added to
    every input of its window; v (B, C, Ho, Wo), out (B, C, H, W) (overwritten)."""
    _avgpool2d_vjp.pick(out.size)(v, *kernel_size, *stride, *padding, out)
    return out


def maxpool2d_forward(x, kernel_size, stride, padding, out, argmax):
    """``out = max(window)`` with ``argmax`` (int64, same shape as out) the flat index
    ``ih*W + iw`` of the first maximum in a row-major scan of the window."""
    _maxpool2d_forward.pick(x.size)(x, *kernel_size, *stride, *padding, out, argmax)
    return out, argmax


def route_to_argmax(v, argmax, out):
    """``out[b, c].flat[argmax[b, c, oh, ow]] += v[b, c, oh, ow]`` (out overwritten): MaxPool's
    gradient, and its LFP reward routing."""
    _route_to_argmax.pick(out.size)(v, argmax, out)
    return out
