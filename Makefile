# The two commands: `make run` (the embedded default) and `make test` (the full suite).
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp

# The embedded demo only: a fixed development secret so `make run` needs no set-up. Never in production.
export SECRET_KEY ?= dev-only-insecure-secret-key-do-not-deploy

.PHONY: run test install services lint bench faults clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

run: $(STAMP)
	$(BIN)/pro-service run

services:
	@scripts/ensure-services

# Test processes (pytest-xdist): each has its own database, Redis dbs, Celery worker and browser.
TEST_PROCESSES ?= 2

test: $(STAMP) services
	$(BIN)/python -m pytest -n $(TEST_PROCESSES) --dist loadgroup

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy pro_service workers alerts config dev testsupport
	$(BIN)/lint-imports

bench: $(STAMP) services
	@command -v wrk >/dev/null || (apt-get update -qq && apt-get install -y -qq wrk >/dev/null)
	$(BIN)/python -m benchmarks.run

faults: $(STAMP) services
	$(BIN)/python -m pytest -m faults tests/faults

clean:
	rm -rf $(VENV) var .pytest_cache .mypy_cache .ruff_cache
