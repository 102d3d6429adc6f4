# Two commands matter: `make demo` and `make test` (and `make lint` before a commit). All build .venv on first use.
PYTHON ?= $(shell command -v python3.11 2>/dev/null || command -v python3)
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp

.PHONY: demo test test-fast test-postgres lint bench clean help

# Tests whose code paths differ by database (SKIP LOCKED, upserts, advisory locks, NOTIFY):
# `make test` runs them a second time on PostgreSQL. `make test-postgres` runs everything there.
POSTGRES_AGAIN := tests/approvals tests/slack tests/gateway/test_policy_enforcement.py tests/gateway/test_sessions.py \
                  tests/test_audit.py tests/inbox/test_live.py
POSTGRES_AGAIN += tests/tasks/test_service.py tests/tasks/test_held_tasks.py

help:  ## Show the targets.
	@grep -E '^[a-z-]+:.*## ' Makefile | awk -F':.*## ' '{printf "  make %-10s %s\n", $$1, $$2}'

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $(STAMP)

demo: $(STAMP)  ## Run the demo: an Execution Market-like upstream behind Airlock (SQLite).
	$(BIN)/airlock demo

test: $(STAMP)  ## Run the whole suite (PostgreSQL and browser tests included when available).
	$(BIN)/python -m pytest
	AIRLOCK_TEST_DATABASE=postgres $(BIN)/python -m pytest $(POSTGRES_AGAIN)

test-postgres: $(STAMP)  ## Run the whole suite on PostgreSQL (127.0.0.1:5432, database test).
	AIRLOCK_TEST_DATABASE=postgres $(BIN)/python -m pytest

test-fast: $(STAMP)  ## Skip the browser and PostgreSQL tests.
	$(BIN)/python -m pytest -m "not browser and not postgres"

lint: $(STAMP)  ## Check style, formatting and types (ruff, ruff format, mypy --strict).
	$(BIN)/ruff check app tests bench migrations
	$(BIN)/ruff format --check app tests bench migrations
	$(BIN)/mypy app tests bench

bench: $(STAMP)  ## Measure the gateway (see bench/README.md).
	$(BIN)/python -m bench.run

clean:  ## Remove the virtualenv and local data.
	rm -rf $(VENV) data .pytest_cache
