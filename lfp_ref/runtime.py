"""Process-level settings that make lfp_ref's steps faster without changing a number.

:func:`tune_allocator` keeps freed arrays in glibc's heap for reuse. An LFP or GD step
allocates its activations, caches and feedback anew each time; glibc hands allocations above
its (adaptive) mmap threshold straight to the kernel and returns them on free, so the next step
writes to fresh pages and pays a page fault per 4 KiB. Measured on 2 cores (float32, medians,
processes taking turns): LeNet-5's LFP step 5.1 -> 4.0 ms, the paper's LeNet 19.9 -> 15.0 ms,
GD alike; the GEMM-bound MLP-1000 unchanged (benchmarks/RESULTS.md). The price: memory freed by
lfp_ref stays with the process (its peak use) instead of going back to the system.

The trainer, the benchmark workers and the command line call it; a script that steps models
itself can call ``lfp_ref.tune_allocator()`` once. ``LFP_REF_MALLOC=default`` leaves glibc's
behaviour alone (for comparisons). Elsewhere than glibc (macOS, Windows, musl) it does nothing.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import platform
import sys
from pathlib import Path

#: allocations up to this size come from the heap and are reused (glibc's M_MMAP_THRESHOLD), and
#: the heap is not trimmed back to the system below it (M_TRIM_THRESHOLD): 1 GiB covers every
#: array of the benchmark models (the small VGG's largest, its im2col matrix, is 75 MB)
HEAP_LIMIT = 1 << 30
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3  # glibc's malloc.h

_tuned = None


def tune_allocator():
    """Make glibc keep and reuse freed memory up to :data:`HEAP_LIMIT` (module docstring).
    Returns True when the setting is in effect, False where it does not apply (not glibc, or
    ``LFP_REF_MALLOC=default``). Safe to call more than once."""
    global _tuned
    if _tuned is not None:
        return _tuned
    _tuned = False
    if os.environ.get("LFP_REF_MALLOC", "").lower() == "default":
        return False
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt  # glibc only (musl has none)
    except (OSError, AttributeError):
        return False
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    _tuned = bool(mallopt(_M_MMAP_THRESHOLD, HEAP_LIMIT)) and bool(
        mallopt(_M_TRIM_THRESHOLD, HEAP_LIMIT)
    )
    return _tuned


__all__ = ["HEAP_LIMIT", "tune_allocator"]


def machine_info():
    """The machine a measurement ran on: ``{"cpu", "cores", "system"}`` (the CPU's model name from
    /proc/cpuinfo where there is one), for the benchmark and figure reports."""
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {"cpu": cpu, "cores": os.cpu_count(), "system": platform.platform()}
