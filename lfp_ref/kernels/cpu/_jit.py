"""The one place that decides how CPU kernels are compiled.

fastmath stays off: the stabiliser ``z + eps * sgn0(z)`` depends on exact signs and on -0.0
comparing equal to 0.0, which fastmath's no-signed-zeros assumption may break. Set
``LFP_REF_FASTMATH=1`` only for experiments; tests assume it is off.

Where the compiled kernels are cached: numba's own choice, in order ``$NUMBA_CACHE_DIR``, the
package's ``__pycache__`` folders, the user-wide cache (``~/.cache/numba``). When none of them is
writable (a read-only install run with an unwritable home), numba refuses to build a cached
function ("cannot cache function ...: no locator available"), which would make ``import
lfp_ref`` fail; :func:`cached` then points numba at a per-user folder in the temporary directory,
``<tempfile.gettempdir()>/lfp_ref-numba-cache-<uid>`` (created private; not used if it belongs to
another user or others may write it), and compiles without a cache if even that fails.
"""

import os
import stat
import tempfile
import types
from pathlib import Path

import numba
from numba import njit

FASTMATH = os.environ.get("LFP_REF_FASTMATH", "0") == "1"

# Below this many elements a parallel region costs more than it saves. numba's workqueue pool
# (below) takes ~50-80 us to start a region, a serial pass over 2**17 float32 costs ~20 us, and
# the memory-bound kernels gain little from a second core (measured on 2 cores, float32: the
# stabiliser over 2**17 elements 19 us serial / 95 us parallel, 2**20: 190 / 160 us, 2**22:
# 1.8 / 0.9 ms).
PARALLEL_MIN_SIZE = 1 << 20

# Streaming kernels (``@kernel(streaming=True)``: one pass, a few operations per entry, bound by
# memory) gain from the second core only on larger arrays: parallel from 3 * PARALLEL_MIN_SIZE.
# Measured for every kernel call of a training step (2 cores, float32 and float64, 2026-12-07):
# at 1-2M entries the serial build of ReLU, the stabiliser, the products, BatchNorm's input VJP
# and its VJP sums was 0.03-0.3 ms faster per call (resnet-small's LFP step: 3.7 of the 24.8 ms
# its kernels over 2**18 entries took); from ~3M float32 entries (~2M float64) the builds are
# even, above them the parallel one wins (8M float32: ReLU 2.1 serial, 1.6 ms parallel).
STREAMING_FACTOR = 3

# OpenMP worker threads spin while idle and steal the cores from OpenBLAS, which runs the GEMMs
# between our parallel loops (measured: an MLP LFP step 24 ms with "omp", 4 ms with
# "workqueue"). numba's own pool sleeps instead. NUMBA_THREADING_LAYER still overrides.
if "NUMBA_THREADING_LAYER" not in os.environ:
    numba.config.THREADING_LAYER = "workqueue"

# error_model="numpy": x / 0 gives inf/nan as in NumPy (no per-division check); the engine
# rejects non-finite feedback with the parameter's name.
_OPTIONS = dict(cache=True, fastmath=FASTMATH, error_model="numpy")


def _renamed(fn, suffix):
    """A copy of ``fn`` under another name. Numba's on-disk cache is keyed by the function's
    name and source, not by its compile flags, so each build needs its own name or the serial
    and parallel (or fastmath) builds would load each other's machine code."""
    copy = types.FunctionType(
        fn.__code__, fn.__globals__, fn.__name__ + suffix, fn.__defaults__, fn.__closure__
    )
    copy.__qualname__ = fn.__qualname__ + suffix
    copy.__module__ = fn.__module__
    return copy


# The one exception to "fastmath off": a reduction whose order of terms its contract leaves open
# (a sum of squares for a norm, BatchNorm's float32 per-channel sums) may be reassociated, which
# lets LLVM vectorise it (measured 3x on a float32 sum of squares accumulated in float64). Only
# the "reassoc" flag: no assumptions about signs, zeros, NaN or inf.
_REASSOCIATE = {"reassoc"}


def fallback_cache_dir():
    """``<tempfile.gettempdir()>/lfp_ref-numba-cache-<uid>``, created with mode 0700, or None
    when it cannot be made writable or is not safe to use (another owner, a symbolic link,
    writable by others: numba's cache files are pickles it loads and runs)."""
    uid = os.getuid() if hasattr(os, "getuid") else os.environ.get("USERNAME", "user")
    path = Path(tempfile.gettempdir()) / f"lfp_ref-numba-cache-{uid}"
    try:
        path.mkdir(mode=0o700, exist_ok=True)
        info = os.lstat(path)
        if not stat.S_ISDIR(info.st_mode) or info.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
            return None
        if hasattr(os, "getuid") and info.st_uid != os.getuid():
            return None
        tempfile.TemporaryFile(dir=path).close()  # writable (numba's own test)
    except OSError:
        return None
    return path


def cached(decorate, fn):
    """``decorate(fn)`` (a numba decorator with ``cache=True``), falling back to
    :func:`fallback_cache_dir` when numba finds no writable cache location, and to no cache when
    that fails too (see the module docstring). The CUDA twins can compile through it as well."""
    try:
        return decorate(fn)
    except RuntimeError as err:
        if "no locator available" not in str(err):
            raise
    folder = fallback_cache_dir()
    if folder is not None:
        # numba's first locator reads config.CACHE_DIR at each decoration: the kernels compiled
        # from now on are cached there (as with NUMBA_CACHE_DIR=<folder>)
        numba.config.CACHE_DIR = str(folder)
        try:
            return decorate(fn)
        except RuntimeError as err:
            if "no locator available" not in str(err):
                raise
    return None


def _compile(options, fn):
    """``njit(**options)(fn)``, cached where possible (:func:`cached`)."""
    compiled = cached(njit(**options), fn)
    if compiled is None:  # nowhere to cache: compile on each run
        compiled = njit(**{**options, "cache": False})(fn)
    return compiled


def kernel(fn=None, *, reassociate=False, streaming=False):
    """Compile ``fn`` once serially and once with ``parallel=True`` (``prange`` is a plain
    ``range`` in the serial build). Returns the serial build; ``.parallel`` is the other one and
    ``.pick(size)`` chooses by problem size: parallel from ``PARALLEL_MIN_SIZE`` entries, or
    from ``STREAMING_FACTOR`` times that for ``streaming=True`` (memory-bound single passes).
    ``@kernel(reassociate=True)`` lets the compiler reorder floating-point sums (for reductions
    whose contract does not fix the order only)."""
    if fn is None:
        return lambda f: kernel(f, reassociate=reassociate, streaming=streaming)
    flags = "_fastmath" if FASTMATH else ("_reassoc" if reassociate else "")
    options = dict(_OPTIONS)
    if reassociate and not FASTMATH:
        options["fastmath"] = _REASSOCIATE
    serial = _compile(options, _renamed(fn, "__serial" + flags))
    parallel = _compile(dict(options, parallel=True), _renamed(fn, "__parallel" + flags))

    factor = STREAMING_FACTOR if streaming else 1

    def pick(size):
        # the module global is read at each call (tests set it to 0 or inf to choose a build)
        return parallel if size >= PARALLEL_MIN_SIZE * factor else serial

    serial.pick = pick
    serial.serial = serial
    serial.parallel = parallel
    return serial
