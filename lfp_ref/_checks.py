"""Input validation shared by the public entry points: messages say what was expected and what
to do."""

import numpy as np

from .kernels import CPU, backend_of


def check_array(x, name, dtype=None):
    """A finite float32/float64 array of one backend (anything else becomes a NumPy array),
    C-contiguous; with ``dtype`` given, of that dtype."""
    try:
        bk = backend_of(x)
    except TypeError:  # a list, a scalar, another library's array: NumPy takes it or says why
        x, bk = np.asarray(x), CPU
    if x.dtype.kind not in "f" or x.dtype not in (np.float32, np.float64):
        wanted = np.dtype(dtype).name if dtype is not None else "float64"
        raise TypeError(
            f"{name} must be a float32 or float64 array, got dtype {x.dtype}; "
            f"convert it with {name}.astype(np.{wanted})"
        )
    if dtype is not None and x.dtype != np.dtype(dtype):
        raise TypeError(
            f"{name} has dtype {x.dtype} but the model computes in {np.dtype(dtype)}; convert "
            f"with {name}.astype(np.{np.dtype(dtype).name}) or the model with "
            f"model.to(np.{x.dtype.name})"
        )
    if not bk.xp.isfinite(x).all():
        bad = int(x.size - bk.xp.count_nonzero(bk.xp.isfinite(x)))
        raise ValueError(f"{name} contains {bad} non-finite value(s) (NaN or inf)")
    return bk.contiguous(x)


def check_labels(y, num_classes, batch_size, name="y"):
    """Integer class labels of shape (B,) with values in [0, num_classes)."""
    if y is None:
        raise ValueError(f"{name} (integer labels of shape ({batch_size},)) is required")
    y = np.asarray(y)
    if y.dtype.kind not in "iu":
        if y.dtype.kind == "f" and np.all(np.mod(y, 1) == 0):
            raise TypeError(f"{name} must be integer labels, got {y.dtype}; use {name}.astype(int)")
        raise TypeError(f"{name} must be integer class labels, got dtype {y.dtype}")
    if y.shape != (batch_size,):
        raise ValueError(
            f"{name} must have shape ({batch_size},) to match the batch, got {y.shape}"
        )
    if y.size and (y.min() < 0 or y.max() >= num_classes):
        raise ValueError(
            f"{name} has labels in [{y.min()}, {y.max()}] but the model has {num_classes} "
            f"outputs; labels must lie in [0, {num_classes - 1}]"
        )
    return y.astype(np.intp, copy=False)


def check_logits_2d(logits, what):
    if logits.ndim != 2:
        raise ValueError(f"{what} expects logits of shape (B, C), got {logits.shape}")
