"""The one place that decides how CPU kernels are compiled.

fastmath stays off: the stabiliser ``z + eps * sgn0(z)`` depends on exact signs and on -0.0
comparing equal to 0.0, which fastmath's no-signed-zeros assumption may break. Set
``LFP_REF_FASTMATH=1`` only for experiments; tests assume it is off.
"""

import os
import types

import numba
from numba import njit

FASTMATH = os.environ.get("LFP_REF_FASTMATH", "0") == "1"

# Below this many elements, a parallel region costs more to start than it saves.
PARALLEL_MIN_SIZE = 1 << 15

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


def kernel(fn):
    """Compile ``fn`` once serially and once with ``parallel=True`` (``prange`` is a plain
    ``range`` in the serial build). Returns the serial build; ``.parallel`` is the other one and
    ``.pick(size)`` chooses by problem size."""
    flags = "_fastmath" if FASTMATH else ""
    serial = njit(**_OPTIONS)(_renamed(fn, "__serial" + flags))
    parallel = njit(parallel=True, **_OPTIONS)(_renamed(fn, "__parallel" + flags))

    def pick(size):
        return parallel if size >= PARALLEL_MIN_SIZE else serial

    serial.pick = pick
    serial.serial = serial
    serial.parallel = parallel
    return serial
