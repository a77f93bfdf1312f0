"""Flatten: (B, ...) -> (B, prod(...)); rewards and gradients are reshaped back."""

import math

import numpy as np

from .base import Layer


class Flatten(Layer):
    def forward(self, x):
        if x.ndim < 2:
            raise ValueError(f"Flatten expects input of shape (B, ...), got {x.shape}")
        self.save(x.shape)
        return x.reshape(x.shape[0], -1)

    def _unflatten(self, value, what, caller):
        # a reshape of any array of the right size would succeed: a transposed (O, B) reward of a
        # (B, O) output, or one of another batch, must not pass as the reward of this one
        x_shape = self.saved()
        expected = (x_shape[0], math.prod(x_shape[1:]))
        # an array's own shape first: np.shape reads the same, through two Python calls
        if getattr(value, "shape", None) != expected and np.shape(value) != expected:
            raise ValueError(
                f"Flatten.{caller}: {what} must have the output's shape {expected} "
                f"(input {x_shape} flattened), got {np.shape(value)}"
            )
        return value.reshape(x_shape)

    def feedback(self, reward, rule_for, input_reward=True):
        return self._unflatten(reward, "the reward", "feedback"), {}

    def backward(self, grad, input_grad=True):
        return self._unflatten(grad, "the gradient", "backward"), {}
