"""The ``cuda`` backend: numba.cuda kernels with the same modules, names and signatures as
``kernels/cpu``, on CuPy arrays on an NVIDIA device, or on simulated device arrays under the Numba
CUDA simulator.

A model is put on it explicitly, ``model.to("cuda")`` (and back with ``model.to("cpu")``); the
layers then find it from their arrays (``backend_of(x, self.weight)``), never from a global switch
and never because a package happens to be installed. Building the backend
(:func:`build_backend`, run by ``lfp_ref.kernels.get_backend("cuda")``) picks one of two modes:

- the Numba CUDA simulator, when ``NUMBA_ENABLE_CUDASIM=1`` was set before numba was imported:
  there is no device and no CuPy; :class:`SimulatedDeviceArray`, a NumPy array subclass, stands in
  for device arrays (``xp`` is NumPy, so GEMMs and reductions are NumPy's), and the kernels run in
  the simulator, one Python thread per CUDA thread. This is what the ``cudasim`` tests run on a
  machine without a GPU (``make test-cudasim``);
- a device: CuPy arrays (``xp`` is CuPy, GEMMs go to cuBLAS) and numba.cuda kernels launched on
  CuPy's current stream (``pip install 'lfp_ref[gpu]'``).

Without either, building the backend raises :class:`CudaUnavailableError`, which says what is
missing and how to install it.

:data:`LAUNCHES` counts the kernel launches by kernel name (the kernel function's name without
its leading underscore), so a test can prove that the cuda kernels ran and nothing fell back to
the CPU twins. Launch geometry: ``LFP_REF_CUDA_THREADS`` threads per block (default 256; 8 under
the simulator, so that small test inputs span several blocks and leave partial tails) and at most
``LFP_REF_CUDA_MAX_BLOCKS`` blocks (default 8192; 4 under the simulator, where every CUDA thread
is a Python thread); every kernel walks its work items in a grid-stride loop, so any geometry
covers any size. See ``_launch``.

Random numbers: Dropout draws its masks on the host from the layer's ``numpy.random.Generator``
and copies them to the device (``bk.contiguous``), so a seed gives the same masks on both
backends.
"""

from __future__ import annotations

import collections
import os

import numpy as np

#: kernel launches by kernel name ("stabilized_ratio", "im2col_samples", ...), incremented by the
#: launch helper; clear it with ``LAUNCHES.clear()``
LAUNCHES = collections.Counter()

INSTALL_HINT = (
    "install the GPU extra, pip install 'lfp_ref[gpu]' (CuPy for CUDA 13 and numba-cuda; "
    "'lfp_ref[gpu-cuda12]' for a CUDA 12 driver), or run the CUDA kernels on the CPU under "
    "the Numba CUDA simulator: pip install 'lfp_ref[cudasim]' and set NUMBA_ENABLE_CUDASIM=1 "
    "before Python imports numba"
)


class CudaUnavailableError(RuntimeError):
    """The cuda backend was asked for but CuPy, numba-cuda or a device is missing."""


class SimulatedDeviceArray(np.ndarray):
    """A NumPy array standing in for a device array under the Numba CUDA simulator.

    It belongs to the ``cuda`` backend (``backend_of`` answers cuda for it and cpu for a plain
    ``numpy.ndarray``), and it stays on the "device" as CuPy arrays do: ufuncs, methods, views and
    every NumPy function called on it (``np.where``, ``np.zeros_like``, ...: through
    ``__array_function__``, as CuPy dispatches them) return simulated device arrays. Arrays that
    come from the host (a Dropout mask, labels, a reward computed by SciPy) are plain NumPy arrays
    and reach the device through the backend (``bk.contiguous``), as they would with CuPy.
    """

    #: the backend these arrays belong to (read by ``lfp_ref.kernels.backend_of``)
    __lfp_ref_backend__ = "cuda"

    def __array_function__(self, func, types, args, kwargs):
        return _on_device(super().__array_function__(func, types, args, kwargs))

    def __repr__(self):
        return "SimulatedDeviceArray(" + repr(self.view(np.ndarray))[len("array(") :]


def _on_device(result):
    """NumPy's results (arrays, tuples and lists of them) as simulated device arrays."""
    if type(result) is np.ndarray:
        return result.view(SimulatedDeviceArray)
    if isinstance(result, tuple):
        return tuple(_on_device(r) for r in result)
    if isinstance(result, list):
        return [_on_device(r) for r in result]
    return result


def simulator_enabled():
    """Whether numba runs CUDA kernels in its simulator (``NUMBA_ENABLE_CUDASIM=1`` set before
    numba was imported)."""
    from numba.core import config

    return bool(config.ENABLE_CUDASIM)


def _simulated_backend():
    from .. import Backend

    class SimulatedBackend(Backend):
        """The cuda backend under the Numba CUDA simulator: NumPy as ``xp``, allocations and
        transfers give :class:`SimulatedDeviceArray`."""

        def empty(self, shape, dtype):
            return np.empty(shape, dtype).view(SimulatedDeviceArray)

        def zeros(self, shape, dtype):
            return np.zeros(shape, dtype).view(SimulatedDeviceArray)

        def ones(self, shape, dtype):
            return np.ones(shape, dtype).view(SimulatedDeviceArray)

        def empty_like(self, a):
            return np.empty_like(a).view(SimulatedDeviceArray)

        def zeros_like(self, a):
            return np.zeros_like(a).view(SimulatedDeviceArray)

        def ones_like(self, a):
            return np.ones_like(a).view(SimulatedDeviceArray)

        def contiguous(self, a, dtype=None):
            """``a`` as a C-contiguous simulated device array: ``a`` itself when it already is
            one of that dtype, a device copy when it is not contiguous or of another dtype, and
            a copy "to the device" for a host array (as ``cupy.asarray`` would)."""
            wanted = a.dtype if dtype is None else np.dtype(dtype)
            if isinstance(a, SimulatedDeviceArray):
                if a.flags.c_contiguous and a.dtype == wanted:
                    return a
                return np.array(a, dtype=wanted, order="C").view(SimulatedDeviceArray)
            return np.array(a, dtype=dtype, order="C", copy=True).view(SimulatedDeviceArray)

        def to_numpy(self, a):
            """A host copy (as ``cupy.ndarray.get()``): a plain ``numpy.ndarray``."""
            return np.array(a, copy=True)

    return SimulatedBackend("cuda", np, SimulatedDeviceArray)


def _cupy_backend():
    missing = []
    try:
        import cupy
    except ImportError as err:
        missing.append(f"CuPy (import cupy: {err})")
    try:
        from numba import cuda
    except ImportError as err:  # numba without its CUDA target: numba-cuda is not installed
        missing.append(f"numba-cuda (import numba.cuda: {err})")
    if missing:
        raise CudaUnavailableError(
            f"the cuda backend needs CuPy and numba-cuda; missing: {'; '.join(missing)}. "
            f"To fix: {INSTALL_HINT}"
        )
    try:
        devices = cupy.cuda.runtime.getDeviceCount()
    except Exception as err:  # CUDARuntimeError: no driver, no device
        raise CudaUnavailableError(
            f"CuPy {cupy.__version__} is installed but sees no CUDA device ({err}); the cuda "
            "backend needs an NVIDIA GPU and its driver. Without one, run the CUDA kernels under "
            "the Numba CUDA simulator (NUMBA_ENABLE_CUDASIM=1, pip install 'lfp_ref[cudasim]')"
        ) from err
    if devices < 1:
        raise CudaUnavailableError(
            f"CuPy {cupy.__version__} is installed but finds no CUDA device; the cuda backend "
            "needs an NVIDIA GPU and its driver"
        )
    if not cuda.is_available():
        raise CudaUnavailableError(
            "CuPy sees a CUDA device but numba-cuda cannot use it (numba.cuda.is_available() is "
            "False: a driver or toolkit mismatch; numba.cuda.detect() says more); "
            "pip install 'lfp_ref[gpu]' installs a matching numba-cuda"
        )

    from .. import Backend

    class CupyBackend(Backend):
        """The cuda backend on a device: CuPy arrays, numba.cuda kernels."""

        def contiguous(self, a, dtype=None):
            """``a`` as a C-contiguous CuPy array (no copy when it already is one of that
            dtype); a host array is copied to the device."""
            if isinstance(a, cupy.ndarray):
                return cupy.ascontiguousarray(a, dtype=dtype)
            return cupy.asarray(np.asarray(a), dtype=dtype, order="C")

        def address(self, a):
            return a.data.ptr

        @property
        def special(self):
            import cupyx.scipy.special

            return cupyx.scipy.special

        def to_numpy(self, a):
            """A host copy (``cupy.ndarray.get()``)."""
            return a.get() if isinstance(a, cupy.ndarray) else np.asarray(a)

    return CupyBackend("cuda", cupy, cupy.ndarray)


def build_backend():
    """The ``cuda`` backend (see the module docstring for its two modes).

    Raises
    ------
    CudaUnavailableError
        numba-cuda, CuPy or a device is missing; the message says which, and how to install.
    """
    if simulator_enabled():
        try:
            from numba import cuda  # noqa: F401  (the simulator lives in numba-cuda)
        except ImportError as err:
            raise CudaUnavailableError(
                f"NUMBA_ENABLE_CUDASIM is set but numba has no CUDA target ({err}); "
                "pip install 'lfp_ref[cudasim]' installs numba-cuda"
            ) from err
        return _simulated_backend()
    if os.environ.get("NUMBA_ENABLE_CUDASIM", "0") not in ("", "0"):
        raise CudaUnavailableError(
            "NUMBA_ENABLE_CUDASIM is set but numba was imported before it was: set it in the "
            "environment of the process (NUMBA_ENABLE_CUDASIM=1 python ...), not from Python"
        )
    return _cupy_backend()
