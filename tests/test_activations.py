"""Activations: identity rule under LFP, exact derivatives under backprop; ReLU's kernels."""

import numpy as np
import pytest

import lfp_ref as lfp
from lfp_ref.kernels.cpu import _jit, elementwise
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


# -- ReLU's kernels (kernels/cpu/elementwise.py): the values NumPy's expressions give, bit for bit


def _relu_inputs(rng, size, dtype):
    """Normal values with the edge cases spread through them: +-0.0, NaN, +-inf, subnormals."""
    x = rng.normal(size=size).astype(dtype)
    specials = np.array([0.0, -0.0, np.nan, np.inf, -np.inf, 1e-320, -1e-320], dtype=dtype)
    x[: 7 * (size // 7) : size // 7 or 1] = specials[: min(7, size)]
    return x


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["f32", "f64"])
@pytest.mark.parametrize(
    "size", [7, 1000, _jit.PARALLEL_MIN_SIZE * _jit.STREAMING_FACTOR + 3], ids=["7", "1000", "par"]
)
def test_relu_kernels_equal_numpys_expressions_bit_for_bit(rng, size, dtype):
    x = _relu_inputs(rng, size, dtype)
    grad = _relu_inputs(rng, size, dtype)[::-1].copy()  # inf and NaN meet x's zeros and signs
    out = elementwise.relu(x, np.empty_like(x))
    expected = np.maximum(x, 0)
    # bit patterns: -0.0 must become +0.0 as in NumPy, and NaN stays NaN
    np.testing.assert_array_equal(out.view(f"u{x.itemsize}"), expected.view(f"u{x.itemsize}"))
    with np.errstate(invalid="ignore"):
        expected_vjp = grad * (x > 0).astype(dtype)
    vjp = elementwise.relu_vjp(grad, x, np.empty_like(x))
    np.testing.assert_array_equal(vjp.view(f"u{x.itemsize}"), expected_vjp.view(f"u{x.itemsize}"))


def test_relu_layer_takes_non_contiguous_input_and_a_gradient_of_another_dtype(rng):
    x = rng.normal(size=(6, 8))[:, ::2]  # a strided view
    relu = lfp.ReLU()
    np.testing.assert_array_equal(relu.forward(x), np.maximum(x, 0))
    grad = rng.normal(size=x.shape).astype(np.float32)
    out, params = relu.backward(grad)
    assert out.dtype == np.float64 and params == {}
    np.testing.assert_array_equal(out, grad.astype(np.float64) * (x > 0))


def test_relu_kernels_refuse_mismatched_arrays():
    x = np.zeros((4, 3))
    with pytest.raises(ValueError, match="relu: out must have the shape"):
        elementwise.relu(x, np.empty((3, 4)))
    with pytest.raises(TypeError, match="relu_vjp: x has dtype float32"):
        elementwise.relu_vjp(x, x.astype(np.float32), np.empty_like(x))
    with pytest.raises(TypeError, match="relu"):
        lfp.ReLU().forward(np.arange(6).reshape(2, 3))  # integers: no kernel, a clear refusal


def test_streaming_kernels_go_parallel_only_from_the_larger_threshold():
    # elementwise kernels are memory-bound: serial up to STREAMING_FACTOR * PARALLEL_MIN_SIZE
    # entries, while the other kernels switch at PARALLEL_MIN_SIZE (kernels/cpu/_jit.py)
    from lfp_ref.kernels.cpu import pool

    start = _jit.PARALLEL_MIN_SIZE * _jit.STREAMING_FACTOR
    assert _jit.STREAMING_FACTOR > 1
    for k in (elementwise._relu, elementwise._relu_vjp, elementwise._stabilized_ratio):
        assert k.pick(start - 1) is k.serial and k.pick(start) is k.parallel
    general = pool._maxpool2d_forward_2x2
    assert general.pick(_jit.PARALLEL_MIN_SIZE) is general.parallel
    assert general.pick(_jit.PARALLEL_MIN_SIZE - 1) is general.serial
