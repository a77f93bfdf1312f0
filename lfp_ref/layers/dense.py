"""Dense: ``z = x W^T + b`` with torch's Linear layout (weight (O, I), bias (O,))."""

import numpy as np

from ..kernels.cpu.dense import bias_vjp, dense_forward, dense_vjp_input, dense_vjp_weight
from .base import WeightedLayer, as_rng, check_dtype, init_uniform


class Dense(WeightedLayer):
    """Fully connected layer, ``z = x W^T + b``; x (B, in_features) -> z (B, out_features)."""

    param_names = ("weight", "bias")
    #: False: ``vjp`` skips the VJP w.r.t. the input and returns None for it (set by
    #: :func:`lfp_ref.layers.containers.input_vjp_skipped` on a network's first layer)
    input_vjp = True

    def __init__(self, in_features, out_features, bias=True, *, dtype=np.float64, rng=None):
        super().__init__()
        if int(in_features) < 1 or int(out_features) < 1:
            raise ValueError(f"Dense needs positive sizes, got ({in_features}, {out_features})")
        self.in_features, self.out_features = int(in_features), int(out_features)
        dtype = check_dtype(dtype)
        self.weight = np.zeros((self.out_features, self.in_features), dtype=dtype)
        self.bias = np.zeros(self.out_features, dtype=dtype) if bias else None
        self._init_parameters(as_rng(rng))

    def _init_parameters(self, rng):
        self.weight[...] = init_uniform(rng, self.weight.shape, self.in_features, self.weight.dtype)
        if self.bias is not None:
            self.bias[...] = init_uniform(rng, self.bias.shape, self.in_features, self.bias.dtype)

    def forward(self, x):
        if x.ndim != 2 or x.shape[1] != self.in_features:
            hint = "; add Flatten() before it" if x.ndim > 2 else ""
            raise ValueError(
                f"{self!r} expects input of shape (B, {self.in_features}), got {x.shape}{hint}"
            )
        z = dense_forward(
            x, self.weight, self.bias, np.empty((x.shape[0], self.out_features), x.dtype)
        )
        self._cache = (x, z)
        return z

    def vjp(self, v):
        """``(v W, {"weight": v^T x, "bias": sum_B v})``; the first entry is None when
        ``input_vjp`` is False."""
        x = self.cached_input
        grads = {"weight": dense_vjp_weight(x, v, np.empty_like(self.weight))}
        if self.bias is not None:
            grads["bias"] = bias_vjp(v, np.empty_like(self.bias))
        if not self.input_vjp:
            return None, grads
        return dense_vjp_input(v, self.weight, np.empty_like(x)), grads

    def extra_repr(self):
        bias = "" if self.bias is not None else ", bias=False"
        return f"{self.in_features}, {self.out_features}{bias}"
