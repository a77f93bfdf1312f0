"""GaussianNoise: in training mode adds ``sigma * N(0, 1)`` to its input, in eval mode the
identity (the NoisyWrapper of the authors' step-function notebooks, lfprop's spiking nets).

The noise is additive, so the reward and the gradient pass through unchanged:
LFP ``R_in = R_out`` (the identity rule, as for an activation), backprop ``dL/dx = dL/dy``.
The layer below a Dense or Conv2d makes that layer see (and LFP scale its reward and feedback
by) the noisy input ``x + noise``, as the authors' wrapper does.
"""

import math

import numpy as np

from ..kernels import backend_of
from .base import Layer, as_rng


def check_sigma(sigma, owner="GaussianNoise(sigma)"):
    """``sigma`` as a float, or a ValueError: it must be a finite number >= 0."""
    try:
        value = float(sigma)
    except (TypeError, ValueError):
        value = float("nan")
    if isinstance(sigma, (bool, np.bool_)) or not (math.isfinite(value) and value >= 0.0):
        raise ValueError(
            f"{owner} needs a finite standard deviation sigma >= 0, got {sigma!r} (0 makes the "
            "layer the identity)"
        )
    return value


class GaussianNoise(Layer):
    """Adds Gaussian noise of standard deviation ``sigma`` in training mode.

    ``y = x + sigma * n``, ``n ~ N(0, 1)`` elementwise, drawn afresh at every forward call in
    training mode; ``y = x`` in eval mode and for ``sigma = 0`` (nothing is drawn then).

    Parameters
    ----------
    sigma : float >= 0, the standard deviation of the noise.
    rng : seed or ``numpy.random.Generator`` for the noise; the same seed gives the same sequence
        of noise arrays. The noise is drawn on the host in float64 (``sigma * n``) and then cast
        to the input's dtype, so a seed gives the same noise (up to that rounding) for float32
        and float64 input, on the CPU and on a GPU. The Generator is the layer's ``rng``, so
        checkpoints save and restore its state (resuming continues the same noise stream).
    """

    def __init__(self, sigma=0.1, *, rng=None):
        super().__init__()
        self.sigma = check_sigma(sigma)
        self.rng = as_rng(rng)

    def forward(self, x):
        bk = backend_of(x)
        x = bk.contiguous(x)
        self.save(x.shape)
        if not self.training or self.sigma == 0.0:
            return x.copy()
        noise = self.rng.standard_normal(x.shape) * self.sigma  # float64, on the host
        noise = bk.contiguous(noise, dtype=x.dtype)
        return bk.xp.add(x, noise, out=bk.empty_like(x))

    def _through(self, value, what, caller):
        shape = self.saved()
        if np.shape(value) != shape:
            raise ValueError(
                f"{self!r}.{caller}: {what} must have the input's shape {shape}, got "
                f"{np.shape(value)}"
            )
        return value

    def feedback(self, reward, rule_for, input_reward=True):
        # the noise is additive: the identity rule, R_in = R_out
        return self._through(reward, "the reward", "feedback"), {}

    def backward(self, grad, input_grad=True):
        # dy/dx = 1
        return self._through(grad, "the gradient", "backward"), {}

    def extra_repr(self):
        return f"sigma={self.sigma:g}"
