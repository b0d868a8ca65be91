# Two commands on a fresh machine: `make run` and `make test`.
# Everything is installed into .venv from PyPI with the pins in requirements.lock.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
DEPS := $(VENV)/.stamp-deps
STAMP := $(VENV)/.stamp-installed$(if $(filter 1,$(ATOLL_PURE_PYTHON)),-pure)
# The build compiles src/atoll with mypyc (setup.py), so it reruns when a source changes:
# a stale extension would shadow the edited .py. ATOLL_PURE_PYTHON=1 builds no extension.
SOURCES := $(shell find src -name '*.py') setup.py pyproject.toml

# `make run PORT=8100 DATA=/var/tmp/atoll`: the first region's client port (the others
# follow), the data directory; peer ports start at PEER_PORT (PORT + 1000 unless given).
PORT ?= 8000
DATA ?= ./data
PEER_PORT ?= $(shell expr $(PORT) + 1000)
# Tests need Chromium (the console test) and iproute2 (the three-namespace test):
# installed from Debian's packages when missing (root on Debian, as in CI).
SYSTEM_TOOLS := chromium:chromium ip:iproute2 faketime:faketime

.PHONY: run test lint bench setup clean serve system-tools chromium pg-server

$(DEPS): requirements.lock
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -r requirements.lock
	touch $(DEPS)

$(STAMP): $(DEPS) $(SOURCES)
	rm -f $(VENV)/.stamp-installed*
	find src -name '*.so' -delete
	ATOLL_PURE_PYTHON=$(ATOLL_PURE_PYTHON) $(BIN)/pip install -q --no-deps --no-build-isolation -e .
	touch $(STAMP)

setup: $(STAMP)

run: $(STAMP)
	$(BIN)/atoll cluster --data-dir $(DATA) --base-port $(PORT) --peer-base-port $(PEER_PORT)

# Two pytest-xdist workers (the machine's two cores): the live tests, which start
# clusters and time what they do, run on one of them one at a time (group "live",
# tests/conftest.py) while the other takes everything else; TEST_JOBS=0 runs the suite in
# one process.
TEST_JOBS ?= 2

test: $(STAMP) system-tools pg-server
	$(BIN)/python -m pytest -q -n $(TEST_JOBS) --dist loadgroup --durations=25 tests

# Installs what is missing; if it cannot (not root, not Debian) it says so and the tests
# that need the tool fail with the reason.
system-tools:
	@missing=""; for pair in $(SYSTEM_TOOLS); do \
	  command -v $${pair%%:*} >/dev/null 2>&1 || missing="$$missing $${pair#*:}"; done; \
	if [ -n "$$missing" ]; then \
	  echo "installing$$missing (apt-get)"; \
	  { DEBIAN_FRONTEND=noninteractive apt-get install -y -q $$missing >/dev/null 2>&1 || \
	    { apt-get update -q >/dev/null && \
	      DEBIAN_FRONTEND=noninteractive apt-get install -y -q $$missing >/dev/null; }; } || \
	  echo "could not install$$missing: the tests that need them will fail and say why"; \
	fi

chromium: system-tools

# A real PostgreSQL server for the PostgreSQL storage's tests and bench (tests/pg.py runs
# throwaway servers from its binaries): Debian's package, installed when missing.
pg-server:
	@ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ]; then \
	    apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q postgresql; \
	  else \
	    echo "PostgreSQL's server is not installed: apt-get install postgresql (as root)" >&2; \
	    exit 1; \
	  fi; }

lint: $(STAMP)
	$(BIN)/ruff check src tests bench
	$(BIN)/mypy

bench: $(STAMP)
	$(BIN)/python -m bench

clean:
	rm -rf $(VENV) data .pytest_cache .hypothesis build test-artifacts
	find src -name '*.so' -delete
