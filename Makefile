# Two commands on a fresh machine: `make demo` and `make test`. Each creates the virtual
# environment it needs (.venv) and installs backfiller with its dev tools into it.
VENV ?= .venv
PYTHON ?= python3
BIN := $(VENV)/bin

.PHONY: help demo test check bench contracts clean

help:  ## list the targets
	@grep -E '^[a-z]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-10s %s\n", $$1, $$2}'

$(BIN)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[dev]"
	touch $@

demo: $(BIN)/.installed  ## install, then run the demo on the bundled example
	$(BIN)/backfiller demo

test: $(BIN)/.installed  ## install, then ruff, ruff format --check, mypy --strict and pytest
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/pytest -n 2

check: $(BIN)/.installed  ## the fast loop: ruff, mypy, the tests not marked slow, on SQLite
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	BACKFILLER_FAST_LOOP=1 $(BIN)/pytest -m "not slow and not postgres" -n 2

bench: $(BIN)/.installed  ## run the benchmarks (never part of the tests)
	$(BIN)/python benchmarks/backfill_365.py

contracts: $(BIN)/.installed  ## regenerate the JSON Schemas under contracts/
	$(BIN)/python -c "from pathlib import Path; from backfiller.schemas import write_contracts; write_contracts(Path('contracts'))"

clean:  ## remove the virtual environment and caches
	rm -rf $(VENV) .mypy_cache .pytest_cache .ruff_cache .hypothesis
