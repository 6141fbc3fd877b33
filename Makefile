# Everything a fresh machine needs is installed by these targets, into ignored folders:
#   .venv/          Python packages pinned in requirements.lock
#   node_modules/   Anvil, Forge, solcjs, OpenZeppelin Contracts, circom2/circomlib/snarkjs pinned in package-lock.json
#   .build/         the solc shim for py-solc-x, Kubo and geth built from their Go modules, compiled contracts
# Reruns only redo what changed.

SHELL := /bin/bash
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
SOLC_VERSION := 0.8.28
SOLC_SHIM := .build/solcx/solc-v$(SOLC_VERSION)
PYTEST_ARGS ?=

export SOLCX_BINARY_PATH := $(CURDIR)/.build/solcx
# tools/bin/anvil keeps Anvil's evicted block states out of ~/.foundry (see that script).
export PATH := $(CURDIR)/tools/bin:$(CURDIR)/node_modules/.bin:$(CURDIR)/$(BIN):$(PATH)
export APE_DATA_FOLDER ?= $(CURDIR)/.build/ape-data

.PHONY: all install compile kubo geth zk browser lint portal test test-fast demo bench bench-scale bench-listing bench-locate bench-chain-state soak slither fuzz clean

all: compile

$(BIN)/.installed: requirements.lock pyproject.toml
	@echo "==> Python $(VENV)/: $$(grep -c '==' requirements.lock) pinned packages from requirements.lock (about a minute the first time)"
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade "pip==26.3"
	$(BIN)/python -m pip install --quiet --require-virtualenv -r requirements.lock
	@echo "==> ehr_client itself, editable (the ehr command)"
	$(BIN)/python -m pip install --quiet --require-virtualenv --no-deps --no-build-isolation -e .
	rm -f $(BIN)/solc  # slither's solc-select launcher downloads compilers when run; we use .build/solcx
	touch $@
	@echo "==> Python packages ready"

node_modules/.installed: package.json package-lock.json
	@echo "==> node_modules/: Anvil, solcjs and OpenZeppelin from package-lock.json"
	npm ci --no-audit --no-fund --loglevel=error
	touch $@

# py-solc-x treats any executable named solc-v<version> in SOLCX_BINARY_PATH as an installed
# compiler; this one runs the npm solcjs build, so no compiler download is ever needed.
$(SOLC_SHIM): tools/solcjs-shim.js node_modules/.installed
	mkdir -p $(dir $@)
	printf '#!/bin/sh\nexec node "%s/tools/solcjs-shim.js" "$$@"\n' "$(CURDIR)" > $@
	chmod +x $@

install: $(BIN)/.installed node_modules/.installed $(SOLC_SHIM)

# --force: ape does not rebuild a contract when only a file it imports changed.
compile: install
	$(BIN)/ape compile --force
	$(BIN)/python scripts/export_abi.py

kubo:
	tools/build-kubo.sh

geth:
	tools/build-geth.sh

# The zero-knowledge claims circuit (circom2 and circomlib from node_modules), compiled once per
# source and pin under .build/zk/<hash>/; the tests run their ceremony there once and reuse it.
zk: install
	$(BIN)/python -c "from ehr_client.claims.toolchain import build_circuit; print(build_circuit().directory)"

# A real browser for the portal's tests: Debian's Chromium (Playwright's own download cannot work
# here). apt-get runs only when /usr/bin/chromium is missing; as root, or through sudo without a password.
browser:
	@test -x /usr/bin/chromium || { echo "==> Chromium from Debian's packages (about 30 s)"; \
	  if [ "$$(id -u)" = 0 ]; then SUDO=; else SUDO="sudo -n"; fi; \
	  $$SUDO apt-get install -y --no-install-recommends chromium >/dev/null || \
	  { $$SUDO apt-get update -q >/dev/null && $$SUDO apt-get install -y --no-install-recommends chromium >/dev/null; }; }
	@/usr/bin/chromium --version 2>/dev/null

# The declared layers (pyproject's [tool.importlinter]) and the types are gates, like the tests.
lint: install
	$(BIN)/lint-imports --no-cache
	$(BIN)/mypy ehr_client

# The patient portal's page: portal/src bundled by the pinned esbuild into .build/portal/ (what
# `ehr portal` serves); nothing is fetched at run time from anywhere but the portal itself.
PORTAL_SOURCES := $(wildcard portal/src/*.js) portal/index.html portal/style.css
.build/portal/app.js: $(PORTAL_SOURCES) node_modules/.installed
	mkdir -p .build/portal
	node_modules/.bin/esbuild portal/src/app.js --bundle --format=esm --target=es2022 --minify --keep-names --sourcemap \
		--log-level=warning --outfile=.build/portal/app.js
	cp portal/index.html portal/style.css .build/portal/
	cp node_modules/@nucypher/umbral-pre/pkg-bundler/umbral_pre_wasm_bg.wasm .build/portal/umbral.wasm

portal: .build/portal/app.js

# EHR_REQUIRE_KUBO=1: IPFS tests fail rather than skip when Kubo is missing.
test: compile kubo geth zk browser lint portal
	EHR_REQUIRE_KUBO=1 $(BIN)/ape test $(PYTEST_ARGS)

# The quick loop: contracts, client and record model only (no custodians, CLI world, faults or fuzzing).
test-fast: compile kubo
	EHR_REQUIRE_KUBO=1 $(BIN)/ape test tests/contracts tests/client tests/batch tests/crypto tests/records -x $(PYTEST_ARGS)

demo: install $(if $(filter ipfs,$(EHR_DEMO_STORE)),kubo) $(if $(filter consortium,$(EHR_DEMO_CHAIN)),geth)
	@echo "==> ehr demo (its own $(if $(filter consortium,$(EHR_DEMO_CHAIN)),geth Clique network,Anvil); stopped at the end)"
	$(BIN)/ehr demo $(DEMO_ARGS)

# Static analysis alone (make test runs it too, in tests/security/test_static_analysis.py).
slither: compile
	$(BIN)/python tools/slither/run.py

# The contract invariants alone, with forge's own report (make test runs them too, in
# tests/security/test_forge_invariants.py). Seed, runs and depth are fixed in foundry.toml.
fuzz: install
	node_modules/.bin/forge test

# Gas, throughput, crypto, memory and read latency on a fresh Anvil; writes bench/results/latest.json.
bench: install
	$(BIN)/python -m bench

# Writers and the local node SIGKILLed at random for EHR_SOAK_MINUTES (default 3), then recovery and a
# ledger audit (lost, duplicated, orphans after gc); writes bench/results/soak.json. Not in `make test`.
soak: install
	$(BIN)/python -m bench.soak

# How cost grows with the chain: 1,000 patients, checkpoints at 1k, 10k and 100k records (minutes, not in
# `make test`); writes bench/results/scale.json and scale.png.
bench-scale: install
	$(BIN)/python -m bench.scale

# One patient's record list at ~40, 16,000 and 64,000 blocks: scanned from the deployment against the
# per-patient cursor, warm and cold (about half an hour, mostly anvil_mine; not in `make bench`); writes bench/results/listing.json.
bench-listing: install
	$(BIN)/python -m bench.listing

# The first read of a record by id at ~40, 4,000 and 16,000 blocks: the registry's 256-block range against
# the scan from the deployment (a few minutes, mostly anvil_mine); writes bench/results/locate.json.
bench-locate: install
	$(BIN)/python -m bench.locate

bench-chain-state: install
	$(BIN)/python -m bench.chain_state

clean:
	rm -rf .build/__local__.json .build/ape-data .build/anvil-states .pytest_cache .hypothesis
