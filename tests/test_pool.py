"""AvgPool2d and MaxPool2d: kernels vs the loop oracles, finite differences, conservation and
routing of the reward, first-arg-max ties, the serial and parallel builds, and the errors."""

import numba
import numpy as np
import pytest

from lfp_ref.kernels.cpu import _jit
from lfp_ref.kernels.cpu import pool as K
from lfp_ref.layers.base import LinearLayer
from lfp_ref.layers.pool import AvgPool2d, MaxPool2d
from lfp_ref.rules import Epsilon
from tests.oracle import conv as oracle
from tests.oracle.dense import finite_difference
from tests.tolerances import RTOL64, assert_close

# Kernel vs oracle tolerances: RTOL64 / RTOL32 in tests/tolerances.py. Finite differences: the
# pools are (piecewise) linear, so central differences only carry rounding, ~1e-16 * |L| / h.
RTOL_FD = 1e-8
FD_STEP = 1e-3

# (C, H, W, kernel_size, stride, padding)
CONFIGS = [
    (2, 6, 6, 2, None, 0),
    (2, 7, 6, 3, 2, 1),
    (3, 8, 9, (3, 2), 1, (1, 0)),
    (1, 9, 9, (2, 4), (3, 1), (1, 2)),
    (2, 10, 7, 5, 3, 2),
    (2, 5, 5, 5, None, 0),
    (1, 7, 8, 3, (1, 3), 0),
    (2, 7, 5, 2, 2, 0),  # the 2x2 fast path with an odd last row and column left uncovered
]


def _fmt(v):
    return f"{v[0]}x{v[1]}" if isinstance(v, tuple) else str(v)


def config_id(cfg):
    c, h, w, k, s, p = cfg
    return f"C{c}_{h}x{w}_k{_fmt(k)}_s{_fmt(s)}_p{_fmt(p)}"


DTYPES = [pytest.param(np.float64, id="f64"), pytest.param(np.float32, id="f32")]
POOLS = [pytest.param(AvgPool2d, id="avg"), pytest.param(MaxPool2d, id="max")]


@pytest.fixture(params=CONFIGS, ids=config_id)
def cfg(request):
    return request.param


def make_case(rng, cfg, pool_type, dtype=np.float64, batch=2):
    c, h, w, k, s, p = cfg
    layer = pool_type(k, stride=s, padding=p)
    x = rng.standard_normal((batch, c, h, w)).astype(dtype)
    return layer, x


def geometry(layer):
    return {"kernel_size": layer.kernel_size, "stride": layer.stride, "padding": layer.padding}


# -- AvgPool2d ---------------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", DTYPES)
def test_avgpool_forward_and_vjp_match_oracle(rng, cfg, dtype):
    layer, x = make_case(rng, cfg, AvgPool2d, dtype)
    z = layer.forward(x)
    assert z.dtype == dtype
    assert_close(z, oracle.avgpool2d_forward(x, **geometry(layer)), dtype)
    v = rng.standard_normal(z.shape).astype(dtype)
    dx, params = layer.vjp(v)
    assert params == {} and dx.dtype == dtype
    assert_close(dx, oracle.avgpool2d_vjp(x.shape, v, **geometry(layer)), dtype)


@pytest.mark.parametrize("dtype", DTYPES)
def test_avgpool_lfp_epsilon_matches_oracle(rng, cfg, dtype):
    layer, x = make_case(rng, cfg, AvgPool2d, dtype)
    z = layer.forward(x)
    reward = rng.standard_normal(z.shape).astype(dtype)
    reward_in, params = Epsilon(1e-6).propagate(layer, reward)
    assert params == {}
    # float32: stabilise with the kernel's own z (r / stab(z) amplifies z's rounding by 1/|z|; the
    # forward is checked on its own); float64: with the oracle's, so the whole chain is checked
    expected = oracle.avgpool2d_lfp_epsilon(
        x, reward, 1e-6, **geometry(layer), z=z if dtype == np.float32 else None
    )
    assert_close(reward_in, expected, dtype)


@pytest.mark.parametrize("eps", [0.0, 0.5], ids=lambda e: f"eps{e:g}")
def test_avgpool_lfp_other_eps(rng, eps):
    layer, x = make_case(rng, CONFIGS[1], AvgPool2d)
    reward = rng.standard_normal(layer.forward(x).shape)
    reward_in, _ = Epsilon(eps).propagate(layer, reward)
    assert_close(reward_in, oracle.avgpool2d_lfp_epsilon(x, reward, eps, **geometry(layer)))


def test_avgpool_conservation(rng, cfg):
    # eps = 0: sum_i R_i = sum_j z_j r_j / z_j = sum_j r_j, per sample (padding <= kernel/2 means
    # every window sees an input, and random inputs give z != 0)
    layer, x = make_case(rng, cfg, AvgPool2d)
    reward = rng.standard_normal(layer.forward(x).shape)
    reward_in, _ = Epsilon(0.0).propagate(layer, reward)
    for b in range(x.shape[0]):
        scale = np.abs(reward_in[b]).sum() + np.abs(reward[b]).sum()
        assert abs(reward_in[b].sum() - reward[b].sum()) <= RTOL64 * scale


def test_avgpool_is_linear_layer_without_parameters():
    layer = AvgPool2d(2)
    assert isinstance(layer, LinearLayer)
    assert layer.stride == (2, 2) and layer.padding == (0, 0)
    assert layer.own_parameters() == {} and layer.state_dict() == {}


def test_avgpool_counts_padding_in_the_divisor():
    # torch's count_include_pad=True: a corner window of a 3x3 pool with padding 1 sees 4 ones
    z = AvgPool2d(3, stride=1, padding=1).forward(np.ones((1, 1, 4, 4)))
    assert z[0, 0, 0, 0] == 4 / 9 and z[0, 0, 1, 1] == 1.0


# -- MaxPool2d ---------------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", DTYPES)
def test_maxpool_forward_matches_oracle(rng, cfg, dtype):
    layer, x = make_case(rng, cfg, MaxPool2d, dtype)
    z = layer.forward(x)
    ex_z, ex_argmax = oracle.maxpool2d_forward(x, **geometry(layer))
    assert z.dtype == dtype
    np.testing.assert_array_equal(z, ex_z.astype(dtype))  # a max is exact
    np.testing.assert_array_equal(layer.argmax, ex_argmax)


@pytest.mark.parametrize("dtype", DTYPES)
def test_maxpool_ties_pick_the_first_argmax(rng, cfg, dtype):
    # inputs from {-1, 0, 1}: most windows have ties; the first in row-major order must win
    layer, _ = make_case(rng, cfg, MaxPool2d, dtype)
    c, h, w = cfg[:3]
    x = rng.integers(-1, 2, size=(3, c, h, w)).astype(dtype)
    layer.forward(x)
    np.testing.assert_array_equal(layer.argmax, oracle.maxpool2d_forward(x, **geometry(layer))[1])


def test_maxpool_padding_is_minus_infinity():
    # all inputs negative: zero padding would win the corner windows, -inf padding never does
    x = -1.0 - np.arange(16.0).reshape(1, 1, 4, 4)
    layer = MaxPool2d(3, stride=1, padding=1)
    z = layer.forward(x)
    assert z[0, 0, 0, 0] == -1.0 and layer.argmax[0, 0, 0, 0] == 0
    assert z[0, 0, 3, 3] == -11.0 and layer.argmax[0, 0, 3, 3] == 10


@pytest.mark.parametrize("dtype", DTYPES)
def test_maxpool_feedback_and_backward_route_to_argmax(rng, cfg, dtype):
    layer, x = make_case(rng, cfg, MaxPool2d, dtype)
    reward = rng.standard_normal(layer.forward(x).shape).astype(dtype)
    expected = oracle.maxpool2d_route(x, reward, **geometry(layer))
    reward_in, params = layer.feedback(reward, lambda _: Epsilon())
    assert params == {} and reward_in.dtype == dtype
    assert_close(reward_in, expected, dtype)
    grad_in, params = layer.backward(reward)
    assert params == {}
    assert_close(grad_in, expected, dtype)


def test_maxpool_routes_exactly_the_total(rng, cfg):
    layer, x = make_case(rng, cfg, MaxPool2d)
    reward = rng.standard_normal(layer.forward(x).shape)
    reward_in, _ = layer.feedback(reward, lambda _: Epsilon())
    for b in range(x.shape[0]):
        scale = np.abs(reward[b]).sum()
        assert abs(reward_in[b].sum() - reward[b].sum()) <= RTOL64 * scale
    if layer.stride[0] >= layer.kernel_size[0] and layer.stride[1] >= layer.kernel_size[1]:
        # disjoint windows: the reward arrives untouched, one output per input at most
        np.testing.assert_array_equal(np.sort(reward_in[reward_in != 0]), np.sort(reward.ravel()))


@pytest.mark.parametrize("dtype", DTYPES)
def test_maxpool_2x2_fast_path_matches_the_general_kernel_with_nans_and_ties(rng, dtype):
    # the 2x2/stride 2 kernel must keep the general scan's rules: first maximum on ties, NaN
    # wins (the last NaN of the window, as torch's CPU kernel)
    x = rng.integers(-1, 2, size=(3, 2, 8, 7)).astype(dtype)
    x[rng.random(x.shape) < 0.1] = np.nan
    fast = (np.empty((3, 2, 4, 3), dtype), np.empty((3, 2, 4, 3), np.int64))
    general = (np.empty_like(fast[0]), np.empty_like(fast[1]))
    K._maxpool2d_forward_2x2.serial(x, *fast)
    K._maxpool2d_forward.serial(x, 2, 2, 2, 2, 0, 0, *general)
    assert np.isnan(general[0]).any() and (general[0] == 1).any()
    np.testing.assert_array_equal(fast[0], general[0])
    np.testing.assert_array_equal(fast[1], general[1])


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("stride", [1, 3])
def test_global_avgpool_fast_path_matches_the_general_kernel(rng, dtype, stride):
    # a window over the whole plane takes the one-run kernels, with the general kernel's
    # operations in its order: identical results, through the public wrappers too
    x = rng.standard_normal((3, 4, 5, 6)).astype(dtype)
    v = rng.standard_normal((3, 4, 1, 1)).astype(dtype)
    assert K._is_global(x.shape, (5, 6), (0, 0))
    assert not K._is_global(x.shape, (5, 5), (0, 0)) and not K._is_global(x.shape, (5, 6), (1, 0))
    general = np.empty_like(v), np.empty_like(x)
    K._avgpool2d_forward.serial(x, 5, 6, stride, stride, 0, 0, general[0])
    K._avgpool2d_vjp.serial(v, 5, 6, stride, stride, 0, 0, general[1])
    fast = K.avgpool2d_forward(x, (5, 6), (stride, stride), (0, 0), np.empty_like(v))
    np.testing.assert_array_equal(fast, general[0])
    rtol = 1e-5 if dtype == np.float32 else 1e-14
    np.testing.assert_allclose(fast[:, :, 0, 0], x.astype(np.float64).mean(axis=(2, 3)), rtol)
    fast_vjp = K.avgpool2d_vjp(v, (5, 6), (stride, stride), (0, 0), np.empty_like(x))
    np.testing.assert_array_equal(fast_vjp, general[1])


def test_maxpool_is_not_a_linear_layer():
    layer = MaxPool2d((2, 3), stride=(1, 2))
    assert not isinstance(layer, LinearLayer)
    assert not hasattr(layer, "vjp")
    assert repr(layer) == "MaxPool2d(kernel_size=(2, 3), stride=(1, 2))"


# -- both --------------------------------------------------------------------------------------


@pytest.mark.parametrize("pool_type", POOLS)
@pytest.mark.parametrize("cfg", [CONFIGS[1], CONFIGS[2], CONFIGS[3]], ids=config_id)
def test_backward_matches_finite_differences(rng, cfg, pool_type):
    layer, _ = make_case(rng, cfg, pool_type)
    c, h, w = cfg[:3]
    # tie-free: a permutation of well separated values, so a step of FD_STEP never moves the
    # arg-max of a window
    x = rng.permutation(np.arange(2 * c * h * w, dtype=np.float64)).reshape(2, c, h, w) * 0.1
    g = rng.standard_normal(layer.forward(x).shape)

    def loss():
        return float(np.sum(g * layer.forward(x)))

    expected = finite_difference(loss, x, h=FD_STEP)
    layer.forward(x)
    grad_x, params = layer.backward(g)
    assert params == {}
    assert_close(grad_x, expected, rtol=RTOL_FD)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("pool_type", POOLS)
@pytest.mark.parametrize("cfg", [CONFIGS[1], CONFIGS[4]], ids=config_id)
def test_parallel_build_matches_serial(rng, cfg, pool_type, dtype, monkeypatch):
    # the layer's dispatch through ``pick``: every kernel writes each output element with the same
    # operations in either build, so the results are identical. (Which code ``.parallel`` runs
    # depends on numba's disk cache; test_true_parallel_kernels_match_serial checks real builds.)
    layer, x = make_case(rng, cfg, pool_type, dtype, batch=5)
    v = rng.standard_normal(layer.forward(x).shape).astype(dtype)
    results = {}
    for build, threshold in (("serial", np.inf), ("parallel", 0)):
        monkeypatch.setattr(_jit, "PARALLEL_MIN_SIZE", threshold)
        results[build] = (layer.forward(x), layer.backward(v)[0])
    for serial, parallel in zip(results["serial"], results["parallel"], strict=True):
        np.testing.assert_array_equal(serial, parallel)


@pytest.fixture(scope="module")
def true_parallel_builds():
    # as in test_conv: compile real parallel builds, uncached, since _jit's ``.parallel`` may be
    # served the serial build's numba disk-cache entry
    names = ("_avgpool2d_forward", "_avgpool2d_vjp", "_maxpool2d_forward", "_route_to_argmax")
    fast_paths = ("_avgpool2d_forward_2x2", "_avgpool2d_vjp_2x2", "_maxpool2d_forward_2x2")
    fast_paths += ("_avgpool2d_forward_global", "_avgpool2d_vjp_global")
    builds = names + fast_paths
    return {name: numba.njit(parallel=True)(getattr(K, name).py_func) for name in builds}


def _run(kernel_fn, *args, out):
    kernel_fn(*args, *out)
    return out


@pytest.mark.slow
@pytest.mark.parametrize("dtype", DTYPES)
def test_true_parallel_kernels_match_serial(rng, dtype, true_parallel_builds):
    layer, x = make_case(rng, CONFIGS[1], MaxPool2d, dtype, batch=7)
    z = layer.forward(x)
    geo = (*layer.kernel_size, *layer.stride, *layer.padding)
    v = rng.standard_normal(z.shape).astype(dtype)

    def new(shape, dt=dtype):
        return np.full(shape, np.nan, dt) if np.dtype(dt).kind == "f" else np.full(shape, -1, dt)

    calls = {
        "_avgpool2d_forward": lambda f: _run(f, x, *geo, out=(new(z.shape),)),
        "_avgpool2d_vjp": lambda f: _run(f, v, *geo, out=(new(x.shape),)),
        "_maxpool2d_forward": lambda f: _run(
            f, x, *geo, out=(new(z.shape), new(z.shape, np.int64))
        ),
        "_route_to_argmax": lambda f: _run(f, v, layer.argmax, out=(new(x.shape),)),
    }
    x2 = rng.standard_normal((7, 3, 9, 8)).astype(dtype)
    v2 = rng.standard_normal((7, 3, 4, 4)).astype(dtype)
    calls["_avgpool2d_forward_2x2"] = lambda f: _run(f, x2, out=(new(v2.shape),))
    calls["_avgpool2d_vjp_2x2"] = lambda f: _run(f, v2, out=(new(x2.shape),))
    calls["_maxpool2d_forward_2x2"] = lambda f: _run(
        f, x2, out=(new(v2.shape), new(v2.shape, np.int64))
    )
    calls["_avgpool2d_forward_global"] = lambda f: _run(f, x2, out=(new((7, 3, 1, 1)),))
    v1 = x2[:, :, :1, :1].copy()
    calls["_avgpool2d_vjp_global"] = lambda f: _run(f, v1, out=(new(x2.shape),))
    for name, call in calls.items():
        expected = call(getattr(K, name).serial)
        actual = call(true_parallel_builds[name])
        for e, a in zip(expected, actual, strict=True):
            assert (e >= 0).all() if e.dtype.kind == "i" else np.isfinite(e).all(), name
            np.testing.assert_array_equal(a, e, err_msg=name)


@pytest.mark.parametrize("pool_type", POOLS)
def test_error_wrong_ndim(pool_type):
    with pytest.raises(ValueError, match=r"expects input of shape \(B, C, H, W\), got \(4, 16\)"):
        pool_type(2).forward(np.zeros((4, 16)))


@pytest.mark.parametrize("pool_type", POOLS)
def test_error_input_smaller_than_kernel(pool_type):
    with pytest.raises(ValueError, match=r"spatial size 2x6 \(with padding 4x8\) is smaller"):
        pool_type(5, padding=1).forward(np.zeros((1, 1, 2, 6)))


@pytest.mark.parametrize("pool_type", POOLS)
def test_error_padding_more_than_half_the_kernel(pool_type):
    name = pool_type.__name__
    with pytest.raises(ValueError, match=rf"{name}: padding 2 must be at most half the kernel"):
        pool_type(3, padding=2)
    pool_type(4, padding=2)  # exactly half is allowed, as in torch


@pytest.mark.parametrize("pool_type", POOLS)
def test_error_bad_arguments(pool_type):
    with pytest.raises(ValueError, match="kernel_size must be >= 1"):
        pool_type(0)
    with pytest.raises(ValueError, match="stride must be >= 1"):
        pool_type(2, stride=0)
    with pytest.raises(TypeError, match="float32 or float64"):
        pool_type(2).forward(np.zeros((1, 1, 4, 4), np.int64))


@pytest.mark.parametrize("pool_type", POOLS)
def test_error_before_forward_and_wrong_shape(pool_type):
    layer = pool_type(2)
    with pytest.raises(RuntimeError, match="needs the forward pass first"):
        layer.backward(np.zeros((1, 1, 2, 2)))
    layer.forward(np.zeros((1, 1, 4, 4)))
    with pytest.raises(ValueError, match=r"output's shape \(1, 1, 2, 2\), got \(1, 1, 3, 3\)"):
        layer.backward(np.zeros((1, 1, 3, 3)))
