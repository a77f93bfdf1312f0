"""The public passes: feedback, gradients, the sign convention, state dicts, errors."""

import numpy as np
import pytest

import lfp_ref as lfp
from tests.tolerances import assert_close


def mlp(rng, dtype=np.float64, activation=lfp.ReLU):
    return lfp.Sequential(
        lfp.Dense(5, 7, dtype=dtype, rng=rng),
        activation(),
        lfp.Dense(7, 6, dtype=dtype, rng=rng),
        activation(),
        lfp.Dense(6, 3, dtype=dtype, rng=rng),
    )


def residual_mlp(rng):
    return lfp.Sequential(
        lfp.Dense(5, 6, rng=rng),
        lfp.ReLU(),
        lfp.Residual(
            lfp.Sequential(lfp.Dense(6, 6, rng=rng), lfp.ReLU(), lfp.Dense(6, 6, rng=rng))
        ),
        lfp.ReLU(),
        lfp.Residual(lfp.Dense(6, 4, rng=rng), shortcut=lfp.Dense(6, 4, bias=False, rng=rng)),
        lfp.LeakyReLU(0.2),
        lfp.Dense(4, 3, rng=rng),
    )


@pytest.fixture
def data(rng):
    return rng.normal(size=(8, 5)), rng.integers(0, 3, size=8)


@pytest.mark.parametrize("build", [mlp, residual_mlp], ids=["mlp", "residual"])
def test_implicit_weight_scaling(rng, data, build):
    """Piecewise-linear nets, eps = 0, softmax_loss: F = -|theta| dL/dtheta (summed CE)."""
    model = build(rng)
    x, y = data
    fb = lfp.feedback(model, x, y, reward=lfp.rewards.softmax_loss, eps=0.0)
    g = lfp.gradients(model, x, y, loss="cross_entropy", reduction="sum")
    assert list(fb.params) == list(model.parameters())
    for name, param in model.named_parameters():
        assert_close(fb.params[name], -np.abs(param) * g.params[name])


def test_last_layer_rho_is_y_minus_p(rng, data):
    model = mlp(rng)
    x, y = data
    fb = lfp.feedback(model, x, y, eps=1e-6)
    h = model[3].forward(model[2].forward(model[1].forward(model[0].forward(x))))
    logits = model[4].forward(h)
    p = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    rho = np.eye(3)[y] - p
    # eps = 1e-6 perturbs rho by a relative ~eps/|z|; declared here, not in the tolerance table
    assert_close(fb.params["4.weight"], np.abs(model[4].weight) * (rho.T @ h), rtol=1e-4)


def test_batch_reduction_mean_divides_feedback_by_batch(rng, data):
    model = mlp(rng)
    x, y = data
    total = lfp.feedback(model, x, y, batch_reduction="sum")
    mean = lfp.feedback(model, x, y, batch_reduction="mean")
    for name in total.params:
        assert_close(mean.params[name], total.params[name] / len(x))
    np.testing.assert_array_equal(mean.input_reward, total.input_reward)


def test_reward_array_equals_reward_function(rng, data):
    model = mlp(rng)
    x, y = data
    by_fn = lfp.feedback(model, x, y, reward="softmax_loss")
    by_array = lfp.feedback(model, x, reward=by_fn.reward)
    for name in by_fn.params:
        np.testing.assert_array_equal(by_array.params[name], by_fn.params[name])


def test_feedback_is_linear_in_the_reward(rng, data):
    model = mlp(rng)
    x, _ = data
    r1, r2 = rng.normal(size=(8, 3)), rng.normal(size=(8, 3))
    f1 = lfp.feedback(model, x, reward=r1)
    f2 = lfp.feedback(model, x, reward=r2)
    f12 = lfp.feedback(model, x, reward=2 * r1 - 3 * r2)
    for name in f1.params:
        assert_close(f12.params[name], 2 * f1.params[name] - 3 * f2.params[name])
    assert_close(f12.input_reward, 2 * f1.input_reward - 3 * f2.input_reward)


def test_lfp_step_ascends_feedback_and_gd_step_descends_gradient(rng, data):
    from lfp_ref.optim import SGD

    x, y = data
    model = mlp(rng)
    before = model.state_dict()
    fb = lfp.feedback(model, x, y)
    lfp.lfp_step(model, SGD(model, lr=0.1), x, y)
    for name, param in model.named_parameters():
        assert_close(param, before[name] + 0.1 * fb.params[name])
    model.load_state_dict(before)
    g = lfp.gradients(model, x, y)
    lfp.gd_step(model, SGD(model, lr=0.1), x, y)
    for name, param in model.named_parameters():
        assert_close(param, before[name] - 0.1 * g.params[name])


@pytest.mark.parametrize("build", [mlp, residual_mlp], ids=["mlp", "residual"])
def test_skipping_the_input_reward_keeps_every_parameter_feedback(rng, data, build):
    model = build(rng)
    x, y = data
    full = lfp.feedback(model, x, y)
    lean = lfp.feedback(model, x, y, input_reward=False)
    assert lean.input_reward is None
    for name in full.params:
        np.testing.assert_array_equal(lean.params[name], full.params[name])
    g_full = lfp.gradients(model, x, y)
    g_lean = lfp.gradients(model, x, y, input_grad=False)
    assert g_lean.input_grad is None
    for name in g_full.params:
        np.testing.assert_array_equal(g_lean.params[name], g_full.params[name])
    # the flag is restored: the next full pass computes the input reward again
    np.testing.assert_array_equal(lfp.feedback(model, x, y).input_reward, full.input_reward)


def test_small_lfp_steps_decrease_summed_cross_entropy(rng, data):
    """Descent: with P = diag(|theta|), a small LFP-SGD step is preconditioned GD."""
    from lfp_ref.optim import SGD

    x, y = data
    model = mlp(rng)
    opt = SGD(model, lr=1e-3)
    values = []
    for _ in range(20):
        values.append(lfp.gradients(model, x, y, reduction="sum").loss)
        lfp.lfp_step(model, opt, x, y, eps=0.0)
    assert np.all(np.diff(values) < 0), values


def test_state_dict_names_follow_torch(rng):
    model = residual_mlp(rng)
    assert list(model.state_dict()) == [
        "0.weight",
        "0.bias",
        "2.branch.0.weight",
        "2.branch.0.bias",
        "2.branch.2.weight",
        "2.branch.2.bias",
        "4.branch.weight",
        "4.branch.bias",
        "4.shortcut.weight",
        "6.weight",
        "6.bias",
    ]


def test_state_dict_round_trip_and_copy_semantics(rng, data):
    x, y = data
    a, b = mlp(rng), mlp(rng)
    state = a.state_dict()
    state["0.weight"][0, 0] += 1.0  # a copy: the model must not change
    assert a.state_dict()["0.weight"][0, 0] != state["0.weight"][0, 0]
    b.load_state_dict(a.state_dict())
    np.testing.assert_array_equal(b(x), a(x))


def test_load_state_dict_lists_every_problem(rng):
    model = mlp(rng)
    state = model.state_dict()
    del state["0.bias"]
    state["9.weight"] = np.zeros(3)
    state["2.weight"] = np.zeros((2, 2))
    with pytest.raises(ValueError) as err:
        model.load_state_dict(state)
    message = str(err.value)
    assert "missing keys ['0.bias']" in message
    assert "unexpected keys ['9.weight']" in message
    assert "2.weight: expected (6, 7), got (2, 2)" in message


def test_load_state_dict_casts_float32_arrays(rng, data):
    model = mlp(rng)
    state = {k: v.astype(np.float32) for k, v in model.state_dict().items()}
    model.load_state_dict(state)
    assert model.dtype == np.float64
    np.testing.assert_array_equal(model.state_dict()["0.weight"], state["0.weight"])


def test_to_float32_computes_in_float32(rng, data):
    x, y = data
    model = mlp(rng).to(np.float32)
    fb = lfp.feedback(model, x.astype(np.float32), y)
    assert all(v.dtype == np.float32 for v in fb.params.values())
    assert fb.input_reward.dtype == np.float32


@pytest.mark.parametrize(
    "x, error, message",
    [
        (np.zeros((8, 5), dtype=np.int64), TypeError, r"float32 or float64 array, got dtype int64"),
        (np.zeros((8, 5), dtype=np.float32), TypeError, r"model computes in float64"),
        (np.full((8, 5), np.nan), ValueError, r"40 non-finite value"),
        (np.zeros((8, 4)), ValueError, r"Dense\(5, 7\) expects input of shape \(B, 5\)"),
    ],
    ids=["integer", "float32-vs-float64", "nan", "wrong-width"],
)
def test_bad_inputs_are_rejected_clearly(rng, data, x, error, message):
    _, y = data
    with pytest.raises(error, match=message):
        lfp.feedback(mlp(rng), x, y)


def test_bad_reward_arrays_are_rejected(rng, data):
    x, y = data
    model = mlp(rng)
    with pytest.raises(ValueError, match=r"logits' shape \(8, 3\), got \(8, 2\)"):
        lfp.feedback(model, x, reward=np.zeros((8, 2)))
    bad = np.zeros((8, 3))
    bad[0, 0] = np.inf
    with pytest.raises(ValueError, match="reward contains 1 non-finite"):
        lfp.feedback(model, x, reward=bad)
    with pytest.raises(ValueError, match="batch_reduction must be one of"):
        lfp.feedback(model, x, y, batch_reduction="avg")


def test_backward_before_forward_explains(rng):
    with pytest.raises(RuntimeError, match="needs the forward pass first"):
        lfp.Dense(3, 2, rng=rng).backward(np.zeros((1, 2)))


def test_init_is_deterministic_for_a_seed():
    a = lfp.Sequential(lfp.Dense(4, 3, rng=0))
    b = lfp.Sequential(lfp.Dense(4, 3, rng=1)).reset_parameters(0)
    c = lfp.Sequential(lfp.Dense(4, 3, rng=0))
    np.testing.assert_array_equal(a.state_dict()["0.weight"], c.state_dict()["0.weight"])
    for name, value in a.state_dict().items():
        np.testing.assert_array_equal(b.state_dict()[name], value)
    bound = 1 / np.sqrt(4)
    assert np.abs(a[0].weight).max() <= bound


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["f32", "f64"])
@pytest.mark.parametrize("clip_norm", [None, 0.05, 1e6], ids=["no-clip", "clipping", "loose"])
def test_steps_equal_the_spelled_out_sequence_bit_for_bit(rng, data, dtype, clip_norm):
    # lfp_step folds g = -F and the clipping factor into the optimizer's pass; the result must
    # be the spelled-out torch sequence: g = -F, clip_grad_norm_(g), SGD step
    from lfp_ref.optim import SGD, clip_grad_norm

    x, y = data
    x = x.astype(dtype)
    fused, spelled = mlp(rng, dtype=dtype), mlp(rng, dtype=dtype)
    spelled.load_state_dict(fused.state_dict())
    for step in (lfp.lfp_step, lfp.gd_step):
        opt, opt_spelled = SGD(fused, lr=0.1, momentum=0.9), SGD(spelled, lr=0.1, momentum=0.9)
        for _ in range(3):
            out = step(fused, opt, x, y, clip_norm=clip_norm)
            if step is lfp.lfp_step:
                grads = lfp.feedback_to_gradient(lfp.feedback(spelled, x, y).params)
            else:
                grads = lfp.gradients(spelled, x, y).params
            for name, value in grads.items():
                # the returned arrays are unclipped, with their squared norms
                expected = -value if step is lfp.lfp_step else value
                np.testing.assert_array_equal(out.params[name], expected)
                assert out.squared_norms[name] == pytest.approx(
                    float(np.sum(value.astype(np.float64) ** 2)), rel=1e-12
                )
            if clip_norm is not None:
                clip_grad_norm(grads, clip_norm)
            opt_spelled.step(grads)
            for (name, p), (_, q) in zip(fused.named_parameters(), spelled.named_parameters()):
                np.testing.assert_array_equal(p, q, err_msg=name)


def test_non_finite_feedback_names_the_parameter(rng, data):
    x, y = data
    model = mlp(rng)
    model.layers[2].weight[0, 0] = 1e200  # finite, but the squares overflow in float64
    fb = lfp.feedback(model, x, y)  # finite feedback whose squared norm is inf is accepted
    assert np.isinf(fb.squared_norms["2.weight"]) and np.isfinite(fb.params["2.weight"]).all()
    # zero output layer and eps = 0: the logits are 0, the reward / stab(0) is inf, and the
    # feedback of every parameter below it is NaN
    model.layers[2].weight[...] = 1.0
    model.layers[4].weight[...] = 0.0
    model.layers[4].bias[...] = 0.0
    with np.errstate(divide="ignore", invalid="ignore"):
        with pytest.raises(FloatingPointError, match="non-finite feedback/gradient for parameter"):
            lfp.feedback(model, x, y, eps=0.0)
