"""Slow, literal float64 transcriptions of the BatchNorm formulas (docs/numerical-contract.md
section 2) and of torch's running-statistics update.

Arrays are (B, C, ...) with the channel on axis 1; statistics are per channel over every other
axis. The training-mode Jacobian is built EXPLICITLY as a full matrix, entry by entry, from the
analytic derivative (checked against finite differences in the tests)

    dz_i / dx_k = gamma_c / sqrt(var_c + eps) * (delta_ik - 1/n - xhat_i xhat_k / n)

for i, k in the same channel c (0 across channels), and every VJP is ``J^T v`` as a matrix
product.
"""

import numpy as np

from tests.oracle.dense import stab


def _channels(x):
    """Flat indices of x, grouped by channel: ``groups[c]`` lists the flat indices in channel c."""
    groups = [[] for _ in range(x.shape[1])]
    for flat, index in enumerate(np.ndindex(*x.shape)):
        groups[index[1]].append(flat)
    return groups


def _affine(weight, bias, channels):
    gamma = [1.0] * channels if weight is None else [float(g) for g in weight]
    beta = [0.0] * channels if bias is None else [float(b) for b in bias]
    return gamma, beta


def batch_statistics(x):
    """Per-channel batch mean and BIASED variance, and the count n per channel."""
    flat = np.asarray(x, dtype=np.float64).reshape(-1)
    means, variances = [], []
    groups = _channels(x)
    for members in groups:
        n = len(members)
        mean = sum(flat[i] for i in members) / n
        means.append(mean)
        variances.append(sum((flat[i] - mean) ** 2 for i in members) / n)
    return np.array(means), np.array(variances), len(groups[0])


def bn_forward(x, weight, bias, eps_bn, running_mean=None, running_var=None):
    """``z = gamma (x - mean) / sqrt(var + eps_bn) + beta`` with the batch statistics (training)
    or, when given, the running ones (eval). Returns ``(z, xhat)``."""
    if running_mean is None:
        mean, var, _ = batch_statistics(x)
    else:
        mean, var = np.asarray(running_mean, np.float64), np.asarray(running_var, np.float64)
    gamma, beta = _affine(weight, bias, x.shape[1])
    flat = np.asarray(x, dtype=np.float64).reshape(-1)
    z, xhat = np.zeros(flat.size), np.zeros(flat.size)
    for c, members in enumerate(_channels(x)):
        for i in members:
            xhat[i] = (flat[i] - mean[c]) / np.sqrt(var[c] + eps_bn)
            z[i] = gamma[c] * xhat[i] + beta[c]
    return z.reshape(x.shape), xhat.reshape(x.shape)


def bn_train_jacobian(x, weight, eps_bn):
    """The full (N, N) training-mode Jacobian ``J[i, k] = dz_i / dx_k``, N = x.size, entry by
    entry from the analytic formula."""
    mean, var, n = batch_statistics(x)
    gamma, _ = _affine(weight, None, x.shape[1])
    _, xhat = bn_forward(x, None, None, eps_bn)
    xhat = xhat.reshape(-1)
    jacobian = np.zeros((x.size, x.size))
    for c, members in enumerate(_channels(x)):
        factor = gamma[c] / np.sqrt(var[c] + eps_bn)
        for i in members:
            for k in members:
                delta = 1.0 if i == k else 0.0
                jacobian[i, k] = factor * (delta - 1.0 / n - xhat[i] * xhat[k] / n)
    return jacobian


def bn_eval_jacobian(x, weight, running_var, eps_bn):
    """The (N, N) eval-mode Jacobian: diagonal, ``gamma_c / sqrt(running_var_c + eps_bn)``."""
    gamma, _ = _affine(weight, None, x.shape[1])
    jacobian = np.zeros((x.size, x.size))
    for c, members in enumerate(_channels(x)):
        for i in members:
            jacobian[i, i] = gamma[c] / np.sqrt(float(running_var[c]) + eps_bn)
    return jacobian


def finite_difference_jacobian(f, x, h=1e-6):
    """Central differences ``J[:, k] = (f(x + h e_k) - f(x - h e_k)) / 2h`` of an array function."""
    x = np.array(x, dtype=np.float64)
    flat = x.reshape(-1)
    jacobian = np.zeros((f(x).size, x.size))
    for k in range(x.size):
        old = flat[k]
        flat[k] = old + h
        up = np.asarray(f(x), dtype=np.float64).reshape(-1)
        flat[k] = old - h
        down = np.asarray(f(x), dtype=np.float64).reshape(-1)
        flat[k] = old
        jacobian[:, k] = (up - down) / (2 * h)
    return jacobian


def bn_vjp(x, v, weight, eps_bn, running_mean=None, running_var=None):
    """``(J^T v, sum v * xhat, sum v)``: the input VJP as a product with the explicit Jacobian
    (training mode without running statistics, eval mode with them), the parameter VJPs per
    channel."""
    if running_mean is None:
        jacobian = bn_train_jacobian(x, weight, eps_bn)
    else:
        jacobian = bn_eval_jacobian(x, weight, running_var, eps_bn)
    _, xhat = bn_forward(x, None, None, eps_bn, running_mean, running_var)
    v_flat = np.asarray(v, dtype=np.float64).reshape(-1)
    vjp_x = (jacobian.T @ v_flat).reshape(x.shape)
    xhat_flat = xhat.reshape(-1)
    vjp_gamma, vjp_beta = np.zeros(x.shape[1]), np.zeros(x.shape[1])
    for c, members in enumerate(_channels(x)):
        for i in members:
            vjp_gamma[c] += v_flat[i] * xhat_flat[i]
            vjp_beta[c] += v_flat[i]
    return vjp_x, vjp_gamma, vjp_beta


def bn_lfp_epsilon(x, reward, weight, bias, eps_bn, eps, running_mean=None, running_var=None):
    """The spec's BatchNorm LFP rule. Returns ``(R_x, F_gamma, F_beta)``:

    rho = r / stab(z);  F_gamma = |gamma| sum rho xhat;  F_beta = |beta| sum rho;
    R_x = x * J^T rho  (J the full training-mode Jacobian, or the eval-mode diagonal).
    """
    z, _ = bn_forward(x, weight, bias, eps_bn, running_mean, running_var)
    z_flat = z.reshape(-1)
    r_flat = np.asarray(reward, dtype=np.float64).reshape(-1)
    rho = np.array([r_flat[i] / stab(z_flat[i], eps) for i in range(z_flat.size)])
    vjp_x, vjp_gamma, vjp_beta = bn_vjp(
        x, rho.reshape(x.shape), weight, eps_bn, running_mean, running_var
    )
    reward_in = np.asarray(x, dtype=np.float64) * vjp_x
    gamma, beta = _affine(weight, bias, x.shape[1])
    f_gamma = np.array([abs(g) * s for g, s in zip(gamma, vjp_gamma, strict=True)])
    f_beta = np.array([abs(b) * s for b, s in zip(beta, vjp_beta, strict=True)])
    return reward_in, f_gamma, f_beta


def running_stats_trajectory(batches, num_features, momentum):
    """torch's update over a sequence of training-mode batches, written out:

    num_batches_tracked += 1
    factor = momentum (or 1 / num_batches_tracked when momentum is None)
    running_mean = factor * mean_B + (1 - factor) * running_mean
    running_var  = factor * var_B * n / (n - 1) + (1 - factor) * running_var   (unbiased)

    Returns a list of ``(running_mean, running_var, num_batches_tracked)`` after each batch,
    starting from running_mean = 0, running_var = 1, num_batches_tracked = 0.
    """
    running_mean, running_var, tracked = np.zeros(num_features), np.ones(num_features), 0
    trajectory = []
    for x in batches:
        mean, var, n = batch_statistics(x)
        tracked += 1
        factor = 1.0 / tracked if momentum is None else momentum
        running_mean = factor * mean + (1 - factor) * running_mean
        running_var = factor * var * n / (n - 1) + (1 - factor) * running_var
        trajectory.append((running_mean.copy(), running_var.copy(), tracked))
    return trajectory
