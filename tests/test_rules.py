"""The LRP rules as LFP rules (docs/numerical-contract.md section 5): every rule's Dense and
Conv2d kernels vs the connection-by-connection oracle, conservation, the feedback/message
identities, LFP-epsilon unchanged, rule names and errors, training with lfp_step, and the rule
study script."""

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import lfp_ref as lfp
from lfp_ref import rules
from lfp_ref.composites import Composite
from lfp_ref.engine import rule_resolver
from lfp_ref.kernels.cpu import _jit
from lfp_ref.rules import (
    AlphaBeta,
    Epsilon,
    Flat,
    Gamma,
    Norm,
    Pass,
    WSquare,
    ZBox,
    ZPlus,
)
from tests.oracle import rules as oracle
from tests.tolerances import assert_close

ROOT = Path(__file__).resolve().parents[1]

# rule id: (constructor taking stabilizer=, oracle rule name, oracle params); ZBox's bounds
# are drawn per case
RULE_CASES = {
    "zplus": (lambda **kw: ZPlus(**kw), "zplus", {}),
    "alpha2beta1": (lambda **kw: AlphaBeta(2, 1, **kw), "alphabeta", {"alpha": 2.0, "beta": 1.0}),
    "alpha1beta0": (lambda **kw: AlphaBeta(1, 0, **kw), "alphabeta", {"alpha": 1.0, "beta": 0.0}),
    "gamma": (lambda **kw: Gamma(0.25, **kw), "gamma", {"gamma": 0.25}),
    "gamma1": (lambda **kw: Gamma(1.0, **kw), "gamma", {"gamma": 1.0}),
    "flat": (lambda **kw: Flat(**kw), "flat", {}),
    "wsquare": (lambda **kw: WSquare(**kw), "wsquare", {}),
    "zbox": (None, "zbox", {}),
    "epsilon": (lambda stabilizer: Epsilon(stabilizer), "epsilon", {}),
}

DENSE_CONFIGS = [(5, 4), (9, 7), (1, 3)]  # (in_features, out_features)
# (C, O, H, W, kernel_size, stride, padding, dilation)
CONV_CONFIGS = [
    (1, 2, 6, 6, 3, 1, 0, 1),
    (2, 3, 7, 6, (3, 2), 1, 1, 1),
    (3, 2, 8, 8, 3, 2, 1, 1),
    (2, 3, 9, 9, 3, 1, 2, 2),
    (1, 4, 10, 8, (3, 2), (2, 1), (1, 0), (2, 1)),
    (2, 2, 4, 4, 2, 1, 2, 1),  # windows entirely in the padding: z = b there
]
LAYERS = [pytest.param(("dense", c), id=f"dense{c[0]}x{c[1]}") for c in DENSE_CONFIGS] + [
    pytest.param(("conv", c), id=f"conv{i}") for i, c in enumerate(CONV_CONFIGS)
]
DTYPES = [pytest.param(np.float64, id="f64"), pytest.param(np.float32, id="f32")]
BIASES = [pytest.param(True, id="bias"), pytest.param(False, id="nobias")]


def make_layer(rng, spec, bias=True, dtype=np.float64, batch=3):
    kind, cfg = spec
    if kind == "dense":
        n_in, n_out = cfg
        layer = lfp.Dense(n_in, n_out, bias=bias, dtype=dtype, rng=rng)
        conn = oracle.dense_connections(n_in, n_out)
        x_shape = (batch, n_in)
    else:
        c, o, h, w, k, s, p, d = cfg
        layer = lfp.Conv2d(
            c, o, k, stride=s, padding=p, dilation=d, bias=bias, dtype=dtype, rng=rng
        )
        conn = oracle.conv_connections((c, h, w), layer.weight.shape, s, p, d)
        x_shape = (batch, c, h, w)
    if bias:
        # torch's init gives biases ~U(-1/sqrt(fan_in), ..); make them matter more
        layer.bias[...] = rng.uniform(-1, 1, layer.bias.shape)
    return layer, conn, x_shape


def zbox_bounds(rng, x_shape):
    """Per-feature (Dense) or per-channel (Conv) bounds with low < 0 < high, and an x inside."""
    shape = (1, x_shape[1]) + (1,) * (len(x_shape) - 2)
    low = -rng.uniform(0.5, 1.5, shape)
    high = rng.uniform(0.5, 1.5, shape)
    x = low + (high - low) * rng.uniform(size=x_shape)
    return low, high, x


def build_case(rng, rule_id, spec, bias, dtype, stabilizer=1e-6):
    make, oracle_rule, params = RULE_CASES[rule_id]
    layer, conn, x_shape = make_layer(rng, spec, bias, dtype)
    params = {**params, "stabilizer": stabilizer}
    if rule_id == "zbox":
        low, high, x = zbox_bounds(rng, x_shape)
        rule = ZBox(low, high, stabilizer=stabilizer)
        params.update(low=low.astype(dtype), high=high.astype(dtype))
    else:
        x = rng.standard_normal(x_shape)
        rule = make(stabilizer=stabilizer)
    return layer, conn, x.astype(dtype), rule, oracle_rule, params


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("bias", BIASES)
@pytest.mark.parametrize("spec", LAYERS)
@pytest.mark.parametrize("rule_id", list(RULE_CASES))
def test_rule_matches_oracle(rng, rule_id, spec, bias, dtype):
    layer, conn, x, rule, oracle_rule, params = build_case(rng, rule_id, spec, bias, dtype)
    z = layer.forward(x)
    reward = rng.standard_normal(z.shape).astype(dtype)
    reward_in, feedback = rule.propagate(layer, reward)
    # float32: the oracle takes the kernel's z for epsilon's denominator and gamma's sign masks
    ex_in, ex_fb = oracle.lfp_rule(
        oracle_rule,
        params,
        x,
        layer.weight,
        layer.bias,
        reward,
        conn,
        z=z if dtype == np.float32 else None,
    )
    assert reward_in.shape == x.shape and reward_in.dtype == dtype
    assert np.isfinite(reward_in).all()
    assert sorted(feedback) == sorted(ex_fb)
    assert_close(reward_in, ex_in, dtype)
    for name, expected in ex_fb.items():
        assert feedback[name].dtype == dtype and feedback[name].shape == expected.shape
        assert_close(feedback[name], expected, dtype)


@pytest.mark.parametrize("stabilizer", [0.0, 0.3], ids=lambda e: f"stab{e:g}")
@pytest.mark.parametrize("rule_id", ["zplus", "alpha2beta1", "gamma", "flat", "wsquare", "zbox"])
def test_rule_other_stabilizers(rng, rule_id, stabilizer):
    # 0.3 is large enough that a missing or misplaced stabiliser changes every entry
    spec = ("conv", CONV_CONFIGS[2])
    layer, conn, x, rule, oracle_rule, params = build_case(
        rng, rule_id, spec, True, np.float64, stabilizer
    )
    reward = rng.standard_normal(layer.forward(x).shape)
    reward_in, feedback = rule.propagate(layer, reward)
    ex_in, ex_fb = oracle.lfp_rule(oracle_rule, params, x, layer.weight, layer.bias, reward, conn)
    assert np.isfinite(reward_in).all()  # no 0/0 hidden by nan == nan
    assert_close(reward_in, ex_in)
    for name in ex_fb:
        assert_close(feedback[name], ex_fb[name])


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("rule_id", ["zplus", "alpha2beta1", "gamma", "wsquare", "zbox"])
def test_parallel_build_matches_serial(rng, rule_id, dtype, monkeypatch):
    # every rules kernel writes each output element with the same operations in either build
    spec = ("conv", CONV_CONFIGS[4])
    layer, _, x, rule, _, _ = build_case(rng, rule_id, spec, True, dtype)
    reward = rng.standard_normal(layer.forward(x).shape).astype(dtype)
    results = {}
    for build, threshold in (("serial", np.inf), ("parallel", 0)):
        monkeypatch.setattr(_jit, "PARALLEL_MIN_SIZE", threshold)
        reward_in, feedback = rule.propagate(layer, reward)
        results[build] = (reward_in, feedback["weight"], feedback["bias"])
    for serial, parallel in zip(results["serial"], results["parallel"], strict=True):
        np.testing.assert_array_equal(serial, parallel)


# ------------------------------------------------------------------------------ properties


CONSERVING = ["zplus", "alpha2beta1", "alpha1beta0", "gamma", "flat", "wsquare", "zbox"]
# z+ and alpha-beta need every z+ (z-) != 0: with positive inputs, layers where every output sees
# every weight (Dense, Conv2d without padding) and weights of both signs per output
NO_PADDING = [("dense", (5, 4)), ("dense", (9, 7)), ("conv", CONV_CONFIGS[0])]
NO_PADDING.append(("conv", (2, 3, 9, 8, (3, 2), 2, 0, (2, 1))))
PADDED = [("conv", CONV_CONFIGS[1]), ("conv", CONV_CONFIGS[2])]
CONSERVATION_CASES = [
    pytest.param(rule_id, spec, id=f"{rule_id}-{spec[0]}{i}")
    for rule_id in CONSERVING
    for i, spec in enumerate(
        NO_PADDING if rule_id.startswith(("zplus", "alpha")) else NO_PADDING + PADDED
    )
]


@pytest.mark.parametrize("rule_id, spec", CONSERVATION_CASES)
def test_conservation_without_bias(rng, rule_id, spec):
    # stabiliser 0, no bias: sum_i R_i = sum_j R_j per sample. It needs every denominator != 0:
    # z+ (z-) is 0 where no input/weight sign pair contributes, so z+ and alpha-beta get
    # positive inputs (as after a ReLU) and a weight of each sign per output; the gamma, flat,
    # w^2 and z^B denominators are never 0 here (z^B: x strictly inside the box).
    layer, _, x, rule, _, _ = build_case(rng, rule_id, spec, False, np.float64, stabilizer=0.0)
    if rule_id.startswith(("zplus", "alpha")):
        x = np.abs(x)
        out = layer.weight.reshape(layer.weight.shape[0], -1)
        out[:, 0], out[:, 1] = np.abs(out[:, 0]), -np.abs(out[:, 1])
    z = layer.forward(x)
    reward = rng.standard_normal(z.shape)
    reward_in, _ = rule.propagate(layer, reward)
    axes = tuple(range(1, x.ndim))
    assert_close(reward_in.sum(axis=axes), reward.sum(axis=tuple(range(1, z.ndim))))


@pytest.mark.parametrize("rule_id", ["zplus", "alpha2beta1", "gamma", "wsquare", "zbox"])
def test_conservation_with_bias(rng, rule_id):
    # with a bias the bias term keeps its share: sum_i R_i = sum_j R_j (1 - bias_j / denom_j),
    # which the oracle's bias messages give; ZBox's bias cancels, so it still conserves
    spec = ("dense", DENSE_CONFIGS[1])
    layer, conn, x, rule, oracle_rule, params = build_case(
        rng, rule_id, spec, True, np.float64, stabilizer=0.0
    )
    reward = rng.standard_normal(layer.forward(x).shape)
    reward_in, _ = rule.propagate(layer, reward)
    _, bias_messages = oracle._messages(
        oracle_rule,
        {**params, "x_shape": x.shape},
        x,
        layer.weight.ravel(),
        layer.bias,
        reward,
        conn,
        layer.forward(x),
    )
    assert_close(reward_in.sum(axis=1), reward.sum(axis=1) - bias_messages.sum(axis=1))
    if rule_id == "zbox":
        assert_close(reward_in.sum(axis=1), reward.sum(axis=1))
    else:
        assert np.abs(bias_messages).max() > 1e-3  # the bias share is not trivially 0


@pytest.mark.parametrize("rule_id", [r for r in RULE_CASES if r != "epsilon"])
def test_weight_feedback_accounts_for_every_message(rng, rule_id):
    # sum_k sign(w_k) F_w_k = sum over the batch of all messages = sum R_x (no weight is 0)
    spec = ("conv", CONV_CONFIGS[1])
    layer, _, x, rule, _, _ = build_case(rng, rule_id, spec, True, np.float64)
    reward = rng.standard_normal(layer.forward(x).shape)
    reward_in, feedback = rule.propagate(layer, reward)
    total = np.sum(np.sign(layer.weight) * feedback["weight"])
    assert_close(total, reward_in.sum())


@pytest.mark.parametrize("rule_id", list(RULE_CASES))
def test_zero_weights_and_silent_inputs_get_no_feedback(rng, rule_id):
    # sign(0) = 0: a zero weight or bias gets nothing under every rule; a silent input channel
    # sends no message under the rules that multiply by x (flat, w^2 and z^B use 1, l and h)
    spec = ("conv", CONV_CONFIGS[1])
    layer, _, x, rule, _, _ = build_case(rng, rule_id, spec, True, np.float64)
    layer.weight[0, 1] = 0.0
    layer.bias[1] = 0.0
    multiplies_by_x = rule_id not in ("flat", "wsquare", "zbox")
    if multiplies_by_x:
        x[:, 0] = 0.0
    reward = rng.standard_normal(layer.forward(x).shape)
    reward_in, feedback = rule.propagate(layer, reward)
    assert np.all(feedback["weight"][0, 1] == 0.0)
    assert feedback["bias"][1] == 0.0
    assert np.any(feedback["weight"] != 0.0)
    if multiplies_by_x:
        assert np.all(feedback["weight"][:, 0] == 0.0)
        assert np.all(reward_in[:, 0] == 0.0)
        assert np.any(reward_in[:, 1] != 0.0)


def test_zplus_negative_weights_learn_nothing_after_relu(rng):
    # z+ messages of a negative weight come from x- only: none after a ReLU
    layer = lfp.Dense(6, 4, rng=rng)
    x = np.abs(rng.standard_normal((5, 6)))
    reward = rng.standard_normal(layer.forward(x).shape)
    _, feedback = ZPlus().propagate(layer, reward)
    assert np.all(feedback["weight"][layer.weight < 0] == 0.0)
    assert np.all(feedback["weight"][layer.weight > 0] != 0.0)


def test_alpha1beta0_is_zplus(rng):
    layer, _, x_shape = make_layer(rng, ("conv", CONV_CONFIGS[3]))
    x = rng.standard_normal(x_shape)
    reward = rng.standard_normal(layer.forward(x).shape)
    a_in, a_fb = AlphaBeta(1, 0).propagate(layer, reward)
    z_in, z_fb = ZPlus().propagate(layer, reward)
    assert_close(a_in, z_in)
    for name in z_fb:
        assert_close(a_fb[name], z_fb[name])


def test_gamma_zero_is_epsilon_with_the_stabilizer(rng):
    layer = lfp.Dense(7, 5, rng=rng)
    x = rng.standard_normal((4, 7))
    reward = rng.standard_normal(layer.forward(x).shape)
    g_in, g_fb = Gamma(0.0, stabilizer=0.1).propagate(layer, reward)
    e_in, e_fb = Epsilon(0.1).propagate(layer, reward)
    assert_close(g_in, e_in)
    for name in e_fb:
        assert_close(g_fb[name], e_fb[name])


@pytest.mark.parametrize("rule_id", ["zplus", "gamma", "zbox", "flat"])
def test_rule_is_linear_in_the_reward(rng, rule_id):
    layer, _, x, rule, _, _ = build_case(rng, rule_id, ("conv", CONV_CONFIGS[2]), True, np.float64)
    shape = layer.forward(x).shape
    r1, r2 = rng.standard_normal(shape), rng.standard_normal(shape)
    in1, fb1 = rule.propagate(layer, r1)
    in2, fb2 = rule.propagate(layer, r2)
    in12, fb12 = rule.propagate(layer, 2.0 * r1 - r2)
    assert_close(in12, 2.0 * in1 - in2)
    for name in fb12:
        assert_close(fb12[name], 2.0 * fb1[name] - fb2[name])


def test_pass_hands_the_reward_through_and_gives_zero_feedback(rng):
    bn = lfp.BatchNorm2d(3)
    bn.weight[...] = rng.uniform(0.5, 2, 3)
    x = rng.standard_normal((4, 3, 5, 5))
    reward = rng.standard_normal(bn.forward(x).shape)
    reward_in, feedback = Pass().propagate(bn, reward)
    np.testing.assert_array_equal(reward_in, reward)
    assert sorted(feedback) == ["bias", "weight"]
    assert all(np.all(v == 0) for v in feedback.values())
    assert Pass().propagate(bn, reward, input_reward=False)[0] is None


@pytest.mark.parametrize("rule_id", list(RULE_CASES))
def test_skipped_input_vjp_gives_no_input_reward_and_the_same_feedback(rng, rule_id):
    # input_reward=False (a network's first layer while training): nothing is computed for the
    # input, and every parameter's feedback is what it would have been
    layer, _, x, rule, _, _ = build_case(rng, rule_id, ("conv", CONV_CONFIGS[1]), True, np.float64)
    reward = rng.standard_normal(layer.forward(x).shape)
    _, expected = rule.propagate(layer, reward)
    reward_in, feedback = rule.propagate(layer, reward, input_reward=False)
    assert reward_in is None
    for name in expected:
        np.testing.assert_array_equal(feedback[name], expected[name])


# ------------------------------------------------------------------- LFP-epsilon unchanged


def small_cnn(rng, dtype=np.float64):
    return lfp.Sequential(
        lfp.Conv2d(2, 3, 3, padding=1, dtype=dtype, rng=rng),
        lfp.ReLU(),
        lfp.BatchNorm2d(3, dtype=dtype),
        lfp.AvgPool2d(2),
        lfp.Conv2d(3, 4, 3, dtype=dtype, rng=rng),
        lfp.LeakyReLU(),
        lfp.Flatten(),
        lfp.Dense(16, 3, dtype=dtype, rng=rng),
    )


def residual_mlp(rng):
    return lfp.Sequential(
        lfp.Dense(5, 6, rng=rng),
        lfp.ReLU(),
        lfp.Residual(
            lfp.Sequential(lfp.Dense(6, 6, rng=rng), lfp.ReLU(), lfp.Dense(6, 6, rng=rng))
        ),
        lfp.Dense(6, 3, rng=rng),
    )


@pytest.mark.parametrize("eps", [1e-6, 0.25], ids=["eps1e-6", "eps0.25"])
@pytest.mark.parametrize("dtype", DTYPES)
def test_epsilon_feedback_is_bitwise_the_layer_protocol(rng, dtype, eps):
    # the engine's default path is the plain walk with Epsilon(eps) at every layer, bit for bit,
    # whichever way epsilon is asked for
    model = small_cnn(rng, dtype)
    x = rng.standard_normal((4, 2, 8, 8)).astype(dtype)
    y = np.array([0, 1, 2, 1])
    logits = model.forward(x)
    reward = lfp.rewards.softmax_loss(logits, y)
    expected_in, expected = model.feedback(reward, lambda layer: Epsilon(eps))
    ways = [
        {"eps": eps},
        {"rule": Epsilon(eps)},
        {"rule": Norm(eps)},
        {"rule": rules.get("epsilon", eps=eps)},
        {
            "composite": Composite(
                Epsilon(eps), layer_types={lfp.BatchNorm2d: Epsilon(eps)}, stabilizer=eps
            )
        },
    ]
    if eps == rules.DEFAULT_EPS:
        ways += [{}, {"rule": "epsilon"}]
    for kwargs in ways:
        fb = lfp.feedback(model, x, y, **kwargs)
        np.testing.assert_array_equal(fb.input_reward, expected_in)
        for name, value in expected.items():
            np.testing.assert_array_equal(fb.params[name], value)


def test_oracle_epsilon_row_matches_the_dense_oracle(rng):
    # the new oracle's epsilon row agrees with the existing Dense epsilon oracle
    from tests.oracle.dense import dense_lfp_epsilon

    layer = lfp.Dense(6, 4, rng=rng)
    x = rng.standard_normal((3, 6))
    reward = rng.standard_normal((3, 4))
    ex_in, ex_w, ex_b = dense_lfp_epsilon(x, layer.weight, layer.bias, reward, 1e-6)
    conn = oracle.dense_connections(6, 4)
    got_in, got_fb = oracle.lfp_rule(
        "epsilon", {"eps": 1e-6}, x, layer.weight, layer.bias, reward, conn
    )
    assert_close(got_in, ex_in)
    assert_close(got_fb["weight"], ex_w)
    assert_close(got_fb["bias"], ex_b)


# ------------------------------------------------------------------- rule resolution (engine)


def test_a_non_epsilon_rule_goes_to_dense_and_conv_only(rng):
    model = small_cnn(rng)
    rule_for = rule_resolver(ZPlus(), eps=0.5)
    for name, layer in model.named_layers():
        if isinstance(layer, (lfp.Dense, lfp.Conv2d)):
            assert isinstance(rule_for(layer), ZPlus), name
        elif isinstance(layer, (lfp.AvgPool2d, lfp.BatchNorm2d)):
            rule = rule_for(layer)
            assert type(rule) is Epsilon and rule.eps == 0.5, name


def test_feedback_with_a_rule_applies_it_layer_by_layer(rng):
    # the whole-model pass equals walking the layers by hand with the same assignment
    model = small_cnn(rng)
    x = rng.standard_normal((4, 2, 8, 8))
    y = np.array([0, 1, 2, 1])
    fb = lfp.feedback(model, x, y, rule="gamma")
    reward = fb.reward
    params = {}
    for i in reversed(range(len(model))):
        layer = model[i]
        if isinstance(layer, (lfp.Dense, lfp.Conv2d)):
            reward, own = Gamma().propagate(layer, reward)
        elif isinstance(layer, (lfp.AvgPool2d, lfp.BatchNorm2d)):
            reward, own = Epsilon().propagate(layer, reward)
        else:
            reward, own = layer.feedback(reward, None)
        params.update({f"{i}.{k}": v for k, v in own.items()})
    np.testing.assert_array_equal(fb.input_reward, reward)
    for name in params:
        np.testing.assert_array_equal(fb.params[name], params[name])


def test_residual_sum_keeps_epsilon_under_a_weighted_rule(rng):
    model = residual_mlp(rng)
    x, y = rng.standard_normal((4, 5)), np.array([0, 1, 2, 0])
    fb = lfp.feedback(model, x, y, rule="zplus")
    assert set(fb.params) == set(model.parameters())
    assert all(np.isfinite(v).all() for v in fb.params.values())


# ------------------------------------------------------------------------ names and errors


@pytest.mark.parametrize(
    "name, expected",
    [
        ("epsilon", Epsilon),
        ("zplus", ZPlus),
        ("alpha2beta1", AlphaBeta),
        ("alphabeta", AlphaBeta),
        ("gamma", Gamma),
        ("flat", Flat),
        ("wsquare", WSquare),
        ("norm", Norm),
        ("pass", Pass),
        ("Alpha2-Beta1", AlphaBeta),
        ("Z_Plus", ZPlus),
    ],
)
def test_get_by_name(name, expected):
    rule = rules.get(name)
    assert type(rule) is expected
    if isinstance(rule, AlphaBeta):
        assert (rule.alpha, rule.beta) == (2.0, 1.0)


def test_get_passes_parameters_and_objects():
    assert rules.get("epsilon", eps=0.1).eps == 0.1
    zbox = rules.get("zbox", low=-1.0, high=2.0)
    assert isinstance(zbox, ZBox) and (zbox.low, zbox.high) == (-1.0, 2.0)
    rule = Gamma(0.5)
    assert rules.get(rule) is rule


def test_get_errors_list_what_is_known():
    with pytest.raises(ValueError, match="known rules: epsilon, zplus, alpha2beta1"):
        rules.get("lrp0")
    with pytest.raises(ValueError, match="needs the input bounds"):
        rules.get("zbox")
    with pytest.raises(TypeError, match="a rule is a name"):
        rules.get(3)
    with pytest.raises(ValueError, match="for a rule given by name"):
        rules.get(ZPlus(), stabilizer=1.0)


@pytest.mark.parametrize(
    "make, message",
    [
        (lambda: AlphaBeta(2, 2), "alpha - beta = 1"),
        (lambda: AlphaBeta(-1, -2), "alpha, beta >= 0"),
        (lambda: Gamma(-0.1), "gamma >= 0"),
        (lambda: ZPlus(stabilizer=-1), "stabilizer >= 0"),
        (lambda: Norm(np.nan), "stabilizer >= 0"),
        (lambda: ZBox(1.0, 0.0), "low <= high"),
        (lambda: ZBox(np.zeros(3), np.ones(4)), "must broadcast together"),
    ],
)
def test_bad_rule_parameters_are_explained(make, message):
    with pytest.raises(ValueError, match=message):
        make()


def test_rules_refuse_layers_they_do_not_apply_to(rng):
    pool = lfp.AvgPool2d(2)
    pool.forward(rng.standard_normal((1, 2, 4, 4)))
    with pytest.raises(ValueError, match="applies to Dense and Conv2d layers"):
        ZPlus().propagate(pool, np.ones((1, 2, 2, 2)))
    dense = lfp.Dense(3, 2, rng=rng)
    dense.forward(rng.standard_normal((2, 3)))
    with pytest.raises(ValueError, match="whose output has its input's shape"):
        Pass().propagate(dense, np.ones((2, 2)))
    with pytest.raises(ValueError, match="give the Residual Norm"):
        Flat().propagate_sum([np.ones(2), np.ones(2)], np.ones(2) * 2, np.ones(2))
    with pytest.raises(ValueError, match="reward must have"):
        Gamma().propagate(dense, np.ones((2, 3)))


def test_zbox_bounds_must_fit_the_input(rng):
    layer = lfp.Conv2d(2, 3, 3, rng=rng)
    layer.forward(rng.standard_normal((1, 2, 5, 5)))
    with pytest.raises(ValueError, match=r"does not broadcast to the input \(1, 2, 5, 5\)"):
        ZBox(np.zeros(3), np.ones(3)).propagate(layer, np.ones((1, 3, 3, 3)))


# ----------------------------------------------------------------------------- training


@pytest.mark.parametrize(
    "kwargs",
    [
        {"rule": "gamma"},
        {"composite": "EpsilonPlus"},
        {"composite": "EpsilonAlpha2Beta1"},
        {"composite": "EpsilonAlpha2Beta1Flat"},
        {"composite": Composite(layer_types={lfp.Conv2d: ZBox(0.0, 1.0)})},
    ],
    ids=["gamma", "EpsilonPlus", "EpsilonAlpha2Beta1", "EpsA2B1Flat", "conv-zbox"],
)
def test_lfp_step_trains_with_a_rule(kwargs):
    # a small CNN on 3 well-separated classes of 6x6 images: LFP with the rule must learn them.
    # (z+ and alpha-beta on the OUTPUT layer do not train: rho = r / s(z+) keeps the sign of the
    # logit in r = z (Y - p), so a negative logit reverses its update; figures/rule_study.py)
    rng = np.random.default_rng(0)
    prototypes = rng.uniform(0, 1, (3, 1, 6, 6))
    y = rng.integers(0, 3, 120)
    x = np.clip(prototypes[y] + 0.15 * rng.standard_normal((120, 1, 6, 6)), 0, 1)
    model = lfp.Sequential(
        lfp.Conv2d(1, 4, 3, padding=1, rng=1),
        lfp.ReLU(),
        lfp.AvgPool2d(2),
        lfp.Flatten(),
        lfp.Dense(36, 3, rng=2),
    )
    before = np.mean(model(x).argmax(axis=1) == y)
    opt = lfp.optim.SGD(model, lr=0.05, momentum=0.9)
    start = {k: v.copy() for k, v in model.parameters().items()}
    for epoch in range(6):
        for xb, yb in lfp.data.batches(x, y, 20, seed=0, epoch=epoch):
            lfp.lfp_step(model, opt, xb, yb, clip_norm=3.0, **kwargs)
    after = np.mean(model(x).argmax(axis=1) == y)
    assert all(np.any(model.parameters()[k] != start[k]) for k in ("0.weight", "4.weight"))
    assert after >= 0.9 and after > before


# ------------------------------------------------------------------------------- the study


def test_rule_study_quick(tmp_path):
    out = tmp_path / "rule_study.csv"
    result = subprocess.run(
        [sys.executable, str(ROOT / "figures" / "rule_study.py"), "--quick", "--out", str(out)],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=ROOT,
    )
    assert result.returncode == 0, result.stderr
    assert "| rule " in result.stdout
    lines = out.read_text().strip().splitlines()
    assert lines[0].split(",") == [
        "rule",
        "placement",
        "train_accuracy",
        "test_accuracy",
        "seconds",
    ]
    rows = [line.split(",") for line in lines[1:]]
    assert [tuple(row[:2]) for row in rows] == [
        ("epsilon", "all"),
        ("zplus", "conv"),
        ("zplus", "all"),
        ("alpha2beta1", "conv"),
        ("alpha2beta1", "all"),
        ("gamma", "conv"),
        ("gamma", "all"),
    ]
    for row in rows:
        assert all(0.0 <= float(v) <= 1.0 for v in row[2:4])
        assert f"| {row[0]} | {row[1]} | {float(row[2]):.3f} |" in result.stdout
