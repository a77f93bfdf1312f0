"""Flatten: (B, ...) -> (B, prod(...)); rewards and gradients are reshaped back."""

from .base import Layer


class Flatten(Layer):
    def forward(self, x):
        if x.ndim < 2:
            raise ValueError(f"Flatten expects input of shape (B, ...), got {x.shape}")
        self._cache = x.shape
        return x.reshape(x.shape[0], -1)

    def feedback(self, reward, rule_for):
        return reward.reshape(self._cached()), {}

    def backward(self, grad):
        return grad.reshape(self._cached()), {}
