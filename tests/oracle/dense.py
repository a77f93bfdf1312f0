"""Slow, literal float64 transcriptions of the Dense formulas (docs/numerical-contract.md
sections 1-2).

Per-connection view: R_{i<-j} = x_i w_ij r_j / stab(z_j); R_i = sum_j R_{i<-j};
F_w_ij = sign(w_ij) sum_B R_{i<-j}; the bias message is b_j r_j / stab(z_j).
"""

import numpy as np


def sgn0(v):
    return 1.0 if v >= 0 else -1.0


def stab(z, eps):
    return z + eps * sgn0(z)


def dense_forward(x, weight, bias):
    batch, n_in = x.shape
    n_out = weight.shape[0]
    z = np.zeros((batch, n_out))
    for n in range(batch):
        for j in range(n_out):
            z[n, j] = sum(float(x[n, i]) * float(weight[j, i]) for i in range(n_in))
            if bias is not None:
                z[n, j] += float(bias[j])
    return z


def dense_lfp_epsilon(x, weight, bias, reward, eps):
    """Returns (R_x, F_weight, F_bias) from connection messages."""
    z = dense_forward(x, weight, bias)
    batch, n_in = x.shape
    n_out = weight.shape[0]
    reward_in = np.zeros((batch, n_in))
    f_weight = np.zeros((n_out, n_in))
    f_bias = np.zeros(n_out) if bias is not None else None
    for n in range(batch):
        for j in range(n_out):
            s = stab(z[n, j], eps)
            for i in range(n_in):
                message = float(x[n, i]) * float(weight[j, i]) * float(reward[n, j]) / s
                reward_in[n, i] += message
                f_weight[j, i] += np.sign(weight[j, i]) * message
            if bias is not None:
                f_bias[j] += np.sign(bias[j]) * float(bias[j]) * float(reward[n, j]) / s
    return reward_in, f_weight, f_bias


def finite_difference(f, array, h=1e-6):
    """Central differences of the scalar f() w.r.t. each entry of ``array`` (perturbed in place)."""
    grad = np.zeros(array.shape)
    flat = array.reshape(-1)
    for k in range(flat.size):
        old = flat[k]
        flat[k] = old + h
        up = f()
        flat[k] = old - h
        down = f()
        flat[k] = old
        grad.reshape(-1)[k] = (up - down) / (2 * h)
    return grad
