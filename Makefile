# The two set-up commands: `make demo` and `make test` (mypy on src/, then the suite). Each creates
# the virtual environment if it is missing and installs the project into it (again only when
# pyproject.toml changed), then runs.
#   make test TESTS="tests/test_trading.py -x"   runs part of the suite
#   make test VENV=/tmp/venv INSTALL=            a fresh, non-editable install (what CI does)

PYTHON ?= python3
VENV ?= .venv
INSTALL ?= -e
TESTS ?=

BIN := $(VENV)/bin

.PHONY: demo test

demo: $(VENV)/.installed
	$(BIN)/portfolio demo

test: $(VENV)/.installed-test
	$(BIN)/python -m mypy
	$(BIN)/python -m pytest -q -n auto $(TESTS)

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet $(INSTALL) .
	touch $@

$(VENV)/.installed-test: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet $(INSTALL) ".[test]"
	touch $@ $(VENV)/.installed

# The generated docs (command and configuration references); tests/test_docs.py fails when they are stale.
.PHONY: docs
docs: $(VENV)/.installed
	$(BIN)/python scripts/gen_docs.py
