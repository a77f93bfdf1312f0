"""Slow, literal transcriptions of the LIF neuron's time recursion (lfp-spec.md section 6, with
snntorch 0.9.4 ``Leaky`` semantics): plain loops over neurons and time steps, one scalar at a time.

    reset_t = H(U_{t-1} - theta)              U_{-1} = 0, H(u) = 1 iff u > 0, detached
    U_t     = (beta U_{t-1} + I_t) - reset_t theta        "subtract"
    U_t     = beta ((1 - reset_t) U_{t-1}) + I_t          "zero" (snntorch's code)
    S_t     = H(U_t - theta)

LFP, backwards (M_{T-1} = 0):
    A_t = r_t + M_t,  D_t = |U_{t-1}| + |U_t + reset_t theta - U_{t-1}|,
    rho_t = A_t / stab(D_t),  M_{t-1} = beta U_{t-1} rho_t

Surrogate BPTT, backwards (dU_T = 0):
    dU_t = dS_t sg'(U_t - theta) + c_{t+1} beta dU_{t+1},  dI_t = dU_t,
    c_{t+1} = 1 ("subtract") or 1 - H(U_t - theta) ("zero"),
    sg'(u) = (alpha/2) / (1 + (pi/2 alpha u)^2) ("atan") or 0 ("heaviside").

The forward runs in the dtype it is given (numpy scalars of that type, so a float32 oracle rounds
every operation to float32 as the kernel must); everything else is float64.
"""

import math

import numpy as np

from tests.oracle.dense import stab


def heaviside(u):
    return 1.0 if u > 0 else 0.0


def lif_forward(current, beta, threshold, reset, dtype=np.float64):
    """Returns (membrane, spikes) of ``current``'s shape, computed in ``dtype``."""
    kind = np.dtype(dtype).type
    n_steps = current.shape[0]
    cur = np.asarray(current).reshape(n_steps, -1)
    beta, threshold = kind(beta), kind(threshold)
    membrane = np.zeros(cur.shape, dtype)
    spikes = np.zeros(cur.shape, dtype)
    for i in range(cur.shape[1]):
        u_prev = kind(0)
        for t in range(n_steps):
            reset_t = kind(heaviside(u_prev - threshold))
            if reset == "subtract":
                u = beta * u_prev + kind(cur[t, i]) - reset_t * threshold
            elif reset == "zero":
                u = beta * ((kind(1) - reset_t) * u_prev) + kind(cur[t, i])
            else:
                raise ValueError(reset)
            assert type(u) is kind  # every operation stayed in dtype
            membrane[t, i] = u
            spikes[t, i] = heaviside(u - threshold)
            u_prev = u
    return membrane.reshape(current.shape), spikes.reshape(current.shape)


def lif_feedback(reward, membrane, beta, threshold, eps):
    """Returns (rho, handed) in float64; handed[t] = M_{t-1}."""
    n_steps = reward.shape[0]
    r = np.asarray(reward, dtype=np.float64).reshape(n_steps, -1)
    u = np.asarray(membrane, dtype=np.float64).reshape(n_steps, -1)
    beta, threshold = float(beta), float(threshold)
    rho = np.zeros(r.shape)
    handed = np.zeros(r.shape)
    for i in range(r.shape[1]):
        m = 0.0  # M_{T-1}
        for t in reversed(range(n_steps)):
            u_prev = u[t - 1, i] if t > 0 else 0.0
            reset_t = heaviside(u_prev - threshold)
            a = r[t, i] + m
            d = abs(u_prev) + abs(u[t, i] + reset_t * threshold - u_prev)
            rho[t, i] = a / stab(d, eps)
            m = beta * u_prev * rho[t, i]
            handed[t, i] = m
    return rho.reshape(reward.shape), handed.reshape(reward.shape)


def atan_surrogate_derivative(u, alpha):
    return (alpha / 2) / (1 + (math.pi / 2 * alpha * u) ** 2)


def smooth_spike(u, alpha):
    """The function whose derivative is the atan surrogate: 1/2 + arctan(pi/2 alpha u) / pi."""
    return 0.5 + math.atan(math.pi / 2 * alpha * u) / math.pi


def lif_surrogate_backward(grad_spikes, membrane, beta, threshold, alpha, reset, surrogate):
    """Returns dL/dI in float64."""
    n_steps = grad_spikes.shape[0]
    g = np.asarray(grad_spikes, dtype=np.float64).reshape(n_steps, -1)
    u = np.asarray(membrane, dtype=np.float64).reshape(n_steps, -1)
    beta, threshold = float(beta), float(threshold)
    grad_current = np.zeros(g.shape)
    for i in range(g.shape[1]):
        grad_next = 0.0  # dL/dU_T
        for t in reversed(range(n_steps)):
            if surrogate == "atan":
                slope = atan_surrogate_derivative(u[t, i] - threshold, alpha)
            elif surrogate == "heaviside":
                slope = 0.0
            else:
                raise ValueError(surrogate)
            if reset == "subtract":
                path = 1.0
            elif reset == "zero":
                path = 1.0 - heaviside(u[t, i] - threshold)  # 1 - reset_{t+1}
            else:
                raise ValueError(reset)
            grad_u = g[t, i] * slope + path * beta * grad_next
            grad_current[t, i] = grad_u
            grad_next = grad_u
    return grad_current.reshape(grad_spikes.shape)


def lif_forward_smooth(current, beta, threshold, alpha, reset):
    """float64 forward with the spike replaced by ``smooth_spike`` and the reset still the hard
    H of the previous membrane (detached: piecewise constant in the current). Returns
    (membrane, smooth spikes)."""
    n_steps = current.shape[0]
    cur = np.asarray(current, dtype=np.float64).reshape(n_steps, -1)
    membrane = np.zeros(cur.shape)
    spikes = np.zeros(cur.shape)
    for i in range(cur.shape[1]):
        u_prev = 0.0
        for t in range(n_steps):
            reset_t = heaviside(u_prev - threshold)
            if reset == "subtract":
                u = beta * u_prev + cur[t, i] - reset_t * threshold
            else:
                u = beta * ((1.0 - reset_t) * u_prev) + cur[t, i]
            membrane[t, i] = u
            spikes[t, i] = smooth_spike(u - threshold, alpha)
            u_prev = u
    return membrane.reshape(current.shape), spikes.reshape(current.shape)
