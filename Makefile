# The two commands a newcomer needs: `make run` and `make test`.
SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON ?= $(shell for p in python3.13 python3.12 python3.11 python3; do \
	command -v $$p >/dev/null && $$p -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null \
	&& { echo $$p; break; }; done)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
TOOLS := .tools

.PHONY: help venv run test fuzz check tools bench bench-quick schemas format audit clean

help:
	@echo "make run    - demo: embedded Kafka + Trengo sandbox + sample events through the processor"
	@echo "make test   - checks, then the whole test suite"
	@echo "make check  - ruff format --check, ruff check, mypy --strict"
	@echo "make fuzz   - the property-based fuzz tests with 20,000 random examples each"
	@echo "make bench  - benchmarks (results in bench/RESULTS.md); make bench-quick: ~5 minutes"
	@echo "make audit  - pip-audit of the virtualenv (needs network access to the vulnerability database)"
	@echo "make clean  - remove the virtualenv, tools and caches"

venv: $(STAMP)

$(STAMP): pyproject.toml devkit/pyproject.toml
	@test -n "$(PYTHON)" || { echo "Python 3.11 or newer is required" >&2; exit 1; }
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[test,dev]' -e ./devkit
	@touch $(STAMP)

run: venv
	$(BIN)/trengo-processor demo

check: venv
	$(BIN)/ruff format --check processor devkit tests $(wildcard bench)
	$(BIN)/ruff check processor devkit tests $(wildcard bench)
	$(BIN)/mypy processor devkit bench

tools: venv
	bash scripts/install-tools.sh $(TOOLS)

test: check tools
	PATH="$(CURDIR)/$(TOOLS)/bin:$$PATH" $(BIN)/pytest -q

fuzz: venv
	HYPOTHESIS_PROFILE=fuzz $(BIN)/pytest -q tests/unit/pipeline/test_fuzz.py

bench: venv
	$(BIN)/python -m bench

bench-quick: venv
	$(BIN)/python -m bench --quick

schemas: venv
	$(BIN)/python -m processor.schemas schemas

# Not part of `make test`: it needs the network (PyPI's vulnerability data).
audit: venv
	$(BIN)/python scripts/audit.py

format: venv
	$(BIN)/ruff format processor devkit tests $(wildcard bench)
	$(BIN)/ruff check --fix processor devkit tests $(wildcard bench)

clean:
	rm -rf $(VENV) $(TOOLS) .mypy_cache .ruff_cache .pytest_cache
	find . -name __pycache__ -type d -prune -exec rm -rf {} +
