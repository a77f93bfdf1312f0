"""Checkpoints: the whole training state in one ``.npz``, written atomically.

A checkpoint is a flat dict of arrays, stored with ``np.savez`` (read back with
``allow_pickle=False``; nothing in it is pickled). Keys by prefix:

=====================  ========================================================================
``model/<name>``       parameters and buffers (``model.state_dict()``, torch names)
``optimizer/<key>``    ``optimizer.state_dict()`` (hyper-parameters, momentum/Adam buffers)
``scheduler/<key>``    ``scheduler.state_dict()``, when there is a scheduler
``rng/<layer>``        the ``bit_generator.state`` of every layer that holds a Generator in
                       ``layer.rng`` (Dropout), as JSON (PCG64's state is a 128-bit integer)
``method/<key>``       ``method.state_dict()`` of the training method (:mod:`lfp_ref.methods`),
                       when it holds state (fixed random feedback matrices, its own Generator)
``trainer/<key>``      whatever the caller adds: position (epoch, batch, step), running sums
``format``             :data:`FORMAT`, so an unrelated ``.npz`` is refused with a clear message
=====================  ========================================================================

Writing is atomic: the file is written to a temporary name in the same folder, flushed and
fsynced, then renamed over the target with ``os.replace`` (and the folder fsynced). A process
killed at any moment leaves either the old checkpoint or the new one, never a torn file; the
temporary file it may leave (``.NAME.tmp-PID``) is removed by :func:`remove_temporaries`, which
the trainer calls whenever it opens a run folder.

Checkpoints hold finite numbers only: :func:`save` refuses a state whose parameters, buffers or
optimizer state hold NaN or inf, and :func:`restore` refuses to load one, so "the last
checkpoint" of a run that stopped on non-finite values is always a good one.
"""

from __future__ import annotations

import json
import os
import re
import zipfile
from pathlib import Path

import numpy as np

FORMAT = "lfp_ref-checkpoint-1"
_PREFIXES = ("model/", "optimizer/", "scheduler/", "rng/", "method/", "trainer/")


class CheckpointError(ValueError):
    """A checkpoint that is missing, unreadable, or does not fit the model / optimizer."""


class NonFiniteStateError(CheckpointError, FloatingPointError):
    """A training state with NaN or inf in its parameters, buffers or optimizer state: it is
    never written as a checkpoint, and never loaded from one."""


#: the sections whose floating-point entries must be finite
_FINITE_PREFIXES = ("model/", "optimizer/", "method/")
#: the temporary files of :func:`atomic_write`: ``.NAME.tmp-PID``
_TEMPORARY = re.compile(r"^\..+\.tmp-\d+$")


# --------------------------------------------------------------------------------------------
# files


def _fsync_directory(directory):
    """Make the rename itself durable (POSIX); a no-op where directories cannot be opened."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def temporary_name(path):
    """The temporary file :func:`atomic_write` writes before renaming it onto ``path``."""
    path = Path(path)
    return path.with_name(f".{path.name}.tmp-{os.getpid()}")


def remove_temporaries(folder):
    """Remove the temporary files (``.NAME.tmp-PID``) that writers killed in the middle of
    :func:`atomic_write` left in ``folder`` (a run folder is written by one process at a time).
    Returns the names removed."""
    folder = Path(folder)
    if not folder.is_dir():
        return []
    removed = []
    for path in sorted(folder.iterdir()):
        if _TEMPORARY.match(path.name) and path.is_file():
            path.unlink(missing_ok=True)
            removed.append(path.name)
    return removed


def atomic_write(path, write):
    """Call ``write(file)`` on a temporary file next to ``path``, fsync it, and rename it onto
    ``path``. On any error (or interrupt) the temporary file is removed and ``path`` is
    untouched."""
    path = Path(path)
    tmp = temporary_name(path)
    try:
        with open(tmp, "wb") as file:
            write(file)
            file.flush()
            os.fsync(file.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    _fsync_directory(path.parent)


def non_finite_entries(state):
    """``{key: number of NaN/inf entries}`` of the floating-point entries of ``state`` under
    ``model/``, ``optimizer/`` and ``method/`` (empty when the state is finite)."""
    bad = {}
    for key, value in state.items():
        if not key.startswith(_FINITE_PREFIXES):
            continue
        array = np.asarray(value)
        if array.dtype.kind in "fc":
            count = array.size - int(np.count_nonzero(np.isfinite(array)))
            if count:
                bad[key] = count
    return bad


def describe_non_finite(bad, limit=3):
    """``model/0.weight (12 values), ...`` for :func:`non_finite_entries`' result."""
    names = [f"{key} ({count} value{'s' * (count != 1)})" for key, count in bad.items()]
    more = f" and {len(names) - limit} more" if len(names) > limit else ""
    return ", ".join(names[:limit]) + more


def save(path, state):
    """Write ``state`` (a flat dict of arrays, scalars and strings) atomically as an ``.npz``.

    Scalars and strings become 0-d arrays; :func:`load` gives them back as Python values.

    Raises
    ------
    NonFiniteStateError
        The parameters, buffers, optimizer or method state hold NaN or inf (nothing is
        written: a checkpoint is always a state training can continue from).
    """
    bad = non_finite_entries(state)
    if bad:
        raise NonFiniteStateError(
            f"not writing {path}: the state holds non-finite values in {describe_non_finite(bad)}"
        )
    arrays = {"format": np.array(FORMAT)}
    for key, value in state.items():
        if key == "format":
            raise ValueError("'format' is reserved for the checkpoint's own tag")
        arrays[key] = np.asarray(value)
        if arrays[key].dtype.kind == "O":
            raise TypeError(f"checkpoint entry {key!r} is not an array, a scalar or a str")
    atomic_write(path, lambda file: np.savez(file, **arrays))


def load(path):
    """Read a checkpoint written by :func:`save`: ``{key: ndarray or Python scalar/str}``.

    Raises
    ------
    CheckpointError
        The file is missing, truncated or corrupt (a bad zip or CRC), or not an lfp_ref
        checkpoint.
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"no checkpoint at {path}")
    try:
        with np.load(path, allow_pickle=False) as npz:
            state = {key: npz[key] for key in npz.files}
    except (OSError, ValueError, EOFError, zipfile.BadZipFile, KeyError) as exc:
        raise CheckpointError(f"{path} is not a readable checkpoint ({exc})") from exc
    tag = state.pop("format", None)
    if tag is None or tag.item() != FORMAT:
        raise CheckpointError(
            f"{path} is not an lfp_ref checkpoint (format tag {tag!r}, expected {FORMAT!r})"
        )
    return {k: (v.item() if v.ndim == 0 else v) for k, v in state.items()}


# --------------------------------------------------------------------------------------------
# training state


def _section(state, prefix):
    return {k[len(prefix) :]: v for k, v in state.items() if k.startswith(prefix)}


def _copy(value):
    return value.copy() if isinstance(value, np.ndarray) else value


def rng_layers(model):
    """``{layer name: layer}`` for every layer that draws random numbers at training time
    (holds a ``numpy.random.Generator`` in ``layer.rng``, as Dropout does)."""
    return {
        name: layer
        for name, layer in model.named_layers()
        if isinstance(getattr(layer, "rng", None), np.random.Generator)
    }


def capture(model, optimizer, scheduler=None, trainer=None, method=None):
    """The training state as a flat dict for :func:`save` (all arrays are copies).

    ``trainer`` is a dict of scalars/strings/arrays the caller needs to resume (position in the
    data, running sums); it comes back from :func:`restore`. ``method``, a training method of
    :mod:`lfp_ref.methods`, adds its ``state_dict()`` (nothing for a stateless one).
    """
    state = {f"model/{k}": v for k, v in model.state_dict().items()}
    state.update({f"optimizer/{k}": v for k, v in optimizer.state_dict().items()})
    if scheduler is not None:
        state.update({f"scheduler/{k}": v for k, v in scheduler.state_dict().items()})
    for name, layer in rng_layers(model).items():
        state[f"rng/{name}"] = json.dumps(layer.rng.bit_generator.state)
    if method is not None:
        state.update({f"method/{k}": _copy(v) for k, v in method.state_dict().items()})
    state.update({f"trainer/{k}": v for k, v in (trainer or {}).items()})
    return state


def restore(state, model, optimizer, scheduler=None, where="the checkpoint", method=None):
    """Load a state from :func:`capture` / :func:`load` into a freshly built model, optimizer,
    scheduler and training method (in place). Returns the ``trainer`` dict.

    Raises
    ------
    CheckpointError
        Mismatched parameter names or shapes, another optimizer or scheduler, a missing or
        unexpected random-number state, a method state that does not fit the method.
    """
    unknown = sorted({k.split("/", 1)[0] + "/" for k in state} - set(_PREFIXES))
    if unknown:
        raise CheckpointError(f"{where} has unknown sections {unknown}")
    bad = non_finite_entries(state)
    if bad:
        raise NonFiniteStateError(
            f"{where} holds non-finite values in {describe_non_finite(bad)}; lfp_ref does not "
            "write such checkpoints (it was modified, or written by an older lfp_ref): use an "
            "earlier checkpoint (epoch-NNN.npz) or start the run afresh"
        )
    try:
        model.load_state_dict(_section(state, "model/"))
    except ValueError as exc:
        raise CheckpointError(f"{where} does not fit the model: {exc}") from exc
    try:
        optimizer.load_state_dict(_section(state, "optimizer/"))
    except ValueError as exc:
        raise CheckpointError(f"{where} does not fit the optimizer: {exc}") from exc
    saved_schedule = _section(state, "scheduler/")
    if (scheduler is None) != (not saved_schedule):
        had = saved_schedule.get("scheduler", "no scheduler")
        wants = type(scheduler).__name__ if scheduler is not None else "no scheduler"
        raise CheckpointError(f"{where} was saved with {had}, but this run uses {wants}")
    if scheduler is not None:
        try:
            scheduler.load_state_dict(saved_schedule)
        except ValueError as exc:
            raise CheckpointError(f"{where} does not fit the scheduler: {exc}") from exc
    saved_rngs = _section(state, "rng/")
    layers = rng_layers(model)
    if set(saved_rngs) != set(layers):
        raise CheckpointError(
            f"{where} has random-number states for layers {sorted(saved_rngs)}, but the model's "
            f"random layers are {sorted(layers)}"
        )
    for name, layer in layers.items():
        try:
            layer.rng.bit_generator.state = json.loads(saved_rngs[name])
        except (TypeError, ValueError) as exc:
            raise CheckpointError(f"{where}: bad random-number state for layer {name!r}") from exc
    saved_method = _section(state, "method/")
    if method is None and saved_method:
        raise CheckpointError(
            f"{where} holds a training method's state {sorted(saved_method)}; restore it with "
            "the method (restore(..., method=...))"
        )
    if method is not None:
        try:
            method.load_state_dict(saved_method)
        except (KeyError, TypeError, ValueError) as exc:
            raise CheckpointError(f"{where} does not fit the method {method!r}: {exc}") from exc
    return _section(state, "trainer/")
