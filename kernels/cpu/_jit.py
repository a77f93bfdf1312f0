"""The one place that decides how CPU kernels are compiled.

fastmath stays off: the stabiliser ``z + eps * sgn0(z)`` depends on exact signs and on -0.0
comparing equal to 0.0, which fastmath's no-signed-zeros assumption may break. Set
``LFP_REF_FASTMATH=1`` only for experiments; tests assume it is off.
"""

import os

from numba import njit

FASTMATH = os.environ.get("LFP_REF_FASTMATH", "0") == "1"

# Below this many elements, a parallel region costs more to start than it saves.
PARALLEL_MIN_SIZE = 1 << 15


def kernel(fn):
    """Compile ``fn`` once serially and once with ``parallel=True`` (``prange`` is a plain
    ``range`` in the serial build); ``fn.serial`` / ``fn.parallel`` are the two builds."""
    # error_model="numpy": x / 0 gives inf/nan as in NumPy (no per-division check); the engine
    # rejects non-finite feedback with the parameter's name
    options = dict(cache=True, fastmath=FASTMATH, error_model="numpy")
    serial = njit(**options)(fn)
    parallel = njit(parallel=True, **options)(fn)

    def pick(size):
        return parallel if size >= PARALLEL_MIN_SIZE else serial

    serial.pick = pick
    serial.serial = serial
    serial.parallel = parallel
    return serial
