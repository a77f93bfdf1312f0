"""Dropout (torch.nn.Dropout semantics): in training mode each entry is kept with probability
``1 - p`` and scaled by ``1 / (1 - p)``; in eval mode the layer is the identity.

LFP (docs/numerical-contract.md section 2.3): ``R_in = R_out * mask / (1 - p)`` in training
mode, the identity in eval mode. Backprop: ``dL/dx = dL/dy * mask / (1 - p)``.
"""

import numpy as np

from ..kernels import backend_of
from .base import Layer, as_rng


class Dropout(Layer):
    """Randomly zeroes entries with probability ``p`` during training.

    Parameters
    ----------
    p : float in [0, 1), the probability of dropping an entry.
    rng : seed or ``numpy.random.Generator`` for the masks; the same seed gives the same sequence
        of masks. Masks are drawn in float64 whatever the input dtype, so a seed gives the same
        mask for float32 and float64 input.
    """

    def __init__(self, p=0.5, *, rng=None):
        super().__init__()
        try:
            value = float(p)
        except (TypeError, ValueError):
            value = float("nan")
        if isinstance(p, bool) or not (0.0 <= value < 1.0):
            raise ValueError(
                f"Dropout(p) needs 0 <= p < 1, got {p!r}; p is the probability of dropping an "
                "entry (p = 1 would drop everything)"
            )
        self.p = value
        self.rng = as_rng(rng)

    def forward(self, x):
        bk = backend_of(x)
        x = bk.contiguous(x)
        if not self.training:
            self.save((x, None))
            return x.copy()
        # drawn on the host from the layer's Generator, so a seed gives the same masks anywhere
        keep = self.rng.random(x.shape) >= self.p  # P(keep) = 1 - p
        # torch: noise = bernoulli(1 - p) / (1 - p) in the input's dtype; y = x * noise
        scaled_mask = bk.contiguous(keep.astype(x.dtype) / x.dtype.type(1.0 - self.p))
        self.save((x, scaled_mask))
        return bk.elementwise.multiply(x, scaled_mask, out=bk.empty_like(x))

    @property
    def cached_mask(self):
        """The keep mask (bool) of the last forward pass; None if it ran in eval mode."""
        scaled_mask = self.saved()[1]
        return None if scaled_mask is None else scaled_mask != 0

    def _through(self, value):
        # R_in = R_out * mask / (1 - p) (training) or R_out (eval); the same for gradients
        x, scaled_mask = self.saved()
        if np.shape(value) != x.shape:
            raise ValueError(
                f"{self!r}: expected an array of shape {x.shape}, got {np.shape(value)}"
            )
        if scaled_mask is None:
            return value
        bk = backend_of(value, scaled_mask)
        value = bk.contiguous(value, dtype=scaled_mask.dtype)
        return bk.elementwise.multiply(value, scaled_mask, out=bk.empty_like(value))

    def feedback(self, reward, rule_for, input_reward=True):
        return self._through(reward), {}

    def backward(self, grad, input_grad=True):
        return self._through(grad), {}

    def extra_repr(self):
        return f"p={self.p:g}"
