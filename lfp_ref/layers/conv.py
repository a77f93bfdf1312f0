"""Conv2d: ``z = conv2d(x, W) + b`` with torch's layout (NCHW input, weight (O, C, kh, kw),
bias (O,)), zero padding, stride and dilation; no groups.

Under LFP-epsilon (spec section 2): ``F_W = |W| * conv_weight_vjp(x, rho)``,
``F_b = |b| * sum_{B,H,W} rho`` and ``R_x = x * conv_transpose(rho, W)``; the rule builds these
from :meth:`Conv2d.vjp`.
"""

import numpy as np

from ..kernels import backend_of
from .base import WeightedLayer, as_rng, check_dtype, init_uniform


class Scratch:
    """Arrays a layer reuses from call to call, by name, for its INTERNAL temporaries only
    (column matrices, their gradients): nothing it hands out, so a later call cannot overwrite
    an array a caller still holds. An array is reallocated when the shape or dtype changes."""

    def __init__(self):
        self._arrays = {}

    def get(self, backend, name, shape, dtype):
        array = self._arrays.get(name)
        if (
            array is None
            or array.shape != shape
            or array.dtype != dtype
            or not backend.is_array(array)
        ):
            array = self._arrays[name] = backend.empty(shape, dtype)
        return array

    def clear(self):
        self._arrays.clear()


class ConvCache(tuple):
    """Conv2d's cache of one forward call, ``(x, z, cols)``: ``cols`` is the row-layout column
    matrix (B*Ho*Wo, C*kh*kw) of :func:`lfp_ref.kernels.cpu.conv.im2col`, which the LRP rules read
    (:meth:`Conv2d.input_rows`). The layer's own passes do not need it, so it is built on first
    access (indexing, slicing or unpacking) and kept."""

    def __new__(cls, layer, x, z):
        cache = super().__new__(cls, (x, z, None))
        cache._layer = layer
        cache._cols = None
        return cache

    def _columns(self):
        if self._cols is None:
            x, z, layer = tuple.__getitem__(self, 0), tuple.__getitem__(self, 1), self._layer
            bk = backend_of(x)
            cols = bk.empty((x.shape[0] * z.shape[2] * z.shape[3], layer.fan_in), x.dtype)
            self._cols = bk.conv.im2col(
                x, layer.kernel_size, layer.stride, layer.padding, layer.dilation, cols
            )
        return self._cols

    def __getitem__(self, index):
        return (
            (*self,)[index]
            if isinstance(index, slice)
            else (self._columns() if index in (2, -1) else tuple.__getitem__(self, index))
        )

    def __iter__(self):
        yield tuple.__getitem__(self, 0)
        yield tuple.__getitem__(self, 1)
        yield self._columns()


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


class Conv2d(WeightedLayer):
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
        self._scratch = Scratch()
        # the use whose whole batch of sample-major columns the scratch "cols" holds (None: no
        # use's): its weight VJP can skip the im2col
        self._cols_owner = None

    def __getstate__(self):
        state = super().__getstate__()
        state.update(_scratch=Scratch(), _cols_owner=None)  # per-pass temporaries
        return state

    @property
    def fan_in(self):
        return self.in_channels * self.kernel_size[0] * self.kernel_size[1]

    def _init_parameters(self, rng):
        self.weight[...] = init_uniform(rng, self.weight.shape, self.fan_in, self.weight.dtype)
        if self.bias is not None:
            self.bias[...] = init_uniform(rng, self.bias.shape, self.fan_in, self.bias.dtype)

    def output_size(self, height, width):
        """``(Ho, Wo)`` for an input of spatial size ``(height, width)``."""
        return backend_of(self.weight).conv.conv2d_output_size(
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
        bk = backend_of(x, self.weight)
        x = bk.contiguous(x)
        batch = x.shape[0]
        chunk = bk.conv.samples_per_chunk(batch, self.fan_in, ho * wo, x.dtype.itemsize)
        cols = self._scratch.get(bk, "cols", (chunk, self.fan_in, ho * wo), x.dtype)
        z = bk.empty((batch, self.out_channels, ho, wo), x.dtype)  # (B, O, Ho, Wo)
        bk.conv.conv2d_forward_samples(
            x, self.weight, self.bias, self.stride, self.padding, self.dilation, cols, z
        )
        cache = ConvCache(self, x, z)
        # one chunk held the whole batch: its column matrices serve the weight VJP as they are
        self._cols_owner = cache if chunk == batch else None
        self.save(cache)
        return z

    def vjp(self, v, input_vjp=True):
        """``(VJP_x(v), {"weight": VJP_W(v), "bias": sum_{B,H,W} v})`` at the input of the use
        being reversed; v has the output's shape (B, O, Ho, Wo). ``VJP_x`` is None when
        ``input_vjp`` is False."""
        cache = self.saved()
        x, z = tuple.__getitem__(cache, 0), tuple.__getitem__(cache, 1)
        if np.shape(v) != z.shape:
            raise ValueError(
                f"{self!r}.vjp: v must have the output's shape {z.shape}, got {np.shape(v)}"
            )
        bk = backend_of(v, x)
        v = bk.contiguous(v, dtype=z.dtype)
        n_pos = z.shape[2] * z.shape[3]
        chunk = bk.conv.samples_per_chunk(x.shape[0], self.fan_in, n_pos, x.dtype.itemsize)
        cols = self._scratch.get(bk, "cols", (chunk, self.fan_in, n_pos), z.dtype)
        dcols = self._scratch.get(bk, "dcols", cols.shape, z.dtype) if input_vjp else None
        partial = self._scratch.get(bk, "partial", (chunk, self.fan_in, self.out_channels), z.dtype)
        dweight = bk.empty_like(self.weight)
        dx = bk.empty_like(x) if input_vjp else None
        cols_ready = self._cols_owner is cache
        bk.conv.conv2d_vjp_samples(
            x,
            self.weight,
            v,
            self.stride,
            self.padding,
            self.dilation,
            cols,
            dcols,
            partial,
            dweight,
            dx,
            cols_ready=cols_ready,
        )
        # the scratch now holds this use's columns if one chunk took the whole batch
        self._cols_owner = cache if chunk == x.shape[0] else None
        grads = {"weight": dweight}
        if self.bias is not None:
            grads["bias"] = bk.conv.conv2d_vjp_bias(v, bk.empty_like(self.bias))
        return dx, grads

    # -- the matrix view the LRP rules use: z_rows = cols W2^T + b (rows: output positions) --

    def weight_matrix(self):
        """The weight as an (O, C*kh*kw) matrix (a view)."""
        return self.weight.reshape(self.out_channels, -1)

    def input_rows(self):
        """The im2col column matrix (B*Ho*Wo, C*kh*kw) of the use being reversed."""
        return self.saved()[2]

    def to_rows(self, a):
        """An input-shaped array as an im2col column matrix (B*Ho*Wo, C*kh*kw)."""
        bk = backend_of(a)
        geometry = (self.kernel_size, self.stride, self.padding, self.dilation)
        return bk.conv.im2col(a, *geometry, bk.empty_like(self.input_rows()))

    def output_rows(self, v):
        """An output-shaped array (B, O, Ho, Wo) as rows (B*Ho*Wo, O)."""
        bk = backend_of(v)
        return bk.conv.nchw_to_rows(v, bk.empty((self.input_rows().shape[0], v.shape[1]), v.dtype))

    def rows_to_input(self, rows):
        """The adjoint of :meth:`to_rows` (col2im): rows back to the input's shape."""
        bk = backend_of(rows)
        geometry = (self.kernel_size, self.stride, self.padding, self.dilation)
        return bk.conv.col2im(rows, *geometry, bk.empty_like(self.cached_input))

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
