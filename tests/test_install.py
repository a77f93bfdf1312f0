"""The package as people install it: ``pip install .`` (not editable), then used read-only by a
user whose home is not writable.

numba caches compiled kernels next to the package, in ``$NUMBA_CACHE_DIR`` or under the home;
when none is writable it used to refuse to build any cached kernel ("cannot cache function ...:
no locator available"), so ``import lfp_ref`` failed. ``lfp_ref.kernels.cpu._jit`` then falls back
to ``<tmp>/lfp_ref-numba-cache-<uid>``; this test installs the package with ``pip install
--target`` into a folder it makes read-only and runs the theory checks from another folder.

Permission bits do not stop root, so as root the check runs with the capabilities that bypass
them (CAP_DAC_OVERRIDE, CAP_DAC_READ_SEARCH, CAP_FOWNER) dropped from the child's bounding set;
the child first proves it cannot write the install folder, so the test cannot pass vacuously.
"""

from __future__ import annotations

import ctypes
import os
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]

# linux/capability.h and linux/prctl.h
_CAPS_THAT_BYPASS_PERMISSIONS = (1, 2, 3)  # CAP_DAC_OVERRIDE, CAP_DAC_READ_SEARCH, CAP_FOWNER
_PR_CAPBSET_DROP = 24


def _drop_permission_bypass():
    """In the child, before exec: root without the capabilities that ignore permission bits."""
    libc = ctypes.CDLL(None, use_errno=True)
    for cap in _CAPS_THAT_BYPASS_PERMISSIONS:
        if libc.prctl(_PR_CAPBSET_DROP, cap, 0, 0, 0) != 0:
            raise OSError(ctypes.get_errno(), "prctl(PR_CAPBSET_DROP) failed")


def _copy_source(dest: Path):
    """What ``pip install .`` reads, without the working tree's caches and build folders."""
    dest.mkdir()
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc", "*.nbi", "*.nbc")
    shutil.copytree(REPO_ROOT / "lfp_ref", dest / "lfp_ref", ignore=ignore)
    for name in ("pyproject.toml", "README.md", "LICENSE"):
        if (REPO_ROOT / name).exists():
            shutil.copy2(REPO_ROOT / name, dest / name)


def _make_read_only(path: Path):
    for root, dirs, files in os.walk(path):
        for name in [*dirs, *files]:
            target = Path(root) / name
            if not target.is_symlink():
                target.chmod(target.stat().st_mode & ~0o222)
    path.chmod(path.stat().st_mode & ~0o222)


def _make_writable(path: Path):
    path.chmod(path.stat().st_mode | stat.S_IWUSR)
    for root, dirs, _files in os.walk(path):
        for name in dirs:
            target = Path(root) / name
            if not target.is_symlink():
                target.chmod(target.stat().st_mode | stat.S_IWUSR)


CHILD = """
import os, sys
target, home = sys.argv[1], sys.argv[2]
assert not os.access(target, os.W_OK), "the install folder is writable: the test proves nothing"
assert not os.access(home, os.W_OK), "HOME is writable: the test proves nothing"
import numba
import lfp_ref
from lfp_ref.verify import theory
assert lfp_ref.__file__.startswith(target), lfp_ref.__file__
checks = theory.run_all(0)
failed = [c for c in checks if not c.passed]
assert not failed, failed
print("CACHE_DIR=" + str(numba.config.CACHE_DIR))
"""


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX permissions")
def test_read_only_install_with_unwritable_home_imports_and_verifies(tmp_path):
    source, target = tmp_path / "src", tmp_path / "site"
    home, scratch, elsewhere = tmp_path / "home", tmp_path / "tmp", tmp_path / "elsewhere"
    for folder in (home, scratch, elsewhere):
        folder.mkdir()
    _copy_source(source)
    # --no-build-isolation: the build backend from this environment (no index needed)
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "--quiet",
            "--no-deps",
            "--no-build-isolation",
            "--target",
            str(target),
            str(source),
        ],
        check=True,
        cwd=tmp_path,
        timeout=300,
    )
    assert (target / "lfp_ref" / "py.typed").is_file()  # package data is installed
    assert not list(target.rglob("*.nbi"))  # no cache shipped: the child has to compile
    env = {k: v for k, v in os.environ.items() if not k.startswith(("NUMBA_CACHE", "XDG_"))}
    env.pop("PYTHONPATH", None)
    env.update(PYTHONPATH=str(target), HOME=str(home), TMPDIR=str(scratch))
    preexec = None
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        preexec = _drop_permission_bypass
    _make_read_only(target)
    home.chmod(0o555)
    try:
        result = subprocess.run(
            [sys.executable, "-c", CHILD, str(target), str(home)],
            cwd=elsewhere,
            env=env,
            capture_output=True,
            text=True,
            timeout=600,
            preexec_fn=preexec,
        )
    finally:
        _make_writable(target)
        home.chmod(0o755)
    assert result.returncode == 0, result.stdout + result.stderr
    uid = os.getuid() if hasattr(os, "getuid") else None
    fallback = scratch / f"lfp_ref-numba-cache-{uid}"
    assert f"CACHE_DIR={fallback}" in result.stdout, result.stdout + result.stderr
    assert list(fallback.rglob("*.nbi")), "the kernels were not cached in the fallback folder"
    assert stat.S_IMODE(fallback.stat().st_mode) == 0o700  # private: cache files are code
    assert not list(home.iterdir())


def test_fallback_cache_dir_refuses_a_folder_others_can_write(tmp_path, monkeypatch):
    from lfp_ref.kernels.cpu import _jit

    monkeypatch.setattr(_jit.tempfile, "gettempdir", lambda: str(tmp_path))
    folder = _jit.fallback_cache_dir()
    assert folder is not None and stat.S_IMODE(folder.stat().st_mode) == 0o700
    folder.chmod(0o777)  # pre-created by someone else, or made world-writable: not safe
    assert _jit.fallback_cache_dir() is None
    folder.rmdir()
    folder.symlink_to(tmp_path)  # a symbolic link planted in /tmp: not followed
    assert _jit.fallback_cache_dir() is None


def test_cached_falls_back_when_numba_has_no_locator(tmp_path, monkeypatch):
    """:func:`_jit.cached` retries in the fallback folder when numba finds no locator, and
    compiles without a cache when even that folder is unusable."""
    import numba

    from lfp_ref.kernels.cpu import _jit

    monkeypatch.setattr(numba.config, "CACHE_DIR", numba.config.CACHE_DIR)
    calls = []

    def decorate(fn):
        calls.append(numba.config.CACHE_DIR)
        if len(calls) == 1:
            raise RuntimeError("cannot cache function 'f': no locator available for file 'x'")
        return fn

    monkeypatch.setattr(_jit, "fallback_cache_dir", lambda: tmp_path)
    assert _jit.cached(decorate, len) is len
    assert calls[-1] == str(tmp_path) and numba.config.CACHE_DIR == str(tmp_path)

    calls.clear()
    monkeypatch.setattr(_jit, "fallback_cache_dir", lambda: None)
    assert _jit.cached(decorate, len) is None  # the caller then compiles with cache=False

    def other_error(fn):
        raise RuntimeError("something else")

    with pytest.raises(RuntimeError, match="something else"):
        _jit.cached(other_error, len)
