"""Dense and the shared elementwise kernels against the float64 oracle."""

import numpy as np
import pytest
from lfp_ref.kernels.cpu import elementwise

import lfp_ref as lfp
from lfp_ref.rules import Epsilon
from tests.oracle import dense as oracle
from tests.tolerances import assert_close

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


@pytest.mark.parametrize("size", [7, (1 << 15) + 3], ids=["serial", "parallel"])
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
