"""Conv2d: ``z = conv2d(x, W) + b`` with torch's layout (NCHW input, weight (O, C, kh, kw),
bias (O,)), zero padding, stride and dilation; no groups.

Under LFP-epsilon (spec section 2): ``F_W = |W| * conv_weight_vjp(x, rho)``,
``F_b = |b| * sum_{B,H,W} rho`` and ``R_x = x * conv_transpose(rho, W)``; the rule builds these
from :meth:`Conv2d.vjp`.
"""

import numpy as np

from ..kernels.cpu.conv import (
    conv2d_forward,
    conv2d_output_size,
    conv2d_vjp_bias,
    conv2d_vjp_input,
    conv2d_vjp_weight,
    nchw_to_rows,
)
from .base import LinearLayer, as_rng, check_dtype, init_uniform


def as_pair(value, name, owner, minimum):
    """``(a, b)`` from an int or a pair of ints, each ``>= minimum``."""
    pair = (value, value) if np.isscalar(value) else tuple(value)
    if len(pair) != 2 or not all(isinstance(v, (int, np.integer)) for v in pair):
        raise ValueError(f"{owner}: {name} must be an int or a pair of ints, got {value!r}")
    if min(pair) < minimum:
        raise ValueError(f"{owner}: {name} must be >= {minimum}, got {value!r}")
    return int(pair[0]), int(pair[1])


def format_pair(pair):
    """``3`` for (3, 3), ``(3, 5)`` otherwise (for reprs and messages)."""
    return str(pair[0]) if pair[0] == pair[1] else str(pair)


def check_nchw_input(layer, x, channels=None):
    """x must be (B, C, H, W) (with ``C == channels`` when given) and float32/float64."""
    expected = f"(B, {channels}, H, W)" if channels is not None else "(B, C, H, W)"
    if x.ndim != 4 or (channels is not None and x.shape[1] != channels):
        if x.ndim == 3:
            hint = "; add a batch axis with x[None]"
        elif x.ndim == 2:
            hint = "; reshape flat images with x.reshape(B, C, H, W)"
        else:
            hint = ""
        raise ValueError(f"{layer!r} expects input of shape {expected}, got {x.shape}{hint}")
    if x.dtype not in (np.float32, np.float64):
        raise TypeError(f"{layer!r} computes in float32 or float64, got input dtype {x.dtype}")


class Conv2d(LinearLayer):
    """2-D convolution (cross-correlation, as torch), x (B, C, H, W) -> z (B, O, Ho, Wo),
    ``Ho = (H + 2*ph - dh*(kh - 1) - 1) // sh + 1``.

    Parameters
    ----------
    in_channels, out_channels : int
    kernel_size, stride, padding, dilation : int or (int, int)
        Zero padding; ``padding=0`` and ``stride=dilation=1`` by default.
    bias : bool
    dtype : float32 or float64
    rng : seed or numpy Generator for torch's default init, ``U(-1/sqrt(fan_in), 1/sqrt(fan_in))``
        with ``fan_in = C*kh*kw``, for the weight and then the bias.
    """

    param_names = ("weight", "bias")

    def __init__(
        self,
        in_channels,
        out_channels,
        kernel_size,
        stride=1,
        padding=0,
        dilation=1,
        bias=True,
        *,
        dtype=np.float64,
        rng=None,
    ):
        super().__init__()
        for name, value in (("in_channels", in_channels), ("out_channels", out_channels)):
            if not isinstance(value, (int, np.integer)) or value < 1:
                raise ValueError(f"Conv2d: {name} must be a positive int, got {value!r}")
        self.in_channels, self.out_channels = int(in_channels), int(out_channels)
        self.kernel_size = as_pair(kernel_size, "kernel_size", "Conv2d", 1)
        self.stride = as_pair(stride, "stride", "Conv2d", 1)
        self.padding = as_pair(padding, "padding", "Conv2d", 0)
        self.dilation = as_pair(dilation, "dilation", "Conv2d", 1)
        dtype = check_dtype(dtype)
        self.weight = np.zeros((self.out_channels, self.in_channels, *self.kernel_size), dtype)
        self.bias = np.zeros(self.out_channels, dtype=dtype) if bias else None
        self._init_parameters(as_rng(rng))

    @property
    def fan_in(self):
        return self.in_channels * self.kernel_size[0] * self.kernel_size[1]

    def _init_parameters(self, rng):
        self.weight[...] = init_uniform(rng, self.weight.shape, self.fan_in, self.weight.dtype)
        if self.bias is not None:
            self.bias[...] = init_uniform(rng, self.bias.shape, self.fan_in, self.bias.dtype)

    def output_size(self, height, width):
        """``(Ho, Wo)`` for an input of spatial size ``(height, width)``."""
        return conv2d_output_size(
            height, width, self.kernel_size, self.stride, self.padding, self.dilation
        )

    def _check_input(self, x):
        check_nchw_input(self, x, self.in_channels)
        if x.dtype != self.weight.dtype:
            raise TypeError(
                f"{self!r} has {self.weight.dtype} parameters but got a {x.dtype} input; convert "
                f"with x.astype(np.{self.weight.dtype.name}) or the layer with "
                f"layer.to(np.{x.dtype.name})"
            )
        ho, wo = self.output_size(*x.shape[2:])
        if ho < 1 or wo < 1:
            (kh, kw), (dh, dw), (ph, pw) = self.kernel_size, self.dilation, self.padding
            raise ValueError(
                f"{self!r}: the input's spatial size {x.shape[2]}x{x.shape[3]} (with padding "
                f"{x.shape[2] + 2 * ph}x{x.shape[3] + 2 * pw}) is smaller than the dilated kernel "
                f"{dh * (kh - 1) + 1}x{dw * (kw - 1) + 1}; use a larger input or more padding"
            )
        return ho, wo

    def forward(self, x):
        ho, wo = self._check_input(x)
        x = np.ascontiguousarray(x)
        n_rows = x.shape[0] * ho * wo
        cols = np.empty((n_rows, self.fan_in), x.dtype)  # (B*Ho*Wo, C*kh*kw)
        z_rows = np.empty((n_rows, self.out_channels), x.dtype)  # (B*Ho*Wo, O)
        z = np.empty((x.shape[0], self.out_channels, ho, wo), x.dtype)  # (B, O, Ho, Wo)
        conv2d_forward(
            x, self.weight, self.bias, self.stride, self.padding, self.dilation, cols, z_rows, z
        )
        # the column matrix is kept for the weight VJP
        self._cache = (x, z, cols)
        return z

    def vjp(self, v):
        """``(VJP_x(v), {"weight": VJP_W(v), "bias": sum_{B,H,W} v})`` at the cached input; v has
        the output's shape (B, O, Ho, Wo)."""
        x, z, cols = self._cached()
        if v.shape != z.shape:
            raise ValueError(
                f"{self!r}: vjp expects v of the output's shape {z.shape}, got {v.shape}"
            )
        v = np.ascontiguousarray(v, dtype=z.dtype)
        v_rows = nchw_to_rows(v, np.empty((cols.shape[0], self.out_channels), z.dtype))
        grads = {"weight": conv2d_vjp_weight(cols, v_rows, np.empty_like(self.weight))}
        if self.bias is not None:
            grads["bias"] = conv2d_vjp_bias(v, np.empty_like(self.bias))
        dx = conv2d_vjp_input(
            v_rows,
            self.weight,
            self.stride,
            self.padding,
            self.dilation,
            np.empty_like(cols),
            np.empty_like(x),
        )
        return dx, grads

    def extra_repr(self):
        parts = [
            f"{self.in_channels}, {self.out_channels}",
            f"kernel_size={format_pair(self.kernel_size)}",
        ]
        for name, default in (("stride", 1), ("padding", 0), ("dilation", 1)):
            value = getattr(self, name)
            if value != (default, default):
                parts.append(f"{name}={format_pair(value)}")
        if self.bias is None:
            parts.append("bias=False")
        return ", ".join(parts)
