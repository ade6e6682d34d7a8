# The two commands of the README: `make demo` runs the main job, `make test` runs the tests.
# Each sets up what is missing first: .venv, the Python dependencies, a Chromium.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.glaneur-installed

.PHONY: demo demo-stop test test-fast setup browser caddy s3rver bench bench-scale deploy worker local-stack clean

setup: $(STAMP) browser

$(STAMP): pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e ".[test]"
	@touch $(STAMP)

browser: $(STAMP)
	@PY=$(PY) sh scripts/ensure-chromium.sh

caddy: $(STAMP)
	@PY=$(PY) sh scripts/ensure-caddy.sh

s3rver:
	@sh scripts/ensure-s3rver.sh

demo: setup
	$(PY) -m sandbox.demo

test: setup caddy s3rver
	$(VENV)/bin/lint-imports
	$(PY) -m pytest -q -p no:cacheprovider

test-fast: setup
	$(VENV)/bin/lint-imports
	$(PY) -m pytest -q -m "not slow"

bench: setup
	$(PY) bench/collect_bench.py
	$(PY) bench/resume_latency.py
	$(PY) bench/statements_bench.py
	$(PY) bench/cli_startup.py
	$(PY) bench/bank_sync_bench.py
	$(PY) bench/chromium_cost.py

# Deploy on the Prefect server PREFECT_API_URL names: work pool (when missing), provider limits, deployments.
deploy: $(STAMP)
	$(PY) -m infra.deploy

# A worker on the glaneur pool of PREFECT_API_URL's server: collections in its LIMIT long-lived threads,
# one Chromium each (infra/worker.py); every other deployment in a process of its own.
LIMIT ?= 4
worker: setup
	$(PY) -m infra.worker --pool glaneur --limit $(LIMIT)

# Prefect on PostgreSQL, Glaneur's database on the same cluster, N workers (Ctrl-C stops all).
WORKERS ?= 2
WORKER_KIND ?= glaneur
local-stack: setup
	$(PY) -m infra.local_stack --workers $(WORKERS) --worker-kind $(WORKER_KIND)

CHANNELS ?= 20
INVOICES ?= 12
bench-scale: setup
	$(PY) bench/scale.py --channels $(CHANNELS) --invoices $(INVOICES) --workers $(WORKERS) --limit $(LIMIT) --worker-kind $(WORKER_KIND)

clean:
	rm -rf var/

demo-stop: $(STAMP)
	$(PY) -m sandbox.demo --stop
