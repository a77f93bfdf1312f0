#!/usr/bin/env bash
# The GPU checks of issue 14 in one run, on a machine with an NVIDIA GPU and no network: the
# versions, `make test-gpu`'s tests (tests/test_gpu.py) and the GPU benchmark (benchmarks/gpu.py),
# with the machine's own Python (CuPy, numba, numba-cuda and PyTorch already there) and lfp_ref
# from this checkout on PYTHONPATH: nothing is installed from a registry.
#
#   bash benchmarks/device_check.sh       # logs and reports under $OUT if set, else benchmarks/out/device
#
# lfprop's column needs lfprop 1.0.0, lxt 0.6.1 and zennit 0.5.1 (pure-Python wheels, 200 kB in
# all). Without a network they come as wheels in .whl/ (gitignored), fetched beforehand on a
# machine with one:
#
#   python3 -m pip download --no-deps --only-binary=:all: -d .whl lfprop==1.0.0 lxt==0.6.1 zennit==0.5.1
#
# and are installed here with --no-index --no-deps into /tmp/lfp-peers. Without them the benchmark
# skips lfprop's column with a note. (lxt 0.6.1 imports transformers.utils.fx, which transformers
# 5 removed; benchmarks/gpu.py puts a stand-in module there, see shim_transformers_fx.)
#
# The steps and their limits (seconds; the variables override them), 9.5 minutes at most in all:
# the versions (LIMIT_ENV, 45), the tests (LIMIT_TESTS, 240), the benchmark (LIMIT_BENCH, 190; it
# starts no configuration after LIMIT_BENCH - 60), and the benchmark again, --quick, with numba's
# __cuda_array_interface__ stream synchronisation off (NUMBA_CUDA_ARRAY_INTERFACE_SYNC=0: a
# numba-cuda that takes a CuPy kernel argument through that interface synchronises the array's
# stream at every launch; 0.30 takes CuPy arrays through DLPack first. An A/B of that cost;
# LIMIT_NOSYNC, 75, 0 skips it). Every step runs even when an earlier one
# fails; the exit status is the first failure's. Files: env.txt, test-gpu.log, bench.log,
# RESULTS-gpu.md, bench-nosync.log, RESULTS-gpu-nosync.md, summary.txt.

set -euo pipefail
cd "$(dirname "$0")/.."

export PYTHON=${PYTHON:-python3}
OUTDIR=${OUT:-benchmarks/out/device}
mkdir -p "$OUTDIR"
LIMIT_ENV=${LIMIT_ENV:-45}
LIMIT_TESTS=${LIMIT_TESTS:-240}
LIMIT_BENCH=${LIMIT_BENCH:-190}
LIMIT_NOSYNC=${LIMIT_NOSYNC:-75}
export PYTHONUNBUFFERED=1
unset NUMBA_ENABLE_CUDASIM

if compgen -G ".whl/*.whl" >/dev/null; then
    if "$PYTHON" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
        --target /tmp/lfp-peers .whl/*.whl; then
        export PYTHONPATH="/tmp/lfp-peers${PYTHONPATH:+:$PYTHONPATH}"
    else
        echo "the wheels in .whl/ did not install: the benchmark will skip what needs them"
    fi
fi
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"

status=0
: >"$OUTDIR/summary.txt"

# step NAME LIMIT LOG COMMAND...: run COMMAND under `timeout LIMIT`, its output to the terminal
# and to $OUTDIR/LOG; note its exit status and duration in summary.txt
step() {
    local name=$1 limit=$2 log=$3
    shift 3
    echo "=== $name (limit ${limit} s) ==="
    local start=$SECONDS rc=0
    timeout --kill-after=10 "$limit" "$@" 2>&1 | tee "$OUTDIR/$log" || rc=$?
    local line="$name: exit $rc, $((SECONDS - start)) s"
    if [ "$rc" = 124 ] || [ "$rc" = 137 ]; then
        line="$line (timed out)"
    fi
    echo "$line" | tee -a "$OUTDIR/summary.txt"
    if [ "$rc" != 0 ] && [ "$status" = 0 ]; then
        status=$rc
    fi
}

versions() {
    date -u
    nvidia-smi || echo "nvidia-smi failed"
    nvidia-smi --query-gpu=name,driver_version,clocks.sm,clocks.max.sm,clocks.mem,power.limit \
        --format=csv || true
    echo "cores: $(nproc)"
    "$PYTHON" - <<'EOF'
import importlib.metadata as md
import platform
import sys

print("python", platform.python_version(), sys.executable)
for dist in ("numpy", "scipy", "numba", "numba-cuda", "cuda-bindings", "cupy-cuda13x",
             "cupy-cuda12x", "torch", "pytest", "lfprop", "lxt", "zennit", "transformers"):
    try:
        print(f"{dist} {md.version(dist)}")
    except md.PackageNotFoundError:
        print(f"{dist} not installed")
import cupy

props = cupy.cuda.runtime.getDeviceProperties(0)
print("cupy device:", props["name"], "runtime", cupy.cuda.runtime.runtimeGetVersion(),
      "driver", cupy.cuda.runtime.driverGetVersion())
from numba import cuda

print("numba.cuda.is_available():", cuda.is_available())
import lfp_ref
from lfp_ref.kernels import get_backend

print("lfp_ref", lfp_ref.__version__, "from", lfp_ref.__file__, "backend", get_backend("cuda").name)
EOF
}

export -f versions
step "versions" "$LIMIT_ENV" env.txt bash -c versions
step "make test-gpu (pytest -m gpu tests/test_gpu.py)" "$LIMIT_TESTS" test-gpu.log \
    "$PYTHON" -m pytest -q -m gpu tests/test_gpu.py --tb=short --durations=10
step "GPU benchmark" "$LIMIT_BENCH" bench.log \
    "$PYTHON" -m benchmarks.gpu --budget $((LIMIT_BENCH - 60)) --out "$OUTDIR/RESULTS-gpu.md"
if [ "$LIMIT_NOSYNC" -gt 0 ]; then
    step "GPU benchmark, NUMBA_CUDA_ARRAY_INTERFACE_SYNC=0 (--quick)" "$LIMIT_NOSYNC" \
        bench-nosync.log env NUMBA_CUDA_ARRAY_INTERFACE_SYNC=0 "$PYTHON" -m benchmarks.gpu \
        --quick --budget $((LIMIT_NOSYNC - 35)) --out "$OUTDIR/RESULTS-gpu-nosync.md"
fi

echo "=== summary ==="
cat "$OUTDIR/summary.txt"
exit "$status"
