"""A slow, literal float64 oracle of a whole small spiking network unrolled in time
(lfp-spec.md section 6, snntorch 0.9.4 ``Leaky`` semantics): ``for t in range(T): for each
layer: ...`` for the forward, and ``for t in reversed(range(T)): for each layer from the top:
...`` for the LFP feedback and for surrogate BPTT. Nothing is folded, batched over time or fused:
each step of each layer is one call, and the linear maps work connection by connection.

A network is a list of layer dicts (the test builds lfp_ref's twin from the same arrays):

- ``{"kind": "lif", "op": "dense" | "conv", "weight", "bias" (or None), "stride", "padding",
  "beta", "threshold", "reset"}``: a LIF neuron whose input current is the Dense
  ``I = x W^T + b`` or the Conv2d ``I = conv(x, W) + b`` of its input at that step;
- ``{"kind": "maxpool", "size": k}``: max pooling (stride k), the reward/gradient to the FIRST
  maximum of each window;
- ``{"kind": "flatten"}``;
- ``{"kind": "dropout", "masks": (T, B, ...) bool, "p": p}``: ``a * mask_t / (1 - p)`` at step
  t, with the masks the lfp_ref Dropout drew (one per step).

Forward, per LIF and step (U_{-1} = 0, H(u) = 1 iff u > 0)::

    reset_t = H(U_{t-1} - theta);  U_t = (beta U_{t-1} + I_t) - reset_t theta  ("subtract")
                                    U_t = beta ((1 - reset_t) U_{t-1}) + I_t     ("zero")
    S_t = H(U_t - theta)

LFP, per step from T-1 down to 0 and per layer from the top (M_{T-1} = 0)::

    A_t = r_t + M_t;  D_t = |U_{t-1}| + |U_t + reset_t theta - U_{t-1}|;  rho_t = A_t / stab(D_t)
    M_{t-1} = beta U_{t-1} rho_t
    R_{i<-j} = x_i w_ij rho_j  (the connection messages of step t)
    F_w += sign(w) sum_B R_{i<-j},   F_b += sign(b) sum_B b rho_j,   R_x_t = sum_j R_{i<-j}

and the reward handed to the network's input is the sum over t of what its first layer hands
down at step t (the same x is presented at every step).

Surrogate BPTT, the same loops (dL/dU_T = 0)::

    dU_t = dS_t sg'(U_t - theta) + c_{t+1} beta dU_{t+1},  c = 1 ("subtract") or
           1 - H(U_t - theta) ("zero");   dI_t = dU_t
    dW += sum_B x_i dI_j per connection;  db += sum_B dI_j;  dx_t = sum_j w_ij dI_j

The rate-coded reward and snntorch's ce_rate_loss are transcribed at the end, one entry at a time.
"""

from __future__ import annotations

import math

import numpy as np

from tests.oracle import conv as conv_oracle
from tests.oracle.dense import dense_forward
from tests.oracle.snn import atan_surrogate_derivative, heaviside, smooth_spike


def sgn0(v):
    return 1.0 if v >= 0 else -1.0


def stab(v, eps):
    return v + eps * sgn0(v)


# -- the linear maps, connection by connection ---------------------------------------------------


def _connections(layer, in_shape):
    """``(ci, cj, ck), out_shape``: input ``ci`` (flat in one sample) feeds output ``cj`` through
    weight ``ck`` (flat)."""
    weight = layer["weight"]
    if layer["op"] == "dense":
        n_out, n_in = weight.shape
        ci = np.tile(np.arange(n_in), n_out)
        cj = np.repeat(np.arange(n_out), n_in)
        return (ci, cj, cj * n_in + ci), (n_out,)
    out_channels, _, kh, kw = weight.shape
    stride, padding = layer.get("stride", 1), layer.get("padding", 0)
    return conv_oracle.conv2d_connections(
        tuple(in_shape), out_channels, (kh, kw), (stride, stride), (padding, padding), (1, 1)
    )


def _current(layer, x):
    """``I = P(x)`` in float64 for one step's input x (B, ...)."""
    if layer["op"] == "dense":
        return dense_forward(x, layer["weight"], layer["bias"])
    stride, padding = layer.get("stride", 1), layer.get("padding", 0)
    return conv_oracle.conv2d_forward(x, layer["weight"], layer["bias"], stride, padding)


def _messages_back(layer, x, rho):
    """LFP through P at one step: ``(R_x, F_weight, F_bias)`` from the messages
    ``R_{i<-j} = x_i w_ij rho_j``."""
    x = np.asarray(x, np.float64)
    (ci, cj, ck), _ = _connections(layer, x.shape[1:])
    batch = x.shape[0]
    xf, rf = x.reshape(batch, -1), np.asarray(rho, np.float64).reshape(batch, -1)
    w = np.asarray(layer["weight"], np.float64).ravel()
    messages = xf[:, ci] * w[ck] * rf[:, cj]  # (B, connections)
    reward_in = np.zeros(xf.shape)
    for n in range(batch):
        np.add.at(reward_in[n], ci, messages[n])
    f_weight = np.zeros(w.size)
    np.add.at(f_weight, ck, np.sign(w[ck]) * messages.sum(axis=0))
    f_bias = None
    if layer["bias"] is not None:
        b = np.asarray(layer["bias"], np.float64)
        rho_c = np.asarray(rho, np.float64).reshape(batch, b.size, -1)  # (B, O, positions)
        f_bias = np.sign(b) * (b[None, :, None] * rho_c).sum(axis=(0, 2))
    return reward_in.reshape(x.shape), f_weight.reshape(layer["weight"].shape), f_bias


def _gradient_back(layer, x, grad):
    """Backprop through P at one step: ``(dx, dW, db)`` connection by connection."""
    x = np.asarray(x, np.float64)
    (ci, cj, ck), _ = _connections(layer, x.shape[1:])
    batch = x.shape[0]
    xf, gf = x.reshape(batch, -1), np.asarray(grad, np.float64).reshape(batch, -1)
    w = np.asarray(layer["weight"], np.float64).ravel()
    grad_in = np.zeros(xf.shape)
    for n in range(batch):
        np.add.at(grad_in[n], ci, w[ck] * gf[n, cj])
    d_weight = np.zeros(w.size)
    np.add.at(d_weight, ck, (xf[:, ci] * gf[:, cj]).sum(axis=0))
    d_bias = None
    if layer["bias"] is not None:
        d_bias = gf.reshape(batch, np.size(layer["bias"]), -1).sum(axis=(0, 2))
    return grad_in.reshape(x.shape), d_weight.reshape(layer["weight"].shape), d_bias


# -- forward ---------------------------------------------------------------------------------------


def forward(layers, x, timesteps, dtype=np.float64, spike=None):
    """Run the network for ``timesteps`` steps on the static input x (B, ...).

    The membrane arithmetic runs in ``dtype`` (NumPy scalars of that type: a float32 oracle
    rounds every operation to float32 as the kernels must); currents are computed in float64 and
    cast (exact for the dyadic weights and inputs the tests use). ``spike``: None for the hard
    spike; ``("smooth", alpha)`` replaces the spike passed on by ``1/2 + arctan(pi/2 alpha (U -
    theta)) / pi`` (the reset stays the hard H of the previous membrane), for finite differences.

    Returns a dict: ``"spikes"`` (T, B, C) the output, and per layer ``"layers"[k]`` with lists
    over t of its ``input``, ``output`` and, for a LIF, ``current``, ``membrane`` (as (T, ...)
    arrays in ``dtype``) and ``spikes``.
    """
    kind = np.dtype(dtype).type
    record = [{"input": [], "output": [], "current": [], "membrane": []} for _ in layers]
    previous = [None] * len(layers)  # U_{t-1} of each LIF
    outputs = []
    for t in range(timesteps):
        a = np.asarray(x, dtype)
        for k, layer in enumerate(layers):
            record[k]["input"].append(a)
            if layer["kind"] == "lif":
                current = _current(layer, a).astype(dtype)
                beta, theta = kind(layer["beta"]), kind(layer["threshold"])
                u_prev = previous[k] if previous[k] is not None else np.zeros_like(current)
                u = np.empty_like(current)
                s = np.empty_like(current)
                for i in np.ndindex(*current.shape):  # one neuron at a time
                    reset = kind(heaviside(u_prev[i] - theta))
                    if layer["reset"] == "subtract":
                        u[i] = beta * u_prev[i] + current[i] - reset * theta
                    else:
                        u[i] = beta * ((kind(1) - reset) * u_prev[i]) + current[i]
                    if spike is None:
                        s[i] = heaviside(u[i] - theta)
                    else:
                        s[i] = smooth_spike(float(u[i]) - float(theta), spike[1])
                previous[k] = u
                record[k]["current"].append(current)
                record[k]["membrane"].append(u)
                a = s
            elif layer["kind"] == "maxpool":
                a = conv_oracle.maxpool2d_forward(a, layer["size"])[0].astype(dtype)
            elif layer["kind"] == "flatten":
                a = a.reshape(a.shape[0], -1)
            elif layer["kind"] == "dropout":
                a = a * (layer["masks"][t].astype(dtype) / kind(1 - layer["p"]))
            else:
                raise ValueError(layer["kind"])
            record[k]["output"].append(a)
        outputs.append(a)
    for rec in record:
        for key in ("current", "membrane"):
            rec[key] = np.stack(rec[key]) if rec[key] else None
        rec["spikes"] = np.stack(rec["output"])
    return {"spikes": np.stack(outputs), "layers": record}


# -- LFP ---------------------------------------------------------------------------------------


def feedback(layers, run, reward, eps):
    """LFP backwards in time, layer by layer (module docstring). ``run``: :func:`forward`'s
    record; ``reward`` (T, B, C) at the output spikes. Returns ``(params, input_reward)`` with
    ``params[k] = {"weight": F_W, "bias": F_b}`` for every LIF k (summed over t and batch)."""
    steps = reward.shape[0]
    params = {}
    for k, layer in enumerate(layers):
        if layer["kind"] == "lif":
            params[k] = {"weight": np.zeros(layer["weight"].shape)}
            if layer["bias"] is not None:
                params[k]["bias"] = np.zeros(np.shape(layer["bias"]))
    handed = [None] * len(layers)  # M_t of each LIF, from step t+1
    input_reward = None
    for t in reversed(range(steps)):
        a = np.asarray(reward[t], np.float64)  # arriving at the output spikes S_t
        for k in reversed(range(len(layers))):
            layer, rec = layers[k], run["layers"][k]
            x_t = np.asarray(rec["input"][t], np.float64)
            if layer["kind"] == "lif":
                u = np.asarray(rec["membrane"][t], np.float64)
                u_prev = np.asarray(rec["membrane"][t - 1], np.float64) if t > 0 else 0 * u
                theta, beta = float(layer["threshold"]), float(layer["beta"])
                rho = np.empty(u.shape)
                m_next = np.empty(u.shape)
                for i in np.ndindex(*u.shape):
                    total = a[i] + (handed[k][i] if handed[k] is not None else 0.0)  # A_t
                    reset = heaviside(u_prev[i] - theta)
                    d = abs(u_prev[i]) + abs(u[i] + reset * theta - u_prev[i])  # D_t
                    rho[i] = total / stab(d, eps)
                    m_next[i] = beta * u_prev[i] * rho[i]  # M_{t-1}
                handed[k] = m_next
                reward_in, f_w, f_b = _messages_back(layer, x_t, rho)
                params[k]["weight"] += f_w
                if f_b is not None:
                    params[k]["bias"] += f_b
                a = reward_in
            elif layer["kind"] == "maxpool":
                a = conv_oracle.maxpool2d_route(x_t, a, layer["size"])
            elif layer["kind"] == "flatten":
                a = a.reshape(x_t.shape)
            elif layer["kind"] == "dropout":
                a = a * (layer["masks"][t] / (1 - layer["p"]))
        input_reward = a if input_reward is None else input_reward + a
    return params, input_reward


# -- surrogate BPTT ------------------------------------------------------------------------------


def surrogate_gradients(layers, run, grad_spikes, alpha, surrogate="atan"):
    """BPTT with the surrogate derivative of the spike, backwards in time, layer by layer.
    ``grad_spikes`` (T, B, C) is dL/dS at the output. Returns ``(grads, input_grad)`` with
    ``grads[k] = {"weight": dL/dW, "bias": dL/db}``."""
    steps = grad_spikes.shape[0]
    grads = {}
    for k, layer in enumerate(layers):
        if layer["kind"] == "lif":
            grads[k] = {"weight": np.zeros(layer["weight"].shape)}
            if layer["bias"] is not None:
                grads[k]["bias"] = np.zeros(np.shape(layer["bias"]))
    carried = [None] * len(layers)  # dL/dU_{t+1} of each LIF
    input_grad = None
    for t in reversed(range(steps)):
        g = np.asarray(grad_spikes[t], np.float64)
        for k in reversed(range(len(layers))):
            layer, rec = layers[k], run["layers"][k]
            x_t = np.asarray(rec["input"][t], np.float64)
            if layer["kind"] == "lif":
                u = np.asarray(rec["membrane"][t], np.float64)
                theta, beta = float(layer["threshold"]), float(layer["beta"])
                grad_u = np.empty(u.shape)
                for i in np.ndindex(*u.shape):
                    if surrogate == "atan":
                        slope = atan_surrogate_derivative(u[i] - theta, alpha)
                    elif surrogate == "heaviside":
                        slope = 0.0
                    else:
                        raise ValueError(surrogate)
                    # U_t -> U_{t+1}: beta, cut by a zero reset at t+1 (H(U_t - theta))
                    path = 1.0 if layer["reset"] == "subtract" else 1.0 - heaviside(u[i] - theta)
                    later = carried[k][i] if carried[k] is not None else 0.0
                    grad_u[i] = g[i] * slope + path * beta * later
                carried[k] = grad_u
                grad_in, d_w, d_b = _gradient_back(layer, x_t, grad_u)  # dI_t = dU_t
                grads[k]["weight"] += d_w
                if d_b is not None:
                    grads[k]["bias"] += d_b
                g = grad_in
            elif layer["kind"] == "maxpool":
                g = conv_oracle.maxpool2d_route(x_t, g, layer["size"])
            elif layer["kind"] == "flatten":
                g = g.reshape(x_t.shape)
            elif layer["kind"] == "dropout":
                g = g * (layer["masks"][t] / (1 - layer["p"]))
        input_grad = g if input_grad is None else input_grad + g
    return grads, input_grad


# -- the rate-coded reward and snntorch's ce_rate_loss, one entry at a time ------------------------


def sigmoid(v):
    return 1.0 / (1.0 + math.exp(-v))


def rate_coded_reward(spikes, y, divide_by_t=False):
    """lfp-spec.md section 6: ``P = sum_t S``, ``N = T - P``, ``pos = 1 - s(P - T//2)``,
    ``neg = 1 - s(N - T//2)``; ``r[t,b,c] = pos`` for the label, else ``-S[t,b,c] neg``."""
    steps, batch, classes = spikes.shape
    r = np.zeros((steps, batch, classes))
    for b in range(batch):
        for c in range(classes):
            count = sum(float(spikes[t, b, c]) for t in range(steps))
            pos = 1.0 - sigmoid(count - steps // 2)
            neg = 1.0 - sigmoid((steps - count) - steps // 2)
            for t in range(steps):
                r[t, b, c] = pos if c == y[b] else -float(spikes[t, b, c]) * neg
    return r / steps if divide_by_t else r


def ce_rate(spikes, y, reduction="mean"):
    """snntorch 0.9.4 ``ce_rate_loss``: ``(1/T) sum_t CE(S_t, y)`` (CE averaged over the batch
    for "mean", summed for "sum"); returns ``(loss, dL/dS)``."""
    steps, batch, classes = spikes.shape
    loss = 0.0
    grad = np.zeros((steps, batch, classes))
    for t in range(steps):
        for b in range(batch):
            z = [float(v) for v in spikes[t, b]]
            top = max(z)
            log_sum = top + math.log(sum(math.exp(v - top) for v in z))
            loss += log_sum - z[y[b]]
            for c in range(classes):
                grad[t, b, c] = math.exp(z[c] - log_sum) - (1.0 if c == y[b] else 0.0)
    scale = steps * batch if reduction == "mean" else steps
    return loss / scale, grad / scale
