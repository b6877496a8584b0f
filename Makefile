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
# The demo's visitors keep coming, one every PACE seconds, until Ctrl-C
# (ROUNDS=1: once through).
ROUNDS ?= 0
PACE   ?= 2.5
# Debian packages the project needs, each with a probe that tells whether what
# it provides is already there (package names differ across releases: Debian 13
# ships libzbar0t64, which provides libzbar0). chromium and a CJK font are for
# the console's browser tests and screenshots: Playwright drives Debian's
# chromium, never a browser it downloads. postgresql gives the server binaries the
# tests start their own throwaway PostgreSQL from (tests/pg.py); no system cluster is
# wanted, so before installing it we tell postgresql-common not to create one.
# shellcheck checks firmware_config/install.sh and kiosk.sh in tests/deploy.
# systemd brings systemd-analyze, which verifies our units (tests/deploy/test_units.py).
APT_PROBES := \
  libzbar0:'/sbin/ldconfig -p | grep -q "libzbar\.so\.0"' \
  python3-venv:'$(PYTHON) -c "import ensurepip, venv"' \
  chromium:'test -x /usr/bin/chromium' \
  fonts-noto-cjk:'fc-list :lang=zh | grep -q .' \
  postgresql:'ls /usr/lib/postgresql/*/bin/initdb' \
  shellcheck:'command -v shellcheck' \
  systemd:'command -v systemd-analyze'
NO_MAIN_CLUSTER := /etc/postgresql-common/createcluster.d/gate-station-no-main.conf
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: help install system-deps demo test lint ruff typecheck importlint pytest bench soak fuzz clean

help:
	@echo "make demo   - install everything and run the station in simulation"
	@echo "make test   - install everything; run ruff, mypy, import contracts and pytest"
	@echo "make bench  - run the benchmarks (JSON, report.md and plots in bench/out/)"
	@echo "make soak   - an hour at one gate, the centre with 500 gates, crashes, sync chaos"
	@echo "make fuzz   - fuzz the pass, lists, bundle and image parsers (FUZZ_SECONDS per target)"
	@echo "make lint   - ruff, mypy and import contracts only"

system-deps:
	@missing=""; \
	for probe in $(APT_PROBES); do \
	  pkg=$${probe%%:*}; test=$${probe#*:}; \
	  eval "$$test" >/dev/null 2>&1 || missing="$$missing $$pkg"; \
	done; \
	if [ -n "$$missing" ]; then \
	  echo "installing Debian packages:$$missing"; \
	  case " $$missing " in *" postgresql "*) \
	    $(SUDO) mkdir -p $(dir $(NO_MAIN_CLUSTER)); \
	    echo "create_main_cluster = false" | $(SUDO) tee $(NO_MAIN_CLUSTER) >/dev/null;; \
	  esac; \
	  $(SUDO) apt-get update -qq && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq $$missing; \
	fi
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "Python >= 3.11 is needed, found " + sys.version)'

$(STAMP): pyproject.toml | system-deps
	[ -x $(BIN)/python ] || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[gate,central,postgres,dev]'
	touch $(STAMP)

install: system-deps $(STAMP)

# A live gate in simulation. The central side issues passes for a sample
# compound (one expired, one revoked, one household in isolation), exports its
# signed lists and serves sync; the gate enrols (pinning the centre key that
# signs lists), imports the lists, and runs with simulated cameras and
# thermometer on gpiozero's mock pins while scripted residents walk through;
# its entries go up to the centre and newer lists come down.
# Each step is the command an operator would type.
SYNC  = $(BIN)/gate-sync --data-dir $(DEMO)/central
AGENT = $(BIN)/gate-agent --config $(DEMO)/gate.toml
ISSUE = $(SYNC) passes issue --scope compound:LGQ-012 --unit 3-2-501
demo: install
	@rm -rf $(DEMO) && mkdir -p $(DEMO)/passes
	@cp firmware_config/demo/gate.toml $(DEMO)/gate.toml
	@umask 077 && $(BIN)/python -c "import secrets; print(secrets.token_urlsafe(24))" > $(DEMO)/admin.token
	@echo "== central: an issuer key, passes for compound LGQ-012, one household in isolation"
	$(SYNC) keys new
	@umask 077 && $(SYNC) admins add demo-admin > $(DEMO)/central/admin.password
	$(ISSUE) --kind resident --household LGQ012-H0301 --name 张三明 --days 90 > $(DEMO)/passes/resident.txt
	$(ISSUE) --kind resident --household LGQ012-H0302 --name 李四 --valid-from 2026-01-01 \
	  --valid-until 2026-01-31 > $(DEMO)/passes/expired.txt
	$(ISSUE) --kind tenant --household LGQ012-H0303 --name 王小红 --days 90 --pass-id DEMOREVOKED \
	  > $(DEMO)/passes/revoked.txt
	$(SYNC) passes revoke DEMOREVOKED --reason "tenant moved out"
	$(ISSUE) --kind resident --household LGQ012-H0404 --name 赵大为 --days 90 > $(DEMO)/passes/isolated.txt
	$(SYNC) households isolate LGQ012-H0404 --until 2099-12-31 --note "home isolation order"
	$(ISSUE) --kind resident --household LGQ012-H0505 --name 孙丽 --days 90 > $(DEMO)/passes/fever.txt
	$(SYNC) passes issue --scope compound:LGQ-099 --unit 1-1-101 --kind resident \
	  --household LGQ099-H0101 --name 周强 --days 90 > $(DEMO)/passes/elsewhere.txt
	$(SYNC) passes issue --scope community:LGQ --kind delivery --household LGQ-DELIVERY \
	  --name 吴师傅 --days 30 > $(DEMO)/passes/delivery.txt
	$(SYNC) lists export --out $(DEMO)/lists.json
	@echo "== central sync server on 127.0.0.1:8600; the gate enrols with a one-time code"
	@umask 077 && $(BIN)/python -c "import secrets; print(secrets.token_urlsafe(24))" > $(DEMO)/central/admin.token
	$(SYNC) gates enrol LGQ-012-N > $(DEMO)/central/enrol.code
	@echo "== gate LGQ-012-N: enrol (pinning the centre key), import the signed lists, run"
	@# The server runs for as long as the demo does, and stops with it (Ctrl-C included).
	@$(SYNC) serve --port 8600 --admin-token-file $(DEMO)/central/admin.token \
	  > $(DEMO)/central/serve.log 2>&1 & server=$$!; \
	trap 'kill $$server 2>/dev/null' EXIT INT TERM; \
	$(BIN)/python -c "import socket, time; [time.sleep(0.1) for _ in range(100) if socket.socket().connect_ex(('127.0.0.1', 8600))]"; \
	$(AGENT) sync enrol --code "$$(cat $(DEMO)/central/enrol.code)"; \
	$(AGENT) lists import $(DEMO)/lists.json; \
	$(AGENT) doctor || true; \
	echo; echo "Admin token for the console: $$(cat $(DEMO)/admin.token)"; \
	echo "Central admin page: http://127.0.0.1:8600/admin/   name demo-admin   password $$(cat $(DEMO)/central/admin.password)"; \
	echo "Logs at the centre: $(SYNC) pull --format csv --out log.csv   (or xlsx, jsonl)"; \
	echo "Lock the gate down from the centre: $(SYNC) gates set mode=lockdown --gate LGQ-012-N"; \
	echo "The fleet: curl -H \"Authorization: Bearer $$(cat $(DEMO)/central/admin.token)\" http://127.0.0.1:8600/v1/admin/gates"; \
	$(AGENT) demo --scenario firmware_config/demo/scenario.json --passes $(DEMO)/passes \
	  --rounds $(ROUNDS) --pace $(PACE); \
	$(AGENT) sync status; \
	$(AGENT) verify-ledger

# The static checks: ruff (lint and format), mypy, and the import contracts.
lint: ruff typecheck importlint

ruff: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: install
	$(BIN)/mypy

importlint: install
	$(BIN)/lint-imports

# Tests run on one worker per core, from two to four (each test starts its own
# servers on free ports; each worker starts its own PostgreSQL server and chromium).
PYTEST_WORKERS ?= $(shell n=$$(nproc 2>/dev/null || echo 2); [ "$$n" -lt 2 ] && n=2; [ "$$n" -gt 4 ] && n=4; echo $$n)
pytest: install
	$(BIN)/pytest -q -n $(PYTEST_WORKERS)

test: lint pytest

bench: install
	$(BIN)/python -m bench.decode --out bench/out/decode.json
	$(BIN)/python -m bench.passes --out bench/out/passes.json
	$(BIN)/python -m bench.ledger --out bench/out/ledger.json
	$(BIN)/python -m bench.gate --out bench/out/gate.json
	$(BIN)/python -m bench.bundle --out bench/out/bundle.json
	$(BIN)/python -m bench.sync --out bench/out/sync.json
	$(BIN)/python -m bench.trace --out bench/out/trace.json
	$(BIN)/python -m bench.stats --out bench/out/stats.json
	$(BIN)/python -m bench.compound --out bench/out/compound.json
	$(BIN)/python -m bench.report --in bench/out --out bench/out/report.md

# Soak (issue 8): an hour of people at one gate, one every 2 s (RSS may grow by 5 MB at
# most, no descriptor leak, latency steady), then 10 minutes of 500 gates at the centre.
# Each exits non-zero when its limits fail; the others still run, and `make` fails after.
SOAK_GATE_SECONDS   ?= 3600
SOAK_CENTRE_SECONDS ?= 600
SOAK_GATES          ?= 500
# Then the gate SIGKILLed at random moments while it records 10,000 entries, and again
# with the power cut beneath SQLite at each kill (bench/powerloss.c; needs gcc).
CRASH_ENTRIES       ?= 10000
CRASH_KILLS         ?= 50
POWERLOSS_ENTRIES   ?= 2000
POWERLOSS_KILLS     ?= 20
# Then sync chaos: a seeded random schedule of faults, gate restarts and server kills.
CHAOS_SECONDS       ?= 600
CHAOS_SEED          ?= 1
soak: install
	status=0; \
	$(BIN)/python -m bench.soak_gate --seconds $(SOAK_GATE_SECONDS) --interval 2 \
	  --out bench/out/soak-gate.json || status=1; \
	$(BIN)/python -m bench.soak_centre --seconds $(SOAK_CENTRE_SECONDS) --gates $(SOAK_GATES) \
	  --out bench/out/soak-centre.json || status=1; \
	$(BIN)/python -m bench.crash --entries $(CRASH_ENTRIES) --kills $(CRASH_KILLS) \
	  --out bench/out/crash.json || status=1; \
	$(BIN)/python -m bench.crash --entries $(POWERLOSS_ENTRIES) --kills $(POWERLOSS_KILLS) \
	  --power-loss --out bench/out/crash-powerloss.json || status=1; \
	$(BIN)/python -m bench.chaos --seconds $(CHAOS_SECONDS) --seed $(CHAOS_SEED) \
	  --out bench/out/chaos.json || status=1; \
	exit $$status

# Coverage-guided fuzzing with atheris (fuzz/run.py): each target FUZZ_SECONDS, crashes
# in fuzz/out/crashes/, a summary in bench/out/fuzz.json; exits non-zero on a finding.
# atheris has wheels for x86_64 Linux only: elsewhere this says so and skips.
FUZZ_SECONDS ?= 60
fuzz: install
	$(BIN)/python -m pip install -q -e '.[fuzz]' || echo "make fuzz: atheris does not install here"
	$(BIN)/python -m fuzz.run --seconds $(FUZZ_SECONDS) --out bench/out/fuzz.json

clean:
	rm -rf $(VENV) $(DEMO) bench/out fuzz/out .pytest_cache .mypy_cache .ruff_cache
