"""Flatten: (B, ...) -> (B, prod(...)); rewards and gradients are reshaped back."""

from .base import Layer


class Flatten(Layer):
    def forward(self, x):
        if x.ndim < 2:
            raise ValueError(f"Flatten expects input of shape (B, ...), got {x.shape}")
        self.save(x.shape)
        return x.reshape(x.shape[0], -1)

    def feedback(self, reward, rule_for, input_reward=True):
        return reward.reshape(self.saved()), {}

    def backward(self, grad, input_grad=True):
        return grad.reshape(self.saved()), {}
