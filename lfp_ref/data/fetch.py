"""Where dataset files are looked for, and how they are downloaded.

- :func:`cache_dir`: the user cache, ``platformdirs.user_cache_dir("lfp_ref")/<name>/`` (on Linux
  ``$XDG_CACHE_HOME/lfp_ref/<name>/``, default ``~/.cache/lfp_ref/<name>/``);
- the search order (``root=``, ``$LFP_REF_DATA``, the cache, :data:`SYSTEM_DIRS`) and the files
  each dataset needs (:data:`IDX_FILES`, the CIFAR-10 batches);
- mirrors (:data:`MIRRORS`, ``$LFP_REF_MIRROR``) and checksummed downloads with pooch
  (:data:`DOWNLOAD_SHA256`; pooch downloads each file to a temporary name beside its target,
  checks its sha256 and only then moves it into place);
- the "how to get it" text of :class:`DatasetNotFoundError` and :class:`DownloadError`.

Downloading needs pooch and platformdirs, the ``data`` extra (``pip install 'lfp_ref[data]'``);
finding files that are already on disk needs neither (without platformdirs the cache is the XDG
default above).

:data:`IDX_SHA256` (the sha256 of the decompressed IDX files) lives here with the other
checksums; :mod:`lfp_ref.data.formats` checks it. Settings are read from this module at call
time: a test that replaces one patches ``lfp_ref.data.fetch``, not the package.
"""

from __future__ import annotations

import os
from pathlib import Path

__all__ = [
    "CIFAR10_ARCHIVE",
    "CIFAR10_FOLDER",
    "CIFAR10_TRAIN_BATCHES",
    "DATA_ENV",
    "DEFAULT_TIMEOUT",
    "DOWNLOAD_SHA256",
    "IDX_FILES",
    "IDX_SHA256",
    "MIRRORS",
    "MIRROR_ENV",
    "SYSTEM_DIRS",
    "DatasetNotFoundError",
    "DownloadError",
    "cache_dir",
]

DATA_ENV = "LFP_REF_DATA"
MIRROR_ENV = "LFP_REF_MIRROR"
DEFAULT_TIMEOUT = 10.0  # seconds per socket operation: an unreachable mirror fails fast

# The four standard IDX files of MNIST and Fashion-MNIST (same names for both).
IDX_FILES = (
    "train-images-idx3-ubyte",
    "train-labels-idx1-ubyte",
    "t10k-images-idx3-ubyte",
    "t10k-labels-idx1-ubyte",
)
CIFAR10_ARCHIVE = "cifar-10-python.tar.gz"
CIFAR10_FOLDER = "cifar-10-batches-py"
CIFAR10_TRAIN_BATCHES = tuple(f"data_batch_{i}" for i in range(1, 6))

MIRRORS: dict[str, tuple[str, ...]] = {
    "mnist": (
        "https://ossci-datasets.s3.amazonaws.com/mnist/",
        "https://storage.googleapis.com/cvdf-datasets/mnist/",
    ),
    "fashion-mnist": (
        "https://raw.githubusercontent.com/zalandoresearch/fashion-mnist/master/data/fashion/",
        "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",
    ),
    "cifar10": ("https://www.cs.toronto.edu/~kriz/",),
}

# sha256 of the files exactly as the mirrors serve them (the canonical distributions).
DOWNLOAD_SHA256: dict[str, dict[str, str]] = {
    "mnist": {
        "train-images-idx3-ubyte.gz": (
            "440fcabf73cc546fa21475e81ea370265605f56be210a4024d2ca8f203523609"
        ),
        "train-labels-idx1-ubyte.gz": (
            "3552534a0a558bbed6aed32b30c495cca23d567ec52cac8be1a0730e8010255c"
        ),
        "t10k-images-idx3-ubyte.gz": (
            "8d422c7b0a1c1c79245a5bcf07fe86e33eeafee792b84584aec276f5a2dbc4e6"
        ),
        "t10k-labels-idx1-ubyte.gz": (
            "f7ae60f92e00ec6debd23a6088c31dbd2371eca3ffa0defaefb259924204aec6"
        ),
    },
    "fashion-mnist": {
        "train-images-idx3-ubyte.gz": (
            "3aede38d61863908ad78613f6a32ed271626dd12800ba2636569512369268a84"
        ),
        "train-labels-idx1-ubyte.gz": (
            "a04f17134ac03560a47e3764e11b92fc97de4d1bfaf8ba1a3aa29af54cc90845"
        ),
        "t10k-images-idx3-ubyte.gz": (
            "346e55b948d973a97e58d2351dde16a484bd415d4595297633bb08f03db6a073"
        ),
        "t10k-labels-idx1-ubyte.gz": (
            "67da17c76eaffca5446c3361aaab5c3cd6d1c2608764d35dfb1850b086bf8dd5"
        ),
    },
    "cifar10": {
        CIFAR10_ARCHIVE: "6d958be074577803d12ecdefd02955f39262c83c16fe9348329d7fe0b5c001ce",
    },
}

# sha256 of the DECOMPRESSED IDX files: the same for every faithful copy, however it was gzipped.
IDX_SHA256: dict[str, dict[str, str]] = {
    "mnist": {
        "train-images-idx3-ubyte": (
            "ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db"
        ),
        "train-labels-idx1-ubyte": (
            "65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5"
        ),
        "t10k-images-idx3-ubyte": (
            "0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7"
        ),
        "t10k-labels-idx1-ubyte": (
            "ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2"
        ),
    },
    "fashion-mnist": {
        "train-images-idx3-ubyte": (
            "c59f468a2f672dc815687fe0f83887768d799fd8a3f3276145d20f83aa44d888"
        ),
        "train-labels-idx1-ubyte": (
            "bad3541b69d912435c50bb6ba87bec294ff4f6a2e1246121d8633921760443d9"
        ),
        "t10k-images-idx3-ubyte": (
            "5b4141f0afbad91edebe8549f8fcffe087ea10ca49f1dbef5c9a5cd8815ce37b"
        ),
        "t10k-labels-idx1-ubyte": (
            "0402a96d92fd2663957122ceb108a494c5af83dab82d92729df917d7dec38c34"
        ),
    },
}

SYSTEM_DIRS: dict[str, tuple[tuple[str, str], ...]] = {
    "fashion-mnist": (
        ("/usr/share/datasets/fashion-mnist", "Debian package dataset-fashion-mnist"),
    ),
}

_TITLES = {"mnist": "MNIST", "fashion-mnist": "Fashion-MNIST", "cifar10": "CIFAR-10"}


class DatasetNotFoundError(FileNotFoundError):
    """A dataset's files are in none of the searched folders (and were not downloaded)."""


class DownloadError(OSError):
    """A download failed, timed out, or did not match its sha256."""


# --------------------------------------------------------------------------------------------
# Locations and downloads


def cache_dir(name: str | None = None) -> Path:
    """The user cache of lfp_ref (``/name`` appended when given), from platformdirs: on Linux
    ``$XDG_CACHE_HOME/lfp_ref`` (an absolute ``$XDG_CACHE_HOME`` only), else
    ``~/.cache/lfp_ref``; the platform's cache folder elsewhere."""
    try:
        import platformdirs
    except ImportError:  # the core install: the XDG default, which is platformdirs' on Linux
        base = os.environ.get("XDG_CACHE_HOME", "")
        base_path = Path(base) if base and os.path.isabs(base) else Path.home() / ".cache"
        path = base_path / "lfp_ref"
    else:
        path = Path(platformdirs.user_cache_dir("lfp_ref", appauthor=False))
    return path / name if name else path


def _search_dirs(name, root):
    """Candidate folders for dataset ``name``, each with how it was found."""
    if root is not None:
        return [(Path(root).expanduser(), "root= argument")]
    dirs = []
    for entry in os.environ.get(DATA_ENV, "").split(os.pathsep):
        if entry:
            dirs.append((Path(entry).expanduser() / name, f"${DATA_ENV}"))
    dirs.append((cache_dir(name), "user cache"))
    dirs.extend((Path(p), how) for p, how in SYSTEM_DIRS.get(name, ()))
    return dirs


def _mirror_bases(name, mirrors):
    if mirrors is not None:
        bases = [mirrors] if isinstance(mirrors, str) else list(mirrors)
    elif os.environ.get(MIRROR_ENV, "").strip():
        entries = os.environ[MIRROR_ENV].replace(",", " ").split()
        bases = [e.rstrip("/") + "/" + name + "/" for e in entries]
    else:
        bases = list(MIRRORS[name])
    if not bases or not all(isinstance(b, str) and b for b in bases):
        raise ValueError(f"mirrors must be a base URL or a non-empty list of them, got {mirrors!r}")
    return [b if b.endswith("/") else b + "/" for b in bases]


def _expected_download_sha256(name, filename, checksums):
    table = DOWNLOAD_SHA256.get(name, {}) if checksums is None else checksums
    try:
        return table[filename]
    except KeyError:
        raise ValueError(
            f"no sha256 known for {filename}; pass checksums={{{filename!r}: '<sha256>'}}"
        ) from None


def _fetch(url, dest: Path, sha256: str, timeout: float):
    """Download ``url`` to ``dest`` with pooch: to a temporary file beside ``dest``, sha256
    checked, then moved into place (a failed or mismatched download leaves nothing behind)."""
    import pooch

    downloader = pooch.HTTPDownloader(progressbar=False, timeout=timeout)
    try:
        pooch.retrieve(
            url,
            known_hash=f"sha256:{sha256}",
            fname=dest.name,
            path=dest.parent,
            downloader=downloader,
        )
    except ValueError as exc:  # pooch's hash check
        raise DownloadError(f"sha256 mismatch: {exc}") from exc


def _download(filename, bases, dest_dir: Path, sha256, timeout, how_to):
    """Try each mirror in turn; return the URL that worked or raise :class:`DownloadError`."""
    try:
        import pooch  # noqa: F401  (imported by _fetch; checked here for the message)
    except ImportError as exc:
        raise DownloadError(
            f"downloading {filename} needs the optional packages pooch and platformdirs: "
            f"pip install 'lfp_ref[data]' ({exc}).\n{how_to}"
        ) from exc
    try:
        dest_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise DownloadError(
            f"cannot create {dest_dir} for the download ({exc}).\n{how_to}"
        ) from exc
    failures = []
    for base in bases:
        url = base + filename
        try:
            _fetch(url, dest_dir / filename, sha256, timeout)
            return url
        # requests' errors (connection refused, HTTP errors, timeouts, broken responses) are
        # OSErrors; pooch's sha256 mismatch is a ValueError
        except (OSError, ValueError) as exc:
            failures.append(f"  {url}: {type(exc).__name__}: {exc}")
    raise DownloadError(
        f"could not download {filename} into {dest_dir}:\n" + "\n".join(failures) + f"\n{how_to}"
    )


def _how_to_get(name, files, searched, bases, target, extra=(), downloading=False, incomplete=None):
    """The actionable part of a not-found or download error: where we looked, what to do.
    ``incomplete``: ``{folder: [names of the missing files]}`` for the searched folders that hold
    some of the files but not all; the first line names the first such folder's missing files
    (the command line shows only that line)."""
    title = _TITLES[name]
    incomplete = incomplete or {}
    if incomplete:
        folder, missing = next(iter(incomplete.items()))
        lines = [f"{title} was not found: {folder} lacks {', '.join(missing)}. Looked in:"]
    else:
        lines = [f"{title} was not found. Looked in:"]
    for path, how in searched:
        missing = incomplete.get(path)
        note = f"; has some of the files, missing {', '.join(missing)}" if missing else ""
        lines.append(f"  - {path} ({how}{note})")
    if not os.environ.get(DATA_ENV) and all(how != "root= argument" for _, how in searched):
        lines.append(f"  (${DATA_ENV} is not set)")
    lines.append("To get it:" if downloading else "To get it, either:")
    if not downloading:
        lines.append(f"  - pass download=True to download it (sha256-checked) into {target}, or")
    lines.append("  - download these files yourself:")
    lines += [f"      {bases[0] + f}" for f in files]
    lines.append(
        f"    and put them in {target}, or in <dir>/{name}/ and set {DATA_ENV}=<dir>, "
        "or pass root=<folder>"
    )
    lines += [f"  - {e}" for e in extra]
    return "\n".join(lines)


# --------------------------------------------------------------------------------------------
# Finding files


def _find_idx_files(directory: Path):
    found = {}
    for stem in IDX_FILES:
        for candidate in (directory / (stem + ".gz"), directory / stem):
            if candidate.is_file():
                found[stem] = candidate
                break
    return found


def _missing_idx_files(found):
    """The names of the IDX files ``found`` (from :func:`_find_idx_files`) lacks."""
    return [f"{stem}[.gz]" for stem in IDX_FILES if stem not in found]


CIFAR10_BATCHES = (*CIFAR10_TRAIN_BATCHES, "test_batch")


def _cifar_folder(directory: Path):
    for candidate in (directory, directory / CIFAR10_FOLDER):
        if all((candidate / b).is_file() for b in CIFAR10_BATCHES):
            return candidate
    return None


def _missing_cifar_batches(directory: Path):
    """``(folder, missing batch names)`` for a CIFAR-10 folder (``directory`` or its
    ``cifar-10-batches-py``) that holds some of the batches but not all, else None."""
    for candidate in (directory, directory / CIFAR10_FOLDER):
        present = [b for b in CIFAR10_BATCHES if (candidate / b).is_file()]
        if present and len(present) < len(CIFAR10_BATCHES):
            return candidate, [b for b in CIFAR10_BATCHES if b not in present]
    return None
