"""Test tolerances, declared once, and the comparison that uses them."""

import numpy as np

# Tolerances, declared once. float64 kernel vs float64 oracle: rounding of a few reordered sums.
RTOL64 = 1e-10
# float32 kernels vs the float64 oracle: ~1e-7 unit rounding amplified by sums of O(100) terms
# and by the division by stab(z) when |z| is small.
RTOL32 = 2e-4


def assert_close(actual, expected, dtype=np.float64, rtol=None):
    """Compare with a relative tolerance scaled to the magnitude of ``expected`` (so entries that
    cancel to ~0 are judged against the array's scale, not their own)."""
    rtol = rtol if rtol is not None else (RTOL64 if np.dtype(dtype) == np.float64 else RTOL32)
    expected = np.asarray(expected, dtype=np.float64)
    actual = np.asarray(actual, dtype=np.float64)
    assert actual.shape == expected.shape, (actual.shape, expected.shape)
    scale = max(np.abs(expected).max(initial=0.0), 1e-300)
    np.testing.assert_allclose(actual, expected, rtol=rtol, atol=rtol * scale)
