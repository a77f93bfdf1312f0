"""The shifted-GEMM (kn2row) forward of Conv2d: its two copies against literal oracles, the
whole pass against the unrolled-dense oracle through the layer, where the dispatch sends it, and
the serial and threaded builds."""

import numba
import numpy as np
import pytest

from lfp_ref.kernels.cpu import _blas
from lfp_ref.kernels.cpu import conv as K
from lfp_ref.layers.conv import Conv2d
from tests.oracle import conv as oracle
from tests.tolerances import assert_close

pytestmark = pytest.mark.skipif(
    not _blas.AVAILABLE, reason="NumPy's bundled OpenBLAS not found: the shifted path is off"
)

DTYPES = [pytest.param(np.float64, id="f64"), pytest.param(np.float32, id="f32")]

# (C, O, H, W, kernel_size, padding): stride and dilation 1, C at SHIFTED_MIN_CHANNELS or more
CONFIGS = [
    (16, 3, 7, 9, 3, 1),
    (17, 2, 6, 5, (2, 3), (0, 2)),
    (16, 4, 8, 8, 5, 2),
    (16, 2, 5, 6, 1, 0),
    (16, 3, 4, 4, 3, (3, 1)),  # rows of outputs whose windows lie entirely in the padding
    (20, 5, 9, 7, (3, 1), (1, 0)),
]


def _pair(v):
    return v if isinstance(v, tuple) else (v, v)


def config_id(cfg):
    c, o, h, w, k, p = cfg
    return f"C{c}O{o}_{h}x{w}_k{'x'.join(map(str, _pair(k)))}_p{'x'.join(map(str, _pair(p)))}"


def make_case(rng, cfg, dtype, batch=5, bias=True):
    c, o, h, w, k, p = cfg
    layer = Conv2d(c, o, k, padding=p, bias=bias, dtype=dtype, rng=rng)
    return layer, rng.standard_normal((batch, c, h, w)).astype(dtype)


def pad_oracle(x, ph, pw):
    """padded[c, (b*Hp + r)*Wp + q] = x[b, c, r - ph, q - pw], 0 in the padding."""
    n_batch, n_chan, height, width = x.shape
    hp, wp = height + 2 * ph, width + 2 * pw
    out = np.zeros((n_chan, n_batch * hp * wp), x.dtype)
    for b, c, r, q in np.ndindex(n_batch, n_chan, hp, wp):
        if ph <= r < ph + height and pw <= q < pw + width:
            out[c, (b * hp + r) * wp + q] = x[b, c, r - ph, q - pw]
    return out


def gather_oracle(grid, hp, wp, bias, shape):
    """out[b, o, oh, ow] = grid[o, (b*Hp + oh)*Wp + ow] (+ bias[o])."""
    out = np.empty(shape, grid.dtype)
    for b, o, oh, ow in np.ndindex(*shape):
        out[b, o, oh, ow] = grid[o, (b * hp + oh) * wp + ow] + (bias[o] if bias.size else 0)
    return out


def _kernel_calls(rng, dtype):
    """{name: (call(build) -> result, oracle)} for the two copies of the shifted forward on one
    small case each: the padding (the batch-folded im2col of a 1x1 kernel) and the gather."""
    x = rng.standard_normal((3, 4, 5, 6)).astype(dtype)
    hp, wp, n_out = 5 + 2 * 2, 6 + 2 * 1, 3
    grid = rng.standard_normal((n_out, 3 * hp * wp - 7)).astype(dtype)
    bias = rng.standard_normal(n_out).astype(dtype)
    shape = (3, n_out, hp - 3 + 1, wp - 2 + 1)

    def pad(build):
        out = np.full((4, 3 * hp * wp), np.nan, dtype)
        build(x, 1, 1, 1, 1, 2, 1, 1, 1, hp, wp, out.reshape(4, 3, hp * wp))
        return out

    def gather(build, with_bias):
        out = np.full(shape, np.nan, dtype)
        build(grid, hp, wp, bias if with_bias else np.empty(0, dtype), out)
        return out

    return {
        "_im2col_folded": (pad, lambda: pad_oracle(x, 2, 1)),
        "_gather_grid": (
            lambda build: np.stack([gather(build, True), gather(build, False)]),
            lambda: np.stack(
                [
                    gather_oracle(grid, hp, wp, bias, shape),
                    gather_oracle(grid, hp, wp, np.empty(0, dtype), shape),
                ]
            ),
        ),
    }


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name", ["_im2col_folded", "_gather_grid"])
def test_copy_kernels_match_their_oracles(rng, dtype, name):
    call, expected = _kernel_calls(rng, dtype)[name]
    # copies only: bit for bit (a sum with the bias is one rounding, as in the oracle)
    np.testing.assert_array_equal(call(getattr(K, name).serial), expected())


@pytest.mark.slow
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name", ["_im2col_folded", "_gather_grid"])
def test_true_parallel_copy_kernels_match_serial(rng, dtype, name):
    call, _ = _kernel_calls(rng, dtype)[name]
    threaded = numba.njit(parallel=True)(getattr(K, name).py_func)  # fresh, uncached
    np.testing.assert_array_equal(call(threaded), call(getattr(K, name).serial))


def _force_chunks(monkeypatch):
    # the shifted path runs only for batches that take more than one chunk
    monkeypatch.setattr(K, "WHOLE_BATCH_BYTES", 0)
    monkeypatch.setattr(K, "CHUNK_BYTES", 0)  # one sample a chunk
    monkeypatch.setattr(K, "SHIFTED_MIN_FILL", 0.0)  # any geometry (test_the_dispatch: the bound)


def _spy(monkeypatch):
    calls = []
    original = K._forward_shifted

    def spy(*args):
        calls.append(args[0].shape)
        return original(*args)

    monkeypatch.setattr(K, "_forward_shifted", spy)
    return calls


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("bias", [True, False], ids=["bias", "nobias"])
@pytest.mark.parametrize("cfg", CONFIGS, ids=config_id)
def test_shifted_forward_matches_the_oracle(rng, cfg, bias, dtype, monkeypatch):
    _force_chunks(monkeypatch)
    calls = _spy(monkeypatch)
    layer, x = make_case(rng, cfg, dtype, bias=bias)
    z = layer.forward(x)
    assert calls == [x.shape]  # the dispatch took the shifted GEMMs
    geometry = dict(stride=layer.stride, padding=layer.padding, dilation=layer.dilation)
    assert_close(z, oracle.conv2d_forward(x, layer.weight, layer.bias, **geometry), dtype)
    # the VJPs after it build their own columns (none were left by the forward pass)
    assert layer._cols_owner is None
    v = rng.standard_normal(z.shape).astype(dtype)
    dx, grads = layer.vjp(v)
    ex_dx, ex_dw, _ = oracle.conv2d_vjp(x, layer.weight, v, **geometry)
    assert_close(dx, ex_dx, dtype)
    assert_close(grads["weight"], ex_dw, dtype)


@pytest.mark.parametrize("dtype", DTYPES)
def test_shifted_and_im2col_forwards_agree_to_rounding(rng, dtype, monkeypatch):
    # the same layer both ways: the two GEMM orders differ by rounding only
    _force_chunks(monkeypatch)
    layer, x = make_case(rng, CONFIGS[0], dtype)
    shifted = layer.forward(x)
    monkeypatch.setattr(K, "SHIFTED_MIN_CHANNELS", np.inf)
    assert_close(layer.forward(x), shifted, dtype)


def test_shifted_forward_overwrites_whatever_the_output_held(rng, monkeypatch):
    _force_chunks(monkeypatch)
    layer, x = make_case(rng, CONFIGS[0], np.float64)
    ho, wo = layer.output_size(*x.shape[2:])
    out = np.full((x.shape[0], layer.out_channels, ho, wo), np.nan)
    cols = np.empty((1, layer.fan_in, ho * wo))
    geometry = (layer.stride, layer.padding, layer.dilation)
    K.conv2d_forward_samples(x, layer.weight, layer.bias, *geometry, cols, out)
    assert_close(out, oracle.conv2d_forward(x, layer.weight, layer.bias, *geometry))


def test_the_dispatch():
    geometry = ((3, 3), (1, 1), (1, 1), (1, 1))
    assert K.shifted_forward(64, 7, 16, geometry, (32, 32))
    assert not K.shifted_forward(64, 64, 16, geometry, (32, 32))  # one chunk: im2col's columns
    assert not K.shifted_forward(64, 7, 15, geometry, (32, 32))  # too few channels
    assert not K.shifted_forward(64, 7, 16, ((3, 3), (2, 1), (1, 1), (1, 1)), (32, 32))  # stride
    assert not K.shifted_forward(64, 7, 16, ((3, 3), (1, 1), (1, 1), (1, 2)), (32, 32))  # dilation
    # the share of the grid that is outputs: 10x10 of 12x12 = 0.69 passes, 8x8 of 12x12 fails
    assert K.shifted_forward(64, 7, 16, ((3, 3), (1, 1), (0, 0), (1, 1)), (12, 12))
    assert not K.shifted_forward(64, 7, 16, ((5, 5), (1, 1), (0, 0), (1, 1)), (12, 12))


def test_without_numpys_openblas_the_forward_takes_im2col(rng, monkeypatch):
    _force_chunks(monkeypatch)
    monkeypatch.setattr(_blas, "AVAILABLE", False)
    calls = _spy(monkeypatch)
    layer, x = make_case(rng, CONFIGS[0], np.float64)
    z = layer.forward(x)
    assert calls == []
    geometry = dict(stride=layer.stride, padding=layer.padding, dilation=layer.dilation)
    assert_close(z, oracle.conv2d_forward(x, layer.weight, layer.bias, **geometry))
