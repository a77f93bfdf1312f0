"""NumPy's own BLAS GEMM, for the one product ``np.matmul`` cannot express: ``c = a @ b + beta c``
accumulated into an output that is a slice of a larger array (the shifted-GEMM convolution in
:mod:`.conv` adds k*k products into one output, and NumPy's matmul has no ``beta``).

Why NumPy's library and not SciPy's ``cython_blas``: the NumPy and SciPy wheels each bundle an
OpenBLAS with its own thread pool, and after a call a pool's workers keep spinning for a while.
Calling the two in alternation made each wait for the other's spinning workers (measured on
2 cores: a SciPy GEMM of 1.3 ms followed by NumPy GEMMs of 4.3 ms took 16 ms together, 5.7 ms
with NumPy's library for both). Loading the file NumPy loaded gives the handle NumPy already
holds (the dynamic loader opens a file once), so the GEMMs here share NumPy's pool.

The library is found where NumPy's wheels put it (``numpy.libs`` beside the package, or
``numpy/.dylibs``), with the CBLAS symbol names of those wheels (NumPy 2: ``scipy_cblas_sgemm64_``,
NumPy 1.26: ``cblas_sgemm64_``; 64-bit integers). A NumPy built against another BLAS (conda,
Accelerate, a distribution's package) has none there: :data:`AVAILABLE` is then False and the
convolution keeps its im2col GEMMs, which give the same results to rounding.
"""

import ctypes
from pathlib import Path

import numpy as np

# CBLAS enum values
_ROW_MAJOR = 101
_NO_TRANS = 111

# (prefix, suffix, integer type) of the GEMM symbols, most specific first
_SYMBOLS = (
    ("scipy_cblas_", "64_", ctypes.c_int64),
    ("cblas_", "64_", ctypes.c_int64),
    ("scipy_cblas_", "", ctypes.c_int),
    ("cblas_", "", ctypes.c_int),
)


def _candidates():
    """NumPy's bundled OpenBLAS files, where its wheels put them."""
    package = Path(np.__file__).resolve().parent
    found = []
    for folder in (package.parent / "numpy.libs", package / ".dylibs"):
        if folder.is_dir():
            found += sorted(p for p in folder.iterdir() if "openblas" in p.name.lower())
    return found


def _load():
    """``{dtype: CBLAS gemm function}`` from NumPy's bundled OpenBLAS, or {} when there is none."""
    for path in _candidates():
        try:
            library = ctypes.CDLL(str(path))
        except OSError:
            continue
        for prefix, suffix, integer in _SYMBOLS:
            functions = {}
            for letter, scalar in (("s", ctypes.c_float), ("d", ctypes.c_double)):
                function = getattr(library, f"{prefix}{letter}gemm{suffix}", None)
                if function is None:
                    break
                function.restype = None
                enum, pointer = ctypes.c_int, ctypes.c_void_p
                function.argtypes = [enum, enum, enum, *[integer] * 3, scalar, pointer, integer]
                function.argtypes += [pointer, integer, scalar, pointer, integer]
                functions[np.dtype(scalar)] = function
            if len(functions) == 2:
                return functions
    return {}


_GEMM = _load()
AVAILABLE = bool(_GEMM)


def _address(a):
    """Where a's first element lies (a view's own start, not its base's)."""
    return a.__array_interface__["data"][0]


def _leading(caller, name, a):
    """The row stride of a 2-D array in elements; its rows must be contiguous."""
    itemsize = a.dtype.itemsize
    if a.ndim != 2:
        raise ValueError(f"{caller}: {name} must be 2-D, got shape {a.shape}")
    if a.size == 0:  # nothing is read or written; BLAS wants a leading dimension >= 1
        return max(a.shape[1], 1)
    if a.shape[1] > 1 and a.strides[1] != itemsize:
        raise ValueError(f"{caller}: {name} must have contiguous rows, got strides {a.strides}")
    stride = a.strides[0] // itemsize if a.shape[0] > 1 else a.shape[1]
    if stride < a.shape[1] or a.strides[0] % itemsize:
        raise ValueError(f"{caller}: {name}'s rows overlap or are misaligned, strides {a.strides}")
    return stride


def gemm(a, b, c, beta):
    """``c[...] = a @ b + beta * c`` in place through NumPy's BLAS (needs :data:`AVAILABLE`).
    a (m, k), b (k, n), c (m, n): 2-D arrays of one float dtype whose rows are contiguous; the
    rows may lie further apart than their length (slices of wider arrays). c is writeable and
    does not overlap a or b. ``beta`` 0 overwrites c (its old content may be anything, NaN too)."""
    caller = "gemm"
    if not AVAILABLE:
        raise RuntimeError(f"{caller}: NumPy's bundled OpenBLAS was not found (see {__name__})")
    function = _GEMM.get(c.dtype)
    if function is None or a.dtype != c.dtype or b.dtype != c.dtype:
        raise TypeError(
            f"{caller}: a, b and c must share float32 or float64, got {a.dtype}, {b.dtype}, "
            f"{c.dtype}"
        )
    (m, k), (k_b, n) = a.shape, b.shape
    if k_b != k or c.shape != (m, n):
        raise ValueError(f"{caller}: shapes {a.shape} @ {b.shape} -> {c.shape} do not chain")
    if not c.flags.writeable or np.may_share_memory(c, a) or np.may_share_memory(c, b):
        raise ValueError(f"{caller}: c must be writeable and must not overlap a or b")
    lda, ldb, ldc = _leading(caller, "a", a), _leading(caller, "b", b), _leading(caller, "c", c)
    if m == 0 or n == 0:
        return c
    function(
        _ROW_MAJOR, _NO_TRANS, _NO_TRANS, m, n, k,
        1.0, _address(a), lda, _address(b), ldb, float(beta), _address(c), ldc,
    )  # fmt: skip
    return c
