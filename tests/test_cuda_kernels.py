"""The cuda kernels (lfp_ref/kernels/cuda) under the Numba CUDA simulator: every kernel against
the same float64 oracles (tests/oracle/) as its CPU twin, and against the CPU twin itself (bit for
bit where both do the same operations in the same order), for float64 and float32, with sizes that
are not multiples of the block and larger than the whole grid (so partial blocks and the
grid-stride loops' wrap-around run), the launch counter showing that the cuda kernels ran.

The simulator must be on before numba is imported, so these tests run in their own process:
``make test-cudasim`` (``NUMBA_ENABLE_CUDASIM=1 python -m pytest -m cudasim ...``). Without it the
module is skipped.
"""

import math
import os

import numpy as np
import pytest

pytestmark = pytest.mark.cudasim

if os.environ.get("NUMBA_ENABLE_CUDASIM", "0") in ("", "0"):
    pytest.skip(
        "needs the Numba CUDA simulator: run `make test-cudasim` (NUMBA_ENABLE_CUDASIM=1 set "
        "before numba is imported)",
        allow_module_level=True,
    )
pytest.importorskip("numba.cuda", reason="needs numba-cuda (pip install 'lfp_ref[cudasim]')")

import lfp_ref as lfp  # noqa: E402
from lfp_ref.kernels import CPU, backend_of, get_backend  # noqa: E402
from lfp_ref.kernels.cpu import conv as cpu_conv  # noqa: E402
from lfp_ref.kernels.cpu import elementwise as cpu_elementwise  # noqa: E402
from lfp_ref.kernels.cpu import lif as cpu_lif  # noqa: E402
from lfp_ref.kernels.cpu import pool as cpu_pool  # noqa: E402
from lfp_ref.kernels.cpu import rules as cpu_rules  # noqa: E402
from lfp_ref.kernels.cuda import (  # noqa: E402
    LAUNCHES,
    SimulatedDeviceArray,
    _launch,
    simulator_enabled,
)
from lfp_ref.kernels.cuda import conv as K_conv  # noqa: E402
from lfp_ref.kernels.cuda import elementwise as K_elementwise  # noqa: E402
from lfp_ref.kernels.cuda import lif as K_lif  # noqa: E402
from lfp_ref.kernels.cuda import norm as K_norm  # noqa: E402
from lfp_ref.kernels.cuda import pool as K_pool  # noqa: E402
from lfp_ref.kernels.cuda import rules as K_rules  # noqa: E402
from lfp_ref.layers.pool import AvgPool2d, MaxPool2d  # noqa: E402
from lfp_ref.rules import Epsilon  # noqa: E402
from tests.oracle import conv as conv_oracle  # noqa: E402
from tests.oracle import dense as dense_oracle  # noqa: E402
from tests.oracle import norm as norm_oracle  # noqa: E402
from tests.oracle import rules as rules_oracle  # noqa: E402
from tests.oracle import snn as snn_oracle  # noqa: E402
from tests.tolerances import RTOL64, assert_close  # noqa: E402

if not simulator_enabled():
    pytest.skip(
        "NUMBA_ENABLE_CUDASIM is set but numba was imported before it was",
        allow_module_level=True,
    )

BK = get_backend("cuda")

DTYPES = [pytest.param(np.float64, id="f64"), pytest.param(np.float32, id="f32")]
# the whole grid under the simulator: THREADS_PER_BLOCK * MAX_BLOCKS threads (8 * 4 by default)
GRID = _launch.THREADS_PER_BLOCK * _launch.MAX_BLOCKS
# one entry, a partial first block, several blocks with a partial last one, and two wraps of the
# grid-stride loop with a tail
SIZES = [1, _launch.THREADS_PER_BLOCK - 1, GRID - 3, 2 * GRID + 5]


def dev(a, dtype=None):
    """A host array on the simulated device."""
    return BK.contiguous(np.asarray(a), dtype=dtype)


def host(a):
    return BK.to_numpy(a)


@pytest.fixture
def launches():
    """The launch counter, cleared: a test asserts which cuda kernels ran."""
    LAUNCHES.clear()
    return LAUNCHES


def test_the_simulator_runs_small_blocks_and_the_sizes_exercise_tails():
    # several blocks per launch and a grid smaller than the larger test sizes, so partial blocks
    # and the grid-stride wrap-around run (LFP_REF_CUDA_THREADS / _MAX_BLOCKS override these)
    assert _launch.SIMULATED
    assert _launch.THREADS_PER_BLOCK <= 32 and _launch.MAX_BLOCKS >= 2
    assert max(SIZES) > GRID and all(n % _launch.THREADS_PER_BLOCK for n in SIZES[1:])
    assert _launch.grid(2 * GRID + 5) == (_launch.MAX_BLOCKS, _launch.THREADS_PER_BLOCK)
    assert _launch.grid(5) == (1, _launch.THREADS_PER_BLOCK)


def test_backend_and_simulated_device_arrays():
    assert BK.name == "cuda" and BK.xp is np and BK.array_type is SimulatedDeviceArray
    a = BK.zeros((2, 3), np.float32)
    assert type(a) is SimulatedDeviceArray and backend_of(a) is BK
    assert backend_of(np.zeros(3)) is CPU
    # numpy's functions, methods and ufuncs keep the arrays on the device, as CuPy's do
    for result in (a + 1, np.where(a > 0, a, 0), np.zeros_like(a), a.sum(axis=0), a.T.copy()):
        assert type(result) is SimulatedDeviceArray
    # host arrays reach the device through the backend, as a copy
    h = np.arange(4.0)
    d = BK.contiguous(h)
    assert type(d) is SimulatedDeviceArray and not np.shares_memory(d, h)
    assert BK.contiguous(d) is d
    back = BK.to_numpy(d)
    assert type(back) is np.ndarray and not np.shares_memory(back, d)
    assert BK.asarray(np.array(3, np.int64)).shape == ()


def test_a_host_array_never_reaches_a_cuda_kernel(launches):
    z = np.ones(5)
    with pytest.raises(TypeError, match="host numpy.ndarray"):
        K_elementwise.stabilized_ratio(z, z, 1e-6, np.empty_like(z))
    assert not launches


def test_wrappers_check_their_arguments_as_the_cpu_twins_do():
    z = dev(np.ones((4, 3)))
    with pytest.raises(ValueError, match="stabilized_ratio: reward must have the shape of z"):
        K_elementwise.stabilized_ratio(dev(np.ones((4, 2))), z, 1e-6, BK.empty_like(z))
    with pytest.raises(TypeError, match="multiply: b has dtype float32"):
        K_elementwise.multiply(z, dev(np.ones((4, 3)), np.float32), BK.empty_like(z))
    x = dev(np.ones((2, 1, 5, 5)))
    with pytest.raises(ValueError, match="im2col: out must have shape"):
        K_conv.im2col(x, (3, 3), (1, 1), (0, 0), (1, 1), BK.empty((17, 9), np.float64))


# -- elementwise ----------------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("size", SIZES, ids=lambda n: f"n{n}")
def test_elementwise_kernels_match_the_oracle_and_the_cpu_twin(rng, size, dtype, launches):
    reward, z, w = (rng.normal(size=size).astype(dtype) for _ in range(3))
    z[::5] = 0.0  # sgn0(0) = +1
    eps = 1e-3
    cases = {
        "stabilized_ratio": (
            lambda m, out: m.stabilized_ratio(reward_d, z_d, eps, out),
            lambda out: cpu_elementwise.stabilized_ratio(reward, z, eps, out),
            reward.astype(np.float64) / rules_oracle.stab(z.astype(np.float64), eps),
        ),
        "stabilize": (
            lambda m, out: m.stabilize(z_d, eps, out),
            lambda out: cpu_elementwise.stabilize(z, eps, out),
            rules_oracle.stab(z.astype(np.float64), eps),
        ),
        "multiply_abs": (
            lambda m, out: m.multiply_abs(reward_d, w_d, out),
            lambda out: cpu_elementwise.multiply_abs(reward, w, out),
            np.abs(w.astype(np.float64)) * reward,
        ),
        "multiply": (
            lambda m, out: m.multiply(reward_d, w_d, out),
            lambda out: cpu_elementwise.multiply(reward, w, out),
            w.astype(np.float64) * reward,
        ),
    }
    reward_d, z_d, w_d = dev(reward), dev(z), dev(w)
    for name, (cuda_call, cpu_call, expected) in cases.items():
        out = cuda_call(K_elementwise, BK.empty(size, dtype))
        assert type(out) is SimulatedDeviceArray and out.dtype == dtype
        assert_close(out, expected, dtype)
        np.testing.assert_array_equal(host(out), cpu_call(np.empty(size, dtype)), err_msg=name)
        assert launches[name] == 1, name


# the simulator runs the kernel on NumPy scalars, which warn where inf meets the zero on purpose
@pytest.mark.filterwarnings("ignore:invalid value encountered in scalar multiply:RuntimeWarning")
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("size", SIZES, ids=lambda n: f"n{n}")
def test_relu_kernels_equal_the_cpu_twins_bit_for_bit(rng, size, dtype, launches):
    x, grad = (rng.normal(size=size).astype(dtype) for _ in range(2))
    specials = np.array([0.0, -0.0, np.nan, np.inf, -np.inf], dtype=dtype)
    x[: len(specials)] = specials[: len(x)]
    grad[-len(specials) :] = specials[-len(grad) :]  # inf and NaN times x's zeros and signs
    bits = f"u{x.itemsize}"
    out = K_elementwise.relu(dev(x), BK.empty(size, dtype))
    assert type(out) is SimulatedDeviceArray
    expected = cpu_elementwise.relu(x, np.empty_like(x))
    np.testing.assert_array_equal(host(out).view(bits), expected.view(bits))
    np.testing.assert_array_equal(expected, np.maximum(x, 0))
    vjp = K_elementwise.relu_vjp(dev(grad), dev(x), BK.empty(size, dtype))
    expected = cpu_elementwise.relu_vjp(grad, x, np.empty_like(x))
    np.testing.assert_array_equal(host(vjp).view(bits), expected.view(bits))
    assert launches["relu"] == 1 and launches["relu_vjp"] == 1


def test_stabiliser_signs_including_zero_and_negative_zero():
    z = dev([2.0, -2.0, 0.0, -0.0, 1e-9, -1e-9])
    out = K_elementwise.stabilize(z, 0.5, BK.empty_like(z))
    np.testing.assert_array_equal(out, [2.5, -2.5, 0.5, 0.5, 0.5 + 1e-9, -0.5 - 1e-9])
    ratio = K_elementwise.stabilized_ratio(BK.ones_like(z), z, 0.5, BK.empty_like(z))
    np.testing.assert_array_equal(ratio, 1 / out)


def test_elementwise_output_may_alias_an_input(rng):
    values = rng.normal(size=45)
    param = rng.normal(size=45)
    v = dev(values)
    K_elementwise.multiply_abs(v, dev(param), out=v)
    np.testing.assert_array_equal(host(v), np.abs(param) * values)


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["f32", "f64"])
@pytest.mark.parametrize("size", [0, *SIZES, 1001], ids=lambda n: f"n{n}")
def test_sum_of_squares_accumulates_in_float64(rng, size, dtype, launches):
    values = (rng.normal(size=size) * 1e3).astype(dtype)
    exact = math.fsum(float(v) ** 2 for v in values)
    result = K_elementwise.sum_of_squares(dev(values))
    assert isinstance(result, float)
    assert result == pytest.approx(exact, rel=RTOL64, abs=0)
    assert launches["sum_of_squares_partials"] == (1 if size else 0)


def test_sum_of_squares_of_a_non_contiguous_array(rng):
    values = rng.normal(size=(9, 7))
    expected = float(np.sum(values[:, ::2] ** 2))
    assert K_elementwise.sum_of_squares(dev(values)[:, ::2]) == pytest.approx(expected, rel=RTOL64)


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["f32", "f64"])
def test_all_finite_finds_every_kind_of_non_finite_entry(rng, dtype, launches):
    size = 2 * GRID + 5
    values = rng.normal(size=size).astype(dtype)
    values[::7] = np.finfo(dtype).max  # huge but finite
    values[1::7] = np.finfo(dtype).smallest_subnormal
    assert K_elementwise.all_finite(dev(values))
    for bad in (np.nan, np.inf, -np.inf):
        for where in (0, GRID - 1, size - 1):  # the first entry, a block's last, the tail's last
            broken = values.copy()
            broken[where] = bad
            assert not K_elementwise.all_finite(dev(broken)), (bad, where)
    assert launches["any_non_finite"] == 10


SGD_SETTINGS = [
    dict(momentum=0.0, dampening=0.0, weight_decay=0.0, nesterov=False),
    dict(momentum=0.9, dampening=0.0, weight_decay=0.0, nesterov=False),
    dict(momentum=0.9, dampening=0.1, weight_decay=0.01, nesterov=False),
    dict(momentum=0.9, dampening=0.0, weight_decay=0.01, nesterov=True),
]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize(
    "settings", SGD_SETTINGS, ids=["plain", "momentum", "dampening-decay", "nesterov"]
)
def test_sgd_update_equals_the_cpu_twin_bit_for_bit(rng, settings, dtype, launches):
    size = 2 * GRID + 5
    param = rng.normal(size=size).astype(dtype)
    param_d = dev(param)
    cpu_buf = np.empty_like(param) if settings["momentum"] else None
    cuda_buf = BK.empty_like(param_d) if settings["momentum"] else None
    for step, scale in enumerate((1.0, -0.37, 2.5)):
        grad = rng.normal(size=size).astype(dtype)
        common = dict(lr=0.05, **settings, first_step=step == 0, scale=scale)
        cpu_elementwise.sgd_update(param, grad, cpu_buf, **common)
        K_elementwise.sgd_update(param_d, dev(grad), cuda_buf, **common)
        np.testing.assert_array_equal(host(param_d), param)
        if cpu_buf is not None:
            np.testing.assert_array_equal(host(cuda_buf), cpu_buf)
    assert launches["sgd_update"] == 3


# -- Dense -----------------------------------------------------------------------------------------

DENSE_SHAPES = [(1, 1, 1), (3, 4, 5), (5, 17, 6)]  # (B, I, O)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("bias", [True, False], ids=["bias", "nobias"])
@pytest.mark.parametrize("shape", DENSE_SHAPES, ids=lambda s: "B{}xI{}xO{}".format(*s))
def test_dense_forward_and_feedback_match_the_oracle(rng, shape, bias, dtype, launches):
    batch, n_in, n_out = shape
    layer = lfp.Dense(n_in, n_out, bias=bias, dtype=dtype, rng=rng)
    x = rng.normal(size=(batch, n_in)).astype(dtype)
    reward = rng.normal(size=(batch, n_out)).astype(dtype)
    weight, b = layer.weight.copy(), None if layer.bias is None else layer.bias.copy()
    layer.to("cuda")
    z = layer(dev(x))
    assert type(z) is SimulatedDeviceArray and z.dtype == dtype
    assert_close(z, dense_oracle.dense_forward(x, weight, b), dtype)
    eps = 1e-3
    reward_in, params = Epsilon(eps).propagate(layer, dev(reward))
    want_in, want_w, want_b = dense_oracle.dense_lfp_epsilon(x, weight, b, reward, eps)
    assert_close(reward_in, want_in, dtype)
    assert_close(params["weight"], want_w, dtype)
    if bias:
        assert_close(params["bias"], want_b, dtype)
        assert launches["add_bias_rows"] == 1
    for name in ("stabilized_ratio", "multiply", "multiply_abs"):
        assert launches[name] >= 1, name


# -- Conv2d ----------------------------------------------------------------------------------------

# (C, O, H, W, kernel_size, stride, padding, dilation): strides, paddings, dilations, rectangles
CONV_CONFIGS = [
    (1, 2, 6, 6, 3, 1, 0, 1),
    (2, 3, 7, 6, (3, 2), 1, 1, 1),
    (3, 2, 8, 8, 3, 2, 1, 1),
    (2, 3, 9, 9, 3, 1, 2, 2),
    (1, 4, 10, 8, (3, 2), (2, 1), (1, 0), (2, 1)),
    (2, 2, 4, 4, 2, 1, 2, 1),  # windows entirely in the padding: z = b there
]


def _fmt(v):
    return f"{v[0]}x{v[1]}" if isinstance(v, tuple) else str(v)


def conv_id(cfg):
    c, o, h, w, k, s, p, d = cfg
    return f"C{c}O{o}_{h}x{w}_k{_fmt(k)}_s{_fmt(s)}_p{_fmt(p)}_d{_fmt(d)}"


def conv_case(rng, cfg, bias=True, dtype=np.float64, batch=2):
    c, o, h, w, k, s, p, d = cfg
    layer = lfp.Conv2d(c, o, k, stride=s, padding=p, dilation=d, bias=bias, dtype=dtype, rng=rng)
    x = rng.standard_normal((batch, c, h, w)).astype(dtype)
    return layer, x


def conv_geometry(layer):
    return {"stride": layer.stride, "padding": layer.padding, "dilation": layer.dilation}


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("cfg", CONV_CONFIGS, ids=conv_id)
def test_conv_forward_vjp_and_feedback_match_the_oracle(rng, cfg, dtype, launches):
    layer, x = conv_case(rng, cfg, dtype=dtype)
    weight, bias = layer.weight.copy(), layer.bias.copy()
    layer.to("cuda")
    z = layer.forward(dev(x))
    assert type(z) is SimulatedDeviceArray and z.dtype == dtype
    assert_close(z, conv_oracle.conv2d_forward(x, weight, bias, **conv_geometry(layer)), dtype)
    v = rng.standard_normal(z.shape).astype(dtype)
    dx, grads = layer.vjp(dev(v))
    ex_dx, ex_dw, ex_db = conv_oracle.conv2d_vjp(x, weight, v, **conv_geometry(layer))
    assert_close(dx, ex_dx, dtype)
    assert_close(grads["weight"], ex_dw, dtype)
    assert_close(grads["bias"], ex_db, dtype)
    reward = rng.standard_normal(z.shape).astype(dtype)
    reward_in, feedback = Epsilon(1e-6).propagate(layer, dev(reward))
    ex_in, ex_fb = conv_oracle.conv2d_lfp_epsilon(
        x, weight, bias, reward, 1e-6, **conv_geometry(layer),
        z=host(z) if dtype == np.float32 else None,
    )  # fmt: skip
    assert_close(reward_in, ex_in, dtype)
    for name in ex_fb:
        assert_close(feedback[name], ex_fb[name], dtype)
    for name in ("im2col_samples", "col2im_samples", "add_channel_bias", "stabilized_ratio"):
        assert launches[name] >= 1, name


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("cfg", CONV_CONFIGS, ids=conv_id)
def test_both_column_layouts_and_their_adjoints(rng, cfg, dtype, launches):
    from tests.test_conv import im2col_samples_oracle

    layer, x = conv_case(rng, cfg, dtype=dtype, batch=3)
    ho, wo = layer.output_size(*x.shape[2:])
    geo = (layer.kernel_size, layer.stride, layer.padding, layer.dilation)
    x_d = dev(x)
    # sample-major: a copy, so exact; col2im_samples is its adjoint, and equals the CPU twin's
    # scatter bit for bit (the gather adds in the scatter's order)
    cols = K_conv.im2col_samples(x_d, *geo, BK.empty((3, layer.fan_in, ho * wo), dtype))
    np.testing.assert_array_equal(cols, im2col_samples_oracle(x, *geo, ho, wo))
    d = rng.standard_normal(cols.shape).astype(dtype)
    back = K_conv.col2im_samples(dev(d), *geo, BK.empty_like(x_d))
    assert_close(np.vdot(host(back), x), np.vdot(d, host(cols)), dtype)
    cpu_back = cpu_conv.col2im_samples(d, *geo, np.full_like(x, np.nan))
    np.testing.assert_array_equal(host(back), cpu_back)
    # the row layout the rules read: the same, against the CPU twin
    rows = K_conv.im2col(x_d, *geo, BK.empty((3 * ho * wo, layer.fan_in), dtype))
    np.testing.assert_array_equal(rows, cpu_conv.im2col(x, *geo, np.empty(rows.shape, dtype)))
    d_rows = rng.standard_normal(rows.shape).astype(dtype)
    back_rows = K_conv.col2im(dev(d_rows), *geo, BK.empty_like(x_d))
    assert_close(np.vdot(host(back_rows), x), np.vdot(d_rows, host(rows)), dtype)
    cpu_rows_back = cpu_conv.col2im(d_rows, *geo, np.full_like(x, np.nan))
    np.testing.assert_array_equal(host(back_rows), cpu_rows_back)
    v = rng.standard_normal((3, 2, ho, wo)).astype(dtype)
    v_rows = K_conv.nchw_to_rows(dev(v), BK.empty((3 * ho * wo, 2), dtype))
    np.testing.assert_array_equal(v_rows, v.transpose(0, 2, 3, 1).reshape(-1, 2))
    for name in ("im2col_samples", "col2im_samples", "im2col", "col2im", "nchw_to_rows"):
        assert launches[name] == 1, name


# -- pooling ---------------------------------------------------------------------------------------

# (C, H, W, kernel_size, stride, padding): overlapping windows, padding, rectangles, 2x2 with an
# odd last row and column
POOL_CONFIGS = [
    (2, 6, 6, 2, None, 0),
    (2, 7, 6, 3, 2, 1),
    (3, 8, 9, (3, 2), 1, (1, 0)),
    (1, 9, 9, (2, 4), (3, 1), (1, 2)),
    (2, 10, 7, 5, 3, 2),
    (2, 7, 5, 2, 2, 0),
]


def pool_id(cfg):
    c, h, w, k, s, p = cfg
    return f"C{c}_{h}x{w}_k{_fmt(k)}_s{_fmt(s)}_p{_fmt(p)}"


def pool_geometry(layer):
    return {"kernel_size": layer.kernel_size, "stride": layer.stride, "padding": layer.padding}


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("cfg", POOL_CONFIGS, ids=pool_id)
def test_avgpool_matches_the_oracle_and_the_cpu_twin(rng, cfg, dtype, launches):
    c, h, w, k, s, p = cfg
    layer = AvgPool2d(k, stride=s, padding=p)
    x = rng.standard_normal((2, c, h, w)).astype(dtype)
    z = layer.forward(dev(x))
    assert_close(z, conv_oracle.avgpool2d_forward(x, **pool_geometry(layer)), dtype)
    geo = (layer.kernel_size, layer.stride, layer.padding)
    np.testing.assert_array_equal(host(z), cpu_pool.avgpool2d_forward(x, *geo, np.empty_like(z)))
    v = rng.standard_normal(z.shape).astype(dtype)
    dx, params = layer.vjp(dev(v))
    assert params == {}
    assert_close(dx, conv_oracle.avgpool2d_vjp(x.shape, v, **pool_geometry(layer)), dtype)
    cpu_dx = cpu_pool.avgpool2d_vjp(v, *geo, np.empty_like(x))
    if dtype == np.float64:
        np.testing.assert_array_equal(host(dx), cpu_dx)
    else:  # the CPU twin adds float64 quotients (numba's int division): a rounding or two
        scale = np.abs(cpu_dx).max()
        np.testing.assert_allclose(host(dx), cpu_dx, rtol=0, atol=4 * np.finfo(dtype).eps * scale)
    reward = rng.standard_normal(z.shape).astype(dtype)
    reward_in, _ = Epsilon(1e-6).propagate(layer, dev(reward))
    expected = conv_oracle.avgpool2d_lfp_epsilon(
        x, reward, 1e-6, **pool_geometry(layer), z=host(z) if dtype == np.float32 else None
    )
    assert_close(reward_in, expected, dtype)
    assert launches["avgpool2d_forward"] == 1 and launches["avgpool2d_vjp"] == 2


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("cfg", POOL_CONFIGS, ids=pool_id)
def test_maxpool_matches_the_oracle_with_ties_and_routes_to_the_argmax(rng, cfg, dtype, launches):
    c, h, w, k, s, p = cfg
    layer = MaxPool2d(k, stride=s, padding=p)
    for x in (
        rng.standard_normal((2, c, h, w)).astype(dtype),
        rng.integers(-1, 2, size=(2, c, h, w)).astype(dtype),  # ties: the first maximum wins
    ):
        z = layer.forward(dev(x))
        ex_z, ex_argmax = conv_oracle.maxpool2d_forward(x, **pool_geometry(layer))
        np.testing.assert_array_equal(z, ex_z.astype(dtype))
        np.testing.assert_array_equal(layer.argmax, ex_argmax)
        reward = rng.standard_normal(z.shape).astype(dtype)
        reward_in, params = layer.feedback(dev(reward), lambda _: Epsilon())
        assert params == {} and type(reward_in) is SimulatedDeviceArray
        expected = conv_oracle.maxpool2d_route(x, reward, **pool_geometry(layer))
        assert_close(reward_in, expected, dtype)
        cpu_in = cpu_pool.route_to_argmax(reward, host(layer.argmax), np.empty_like(x))
        np.testing.assert_array_equal(host(reward_in), cpu_in)
    assert launches["maxpool2d_forward"] == 2 and launches["route_to_argmax"] == 2


def test_maxpool_nan_wins_as_in_the_cpu_twin(rng):
    x = rng.integers(-1, 2, size=(3, 2, 8, 7)).astype(np.float64)
    x[rng.random(x.shape) < 0.1] = np.nan
    geo = ((2, 2), (2, 2), (0, 0))
    out, argmax = BK.empty((3, 2, 4, 3), np.float64), BK.empty((3, 2, 4, 3), np.int64)
    K_pool.maxpool2d_forward(dev(x), *geo, out, argmax)
    cpu_out, cpu_argmax = cpu_pool.maxpool2d_forward(
        x, *geo, np.empty((3, 2, 4, 3)), np.empty((3, 2, 4, 3), np.int64)
    )
    assert np.isnan(cpu_out).any()
    np.testing.assert_array_equal(host(out), cpu_out)
    np.testing.assert_array_equal(host(argmax), cpu_argmax)


# -- BatchNorm -------------------------------------------------------------------------------------

NORM_CASES = [
    (lfp.BatchNorm1d, (5, 3)),
    (lfp.BatchNorm1d, (3, 2, 4)),
    (lfp.BatchNorm2d, (3, 2, 3, 3)),
]


def norm_layer(rng, cls, shape, training, dtype):
    channels = shape[1]
    layer = cls(channels, eps=1e-3, dtype=dtype)
    layer.weight[...] = rng.uniform(0.5, 2.0, channels) * rng.choice([-1.0, 1.0], channels)
    layer.bias[...] = rng.normal(size=channels)
    layer.running_mean[...] = rng.normal(size=channels)
    layer.running_var[...] = rng.uniform(0.2, 3.0, channels)
    return layer.train(training)


def norm_input(rng, shape, dtype):
    per_channel = (1, shape[1]) + (1,) * (len(shape) - 2)
    offset = rng.normal(size=shape[1]).reshape(per_channel) * 3
    scale = rng.uniform(0.5, 4.0, shape[1]).reshape(per_channel)
    return (rng.normal(size=shape) * scale + offset).astype(dtype)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("training", [True, False], ids=["train", "eval"])
@pytest.mark.parametrize(
    "cls, shape", NORM_CASES, ids=[f"{c.__name__}-{'x'.join(map(str, s))}" for c, s in NORM_CASES]
)
def test_batchnorm_matches_the_oracle_and_the_cpu_twin(rng, cls, shape, training, dtype, launches):
    cpu_layer = norm_layer(rng, cls, shape, training, dtype)
    gamma = cpu_layer.weight.astype(np.float64)
    beta = cpu_layer.bias.astype(np.float64)
    stats = (
        (None, None)
        if training
        else (cpu_layer.running_mean.astype(np.float64), cpu_layer.running_var.astype(np.float64))
    )
    layer = cls(shape[1], eps=1e-3, dtype=dtype).train(training)
    layer.load_state_dict(cpu_layer.state_dict())
    layer.to("cuda")
    x = norm_input(rng, shape, dtype)
    z = layer(dev(x))
    cpu_z = cpu_layer(x)
    assert_close(z, norm_oracle.bn_forward(x, gamma, beta, cpu_layer.eps, *stats)[0], dtype)
    np.testing.assert_array_equal(host(z), cpu_z)  # the same sums in the same order
    for name in ("running_mean", "running_var", "num_batches_tracked"):
        np.testing.assert_array_equal(host(getattr(layer, name)), getattr(cpu_layer, name))
    v = rng.normal(size=shape).astype(dtype)
    vjp_x, grads = layer.vjp(dev(v))
    want_x, want_gamma, want_beta = norm_oracle.bn_vjp(x, v, gamma, cpu_layer.eps, *stats)
    assert_close(vjp_x, want_x, dtype)
    assert_close(grads["weight"], want_gamma, dtype)
    assert_close(grads["bias"], want_beta, dtype)
    cpu_x, cpu_grads = cpu_layer.vjp(v)
    np.testing.assert_array_equal(host(vjp_x), cpu_x)
    for name in grads:
        np.testing.assert_array_equal(host(grads[name]), cpu_grads[name])
    reward = rng.normal(size=shape).astype(dtype)
    reward_in, params = layer.feedback(dev(reward), lambda _: Epsilon(1e-3))
    want_in, want_g, want_b = norm_oracle.bn_lfp_epsilon(
        x, reward, gamma, beta, cpu_layer.eps, 1e-3, *stats
    )
    assert_close(reward_in, want_in, dtype)
    assert_close(params["weight"], want_g, dtype)
    assert_close(params["bias"], want_b, dtype)
    expected = {"normalize_affine": 1, "channel_vjp_sums": 2}
    expected.update(
        {"channel_stats": 1, "update_running_stats": 1, "vjp_input_train": 2}
        if training
        else {"vjp_input_eval": 2}
    )
    for name, count in expected.items():
        assert launches[name] == count, name


# -- the LRP rules' kernels ------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", DTYPES)
def test_rules_kernels_match_the_oracle_and_the_cpu_twin(rng, dtype, launches):
    size = 2 * GRID + 5
    values, other, third = (rng.normal(size=size).astype(dtype) for _ in range(3))
    values[::6] = 0.0
    v, o, t = dev(values), dev(other), dev(third)
    positive, negative = K_rules.split_signs(v, BK.empty_like(v), BK.empty_like(v))
    np.testing.assert_array_equal(positive, rules_oracle.pos(values).astype(dtype))
    np.testing.assert_array_equal(negative, rules_oracle.neg(values).astype(dtype))
    raised, lowered = K_rules.gamma_weights(v, 0.25, BK.empty_like(v), BK.empty_like(v))
    g = dtype(0.25)
    np.testing.assert_array_equal(raised, values + g * rules_oracle.pos(values).astype(dtype))
    np.testing.assert_array_equal(lowered, values + g * rules_oracle.neg(values).astype(dtype))
    up, down = K_rules.split_by_output_sign(o, v, BK.empty_like(v), BK.empty_like(v))
    np.testing.assert_array_equal(up, np.where(values > 0, other, 0))
    np.testing.assert_array_equal(down, np.where(values < 0, other, 0))
    out, cpu_out = dev(third), third.copy()
    K_rules.accumulate_signed_product(v, o, t, -0.5, out)
    cpu_rules.accumulate_signed_product(values, other, third, -0.5, cpu_out)
    np.testing.assert_array_equal(host(out), cpu_out)
    assert (host(out)[values == 0] == third[values == 0]).all()  # sign(0) = 0: untouched
    K_rules.accumulate_product(o, t, out)
    cpu_rules.accumulate_product(other, third, cpu_out)
    np.testing.assert_array_equal(host(out), cpu_out)
    for name in ("split_signs", "gamma_weights", "split_by_output_sign"):
        assert launches[name] == 1, name
    assert launches["accumulate_signed_product"] == launches["accumulate_product"] == 1


RULE_IDS = ["zplus", "alpha2beta1", "gamma", "flat", "wsquare", "zbox"]
RULE_LAYERS = [
    pytest.param(("dense", (9, 7)), id="dense9x7"),
    pytest.param(("conv", CONV_CONFIGS[2]), id="conv-s2-p1"),
]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("spec", RULE_LAYERS)
@pytest.mark.parametrize("rule_id", RULE_IDS)
def test_every_rule_matches_the_oracle_on_the_cuda_backend(rng, rule_id, spec, dtype, launches):
    from tests.test_rules import build_case

    layer, conn, x, rule, oracle_rule, params = build_case(rng, rule_id, spec, True, dtype)
    weight, bias = layer.weight.copy(), layer.bias.copy()
    layer.to("cuda")
    z = layer.forward(dev(x))
    reward = rng.standard_normal(z.shape).astype(dtype)
    reward_in, feedback = rule.propagate(layer, dev(reward))
    ex_in, ex_fb = rules_oracle.lfp_rule(
        oracle_rule, params, x, weight, bias, reward, conn,
        z=host(z) if dtype == np.float32 else None,
    )  # fmt: skip
    assert type(reward_in) is SimulatedDeviceArray and np.isfinite(host(reward_in)).all()
    assert_close(reward_in, ex_in, dtype)
    assert sorted(feedback) == sorted(ex_fb)
    for name, expected in ex_fb.items():
        assert type(feedback[name]) is SimulatedDeviceArray
        assert_close(feedback[name], expected, dtype)
    assert launches["stabilized_ratio"] >= 1 and launches["accumulate_signed_product"] >= 1


# -- the LIF time loops ----------------------------------------------------------------------------

# float64 kernel vs the float64 oracle (tests/test_lif_kernels.py's tolerances): the same
# operations in (almost) the same order
RTOL64_LIF = 1e-12
# float32: a few float32 roundings per step, contracted by beta through the steps (as there)
RTOL32_LIF = 2e-6
NEURONS = [(0.9, 1.0), (0.5, 0.3), (1.0, 2.5)]
LIF_SHAPES = [(1, 37), (3, 2 * GRID + 5), (4, 2, 3, 5)]


def _lif_rtol(dtype):
    return RTOL64_LIF if np.dtype(dtype) == np.float64 else RTOL32_LIF


def _current(rng, shape, threshold, dtype):
    return (threshold * (0.6 + 0.8 * rng.normal(size=shape))).astype(dtype)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("reset", ["subtract", "zero"])
@pytest.mark.parametrize("neuron", NEURONS, ids=lambda n: f"beta{n[0]}-thr{n[1]}")
@pytest.mark.parametrize("shape", LIF_SHAPES, ids=lambda s: "x".join(map(str, s)))
def test_lif_kernels_match_the_oracles(rng, shape, neuron, reset, dtype, launches):
    beta, threshold = neuron
    current = _current(rng, shape, threshold, dtype)
    membrane, spikes = K_lif.lif_forward(
        dev(current), beta, threshold, reset, BK.empty(shape, dtype), BK.empty(shape, dtype)
    )
    want_membrane, want_spikes = snn_oracle.lif_forward(current, beta, threshold, reset, dtype)
    np.testing.assert_array_equal(host(membrane), want_membrane, strict=True)
    np.testing.assert_array_equal(host(spikes), want_spikes, strict=True)
    if shape[0] > 1:
        assert 0 < host(spikes).mean() < 1
    grad_spikes = rng.normal(size=shape).astype(dtype)
    for alpha in (2.0, 0.7):
        grad = K_lif.lif_surrogate_backward(
            dev(grad_spikes), membrane, beta, threshold, alpha, BK.empty(shape, dtype),
            "atan", reset,
        )  # fmt: skip
        want = snn_oracle.lif_surrogate_backward(
            grad_spikes, host(membrane), beta, threshold, alpha, reset, "atan"
        )
        assert_close(grad, want, rtol=_lif_rtol(dtype))
    if reset == "subtract":
        reward = rng.normal(size=shape).astype(dtype)
        rho, handed = BK.empty(shape, dtype), BK.empty(shape, dtype)
        K_lif.lif_feedback(dev(reward), membrane, beta, threshold, 1e-6, rho, handed)
        want_rho, want_handed = snn_oracle.lif_feedback(
            reward, host(membrane), beta, threshold, 1e-6
        )
        assert_close(rho, want_rho, rtol=_lif_rtol(dtype))
        assert_close(handed, want_handed, rtol=_lif_rtol(dtype))
        np.testing.assert_array_equal(host(handed)[0], 0)
        assert launches["lif_feedback"] == 1
    assert launches["lif_forward"] == 1 and launches["lif_surrogate_backward"] == 2


def test_lif_wrappers_reject_host_arrays_and_overlapping_outputs():
    current = dev(np.ones((3, 5)))
    with pytest.raises(TypeError, match="lif_forward: current must be a device array"):
        K_lif.lif_forward(np.ones((3, 5)), 0.9, 1.0, "subtract", BK.empty((3, 5), np.float64),
                          BK.empty((3, 5), np.float64))  # fmt: skip
    membrane = BK.empty((3, 5), np.float64)
    with pytest.raises(ValueError, match="lif_forward: membrane overlaps spikes"):
        K_lif.lif_forward(current, 0.9, 1.0, "subtract", membrane, membrane)
    with pytest.raises(ValueError, match="reset='subtract' only"):
        K_lif.lif_feedback(current, current, 0.9, 1.0, 1e-6, membrane, reset="zero")


# -- every kernel compiles for a device ------------------------------------------------------------

# (kernel module, kernel name, argument types) of every launch the tests above made; the
# simulator runs the kernels as Python, so this is what proves they type-check in numba's CUDA
# target and compile to PTX
_SIGNATURES = set()


def _argument_type(a):
    if isinstance(a, np.ndarray):
        layout = "C" if a.flags.c_contiguous else ("F" if a.flags.f_contiguous else "A")
        return ["array", a.dtype.str, a.ndim, layout]
    if isinstance(a, (bool, np.bool_)):
        return ["bool"]
    if isinstance(a, np.generic):
        return ["scalar", a.dtype.str]
    if isinstance(a, int):
        return ["int"]
    if isinstance(a, float):
        return ["float"]
    raise TypeError(f"a kernel argument of type {type(a).__name__}")


@pytest.fixture(autouse=True, scope="module")
def _record_launch_signatures():
    launch = _launch.Kernel.launch

    def recording(kernel, size, *args):
        key = [kernel.py_func.__module__, kernel.py_func.__name__]
        _SIGNATURES.add(repr(key + [[_argument_type(a) for a in args]]))
        return launch(kernel, size, *args)

    _launch.Kernel.launch = recording
    yield
    _launch.Kernel.launch = launch


_COMPILE_SCRIPT = """
import ast, importlib, json, sys

import numpy as np
import numba
from numba import cuda, types

CC = (8, 0)  # A100; any architecture CUDA 12 and 13 both compile for


def numba_type(spec):
    if spec[0] == "array":
        return types.Array(numba.from_dtype(np.dtype(spec[1])), spec[2], spec[3])
    if spec[0] == "scalar":
        return numba.from_dtype(np.dtype(spec[1]))
    return {"bool": types.boolean, "int": types.int64, "float": types.float64}[spec[0]]


def probe(a):
    a[0] = 1.0


try:
    cuda.compile_ptx(probe, (types.float64[::1],), cc=CC)
except Exception as err:
    print(json.dumps({"unavailable": f"{type(err).__name__}: {err}".splitlines()[0]}))
    sys.exit(0)
failures = []
for line in sys.stdin.read().splitlines():
    module, name, args = ast.literal_eval(line)
    kernel = getattr(importlib.import_module(module), name)
    signature = tuple(numba_type(a) for a in args)
    try:
        cuda.compile_ptx(kernel.py_func, signature, cc=CC)
    except Exception as err:
        failures.append(f"{name}{signature}: {type(err).__name__}: {str(err).splitlines()[:3]}")
print(json.dumps({"failures": failures}))
"""


def test_every_kernel_compiles_to_ptx_for_a_device():
    import ast
    import json
    import subprocess
    import sys
    from pathlib import Path

    modules = (K_conv, K_elementwise, K_lif, K_norm, K_pool, K_rules, lfp.kernels.cuda.dense)
    kernels = {
        (m.__name__, name)
        for m in modules
        for name, value in vars(m).items()
        if isinstance(value, _launch.Kernel)
    }
    launched = {tuple(ast.literal_eval(s)[:2]) for s in _SIGNATURES}
    missing = sorted(name for _, name in kernels - launched)
    assert not missing, f"kernels no test above launched (run the whole module): {missing}"
    # a process without the simulator, where numba compiles for a real device (no device needed)
    env = {k: v for k, v in os.environ.items() if k != "NUMBA_ENABLE_CUDASIM"}
    result = subprocess.run(
        [sys.executable, "-c", _COMPILE_SCRIPT],
        input="\n".join(sorted(_SIGNATURES)),
        cwd=Path(__file__).resolve().parents[1],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads(result.stdout.strip().splitlines()[-1])
    if "unavailable" in report:
        pytest.skip(
            f"numba cannot compile for a device here ({report['unavailable']}); libNVVM comes "
            "with a CUDA toolkit or pip install 'numba-cuda[cu13]'"
        )
    assert not report["failures"], "\n".join(report["failures"])


@pytest.mark.parametrize("dtype", DTYPES)
def test_lif_one_step_outputs_sum_over_the_steps_as_on_the_cpu(rng, dtype):
    # rho / dL/dI of shape (1, ...): the CPU twin's sum over the steps (from t = T-1 down)
    shape, one_step = (5, 3, 2 * GRID + 5), (1, 3, 2 * GRID + 5)
    current = _current(rng, shape, 1.0, dtype)
    membrane = host(K_lif.lif_forward(dev(current), 0.9, 1.0, "subtract", BK.empty(shape, dtype),
                                      BK.empty(shape, dtype))[0])  # fmt: skip
    reward = rng.normal(size=shape).astype(dtype)
    cpu = cpu_lif.lif_feedback(reward, membrane, 0.9, 1.0, 1e-6, np.empty(one_step, dtype))
    gpu = K_lif.lif_feedback(dev(reward), dev(membrane), 0.9, 1.0, 1e-6, BK.empty(one_step, dtype))
    assert_close(gpu, cpu, rtol=_lif_rtol(dtype))
    cpu = cpu_lif.lif_surrogate_backward(reward, membrane, 0.9, 1.0, 2.0, np.empty(one_step, dtype))
    gpu = K_lif.lif_surrogate_backward(
        dev(reward), dev(membrane), 0.9, 1.0, 2.0, BK.empty(one_step, dtype)
    )
    assert_close(gpu, cpu, rtol=_lif_rtol(dtype))
