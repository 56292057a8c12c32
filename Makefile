# Quick start: `make demo` (the benchmark on ML-100K) and `make test` (the test suite).
# Both create .venv on first use and install everything they need, torch first.
PYTHON ?= python3
VENV   ?= .venv
TORCH  ?= torch==2.13.0
BIN    := $(VENV)/bin
PIP    := $(BIN)/python -m pip

.PHONY: demo test lint clean-venv

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(PIP) install --quiet --upgrade pip

# torch goes in before the package so that pip never resolves an unpinned (CUDA) build.
$(VENV)/.torch-stamp: $(BIN)/python
	$(PIP) install --quiet "$(TORCH)"
	echo "$(TORCH)" > $@

$(VENV)/.core-stamp: $(VENV)/.torch-stamp pyproject.toml
	$(PIP) install --quiet -e .
	touch $@

$(VENV)/.dev-stamp: $(VENV)/.torch-stamp pyproject.toml
	$(PIP) install --quiet -e ".[dev]"
	touch $@

demo: $(VENV)/.core-stamp
	$(BIN)/aerec bench --suite quick --datasets ml-100k --out bench-out/quick

test: $(VENV)/.dev-stamp
	$(BIN)/python -m pytest --timeout 900

lint: $(VENV)/.dev-stamp
	$(BIN)/ruff check src tests benchmarks

clean-venv:
	rm -rf $(VENV)
