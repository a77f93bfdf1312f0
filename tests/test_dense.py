"""Dense and the shared elementwise kernels against the float64 oracle."""

import math

import numpy as np
import pytest

import lfp_ref as lfp
from lfp_ref.kernels.cpu import _jit, elementwise
from lfp_ref.kernels.cpu.dense import dense_vjp_weight
from lfp_ref.rules import Epsilon
from tests.oracle import dense as oracle
from tests.tolerances import RTOL64, assert_close

SHAPES = [(1, 1, 1), (3, 4, 5), (8, 17, 6), (16, 64, 10)]  # (B, I, O)


def _case(rng, shape, bias, dtype):
    batch, n_in, n_out = shape
    layer = lfp.Dense(n_in, n_out, bias=bias, dtype=dtype, rng=rng)
    x = rng.normal(size=(batch, n_in)).astype(dtype)
    reward = rng.normal(size=(batch, n_out)).astype(dtype)
    return layer, x, reward


@pytest.mark.parametrize("dtype", [np.float64, np.float32], ids=["f64", "f32"])
@pytest.mark.parametrize("bias", [True, False], ids=["bias", "nobias"])
@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: "B{}xI{}xO{}".format(*s))
def test_dense_forward_and_feedback_match_oracle(rng, shape, bias, dtype):
    layer, x, reward = _case(rng, shape, bias, dtype)
    z = layer(x)
    assert z.dtype == dtype
    assert_close(z, oracle.dense_forward(x, layer.weight, layer.bias), dtype)
    eps = 1e-3  # large enough that the stabiliser visibly matters
    reward_in, params = Epsilon(eps).propagate(layer, reward)
    want_in, want_w, want_b = oracle.dense_lfp_epsilon(x, layer.weight, layer.bias, reward, eps)
    assert reward_in.dtype == dtype and params["weight"].dtype == dtype
    assert_close(reward_in, want_in, dtype)
    assert_close(params["weight"], want_w, dtype)
    if bias:
        assert_close(params["bias"], want_b, dtype)
    else:
        assert "bias" not in params


@pytest.mark.parametrize("bias", [True, False], ids=["bias", "nobias"])
def test_dense_backward_matches_finite_differences(rng, bias):
    layer, x, _ = _case(rng, (4, 5, 3), bias, np.float64)
    upstream = rng.normal(size=(4, 3))

    def loss():
        return float(np.sum(layer.forward(x) * upstream))

    layer.forward(x)
    grad_x, grads = layer.backward(upstream)
    assert_close(grad_x, oracle.finite_difference(loss, x), rtol=1e-7)
    assert_close(grads["weight"], oracle.finite_difference(loss, layer.weight), rtol=1e-7)
    if bias:
        assert_close(grads["bias"], oracle.finite_difference(loss, layer.bias), rtol=1e-7)


def test_stabiliser_signs_including_zero_and_negative_zero():
    z = np.array([2.0, -2.0, 0.0, -0.0, 1e-9, -1e-9])
    out = elementwise.stabilize(z, 0.5, np.empty_like(z))
    np.testing.assert_array_equal(out, [2.5, -2.5, 0.5, 0.5, 0.5 + 1e-9, -0.5 - 1e-9])
    ratio = elementwise.stabilized_ratio(np.ones_like(z), z, 0.5, np.empty_like(z))
    np.testing.assert_array_equal(ratio, 1 / out)


@pytest.mark.parametrize(
    "size", [7, _jit.PARALLEL_MIN_SIZE * _jit.STREAMING_FACTOR + 3], ids=["serial", "parallel"]
)
def test_elementwise_serial_and_parallel_builds_agree(rng, size):
    r, z, w = (rng.normal(size=size) for _ in range(3))
    expected = r / (z + 1e-3 * np.where(z >= 0, 1, -1))
    np.testing.assert_array_equal(
        elementwise.stabilized_ratio(r, z, 1e-3, np.empty_like(z)), expected
    )
    np.testing.assert_array_equal(elementwise.multiply_abs(r, w, np.empty_like(r)), np.abs(w) * r)
    np.testing.assert_array_equal(elementwise.multiply(r, w, np.empty_like(r)), r * w)


def test_dense_conservation_without_bias(rng):
    layer, x, reward = _case(rng, (6, 9, 4), False, np.float64)
    layer(x)
    reward_in, _ = Epsilon(0.0).propagate(layer, reward)
    assert_close(reward_in.sum(axis=1), reward.sum(axis=1))


def test_dense_conservation_with_bias(rng):
    layer, x, reward = _case(rng, (6, 9, 4), True, np.float64)
    eps = 1e-2
    z = layer(x)
    reward_in, _ = Epsilon(eps).propagate(layer, reward)
    stab = z + eps * np.where(z >= 0, 1, -1)
    # sum_i R_i = sum_j R_j (z_j - b_j) / stab(z_j)
    assert_close(reward_in.sum(axis=1), (reward * (z - layer.bias) / stab).sum(axis=1))


def test_zero_weights_and_silent_inputs_get_zero_feedback(rng):
    layer, x, reward = _case(rng, (5, 6, 3), True, np.float64)
    layer.weight[1, 2] = 0.0
    x[:, 4] = 0.0
    layer(x)
    _, params = Epsilon(1e-6).propagate(layer, reward)
    assert params["weight"][1, 2] == 0.0
    assert np.all(params["weight"][:, 4] == 0.0)
    assert np.count_nonzero(params["weight"]) == params["weight"].size - 3 - 1


def test_dense_rejects_wrong_input_shape():
    layer = lfp.Dense(784, 10)
    with pytest.raises(
        ValueError,
        match=r"Dense\(784, 10\) expects input of shape \(B, 784\), "
        r"got \(32, 28, 28\); add Flatten\(\)",
    ):
        layer(np.zeros((32, 28, 28)))


# -- the reductions the optimizers use ----------------------------------------------------------


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["f32", "f64"])
def test_all_finite_finds_every_kind_of_non_finite_entry(rng, dtype):
    values = rng.normal(size=1000).astype(dtype)
    values[::7] = np.finfo(dtype).max  # huge but finite
    values[1::7] = np.finfo(dtype).smallest_subnormal
    assert elementwise.all_finite(values)
    for bad in (np.nan, np.inf, -np.inf, -np.nan):
        for where in (0, 500, 999):
            broken = values.copy()
            broken[where] = bad
            assert not elementwise.all_finite(broken), (bad, where)


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["f32", "f64"])
@pytest.mark.parametrize("size", [0, 1, 17, 100_003], ids=lambda n: f"n{n}")
def test_sum_of_squares_accumulates_in_float64(rng, dtype, size):
    values = (rng.normal(size=size) * 1e3).astype(dtype)
    exact = math.fsum(float(v) ** 2 for v in values)
    # float64 accumulation in a free order: relative error ~ n * 2**-53, far below float32's 2**-24
    assert elementwise.sum_of_squares(values) == pytest.approx(exact, rel=RTOL64, abs=0)


# -- skipping the input VJP of the first layer ---------------------------------------------------


def _mlp(rng, dtype=np.float64):
    return lfp.Sequential(
        lfp.Flatten(), lfp.Dense(12, 7, dtype=dtype, rng=rng), lfp.ReLU(), lfp.Dense(7, 3, rng=rng)
    )


def test_dense_vjp_without_the_input_part(rng):
    layer, x, reward = _case(rng, (4, 6, 3), True, np.float64)
    layer(x)
    full_dx, full = layer.vjp(reward)
    dx, grads = layer.vjp(reward, input_vjp=False)
    assert dx is None and full_dx is not None
    for name in full:
        np.testing.assert_array_equal(grads[name], full[name])


def test_no_input_reward_keeps_the_feedback_and_skips_the_layers_below(rng):
    model = _mlp(rng)
    x = rng.normal(size=(5, 3, 4))
    y = np.array([0, 2, 1, 1, 0])
    full = lfp.feedback(model, x, y)
    r = lfp.rewards.softmax_loss(model(x), y)
    reward_in, params = model.feedback(r, lambda layer: Epsilon(), input_reward=False)
    grad_in, grads = model.backward(r, input_grad=False)
    assert reward_in is None and grad_in is None
    assert sorted(params) == sorted(full.params) == sorted(grads)
    for name, value in full.params.items():
        np.testing.assert_array_equal(params[name], value)
    again = lfp.feedback(model, x, y)
    np.testing.assert_array_equal(again.input_reward, full.input_reward)


def test_no_input_reward_through_a_residual_and_nested_sequentials(rng):
    # the reward at the input is skipped in every path below the first parameters, the
    # parameters' feedback is unchanged
    dense = lfp.Dense(4, 4, rng=rng)
    model = lfp.Sequential(
        lfp.Sequential(lfp.ReLU(), lfp.Residual(lfp.Sequential(dense, lfp.ReLU()))),
        lfp.Dense(4, 2, rng=rng),
    )
    x = rng.normal(size=(3, 4))
    r = rng.normal(size=(3, 2))
    model(x)
    full_in, full = model.feedback(r, lambda layer: Epsilon())
    lean_in, lean = model.feedback(r, lambda layer: Epsilon(), input_reward=False)
    assert full_in is not None and lean_in is None
    assert sorted(full) == sorted(lean)
    for name in full:
        np.testing.assert_array_equal(lean[name], full[name])


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["f32", "f64"])
def test_weight_vjp_of_a_single_sample_is_the_outer_product(rng, dtype):
    # batch 1 takes a broadcast multiply instead of the GEMM: the same products, bit for bit
    x = rng.normal(size=(1, 9)).astype(dtype)
    rho = rng.normal(size=(1, 4)).astype(dtype)
    out = dense_vjp_weight(x, rho, np.full((4, 9), np.nan, dtype))
    np.testing.assert_array_equal(out, rho[0][:, None] * x[0][None, :])
    two = dense_vjp_weight(np.vstack([x, x]), np.vstack([rho, 0 * rho]), np.empty((4, 9), dtype))
    assert_close(out, two, dtype)
