# Quick start: `make demo` (the benchmark on ML-100K) and `make test` (the test suite).
# Both create $(VENV) on first use and install everything they need, torch first.
# `make demo-smoke` is the demo's installation check (CI): the same venv and install lines as
# `make demo`, every quick-suite model on 3 folds with 1-3 epochs, then the report files checked.
# Any of these may be redirected: make demo-smoke VENV=/tmp/v AEREC_HOME=/tmp/h SMOKE_OUT=/tmp/s
PYTHON ?= python3
VENV   ?= .venv
TORCH  ?= torch==2.13.0
# The quick suite's optional libraries: WMF needs implicit and threadpoolctl, SLIM scikit-learn.
DEMO_EXTRAS ?= peers
DEMO_JOBS   ?= 2
DEMO_OUT    ?= bench-out/quick
SMOKE_OUT   ?= bench-out/smoke
BIN    := $(VENV)/bin
PIP    := $(BIN)/python -m pip

# The data cache (default ~/.cache/aerec); given on the command line it reaches aerec too.
ifdef AEREC_HOME
export AEREC_HOME
endif

# The plots the quick suite writes for ML-100K (rating, strong and SVAE's temporal protocol).
SMOKE_FILES := results.md results.csv results.json run.json \
	curves-ml-100k-rmse.png bars-ml-100k-rating.png time-ml-100k-rmse.png \
	curves-ml-100k-ndcg100.png bars-ml-100k-topn.png time-ml-100k-ndcg100.png \
	curves-ml-100k-temporal-ndcg100.png bars-ml-100k-temporal-topn.png time-ml-100k-temporal-ndcg100.png

.PHONY: demo demo-smoke test lint clean-venv browser

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

# demo and demo-smoke share this stamp, so CI installs exactly what a new user gets.
$(VENV)/.demo-stamp: $(VENV)/.torch-stamp pyproject.toml
	$(PIP) install --quiet -e ".[$(DEMO_EXTRAS)]"
	touch $@

$(VENV)/.dev-stamp: $(VENV)/.torch-stamp pyproject.toml
	$(PIP) install --quiet -e ".[dev]"
	touch $@

demo: $(VENV)/.demo-stamp
	$(BIN)/aerec bench --suite quick --datasets ml-100k --jobs $(DEMO_JOBS) --out $(DEMO_OUT)

demo-smoke: $(VENV)/.demo-stamp
	rm -rf $(SMOKE_OUT)
	$(BIN)/aerec bench --suite quick --datasets ml-100k --jobs $(DEMO_JOBS) --smoke --out $(SMOKE_OUT)
	@for f in $(SMOKE_FILES); do \
		test -s "$(SMOKE_OUT)/$$f" || { echo "demo-smoke: $(SMOKE_OUT)/$$f is missing or empty"; exit 1; }; \
	done
	@$(BIN)/python -c "import json, sys; from aerec.bench.suites import SUITES; \
		rows = json.load(open('$(SMOKE_OUT)/results.json')); \
		missing = sorted(set(SUITES['quick']) - {r['model'] for r in rows}); \
		sys.exit(f'demo-smoke: no result for {missing}' if missing else 0)"
	@echo "demo-smoke: every quick-suite model ran; report and plots in $(SMOKE_OUT)"

# The page's browser test (tests/test_serve_page.py) drives Debian's chromium and chromium-driver.
# As root with apt-get they are installed when missing; anywhere else (or if apt fails) the test
# skips and says why: this step never fails the build.
browser:
	@if command -v chromedriver >/dev/null 2>&1 && command -v chromium >/dev/null 2>&1; then :; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
		echo "make: installing chromium and chromium-driver for the page's browser test"; \
		{ apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends \
			chromium chromium-driver; } >/dev/null 2>&1 \
		|| echo "make: apt-get could not install chromium chromium-driver; the browser test will skip (fail under CI)"; \
	else echo "make: no chromium/chromedriver (and no apt-get as root); the browser test will skip"; fi

test: $(VENV)/.dev-stamp browser
	$(BIN)/python -m pytest --timeout 900

lint: $(VENV)/.dev-stamp
	$(BIN)/ruff check src tests benchmarks

clean-venv:
	rm -rf $(VENV)
