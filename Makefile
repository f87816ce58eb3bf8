# The two commands: `make run` (the embedded default) and `make test` (the full suite).
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp

# The embedded demo only: a fixed development secret so `make run` needs no set-up. Never in production.
export SECRET_KEY ?= dev-only-insecure-secret-key-do-not-deploy

.PHONY: run test install services lint typecheck bench clean

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

test: $(STAMP) services
	$(BIN)/python -m pytest

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy pro_service workers alerts config

bench: $(STAMP) services
	$(BIN)/python -m benchmarks.run

clean:
	rm -rf $(VENV) var .pytest_cache .mypy_cache .ruff_cache
