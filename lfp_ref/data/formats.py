"""File formats: IDX (MNIST, Fashion-MNIST) and the CIFAR-10 batch pickles.

- :func:`parse_idx` / :func:`read_idx`: one IDX file, gzipped or not, with every header field
  and the payload size checked; ``_read_idx_checked`` also compares the sha256 of the
  decompressed bytes, ``_check_idx_pair`` an images/labels pair;
- ``_read_cifar_batch``: one CIFAR-10 batch, unpickled with an allow-list (NumPy arrays and
  lists only: these files come from outside);
- ``_safe_extract_cifar``: the ``cifar-10-batches-py/`` folder of the downloaded archive,
  extracted member by member after checking each path, and moved into place atomically.
"""

from __future__ import annotations

import gzip
import hashlib
import os
import pickle
import shutil
import tarfile
import tempfile
import zlib
from pathlib import Path

import numpy as np

from .fetch import CIFAR10_FOLDER, DownloadError, _cifar_folder

__all__ = ["parse_idx", "read_idx"]


# --------------------------------------------------------------------------------------------
# IDX files

# IDX type code -> big-endian dtype
_IDX_TYPES = {
    0x08: np.dtype(np.uint8),
    0x09: np.dtype(np.int8),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}


def parse_idx(data: bytes, where: str = "<bytes>") -> np.ndarray:
    """Parse one (uncompressed) IDX file.

    Layout: two zero bytes, a type code (0x08 uint8, 0x09 int8, 0x0B int16, 0x0C int32,
    0x0D float32, 0x0E float64), the number of dimensions ``d``, then ``d`` big-endian uint32
    sizes, then exactly ``prod(sizes)`` big-endian items.

    Raises
    ------
    ValueError
        Bad magic number, unknown type, missing header bytes, or a payload that is not exactly
        the announced size (truncated or with trailing bytes).
    """
    data = memoryview(data).cast("B")
    if len(data) < 4:
        raise ValueError(f"{where}: not an IDX file (only {len(data)} bytes)")
    zero0, zero1, type_code, ndim = data[0], data[1], data[2], data[3]
    magic = int.from_bytes(data[:4], "big")
    if zero0 != 0 or zero1 != 0 or type_code not in _IDX_TYPES:
        raise ValueError(
            f"{where}: bad IDX magic number 0x{magic:08x} (expected 0x0000TTDD with type TT in "
            f"{sorted(hex(t) for t in _IDX_TYPES)}); the file is corrupt or not an IDX file"
        )
    if ndim == 0:
        raise ValueError(f"{where}: IDX magic 0x{magic:08x} announces 0 dimensions")
    header = 4 + 4 * ndim
    if len(data) < header:
        raise ValueError(f"{where}: truncated IDX header ({len(data)} of {header} bytes)")
    shape = tuple(int.from_bytes(data[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim))
    dtype = _IDX_TYPES[type_code]
    count = int(np.prod(shape, dtype=object))  # Python ints: no overflow on corrupt sizes
    expected = header + count * dtype.itemsize
    if len(data) != expected:
        state = "truncated" if len(data) < expected else "has trailing bytes"
        raise ValueError(
            f"{where}: IDX file {state}: header announces shape {shape} of {dtype.name} "
            f"({expected} bytes in all), file has {len(data)} bytes"
        )
    array = np.frombuffer(data, dtype=dtype, count=count, offset=header).reshape(shape)
    return array.astype(dtype.newbyteorder("="), copy=True)


def _read_maybe_gzip(path: Path) -> bytes:
    """Bytes of ``path``, decompressed when it is gzip (detected by magic, not by name)."""
    raw = Path(path).read_bytes()
    if raw[:2] != b"\x1f\x8b":
        return raw
    try:
        return gzip.decompress(raw)
    except (OSError, EOFError, zlib.error) as exc:
        raise ValueError(f"{path}: corrupt gzip stream ({exc}); {_refetch_hint(path)}") from exc


def read_idx(path) -> np.ndarray:
    """Read an IDX file, gzipped or not (see :func:`parse_idx`)."""
    return parse_idx(_read_maybe_gzip(Path(path)), str(path))


def _refetch_hint(path):
    """What to do about a damaged data file (one line: the command line shows the first line of
    an error only)."""
    return (
        f"delete {path} and download it again (download=True in Python, --download on the "
        "command line), or put an intact copy in its place"
    )


def _read_idx_checked(path, expected_sha256, title):
    """One IDX file of a dataset, its decompressed sha256 checked against ``expected_sha256``
    (None: not checked); every error names the file and says what to do."""
    data = _read_maybe_gzip(path)  # its error already says to fetch the file again
    if expected_sha256 is not None:
        digest = hashlib.sha256(data).hexdigest()
        if digest != expected_sha256:
            raise ValueError(
                f"{path}: sha256 of the decompressed content is {digest}, expected "
                f"{expected_sha256} (the standard {title} file): the file is corrupt or not the "
                f"standard one; {_refetch_hint(path)} (in Python, verify=False loads a "
                "non-standard copy on purpose)"
            )
    try:
        return parse_idx(data, str(path))
    except ValueError as exc:
        raise ValueError(f"{exc}; {_refetch_hint(path)}") from exc


def _check_idx_pair(images, labels, img_path, lbl_path, n_classes=10):
    if images.dtype != np.uint8 or images.ndim != 3:
        raise ValueError(
            f"{img_path}: expected IDX images of unsigned bytes with 3 dims (magic 0x00000803 = "
            f"2051), got {images.dtype} with shape {images.shape}"
        )
    if labels.dtype != np.uint8 or labels.ndim != 1:
        raise ValueError(
            f"{lbl_path}: expected IDX labels of unsigned bytes with 1 dim (magic 0x00000801 = "
            f"2049), got {labels.dtype} with shape {labels.shape}"
        )
    if images.shape[0] != labels.shape[0]:
        raise ValueError(
            f"{img_path} has {images.shape[0]} images but {lbl_path} has {labels.shape[0]} labels"
        )
    if labels.size and labels.max() >= n_classes:
        raise ValueError(f"{lbl_path}: label {labels.max()} outside 0..{n_classes - 1}")


# --------------------------------------------------------------------------------------------
# CIFAR-10

# What a CIFAR-10 batch pickle may reference: numpy arrays and dtypes, and the bytes codec used by
# protocol-2 pickles. Anything else (os.system, ...) is refused: these files come from outside.
_PICKLE_ALLOWED = {
    ("numpy", "ndarray"),
    ("numpy", "dtype"),
    ("numpy.core.multiarray", "_reconstruct"),
    ("numpy._core.multiarray", "_reconstruct"),
    ("numpy.core.multiarray", "scalar"),
    ("numpy._core.multiarray", "scalar"),
    ("numpy.core.numeric", "_frombuffer"),  # protocol >= 5 arrays
    ("numpy._core.numeric", "_frombuffer"),
    ("_codecs", "encode"),
}


class _ArrayUnpickler(pickle.Unpickler):
    def find_class(self, module, name):
        if (module, name) not in _PICKLE_ALLOWED:
            raise pickle.UnpicklingError(
                f"refusing to load {module}.{name}: a CIFAR-10 batch holds only arrays and lists"
            )
        # NumPy 2 renamed numpy.core to numpy._core: read either spelling on either version
        numpy2 = hasattr(np, "_core")
        if numpy2 and module.startswith("numpy.core."):
            module = "numpy._core." + module[len("numpy.core.") :]
        elif not numpy2 and module.startswith("numpy._core."):
            module = "numpy.core." + module[len("numpy._core.") :]
        return super().find_class(module, name)


def _unpickle(path: Path):
    try:
        with path.open("rb") as f:
            return _ArrayUnpickler(f, encoding="bytes").load()
    except (
        pickle.UnpicklingError,
        EOFError,
        ValueError,
        TypeError,
        AttributeError,
        ImportError,
    ) as exc:
        raise ValueError(f"{path}: not a valid CIFAR-10 pickle ({exc})") from exc


def _get(batch, key, path):
    for k in (key.encode(), key):
        if k in batch:
            return batch[k]
    raise ValueError(f"{path}: missing key {key!r} (has {sorted(map(repr, batch))})")


def _read_cifar_batch(path: Path):
    batch = _unpickle(path)
    if not isinstance(batch, dict):
        raise ValueError(f"{path}: expected a dict, got {type(batch).__name__}")
    data = np.asarray(_get(batch, "data", path))
    labels = np.asarray(_get(batch, "labels", path))
    if data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != 3 * 32 * 32:
        raise ValueError(f"{path}: data must be uint8 (N, 3072), got {data.dtype} {data.shape}")
    if labels.shape != (data.shape[0],) or labels.dtype.kind not in "iu":
        raise ValueError(f"{path}: expected {data.shape[0]} integer labels, got {labels.shape}")
    if labels.size and (labels.min() < 0 or labels.max() > 9):
        raise ValueError(f"{path}: labels must be in 0..9")
    # each row is the red, green, blue planes of 32x32, row-major
    return data.reshape(-1, 3, 32, 32), labels.astype(np.int64)  # (N, 3, 32, 32)


def _read_cifar_meta(path: Path):
    """The 10 class names of a CIFAR-10 ``batches.meta`` (its ``label_names``: a list of 10
    bytes or str); a ValueError naming the file for anything else."""
    meta = _unpickle(path)
    what = (
        "batches.meta must be a dict whose label_names is a list of the 10 class names (bytes "
        f"or str); delete {path} (the class names then default to CIFAR-10's) or extract the "
        "archive again"
    )
    if not isinstance(meta, dict):
        raise ValueError(f"{path}: {what}, got a {type(meta).__name__}")
    names = meta.get(b"label_names", meta.get("label_names"))
    if names is None:
        raise ValueError(
            f"{path}: {what}, but it has no label_names (keys {sorted(map(repr, meta))})"
        )
    if not isinstance(names, (list, tuple)) or len(names) != 10:
        shown = f"{len(names)} entries" if isinstance(names, (list, tuple)) else repr(names)[:60]
        raise ValueError(f"{path}: {what}, got {type(names).__name__} {shown}")
    bad = [n for n in names if not isinstance(n, (bytes, str))]
    if bad:
        raise ValueError(f"{path}: {what}, got entries of type {type(bad[0]).__name__}")
    try:
        return tuple(n.decode() if isinstance(n, bytes) else n for n in names)
    except UnicodeDecodeError as exc:
        raise ValueError(f"{path}: {what}; a name is not UTF-8 ({exc})") from exc


def _safe_extract_cifar(archive: Path, dest_dir: Path):
    """Extract ``cifar-10-batches-py/`` from the archive into ``dest_dir`` atomically."""
    tmp_dir = Path(tempfile.mkdtemp(dir=dest_dir, prefix=".extract-"))
    try:
        with tarfile.open(archive, "r:gz") as tar:
            members = []
            for member in tar.getmembers():
                parts = Path(member.name).parts
                if (
                    member.name.startswith("/")
                    or ".." in parts
                    or not parts
                    or parts[0] != CIFAR10_FOLDER
                    or not (member.isfile() or member.isdir())
                ):
                    raise DownloadError(f"{archive}: unexpected archive member {member.name!r}")
                members.append(member)
            if hasattr(tarfile, "data_filter"):
                tar.extractall(tmp_dir, members=members, filter="data")
            else:  # pragma: no cover - Python < 3.10.12 without extraction filters
                tar.extractall(tmp_dir, members=members)  # members were checked above
        if _cifar_folder(tmp_dir / CIFAR10_FOLDER) is None:
            raise DownloadError(f"{archive}: does not contain the CIFAR-10 batch files")
        os.replace(tmp_dir / CIFAR10_FOLDER, dest_dir / CIFAR10_FOLDER)
    except (tarfile.TarError, OSError, EOFError, zlib.error) as exc:
        if isinstance(exc, DownloadError):
            raise
        raise DownloadError(f"{archive}: cannot extract ({exc})") from exc
    finally:
        shutil.rmtree(tmp_dir, ignore_errors=True)
