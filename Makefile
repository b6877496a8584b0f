# Two commands do all set-up on a fresh Debian 12 or Raspberry Pi OS machine:
#   make demo   installs everything and runs the station in simulation
#   make test   installs everything and runs every test, the linter and the type checker
SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help

PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
DEMO   ?= demo-data
# Debian packages the project needs, each with a probe that tells whether what
# it provides is already there (package names differ across releases: Debian 13
# ships libzbar0t64, which provides libzbar0).
APT_PROBES := \
  libzbar0:'/sbin/ldconfig -p | grep -q "libzbar\.so\.0"' \
  python3-venv:'$(PYTHON) -c "import ensurepip, venv"'
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: help install system-deps demo test lint typecheck importlint pytest bench clean

help:
	@echo "make demo   - install everything and run the station in simulation"
	@echo "make test   - install everything; run ruff, mypy, import contracts and pytest"
	@echo "make bench  - run the benchmarks (JSON in bench/out/)"
	@echo "make lint   - ruff, mypy and import contracts only"

system-deps:
	@missing=""; \
	for probe in $(APT_PROBES); do \
	  pkg=$${probe%%:*}; test=$${probe#*:}; \
	  eval "$$test" >/dev/null 2>&1 || missing="$$missing $$pkg"; \
	done; \
	if [ -n "$$missing" ]; then \
	  echo "installing Debian packages:$$missing"; \
	  $(SUDO) apt-get update -qq && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq $$missing; \
	fi
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "Python >= 3.11 is needed, found " + sys.version)'

$(STAMP): pyproject.toml | system-deps
	[ -x $(BIN)/python ] || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[gate,central,postgres,dev]'
	touch $(STAMP)

install: system-deps $(STAMP)

# The station as far as it exists: a central side issues passes for a sample
# compound and exports its lists; a gate imports them, reads each pass from its
# QR image and decides. Each step is the command an operator would type.
SYNC  = $(BIN)/gate-sync --data-dir $(DEMO)/central
AGENT = $(BIN)/gate-agent --config $(DEMO)/gate.toml
ISSUE = $(SYNC) passes issue --household LGQ012-H0301 --unit 3-2-501 --name 张三明
demo: install
	@rm -rf $(DEMO) && mkdir -p $(DEMO)/passes
	@sed 's|^data_dir = .*|data_dir = "gate"|' firmware_config/gate.example.toml > $(DEMO)/gate.toml
	@echo "== central: an issuer key and passes for compound LGQ-012"
	$(SYNC) keys new
	$(ISSUE) --kind resident --scope compound:LGQ-012 --days 90 --quota 1/2 \
	  --pass-id DEMOVALID1 --png $(DEMO)/passes/1-valid.png > $(DEMO)/passes/1-valid.txt
	$(ISSUE) --kind resident --scope compound:LGQ-012 --valid-from 2026-01-01 \
	  --valid-until 2026-01-31 --pass-id DEMOEXPIRED --png $(DEMO)/passes/2-expired.png
	$(ISSUE) --kind tenant --scope compound:LGQ-012 --days 90 \
	  --pass-id DEMOREVOKED --png $(DEMO)/passes/3-revoked.png
	$(SYNC) passes revoke DEMOREVOKED --reason "tenant moved out"
	$(ISSUE) --kind resident --scope compound:LGQ-099 --days 90 \
	  --pass-id DEMOOTHER --png $(DEMO)/passes/4-out-of-scope.png
	$(SYNC) lists export --out $(DEMO)/lists.json
	@echo "== gate LGQ-012-N: import the lists, then read and decide each pass"
	$(AGENT) lists import $(DEMO)/lists.json
	@for png in $(DEMO)/passes/*.png; do \
	  echo; echo "-- $$png"; \
	  $(AGENT) decode --json "$$png"; \
	  $(AGENT) check --image "$$png" --temperature 36.6 || true; \
	done
	@t=$$(cat $(DEMO)/passes/1-valid.txt); \
	  echo; echo "-- the valid pass with one character changed"; \
	  $(AGENT) check "$${t:0:30}$$( [ "$${t:30:1}" = A ] && echo B || echo A )$${t:31}" || true; \
	  echo; echo "-- the valid pass with a fever reading"; \
	  $(AGENT) check "$$t" --temperature 38.2 || true
	@echo; echo "Ledger and lists of the demo gate: $(DEMO)/gate; try: $(AGENT) check --help"

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: install
	$(BIN)/mypy

importlint: install
	$(BIN)/lint-imports

pytest: install
	$(BIN)/pytest -q

test: lint typecheck importlint pytest

bench: install
	$(BIN)/python -m bench.decode --out bench/out/decode.json
	$(BIN)/python -m bench.passes --out bench/out/passes.json
	$(BIN)/python -m bench.ledger --out bench/out/ledger.json

clean:
	rm -rf $(VENV) $(DEMO) bench/out .pytest_cache .mypy_cache .ruff_cache
