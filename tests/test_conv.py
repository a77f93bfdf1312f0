"""Conv2d: kernels vs the unrolled-dense oracle (forward, VJPs, LFP-epsilon), finite differences,
conservation, the serial and parallel builds, and the error messages."""

import numba
import numpy as np
import pytest

from lfp_ref.kernels.cpu import _jit
from lfp_ref.kernels.cpu import conv as K
from lfp_ref.layers.conv import Conv2d
from lfp_ref.rules import Epsilon
from tests.oracle import conv as oracle
from tests.oracle.dense import finite_difference
from tests.tolerances import RTOL64, assert_close

# Kernel vs oracle tolerances: RTOL64 / RTOL32 in tests/tolerances.py (atol scaled to the
# magnitude), declared once for the whole suite.
# Central differences of a linear map have no truncation error, only rounding of
# ~1e-16 * |L| / h with h = 1e-3, so this is tight but safe.
RTOL_FD = 1e-8
FD_STEP = 1e-3

# (C, O, H, W, kernel_size, stride, padding, dilation)
CONFIGS = [
    (1, 2, 6, 6, 3, 1, 0, 1),
    (2, 3, 7, 6, (3, 2), 1, 1, 1),
    (3, 2, 8, 8, 3, 2, 1, 1),
    (2, 2, 9, 7, (2, 3), 3, 2, 1),
    (2, 3, 9, 9, 3, 1, 2, 2),
    (1, 4, 10, 8, (3, 2), (2, 1), (1, 0), (2, 1)),
    (3, 2, 5, 5, 5, 1, 0, 1),
    (2, 2, 6, 7, 1, 2, 0, 1),
    (2, 3, 8, 9, 3, 3, 1, 2),
    (2, 2, 4, 4, 2, 1, 2, 1),  # windows entirely in the padding: z = b there
]


def _fmt(v):
    return f"{v[0]}x{v[1]}" if isinstance(v, tuple) else str(v)


def config_id(cfg):
    c, o, h, w, k, s, p, d = cfg
    return f"C{c}O{o}_{h}x{w}_k{_fmt(k)}_s{_fmt(s)}_p{_fmt(p)}_d{_fmt(d)}"


DTYPES = [pytest.param(np.float64, id="f64"), pytest.param(np.float32, id="f32")]
BIASES = [pytest.param(True, id="bias"), pytest.param(False, id="nobias")]


def make_case(rng, cfg, bias=True, dtype=np.float64, batch=2):
    c, o, h, w, k, s, p, d = cfg
    layer = Conv2d(c, o, k, stride=s, padding=p, dilation=d, bias=bias, dtype=dtype, rng=rng)
    x = rng.standard_normal((batch, c, h, w)).astype(dtype)
    return layer, x


def geometry(layer):
    return {"stride": layer.stride, "padding": layer.padding, "dilation": layer.dilation}


@pytest.fixture(params=CONFIGS, ids=config_id)
def cfg(request):
    return request.param


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("bias", BIASES)
def test_forward_matches_oracle(rng, cfg, bias, dtype):
    layer, x = make_case(rng, cfg, bias, dtype)
    z = layer.forward(x)
    assert z.dtype == dtype and z.flags.c_contiguous
    assert layer.cached_input is not None and layer.cached_output is z
    expected = oracle.conv2d_forward(x, layer.weight, layer.bias, **geometry(layer))
    assert_close(z, expected, dtype)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("bias", BIASES)
def test_vjp_matches_oracle(rng, cfg, bias, dtype):
    layer, x = make_case(rng, cfg, bias, dtype)
    z = layer.forward(x)
    v = rng.standard_normal(z.shape).astype(dtype)
    dx, grads = layer.vjp(v)
    ex_dx, ex_dw, ex_db = oracle.conv2d_vjp(x, layer.weight, v, **geometry(layer))
    assert sorted(grads) == (["bias", "weight"] if bias else ["weight"])
    assert dx.dtype == grads["weight"].dtype == dtype
    assert_close(dx, ex_dx, dtype)
    assert_close(grads["weight"], ex_dw, dtype)
    if bias:
        assert_close(grads["bias"], ex_db, dtype)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("bias", BIASES)
def test_lfp_epsilon_matches_oracle(rng, cfg, bias, dtype):
    layer, x = make_case(rng, cfg, bias, dtype)
    z = layer.forward(x)
    reward = rng.standard_normal(z.shape).astype(dtype)
    reward_in, feedback = Epsilon(1e-6).propagate(layer, reward)
    # float32: stabilise with the kernel's own z (see the oracle's docstring); float64: with the
    # oracle's, so the whole chain is checked
    ex_in, ex_fb = oracle.conv2d_lfp_epsilon(
        x,
        layer.weight,
        layer.bias,
        reward,
        1e-6,
        **geometry(layer),
        z=z if dtype == np.float32 else None,
    )
    assert sorted(feedback) == sorted(ex_fb)
    assert_close(reward_in, ex_in, dtype)
    for name in ex_fb:
        assert_close(feedback[name], ex_fb[name], dtype)


@pytest.mark.parametrize("eps", [0.0, 0.5], ids=lambda e: f"eps{e:g}")
@pytest.mark.parametrize("cfg", CONFIGS[1:4], ids=config_id)
def test_lfp_epsilon_other_eps(rng, cfg, eps):
    # eps = 0.5 is large enough that a wrong or missing stabiliser changes every entry
    layer, x = make_case(rng, cfg)
    reward = rng.standard_normal(layer.forward(x).shape)
    reward_in, feedback = Epsilon(eps).propagate(layer, reward)
    ex_in, ex_fb = oracle.conv2d_lfp_epsilon(
        x, layer.weight, layer.bias, reward, eps, **geometry(layer)
    )
    assert_close(reward_in, ex_in)
    assert_close(feedback["weight"], ex_fb["weight"])
    assert_close(feedback["bias"], ex_fb["bias"])


def test_zero_weights_and_silent_inputs_get_no_feedback(rng):
    layer, x = make_case(rng, CONFIGS[1])
    layer.weight[0, 1] = 0.0
    x[:, 0] = 0.0
    reward = rng.standard_normal(layer.forward(x).shape)
    reward_in, feedback = Epsilon().propagate(layer, reward)
    assert np.all(feedback["weight"][0, 1] == 0.0)
    assert np.all(feedback["weight"][:, 0] == 0.0)
    assert np.all(reward_in[:, 0] == 0.0)
    assert np.any(feedback["weight"] != 0.0)


@pytest.mark.parametrize("cfg", [CONFIGS[1], CONFIGS[3], CONFIGS[5]], ids=config_id)
def test_backward_matches_finite_differences(rng, cfg):
    layer, x = make_case(rng, cfg)
    g = rng.standard_normal(layer.forward(x).shape)

    def loss():
        return float(np.sum(g * layer.forward(x)))

    grad_x, grads = layer.backward(g)
    expected = {
        "x": finite_difference(loss, x, h=FD_STEP),
        "weight": finite_difference(loss, layer.weight, h=FD_STEP),
        "bias": finite_difference(loss, layer.bias, h=FD_STEP),
    }
    layer.forward(x)
    for name, actual in (("x", grad_x), ("weight", grads["weight"]), ("bias", grads["bias"])):
        assert_close(actual, expected[name], rtol=RTOL_FD)


def test_backward_is_vjp(rng):
    layer, x = make_case(rng, CONFIGS[2])
    g = rng.standard_normal(layer.forward(x).shape)
    grad_x, grads = layer.backward(g)
    dx, vjp_grads = layer.vjp(g)
    np.testing.assert_array_equal(grad_x, dx)
    for name in grads:
        np.testing.assert_array_equal(grads[name], vjp_grads[name])


def sees_no_input(cfg):
    """Whether some output's window lies entirely in the padding (z = b there)."""
    c, o, h, w, k, s, p, d = cfg
    (_, out_index, _), out_shape = oracle.conv2d_connections(
        (c, h, w), o, *(v if isinstance(v, tuple) else (v, v) for v in (k, s, p, d))
    )
    return np.unique(out_index).size < np.prod(out_shape)


@pytest.mark.parametrize("cfg", [c for c in CONFIGS if not sees_no_input(c)], ids=config_id)
def test_conservation_without_bias(rng, cfg):
    # eps = 0, no bias: sum_i R_i = sum_j z_j r_j / z_j = sum_j r_j, per sample (configs where
    # some z is exactly 0 are left out: eps = 0 divides by it)
    layer, x = make_case(rng, cfg, bias=False)
    reward = rng.standard_normal(layer.forward(x).shape)
    reward_in, _ = Epsilon(0.0).propagate(layer, reward)
    for b in range(x.shape[0]):
        scale = np.abs(reward_in[b]).sum() + np.abs(reward[b]).sum()
        assert abs(reward_in[b].sum() - reward[b].sum()) <= RTOL64 * scale


@pytest.mark.parametrize("cfg", CONFIGS, ids=config_id)
def test_conservation_with_bias(rng, cfg):
    # sum_i R_i = sum_j r_j (z_j - b_j) / stab(z_j): the bias absorbs its share
    layer, x = make_case(rng, cfg, bias=True)
    z = layer.forward(x)
    reward = rng.standard_normal(z.shape)
    reward_in, _ = Epsilon(1e-6).propagate(layer, reward)
    expected = reward * (z - layer.bias[:, None, None]) / oracle.stab(z, 1e-6)
    for b in range(x.shape[0]):
        scale = np.abs(reward_in[b]).sum() + np.abs(expected[b]).sum()
        assert abs(reward_in[b].sum() - expected[b].sum()) <= RTOL64 * scale


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("cfg", [CONFIGS[2], CONFIGS[4], CONFIGS[5]], ids=config_id)
def test_parallel_build_matches_serial(rng, cfg, dtype, monkeypatch):
    # the layer's dispatch through ``pick``: every kernel writes each output element with the same
    # operations in either build, so the results are identical. (Which code ``.parallel`` runs
    # depends on numba's disk cache; test_true_parallel_kernels_match_serial checks real builds.)
    layer, x = make_case(rng, cfg, dtype=dtype, batch=5)
    v = rng.standard_normal(layer.forward(x).shape).astype(dtype)
    results = {}
    for build, threshold in (("serial", np.inf), ("parallel", 0)):
        monkeypatch.setattr(_jit, "PARALLEL_MIN_SIZE", threshold)
        z = layer.forward(x)
        dx, grads = layer.vjp(v)
        results[build] = (z, dx, grads["weight"], grads["bias"])
    for serial, parallel in zip(results["serial"], results["parallel"], strict=True):
        np.testing.assert_array_equal(serial, parallel)


@pytest.fixture(scope="module")
def true_parallel_builds():
    # fresh, uncached parallel builds: the test then cannot pass on a stale cache entry, and
    # runs the threaded code even where the sizes are below _jit's parallel threshold
    names = ("_im2col", "_nchw_to_rows", "_col2im")
    names += ("_im2col_samples", "_col2im_samples", "_im2col_folded", "_col2im_folded")
    names += ("_swap_leading",)
    return {name: numba.njit(parallel=True)(getattr(K, name).py_func) for name in names}


def _run(kernel_fn, *args, out):
    kernel_fn(*args, out)
    return out


@pytest.mark.slow
@pytest.mark.parametrize("dtype", DTYPES)
def test_true_parallel_kernels_match_serial(rng, dtype, true_parallel_builds):
    layer, x = make_case(rng, CONFIGS[5], dtype=dtype, batch=7)
    z = layer.forward(x)
    geo = (*layer.kernel_size, *layer.stride, *layer.padding, *layer.dilation, *z.shape[2:])
    n_rows = x.shape[0] * z.shape[2] * z.shape[3]
    rows = rng.standard_normal((n_rows, layer.out_channels)).astype(dtype)
    dcols = rng.standard_normal((n_rows, layer.fan_in)).astype(dtype)
    n_pos = z.shape[2] * z.shape[3]
    swapped = (layer.out_channels, x.shape[0], n_pos)

    def nans(shape):
        return np.full(shape, np.nan, dtype)

    calls = {
        "_im2col": lambda f: _run(f, x, *geo, out=np.full_like(dcols, np.nan)),
        "_nchw_to_rows": lambda f: _run(f, z, out=np.full_like(rows, np.nan)),
        "_col2im": lambda f: _run(f, dcols, *geo, out=np.full_like(x, np.nan)),
        "_im2col_samples": lambda f: _run(f, x, *geo, out=nans((x.shape[0], layer.fan_in, n_pos))),
        "_col2im_samples": lambda f: _run(
            f, dcols.reshape(x.shape[0], layer.fan_in, -1), *geo, out=np.full_like(x, np.nan)
        ),
        "_im2col_folded": lambda f: _run(f, x, *geo, out=nans((layer.fan_in, x.shape[0], n_pos))),
        "_col2im_folded": lambda f: _run(
            f, dcols.reshape(layer.fan_in, x.shape[0], -1), *geo, out=np.full_like(x, np.nan)
        ),
        "_swap_leading": lambda f: np.concatenate(
            [
                _run(f, z.reshape(7, layer.out_channels, -1), bias, out=nans(swapped))
                for bias in (np.empty(0, dtype), layer.bias)
            ]
        ),
    }
    for name, call in calls.items():
        expected = call(getattr(K, name).serial)
        assert np.isfinite(expected).all(), name
        np.testing.assert_array_equal(call(true_parallel_builds[name]), expected, err_msg=name)


# -- the sample-major fast path ------------------------------------------------------------------


def im2col_samples_oracle(x, kernel_size, stride, padding, dilation, ho, wo):
    """cols[s, (c*kh + i)*kw + j, oh*Wo + ow] = x[s, c, oh*sh - ph + i*dh, ow*sw - pw + j*dw],
    0 in the padding: the module docstring's formula, literally."""
    (kh, kw), (sh, sw), (ph, pw), (dh, dw) = kernel_size, stride, padding, dilation
    n_samples, n_chan, height, width = x.shape
    cols = np.zeros((n_samples, n_chan * kh * kw, ho * wo))
    for s, c, i, j, oh, ow in np.ndindex(n_samples, n_chan, kh, kw, ho, wo):
        ih, iw = oh * sh - ph + i * dh, ow * sw - pw + j * dw
        if 0 <= ih < height and 0 <= iw < width:
            cols[s, (c * kh + i) * kw + j, oh * wo + ow] = x[s, c, ih, iw]
    return cols


@pytest.mark.parametrize("dtype", DTYPES)
def test_sample_major_im2col_and_its_adjoint(rng, cfg, dtype):
    layer, x = make_case(rng, cfg, dtype=dtype, batch=3)
    ho, wo = layer.output_size(*x.shape[2:])
    geo = (layer.kernel_size, layer.stride, layer.padding, layer.dilation)
    cols = K.im2col_samples(x, *geo, np.full((3, layer.fan_in, ho * wo), np.nan, dtype))
    np.testing.assert_array_equal(cols, im2col_samples_oracle(x, *geo, ho, wo))  # a copy: exact
    # col2im is the adjoint: <col2im(d), x> = <d, im2col(x)> for every d and x
    d = rng.standard_normal(cols.shape).astype(dtype)
    back = K.col2im_samples(d, *geo, np.full_like(x, np.nan))
    assert_close(np.vdot(back, x), np.vdot(d, cols), dtype)


@pytest.mark.parametrize("dtype", DTYPES)
def test_batch_folded_im2col_and_its_adjoint(rng, cfg, dtype):
    # the same entries as the sample-major matrices, with the two leading axes swapped
    layer, x = make_case(rng, cfg, dtype=dtype, batch=3)
    ho, wo = layer.output_size(*x.shape[2:])
    geo = (layer.kernel_size, layer.stride, layer.padding, layer.dilation)
    out = np.full((layer.fan_in, 3, ho * wo), np.nan, dtype)
    cols = K.im2col_samples(x, *geo, out, folded=True)
    expected = im2col_samples_oracle(x, *geo, ho, wo).transpose(1, 0, 2)
    np.testing.assert_array_equal(cols, expected)  # a copy: exact
    d = rng.standard_normal(cols.shape).astype(dtype)
    back = K.col2im_samples(d, *geo, np.full_like(x, np.nan), folded=True)
    assert_close(np.vdot(back, x), np.vdot(d, cols), dtype)
    with pytest.raises(ValueError, match=r"\(C\*kh\*kw, S, Ho\*Wo\)"):
        K.im2col_samples(x, *geo, np.empty((3, layer.fan_in, ho * wo), dtype), folded=True)


def test_batch_folded_only_for_chunked_batches_of_small_products_on_threads(monkeypatch):
    monkeypatch.setattr(K, "FOLD_MAX_MACS", 1000)
    monkeypatch.setattr(K, "FOLD_MAX_POSITIONS", 20)
    monkeypatch.setattr(K, "FOLD_MIN_THREADS", 1)
    assert K.batch_folded(10, 5, n_out=4, fan_in=10, n_positions=20)  # 800 a sample, 2 chunks
    assert not K.batch_folded(10, 10, n_out=4, fan_in=10, n_positions=20)  # one chunk
    assert not K.batch_folded(10, 5, n_out=5, fan_in=10, n_positions=20)  # 1000 a sample
    assert not K.batch_folded(10, 5, n_out=2, fan_in=10, n_positions=21)  # 21 positions
    # a process on fewer threads than FOLD_MIN_THREADS keeps the per-sample GEMMs
    monkeypatch.setattr(K, "FOLD_MIN_THREADS", numba.get_num_threads() + 1)
    assert not K.batch_folded(10, 5, n_out=4, fan_in=10, n_positions=20)


@pytest.mark.parametrize("folded", [False, True], ids=["sample-major", "batch-folded"])
@pytest.mark.parametrize("per_chunk", [1, 2], ids=lambda n: f"{n}-sample-chunks")
@pytest.mark.parametrize("cfg", [CONFIGS[2], CONFIGS[5], CONFIGS[9]], ids=config_id)
def test_chunked_passes_match_the_oracle(rng, cfg, per_chunk, folded, monkeypatch):
    # a batch of 5 in chunks of 1 or 2 samples (2, 2, 1): the weight VJP recomputes the columns
    # chunk by chunk; one GEMM per sample, or one per chunk on the batch-folded path
    layer, x = make_case(rng, cfg, batch=5)
    ho, wo = layer.output_size(*x.shape[2:])
    monkeypatch.setattr(K, "WHOLE_BATCH_BYTES", 0)
    monkeypatch.setattr(K, "CHUNK_BYTES", per_chunk * layer.fan_in * ho * wo * x.itemsize)
    monkeypatch.setattr(K, "FOLD_MAX_MACS", np.inf if folded else 0)
    monkeypatch.setattr(K, "FOLD_MAX_POSITIONS", np.inf)
    monkeypatch.setattr(K, "FOLD_MIN_THREADS", 1)  # whatever the machine's thread count
    assert K.samples_per_chunk(5, layer.fan_in, ho * wo, x.itemsize) == per_chunk
    n_macs = (layer.out_channels, layer.fan_in, ho * wo)
    assert K.batch_folded(5, per_chunk, *n_macs) == folded
    z = layer.forward(x)
    assert layer._cols_owner is None  # more than one chunk: no use owns the scratch columns
    v = rng.standard_normal(z.shape)
    dx, grads = layer.vjp(v)
    ex_dx, ex_dw, ex_db = oracle.conv2d_vjp(x, layer.weight, v, **geometry(layer))
    assert_close(z, oracle.conv2d_forward(x, layer.weight, layer.bias, **geometry(layer)))
    assert_close(dx, ex_dx)
    assert_close(grads["weight"], ex_dw)
    assert_close(grads["bias"], ex_db)


@pytest.mark.parametrize("per_chunk", [1, 2], ids=lambda n: f"{n}-sample-chunks")
def test_chunks_take_turns_in_two_column_buffers_without_changing_a_bit(
    rng, per_chunk, monkeypatch
):
    # successive sample-major chunks write their columns into alternate buffers (the one the last
    # GEMM read stays untouched); the numbers are those of a single buffer, bit for bit
    layer, x = make_case(rng, CONFIGS[2], batch=5)
    ho, wo = layer.output_size(*x.shape[2:])
    monkeypatch.setattr(K, "WHOLE_BATCH_BYTES", 0)
    monkeypatch.setattr(K, "CHUNK_BYTES", per_chunk * layer.fan_in * ho * wo * x.itemsize)
    monkeypatch.setattr(K, "FOLD_MAX_MACS", 0)
    monkeypatch.setattr(K, "SHIFTED_MIN_CHANNELS", np.inf)
    v = rng.standard_normal((5, layer.out_channels, ho, wo))
    seen = []
    alternating = K._alternating

    def recording(cols, n_batch, single):
        buffers = alternating(cols, n_batch, single)
        seen.append(buffers)
        return buffers

    monkeypatch.setattr(K, "_alternating", recording)
    z = layer.forward(x)
    dx, grads = layer.vjp(v)
    assert len(seen) == 2  # the forward pass and the VJPs
    for first, second in seen:
        assert first.shape == second.shape and not np.shares_memory(first, second)
    monkeypatch.setattr(K, "_alternating", lambda cols, n_batch, single: (cols, cols))
    np.testing.assert_array_equal(layer.forward(x), z)
    dx_single, grads_single = layer.vjp(v)
    np.testing.assert_array_equal(dx_single, dx)
    np.testing.assert_array_equal(grads_single["weight"], grads["weight"])


def test_samples_per_chunk_keeps_a_small_batch_whole_and_cuts_a_large_one(monkeypatch):
    monkeypatch.setattr(K, "WHOLE_BATCH_BYTES", 1000)
    monkeypatch.setattr(K, "CHUNK_BYTES", 100)
    assert K.samples_per_chunk(10, 5, 5, 4) == 10  # 1000 bytes in all: one chunk
    assert K.samples_per_chunk(11, 5, 5, 4) == 1  # 100 bytes a sample: one per chunk
    assert K.samples_per_chunk(30, 5, 2, 4) == 2  # 40 bytes a sample, 1200 in all: 2 a chunk
    assert K.samples_per_chunk(11, 50, 50, 8) == 1  # larger than a chunk: still one sample


def test_vjp_without_the_input_part(rng):
    layer, x = make_case(rng, CONFIGS[4])
    v = rng.standard_normal(layer.forward(x).shape)
    full_dx, full = layer.vjp(v)
    dx, grads = layer.vjp(v, input_vjp=False)
    assert dx is None and full_dx is not None
    for name in full:
        np.testing.assert_array_equal(grads[name], full[name])


def test_cache_builds_the_row_column_matrix_on_demand(rng):
    # other rules read the row-layout column matrix as the cache's third entry
    layer, x = make_case(rng, CONFIGS[3])
    z = layer.forward(x)
    cache = layer.saved()
    assert cache._cols is None  # the layer's own passes never need it
    rows = K.im2col(
        x,
        layer.kernel_size,
        layer.stride,
        layer.padding,
        layer.dilation,
        np.empty((x.shape[0] * z.shape[2] * z.shape[3], layer.fan_in)),
    )
    cached_x, cached_z, cols = cache
    assert cached_x is x and cached_z is z and len(cache) == 3
    np.testing.assert_array_equal(cols, rows)
    assert cache[2] is cols and cache[-1] is cols and cache[:3][2] is cols
    assert cache[0] is x and cache[1] is z


def test_init_is_torch_default_and_seeded():
    layer = Conv2d(3, 8, (5, 3), rng=7)
    bound = 1 / np.sqrt(3 * 5 * 3)
    assert layer.weight.shape == (8, 3, 5, 3) and layer.bias.shape == (8,)
    assert np.abs(layer.weight).max() <= bound and np.abs(layer.bias).max() <= bound
    assert np.abs(layer.weight).max() > 0.8 * bound
    again = Conv2d(3, 8, (5, 3), rng=7)
    np.testing.assert_array_equal(layer.weight, again.weight)
    np.testing.assert_array_equal(layer.bias, again.bias)
    assert sorted(layer.state_dict()) == ["bias", "weight"]
    assert Conv2d(3, 8, 3, bias=False).bias is None
    assert Conv2d(3, 8, 3, dtype=np.float32).weight.dtype == np.float32


def test_repr():
    assert repr(Conv2d(1, 2, kernel_size=3)) == "Conv2d(1, 2, kernel_size=3)"
    assert repr(Conv2d(1, 2, (3, 5), stride=2, padding=(1, 0), dilation=1, bias=False)) == (
        "Conv2d(1, 2, kernel_size=(3, 5), stride=2, padding=(1, 0), bias=False)"
    )


# -- errors ------------------------------------------------------------------------------------


def test_error_wrong_channels():
    layer = Conv2d(1, 2, kernel_size=3)
    with pytest.raises(ValueError) as info:
        layer.forward(np.zeros((32, 3, 28, 28)))
    assert str(info.value) == (
        "Conv2d(1, 2, kernel_size=3) expects input of shape (B, 1, H, W), got (32, 3, 28, 28)"
    )


@pytest.mark.parametrize(
    "shape, hint",
    [((32, 784), "x.reshape(B, C, H, W)"), ((1, 28, 28), "x[None]")],
    ids=["flat", "no-batch"],
)
def test_error_wrong_ndim_has_a_hint(shape, hint):
    with pytest.raises(ValueError, match=r"expects input of shape \(B, 1, H, W\)") as info:
        Conv2d(1, 2, 3).forward(np.zeros(shape))
    assert hint in str(info.value)


def test_error_input_smaller_than_dilated_kernel():
    layer = Conv2d(1, 1, 5, padding=1, dilation=2)
    with pytest.raises(ValueError, match=r"smaller than the dilated kernel 9x9") as info:
        layer.forward(np.zeros((1, 1, 6, 10)))
    assert "6x10 (with padding 8x12)" in str(info.value)
    layer.forward(np.zeros((1, 1, 7, 7)))  # 9x9 padded: exactly one output


def test_error_dtype_mismatch():
    with pytest.raises(TypeError, match=r"float64 parameters but got a float32 input"):
        Conv2d(1, 2, 3).forward(np.zeros((1, 1, 5, 5), np.float32))


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"kernel_size": 0}, "kernel_size must be >= 1"),
        ({"kernel_size": (3, 3, 3)}, "kernel_size must be an int or a pair"),
        ({"kernel_size": 3, "stride": 0}, "stride must be >= 1"),
        ({"kernel_size": 3, "padding": -1}, "padding must be >= 0"),
        ({"kernel_size": 3, "dilation": (1, 0)}, "dilation must be >= 1"),
        ({"kernel_size": 2.5}, "kernel_size must be an int or a pair"),
    ],
    ids=["k0", "k3d", "s0", "pneg", "d0", "kfloat"],
)
def test_error_bad_constructor_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        Conv2d(1, 2, **kwargs)


def test_error_bad_channels():
    with pytest.raises(ValueError, match="in_channels must be a positive int"):
        Conv2d(0, 2, 3)


def test_error_feedback_before_forward():
    with pytest.raises(RuntimeError, match="needs the forward pass first"):
        Conv2d(1, 2, 3).vjp(np.zeros((1, 2, 3, 3)))


def test_error_vjp_shape():
    layer = Conv2d(1, 2, 3)
    layer.forward(np.zeros((1, 1, 5, 5)))
    with pytest.raises(ValueError, match=r"output's shape \(1, 2, 3, 3\), got \(1, 2, 4, 4\)"):
        layer.vjp(np.zeros((1, 2, 4, 4)))
