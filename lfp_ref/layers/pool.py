"""2-D pooling with torch's semantics (floor mode, no dilation).

- :class:`AvgPool2d` is linear in its input (``count_include_pad=True``: every window is divided
  by ``kh*kw``), so LFP-epsilon applies: ``R_x = x * avgpool_vjp(r / stab(z))``.
- :class:`MaxPool2d` has no rule (spec section 2): the whole reward of each output goes to the
  first arg-max of its window, not multiplied by x; backprop routes the gradient the same way.
"""

import numpy as np

from ..kernels import backend_of
from .base import LinearLayer, PoolingLayer
from .conv import as_pair, check_nchw_input, format_pair


class _Pool2d(PoolingLayer):
    """Window geometry and input checks shared by the two pools."""

    def _setup(self, kernel_size, stride, padding):
        name = type(self).__name__
        self.kernel_size = as_pair(kernel_size, "kernel_size", name, 1)
        self.stride = self.kernel_size if stride is None else as_pair(stride, "stride", name, 1)
        self.padding = as_pair(padding, "padding", name, 0)
        (kh, kw), (ph, pw) = self.kernel_size, self.padding
        if ph > kh // 2 or pw > kw // 2:
            # torch's limit: a window never lies entirely in the padding
            raise ValueError(
                f"{name}: padding {format_pair(self.padding)} must be at most half the kernel "
                f"size {format_pair(self.kernel_size)} (at most ({kh // 2}, {kw // 2}))"
            )

    def output_size(self, height, width):
        """``(Ho, Wo)`` for an input of spatial size ``(height, width)``."""
        return backend_of().pool.pool2d_output_size(
            height, width, self.kernel_size, self.stride, self.padding
        )

    def _check_input(self, x):
        check_nchw_input(self, x)
        ho, wo = self.output_size(*x.shape[2:])
        if ho < 1 or wo < 1:
            (kh, kw), (ph, pw) = self.kernel_size, self.padding
            raise ValueError(
                f"{self!r}: the input's spatial size {x.shape[2]}x{x.shape[3]} (with padding "
                f"{x.shape[2] + 2 * ph}x{x.shape[3] + 2 * pw}) is smaller than the kernel "
                f"{kh}x{kw}"
            )
        return ho, wo

    def _check_output_like(self, v, z_shape, what):
        if v.shape != z_shape:
            raise ValueError(
                f"{self!r}: {what} must have the output's shape {z_shape}, got {v.shape}"
            )

    def extra_repr(self):
        parts = [f"kernel_size={format_pair(self.kernel_size)}"]
        if self.stride != self.kernel_size:
            parts.append(f"stride={format_pair(self.stride)}")
        if self.padding != (0, 0):
            parts.append(f"padding={format_pair(self.padding)}")
        return ", ".join(parts)


class AvgPool2d(_Pool2d, LinearLayer):
    """Average pooling, ``z[b, c, oh, ow] = sum(window) / (kh*kw)`` (zero padding counted in the
    divisor, torch's default); x (B, C, H, W) -> z (B, C, Ho, Wo),
    ``Ho = (H + 2*ph - kh) // sh + 1``. ``stride`` defaults to ``kernel_size``."""

    def __init__(self, kernel_size, stride=None, padding=0):
        super().__init__()
        self._setup(kernel_size, stride, padding)

    def forward(self, x):
        ho, wo = self._check_input(x)
        bk = backend_of(x)
        x = bk.contiguous(x)
        z = bk.empty((*x.shape[:2], ho, wo), x.dtype)  # (B, C, Ho, Wo)
        bk.pool.avgpool2d_forward(x, self.kernel_size, self.stride, self.padding, z)
        self.save((x, z))
        return z

    def vjp(self, v, input_vjp=True):
        """``(VJP_x(v), {})``: each ``v / (kh*kw)`` spread over its window."""
        x, z = self.saved()
        self._check_output_like(v, z.shape, "v")
        if not input_vjp:
            return None, {}
        bk = backend_of(v, x)
        v = bk.contiguous(v, dtype=z.dtype)
        geometry = (self.kernel_size, self.stride, self.padding)
        return bk.pool.avgpool2d_vjp(v, *geometry, bk.empty_like(x)), {}


class MaxPool2d(_Pool2d):
    """Max pooling, ``z = max(window)`` with padding as -inf; ``stride`` defaults to
    ``kernel_size``. Feedback and backprop route each output's reward / gradient to the first
    arg-max of its window (row-major scan, torch's choice)."""

    def __init__(self, kernel_size, stride=None, padding=0):
        super().__init__()
        self._setup(kernel_size, stride, padding)

    def forward(self, x):
        ho, wo = self._check_input(x)
        bk = backend_of(x)
        x = bk.contiguous(x)
        z = bk.empty((*x.shape[:2], ho, wo), x.dtype)  # (B, C, Ho, Wo)
        argmax = bk.empty(z.shape, np.int64)  # flat index ih*W + iw per (b, c)
        bk.pool.maxpool2d_forward(x, self.kernel_size, self.stride, self.padding, z, argmax)
        self.save((x.shape, z.shape, argmax))
        return z

    def _route(self, v, what):
        x_shape, z_shape, argmax = self.saved()
        self._check_output_like(v, z_shape, what)
        bk = backend_of(v, argmax)
        v = bk.contiguous(v)
        return bk.pool.route_to_argmax(v, argmax, bk.empty(x_shape, v.dtype))

    def feedback(self, reward, rule_for, input_reward=True):
        """``(reward_in, {})``: the whole reward of each output at its window's arg-max."""
        return self._route(reward, "the reward"), {}

    def backward(self, grad, input_grad=True):
        """``(dL/dx, {})``: the gradient of each output at its window's arg-max."""
        return self._route(grad, "the gradient"), {}

    @property
    def argmax(self):
        """The arg-max indices (B, C, Ho, Wo) of the use being reversed, flat ``ih*W + iw`` per
        plane."""
        return self.saved()[2]
