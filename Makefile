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

# mypy runs beside the suite (it needs one core for ~12 s; the suite leaves that idle while its
# tests wait on subprocesses), and its report follows the tests'. Either failing fails the target.
test: $(VENV)/.installed-test
	@$(BIN)/python -m mypy > $(VENV)/mypy.log 2>&1 & types=$$!; \
	echo "$(BIN)/python -m pytest -q -n auto $(TESTS)"; \
	$(BIN)/python -m pytest -q -n auto $(TESTS); tests=$$?; \
	wait $$types; typed=$$?; echo "$(BIN)/python -m mypy"; cat $(VENV)/mypy.log; \
	test $$tests -eq 0 && test $$typed -eq 0

# The venv's pip is a current one, installed by this Python's own pip: it resolves the project's
# dependencies in half the CPU time of the pip Python 3.11 bundles (35 s of one core), and the venv
# is made in a second rather than the 6 s of unpacking that bundled pip. Where this Python has no pip
# of its own or no index answers, the venv gets the bundled one.
$(BIN)/python:
	$(PYTHON) -m venv --without-pip $(VENV)
	$(PYTHON) -m pip --python $(BIN)/python install --quiet --upgrade pip 2>/dev/null \
		|| $(BIN)/python -m ensurepip --default-pip >/dev/null

# pip compiles every installed module on one core; compileall does it on every core, skipping what
# nothing here imports (the libraries' own tests, ccxt's async, websocket and prediction-market
# clients, pygments' lexers, numpy's build tools, pydantic's v1 copy, pip and setuptools, mypy's
# sources beside its compiled modules). The bytecode
# matters where PYTHONDONTWRITEBYTECODE is set: each process would compile ccxt and pandas again.
# A file that does not compile is only left uncompiled.
COMPILE = $(BIN)/python -m compileall -q -j 0 -x '/(tests|ccxt/async_support|ccxt/pro|ccxt/test|ccxt/prediction|pygments/lexers|numpy/distutils|numpy/f2py|pydantic/v1|pip|setuptools|pkg_resources|mypy|mypyc)/' \
	"$$($(BIN)/python -c 'import sysconfig; print(sysconfig.get_path("purelib"))')" >/dev/null || true

$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet --no-compile $(INSTALL) .
	$(COMPILE)
	touch $@

$(VENV)/.installed-test: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet --no-compile $(INSTALL) ".[test]"
	$(COMPILE)
	touch $@ $(VENV)/.installed

# The generated docs (command and configuration references); tests/test_docs.py fails when they are stale.
.PHONY: docs
docs: $(VENV)/.installed
	$(BIN)/python scripts/gen_docs.py
