"""Cross-checks of the peer harness (lfp_ref.peers) against literal NumPy references, float64.

These pin down what lfprop 1.0.0 and zennit 0.5.1 compute (spec sections 2, 3, 5, 7), so that the
lfp_ref-vs-peer cross-checks elsewhere compare against a verified peer. Run in the crosscheck
environment (docs/crosscheck-env.md):

    .venv-xc/bin/python -m pytest tests/test_peers.py -q -p no:cacheprovider
"""

import sys

import numpy as np
import pytest

_HINT = "run `make crosscheck` (the crosscheck extra)"
torch = pytest.importorskip("torch", reason=f"needs torch: {_HINT}")
pytest.importorskip("lfprop", reason=f"needs lfprop==1.0.0: {_HINT}")
pytest.importorskip("zennit", reason=f"needs zennit==0.5.1: {_HINT}")

from lfp_ref import peers  # noqa: E402

pytestmark = pytest.mark.crosscheck

SEEDS = [0, 1, 2]
RTOL = 1e-12  # float64 peer vs float64 literal reference: reordered sums only


def assert_close(actual, expected, rtol=RTOL):
    """Relative to the magnitude of ``expected`` (entries that cancel to ~0 are judged against
    the array's scale)."""
    actual = np.asarray(actual, dtype=np.float64)
    expected = np.asarray(expected, dtype=np.float64)
    assert actual.shape == expected.shape, (actual.shape, expected.shape)
    scale = max(np.abs(expected).max(initial=0.0), 1e-300)
    np.testing.assert_allclose(actual, expected, rtol=rtol, atol=rtol * scale)


# --------------------------------------------------------------------------- literal numpy


def sgn0(z):
    return np.where(z >= 0, 1.0, -1.0)


def stab(z, eps):
    return z + eps * sgn0(z)


def softmax(z):
    e = np.exp(z - z.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def sigmoid(z):
    return 1.0 / (1.0 + np.exp(-z))


def onehot(y, c):
    return np.eye(c)[y]


def im2col(x, k, pad):
    """(B, C, H, W) -> (B, C, k, k, H', W'), stride 1."""
    B, C, H, W = x.shape
    xp = np.pad(x, ((0, 0), (0, 0), (pad, pad), (pad, pad)))
    Ho, Wo = H + 2 * pad - k + 1, W + 2 * pad - k + 1
    cols = np.empty((B, C, k, k, Ho, Wo))
    for i in range(k):
        for j in range(k):
            cols[:, :, i, j] = xp[:, :, i : i + Ho, j : j + Wo]
    return cols


def conv(x, W, b, pad):
    cols = im2col(x, W.shape[-1], pad)
    z = np.einsum("bcijhw,ocij->bohw", cols, W)
    return z if b is None else z + b[None, :, None, None]


def conv_vjp_x(g, W, x_shape, pad):
    """sum_o W[o,c,i,j] g[b,o,h,w] scattered back onto x[b,c,h+i-pad,w+j-pad]."""
    B, C, H, Wd = x_shape
    k = W.shape[-1]
    gcols = np.einsum("bohw,ocij->bcijhw", g, W)
    out = np.zeros((B, C, H + 2 * pad, Wd + 2 * pad))
    Ho, Wo = g.shape[-2:]
    for i in range(k):
        for j in range(k):
            out[:, :, i : i + Ho, j : j + Wo] += gcols[:, :, i, j]
    return out[:, :, pad : pad + H, pad : pad + Wd]


def conv_vjp_w(x, g, k, pad):
    return np.einsum("bcijhw,bohw->ocij", im2col(x, k, pad), g)


def avgpool2(x):
    B, C, H, W = x.shape
    return x.reshape(B, C, H // 2, 2, W // 2, 2).mean(axis=(3, 5))


def avgpool2_vjp(g):
    return np.repeat(np.repeat(g, 2, axis=2), 2, axis=3) / 4.0


def params_np(model):
    return {k: v.detach().double().numpy() for k, v in model.state_dict().items()}


# --------------------------------------------------------------------------- models


def make_mlp(seed, i=5, h=7, c=4):
    torch.manual_seed(seed)
    return torch.nn.Sequential(torch.nn.Linear(i, h), torch.nn.ReLU(), torch.nn.Linear(h, c))


def make_cnn(seed, c_in=2, c_mid=3, n_cls=4):
    torch.manual_seed(seed)
    return torch.nn.Sequential(
        torch.nn.Conv2d(c_in, c_mid, 3, padding=1),
        torch.nn.ReLU(),
        torch.nn.AvgPool2d(2),
        torch.nn.Flatten(),
        torch.nn.Linear(c_mid * 3 * 3, n_cls),
    )


def data(seed, shape, n_cls):
    rng = np.random.default_rng(100 + seed)
    x = rng.normal(size=shape)
    y = rng.integers(0, n_cls, size=shape[0])
    return x, y


# --------------------------------------------------------------------------- lfprop: literal refs


def ref_lfp_mlp(P, x, y, eps, signed=True, reward="softmax_loss", **reward_kw):
    # signed=False: LXT's own stabiliser z + eps (spec section 7), for contrast
    st = stab if signed else (lambda z, e: z + e)
    W1, b1, W2, b2 = P["0.weight"], P["0.bias"], P["2.weight"], P["2.bias"]
    z1 = x @ W1.T + b1
    a1 = np.maximum(z1, 0.0)
    z2 = a1 @ W2.T + b2
    r2 = ref_reward(reward, z2, y, **reward_kw)
    rho2 = r2 / st(z2, eps)
    F = {"2.weight": np.abs(W2) * (rho2.T @ a1), "2.bias": np.abs(b2) * rho2.sum(0)}
    r1 = a1 * (rho2 @ W2)  # outgoing reward of layer 2; ReLU: identity rule
    rho1 = r1 / st(z1, eps)
    F["0.weight"] = np.abs(W1) * (rho1.T @ x)
    F["0.bias"] = np.abs(b1) * rho1.sum(0)
    return F, x * (rho1 @ W1)


def ref_lfp_cnn(P, x, y, eps):
    W1, b1, W3, b3 = P["0.weight"], P["0.bias"], P["4.weight"], P["4.bias"]
    z1 = conv(x, W1, b1, pad=1)
    a1 = np.maximum(z1, 0.0)
    z2 = avgpool2(a1)
    f = z2.reshape(len(x), -1)
    z3 = f @ W3.T + b3
    r3 = z3 * (onehot(y, z3.shape[1]) - softmax(z3))
    rho3 = r3 / stab(z3, eps)
    F = {"4.weight": np.abs(W3) * (rho3.T @ f), "4.bias": np.abs(b3) * rho3.sum(0)}
    r2 = (f * (rho3 @ W3)).reshape(z2.shape)  # Flatten: reshape
    rho2 = r2 / stab(z2, eps)
    r1 = a1 * avgpool2_vjp(rho2)  # AvgPool: epsilon rule; ReLU: identity
    rho1 = r1 / stab(z1, eps)
    F["0.weight"] = np.abs(W1) * conv_vjp_w(x, rho1, W1.shape[-1], pad=1)
    F["0.bias"] = np.abs(b1) * rho1.sum(axis=(0, 2, 3))
    return F, x * conv_vjp_x(rho1, W1, x.shape, pad=1)


@pytest.mark.parametrize("eps", [1e-6, 0.1], ids=["eps1e-6", "eps0.1"])
@pytest.mark.parametrize("seed", SEEDS)
def test_lfprop_mlp_matches_literal_reference(seed, eps):
    model = make_mlp(seed)
    x, y = data(seed, (9, 5), 4)
    res = peers.lfprop_propagate(model, x, y, reward="softmax_loss", eps=eps)
    F_ref, Rx_ref = ref_lfp_mlp(params_np(model), x, y, eps)
    assert set(res.feedback) == set(F_ref) == {"0.weight", "0.bias", "2.weight", "2.bias"}
    for k in F_ref:
        assert res.feedback[k].dtype == np.float64
        assert_close(res.feedback[k], F_ref[k])
    assert_close(res.input_reward, Rx_ref)
    # eps = 0.1 tells z + eps*sgn0(z) apart from LXT's own z + eps (spec section 7)
    if eps == 0.1:
        F_plain, _ = ref_lfp_mlp(params_np(model), x, y, eps, signed=False)
        diff = max(
            np.abs(res.feedback[k] - F_plain[k]).max() / np.abs(F_plain[k]).max() for k in F_plain
        )
        assert diff > 1e-3


@pytest.mark.parametrize("eps", [1e-6, 0.1], ids=["eps1e-6", "eps0.1"])
@pytest.mark.parametrize("seed", SEEDS)
def test_lfprop_cnn_matches_literal_reference(seed, eps):
    model = make_cnn(seed)
    x, y = data(seed, (5, 2, 6, 6), 4)
    res = peers.lfprop_propagate(model, x, y, reward="softmax_loss", eps=eps)
    F_ref, Rx_ref = ref_lfp_cnn(params_np(model), x, y, eps)
    assert set(res.feedback) == set(F_ref)
    for k in F_ref:
        assert_close(res.feedback[k], F_ref[k])
    assert_close(res.input_reward, Rx_ref)


@pytest.mark.parametrize("seed", SEEDS)
def test_lfprop_sums_over_the_batch(seed):
    """lfprop's batch reduction is SUM: the batch feedback is the sum of per-sample feedbacks."""
    model = make_mlp(seed)
    x, y = data(seed, (6, 5), 4)
    full = peers.lfprop_feedback(model, x, y)
    parts = [peers.lfprop_feedback(model, x[i : i + 1], y[i : i + 1]) for i in range(len(x))]
    for k in full:
        assert_close(full[k], sum(p[k] for p in parts))


def make_mixed(seed):
    torch.manual_seed(seed)
    model = torch.nn.Sequential(
        # no bias before train-mode BN: its dL/db is 0 up to rounding noise
        torch.nn.Conv2d(2, 4, 3, padding=1, bias=False),
        torch.nn.BatchNorm2d(4),
        torch.nn.ReLU(),
        torch.nn.MaxPool2d(2),
        torch.nn.Conv2d(4, 3, 3, padding=1, bias=True),
        torch.nn.LeakyReLU(0.1),
        torch.nn.AvgPool2d(2),
        torch.nn.Flatten(),
        torch.nn.Linear(3 * 2 * 2, 6),
        torch.nn.ReLU(),
        torch.nn.Linear(6, 3),
    )
    with torch.no_grad():  # BN's default gamma = 1, beta = 0 would make its check trivial
        model[1].weight.uniform_(0.5, 1.5)
        model[1].bias.normal_()
    return model


@pytest.mark.parametrize("arch", ["mlp", "cnn", "mixed"])
@pytest.mark.parametrize("seed", SEEDS)
def test_lfprop_equals_scaled_summed_ce_gradient(seed, arch):
    """Spec section 5: for ReLU/LeakyReLU nets (Dense, Conv, BN train mode, MaxPool, AvgPool),
    eps -> 0 and softmax_loss, F = -|theta| * dL/dtheta with L the SUMMED cross-entropy."""
    if arch == "mlp":
        model, (x, y) = make_mlp(seed), data(seed, (9, 5), 4)
    elif arch == "cnn":
        model, (x, y) = make_cnn(seed), data(seed, (5, 2, 6, 6), 4)
    else:
        model, (x, y) = make_mixed(seed), data(seed, (6, 2, 8, 8), 3)
        model.train()
    F = peers.lfprop_feedback(model, x, y, eps=1e-30)
    g_sum = peers.torch_gradients(model, x, y, reduction="sum")
    g_mean = peers.torch_gradients(model, x, y, reduction="mean")
    P = {n: p.detach().double().numpy() for n, p in model.named_parameters()}
    assert set(F) == set(g_sum) == set(P)
    for k in F:
        assert_close(F[k], -np.abs(P[k]) * g_sum[k], rtol=1e-9)
        assert_close(g_mean[k] * len(x), g_sum[k])


@pytest.mark.parametrize(
    "reward,kw",
    [
        ("sigmoid_loss", {}),
        ("bounded_softmax", {"lower": 0.05, "higher": 0.5, "sign_only": True}),
        ("correct_classification", {}),
        ("misclassification", {}),
    ],
)
def test_lfprop_other_rewards_through_the_mlp(reward, kw):
    model = make_mlp(3)
    x, y = data(3, (10, 5), 4)
    res = peers.lfprop_propagate(model, x, y, reward=reward, reward_kwargs=kw)
    assert_close(res.reward, ref_reward(reward, res.logits, y, **kw))
    F_ref, Rx_ref = ref_lfp_mlp(params_np(model), x, y, 1e-6, reward=reward, **kw)
    for k in F_ref:
        assert_close(res.feedback[k], F_ref[k])
    assert_close(res.input_reward, Rx_ref)


def test_lfprop_leaves_the_callers_model_alone():
    model = make_mlp(0)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    x, y = data(0, (4, 5), 4)
    peers.lfprop_feedback(model, x, y)
    peers.zennit_relevance(model, x, y, "EpsilonPlus")
    assert all(not hasattr(p, "feedback") for p in model.parameters())
    assert all(p.dtype == torch.float32 for p in model.parameters())
    assert isinstance(model[0], torch.nn.Linear) and isinstance(model[1], torch.nn.ReLU)
    for k, v in model.state_dict().items():
        assert torch.equal(v, before[k])


def test_lfprop_bare_layer_gets_no_feedback():
    """lfprop only wraps children: a bare Linear is not a model it can propagate through."""
    lin = torch.nn.Linear(3, 2)
    with pytest.raises(ValueError, match="no feedback"):
        peers.lfprop_feedback(lin, np.ones((2, 3)), np.array([0, 1]))
    fb = peers.lfprop_feedback(torch.nn.Sequential(lin), np.ones((2, 3)), np.array([0, 1]))
    assert set(fb) == {"0.weight", "0.bias"}


def test_missing_peer_raises_with_install_hint(monkeypatch):
    monkeypatch.setitem(sys.modules, "lfprop.propagation", None)
    peers._lfprop.cache_clear()
    try:
        with pytest.raises(ImportError, match="crosscheck"):
            peers.lfprop_feedback(make_mlp(0), np.ones((2, 5)), np.array([0, 1]))
    finally:
        monkeypatch.undo()
        peers._lfprop.cache_clear()


# --------------------------------------------------------------------------- lfprop rewards


def ref_reward(name, z, y, **kw):
    C = z.shape[-1]
    if name == "softmax_loss":
        return z * (onehot(y, C) - softmax(z))
    if name == "sigmoid_loss":
        return z * (onehot(y, C) - sigmoid(z))
    if name == "binary_sigmoid_loss":
        return z * (y.reshape(z.shape) - sigmoid(z))
    if name == "bounded_softmax":
        p = softmax(z)
        p = np.where(p > kw.get("higher", 1.0), 1.0, p)
        p = np.where(p < kw.get("lower", 0.0), 0.0, p)
        base = np.sign(z) if kw.get("sign_only", False) else z
        return base * (onehot(y, C) - p)
    if name == "correct_classification":
        r = np.zeros_like(z)
        rows = np.arange(len(z))
        ok = z[rows, y] == z.max(axis=1)
        r[rows[ok], y[ok]] = np.sign(z[rows[ok], y[ok]])
        return r
    if name == "misclassification":
        zy = z[np.arange(len(z)), y][:, None]
        return np.where(z > zy, -np.sign(z), 0.0)
    if name == "maximize_neuron":
        return np.sign(z) * (1 - sigmoid(z))
    if name == "minimize_neuron":
        return -np.sign(z) * (1 - sigmoid(z))
    if name == "snn_rate_coded":
        S = z  # (T, B, C)
        T = S.shape[0]
        Pc = S.sum(0)
        N = T - Pc
        pos = 1 - sigmoid(Pc - T // 2)
        neg = 1 - sigmoid(N - T // 2)
        lab = onehot(y, C)[None].astype(bool)
        return np.where(lab, np.broadcast_to(pos, S.shape), -S * neg)
    raise KeyError(name)


@pytest.mark.parametrize(
    "name,kw",
    [
        ("softmax_loss", {}),
        ("sigmoid_loss", {}),
        ("bounded_softmax", {}),
        ("bounded_softmax", {"lower": 0.1, "higher": 0.6}),
        ("bounded_softmax", {"lower": 0.1, "higher": 0.6, "sign_only": True}),
        ("correct_classification", {}),
        ("misclassification", {}),
        ("maximize_neuron", {}),
        ("minimize_neuron", {}),
    ],
)
@pytest.mark.parametrize("seed", SEEDS)
def test_lfprop_rewards_match_spec(name, kw, seed):
    rng = np.random.default_rng(seed)
    z = rng.normal(size=(12, 4)) * 2
    z[0] = [1.5, 1.5, -1.0, 0.0]  # a tie for the maximum (counts as correct) and an exact 0
    y = rng.integers(0, 4, size=12)
    y[0] = 1
    assert_close(peers.lfprop_reward(name, z, y, **kw), ref_reward(name, z, y, **kw))


def test_lfprop_binary_and_snn_rewards_match_spec():
    rng = np.random.default_rng(0)
    z = rng.normal(size=(7, 1))
    yb = rng.integers(0, 2, size=7)
    assert_close(
        peers.lfprop_reward("binary_sigmoid_loss", z, yb), ref_reward("binary_sigmoid_loss", z, yb)
    )
    S = (rng.random(size=(15, 5, 3)) < 0.4).astype(np.float64)
    ys = rng.integers(0, 3, size=5)
    # lfprop 1.0.0's reward class does NOT divide by T (spec section 6)
    assert_close(peers.lfprop_reward("snn_rate_coded", S, ys), ref_reward("snn_rate_coded", S, ys))


def test_lfprop_reward_at_the_output_is_the_softmax_loss_reward():
    model = make_mlp(1)
    x, y = data(1, (6, 5), 4)
    res = peers.lfprop_propagate(model, x, y)
    assert_close(res.reward, ref_reward("softmax_loss", res.logits, y))


# --------------------------------------------------------------------------- torch gradients


@pytest.mark.parametrize("reduction", ["mean", "sum"])
@pytest.mark.parametrize("seed", SEEDS)
def test_torch_gradients_match_literal_backprop(seed, reduction):
    model = make_mlp(seed)
    x, y = data(seed, (8, 5), 4)
    P = params_np(model)
    z1 = x @ P["0.weight"].T + P["0.bias"]
    a1 = np.maximum(z1, 0)
    z2 = a1 @ P["2.weight"].T + P["2.bias"]
    dz2 = softmax(z2) - onehot(y, 4)
    if reduction == "mean":
        dz2 = dz2 / len(x)
    dz1 = (dz2 @ P["2.weight"]) * (z1 > 0)
    ref = {"2.weight": dz2.T @ a1, "2.bias": dz2.sum(0)}
    ref.update({"0.weight": dz1.T @ x, "0.bias": dz1.sum(0)})
    g = peers.torch_gradients(model, x, y, reduction=reduction)
    assert set(g) == set(ref)
    for k in ref:
        assert_close(g[k], ref[k])


# --------------------------------------------------------------------------- zennit


def ref_eps_linear(x, W, b, R, eps):
    z = x @ W.T + b
    return x * ((R / stab(z, eps)) @ W)


@pytest.mark.parametrize("start", ["one_hot", "logit"])
@pytest.mark.parametrize("seed", SEEDS)
def test_zennit_epsilon_mlp_and_start_convention(seed, start):
    """EpsilonPlus on an MLP is Epsilon everywhere; zennit starts from the one-hot itself (its
    ``torch.eye(C)[y]`` grad_output is taken verbatim as the output relevance)."""
    model = make_mlp(seed)
    x, y = data(seed, (6, 5), 4)
    P = params_np(model)
    z1 = x @ P["0.weight"].T + P["0.bias"]
    a1 = np.maximum(z1, 0)
    z2 = a1 @ P["2.weight"].T + P["2.bias"]
    R2 = onehot(y, 4) * (z2 if start == "logit" else 1.0)
    R1 = ref_eps_linear(a1, P["2.weight"], P["2.bias"], R2, 1e-6)
    R0 = ref_eps_linear(x, P["0.weight"], P["0.bias"], R1, 1e-6)
    assert_close(peers.zennit_relevance(model, x, y, "EpsilonPlus", start=start), R0)
    # EpsilonPlusFlat: the first Linear gets Flat: R_i = sum_j R_j / stab(fan_in)
    Rflat = np.broadcast_to((R1 / stab(np.full_like(R1, 5.0), 1e-6)).sum(1, keepdims=True), x.shape)
    assert_close(peers.zennit_relevance(model, x, y, "EpsilonPlusFlat", start=start), Rflat)


def make_cnn2(seed):
    torch.manual_seed(seed)
    return torch.nn.Sequential(
        torch.nn.Conv2d(2, 3, 3, padding=1),
        torch.nn.ReLU(),
        torch.nn.Conv2d(3, 4, 3, padding=1),
        torch.nn.ReLU(),
        torch.nn.AvgPool2d(2),
        torch.nn.Flatten(),
        torch.nn.Linear(4 * 3 * 3, 5),
    )


def pos(a):
    return np.maximum(a, 0.0)


def neg(a):
    return np.minimum(a, 0.0)


def conv_rule(rule, x, W, b, R, s=1e-6, low=None, high=None, gamma=0.25):
    """Literal zennit 0.5.1 conv rules (spec section 5), padding 1, stride 1."""

    def vjp(g, Wm):
        return conv_vjp_x(g, Wm, x.shape, pad=1)

    if rule == "zplus":
        zp = conv(pos(x), pos(W), pos(b), 1) + conv(neg(x), neg(W), None, 1)
        g = R / stab(zp, s)
        return pos(x) * vjp(g, pos(W)) + neg(x) * vjp(g, neg(W))
    if rule == "alpha2beta1":
        zp = conv(pos(x), pos(W), pos(b), 1) + conv(neg(x), neg(W), None, 1)
        zn = conv(pos(x), neg(W), neg(b), 1) + conv(neg(x), pos(W), None, 1)
        gp, gn = R / stab(zp, s), R / stab(zn, s)
        return 2 * (pos(x) * vjp(gp, pos(W)) + neg(x) * vjp(gp, neg(W))) - 1 * (
            pos(x) * vjp(gn, neg(W)) + neg(x) * vjp(gn, pos(W))
        )
    if rule == "flat":
        ones_W = np.ones_like(W)
        fan_in = conv(np.ones_like(x), ones_W, None, 1)  # counts non-padding positions
        return vjp(R / stab(fan_in, s), ones_W)
    if rule == "zbox":
        lo, hi = np.broadcast_to(low, x.shape), np.broadcast_to(high, x.shape)
        d = conv(x, W, b, 1) - conv(lo, pos(W), pos(b), 1) - conv(hi, neg(W), neg(b), 1)
        g = R / stab(d, s)
        return x * vjp(g, W) - lo * vjp(g, pos(W)) - hi * vjp(g, neg(W))
    if rule == "gamma":
        Wu, bu = W + gamma * pos(W), b + gamma * pos(b)
        Wd, bd = W + gamma * neg(W), b + gamma * neg(b)
        z = conv(x, W, b, 1)
        zu = conv(pos(x), Wu, bu, 1) + conv(neg(x), Wd, None, 1)
        zd = conv(pos(x), Wd, bd, 1) + conv(neg(x), Wu, None, 1)
        gu = (z > 0) * R / stab(zu, s)
        gd = (z < 0) * R / stab(zd, s)
        up = pos(x) * vjp(gu, Wu) + neg(x) * vjp(gu, Wd)
        down = pos(x) * vjp(gd, Wd) + neg(x) * vjp(gd, Wu)
        return up + down
    raise KeyError(rule)


COMPOSITE_RULES = {  # composite -> (first conv rule, other conv rule)
    "EpsilonPlus": ("zplus", "zplus"),
    "EpsilonAlpha2Beta1": ("alpha2beta1", "alpha2beta1"),
    "EpsilonPlusFlat": ("flat", "zplus"),
    "EpsilonAlpha2Beta1Flat": ("flat", "alpha2beta1"),
    "EpsilonGammaBox": ("zbox", "gamma"),
}


@pytest.mark.parametrize("start", ["one_hot", "logit"])
@pytest.mark.parametrize("composite", list(COMPOSITE_RULES))
@pytest.mark.parametrize("seed", SEEDS)
def test_zennit_composites_match_literal_reference(seed, composite, start):
    model = make_cnn2(seed)
    rng = np.random.default_rng(200 + seed)
    low = np.array([-1.0, -0.5]).reshape(1, 2, 1, 1)
    high = np.array([2.0, 1.5]).reshape(1, 2, 1, 1)
    x = rng.uniform(low, high, size=(4, 2, 6, 6))
    y = rng.integers(0, 5, size=4)
    P = params_np(model)
    W1, b1, W2, b2, W4, b4 = (
        P[k] for k in ("0.weight", "0.bias", "2.weight", "2.bias", "6.weight", "6.bias")
    )
    z1 = conv(x, W1, b1, 1)
    a1 = pos(z1)
    z2 = conv(a1, W2, b2, 1)
    a2 = pos(z2)
    p = avgpool2(a2)
    f = p.reshape(len(x), -1)
    out = f @ W4.T + b4
    R_out = onehot(y, 5) * (out if start == "logit" else 1.0)
    R_f = ref_eps_linear(f, W4, b4, R_out, 1e-6)  # Linear: Epsilon
    R_p = R_f.reshape(p.shape)
    R_a2 = a2 * avgpool2_vjp(R_p / stab(p, 1e-6))  # AvgPool: Norm; ReLU: Pass
    first, other = COMPOSITE_RULES[composite]
    R_a1 = conv_rule(other, a1, W2, b2, R_a2)
    R_x = conv_rule(first, x, W1, b1, R_a1, low=low, high=high)
    kw = {"low": low, "high": high} if composite == "EpsilonGammaBox" else {}
    got = peers.zennit_relevance(model, x, y, composite, start=start, **kw)
    assert_close(got, R_x, rtol=1e-10)


def test_zennit_gamma_box_needs_bounds():
    with pytest.raises(ValueError, match="low"):
        peers.zennit_relevance(make_cnn2(0), np.ones((1, 2, 6, 6)), [0], "EpsilonGammaBox")


@pytest.mark.parametrize("seed", SEEDS)
def test_zennit_merge_batchnorm_keeps_bn_eps(seed):
    """SequentialMergeBatchNorm folds eval-mode BN into the Linear before it and leaves BN as
    x / sqrt(1 + eps_bn) (it keeps BN's eps): spec section 5. BN itself gets Pass."""
    torch.manual_seed(seed)
    model = torch.nn.Sequential(
        torch.nn.Linear(5, 6),
        torch.nn.BatchNorm1d(6, eps=0.01),
        torch.nn.ReLU(),
        torch.nn.Linear(6, 3),
    )
    with torch.no_grad():
        bn = model[1]
        bn.weight.uniform_(0.5, 1.5)
        bn.bias.normal_()
        bn.running_mean.normal_()
        bn.running_var.uniform_(0.5, 2.0)
    model.eval()
    x, y = data(seed, (7, 5), 3)
    P = params_np(model)
    scale = P["1.weight"] / np.sqrt(P["1.running_var"] + 0.01)
    W1 = P["0.weight"] * scale[:, None]
    b1 = (P["0.bias"] - P["1.running_mean"]) * scale + P["1.bias"]
    z1 = x @ W1.T + b1
    a1 = pos(z1 / np.sqrt(1.0 + 0.01))
    z2 = a1 @ P["3.weight"].T + P["3.bias"]
    R2 = onehot(y, 3) * z2
    R1 = ref_eps_linear(a1, P["3.weight"], P["3.bias"], R2, 1e-6)
    R0 = ref_eps_linear(x, W1, b1, R1, 1e-6)
    got = peers.zennit_relevance(model, x, y, "EpsilonPlus", start="logit", merge_batchnorm=True)
    assert_close(got, R0, rtol=1e-10)


# --------------------------------------------------------------------------- residual blocks


def make_residual_mlp(seed):
    """Linear, ReLU, TorchResidual(Linear-ReLU-Linear, identity), ReLU, Linear."""
    from lfp_ref.interop import TorchResidual

    torch.manual_seed(seed)
    branch = torch.nn.Sequential(torch.nn.Linear(6, 6), torch.nn.ReLU(), torch.nn.Linear(6, 6))
    return torch.nn.Sequential(
        torch.nn.Linear(5, 6),
        torch.nn.ReLU(),
        TorchResidual(branch),
        torch.nn.ReLU(),
        torch.nn.Linear(6, 4),
    )


def residual_forward(P, x):
    z0 = x @ P["0.weight"].T + P["0.bias"]
    a0 = pos(z0)
    zb = pos(a0 @ P["2.branch.0.weight"].T + P["2.branch.0.bias"])
    branch = zb @ P["2.branch.2.weight"].T + P["2.branch.2.bias"]
    s = branch + a0
    a2 = pos(s)
    out = a2 @ P["4.weight"].T + P["4.bias"]
    return z0, a0, zb, branch, s, a2, out


def ref_residual_sum(a0, branch, s, R_s, eps):
    """Spec section 2, residual Sum: the reward at z = a + b is split in proportion to a and b;
    the reward at the block input is the branch's plus the identity's share."""
    rho = R_s / stab(s, eps)
    return branch * rho, a0 * rho


def test_every_residual_sum_is_swapped():
    """Both import paths of interop give the same TorchSum class, and _replace_sums finds it (the
    check once compared the class's module name with the old path and silently swapped none)."""
    from lfp_ref import interop
    from lfp_ref.verify import interop as verify_interop

    assert interop.TorchSum is verify_interop.TorchSum
    model = make_residual_mlp(0)
    model[3] = interop.TorchResidual(torch.nn.Sequential(torch.nn.Linear(6, 6)))
    assert peers._replace_sums(model, torch.nn.Identity) == 2
    assert not any(isinstance(m, interop.TorchSum) for m in model.modules())


@pytest.mark.parametrize("seed", SEEDS)
def test_lfprop_residual_sum_splits_the_reward(seed):
    """peers swaps lfp_ref.interop.TorchSum for lfprop's Sum, so lfprop's Sum rule splits the
    reward at the addition (without the swap autograd would copy it to both summands)."""
    model = make_residual_mlp(seed)
    x, y = data(seed, (7, 5), 4)
    P = params_np(model)
    eps = 1e-6
    z0, a0, zb, branch, s, a2, out = residual_forward(P, x)
    r = out * (onehot(y, 4) - softmax(out))
    rho4 = r / stab(out, eps)
    F = {
        "4.weight": np.abs(P["4.weight"]) * (rho4.T @ a2),
        "4.bias": np.abs(P["4.bias"]) * rho4.sum(0),
    }
    R_s = a2 * (rho4 @ P["4.weight"])
    R_branch, R_identity = ref_residual_sum(a0, branch, s, R_s, eps)
    rho_b2 = R_branch / stab(branch, eps)
    F["2.branch.2.weight"] = np.abs(P["2.branch.2.weight"]) * (rho_b2.T @ zb)
    F["2.branch.2.bias"] = np.abs(P["2.branch.2.bias"]) * rho_b2.sum(0)
    R_zb = zb * (rho_b2 @ P["2.branch.2.weight"])
    zb_pre = a0 @ P["2.branch.0.weight"].T + P["2.branch.0.bias"]
    rho_b0 = R_zb / stab(zb_pre, eps)
    F["2.branch.0.weight"] = np.abs(P["2.branch.0.weight"]) * (rho_b0.T @ a0)
    F["2.branch.0.bias"] = np.abs(P["2.branch.0.bias"]) * rho_b0.sum(0)
    R_a0 = a0 * (rho_b0 @ P["2.branch.0.weight"]) + R_identity
    rho0 = R_a0 / stab(z0, eps)
    F["0.weight"] = np.abs(P["0.weight"]) * (rho0.T @ x)
    F["0.bias"] = np.abs(P["0.bias"]) * rho0.sum(0)
    got = peers.lfprop_propagate(model, x, y, eps=eps)
    assert sorted(got.feedback) == sorted(F)
    for name, expected in F.items():
        assert_close(got.feedback[name], expected)
    assert_close(got.input_reward, x * (rho0 @ P["0.weight"]))


@pytest.mark.parametrize("seed", SEEDS)
def test_zennit_residual_sum_gets_the_norm_rule(seed):
    """peers swaps TorchSum for a two-input adapter around zennit.layer.Sum, which the
    composites give the Norm rule: the relevance at the addition is split like LFP's reward."""
    model = make_residual_mlp(seed)
    x, y = data(seed, (7, 5), 4)
    P = params_np(model)
    z0, a0, zb, branch, s, a2, out = residual_forward(P, x)
    R_out = onehot(y, 4) * out
    R_s = ref_eps_linear(a2, P["4.weight"], P["4.bias"], R_out, 1e-6)
    R_branch, R_identity = ref_residual_sum(a0, branch, s, R_s, 1e-6)
    R_zb = ref_eps_linear(zb, P["2.branch.2.weight"], P["2.branch.2.bias"], R_branch, 1e-6)
    R_a0 = ref_eps_linear(a0, P["2.branch.0.weight"], P["2.branch.0.bias"], R_zb, 1e-6)
    R_x = ref_eps_linear(x, P["0.weight"], P["0.bias"], R_a0 + R_identity, 1e-6)
    got = peers.zennit_relevance(model, x, y, "EpsilonPlus", start="logit")
    assert_close(got, R_x)


def test_zennit_scalar_bounds_are_not_rounded_to_float32():
    """zennit's expand() makes a Python float bound a float32 tensor; peers hands it float64
    tensors, so bounds like -1.1 (not a float32) match the float64 reference to 1e-12."""
    model = make_cnn2(0)
    rng = np.random.default_rng(7)
    low, high = -1.1, 2.3
    x = rng.uniform(low, high, size=(3, 2, 6, 6))
    y = rng.integers(0, 5, size=3)
    P = params_np(model)
    W1, b1, W2, b2, W4, b4 = (
        P[k] for k in ("0.weight", "0.bias", "2.weight", "2.bias", "6.weight", "6.bias")
    )
    a1 = pos(conv(x, W1, b1, 1))
    a2 = pos(conv(a1, W2, b2, 1))
    p = avgpool2(a2)
    f = p.reshape(len(x), -1)
    R_f = ref_eps_linear(f, W4, b4, onehot(y, 5) * (f @ W4.T + b4), 1e-6)
    R_a2 = a2 * avgpool2_vjp(R_f.reshape(p.shape) / stab(p, 1e-6))
    R_x = conv_rule("zbox", x, W1, b1, conv_rule("gamma", a1, W2, b2, R_a2), low=low, high=high)
    got = peers.zennit_relevance(model, x, y, "EpsilonGammaBox", start="logit", low=low, high=high)
    assert_close(got, R_x)


def test_missing_peer_names_the_package_that_does_not_import(monkeypatch):
    assert peers.missing_peer() is None
    monkeypatch.setitem(sys.modules, "zennit.layer", None)
    peers._zennit.cache_clear()
    try:
        assert peers.missing_peer() == "zennit"
    finally:
        monkeypatch.undo()
        peers._zennit.cache_clear()
    assert peers.missing_peer() is None
