"""2-D pooling kernels (NCHW, torch semantics, floor mode).

Window (oh, ow) covers input rows ``oh*sh - ph + i`` (i < kh) and columns ``ow*sw - pw + j``
(j < kw). AvgPool counts padding in the divisor (torch's ``count_include_pad=True``), so every
window is divided by ``kh*kw``. MaxPool treats padding as -inf and records the FIRST arg-max in a
row-major scan of the window, as the flat index ``ih*W + iw`` into the sample's channel (torch's
``return_indices`` convention).

Every kernel runs one (sample, channel) plane per iteration and writes only into that plane.

The kernels index their arrays flat (or, for the general max pool, by window bounds that assume
no window lies entirely in the padding), so the public wrappers check
(:mod:`lfp_ref.kernels.checks`): the geometry (pairs of ints, kernel and stride >= 1,
0 <= padding <= kernel // 2, torch's limit), C-contiguous 4-D arrays, the pooled array of the
shape the geometry gives, one float dtype (int64 for ``argmax``), writeable outputs. The VALUES
of ``argmax`` are trusted: :func:`route_to_argmax` takes the indices :func:`maxpool2d_forward`
wrote (checking them would be a pass over the data).
"""

import numpy as np
from numba import prange

from .. import checks
from ._jit import kernel


@kernel
def _avgpool2d_forward(x, kh, kw, sh, sw, ph, pw, out):
    # per output row: add the window taps (i, j) in row-major order, run by run over the output
    # columns, then divide by kh*kw
    n_batch, n_chan, height, width = x.shape
    ho, wo = out.shape[2], out.shape[3]
    x_flat = x.reshape(-1)
    out_flat = out.reshape(-1)
    count = kh * kw
    for plane in prange(n_batch * n_chan):
        x_plane = plane * height * width
        for oh in range(ho):
            row = np.uint64((plane * ho + oh) * wo)
            for t in range(np.uint64(wo)):
                out_flat[row + t] = 0
            for i in range(kh):
                ih = oh * sh - ph + i
                if ih < 0 or ih >= height:
                    continue
                for j in range(kw):
                    shift = j - pw
                    lo = 0 if shift >= 0 else min((sw - 1 - shift) // sw, wo)
                    hi = max(min((width - shift + sw - 1) // sw, wo), lo)
                    src = np.uint64(x_plane + ih * width + shift)
                    step = np.uint64(sw)
                    for t in range(np.uint64(lo), np.uint64(hi)):
                        out_flat[row + t] += x_flat[src + t * step]
            for t in range(np.uint64(wo)):
                out_flat[row + t] /= count


@kernel
def _avgpool2d_vjp(v, kh, kw, sh, sw, ph, pw, out):
    # spread v / (kh*kw) over each window; overlapping windows accumulate within the plane
    n_batch, n_chan, height, width = out.shape
    ho, wo = v.shape[2], v.shape[3]
    v_flat = v.reshape(-1)
    out_flat = out.reshape(-1)
    count = kh * kw
    for plane in prange(n_batch * n_chan):
        out_plane = plane * height * width
        for t in range(np.uint64(height * width)):
            out_flat[np.uint64(out_plane) + t] = 0
        for oh in range(ho):
            row = np.uint64((plane * ho + oh) * wo)
            for i in range(kh):
                ih = oh * sh - ph + i
                if ih < 0 or ih >= height:
                    continue
                for j in range(kw):
                    shift = j - pw
                    lo = 0 if shift >= 0 else min((sw - 1 - shift) // sw, wo)
                    hi = max(min((width - shift + sw - 1) // sw, wo), lo)
                    dst = np.uint64(out_plane + ih * width + shift)
                    step = np.uint64(sw)
                    for t in range(np.uint64(lo), np.uint64(hi)):
                        out_flat[dst + t * step] += v_flat[row + t] / count


@kernel
def _avgpool2d_forward_global(x, out):
    # one window over the whole plane (a global average pool): the general kernel's sum, taps in
    # row-major order from 0, divided by H*W; one run instead of H*W one-element runs
    n_batch, n_chan, height, width = x.shape
    x_flat = x.reshape(-1)
    out_flat = out.reshape(-1)
    size = height * width
    for plane in prange(n_batch * n_chan):
        start = np.uint64(plane * size)
        total = out_flat.dtype.type(0)
        for t in range(np.uint64(size)):
            total += x_flat[start + t]
        out_flat[plane] = total / size


@kernel
def _avgpool2d_vjp_global(v, out):
    # v / (H*W) in every entry of the plane, as the general kernel's 0 + v / count
    n_batch, n_chan, height, width = out.shape
    v_flat = v.reshape(-1)
    out_flat = out.reshape(-1)
    size = height * width
    for plane in prange(n_batch * n_chan):
        share = v_flat[plane] / size
        start = np.uint64(plane * size)
        for t in range(np.uint64(size)):
            out_flat[start + t] = share


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


@kernel(streaming=True)
def _route_to_argmax(v, argmax, out):
    # out[b, c].flat[argmax] += v[b, c, oh, ow]; overlapping windows accumulate within the plane
    n_batch, n_chan, height, width = out.shape
    n_pos = v.shape[2] * v.shape[3]
    v_flat = v.reshape(-1)
    argmax_flat = argmax.reshape(-1)
    out_flat = out.reshape(-1)
    for plane in prange(n_batch * n_chan):
        out_plane = np.uint64(plane * height * width)
        for t in range(np.uint64(height * width)):
            out_flat[out_plane + t] = 0
        row = np.uint64(plane * n_pos)
        for t in range(np.uint64(n_pos)):
            out_flat[out_plane + np.uint64(argmax_flat[row + t])] += v_flat[row + t]


# -- 2x2 windows, stride 2, no padding: the common case, with the stride a constant so that LLVM
# vectorises the interleaved loads (measured 2.5-4x faster than the general kernels above)


@kernel
def _avgpool2d_forward_2x2(x, out):
    # ((x00 + x01) + x10) + x11, divided by 4: the general kernel's order of operations
    n_batch, n_chan, height, width = x.shape
    ho, wo = out.shape[2], out.shape[3]
    x_flat = x.reshape(-1)
    out_flat = out.reshape(-1)
    for plane in prange(n_batch * n_chan):
        for oh in range(ho):
            row = np.uint64((plane * ho + oh) * wo)
            top = np.uint64((plane * height + 2 * oh) * width)
            bottom = top + np.uint64(width)
            for t in range(np.uint64(wo)):
                total = x_flat[top + 2 * t] + x_flat[top + 2 * t + 1]
                total = (total + x_flat[bottom + 2 * t]) + x_flat[bottom + 2 * t + 1]
                out_flat[row + t] = total / 4


@kernel
def _avgpool2d_vjp_2x2(v, out):
    n_batch, n_chan, height, width = out.shape
    ho, wo = v.shape[2], v.shape[3]
    v_flat = v.reshape(-1)
    out_flat = out.reshape(-1)
    uncovered = height != 2 * ho or width != 2 * wo  # an odd last row or column gets nothing
    for plane in prange(n_batch * n_chan):
        if uncovered:
            for t in range(np.uint64(height * width)):
                out_flat[np.uint64(plane * height * width) + t] = 0
        for oh in range(ho):
            row = np.uint64((plane * ho + oh) * wo)
            top = np.uint64((plane * height + 2 * oh) * width)
            bottom = top + np.uint64(width)
            for t in range(np.uint64(wo)):
                share = v_flat[row + t] / 4
                out_flat[top + 2 * t] = share
                out_flat[top + 2 * t + 1] = share
                out_flat[bottom + 2 * t] = share
                out_flat[bottom + 2 * t + 1] = share


@kernel
def _maxpool2d_forward_2x2(x, out, argmax):
    # The general kernel's scan of (x00, x01, x10, x11) (a later value wins if it is greater or
    # NaN) as a branch-free tournament: the winners of (x00, x01) and of (x10, x11), then the
    # second pair's winner against the first's by the same test. Ties keep the earlier value and
    # the last NaN wins either way (measured 15% faster than the sequential scan).
    n_batch, n_chan, height, width = x.shape
    ho, wo = out.shape[2], out.shape[3]
    x_flat = x.reshape(-1)
    out_flat = out.reshape(-1)
    argmax_flat = argmax.reshape(-1)
    for plane in prange(n_batch * n_chan):
        for oh in range(ho):
            row = np.uint64((plane * ho + oh) * wo)
            top = np.uint64((plane * height + 2 * oh) * width)
            bottom = top + np.uint64(width)
            top_index = 2 * oh * width
            for t in range(np.uint64(wo)):
                a = x_flat[top + 2 * t]
                b = x_flat[top + 2 * t + 1]
                c = x_flat[bottom + 2 * t]
                d = x_flat[bottom + 2 * t + 1]
                take_b = (b > a) | (b != b)
                first = b if take_b else a
                first_at = np.int64(1) if take_b else np.int64(0)
                take_d = (d > c) | (d != d)
                second = d if take_d else c
                second_at = np.int64(width + 1) if take_d else np.int64(width)
                take_second = (second > first) | (second != second)
                out_flat[row + t] = second if take_second else first
                argmax_flat[row + t] = (
                    top_index + 2 * np.int64(t) + (second_at if take_second else first_at)
                )


def _is_global(image_shape, kernel_size, padding):
    """Whether the one window covers the whole unpadded plane (output 1x1)."""
    return tuple(kernel_size) == tuple(image_shape[2:]) and tuple(padding) == (0, 0)


def _is_2x2(kernel_size, stride, padding):
    return tuple(kernel_size) == (2, 2) and tuple(stride) == (2, 2) and tuple(padding) == (0, 0)


def pool2d_output_size(height, width, kernel_size, stride, padding):
    """``(Ho, Wo)`` with ``Ho = (H + 2*ph - kh) // sh + 1`` (torch, floor mode)."""
    (kh, kw), (sh, sw), (ph, pw) = kernel_size, stride, padding
    return (height + 2 * ph - kh) // sh + 1, (width + 2 * pw - kw) // sw + 1


def _check_pool(caller, image_name, image, pooled_name, pooled, kernel_size, stride, padding):
    """The geometry, a C-contiguous 4-D float image (B, C, H, W) and a C-contiguous pooled array
    of its dtype and of shape (B, C, Ho, Wo); the one written (``pooled`` for the forward passes,
    ``image`` for the VJPs) is checked writeable by the caller. Returns the checked geometry."""
    kernel_size, stride, padding, _ = checks.geometry(caller, kernel_size, stride, padding)
    (kh, kw), (ph, pw) = kernel_size, padding
    if ph > kh // 2 or pw > kw // 2:
        # the general max-pool kernel reads the first entry of each window: a window entirely in
        # the padding would read past the image
        raise ValueError(
            f"{caller}: padding {padding} must be at most half the kernel size {kernel_size} "
            f"(at most ({kh // 2}, {kw // 2}))"
        )
    try:  # the common case in a few attribute reads; the detailed checks below say what is wrong
        batch, channels, height, width = image.shape
        ho, wo = pool2d_output_size(height, width, kernel_size, stride, padding)
        if (
            ho >= 1
            and wo >= 1
            and image.dtype in checks.FLOAT_DTYPES
            and pooled.dtype == image.dtype
            and type(pooled.shape) is tuple
            and pooled.shape == (batch, channels, ho, wo)
            and image.flags.c_contiguous
            and pooled.flags.c_contiguous
        ):
            return kernel_size, stride, padding
    except (AttributeError, TypeError, ValueError):
        pass
    return _check_pool_arrays(
        caller, image_name, image, pooled_name, pooled, kernel_size, stride, padding
    )


def _check_pool_arrays(
    caller, image_name, image, pooled_name, pooled, kernel_size, stride, padding
):
    """The detailed array checks of :func:`_check_pool` (a checked geometry), which word every
    error."""
    checks.ndim(caller, image_name, image, 4, "(B, C, H, W)")
    checks.float_array(caller, image_name, image)
    checks.contiguous(caller, image_name, image)
    ho, wo = pool2d_output_size(*image.shape[2:], kernel_size, stride, padding)
    if ho < 1 or wo < 1:
        raise ValueError(
            f"{caller}: {image_name} {tuple(image.shape)} is smaller than the kernel "
            f"{kernel_size} with padding {padding}"
        )
    checks.same_dtype(caller, pooled_name, pooled, image_name, image)
    checks.shape(caller, pooled_name, pooled, (*image.shape[:2], ho, wo), " (B, C, Ho, Wo)")
    checks.contiguous(caller, pooled_name, pooled)
    return kernel_size, stride, padding


def _writeable(caller, name, a):
    try:
        if a.flags.writeable:  # NumPy's flags; others go through checks.is_writeable
            return
    except AttributeError:
        pass
    if not checks.is_writeable(a):
        raise ValueError(f"{caller}: {name} is written in place but is read-only")


def avgpool2d_forward(x, kernel_size, stride, padding, out):
    """``out[b, c, oh, ow] = sum(window) / (kh*kw)``, padding counted as zeros;
    x (B, C, H, W), out (B, C, Ho, Wo)."""
    geometry = _check_pool("avgpool2d_forward", "x", x, "out", out, kernel_size, stride, padding)
    _writeable("avgpool2d_forward", "out", out)
    kernel_size, stride, padding = geometry
    if _is_2x2(kernel_size, stride, padding):
        _avgpool2d_forward_2x2.pick(x.size)(x, out)
    elif _is_global(x.shape, kernel_size, padding):
        _avgpool2d_forward_global.pick(x.size)(x, out)
    else:
        _avgpool2d_forward.pick(x.size)(x, *kernel_size, *stride, *padding, out)
    return out


def avgpool2d_vjp(v, kernel_size, stride, padding, out):
    """The VJP of :func:`avgpool2d_forward` w.r.t. x: each ``v[b, c, oh, ow] / (kh*kw)`` added to
    every input of its window; v (B, C, Ho, Wo), out (B, C, H, W) (overwritten)."""
    geometry = _check_pool("avgpool2d_vjp", "out", out, "v", v, kernel_size, stride, padding)
    _writeable("avgpool2d_vjp", "out", out)
    kernel_size, stride, padding = geometry
    if _is_2x2(kernel_size, stride, padding):
        _avgpool2d_vjp_2x2.pick(out.size)(v, out)
    elif _is_global(out.shape, kernel_size, padding):
        _avgpool2d_vjp_global.pick(out.size)(v, out)
    else:
        _avgpool2d_vjp.pick(out.size)(v, *kernel_size, *stride, *padding, out)
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
    if _is_2x2(kernel_size, stride, padding):
        _maxpool2d_forward_2x2.pick(x.size)(x, out, argmax)
    else:
        _maxpool2d_forward.pick(x.size)(x, *kernel_size, *stride, *padding, out, argmax)
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
    _route_to_argmax.pick(out.size)(v, argmax, out)
    return out
