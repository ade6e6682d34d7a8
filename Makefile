# The two commands of the README: `make demo` runs the main job, `make test` runs the tests.
# Each sets up what is missing first: .venv, the Python dependencies, a Chromium.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.glaneur-installed

.PHONY: demo demo-stop test test-fast setup browser bench clean

setup: $(STAMP) browser

$(STAMP): pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e ".[test]"
	@touch $(STAMP)

browser: $(STAMP)
	@PY=$(PY) sh scripts/ensure-chromium.sh

demo: setup
	$(PY) -m sandbox.demo

test: setup
	$(PY) -m pytest -q -p no:cacheprovider

test-fast: setup
	$(PY) -m pytest -q -m "not slow"

bench: setup
	$(PY) bench/collect_bench.py
	$(PY) bench/resume_latency.py
	$(PY) bench/statements_bench.py
	$(PY) bench/cli_startup.py
	$(PY) bench/bank_sync_bench.py

clean:
	rm -rf var/

demo-stop: $(STAMP)
	$(PY) -m sandbox.demo --stop
