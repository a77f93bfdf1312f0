"""What the kernels' public wrappers check before a kernel runs, shared by every backend.

A jitted kernel trusts its arguments: it loops over the size of one array and indexes the others
by the same index (the elementwise kernels), or by indices computed from shapes it reads off some
of its arrays (im2col, pooling, BatchNorm), and Numba does not check bounds. An argument of the
wrong size is then read or written past its end, which gives an error, garbage, or silently
corrupted memory. So every public wrapper in ``kernels/<backend>/*.py`` checks, before the
kernel runs, what the kernel assumes of its arguments:

- each array is an array (anything with ``shape``, ``dtype`` and ``flags``: NumPy, CuPy, the
  CUDA simulator's arrays) of the dtype the kernel computes in (float32 or float64, one dtype for
  all the arrays of a call unless said otherwise);
- the shapes agree: with each other, or with the shape the kernel derives from its geometry
  arguments (``(B*Ho*Wo, C*kh*kw)`` for im2col);
- arrays that the wrapper flattens (a view that must not be a copy) are C-contiguous;
- outputs are writeable.

Every check reads attributes only (no pass over the data), so a wrapper's checks cost about a
microsecond. A failed check raises :class:`TypeError` (not an array, wrong dtype) or
:class:`ValueError` (wrong shape, not contiguous, read-only), naming the wrapper, the argument,
what was expected and what came, e.g.::

    stabilized_ratio: reward must have the shape of z, (64, 10), got (64, 3)

The CPU wrappers (``kernels/cpu``) and their CUDA twins (``kernels/cuda``) call the same
functions.
"""

from __future__ import annotations

import numbers

import numpy as np

__all__ = [
    "FLOAT_DTYPES",
    "agree",
    "array",
    "contiguous",
    "dtype_in",
    "elementwise_ok",
    "float_array",
    "geometry",
    "is_c_contiguous",
    "is_writeable",
    "matching",
    "ndim",
    "output",
    "same_dtype",
    "shape",
]

#: the dtypes the floating-point kernels compute in (native byte order)
FLOAT_DTYPES = (np.dtype(np.float32), np.dtype(np.float64))


def _describe(a):
    return type(a).__module__.split(".")[0] + "." + type(a).__name__


def is_c_contiguous(a):
    """Whether ``a`` is C-contiguous (NumPy and CuPy flags objects, Numba device arrays' dict)."""
    flags = a.flags
    try:
        return bool(flags.c_contiguous)
    except AttributeError:
        return bool(flags["C_CONTIGUOUS"])


def is_writeable(a):
    """Whether ``a`` may be written (arrays without a read-only flag, CuPy's, always may)."""
    flags = a.flags
    try:
        return bool(flags.writeable)
    except AttributeError:
        try:
            return bool(flags["WRITEABLE"])
        except (KeyError, TypeError):
            return True


def array(caller, name, a):
    """``a`` must be an array (``shape``, ``dtype`` and ``flags``); TypeError otherwise."""
    if not (hasattr(a, "shape") and hasattr(a, "dtype") and hasattr(a, "flags")):
        raise TypeError(f"{caller}: {name} must be an array, got {_describe(a)}")
    return a


# Each check below first tries a fast path that only reads attributes and compares them (these
# checks run dozens of times per training step, where hasattr and nested calls add up), and
# returns when that proves the argument fine. Anything else (a failure, an array type with other
# flags, a shape given as a list) goes to the detailed check of the same name, ``_*_in_detail``,
# which decides and words the error. A fast path accepts only what its detailed check accepts
# (tests/test_fast_paths.py holds them to that).


def dtype_in(caller, name, a, dtypes):
    """``a`` must be an array of one of ``dtypes``; TypeError otherwise."""
    try:
        if a.dtype in dtypes and a.shape is not None and a.flags is not None:
            return a
    except (AttributeError, TypeError):
        pass
    return _dtype_in_in_detail(caller, name, a, dtypes)


def float_array(caller, name, a):
    """``a`` must be a float32 or float64 array; TypeError otherwise."""
    try:
        if a.dtype in FLOAT_DTYPES and a.shape is not None and a.flags is not None:
            return a
    except (AttributeError, TypeError):
        pass
    return _dtype_in_in_detail(caller, name, a, FLOAT_DTYPES)


def same_dtype(caller, name, a, like_name, like):
    """``a`` must have ``like``'s dtype; TypeError otherwise."""
    try:
        if a.dtype == like.dtype and a.shape is not None and a.flags is not None:
            return a
    except (AttributeError, TypeError):
        pass
    return _same_dtype_in_detail(caller, name, a, like_name, like)


def ndim(caller, name, a, n, layout):
    """``a`` must have ``n`` dimensions, described by ``layout`` (e.g. ``"(B, C, H, W)"``)."""
    try:
        if len(a.shape) == n and a.dtype is not None and a.flags is not None:
            return a
    except (AttributeError, TypeError):
        pass
    return _ndim_in_detail(caller, name, a, n, layout)


def shape(caller, name, a, expected, why=""):
    """``a`` must have shape ``expected``; ``why`` (e.g. ``" (B*Ho*Wo, C*kh*kw)"``) says where
    the expected shape comes from."""
    try:
        # two tuples compare as the detailed check's tuple() copies of them do
        if (
            type(expected) is tuple
            and type(a.shape) is tuple
            and a.shape == expected
            and a.dtype is not None
            and a.flags is not None
        ):
            return a
    except (AttributeError, TypeError):
        pass
    return _shape_in_detail(caller, name, a, expected, why)


def contiguous(caller, name, a, output=False):
    """``a`` must be C-contiguous (the wrapper flattens or reshapes it into a view)."""
    try:
        if a.flags.c_contiguous:
            return a
    except AttributeError:  # flags without the attribute (Numba device arrays' dict)
        pass
    return _contiguous_in_detail(caller, name, a, output)


def output(caller, name, a, expected=None, like_name=None, like=None, need_contiguous=True):
    """An output: an array of ``like``'s dtype (float32/float64 without ``like``), of shape
    ``expected`` (``like``'s shape when None and ``like`` is given), C-contiguous unless
    ``need_contiguous`` is False, and writeable."""
    try:
        flags, a_shape = a.flags, a.shape
        if expected is not None:
            wanted = expected
        else:
            wanted = a_shape if like is None else like.shape
        if (
            (a.dtype in FLOAT_DTYPES if like is None else a.dtype == like.dtype)
            and type(a_shape) is tuple
            and type(wanted) is tuple
            and a_shape == wanted
            and (flags.c_contiguous or not need_contiguous)
            and flags.writeable
        ):
            return a
    except (AttributeError, TypeError):
        pass
    return _output_in_detail(caller, name, a, expected, like_name, like, need_contiguous)


# -- the detailed checks: every error is decided and worded here ------------------------------


def _dtype_in_in_detail(caller, name, a, dtypes):
    array(caller, name, a)
    if a.dtype not in dtypes:
        wanted = " or ".join(np.dtype(d).name for d in dtypes)
        raise TypeError(f"{caller}: {name} must have dtype {wanted}, got {a.dtype}")
    return a


def _same_dtype_in_detail(caller, name, a, like_name, like):
    array(caller, name, a)
    if a.dtype != like.dtype:
        raise TypeError(
            f"{caller}: {name} has dtype {a.dtype} but {like_name} has dtype {like.dtype}; "
            "the arrays of one call share one dtype"
        )
    return a


def _ndim_in_detail(caller, name, a, n, layout):
    array(caller, name, a)
    if len(a.shape) != n:
        raise ValueError(f"{caller}: {name} must have shape {layout}, got {tuple(a.shape)}")
    return a


def _shape_in_detail(caller, name, a, expected, why=""):
    array(caller, name, a)
    if tuple(a.shape) != tuple(expected):
        raise ValueError(
            f"{caller}: {name} must have shape {tuple(expected)}{why}, got {tuple(a.shape)}"
        )
    return a


def _contiguous_in_detail(caller, name, a, output=False):
    if not is_c_contiguous(a):
        hint = (
            "it is written in place: allocate it C-contiguous (np.empty(shape, dtype))"
            if output
            else f"pass np.ascontiguousarray({name})"
        )
        raise ValueError(f"{caller}: {name} must be C-contiguous; {hint}")
    return a


def _output_in_detail(caller, name, a, expected, like_name, like, need_contiguous):
    if like is None:
        _dtype_in_in_detail(caller, name, a, FLOAT_DTYPES)
    else:
        _same_dtype_in_detail(caller, name, a, like_name, like)
    if expected is None and like is not None:
        if tuple(a.shape) != tuple(like.shape):
            raise ValueError(
                f"{caller}: {name} must have the shape of {like_name}, {tuple(like.shape)}, "
                f"got {tuple(a.shape)}"
            )
    elif expected is not None:
        _shape_in_detail(caller, name, a, expected)
    if need_contiguous:
        _contiguous_in_detail(caller, name, a, output=True)
    if not is_writeable(a):
        raise ValueError(f"{caller}: {name} is written in place but is read-only")
    return a


def matching(caller, inputs, outputs=()):
    """The elementwise contract: every array of ``inputs`` and ``outputs`` (``(name, array)``
    pairs; the first input is the reference) is a C-contiguous float32/float64 array of the first
    input's shape and dtype, and every output is writeable.

    The common case reads a few attributes per array; the messages are built only on failure."""
    try:
        ref = inputs[0][1]
        ref_shape, ref_dtype = ref.shape, ref.dtype
        if ref_dtype in FLOAT_DTYPES:
            for _, a in inputs:
                if a.shape != ref_shape or a.dtype != ref_dtype or not a.flags.c_contiguous:
                    break
            else:
                for _, a in outputs:
                    flags = a.flags
                    if (
                        a.shape != ref_shape
                        or a.dtype != ref_dtype
                        or not flags.c_contiguous
                        or not flags.writeable
                    ):
                        break
                else:
                    return
    except (AttributeError, TypeError):  # not an array, or flags without these attributes
        pass
    _matching_in_detail(caller, inputs, outputs)


def elementwise_ok(a, b, out):
    """The fast path of :func:`matching` for the hottest wrappers (two inputs or one, one output),
    unrolled: whether ``a``, ``b`` (None: only ``a``) and ``out`` are C-contiguous float32/float64
    arrays of ``a``'s shape and dtype and ``out`` is writeable. False (never an error) otherwise:
    the wrapper then calls :func:`matching`, which says what is wrong."""
    try:
        shape, dtype, flags = a.shape, a.dtype, out.flags
        return (
            dtype in FLOAT_DTYPES
            and out.shape == shape
            and out.dtype == dtype
            and a.flags.c_contiguous
            and flags.c_contiguous
            and flags.writeable
            and (b is None or (b.shape == shape and b.dtype == dtype and b.flags.c_contiguous))
        )
    except AttributeError:
        return False


def _matching_in_detail(caller, inputs, outputs):
    ref_name, ref = inputs[0]
    float_array(caller, ref_name, ref)
    contiguous(caller, ref_name, ref)
    for name, a in inputs[1:]:
        same_dtype(caller, name, a, ref_name, ref)
        if tuple(a.shape) != tuple(ref.shape):
            raise ValueError(
                f"{caller}: {name} must have the shape of {ref_name}, {tuple(ref.shape)}, "
                f"got {tuple(a.shape)}"
            )
        contiguous(caller, name, a)
    for name, a in outputs:
        output(caller, name, a, like_name=ref_name, like=ref)


def agree(first, others, out, out_shape):
    """The fast path of a wrapper's checks, for the common case only: whether ``first`` is a
    float32/float64 array, each ``(array, shape)`` of ``others`` has that dtype and shape, and
    ``out`` is a writeable array of that dtype and of ``out_shape``. False (never an error) for
    anything else: the wrapper then runs its detailed checks, which say what is wrong."""
    try:
        dtype = first.dtype
        if (
            dtype not in FLOAT_DTYPES
            or out.dtype != dtype
            or out.shape != out_shape
            or not out.flags.writeable
        ):
            return False
        for a, expected in others:
            if a.dtype != dtype or a.shape != expected:
                return False
    except (AttributeError, TypeError):
        return False
    return True


def _pair(caller, name, value, minimum):
    # the layers' own pairs: a tuple of two ints (checked without the abstract-class machinery)
    if type(value) is tuple and len(value) == 2:
        first, second = value
        if type(first) is int and type(second) is int and first >= minimum <= second:
            return value
    try:
        pair = tuple(value)
    except TypeError:
        pair = ()
    if len(pair) != 2 or not all(
        isinstance(v, numbers.Integral) and not isinstance(v, bool) for v in pair
    ):
        raise TypeError(f"{caller}: {name} must be a pair of ints, got {value!r}")
    if min(pair) < minimum:
        raise ValueError(f"{caller}: {name} must be >= {minimum} in both dimensions, got {value!r}")
    return int(pair[0]), int(pair[1])


def geometry(caller, kernel_size, stride, padding, dilation=None):
    """A window geometry as the kernels take it: pairs of ints, ``kernel_size``, ``stride`` and
    ``dilation`` >= 1, ``padding`` >= 0. Returns the pairs (``dilation`` (1, 1) when None)."""
    # the fast path: the layers' own tuples of two ints (each checked to be a tuple before it is
    # unpacked, so that no other iterable is consumed here)
    pairs = (kernel_size, stride, padding, (1, 1) if dilation is None else dilation)
    if (
        type(kernel_size) is tuple
        and type(stride) is tuple
        and type(padding) is tuple
        and type(pairs[3]) is tuple
    ):
        try:
            (kh, kw), (sh, sw), (ph, pw), (dh, dw) = pairs
        except ValueError:  # not all pairs
            kh = None
        if (
            type(kh) is int
            and type(kw) is int
            and type(sh) is int
            and type(sw) is int
            and type(ph) is int
            and type(pw) is int
            and type(dh) is int
            and type(dw) is int
            and kh >= 1 <= kw
            and sh >= 1 <= sw
            and ph >= 0 <= pw
            and dh >= 1 <= dw
        ):
            return pairs
    return _geometry_in_detail(caller, kernel_size, stride, padding, dilation)


def _geometry_in_detail(caller, kernel_size, stride, padding, dilation=None):
    return (
        _pair(caller, "kernel_size", kernel_size, 1),
        _pair(caller, "stride", stride, 1),
        _pair(caller, "padding", padding, 0),
        (1, 1) if dilation is None else _pair(caller, "dilation", dilation, 1),
    )
