"""Propagation rules: how a layer turns the reward at its output into the reward at its input
and the feedback of its parameters.

LFP-epsilon (spec section 2) is the default: for a layer ``z = f(x; theta)``

    rho     = r / stab(z),           stab(z) = z + eps * sgn0(z)
    F_theta = |theta| * VJP_theta(rho)
    R_x     = x * VJP_x(rho)
"""

from __future__ import annotations

import numpy as np

from .kernels.cpu.elementwise import multiply, multiply_abs, stabilized_ratio

DEFAULT_EPS = 1e-6


class Epsilon:
    """The LFP-epsilon / LRP-epsilon rule, ``R_i = x_i sum_j w_ij r_j / stab(z_j)``."""

    def __init__(self, eps=DEFAULT_EPS):
        if not np.isfinite(eps) or eps < 0:
            raise ValueError(f"Epsilon(eps) needs a finite eps >= 0, got {eps}")
        self.eps = float(eps)

    def propagate(self, layer, reward):
        x, z = layer.cached_input, layer.cached_output
        rho = stabilized_ratio(reward, z, self.eps, out=np.empty_like(z))
        reward_in, vjp_params = layer.vjp(rho)
        multiply(reward_in, x, out=reward_in)
        params = layer.own_parameters()
        return reward_in, {
            name: multiply_abs(v, params[name], out=v) for name, v in vjp_params.items()
        }

    def propagate_sum(self, inputs, z, reward):
        """A parameter-free sum ``z = a + b + ...``: ``R_a = a * r / stab(z)`` for each summand."""
        rho = stabilized_ratio(reward, z, self.eps, out=np.empty_like(z))
        return [multiply(a, rho, out=np.empty_like(z)) for a in inputs]

    def __repr__(self):
        return f"Epsilon(eps={self.eps:g})"
