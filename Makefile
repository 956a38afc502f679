# posterm: the two commands of the README, and what they need.
#
#   make demo   run the main job on the built-in simulator
#   make test   lint, type-check, check import directions, run the test suite
#
# Both install what is missing on their own: Debian packages (when run as
# root; otherwise they say what to install), the virtual environment in
# .venv, and the Python packages.  A second run finds everything in place
# and installs nothing.  PostgreSQL (Debian's postgresql) is for the tests
# of the host's PostgreSQL store: they start a private cluster of their own
# in a temporary folder (as an unprivileged user when run as root) and stop
# it afterwards; the system's cluster, if any, is left alone.

SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
DEB_PACKAGES := python3 python3-venv python3-dev gcc pcscd vsmartcard-vpcd libpcsclite-dev swig libzbar0 fonts-dejavu-core fonts-wqy-microhei libgl1-mesa-dri libegl1 libmtdev1 postgresql

.PHONY: demo test lint typecheck imports unit bench clean system-deps

demo: $(STAMP)
	$(BIN)/posterm demo --out demo-output

test: $(STAMP) lint typecheck imports unit

lint: $(STAMP)
	$(BIN)/ruff check .

typecheck: $(STAMP)
	$(BIN)/mypy

imports: $(STAMP)
	$(BIN)/lint-imports

unit: $(STAMP)
	$(BIN)/python -m pytest $(PYTEST_ARGS)

bench: $(STAMP)
	$(BIN)/python -m bench

# The venv is rebuilt only when the packaging files change.
$(STAMP): setup.cfg pyproject.toml | system-deps
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	@touch $(STAMP)

# Debian packages: installed when missing and we are root; otherwise named.
system-deps:
	@bash tools/system-deps.sh $(DEB_PACKAGES)

clean:
	rm -rf $(VENV) build *.egg-info .mypy_cache .ruff_cache .pytest_cache .hypothesis
