"""BatchNorm1d / BatchNorm2d: kernels against the float64 oracle, backprop against finite
differences, running statistics against torch's formulas, state dicts and errors."""

import numpy as np
import pytest

import lfp_ref as lfp
from lfp_ref.kernels.cpu import norm as kernels
from lfp_ref.layers.norm import BatchNorm1d, BatchNorm2d
from lfp_ref.rules import Epsilon
from tests.oracle import norm as oracle
from tests.oracle.dense import finite_difference
from tests.tolerances import assert_close

# Central differences with h = 1e-6 in float64: truncation ~h^2 * |f'''| ~ 1e-12 and rounding
# ~1e-16 / h ~ 1e-10 relative to the array's scale; 1e-7 leaves margin without hiding a wrong
# Jacobian (the diagonal-only shortcut is off by O(1/n)).
FD_RTOL = 1e-7

# (layer class, input shape): BN1d (B, C) and (B, C, L), BN2d (B, C, H, W); small enough for the
# explicit (N, N) Jacobian of the oracle.
CASES = [
    (BatchNorm1d, (2, 1)),
    (BatchNorm1d, (5, 3)),
    (BatchNorm1d, (16, 4)),
    (BatchNorm1d, (3, 2, 4)),
    (BatchNorm2d, (2, 1, 2, 2)),
    (BatchNorm2d, (3, 2, 3, 3)),
    (BatchNorm2d, (4, 3, 2, 5)),
]
CASE_IDS = [f"{cls.__name__}-{'x'.join(map(str, shape))}" for cls, shape in CASES]

DTYPES = pytest.mark.parametrize("dtype", [np.float64, np.float32], ids=["f64", "f32"])
MODES = pytest.mark.parametrize("training", [True, False], ids=["train", "eval"])
AFFINE = pytest.mark.parametrize("affine", [True, False], ids=["affine", "noaffine"])
CASE = pytest.mark.parametrize("cls, shape", CASES, ids=CASE_IDS)


def make_layer(rng, cls, shape, *, training=True, affine=True, dtype=np.float64, eps_bn=1e-3):
    """A layer with random gamma (both signs), beta and running statistics, in the given mode.
    eps_bn = 1e-3 so that a missing or misplaced eps shows up in every comparison."""
    channels = shape[1]
    layer = cls(channels, eps=eps_bn, affine=affine, dtype=dtype)
    if affine:
        layer.weight[...] = rng.uniform(0.5, 2.0, channels) * rng.choice([-1.0, 1.0], channels)
        layer.bias[...] = rng.normal(size=channels)
    layer.running_mean[...] = rng.normal(size=channels)
    layer.running_var[...] = rng.uniform(0.2, 3.0, channels)
    return layer.train(training)


def make_input(rng, shape, dtype=np.float64):
    # an offset and a scale per channel, as a real activation would have
    offset = rng.normal(size=shape[1]) * 3
    scale = rng.uniform(0.5, 4.0, shape[1])
    per_channel = (1, shape[1]) + (1,) * (len(shape) - 2)
    x = rng.normal(size=shape) * scale.reshape(per_channel) + offset.reshape(per_channel)
    return x.astype(dtype)


def running(layer, training):
    """The running statistics the oracle should use: none in training mode."""
    if training:
        return None, None
    return layer.running_mean.astype(np.float64), layer.running_var.astype(np.float64)


def weights(layer):
    if not layer.affine:
        return None, None
    return layer.weight.astype(np.float64), layer.bias.astype(np.float64)


# -- kernels vs the oracle ----------------------------------------------------------------------


@DTYPES
@AFFINE
@MODES
@CASE
def test_forward_matches_oracle(rng, cls, shape, training, affine, dtype):
    layer = make_layer(rng, cls, shape, training=training, affine=affine, dtype=dtype)
    stats = running(layer, training)  # read before forward updates them
    x = make_input(rng, shape, dtype)
    z = layer(x)
    want_z, want_xhat = oracle.bn_forward(x, *weights(layer), layer.eps, *stats)
    assert z.dtype == dtype and z.shape == shape
    assert_close(z, want_z, dtype)
    cached_x, cached_z, xhat = layer.saved()[:3]
    assert cached_x is layer.cached_input and layer.cached_output is z
    np.testing.assert_array_equal(cached_x, x)
    assert_close(xhat, want_xhat, dtype)


@DTYPES
@AFFINE
@MODES
@CASE
def test_vjp_matches_explicit_jacobian(rng, cls, shape, training, affine, dtype):
    layer = make_layer(rng, cls, shape, training=training, affine=affine, dtype=dtype)
    stats = running(layer, training)
    x = make_input(rng, shape, dtype)
    v = rng.normal(size=shape).astype(dtype)
    layer(x)
    vjp_x, grads = layer.vjp(v)
    gamma, _ = weights(layer)
    want_x, want_gamma, want_beta = oracle.bn_vjp(x, v, gamma, layer.eps, *stats)
    assert vjp_x.dtype == dtype
    assert_close(vjp_x, want_x, dtype)
    if affine:
        assert list(grads) == ["weight", "bias"]
        assert grads["weight"].dtype == dtype and grads["bias"].dtype == dtype
        assert_close(grads["weight"], want_gamma, dtype)
        assert_close(grads["bias"], want_beta, dtype)
    else:
        assert grads == {}


@DTYPES
@AFFINE
@MODES
@CASE
def test_lfp_feedback_matches_spec(rng, cls, shape, training, affine, dtype):
    layer = make_layer(rng, cls, shape, training=training, affine=affine, dtype=dtype)
    stats = running(layer, training)
    x = make_input(rng, shape, dtype)
    reward = rng.normal(size=shape).astype(dtype)
    eps = 1e-3  # large enough that the stabiliser visibly matters
    layer(x)
    reward_in, params = layer.feedback(reward, lambda _: Epsilon(eps))
    want_in, want_gamma, want_beta = oracle.bn_lfp_epsilon(
        x, reward, *weights(layer), layer.eps, eps, *stats
    )
    assert reward_in.dtype == dtype
    assert_close(reward_in, want_in, dtype)
    if affine:
        assert_close(params["weight"], want_gamma, dtype)
        assert_close(params["bias"], want_beta, dtype)
    else:
        assert params == {}


@pytest.mark.parametrize("cls, shape", [CASES[1], CASES[5]], ids=[CASE_IDS[1], CASE_IDS[5]])
def test_jacobian_oracle_matches_finite_differences(rng, cls, shape):
    """The analytic per-element Jacobian of the oracle is the derivative of its own forward."""
    x = make_input(rng, shape)
    gamma = rng.normal(size=shape[1])
    beta = rng.normal(size=shape[1])
    numeric = oracle.finite_difference_jacobian(
        lambda x_: oracle.bn_forward(x_, gamma, beta, 1e-3)[0], x
    )
    assert_close(oracle.bn_train_jacobian(x, gamma, 1e-3), numeric, rtol=FD_RTOL)


def test_diagonal_shortcut_is_not_the_training_jacobian(rng):
    """Guards the oracle comparison: the eval-style diagonal differs from the train Jacobian."""
    x = make_input(rng, (4, 2))
    gamma = np.array([1.5, -0.7])
    _, var, _ = oracle.batch_statistics(x)
    diagonal = oracle.bn_eval_jacobian(x, gamma, var, 1e-3)
    difference = np.abs(oracle.bn_train_jacobian(x, gamma, 1e-3) - diagonal).max()
    assert difference > 0.1


# -- backprop vs finite differences ---------------------------------------------------------


@MODES
@pytest.mark.parametrize("cls, shape", CASES[1:], ids=CASE_IDS[1:])
def test_backward_matches_finite_differences(rng, cls, shape, training):
    """FD over the whole forward: in training mode the batch statistics move with x.

    Not n = 2 per channel: there the normalised output is +-sqrt(var / (var + eps)), nearly
    constant, and its derivative (~eps / var ~ 1e-4 of the loss terms) is below what central
    differences resolve at FD_RTOL; the explicit-Jacobian oracle tests cover n = 2."""
    layer = make_layer(rng, cls, shape, training=training)
    x = make_input(rng, shape)
    upstream = rng.normal(size=shape)

    def loss():
        return float(np.sum(layer.forward(x) * upstream))

    layer.forward(x)
    grad_x, grads = layer.backward(upstream)
    assert_close(grad_x, finite_difference(loss, x), rtol=FD_RTOL)
    assert_close(grads["weight"], finite_difference(loss, layer.weight), rtol=FD_RTOL)
    assert_close(grads["bias"], finite_difference(loss, layer.bias), rtol=FD_RTOL)


def test_backward_matches_torch_batchnorm_gradient_formula(rng):
    """torch's closed form: dx = gamma inv_std / n (n dy - sum dy - xhat sum dy xhat)."""
    layer = make_layer(rng, BatchNorm2d, (3, 2, 4, 5))
    x = make_input(rng, (3, 2, 4, 5))
    dy = rng.normal(size=x.shape)
    layer(x)
    grad_x, _ = layer.backward(dy)
    axes = (0, 2, 3)
    n = x.size // x.shape[1]
    mean = x.mean(axis=axes, keepdims=True)
    inv_std = 1 / np.sqrt(x.var(axis=axes, keepdims=True) + layer.eps)
    xhat = (x - mean) * inv_std
    gamma = layer.weight.reshape(1, -1, 1, 1)
    want = (
        gamma
        * inv_std
        / n
        * (n * dy - dy.sum(axis=axes, keepdims=True) - xhat * (dy * xhat).sum(axes, keepdims=True))
    )
    assert_close(grad_x, want)


def test_lfp_through_batchnorm_is_implicitly_weight_scaled_backprop(rng):
    """Spec property: Dense-BN-ReLU nets, eps = 0, softmax_loss: F = -|theta| dL/dtheta for every
    parameter. Holds only with the FULL training-mode Jacobian. (The Dense before BN has no
    bias, as usual: train-mode BN removes it, so its gradient is exactly 0 and both sides would
    be rounding noise.)"""
    model = lfp.Sequential(
        lfp.Dense(5, 6, bias=False, rng=rng),
        BatchNorm1d(6),
        lfp.ReLU(),
        lfp.Dense(6, 3, rng=rng),
    )
    model[1].weight[...] = rng.uniform(0.5, 2.0, 6) * rng.choice([-1.0, 1.0], 6)
    model[1].bias[...] = rng.normal(size=6)
    x, y = rng.normal(size=(8, 5)), rng.integers(0, 3, size=8)
    fb = lfp.feedback(model, x, y, reward=lfp.rewards.softmax_loss, eps=0.0)
    g = lfp.gradients(model, x, y, loss="cross_entropy", reduction="sum")
    assert list(fb.params) == list(model.parameters())
    for name, param in model.named_parameters():
        assert_close(fb.params[name], -np.abs(param) * g.params[name])


def test_feedback_is_linear_in_the_reward(rng):
    layer = make_layer(rng, BatchNorm2d, (3, 2, 3, 3))
    x = make_input(rng, (3, 2, 3, 3))
    r1, r2 = rng.normal(size=x.shape), rng.normal(size=x.shape)
    layer(x)
    rule = Epsilon(1e-3)
    in1, p1 = rule.propagate(layer, r1)
    in2, p2 = rule.propagate(layer, r2)
    in12, p12 = rule.propagate(layer, 2.0 * r1 - 3.0 * r2)
    assert_close(in12, 2.0 * in1 - 3.0 * in2)
    for name in ("weight", "bias"):
        assert_close(p12[name], 2.0 * p1[name] - 3.0 * p2[name])


def test_vjp_uses_the_mode_of_the_forward_that_ran(rng):
    """Switching to eval between forward and feedback does not change the Jacobian used."""
    layer = make_layer(rng, BatchNorm1d, (6, 3))
    x = make_input(rng, (6, 3))
    v = rng.normal(size=x.shape)
    layer(x)
    layer.eval()
    vjp_x, _ = layer.vjp(v)
    assert_close(vjp_x, oracle.bn_vjp(x, v, layer.weight, layer.eps)[0])


# -- running statistics ---------------------------------------------------------------------


@DTYPES
@pytest.mark.parametrize("momentum", [0.1, 0.5, None], ids=["m0.1", "m0.5", "cumulative"])
@pytest.mark.parametrize("cls, shape", [CASES[2], CASES[6]], ids=[CASE_IDS[2], CASE_IDS[6]])
def test_running_stats_trajectory_follows_torch(rng, cls, shape, momentum, dtype):
    layer = cls(shape[1], momentum=momentum, dtype=dtype)
    batches = [make_input(rng, shape, dtype) for _ in range(4)]
    want = oracle.running_stats_trajectory(batches, shape[1], momentum)
    for x, (want_mean, want_var, want_tracked) in zip(batches, want, strict=True):
        layer(x)
        assert layer.running_mean.dtype == dtype and layer.running_var.dtype == dtype
        assert_close(layer.running_mean, want_mean, dtype)
        assert_close(layer.running_var, want_var, dtype)
        assert layer.num_batches_tracked.dtype == np.int64
        assert layer.num_batches_tracked.shape == ()
        assert int(layer.num_batches_tracked) == want_tracked
    # eval mode normalises with the running statistics and leaves them alone
    layer.eval()
    frozen = layer.state_dict()
    x = make_input(rng, shape, dtype)
    z = layer(x)
    want_z, _ = oracle.bn_forward(
        x, layer.weight, layer.bias, layer.eps, frozen["running_mean"], frozen["running_var"]
    )
    assert_close(z, want_z, dtype)
    for name, value in layer.state_dict().items():
        np.testing.assert_array_equal(value, frozen[name])


def test_momentum_zero_freezes_and_one_replaces(rng):
    x = make_input(rng, (5, 3))
    frozen = BatchNorm1d(3, momentum=0.0)
    frozen(x)
    np.testing.assert_array_equal(frozen.running_mean, 0.0)
    np.testing.assert_array_equal(frozen.running_var, 1.0)
    replaced = BatchNorm1d(3, momentum=1.0)
    replaced(x)
    assert_close(replaced.running_mean, x.mean(axis=0))
    assert_close(replaced.running_var, x.var(axis=0, ddof=1))


def test_without_running_stats_eval_uses_batch_statistics(rng):
    layer = BatchNorm2d(2, track_running_stats=False)
    assert layer.running_mean is None and layer.num_batches_tracked is None
    assert list(layer.state_dict()) == ["weight", "bias"]
    x = make_input(rng, (3, 2, 2, 2))
    layer.eval()
    assert_close(layer(x), oracle.bn_forward(x, layer.weight, layer.bias, layer.eps)[0])
    v = rng.normal(size=x.shape)
    assert_close(layer.vjp(v)[0], oracle.bn_vjp(x, v, layer.weight, layer.eps)[0])


# -- state, parameters, construction --------------------------------------------------------


def test_state_dict_uses_torch_names_and_buffers(rng):
    layer = BatchNorm2d(4)
    state = layer.state_dict()
    assert list(state) == ["weight", "bias", "running_mean", "running_var", "num_batches_tracked"]
    np.testing.assert_array_equal(state["weight"], np.ones(4))
    np.testing.assert_array_equal(state["bias"], np.zeros(4))
    np.testing.assert_array_equal(state["running_mean"], np.zeros(4))
    np.testing.assert_array_equal(state["running_var"], np.ones(4))
    assert state["num_batches_tracked"].dtype == np.int64
    assert state["num_batches_tracked"].shape == () and int(state["num_batches_tracked"]) == 0
    assert list(layer.parameters()) == ["weight", "bias"]  # buffers are not trained

    model = lfp.Sequential(lfp.Dense(3, 4, rng=rng), BatchNorm1d(4))
    model(rng.normal(size=(5, 3)))
    state = model.state_dict()
    assert list(state) == [
        "0.weight",
        "0.bias",
        "1.weight",
        "1.bias",
        "1.running_mean",
        "1.running_var",
        "1.num_batches_tracked",
    ]
    assert int(state["1.num_batches_tracked"]) == 1

    fresh = lfp.Sequential(lfp.Dense(3, 4, rng=rng), BatchNorm1d(4)).load_state_dict(state)
    for name, value in fresh.state_dict().items():
        np.testing.assert_array_equal(value, state[name])
        assert value.dtype == state[name].dtype


def test_no_affine_has_no_parameters():
    layer = BatchNorm1d(3, affine=False)
    assert layer.parameters() == {}
    assert list(layer.state_dict()) == ["running_mean", "running_var", "num_batches_tracked"]


def test_to_float32_keeps_the_counter_integer(rng):
    layer = BatchNorm1d(3).to(np.float32)
    assert layer.weight.dtype == np.float32 and layer.running_var.dtype == np.float32
    assert layer.num_batches_tracked.dtype == np.int64
    layer(make_input(rng, (4, 3), np.float32))
    assert int(layer.num_batches_tracked) == 1


def test_reset_parameters_restores_torch_init(rng):
    layer = make_layer(rng, BatchNorm1d, (4, 3))
    layer(make_input(rng, (4, 3)))
    layer.reset_parameters(rng)
    np.testing.assert_array_equal(layer.weight, 1.0)
    np.testing.assert_array_equal(layer.bias, 0.0)
    np.testing.assert_array_equal(layer.running_mean, 0.0)
    np.testing.assert_array_equal(layer.running_var, 1.0)
    assert int(layer.num_batches_tracked) == 0


def test_repr_follows_torch():
    assert repr(BatchNorm2d(8)) == (
        "BatchNorm2d(8, eps=1e-05, momentum=0.1, affine=True, track_running_stats=True)"
    )


# -- errors ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "layer, shape, message",
    [
        (BatchNorm1d(4), (8, 3), r"BatchNorm1d\(4.*expects input of shape \(B, 4\) or \(B, 4, L\)"),
        (BatchNorm1d(4), (8, 4, 2, 2), "use BatchNorm2d"),
        (BatchNorm2d(3), (8, 4, 5, 5), r"BatchNorm2d\(3.*expects NCHW input of shape \(B, 3, H, W"),
        (BatchNorm2d(3), (8, 3), "use BatchNorm1d"),
    ],
    ids=["bn1d-channels", "bn1d-nchw", "bn2d-channels", "bn2d-flat"],
)
def test_wrong_shapes_name_the_layer_and_the_expected_shape(layer, shape, message):
    with pytest.raises(ValueError, match=message):
        layer(np.zeros(shape))


@pytest.mark.parametrize(
    "cls, shape", [(BatchNorm1d, (1, 3)), (BatchNorm2d, (1, 3, 1, 1))], ids=["bn1d", "bn2d"]
)
def test_one_value_per_channel_in_training_raises_like_torch(rng, cls, shape):
    layer = cls(3)
    with pytest.raises(ValueError, match="Expected more than 1 value per channel when training"):
        layer(rng.normal(size=shape))
    assert int(layer.num_batches_tracked) == 0  # nothing was updated
    layer.eval()
    assert layer(rng.normal(size=shape)).shape == shape  # eval normalises with running stats


def test_dtype_mismatch_says_how_to_convert(rng):
    with pytest.raises(TypeError, match=r"x.astype\(np.float64\)"):
        BatchNorm1d(3)(rng.normal(size=(4, 3)).astype(np.float32))
    with pytest.raises(TypeError, match="float32 or float64"):
        BatchNorm1d(3)(np.ones((4, 3), dtype=np.int64))


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"num_features": 0}, "positive integer num_features"),
        ({"num_features": 2.5}, "positive integer num_features"),
        ({"num_features": 3, "eps": -1.0}, "eps >= 0"),
        ({"num_features": 3, "momentum": 1.5}, r"momentum in \[0, 1\]"),
        ({"num_features": 3, "dtype": np.int32}, "float32 or float64"),
    ],
    ids=["zero-features", "fractional-features", "negative-eps", "momentum", "dtype"],
)
def test_bad_construction_is_rejected(kwargs, message):
    with pytest.raises(ValueError, match=message):
        BatchNorm2d(**kwargs)


def test_feedback_before_forward_explains():
    with pytest.raises(RuntimeError, match="forward pass first"):
        BatchNorm1d(3).feedback(np.ones((2, 3)), lambda _: Epsilon())


def test_vjp_with_the_wrong_shape_says_so(rng):
    layer = BatchNorm1d(3)
    layer(rng.normal(size=(4, 3)))
    with pytest.raises(ValueError, match=r"expected an array of shape \(4, 3\)"):
        layer.vjp(np.ones((4, 2)))


# -- serial and parallel builds -------------------------------------------------------------


@DTYPES
def test_serial_and_parallel_kernel_builds_agree_bitwise(rng, dtype):
    """Each reduction is owned by one prange iteration, so the builds agree exactly."""
    x = make_input(rng, (5, 6, 7), dtype)
    v = rng.normal(size=x.shape).astype(dtype)
    scale, shift = rng.normal(size=6), rng.normal(size=6)
    results = []
    for build in ("serial", "parallel"):
        mean, var_sum = np.empty(6), np.empty(6)
        getattr(kernels._channel_stats, build)(x, mean, var_sum)
        inv_std = 1 / np.sqrt(var_sum / 35 + 1e-5)
        xhat, z = np.empty_like(x), np.empty_like(x)
        getattr(kernels._normalize_affine, build)(x, mean, inv_std, scale, shift, xhat, z)
        sum_v, sum_v_xhat = np.empty(6), np.empty(6)
        getattr(kernels._channel_vjp_sums, build)(v, x, mean, inv_std, sum_v, sum_v_xhat)
        train, evaluated = np.empty_like(x), np.empty_like(x)
        getattr(kernels._vjp_input_train, build)(
            v, x, mean, inv_std, scale, sum_v / 35, sum_v_xhat / 35, train
        )
        getattr(kernels._vjp_input_eval, build)(v, scale, evaluated)
        results.append((mean, var_sum, xhat, z, sum_v, sum_v_xhat, train, evaluated))
    for serial, parallel in zip(*results, strict=True):
        np.testing.assert_array_equal(serial, parallel)


def test_non_contiguous_input_is_handled(rng):
    x = make_input(rng, (3, 2, 6, 5))[:, :, ::2, 1:]  # a strided view
    layer = make_layer(rng, BatchNorm2d, x.shape)
    z = layer(x)
    assert_close(z, oracle.bn_forward(x, layer.weight, layer.bias, layer.eps)[0])
    v = rng.normal(size=x.shape)
    assert_close(layer.vjp(v)[0], oracle.bn_vjp(x, v, layer.weight, layer.eps)[0])


@pytest.mark.parametrize("training", [True, False], ids=["train", "eval"])
def test_vjp_without_the_input_part(rng, training):
    layer = make_layer(rng, BatchNorm2d, (6, 3, 4, 4), training=training)
    x = make_input(rng, (6, 3, 4, 4))
    v = rng.standard_normal(layer.forward(x).shape)
    full_dx, full = layer.vjp(v)
    dx, grads = layer.vjp(v, input_vjp=False)
    assert dx is None and full_dx is not None
    assert sorted(grads) == ["bias", "weight"]
    for name in full:
        np.testing.assert_array_equal(grads[name], full[name])


@DTYPES
def test_float64_sums_run_in_index_order_and_float32_sums_may_be_reassociated(rng, dtype):
    """float64 statistics are the strict kernels' (the order the CUDA twins reproduce bit for
    bit: a plain left-to-right sum); float32 input goes to the reassociated builds, whose
    float64 sums of the (exact) float32 values agree with the oracle to float64 rounding."""
    x = make_input(rng, (7, 3, 40), dtype)
    v = rng.normal(size=x.shape).astype(dtype)
    mean, var_sum = kernels.channel_stats(x, np.empty(3), np.empty(3))
    inv_std = 1 / np.sqrt(var_sum / 280 + 1e-5)
    sum_v, sum_v_xhat = kernels.channel_vjp_sums(v, x, mean, inv_std, np.empty(3), np.empty(3))
    picked = kernels._sums_for(np.dtype(dtype), "strict", "reassociated")
    assert picked == ("reassociated" if dtype == np.float32 else "strict")
    if dtype == np.float64:
        left_to_right = np.empty(3)
        for c in range(3):
            total = 0.0
            for value in x[:, c, :].ravel():
                total += float(value)
            left_to_right[c] = total / 280
        np.testing.assert_array_equal(mean, left_to_right)
    expected_mean = x.astype(np.float64).mean(axis=(0, 2))
    expected_var_sum = ((x - expected_mean[None, :, None]) ** 2).sum(axis=(0, 2))
    xhat = (x - mean[None, :, None]) * inv_std[None, :, None]
    np.testing.assert_allclose(mean, expected_mean, rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(var_sum, expected_var_sum, rtol=1e-12)
    np.testing.assert_allclose(sum_v, v.astype(np.float64).sum(axis=(0, 2)), rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(sum_v_xhat, (v * xhat).sum(axis=(0, 2)), rtol=1e-12, atol=1e-12)
