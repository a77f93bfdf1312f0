"""Oracles for Conv2d, AvgPool2d and MaxPool2d: slow, literal float64 transcriptions of the spec.

Conv2d and AvgPool2d are unrolled into dense matrices ``M`` of shape (C*H*W, O*Ho*Wo) built with
explicit loops over every output position and kernel tap, so that ``z_flat = x_flat M + b`` and
the spec's Dense formulas (section 2) apply connection by connection:

    rho       = r / stab(z),   stab(z) = z + eps * sgn0(z),   sgn0(0) = +1
    R_{i<-j}  = x_i w_ij rho_j                       (message along connection i -> j)
    R_i       = sum_j R_{i<-j} = x_i (rho M^T)_i
    F_w       = sign(w) * sum_B sum_{connections (i, j) that use w} R_{i<-j}
    F_b       = sign(b) * sum_B sum_{positions} b rho = |b| sum_{B,H,W} rho

MaxPool2d is a loop over windows with padding as -inf and the first maximum kept.
"""

from functools import lru_cache

import numpy as np


def _pair(v):
    return (v, v) if np.isscalar(v) else tuple(v)


def sgn0(z):
    return np.where(z >= 0, 1.0, -1.0)


def stab(z, eps):
    return z + eps * sgn0(z)


@lru_cache(maxsize=256)
def conv2d_connections(in_shape, out_channels, kernel_size, stride, padding, dilation):
    """Every connection of a Conv2d as ``(i, j, k)`` index arrays: input ``i`` (flat in
    (C, H, W)) feeds output ``j`` (flat in (O, Ho, Wo)) through weight ``k`` (flat in
    (O, C, kh, kw)); plus the output shape (O, Ho, Wo). Explicit loops, no formula for Ho."""
    n_chan, height, width = in_shape
    (kh, kw), (sh, sw), (ph, pw), (dh, dw) = map(_pair, (kernel_size, stride, padding, dilation))
    # output positions: top-left corners of the dilated kernel that fit in the padded input
    rows = [oh for oh in range(height + 2 * ph) if oh * sh + dh * (kh - 1) < height + 2 * ph]
    cols = [ow for ow in range(width + 2 * pw) if ow * sw + dw * (kw - 1) < width + 2 * pw]
    ho, wo = len(rows), len(cols)
    conn_i, conn_j, conn_k = [], [], []
    for o in range(out_channels):
        for oh in range(ho):
            for ow in range(wo):
                j = (o * ho + oh) * wo + ow
                for c in range(n_chan):
                    for a in range(kh):
                        for e in range(kw):
                            ih = oh * sh - ph + a * dh
                            iw = ow * sw - pw + e * dw
                            if 0 <= ih < height and 0 <= iw < width:
                                conn_i.append((c * height + ih) * width + iw)
                                conn_j.append(j)
                                conn_k.append(((o * n_chan + c) * kh + a) * kw + e)
    return (np.array(conn_i), np.array(conn_j), np.array(conn_k)), (out_channels, ho, wo)


def conv2d_dense(weight, in_shape, stride=1, padding=0, dilation=1):
    """The dense matrix M (C*H*W, O*Ho*Wo) of the convolution, the connection index arrays and
    the output shape (O, Ho, Wo)."""
    weight = np.asarray(weight, np.float64)
    out_channels, _, kh, kw = weight.shape
    (ci, cj, ck), out_shape = conv2d_connections(
        tuple(in_shape), out_channels, (kh, kw), _pair(stride), _pair(padding), _pair(dilation)
    )
    dense = np.zeros((int(np.prod(in_shape)), int(np.prod(out_shape))))
    dense[ci, cj] = weight.ravel()[ck]  # each (input, output) pair has at most one connection
    return dense, (ci, cj, ck), out_shape


def conv2d_forward(x, weight, bias, stride=1, padding=0, dilation=1):
    """``z = x_flat M + b``, reshaped to (B, O, Ho, Wo)."""
    x = np.asarray(x, np.float64)
    dense, _, out_shape = conv2d_dense(weight, x.shape[1:], stride, padding, dilation)
    z = x.reshape(x.shape[0], -1) @ dense  # (B, O*Ho*Wo)
    z = z.reshape(x.shape[0], *out_shape)
    if bias is not None:
        z = z + np.asarray(bias, np.float64)[None, :, None, None]
    return z


def conv2d_vjp(x, weight, v, stride=1, padding=0, dilation=1):
    """``(v M^T, dW, db)``: dW sums ``x_i v_j`` over the batch and every connection sharing w."""
    x = np.asarray(x, np.float64)
    v = np.asarray(v, np.float64)
    dense, (ci, cj, ck), _ = conv2d_dense(weight, x.shape[1:], stride, padding, dilation)
    xf, vf = x.reshape(x.shape[0], -1), v.reshape(v.shape[0], -1)
    dx = (vf @ dense.T).reshape(x.shape)
    dw = np.zeros(np.size(weight))
    np.add.at(dw, ck, np.sum(xf[:, ci] * vf[:, cj], axis=0))  # per connection, summed over B
    return dx, dw.reshape(np.shape(weight)), v.sum(axis=(0, 2, 3))


def conv2d_lfp_epsilon(x, weight, bias, reward, eps, stride=1, padding=0, dilation=1, z=None):
    """LFP-epsilon through a Conv2d, connection by connection: ``(R_x, {"weight": F_W,
    "bias": F_b})`` (no "bias" when bias is None).

    ``z``: the forward output to stabilise with; by default the oracle's own forward. A float32
    test passes the kernel's float32 ``z`` (checked on its own by the forward test), because
    ``r / stab(z)`` amplifies the rounding of z by ``1/|z|`` wherever z is near 0.
    """
    x = np.asarray(x, np.float64)
    weight = np.asarray(weight, np.float64)
    dense, (ci, cj, ck), _ = conv2d_dense(weight, x.shape[1:], stride, padding, dilation)
    if z is None:
        z = conv2d_forward(x, weight, bias, stride, padding, dilation)
    z = np.asarray(z, np.float64)
    rho = (np.asarray(reward, np.float64) / stab(z, eps)).reshape(x.shape[0], -1)  # (B, O*Ho*Wo)
    xf = x.reshape(x.shape[0], -1)  # (B, C*H*W)
    reward_in = (xf * (rho @ dense.T)).reshape(x.shape)
    w_conn = weight.ravel()[ck]  # the weight of every connection
    messages = xf[:, ci] * w_conn * rho[:, cj]  # R_{i<-j}, (B, connections)
    feedback_w = np.zeros(weight.size)
    np.add.at(feedback_w, ck, np.sign(w_conn) * messages.sum(axis=0))
    feedback = {"weight": feedback_w.reshape(weight.shape)}
    if bias is not None:
        bias = np.asarray(bias, np.float64)
        rho4 = rho.reshape(z.shape)
        feedback["bias"] = np.sign(bias) * (bias[None, :, None, None] * rho4).sum(axis=(0, 2, 3))
    return reward_in, feedback


def _pool_windows(in_shape, kernel_size, stride, padding):
    """``[(oh, ow, [(ih, iw) for every tap, None for padding])]`` in row-major order, and
    (Ho, Wo). Explicit loops; a window is valid when it fits in the padded input."""
    height, width = in_shape
    (kh, kw), (sh, sw), (ph, pw) = map(_pair, (kernel_size, stride, padding))
    windows = []
    ho = len([oh for oh in range(height + 2 * ph) if oh * sh + kh <= height + 2 * ph])
    wo = len([ow for ow in range(width + 2 * pw) if ow * sw + kw <= width + 2 * pw])
    for oh in range(ho):
        for ow in range(wo):
            taps = []
            for a in range(kh):
                for e in range(kw):
                    ih, iw = oh * sh - ph + a, ow * sw - pw + e
                    taps.append((ih, iw) if 0 <= ih < height and 0 <= iw < width else None)
            windows.append((oh, ow, taps))
    return windows, (ho, wo)


def avgpool2d_dense(in_shape, kernel_size, stride=None, padding=0):
    """AvgPool2d as a dense (C*H*W, C*Ho*Wo) matrix: weight 1/(kh*kw) from every in-bounds tap
    (padding counts in the divisor), and the output shape (C, Ho, Wo)."""
    n_chan, height, width = in_shape
    stride = kernel_size if stride is None else stride
    windows, (ho, wo) = _pool_windows((height, width), kernel_size, stride, padding)
    kh, kw = _pair(kernel_size)
    dense = np.zeros((n_chan * height * width, n_chan * ho * wo))
    for c in range(n_chan):
        for oh, ow, taps in windows:
            for tap in taps:
                if tap is not None:
                    dense[(c * height + tap[0]) * width + tap[1], (c * ho + oh) * wo + ow] += (
                        1.0 / (kh * kw)
                    )
    return dense, (n_chan, ho, wo)


def avgpool2d_forward(x, kernel_size, stride=None, padding=0):
    x = np.asarray(x, np.float64)
    dense, out_shape = avgpool2d_dense(x.shape[1:], kernel_size, stride, padding)
    return (x.reshape(x.shape[0], -1) @ dense).reshape(x.shape[0], *out_shape)


def avgpool2d_vjp(x_shape, v, kernel_size, stride=None, padding=0):
    v = np.asarray(v, np.float64)
    dense, _ = avgpool2d_dense(x_shape[1:], kernel_size, stride, padding)
    return (v.reshape(v.shape[0], -1) @ dense.T).reshape(x_shape)


def avgpool2d_lfp_epsilon(x, reward, eps, kernel_size, stride=None, padding=0, z=None):
    """``R_x = x * (rho M^T)`` with ``rho = r / stab(z)``; ``z`` as in
    :func:`conv2d_lfp_epsilon`."""
    x = np.asarray(x, np.float64)
    if z is None:
        z = avgpool2d_forward(x, kernel_size, stride, padding)
    z = np.asarray(z, np.float64)
    rho = np.asarray(reward, np.float64) / stab(z, eps)
    return x * avgpool2d_vjp(x.shape, rho, kernel_size, stride, padding)


def maxpool2d_forward(x, kernel_size, stride=None, padding=0):
    """``(z, argmax)``: the maximum of each window (padding is -inf) and the flat index
    ``ih*W + iw`` of its FIRST occurrence in a row-major scan of the window."""
    x = np.asarray(x, np.float64)
    n_batch, n_chan, height, width = x.shape
    stride = kernel_size if stride is None else stride
    windows, (ho, wo) = _pool_windows((height, width), kernel_size, stride, padding)
    z = np.empty((n_batch, n_chan, ho, wo))
    argmax = np.empty((n_batch, n_chan, ho, wo), np.int64)
    for b in range(n_batch):
        for c in range(n_chan):
            for oh, ow, taps in windows:
                best, best_tap = -np.inf, None
                for tap in taps:
                    value = -np.inf if tap is None else x[b, c, tap[0], tap[1]]
                    if value > best:
                        best, best_tap = value, tap
                if best_tap is None:  # every input is -inf: the first in-bounds tap
                    best_tap = next(tap for tap in taps if tap is not None)
                z[b, c, oh, ow] = best
                argmax[b, c, oh, ow] = best_tap[0] * width + best_tap[1]
    return z, argmax


def maxpool2d_route(x, v, kernel_size, stride=None, padding=0):
    """The whole of ``v[b, c, oh, ow]`` to the window's first arg-max (MaxPool's gradient and
    its LFP rule)."""
    x = np.asarray(x, np.float64)
    _, argmax = maxpool2d_forward(x, kernel_size, stride, padding)
    out = np.zeros(x.shape)
    width = x.shape[3]
    for b, c, oh, ow in np.ndindex(*argmax.shape):
        index = argmax[b, c, oh, ow]
        out[b, c, index // width, index % width] += v[b, c, oh, ow]
    return out
