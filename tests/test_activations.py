"""Activations: identity rule under LFP, exact derivatives under backprop."""

import numpy as np
import pytest

import lfp_ref as lfp
from tests.oracle.dense import finite_difference
from tests.tolerances import assert_close

SMOOTH = [
    lfp.Identity(),
    lfp.ReLU(),
    lfp.LeakyReLU(0.1),
    lfp.Tanh(),
    lfp.Sigmoid(),
    lfp.SiLU(),
    lfp.ELU(0.7),
]


@pytest.mark.parametrize("layer", SMOOTH, ids=lambda a: type(a).__name__)
def test_backward_matches_finite_differences(rng, layer):
    x = rng.normal(size=(4, 6))
    x[np.abs(x) < 1e-3] = 0.5  # stay off the kinks
    upstream = rng.normal(size=x.shape)
    layer.forward(x)
    grad, params = layer.backward(upstream)
    assert params == {}
    fd = finite_difference(lambda: float(np.sum(layer.forward(x) * upstream)), x)
    assert_close(grad, fd, rtol=1e-7)


@pytest.mark.parametrize("layer", [*SMOOTH, lfp.Step()], ids=lambda a: type(a).__name__)
def test_feedback_is_identity(rng, layer):
    x = rng.normal(size=(3, 5))
    reward = rng.normal(size=x.shape)
    layer.forward(x)
    out, params = layer.feedback(reward, None)
    np.testing.assert_array_equal(out, reward)
    assert params == {}


def test_step_is_heaviside_with_h0_zero_and_no_gradient():
    x = np.array([[-1.0, 0.0, -0.0, 1e-300, 2.0]])
    step = lfp.Step()
    np.testing.assert_array_equal(step.forward(x), [[0, 0, 0, 1, 1]])
    np.testing.assert_array_equal(step.backward(np.ones_like(x))[0], np.zeros_like(x))


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["f32", "f64"])
@pytest.mark.parametrize("layer", [*SMOOTH, lfp.Step()], ids=lambda a: type(a).__name__)
def test_activations_keep_dtype(layer, dtype):
    x = np.linspace(-3, 3, 12, dtype=dtype).reshape(2, 6)
    assert layer.forward(x).dtype == dtype
    assert layer.backward(np.ones_like(x))[0].dtype == dtype


def test_forward_values():
    x = np.array([[-2.0, -0.5, 0.0, 0.5, 2.0]])
    s = 1 / (1 + np.exp(-x))
    assert_close(lfp.LeakyReLU(0.1).forward(x), np.where(x > 0, x, 0.1 * x))
    assert_close(lfp.SiLU().forward(x), x * s)
    assert_close(lfp.ELU(0.7).forward(x), np.where(x > 0, x, 0.7 * (np.exp(x) - 1)))
    assert_close(lfp.Sigmoid().forward(x), s)
