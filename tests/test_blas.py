"""NumPy's own BLAS GEMM (lfp_ref.kernels.cpu._blas): c = a @ b + beta c on slices of wider
arrays, against a float64 NumPy oracle, and what it refuses."""

import numpy as np
import pytest

from lfp_ref.kernels.cpu import _blas
from tests.tolerances import assert_close

DTYPES = [pytest.param(np.float64, id="f64"), pytest.param(np.float32, id="f32")]


def test_numpys_openblas_is_found_where_its_wheel_puts_it():
    # where NumPy's wheel ships an OpenBLAS, the GEMMs must load from it (else the shifted
    # convolution would be off without a word)
    if not _blas._candidates():
        pytest.skip("this NumPy has no bundled OpenBLAS (not a wheel install)")
    assert _blas.AVAILABLE


needs_blas = pytest.mark.skipif(not _blas.AVAILABLE, reason="NumPy's bundled OpenBLAS not found")


@needs_blas
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("beta", [0.0, 1.0, -0.5])
def test_gemm_on_slices_matches_the_oracle(rng, dtype, beta):
    wide_a = rng.standard_normal((5, 9)).astype(dtype)
    wide_b = rng.standard_normal((7, 40)).astype(dtype)
    wide_c = rng.standard_normal((5, 50)).astype(dtype)
    a, b, c = wide_a[:, 2:9], wide_b[:, 3:30], wide_c[:, 11:38]  # (5, 7) @ (7, 27) -> (5, 27)
    before = wide_c.copy()
    if beta == 0.0:
        c[...] = np.nan  # beta 0 ignores the old content entirely
    expected = a.astype(np.float64) @ b.astype(np.float64)
    expected += beta * before[:, 11:38].astype(np.float64) if beta else 0.0
    _blas.gemm(a, b, c, beta)
    assert_close(c, expected, dtype)
    # nothing outside the slice moved
    np.testing.assert_array_equal(wide_c[:, :11], before[:, :11])
    np.testing.assert_array_equal(wide_c[:, 38:], before[:, 38:])


@needs_blas
def test_gemm_with_empty_dimensions(rng):
    a, b = np.ones((3, 0)), np.ones((0, 4))
    c = np.full((3, 4), 2.0)
    _blas.gemm(a, b, c, 1.0)  # no terms: c = beta c
    np.testing.assert_array_equal(c, 2.0)
    _blas.gemm(np.ones((0, 2)), np.ones((2, 4)), np.empty((0, 4)), 0.0)  # nothing to write


@needs_blas
@pytest.mark.parametrize(
    "args, error, match",
    [
        ((np.ones((2, 3), np.float32), np.ones((3, 4)), np.ones((2, 4))), TypeError, "share"),
        ((np.ones((2, 3), int), np.ones((3, 4), int), np.ones((2, 4), int)), TypeError, "float32"),
        ((np.ones((2, 3)), np.ones((4, 4)), np.ones((2, 4))), ValueError, "do not chain"),
        ((np.ones((2, 3)), np.ones((3, 4)), np.ones((2, 5))), ValueError, "do not chain"),
        ((np.ones((2, 3)), np.ones((3, 8))[:, ::2], np.ones((2, 4))), ValueError, "contiguous"),
        ((np.ones((2, 3)), np.ones((3, 4)), np.ones((4, 2)).T), ValueError, "contiguous"),
    ],
)
def test_gemm_refuses_what_blas_cannot_take(args, error, match):
    with pytest.raises(error, match=match):
        _blas.gemm(*args, 0.0)


@needs_blas
def test_gemm_refuses_an_output_that_overlaps_an_input_or_is_read_only():
    wide = np.ones((2, 8))
    with pytest.raises(ValueError, match="overlap"):
        _blas.gemm(wide[:, :2], np.ones((2, 4)), wide[:, 4:], 0.0)
    frozen = np.ones((2, 4))
    frozen.flags.writeable = False
    with pytest.raises(ValueError, match="writeable"):
        _blas.gemm(np.ones((2, 2)), np.ones((2, 4)), frozen, 0.0)


def test_gemm_says_when_numpys_openblas_is_missing(monkeypatch):
    monkeypatch.setattr(_blas, "AVAILABLE", False)
    with pytest.raises(RuntimeError, match="OpenBLAS was not found"):
        _blas.gemm(np.ones((2, 2)), np.ones((2, 2)), np.ones((2, 2)), 0.0)
