"""Oracle for the LRP rules of docs/numerical-contract.md section 5 used as LFP rules: a slow,
literal float64 transcription, connection by connection.

A Dense or Conv2d layer is a list of connections ``(i, j, k)``: input i (flat over the sample's
input) feeds output j (flat over the sample's output) through the weight ``w[k]``; output j adds
the bias of its channel. Dense: every (i, j), ``k = j*I + i``. Conv2d: the connections of
``tests.oracle.conv.conv2d_connections`` (padding taps have no connection).

For each rule the spec's formula is written per connection: the message ``R_{i<-j}`` and the
message of the bias term of j. Then (spec section 5)

    R_i    = sum_j R_{i<-j}
    F_w[k] = sign(w[k]) * sum over the batch and the connections of w[k] of R_{i<-j}
    F_b[o] = sign(b[o]) * sum over the batch and the outputs j of channel o of the bias message

Sums over the connections of an output use ``np.add.at`` over the connection list; nothing uses a
matrix form of the layer.
"""

import numpy as np

from tests.oracle.conv import conv2d_connections


def sgn0(v):
    return np.where(v >= 0, 1.0, -1.0)


def stab(v, eps):
    return v + eps * sgn0(v)


def pos(v):
    return np.maximum(v, 0.0)


def neg(v):
    return np.minimum(v, 0.0)


class Connections:
    """The connections of one layer: ``i``, ``j``, ``k`` index arrays, the number of inputs and
    outputs per sample, and ``channel[j]``, the bias index of output j."""

    def __init__(self, i, j, k, n_in, n_out, channel):
        self.i, self.j, self.k = np.asarray(i), np.asarray(j), np.asarray(k)
        self.n_in, self.n_out = n_in, n_out
        self.channel = np.asarray(channel)

    def sum_to_outputs(self, per_connection):
        """(B, connections) -> (B, n_out): the sum over the connections of each output j."""
        out = np.zeros((per_connection.shape[0], self.n_out))
        np.add.at(out, (slice(None), self.j), per_connection)
        return out


def dense_connections(n_in, n_out):
    i, j, k = [], [], []
    for out in range(n_out):
        for inp in range(n_in):
            i.append(inp)
            j.append(out)
            k.append(out * n_in + inp)
    return Connections(i, j, k, n_in, n_out, np.arange(n_out))


def conv_connections(in_shape, weight_shape, stride, padding, dilation):
    out_channels, _, kh, kw = weight_shape
    (ci, cj, ck), (o, ho, wo) = conv2d_connections(
        tuple(in_shape), out_channels, (kh, kw), stride, padding, dilation
    )
    n_out = o * ho * wo
    return Connections(ci, cj, ck, int(np.prod(in_shape)), n_out, np.arange(n_out) // (ho * wo))


def _messages(rule, params, x, w, b, r, conn, z):
    """Per-connection messages (B, connections) and bias messages (B, n_out) of one rule.

    x (B, n_in), w (n_weights,), b (n_bias,) (zeros without bias), r (B, n_out), z (B, n_out) the
    layer's output (bias included).
    """
    xc = x[:, conn.i]  # the input of each connection, (B, connections)
    wc = w[conn.k][None, :]  # its weight
    bj = b[conn.channel][None, :]  # the bias of each output, (1, n_out)
    eps = params.get("eps", params.get("stabilizer", 1e-6))
    to_j = conn.sum_to_outputs

    if rule == "epsilon":
        rho = r / stab(z, eps)
        return xc * wc * rho[:, conn.j], bj * rho

    if rule in ("zplus", "alphabeta"):
        # z+_j = sum x+ w+ + b+ + sum x- w- ; z-_j = sum x+ w- + b- + sum x- w+
        positive = pos(xc) * pos(wc) + neg(xc) * neg(wc)
        negative = pos(xc) * neg(wc) + neg(xc) * pos(wc)
        rho_pos = r / stab(to_j(positive) + pos(bj), eps)
        if rule == "zplus":
            return positive * rho_pos[:, conn.j], pos(bj) * rho_pos
        alpha, beta = params["alpha"], params["beta"]
        rho_neg = r / stab(to_j(negative) + neg(bj), eps)
        messages = alpha * positive * rho_pos[:, conn.j] - beta * negative * rho_neg[:, conn.j]
        return messages, alpha * pos(bj) * rho_pos - beta * neg(bj) * rho_neg

    if rule == "gamma":
        gamma = params["gamma"]
        w_up, w_down = wc + gamma * pos(wc), wc + gamma * neg(wc)
        b_up, b_down = bj + gamma * pos(bj), bj + gamma * neg(bj)
        up = pos(xc) * w_up + neg(xc) * w_down  # explains z > 0
        down = pos(xc) * w_down + neg(xc) * w_up  # explains z < 0
        rho_up = np.where(z > 0, r, 0.0) / stab(to_j(up) + b_up, eps)
        rho_down = np.where(z < 0, r, 0.0) / stab(to_j(down) + b_down, eps)
        messages = up * rho_up[:, conn.j] + down * rho_down[:, conn.j]
        return messages, b_up * rho_up + b_down * rho_down

    if rule == "flat":
        # every connection of j gets the same share; n_j counts them
        fan_in = to_j(np.ones_like(xc))
        rho = r / stab(fan_in, eps)
        return np.ones_like(xc) * rho[:, conn.j], np.zeros_like(r)

    if rule == "wsquare":
        rho = r / stab(to_j(np.ones_like(xc) * wc**2) + bj**2, eps)
        return wc**2 * rho[:, conn.j] * np.ones_like(xc), bj**2 * rho

    if rule == "zbox":
        low = np.broadcast_to(params["low"], params["x_shape"]).reshape(x.shape)[:, conn.i]
        high = np.broadcast_to(params["high"], params["x_shape"]).reshape(x.shape)[:, conn.i]
        contribution = xc * wc - low * pos(wc) - high * neg(wc)
        bias_part = bj - pos(bj) - neg(bj)  # = 0: the bias cancels
        rho = r / stab(to_j(contribution) + bias_part, eps)
        return contribution * rho[:, conn.j], bias_part * rho

    raise ValueError(f"oracle has no rule {rule!r}")


def lfp_rule(rule, params, x, weight, bias, reward, conn, z=None):
    """LFP with ``rule`` through one layer: ``(R_x, {"weight": F_W, "bias": F_b})`` (no "bias"
    without bias). ``params``: eps/stabilizer, alpha, beta, gamma, low, high as the rule takes.
    ``z``: the output used for epsilon's denominator and gamma's sign masks (default: computed here
    from the connections); float32 tests pass the kernel's, since the sign of a z near 0 and
    ``1/stab(z)`` amplify its rounding."""
    x = np.asarray(x, np.float64)
    batch = x.shape[0]
    xf = x.reshape(batch, -1)
    w = np.asarray(weight, np.float64).ravel()
    b = np.zeros(conn.channel.max() + 1) if bias is None else np.asarray(bias, np.float64)
    r = np.asarray(reward, np.float64).reshape(batch, -1)
    if z is None:
        z = conn.sum_to_outputs(xf[:, conn.i] * w[conn.k][None, :]) + b[conn.channel][None, :]
    z = np.asarray(z, np.float64).reshape(batch, -1)
    params = {**params, "x_shape": x.shape}
    messages, bias_messages = _messages(rule, params, xf, w, b, r, conn, z)

    reward_in = np.zeros_like(xf)
    np.add.at(reward_in, (slice(None), conn.i), messages)  # R_i = sum_j R_{i<-j}
    feedback_w = np.zeros(w.size)
    np.add.at(feedback_w, conn.k, np.sign(w[conn.k]) * messages.sum(axis=0))
    feedback = {"weight": feedback_w.reshape(np.shape(weight))}
    if bias is not None:
        feedback_b = np.zeros(b.size)
        np.add.at(feedback_b, conn.channel, bias_messages.sum(axis=0))
        feedback["bias"] = np.sign(b) * feedback_b
    return reward_in.reshape(x.shape), feedback
