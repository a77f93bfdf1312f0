"""The one place that decides how cuda kernels are compiled and launched.

Every kernel walks its work items in a grid-stride loop (``for i in range(cuda.grid(1), n,
cuda.gridsize(1))``), so any launch geometry covers any size; :class:`Kernel` picks it:
``THREADS_PER_BLOCK`` threads per block and ``min(ceil(n / THREADS_PER_BLOCK), MAX_BLOCKS)``
blocks, from ``LFP_REF_CUDA_THREADS`` and ``LFP_REF_CUDA_MAX_BLOCKS`` (read once, at import).
Under the Numba CUDA simulator every CUDA thread is a Python thread, so the defaults there are
small (8 threads, 4 blocks): small test inputs then span several blocks, end in partial tails and
wrap around the grid.

fastmath stays off, as on the CPU (the stabiliser depends on exact signs). Unlike the CPU
kernels, NVVM may contract ``a * b + c`` into one fused multiply-add on a device, so device
results can differ from the CPU's in the last bit; under the simulator the kernels run in NumPy
scalar arithmetic and match the CPU kernels bit for bit where the order of operations is the
same.

Arrays: on a device, CuPy arrays are handed to numba through ``__cuda_array_interface__`` (no
copy) and kernels run on CuPy's current stream, so they are ordered with CuPy's own operations.
Under the simulator, simulated device arrays are wrapped in the simulator's device-array type
(no copy either: the simulator would otherwise copy every NumPy argument in and back out, which
breaks outputs that alias inputs). A plain NumPy array reaching a kernel is a host array that
leaked into the device path: an error, never a silent transfer.
"""

import os

import numpy as np
from numba import cuda

from . import LAUNCHES, SimulatedDeviceArray, simulator_enabled

SIMULATED = simulator_enabled()


def _setting(name, default):
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        value = 0
    if value < 1:
        raise ValueError(f"{name} must be a positive integer, got {raw!r}")
    return value


#: threads per block; small under the simulator so that tests exercise several blocks and tails
THREADS_PER_BLOCK = _setting("LFP_REF_CUDA_THREADS", 8 if SIMULATED else 256)
#: the most blocks a launch uses; the grid-stride loops cover the rest
MAX_BLOCKS = _setting("LFP_REF_CUDA_MAX_BLOCKS", 4 if SIMULATED else 8192)


if SIMULATED:
    from numba.cuda.simulator.cudadrv.devicearray import FakeCUDAArray

    def _device_arg(name, a):
        if isinstance(a, np.ndarray):
            if not isinstance(a, SimulatedDeviceArray):
                raise TypeError(
                    f"cuda kernel {name}: got a host numpy.ndarray; device arrays come from the "
                    "cuda backend (bk.empty(...), bk.contiguous(...), model.to('cuda'))"
                )
            return FakeCUDAArray(a.view(np.ndarray))  # the same memory, no copy
        return a

    def _stream():
        return 0

else:

    def _device_arg(name, a):
        if isinstance(a, np.ndarray):
            raise TypeError(
                f"cuda kernel {name}: got a host numpy.ndarray; move it to the device first "
                "(bk.contiguous(a), model.to('cuda'))"
            )
        return a

    def _stream():
        import cupy

        return cuda.external_stream(cupy.cuda.get_current_stream().ptr)


def grid(size):
    """``(blocks, threads)`` for ``size`` work items (size >= 1)."""
    threads = THREADS_PER_BLOCK
    return min(-(-size // threads), MAX_BLOCKS), threads


def total_threads(size):
    """How many threads a launch over ``size`` work items runs (its grid-stride step)."""
    blocks, threads = grid(size)
    return blocks * threads


class Kernel:
    """A numba.cuda kernel and its launcher: ``kernel(size, *args)`` runs it over ``size`` work
    items (nothing for size 0) and counts the launch in ``LAUNCHES[name]``."""

    def __init__(self, fn):
        self.name = fn.__name__.lstrip("_")
        self.py_func = fn
        self.compiled = cuda.jit(cache=not SIMULATED)(fn)  # compiled on first launch per types

    def __call__(self, size, *args):
        if size <= 0:
            return
        self.launch(size, *args)

    def launch(self, size, *args):
        blocks, threads = grid(size)
        device_args = [_device_arg(self.name, a) for a in args]
        LAUNCHES[self.name] += 1
        self.compiled[blocks, threads, _stream()](*device_args)

    def __repr__(self):
        return f"Kernel({self.name})"


def kernel(fn):
    """Decorator: ``fn`` (written with ``cuda.grid``/``cuda.gridsize`` grid-stride loops) as a
    :class:`Kernel`."""
    return Kernel(fn)


def array_module(a):
    """The array namespace of a device array: NumPy for simulated device arrays, CuPy for CuPy
    arrays."""
    if isinstance(a, np.ndarray):
        return np
    import cupy

    return cupy


def device_empty(like, shape, dtype):
    """An uninitialised device array beside ``like`` (a simulated device array under the
    simulator, a CuPy array on a device)."""
    xp = array_module(like)
    out = xp.empty(shape, dtype)
    return out.view(SimulatedDeviceArray) if xp is np else out


def device_zeros(like, shape, dtype):
    xp = array_module(like)
    out = xp.zeros(shape, dtype)
    return out.view(SimulatedDeviceArray) if xp is np else out


def device_contiguous(a):
    """``a`` as a C-contiguous device array (a device copy when it is not one)."""
    xp = array_module(a)
    out = xp.ascontiguousarray(a)
    return out.view(SimulatedDeviceArray) if xp is np else out


def flat(a):
    """``a`` as a 1-D view (never a copy: a copied ``out`` would silently drop the result)."""
    if not a.flags.c_contiguous:
        raise ValueError("cuda elementwise kernels need C-contiguous arrays")
    return a.reshape(-1)
