# KnowLedger: `make help` lists the targets.
PY      ?= python3
VENV    := .venv
BIN     := $(VENV)/bin
STAMP   := $(VENV)/.installed

.DEFAULT_GOAL := help
.PHONY: help install chromium verify-tools wrk demo serve train evaluate test test-fast lint typecheck contracts bench-gas bench-recommender bench-api bench-scale devnet clean

help: ## List the targets
	@grep -hE '^[a-zA-Z_-]+:.*## ' $(MAKEFILE_LIST) | awk 'BEGIN {FS = ":.*## "} {printf "  \033[36m%-18s\033[0m %s\n", $$1, $$2}'

$(STAMP): pyproject.toml package.json package-lock.json
	$(PY) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	npm ci --no-audit --no-fund --loglevel=error
	touch $(STAMP)

install: $(STAMP) ## Create .venv, install the Python package and the pinned npm toolchain (solc, OpenZeppelin, anvil, cast, ethers)

demo: $(STAMP) ## Run the whole story on the embedded chain (eth-tester) and a SQLite file
	$(BIN)/knowledger demo

serve: $(STAMP) ## Serve the API on http://127.0.0.1:8000 (embedded chain + SQLite; seeds the demo world, trains if needed)
	$(BIN)/knowledger serve

train: $(STAMP) ## Train the hybrid model on the demo world into var/model
	$(BIN)/knowledger train

evaluate: $(STAMP) ## Evaluate the served model through the serving path (JSON)
	$(BIN)/knowledger evaluate

chromium: ## Install Debian's Chromium for the browser tests (as root, with apt-get; otherwise they skip)
	@if command -v chromium >/dev/null 2>&1 || [ -x /usr/bin/chromium ]; then :; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	  echo "installing Debian's chromium for the browser tests"; \
	  export DEBIAN_FRONTEND=noninteractive; \
	  apt-get install -y -qq chromium >/dev/null 2>&1 || { apt-get update -qq && apt-get install -y -qq chromium >/dev/null; }; \
	else echo "note: no Chromium here (apt-get install chromium as root): the browser tests will skip"; fi

verify-tools: ## Install Debian's jq and bc for the cast recipe of docs/verify-ledger.md (as root, with apt-get; otherwise its test skips)
	@if command -v jq >/dev/null 2>&1 && command -v bc >/dev/null 2>&1; then :; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	  echo "installing Debian's jq and bc for the ledger verification test"; \
	  export DEBIAN_FRONTEND=noninteractive; \
	  apt-get install -y -qq jq bc >/dev/null 2>&1 || { apt-get update -qq && apt-get install -y -qq jq bc >/dev/null; }; \
	else echo "note: no jq or bc here (apt-get install jq bc as root): the ledger verification test will skip"; fi

wrk: ## Install Debian's wrk, the benchmarks' throughput load generator (as root, with apt-get; otherwise they fall back to a Python client)
	@if command -v wrk >/dev/null 2>&1; then :; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	  echo "installing Debian's wrk for the benchmarks"; \
	  export DEBIAN_FRONTEND=noninteractive; \
	  apt-get install -y -qq wrk >/dev/null 2>&1 || { apt-get update -qq && apt-get install -y -qq wrk >/dev/null; }; \
	else echo "note: no wrk here (apt-get install wrk as root): the scale-out benchmark uses a Python client"; fi

test: $(STAMP) chromium verify-tools ## Run every test (contracts on eth-tester and anvil, chain layer, recommender, service on SQLite and PostgreSQL, pages in Chromium)
	$(BIN)/pytest -m "" --timeout=900

test-fast: $(STAMP) ## Run the tests without the slow real-data evaluations
	$(BIN)/pytest -m "not slow"

lint: $(STAMP) ## ruff
	$(BIN)/ruff check backend recommender tests scripts

typecheck: $(STAMP) ## mypy
	$(BIN)/mypy backend recommender

contracts: $(STAMP) ## Recompile the Solidity sources into contracts/artifacts/
	$(BIN)/python -m backend.chain.compiler

bench-gas: $(STAMP) ## Gas used per operation and tx/s on eth-tester and anvil (JSON)
	$(BIN)/python scripts/bench_gas.py

bench-recommender: $(STAMP) ## Recommender quality on MovieLens, cross-domain, Caravan and the demo world (JSON + PNG)
	$(BIN)/python scripts/bench_recommender.py

bench-api: $(STAMP) wrk ## Consent-gated latency and throughput at 200 concurrent clients, revocation-to-refusal (JSON)
	$(BIN)/python scripts/bench_api.py

bench-scale: $(STAMP) wrk ## The same on anvil + a fresh PostgreSQL database, plus serve --workers 2 over 1 and the failover after kill -9 (JSON)
	$(BIN)/python scripts/bench_api.py --chain devnet --db postgresql

devnet: $(STAMP) ## Start a local anvil devnet (chain id 31337) in the foreground
	$(BIN)/knowledger devnet start

clean: ## Remove the virtualenv and node_modules
	rm -rf $(VENV) node_modules
