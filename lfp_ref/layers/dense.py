"""Dense: ``z = x W^T + b`` with torch's Linear layout (weight (O, I), bias (O,))."""

import numpy as np

from ..kernels import backend_of
from .base import WeightedLayer, as_rng, check_dtype, init_uniform


class Dense(WeightedLayer):
    """Fully connected layer, ``z = x W^T + b``; x (B, in_features) -> z (B, out_features)."""

    param_names = ("weight", "bias")

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
        bk = backend_of(x, self.weight)
        z = bk.dense.dense_forward(
            x, self.weight, self.bias, bk.empty((x.shape[0], self.out_features), x.dtype)
        )  # (B, O)
        self.save((x, z))
        return z

    def vjp(self, v, input_vjp=True):
        """``(v W, {"weight": v^T x, "bias": sum_B v})``; the first entry is None when
        ``input_vjp`` is False. v has the output's shape (B, out_features)."""
        x, z = self.saved()[:2]
        # an array's own shape first: np.shape reads the same, through two Python calls
        if getattr(v, "shape", None) != z.shape and np.shape(v) != z.shape:
            raise ValueError(
                f"{self!r}.vjp: v must have the output's shape {z.shape}, got {np.shape(v)}"
            )
        bk = backend_of(v, x)
        v = bk.contiguous(v, dtype=z.dtype)
        grads = {"weight": bk.dense.dense_vjp_weight(x, v, bk.empty_like(self.weight))}
        if self.bias is not None:
            grads["bias"] = bk.dense.bias_vjp(v, bk.empty_like(self.bias))
        if not input_vjp:
            return None, grads
        return bk.dense.dense_vjp_input(v, self.weight, bk.empty_like(x)), grads

    # -- the matrix view the LRP rules use: z = X W^T + b with X the input rows --

    def weight_matrix(self):
        """The weight as an (O, K) matrix (K = in_features)."""
        return self.weight

    def input_rows(self):
        """The input of the use being reversed as rows (N, K): x itself."""
        return self.cached_input

    def to_rows(self, a):
        """An input-shaped array as rows (N, K)."""
        return a

    def output_rows(self, v):
        """An output-shaped array as rows (N, O)."""
        return v

    def rows_to_input(self, rows):
        """The adjoint of :meth:`to_rows`: rows (N, K) back to the input's shape."""
        return rows

    def extra_repr(self):
        bias = "" if self.bias is not None else ", bias=False"
        return f"{self.in_features}, {self.out_features}{bias}"
