"""The one backend dispatch: which kernels and which array namespace a computation uses.

A backend is derived from the arrays a computation is given, never from a global switch and
never from which packages happen to be installed::

    bk = backend_of(x, layer.weight)          # the CPU backend for NumPy arrays
    z = bk.dense.dense_forward(x, w, b, bk.empty((B, O), x.dtype))

:class:`Backend` holds the array namespace (``bk.xp``: NumPy for ``cpu``), the allocation
functions the layers, rules, engine and optimizers use (``empty``, ``zeros``, ``empty_like``,
...) and the kernel modules of its family (``bk.dense``, ``bk.conv``, ``bk.elementwise``,
``bk.norm``, ``bk.pool``, ``bk.rules``: ``lfp_ref.kernels.<name>.<module>``). Kernels take arrays
and scalars and write into preallocated outputs; they validate nothing (their public wrappers
check what the kernel assumes, the layers check everything else).

Backends are registered by name in :data:`BACKENDS`; :func:`get_backend` builds one on first
use: ``cpu`` (NumPy arrays, Numba kernels in ``kernels/cpu``) and ``cuda`` (CuPy arrays, or
simulated device arrays under the Numba CUDA simulator, with numba.cuda kernels in
``kernels/cuda`` of the same module and function names; see ``lfp_ref.kernels.cuda`` and
docs/gpu.md). A model moves with ``model.to("cuda")`` / ``model.to("cpu")``.
"""

from __future__ import annotations

import importlib

import numpy as np

#: the kernel modules every backend provides, by attribute name
KERNEL_MODULES = ("conv", "dense", "elementwise", "lif", "norm", "pool", "rules")


class Backend:
    """Kernels and array namespace of one device family.

    Parameters
    ----------
    name : str
        "cpu" or "cuda".
    xp : module
        The array namespace (numpy; cupy for cuda on a device).
    array_type : type
        The array class whose instances belong to this backend.
    """

    def __init__(self, name, xp, array_type):
        self.name = name
        self.xp = xp
        self.array_type = array_type

    def __getattr__(self, module):
        # the kernel modules, imported on first use (a backend's modules may need its packages)
        # and then kept as plain attributes, so later lookups do not come here
        if module not in KERNEL_MODULES:
            raise AttributeError(f"backend {self.name!r} has no attribute {module!r}")
        loaded = importlib.import_module(f"{__name__}.{self.name}.{module}")
        setattr(self, module, loaded)
        return loaded

    # -- allocation: every array a layer, rule, engine or optimizer creates comes from here --

    def empty(self, shape, dtype):
        return self.xp.empty(shape, dtype)

    def zeros(self, shape, dtype):
        return self.xp.zeros(shape, dtype)

    def ones(self, shape, dtype):
        return self.xp.ones(shape, dtype)

    def empty_like(self, a):
        return self.xp.empty_like(a)

    def zeros_like(self, a):
        return self.xp.zeros_like(a)

    def ones_like(self, a):
        return self.xp.ones_like(a)

    def contiguous(self, a, dtype=None):
        """``a`` as a C-contiguous array of this backend (no copy when it already is one)."""
        return self.xp.ascontiguousarray(a, dtype=dtype)

    def is_array(self, a):
        return isinstance(a, self.array_type)

    @property
    def special(self):
        """The special functions (``softmax``, ``log_softmax``, ``expit``) for this backend's
        arrays: ``scipy.special`` for NumPy arrays."""
        import scipy.special

        return scipy.special

    def same_memory(self, a, b):
        """Whether two arrays are the same view of the same memory (``a is b`` up to view
        objects): same start address, shape, strides and dtype."""
        return a is b or (
            self.address(a) == self.address(b)
            and a.shape == b.shape
            and a.strides == b.strides
            and a.dtype == b.dtype
        )

    def address(self, a):
        return a.ctypes.data

    def to_numpy(self, a):
        """A NumPy copy (or the array itself, on the CPU) for saving, printing and plotting."""
        return np.asarray(a)

    def asarray(self, a, dtype=None):
        """``a`` as a C-contiguous array of this backend (cast to ``dtype`` when given): ``a``
        itself when it already is one, a copy when it lives on another backend (moved through
        the host, as ``model.to(device)`` moves parameters)."""
        source = _backend_of_one(a) if _is_backend_array(a) else None
        if source is not None and source is not self:
            a = source.to_numpy(a)
        if self is CPU and np.ndim(a) == 0:
            return np.array(a, dtype=dtype)  # ascontiguousarray would make it 1-d
        return self.contiguous(a, dtype=dtype)

    def __repr__(self):
        return f"Backend({self.name!r})"


CPU = Backend("cpu", np, np.ndarray)
# On the CPU the allocation methods are NumPy's functions themselves, bound on this instance
# (the same calls, one Python frame fewer each: a training step makes dozens of them).
# Subclasses (the cuda backends) keep their own methods.
CPU.empty, CPU.zeros, CPU.ones = np.empty, np.zeros, np.ones
CPU.empty_like, CPU.zeros_like, CPU.ones_like = np.empty_like, np.zeros_like, np.ones_like
CPU.contiguous = np.ascontiguousarray


def _build_cuda():
    # imported here: the cuda package, CuPy and numba.cuda are needed only by who asks for cuda
    from .cuda import build_backend

    return build_backend()


#: backends by name; a backend's factory runs on first use (so a missing optional package is an
#: error only for the code that asks for that backend)
BACKENDS = {"cpu": lambda: CPU, "cuda": _build_cuda}
_BUILT = {"cpu": CPU}


def get_backend(name):
    """The backend registered as ``name`` (see :data:`BACKENDS`)."""
    backend = _BUILT.get(name)
    if backend is None:
        if name not in BACKENDS:
            raise ValueError(f"unknown backend {name!r}; known: {', '.join(BACKENDS)}")
        backend = _BUILT[name] = BACKENDS[name]()
    return backend


def _backend_of_one(a):
    if type(a) is np.ndarray:  # the CPU path: one type check
        return CPU
    # an array type that names its backend (the cuda simulator's ndarray subclass), before the
    # plain-ndarray answer below
    named = getattr(type(a), "__lfp_ref_backend__", None)
    if named is not None:
        return get_backend(named)
    for backend in _BUILT.values():
        if backend is not CPU and backend.is_array(a):
            return backend
    if isinstance(a, np.ndarray):  # other ndarray subclasses (np.memmap, ...) live on the CPU
        return CPU
    if type(a).__module__.split(".")[0] == "cupy":  # a CuPy array before cuda was built
        return get_backend("cuda")
    raise TypeError(
        f"expected an array of one of the backends {', '.join(BACKENDS)} "
        f"(numpy.ndarray for cpu), got {type(a).__module__}.{type(a).__name__}"
    )


def _is_backend_array(a):
    try:
        _backend_of_one(a)
    except TypeError:
        return False
    return True


def backend_of(*arrays):
    """The backend of ``arrays`` (None entries ignored; all must live on one backend).

    Raises
    ------
    ValueError
        Arrays of two backends, naming both (e.g. an input on the CPU for a model on the GPU).
    """
    for a in arrays:  # the common case, NumPy arrays only: no call
        if a is not None and type(a) is not np.ndarray:
            break
    else:
        return CPU
    found = None
    for a in arrays:
        if a is None:
            continue
        backend = _backend_of_one(a)
        if found is None:
            found = backend
        elif backend is not found:
            raise ValueError(
                f"arrays on two devices: {found.name} and {backend.name}; move the input with "
                f"the model's device (model.to(...)) or the model to the input's"
            )
    return CPU if found is None else found
